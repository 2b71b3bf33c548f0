"""One-call causal verification of a head set: does editing it remove the concept's answers, more than
random heads in the same layers, while other categories' answers and unrelated facts stay?

Measured on material the selection did not use (engine/judging/categories.py): the concept's "verify" eliciting
contexts (or a shipped concept's probe prompts), the "verify" contexts of at least 4 other categories,
and the "verify" half of the control facts, without any fact answered by a measured category. The concept
is also asked in the other formats at hand (FORMATS: the eliciting "requests" beside probe questions, a
shipped concept's "questions" beside the requests of a word list under its name, and a shipped concept's
"sentences": fill-in sentences and list continuations): a concept head cuts its category in every format,
and a set that cuts one format only is not specific (seen for numbers: 0.24x on requests, 0.77x on the
shipped "How many ...?" questions; for colours, a pair at 0.20x on questions and 0.31x on requests left
0.87x on a test split's fill-in sentences and lists). Verdicts, in this order:
- "generic": the edit cuts the other categories too (their median < MIN_OTHERS) and the concept
  (ratio < MIN_OTHERS): an answer or format head, not a concept head;
- "damaging": the edit costs the control more than random heads do (by > MAX_EXTRA_DROP nats);
- "specific": concept ratio <= MAX_RATIO in the probe and in every other format the unedited model
  answers (mass >= MIN_FORMAT_MASS), random heads keep >= MIN_RANDOM of it, the other categories'
  median >= MIN_OTHERS (and the control within random's + MAX_EXTRA_DROP, checked above);
- "not in every format": all of that holds on the probe, but another format keeps more than MAX_RATIO;
- "not better than random": anything else.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from ..concepts import shipped as shipped_concepts
from ..concepts.contexts import eliciting_contexts
from ..concepts.resolve import words_of
from ..editing.edits import parse_edits
from ..errors import HeadPursuitError
from ..progress import Progress
from .baselines import layer_matched_sets
from .categories import battery, effect_of, lower_median, measure

VERDICTS = ("specific", "generic", "not in every format", "not better than random", "damaging")
MAX_RATIO = 0.35
MIN_RANDOM = 0.7
MIN_OTHERS = 0.8
MAX_EXTRA_DROP = 0.3
N_PROBE = 16  # default probe: eliciting contexts of the "verify" part
MIN_FORMAT_MASS = 0.01  # a format whose unedited concept mass is below this is not judged (nothing to cut)
# the eliciting "verify" contexts; a shipped concept's probe questions; its fill-in sentences and lists
FORMATS = ("requests", "questions", "sentences")


def verdict_for(
    mass_ratio: float,
    random_median: float,
    control_drop: float,
    random_control_drop: float,
    others_median: float = 1.0,
    format_ratios=(),
) -> str:
    """The verdict for measured ratios (mass edited / unedited) and control drops (nats); format_ratios:
    the concept's ratios in its other judged formats."""
    if others_median < MIN_OTHERS and mass_ratio < MIN_OTHERS:
        return "generic"
    if control_drop > random_control_drop + MAX_EXTRA_DROP:
        return "damaging"
    if mass_ratio <= MAX_RATIO and random_median >= MIN_RANDOM and others_median >= MIN_OTHERS:
        return "specific" if max([mass_ratio, *format_ratios]) <= MAX_RATIO else "not in every format"
    return "not better than random"


@dataclass(frozen=True)
class Verification:
    """Result of verify(). Ratios are concept probability mass edited / unedited (mean over probe prompts);
    drops are mean log-probability losses (nats) of the control answers. random_*: one entry per draw.
    other_ratios: {category: ratio} for the edit; domain_drops: {control domain: nats} for the edit;
    format_ratios: {format: ratio} for the concept asked in its other judged formats (FORMATS)."""

    concept: str
    k: int
    alpha: float
    heads: list
    random_heads: list
    mass_ratio: float
    random_mass_ratios: list
    control_drop: float
    random_control_drops: list
    verdict: str
    n_probe: int
    n_control: int
    edits: dict
    other_ratios: dict
    domain_drops: dict
    format_ratios: dict = field(default_factory=dict)

    @property
    def random_median(self) -> float:
        return float(np.median(self.random_mass_ratios))

    @property
    def random_iqr(self) -> tuple[float, float]:
        q25, q75 = np.percentile(self.random_mass_ratios, [25, 75])
        return float(q25), float(q75)

    @property
    def random_control_drop(self) -> float:
        return float(np.median(self.random_control_drops))

    @property
    def others_median(self) -> float:
        return float(lower_median(list(self.other_ratios.values()))) if self.other_ratios else 1.0

    @property
    def specific(self) -> bool:
        return self.verdict == "specific"

    def summary(self) -> str:
        """One line, e.g. "2 heads: colours 0.05x, other categories 0.97x (countries 1.02x, ...), random
        heads 0.95x, unrelated facts -0.09 nats (random -0.02): specific"."""
        others = ", ".join(f"{n} {r:.2f}x" for n, r in self.other_ratios.items())
        formats = ", ".join(f"{n} {r:.2f}x" for n, r in self.format_ratios.items())
        formats = f" ({formats})" if formats else ""
        return (
            f"{self.k} head{'s' * (self.k != 1)}: {self.concept} {self.mass_ratio:.2f}x{formats}, other categories "
            f"{self.others_median:.2f}x ({others}), random heads {self.random_median:.2f}x, unrelated facts "
            f"{-self.control_drop:+.2f} nats (random {-self.random_control_drop:+.2f}): {self.verdict}"
        )


def verify(
    model,
    ranking,
    *,
    k: int = 4,
    alpha: float = -1.0,
    edits=None,
    probe=None,
    control=None,
    others=None,
    n_random: int = 5,
    seed: int = 0,
    cancel: threading.Event | None = None,
    progress: Progress = False,
) -> Verification:
    """Edit ranking.top(k) by alpha (or `edits`, {(layer, head): alpha}, with their own strengths) and
    n_random layer-matched random head sets with the same strengths; measure each on the concept, the
    other categories and the control.

    probe: prompts whose next token should be a concept word (default: a shipped concept's probe prompts,
    else the verify part of its eliciting contexts); the concept is also measured in its other formats
    (FORMATS), and "specific" needs the cut in each the unedited model answers. control: (prompt, answer)
    pairs (default: the verify half of the shipped control facts this model gets right, without facts
    answered by a measured category). others: shipped category names (default
    engine/judging/categories.py OTHER_CATEGORIES).
    cancel: a threading.Event; when set, raises engine.errors.Cancelled between forward passes.
    progress: True for a tqdm bar, or report(stage, done, total) per forward pass (engine/progress.py).
    """
    if not isinstance(n_random, int) or isinstance(n_random, bool) or n_random < 1:
        raise HeadPursuitError(f"n_random must be a positive int, got {n_random!r}")
    if model.fingerprint != ranking.fingerprint:
        raise HeadPursuitError(f"the ranking was made for model {ranking.model_name!r}, not for {model.name!r}")
    if model.is_vlm:
        raise HeadPursuitError(
            "verify measures text next-token predictions; vision-language models are not supported yet"
        )
    if edits is None:
        edits = {h: alpha for h in ranking.top(k)}
    plan = parse_edits(model.adapter, edits)
    if not plan:
        raise HeadPursuitError("edits is empty: give at least one {(layer, head): alpha}")
    edits = {(layer, h): a for layer, heads in sorted(plan.items()) for h, a in sorted(heads.items())}
    con = ranking.concept
    seed_r = ranking.options.get("seed", 0)
    formats = _other_formats(con, seed_r, probe_given=probe is not None)
    probe = _default_probe(con, seed_r) if probe is None else list(probe)
    bat = battery(
        model, con, probe, part="verify", others=others, control=control, formats=formats, seed=seed_r, cancel=cancel
    )
    draws = layer_matched_sets(list(edits), model.n_heads, n_random, seed=seed)
    runs = [None, edits, *(dict(zip(draw, edits.values())) for draw in draws)]
    base, *readings = measure(model, bat, runs, cancel=cancel, progress=progress, desc="measuring the sets")
    found = [effect_of(r, base, bat.domains) for r in readings]
    answered = [b >= MIN_FORMAT_MASS for b in base.format_masses]
    judged = {c.name: float(r) for c, r, ok in zip(bat.formats, found[0].format_ratios, answered) if ok}
    mine, rand = found[0], found[1:]
    random_median = float(np.median([e.mass_ratio for e in rand]))
    random_drop = float(np.median([e.control_drop for e in rand]))
    strengths = set(edits.values())
    return Verification(
        concept=con["name"],
        k=len(edits),
        alpha=float(strengths.pop()) if len(strengths) == 1 else float("nan"),
        heads=list(edits),
        random_heads=draws,
        mass_ratio=mine.mass_ratio,
        random_mass_ratios=[e.mass_ratio for e in rand],
        control_drop=mine.control_drop,
        random_control_drops=[e.control_drop for e in rand],
        verdict=verdict_for(
            mine.mass_ratio, random_median, mine.control_drop, random_drop, mine.others_median, judged.values()
        ),
        n_probe=len(bat.concept.prompts),
        n_control=len(bat.control),
        edits={f"{layer}.{h}": a for (layer, h), a in edits.items()},
        other_ratios=dict(zip(bat.other_names, (float(r) for r in mine.other_ratios))),
        domain_drops=mine.domain_drops,
        format_ratios=judged,
    )


def _other_formats(concept: dict, seed: int, *, probe_given: bool) -> dict[str, list[str]]:
    """{format: prompts} beside the probe: the eliciting "requests" unless they are the probe already; a
    shipped concept's "questions" for a word list under its name (the probe is then the requests); and a
    shipped concept's "sentences" (fill-in sentences, list continuations) where it has them."""
    name, shipped = concept["name"], concept.get("shipped")
    out = {}
    if shipped or probe_given:
        out["requests"] = eliciting_contexts(name, words_of(concept), part="verify", seed=seed, n=N_PROBE)
    elif name in shipped_concepts.names():
        out["questions"] = list(shipped_concepts.get(name).probe_prompts)
    if name in shipped_concepts.names() and shipped_concepts.get(name).sentence_prompts:
        out["sentences"] = list(shipped_concepts.get(name).sentence_prompts)
    return out


def _default_probe(concept: dict, seed: int) -> list[str]:
    """A shipped concept's probe prompts, else the verify part of its eliciting contexts."""
    if concept.get("shipped"):
        return list(shipped_concepts.get(concept["name"]).probe_prompts)
    return eliciting_contexts(concept["name"], words_of(concept), part="verify", seed=seed, n=N_PROBE)
