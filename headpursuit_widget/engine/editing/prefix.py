"""Forward passes that reuse the unedited layers' outputs.

A head edit at layer L cannot change what layers 0..L-1 compute (each layer reads only the layers
before it), so measuring several edit sets on the same prompts need not repeat them: the unedited
pass records each block's output, and an edited pass replaces blocks 0..L-1 by those outputs and
computes from layer L on. The model's own forward still runs (embeddings, masks, the final norm and
any logit soft-capping), so the result is the full forward's; only the skipped blocks' work is saved.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from ..hooks import hooks_removed


class _Recorded(nn.Module):
    """Stands in for a decoder block: returns what the block returned on the recorded pass."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, *args, **kwargs):
        return self.output


def _copy(output):
    """A copy of a block's output (a tensor, or a tuple holding tensors), so that the next block cannot change it."""
    if isinstance(output, torch.Tensor):
        return output.clone()
    if type(output) is tuple:
        return tuple(_copy(o) for o in output)
    return output


@contextmanager
def recording(blocks: nn.ModuleList, upto: int):
    """Yields a list that the forward passes run inside fill with the outputs of blocks[:upto] (the last pass's)."""
    outputs: list = [None] * upto
    handles: list = []
    with hooks_removed(handles):
        for i in range(upto):
            handles.append(blocks[i].register_forward_hook(lambda m, a, out, i=i: outputs.__setitem__(i, _copy(out))))
        yield outputs


@contextmanager
def replaced(blocks: nn.ModuleList, outputs: list, upto: int):
    """blocks[:upto] stand replaced by their recorded `outputs` inside the block; restored on exit, also on errors."""
    originals = [blocks[i] for i in range(upto)]
    try:
        for i in range(upto):
            blocks[i] = _Recorded(outputs[i])
        yield
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block
