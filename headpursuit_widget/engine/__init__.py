"""The kernel-side engine: pure torch, no widget imports."""

from .bake import bake
from .baselines import random_heads
from .capture import capture
from .dictionary import Concept
from .edits import edit_heads
from .effects import HeadEffects, effects
from .errors import HeadPursuitError
from .generation import generate
from .models import HeadModel, load_model, wrap
from .pursuit import SompResult, somp
from .ranking import HeadRanking, rank_heads
from .selection import refine
from .verify import Verification, verify

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
