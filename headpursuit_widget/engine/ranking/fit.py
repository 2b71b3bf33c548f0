"""Fitting SOMP on every head: from captured head writes, or from statistics computed next to the model.

Both give a Fit (rows layer-major, L*H): the concept's atoms and EVR curves, every null dictionary's
final EVR, and the Logit-Lens score and top tokens of each head's mean write.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..activations.statistics import capture_statistics
from ..concepts.dictionary import dictionary_rows
from ..errors import HeadPursuitError
from .logit_lens import logit_lens_scores, logit_lens_top
from .null import null_evr
from .pursuit import CHUNK_BYTES, somp, somp_gram
from .setup import Setup, progress_bar


def _somp_budget(activations: torch.Tensor) -> int:
    """SOMP's working set in bytes: half the stored activations (so that ranking, with the dictionaries
    and the Logit-Lens slices beside it, stays within twice them), within 16 MiB .. pursuit.CHUNK_BYTES."""
    return int(min(CHUNK_BYTES, max(16 << 20, activations.numel() * activations.element_size() // 2)))


@dataclass(frozen=True)
class Fit:
    """One concept's fit on every head (rows layer-major, L*H): atoms (L*H, k) positions in the concept's
    token ids, curves (L*H, k) cumulative EVR, null_evr (n_null, L*H) final EVR of each null dictionary,
    lens (L*H,) Logit-Lens score, lens_ids / lens_vals (L*H, n_lens), n_samples."""

    atoms: torch.Tensor
    curves: torch.Tensor
    null_evr: torch.Tensor
    lens: torch.Tensor
    lens_ids: torch.Tensor
    lens_vals: torch.Tensor
    n_samples: int


def fit_writes(model, activations: torch.Tensor, setup: Setup) -> Fit:
    """The fit from captured head writes (n_layers, n_heads, n, d_model), with the local weights."""
    a = model.adapter
    expected = (a.n_layers, a.n_heads, a.d_model)
    if activations.dim() != 4 or (activations.shape[0], activations.shape[1], activations.shape[3]) != expected:
        raise HeadPursuitError(
            f"activations must be (n_layers, n_heads, n_samples, d_model) = "
            f"({expected[0]}, {expected[1]}, n, {expected[2]}), got {tuple(activations.shape)}"
        )
    L, Hn, n, d = activations.shape
    if n < 2:
        raise HeadPursuitError("SOMP centres over samples: give at least 2 prompts")
    con, k = setup.con, setup.k
    flat = activations.reshape(L * Hn, n, d).to(a.unembedding.device)  # SOMP runs where the model is
    rows = dictionary_rows(a, con.token_ids, setup.normalize, setup.fold_norm).to(flat.device)
    with progress_bar(setup.progress, f"SOMP: {L * Hn} heads, k={k}"):
        concept_res = somp(flat, rows, k, with_coef=False, chunk_bytes=_somp_budget(activations))
    null = null_evr(model, activations, flat, setup, _somp_budget(activations))
    raw_rows = dictionary_rows(a, con.token_ids, normalize=False, fold_norm=setup.fold_norm)
    lens = logit_lens_scores(activations, raw_rows.cpu()).reshape(L * Hn)
    lens_vals, lens_ids = logit_lens_top(activations.mean(2).reshape(L * Hn, d), a.unembedding, setup.n_lens)
    return Fit(concept_res.atoms, concept_res.evr, null, lens, lens_ids, lens_vals, n)


def fit_statistics(model, contexts: list, setup: Setup, *, positions: str, chat: bool, batch_size: int) -> Fit:
    """The fit from SOMP statistics computed next to the model (activations/statistics.py): one pass over
    the union of the concept's and the null dictionaries' rows; nothing of size d_model comes back."""
    if len(contexts) < 2:
        raise HeadPursuitError("SOMP centres over samples: give at least 2 prompts")
    con, k = setup.con, setup.k
    draws = setup.null_draws(model.tokenizer)
    stats = capture_statistics(
        model,
        contexts,
        [con.token_ids, *draws],
        normalize=setup.normalize,
        fold_norm=setup.fold_norm,
        n_lens=setup.n_lens,
        positions=positions,
        chat=chat,
        batch_size=batch_size,
        progress=setup.progress,
    )
    L, Hn = model.adapter.n_layers, model.adapter.n_heads
    with progress_bar(setup.progress, f"SOMP from statistics: {L * Hn} heads x {1 + setup.n_null} dictionaries, k={k}"):
        res = [somp_gram(stats.proj[:, idx], stats.energy, gram, k) for idx, gram in zip(stats.blocks, stats.grams)]
    concept_res, nulls = res[0], torch.stack([r.evr[:, -1] for r in res[1:]])
    idx = stats.blocks[0]
    scale = stats.row_norms[idx] if setup.normalize else torch.ones(len(idx), dtype=torch.float64)
    lens = (stats.proj_mean[:, idx] * scale).mean(1)
    n_lens = stats.lens_ids.shape[-1]
    return Fit(
        concept_res.atoms,
        concept_res.evr,
        nulls,
        lens,
        stats.lens_ids.reshape(L * Hn, n_lens),
        stats.lens_vals.reshape(L * Hn, n_lens),
        len(contexts),
    )
