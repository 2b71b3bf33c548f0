"""The Logit Lens: each head's mean write read through the unembedding."""

from __future__ import annotations

import torch


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
