"""Per-architecture facts: where each layer's attention output projection is and how heads sit in it.

An adapter turns a transformers model into a list of output projections, one per decoder layer,
plus the head layout (n_heads, head_dim), the unembedding and the optional post-attention norms
(Gemma-2/3), so that capture and edits never care which family a model comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import HeadPursuitError, shorten

# Every family but GPT-2 keeps layer i's output projection at <decoder>.layers[i].self_attn.o_proj;
# GPT-2 at transformer.h[i].attn.c_proj (a Conv1D). VLMs hold a text decoder of a text family.
TEXT_FAMILIES = frozenset(
    {"gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3", "olmo2"}
)
VLM_FAMILIES = frozenset(
    {"llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "gemma3", "paligemma"}
)
POST_NORM_FAMILIES = {"gemma2", "gemma3_text", "gemma3"}
SUPPORTED = sorted(TEXT_FAMILIES) + sorted(VLM_FAMILIES)


@dataclass
class Adapter:
    """Head layout of one model.

    out_projs[i] is layer i's attention output projection; its input is (batch, seq, n_heads*head_dim).
    kind is "linear" (weight out x in: head h is a block of columns) or "conv1d" (GPT-2, weight
    in x out: head h is a block of rows). post_norms[i] is the norm applied to the attention output
    before the residual add (Gemma-2/3), else None.
    """

    family: str
    out_projs: list[Any]  # nn.Linear, or transformers' Conv1D for GPT-2
    kind: str
    n_heads: int
    head_dim: int
    d_model: int
    post_norms: list[Any]  # nn.Module or None per layer
    final_norm: nn.Module | None
    unembedding: torch.Tensor
    blocks: nn.ModuleList | None = None  # the decoder's blocks in order (layer i's out_proj is in blocks[i])

    @property
    def n_layers(self) -> int:
        return len(self.out_projs)

    @property
    def approximate(self) -> bool:
        """True where head writes pass through a per-token norm and are linearised (Gemma-2/3)."""
        return any(n is not None for n in self.post_norms)

    def head_weights(self, layer: int) -> torch.Tensor:
        """W_O split by head: (n_heads, head_dim, d_model), so that write_h = z_h @ W[h]."""
        w = self.out_projs[layer].weight
        if self.kind == "linear":  # (d_model, n_heads*head_dim)
            w = w.T
        return w.reshape(self.n_heads, self.head_dim, self.d_model)

    def check_head(self, layer: int, head: int) -> None:
        """Raise a clear error when (layer, head) is not a head of this model."""
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in (layer, head)):
            raise HeadPursuitError(
                f"head index must be a pair of ints (layer, head), got ({shorten(repr(layer))}, {shorten(repr(head))})"
            )
        if not 0 <= layer < self.n_layers or not 0 <= head < self.n_heads:
            raise HeadPursuitError(
                f"head ({layer}, {head}) is out of range: this model has layers 0..{self.n_layers - 1} "
                f"and heads 0..{self.n_heads - 1}"
            )


def _text_config(config):
    return getattr(config, "text_config", None) or config


def _find_decoder(model: Any) -> Any:
    """The text decoder holding the layer stack (works for text models and VLMs, transformers 4.5x and 5.x)."""
    candidates: list[Any] = []
    for path in ("model.language_model", "language_model", "model.text_model", "text_model", "model"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            candidates.append(obj)
    if hasattr(model, "get_decoder"):
        try:
            candidates.insert(0, model.get_decoder())
        except (AttributeError, NotImplementedError, TypeError):
            pass
    for cand in candidates:
        if isinstance(getattr(cand, "layers", None), nn.ModuleList):
            return cand
        inner = getattr(cand, "model", None)
        if inner is not None and isinstance(getattr(inner, "layers", None), nn.ModuleList):
            return inner
    raise HeadPursuitError(f"could not find the text decoder's layer stack in {type(model).__name__}")


def _final_norm(decoder: Any) -> nn.Module | None:
    for name in ("norm", "final_layernorm", "ln_f"):
        mod = getattr(decoder, name, None)
        if isinstance(mod, nn.Module):
            return mod
    return None


def _unembedding(model: Any) -> torch.Tensor:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        head = getattr(model, "lm_head", None)
    if head is None or not hasattr(head, "weight"):
        raise HeadPursuitError(f"{type(model).__name__} has no output embedding (lm_head): it cannot be scored")
    return head.weight


def build_adapter(model: Any) -> Adapter:
    """Detect the family from the model's config and locate its attention output projections.

    model: a transformers PreTrainedModel (typed Any: its submodules are found by attribute at run time)."""
    config = model.config
    family = getattr(config, "model_type", None)
    if family not in TEXT_FAMILIES and family not in VLM_FAMILIES:
        raise HeadPursuitError(
            f"unsupported architecture {family!r} ({type(model).__name__}); supported: {', '.join(SUPPORTED)}"
        )
    tconf = _text_config(config)
    if family == "gpt2":
        decoder = model.transformer
        out_projs = [block.attn.c_proj for block in decoder.h]
        blocks = decoder.h
        kind, n_heads, post_norms = "conv1d", tconf.n_head, [None] * len(out_projs)
        final_norm = decoder.ln_f
        width = out_projs[0].weight.shape[0]
        d_model = out_projs[0].weight.shape[1]
    else:
        decoder = _find_decoder(model)
        out_projs = [layer.self_attn.o_proj for layer in decoder.layers]
        blocks = decoder.layers
        kind, n_heads = "linear", tconf.num_attention_heads
        text_family = getattr(tconf, "model_type", family)
        post = family in POST_NORM_FAMILIES or text_family in POST_NORM_FAMILIES
        post_norms = [layer.post_attention_layernorm if post else None for layer in decoder.layers]
        final_norm = _final_norm(decoder)
        d_model, width = out_projs[0].weight.shape
    if width % n_heads:
        raise HeadPursuitError(f"output projection width {width} is not a multiple of {n_heads} heads")
    return Adapter(
        family=family,
        out_projs=list(out_projs),
        kind=kind,
        n_heads=n_heads,
        head_dim=width // n_heads,
        d_model=d_model,
        post_norms=post_norms,
        final_norm=final_norm,
        unembedding=_unembedding(model),
        blocks=blocks,
    )


def norm_gain(norm: Any, d_model: int) -> torch.Tensor:
    """Effective per-channel gain of a norm, (d_model,): LayerNorm's weight, or an RMS norm's output for ones."""
    if isinstance(norm, nn.LayerNorm):
        return norm.weight.detach().float()
    ref = next(norm.parameters())
    ones = torch.ones(1, d_model, dtype=ref.dtype, device=ref.device)
    with torch.no_grad():
        out = norm(ones).float()[0]
    return out * (1 + norm_eps(norm)) ** 0.5


def norm_eps(norm: nn.Module) -> float:
    for name in ("eps", "variance_epsilon"):
        value = getattr(norm, name, None)
        if isinstance(value, float):
            return value
    return 1e-6


def head_scale(adapter, heads: dict[int, float]) -> torch.Tensor:
    """(n_heads*head_dim,) multiplier for one layer's output-projection input."""
    scale = torch.ones(adapter.n_heads, adapter.head_dim)
    for head, alpha in heads.items():
        scale[head] = alpha
    return scale.flatten()
