"""Turning samples into model inputs plus the mask of positions whose head writes are averaged."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .errors import HeadPursuitError

POSITIONS = ("prompt", "image", "all", "last")


@dataclass
class Batch:
    """inputs: keyword arguments for the model's forward, on its device.
    select: (batch, seq) bool, True where a position counts towards the mean write."""

    inputs: dict
    select: torch.Tensor


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


def last_position(attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq) bool, True only at each row's last attended position: where the next token is predicted.
    Works for left and right padding."""
    seq = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = torch.where(attention_mask, seq, -1).max(1).values
    return (seq[None, :] == last[:, None]) & attention_mask


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


def encode_text(
    hm, prompts: list[str], positions: str = "prompt", chat: bool = False, padding_side: str = "right", reserve: int = 0
) -> Batch:
    """Tokenise text prompts. Positions "prompt"/"all" select every non-pad, non-special token; "last" the
    last non-pad token of each prompt (where the next token is predicted).

    Prompts longer than the context window minus `reserve` tokens are cut at the end, with a warning.
    """
    if positions not in POSITIONS:
        raise HeadPursuitError(f"positions must be one of {POSITIONS}, got {positions!r}")
    if positions == "image":
        raise HeadPursuitError("positions='image' needs a vision-language model with image samples")
    tok = hm.tokenizer
    texts = [format_prompt(tok, p, chat) for p in prompts]
    limit = hm.context_window - reserve
    if limit <= 0:
        raise HeadPursuitError(f"max_new_tokens={reserve} leaves no room in the {hm.context_window}-token context")
    enc = tok(texts, add_special_tokens=not chat, return_special_tokens_mask=True)  # lists, one tokenisation
    cut = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > limit]
    if cut:
        warnings.warn(
            f"prompts {cut} are longer than {limit} tokens (context window {hm.context_window}"
            f"{f' minus {reserve} new tokens' if reserve else ''}) and were truncated",
            stacklevel=3,
        )
        for key in enc:
            enc[key] = [row[:limit] for row in enc[key]]
    enc = tok.pad(enc, padding=True, padding_side=padding_side, return_tensors="pt")
    special = enc.pop("special_tokens_mask").bool()
    select = enc["attention_mask"].bool() & ~special
    if positions == "last":
        select = last_position(enc["attention_mask"].bool())
    inputs = {k: v.to(hm.device) for k, v in enc.items()}
    return Batch(inputs=inputs, select=select)


def encode(
    hm, samples: list, positions: str = "prompt", chat: bool = False, padding_side: str = "right", reserve: int = 0
) -> Batch:
    """Dispatch on the model kind: text prompts, or (image, prompt) samples for a VLM."""
    if hm.is_vlm:
        from .vision import encode_vision

        return encode_vision(hm, samples, positions=positions, chat=chat, padding_side=padding_side)
    if any(not isinstance(s, str) for s in samples):
        raise HeadPursuitError(
            "this is a text-only model: samples must be strings (image samples need a VLM loaded with its processor)"
        )
    return encode_text(hm, samples, positions=positions, chat=chat, padding_side=padding_side, reserve=reserve)
