"""Test support: a tiny byte-level BPE tokenizer built in memory, so that the tiny random models
need no download (the unit tier runs with an empty HEADPURSUIT_CACHE).

Its vocabulary is trained on the shipped concepts' words and prompts and the control task, with
every concept word in its four variants (word, " word", Word, " Word"), so concept words are single
tokens and there are plenty of word-like tokens for the random-word null dictionaries. Special
tokens and the ChatML chat template follow SmolLM2's.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from headpursuit_widget import concepts

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (  # like SmolLM2's: a default system prompt when the conversation has none
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# words the tests use outside the shipped concepts
EXTRA_TEXT = """The colour of the sky is blue. Paris is the capital of France. Hello there general Kenobi.
One two three four five. What is 2+2? Describe the shape you can see in this picture, please.
Which digit? Name it. What colour is it? The car is red. Her dress was green. The sky looks grey."""


def _corpus() -> list[str]:
    lines = [EXTRA_TEXT]
    for name in concepts.names():
        spec = concepts.get(name)
        lines += [*spec.rank_prompts, *spec.eval_prompts, *spec.probe_prompts, *spec.neutral_prompts]
        for word in spec.words:
            cap = word[:1].upper() + word[1:]
            lines.append(f"{word} {word} {cap} {cap}")
    lines += [f"{prompt}{answer}" for prompt, answer in concepts.control()]
    return lines


@lru_cache(maxsize=1)
def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of a few thousand tokens with SmolLM2's special tokens and chat template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=20_000,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
    )


@lru_cache(maxsize=1)
def tiny_tokenizer_dir() -> str:
    """A folder holding the tiny tokenizer (for code that loads a tokenizer from disk), removed at exit."""
    folder = tempfile.mkdtemp(prefix="headpursuit-tiny-tokenizer-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def corrupt(entry, at: int | None = None):
    """Flip one byte of the kept file `entry` (a pathlib.Path; by default the middle one) and return the
    .json record beside it."""
    data = bytearray(entry.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0xFF
    entry.write_bytes(bytes(data))
    return entry.with_suffix(".json")
