"""The measures of one edit set (docs/method.md, "Measuring an edit"), each against the unedited model,
on held-out prompts: probe_mass, control, word_rate, perplexity; evaluate() takes all four."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch

from ..engine import HeadPursuitError, edit_heads, generate
from ..engine.activations.inputs import format_prompt
from ..engine.concepts import shipped as shipped_concepts
from ..engine.concepts.resolve import resolve_concept

MEASURES = ("probe_mass", "control", "word_rate", "perplexity")


def _encode(model, prompts, chat: bool) -> list[list[int]]:
    tok = model.tokenizer
    return [tok.encode(format_prompt(tok, p, chat), add_special_tokens=not chat) for p in prompts]


def _batched_logits(model, id_lists, batch_size: int, last_only: bool = False):
    """Yield (start, logits, lengths (B,)) for batches of id lists: right-padded logits (B, T, vocab)
    float32, or with last_only left-padded logits of the last position only, (B, vocab)."""
    pad = model.tokenizer.pad_token_id
    for start in range(0, len(id_lists), batch_size):
        chunk = id_lists[start : start + batch_size]
        lengths = torch.tensor([len(ids) for ids in chunk])
        width = int(lengths.max())
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(chunk):
            span = slice(width - len(row), width) if last_only else slice(0, len(row))
            ids[i, span] = torch.tensor(row)
            mask[i, span] = 1
        extra = (
            {"logits_to_keep": 1, "position_ids": (mask.cumsum(1) - 1).clamp_min(0).to(model.device)}
            if last_only
            else {}
        )
        with torch.inference_mode():
            out = model.forward(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device), use_cache=False, **extra
            )
        logits = out.logits.float().cpu()
        yield start, logits[:, -1] if last_only else logits, lengths


def next_token_probs(model, prompts, *, edits=None, chat: bool = False, batch_size: int = 16) -> torch.Tensor:
    """Next-token distribution after each prompt, (n_prompts, vocab) float32, under `edits`."""
    with edit_heads(model, edits):
        rows = [
            logits.softmax(-1)
            for _, logits, _ in _batched_logits(model, _encode(model, prompts, chat), batch_size, last_only=True)
        ]
    return torch.cat(rows)


def continuation_logprobs(
    model, prompts, continuations, *, edits=None, chat: bool = False, batch_size: int = 8
) -> list[np.ndarray]:
    """Per-token log-probabilities (nats) of each continuation text given its prompt: list of (t_i,)."""
    tok = model.tokenizer
    prompt_ids = _encode(model, prompts, chat)
    cont_ids = [tok.encode(c, add_special_tokens=False) for c in continuations]
    id_lists = [p + c for p, c in zip(prompt_ids, cont_ids)]
    result = []
    with edit_heads(model, edits):
        for start, logits, _ in _batched_logits(model, id_lists, batch_size):
            logp = logits.log_softmax(-1)
            for i in range(logp.shape[0]):
                p, c = prompt_ids[start + i], cont_ids[start + i]
                pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)
                result.append(logp[i, pos, torch.tensor(c, dtype=torch.long)].numpy().astype(np.float64))
    return result


def probe_mass(model, concept, *, prompts=None, edits=None, chat: bool = False) -> np.ndarray:
    """Concept probability mass at the next token after each probe prompt, (n_prompts,) in [0, 1].

    concept: a shipped name, word list, Concept or ConceptSpec; prompts default to its probe prompts.
    """
    con, spec = resolve_concept(concept, model.tokenizer)
    prompts = _held_out(prompts, spec, "probe_prompts")
    probs = next_token_probs(model, prompts, edits=edits, chat=chat)
    return probs[:, list(con.token_ids)].sum(1).double().numpy()


def control_logprob(model, *, pairs=None, edits=None) -> np.ndarray:
    """Log-probability (nats) of the right answer of each (prompt, answer) control pair, (n_pairs,).

    Defaults to hp.concepts.control(); multi-token answers (other tokenizers) sum their tokens.
    """
    pairs = shipped_concepts.control() if pairs is None else list(pairs)
    if not pairs:
        raise HeadPursuitError("the control task is empty: give (prompt, answer) pairs")
    prompts, answers = zip(*pairs)
    return np.array([lp.sum() for lp in continuation_logprobs(model, prompts, answers, edits=edits)])


def word_rate(texts, words) -> np.ndarray:
    """Concept words per word in each text (case-insensitive, whole words), (n_texts,)."""
    pattern = re.compile(
        r"\b(?:{})\b".format("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))), re.IGNORECASE
    )
    rates = []
    for text in texts:
        n_words = len(re.findall(r"\w+", text))
        rates.append(len(pattern.findall(text)) / n_words if n_words else 0.0)
    return np.array(rates)


def perplexity(model, prompts, texts, *, chat: bool) -> float:
    """Perplexity of the generated texts given their prompts under model WITHOUT edits (nan if all empty)."""
    keep = [(p, t) for p, t in zip(prompts, texts) if t.strip()]
    if not keep:
        return math.nan
    logps = continuation_logprobs(model, *zip(*keep), chat=chat)
    return float(np.exp(-np.concatenate(logps).mean()))


def _held_out(prompts, spec, field_name: str) -> list[str]:
    if prompts is not None:
        return list(prompts)
    if spec is None:
        raise HeadPursuitError(f"a custom concept has no {field_name}: pass prompts explicitly")
    return list(getattr(spec, field_name))


@dataclass
class Budget:
    """Prompt counts and generation length; shrink it for quick runs (tests, notebooks)."""

    n_probe: int | None = None  # probe prompts used (None: all)
    n_generate: int | None = None  # generation prompts used (None: all; 0: no generation)
    n_control: int | None = None  # control pairs used (None: all)
    max_new_tokens: int = 24

    @classmethod
    def quick(cls) -> Budget:
        return cls(n_probe=8, n_generate=0, n_control=8, max_new_tokens=12)


@dataclass(frozen=True)
class HeldOut:
    """What every edit set is measured on: probe prompts, generation prompts (may be empty), control
    (prompt, answer) pairs, and the generation length in tokens."""

    probe_prompts: list[str]
    gen_prompts: list[str]
    pairs: list[tuple[str, str]]
    max_new_tokens: int = 24


def evaluate(model, concept, edits, *, held_out: HeldOut) -> dict:
    """All MEASURES for one edit set {(layer, head): alpha}: probe_mass, control (means), word_rate,
    perplexity (nan without generation prompts)."""
    con, _ = resolve_concept(concept, model.tokenizer)
    result = {
        "probe_mass": float(probe_mass(model, con, prompts=held_out.probe_prompts, edits=edits).mean()),
        "control": float(control_logprob(model, pairs=held_out.pairs, edits=edits).mean()),
        "word_rate": math.nan,
        "perplexity": math.nan,
    }
    if held_out.gen_prompts:
        chat = bool(getattr(model.tokenizer, "chat_template", None))
        texts = generate(model, held_out.gen_prompts, edits=edits, max_new_tokens=held_out.max_new_tokens, chat=chat)
        result["word_rate"] = float(word_rate(texts, con.words).mean())
        result["perplexity"] = perplexity(model, held_out.gen_prompts, texts, chat=chat)
    return result
