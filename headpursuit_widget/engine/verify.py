"""One-call causal verification of a ranking: does flipping its top heads remove the concept, more than
random heads in the same layers, without costing unrelated facts?

Measured on material the ranking did not use: the "verify" part of the concept's eliciting contexts
(or a shipped concept's probe prompts) and the "verify" half of the control facts. Verdicts:
- "damaging": the edit costs the control facts more than random heads do (by > MAX_EXTRA_DROP nats);
- "specific": concept mass ratio <= MAX_RATIO while random heads keep >= MIN_RANDOM of it;
- "not better than random": anything else.
The thresholds are those of the held-out evaluation of issue 10 (docs/verification.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .baselines import random_heads
from .contexts import eliciting_contexts
from .controls import control_split
from .errors import HeadPursuitError
from .probes import mass_and_control
from .selection import _words
from .shipped import concepts as shipped_concepts

VERDICTS = ("specific", "not better than random", "damaging")
MAX_RATIO = 0.35
MIN_RANDOM = 0.7
MAX_EXTRA_DROP = 0.15
N_PROBE = 16  # default probe: eliciting contexts of the "verify" part


def verdict_for(mass_ratio: float, random_median: float, control_drop: float, random_control_drop: float) -> str:
    """The verdict for measured ratios (concept mass edited / unedited) and control drops (nats)."""
    if control_drop > random_control_drop + MAX_EXTRA_DROP:
        return "damaging"
    if mass_ratio <= MAX_RATIO and random_median >= MIN_RANDOM:
        return "specific"
    return "not better than random"


@dataclass(frozen=True)
class Verification:
    """Result of verify(). Ratios are concept probability mass edited / unedited (mean over probe prompts);
    drops are mean log-probability losses (nats) of the control answers. random_*: one entry per draw."""

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
    def specific(self) -> bool:
        return self.verdict == "specific"

    def summary(self) -> str:
        """One line, e.g. "top 4 heads: colours probability 0.29x, random heads 0.95x, unrelated facts
        -0.09 nats (random -0.02): specific"."""
        return (
            f"top {self.k} heads: {self.concept} probability {self.mass_ratio:.2f}x, random heads "
            f"{self.random_median:.2f}x, unrelated facts {-self.control_drop:+.2f} nats "
            f"(random {-self.random_control_drop:+.2f}): {self.verdict}"
        )

    def plot(self, *, theme: str = "auto"):
        """Bokeh figure: concept mass ratio and control drop of the top heads against each random draw;
        ``theme`` "light", "dark" or "auto" (plots.py)."""
        from ..plots import verification_figure

        return verification_figure(self, theme=theme)


def verify(
    model,
    ranking,
    *,
    k: int = 4,
    alpha: float = -1.0,
    probe=None,
    control=None,
    n_random: int = 5,
    seed: int = 0,
    cancel: threading.Event | None = None,
    progress: bool = False,
) -> Verification:
    """Edit ranking.top(k) by alpha and n_random layer-matched random head sets; measure each.

    probe: prompts whose next token should be a concept word (default: the verify part of the
    eliciting contexts; a shipped concept's probe prompts). control: (prompt, answer) pairs (default:
    the verify half of the shipped control facts this model gets right). cancel: a threading.Event;
    when set, raises engine.errors.Cancelled between forward passes.
    """
    if not isinstance(n_random, int) or n_random < 1:
        raise HeadPursuitError(f"n_random must be a positive int, got {n_random!r}")
    if model.fingerprint != ranking.fingerprint:
        raise HeadPursuitError(f"the ranking was made for model {ranking.model_name!r}, not for {model.name!r}")
    if model.is_vlm:
        raise HeadPursuitError(
            "verify measures text next-token predictions; vision-language models are not supported yet"
        )
    con = ranking.concept
    if probe is None:
        probe = _default_probe(con, ranking.options.get("seed", 0))
    probe = list(probe)
    pairs = control_split(model, half="verify", cancel=cancel) if control is None else list(control)
    if not probe or not pairs:
        raise HeadPursuitError("verify needs at least one probe prompt and one control pair")
    heads = ranking.top(k)
    draws = [random_heads(ranking, k, seed=seed + i) for i in range(n_random)]
    runs = [None, {h: alpha for h in heads}, *({h: alpha for h in draw} for draw in draws)]
    results = mass_and_control(
        model, probe, pairs, con["token_ids"], runs, cancel=cancel, progress=progress, desc="verifying"
    )
    (base_mass, base_control), *edited = results
    ratios = [float(mass / base_mass) if base_mass > 0 else float("nan") for mass, _ in edited]
    drops = [float((base_control - control_lp).mean()) for _, control_lp in edited]
    random_median = float(np.median(ratios[1:]))
    random_drop = float(np.median(drops[1:]))
    return Verification(
        concept=con["name"],
        k=k,
        alpha=float(alpha),
        heads=heads,
        random_heads=draws,
        mass_ratio=ratios[0],
        random_mass_ratios=ratios[1:],
        control_drop=drops[0],
        random_control_drops=drops[1:],
        verdict=verdict_for(ratios[0], random_median, drops[0], random_drop),
        n_probe=len(probe),
        n_control=len(pairs),
    )


def _default_probe(concept: dict, seed: int) -> list[str]:
    """A shipped concept's probe prompts, else the verify part of its eliciting contexts."""
    if concept.get("shipped"):
        return list(shipped_concepts.get(concept["name"]).probe_prompts)
    return eliciting_contexts(concept["name"], _words(concept), part="verify", seed=seed, n=N_PROBE)
