"""HeadPursuit: the Jupyter widget (anywidget) over the engine.

The widget shows; the engine decides. A ``Session`` (session.py) picks the prompts,
captures once per prompt set and ranks; ``hp.generate`` streams the answers. Ranking and
generation run on one background ``Worker`` (worker.py), so the kernel stays free; each kind
of work keeps only its latest request (latest wins), and slider moves are debounced.
Messages to and from the front end are defined in protocol.py.
"""

from __future__ import annotations

import atexit
import weakref

import traitlets as t

from .. import concepts as shipped
from .. import protocol
from ..engine import HeadRanking
from ..engine.activations.images import to_png
from ..engine.concepts.dictionary import RULES
from ..engine.concepts.text import concept_from_text
from .answers import Answers
from .checks import Checks
from .effects_view import EffectsView
from .ranking_view import RankingView
from .session import Session, opening_prompt, resolve_samples
from .sharing import Sharing
from .traits import WidgetTraits
from .validation import Validation
from .worker import Worker

CLOSE_TIMEOUT = 10.0  # s: how long close() waits for the running job to reach a cancellation point
_LIVE: weakref.WeakSet = weakref.WeakSet()  # widgets whose background work the interpreter's exit stops


@atexit.register
def _close_all() -> None:
    """At interpreter (or kernel) exit, close every live widget: no background job may still run while
    the interpreter tears down the modules it uses (that aborted the process)."""
    for widget in list(_LIVE):
        widget.close()


class HeadPursuit(Sharing, Answers, RankingView, Checks, EffectsView, Validation, WidgetTraits):
    """Find a concept's heads on a layer x head grid, read their tokens, edit them and see
    the edited answer stream next to the unedited one.

    ``HeadPursuit(model, concept="colours")`` returns at once and ranks in the background on the
    concept's eliciting contexts (engine/concepts/contexts.py; ``status`` "ranking", ``progress``;
    ``w.wait()`` blocks until done), then selects heads by what they do (hp.refine: ``ranking.effects``,
    shown by ``grid_view="does"`` and the head panel) and verifies the applied edits, or the top heads
    when none are applied (``verdict``);
    ``HeadPursuit(model, ranking=r, prompt=...)`` shows a ranking made earlier. With ``prompts=``
    every concept, typed word lists included, ranks on those prompts (one cached capture).
    ``compare="animals"`` shows the concept's scores minus another concept's.
    For a vision-language model, ``samples=[(image, prompt), ...]`` (or ``images=[...]`` with
    ``prompt=``) ranks over the image tokens (``positions="image"`` by default) and fills the
    image strip: the answers are generated on the picked sample's image (``sample_index``) with
    the text in ``prompt`` (by default the picked sample's prompt). For text models ``prompt=None``
    opens on a prompt that elicits the concept (``opening_prompt``); ``prompt=""`` generates nothing.

    Every synced trait states its type, default and meaning in its ``help``; the front end's
    copy of the list is js/model.ts ``WidgetModel``.
    """

    def __init__(
        self,
        model,
        concept=None,
        *,
        ranking: HeadRanking | None = None,
        prompts=None,
        samples=None,
        images=None,
        prompt: str | None = None,
        sample_index: int = 0,
        max_new_tokens: int = 32,
        score: str = "z",
        k: int | None = None,
        n_null: int | None = None,
        positions: str | None = None,
        top_k: int = 4,
        top_alpha: float = -1.0,
        debounce: float = 0.05,
        seed: int = 0,
        rule: str = "whole_word",
        verify: bool = True,
        compare: str = "",
        grid_view: str = "writes",
    ):
        for attr in ("fingerprint", "n_layers", "n_heads", "tokenizer", "adapter"):
            if not hasattr(model, attr):
                raise TypeError(f"model must be a HeadModel from hp.load_model or hp.wrap, got {type(model).__name__}")
        if (concept is None) == (ranking is None):
            raise ValueError("pass exactly one of concept= (a shipped name or a word list) or ranking= (a HeadRanking)")
        if ranking is not None and ranking.fingerprint != model.fingerprint:
            raise ValueError(f"the ranking was made for model {ranking.model_name!r}, not for {model.name!r}")
        self._model = model
        pick_prompt = prompt is None  # None: open on a prompt that elicits the concept
        prompts, strip, prompt = resolve_samples(
            model,
            prompts=prompts,
            samples=samples,
            images=images,
            prompt=prompt or "",
            sample_index=sample_index,
            need_prompt=ranking is None,
        )
        parsed = concept_from_text(concept) if ranking is None else None
        self._session = Session(model, prompts=prompts, positions=positions, k=k, n_null=n_null, seed=seed)
        self._base: HeadRanking | None = None
        self._refined: HeadRanking | None = None  # _base once hp.refine has recommended its heads
        self._refine_error: Exception | None = None  # why hp.refine failed on _base
        self._other: HeadRanking | None = None  # the compared concept's ranking (compare), None when off
        self._rank_error: Exception | None = None  # why the first ranking failed, until one succeeds
        self._baseline_key = self._edited_key = self._baseline_prob = None
        self._verify_on = verify and not model.is_vlm  # refine and verify measure text predictions
        self._display = None  # the display handle whose snapshot wait() refreshes
        self.debounce = debounce
        self._worker = Worker(self._show_error)
        _LIVE.add(self)
        super().__init__(
            n_layers=model.n_layers,
            n_heads=model.n_heads,
            score_names=list(HeadRanking.score_names),
            rule_names=list(RULES),
            rule=rule,
            concept_names=shipped.names(),
            max_new_tokens=max_new_tokens,
            top_k=top_k,
            top_alpha=top_alpha,
            score=score,
            images=[to_png(im) for im in strip],
            sample_index=sample_index,
            grid_view=grid_view,
        )
        self.effects_note = self._no_effects_note()
        if ranking is not None:
            self.set_trait("concept", ranking.concept.get("name", ""))
            self._show_ranking(ranking)
            name = ranking.concept.get("name", "")
            parsed = name if name in shipped.names() else list(ranking.concept.get("words", [])) or name
        else:
            self.set_trait("concept", concept if isinstance(concept, str) else ", ".join(map(str, concept)))
            self.set_trait("status", "ranking")
            self._worker.submit("rank", lambda cancel: self._rank(parsed, cancel))
        self.on_msg(self._on_msg)
        self.prompt = opening_prompt(parsed) if pick_prompt and not strip else prompt
        self._ready = True
        self._show_code()
        if ranking is not None:
            self._select_heads()
            self.regenerate()
        if compare:
            try:
                self.compare = compare  # validated like the box; ranked in the background after the concept
            except t.TraitError:
                self.close()  # stop the ranking already started: nobody holds this widget
                raise

    @property
    def model(self):
        """The HeadModel the widget edits."""
        return self._model

    @property
    def session(self) -> Session:
        """The engine session that ranks for this widget (prompts, positions, cache)."""
        return self._session

    def wait(self, timeout: float | None = 60.0, *, verdict: bool = False) -> bool:
        """Block until the background work is done: ranking, generation, and the selection and verdict
        they start; False if ``timeout`` seconds (None: no limit) passed first. With ``verdict=True`` True
        also means the verdict line holds its result (or verification is off or has nothing to judge).
        When done, the static snapshot of the widget's last display is brought up to date."""
        done = self._worker.wait(timeout) and (not verdict or self._verdict_in())
        if done and self._display is not None:
            self._display.update(self._bundle(), raw=True)
        return done

    def _verdict_in(self) -> bool:
        """True when the verdict line holds a result, or none is coming (verification off, no ranking)."""
        return not self._verify_on or self._base is None or bool(self.verdict_label) or "failed" in self.verdict

    def close(self) -> None:
        """Stop the background work (its running job is cancelled and joined, at most CLOSE_TIMEOUT s) and
        close the widget; a closed widget starts no new work. Called for every live widget at exit."""
        self._ready = False
        worker = self.__dict__.get("_worker")
        if worker is not None:
            worker.close(CLOSE_TIMEOUT)
        _LIVE.discard(self)
        super().close()

    def __repr__(self) -> str:
        return f"HeadPursuit(model={self._model.name!r}, concept={self.concept!r}, status={self.status!r})"

    def set_state(self, sync_data):
        """Apply an update from the front end; one the validators reject is sent back as the value that
        stands (so the browser never keeps showing it) and reported in the error line."""
        try:
            super().set_state(sync_data)
        except t.TraitError as exc:
            self.send_state(list(sync_data))
            self._show_error(exc)

    def _initialised(self) -> bool:
        return self.__dict__.get("_ready", False)

    def _on_msg(self, widget, content, buffers):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == protocol.STOP:
            self.stop()
        elif kind == protocol.APPLY_TOP:
            try:
                self.edit_top()
            except Exception as exc:
                self._show_error(exc)
        elif kind == protocol.GENERATE:
            self.regenerate()

    def _set(self, **values) -> None:
        with self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    def _show_error(self, exc: Exception, what: str = "") -> None:
        """Show ``exc`` (prefixed by ``what``) in the status line; status "error"."""
        message = f"{what}: {exc}" if what else str(exc)
        self._set(error=f"{type(exc).__name__}: {message}", status="error", progress=0.0)
