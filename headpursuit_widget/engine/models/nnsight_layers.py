"""The per-layer step both nnsight traces share, in a module of its own: NNsightHeadModel registers it
with nnsight (pickled by value), so a remote or simulated trace carries its source to a server that
does not have this package."""

from __future__ import annotations

import torch


def layer_mean_z(proj, norm, eps: float, scale, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean over positions of one layer's z, (batch, n_heads*head_dim) float32, inside a trace.

    proj/norm: the envoys of o_proj and of the post-attention norm (None without one); scale: the
    (n_heads*head_dim,) multiplier of edits in effect, written back into o_proj's input (None: none);
    weight: (batch, seq). With a norm, each position's z is divided by the RMS of the norm's input.
    """
    z = proj.input
    if scale is not None:
        z = z * scale.to(z.device)
        proj.input = z
    z = z.float()
    w = weight.to(z.device)
    if norm is not None:
        x = norm.input.float()
        w = w / torch.sqrt(x.pow(2).mean(-1) + eps)
    return torch.einsum("bt,btk->bk", w, z)
