"""The widget's background selection and verdict line.

Once a ranking is shown, ``hp.refine`` selects its heads by what they do (``ranking.effects``: the grid's
"does" view and the head panel, effects_view.py; the selective set becomes ``ranking.top``), then
``hp.verify`` judges the applied edits with their own strengths, or with none applied the top ``top_k``
heads at ``top_alpha``. Both run on the widget's Worker (worker.py), latest wins: a change of the applied
edits re-checks them after VERIFY_DELAY and cancels the stale check; a new answer makes both yield.

Mixed into HeadPursuit (head_pursuit.py), whose ranking state (``_base``, ``_refined``, ``_worker``, ...) it reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import traitlets as t

from ..engine.heads import parse_head_key
from ..engine.progress import Progress, Report
from .effects_view import effects_note
from .worker import Cancel

if TYPE_CHECKING:
    from ..engine import HeadRanking
    from .worker import Worker

STAGE = "<stage>"  # where the verdict line's waiting text shows the running stage and its share done
VERIFY_DELAY = 0.3  # s: the verdict line re-checks the applied edits once they stop changing this long


class Checks(t.HasTraits):
    """The verdict traits, and the jobs that select and verify in the background."""

    verdict = t.Unicode(
        "",
        help="str: the one-line causal check (Verification.summary()) of the applied edits, or of the top top_k "
        "heads at top_alpha when none are applied (verdict_on says which), computed in the background",
    ).tag(sync=True)
    verdict_label = t.Unicode(
        "", help="str: the verdict word of the last verification (hp.verify: 'specific', 'generic', ...), '' while none"
    ).tag(sync=True)
    verdict_on = t.Unicode(
        "", help="str: what the verdict line judges: the applied edits, or the top heads when none are applied"
    ).tag(sync=True)

    # the widget's state these jobs read (set by HeadPursuit.__init__)
    _model: Any
    _worker: Worker
    _base: HeadRanking | None
    _refined: HeadRanking | None  # _base once hp.refine has selected its heads
    _refine_error: Exception | None  # why hp.refine failed on _base
    _verify_on: bool
    debounce: float

    if TYPE_CHECKING:  # HeadPursuit's

        def _set(self, **values) -> None: ...
        def _show_scores(self) -> None: ...
        def _show_effects(self, effects, note: str = "") -> None: ...
        def hold_sync(self) -> Any: ...

        strengths: dict
        top_k: int
        top_alpha: float

    def _select_heads(self) -> None:
        """Select the shown ranking's heads by what they do in the background (hp.refine: ranking.effects
        and the selective set), then verify; a ranking already selected is verified at once."""
        if not self._verify_on or self._base is None:
            return
        if self._base is self._refined or self._refine_error is not None:
            self._check_heads()
        else:
            self._worker.submit("refine", self._refine)

    def _refine(self, cancel: Cancel) -> None:
        import headpursuit_widget as hp  # the package loads this module lazily; this is its public API

        base = self._base
        if base is None:
            return
        report: Progress = False  # silent while the verdict judges the applied edits
        if not edits_of(self.strengths):  # the verdict line judges the top heads: they wait for the selection
            k = self.top_k
            line = f"selecting heads by what they do{STAGE}, then checking the top {k} against random heads..."
            report = self._waiting(cancel, line, on="")
        try:
            refined = hp.refine(self._model, base, cancel=cancel, progress=report)
        except Exception as exc:  # the note and the verdict line say so; the grid and answers stay usable
            error = exc  # `exc` is unbound once the except clause ends
            if self._worker.publish(cancel, lambda: self._refine_failed(base, error)):
                self._check_heads()
            return
        if self._worker.publish(cancel, lambda: self._show_refined(base, refined)):
            self._check_heads()

    def _refine_failed(self, base: HeadRanking, exc: Exception) -> None:
        if self._base is base:
            self._refine_error = exc
            self._show_effects(None, self._no_effects_note())

    def _show_refined(self, base: HeadRanking, refined: HeadRanking) -> None:
        if self._base is base:
            with self.hold_sync():
                self._base = self._refined = refined
                self._show_scores()
                self._show_effects(refined.effects, self._no_effects_note())

    def _no_effects_note(self) -> str:
        """effects_note for the shown ranking when it has no effects."""
        selected = self._base is not None and self._base is self._refined
        return effects_note(
            enabled=self._verify_on, is_vlm=self._model.is_vlm, selected=selected, error=self._refine_error
        )

    def _check_heads(self, delay: float | None = None) -> None:
        """Schedule the background causal check of the applied edits, else of the top heads (latest wins,
        a running check of older edits is cancelled)."""
        if self._verify_on and self._base is not None:
            self._worker.submit("verify", self._verify, self.debounce if delay is None else max(delay, self.debounce))

    def _verify(self, cancel: Cancel) -> None:
        """hp.verify the applied edits with their own strengths, or with none applied the selected ranking's
        top ``top_k`` heads at ``top_alpha``; the summary goes to ``verdict``, its word to ``verdict_label``."""
        import headpursuit_widget as hp

        base, k, alpha, edits = self._base, self.top_k, self.top_alpha, edits_of(self.strengths)
        selected = base is self._refined
        if not edits and not selected:  # the top heads wait for the selection, which checks them when done
            if self._refine_error is not None:
                message = f"verification failed: {type(self._refine_error).__name__}: {self._refine_error}"
                self._worker.publish(cancel, lambda: self._set(verdict=message, verdict_label="", verdict_on=""))
            return
        on = verdict_subject(edits, k, alpha, selected)
        line = f"checking {'the applied edits' if edits else f'the top {k} heads'} against random heads{STAGE}..."
        report = self._waiting(cancel, line, on=on)
        try:
            if edits:
                verification = hp.verify(self._model, base, edits=edits, cancel=cancel, progress=report)
            else:
                verification = hp.verify(self._model, base, k=k, alpha=alpha, cancel=cancel, progress=report)
        except Exception as exc:  # the verdict line says so; the grid and answers stay usable
            message = f"verification failed: {type(exc).__name__}: {exc}"
            self._worker.publish(cancel, lambda: self._set(verdict=message))
            return
        result = {"verdict": verification.summary(), "verdict_label": verification.verdict}
        self._worker.publish(cancel, lambda: self._set(**result))

    def _waiting(self, cancel: Cancel, line: str, on: str) -> Report:
        """Show ``line`` (without its STAGE) as the verdict line of ``on`` while a check runs; returns the
        progress= for hp.refine and hp.verify (engine/progress.py), which shows " (stage: n%)" in STAGE once
        a stage starts and after each further quarter of it (few updates: the line is aria-live)."""
        first = line.replace(STAGE, "")
        self._worker.publish(cancel, lambda: self._set(verdict=first, verdict_label="", verdict_on=on))
        shown: list = [None]

        def report(stage: str, done: int, total: int) -> None:
            percent = 100 * done // max(total, 1)
            if shown[0] != (stage, percent // 25):
                shown[0] = (stage, percent // 25)
                text = line.replace(STAGE, f" ({stage}: {percent}%)")
                self._worker.publish(cancel, lambda: self._set(verdict=text))

        return report


def edits_of(strengths: dict) -> dict[tuple[int, int], float]:
    """The applied edits of a strengths trait, {(layer, head): alpha}, without alpha 1 (no edit)."""
    return {parse_head_key(key): float(a) for key, a in sorted(strengths.items()) if float(a) != 1.0}


def heads_text(edits: dict[tuple[int, int], float]) -> str:
    """The edits as text, e.g. "L22H8 x-1, L29H7 x-1"."""
    return ", ".join(f"L{layer}H{head} x{alpha:g}" for (layer, head), alpha in sorted(edits.items()))


def verdict_subject(edits: dict, k: int, alpha: float, selected: bool) -> str:
    """What the verdict line judges: the applied ``edits``, else the top ``k`` heads at ``alpha`` (of the
    selective set once ``selected``)."""
    if edits:
        return f"the applied edits ({heads_text(edits)})"
    top = "the top head" if k == 1 else f"the top {k} heads"
    return f"{top}{' of the selective set' if selected else ''} x{alpha:g}"
