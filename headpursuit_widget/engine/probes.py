"""Next-token measures of an edited model: concept probability mass and control-fact log-probabilities.

Both read the next-token distribution at the last position of each prompt (one forward per batch),
which is what verification and refinement compare with and without a head edit.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from .edits import edit_heads
from .errors import Cancelled, HeadPursuitError
from .inputs import check_prompts, encode


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise Cancelled when the event is set (checked between forward passes)."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled: the computation was stopped before it finished")


def next_token_logprobs(
    model, prompts, *, edits=None, batch_size: int = 16, cancel: threading.Event | None = None
) -> torch.Tensor:
    """Log-probabilities of the next token after each prompt, (n_prompts, vocab) float32, under `edits`."""
    prompts = check_prompts(prompts)
    rows = []
    with edit_heads(model, edits), torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            check_cancel(cancel)
            batch = encode(model, prompts[start : start + batch_size], positions="last", padding_side="left")
            mask = batch.inputs["attention_mask"]
            position_ids = (mask.cumsum(1) - 1).clamp_min(0)  # left padding: positions start at each prompt
            out = model.forward(**batch.inputs, position_ids=position_ids, logits_to_keep=1, use_cache=False)
            rows.append(out.logits[:, -1].float().log_softmax(-1).cpu())
    return torch.cat(rows)


def concept_mass(logprobs: torch.Tensor, token_ids) -> np.ndarray:
    """Probability of the next token being any of token_ids, per prompt: (n_prompts,) float64 in [0, 1]."""
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    return logprobs[:, ids].double().logsumexp(1).exp().numpy()


def answer_ids(tokenizer, pairs) -> list[int]:
    """The first token of each (prompt, answer) pair's answer."""
    out = []
    for prompt, answer in pairs:
        ids = tokenizer.encode(answer, add_special_tokens=False)
        if not ids:
            raise HeadPursuitError(f"control answer {answer!r} (prompt {prompt!r}) has no tokens")
        out.append(ids[0])
    return out


def facts_known(model, pairs, *, cancel: threading.Event | None = None) -> list[tuple[str, str]]:
    """The (prompt, answer) pairs whose answer's first token is the unedited model's top next token."""
    pairs = list(pairs)
    if not pairs:
        raise HeadPursuitError("the control task is empty: give (prompt, answer) pairs")
    logprobs = next_token_logprobs(model, [p for p, _ in pairs], cancel=cancel)
    best = logprobs.argmax(1).tolist()
    return [pair for pair, top, want in zip(pairs, best, answer_ids(model.tokenizer, pairs)) if top == want]


def control_logprobs(logprobs: torch.Tensor, ids) -> np.ndarray:
    """Log-probability (nats) of each control answer's first token: (n_pairs,) float64."""
    return logprobs[torch.arange(len(ids)), torch.as_tensor(ids, dtype=torch.long)].double().numpy()
