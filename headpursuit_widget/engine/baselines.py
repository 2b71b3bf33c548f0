"""Baselines: the word-like pool null dictionaries draw from, the Logit Lens score, layer-matched random heads."""

from __future__ import annotations

import re
import weakref
from collections import Counter

import numpy as np
import torch

_WORDLIKE = re.compile(r"^ [A-Za-z]{3,}$")
_WORDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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


def logit_lens_scores(acts: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the mean concept-token logit of each head's write.

    acts (L, H, n, d), rows (m, d) -> (L, H) float32.
    """
    return torch.einsum("lhd,md->lhm", acts.float().mean(2), rows.float().to(acts.device)).mean(-1)


def random_heads(ranking, n: int, *, seed: int = 0) -> list[tuple[int, int]]:
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
