"""Judging: what edits do, measured on probes and controls, and the heads selected and verified from it."""

from .baselines import random_heads
from .effects import HeadEffects, effects
from .selection import refine
from .verify import Verification, verify

__all__ = ["HeadEffects", "Verification", "effects", "random_heads", "refine", "verify"]
