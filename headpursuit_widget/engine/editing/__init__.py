"""Editing: heads scaled by hooks, recorded prefixes, generation under edits, and edits baked into weights."""

from .bake import bake
from .edits import edit_heads
from .generation import generate

__all__ = ["bake", "edit_heads", "generate"]
