"""Tiny random vision-language models with offline processors, one per supported class.

`build(kind)` -> (model, processor). The tokenizer is the tiny one of tests/support.py (or, with
`text_model`, the real SmolLM2 one, see `tokenizer_dir`) with each class's image tokens added; image processors
are the PIL-backend classes, so nothing imports torchvision. Text decoders: 2 layers, 4 query
heads, 2 KV heads, width 32 - or SmolLM2 itself when `text_model` is given (Llama-text classes).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import transformers as tf
from support import tiny_tokenizer_dir

from headpursuit_widget.engine.activations.vision import placeholder
from headpursuit_widget.engine.models.processor import NoVideoProcessor, images_only

KINDS = ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "gemma3", "paligemma")
LLAMA_TEXT = ("llava", "llava_next", "idefics3", "smolvlm")  # accept a Llama text model

TINY_TEXT = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)
IMG = 16  # vision towers see 16x16 images in 4x4 patches (Qwen: 56x56 in 14x14 patches, merged 2x2)
# SmolLM2's ChatML turns, with `{image}` written for each image item of a message.
CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}{image}{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@lru_cache(maxsize=2)
def tokenizer_dir(real: bool = False) -> str:
    """Folder holding the tiny tokenizer, or with real=True SmolLM2's: the default model's re-saved
    copy (made on first load)."""
    import headpursuit_widget as hp
    from headpursuit_widget.engine.models import shipped

    if not real:
        return tiny_tokenizer_dir()
    folder = shipped.resaved_dir("smollm2")
    if not (folder / "tokenizer_config.json").exists():
        hp.load_model("smollm2")
    return str(folder)


def _tokenizer(tokenizer_dir: str, named: dict[str, str]):
    """The tokenizer in `tokenizer_dir` with `named` special tokens (attribute name -> token) added."""
    return tf.AutoTokenizer.from_pretrained(tokenizer_dir, extra_special_tokens=named)


def _text_config(model_type: str, vocab: int, text_like=None, **extra) -> dict:
    """Text sub-config: the tiny shape, or `text_like`'s (a real LlamaConfig) when given."""
    if text_like is not None:
        base = {k: v for k, v in text_like.to_dict().items() if not k.startswith("_")}
        base.update(model_type=model_type, vocab_size=vocab, tie_word_embeddings=False)
        return base
    return dict(
        model_type=model_type, vocab_size=vocab, bos_token_id=1, eos_token_id=2, pad_token_id=2, **TINY_TEXT, **extra
    )


def _siglip(**extra) -> dict:
    return dict(
        model_type="siglip_vision_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=IMG,
        patch_size=4,
        **extra,
    )


def _llava(tok_dir, text_like, next_: bool):
    tok = _tokenizer(tok_dir, {"image_token": "<image>"})
    vocab = len(tok)
    vision = dict(
        model_type="clip_vision_model",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMG,
        patch_size=4,
        projection_dim=32,
    )
    common = dict(
        vision_config=vision,
        text_config=_text_config("llama", vocab, text_like),
        image_token_index=tok.image_token_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    ip_kw = dict(size={"shortest_edge": IMG}, crop_size={"height": IMG, "width": IMG})
    if next_:
        pinpoints = [[IMG, IMG], [IMG, 2 * IMG], [2 * IMG, IMG]]
        config = tf.LlavaNextConfig(image_grid_pinpoints=pinpoints, image_seq_length=16, **common)
        model = tf.LlavaNextForConditionalGeneration(config)
        ip = tf.LlavaNextImageProcessorPil(image_grid_pinpoints=pinpoints, **ip_kw)
        proc = tf.LlavaNextProcessor(
            ip, tok, patch_size=4, vision_feature_select_strategy="default", num_additional_image_tokens=1
        )
    else:
        config = tf.LlavaConfig(image_seq_length=16, **common)
        model = tf.LlavaForConditionalGeneration(config)
        proc = tf.LlavaProcessor(
            tf.CLIPImageProcessorPil(**ip_kw),
            tok,
            patch_size=4,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
        )
    return model, proc


def _qwen(tok_dir, v25: bool):
    tok = _tokenizer(
        tok_dir,
        {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
    )
    vocab = len(tok)
    ids = {
        k: tok.convert_tokens_to_ids(t)
        for k, t in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
    text = _text_config("qwen2_5_vl_text" if v25 else "qwen2_vl_text", vocab, rope_parameters=rope)
    if v25:
        vision = dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            patch_size=14,
            out_hidden_size=32,
            window_size=28,
            fullatt_block_indexes=[1],
        )
        model = tf.Qwen2_5_VLForConditionalGeneration(
            tf.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
        )
        proc_cls = tf.Qwen2_5_VLProcessor
    else:
        vision = dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, patch_size=14)
        model = tf.Qwen2VLForConditionalGeneration(tf.Qwen2VLConfig(text_config=text, vision_config=vision, **ids))
        proc_cls = tf.Qwen2VLProcessor
    ip = tf.Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=56 * 56)
    return model, images_only(proc_cls)(image_processor=ip, tokenizer=tok, video_processor=NoVideoProcessor())


def _idefics(tok_dir, text_like, smol: bool):
    tok = _tokenizer(
        tok_dir,
        {
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
    )
    vocab = len(tok)
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=IMG, patch_size=4
    )
    common = dict(
        vision_config=vision,
        text_config=_text_config("llama", vocab, text_like),
        image_token_id=tok.image_token_id,
        scale_factor=2,
    )
    ip_kw = dict(do_image_splitting=False, size={"longest_edge": IMG}, max_image_size={"longest_edge": IMG})
    if smol:
        model = tf.SmolVLMForConditionalGeneration(tf.SmolVLMConfig(**common))
        proc = images_only(tf.SmolVLMProcessor)(
            tf.SmolVLMImageProcessorPil(**ip_kw), tok, NoVideoProcessor(), image_seq_len=4
        )
    else:
        model = tf.Idefics3ForConditionalGeneration(tf.Idefics3Config(**common))
        proc = tf.Idefics3Processor(tf.Idefics3ImageProcessorPil(**ip_kw), tok, image_seq_len=4)
    return model, proc


def _gemma3(tok_dir):
    tok = _tokenizer(
        tok_dir, {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"}
    )
    vocab = len(tok)
    text = _text_config("gemma3_text", vocab, head_dim=8, sliding_window=64)
    config = tf.Gemma3Config(
        text_config=text,
        vision_config=_siglip(),
        mm_tokens_per_image=4,
        image_token_index=tok.image_token_id,
        boi_token_index=tok.boi_token_id,
        eoi_token_index=tok.eoi_token_id,
    )
    ip = tf.Gemma3ImageProcessorPil(size={"height": IMG, "width": IMG})
    return tf.Gemma3ForConditionalGeneration(config), tf.Gemma3Processor(ip, tok, image_seq_length=4)


def _paligemma(tok_dir):
    ip = tf.SiglipImageProcessorPil(size={"height": IMG, "width": IMG})
    ip.image_seq_length = 16
    proc = tf.PaliGemmaProcessor(ip, _tokenizer(tok_dir, {"image_token": "<image>"}))  # adds loc/seg tokens
    tok = proc.tokenizer
    text = _text_config("gemma", len(tok), head_dim=8)
    config = tf.PaliGemmaConfig(
        vision_config=_siglip(),
        text_config=text,
        image_token_index=tok.image_token_id,
        projection_dim=32,
        hidden_size=32,
        vocab_size=len(tok),
    )
    return tf.PaliGemmaForConditionalGeneration(config), proc


def build(kind: str, text_model=None, seed: int = 0):
    """Tiny random VLM of `kind` and its processor, in eval mode.

    text_model: an optional Llama causal LM (e.g. the real SmolLM2) whose config and weights
    become the language model and lm_head (kinds in LLAMA_TEXT only).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    if text_model is not None and kind not in LLAMA_TEXT:
        raise ValueError(f"{kind} has its own text architecture; text_model works for {LLAMA_TEXT}")
    torch.manual_seed(seed)
    text_like = None if text_model is None else text_model.config
    tok = tokenizer_dir(real=text_model is not None)
    builders = {
        "llava": lambda: _llava(tok, text_like, False),
        "llava_next": lambda: _llava(tok, text_like, True),
        "qwen2_vl": lambda: _qwen(tok, False),
        "qwen2_5_vl": lambda: _qwen(tok, True),
        "idefics3": lambda: _idefics(tok, text_like, False),
        "smolvlm": lambda: _idefics(tok, text_like, True),
        "gemma3": lambda: _gemma3(tok),
        "paligemma": lambda: _paligemma(tok),
    }
    model, processor = builders[kind]()
    processor.chat_template = CHAT.replace("{image}", placeholder(processor))
    if text_model is not None:
        _graft_text_model(model, text_model)
    return model.eval(), processor


def _graft_text_model(vlm, text_model) -> None:
    """Copy a Llama causal LM's decoder and lm_head weights into `vlm` (new token rows stay random)."""
    decoder = vlm.get_decoder()
    src = text_model.get_decoder().state_dict()
    with torch.no_grad():
        for name, p in decoder.state_dict().items():
            if name == "embed_tokens.weight":
                p[: src[name].shape[0]] = src[name]
            else:
                p.copy_(src[name])
        w = text_model.get_output_embeddings().weight
        vlm.get_output_embeddings().weight[: w.shape[0]] = w
