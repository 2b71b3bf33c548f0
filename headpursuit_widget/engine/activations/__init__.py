"""Activations: prompts and images encoded into batches, head writes captured (kept on disk), or SOMP statistics."""

from .capture import capture

__all__ = ["capture"]
