"""Models: loading and wrapping (shipped aliases, folders, GGUF, hub cache), head layouts, backends."""

from .head_model import HeadModel
from .loading import load_model, wrap

__all__ = ["HeadModel", "load_model", "wrap"]
