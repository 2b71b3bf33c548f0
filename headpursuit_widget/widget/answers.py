"""The edit and answer actions: head edits, and the baseline and edited answers streamed from the worker."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import traitlets as t

from .. import protocol
from ..engine import HeadPursuitError, HeadRanking, generate
from ..engine.heads import head_key, parse_head_key
from ..experiments import next_token_probs
from .checks import VERIFY_DELAY, edits_of
from .worker import STOPPED, Cancel

if TYPE_CHECKING:
    from .worker import Worker


class Answers(t.HasTraits):
    """Edits the heads, and generates the answers they change (latest wins, debounced)."""

    _model: Any
    _worker: Worker
    _base: HeadRanking | None
    _refined: HeadRanking | None
    _baseline_key: Any
    _edited_key: Any
    _baseline_prob: tuple | None  # ((prompt, concept token ids), the unedited next-token probability)
    debounce: float

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

    def regenerate(self) -> None:
        """Schedule baseline (if the prompt changed) and edited answers (if they changed), like a slider
        move. A running selection or verification yields and starts again after the answers. Nothing once closed."""
        if not self._initialised():
            return
        for kind, job in (("refine", self._refine), ("verify", self._verify)):
            if self._worker.running(kind):
                self._worker.submit(kind, job)
        self._worker.submit("generate", self._generate, self.debounce)

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
        if self._baseline_prob is None or self._baseline_prob[0] != (prompt, tuple(ids)):  # a slider keeps it
            self._baseline_prob = (
                (prompt, tuple(ids)),
                float(next_token_probs(self._model, [prompt], chat=chat)[0, ids].sum()),
            )
        base = self._baseline_prob[1]
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
