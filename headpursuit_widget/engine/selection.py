"""Selection aware of collateral damage: the recommended heads are chosen by flipping candidates.

The SOMP score measures what a head writes, not what editing it costs: on SmolLM2 the best-scoring
heads can cost about a nat of unrelated facts when flipped. refine() flips each of the best
`n_candidates` heads by z-score (significant ones first) alone, on the RANK half: the rank part of the
concept's eliciting contexts and the even-numbered half of the control facts the model gets right
(verify() measures on the other halves). A head's utility is
    log(concept mass ratio) + damage_weight * max(control drop, 0)   (lower is better)
and the recommended heads are the candidates whose cut outweighs their damage (utility < 0), best
first. ranking.top() then takes the rejected candidates measured as harmless (control drop <=
HARMLESS_DROP), then untested heads by score, and the candidates measured as harmful last
(see tested_order), so a head known to cost the control never comes before one not measured.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from .contexts import eliciting_contexts
from .controls import control_split
from .errors import HeadPursuitError
from .probes import mass_and_control

N_CANDIDATES = 8
N_CONTEXTS = 16  # the first 16 rank contexts: each candidate costs one forward over them and the control half
DAMAGE_WEIGHT = 4.0  # per nat: a 0.1-nat control drop weighs as much as a 0.67x concept factor
HARMLESS_DROP = 0.1  # nats: a rejected candidate that costs the control at most this is "measured harmless"


def candidates(ranking, n: int) -> list[tuple[int, int]]:
    """The n heads with the highest z-score, significant heads before the others."""
    z = np.nan_to_num(ranking.score_table["z"], nan=-np.inf, posinf=np.finfo(float).max)
    key = np.where(ranking.significant, 1.0, 0.0).ravel()
    order = np.lexsort((-z.ravel(), -key))[:n]
    return [(int(i // ranking.n_heads), int(i % ranking.n_heads)) for i in order]


def utilities(details: dict) -> dict[tuple[int, int], float]:
    """Each tested candidate's utility from refine()'s stored measures (lower is better)."""
    ratios = np.clip(np.asarray(details["mass_ratio"], dtype=np.float64), 1e-12, None)
    drops = np.clip(np.asarray(details["control_drop"], dtype=np.float64), 0, None)
    values = np.log(ratios) + details["damage_weight"] * drops
    return {(int(h[0]), int(h[1])): float(u) for h, u in zip(details["candidates"], values)}


def tested_order(details: dict, recommended) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The rejected candidates split into (measured harmless, measured harmful), each best utility first.

    details: ranking.options["refine"]; harmless means a control drop <= HARMLESS_DROP nats."""
    utility = utilities(details)
    drops = {(int(h[0]), int(h[1])): float(d) for h, d in zip(details["candidates"], details["control_drop"])}
    chosen = {(int(h[0]), int(h[1])) for h in recommended}
    rejected = sorted((h for h in utility if h not in chosen), key=utility.__getitem__)
    return [h for h in rejected if drops[h] <= HARMLESS_DROP], [h for h in rejected if drops[h] > HARMLESS_DROP]


def refine(
    model,
    ranking,
    *,
    n_candidates: int = N_CANDIDATES,
    damage_weight: float = DAMAGE_WEIGHT,
    cancel: threading.Event | None = None,
    progress: bool = False,
):
    """A copy of `ranking` whose `recommended` heads come from flipping each candidate (alpha = -1).

    Costs 1 + n_candidates forward passes over the rank contexts and half the control facts, each
    edited pass from its candidate's layer on (probes.next_token_logprobs_each).
    cancel: a threading.Event; when set, raises engine.errors.Cancelled between forward passes.
    The per-candidate measures are kept in ranking.options["refine"].
    """
    if model.is_vlm:
        raise HeadPursuitError(
            "refine measures text next-token predictions; vision-language models are not supported yet"
        )
    con = ranking.concept
    seed = ranking.options.get("seed", 0)
    contexts = eliciting_contexts(con["name"], _words(con), part="rank", seed=seed)[:N_CONTEXTS]
    pairs = control_split(model, half="refine", cancel=cancel)
    heads = candidates(ranking, n_candidates)
    runs = [None, *({head: -1.0} for head in heads)]
    (base_mass, base_control), *flipped = mass_and_control(
        model,
        contexts,
        pairs,
        con["token_ids"],
        runs,
        cancel=cancel,
        progress=progress,
        desc="refining: flipping candidates",
    )
    ratios = [float(mass / base_mass) if base_mass > 0 else 1.0 for mass, _ in flipped]
    drops = [float((base_control - control).mean()) for _, control in flipped]
    details = {
        "candidates": [list(h) for h in heads],
        "mass_ratio": ratios,
        "control_drop": drops,
        "damage_weight": damage_weight,
        "n_contexts": len(contexts),
        "n_control": len(pairs),
    }
    utility = utilities(details)
    chosen = sorted((h for h in heads if utility[h] < 0), key=utility.__getitem__)
    return dataclasses.replace(ranking, recommended=tuple(chosen), options={**ranking.options, "refine": details})


def _words(concept: dict) -> list[str]:
    """The concept's words that made it into the dictionary (all words if none is recorded)."""
    split = set(concept.get("split_words") or ())
    return [w for w in concept["words"] if w not in split] or list(concept["words"])
