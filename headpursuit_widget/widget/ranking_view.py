"""The concept and compare actions: ranking in the background and showing a ranking on the grid and panel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from ..engine import HeadPursuitError, HeadRanking
from ..engine.concepts.text import concept_from_text
from .worker import SUPERSEDED, Cancel

if TYPE_CHECKING:
    from .session import Session
    from .worker import Worker

_HEAD_TOKENS = 3
_PANEL_TOKENS = 10


def _head_stats(r: HeadRanking, layer: int, head: int) -> dict:
    """The panel's numbers for one head of ``r``: its EVR, the null's mean and sd, significance."""
    return {
        "layer": layer,
        "head": head,
        "evr": float(r.score_table["evr"][layer, head]),
        "null_mean": float(r.null_mean[layer, head]),
        "null_sd": float(r.null_sd[layer, head]),
        "significant": bool(r.significant[layer, head]),
    }


class RankingView(t.HasTraits):
    """Ranks the concept (and the compared concept) on the worker and shows the result."""

    _model: Any
    _session: Session
    _worker: Worker
    _base: HeadRanking | None
    _refined: HeadRanking | None
    _refine_error: Exception | None
    _other: HeadRanking | None
    _rank_error: Exception | None

    @property
    def ranking(self) -> HeadRanking | None:
        """The current HeadRanking, ordered by the score the grid shows (``score``); None while the
        first ranking runs (``wait()`` for it). HeadPursuitError if the first ranking failed."""
        if self._base is None and self._rank_error is not None:
            raise HeadPursuitError(
                f"the ranking of {self.concept!r} failed ({type(self._rank_error).__name__}: {self._rank_error}); "
                "set concept to another concept"
            ) from self._rank_error
        return self._current()

    def _current(self) -> HeadRanking | None:
        return None if self._base is None else self._base.with_score(self.score)

    @t.observe("score")
    def _on_score(self, change):
        if self._base is not None:
            self._show_scores()

    @t.observe("selected")
    def _on_selected(self, change):
        self._show_head()

    @t.observe("concept", "rule")
    def _on_concept(self, change):
        if not self._initialised():
            return
        try:
            parsed = concept_from_text(self.concept)
        except HeadPursuitError as exc:
            self._show_error(exc, f"concept not ranked {self._stale_grid()}".strip())
            return
        self.set_trait("status", "ranking")
        self._worker.cancel("refine", SUPERSEDED)
        self._worker.cancel("verify", SUPERSEDED)
        self._worker.submit("rank", lambda cancel: self._rank(parsed, cancel))
        if change["name"] == "rule" and self.compare:
            self._on_compare(change)  # the compared concept's dictionary follows the rule too

    @t.observe("compare")
    def _on_compare(self, change):
        if not self._initialised():
            return
        self._worker.cancel("compare", SUPERSEDED)
        self._other = None
        self._show_scores()
        if self.compare:
            parsed = concept_from_text(self.compare)
            self.set_trait("status", "ranking")
            self._worker.submit("compare", lambda cancel: self._rank_other(parsed, cancel))

    def _rank(self, concept, cancel: Cancel) -> None:
        self.set_trait("error", "")
        self.set_trait("status", "ranking")
        try:
            r = self._session_rank(concept, cancel, first=True)
        except Exception as exc:
            if cancel.is_set():
                return  # a newer concept or close() took over
            if self.grid_note:  # the failed concept's first grid goes: the grid shows the last full ranking
                self.set_trait("grid_note", "" if self._base else "first grid only: the full ranking failed")
                self._show_scores()
            if self._base is None:
                self._rank_error = exc
            self._show_error(exc, f"ranking failed {self._stale_grid()}".strip())
            self._select_heads()  # the shown ranking's selection and verdict, cancelled by the new concept
            return
        if self._worker.publish(cancel, lambda: self._show_ranking(r)):
            self._select_heads()
            if self.prompt.strip():
                self.regenerate()  # the next-token readout counts the new concept's tokens

    def _session_rank(self, concept, cancel: Cancel, *, first: bool = False) -> HeadRanking:
        """Session.rank of ``concept`` with the widget's rule, shown in ``progress``; Cancelled once ``cancel``
        is set (checked at each captured batch). ``first``: show a first grid while the rest is captured."""
        self.set_trait("progress", 0.01)

        def show_first(r: HeadRanking, n: int, total: int) -> None:
            self._worker.publish(cancel, lambda: self._show_first(r, n, total))

        return self._session.rank(
            concept,
            rule=self.rule,
            on_progress=lambda f: self.set_trait("progress", f),
            cancel=cancel,
            on_first=show_first if first else None,
        )

    def _show_first(self, r: HeadRanking, n: int, total: int) -> None:
        """A first grid, from the first ``n`` of the ``total`` contexts while the rest are captured (a new
        concept's grid comes sooner); ``grid_note`` says so until the full ranking replaces it. The panel,
        the selection and ``ranking`` wait for the full ranking."""
        if self._other is not None:
            return  # a comparison's grid is a difference of two full rankings
        with self.hold_sync():
            self.grid_note = f"first grid, from {n} of {total} contexts: refining as the rest are read"
            self.scores_minus = ""
            self.significant = np.asarray(r.significant, dtype=bool)
            self.scores = np.asarray(r.with_score(self.score).scores, dtype=np.float64)

    def _rank_other(self, concept, cancel: Cancel) -> None:
        """Rank the compared concept (as _rank ranks the concept); the grid then shows the difference."""
        try:
            other = self._session_rank(concept, cancel)
        except Exception as exc:
            if cancel.is_set():
                return
            self._show_error(exc, f"compare not ranked (the grid shows {self.concept!r} alone)")
            return

        def show() -> None:
            self._other = other
            self._show_scores()
            self._set(progress=0.0, status="ready" if self.status == "ranking" else self.status)

        self._worker.publish(cancel, show)

    def _stale_grid(self) -> str:
        """Says which concept the grid still shows after a failed one ('' before any ranking)."""
        if self._base is None:
            return ""
        return f"(the grid still shows the previous concept {self._base.concept.get('name', '')!r})"

    def _show_ranking(self, r: HeadRanking) -> None:
        with self.hold_sync():
            self._base, self._rank_error, self._refine_error = r, None, None
            self.grid_note = ""
            self._refined = r if "selection" in r.options else None  # hp.rank_heads selects by default
            self.verdict = self.verdict_label = self.verdict_on = ""
            self._show_effects(r.effects, self._no_effects_note())
            self.concept_words = list(r.concept.get("words", []))
            self.head_tokens = [
                ", ".join(tok.strip() or repr(tok) for tok, _ in r.tokens(layer, head, _HEAD_TOKENS))
                for layer in range(r.n_layers)
                for head in range(r.n_heads)
            ]
            self._show_scores()
            self.progress = 0.0
            if self.status in ("ranking", "error"):
                self.status = "ready"

    def _show_scores(self) -> None:
        """The grid's arrays: the active score, or its difference from the compared concept's."""
        r, other = self._current(), self._other
        if r is None:
            return
        with self.hold_sync():
            self.scores = np.asarray(r.scores if other is None else r.difference(other), dtype=np.float64)
            self.scores_minus = "" if other is None else self.compare
            self.significant = np.asarray(r.significant, dtype=bool)
            self._show_head()

    def _show_head(self) -> None:
        r = self._current()
        if r is None or len(self.selected) != 2:
            self.tokens, self.lens_tokens, self.curve, self.head_stats, self.compare_stats = [], [], None, {}, {}
            self.head_effect = {}
            return
        layer, head = self.selected
        with self.hold_sync():
            self._show_head_effect()
            self.compare_stats = {} if self._other is None else _head_stats(self._other, layer, head)
            self.head_stats = _head_stats(r, layer, head)
            self.tokens = [[tok, w] for tok, w in r.tokens(layer, head, _PANEL_TOKENS)]
            self.lens_tokens = [[tok, v] for tok, v in r.lens_tokens(layer, head, _PANEL_TOKENS)]
            self.curve = r.evr_curve(layer, head)
