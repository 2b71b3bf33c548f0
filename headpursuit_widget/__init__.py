"""headpursuit-widget: find, read and edit the attention heads that carry a concept (Head Pursuit).

The engine (pure torch) is imported eagerly; the widget (anywidget), the experiments and the bokeh
plots load on first use, so scripts and the CLI need neither Jupyter nor bokeh.
"""

import os

# torch's OpenMP threads spin while they wait; beside another torch process on the same cores a pass then
# took 2x (SmolLM2) to 100x (tiny) longer, against ~20% lost on a quiet machine (benchmarks/bench_omp.py).
# Read once, when torch starts: it has no effect when torch was imported first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from importlib import import_module

from . import concepts
from .engine import (
    Concept,
    HeadEffects,
    HeadModel,
    HeadPursuitError,
    HeadRanking,
    SompResult,
    Verification,
    bake,
    capture,
    edit_heads,
    effects,
    generate,
    load_model,
    random_heads,
    rank_heads,
    refine,
    somp,
    verify,
    wrap,
)

__version__ = "0.1.0"
__all__ = [
    "Concept",
    "HeadEffects",
    "HeadModel",
    "HeadPursuit",
    "HeadPursuitError",
    "HeadRanking",
    "SompResult",
    "Verification",
    "bake",
    "capture",
    "concepts",
    "edit_heads",
    "effects",
    "experiments",
    "generate",
    "load_model",
    "plots",
    "random_heads",
    "rank_heads",
    "refine",
    "somp",
    "verify",
    "wrap",
]
_LAZY = {"HeadPursuit": ("widget", "HeadPursuit"), "experiments": ("experiments", None), "plots": ("plots", None)}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'headpursuit_widget' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = import_module(f".{module}", __name__)
    return getattr(mod, attr) if attr else mod


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
