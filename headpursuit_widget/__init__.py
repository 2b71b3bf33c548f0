"""headpursuit-widget: find, read and edit the attention heads that carry a concept (Head Pursuit)."""

from . import concepts
from . import experiments, plots
from .engine import (Concept, HeadModel, HeadPursuitError, HeadRanking, SompResult, capture, edit_heads, generate,
                     load_model, rank_heads, random_heads, somp, wrap)
from .widget import HeadPursuit

__version__ = "0.1.0"
