"""Simultaneous Orthogonal Matching Pursuit (SOMP), batched over heads and dictionaries, in float64.

Selection follows docs/method.md, "SOMP": at each step pick the atom with the largest l1 norm (over
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


def somp(H: torch.Tensor, D: torch.Tensor, k: int, *, center: bool = True, rel_tol: float = 1e-10) -> SompResult:
    """Run SOMP for signal sets H (n, d) or (B, n, d) against a dictionary D (m, d) or a stack of
    G dictionaries of equal size (G, m, d) - each set against each dictionary.

    With n = 1 and center=False this is ordinary OMP.
    """
    if not isinstance(k, int) or k < 1:
        raise HeadPursuitError(f"k must be a positive int, got {k!r}")
    if H.dim() not in (2, 3) or D.dim() not in (2, 3) or H.shape[-1] != D.shape[-1]:
        raise HeadPursuitError(
            f"somp needs H (n, d) or (B, n, d) and D (m, d) or (G, m, d) with the same d; "
            f"got {tuple(H.shape)} and {tuple(D.shape)}"
        )
    m = D.shape[-2]
    if k > m:
        raise HeadPursuitError(f"k={k} is larger than the dictionary ({m} atoms)")
    Hb = (H[None] if H.dim() == 2 else H).to(torch.float64)
    Db = (D[None] if D.dim() == 2 else D).to(device=Hb.device, dtype=torch.float64)
    if not (torch.isfinite(Hb).all() and torch.isfinite(Db).all()):
        raise HeadPursuitError("somp input contains NaN or inf")
    Hc = Hb - Hb.mean(1, keepdim=True) if center else Hb
    B, n, _ = Hc.shape
    n_dict = Db.shape[0]
    Gram = Db @ Db.transpose(1, 2)  # (G, m, m)
    # every (dictionary, signal set) pair is one row of the batch: one loop over atoms for all of them
    P_all = Db.reshape(n_dict * m, -1) @ Hc.reshape(B * n, -1).T  # one GEMM: every atom . every sample
    P_all = P_all.reshape(n_dict, m, B, n).permute(0, 2, 1, 3).reshape(n_dict * B, m, n)  # (G*B, m, n)
    energy_all = Hc.pow(2).sum((1, 2)).repeat(n_dict)  # (G*B,)
    group = torch.arange(n_dict, device=Hb.device).repeat_interleave(B)
    chunk = max(1, CHUNK_BYTES // (8 * n * m))
    parts = [
        _somp_rows(P_all[i : i + chunk], Gram[group[i : i + chunk]], energy_all[i : i + chunk], k, rel_tol)
        for i in range(0, n_dict * B, chunk)
    ]
    atoms, coef, evr = (torch.cat([p[f] for p in parts]).reshape(n_dict, B, *parts[0][f].shape[1:]) for f in range(3))
    if D.dim() == 2:
        atoms, coef, evr = atoms[0], coef[0], evr[0]
    if H.dim() == 2:
        atoms, coef, evr = atoms[..., 0, :], coef[..., 0, :, :], evr[..., 0, :]
    return SompResult(atoms, coef, evr)


def _somp_rows(P, G, energy, k: int, rel_tol: float):
    """SOMP on rows of the batch, each one (dictionary, signal set) pair.

    P (R, m, n): atoms . centred samples (n contiguous for the l1 sums); G (R, m, m): each row's Gram
    matrix; energy (R,): squared norm of the centred samples. -> atoms (R, k), coef (R, n, k), evr (R, k).
    """
    R, m, n = P.shape
    C = P.clone()  # atoms . residual
    scratch = torch.empty_like(C)
    resid = energy.clone()
    QD = P.new_zeros(R, k, m)  # q_s . d_j for every atom j
    atoms = torch.zeros(R, k, dtype=torch.long, device=P.device)
    taken = torch.zeros(R, m, dtype=torch.bool, device=P.device)
    evr = P.new_zeros(R, k)
    Y = P.new_zeros(R, k, n)  # centred samples . q_s: the data's coordinates in the orthonormal basis
    for s in range(k):
        score = torch.abs(C, out=scratch).sum(2).masked_fill_(taken, -1.0)  # l1 over samples
        j = score.argmax(1)  # (R,)
        atoms[:, s] = j
        taken.scatter_(1, j[:, None], True)
        proj = QD[:, :s].gather(2, j[:, None, None].expand(R, s, 1))[:, :, 0]  # (R, s): d_j on q_1..q_s
        gj = G.gather(1, j[:, None, None].expand(R, 1, m))[:, 0]  # (R, m): d_j . every atom
        gjj = gj.gather(1, j[:, None])[:, 0]
        norm2 = gjj - proj.pow(2).sum(1)
        inv = torch.where(norm2 > rel_tol * gjj.clamp_min(1e-300), norm2.clamp_min(1e-300).rsqrt(), 0.0)
        # q_s = (d_j - sum_i proj_i q_i) / |.|, kept as its products with every atom
        QD[:, s] = gj
        if s:
            QD[:, s] -= torch.einsum("rs,rsm->rm", proj, QD[:, :s])
        QD[:, s] *= inv[:, None]
        rq = C.gather(1, j[:, None, None].expand(R, 1, n))[:, 0] * inv[:, None]  # (R, n): residual . q_s
        Y[:, s] = rq
        C.baddbmm_(QD[:, s, :, None], rq[:, None, :], alpha=-1.0)
        resid = resid - rq.pow(2).sum(1)
        evr[:, s] = torch.where(energy > 0, 1 - resid / energy.clamp_min(1e-300), 0.0)
    # least-squares coefficients on the chosen atoms: D_S = M^T Q with M[i, t] = q_i . d_(S_t) upper
    # triangular, and the fit Y^T Q = X D_S, so M X^T = Y. An atom that added nothing (q = 0) gets
    # a unit diagonal and coefficient 0.
    M = QD.gather(2, atoms[:, None, :].expand(R, k, k))
    diag = M.diagonal(dim1=1, dim2=2)
    diag.copy_(torch.where(diag == 0, 1.0, diag))
    coef = torch.linalg.solve_triangular(M.triu(), Y, upper=True).transpose(1, 2)  # (R, n, k)
    return atoms, coef, evr
