"""Simultaneous Orthogonal Matching Pursuit (SOMP), batched over heads, in float64.

Selection follows METHOD.md section 3: at each step pick the atom with the largest l1 norm (over
samples) of its correlation with the residual, then refit all coefficients by least squares.
Instead of recomputing R @ D.T each step we keep an orthonormal basis q_1..q_s of the selected
atoms, stored as coefficients over those atoms (q = A @ D[S]), and update the correlations with a
rank-one step: C <- C - (R q)(q D^T), where q D^T = A @ G[S] comes from the Gram matrix
G = D D^T. One step costs O(B * n * m) instead of O(B * n * d * m). An atom that lies in the span
of those already chosen (data rank exhausted, duplicate rows) adds nothing and keeps the fit exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import HeadPursuitError


@dataclass
class SompResult:
    """atoms (..., k) long: dictionary rows in selection order. coef (..., n, k) float64: least-squares
    coefficients of the (centred) samples on those atoms. evr (..., k) float64: explained variance
    ratio after 1..k atoms."""

    atoms: torch.Tensor
    coef: torch.Tensor
    evr: torch.Tensor


def somp(H: torch.Tensor, D: torch.Tensor, k: int, center: bool = True, rel_tol: float = 1e-10) -> SompResult:
    """Run SOMP for one signal set H (n, d) or a batch (B, n, d) against dictionary D (m, d).

    With n = 1 and center=False this is ordinary OMP.
    """
    if not isinstance(k, int) or k < 1:
        raise HeadPursuitError(f"k must be a positive int, got {k!r}")
    if H.dim() not in (2, 3) or D.dim() != 2 or H.shape[-1] != D.shape[-1]:
        raise HeadPursuitError(f"somp needs H (n, d) or (B, n, d) and D (m, d) with the same d; got "
                               f"{tuple(H.shape)} and {tuple(D.shape)}")
    m = D.shape[0]
    if k > m:
        raise HeadPursuitError(f"k={k} is larger than the dictionary ({m} atoms)")
    single = H.dim() == 2
    H = (H[None] if single else H).to(torch.float64)
    D = D.to(device=H.device, dtype=torch.float64)
    if not (torch.isfinite(H).all() and torch.isfinite(D).all()):
        raise HeadPursuitError("somp input contains NaN or inf")
    Hc = H - H.mean(1, keepdim=True) if center else H
    B, n, _ = Hc.shape
    G = D @ D.T  # (m, m)
    P = Hc @ D.T  # (B, n, m): correlations of the data with every atom
    C = P.clone()  # correlations of the residual with every atom
    energy = Hc.pow(2).sum((1, 2))  # (B,)
    resid = energy.clone()
    A = H.new_zeros(B, k, k)  # row s: coefficients of q_s over the selected atoms
    QD = H.new_zeros(B, k, m)  # q_s . d_j for every atom j
    atoms = torch.zeros(B, k, dtype=torch.long, device=H.device)
    taken = torch.zeros(B, m, dtype=torch.bool, device=H.device)
    evr = H.new_zeros(B, k)
    rows = torch.arange(B, device=H.device)
    for s in range(k):
        score = torch.linalg.vector_norm(C, ord=1, dim=1).masked_fill_(taken, -1.0)
        j = score.argmax(1)  # (B,)
        atoms[:, s] = j
        taken[rows, j] = True
        proj = QD[:, :s].gather(2, j[:, None, None].expand(B, s, 1))[:, :, 0]  # (B, s): d_j on q_1..q_s
        gjj = G[j, j]
        norm2 = gjj - proj.pow(2).sum(1)
        inv = torch.where(norm2 > rel_tol * gjj.clamp_min(1e-300), norm2.clamp_min(1e-300).rsqrt(), 0.0)
        # q_s = (d_j - sum_i proj_i q_i) / |.|, kept both as atom coefficients (A) and as q_s . D (QD)
        A[:, s, s] = inv
        QD[:, s] = G[j]
        if s:
            A[:, s, :s] = -(proj[:, None, :] @ A[:, :s, :s])[:, 0] * inv[:, None]
            QD[:, s] -= (proj[:, None, :] @ QD[:, :s])[:, 0]
        QD[:, s] *= inv[:, None]
        rq = C.gather(2, j[:, None, None].expand(B, n, 1))[:, :, 0] * inv[:, None]  # (B, n): residual . q_s (the residual is orthogonal to q_1..q_s-1)
        C.baddbmm_(rq[:, :, None], QD[:, s][:, None, :], alpha=-1.0)
        resid = resid - rq.pow(2).sum(1)
        evr[:, s] = torch.where(energy > 0, 1 - resid / energy.clamp_min(1e-300), 0.0)
    coef = P.gather(2, atoms[:, None, :].expand(B, n, k)) @ A.transpose(1, 2) @ A
    if single:
        return SompResult(atoms[0], coef[0], evr[0])
    return SompResult(atoms, coef, evr)
