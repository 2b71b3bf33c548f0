"""Simultaneous Orthogonal Matching Pursuit (SOMP), batched over heads and dictionaries, in float64.

Selection follows METHOD.md section 3: at each step pick the atom with the largest l1 norm (over
samples) of its correlation with the residual, then refit all coefficients by least squares.
Instead of recomputing R @ D.T each step we keep an orthonormal basis q_1..q_s of the selected
atoms, stored as coefficients over those atoms (q = A @ D[S]), and update the correlations with a
rank-one step: C <- C - (q D^T)(R q)^T, where q D^T comes from the Gram matrix G = D D^T.
One step costs O(B * n * m) instead of O(B * n * d * m). An atom that lies in the span of those
already chosen (data rank exhausted, duplicate rows) adds nothing and keeps the fit exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import HeadPursuitError

CHUNK_BYTES = 256 << 20  # working set of one chunk of signal sets (the correlation tensor)


@dataclass
class SompResult:
    """atoms (..., k) long: dictionary rows in selection order. coef (..., n, k) float64: least-squares
    coefficients of the (centred) samples on those atoms. evr (..., k) float64: explained variance
    ratio after 1..k atoms. Leading dims: (B,) for batched H, (G, B) for a stack of G dictionaries."""

    atoms: torch.Tensor
    coef: torch.Tensor
    evr: torch.Tensor


def somp(H: torch.Tensor, D: torch.Tensor, k: int, center: bool = True, rel_tol: float = 1e-10) -> SompResult:
    """Run SOMP for signal sets H (n, d) or (B, n, d) against a dictionary D (m, d) or a stack of
    G dictionaries of equal size (G, m, d) - each set against each dictionary.

    With n = 1 and center=False this is ordinary OMP.
    """
    if not isinstance(k, int) or k < 1:
        raise HeadPursuitError(f"k must be a positive int, got {k!r}")
    if H.dim() not in (2, 3) or D.dim() not in (2, 3) or H.shape[-1] != D.shape[-1]:
        raise HeadPursuitError(f"somp needs H (n, d) or (B, n, d) and D (m, d) or (G, m, d) with the same d; "
                               f"got {tuple(H.shape)} and {tuple(D.shape)}")
    m = D.shape[-2]
    if k > m:
        raise HeadPursuitError(f"k={k} is larger than the dictionary ({m} atoms)")
    Hb = (H[None] if H.dim() == 2 else H).to(torch.float64)
    Db = (D[None] if D.dim() == 2 else D).to(device=Hb.device, dtype=torch.float64)
    if not (torch.isfinite(Hb).all() and torch.isfinite(Db).all()):
        raise HeadPursuitError("somp input contains NaN or inf")
    Hc = Hb - Hb.mean(1, keepdim=True) if center else Hb
    B, n, _ = Hc.shape
    chunk = max(1, CHUNK_BYTES // (8 * n * m))
    parts = [[_somp_chunk(Hc[i:i + chunk], d, k, rel_tol) for i in range(0, B, chunk)] for d in Db]
    atoms, coef, evr = (torch.stack([torch.cat([p[f] for p in group]) for group in parts]) for f in range(3))
    if D.dim() == 2:
        atoms, coef, evr = atoms[0], coef[0], evr[0]
    if H.dim() == 2:
        atoms, coef, evr = atoms[..., 0, :], coef[..., 0, :, :], evr[..., 0, :]
    return SompResult(atoms, coef, evr)


def _somp_chunk(Hc: torch.Tensor, D: torch.Tensor, k: int, rel_tol: float):
    """Hc (B, n, d) centred float64, D (m, d) float64 -> atoms (B, k), coef (B, n, k), evr (B, k)."""
    B, n, _ = Hc.shape
    m = D.shape[0]
    G = D @ D.T  # (m, m)
    P = D @ Hc.transpose(1, 2)  # (B, m, n): every atom against every sample (n contiguous for the l1 sums)
    C = P.clone()  # the same for the residual
    energy = Hc.pow(2).sum((1, 2))  # (B,)
    resid = energy.clone()
    A = Hc.new_zeros(B, k, k)  # row s: coefficients of q_s over the selected atoms
    QD = Hc.new_zeros(B, k, m)  # q_s . d_j for every atom j
    atoms = torch.zeros(B, k, dtype=torch.long, device=Hc.device)
    taken = torch.zeros(B, m, dtype=torch.bool, device=Hc.device)
    evr = Hc.new_zeros(B, k)
    rows = torch.arange(B, device=Hc.device)
    for s in range(k):
        score = torch.linalg.vector_norm(C, ord=1, dim=2).masked_fill_(taken, -1.0)
        j = score.argmax(1)  # (B,)
        atoms[:, s] = j
        taken[rows, j] = True
        proj = QD[:, :s].gather(2, j[:, None, None].expand(B, s, 1))[:, :, 0]  # (B, s): d_j on q_1..q_s
        gj = G.index_select(0, j)  # (B, m)
        gjj = gj.gather(1, j[:, None])[:, 0]
        norm2 = gjj - proj.pow(2).sum(1)
        inv = torch.where(norm2 > rel_tol * gjj.clamp_min(1e-300), norm2.clamp_min(1e-300).rsqrt(), 0.0)
        # q_s = (d_j - sum_i proj_i q_i) / |.|, kept both as atom coefficients (A) and as q_s . D (QD)
        A[:, s, s] = inv
        QD[:, s] = gj
        if s:
            A[:, s, :s] = -(proj[:, :, None] * A[:, :s, :s]).sum(1) * inv[:, None]
            QD[:, s] -= (proj[:, :, None] * QD[:, :s]).sum(1)
        QD[:, s] *= inv[:, None]
        rq = C.gather(1, j[:, None, None].expand(B, 1, n))[:, 0] * inv[:, None]  # (B, n): residual . q_s (the residual is orthogonal to q_1..q_s-1)
        C.baddbmm_(QD[:, s, :, None], rq[:, None, :], alpha=-1.0)
        resid = resid - rq.pow(2).sum(1)
        evr[:, s] = torch.where(energy > 0, 1 - resid / energy.clamp_min(1e-300), 0.0)
    coef = P.transpose(1, 2).gather(2, atoms[:, None, :].expand(B, n, k)) @ A.transpose(1, 2) @ A
    return atoms, coef, evr
