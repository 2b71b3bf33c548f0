"""The package runs where students are (Windows, macOS): nothing POSIX-only at import, /proc only with a fallback.

A subprocess makes the POSIX-only modules unimportable (as they are on Windows), imports every module
of the package, loads a tiny random Llama from a folder, edits it, generates, bakes it and takes the
model cache's lock (filelock, which falls back to a lock without fcntl).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headpursuit_widget.engine import memory

POSIX_ONLY = ("fcntl", "resource", "termios", "tty", "pty", "pwd", "grp")
TESTS = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    POSIX_ONLY = {posix_only!r}
    try:  # psutil's Linux backend needs `resource`; its Windows and macOS backends load without it
        import psutil
    except ImportError:
        pass
    for name in POSIX_ONLY:
        sys.modules[name] = None  # `import name` raises ImportError, as on Windows
    sys.path.insert(0, {tests!r})
    warnings.simplefilter("ignore")  # filelock warns that only a soft lock is left without fcntl

    import importlib, pkgutil, tempfile
    from pathlib import Path

    import headpursuit_widget as hp

    for info in pkgutil.walk_packages(hp.__path__, "headpursuit_widget."):
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            if exc.name in POSIX_ONLY or "halted; None in sys.modules" in str(exc):
                raise SystemExit(f"{{info.name}} needs a POSIX-only module: {{exc}}")
            # an optional extra (nnsight, marimo, ...) that is not installed: not this test's business

    import torch
    import transformers as tf
    from support import tiny_tokenizer

    from headpursuit_widget.engine import memory
    from headpursuit_widget.engine.models.cache import locked

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    config = tf.LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    module = tf.AutoModelForCausalLM.from_config(config)
    module.generation_config.pad_token_id = tok.pad_token_id
    folder = Path(tempfile.mkdtemp()) / "tiny"
    module.save_pretrained(folder)
    tok.save_pretrained(folder)

    m = hp.load_model(str(folder))
    wrapped = hp.wrap(module, tok)
    prompts = ["The colour of the sky is", "Paris is the capital of"]
    edits = {{(0, 1): -1.0, (1, 2): 0.0}}
    ids = tok(prompts[0], return_tensors="pt").input_ids
    with torch.no_grad():
        plain = m.module(input_ids=ids).logits
        with hp.edit_heads(m, edits):
            edited = m.module(input_ids=ids).logits
    assert not torch.allclose(plain, edited), "the edit did nothing"
    texts = hp.generate(m, prompts, edits=edits, max_new_tokens=5)
    assert texts == hp.generate(wrapped, prompts, edits=edits, max_new_tokens=5)
    assert texts == hp.generate(hp.wrap(hp.bake(m, edits), tok), prompts, max_new_tokens=5)
    assert hp.capture(m, prompts, progress=False).shape == (2, 4, 2, 64)

    with locked(folder.parent / "cache"):
        pass
    free = memory.available_bytes()
    assert free is None or free > 0
    print("portable ok")
    """
)


@pytest.mark.subprocess
def test_package_imports_loads_edits_and_generates_without_posix_only_modules():
    script = SCRIPT.format(posix_only=POSIX_ONLY, tests=str(TESTS))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "portable ok" in proc.stdout


def test_free_memory_is_unknown_without_psutil_or_proc(monkeypatch):
    """Where neither psutil nor /proc/meminfo is there (macOS, Windows without psutil), the guard lets work run."""
    monkeypatch.setitem(sys.modules, "psutil", None)
    real = Path.read_text

    def no_proc(self, *args, **kwargs):
        if str(self).startswith("/proc"):
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_proc)
    assert memory.available_bytes() is None
    memory.check_fits(1 << 60, "a huge thing", "make it smaller")  # unknown: not refused


def test_proc_is_read_only_in_the_memory_guard():
    """/proc exists on Linux only: any new reader must come with a fallback (and a test like the one above)."""
    package = TESTS.parent / "headpursuit_widget"
    readers = sorted(
        str(path.relative_to(package).as_posix())
        for path in package.rglob("*.py")
        if re.search(r"[\"']/proc/", path.read_text(encoding="utf-8"))
    )
    assert readers == ["engine/memory.py"], readers
