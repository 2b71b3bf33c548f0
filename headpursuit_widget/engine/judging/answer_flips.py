"""Every head edited at the answer position only: an exact and cheap screen of what each head does.

An edit at a prompt's last position (where the answer is predicted) cannot change what any earlier
position computes. So the earlier positions run once, unedited, and keep their keys and values (the
model's own cache); each head's edit then costs one position, run from the head's layer on (the blocks
before it stand replaced by the unedited pass's outputs, engine/editing/prefix.py), and many heads run
side by side as rows of one batch: about 1/8 of the cost of editing every head at every position
(docs/effects.md). What a head writes at the earlier positions, which the last position reads through
attention, stays unedited, so heads that act through earlier positions (format heads of the first
layers) look weaker here than under a full edit; the selection measures its candidates with full edits.
"""

from __future__ import annotations

import copy

import torch

from ..activations.inputs import encode
from ..editing.prefix import recording, replaced
from ..errors import HeadPursuitError, check_cancel
from ..hooks import hooks_removed
from ..progress import Progress
from ..progress import bar as progress_bar
from .categories import Battery, reading_columns, readings

ROWS = 256  # batch rows per edited pass (prompts x heads), at least one layer's heads per pass


def answer_flips(model, bat: Battery, alpha: float, *, batch_size: int = 8, cancel=None, progress: Progress = False):
    """Readings of the battery: [unedited, then every head edited by alpha at the last position of each
    prompt, in (layer, head) order] (1 + n_layers * n_heads Readings). Needs this process's module."""
    if not model.blocks_run_here:
        raise HeadPursuitError("answer-position edits run the model's blocks in this process; not on a remote model")
    L, H = model.n_layers, model.n_heads
    columns = reading_columns(model.tokenizer, bat)
    prompts = bat.prompts
    logprobs = torch.empty(len(prompts), 1 + L * H, len(columns))
    scales: list = [None] * L  # per layer: (rows, n_heads) factors on the heads' inputs, or None
    per_pass = max(1, ROWS // (batch_size * H))  # layers whose heads share a pass
    groups = [range(first, min(L, first + per_pass)) for first in range(0, L, per_pass)]
    with (
        model.lock,
        torch.inference_mode(),
        hooks_removed([]) as handles,
        progress_bar(
            progress, total=-(-len(prompts) // batch_size) * len(groups), desc="editing every head at the answer"
        ) as bar,
    ):
        for layer, proj in enumerate(model.adapter.out_projs):
            handles.append(proj.register_forward_pre_hook(_scaled(scales, layer, H)))
        for start in range(0, len(prompts), batch_size):
            check_cancel(cancel)
            inputs = encode(model, prompts[start : start + batch_size], positions="last", padding_side="left").inputs
            last = _LastPosition(model, inputs, columns)
            with recording(model.adapter.blocks, L) as outputs:
                logprobs[start : start + last.n, 0] = last.run(1, 0, [])
            for group in groups:
                check_cancel(cancel)
                n = len(group) * H
                for i, layer in enumerate(group):
                    scales[layer] = torch.ones(last.n * n, H)
                    scales[layer].view(last.n, n, H)[:, i * H : (i + 1) * H].diagonal(dim1=1, dim2=2).fill_(alpha)
                try:
                    lp = last.run(n, group[0], outputs)
                finally:
                    scales[:] = [None] * L
                logprobs[start : start + last.n, 1 + group[0] * H : 1 + (group[-1] + 1) * H] = lp.view(last.n, n, -1)
                bar.update(1)
    return readings(model.tokenizer, bat, columns, logprobs.unbind(1))


class _LastPosition:
    """One batch's prompts (left-padded): the positions before the last run once and keep their cache;
    run() then computes the last position only, each prompt repeated in consecutive rows."""

    def __init__(self, model, inputs: dict, columns: list[int]):
        self.model, self.columns = model, torch.as_tensor(columns)
        self.ids, self.mask = inputs["input_ids"], inputs["attention_mask"]
        self.positions = (self.mask.cumsum(1) - 1).clamp_min(0)  # left padding: from each prompt's start
        self.n = self.ids.shape[0]
        self.cache = None
        if self.ids.shape[1] > 1:
            out = model.forward(
                input_ids=self.ids[:, :-1],
                attention_mask=self.mask[:, :-1],
                position_ids=self.positions[:, :-1],
                use_cache=True,
                logits_to_keep=1,
            )
            self.cache = out.cache
            if not hasattr(self.cache, "layers"):
                raise HeadPursuitError(f"answer-position edits need a layered key/value cache; {model.name} has none")

    def run(self, repeats: int, first: int, outputs: list) -> torch.Tensor:
        """(n * repeats, len(columns)) next-token log-probabilities, blocks[:first] standing replaced by
        their recorded `outputs` (one prompt's rows are consecutive)."""
        cache = None
        if self.cache is not None:
            cache = copy.deepcopy(self.cache)
            for layer in cache.layers[first:]:
                layer.batch_repeat_interleave(repeats)
        recorded = [_repeated(o, repeats) for o in outputs[:first]]
        with replaced(self.model.adapter.blocks, recorded, first):
            out = self.model.forward(
                input_ids=self.ids[:, -1:].repeat_interleave(repeats, 0),
                attention_mask=self.mask.repeat_interleave(repeats, 0),
                position_ids=self.positions[:, -1:].repeat_interleave(repeats, 0),
                cache=cache,
                use_cache=cache is not None,
                logits_to_keep=1,
            )
        return out.logits[:, -1].float().log_softmax(-1)[:, self.columns].cpu()


def _repeated(output, repeats: int):
    """A recorded block output (a tensor, or a tuple holding tensors) with each batch row repeated."""
    if isinstance(output, torch.Tensor):
        return output.repeat_interleave(repeats, 0)
    if type(output) is tuple:
        return tuple(_repeated(o, repeats) for o in output)
    return output


def _scaled(scales: list, layer: int, n_heads: int):
    """A pre-hook on layer's output projection: each row's head inputs times scales[layer] (when set)."""

    def hook(module, args):
        factors = scales[layer]
        if factors is None:
            return None
        x = args[0]
        edited = x.unflatten(-1, (n_heads, -1)) * factors.to(x)[:, None, :, None]
        return (edited.flatten(-2), *args[1:])

    return hook
