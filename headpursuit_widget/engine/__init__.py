"""The kernel-side engine: pure torch, no widget imports; one subpackage per stage (docs/architecture.md)."""

from .activations import capture
from .concepts import Concept
from .editing import bake, edit_heads, generate
from .errors import HeadPursuitError
from .judging import HeadEffects, Verification, effects, random_heads, refine, verify
from .models import HeadModel, load_model, wrap
from .ranking import HeadRanking, SompResult, rank_heads, somp

__all__ = [
    "Concept",
    "HeadEffects",
    "HeadModel",
    "HeadPursuitError",
    "HeadRanking",
    "SompResult",
    "Verification",
    "bake",
    "capture",
    "edit_heads",
    "effects",
    "generate",
    "load_model",
    "random_heads",
    "rank_heads",
    "refine",
    "somp",
    "verify",
    "wrap",
]
