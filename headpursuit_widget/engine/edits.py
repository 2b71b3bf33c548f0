"""Head edits: scale head h's slice of the output projection's input by alpha at every position.

That is exactly scaling head h's block of W_O (columns for nn.Linear, rows for GPT-2's Conv1D),
applies at every forward (so also to every step of cached generation) and is undone on exit.
alpha = -1 flips the head's write (suppress), 0 ablates it, > 1 enhances it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch

from .errors import HeadPursuitError
from .heads import parse_head_key
from .hooks import hooks_removed


def parse_edits(adapter, edits) -> dict[int, dict[int, float]]:
    """Validate {(layer, head) or "layer.head": alpha} -> {layer: {head: alpha}}; nothing is applied on error."""
    if edits is None:
        return {}
    if not hasattr(edits, "items"):
        raise HeadPursuitError(f"edits must be a dict {{(layer, head): alpha}}, got {type(edits).__name__}")
    plan: dict[int, dict[int, float]] = defaultdict(dict)
    for key, alpha in edits.items():
        if isinstance(key, str):
            layer, head = parse_head_key(key)
        elif isinstance(key, (tuple, list)) and len(key) == 2:
            layer, head = key
        else:
            raise HeadPursuitError(f"edit key {key!r} must be (layer, head) or 'layer.head'")
        layer, head = _as_int(layer), _as_int(head)
        adapter.check_head(layer, head)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
            raise HeadPursuitError(f"alpha for head ({layer}, {head}) must be a finite number, got {alpha!r}")
        plan[layer][head] = float(alpha)
    return dict(plan)


def _as_int(value):
    """numpy integers (e.g. from ranking arrays) count as ints; anything else is checked as given."""
    return int(value) if isinstance(value, np.integer) else value


def head_scale(adapter, heads: dict[int, float]) -> torch.Tensor:
    """(n_heads*head_dim,) multiplier for one layer's output-projection input."""
    scale = torch.ones(adapter.n_heads, adapter.head_dim)
    for head, alpha in heads.items():
        scale[head] = alpha
    return scale.flatten()


@contextmanager
def edit_heads(model, edits):
    """Within the block, every forward of model.module scales the given heads' writes by their alpha.

    The model's lock is held for the whole block: other threads' capture/generate wait for it.
    """
    plan = parse_edits(model.adapter, edits)
    handles: list = []
    with model.lock, hooks_removed(handles):
        if model.backend != "hf":  # applied inside each trace of model.forward / model.generate
            with model.edits_in_effect(plan):
                yield model
            return
        for layer, heads in plan.items():
            proj = model.adapter.out_projs[layer]
            scale = head_scale(model.adapter, heads).to(proj.weight.device, proj.weight.dtype)

            def hook(module, args, scale=scale):
                return (args[0] * scale,) + tuple(args[1:])

            handles.append(proj.register_forward_pre_hook(hook))
        yield model
