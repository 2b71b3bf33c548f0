"""The factual control task split in two halves: one for selection, the other for verify().

The pairs are the shipped control (hp.concepts.control(), several domains: opposites, science,
literature, units, ...) restricted to the facts this model gets right (its top next token is the
answer's first token), kept per model (in memory, and on disk: judging/kept.py); the even-numbered facts
are the "refine" half, the odd-numbered ones the "verify" half. A model that knows fewer than MIN_KNOWN
of them (a small or random model) is measured on all of them: the drop in the answers' log-probability
still measures collateral damage. A fact whose answer token belongs to a category being measured (the
concept or an "other" category) is left out, so a head that carries that category is never "damaging"
because the control asks for its own answers.
"""

from __future__ import annotations

import threading

import numpy as np

from ..concepts import shipped as shipped_concepts
from ..errors import HeadPursuitError
from . import kept
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
        _KNOWN[key] = _known(model, shipped_concepts.control(), cancel)
    pairs = _KNOWN[key][HALVES.index(half) :: 2]
    excluded = {int(i) for i in exclude_ids}
    kept = [pair for pair, first in zip(pairs, answer_ids(model.tokenizer, pairs)) if first not in excluded]
    return interleaved(kept)[:n]


def _known(model, pairs, cancel) -> list[tuple[str, str]]:
    """The pairs this model answers right (all of them when it knows fewer than MIN_KNOWN), read from disk
    when measured before (judging/kept.py)."""
    local = model.module if model.backend == "hf" else None  # passes of this process's module are kept
    path = kept.entry_path(model.fingerprint, local, "control", pairs)
    found = kept.load_arrays(path, "kept control")
    if found is None:
        right = set(facts_known(model, pairs, cancel=cancel))
        found = {"known": np.array([pair in right for pair in pairs])}
        if path is not None:
            kept.store_arrays(path, found)
    known = [pair for pair, ok in zip(pairs, found["known"]) if ok]
    return known if len(known) >= MIN_KNOWN else list(pairs)


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
