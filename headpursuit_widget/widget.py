"""HeadPursuit: the Jupyter widget (anywidget) over the engine.

The widget does no maths: it captures activations once per (model, prompts) with
``hp.capture``, ranks with ``hp.rank_heads(..., activations=...)``, reads tokens and curves
from the ranking, and generates with ``hp.generate``. Ranking and generation run on one
background thread, so the kernel stays free; each kind of work keeps only its latest
request (latest wins), and slider moves are debounced.
"""

from __future__ import annotations

import io
import math
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path

import anywidget
import numpy as np
import traitlets as t

from . import concepts as shipped
from ._serialization import ARRAY
from .engine import HeadRanking, capture, generate, rank_heads
from .engine.images import to_png
from .engine.vision import is_vlm_sample, sample_key, split_samples

_STATIC = Path(__file__).parent / "static"
_MISSING_BUNDLE = """
export default { render({ el }) {
  el.textContent = "headpursuit_widget/static/widget.js is missing: run `npm ci && npm run build` "
    + "in the source checkout (or reinstall the package) and re-run this cell.";
} };
"""
_HEAD_TOKENS = 3
_PANEL_TOKENS = 10

# (model fingerprint, prompts) -> activations; shared by all widgets, a few entries only
_ACTIVATIONS: OrderedDict = OrderedDict()
_ACTIVATIONS_MAX = 4
_ACTIVATIONS_LOCK = threading.Lock()


def samples_key(samples) -> tuple:
    """Hashable key of ranking samples: prompts as they are, (image, prompt) pairs by content hash."""
    return tuple(s if isinstance(s, str) else sample_key(s) for s in samples)


def cached_capture(model, samples, positions: str = "prompt", on_progress=None):
    """``hp.capture`` of ``samples``, cached per (model, positions, samples); reports progress per batch."""
    key = (model.fingerprint, positions, samples_key(samples))
    with _ACTIVATIONS_LOCK:
        if key in _ACTIVATIONS:
            _ACTIVATIONS.move_to_end(key)
            return _ACTIVATIONS[key]
    acts = capture(model, list(samples), positions=positions, progress=False, on_progress=on_progress)
    with _ACTIVATIONS_LOCK:
        _ACTIVATIONS[key] = acts
        while len(_ACTIVATIONS) > _ACTIVATIONS_MAX:
            _ACTIVATIONS.popitem(last=False)
    return acts


def parse_concept(text) -> str | list[str]:
    """A shipped concept name or word-file path stays a string; other text becomes a word list."""
    if isinstance(text, (list, tuple)):
        words = [str(w).strip() for w in text if str(w).strip()]
    else:
        text = str(text).strip()
        if text in shipped.names() or (text and Path(text).is_file()):
            return text
        sep = r"[,;\n]" if re.search(r"[,;\n]", text) else r"\s+"
        words = [w.strip() for w in re.split(sep, text) if w.strip()]
    if not words:
        raise ValueError(
            f"empty concept: type a shipped concept ({', '.join(shipped.names())}) or words separated by commas"
        )
    return words


def _vision_args(model, prompts, samples, images, prompt: str, sample_index: int, need_prompt: bool):
    """Resolve ``prompts=`` / ``samples=`` / ``images=`` into (ranking samples or None, strip
    images, generation prompt). ``samples`` is ``prompts`` by another name; ``images`` with
    ``prompt`` makes one (image, prompt) sample per image; an empty ``prompt`` becomes the picked
    sample's prompt."""
    if prompts is not None and samples is not None:
        raise ValueError("pass prompts= or samples= (the same thing), not both")
    samples = prompts if samples is None else samples
    if images is not None:
        if isinstance(images, (str, Path)) or not isinstance(images, (list, tuple)):
            raise TypeError(f"images must be a list of images (PIL, arrays or paths), got {type(images).__name__}")
        if samples is not None:
            raise ValueError("pass images= (with prompt=) or samples=[(image, prompt), ...], not both")
        if not images:
            raise ValueError("images= is empty")
        if need_prompt and not prompt.strip():
            raise ValueError(
                "images= needs prompt= (the question asked about each image when ranking and "
                "generating), or pass samples=[(image, prompt), ...]"
            )
        strip = list(images)
        samples = [(im, prompt) for im in strip] if need_prompt else None
    else:
        strip = []
        if samples is not None:
            samples = list(samples)
            if any(is_vlm_sample(s) for s in samples):
                per_sample, texts = split_samples(samples)
                strip = [ims[0] if ims else None for ims in per_sample]
                if any(im is None for im in strip):
                    raise ValueError("give every sample an image, or none")
                if not prompt.strip() and 0 <= sample_index < len(texts):
                    prompt = texts[sample_index]
    if strip and not getattr(model, "is_vlm", False):
        raise ValueError(
            f"images need a vision-language model with its processor (hp.load_model or "
            f"hp.wrap(model, processor)); {getattr(model, 'name', 'this model')!r} is a text model"
        )
    return samples, strip, prompt


class _Worker:
    """One background thread running the latest request of each kind ("rank" before "generate").

    A new request of a kind cancels the running one of that kind (through its Event) and
    replaces any pending one; ``delay`` debounces it. The thread exits when idle.
    """

    def __init__(self, on_error):
        self._cv = threading.Condition(threading.RLock())
        self._pending: dict = {}
        self._running = None  # (kind, cancel Event)
        self._thread = None
        self._on_error = on_error

    def submit(self, kind: str, fn, delay: float = 0.0) -> None:
        with self._cv:
            self._pending[kind] = (fn, time.monotonic() + delay)
            if self._running and self._running[0] == kind:
                self._running[1].set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="headpursuit-worker", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def cancel(self, kind: str) -> bool:
        """Drop a pending request of ``kind`` and cancel the running one; True if one was running."""
        with self._cv:
            self._pending.pop(kind, None)
            if self._running and self._running[0] == kind:
                self._running[1].set()
                return True
            return False

    def publish(self, cancel: threading.Event, fn) -> bool:
        """Run ``fn`` unless ``cancel`` is set, atomically with respect to ``submit``."""
        with self._cv:
            if cancel.is_set():
                return False
            fn()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or running; False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._pending or self._running:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            return True

    def _next(self):
        with self._cv:
            while self._pending:
                kind = "rank" if "rank" in self._pending else next(iter(self._pending))
                fn, due = self._pending[kind]
                now = time.monotonic()
                if due > now:
                    self._cv.wait(due - now)
                    continue
                del self._pending[kind]
                self._running = (kind, threading.Event())
                return fn, self._running[1]
            self._thread = None
            self._cv.notify_all()
            return None

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            fn, cancel = job
            try:
                fn(cancel)
            except Exception as exc:  # shown in the widget, never lost on the thread
                self._on_error(exc)
            finally:
                with self._cv:
                    self._running = None
                    self._cv.notify_all()


class HeadPursuit(anywidget.AnyWidget):
    """Find a concept's heads on a layer x head grid, read their tokens, edit them and see
    the edited answer stream next to the unedited one.

    ``HeadPursuit(model, concept="colours")`` ranks on the concept's shipped prompts;
    ``HeadPursuit(model, ranking=r, prompt=...)`` shows a ranking made earlier. A typed
    word list is ranked on the prompts in use (``prompts=``, else those of the last shipped
    concept, else of the first shipped concept), reusing their cached activations.
    For a vision-language model, ``samples=[(image, prompt), ...]`` (or ``images=[...]`` with
    ``prompt=``) ranks over the image tokens (``positions="image"`` by default) and fills the
    image strip: the answers are generated on the picked sample's image (``sample_index``) with
    the text in ``prompt`` (by default the picked sample's prompt).
    """

    _esm = _STATIC / "widget.js" if (_STATIC / "widget.js").is_file() else _MISSING_BUNDLE
    _css = _STATIC / "widget.css" if (_STATIC / "widget.css").is_file() else ""

    n_layers = t.Int(0).tag(sync=True)
    n_heads = t.Int(0).tag(sync=True)
    scores = t.Instance(np.ndarray, allow_none=True).tag(sync=True, **ARRAY)
    above_null = t.Instance(np.ndarray, allow_none=True).tag(sync=True, **ARRAY)
    method = t.Unicode("specificity").tag(sync=True)
    score_names = t.List(t.Unicode()).tag(sync=True)
    selected = t.List(t.Int()).tag(sync=True)
    strengths = t.Dict(value_trait=t.Float()).tag(sync=True)
    head_tokens = t.List(t.Unicode()).tag(sync=True)
    tokens = t.List().tag(sync=True)
    lens_tokens = t.List().tag(sync=True)
    curve = t.Instance(np.ndarray, allow_none=True).tag(sync=True, **ARRAY)
    concept = t.Unicode("").tag(sync=True)
    concept_names = t.List(t.Unicode()).tag(sync=True)
    concept_words = t.List(t.Unicode()).tag(sync=True)
    prompt = t.Unicode("").tag(sync=True)
    max_new_tokens = t.Int(32).tag(sync=True)
    baseline_text = t.Unicode("").tag(sync=True)
    edited_text = t.Unicode("").tag(sync=True)
    top_k = t.Int(4).tag(sync=True)
    top_alpha = t.Float(-1.0).tag(sync=True)
    status = t.Unicode("ready").tag(sync=True)
    progress = t.Float(0.0).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    images = t.List(t.Bytes()).tag(sync=True)  # PNG bytes of the strip (binary buffers); [] for text models
    sample_index = t.Int(0).tag(sync=True)  # the picked image, generated on

    def __init__(
        self,
        model,
        concept=None,
        *,
        ranking: HeadRanking | None = None,
        prompts=None,
        samples=None,
        images=None,
        prompt: str = "",
        sample_index: int = 0,
        max_new_tokens: int = 32,
        method: str = "specificity",
        k: int = 50,
        n_null: int = 6,
        positions: str | None = None,
        top_k: int = 4,
        top_alpha: float = -1.0,
        debounce: float = 0.05,
        seed: int = 0,
    ):
        for attr in ("fingerprint", "n_layers", "n_heads", "tokenizer"):
            if not hasattr(model, attr):
                raise TypeError(f"model must be a HeadModel from hp.load_model or hp.wrap, got {type(model).__name__}")
        if (concept is None) == (ranking is None):
            raise ValueError("pass exactly one of concept= (a shipped name or a word list) or ranking= (a HeadRanking)")
        if ranking is not None and ranking.fingerprint != model.fingerprint:
            raise ValueError(f"the ranking was made for model {ranking.model_name!r}, not for {model.name!r}")
        self._model = model
        prompts, strip, prompt = _vision_args(
            model, prompts, samples, images, prompt, sample_index, need_prompt=ranking is None
        )
        if positions is None:
            positions = "image" if prompts is not None and any(is_vlm_sample(s) for s in prompts) else "prompt"
        self._rank_options = dict(k=k, n_null=n_null, seed=seed, positions=positions)
        self._prompts = tuple(prompts) if prompts is not None else None
        self._rank_prompts: tuple[str, ...] | None = self._prompts
        self._base: HeadRanking | None = None
        self._baseline_key = None
        self._stop_requested = threading.Event()
        self._gen_seq = 0
        self.debounce = debounce
        self._worker = _Worker(self._show_error)
        super().__init__(
            n_layers=model.n_layers,
            n_heads=model.n_heads,
            score_names=list(HeadRanking.score_names),
            concept_names=shipped.names(),
            max_new_tokens=max_new_tokens,
            top_k=top_k,
            top_alpha=top_alpha,
            method=method,
            images=[to_png(im) for im in strip],
            sample_index=sample_index,
        )
        if ranking is not None:
            self.set_trait("concept", ranking.concept.get("name", ""))
            self._show_ranking(ranking)
        else:
            self.set_trait("concept", concept if isinstance(concept, str) else ", ".join(map(str, concept)))
            self._rank(parse_concept(concept), threading.Event(), raise_errors=True)
        self.on_msg(self._on_msg)
        self.prompt = prompt

    # ---- public API -------------------------------------------------------------------
    @property
    def ranking(self) -> HeadRanking | None:
        """The current HeadRanking, ordered by the score the grid shows (``method``)."""
        return None if self._base is None else self._base.with_score(self.method)

    @property
    def model(self):
        """The HeadModel the widget edits."""
        return self._model

    def edit_top(self, k: int | None = None, alpha: float | None = None) -> None:
        """Set edits on the top ``k`` heads of the ranking to ``alpha`` (replacing all edits)."""
        k = self.top_k if k is None else k
        alpha = self.top_alpha if alpha is None else alpha
        self.strengths = {f"{layer}.{head}": float(alpha) for layer, head in self.ranking.top(int(k))}

    def clear_edits(self) -> None:
        self.strengths = {}

    def stop(self) -> None:
        """Cancel the running generation (its partial text stays, status "stopped")."""
        self._stop_requested.set()
        if not self._worker.cancel("generate"):
            self._stop_requested.clear()
            if self.status == "generating":
                self.status = "stopped"

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until ranking and generation are done; False if ``timeout`` passed first."""
        return self._worker.wait(timeout)

    def regenerate(self) -> None:
        """Schedule baseline (if the prompt changed) and edited answers, like a slider move."""
        self._worker.submit("generate", self._generate, self.debounce)

    def close(self) -> None:
        """Cancel background work and close the widget."""
        worker = self.__dict__.get("_worker")
        if worker is not None:
            worker.cancel("generate")
            worker.cancel("rank")
        super().close()

    # ---- validation ---------------------------------------------------------------------
    @t.validate("strengths")
    def _check_strengths(self, proposal):
        out = {}
        for key, alpha in proposal["value"].items():
            m = re.fullmatch(r"(\d+)\.(\d+)", str(key))
            if not m or int(m[1]) >= self.n_layers or int(m[2]) >= self.n_heads:
                raise t.TraitError(
                    f"strength key {key!r} must be 'layer.head' with layer < {self.n_layers} and head < {self.n_heads}"
                )
            if not math.isfinite(alpha):
                raise t.TraitError(f"strength for head {key} must be a finite number, got {alpha!r}")
            out[key] = float(alpha)
        return out

    @t.validate("selected")
    def _check_selected(self, proposal):
        sel = list(proposal["value"])
        if sel and (len(sel) != 2 or not (0 <= sel[0] < self.n_layers and 0 <= sel[1] < self.n_heads)):
            raise t.TraitError(
                f"selected must be [] or [layer, head] with layer < {self.n_layers} "
                f"and head < {self.n_heads}, got {sel}"
            )
        return sel

    @t.validate("method")
    def _check_method(self, proposal):
        if proposal["value"] not in HeadRanking.score_names:
            raise t.TraitError(f"unknown score {proposal['value']!r}; accepted: {', '.join(HeadRanking.score_names)}")
        return proposal["value"]

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

    @t.validate("max_new_tokens")
    def _check_max_new_tokens(self, proposal):
        if not 1 <= proposal["value"] <= 4096:
            raise t.TraitError(f"max_new_tokens must be from 1 to 4096, got {proposal['value']}")
        return proposal["value"]

    # ---- reactions ----------------------------------------------------------------------
    @t.observe("method")
    def _on_method(self, change):
        if self._base is not None:
            self._show_scores()

    @t.observe("selected")
    def _on_selected(self, change):
        self._show_head()

    @t.observe("concept")
    def _on_concept(self, change):
        if not self._initialised():
            return
        try:
            parsed = parse_concept(change["new"])
        except ValueError as exc:
            self._show_error(exc)
            return
        self.set_trait("status", "ranking")
        self._worker.submit("rank", lambda cancel: self._rank(parsed, cancel))

    @t.observe("strengths")
    def _on_strengths(self, change):
        if self._initialised():
            self.regenerate()

    @t.observe("prompt", "max_new_tokens", "sample_index")
    def _on_prompt(self, change):
        if self._initialised():
            self.regenerate()

    @t.observe("images")
    def _on_images(self, change):
        if self.sample_index >= len(change["new"]):
            self.sample_index = 0  # regenerates
        elif self._initialised():
            self.regenerate()

    def _initialised(self) -> bool:
        return "_worker" in self.__dict__ and self._base is not None

    def _on_msg(self, widget, content, buffers):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "stop":
            self.stop()
        elif kind == "apply_top":
            try:
                self.edit_top()
            except Exception as exc:
                self._show_error(exc)
        elif kind == "generate":
            self.regenerate()

    # ---- ranking ------------------------------------------------------------------------
    def _prompts_for(self, concept) -> tuple[str, ...]:
        if self._prompts is not None:
            return self._prompts
        if isinstance(concept, str) and concept in shipped.names():
            return tuple(shipped.get(concept).rank_prompts)
        return self._rank_prompts or tuple(shipped.get(shipped.names()[0]).rank_prompts)

    def _rank(self, concept, cancel: threading.Event, raise_errors: bool = False) -> None:
        self.set_trait("error", "")
        self.set_trait("status", "ranking")
        self.set_trait("progress", 0.01)
        try:
            prompts = self._prompts_for(concept)
            acts = cached_capture(
                self._model,
                prompts,
                self._rank_options["positions"],
                lambda f: self.set_trait("progress", 0.05 + 0.75 * f),
            )
            self.set_trait("progress", 0.85)
            r = rank_heads(self._model, list(prompts), concept, activations=acts, progress=False, **self._rank_options)
        except Exception as exc:
            self._show_error(exc, "ranking failed")
            if raise_errors:
                raise
            return
        self._rank_prompts = prompts
        self._worker.publish(cancel, lambda: self._show_ranking(r))

    def _show_ranking(self, r: HeadRanking) -> None:
        with self.hold_sync():
            self._base = r
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
        r = self.ranking
        with self.hold_sync():
            self.scores = np.asarray(r.scores, dtype=np.float64)
            self.above_null = np.asarray(r.above_null, dtype=bool)
            self._show_head()

    def _show_head(self) -> None:
        r = self.ranking
        if r is None or len(self.selected) != 2:
            self.tokens, self.lens_tokens, self.curve = [], [], None
            return
        layer, head = self.selected
        with self.hold_sync():
            self.tokens = [[tok, w] for tok, w in r.tokens(layer, head, _PANEL_TOKENS)]
            self.lens_tokens = [[tok, v] for tok, v in r.lens_tokens(layer, head, _PANEL_TOKENS)]
            self.curve = r.evr_curve(layer, head)

    # ---- generation ---------------------------------------------------------------------
    def _edits(self) -> dict:
        return {tuple(int(x) for x in key.split(".")): alpha for key, alpha in self.strengths.items()}

    def _picked_png(self) -> bytes | None:
        """PNG bytes of the picked image; None for text models."""
        images, i = self.images, self.sample_index
        return images[i] if 0 <= i < len(images) else None

    def _generate(self, cancel: threading.Event) -> None:
        self._stop_requested.clear()
        prompt, max_new, edits, png = self.prompt, self.max_new_tokens, self._edits(), self._picked_png()
        if not prompt.strip():
            self._worker.publish(cancel, lambda: self._set(baseline_text="", edited_text="", status="ready"))
            return
        self._worker.publish(cancel, lambda: self._set(error="", status="generating"))
        image = None
        if png is not None:
            from PIL import Image

            image = Image.open(io.BytesIO(png)).convert("RGB")  # lossless: the sample's own pixels
        key = (prompt, max_new, png)
        if key != self._baseline_key:
            base = self._stream("baseline", prompt, max_new, None, cancel, image)
            if base is None or not self._worker.publish(cancel, lambda: self._set(baseline_text=base)):
                return
            self._baseline_key = key
        edited = self._stream("edited", prompt, max_new, edits, cancel, image) if edits else self.baseline_text
        if edited is not None:
            self._worker.publish(cancel, lambda: self._set(edited_text=edited, status="ready"))

    def _stream(self, target: str, prompt: str, max_new: int, edits, cancel: threading.Event, image=None) -> str | None:
        """Generate one answer, streaming its pieces; None if cancelled (Stop keeps the partial text)."""
        self._gen_seq += 1
        gen = self._gen_seq
        pieces: list[str] = []

        def on_token(i: int, piece: str) -> None:
            if not cancel.is_set():
                pieces.append(piece)
                self.send({"type": "token", "target": target, "gen": gen, "piece": piece})

        self.send({"type": "stream_start", "target": target, "gen": gen})
        extra = {} if image is None else {"images": [image]}
        text = generate(
            self._model, [prompt], edits=edits, max_new_tokens=max_new, on_token=on_token, cancel=cancel, **extra
        )[0]
        if not cancel.is_set():
            return text
        if self._stop_requested.is_set():
            self._stop_requested.clear()
            self._set(**{f"{target}_text": "".join(pieces), "status": "stopped"})
        return None

    def _set(self, **values) -> None:
        with self.hold_sync():
            for name, value in values.items():
                setattr(self, name, value)

    def _show_error(self, exc: Exception, what: str = "") -> None:
        message = f"{what}: {exc}" if what else str(exc)
        self._set(error=f"{type(exc).__name__}: {message}", status="error", progress=0.0)
