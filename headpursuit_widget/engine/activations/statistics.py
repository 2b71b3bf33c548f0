"""SOMP statistics of every head, computed next to the model: what ranking needs, without head writes.

SOMP reads a head's centred samples Xc (n, d) only through P = D Xc^T (every dictionary row . every
sample), the energy |Xc|^2 and the dictionary's Gram matrix D D^T (engine/ranking/pursuit.py, somp_gram); the
Logit-Lens score reads the mean of P over samples, and the lens tokens the mean write's logits.
A model that ranks from statistics (the nnsight backend: HeadModel.head_statistics) returns, per
batch, each head's projections onto the union of every dictionary's rows (concept and null
dictionaries: one pass, the null adds rows), centred on the batch (float32) with the batch mean's
(float64), each sample's |x|^2 and the batch's sum of mean z;
the last batch also returns the mean write's |.|^2 and top tokens, each dictionary's Gram matrix and
the row norms.
Centring happens here: P - mean(P), and |Xc|^2 = sum |x|^2 - n |mean x|^2 (float64 throughout).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..memory import check_fits
from .capture import weighted_batches


@dataclass(frozen=True)
class HeadStatistics:
    """Statistics of n samples' mean writes for every head (rows: layer-major, L*H) against G dictionaries
    of m token ids each, stored once per distinct row (m_u rows in all).

    row_ids (m_u,) long: the unembedding rows, sorted. blocks (G, m) long: each dictionary's positions
    in row_ids. proj (L*H, m_u, n) float64: row . centred write. proj_mean (L*H, m_u) float64: row . mean
    write. energy (L*H,) float64: |centred writes|^2. grams (G, m, m) float64: each dictionary's Gram
    matrix, rows as scored. row_norms (m_u,) float64: the rows' norms before normalisation.
    lens_ids / lens_vals (L, H, n_lens): the mean write's top logits over the vocabulary.
    """

    row_ids: torch.Tensor
    blocks: torch.Tensor
    proj: torch.Tensor
    proj_mean: torch.Tensor
    energy: torch.Tensor
    grams: torch.Tensor
    row_norms: torch.Tensor
    lens_ids: torch.Tensor
    lens_vals: torch.Tensor


def capture_statistics(
    model,
    samples: list,
    dictionaries: list,
    *,
    normalize: bool,
    fold_norm: bool,
    n_lens: int,
    positions: str,
    chat: bool,
    batch_size: int,
    progress: bool,
) -> HeadStatistics:
    """HeadStatistics of `samples` at `positions` for `dictionaries` (G sequences of m token ids each),
    rows made as dictionary.dictionary_rows makes them (normalize, fold_norm)."""
    a = model.adapter
    ids = torch.stack([torch.as_tensor(list(d), dtype=torch.long) for d in dictionaries])  # (G, m)
    row_ids = torch.unique(ids)
    blocks = torch.searchsorted(row_ids, ids)
    L, H, n, m = a.n_layers, a.n_heads, len(samples), len(row_ids)
    check_fits(
        3 * 8 * L * H * n * m,
        f"SOMP statistics of {n} samples ({L} x {H} heads x {m} dictionary rows each)",
        "rank on fewer prompts, or with fewer null dictionaries (n_null)",
    )
    proj = torch.zeros(L * H, m, n, dtype=torch.float64)
    sq = torch.zeros(L * H, n, dtype=torch.float64)
    zsum = torch.zeros(L, H * a.head_dim, dtype=torch.float64)
    last = None
    with torch.inference_mode():
        for rows, inputs, weight in weighted_batches(
            model, samples, positions=positions, chat=chat, batch_size=batch_size, progress=progress
        ):
            totals = (zsum, n, min(n_lens, a.unembedding.shape[0]), blocks) if rows.stop == n else None
            last = model.head_statistics(
                inputs, weight, row_ids, normalize=normalize, fold_norm=fold_norm, totals=totals
            )
            spread = last["proj"].permute(0, 2, 3, 1).reshape(L * H, m, -1).double()
            proj[:, :, rows] = spread + last["shift"].reshape(L * H, m, 1)
            sq[:, rows] = last["sq"].permute(0, 2, 1).reshape(L * H, -1)
            zsum += last["zsum"]
    assert last is not None  # samples is not empty
    proj_mean = proj.mean(2)
    proj -= proj_mean[:, :, None]
    energy = (sq.sum(1) - n * last["mean_sq"].reshape(L * H)).clamp_min(0.0)
    return HeadStatistics(
        row_ids=row_ids,
        blocks=blocks,
        proj=proj,
        proj_mean=proj_mean,
        energy=energy,
        grams=last["gram"],
        row_norms=last["row_norms"].double(),
        lens_ids=last["lens_ids"],
        lens_vals=last["lens_vals"],
    )
