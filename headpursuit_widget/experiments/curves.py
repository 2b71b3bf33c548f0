"""Suppression and enhancement curves: the measures of measures.py as more heads are edited, for the
recommended heads, each score's top heads and layer-matched random heads."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..engine import HeadPursuitError, random_heads, rank_heads
from ..engine.concepts import shipped as shipped_concepts
from ..engine.concepts.dictionary import Concept
from ..engine.concepts.resolve import resolve_concept
from ..engine.ranking.result import HeadRanking
from ..engine.ranking.scores import SCORES
from .measures import MEASURES, Budget, HeldOut, _held_out, evaluate

SELECTIONS = ("recommended", *SCORES, "random")  # how a curve picks the heads it edits (see _selection_heads)


@dataclass
class Curve:
    """Measures of edited models along one axis (k heads or alpha), per head selection.

    values[selection][measure]: (n_x, n_draws) float64 (n_draws = 1 for a score's top heads, n_random
    for "random"). baseline[measure]: the unedited model. heads[selection][i][draw]: the edited heads.
    """

    kind: str  # "suppression" or "enhancement"
    axis: str  # "k" or "alpha"
    x: np.ndarray
    values: dict
    baseline: dict
    heads: dict
    model_name: str
    concept: str
    settings: dict = field(default_factory=dict)

    @property
    def selections(self) -> list[str]:
        """The head selections compared, in order."""
        return list(self.values)

    def summary(self, selection: str, measure: str, relative: bool = True) -> dict:
        """median, q25, q75 over draws, each (n_x,). relative: ratio to baseline (control: difference
        in nats; perplexity: ratio)."""
        vals = self.values[selection][measure]
        base = self.baseline[measure]
        if relative:
            with np.errstate(divide="ignore", invalid="ignore"):
                vals = vals - base if measure == "control" else vals / base
        q25, med, q75 = (
            np.nanpercentile(vals, [25, 50, 75], axis=1)
            if np.isfinite(vals).any()
            else (np.full(len(self.x), np.nan),) * 3
        )
        return {"median": med, "q25": q25, "q75": q75}

    def table(self, relative: bool = True) -> list[dict]:
        """One row per (selection, x) with the median of each measure (relative by default)."""
        rows = []
        for selection in self.values:
            summaries = {m: self.summary(selection, m, relative)["median"] for m in MEASURES}
            for i, x in enumerate(self.x):
                rows.append(
                    {"selection": selection, self.axis: x.item(), **{m: float(s[i]) for m, s in summaries.items()}}
                )
        return rows

    def to_dict(self) -> dict:
        """Plain JSON-able data."""
        return {
            "kind": self.kind,
            "axis": self.axis,
            "x": self.x.tolist(),
            "model": self.model_name,
            "concept": self.concept,
            "settings": self.settings,
            "baseline": self.baseline,
            "values": {s: {k: v.tolist() for k, v in d.items()} for s, d in self.values.items()},
            "heads": self.heads,
        }

    def plot(self, measures=MEASURES, *, theme: str = "auto"):
        """Bokeh layout, one panel per measure (relative to the unedited model); ``theme`` "light",
        "dark" or "auto" (plots.py)."""
        from ..plots import curve_figure

        return curve_figure(self, measures, theme=theme)

    def save_html(self, path, measures=MEASURES):
        """Write the plot as a standalone HTML file with inline bokeh resources."""
        from ..plots import save_html

        return save_html(self.plot(measures), path, title=f"{self.kind}: {self.concept} on {self.model_name}")


@dataclass(frozen=True)
class _Setup:
    """What a curve needs before editing: the concept (whole words), the ranking and the held-out data."""

    concept: Concept
    ranking: HeadRanking
    budget: Budget
    held_out: HeldOut


def _setup(model, concept, *, ranking, budget, generation_field: str, rank_kwargs: dict, progress: bool) -> _Setup:
    con, spec = resolve_concept(concept, model.tokenizer)  # measured with whole words, whatever the ranking rule
    budget = budget or Budget()
    held_out = HeldOut(
        probe_prompts=_held_out(None, spec, "probe_prompts")[: budget.n_probe],
        gen_prompts=_held_out(None, spec, generation_field)[: budget.n_generate] if budget.n_generate != 0 else [],
        pairs=shipped_concepts.control()[: budget.n_control],
        max_new_tokens=budget.max_new_tokens,
    )
    if ranking is None:
        ranking = rank_heads(model, None, spec or con, progress=progress, **rank_kwargs)
    return _Setup(concept=con, ranking=ranking, budget=budget, held_out=held_out)


def _selected_heads(ranking, selection: str, k: int, n_random: int, seed: int) -> list[list[tuple[int, int]]]:
    """The heads one selection edits at size k: one draw per score, n_random draws for "random"."""
    if selection == "random":
        return [random_heads(ranking, k, seed=seed + d) for d in range(n_random)]
    if selection == "recommended":
        return [ranking.top(k)]  # the refined recommendation first, then the active score
    if selection not in SCORES:
        raise HeadPursuitError(f"unknown selection {selection!r}; accepted: {', '.join(SELECTIONS)}")
    return [ranking.with_score(selection).unrefined().top(k)]  # the score alone


def _run(model, setup: _Setup, conditions: dict, *, progress: bool, desc: str) -> dict:
    """conditions: {(selection, i): [edits per draw]} -> {(selection, i): [measures per draw]}."""
    total = sum(len(v) for v in conditions.values())
    out: dict = {}
    with tqdm(total=total, desc=desc, disable=not progress) as bar:
        for key, draws in conditions.items():
            out[key] = []
            for edits in draws:
                out[key].append(evaluate(model, setup.concept, edits, held_out=setup.held_out))
                bar.update()
    return out


def _curve(
    model, setup: _Setup, *, kind: str, axis: str, x: list, heads: dict, edits: dict, settings: dict, progress: bool
) -> Curve:
    """Measure the unedited model and every edit set; edits: {(selection, i): [edits per draw]}."""
    baseline = evaluate(model, setup.concept, None, held_out=setup.held_out)
    results = _run(model, setup, edits, progress=progress, desc=f"{kind} ({setup.concept.name})")
    values = {
        s: {meas: np.array([[r[meas] for r in results[s, i]] for i in range(len(x))]) for meas in MEASURES}
        for s in heads
    }
    settings.update(
        score=setup.ranking.score_name,
        options=setup.ranking.options,
        budget=setup.budget.__dict__,
        n_probe=len(setup.held_out.probe_prompts),
        n_generate=len(setup.held_out.gen_prompts),
    )
    return Curve(
        kind=kind,
        axis=axis,
        x=np.asarray(x),
        values=values,
        baseline=baseline,
        heads=heads,
        model_name=model.name,
        concept=setup.concept.name,
        settings=settings,
    )


def suppression_curve(
    model,
    concept,
    *,
    ks=(1, 2, 4, 8, 16, 32),
    alpha: float = -1.0,
    selections=("recommended", "specificity", "evr", "logit_lens", "random"),
    n_random: int = 10,
    ranking=None,
    budget: Budget | None = None,
    seed: int = 0,
    progress: bool = True,
    **rank_kwargs,
) -> Curve:
    """Edit the top-k heads of each selection by `alpha` for each k; measure on held-out prompts.

    selections: "recommended" (the default ranking's refined heads: ranking.top), any of SCORES
    ("z", "specificity" the previous default, "evr" the paper's raw score, "logit_lens": the top heads by
    that score alone) and "random" (n_random draws matched to the layers of the recommended heads).
    ranking: reuse an hp.rank_heads result (else ranked with rank_kwargs). Returns a Curve over k.
    """
    setup = _setup(
        model,
        concept,
        ranking=ranking,
        budget=budget,
        generation_field="eval_prompts",
        rank_kwargs=rank_kwargs,
        progress=progress,
    )
    ks = [int(k) for k in ks]
    heads = {s: [_selected_heads(setup.ranking, s, k, n_random, seed) for k in ks] for s in selections}
    edits = {(s, i): [{h: alpha for h in draw} for draw in heads[s][i]] for s in selections for i in range(len(ks))}
    settings = {"alpha": alpha, "n_random": n_random}
    return _curve(
        model, setup, kind="suppression", axis="k", x=ks, heads=heads, edits=edits, settings=settings, progress=progress
    )


def enhancement_curve(
    model,
    concept,
    k: int,
    *,
    alphas=(1, 2, 3, 5, 8),
    selections=("recommended", "random"),
    n_random: int = 10,
    ranking=None,
    budget: Budget | None = None,
    seed: int = 0,
    progress: bool = True,
    **rank_kwargs,
) -> Curve:
    """Scale the top-k heads by each alpha; generations on the concept's NEUTRAL prompts (word_rate,
    perplexity), probe_mass on its probe prompts, control as usual. Returns a Curve over alpha."""
    setup = _setup(
        model,
        concept,
        ranking=ranking,
        budget=budget,
        generation_field="neutral_prompts",
        rank_kwargs=rank_kwargs,
        progress=progress,
    )
    alphas = [float(a) for a in alphas]
    heads = {s: [_selected_heads(setup.ranking, s, k, n_random, seed)] * len(alphas) for s in selections}
    edits = {(s, i): [{h: a for h in draw} for draw in heads[s][i]] for s in selections for i, a in enumerate(alphas)}
    settings = {"k": k, "n_random": n_random}
    return _curve(
        model,
        setup,
        kind="enhancement",
        axis="alpha",
        x=alphas,
        heads=heads,
        edits=edits,
        settings=settings,
        progress=progress,
    )
