"""Export and share: the setup as JSON (and back), the static HTML snapshot, the notebook display."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import traitlets as t

from ..engine import HeadPursuitError
from ..engine.heads import parse_head_key
from . import snapshot
from .ranking_view import _PANEL_TOKENS

SETUP_FORMAT = "headpursuit-widget setup 1"  # the "format" field of to_json's text
_SETUP_FIELDS = ("concept", "prompt", "strengths", "selected", "score", "top_k", "top_alpha", "max_new_tokens")
_OPTIONAL_FIELDS = {"compare": "", "grid_view": "writes"}  # setups saved before these existed lack them


class Sharing(t.HasTraits):
    """to_json / from_json, snapshot() and the display bundles."""

    _model: Any
    _display: Any
    _effects: Any

    def to_json(self) -> str:
        """The whole setup as plain JSON: model name, concept, compared concept, prompt, strengths,
        selected head, score, grid_view, top_k, top_alpha, max_new_tokens. ``HeadPursuit.from_json(model,
        text)`` restores it."""
        setup = {"format": SETUP_FORMAT, "model": self._model.name}
        setup.update({name: getattr(self, name) for name in (*_OPTIONAL_FIELDS, *_SETUP_FIELDS)})
        return json.dumps(setup, indent=1)

    @classmethod
    def from_json(cls, model, text: str, **kwargs):
        """A widget set up as ``to_json`` saved it (re-ranked on ``model``; ``kwargs`` go to the
        constructor). HeadPursuitError if ``text`` is not such a setup or names another model."""
        try:
            setup = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise HeadPursuitError(f"from_json needs the text of w.to_json(), got invalid JSON ({exc})") from None
        if not isinstance(setup, dict) or setup.get("format") != SETUP_FORMAT:
            raise HeadPursuitError(f"from_json needs the text of w.to_json() (format {SETUP_FORMAT!r})")
        missing = [name for name in ("model", *_SETUP_FIELDS) if name not in setup]
        if missing:
            raise HeadPursuitError(f"the setup lacks {', '.join(missing)}")
        if setup["model"] != model.name:
            raise HeadPursuitError(f"the setup was saved for model {setup['model']!r}, not for {model.name!r}")
        options = {name: setup[name] for name in ("prompt", "score", "top_k", "top_alpha", "max_new_tokens")}
        for name, default in _OPTIONAL_FIELDS.items():
            options[name] = setup.get(name, default)
            if not isinstance(options[name], str):
                raise HeadPursuitError(f"the setup's {name} must be text, got {options[name]!r}")
        w = cls(model, concept=setup["concept"], **options, **kwargs)
        with w.hold_trait_notifications():
            w.strengths = setup["strengths"]
            w.selected = setup["selected"]
        return w

    def snapshot(self) -> str:
        """Self-contained HTML of the grid (as grid_view shows it), the selected (else the top) head's tokens
        and effects, the verdict and the answers."""
        r = self._current()
        head = None
        if r is not None:
            head = tuple(self.selected) if len(self.selected) == 2 else r.top(1)[0]
        does = self.grid_view == "does" and self._effects is not None
        return snapshot.snapshot_html(
            concept=self.concept,
            score_name=self.score,
            scores=None if r is None else np.asarray(r.scores),
            significant=None if r is None else np.asarray(r.significant),
            head=head,
            tokens=[] if head is None else r.tokens(*head, _PANEL_TOKENS),
            edits={parse_head_key(key): alpha for key, alpha in self.strengths.items()},
            prompt=self.prompt,
            baseline=self.baseline_text,
            edited=self.edited_text,
            status=self.status,
            error=self.error,
            does=(self.selectivity, self.generic) if does else None,
            head_effect=None if head is None or self._effects is None else self._effects.head(*head),
            verdict=f"{self.verdict_on}: {self.verdict}" if self.verdict_on else self.verdict,
        )

    def _bundle(self) -> dict:
        data, _ = super()._repr_mimebundle_()
        return {**data, "text/html": self.snapshot()}

    def _repr_mimebundle_(self, **kwargs):
        """anywidget's bundle (the live view) plus "text/html": the static snapshot, which HTML
        exports and kernel-less viewers show instead."""
        data, metadata = super()._repr_mimebundle_(**kwargs)
        return {**data, "text/html": self.snapshot()}, metadata

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._display = display(self._bundle(), raw=True, display_id=True)
