"""Captured head writes kept on disk, so that a shipped concept's grid needs no capture in a new session.

One entry per (model fingerprint and weights, positions, prompts, code): ``<folder>/<fingerprint>/<key>.npy``
(numpy, read without pickle) beside ``<key>.json`` (its SHA-256, shape and dtype); the folder is $HEADPURSUIT_CAPTURES,
else ``captures/`` in the model cache ($HEADPURSUIT_CACHE). Writers and readers hold the folder's lock; an
entry is written to a temporary file that is then renamed, so nobody sees half of one. An entry whose bytes
do not match its SHA-256 is refused with the paths to delete. Only text prompts in float16 / float32 /
float64 are kept (bfloat16 has no numpy dtype; images are not keyed by text). The checking and the
writing are engine/kept.py's, shared with the other kept results.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..errors import HeadPursuitError
from ..kept import code_digest, keep_entry, local_module, read_entry, weights_key
from ..models.shipped import captures_dir

_STAGES = ("activations", "models")  # the engine folders whose code a capture depends on
KEPT_DTYPES = (torch.float16, torch.float32, torch.float64)


def entry_path(model, prompts, positions: str) -> Path | None:
    """Where the capture of ``prompts`` at ``positions`` for ``model`` lives (the .npy file), or None
    when it cannot be kept (a prompt that is not text)."""
    if not all(isinstance(p, str) for p in prompts):
        return None
    key = [positions, list(prompts), weights_key(local_module(model)), code_digest(_STAGES)]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
    return captures_dir() / model.fingerprint / f"{digest}.npy"


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
