"""HeadRanking's significance API from the issue-10 engine branch, for widget tests until it merges.

The widget is written against ``HeadRanking.significant`` / ``.null_mean`` / ``.null_sd`` (all
(n_layers, n_heads)). Where the engine in this checkout lacks them, ``install()`` adds them to
the class, computed from the ranking's own null draws (mean, sample sd, z > 3), so the widget
tests can check the widget's wiring against an independent computation. Once the engine has the
API, ``install()`` does nothing; delete this file then.
"""

from __future__ import annotations

import numpy as np

from headpursuit_widget.engine.ranking import HeadRanking

Z = 3.0


def null_mean(r) -> np.ndarray:
    return r.null_evr.mean(0)


def null_sd(r) -> np.ndarray:
    return r.null_evr.std(0, ddof=1) if r.null_evr.shape[0] > 1 else np.zeros(r.null_evr.shape[1:])


def significant(r) -> np.ndarray:
    sd = null_sd(r)
    return (sd > 0) & (r.score_table["evr"] - null_mean(r) > Z * sd)


def install() -> bool:
    """Add the three properties where the engine lacks them; True if it did."""
    if hasattr(HeadRanking, "significant"):
        return False
    HeadRanking.null_mean = property(null_mean)
    HeadRanking.null_sd = property(null_sd)
    HeadRanking.significant = property(significant)
    return True
