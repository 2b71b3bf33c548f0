"""Ranking: SOMP on every head, the calibrated null, the scores, and HeadRanking with its file."""

from .pursuit import SompResult, somp
from .rank import rank_heads
from .result import HeadRanking
from .scores import SCORES

__all__ = ["SCORES", "HeadRanking", "SompResult", "rank_heads", "somp"]
