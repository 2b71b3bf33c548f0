"""A ranking session: which samples to rank on, one capture per sample set, and ranking.

The widget, experiments and the CLI share it: ``Session(model).rank("colours")`` ranks as
``rank_heads(model, None, "colours")`` does (on the concept's eliciting contexts, at the last
position) but without the causal refinement, which the widget runs in the background; given
``prompts`` every concept ranks on them instead. Captures are reused from the process-wide
``ACTIVATIONS`` cache (a few entries, least recently used out), and a shipped concept's eliciting
contexts from disk (engine/activations/capture_cache.py), so a new session ranks it without a capture;
its ranking is kept on disk too (engine/ranking/kept.py), so a new session draws its grid without the
pursuit and the null; a model that ranks from statistics (the nnsight backend,
engine/activations/statistics.py) computes them in its traces for each concept instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..engine.activations import capture_cache
from ..engine.activations.capture import capture
from ..engine.activations.vision import is_vlm_sample, sample_key, split_samples
from ..engine.concepts import shipped as shipped_concepts
from ..engine.concepts.contexts import concept_contexts
from ..engine.concepts.resolve import resolve_concept
from ..engine.errors import HeadPursuitError, check_cancel
from ..engine.ranking import kept
from ..engine.ranking.rank import rank_heads
from ..engine.ranking.result import HeadRanking


def samples_key(samples) -> tuple:
    """Hashable key of ranking samples: prompts as they are, (image, prompt) pairs by content hash."""
    return tuple(s if isinstance(s, str) else sample_key(s) for s in samples)


class ActivationCache:
    """``capture`` results keyed by (model fingerprint, positions, samples); thread-safe, LRU-bounded."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(model, samples, positions: str) -> tuple:
        return (model.fingerprint, positions, samples_key(samples))

    def holds(self, model, samples, *, positions: str = "prompt") -> bool:
        """True if the activations of ``samples`` at ``positions`` are cached for ``model``."""
        with self._lock:
            return self.key(model, samples, positions) in self._entries

    def capture(
        self, model, samples, *, positions: str = "prompt", on_progress=None, persist: bool = False, on_first=None
    ) -> torch.Tensor:
        """``capture(model, samples)`` (n_layers, n_heads, n_samples, d_model), or its cached copy;
        ``on_progress(fraction)`` is called per captured batch. ``persist``: also keep it on disk
        (engine/activations/capture_cache.py), where a later session finds it. ``on_first(acts)``: when
        the samples must be captured, the first FIRST_SHARE of them are captured first and their writes
        (n_layers, n_heads, n_first, d_model) handed to it before the rest is captured."""
        key = self.key(model, samples, positions)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        path = capture_cache.entry_path(model, samples, positions) if persist else None
        acts = capture_cache.load(path) if path is not None else None
        if acts is None:
            acts = _capture_in_parts(model, list(samples), positions, on_progress, on_first)
            if path is not None:
                capture_cache.store(path, acts)
        with self._lock:
            self._entries[key] = acts
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return acts


ACTIVATIONS = ActivationCache()  # shared by every session in this process
FIRST_SHARE, FIRST_MIN = 0.25, 8  # the first grid's share of the samples, and the fewest it is drawn from


def _capture_in_parts(model, samples: list, positions: str, on_progress, on_first) -> torch.Tensor:
    """capture(model, samples) (n_layers, n_heads, n, d_model); with ``on_first``, the first FIRST_SHARE of
    the samples (at least FIRST_MIN, and only when as many remain) are captured first and handed to it."""
    n_first = max(FIRST_MIN, round(FIRST_SHARE * len(samples)))
    if on_first is None or len(samples) < 2 * n_first:
        return capture(model, samples, positions=positions, progress=False, on_progress=on_progress)
    parts = []
    for lo, hi in ((0, n_first), (n_first, len(samples))):
        report = None if on_progress is None else _share(on_progress, lo / len(samples), (hi - lo) / len(samples))
        parts.append(capture(model, samples[lo:hi], positions=positions, progress=False, on_progress=report))
        if lo == 0:
            on_first(parts[0])
    return torch.cat(parts, dim=2)


def _share(on_progress, done: float, share: float):
    """on_progress for a part that covers ``share`` of the samples after ``done`` of them."""
    return lambda fraction: on_progress(done + share * fraction)


def resolve_samples(
    model, *, prompts=None, samples=None, images=None, prompt: str = "", sample_index: int = 0, need_prompt: bool = True
):
    """(ranking samples or None, strip images, generation prompt) from a request's
    ``prompts=`` / ``samples=`` / ``images=``.

    ``samples`` is ``prompts`` by another name; ``images`` with ``prompt`` makes one
    (image, prompt) sample per image; an empty ``prompt`` becomes the picked sample's prompt.
    ``need_prompt`` is False when nothing will be ranked (a saved ranking): images need no prompt.
    """
    if prompts is not None and samples is not None:
        raise HeadPursuitError("pass prompts= or samples= (the same thing), not both")
    samples = prompts if samples is None else samples
    if images is not None:
        if isinstance(images, (str, Path)) or not isinstance(images, (list, tuple)):
            raise HeadPursuitError(
                f"images must be a list of images (PIL, arrays or paths), got {type(images).__name__}"
            )
        if samples is not None:
            raise HeadPursuitError("pass images= (with prompt=) or samples=[(image, prompt), ...], not both")
        if not images:
            raise HeadPursuitError("images= is empty")
        if need_prompt and not prompt.strip():
            raise HeadPursuitError(
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
                    raise HeadPursuitError("give every sample an image, or none")
                if not prompt.strip() and 0 <= sample_index < len(texts):
                    prompt = texts[sample_index]
    if strip and not getattr(model, "is_vlm", False):
        raise HeadPursuitError(
            f"images need a vision-language model with its processor (hp.load_model or "
            f"hp.wrap(model, processor)); {getattr(model, 'name', 'this model')!r} is a text model"
        )
    return samples, strip, prompt


def opening_prompt(concept) -> str:
    """A prompt whose answer should use ``concept``: a shipped concept's first held-out
    generation prompt (``eval_prompts[0]``, never a ranking prompt); for words, a request to
    write about the first few of them; for a word file, about its name."""
    if isinstance(concept, str):
        if concept in shipped_concepts.names():
            return shipped_concepts.get(concept).eval_prompts[0]
        return f"Write two sentences about {Path(concept).stem.replace('_', ' ')}."
    words = [str(w) for w in concept][:5]
    return f"Write two sentences that use these words: {', '.join(words)}."


class Session:
    """Ranks concepts for one model, capturing each sample set once (through ``cache``).

    ``prompts``: the samples to rank every concept on (positions "prompt", or "image" for image
    samples); None ranks each concept on its own eliciting contexts at positions "last", as
    ``rank_heads(model, None, concept)`` does. ``k``, ``n_null`` (None: rank_heads's defaults) and
    ``seed`` go to ``rank_heads``.
    """

    def __init__(
        self,
        model,
        *,
        prompts=None,
        positions: str | None = None,
        k: int | None = None,
        n_null: int | None = None,
        seed: int = 0,
        cache: ActivationCache = ACTIVATIONS,
    ):
        self.model = model
        self.prompts = tuple(prompts) if prompts is not None else None
        if positions is None and self.prompts is not None:
            positions = "image" if any(map(is_vlm_sample, self.prompts)) else "prompt"
        self.positions = positions or "last"
        self.options: dict[str, Any] = {
            name: value for name, value in dict(k=k, n_null=n_null, seed=seed).items() if value is not None
        }
        self.cache = cache

    def samples_for(self, concept, *, rule: str = "whole_word") -> tuple:
        """The samples ``concept`` is ranked on: the session's prompts, else its eliciting contexts."""
        return self._samples_and_ids(concept, rule)[0]

    def _samples_and_ids(self, concept, rule: str) -> tuple[tuple, tuple | None]:
        """(samples_for(concept), the concept's token ids when the samples are its eliciting contexts, else
        None): the concept is tokenised once."""
        if self.prompts is not None:
            return self.prompts, None
        con, _ = resolve_concept(concept, self.model.tokenizer, rule)
        return tuple(concept_contexts(con, seed=self.options["seed"])), con.token_ids

    def rank(
        self,
        concept,
        *,
        rule: str | None = None,
        on_progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
        on_first: Callable[[HeadRanking, int, int], None] | None = None,
    ) -> HeadRanking:
        """``rank_heads`` of ``concept`` (without refinement) on ``samples_for(concept)`` with cached
        activations; ``rule`` (a dictionary.RULES name) overrides the default sub-token rule.

        ``on_progress(fraction)`` goes from 0.05 to 0.8 as the capture proceeds (not called when
        cached) and is 0.85 when the pursuit starts. Setting ``cancel`` raises Cancelled at the next
        captured batch, or before the pursuit. ``on_first(ranking, n_first, n)``: when the samples must be
        captured, a first ranking on the first n_first of the n samples (the same options) comes before
        the rest is captured."""

        def report(fraction: float) -> None:
            check_cancel(cancel)
            if on_progress is not None:
                on_progress(fraction)

        options = {**self.options, **({} if rule is None else {"rule": rule})}
        samples, token_ids = self._samples_and_ids(concept, options.get("rule", "whole_word"))
        kept_at = self._kept_path(concept, samples, token_ids, options)
        if kept_at is not None and (ranking := kept.load(kept_at, self.model)) is not None:
            report(0.85)
            return ranking
        acts = None  # a model that ranks from statistics computes them in its traces: no head writes to cache
        if not self.model.ranks_from_statistics:
            acts = self.cache.capture(
                self.model,
                samples,
                positions=self.positions,
                on_progress=lambda f: report(0.05 + 0.75 * f),
                persist=self._keeps(concept),
                on_first=None
                if on_first is None
                else partial(self._first, on_first, concept, samples, options, cancel),
            )
        report(0.85)
        ranking = self._rank(concept, samples, acts, options, given=self.prompts is not None)
        if kept_at is not None:
            kept.store(kept_at, ranking)
        return ranking

    def _keeps(self, concept) -> bool:
        """Whether ``concept``'s capture and ranking are kept on disk: a shipped concept on its own contexts."""
        return self.prompts is None and isinstance(concept, str) and concept in shipped_concepts.names()

    def _kept_path(self, concept, samples: tuple, token_ids: tuple | None, options: dict):
        """Where ``concept``'s ranking on ``samples`` (its eliciting contexts, the concept of ``token_ids``)
        is kept (engine/ranking/kept.py), None when it is not."""
        if token_ids is None or not self._keeps(concept) or self.model.ranks_from_statistics:
            return None
        return kept.entry_path(self.model, samples, self.positions, token_ids, options)

    def _first(self, on_first, concept, samples: tuple, options: dict, cancel, part: torch.Tensor) -> None:
        """on_first(the ranking of the first samples' writes ``part`` (n_layers, n_heads, n_first, d_model),
        n_first, len(samples))."""
        check_cancel(cancel)
        n_first = part.shape[2]
        on_first(self._rank(concept, samples[:n_first], part, options, given=True), n_first, len(samples))

    def _rank(self, concept, samples: tuple, acts, options: dict, *, given: bool) -> HeadRanking:
        """rank_heads of ``concept`` on ``acts`` (the writes of ``samples``), without refinement; ``given``:
        rank them as given prompts (else as the concept's own eliciting contexts)."""
        prompts = list(samples) if given else None
        return rank_heads(
            self.model,
            prompts,
            concept,
            activations=acts,
            positions=self.positions,
            refine=False,
            progress=False,
            **options,
        )
