"""The null's dictionaries: frequency-matched random-word dictionaries a concept is scored against.

The random words are matched to the concept's token
frequency, with the BPE token id as its proxy (merges are learnt in frequency order, so a low id is a
frequent token): the pool of word-like tokens is cut into `N_BINS` bins of equal size by id, and each
null dictionary takes as many words from each bin as the concept has (its "frequency profile").
Words are expanded into variants by the concept's rule, so null dictionaries have the concept's mix
of leading-space, bare and capitalised tokens. See docs/verification.md.
"""

from __future__ import annotations

import re
import weakref

import numpy as np

from ..errors import HeadPursuitError
from . import pool_cache
from .dictionary import Concept, word_token_ids

N_BINS = 16
_WORDLIKE = re.compile(r"^ [A-Za-z]{3,}$")
_WORDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_POOLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_EXPANSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # tokenizer -> {(word, rule): token ids}


def random_words(tokenizer) -> list[str]:
    """Lower-cased words whose " word" form is one token of 3+ ASCII letters (cached per tokenizer)."""
    try:
        return _WORDS[tokenizer]
    except (KeyError, TypeError):
        pass
    vocab = tokenizer.get_vocab()
    strings = tokenizer.batch_decode([[i] for i in sorted(vocab.values())])
    words = sorted({s.strip().lower() for s in strings if _WORDLIKE.match(s)})
    try:
        _WORDS[tokenizer] = words
    except TypeError:
        pass
    return words


def word_pool(tokenizer) -> tuple[list[str], np.ndarray]:
    """(words, ids): the word-like pool of random_words sorted by the id of " word" (cached per tokenizer in
    memory, and on disk: pool_cache.py)."""
    try:
        return _POOLS[tokenizer]
    except (KeyError, TypeError):
        pass
    path = pool_cache.entry_path(tokenizer)
    pool = pool_cache.load(path) if path is not None else None
    if pool is None:
        words = random_words(tokenizer)
        ids = np.array([tokenizer.encode(" " + w, add_special_tokens=False)[0] for w in words], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        pool = ([words[i] for i in order], ids[order])
        if path is not None:
            pool_cache.store(path, *pool)
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


def null_dictionaries(tokenizer, con: Concept, *, n_null: int, seed: int = 0, rule: str = "whole_word") -> list:
    """The n_null frequency-matched random-word dictionaries rank_heads scores a tokenised concept against:
    arrays of len(con.token_ids) token ids."""
    profile = frequency_profile(tokenizer, con)
    return frequency_matched_dictionaries(
        tokenizer, profile, len(con.token_ids), n_draws=n_null, exclude=con.token_ids, seed=seed, rule=rule
    )
