"""Selection on selectivity: the recommended heads are a set built greedily from measured edits.

SOMP's score says what a head writes; a concept head is one whose edit removes its concept's answers
while other categories' answers stay. refine() measures that on the RANK material (the concept's rank
eliciting contexts, plus the user's own prompts when the ranking was made on them; other categories'
rank contexts; the refine half of the control, engine/judging/categories.py), never on what verify() uses:
1. candidates: SOMP's N_SOMP best heads by z (significant first) and the N_SELECTIVE most selective
   heads by effects (engine/judging/effects.py: every head flipped at the answer position,
   engine/judging/answer_flips.py), each then flipped alone at every position;
   the N_GREEDY eligible ones with the lowest concept mass enter the greedy search;
2. a candidate is eligible when its flip cuts the concept (ratio < MAX_SINGLE), keeps the other
   categories (median >= MIN_OTHERS) and costs the control at most CONTROL_BUDGET nats;
3. greedy: start from the eligible head with the lowest concept mass, then add the eligible head whose
   set has the lowest mass while the set's mass falls below MIN_FALL x the current one, the others
   stay >= MIN_OTHERS and the control drop <= CONTROL_BUDGET; at most MAX_HEADS heads.
The chosen set is `recommended`; ranking.top() then takes the eligible candidates left out, untested
heads by score, and the measured-ineligible candidates (generic, damaging or not cutting) last.
Every measure is kept in ranking.options["selection"] (and the effects grid in its "effects").
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from ..concepts.contexts import eliciting_contexts
from ..concepts.resolve import words_of
from ..errors import HeadPursuitError
from ..progress import Progress
from .categories import battery, effect_of, measure
from .effects import GENERIC_BELOW, N_CONTEXTS, HeadEffects, measure_heads

N_SOMP = 4
N_SELECTIVE = 8
N_GREEDY = 8  # the greedy search adds from the eligible candidates with the lowest concept mass
MAX_HEADS = 4
MAX_SINGLE = 0.9  # a candidate must cut its concept below this alone
MIN_OTHERS = 0.85  # stricter than the verdict's 0.8: the set is judged again on held-out material
CONTROL_BUDGET = 0.3  # nats of the refine half of the control (the verdict's margin over random heads)
MIN_FALL = 0.9  # a head joins only if the set's concept mass falls below this x the current set's


def candidates(ranking, n: int) -> list[tuple[int, int]]:
    """The n heads with the highest z-score, significant heads before the others."""
    z = np.nan_to_num(ranking.score_table["z"], nan=-np.inf, posinf=np.finfo(float).max)
    key = np.where(ranking.significant, 1.0, 0.0).ravel()
    order = np.lexsort((-z.ravel(), -key))[:n]
    return [(int(i // ranking.n_heads), int(i % ranking.n_heads)) for i in order]


def eligible(single: dict) -> bool:
    """A candidate's single-flip measures (mass_ratio, others_median, control_drop) admit it."""
    return (
        single["mass_ratio"] < MAX_SINGLE
        and single["others_median"] >= MIN_OTHERS
        and single["control_drop"] <= CONTROL_BUDGET
    )


def tested_order(details: dict, recommended) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The tested candidates left out of `recommended`, split into (eligible, ineligible), each most
    selective first. details: ranking.options["selection"]."""
    chosen = {tuple(h) for h in recommended}
    rows = [(tuple(h), s) for h, s in zip(details["candidates"], details["single"]) if tuple(h) not in chosen]
    rows.sort(key=lambda row: -row[1]["selectivity"])
    return [h for h, s in rows if eligible(s)], [h for h, s in rows if not eligible(s)]


def refine(
    model,
    ranking,
    *,
    others=None,
    cancel: threading.Event | None = None,
    progress: Progress = False,
):
    """A copy of `ranking` whose `recommended` heads are the greedy selective set (alpha = -1).

    others: the other categories (shipped names; default engine/judging/categories.py OTHER_CATEGORIES).
    Costs every head's flip at the answer position (one position per head, hf backend only), then one
    edited pass per candidate and per greedy trial, each from the head's shallowest layer on.
    cancel: a threading.Event; when set, raises engine.errors.Cancelled between forward passes.
    progress: True for a tqdm bar per stage, or report(stage, done, total) per forward pass (engine/progress.py).
    """
    if model.is_vlm:
        raise HeadPursuitError(
            "refine measures text next-token predictions; vision-language models are not supported yet"
        )
    con = ranking.concept
    seed = ranking.options.get("seed", 0)
    prompts = eliciting_contexts(con["name"], words_of(con), part="rank", seed=seed)[:N_CONTEXTS]
    if not ranking.options.get("automatic_contexts", True):
        prompts += [p for p in ranking.options.get("contexts", []) if isinstance(p, str)][:N_CONTEXTS]
    bat = battery(model, con, prompts, part="rank", others=others, seed=seed, cancel=cancel)
    heads = candidates(ranking, N_SOMP)
    screened = None
    if model.backend == "hf":
        screened = measure_heads(model, bat, alpha=-1.0, method="answer", n_check=0, cancel=cancel, progress=progress)
        heads += [h for h in screened.top(N_SELECTIVE + N_SOMP) if h not in heads][:N_SELECTIVE]
    base, *flipped = measure(
        model,
        bat,
        [None, *({h: -1.0} for h in heads)],
        cancel=cancel,
        progress=progress,
        desc="flipping the candidates one by one",
    )
    single = [_row(effect_of(r, base, bat.domains)) for r in flipped]
    chosen, steps = _greedy(model, bat, base, dict(zip(heads, single)), cancel=cancel, progress=progress)
    details = {
        "candidates": [list(h) for h in heads],
        "single": single,
        "steps": steps,
        "others": bat.other_names,
        "n_contexts": len(bat.concept.prompts),
        "n_control": len(bat.control),
        "rules": {
            "max_single": MAX_SINGLE,
            "min_others": MIN_OTHERS,
            "control_budget": CONTROL_BUDGET,
            "min_fall": MIN_FALL,
        },
    }
    if screened is not None:
        details["effects"] = _exact_into(screened, heads, single)
    return dataclasses.replace(ranking, recommended=tuple(chosen), options={**ranking.options, "selection": details})


def _greedy(model, bat, base, single: dict, *, cancel, progress) -> tuple[list, list]:
    """The greedy set from the eligible candidates, and each accepted step's measures."""
    pool = sorted((h for h, s in single.items() if eligible(s)), key=lambda h: single[h]["mass_ratio"])[:N_GREEDY]
    if not pool:
        return [], []
    chosen, steps = [pool[0]], [{"heads": [list(pool[0])], **single[pool[0]]}]
    current = single[pool[0]]["mass_ratio"]
    pool = pool[1:]
    while pool and len(chosen) < MAX_HEADS:
        trials = [dict.fromkeys([*chosen, h], -1.0) for h in pool]
        rows = [
            _row(effect_of(r, base, bat.domains))
            for r in measure(
                model, bat, trials, cancel=cancel, progress=progress, desc=f"adding head {len(chosen) + 1} to the set"
            )
        ]
        ok = [
            (row["mass_ratio"], h, row)
            for h, row in zip(pool, rows)
            if row["mass_ratio"] < MIN_FALL * current
            and row["others_median"] >= MIN_OTHERS
            and row["control_drop"] <= CONTROL_BUDGET
        ]
        if not ok:
            break
        current, head, row = min(ok, key=lambda t: t[0])
        chosen.append(head)
        steps.append({"heads": [list(h) for h in chosen], **row})
        pool.remove(head)
    return chosen, steps


def _row(effect) -> dict:
    """An Effect as plain JSON numbers."""
    return {
        "mass_ratio": float(effect.mass_ratio),
        "other_ratios": [float(r) for r in effect.other_ratios],
        "others_median": effect.others_median,
        "control_drop": float(effect.control_drop),
        "domain_drops": effect.domain_drops,
        "selectivity": effect.selectivity,
    }


def _exact_into(screened: HeadEffects, heads, single) -> dict:
    """The effects grid as JSON: the answer-position estimates with the candidates' exact numbers written in."""
    for (layer, h), s in zip(heads, single):
        screened.mass_ratio[layer, h] = s["mass_ratio"]
        screened.other_ratios[:, layer, h] = s["other_ratios"]
        screened.control_drop[layer, h] = s["control_drop"]
        screened.exact[layer, h] = True
    return {
        "method": screened.method,
        "others": list(screened.others),
        "mass_ratio": screened.mass_ratio.tolist(),
        "other_ratios": screened.other_ratios.tolist(),
        "control_drop": screened.control_drop.tolist(),
        "exact": screened.exact.tolist(),
        "generic_below": GENERIC_BELOW,
    }
