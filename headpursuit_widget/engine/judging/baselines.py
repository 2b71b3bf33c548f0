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
        pool = _pool(heads, layer, count, n_heads)
        chosen += [(layer, int(h)) for h in rng.choice(pool, size=count, replace=False)]
    return chosen


def layer_matched_sets(heads, n_heads: int, n_sets: int, *, seed: int = 0) -> list[list[tuple[int, int]]]:
    """n_sets draws of layer_matched(heads) that share heads as little as the layers allow: each draw takes,
    per layer, the heads drawn least often so far (ties broken at random), so that one head of a layer
    does not stand in for most draws (a random median of 5 draws from 8 heads was seen to hold one answer
    head 3 times)."""
    rng = np.random.default_rng(seed)
    counts = sorted(Counter(layer for layer, _ in heads).items())
    used = {layer: dict.fromkeys(range(n_heads), 0) for layer, _ in counts}
    sets = []
    for _ in range(n_sets):
        chosen = []
        for layer, count in counts:
            pool = _pool(heads, layer, count, n_heads)
            ties = dict(zip(pool, rng.permutation(len(pool))))
            picked = sorted(pool, key=lambda h: (used[layer][h], ties[h]))[:count]
            for h in picked:
                used[layer][h] += 1
            chosen += [(layer, int(h)) for h in sorted(picked)]
        sets.append(chosen)
    return sets


def _pool(heads, layer: int, count: int, n_heads: int) -> list[int]:
    """The layer's heads to draw `count` from: those not in `heads`, or all of them when too few are left."""
    taken = {h for l, h in heads if l == layer}
    others = [h for h in range(n_heads) if h not in taken]
    return others if len(others) >= count else list(range(n_heads))
