"""Shared fixtures: the real default model (once per session) and tiny random models of every family.

Tiny models use the tiny tokenizer of tests/support.py, so they need no download. Tests that use the
real model or its tokenizer (fixtures `smollm2`, `real_tokenizer`) or are marked slow get the
`real_model` marker: `pytest -m "not real_model"` runs offline on a fresh clone."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
import transformers as tf
from support import tiny_tokenizer

import headpursuit_widget as hp
from headpursuit_widget.engine.models import shipped

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(int(os.environ.get("HEADPURSUIT_TEST_THREADS", 0)) or max(1, min(2, os.cpu_count() or 1)))

TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)
# family -> (config class, extra config). head_dim differs from hidden/heads where the family allows it,
# so tests catch code that derives head_dim from hidden_size.
FAMILIES = {
    "gpt2": (tf.GPT2Config, None),
    "llama": (tf.LlamaConfig, {}),
    "mistral": (tf.MistralConfig, {}),
    "qwen2": (tf.Qwen2Config, {}),
    "qwen3": (tf.Qwen3Config, {"head_dim": 24}),
    "gemma": (tf.GemmaConfig, {"head_dim": 16}),
    "gemma2": (tf.Gemma2Config, {"head_dim": 24}),
    "gemma3_text": (tf.Gemma3TextConfig, {"head_dim": 24}),
    "phi3": (tf.Phi3Config, {}),
    "olmo2": (tf.Olmo2Config, {}),
}


@pytest.fixture(scope="session")
def smollm2():
    """The real default model (SmolLM2-135M-Instruct), loaded once."""
    return hp.load_model("smollm2")


REAL_MODEL_FIXTURES = {"smollm2", "real_tokenizer", "real_model_dir"}


def pytest_collection_modifyitems(items):
    for item in items:
        if REAL_MODEL_FIXTURES & set(item.fixturenames) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.real_model)


@pytest.fixture(scope="session")
def real_tokenizer():
    """The default model's tokenizer (from its re-saved copy, fetched and re-saved on first use)."""
    folder = shipped.resaved_dir("smollm2")
    if not (folder / "config.json").exists():
        hp.load_model("smollm2")
    return tf.AutoTokenizer.from_pretrained(str(folder))


@pytest.fixture(scope="session")
def real_model_dir(real_tokenizer):
    """Folder of the default model's re-saved copy: config, weights and tokenizer."""
    return str(shipped.resaved_dir("smollm2"))


TEST_KEPT_LIMIT = 2 << 30  # bytes: the tests' kept folder is emptied when it grows past this


def _size(folder: Path) -> int:
    """Bytes held by the files under folder."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


@pytest.fixture(scope="session", autouse=True)
def capture_folder(tmp_path_factory):
    """What the engine keeps on disk (captures, rankings, edited-pass readings) goes to the tests' own folder,
    never the user's: `<cache>/test-captures`, kept between test runs. Every kept entry is keyed by the model's
    weights, the inputs and a digest of the engine code that computed it, so a run after an engine change
    measures again and a run after a change elsewhere (widget, notebooks, tests) reads what was measured.
    HEADPURSUIT_TEST_CAPTURES=fresh gives each run an empty folder (everything measured); any other value
    names the folder. Tests of keeping itself use their own empty folders."""
    choice = os.environ.get("HEADPURSUIT_TEST_CAPTURES", "")
    if choice == "fresh":
        folder = tmp_path_factory.mktemp("captures")
    else:
        folder = Path(choice) if choice else shipped.cache_dir() / "test-captures"
        wiper = os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0"  # one xdist worker empties it, never two
        if wiper and folder.is_dir() and _size(folder) > TEST_KEPT_LIMIT:
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEADPURSUIT_CAPTURES", str(folder))
        yield folder


@pytest.fixture(scope="session")
def tokenizer():
    """The tiny tokenizer of tests/support.py (no download)."""
    return tiny_tokenizer()


def tiny_config(family: str, vocab_size: int):
    cls, extra = FAMILIES[family]
    if family == "gpt2":
        return cls(n_embd=64, n_layer=2, n_head=4, n_positions=256, vocab_size=vocab_size)
    config = cls(vocab_size=vocab_size, **TINY, **extra)
    if (config.pad_token_id or 0) >= vocab_size:  # Phi-3's default (32000) is beyond the tiny vocabulary
        config.pad_token_id = None
    return config


@pytest.fixture(scope="session")
def make_tiny(tokenizer):
    """make_tiny(family, seed=0) -> HeadModel: a 2-layer, 4-head random model with the tiny tokenizer."""
    cache = {}

    def make(family: str = "llama", seed: int = 0):
        if (family, seed) not in cache:
            torch.manual_seed(seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = tf.AutoModelForCausalLM.from_config(tiny_config(family, len(tokenizer)))
            for p in model.parameters():  # norms start at ones/zeros; randomise so gains matter
                if p.dim() == 1:
                    p.data.normal_(0.5 if family.startswith("gemma") else 1.0, 0.2)
            model.generation_config.pad_token_id = tokenizer.pad_token_id
            cache[family, seed] = hp.wrap(model, tokenizer, name=f"tiny-{family}-{seed}")
        return cache[family, seed]

    return make


@pytest.fixture
def tiny(make_tiny):
    return make_tiny("llama")
