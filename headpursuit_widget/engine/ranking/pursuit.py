"""Simultaneous Orthogonal Matching Pursuit (SOMP), batched over heads and dictionaries, in float64.

Selection follows docs/method.md, "SOMP": at each step pick the atom with the largest l1 norm (over
samples) of its correlation with the residual, then refit all coefficients by least squares.
Instead of recomputing R @ D.T each step we keep an orthonormal basis q_1..q_s of the selected
atoms, stored as coefficients over those atoms (q = A @ D[S]), and update the correlations with a
rank-one step: C <- C - (q D^T)(R q)^T, where q D^T comes from the chosen atom's row of the Gram
matrix, d_j D^T (computed when needed: the m x m Gram matrix is never stored).
One step costs O(B * (n + d) * m) instead of O(B * n * d * m). An atom that lies in the span of those
already chosen (data rank exhausted, duplicate rows) adds nothing and keeps the fit exact.

The steps read the data only through P = D Hc^T (every atom . every centred sample), its energy
||Hc||^2 and rows of the Gram matrix G = D D^T, so `somp_gram` runs the same pursuit from those
statistics alone (residual correlations XD^T - (XD_S^T) G_SS^-1 G_S,: and residual energy ||X||^2 minus
what the chosen atoms explain, kept in the orthonormal basis above): what a remote model returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import HeadPursuitError, check_int
from ..memory import check_fits

CHUNK_BYTES = 256 << 20  # default working set of one chunk of signal sets
REL_TOL = 1e-10  # an atom whose part outside the chosen atoms' span is below this (relative) adds nothing


@dataclass
class SompResult:
    """atoms (..., k) long: dictionary rows in selection order. coef (..., n, k) float64: least-squares
    coefficients of the (centred) samples on those atoms, or None when not asked for. evr (..., k)
    float64: explained variance ratio after 1..k atoms. Leading dims: (B,) for batched H, (G, B) for a
    stack of G dictionaries."""

    atoms: torch.Tensor
    coef: torch.Tensor | None
    evr: torch.Tensor


def somp(
    H: torch.Tensor,
    D: torch.Tensor,
    k: int,
    *,
    center: bool = True,
    rel_tol: float = REL_TOL,
    with_coef: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
) -> SompResult:
    """Run SOMP for signal sets H (n, d) or (B, n, d) against a dictionary D (m, d) or a stack of
    G dictionaries of equal size (G, m, d) - each set against each dictionary.

    With n = 1 and center=False this is ordinary OMP. H is copied to float64 one chunk of signal sets
    at a time, so memory stays near `chunk_bytes` (bytes) plus one float64 dictionary and the results;
    with_coef=False skips the (..., n, k) coefficients. A problem too large for the memory available
    is refused before anything is allocated.
    """
    k = check_int(k, "k (atoms to select)")
    if H.dim() not in (2, 3) or D.dim() not in (2, 3) or H.shape[-1] != D.shape[-1]:
        raise HeadPursuitError(
            f"somp needs H (n, d) or (B, n, d) and D (m, d) or (G, m, d) with the same d; "
            f"got {tuple(H.shape)} and {tuple(D.shape)}"
        )
    m = D.shape[-2]
    if k > m:
        raise HeadPursuitError(f"k={k} is larger than the dictionary ({m} atoms)")
    Hb = H[None] if H.dim() == 2 else H
    Db = D[None] if D.dim() == 2 else D
    B, n, d = Hb.shape
    n_dict = Db.shape[0]
    rows, need = _plan(n_dict, B, n, d, m, k, with_coef, chunk_bytes)
    check_fits(
        need,
        f"SOMP of {B} signal sets x {n} samples against {n_dict} dictionaries of {m} atoms",
        "use fewer words or prompts, or a smaller k",
        Hb.device,
    )
    atoms = torch.zeros(n_dict, B, k, dtype=torch.long, device=Hb.device)
    evr = torch.zeros(n_dict, B, k, dtype=torch.float64, device=Hb.device)
    coef = torch.zeros(n_dict, B, n, k, dtype=torch.float64, device=Hb.device) if with_coef else None
    for g in range(n_dict):
        Dg = Db[g].to(device=Hb.device, dtype=torch.float64)
        if not torch.isfinite(Dg).all():
            raise HeadPursuitError("somp input contains NaN or inf")
        for start in range(0, B, rows):
            Hc = Hb[start : start + rows].to(torch.float64, copy=True)
            if not torch.isfinite(Hc).all():
                raise HeadPursuitError("somp input contains NaN or inf")
            if center:
                Hc -= Hc.mean(1, keepdim=True)
            P = Dg @ Hc.transpose(1, 2)  # (R, m, n): every atom . every sample
            part = _somp_rows(P, lambda j, D=Dg: D[j] @ D.T, Hc.pow(2).sum((1, 2)), k, rel_tol, with_coef)
            atoms[g, start : start + rows], evr[g, start : start + rows] = part[0], part[2]
            if coef is not None:
                coef[g, start : start + rows] = part[1]
    if D.dim() == 2:
        atoms, evr, coef = atoms[0], evr[0], None if coef is None else coef[0]
    if H.dim() == 2:
        atoms, evr = atoms[..., 0, :], evr[..., 0, :]
        coef = None if coef is None else coef[..., 0, :, :]
    return SompResult(atoms, coef, evr)


def somp_evr_many(
    H: torch.Tensor,
    dictionaries,
    rows_of,
    k: int,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """(G, B) float64: the EVR after k atoms of SOMP on signal sets H (B, n, d), centred, against each of
    G dictionaries, given as sequences of m row ids (dictionaries may share ids); rows_of(ids) returns
    those rows (len(ids), d). The same numbers as ``somp(H, rows_of(ids), k).evr[:, -1]`` for each.

    Faster than one somp per dictionary: the dictionaries go in groups, and each chunk of signal sets
    is copied to `dtype`, centred and projected onto the group's distinct rows in one product; SOMP
    then runs from those projections for every (dictionary, signal set) of the chunk at once, reading
    each dictionary's Gram matrix (m x m, computed once per group when m <= d / 4; larger dictionaries
    compute the Gram rows they need). Groups and chunks are sized so that the working set stays near
    `chunk_bytes`. dtype: the precision of the projections and of SOMP (float32 halves the time and
    moves an EVR by at most ~4e-7 on SmolLM2; the tolerance for atoms that add nothing grows to 100 x its epsilon).
    """
    k = check_int(k, "k (atoms to select)")
    ids = torch.stack([torch.as_tensor(list(map(int, d)), dtype=torch.long) for d in dictionaries])  # (G, m)
    if H.dim() != 3 or ids.dim() != 2:
        raise HeadPursuitError(
            f"somp_evr_many needs H (B, n, d) and dictionaries of equal length; got {tuple(H.shape)} and "
            f"{tuple(ids.shape)}"
        )
    (B, n, d), (G, m) = H.shape, ids.shape
    if k > m:
        raise HeadPursuitError(f"k={k} is larger than the dictionary ({m} atoms)")
    if dtype not in (torch.float32, torch.float64):
        raise HeadPursuitError(f"somp_evr_many computes in torch.float32 or torch.float64, not {dtype}")
    w = torch.finfo(dtype).bits // 8  # bytes per number
    rel_tol = max(REL_TOL, 100 * torch.finfo(dtype).eps)
    heads = min(B, 32)  # signal sets per chunk to aim for; the group of dictionaries takes the rest
    per_head = w * n * d + w * (k + 1) * (m + n)
    small = 4 * m <= d  # Gram matrices kept whole
    # per dictionary: its rows (float32 as given, in dtype and its own copy), projections (shared and its
    # own) and its Gram matrix when small
    per_dict = (4 + 2 * w) * m * d + 2 * w * heads * m * n + w * m * m * small
    group = int(max(1, min(G, (chunk_bytes - heads * per_head) // per_dict)))
    check_fits(
        8 * G * B + group * per_dict + heads * per_head,
        f"SOMP of {B} signal sets x {n} samples against {G} dictionaries of {m} atoms",
        "use fewer words or prompts, or a smaller k",
        H.device,
    )
    out = torch.empty(G, B, dtype=torch.float64, device=H.device)
    for g0 in range(0, G, group):
        row_ids, local = torch.unique(ids[g0 : g0 + group], return_inverse=True)  # local (g, m) into row_ids
        D = rows_of(row_ids.tolist()).to(device=H.device, dtype=dtype)
        if D.shape != (len(row_ids), d) or not torch.isfinite(D).all():
            raise HeadPursuitError(f"dictionary rows must be finite, ({len(row_ids)}, {d}); got {tuple(D.shape)}")
        g = len(local)
        Dl = D[None] if g == 1 else D[local]  # (g, m, d); one dictionary keeps its rows in id order (same EVR)
        grams = torch.bmm(Dl, Dl.transpose(1, 2)) if small else None
        fixed = g * ((4 + 2 * w) * m * d + w * m * m * small)
        room = max(chunk_bytes - fixed, chunk_bytes // 2)  # a group of one large dictionary can exceed the budget
        step = int(max(1, min(B, room // (per_head + w * n * (len(row_ids) + 2 * g * m)))))
        for start in range(0, B, step):
            Hc = H[start : start + step].to(dtype, copy=True)
            if not torch.isfinite(Hc).all():
                raise HeadPursuitError("somp input contains NaN or inf")
            Hc -= Hc.mean(1, keepdim=True)
            R = len(Hc)
            P = torch.einsum("md,bnd->bmn", D, Hc)  # (R, rows, n): every row . every sample
            if g > 1:
                P = P[:, local].transpose(0, 1).reshape(g * R, m, n)  # row i * R + r: dictionary i, signal set r
            energy = Hc.pow(2).sum((1, 2)).repeat(g)
            evr = _somp_rows(P, _block_gram_rows(Dl, R, grams), energy, k, rel_tol, False)[2]
            out[g0 : g0 + g, start : start + R] = evr[:, -1].reshape(g, R)
    return out


def _block_gram_rows(Dl: torch.Tensor, R: int, grams: torch.Tensor | None = None):
    """gram_rows for _somp_rows on g dictionaries Dl (g, m, d) stacked as g blocks of R rows:
    j (g*R,) -> (g*R, m), row i*R + r being dictionary i's Gram row j[i*R + r]. grams (g, m, m): the
    dictionaries' Gram matrices, read instead of computing each row from Dl."""
    g, m, d = Dl.shape
    which = torch.arange(g, device=Dl.device).repeat_interleave(R)
    if grams is not None:
        return lambda j: grams[which, j]
    return lambda j: torch.bmm(Dl[which, j].view(g, R, d), Dl.transpose(1, 2)).view(g * R, m)


def _plan(n_dict: int, B: int, n: int, d: int, m: int, k: int, with_coef: bool, chunk_bytes: int) -> tuple[int, int]:
    """(signal sets per chunk, estimated peak bytes). Each chunk row holds its float64 samples and their
    squares (2 x n x d), the atom correlations and a scratch copy (2 x m x n), q.d (k x m), Y (k x n), the
    k x k refit, the chosen atom and its Gram row (d + m) and two bool masks; one float64 dictionary
    (m x d) is shared; the results are allocated whole."""
    per_row = 8 * (2 * n * d + 2 * m * n + k * m + k * n + k * k + 3 * m + d) + n * d + m
    shared = 8 * m * d
    rows = int(max(1, min(B, (chunk_bytes - shared) // per_row)))
    results = n_dict * B * k * 16 + (n_dict * B * n * k * 8 if with_coef else 0)
    return rows, shared + rows * per_row + results


def somp_gram(
    P: torch.Tensor, energy: torch.Tensor, gram: torch.Tensor, k: int, *, rel_tol: float = REL_TOL
) -> SompResult:
    """SOMP from statistics alone, as `somp(H, D, k, with_coef=False)` computes it for B signal sets.

    P (B, m, n): every atom's product with every centred sample (D @ Hc^T); energy (B,): squared
    Frobenius norm of each centred set; gram (m, m): the dictionary's Gram matrix D @ D^T. Nothing of
    size d is needed: the residual correlations and energy follow from these (see the module doc).
    Returns atoms (B, k), evr (B, k), no coefficients; computed in float64.
    """
    k = check_int(k, "k (atoms to select)")
    if P.dim() != 3 or energy.shape != P.shape[:1] or gram.shape != (P.shape[1], P.shape[1]):
        raise HeadPursuitError(
            f"somp_gram needs P (B, m, n), energy (B,) and gram (m, m); got {tuple(P.shape)}, "
            f"{tuple(energy.shape)} and {tuple(gram.shape)}"
        )
    if k > P.shape[1]:
        raise HeadPursuitError(f"k={k} is larger than the dictionary ({P.shape[1]} atoms)")
    G = gram.to(torch.float64)
    atoms, _, evr = _somp_rows(
        P.to(torch.float64, copy=True), lambda j: G[j], energy.to(torch.float64), k, rel_tol, False
    )
    return SompResult(atoms, None, evr)


def _somp_rows(P, gram_rows, energy, k: int, rel_tol: float, with_coef: bool = True):
    """SOMP on rows of the batch, each one signal set against the same dictionary.

    P (R, m, n): atoms . centred samples, float64, updated in place; gram_rows(j) -> (R, m): the rows j
    (R,) of the dictionary's Gram matrix; energy (R,): squared norm of the centred samples.
    -> atoms (R, k), coef (R, n, k) or None, evr (R, k).
    """
    R, m, n = P.shape
    tiny = torch.finfo(P.dtype).tiny
    C = P  # atoms . residual, updated in place
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
        gj = gram_rows(j)  # (R, m): d_j . every atom, one row of the Gram matrix
        gjj = gj.gather(1, j[:, None])[:, 0]
        norm2 = gjj - proj.pow(2).sum(1)
        inv = torch.where(norm2 > rel_tol * gjj.clamp_min(tiny), norm2.clamp_min(tiny).rsqrt(), 0.0)
        # q_s = (d_j - sum_i proj_i q_i) / |.|, kept as its products with every atom
        QD[:, s] = gj
        if s:
            QD[:, s] -= torch.einsum("rs,rsm->rm", proj, QD[:, :s])
        QD[:, s] *= inv[:, None]
        rq = C.gather(1, j[:, None, None].expand(R, 1, n))[:, 0] * inv[:, None]  # (R, n): residual . q_s
        Y[:, s] = rq
        C.baddbmm_(QD[:, s, :, None], rq[:, None, :], alpha=-1.0)
        resid = resid - rq.pow(2).sum(1)
        evr[:, s] = torch.where(energy > 0, 1 - resid / energy.clamp_min(tiny), 0.0)
    if not with_coef:
        return atoms, None, evr
    # least-squares coefficients on the chosen atoms: D_S = M^T Q with M[i, t] = q_i . d_(S_t) upper
    # triangular, and the fit Y^T Q = X D_S, so M X^T = Y. An atom that added nothing (q = 0) gets
    # a unit diagonal and coefficient 0.
    M = QD.gather(2, atoms[:, None, :].expand(R, k, k))
    diag = M.diagonal(dim1=1, dim2=2)
    diag.copy_(torch.where(diag == 0, 1.0, diag))
    coef = torch.linalg.solve_triangular(M.triu(), Y, upper=True).transpose(1, 2)  # (R, n, k)
    return atoms, coef, evr
