"""Head edits: scale head h's slice of the output projection's input by alpha at every position.

That is exactly scaling head h's block of W_O (columns for nn.Linear, rows for GPT-2's Conv1D),
applies at every forward (so also to every step of cached generation) and is undone on exit.
alpha = -1 flips the head's write (suppress), 0 ablates it, > 1 enhances it.
"""

from __future__ import annotations

import math
import numbers
import weakref
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch

from ..errors import HeadPursuitError, shorten
from ..heads import parse_head_key
from ..hooks import hooks_removed
from ..models.adapters import head_scale


def parse_edits(adapter, edits) -> dict[int, dict[int, float]]:
    """Validate {(layer, head) or "layer.head": alpha} -> {layer: {head: alpha}}; nothing is applied on error.

    alpha: any real number (Python, numpy, or a 0-d torch tensor) that is finite and fits the model's
    weight dtype; bools are refused."""
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
            raise HeadPursuitError(f"edit key {shorten(repr(key))} must be (layer, head) or 'layer.head'")
        layer, head = _as_int(layer), _as_int(head)
        adapter.check_head(layer, head)
        plan[layer][head] = _alpha(alpha, (layer, head), adapter.out_projs[layer].weight.dtype)
    return dict(plan)


def _alpha(value, head: tuple[int, int], dtype: torch.dtype) -> float:
    """A real, finite alpha that the weights' dtype can hold, as a float."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise HeadPursuitError(
            f"alpha for head {head} must be a finite number (int, float, numpy scalar or 0-d tensor), "
            f"got {shorten(repr(value))}"
        )
    alpha = float(value)
    limit = torch.finfo(dtype).max if dtype.is_floating_point else math.inf
    if not math.isfinite(alpha) or abs(alpha) > limit:
        raise HeadPursuitError(
            f"alpha for head {head} must be a finite number of at most {limit:.3g} in size (the model's {dtype} "
            f"weights), got {shorten(repr(value))}"
        )
    return alpha


def _as_int(value):
    """numpy integers (e.g. from ranking arrays) count as ints; anything else is checked as given."""
    return int(value) if isinstance(value, np.integer) else value


_EDITING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # output projection -> heads edited now


@contextmanager
def edit_heads(model, edits):
    """Within the block, every forward of model.module scales the given heads' writes by their alpha.

    The model's lock is held for the whole block: other threads' capture/generate wait for it.
    Blocks may nest for different heads; editing a head that an enclosing block already edits is
    refused (the two alphas would multiply: a flip inside a flip is no edit at all).
    """
    plan = parse_edits(model.adapter, edits)
    handles: list = []
    with model.lock, hooks_removed(handles):
        if model.backend != "hf":  # applied inside each trace of model.forward / model.generate
            with model.edits_in_effect(plan):
                yield model
            return
        projs = {layer: model.adapter.out_projs[layer] for layer in plan}
        twice = sorted(
            (layer, h) for layer, heads in plan.items() for h in heads if h in _EDITING.get(projs[layer], ())
        )
        if twice:
            raise HeadPursuitError(
                f"heads {twice} are already edited by an enclosing edit_heads block; nested edits of the same "
                "head would multiply their alphas: put every alpha in one edit_heads call"
            )
        try:
            for layer, heads in plan.items():
                proj = projs[layer]
                _EDITING.setdefault(proj, set()).update(heads)
                scale = head_scale(model.adapter, heads).to(proj.weight.device, proj.weight.dtype)

                def hook(module, args, scale=scale):
                    return (args[0] * scale,) + tuple(args[1:])

                handles.append(proj.register_forward_pre_hook(hook))
            yield model
        finally:
            for layer, heads in plan.items():
                _EDITING.get(projs[layer], set()).difference_update(heads)
