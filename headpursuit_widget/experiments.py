"""Paper-protocol experiments: suppression and enhancement curves with a next-token probe.

Measures of one edit set (docs/method.md, "Measuring an edit"), each against the unedited model:
- probe_mass: probability mass of the concept's dictionary tokens as the next token after the
  concept's held-out probe prompts (mean over prompts, a probability in [0, 1]);
- control: mean log-probability (nats) of the right answer of the factual control task;
- word_rate: concept words per generated word in greedy generations on held-out prompts;
- perplexity: of the edited generations under the UNEDITED model (fluency; high = broken text).
Heads are ranked on the concept's rank prompts only; all measures use held-out prompts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .engine import HeadPursuitError, edit_heads, generate, random_heads, rank_heads
from .engine.concept_input import resolve_concept
from .engine.dictionary import Concept
from .engine.inputs import format_prompt
from .engine.ranking import SCORES, HeadRanking
from .engine.shipped import concepts as shipped_concepts

MEASURES = ("probe_mass", "control", "word_rate", "perplexity")
SELECTIONS = ("recommended", *SCORES, "random")  # how a curve picks the heads it edits (see _selection_heads)


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


@dataclass
class Curve:
    """Measures of edited models along one axis (k heads or alpha), per head selection.

    values[selection][measure]: (n_x, n_draws) float64 (n_draws = 1 for a score's top heads, n_random
    for "random"). baseline[measure]: the unedited model. heads[selection][i][draw]: the edited heads.
    """

    kind: str  # "suppression" or "enhancement"
    axis: str  # "k" or "alpha"
    x: np.ndarray
    values: dict
    baseline: dict
    heads: dict
    model_name: str
    concept: str
    settings: dict = field(default_factory=dict)

    @property
    def selections(self) -> list[str]:
        """The head selections compared, in order."""
        return list(self.values)

    def summary(self, selection: str, measure: str, relative: bool = True) -> dict:
        """median, q25, q75 over draws, each (n_x,). relative: ratio to baseline (control: difference
        in nats; perplexity: ratio)."""
        vals = self.values[selection][measure]
        base = self.baseline[measure]
        if relative:
            with np.errstate(divide="ignore", invalid="ignore"):
                vals = vals - base if measure == "control" else vals / base
        q25, med, q75 = (
            np.nanpercentile(vals, [25, 50, 75], axis=1)
            if np.isfinite(vals).any()
            else (np.full(len(self.x), np.nan),) * 3
        )
        return {"median": med, "q25": q25, "q75": q75}

    def table(self, relative: bool = True) -> list[dict]:
        """One row per (selection, x) with the median of each measure (relative by default)."""
        rows = []
        for selection in self.values:
            summaries = {m: self.summary(selection, m, relative)["median"] for m in MEASURES}
            for i, x in enumerate(self.x):
                rows.append(
                    {"selection": selection, self.axis: x.item(), **{m: float(s[i]) for m, s in summaries.items()}}
                )
        return rows

    def to_dict(self) -> dict:
        """Plain JSON-able data."""
        return {
            "kind": self.kind,
            "axis": self.axis,
            "x": self.x.tolist(),
            "model": self.model_name,
            "concept": self.concept,
            "settings": self.settings,
            "baseline": self.baseline,
            "values": {s: {k: v.tolist() for k, v in d.items()} for s, d in self.values.items()},
            "heads": self.heads,
        }

    def plot(self, measures=MEASURES, *, theme: str = "auto"):
        """Bokeh layout, one panel per measure (relative to the unedited model); ``theme`` "light",
        "dark" or "auto" (plots.py)."""
        from .plots import curve_figure

        return curve_figure(self, measures, theme=theme)

    def save_html(self, path, measures=MEASURES):
        """Write the plot as a standalone HTML file with inline bokeh resources."""
        from .plots import save_html

        return save_html(self.plot(measures), path, title=f"{self.kind}: {self.concept} on {self.model_name}")


@dataclass(frozen=True)
class _Setup:
    """What a curve needs before editing: the concept (whole words), the ranking and the held-out data."""

    concept: Concept
    ranking: HeadRanking
    budget: Budget
    held_out: HeldOut


def _setup(model, concept, *, ranking, budget, generation_field: str, rank_kwargs: dict, progress: bool) -> _Setup:
    con, spec = resolve_concept(concept, model.tokenizer)  # measured with whole words, whatever the ranking rule
    budget = budget or Budget()
    held_out = HeldOut(
        probe_prompts=_held_out(None, spec, "probe_prompts")[: budget.n_probe],
        gen_prompts=_held_out(None, spec, generation_field)[: budget.n_generate] if budget.n_generate != 0 else [],
        pairs=shipped_concepts.control()[: budget.n_control],
        max_new_tokens=budget.max_new_tokens,
    )
    if ranking is None:
        ranking = rank_heads(model, None, spec or con, progress=progress, **rank_kwargs)
    return _Setup(concept=con, ranking=ranking, budget=budget, held_out=held_out)


def _selected_heads(ranking, selection: str, k: int, n_random: int, seed: int) -> list[list[tuple[int, int]]]:
    """The heads one selection edits at size k: one draw per score, n_random draws for "random"."""
    if selection == "random":
        return [random_heads(ranking, k, seed=seed + d) for d in range(n_random)]
    if selection == "recommended":
        return [ranking.top(k)]  # the refined recommendation first, then the active score
    if selection not in SCORES:
        raise HeadPursuitError(f"unknown selection {selection!r}; accepted: {', '.join(SELECTIONS)}")
    return [ranking.with_score(selection).unrefined().top(k)]  # the score alone


def _run(model, setup: _Setup, conditions: dict, *, progress: bool, desc: str) -> dict:
    """conditions: {(selection, i): [edits per draw]} -> {(selection, i): [measures per draw]}."""
    total = sum(len(v) for v in conditions.values())
    out: dict = {}
    with tqdm(total=total, desc=desc, disable=not progress) as bar:
        for key, draws in conditions.items():
            out[key] = []
            for edits in draws:
                out[key].append(evaluate(model, setup.concept, edits, held_out=setup.held_out))
                bar.update()
    return out


def _curve(
    model, setup: _Setup, *, kind: str, axis: str, x: list, heads: dict, edits: dict, settings: dict, progress: bool
) -> Curve:
    """Measure the unedited model and every edit set; edits: {(selection, i): [edits per draw]}."""
    baseline = evaluate(model, setup.concept, None, held_out=setup.held_out)
    results = _run(model, setup, edits, progress=progress, desc=f"{kind} ({setup.concept.name})")
    values = {
        s: {meas: np.array([[r[meas] for r in results[s, i]] for i in range(len(x))]) for meas in MEASURES}
        for s in heads
    }
    settings.update(
        score=setup.ranking.score_name,
        options=setup.ranking.options,
        budget=setup.budget.__dict__,
        n_probe=len(setup.held_out.probe_prompts),
        n_generate=len(setup.held_out.gen_prompts),
    )
    return Curve(
        kind=kind,
        axis=axis,
        x=np.asarray(x),
        values=values,
        baseline=baseline,
        heads=heads,
        model_name=model.name,
        concept=setup.concept.name,
        settings=settings,
    )


def suppression_curve(
    model,
    concept,
    *,
    ks=(1, 2, 4, 8, 16, 32),
    alpha: float = -1.0,
    selections=("recommended", "specificity", "evr", "logit_lens", "random"),
    n_random: int = 10,
    ranking=None,
    budget: Budget | None = None,
    seed: int = 0,
    progress: bool = True,
    **rank_kwargs,
) -> Curve:
    """Edit the top-k heads of each selection by `alpha` for each k; measure on held-out prompts.

    selections: "recommended" (the default ranking's refined heads: ranking.top), any of SCORES
    ("z", "specificity" the previous default, "evr" the paper's raw score, "logit_lens": the top heads by
    that score alone) and "random" (n_random draws matched to the layers of the recommended heads).
    ranking: reuse an hp.rank_heads result (else ranked with rank_kwargs). Returns a Curve over k.
    """
    setup = _setup(
        model,
        concept,
        ranking=ranking,
        budget=budget,
        generation_field="eval_prompts",
        rank_kwargs=rank_kwargs,
        progress=progress,
    )
    ks = [int(k) for k in ks]
    heads = {s: [_selected_heads(setup.ranking, s, k, n_random, seed) for k in ks] for s in selections}
    edits = {(s, i): [{h: alpha for h in draw} for draw in heads[s][i]] for s in selections for i in range(len(ks))}
    settings = {"alpha": alpha, "n_random": n_random}
    return _curve(
        model, setup, kind="suppression", axis="k", x=ks, heads=heads, edits=edits, settings=settings, progress=progress
    )


def enhancement_curve(
    model,
    concept,
    k: int,
    *,
    alphas=(1, 2, 3, 5, 8),
    selections=("recommended", "random"),
    n_random: int = 10,
    ranking=None,
    budget: Budget | None = None,
    seed: int = 0,
    progress: bool = True,
    **rank_kwargs,
) -> Curve:
    """Scale the top-k heads by each alpha; generations on the concept's NEUTRAL prompts (word_rate,
    perplexity), probe_mass on its probe prompts, control as usual. Returns a Curve over alpha."""
    setup = _setup(
        model,
        concept,
        ranking=ranking,
        budget=budget,
        generation_field="neutral_prompts",
        rank_kwargs=rank_kwargs,
        progress=progress,
    )
    alphas = [float(a) for a in alphas]
    heads = {s: [_selected_heads(setup.ranking, s, k, n_random, seed)] * len(alphas) for s in selections}
    edits = {(s, i): [{h: a for h in draw} for draw in heads[s][i]] for s in selections for i, a in enumerate(alphas)}
    settings = {"k": k, "n_random": n_random}
    return _curve(
        model,
        setup,
        kind="enhancement",
        axis="alpha",
        x=alphas,
        heads=heads,
        edits=edits,
        settings=settings,
        progress=progress,
    )
