"""The ranking file: a .npz of plain arrays plus JSON metadata (format headpursuit-ranking/2), checked
against its own dimensions on reading (engine/files.py does the safe reading and the atomic writing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import HeadPursuitError, shorten
from ..files import parse_vocab, read_checked, write_atomic
from .scores import SCORES

FORMAT = "headpursuit-ranking/2"
# every array of a ranking file, by its dimension names (checked against each other and the metadata)
_SHAPES = {
    "null_evr": ("n_null", "n_layers", "n_heads"),
    "atoms": ("n_layers", "n_heads", "k"),
    "gains": ("n_layers", "n_heads", "k"),
    "curves": ("n_layers", "n_heads", "k"),
    "lens_ids": ("n_layers", "n_heads", "n_lens"),
    "lens_vals": ("n_layers", "n_heads", "n_lens"),
    "significant": ("n_layers", "n_heads"),
    **{name: ("n_layers", "n_heads") for name in SCORES},
}
_ARRAYS = tuple(name for name in _SHAPES if name not in SCORES)  # the fields that are arrays
# metadata fields stored as they are, with their JSON types
_META = {
    "concept": dict,
    "method": str,
    "score_name": str,
    "options": dict,
    "model_name": str,
    "fingerprint": str,
}


def save_ranking(ranking, path: Path) -> Path:
    """Write `ranking` (a HeadRanking) to `path` through a temporary file + rename."""
    meta = {
        "format": FORMAT,
        "dims": {
            "n_layers": ranking.n_layers,
            "n_heads": ranking.n_heads,
            "k": ranking.k,
            "n_null": ranking.null_evr.shape[0],
            "n_lens": ranking.lens_ids.shape[2],
        },
        "vocab": {str(k): v for k, v in ranking.vocab.items()},
        **{name: getattr(ranking, name) for name in _META},
        "recommended": [list(h) for h in ranking.recommended],
    }
    arrays = {name: np.asarray(getattr(ranking, name)) for name in _ARRAYS}
    arrays.update({name: ranking.score_table[name] for name in SCORES})
    return write_atomic(path, meta, arrays)


def load_ranking(cls, path: Path, model=None):
    """The HeadRanking (`cls`) saved at `path`, checked (see HeadRanking.load)."""
    if not path.is_file():
        raise HeadPursuitError(f"ranking file not found: {path}")
    meta, arrays = read_checked(path, _SHAPES, _file_dims)
    if meta.get("format") != FORMAT:
        raise HeadPursuitError(f"{path}: unknown format {shorten(repr(meta.get('format')))}, expected {FORMAT!r}")
    for name, kind in _META.items():
        if not isinstance(meta.get(name), kind):
            raise HeadPursuitError(
                f"{path}: metadata {name!r} must be a {kind.__name__}, got {shorten(repr(meta.get(name)))}"
            )
    if meta["score_name"] not in SCORES:
        raise HeadPursuitError(f"{path}: unknown score {shorten(repr(meta['score_name']))}; known: {SCORES}")
    concept_ids = meta["concept"].get("token_ids", [])
    if not isinstance(concept_ids, list) or not all(type(i) is int for i in concept_ids):
        raise HeadPursuitError(f"{path}: concept token_ids must be a list of ints, got {shorten(repr(concept_ids))}")
    needed = np.concatenate([arrays["atoms"].ravel(), arrays["lens_ids"].ravel()]).tolist() + concept_ids
    vocab = parse_vocab(path, meta.get("vocab"), needed)
    recommended = meta.get("recommended", [])
    if not isinstance(recommended, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(type(i) is int for i in h) for h in recommended
    ):
        raise HeadPursuitError(
            f"{path}: 'recommended' must be a list of [layer, head], got {shorten(repr(recommended))}"
        )
    ranking = cls(
        score_table={name: arrays.pop(name) for name in SCORES},
        vocab=vocab,
        **{name: meta[name] for name in _META},
        recommended=tuple((layer, head) for layer, head in recommended),
        **arrays,
    )
    if model is not None and model.fingerprint != ranking.fingerprint:
        raise HeadPursuitError(
            f"{path} was made for model {ranking.model_name!r} (fingerprint "
            f"{ranking.fingerprint}), not for {model.name!r} ({model.fingerprint})"
        )
    return ranking


def _file_dims(meta: dict) -> dict:
    """Array dimensions a ranking file's metadata fixes: its "dims" (files since issue 11), else k and n_null."""
    dims = meta.get("dims")
    if dims is None:
        raw = meta.get("options")
        options: dict = raw if isinstance(raw, dict) else {}
        dims = {name: options[name] for name in ("k", "n_null") if name in options}
    if not isinstance(dims, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in dims.values()
    ):
        raise HeadPursuitError(f"ranking metadata 'dims' must map dimension names to ints, got {shorten(repr(dims))}")
    return dims
