"""The null's scores: per-head z-scores and p-values of the concept's EVR against the null dictionaries'
EVR, the Benjamini-Hochberg correction, and the null EVR itself (SOMP of every null dictionary, cached).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np
import torch

from ..concepts.dictionary import dictionary_rows
from ..concepts.null_words import frequency_profile
from ..errors import HeadPursuitError
from .pursuit import somp_evr_many
from .setup import Setup, progress_bar

_NULL_CACHE: OrderedDict = OrderedDict()  # (model, samples, dictionary, k, profile, ...) -> (null_evr, token ids)
_NULL_CACHE_SIZE = 16


def null_statistics(evr: np.ndarray, null_evr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, sd, z, p), each shaped like evr, from null_evr (n_null, *evr.shape).

    z = (evr - mean) / (sd * sqrt(1 + 1/n_null)): the standardised distance to the null, widened for
    estimating mean and sd from n_null draws. p: one-sided upper tail of the normal at z.
    """
    n = null_evr.shape[0]
    if n < 2:
        raise HeadPursuitError(f"a z-score needs at least 2 null draws, got {n}")
    mean = null_evr.mean(0)
    sd = null_evr.std(0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (evr - mean) / (sd * math.sqrt(1 + 1 / n))
    z = np.where(sd > 0, z, np.where(evr > mean, np.inf, 0.0))
    p = 0.5 * torch.special.erfc(torch.as_tensor(z, dtype=torch.float64) / math.sqrt(2)).numpy()
    return mean, sd, z, p


def benjamini_hochberg(p: np.ndarray, q: float = 0.05) -> np.ndarray:
    """Bool mask shaped like p: the discoveries of the Benjamini-Hochberg step-up procedure at level q."""
    if not 0 < q < 1:
        raise HeadPursuitError(f"q (false discovery rate) must be in (0, 1), got {q!r}")
    flat = np.asarray(p, dtype=np.float64).ravel()
    order = np.argsort(flat, kind="stable")
    passed = flat[order] <= q * np.arange(1, flat.size + 1) / flat.size
    keep = np.zeros(flat.size, dtype=bool)
    if passed.any():
        keep[order[: int(np.nonzero(passed)[0].max()) + 1]] = True
    return keep.reshape(np.shape(p))


def _digest(activations: torch.Tensor) -> str:
    """A short hash of captured head writes: the identity of the samples for the null cache. Hashes
    the tensor's own buffer (no copy of the writes on the CPU)."""
    data = activations.detach().cpu().contiguous().numpy()
    return hashlib.sha1(data.reshape(-1).view(np.uint8).data).hexdigest()[:16]


def null_evr(model, activations: torch.Tensor, flat: torch.Tensor, setup: Setup, chunk_bytes: int) -> torch.Tensor:
    """(n_null, L*H) EVR of frequency-matched null dictionaries on the same heads and samples, by SOMP in
    the writes' precision (float64 writes: float64; others: float32).

    Cached per key (model, samples, dictionary size, k, frequency profile, options): a second concept
    with the same profile reuses the draws unless one of them contains its tokens.
    """
    profile = frequency_profile(model.tokenizer, setup.con)
    options = (setup.rule, setup.normalize, setup.fold_norm, setup.n_null, setup.seed)
    key = (model.fingerprint, _digest(activations), len(setup.con.token_ids), setup.k, profile, *options)
    cached = _NULL_CACHE.get(key)
    if cached is not None and not cached[1].intersection(setup.con.token_ids):
        _NULL_CACHE.move_to_end(key)
        return cached[0]
    draws = setup.null_draws(model.tokenizer)
    L, Hn = model.adapter.n_layers, model.adapter.n_heads
    # the writes' own precision (float32 from capture: half the time of float64, EVRs within ~4e-7)
    dtype = torch.float64 if flat.dtype == torch.float64 else torch.float32

    def rows_of(ids):
        return dictionary_rows(model.adapter, ids, setup.normalize, setup.fold_norm)

    with progress_bar(setup.progress, f"null: {L * Hn} heads x {setup.n_null} dictionaries, k={setup.k}"):
        evr = somp_evr_many(flat, draws, rows_of, setup.k, chunk_bytes=chunk_bytes, dtype=dtype).cpu()
    _NULL_CACHE[key] = (evr, {int(i) for ids in draws for i in ids})
    while len(_NULL_CACHE) > _NULL_CACHE_SIZE:
        _NULL_CACHE.popitem(last=False)
    return evr
