"""Generation with optional head edits, token streaming and cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from ..activations.inputs import check_prompts, encode
from ..errors import HeadPursuitError, check_int, shorten
from .edits import edit_heads, parse_edits

MAX_NEW_TOKENS = 4096  # the most new tokens one generate call (and the widget's max_new_tokens) may ask for


def check_max_new_tokens(n) -> int:
    """``n`` if it is an int from 1 to MAX_NEW_TOKENS, else HeadPursuitError naming the range."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NEW_TOKENS:
        raise HeadPursuitError(f"max_new_tokens must be an int from 1 to {MAX_NEW_TOKENS}, got {n!r}")
    return n


class _Cancel(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _Stream(BaseStreamer):
    """Collects new token ids per sample and calls on_token(i, piece) with each newly decoded piece."""

    def __init__(self, tokenizer, n: int, on_token: Callable[[int, str], None] | None, stop_ids: set):
        self.tokenizer, self.on_token, self.stop_ids = tokenizer, on_token, stop_ids
        self.ids: list[list[int]] = [[] for _ in range(n)]
        self.texts = [""] * n
        self.done = [False] * n
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # generate() first passes the prompt ids
            self.prompt_seen = True
            return
        for i, token in enumerate(value.reshape(len(self.ids), -1)[:, -1].tolist()):
            if self.done[i]:
                continue
            if token in self.stop_ids:
                self.done[i] = True
                continue
            self.ids[i].append(token)
            text = self.tokenizer.decode(self.ids[i], skip_special_tokens=True)
            piece, self.texts[i] = text[len(self.texts[i]) :], text
            if piece and self.on_token is not None:
                self.on_token(i, piece)

    def end(self) -> None:
        pass


def _stop_ids(model) -> set:
    ids = model.module.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if model.tokenizer.eos_token_id is not None:
        ids.add(model.tokenizer.eos_token_id)
    return ids


def generate(
    model,
    prompts,
    *,
    edits=None,
    max_new_tokens: int = 32,
    on_token: Callable[[int, str], None] | None = None,
    cancel: threading.Event | None = None,
    chat: bool | None = None,
    images=None,
    do_sample: bool = False,
    **generate_kwargs,
) -> list[str]:
    """Greedy (by default) continuations of prompts, with head edits {(layer, head): alpha} applied.

    Returns the new text of each prompt. on_token(i, piece) streams pieces of sample i as they are
    decoded (from the generating thread). Setting `cancel` stops after the current step; the text
    so far is returned. chat=None uses the chat template when the tokenizer has one.
    Prompts that leave fewer than max_new_tokens in the context window are cut with a warning.
    """
    prompts = check_prompts(prompts)
    parse_edits(model.adapter, edits)  # validate before any work
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens")
    check_max_new_tokens(max_new_tokens)
    check_generate_options(generate_kwargs)
    if chat is None:
        chat = bool(getattr(model.tokenizer, "chat_template", None))
    samples = prompts
    if images is not None:
        images = list(images)
        if len(images) != len(prompts):
            raise HeadPursuitError(f"got {len(images)} images for {len(prompts)} prompts; pass one image per prompt")
        samples = list(zip(images, prompts))
    batch = encode(model, samples, positions="all", chat=chat, padding_side="left", reserve=max_new_tokens)
    stop_ids = _stop_ids(model)
    streamer = _Stream(model.tokenizer, len(prompts), on_token, stop_ids)
    criteria = StoppingCriteriaList([_Cancel(cancel)] if cancel is not None else [])
    sampling = {} if do_sample else {"temperature": None, "top_p": None, "top_k": None}
    with edit_heads(model, edits), torch.inference_mode():
        try:
            model.generate(
                **batch.inputs,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                streamer=streamer,
                stopping_criteria=criteria,
                pad_token_id=model.tokenizer.pad_token_id,
                **sampling,
                **generate_kwargs,
            )
        except (ValueError, TypeError) as exc:
            if not generate_kwargs or isinstance(exc, HeadPursuitError):
                raise
            raise HeadPursuitError(
                f"transformers refused the extra generate options {shorten(generate_kwargs, 200)}: {shorten(exc, 300)}"
            ) from None
    return streamer.texts


_SET_HERE = ("pad_token_id", "streamer", "stopping_criteria")  # generate() passes these itself


def check_generate_options(options: dict) -> None:
    """Raise unless every extra generate keyword is a transformers GenerationConfig field that
    generate() does not set itself (max_new_tokens and do_sample are its own arguments)."""
    from transformers import GenerationConfig

    accepted = sorted(k for k in GenerationConfig().to_dict() if not k.startswith("_") and k != "transformers_version")
    bad = [k for k in options if k not in accepted or k in _SET_HERE]
    if bad:
        raise HeadPursuitError(
            f"unknown or reserved generate option(s) {', '.join(shorten(repr(k)) for k in bad[:5])}; accepted: "
            f"max_new_tokens, do_sample, on_token, cancel, chat, images, and these GenerationConfig fields: "
            f"{', '.join(k for k in accepted if k not in _SET_HERE)}"
        )
