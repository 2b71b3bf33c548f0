"""Ranking heads for a concept: SOMP explained variance against a calibrated null, Logit Lens.

Scores (all (n_layers, n_heads)):
- "z" (default): how far the concept's EVR lies above the EVR of `n_null` frequency-matched
  random-word dictionaries run through the same SOMP, in null standard deviations (engine/null.py);
  `significant` marks the heads whose p-value survives Benjamini-Hochberg at q.
- "specificity": evr minus the mean null EVR (the previous default).
- "evr": the paper's raw score, EVR after k SOMP atoms of the concept dictionary.
- "logit_lens": mean concept-token logit of the head's mean write.
With no prompts, heads are ranked on eliciting contexts (engine/contexts.py) at the last position;
`refine` (engine/selection.py) then picks the recommended heads by flipping candidates.
docs/verification.md describes the method and the measurements behind the defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .baselines import logit_lens_scores
from .capture import capture
from .contexts import eliciting_contexts
from .dictionary import Concept, dictionary_rows
from .errors import HeadPursuitError
from .inputs import check_prompts
from .null import benjamini_hochberg, frequency_matched_dictionaries, frequency_profile, null_statistics
from .pursuit import somp

SCORES = ("z", "specificity", "evr", "logit_lens")
METHODS = {"somp": "z", "logit_lens": "logit_lens"}
FORMAT = "headpursuit-ranking/2"
_ARRAYS = ("null_evr", "atoms", "gains", "curves", "lens_ids", "lens_vals", "significant")
_NULL_CACHE: OrderedDict = OrderedDict()  # (model, samples, dictionary, k, profile, ...) -> (null_evr, token ids)
_NULL_CACHE_SIZE = 16


@dataclass(frozen=True)
class HeadRanking:
    """Scores of every head for one concept, with each head's SOMP atoms and Logit-Lens tokens.

    score_table[name]: (n_layers, n_heads) float64. null_evr: (n_null, n_layers, n_heads).
    significant: (n_layers, n_heads) bool, Benjamini-Hochberg discoveries of the null test.
    recommended: heads chosen by refine() as (layer, head), best first; () before refinement.
    atoms/gains/curves: (n_layers, n_heads, k) token ids, EVR gain of each atom, cumulative EVR.
    lens_ids/lens_vals: (n_layers, n_heads, n_lens) top full-vocabulary tokens of the mean write.
    vocab: token id -> string for every id stored here.
    """

    score_table: dict
    null_evr: np.ndarray
    atoms: np.ndarray
    gains: np.ndarray
    curves: np.ndarray
    lens_ids: np.ndarray
    lens_vals: np.ndarray
    vocab: dict
    concept: dict
    method: str
    score_name: str
    options: dict
    model_name: str
    fingerprint: str
    significant: np.ndarray
    recommended: tuple = ()

    @property
    def scores(self) -> np.ndarray:
        """The active score, (n_layers, n_heads)."""
        return self.score_table[self.score_name]

    score_names = SCORES
    n_layers = property(lambda self: self.atoms.shape[0])
    n_heads = property(lambda self: self.atoms.shape[1])
    k = property(lambda self: self.atoms.shape[2])

    @property
    def above_null(self) -> np.ndarray:
        """(n_layers, n_heads) bool: the concept's EVR beats every random-word dictionary's."""
        return self.score_table["evr"] > self.null_evr.max(0)

    @property
    def null_mean(self) -> np.ndarray:
        """(n_layers, n_heads) float64: mean EVR of the null dictionaries."""
        return self.null_evr.mean(0).astype(np.float64)

    @property
    def null_sd(self) -> np.ndarray:
        """(n_layers, n_heads) float64: standard deviation of the null dictionaries' EVR."""
        return self.null_evr.std(0, ddof=1).astype(np.float64)

    def with_score(self, name: str) -> HeadRanking:
        """The same ranking ordered by another score: "specificity", "evr" or "logit_lens"."""
        if name not in SCORES:
            raise HeadPursuitError(f"unknown score {name!r}; accepted: {', '.join(SCORES)}")
        return dataclasses.replace(self, score_name=name)

    def top(self, n: int) -> list[tuple[int, int]]:
        """The n heads the project recommends editing, as (layer, head): the refined selection first
        (`recommended`), then the rest by the active score, with the candidates refinement rejected
        (flipping them cost the control more than it cut the concept) last."""
        total = self.n_layers * self.n_heads
        if not isinstance(n, (int, np.integer)) or not 1 <= n <= total:
            raise HeadPursuitError(f"number of heads must be an int from 1 to {total} (all heads), got {n!r}")
        first = [(int(layer), int(head)) for layer, head in self.recommended][:n]
        rejected = {tuple(h) for h in self.options.get("refine", {}).get("candidates", [])} - set(self.recommended)
        flat = np.nan_to_num(self.scores, nan=-np.inf).ravel()
        rest = [(int(i // self.n_heads), int(i % self.n_heads)) for i in np.argsort(-flat, kind="stable")]
        rest = [h for h in rest if h not in first and h not in rejected] + [h for h in rest if h in rejected]
        return first + rest[: n - len(first)]

    def _check(self, layer: int, head: int) -> None:
        if not (0 <= layer < self.n_layers and 0 <= head < self.n_heads):
            raise HeadPursuitError(
                f"head ({layer}, {head}) is out of range: layers 0..{self.n_layers - 1}, heads 0..{self.n_heads - 1}"
            )

    def tokens(self, layer: int, head: int, n: int = 10) -> list[tuple[str, float]]:
        """The head's first n SOMP atoms, decoded, with the share of variance each one added."""
        self._check(layer, head)
        return [
            (self.vocab[int(t)], float(g)) for t, g in zip(self.atoms[layer, head, :n], self.gains[layer, head, :n])
        ]

    def lens_tokens(self, layer: int, head: int, n: int = 10) -> list[tuple[str, float]]:
        """The head's top Logit-Lens tokens over the whole vocabulary, with their logits."""
        self._check(layer, head)
        return [
            (self.vocab[int(t)], float(v))
            for t, v in zip(self.lens_ids[layer, head, :n], self.lens_vals[layer, head, :n])
        ]

    def evr_curve(self, layer: int, head: int) -> np.ndarray:
        """Cumulative explained variance after 1..k atoms, (k,)."""
        self._check(layer, head)
        return self.curves[layer, head].copy()

    def save(self, path) -> Path:
        """Write a .npz (arrays + JSON metadata); readable without pickle."""
        path = Path(path)
        meta = {
            "format": FORMAT,
            "vocab": {str(k): v for k, v in self.vocab.items()},
            "concept": self.concept,
            "method": self.method,
            "score_name": self.score_name,
            "options": self.options,
            "model_name": self.model_name,
            "fingerprint": self.fingerprint,
            "recommended": [list(h) for h in self.recommended],
        }
        arrays = {name: getattr(self, name) for name in _ARRAYS}
        arrays.update({name: self.score_table[name] for name in SCORES})
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path, model=None) -> HeadRanking:
        """Read a saved ranking; with model=, refuse one made for a different model (fingerprint)."""
        path = Path(path)
        if not path.is_file():
            raise HeadPursuitError(f"ranking file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {name: data[name] for name in _ARRAYS + SCORES}
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
            raise HeadPursuitError(f"{path} is not a head ranking file or is corrupted ({exc})") from None
        if meta.get("format") != FORMAT:
            raise HeadPursuitError(f"{path}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
        ranking = cls(
            score_table={name: arrays.pop(name) for name in SCORES},
            vocab={int(k): v for k, v in meta["vocab"].items()},
            concept=meta["concept"],
            method=meta["method"],
            score_name=meta["score_name"],
            options=meta["options"],
            model_name=meta["model_name"],
            fingerprint=meta["fingerprint"],
            recommended=tuple((int(layer), int(head)) for layer, head in meta["recommended"]),
            **arrays,
        )
        if model is not None and model.fingerprint != ranking.fingerprint:
            raise HeadPursuitError(
                f"{path} was made for model {ranking.model_name!r} (fingerprint "
                f"{ranking.fingerprint}), not for {model.name!r} ({model.fingerprint})"
            )
        return ranking


@contextmanager
def _progress(enabled: bool, label: str):
    """A one-step tqdm bar around a single long call."""
    with tqdm(total=1, desc=label, disable=not enabled) as bar:
        yield
        bar.update(1)


def resolve_concept(concept, tokenizer, rule: str = "whole_word"):
    """(tokenised Concept, shipped ConceptSpec or None) from a shipped name, word file, word list,
    Concept or ConceptSpec."""
    from .. import concepts as shipped_concepts

    spec = None
    if isinstance(concept, str):
        if concept in shipped_concepts.names():
            spec = shipped_concepts.get(concept)
        elif Path(concept).is_file():
            return Concept.from_file(concept, tokenizer, rule), None
        else:
            raise HeadPursuitError(
                f"unknown concept {concept!r}: shipped concepts are "
                f"{', '.join(shipped_concepts.names())}; or pass a word list or a word file"
            )
    elif isinstance(concept, shipped_concepts.ConceptSpec):
        spec = concept
    if spec is not None:
        return Concept.from_words(spec.name, spec.words, tokenizer, rule), spec
    if isinstance(concept, Concept):
        if concept.token_ids and concept.rule == rule:
            return concept, None
        return Concept.from_words(concept.name, concept.words, tokenizer, rule), None
    return Concept.from_words("custom", concept, tokenizer, rule), None


def _decode_all(tokenizer, ids) -> dict:
    ids = sorted({int(i) for i in ids})
    return dict(zip(ids, tokenizer.batch_decode([[i] for i in ids])))


def rank_heads(
    model,
    prompts=None,
    concept="colours",
    *,
    method: str = "somp",
    score: str | None = None,
    k: int = 10,
    n_null: int = 30,
    q: float = 0.05,
    activations: torch.Tensor | None = None,
    normalize: bool = True,
    fold_norm: bool = False,
    rule: str = "whole_word",
    positions: str | None = None,
    chat: bool = False,
    seed: int = 0,
    n_lens: int = 10,
    batch_size: int = 8,
    refine: bool = True,
    progress: bool = True,
) -> HeadRanking:
    """Rank every head of `model` (a HeadModel) for `concept`.

    prompts None: eliciting contexts built from the concept's name and words (engine/contexts.py,
    the "rank" part for `seed`), read at positions "last"; given prompts are read at "prompt"
    positions unless `positions` says otherwise. method "somp" (default score "z") or "logit_lens";
    score= picks any of SCORES. k: SOMP atoms (capped at the dictionary size). n_null: frequency-
    matched null dictionaries (>= 2; 30 for usable p-values). q: false discovery rate of `significant`.
    activations: a capture() result to reuse. refine: run refine() to pick the recommended heads
    (forward passes on the rank contexts and half of the control facts; text models only).
    """
    if method not in METHODS:
        raise HeadPursuitError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    score = score or METHODS[method]
    if score not in SCORES:
        raise HeadPursuitError(f"unknown score {score!r}; accepted: {', '.join(SCORES)}")
    if not isinstance(k, int) or k < 1:
        raise HeadPursuitError(f"k (SOMP atoms) must be a positive int, got {k!r}")
    if not isinstance(n_null, int) or n_null < 2:
        raise HeadPursuitError(f"n_null must be an int >= 2 (null dictionaries; 30 for p-values), got {n_null!r}")
    a = model.adapter
    con, spec = resolve_concept(concept, model.tokenizer, rule)
    contexts = None
    if prompts is None and activations is None:
        contexts = eliciting_contexts(con.name, list(con.mapping) or list(con.words), part="rank", seed=seed)
    elif prompts is not None:
        contexts = check_prompts(prompts)
    positions = positions or ("last" if prompts is None else "prompt")
    if activations is None:
        activations = capture(model, contexts, positions=positions, chat=chat, batch_size=batch_size, progress=progress)
    expected = (a.n_layers, a.n_heads, a.d_model)
    if activations.dim() != 4 or (activations.shape[0], activations.shape[1], activations.shape[3]) != expected:
        raise HeadPursuitError(
            f"activations must be (n_layers, n_heads, n_samples, d_model) = "
            f"({expected[0]}, {expected[1]}, n, {expected[2]}), got {tuple(activations.shape)}"
        )
    L, Hn, n, d = activations.shape
    if n < 2:
        raise HeadPursuitError("SOMP centres over samples: give at least 2 prompts")
    m = len(con.token_ids)
    k_eff = min(k, m)
    flat = activations.reshape(L * Hn, n, d).to(a.unembedding.device)  # SOMP runs where the model is
    rows = dictionary_rows(a, con.token_ids, normalize, fold_norm).to(flat.device)
    with _progress(progress, f"SOMP: {L * Hn} heads, k={k_eff}"):
        concept_res = somp(flat, rows, k_eff)
    evr = concept_res.evr[:, -1].reshape(L, Hn).cpu().numpy()
    null_key = (model.fingerprint, _digest(activations), m, k_eff, frequency_profile(model.tokenizer, con))
    null_key += (rule, normalize, fold_norm, n_null, seed)
    null_evr = _null_evr(model, flat, con, null_key, progress)
    null_mean, _, z, p = null_statistics(evr, null_evr)
    raw_rows = dictionary_rows(a, con.token_ids, normalize=False, fold_norm=fold_norm)
    lens = logit_lens_scores(activations, raw_rows.cpu()).double().numpy()
    with torch.no_grad():
        mean_writes = activations.mean(2).reshape(L * Hn, d).to(a.unembedding.device, a.unembedding.dtype)
        top = (mean_writes @ a.unembedding.detach().T).float().topk(min(n_lens, a.unembedding.shape[0]), dim=1)
    token_ids = torch.as_tensor(con.token_ids)
    atoms = token_ids[concept_res.atoms.cpu()].reshape(L, Hn, k_eff).numpy()
    curves = concept_res.evr.cpu().reshape(L, Hn, k_eff).numpy()
    gains = np.diff(curves, axis=-1, prepend=0.0)
    lens_ids = top.indices.cpu().reshape(L, Hn, -1).numpy()
    options = dict(
        k=k_eff,
        n_null=n_null,
        q=q,
        normalize=normalize,
        fold_norm=fold_norm,
        rule=rule,
        positions=positions,
        chat=chat,
        seed=seed,
        n_samples=n,
        contexts=contexts,
        automatic_contexts=prompts is None and contexts is not None,
        approximate=a.approximate,
    )
    ranking = HeadRanking(
        score_table={"z": z, "specificity": evr - null_mean, "evr": evr, "logit_lens": lens},
        null_evr=null_evr,
        atoms=atoms,
        gains=gains,
        curves=curves,
        lens_ids=lens_ids,
        lens_vals=top.values.cpu().reshape(L, Hn, -1).numpy().astype(np.float64),
        vocab=_decode_all(model.tokenizer, np.concatenate([atoms.ravel(), lens_ids.ravel(), token_ids.numpy()])),
        concept={
            "name": con.name,
            "words": list(con.words),
            "token_ids": list(con.token_ids),
            "token_strings": list(con.token_strings),
            "rule": con.rule,
            "split_words": con.split_words,
            "shipped": spec is not None,
        },
        method=method,
        score_name=score,
        options=options,
        model_name=model.name,
        fingerprint=model.fingerprint,
        significant=benjamini_hochberg(p, q),
    )
    if refine and not model.is_vlm:  # refinement measures text next-token predictions
        from .selection import refine as run_refine

        ranking = run_refine(model, ranking, progress=progress)
    return ranking


def _digest(activations: torch.Tensor) -> str:
    """A short hash of captured head writes: the identity of the samples for the null cache."""
    return hashlib.sha1(activations.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def _null_evr(model, flat: torch.Tensor, con: Concept, key: tuple, progress: bool) -> np.ndarray:
    """(n_null, n_layers, n_heads) EVR of frequency-matched null dictionaries on the same heads and samples.

    Cached per key (model, samples, dictionary size, k, frequency profile, options): a second concept
    with the same profile reuses the draws unless one of them contains its tokens.
    """
    cached = _NULL_CACHE.get(key)
    if cached is not None and not cached[1].intersection(con.token_ids):
        _NULL_CACHE.move_to_end(key)
        return cached[0]
    _, _, m, k, profile, rule, normalize, fold_norm, n_null, seed = key
    draws = frequency_matched_dictionaries(
        model.tokenizer, profile, m, n_draws=n_null, exclude=con.token_ids, seed=seed, rule=rule
    )
    dictionaries = torch.stack([dictionary_rows(model.adapter, ids, normalize, fold_norm) for ids in draws])
    L, Hn = model.adapter.n_layers, model.adapter.n_heads
    with _progress(progress, f"null: {L * Hn} heads x {n_null} dictionaries, k={k}"):
        res = somp(flat, dictionaries.to(flat.device), k)
    null_evr = res.evr[:, :, -1].reshape(n_null, L, Hn).cpu().numpy()
    _NULL_CACHE[key] = (null_evr, {int(i) for ids in draws for i in ids})
    while len(_NULL_CACHE) > _NULL_CACHE_SIZE:
        _NULL_CACHE.popitem(last=False)
    return null_evr
