"""The score names a ranking offers, and the score table built from a fit and its null.

Scores (all (n_layers, n_heads)):
- "z" (default): how far the concept's EVR lies above the EVR of `n_null` frequency-matched
  random-word dictionaries run through the same SOMP, in null standard deviations (null.py);
  `significant` marks the heads whose p-value survives Benjamini-Hochberg at q.
- "specificity": evr minus the mean null EVR.
- "evr": the paper's raw score, EVR after k SOMP atoms of the concept dictionary.
- "logit_lens": mean concept-token logit of the head's mean write.
"""

from __future__ import annotations

import numpy as np

from ..errors import HeadPursuitError
from .fit import Fit
from .null import benjamini_hochberg, null_statistics

SCORES = ("z", "specificity", "evr", "logit_lens")
METHODS = {"somp": "z", "logit_lens": "logit_lens"}


def check_score(name) -> str:
    """``name`` if it is one of the score names, else HeadPursuitError listing them."""
    if name not in SCORES:
        raise HeadPursuitError(f"unknown score {name!r}; accepted: {', '.join(SCORES)}")
    return name


def score_grids(fit: Fit, n_layers: int, n_heads: int, q: float) -> dict:
    """A fit as (n_layers, n_heads, ...) numpy grids, with the score table and the null test's discoveries.

    -> {"score_table": {score: (L, H) float64}, "significant": (L, H) bool, "null_evr": (n_null, L, H),
    "atoms": (L, H, k) positions in the concept's token ids, "gains"/"curves": (L, H, k),
    "lens_ids"/"lens_vals": (L, H, n_lens)}.
    """
    L, H = n_layers, n_heads
    curves = fit.curves.cpu().reshape(L, H, -1).numpy()
    evr = curves[..., -1]
    null_evr = fit.null_evr.cpu().reshape(-1, L, H).numpy()
    null_mean, _, z, p = null_statistics(evr, null_evr)
    lens = fit.lens.cpu().reshape(L, H).double().numpy()
    return {
        "score_table": {"z": z, "specificity": evr - null_mean, "evr": evr, "logit_lens": lens},
        "significant": benjamini_hochberg(p, q),
        "null_evr": null_evr,
        "atoms": fit.atoms.cpu().reshape(L, H, -1).numpy(),
        "gains": np.diff(curves, axis=-1, prepend=0.0),
        "curves": curves,
        "lens_ids": fit.lens_ids.cpu().reshape(L, H, -1).numpy(),
        "lens_vals": fit.lens_vals.cpu().reshape(L, H, -1).numpy().astype(np.float64),
    }
