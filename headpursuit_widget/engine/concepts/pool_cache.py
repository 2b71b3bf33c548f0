"""The null's word pool kept on disk, so that a new process ranks without reading the whole vocabulary.

``null_words.word_pool`` decodes every token and encodes every word-like one (about 1.5 s for SmolLM2's
49k tokens), and its result depends on the tokenizer alone. One entry per tokenizer:
``<folder>/pools/<digest>.json``, the digest the SHA-256 of the fast tokenizer's own serialisation
(vocabulary, merges, normaliser, pre-tokeniser, decoder), in the folder of the kept captures
(models/shipped.py captures_dir). The entry records the SHA-256 of its words and ids; one that does not
match is refused with its path to delete. It is written to a temporary file, then renamed, under the
folder's lock. A tokenizer without a fast backend is not kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import HeadPursuitError
from ..files import give_usual_mode
from ..models.cache import locked
from ..models.shipped import captures_dir


def entry_path(tokenizer) -> Path | None:
    """Where ``tokenizer``'s pool is kept, or None when it has no fast backend to key it by."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    return captures_dir() / "pools" / f"{hashlib.sha256(backend.to_str().encode()).hexdigest()[:32]}.json"


def _digest(words: list, ids: list) -> str:
    return hashlib.sha256(json.dumps([words, ids]).encode()).hexdigest()


def load(path: Path) -> tuple[list[str], np.ndarray] | None:
    """The pool (words, ids (n,) int64) kept at ``path``, None when there is none; HeadPursuitError naming
    the file to delete when it does not match its recorded SHA-256."""
    if not path.is_file():
        return None
    try:
        with locked(path.parent):
            entry = json.loads(path.read_text())
            words, ids = entry["words"], entry["ids"]
            intact = _digest(words, ids) == entry["sha256"]
    except HeadPursuitError as exc:  # a folder this process cannot lock (read-only): build the pool instead
        warnings.warn(f"the kept word pool {path} was not read: {exc}", stacklevel=3)
        return None
    except (OSError, ValueError, KeyError, TypeError):
        intact = False
    if not intact:
        raise HeadPursuitError(
            f"the kept word pool {path} is corrupted or incomplete: delete {path} (it is built again)"
        )
    return words, np.asarray(ids, dtype=np.int64)


def store(path: Path, words: list[str], ids: np.ndarray) -> None:
    """Keep the pool (words, ids) at ``path``, atomically under the folder's lock; a folder that cannot be
    written gets a warning (the pool is built again next time)."""
    try:
        _write(path, words, [int(i) for i in ids])
    except (HeadPursuitError, OSError) as exc:
        warnings.warn(f"the word pool was not kept in {path.parent}: {exc}", stacklevel=3)


def _write(path: Path, words: list[str], listed: list[int]) -> None:
    with locked(path.parent):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.part-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({"sha256": _digest(words, listed), "words": words, "ids": listed}, fh)
            give_usual_mode(Path(tmp))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
