"""Concepts: word lists, their token dictionaries, eliciting contexts, and the null's random-word dictionaries."""

from .dictionary import Concept
from .resolve import resolve_concept

__all__ = ["Concept", "resolve_concept"]
