"""rank_heads: the ranking pipeline, one call per stage (docs/architecture.md).

concept -> contexts -> head writes (or statistics) -> SOMP fit with its null -> scores -> selection.
With no prompts, heads are ranked on eliciting contexts (concepts/contexts.py) at the last position;
`refine` (judging/selection.py) then picks the recommended heads by flipping candidates.
docs/verification.md describes the method and the measurements behind the defaults.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..activations.capture import capture
from ..activations.inputs import check_prompts
from ..concepts.contexts import concept_contexts
from ..concepts.resolve import concept_record, resolve_concept
from ..errors import HeadPursuitError, check_int
from ..judging.selection import refine as run_refine
from .fit import Setup, fit_statistics, fit_writes
from .result import HeadRanking
from .scores import METHODS, check_score, score_grids


def rank_heads(
    model,
    prompts=None,
    concept="colours",
    *,
    method: str = "somp",
    score: str | None = None,
    k: int = 10,
    n_null: int = 30,
    q: float = 0.05,
    activations: torch.Tensor | None = None,
    normalize: bool = True,
    fold_norm: bool = False,
    rule: str = "whole_word",
    positions: str | None = None,
    chat: bool = False,
    seed: int = 0,
    n_lens: int = 10,
    batch_size: int = 8,
    refine: bool | None = None,
    progress: bool = True,
) -> HeadRanking:
    """Rank every head of `model` (a HeadModel) for `concept`.

    prompts None: eliciting contexts built from the concept's name and words (concepts/contexts.py,
    the "rank" part for `seed`), read at positions "last"; given prompts are read at "prompt"
    positions unless `positions` says otherwise. method "somp" (default score "z") or "logit_lens";
    score= picks any of SCORES. k: SOMP atoms (capped at the dictionary size). n_null: frequency-
    matched null dictionaries (>= 2; 30 for usable p-values). q: false discovery rate of `significant`.
    activations: a capture() result to reuse; without it a model that ranks from statistics (the
    nnsight backend) computes SOMP's statistics inside its traces instead of returning head writes
    (activations/statistics.py), giving the same scores. refine: run refine() to pick the recommended heads
    (forward passes on the rank contexts and half of the control facts; text models only: a VLM's image
    heads are not measured by text contexts). None: on for text models.
    """
    if method not in METHODS:
        raise HeadPursuitError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    score = score or METHODS[method]
    check_score(score)
    k = check_int(k, "k (SOMP atoms)")
    n_null = check_int(n_null, "n_null (null dictionaries; 30 for p-values)", minimum=2)
    n_lens = check_int(n_lens, "n_lens (Logit-Lens tokens per head)")
    batch_size = check_int(batch_size, "batch_size")
    con, spec = resolve_concept(concept, model.tokenizer, rule)
    contexts = concept_contexts(con, seed=seed) if prompts is None else check_prompts(prompts)
    positions = positions or ("last" if prompts is None else "prompt")
    setup = Setup(con, min(k, len(con.token_ids)), n_null, seed, rule, normalize, fold_norm, n_lens, progress)
    read: dict[str, Any] = dict(positions=positions, chat=chat, batch_size=batch_size)
    if activations is None and model.ranks_from_statistics:
        fit = fit_statistics(model, contexts, setup, **read)  # writes, fit and null in one pass next to the model
    else:
        if activations is None:
            activations = capture(model, contexts, **read, progress=progress)  # head writes (L, H, n, d)
        fit = fit_writes(model, activations, setup)  # the concept's SOMP, then the null's (null.py)
    grids = score_grids(fit, model.n_layers, model.n_heads, q)
    options = dict(
        k=setup.k,
        n_null=n_null,
        q=q,
        normalize=normalize,
        fold_norm=fold_norm,
        rule=rule,
        positions=positions,
        chat=chat,
        seed=seed,
        n_samples=fit.n_samples,
        contexts=contexts,
        automatic_contexts=prompts is None,
        approximate=model.adapter.approximate,
    )
    made_by = dict(vocab_of=model.tokenizer, model_name=model.name, fingerprint=model.fingerprint)
    ranking = _assemble(grids, con.token_ids, concept_record(con, spec), method, score, options, **made_by)
    if (refine or refine is None) and not model.is_vlm:  # refinement measures text next-token predictions
        ranking = run_refine(model, ranking, progress=progress)
    return ranking


def _assemble(
    grids: dict,
    token_ids: list,
    concept: dict,
    method: str,
    score: str,
    options: dict,
    *,
    vocab_of,
    model_name: str,
    fingerprint: str,
) -> HeadRanking:
    """The HeadRanking of score_grids' arrays, with the strings of every token id it holds (decoded by the
    tokenizer `vocab_of`), tied to the model by its name and fingerprint."""
    atoms = np.asarray(token_ids)[grids.pop("atoms")]
    ids = np.concatenate([atoms.ravel(), grids["lens_ids"].ravel(), np.asarray(token_ids, dtype=np.int64)])
    return HeadRanking(
        atoms=atoms,
        **grids,
        vocab=_decode_all(vocab_of, ids),
        concept=concept,
        method=method,
        score_name=score,
        options=options,
        model_name=model_name,
        fingerprint=fingerprint,
    )


def _decode_all(tokenizer, ids) -> dict:
    ids = sorted({int(i) for i in ids})
    return dict(zip(ids, tokenizer.batch_decode([[i] for i in ids])))
