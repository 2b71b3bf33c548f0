"""Activations: prompts and images encoded into batches, head writes captured, or SOMP statistics computed."""

from .capture import capture

__all__ = ["capture"]
