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
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .baselines import logit_lens_scores, logit_lens_top
from .capture import capture
from .concept_input import concept_record, resolve_concept
from .contexts import eliciting_contexts
from .dictionary import Concept, dictionary_rows
from .effects import HeadEffects, effects_from_record
from .errors import HeadPursuitError, check_int, shorten
from .inputs import check_prompts
from .null import benjamini_hochberg, frequency_matched_dictionaries, frequency_profile, null_statistics
from .pursuit import CHUNK_BYTES, somp, somp_evr_many, somp_gram
from .ranking_file import parse_vocab, read_checked, write_atomic
from .selection import refine as run_refine
from .selection import tested_order
from .statistics import capture_statistics

SCORES = ("z", "specificity", "evr", "logit_lens")
METHODS = {"somp": "z", "logit_lens": "logit_lens"}
FORMAT = "headpursuit-ranking/2"
# every array of a ranking file, by its dimension names (checked against each other and the metadata)
_SHAPES = {
    "null_evr": ("n_null", "n_layers", "n_heads"),
    "atoms": ("n_layers", "n_heads", "k"),
    "gains": ("n_layers", "n_heads", "k"),
    "curves": ("n_layers", "n_heads", "k"),
    "lens_ids": ("n_layers", "n_heads", "n_lens"),
    "lens_vals": ("n_layers", "n_heads", "n_lens"),
    "significant": ("n_layers", "n_heads"),
    **{name: ("n_layers", "n_heads") for name in SCORES},
}
_ARRAYS = tuple(name for name in _SHAPES if name not in SCORES)  # the fields that are arrays
# metadata fields stored as they are, with their JSON types
_META = {
    "concept": dict,
    "method": str,
    "score_name": str,
    "options": dict,
    "model_name": str,
    "fingerprint": str,
}
_NULL_CACHE: OrderedDict = OrderedDict()  # (model, samples, dictionary, k, profile, ...) -> (null_evr, token ids)
_NULL_CACHE_SIZE = 16


@dataclass(frozen=True)
class HeadRanking:
    """Scores of every head for one concept, with each head's SOMP atoms and Logit-Lens tokens.

    score_table[name]: (n_layers, n_heads) float64. null_evr: (n_null, n_layers, n_heads).
    significant: (n_layers, n_heads) bool, Benjamini-Hochberg discoveries of the null test.
    recommended: the selective set chosen by refine() as (layer, head), in the order chosen; () before it.
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
        """The same ranking ordered by another score: "z", "specificity", "evr" or "logit_lens"."""
        return dataclasses.replace(self, score_name=check_score(name))

    def unrefined(self) -> HeadRanking:
        """The same ranking without refinement: no recommended heads and no measured candidates, so
        top(k) follows the active score alone."""
        options = {key: value for key, value in self.options.items() if key != "selection"}
        return dataclasses.replace(self, recommended=(), options=options)

    def difference(self, other: HeadRanking, score: str | None = None) -> np.ndarray:
        """(n_layers, n_heads) float64: this ranking's ``score`` (the active one by default) minus
        ``other``'s, head by head: positive where a head scores higher for this concept (under "z",
        both are in their own null's standard deviations). Both rankings must come from one model."""
        name = check_score(self.score_name if score is None else score)
        if not isinstance(other, HeadRanking):
            raise HeadPursuitError(f"difference needs another HeadRanking, got {type(other).__name__}")
        if other.fingerprint != self.fingerprint or other.scores.shape != self.scores.shape:
            raise HeadPursuitError(
                f"cannot compare rankings of different models: {self.model_name!r} ({self.n_layers} x "
                f"{self.n_heads} heads) and {other.model_name!r} ({other.n_layers} x {other.n_heads} heads)"
            )
        return np.asarray(self.score_table[name], dtype=np.float64) - np.asarray(other.score_table[name], np.float64)

    @property
    def effects(self) -> HeadEffects | None:
        """What flipping each head does (engine/effects.py), as measured by the selection; None before it."""
        grid = self.options.get("selection", {}).get("effects")
        return None if grid is None else effects_from_record(grid, self)

    def top(self, n: int) -> list[tuple[int, int]]:
        """The n heads the project recommends editing, as (layer, head): the selective set first
        (`recommended`), then the candidates measured as eligible but left out, then the heads not
        measured, by the active score, and the candidates measured as generic, damaging or not cutting
        last (engine/selection.py)."""
        total = self.n_layers * self.n_heads
        n = check_int(n, f"number of heads (1 to {total})", minimum=0)
        if not 1 <= n <= total:
            raise HeadPursuitError(f"number of heads must be an int from 1 to {total} (all heads), got {n!r}")
        first = [(int(layer), int(head)) for layer, head in self.recommended]
        details = self.options.get("selection")
        harmless, harmful = tested_order(details, first) if details else ([], [])
        tested = set(first) | set(harmless) | set(harmful)
        flat = np.nan_to_num(self.scores, nan=-np.inf).ravel()
        rest = [(int(i // self.n_heads), int(i % self.n_heads)) for i in np.argsort(-flat, kind="stable")]
        return (first + harmless + [h for h in rest if h not in tested] + harmful)[:n]

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
        """Write a .npz (arrays + JSON metadata), readable without pickle. The file is replaced atomically:
        an interrupted save leaves any previous file at `path` intact."""
        meta = {
            "format": FORMAT,
            "dims": {
                "n_layers": self.n_layers,
                "n_heads": self.n_heads,
                "k": self.k,
                "n_null": self.null_evr.shape[0],
                "n_lens": self.lens_ids.shape[2],
            },
            "vocab": {str(k): v for k, v in self.vocab.items()},
            **{name: getattr(self, name) for name in _META},
            "recommended": [list(h) for h in self.recommended],
        }
        arrays = {name: np.asarray(getattr(self, name)) for name in _ARRAYS}
        arrays.update({name: self.score_table[name] for name in SCORES})
        return write_atomic(Path(path), meta, arrays)

    @classmethod
    def load(cls, path, model=None) -> HeadRanking:
        """Read a saved ranking; with model=, refuse one made for a different model (fingerprint).

        Every array's shape is checked against the metadata's dimensions (and each other) before it is
        read, and every token id it uses must be in the stored vocabulary."""
        path = Path(path)
        if not path.is_file():
            raise HeadPursuitError(f"ranking file not found: {path}")
        meta, arrays = read_checked(path, _SHAPES, _file_dims)
        if meta.get("format") != FORMAT:
            raise HeadPursuitError(f"{path}: unknown format {shorten(repr(meta.get('format')))}, expected {FORMAT!r}")
        for name, kind in _META.items():
            if not isinstance(meta.get(name), kind):
                raise HeadPursuitError(
                    f"{path}: metadata {name!r} must be a {kind.__name__}, got {shorten(repr(meta.get(name)))}"
                )
        if meta["score_name"] not in SCORES:
            raise HeadPursuitError(f"{path}: unknown score {shorten(repr(meta['score_name']))}; known: {SCORES}")
        concept_ids = meta["concept"].get("token_ids", [])
        if not isinstance(concept_ids, list) or not all(type(i) is int for i in concept_ids):
            raise HeadPursuitError(
                f"{path}: concept token_ids must be a list of ints, got {shorten(repr(concept_ids))}"
            )
        needed = np.concatenate([arrays["atoms"].ravel(), arrays["lens_ids"].ravel()]).tolist() + concept_ids
        vocab = parse_vocab(path, meta.get("vocab"), needed)
        recommended = meta.get("recommended", [])
        if not isinstance(recommended, list) or not all(
            isinstance(h, list) and len(h) == 2 and all(type(i) is int for i in h) for h in recommended
        ):
            raise HeadPursuitError(
                f"{path}: 'recommended' must be a list of [layer, head], got {shorten(repr(recommended))}"
            )
        ranking = cls(
            score_table={name: arrays.pop(name) for name in SCORES},
            vocab=vocab,
            **{name: meta[name] for name in _META},
            recommended=tuple((layer, head) for layer, head in recommended),
            **arrays,
        )
        if model is not None and model.fingerprint != ranking.fingerprint:
            raise HeadPursuitError(
                f"{path} was made for model {ranking.model_name!r} (fingerprint "
                f"{ranking.fingerprint}), not for {model.name!r} ({model.fingerprint})"
            )
        return ranking


def _file_dims(meta: dict) -> dict:
    """Array dimensions a ranking file's metadata fixes: its "dims" (files since issue 11), else k and n_null."""
    dims = meta.get("dims")
    if dims is None:
        raw = meta.get("options")
        options: dict = raw if isinstance(raw, dict) else {}
        dims = {name: options[name] for name in ("k", "n_null") if name in options}
    if not isinstance(dims, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in dims.values()
    ):
        raise HeadPursuitError(f"ranking metadata 'dims' must map dimension names to ints, got {shorten(repr(dims))}")
    return dims


@contextmanager
def _progress(enabled: bool, label: str):
    """A one-step tqdm bar around a single long call."""
    with tqdm(total=1, desc=label, disable=not enabled) as bar:
        yield
        bar.update(1)


def concept_contexts(concept: Concept, *, seed: int = 0) -> list[str]:
    """The eliciting contexts a tokenised concept is ranked on when no prompts are given (the "rank"
    part of engine/contexts.py for `seed`): built from its name and the words the dictionary kept."""
    return eliciting_contexts(concept.name, list(concept.mapping) or list(concept.words), part="rank", seed=seed)


def check_score(name) -> str:
    """``name`` if it is one of the score names, else HeadPursuitError listing them."""
    if name not in SCORES:
        raise HeadPursuitError(f"unknown score {name!r}; accepted: {', '.join(SCORES)}")
    return name


def _somp_budget(activations: torch.Tensor) -> int:
    """SOMP's working set in bytes: half the stored activations (so that ranking, with the dictionaries
    and the Logit-Lens slices beside it, stays within twice them), within 16 MiB .. pursuit.CHUNK_BYTES."""
    return int(min(CHUNK_BYTES, max(16 << 20, activations.numel() * activations.element_size() // 2)))


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
    refine: bool | None = None,
    progress: bool = True,
) -> HeadRanking:
    """Rank every head of `model` (a HeadModel) for `concept`.

    prompts None: eliciting contexts built from the concept's name and words (engine/contexts.py,
    the "rank" part for `seed`), read at positions "last"; given prompts are read at "prompt"
    positions unless `positions` says otherwise. method "somp" (default score "z") or "logit_lens";
    score= picks any of SCORES. k: SOMP atoms (capped at the dictionary size). n_null: frequency-
    matched null dictionaries (>= 2; 30 for usable p-values). q: false discovery rate of `significant`.
    activations: a capture() result to reuse; without it a model that ranks from statistics (the
    nnsight backend) computes SOMP's statistics inside its traces instead of returning head writes
    (engine/statistics.py), giving the same scores. refine: run refine() to pick the recommended heads
    (forward passes on the rank contexts and half of the control facts; text models only: a VLM's image
    heads are not measured by text contexts). None: on for text models.
    """
    if method not in METHODS:
        raise HeadPursuitError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    score = score or METHODS[method]
    if score not in SCORES:
        raise HeadPursuitError(f"unknown score {score!r}; accepted: {', '.join(SCORES)}")
    k = check_int(k, "k (SOMP atoms)")
    n_null = check_int(n_null, "n_null (null dictionaries; 30 for p-values)", minimum=2)
    n_lens = check_int(n_lens, "n_lens (Logit-Lens tokens per head)")
    batch_size = check_int(batch_size, "batch_size")
    a = model.adapter
    con, spec = resolve_concept(concept, model.tokenizer, rule)
    contexts = concept_contexts(con, seed=seed) if prompts is None else check_prompts(prompts)
    positions = positions or ("last" if prompts is None else "prompt")
    k_eff = min(k, len(con.token_ids))
    setup = _Setup(con, k_eff, n_null, seed, rule, normalize, fold_norm, n_lens, progress)
    if activations is None and model.ranks_from_statistics:
        fit = _fit_statistics(model, contexts, setup, positions=positions, chat=chat, batch_size=batch_size)
    else:
        if activations is None:
            activations = capture(
                model, contexts, positions=positions, chat=chat, batch_size=batch_size, progress=progress
            )
        fit = _fit_writes(model, activations, setup)
    L, Hn, n = a.n_layers, a.n_heads, fit.n_samples
    curves = fit.curves.cpu().reshape(L, Hn, k_eff).numpy()
    evr = curves[..., -1]
    null_evr = fit.null_evr.cpu().reshape(n_null, L, Hn).numpy()
    null_mean, _, z, p = null_statistics(evr, null_evr)
    lens = fit.lens.cpu().reshape(L, Hn).double().numpy()
    token_ids = torch.as_tensor(con.token_ids)
    atoms = token_ids[fit.atoms.cpu()].reshape(L, Hn, k_eff).numpy()
    gains = np.diff(curves, axis=-1, prepend=0.0)
    lens_ids = fit.lens_ids.cpu().reshape(L, Hn, -1).numpy()
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
        automatic_contexts=prompts is None,
        approximate=a.approximate,
    )
    ranking = HeadRanking(
        score_table={"z": z, "specificity": evr - null_mean, "evr": evr, "logit_lens": lens},
        null_evr=null_evr,
        atoms=atoms,
        gains=gains,
        curves=curves,
        lens_ids=lens_ids,
        lens_vals=fit.lens_vals.cpu().reshape(L, Hn, -1).numpy().astype(np.float64),
        vocab=_decode_all(model.tokenizer, np.concatenate([atoms.ravel(), lens_ids.ravel(), token_ids.numpy()])),
        concept=concept_record(con, spec),
        method=method,
        score_name=score,
        options=options,
        model_name=model.name,
        fingerprint=model.fingerprint,
        significant=benjamini_hochberg(p, q),
    )
    if (refine or refine is None) and not model.is_vlm:  # refinement measures text next-token predictions
        ranking = run_refine(model, ranking, progress=progress)
    return ranking


@dataclass(frozen=True)
class _Setup:
    """What both ways of fitting share: the concept, k, the null draws' options and n_lens."""

    con: Concept
    k: int
    n_null: int
    seed: int
    rule: str
    normalize: bool
    fold_norm: bool
    n_lens: int
    progress: bool

    def null_draws(self, tokenizer) -> list[np.ndarray]:
        """The n_null frequency-matched random-word dictionaries (token ids) for this concept."""
        return null_dictionaries(tokenizer, self.con, n_null=self.n_null, seed=self.seed, rule=self.rule)


@dataclass(frozen=True)
class _Fit:
    """One concept's fit on every head (rows layer-major, L*H): atoms (L*H, k) positions in the concept's
    token ids, curves (L*H, k) cumulative EVR, null_evr (n_null, L*H) final EVR of each null dictionary,
    lens (L*H,) Logit-Lens score, lens_ids / lens_vals (L*H, n_lens), n_samples."""

    atoms: torch.Tensor
    curves: torch.Tensor
    null_evr: torch.Tensor
    lens: torch.Tensor
    lens_ids: torch.Tensor
    lens_vals: torch.Tensor
    n_samples: int


def _fit_writes(model, activations: torch.Tensor, setup: _Setup) -> _Fit:
    """The fit from captured head writes (n_layers, n_heads, n, d_model), with the local weights."""
    a = model.adapter
    expected = (a.n_layers, a.n_heads, a.d_model)
    if activations.dim() != 4 or (activations.shape[0], activations.shape[1], activations.shape[3]) != expected:
        raise HeadPursuitError(
            f"activations must be (n_layers, n_heads, n_samples, d_model) = "
            f"({expected[0]}, {expected[1]}, n, {expected[2]}), got {tuple(activations.shape)}"
        )
    L, Hn, n, d = activations.shape
    if n < 2:
        raise HeadPursuitError("SOMP centres over samples: give at least 2 prompts")
    con, k = setup.con, setup.k
    flat = activations.reshape(L * Hn, n, d).to(a.unembedding.device)  # SOMP runs where the model is
    rows = dictionary_rows(a, con.token_ids, setup.normalize, setup.fold_norm).to(flat.device)
    with _progress(setup.progress, f"SOMP: {L * Hn} heads, k={k}"):
        concept_res = somp(flat, rows, k, with_coef=False, chunk_bytes=_somp_budget(activations))
    profile = frequency_profile(model.tokenizer, con)
    options = (setup.rule, setup.normalize, setup.fold_norm, setup.n_null, setup.seed)
    null_key = (model.fingerprint, _digest(activations), len(con.token_ids), k, profile, *options)
    null_evr = _null_evr(model, flat, setup, null_key, _somp_budget(activations))
    raw_rows = dictionary_rows(a, con.token_ids, normalize=False, fold_norm=setup.fold_norm)
    lens = logit_lens_scores(activations, raw_rows.cpu()).reshape(L * Hn)
    lens_vals, lens_ids = logit_lens_top(activations.mean(2).reshape(L * Hn, d), a.unembedding, setup.n_lens)
    return _Fit(concept_res.atoms, concept_res.evr, null_evr, lens, lens_ids, lens_vals, n)


def _fit_statistics(model, contexts: list, setup: _Setup, *, positions: str, chat: bool, batch_size: int) -> _Fit:
    """The fit from SOMP statistics computed next to the model (engine/statistics.py): one pass over
    the union of the concept's and the null dictionaries' rows; nothing of size d_model comes back."""
    if len(contexts) < 2:
        raise HeadPursuitError("SOMP centres over samples: give at least 2 prompts")
    con, k = setup.con, setup.k
    draws = setup.null_draws(model.tokenizer)
    stats = capture_statistics(
        model,
        contexts,
        [con.token_ids, *draws],
        normalize=setup.normalize,
        fold_norm=setup.fold_norm,
        n_lens=setup.n_lens,
        positions=positions,
        chat=chat,
        batch_size=batch_size,
        progress=setup.progress,
    )
    L, Hn = model.adapter.n_layers, model.adapter.n_heads
    with _progress(setup.progress, f"SOMP from statistics: {L * Hn} heads x {1 + setup.n_null} dictionaries, k={k}"):
        res = [somp_gram(stats.proj[:, idx], stats.energy, gram, k) for idx, gram in zip(stats.blocks, stats.grams)]
    concept_res, null_evr = res[0], torch.stack([r.evr[:, -1] for r in res[1:]])
    idx = stats.blocks[0]
    scale = stats.row_norms[idx] if setup.normalize else torch.ones(len(idx), dtype=torch.float64)
    lens = (stats.proj_mean[:, idx] * scale).mean(1)
    n_lens = stats.lens_ids.shape[-1]
    return _Fit(
        concept_res.atoms,
        concept_res.evr,
        null_evr,
        lens,
        stats.lens_ids.reshape(L * Hn, n_lens),
        stats.lens_vals.reshape(L * Hn, n_lens),
        len(contexts),
    )


def null_dictionaries(tokenizer, con: Concept, *, n_null: int, seed: int = 0, rule: str = "whole_word") -> list:
    """The n_null frequency-matched random-word dictionaries rank_heads scores a tokenised concept against:
    arrays of len(con.token_ids) token ids (engine/null.py)."""
    profile = frequency_profile(tokenizer, con)
    return frequency_matched_dictionaries(
        tokenizer, profile, len(con.token_ids), n_draws=n_null, exclude=con.token_ids, seed=seed, rule=rule
    )


def _digest(activations: torch.Tensor) -> str:
    """A short hash of captured head writes: the identity of the samples for the null cache. Hashes
    the tensor's own buffer (no copy of the writes on the CPU)."""
    data = activations.detach().cpu().contiguous().numpy()
    return hashlib.sha1(data.reshape(-1).view(np.uint8).data).hexdigest()[:16]


def _null_evr(model, flat: torch.Tensor, setup: _Setup, key: tuple, chunk_bytes: int) -> torch.Tensor:
    """(n_null, L*H) EVR of frequency-matched null dictionaries on the same heads and samples, by SOMP in
    the writes' precision (float64 writes: float64; others: float32).

    Cached per key (model, samples, dictionary size, k, frequency profile, options): a second concept
    with the same profile reuses the draws unless one of them contains its tokens.
    """
    cached = _NULL_CACHE.get(key)
    if cached is not None and not cached[1].intersection(setup.con.token_ids):
        _NULL_CACHE.move_to_end(key)
        return cached[0]
    draws = setup.null_draws(model.tokenizer)
    L, Hn = model.adapter.n_layers, model.adapter.n_heads
    # the writes' own precision (float32 from capture: half the time of float64, EVRs within ~4e-7)
    dtype = torch.float64 if flat.dtype == torch.float64 else torch.float32

    def rows_of(ids):
        return dictionary_rows(model.adapter, ids, setup.normalize, setup.fold_norm)

    with _progress(setup.progress, f"null: {L * Hn} heads x {setup.n_null} dictionaries, k={setup.k}"):
        null_evr = somp_evr_many(flat, draws, rows_of, setup.k, chunk_bytes=chunk_bytes, dtype=dtype).cpu()
    _NULL_CACHE[key] = (null_evr, {int(i) for ids in draws for i in ids})
    while len(_NULL_CACHE) > _NULL_CACHE_SIZE:
        _NULL_CACHE.popitem(last=False)
    return null_evr
