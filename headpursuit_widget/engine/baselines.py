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


def logit_lens_top(writes: torch.Tensor, unembedding: torch.Tensor, n: int, *, chunk_bytes: int = 4 << 20):
    """The n largest full-vocabulary logits of each write: writes (B, d) @ unembedding (V, d).T, taken
    over slices of the vocabulary so that the (B, slice) logits stay within `chunk_bytes` (bytes). Slicing the
    vocabulary rather than the writes also keeps the BLAS from packing the whole unembedding at once (tens of
    MB on SmolLM2, kept by the allocator).

    -> (values (B, n) float32, indices (B, n) long), as torch.topk.
    """
    V = unembedding.shape[0]
    n = min(n, V)
    writes = writes.to(unembedding.device, unembedding.dtype)
    step = max(n, chunk_bytes // (max(1, writes.shape[0]) * max(4, unembedding.element_size())))
    values = writes.new_empty(writes.shape[0], 0, dtype=torch.float32)
    indices = torch.empty(writes.shape[0], 0, dtype=torch.long, device=writes.device)
    with torch.no_grad():
        for start in range(0, V, step):
            part = (writes @ unembedding.detach()[start : start + step].T).float().topk(min(n, V - start), dim=1)
            values = torch.cat([values, part.values], 1)
            indices = torch.cat([indices, part.indices + start], 1)
            values, order = values.topk(n, dim=1)
            indices = indices.gather(1, order)
    return values, indices


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
