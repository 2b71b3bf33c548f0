"""What each head does, in the widget: the grid's "does" view and the head panel's effect bars.

SOMP's score says what a head writes. The selection (``hp.refine``, run by the widget in the
background) also flips every head and measures what that does (engine/judging/effects.py ``HeadEffects``,
``ranking.effects``): the concept's answer mass, each other category's, and the control facts. The
``EffectsView`` traits carry those numbers to the front end (arrays as binary buffers, as the score
grid does); the functions here turn them into synced values and labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets as t

from .._serialization import ARRAY

VIEWS = ("writes", "does")  # the accepted values of grid_view
MEASURING = "measuring what each head does (the selection runs in the background)..."


class EffectsView(t.HasTraits):
    """The synced traits of the grid's "what it does" view and the panel's effect bars.

    Mixed into HeadPursuit; ``_show_effects`` and ``_show_head_effect`` fill them."""

    grid_view = t.Unicode(
        "writes",
        help="str, default 'writes': what the grid shows: 'writes' (the SOMP score, see score) or 'does' (what "
        "flipping each head does: selectivity, on a diverging scale centred on 0); 'does' shows once the "
        "selection has measured the heads (effects_note says why not yet)",
    ).tag(sync=True)
    selectivity = t.Instance(
        np.ndarray,
        allow_none=True,
        help="float (n_layers, n_heads) or None: ranking.effects.selectivity, log units; > 0 where flipping the "
        "head cuts the concept more than the other categories; None before the selection measured it",
    ).tag(sync=True, **ARRAY)
    generic = t.Instance(
        np.ndarray,
        allow_none=True,
        help="bool (n_layers, n_heads) or None: ranking.effects.generic, heads whose flip also cuts the other "
        "categories (answer or format heads)",
    ).tag(sync=True, **ARRAY)
    exact = t.Instance(
        np.ndarray,
        allow_none=True,
        help="bool (n_layers, n_heads) or None: ranking.effects.exact, True where the numbers come from an edited "
        "pass at every position (else an estimate: the head flipped at the answer position only)",
    ).tag(sync=True, **ARRAY)
    effects_note = t.Unicode(
        "", help="str: why 'what it does' is not shown ('' once the selection's effects are in)"
    ).tag(sync=True)
    head_effect = t.Dict(
        help="{} or the panel head's flip (ranking.effects.head): {layer, head, concept (name), alpha, "
        "concept_ratio, others: [[category, ratio]], control_drop (nats), selectivity, generic, exact}"
    ).tag(sync=True)
    _effects: Any = None  # the shown ranking's HeadEffects, None before the selection

    @t.validate("grid_view")
    def _check_grid_view(self, proposal):
        if proposal["value"] not in VIEWS:
            raise t.TraitError(f"grid_view must be one of {', '.join(map(repr, VIEWS))}, got {proposal['value']!r}")
        return proposal["value"]

    def _show_effects(self, effects, note: str = "") -> None:
        """Show ``effects`` (a HeadEffects, or None with ``note`` saying why) in the grid and the panel."""
        self._effects = effects
        for name, value in grid_arrays(effects).items():
            setattr(self, name, value)
        self.effects_note = "" if effects is not None else note
        self._show_head_effect()

    def _show_head_effect(self) -> None:
        sel = list(getattr(self, "selected", []))
        self.head_effect = {} if self._effects is None or len(sel) != 2 else head_effect(self._effects, *sel)


def grid_arrays(effects) -> dict[str, np.ndarray | None]:
    """The "does" view's arrays of a HeadEffects (all None for None)."""
    if effects is None:
        return {"selectivity": None, "generic": None, "exact": None}
    return {
        "selectivity": np.asarray(effects.selectivity, dtype=np.float64),
        "generic": np.asarray(effects.generic, dtype=bool),
        "exact": np.asarray(effects.exact, dtype=bool),
    }


def head_effect(effects, layer: int, head: int) -> dict:
    """The panel's numbers for one head: ``effects.head(layer, head)`` with the concept's name, alpha, and
    the other categories as [[name, ratio]] (their order kept)."""
    e = effects.head(layer, head)
    return {
        "layer": int(layer),
        "head": int(head),
        "concept": effects.concept,
        "alpha": float(effects.alpha),
        "concept_ratio": e["concept"],
        "others": [[name, ratio] for name, ratio in e["others"].items()],
        "control_drop": e["control_drop"],
        "selectivity": e["selectivity"],
        "generic": e["generic"],
        "exact": e["exact"],
    }


def effects_note(*, enabled: bool, is_vlm: bool, selected: bool = False, error: Exception | None = None) -> str:
    """Why the shown ranking has no effects (what effects_note says): a vision-language model, a failed
    selection (``error``), a selection that kept no effects grid (``selected``), verify=False
    (not ``enabled``), else a selection still running."""
    if is_vlm:
        return "what each head does is measured for text models only"
    if error is not None:
        return f"not measured: the selection failed ({type(error).__name__}: {error})"
    if selected:
        return "not measured for this ranking: its selection flipped only its candidates (effects need the hf backend)"
    if not enabled:
        return "not measured: the widget was made with verify=False (hp.refine(model, w.ranking) measures it)"
    return MEASURING
