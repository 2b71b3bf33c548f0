"""Baselines and nulls: random-word dictionaries, the Logit Lens score, layer-matched random heads."""

from __future__ import annotations

import re
import weakref
from collections import Counter

import numpy as np
import torch

from .errors import HeadPursuitError

_WORDLIKE = re.compile(r"^ [A-Za-z]{3,}$")
_POOLS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def word_pool(tokenizer) -> np.ndarray:
    """Ids of tokens that are a whole word: a leading space and 3+ ASCII letters (cached per tokenizer)."""
    try:
        return _POOLS[tokenizer]
    except (KeyError, TypeError):
        pass
    vocab = tokenizer.get_vocab()
    ids = sorted(vocab.values())
    strings = tokenizer.batch_decode([[i] for i in ids])
    pool = np.array([i for i, s in zip(ids, strings) if _WORDLIKE.match(s)], dtype=np.int64)
    try:
        _POOLS[tokenizer] = pool
    except TypeError:
        pass
    return pool


def random_dictionaries(tokenizer, size: int, n_draws: int, exclude, seed: int) -> list[np.ndarray]:
    """n_draws arrays of `size` distinct word-like token ids, none of them in `exclude`."""
    pool = word_pool(tokenizer)
    pool = pool[~np.isin(pool, np.asarray(list(exclude), dtype=np.int64))]
    if len(pool) < size:
        raise HeadPursuitError(f"the vocabulary has only {len(pool)} word-like tokens; cannot draw random "
                               f"dictionaries of {size}")
    rng = np.random.default_rng(seed)
    return [rng.choice(pool, size=size, replace=False) for _ in range(n_draws)]


def logit_lens_scores(acts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the mean concept-token logit of each head's write.

    acts (L, H, n, d), rows (m, d) -> (L, H) float32.
    """
    return torch.einsum("lhd,md->lhm", acts.float().mean(2), rows.float().to(acts.device)).mean(-1)


def random_heads(ranking, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """n heads drawn at random, matched to the layer histogram of ranking.top(n); the top heads themselves
    are avoided where the layer has enough others."""
    top = ranking.top(n)
    rng = np.random.default_rng(seed)
    chosen = []
    for layer, count in sorted(Counter(layer for layer, _ in top).items()):
        taken = {h for l, h in top if l == layer}
        others = [h for h in range(ranking.n_heads) if h not in taken]
        pool = others if len(others) >= count else list(range(ranking.n_heads))
        chosen += [(layer, int(h)) for h in rng.choice(pool, size=count, replace=False)]
    return chosen
