"""Baked edits: a copy of the model whose weights carry head edits, to save and share without this package.

An edit scales head h's slice of its layer's output-projection input by alpha (engine/editing/edits.py). That
is the same as scaling head h's block of W_O: its columns for nn.Linear (o_proj, out x in), its rows
for GPT-2's Conv1D (c_proj, in x out). The bias, and Gemma-2/3's post-attention norm, come after the
projection, so they see the same output either way. The baked copy is a plain transformers model:
`save_pretrained` writes it, and `AutoModelForCausalLM.from_pretrained` reads it back anywhere.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import HeadPursuitError, shorten
from ..files import give_usual_mode
from ..models.adapters import build_adapter, head_scale
from ..models.head_model import HeadModel
from .edits import _EDITING, parse_edits

CONFIG_KEY = "headpursuit_baked_edits"  # the config entry that records the edits baked into a copy


def bake(model, edits, *, out=None):
    """A copy of `model`'s transformers module with the head edits {(layer, head): alpha} in its weights.

    model: a HeadModel (from hp.load_model or hp.wrap) or a transformers model. edits: as for
    hp.edit_heads, and checked the same way (a head out of range, a non-finite alpha: HeadPursuitError;
    nothing is copied). The model you pass is not changed; the copy needs as much memory again.

    The copy generates what `hp.generate(model, ..., edits=edits)` generates. Use it like any
    transformers model: `baked.save_pretrained(folder)`, or `hp.wrap(baked, model.tokenizer)` for
    hp.generate and the other engine functions. Its config records the edits ("headpursuit_baked_edits").

    out: a folder to save the copy and the model's tokenizer (or processor) into; it must not exist
    or be empty. It is written under a temporary name and renamed into place when complete.
    """
    lock: AbstractContextManager
    if isinstance(model, HeadModel):
        saver = model.processor if model.processor is not None else model.tokenizer
        module, adapter, lock = model.module, model.adapter, model.lock
    elif isinstance(model, nn.Module):
        module, adapter, lock, saver = model, build_adapter(model), nullcontext(), None
    else:
        raise HeadPursuitError(
            f"bake needs a HeadModel (hp.load_model / hp.wrap) or a transformers model, got {type(model).__name__}"
        )
    plan = parse_edits(adapter, edits)
    target = check_out(out) if out is not None else None
    with lock:  # no other thread's capture or edit hooks are on the module while it is copied
        _check_bakeable(module, adapter, plan)
        baked = copy.deepcopy(module)
    baked_adapter = build_adapter(baked)
    with torch.no_grad():
        for layer, heads in plan.items():
            proj = baked_adapter.out_projs[layer]
            scale = head_scale(baked_adapter, heads).to(proj.weight.device, proj.weight.dtype)
            proj.weight.mul_(scale if baked_adapter.kind == "linear" else scale[:, None])
    baked.config.update({CONFIG_KEY: _record(plan, getattr(module.config, CONFIG_KEY, None))})
    if target is not None:
        _save(baked, saver, target)
    return baked


def check_out(out) -> Path:
    """`out` as a Path when it is a folder that can be written into: absent, or existing and empty."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise HeadPursuitError(f"{shorten(path, 200)} is a file: give a new or empty folder to save the baked model")
    if path.is_dir() and any(path.iterdir()):
        raise HeadPursuitError(
            f"{shorten(path, 200)} already exists and is not empty: give a new or empty folder (nothing is overwritten)"
        )
    return path


def _check_bakeable(module: Any, adapter, plan: dict[int, dict[int, float]]) -> None:
    if any(p.is_meta for p in module.parameters()):
        raise HeadPursuitError(
            "this model's weights are not in this process (meta device: loaded with remote=True or url=, or "
            "offloaded): load it locally (hp.load_model without remote) to bake edits"
        )
    for layer in plan:
        proj = adapter.out_projs[layer]
        if not proj.weight.dtype.is_floating_point:
            raise HeadPursuitError(
                f"layer {layer}'s output projection holds {proj.weight.dtype} (quantised) weights that cannot be "
                "scaled: load the model in a floating dtype (e.g. dtype=torch.float32) to bake edits"
            )
    editing = sorted((layer, h) for layer, proj in enumerate(adapter.out_projs) for h in _EDITING.get(proj, ()))
    if editing:
        raise HeadPursuitError(
            f"heads {editing} are being edited by an enclosing edit_heads block: bake outside it, passing "
            "every alpha to bake"
        )


def _record(plan: dict[int, dict[int, float]], before) -> dict[str, float]:
    """{"layer.head": alpha} of this bake, multiplied into the record of a model that was baked before."""
    record = dict(before) if isinstance(before, dict) else {}
    for layer, heads in plan.items():
        for head, alpha in heads.items():
            key = f"{layer}.{head}"
            record[key] = float(record.get(key, 1.0)) * alpha
    return record


def _save(baked: Any, saver: Any, target: Path) -> None:
    """save_pretrained of the model (and tokenizer/processor) into a temporary folder renamed to `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.part-"))
    try:
        give_usual_mode(tmp)
        baked.save_pretrained(tmp)
        if saver is not None:
            saver.save_pretrained(tmp)
        check_out(target)  # still absent or empty
        if target.exists():
            target.rmdir()
        tmp.rename(target)
    except OSError as exc:
        raise HeadPursuitError(f"could not save the baked model to {shorten(target, 200)}: {exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
