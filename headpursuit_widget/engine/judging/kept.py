"""Edited-pass readings kept on disk, so that a head set measured on a battery is never measured again.

refine, verify and effects read every edit set through categories.measure; each Reading (a few floats
per category and control fact) is kept per (model, battery, code): ``<captures>/<fingerprint>/<key>.readings.npz``
(plain arrays, read without pickle: the edit sets' keys, the masses, the control log-probabilities)
beside its ``.json`` SHA-256, checked and written like a kept capture (engine/kept.py). The key holds the
model's fingerprint, its weights (engine/kept.py weights_key: dtype, device type and a sum per
tensor: an in-place weight edit, such as a baked head, reads nothing measured before it), the whole
battery (prompts, token ids, control facts) and the digest of the code that measures (activations/,
editing/, judging/, models/). Only local models (backend "hf") are kept. Two processes adding to one
entry at once may drop each other's new readings: those are measured again, never read wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..editing.edits import parse_edits
from ..kept import code_digest, keep_entry, read_entry, weights_key
from ..models.shipped import captures_dir

_STAGES = ("activations", "editing", "judging", "models")  # the engine folders whose code a reading depends on
FIELDS = ("mass", "other_masses", "control", "format_masses")  # a categories.Reading's, each kept as float64


def entry_path(fingerprint: str, module, kind: str, *subject) -> Path | None:
    """Where the `kind` of results measured on `subject` (JSON-able: a battery as a dict, an alpha, ...) of
    the model with `fingerprint` and torch `module` are kept; None when they cannot be (module None: not a
    local model)."""
    if module is None or not code_digest(_STAGES):
        return None
    key = json.dumps([kind, *subject, weights_key(module), code_digest(_STAGES)])
    return captures_dir() / fingerprint / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.{kind}.npz"


def edit_key(adapter, edits) -> str:
    """A canonical key of an edit set (None or {}: the unedited pass) on the model with `adapter`: its sorted
    [layer, head, alpha]."""
    plan = parse_edits(adapter, edits)
    return json.dumps(sorted([layer, h, a] for layer, heads in plan.items() for h, a in heads.items()))


def load(path: Path | None) -> dict[str, dict]:
    """{edit key: {field: value}} kept at `path` ({} when none), the fields of FIELDS; HeadPursuitError naming
    the files to delete when the entry does not match its SHA-256."""
    arrays = load_arrays(path, "kept readings", same_length=True)
    if arrays is None:
        return {}
    keys = arrays.pop("keys")
    return {str(k): {f: arrays[f][i] for f in FIELDS} for i, k in enumerate(keys)}


def store(path: Path, readings: dict[str, dict]) -> None:
    """Add `readings` ({edit key: {field: value}}) to those kept at `path` (atomically, under the folder's lock)."""
    merged = {**load(path), **readings}
    keys = list(merged)
    arrays = {f: np.stack([np.asarray(merged[k][f], dtype=np.float64) for k in keys]) for f in FIELDS}
    store_arrays(path, {"keys": np.asarray(keys, dtype=str), **arrays})


def load_arrays(path: Path | None, what: str, *, same_length: bool = False) -> dict[str, np.ndarray] | None:
    """The named arrays kept at `path`, None when there are none; HeadPursuitError naming the files to
    delete (`what` names the entry) when they do not match their SHA-256 (or, same_length, differ in
    length along axis 0)."""
    found = None if path is None else read_entry(path, lambda p: _read(p, same_length), what)
    return None if found is None else found[0]


def store_arrays(path: Path, arrays: dict[str, Any]) -> None:
    """Keep the named arrays at `path`, atomically under the folder's lock."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    keep_entry(path, write)


def _read(path: Path, same_length: bool) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    if same_length and len({len(a) for a in arrays.values()}) > 1:
        raise ValueError("the arrays differ in length")
    return arrays
