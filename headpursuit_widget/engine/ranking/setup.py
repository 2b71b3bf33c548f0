"""What both ways of fitting and the null share: the concept, k, the null draws' options, n_lens, and a
progress bar around one long call."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..concepts.dictionary import Concept
from ..concepts.null_words import null_dictionaries


@contextmanager
def progress_bar(enabled: bool, label: str):
    """A one-step tqdm bar around a single long call."""
    with tqdm(total=1, desc=label, disable=not enabled) as bar:
        yield
        bar.update(1)


@dataclass(frozen=True)
class Setup:
    """One ranking's fitting options: the concept, k (SOMP atoms), the null draws' options and n_lens."""

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
