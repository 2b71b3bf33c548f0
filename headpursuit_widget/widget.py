"""HeadPursuit: the Jupyter widget (anywidget) over the engine.

The widget shows; the engine decides. A ``Session`` (engine/session.py) picks the prompts,
captures once per prompt set and ranks; ``hp.generate`` streams the answers. Ranking and
generation run on one background ``Worker`` (worker.py), so the kernel stays free; each kind
of work keeps only its latest request (latest wins), and slider moves are debounced.
Messages to and from the front end are defined in protocol.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import anywidget
import numpy as np
import traitlets as t

from . import concepts as shipped
from . import protocol, snapshot
from ._serialization import ARRAY
from .checks import VERIFY_DELAY, Checks, edits_of
from .effects_view import EffectsView
from .engine import HeadPursuitError, HeadRanking, generate
from .engine.concept_text import concept_from_text
from .engine.dictionary import RULES
from .engine.edits import parse_edits
from .engine.generation import check_max_new_tokens
from .engine.heads import head_key, parse_head_key
from .engine.images import to_png
from .engine.ranking import check_score
from .engine.session import Session, opening_prompt, resolve_samples
from .experiments import next_token_probs
from .worker import CLOSED, STOPPED, SUPERSEDED, Cancel, Worker

_STATIC = Path(__file__).parent / "static"
_MISSING_BUNDLE = """
export default { render({ el }) {
  el.textContent = "headpursuit_widget/static/widget.js is missing: run `npm ci && npm run build` "
    + "in the source checkout (or reinstall the package) and re-run this cell.";
} };
"""
_HEAD_TOKENS = 3
_PANEL_TOKENS = 10
SETUP_FORMAT = "headpursuit-widget setup 1"  # the "format" field of to_json's text
_SETUP_FIELDS = ("concept", "prompt", "strengths", "selected", "score", "top_k", "top_alpha", "max_new_tokens")
_OPTIONAL_FIELDS = {"compare": "", "grid_view": "writes"}  # setups saved before these existed lack them


def _trait_error(what: str, exc: HeadPursuitError) -> t.TraitError:
    return t.TraitError(f"{what}: {exc}")


def _parsed_or_none(text: str):
    """``concept_from_text(text)``, or None for text that names no concept."""
    try:
        return concept_from_text(text)
    except HeadPursuitError:
        return None


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


class HeadPursuit(Checks, EffectsView, anywidget.AnyWidget):
    """Find a concept's heads on a layer x head grid, read their tokens, edit them and see
    the edited answer stream next to the unedited one.

    ``HeadPursuit(model, concept="colours")`` returns at once and ranks in the background on the
    concept's eliciting contexts (engine/contexts.py; ``status`` "ranking", ``progress``;
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

    _esm = _STATIC / "widget.js" if (_STATIC / "widget.js").is_file() else _MISSING_BUNDLE
    _css = _STATIC / "widget.css" if (_STATIC / "widget.css").is_file() else ""

    n_layers = t.Int(0, help="int: the model's number of layers (grid rows); set from the model").tag(sync=True)
    n_heads = t.Int(0, help="int: attention heads per layer (grid columns); set from the model").tag(sync=True)
    scores = t.Instance(
        np.ndarray, allow_none=True, help="float (n_layers, n_heads) or None: the shown score of every head"
    ).tag(sync=True, **ARRAY)
    significant = t.Instance(
        np.ndarray,
        allow_none=True,
        help="bool (n_layers, n_heads) or None: heads whose EVR is significantly above the null (ranking.significant)",
    ).tag(sync=True, **ARRAY)
    score = t.Unicode("z", help="str, default 'z': the score the grid shows (see score_names)").tag(sync=True)
    score_names = t.List(t.Unicode(), help="list[str]: the accepted values of score").tag(sync=True)
    selected = t.List(t.Int(), help="[] or [layer, head], default []: the head shown in the side panel").tag(sync=True)
    strengths = t.Dict(
        value_trait=t.Float(), help="{'layer.head': alpha}, default {}: the head edits (-1 flip, 0 ablate, >1 boost)"
    ).tag(sync=True)
    head_tokens = t.List(t.Unicode(), help="list[str], one per head (row-major): its top tokens, joined").tag(sync=True)
    tokens = t.List(help="[[token, weight]]: the selected head's top SOMP tokens").tag(sync=True)
    lens_tokens = t.List(help="[[token, logit]]: the selected head's top Logit Lens tokens").tag(sync=True)
    head_stats = t.Dict(
        help="{layer, head, evr, null_mean, null_sd, significant} of the head the panel shows ({} when none): its "
        "EVR next to the null's mean and sd; the panel shows tokens only once this matches selected"
    ).tag(sync=True)
    curve = t.Instance(
        np.ndarray, allow_none=True, help="float (k,) or None: the selected head's EVR after each SOMP step"
    ).tag(sync=True, **ARRAY)
    concept = t.Unicode("", help="str: the concept as typed (a shipped name, a word file or words)").tag(sync=True)
    compare = t.Unicode(
        "",
        help="str, default '': a second concept, typed as concept is; the grid then shows the concept's score minus "
        "this one's (ranked like concept, in the background); '' compares nothing",
    ).tag(sync=True)
    scores_minus = t.Unicode(
        "", help="str: '' when scores are the concept's own; else the compared concept whose scores they subtract"
    ).tag(sync=True)
    compare_stats = t.Dict(
        help="head_stats of the compared concept for the panel's head ({} when none or not compared yet)"
    ).tag(sync=True)
    concept_names = t.List(t.Unicode(), help="list[str]: the shipped concepts offered").tag(sync=True)
    rule = t.Unicode("whole_word", help="str, default 'whole_word': the sub-token rule words are ranked with").tag(
        sync=True
    )
    rule_names = t.List(t.Unicode(), help="list[str]: the accepted values of rule (engine/dictionary.py RULES)").tag(
        sync=True
    )
    concept_words = t.List(t.Unicode(), help="list[str]: the ranked concept's words, marked in answers").tag(sync=True)
    prompt = t.Unicode("", help="str, default '': the prompt answers are generated from ('' generates none)").tag(
        sync=True
    )
    max_new_tokens = t.Int(
        32, help=f"int from 1 to {protocol.MAX_NEW_TOKENS}, default 32: the length limit of each answer"
    ).tag(sync=True)
    baseline_text = t.Unicode("", help="str: the unedited answer (complete, or as far as it got when stopped)").tag(
        sync=True
    )
    edited_text = t.Unicode("", help="str: the answer with the strengths applied").tag(sync=True)
    concept_prob = t.List(
        t.Float(),
        help="[baseline, edited] or []: probability (0-1) that the next token after the prompt is one of the "
        "concept's tokens, without and with the edits; [] with no prompt or an image prompt",
    ).tag(sync=True)
    top_k = t.Int(4, help="int, default 4: how many recommended heads 'Edit top heads' edits").tag(sync=True)
    top_alpha = t.Float(-1.0, help="float, default -1: the alpha 'Edit top heads' sets").tag(sync=True)
    top_note = t.Unicode("", help="str: which selection 'Edit top heads' applied last ('' before)").tag(sync=True)
    status = t.Unicode("ready", help="str: 'ready', 'ranking', 'generating', 'stopped' or 'error' (see error)").tag(
        sync=True
    )
    progress = t.Float(0.0, help="float in [0, 1): ranking progress; 0 when idle").tag(sync=True)
    error = t.Unicode("", help="str: 'Type: message' of the last failure, '' when none").tag(sync=True)
    images = t.List(t.Bytes(), help="list[bytes]: PNG of each sample image (binary buffers); [] for text models").tag(
        sync=True
    )
    sample_index = t.Int(0, help="int, default 0: the picked image, the one answers are generated on").tag(sync=True)
    code = t.Unicode(
        "", help="str, read-only: Python that reproduces the edited answer (to_code()); '' for image models"
    ).tag(sync=True)

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
        self._baseline_key = self._edited_key = None
        self._verify_on = verify and not model.is_vlm  # refine and verify measure text predictions
        self._display = None  # the display handle whose snapshot wait() refreshes
        self.debounce = debounce
        self._worker = Worker(self._show_error)
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

    # ---- public API -------------------------------------------------------------------
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

    @property
    def model(self):
        """The HeadModel the widget edits."""
        return self._model

    @property
    def session(self) -> Session:
        """The engine session that ranks for this widget (prompts, positions, cache)."""
        return self._session

    def edit_top(self, k: int | None = None, alpha: float | None = None) -> None:
        """Set edits on the ``k`` recommended heads (``ranking.top``: the selective set first once selected,
        whatever the grid shows) to ``alpha``, replacing all edits; ``top_note`` says which selection was applied."""
        k = self.top_k if k is None else k
        alpha = self.top_alpha if alpha is None else alpha
        if self.ranking is None:  # raises if the first ranking failed
            raise HeadPursuitError("no ranking yet: the first ranking is still running (call w.wait() first)")
        r = self._base  # its own top(): the selective set once refined, whatever score the grid shows
        heads = r.top(int(k))
        which = f"ranked by {r.score_name}, not yet selected by what they do"
        if r is self._refined:
            n = len(r.recommended)
            which = "of the selective set" + (
                f" (it has {n} head{'s' * (n != 1)}; the rest follow ranking.top)" if n < len(heads) else ""
            )
        names = ", ".join(f"L{layer}H{head}" for layer, head in heads)
        with self.hold_sync():
            self.strengths = {head_key(layer, head): float(alpha) for layer, head in heads}
            self.top_note = f"Edited the top {len(heads)} heads {which}: {names} x{float(alpha):g}"

    def clear_edits(self) -> None:
        self.strengths = {}

    def stop(self) -> None:
        """Cancel the running generation (its partial text stays, status "stopped")."""
        if not self._worker.cancel("generate", STOPPED) and self.status == "generating":
            self.status = "stopped"

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until ranking and generation are done; False if ``timeout`` passed first.
        When done, the static snapshot of the widget's last display is brought up to date."""
        done = self._worker.wait(timeout)
        if done and self._display is not None:
            self._display.update(self._bundle(), raw=True)
        return done

    # ---- export and share -------------------------------------------------------------
    def to_code(self) -> str:
        """Python that loads the model and generates the edited answer (greedy, as the widget does).

        HeadPursuitError for image models (their answers depend on the picked image)."""
        if self.images:
            raise HeadPursuitError("to_code covers text models; an image model's answer needs the picked image")
        edits = {parse_head_key(key): alpha for key, alpha in self.strengths.items()}
        listed = ", ".join(f"({layer}, {head}): {alpha!r}" for (layer, head), alpha in sorted(edits.items()))
        return (
            "import headpursuit_widget as hp\n\n"
            f"model = hp.load_model({self._model.name!r})\n"
            f"edits = {{{listed}}}  # {{(layer, head): alpha}}\n"
            f"answer = hp.generate(model, [{self.prompt!r}], edits=edits, max_new_tokens={self.max_new_tokens})[0]\n"
            "print(answer)\n"
        )

    def to_json(self) -> str:
        """The whole setup as plain JSON: model name, concept, compared concept, prompt, strengths,
        selected head, score, grid_view, top_k, top_alpha, max_new_tokens. ``HeadPursuit.from_json(model,
        text)`` restores it."""
        setup = {"format": SETUP_FORMAT, "model": self._model.name}
        setup.update({name: getattr(self, name) for name in (*_OPTIONAL_FIELDS, *_SETUP_FIELDS)})
        return json.dumps(setup, indent=1)

    @classmethod
    def from_json(cls, model, text: str, **kwargs) -> HeadPursuit:
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

    def regenerate(self) -> None:
        """Schedule baseline (if the prompt changed) and edited answers (if they changed), like a slider
        move. A running selection or verification yields and starts again after the answers. Nothing once closed."""
        if not self._initialised():
            return
        for kind, job in (("refine", self._refine), ("verify", self._verify)):
            if self._worker.running(kind):
                self._worker.submit(kind, job)
        self._worker.submit("generate", self._generate, self.debounce)

    def close(self) -> None:
        """Cancel background work and close the widget; a closed widget starts no new work."""
        self._ready = False
        worker = self.__dict__.get("_worker")
        if worker is not None:
            for kind in ("generate", "rank", "compare", "refine", "verify"):
                worker.cancel(kind, CLOSED)
        super().close()

    # ---- validation: the engine's rules, reported as TraitError --------------------------
    @t.validate("strengths")
    def _check_strengths(self, proposal):
        value = proposal["value"]
        try:
            for key in value:
                parse_head_key(key)  # the trait's keys are "layer.head" strings (JSON)
            parse_edits(self._model.adapter, value)
        except HeadPursuitError as exc:
            raise _trait_error("strengths", exc) from None
        return {head_key(*parse_head_key(key)): float(alpha) for key, alpha in value.items()}  # "01.02" -> "1.2"

    @t.validate("selected")
    def _check_selected(self, proposal):
        sel = list(proposal["value"])
        try:
            if sel and len(sel) != 2:
                raise HeadPursuitError(f"got {sel}")
            if sel:
                self._model.adapter.check_head(*sel)
        except HeadPursuitError as exc:
            raise _trait_error("selected must be [] or [layer, head]", exc) from None
        return sel

    @t.validate("score")
    def _check_score(self, proposal):
        try:
            return check_score(proposal["value"])
        except HeadPursuitError as exc:
            raise _trait_error("score", exc) from None

    @t.validate("compare")
    def _check_compare(self, proposal):
        text = proposal["value"].strip()
        if not text:
            return ""
        try:
            parsed = concept_from_text(text)
        except HeadPursuitError as exc:
            raise _trait_error("compare", exc) from None
        if parsed == _parsed_or_none(self.concept):
            raise t.TraitError(f"compare: {text!r} is the concept itself; type another concept, or '' to compare none")
        return text

    @t.validate("images")
    def _check_images(self, proposal):
        images = list(proposal["value"])
        if images and not getattr(self._model, "is_vlm", False):
            raise t.TraitError(
                f"images need a vision-language model with its processor; {self._model.name!r} is a text model"
            )
        return images

    @t.validate("sample_index")
    def _check_sample_index(self, proposal):
        i, n = proposal["value"], len(self.images)
        if not (0 <= i < n or i == n == 0):
            raise t.TraitError(f"sample_index must be from 0 to {max(n - 1, 0)} (one of the {n} images), got {i}")
        return i

    @t.validate("rule")
    def _check_rule(self, proposal):
        if proposal["value"] not in RULES:
            raise t.TraitError(f"rule: unknown sub-token rule {proposal['value']!r}; accepted: {', '.join(RULES)}")
        return proposal["value"]

    @t.validate("max_new_tokens")
    def _check_max_new_tokens(self, proposal):
        try:
            return check_max_new_tokens(proposal["value"])
        except HeadPursuitError as exc:
            raise _trait_error("max_new_tokens", exc) from None

    # ---- reactions ----------------------------------------------------------------------
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

    @t.observe("top_k", "top_alpha")
    def _on_top(self, change):
        if self._initialised() and not edits_of(self.strengths):  # else the verdict judges the edits
            self._check_heads()

    @t.observe("strengths")
    def _on_strengths(self, change):
        if self._initialised():
            self._show_code()
            self.regenerate()
            self._check_heads(VERIFY_DELAY)  # the verdict line follows the applied edits

    @t.observe("prompt", "max_new_tokens", "sample_index")
    def _on_prompt(self, change):
        if self._initialised():
            self._show_code()
            self.regenerate()

    def _show_code(self) -> None:
        self.code = "" if self.images else self.to_code()

    @t.observe("images")
    def _on_images(self, change):
        if self.sample_index >= len(change["new"]):
            self.sample_index = 0  # regenerates
        elif self._initialised():
            self.regenerate()

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

    # ---- ranking ------------------------------------------------------------------------
    def _rank(self, concept, cancel: Cancel) -> None:
        self.set_trait("error", "")
        self.set_trait("status", "ranking")
        self.set_trait("progress", 0.01)
        try:
            r = self._session.rank(concept, rule=self.rule, on_progress=lambda f: self.set_trait("progress", f))
        except Exception as exc:
            if self._base is None:
                self._rank_error = exc
            self._show_error(exc, f"ranking failed {self._stale_grid()}".strip())
            self._select_heads()  # the shown ranking's selection and verdict, cancelled by the new concept
            return
        if self._worker.publish(cancel, lambda: self._show_ranking(r)):
            self._select_heads()
            if self.prompt.strip():
                self.regenerate()  # the next-token readout counts the new concept's tokens

    def _rank_other(self, concept, cancel: Cancel) -> None:
        """Rank the compared concept (as _rank ranks the concept); the grid then shows the difference."""
        self.set_trait("progress", 0.01)
        try:
            other = self._session.rank(concept, rule=self.rule, on_progress=lambda f: self.set_trait("progress", f))
        except Exception as exc:
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

    # ---- generation ---------------------------------------------------------------------
    def _picked_png(self) -> bytes | None:
        """PNG bytes of the picked image; None for text models."""
        images, i = self.images, self.sample_index
        return images[i] if 0 <= i < len(images) else None

    def _generate(self, cancel: Cancel) -> None:
        """Stream the answers that changed (baseline: prompt, length or image; edited: also the edits),
        then the next-token readout."""
        prompt, max_new, edits, png = self.prompt, self.max_new_tokens, dict(self.strengths), self._picked_png()
        if not prompt.strip():
            self._baseline_key = self._edited_key = None
            self._worker.publish(
                cancel, lambda: self._set(baseline_text="", edited_text="", concept_prob=[], status="ready")
            )
            return
        key = (prompt, max_new, png)
        edited_key = (key, tuple(sorted(edits.items())))
        new_baseline = key != self._baseline_key
        # a new prompt's baseline must not stand next to the previous prompt's edited answer
        blank = {"edited_text": "", "concept_prob": []} if new_baseline else {}
        self._worker.publish(cancel, lambda: self._set(error="", status="generating", **blank))
        image = None
        if png is not None:
            from PIL import Image

            image = Image.open(io.BytesIO(png)).convert("RGB")  # lossless: the sample's own pixels
        if new_baseline:
            self._edited_key = None
            base = self._stream("baseline", prompt, max_new, None, cancel, image)
            if base is None or not self._worker.publish(cancel, lambda: self._set(baseline_text=base)):
                return
            self._baseline_key = key
        if edited_key != self._edited_key:
            edited = self._stream("edited", prompt, max_new, edits, cancel, image) if edits else self.baseline_text
            if edited is None or not self._worker.publish(cancel, lambda: self._set(edited_text=edited)):
                return
            self._edited_key = edited_key
        probs = self._concept_probs(prompt, edits, image)
        self._worker.publish(cancel, lambda: self._set(concept_prob=probs, status="ready"))

    def _concept_probs(self, prompt: str, edits: dict, image) -> list[float]:
        """[baseline, edited] next-token probability of the concept's tokens after ``prompt``
        (experiments.next_token_probs, the chat template as generate uses it); [] for image prompts."""
        ids = list(self._base.concept.get("token_ids", [])) if self._base is not None else []
        if image is not None or not ids:
            return []
        chat = bool(getattr(self._model.tokenizer, "chat_template", None))
        base = float(next_token_probs(self._model, [prompt], chat=chat)[0, ids].sum())
        edited = float(next_token_probs(self._model, [prompt], edits=edits, chat=chat)[0, ids].sum()) if edits else base
        return [base, edited]

    def _stream(self, target: str, prompt: str, max_new: int, edits, cancel: Cancel, image=None) -> str | None:
        """Generate one answer, streaming its pieces (numbered by the job, ``cancel.seq``); None if
        cancelled. A Stop keeps the partial text; a superseded or closed answer is dropped."""
        pieces: list[str] = []

        def on_token(i: int, piece: str) -> None:
            if not cancel.is_set():
                pieces.append(piece)
                self.send(protocol.token(target, cancel.seq, piece))

        self.send(protocol.stream_start(target, cancel.seq))
        extra = {} if image is None else {"images": [image]}
        try:
            text = generate(
                self._model, [prompt], edits=edits, max_new_tokens=max_new, on_token=on_token, cancel=cancel, **extra
            )[0]
        finally:
            self.send(protocol.stream_end(target, cancel.seq))
        if not cancel.is_set():
            return text
        if cancel.reason == STOPPED:
            self._set(**{f"{target}_text": "".join(pieces), "status": "stopped"})
        return None

    def _set(self, **values) -> None:
        with self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    def _show_error(self, exc: Exception, what: str = "") -> None:
        """Show ``exc`` (prefixed by ``what``) in the status line; status "error"."""
        message = f"{what}: {exc}" if what else str(exc)
        self._set(error=f"{type(exc).__name__}: {message}", status="error", progress=0.0)
