"""The factual control task split in two halves: one for refine(), the other for verify().

The pairs are the shipped control (hp.concepts.control()) restricted to the facts this model gets
right (its top next token is the answer's first token), cached per model fingerprint; the even-
numbered facts are the "refine" half, the odd-numbered ones the "verify" half. A model that knows
fewer than MIN_KNOWN of them (a small or random model) is measured on all of them: the drop in the
answers' log-probability still measures collateral damage.
"""

from __future__ import annotations

import threading

from .errors import HeadPursuitError
from .probes import facts_known
from .shipped import concepts as shipped_concepts

HALVES = ("refine", "verify")
MIN_KNOWN = 4
_KNOWN: dict = {}


def control_split(model, *, half: str, cancel: threading.Event | None = None) -> list[tuple[str, str]]:
    """The `half` ("refine" or "verify") of the control facts this model answers right."""
    if half not in HALVES:
        raise HeadPursuitError(f"half must be one of {HALVES}, got {half!r}")
    key = model.fingerprint
    if key not in _KNOWN:
        pairs = shipped_concepts.control()
        known = facts_known(model, pairs, cancel=cancel)
        _KNOWN[key] = known if len(known) >= MIN_KNOWN else pairs
    known = _KNOWN[key]
    return known[HALVES.index(half) :: 2]
