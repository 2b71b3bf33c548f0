"""A tokenised batch and the mask of positions whose head writes are averaged (text and VLM inputs alike)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

POSITIONS = ("prompt", "image", "all")


@dataclass
class Batch:
    """inputs: keyword arguments for the model's forward, on its device.
    select: (batch, seq) bool, True where a position counts towards the mean write."""

    inputs: dict
    select: torch.Tensor
