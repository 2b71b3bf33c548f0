"""Next-token measures of an edited model: concept probability mass and control-fact log-probabilities.

Both read the next-token distribution at the last position of each prompt (one forward per batch),
which is what verification and refinement compare with and without a head edit.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
from torch import nn

from ..activations.inputs import check_prompts, encode
from ..editing.edits import edit_heads, parse_edits
from ..editing.prefix import recording, replaced
from ..errors import HeadPursuitError, check_cancel
from ..progress import Progress
from ..progress import bar as progress_bar


def next_token_logprobs(
    model, prompts, *, edits=None, batch_size: int = 16, cancel: threading.Event | None = None
) -> torch.Tensor:
    """Log-probabilities of the next token after each prompt, (n_prompts, vocab) float32, under `edits`."""
    return next_token_logprobs_each(model, prompts, [edits], batch_size=batch_size, cancel=cancel)[0]


def next_token_logprobs_each(
    model,
    prompts,
    edit_sets,
    *,
    batch_size: int = 16,
    cancel: threading.Event | None = None,
    on_pass=None,
    columns=None,
) -> list[torch.Tensor]:
    """next_token_logprobs(model, prompts, edits=e) for each e in edit_sets (None or {}: unedited);
    columns: token ids to keep (then each tensor is (n_prompts, len(columns)), normalised over the whole
    vocabulary), so that hundreds of edit sets fit in memory.

    Batch by batch; when the unedited pass is among them, it runs first and records the blocks' outputs,
    and an edit set whose shallowest edited layer is L then runs from layer L on (engine/editing/prefix.py; where
    the passes run elsewhere, remote nnsight, every pass runs whole). on_pass() is called after each forward pass.
    """
    prompts = check_prompts(prompts)
    plans = [parse_edits(model.adapter, e) for e in edit_sets]  # every set checked before any pass
    base_wanted = any(not plan for plan in plans)
    blocks = model.adapter.blocks if model.blocks_run_here and base_wanted else None
    blocks = blocks if blocks is not None else nn.ModuleList()
    starts = [min(plan) if plan and len(blocks) else 0 for plan in plans]
    tick = on_pass or (lambda: None)
    keep = slice(None) if columns is None else torch.as_tensor(list(columns), dtype=torch.long)
    rows: list[list[torch.Tensor]] = [[] for _ in plans]

    def run(inputs: dict) -> torch.Tensor:
        check_cancel(cancel)
        position_ids = (inputs["attention_mask"].cumsum(1) - 1).clamp_min(0)  # left padding: from each prompt
        out = model.forward(**inputs, position_ids=position_ids, logits_to_keep=1, use_cache=False)
        tick()
        return out.logits[:, -1].float().log_softmax(-1)[:, keep].cpu()

    with model.lock, torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            inputs = encode(model, prompts[start : start + batch_size], positions="last", padding_side="left").inputs
            outputs: list = []
            if base_wanted:
                with recording(blocks, max(starts)) as outputs:
                    base = run(inputs)
            for row, plan, edits, layer in zip(rows, plans, edit_sets, starts):
                if not plan:
                    row.append(base)
                    continue
                with edit_heads(model, edits), replaced(blocks, outputs, layer):
                    row.append(run(inputs))
    return [torch.cat(r) for r in rows]


def passes(prompts, edit_sets, batch_size: int = 16) -> int:
    """The forward passes next_token_logprobs_each makes (a progress bar's total)."""
    per_batch = any(not e for e in edit_sets) + sum(bool(e) for e in edit_sets)
    return math.ceil(len(prompts) / batch_size) * per_batch


def mass_and_control(
    model, probe, pairs, token_ids, edit_sets, *, cancel=None, progress: Progress = False, desc: str = "measuring"
) -> list[tuple[float, np.ndarray]]:
    """(mean concept mass over the `probe` prompts, control log-probs (n_pairs,)) under each of edit_sets
    (None: unedited): what refine, verify and the trust benchmarks compare, from one
    next_token_logprobs_each over the probe prompts and the control pairs' prompts, with a progress bar."""
    probe = list(probe)
    prompts = probe + [p for p, _ in pairs]
    ids = answer_ids(model.tokenizer, pairs)
    with progress_bar(progress, total=passes(prompts, edit_sets), desc=desc) as bar:
        logprobs = next_token_logprobs_each(model, prompts, edit_sets, cancel=cancel, on_pass=bar.update)
    n = len(probe)
    return [(float(concept_mass(lp[:n], token_ids).mean()), control_logprobs(lp[n:], ids)) for lp in logprobs]


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
