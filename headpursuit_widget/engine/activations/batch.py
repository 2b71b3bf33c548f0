"""A tokenised batch and the mask of positions whose head writes are averaged (text and VLM inputs alike)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

POSITIONS = ("prompt", "image", "all", "last")


@dataclass
class Batch:
    """inputs: keyword arguments for the model's forward, on its device.
    select: (batch, seq) bool, True where a position counts towards the mean write."""

    inputs: dict
    select: torch.Tensor


def last_position(attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq) bool, True only at each row's last attended position: where the next token is predicted.
    Works for left and right padding."""
    seq = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = torch.where(attention_mask, seq, -1).max(1).values
    return (seq[None, :] == last[:, None]) & attention_mask
