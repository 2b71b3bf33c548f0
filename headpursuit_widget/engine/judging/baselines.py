"""Random heads matched to a set's layer histogram: the baseline a selection is measured against."""

from __future__ import annotations

from collections import Counter

import numpy as np


def random_heads(ranking, n: int, *, seed: int = 0) -> list[tuple[int, int]]:
    """n heads drawn at random, matched to the layer histogram of ranking.top(n); the top heads themselves
    are avoided where the layer has enough others."""
    return layer_matched(ranking.top(n), ranking.n_heads, seed=seed)


def layer_matched(heads, n_heads: int, *, seed: int = 0) -> list[tuple[int, int]]:
    """As many heads as `heads`, drawn at random with the same layer histogram (layers in increasing
    order), avoiding `heads` themselves where the layer has enough others."""
    rng = np.random.default_rng(seed)
    chosen = []
    for layer, count in sorted(Counter(layer for layer, _ in heads).items()):
        taken = {h for l, h in heads if l == layer}
        others = [h for h in range(n_heads) if h not in taken]
        pool = others if len(others) >= count else list(range(n_heads))
        chosen += [(layer, int(h)) for h in rng.choice(pool, size=count, replace=False)]
    return chosen
