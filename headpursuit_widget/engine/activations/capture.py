"""Activation capture: the mean write of every head over the selected positions of each sample.

A head's write to the residual stream is w_h = z_h @ W_O[h] (docs/method.md, "What a head writes"). Because it is
linear in z_h, the mean over positions is mean(z_h) @ W_O[h]: we average z inside a forward
pre-hook on the output projection and project once per sample, so nothing per-position is kept.
For Gemma-2/3 the write passes through the post-attention RMS norm: each position's z is divided
by the RMS of the full attention output and the mean is scaled by the norm's gain (a linearisation,
flagged by `adapter.approximate`).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..errors import HeadPursuitError, check_int
from ..hooks import hooks_removed
from ..memory import check_fits
from ..models.adapters import norm_eps, norm_gain
from .inputs import check_prompts, encode


class _Done(Exception):
    """Raised by the last layer's hook: nothing after it is needed, so the forward stops there."""


def capture(
    model,
    samples,
    *,
    positions: str = "prompt",
    chat: bool = False,
    batch_size: int = 8,
    progress: bool = True,
    on_progress=None,
) -> torch.Tensor:
    """Mean head writes, float32 on the CPU, shape (n_layers, n_heads, n_samples, d_model).

    samples: list of prompts (or (image, prompt) pairs for a VLM). positions: "prompt" (non-special
    text tokens), "image" (image-patch tokens, VLMs), "all" or "last" (the last non-pad token). Padding never counts.
    on_progress(fraction): called after each batch with the share of samples done, in (0, 1].
    """
    samples = check_prompts(samples, "samples")
    batch_size = check_int(batch_size, "batch_size")
    a = model.adapter
    check_fits(
        4 * a.n_layers * a.n_heads * len(samples) * a.d_model,
        f"the head writes of {len(samples)} samples ({a.n_layers} x {a.n_heads} heads x {a.d_model} floats each)",
        "capture fewer samples (or capture in parts and rank each)",
    )
    out = torch.zeros(a.n_layers, a.n_heads, len(samples), a.d_model)
    weights = [a.head_weights(layer).detach() for layer in range(a.n_layers)]
    gains = [norm_gain(n, a.d_model) if n is not None else None for n in a.post_norms]
    state: dict = {}

    def write(layer: int, zmean: torch.Tensor) -> None:
        """zmean (B, n_heads*head_dim) -> out[layer, :, rows] (n_heads, B, d_model)."""
        z = zmean.reshape(zmean.shape[0], a.n_heads, a.head_dim).to(weights[layer].dtype)
        w = torch.einsum("bhk,hkd->hbd", z, weights[layer]).float()
        gain = gains[layer]
        if gain is not None:
            w = w * gain.to(w.device)
        out[layer, :, state["rows"]] = w.cpu()

    def on_out_proj(layer):
        def hook(module, args):
            z = args[0].float()
            if gains[layer] is not None:
                state["z"] = z  # weighted once the norm's input (the full attention output) is seen
                return
            write(layer, torch.einsum("bt,btk->bk", state["weight"].to(z.device), z))
            if layer == a.n_layers - 1:
                raise _Done

        return hook

    def on_post_norm(layer):
        eps = norm_eps(a.post_norms[layer])

        def hook(module, args):
            x = args[0].float()
            rms = torch.sqrt(x.pow(2).mean(-1) + eps)  # (B, T)
            write(layer, torch.einsum("bt,btk->bk", state["weight"].to(x.device) / rms, state.pop("z")))
            if layer == a.n_layers - 1:
                raise _Done

        return hook

    handles: list = []
    with model.lock, hooks_removed(handles), torch.inference_mode():
        for layer, proj in enumerate(a.out_projs if model.backend == "hf" else []):  # other backends: in the trace
            handles.append(proj.register_forward_pre_hook(on_out_proj(layer)))
            if a.post_norms[layer] is not None:
                handles.append(a.post_norms[layer].register_forward_pre_hook(on_post_norm(layer)))
        for rows, inputs, weight in weighted_batches(
            model,
            samples,
            positions=positions,
            chat=chat,
            batch_size=batch_size,
            progress=progress,
            on_progress=on_progress,
        ):
            state["weight"], state["rows"] = weight, rows
            if model.backend != "hf":
                for layer, zmean in enumerate(model.mean_z(inputs, weight)):
                    write(layer, zmean)
            else:
                try:
                    model.forward(**inputs, use_cache=False)
                except _Done:
                    pass
    return out


def weighted_batches(model, samples, *, positions: str, chat: bool, batch_size: int, progress: bool, on_progress=None):
    """Yield (rows, inputs, weight) per batch of samples, with a progress bar.

    rows: the slice of `samples` in the batch; inputs: the model's keyword inputs; weight (batch, seq)
    float32 on the model's device: 1/count at the selected positions, rows summing to 1.
    on_progress(fraction) is called after each batch with the share of samples done, in (0, 1].
    """
    bar = tqdm(total=len(samples), desc="capturing head writes", unit="sample", disable=not progress)
    with bar:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start : start + batch_size]
            batch = encode(model, chunk, positions=positions, chat=chat)
            counts = batch.select.sum(1)
            empty = (counts == 0).nonzero().flatten().tolist()
            if empty:
                raise HeadPursuitError(
                    f"samples {[start + i for i in empty]} have no {positions!r} positions to average over"
                )
            weight = (batch.select.float() / counts[:, None]).to(model.device)
            yield slice(start, start + len(chunk)), batch.inputs, weight
            bar.update(len(chunk))
            if on_progress is not None:
                on_progress((start + len(chunk)) / len(samples))
