"""The calibrated null: frequency-matched random-word dictionaries, per-head z-scores and p-values,
and the Benjamini-Hochberg correction that turns them into `significant` heads.

A head's concept EVR is compared with the EVR that `n_null` dictionaries of random words reach on the
same head and samples, through the same SOMP. The random words are matched to the concept's token
frequency, with the BPE token id as its proxy (merges are learnt in frequency order, so a low id is a
frequent token): the pool of word-like tokens is cut into `N_BINS` bins of equal size by id, and each
null dictionary takes as many words from each bin as the concept has (its "frequency profile").
Words are expanded into variants by the concept's rule, so null dictionaries have the concept's mix
of leading-space, bare and capitalised tokens. See docs/verification.md.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch

from .baselines import random_words
from .dictionary import word_token_ids
from .errors import HeadPursuitError

N_BINS = 16
_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_EXPANSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> {(word, rule): token ids}


def word_pool(tokenizer) -> tuple[list[str], np.ndarray]:
    """(words, ids): the word-like pool of baselines.random_words sorted by the id of " word" (cached)."""
    try:
        return _POOLS[tokenizer]
    except (KeyError, TypeError):
        pass
    words = random_words(tokenizer)
    ids = np.array([tokenizer.encode(" " + w, add_special_tokens=False)[0] for w in words], dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    pool = ([words[i] for i in order], ids[order])
    try:
        _POOLS[tokenizer] = pool
    except TypeError:
        pass
    return pool


def frequency_profile(tokenizer, concept) -> tuple[int, ...]:
    """(N_BINS,) counts: how many of the concept's words fall in each id bin of the word pool.

    A word's id is the smallest id among the tokens it contributed (its most frequent variant).
    """
    _, ids = word_pool(tokenizer)
    if len(ids) < N_BINS:
        raise HeadPursuitError(f"the vocabulary has too few word-like tokens ({len(ids)}) for a frequency-matched null")
    edges = ids[np.linspace(0, len(ids), N_BINS + 1).astype(int)[1:-1]]
    anchors = [min(t) for t in concept.mapping.values()]
    return tuple(int(c) for c in np.bincount(np.searchsorted(edges, anchors, side="right"), minlength=N_BINS))


def frequency_matched_dictionaries(
    tokenizer, profile, size: int, *, n_draws: int, exclude, seed: int, rule: str = "whole_word"
) -> list[np.ndarray]:
    """n_draws arrays of `size` distinct token ids of random words, none in `exclude`.

    Words are drawn bin by bin following `profile` (see frequency_profile), round after round until
    the dictionary has `size` tokens; each word is expanded into its variants by `rule`.
    """
    words, _ = word_pool(tokenizer)
    exclude = {int(i) for i in exclude}
    bounds = np.linspace(0, len(words), N_BINS + 1).astype(int)
    wanted = np.repeat(np.arange(N_BINS), np.asarray(profile, dtype=int))
    if wanted.size == 0:
        raise HeadPursuitError("the frequency profile is empty: the concept has no words")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_draws):
        out: dict[int, None] = {}
        used: set[int] = set()
        for attempt in range(50 * size):
            b = int(wanted[attempt % wanted.size])
            index = int(rng.integers(bounds[b], bounds[b + 1]))
            if index in used:
                continue
            used.add(index)
            found = _expansion(tokenizer, words[index], rule)
            if not found or exclude.intersection(found):
                continue
            out.update(dict.fromkeys(found))
            if len(out) >= size:
                break
        if len(out) < size:
            raise HeadPursuitError(f"the vocabulary has too few word-like tokens to draw null dictionaries of {size}")
        draws.append(np.fromiter(out, dtype=np.int64)[:size])
    return draws


def _expansion(tokenizer, word: str, rule: str) -> list[int]:
    """word_token_ids of a pool word, remembered per tokenizer (a null draw tokenises ~150 words)."""
    try:
        memo = _EXPANSIONS.setdefault(tokenizer, {})
    except TypeError:  # a tokenizer that cannot be weakly referenced is tokenised each time
        return word_token_ids(tokenizer, word, rule)
    if (word, rule) not in memo:
        memo[word, rule] = word_token_ids(tokenizer, word, rule)
    return memo[word, rule]


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
