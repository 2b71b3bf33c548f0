"""Shipped concepts (public name ``hp.concepts``): word lists plus ranking, probe, evaluation and
neutral prompt sets. They live with the engine in engine/concepts/shipped.py."""

from .engine.concepts.shipped import ConceptSpec, control, control_domains, get, names

__all__ = ["ConceptSpec", "control", "control_domains", "get", "names"]
