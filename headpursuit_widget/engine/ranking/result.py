"""HeadRanking: every head's scores for one concept, with its SOMP atoms and Logit-Lens tokens."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HeadPursuitError, check_int
from ..judging.effects import HeadEffects, effects_from_record
from ..judging.selection import tested_order
from .file import load_ranking, save_ranking
from .scores import SCORES, check_score


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
        """What flipping each head does (engine/judging/effects.py), as measured by the selection; None before it."""
        grid = self.options.get("selection", {}).get("effects")
        return None if grid is None else effects_from_record(grid, self)

    def top(self, n: int) -> list[tuple[int, int]]:
        """The n heads the project recommends editing, as (layer, head): the selective set first
        (`recommended`), then the candidates measured as eligible but left out, then the heads not
        measured, by the active score, and the candidates measured as generic, damaging or not cutting
        last (engine/judging/selection.py)."""
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
        """Write a .npz (arrays + JSON metadata), readable without pickle (file.py). The file is replaced
        atomically: an interrupted save leaves any previous file at `path` intact."""
        return save_ranking(self, Path(path))

    @classmethod
    def load(cls, path, model=None) -> HeadRanking:
        """Read a saved ranking; with model=, refuse one made for a different model (fingerprint).

        Every array's shape is checked against the metadata's dimensions (and each other) before it is
        read, and every token id it uses must be in the stored vocabulary."""
        return load_ranking(cls, Path(path), model)
