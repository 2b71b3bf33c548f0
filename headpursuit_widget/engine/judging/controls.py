"""The factual control task split in two halves: one for selection, the other for verify().

The pairs are the shipped control (hp.concepts.control(), several domains: opposites, science,
literature, units, ...) restricted to the facts this model gets right (its top next token is the
answer's first token), cached per model fingerprint; the even-numbered facts are the "refine" half,
the odd-numbered ones the "verify" half. A model that knows fewer than MIN_KNOWN of them (a small or
random model) is measured on all of them: the drop in the answers' log-probability still measures
collateral damage. A fact whose answer token belongs to a category being measured (the concept or
an "other" category) is left out, so a head that carries that category is never "damaging" because
the control asks for its own answers.
"""

from __future__ import annotations

import threading

from ..concepts import shipped as shipped_concepts
from ..errors import HeadPursuitError
from .probes import answer_ids, facts_known

HALVES = ("refine", "verify")
MIN_KNOWN = 4
_KNOWN: dict = {}


def control_split(
    model, *, half: str, exclude_ids=(), n: int | None = None, cancel: threading.Event | None = None
) -> list[tuple[str, str]]:
    """The `half` ("refine" or "verify") of the control facts this model answers right, without the
    facts whose answer's first token is in `exclude_ids` (token ids of the categories being measured);
    the domains take turns (one fact of each, then the next of each, ...), and `n` keeps the first n."""
    if half not in HALVES:
        raise HeadPursuitError(f"half must be one of {HALVES}, got {half!r}")
    key = model.fingerprint
    if key not in _KNOWN:
        pairs = shipped_concepts.control()
        known = facts_known(model, pairs, cancel=cancel)
        _KNOWN[key] = known if len(known) >= MIN_KNOWN else pairs
    pairs = _KNOWN[key][HALVES.index(half) :: 2]
    excluded = {int(i) for i in exclude_ids}
    kept = [pair for pair, first in zip(pairs, answer_ids(model.tokenizer, pairs)) if first not in excluded]
    return interleaved(kept)[:n]


def interleaved(pairs) -> list[tuple[str, str]]:
    """The pairs with their domains taking turns, each domain's facts in their order."""
    by_domain: dict = {}
    for pair, domain in zip(pairs, domains_of(pairs)):
        by_domain.setdefault(domain, []).append(pair)
    rounds = max((len(v) for v in by_domain.values()), default=0)
    return [facts[i] for i in range(rounds) for facts in by_domain.values() if i < len(facts)]


def domains_of(pairs) -> list[str]:
    """The domain of each (prompt, answer) pair: its shipped control domain, "custom" for other pairs."""
    known = shipped_concepts.control_domains()
    return [known.get((p, a), "custom") for p, a in pairs]
