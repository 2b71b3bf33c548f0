"""Rankings kept on disk beside the kept captures, so that a new session draws a shipped concept's grid
without the pursuit and the null (about 1 s of SmolLM2's 1.2 s on 2 CPU threads).

One entry per (model fingerprint and weights, samples, positions, concept, options, code):
``<captures>/<fingerprint>/<key>.ranking.npz`` (the ranking file, file.py: plain arrays and JSON, read
without pickle) beside ``<key>.ranking.json`` (its SHA-256), written and checked like a kept capture
(activations/capture_cache.py: atomic, under the folder's lock; an entry that does not match its SHA-256
is refused with the paths to delete). The key holds the concept's token ids and a digest of the source of
the stages that make a ranking (activations/, concepts/, ranking/), so that a changed word list or an
edited pipeline never reads an older result.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..kept import code_digest, keep_entry, local_module, read_entry, weights_key
from ..models.shipped import captures_dir
from .result import HeadRanking

_STAGES = ("activations", "concepts", "ranking")  # the engine folders whose code a kept ranking depends on


def _digest() -> str:
    """The code digest of the stages that make a ranking."""
    return code_digest(_STAGES)


def entry_path(model, samples, positions: str, token_ids, options: dict) -> Path | None:
    """Where the ranking of the concept with ``token_ids`` on ``samples`` (text) at ``positions`` with
    rank_heads ``options`` is kept, or None when it cannot be (a sample that is not text, no source)."""
    if not all(isinstance(s, str) for s in samples) or not _digest():
        return None
    weights = weights_key(local_module(model))
    key = json.dumps(
        [positions, list(samples), [int(i) for i in token_ids], options, weights, _digest()], sort_keys=True
    )
    return captures_dir() / model.fingerprint / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.ranking.npz"


def load(path: Path, model) -> HeadRanking | None:
    """The ranking kept at ``path`` for ``model``, None when there is none; HeadPursuitError naming the files
    to delete when it does not match its recorded SHA-256 or is not a ranking of ``model``."""
    found = read_entry(path, lambda p: HeadRanking.load(p, model=model), "kept ranking")
    return None if found is None else found[0]


def store(path: Path, ranking: HeadRanking) -> None:
    """Keep ``ranking`` at ``path`` (and its .json), atomically under the folder's lock."""
    keep_entry(path, ranking.save)
