"""Captured head writes kept on disk, so that a shipped concept's grid needs no capture in a new session.

One entry per (model fingerprint, positions, prompts): ``<folder>/<fingerprint>/<key>.npy`` (numpy, read
without pickle) beside ``<key>.json`` (its SHA-256, shape and dtype); the folder is $HEADPURSUIT_CAPTURES,
else ``captures/`` in the model cache ($HEADPURSUIT_CACHE). Writers and readers hold the folder's lock; an
entry is written to a temporary file that is then renamed, so nobody sees half of one. An entry whose bytes
do not match its SHA-256 is refused with the paths to delete. Only text prompts in float16 / float32 /
float64 are kept (bfloat16 has no numpy dtype; images are not keyed by text). ``read_entry`` and
``keep_entry`` do the checking and the writing for any kept file (ranking/kept.py keeps rankings with them).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import HeadPursuitError
from ..files import give_usual_mode
from ..models.cache import locked, sha256_of
from ..models.shipped import captures_dir

KEPT_DTYPES = (torch.float16, torch.float32, torch.float64)


def entry_path(model, prompts, positions: str) -> Path | None:
    """Where the capture of ``prompts`` at ``positions`` for ``model`` lives (the .npy file), or None
    when it cannot be kept (a prompt that is not text)."""
    if not all(isinstance(p, str) for p in prompts):
        return None
    digest = hashlib.sha256(json.dumps([positions, list(prompts)]).encode()).hexdigest()[:32]
    return captures_dir() / model.fingerprint / f"{digest}.npy"


def read_entry(path: Path, read: Callable[[Path], Any], what: str) -> tuple[Any, dict] | None:
    """(read(path), the entry's .json record) for the file kept at ``path``, None when there is none;
    HeadPursuitError naming both files to delete when the file does not match its recorded SHA-256 or
    ``read`` refuses it. ``what`` names the entry in that error ("cached capture", ...)."""
    meta_path = path.with_suffix(".json")
    if not path.parent.is_dir():
        return None
    with locked(path.parent):  # a writer replaces the file and its .json together under this lock
        if not (path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if sha256_of(path) == meta["sha256"]:
                return read(path), meta
        except (OSError, ValueError, KeyError, TypeError, HeadPursuitError):
            pass
    raise HeadPursuitError(
        f"the {what} {path} is corrupted or incomplete (it does not match {meta_path.name}): "
        f"delete {path} and {meta_path} (it is made again)"
    )


def keep_entry(path: Path, write: Callable[[Path], Any], **record) -> None:
    """write(a temporary file beside ``path``), then record its SHA-256 (and ``record``) in ``path``'s .json
    and rename it to ``path``, all under the folder's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.parent):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.part-", suffix=path.suffix)
        os.close(fd)
        try:
            write(Path(tmp))
            give_usual_mode(Path(tmp))
            path.with_suffix(".json").write_text(json.dumps({"sha256": sha256_of(Path(tmp)), **record}))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def load(path: Path) -> torch.Tensor | None:
    """The capture stored at ``path`` (n_layers, n_heads, n_samples, d_model), None when there is none;
    HeadPursuitError naming the file to delete when it does not match its recorded SHA-256."""
    found = read_entry(path, lambda p: np.load(p, allow_pickle=False), "cached capture")
    if found is None:
        return None
    array, meta = found
    if list(array.shape) != meta.get("shape") or str(array.dtype) != meta.get("dtype"):
        raise HeadPursuitError(f"the cached capture {path} does not have its recorded shape: delete {path}")
    return torch.from_numpy(array)


def store(path: Path, acts: torch.Tensor) -> None:
    """Write ``acts`` to ``path`` (and its .json) atomically under the folder's lock; a dtype numpy cannot
    hold is not kept."""
    if acts.dtype not in KEPT_DTYPES:
        return
    array = acts.detach().cpu().numpy()

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    keep_entry(path, write, shape=list(array.shape), dtype=str(array.dtype))
