"""Image samples of vision-language models and their encoding into processor inputs.

A VLM sample is an (image, prompt) pair or {"image": ..., "prompt": ...}; the image is a PIL
image, a numpy array (H, W[, C]) or a file path, or a list of those for several images.
`vlm_inputs` turns samples into processor outputs plus a (B, T) boolean mask of the positions
to average over: the image-placeholder tokens (`"image"`), the text tokens (`"prompt"`) or both
(`"all"`); padding and special tokens never count. The text decoder of every supported class
keeps the input_ids length (image features replace the placeholder embeddings one for one), so
the mask indexes the decoder's sequence directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import HeadPursuitError
from ..models.processor import image_token_id
from .batch import POSITIONS, Batch, last_position

if TYPE_CHECKING:
    import PIL.Image


# Text the user writes for one image, where the processor's own image token is not enough.
_PLACEHOLDER = {
    "Qwen2VLProcessor": "<|vision_start|><|image_pad|><|vision_end|>",
    "Qwen2_5_VLProcessor": "<|vision_start|><|image_pad|><|vision_end|>",
}


def load_image(image) -> PIL.Image.Image:
    """PIL RGB image from a PIL image, a numpy array (H, W) / (H, W, 3|4) (uint8, or floats in
    [0, 1]) or a file path."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        if not Path(image).is_file():
            raise HeadPursuitError(f"image file not found: {image}")
        return Image.open(image).convert("RGB")
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise HeadPursuitError(f"image array must be (H, W) or (H, W, 1|3|4), got {arr.shape}")
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
        return Image.fromarray(arr.squeeze(2) if arr.ndim == 3 and arr.shape[2] == 1 else arr).convert("RGB")
    raise HeadPursuitError(f"unsupported image type {type(image).__name__}: use a PIL image, array or path")


def is_vlm_sample(sample) -> bool:
    """True for {"image"/"images": ..., "prompt": str} and (image, prompt) pairs."""
    return isinstance(sample, dict) or (
        isinstance(sample, (tuple, list)) and len(sample) == 2 and isinstance(sample[1], str)
    )


def split_samples(samples) -> tuple[list[list], list[str]]:
    """(images of each sample as a list of PIL images, prompts); plain strings have no image."""
    pairs = []
    for s in samples:
        if isinstance(s, dict):
            if "prompt" not in s:
                raise HeadPursuitError(f"a dict sample needs a 'prompt' key, got keys {sorted(s)}")
            pairs.append((s.get("image", s.get("images")), s["prompt"]))
        elif is_vlm_sample(s):
            pairs.append(tuple(s))
        elif isinstance(s, str):
            pairs.append((None, s))
        else:
            raise HeadPursuitError(
                f"a sample must be a prompt, an (image, prompt) pair or a dict, got {type(s).__name__}"
            )
    images = [
        [] if im is None else [load_image(x) for x in (im if isinstance(im, (list, tuple)) else [im])]
        for im, _ in pairs
    ]
    return images, [p for _, p in pairs]


def sample_key(sample) -> str:
    """Stable hash of a sample (prompt text and image pixels): a cache key for VLM samples,
    which are not hashable themselves."""
    import hashlib

    (ims,), (prompt,) = split_samples([sample])
    digest = hashlib.sha256(prompt.encode())
    for im in ims:
        digest.update(f"{im.size}".encode())
        digest.update(im.tobytes())
    return digest.hexdigest()[:16]


def placeholder(processor) -> str:
    """The text that stands for one image in a prompt for this processor."""
    return _PLACEHOLDER.get(type(processor).__name__, processor.image_token)


def _with_placeholders(processor, images: list, prompt: str) -> str:
    """`prompt` with one placeholder per image in front when it has none; the count is checked."""
    tok = processor.image_token
    n = prompt.count(tok)
    if n == 0:
        return placeholder(processor) * len(images) + prompt
    if n != len(images):
        raise HeadPursuitError(
            f"prompt {prompt[:60]!r} has {n} image token(s) {tok!r} but {len(images)} image(s) were given with it"
        )
    return prompt


def _chat_text(processor, images: list, prompt: str) -> str:
    """A user turn with the images and the prompt, in the processor's chat template (or, if it has
    none, the tokenizer's, with the image placeholders written in front of the prompt)."""
    if getattr(processor, "chat_template", None):
        content = [{"type": "image"} for _ in images] + [{"type": "text", "text": prompt}]
        return processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
    tok = processor.tokenizer
    if not getattr(tok, "chat_template", None):
        raise HeadPursuitError(f"chat=True but {type(processor).__name__} has no chat template; pass chat=False")
    return tok.apply_chat_template(
        [{"role": "user", "content": _with_placeholders(processor, images, prompt)}],
        add_generation_prompt=True,
        tokenize=False,
    )


def encode_vision(
    model, samples: list, positions: str = "image", chat: bool = False, padding_side: str = "right"
) -> Batch:
    """Processor outputs for VLM samples and the (B, T) selection mask, as a batch.Batch.

    inputs: input_ids (B, T), attention_mask (B, T) and the class's image tensors (pixel_values,
    image_grid_thw, image_sizes, pixel_attention_mask, token_type_ids ...) on the model's device,
    floating tensors in its dtype. Either every sample has images or none has.
    """
    if positions not in POSITIONS:
        raise HeadPursuitError(f"positions must be one of {POSITIONS}, got {positions!r}")
    processor, module = model.processor, model.module
    tid = image_token_id(module, processor)
    per_sample, prompts = split_samples(samples)
    has = [bool(ims) for ims in per_sample]
    if any(has) and not all(has):
        raise HeadPursuitError(
            f"samples {[i for i, h in enumerate(has) if not h]} have no image while others "
            "do: give every sample an image, or none"
        )
    if positions == "image" and not all(has):
        raise HeadPursuitError("positions='image' needs an image in every sample, e.g. (image, prompt) pairs")
    texts = [
        _chat_text(processor, im, p) if chat else _with_placeholders(processor, im, p)
        for im, p in zip(per_sample, prompts)
    ]
    tok = processor.tokenizer
    old_side, tok.padding_side = tok.padding_side, padding_side
    try:
        enc = processor(text=texts, images=per_sample if all(has) else None, padding=True, return_tensors="pt")
    finally:
        tok.padding_side = old_side
    ids, attn = enc["input_ids"], enc["attention_mask"].bool()
    is_image = (ids == tid) & attn
    if not torch.equal(is_image.any(1), torch.tensor(has)):
        raise HeadPursuitError(
            f"the processor's output has image tokens (id {tid}) in samples "
            f"{is_image.any(1).tolist()} but images were given for {has}: processor "
            f"{type(processor).__name__} does not match model {type(module).__name__}"
        )
    special = torch.isin(ids, torch.tensor(sorted(set(tok.all_special_ids)), dtype=ids.dtype))
    text = attn & ~is_image & ~special
    select = {"image": is_image, "prompt": text, "all": is_image | text, "last": last_position(attn)}[positions]
    dtype = next(module.parameters()).dtype
    inputs = {
        k: v.to(model.device, dtype) if v.is_floating_point() else v.to(model.device)
        for k, v in enc.items()
        if k != "labels" and torch.is_tensor(v)
    }
    return Batch(inputs=inputs, select=select)
