"""Turning samples into model inputs plus the mask of positions whose head writes are averaged."""

from __future__ import annotations

import warnings

import torch

from ..errors import HeadPursuitError, shorten
from .batch import POSITIONS, Batch, last_position


def check_prompts(prompts, what: str = "prompts") -> list:
    """A non-empty list of samples; a single string becomes a list of one."""
    if isinstance(prompts, str):
        return [prompts]
    if prompts is None:
        raise HeadPursuitError(
            f"no {what} given: pass a list of strings (or pick a shipped concept, which has prompts)"
        )
    prompts = list(prompts)
    if not prompts:
        raise HeadPursuitError(f"{what} is empty: pass at least one")
    return prompts


def format_prompt(tokenizer, prompt: str, chat: bool) -> str:
    """The prompt, wrapped in the tokenizer's chat template as a user turn when chat is True."""
    if not isinstance(prompt, str):
        raise HeadPursuitError(f"a text prompt must be a str, got {type(prompt).__name__}")
    if not chat:
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise HeadPursuitError("chat=True but this tokenizer has no chat template; pass chat=False")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def user_span(tokenizer, prompt: str, chat: bool) -> tuple[str, int, int]:
    """(text the model reads, start, end): characters start:end of the text are the user's own prompt.

    With chat=True the template (system prompt, role markers) is everything outside that span; the
    span is found by rendering the template around a marker character."""
    text = format_prompt(tokenizer, prompt, chat)
    if not chat:
        return text, 0, len(text)
    prefix, _, suffix = format_prompt(tokenizer, _MARKER, chat).partition(_MARKER)
    if text == prefix + prompt + suffix:
        return text, len(prefix), len(prefix) + len(prompt)
    start = text.rfind(prompt.strip())
    if not prompt.strip() or start < 0:
        raise HeadPursuitError(
            f"the chat template rewrites the prompt {shorten(repr(prompt))}: its own tokens cannot be found; "
            "pass chat=False"
        )
    return text, start, start + len(prompt.strip())


_MARKER = "\ue000"  # a private-use character: no template adds it


def encode_text(
    tokenizer,
    context_window: int,
    device: torch.device,
    prompts: list[str],
    positions: str = "prompt",
    chat: bool = False,
    padding_side: str = "right",
    reserve: int = 0,
) -> Batch:
    """Tokenise text prompts. positions="prompt" selects the tokens of the user's own text: never
    special tokens, and with chat=True never the template's tokens or its default system prompt;
    "all" selects every non-pad, non-special token (template text included).
    "last" selects the last non-pad token of each prompt (where the next token is predicted).

    Prompts longer than `context_window` minus `reserve` tokens are cut at the end, with a warning; the
    batch's tensors go to `device`.
    """
    if positions not in POSITIONS:
        raise HeadPursuitError(f"positions must be one of {POSITIONS}, got {shorten(repr(positions))}")
    if positions == "image":
        raise HeadPursuitError("positions='image' needs a vision-language model with image samples")
    tok = tokenizer
    spans = [user_span(tok, p, chat) for p in prompts]
    limit = context_window - reserve
    if limit <= 0:
        raise HeadPursuitError(f"max_new_tokens={reserve} leaves no room in the {context_window}-token context")
    if not tok.is_fast and positions == "prompt" and chat:
        raise HeadPursuitError("chat=True with positions='prompt' needs a fast tokenizer (character offsets)")
    enc = tok(  # lists, one tokenisation
        [text for text, _, _ in spans], add_special_tokens=not chat, return_offsets_mapping=tok.is_fast
    )
    cut = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > limit]
    if cut:
        warnings.warn(
            f"prompts {cut} are longer than {limit} tokens (context window {context_window}"
            f"{f' minus {reserve} new tokens' if reserve else ''}) and were truncated",
            stacklevel=3,
        )
        for key in enc:
            enc[key] = [row[:limit] for row in enc[key]]
    special = set(tok.all_special_ids)
    offsets = enc.pop("offset_mapping", None) or [[(0, 0)] * len(ids) for ids in enc["input_ids"]]
    keep = [
        [
            i not in special and (positions == "all" or not tok.is_fast or (start <= a and b <= end and a < b))
            for i, (a, b) in zip(ids, row)
        ]
        for ids, row, (_, start, end) in zip(enc["input_ids"], offsets, spans)
    ]
    enc = tok.pad(enc, padding=True, padding_side=padding_side, return_tensors="pt")
    select = torch.zeros(enc["input_ids"].shape, dtype=torch.bool)
    for row, flags in enumerate(keep):
        at = slice(0, len(flags)) if padding_side == "right" else slice(select.shape[1] - len(flags), None)
        select[row, at] = torch.tensor(flags, dtype=torch.bool)
    if positions == "last":
        select = last_position(enc["attention_mask"].bool())
    inputs = {k: v.to(device) for k, v in enc.items()}
    return Batch(inputs=inputs, select=select)


def encode(
    model, samples: list, positions: str = "prompt", chat: bool = False, padding_side: str = "right", reserve: int = 0
) -> Batch:
    """Dispatch on the model kind: text prompts, or (image, prompt) samples for a VLM."""
    if model.is_vlm:
        from .vision import encode_vision

        return encode_vision(model, samples, positions=positions, chat=chat, padding_side=padding_side)
    if any(not isinstance(s, str) for s in samples):
        raise HeadPursuitError(
            "this is a text-only model: samples must be strings (image samples need a VLM loaded with its processor)"
        )
    return encode_text(
        model.tokenizer,
        model.context_window,
        model.device,
        samples,
        positions=positions,
        chat=chat,
        padding_side=padding_side,
        reserve=reserve,
    )
