"""HeadModel: a transformers model with its tokenizer (and processor), its head layout and its lock."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from .adapters import VLM_FAMILIES, Adapter, build_adapter


@dataclass
class HeadModel:
    """A transformers model with its tokenizer (and processor for VLMs) and its head layout.

    lock: held by capture, edit_heads and generate, so that hooks from two threads (a widget
    generating in the background, a notebook cell) never mix on the same model.
    """

    module: Any  # the transformers nn.Module (a PreTrainedModel; its submodules are found at run time)
    tokenizer: Any
    processor: object | None = None
    name: str = ""
    weights_sha256: str = ""  # SHA-256 of the verified file the weights came from (shipped models), else ""
    adapter: Adapter = field(init=False)
    lock: threading.RLock = field(init=False, repr=False, default_factory=threading.RLock)

    def __post_init__(self):
        self.module.eval()
        self.module.requires_grad_(False)
        self.adapter = build_adapter(self.module)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.name:
            self.name = getattr(self.module.config, "_name_or_path", "") or type(self.module).__name__
        if self.is_vlm:
            from .processor import image_token_id

            image_token_id(self.module, self.processor)  # a processor of another model fails here

    n_layers = property(lambda self: self.adapter.n_layers)
    n_heads = property(lambda self: self.adapter.n_heads)
    head_dim = property(lambda self: self.adapter.head_dim)
    d_model = property(lambda self: self.adapter.d_model)

    @property
    def device(self) -> torch.device:
        return self.adapter.unembedding.device

    @property
    def is_vlm(self) -> bool:
        return self.processor is not None and getattr(self.module.config, "model_type", "") in VLM_FAMILIES

    @property
    def context_window(self) -> int:
        conf = getattr(self.module.config, "text_config", None) or self.module.config
        for name in ("max_position_embeddings", "n_positions"):
            value = getattr(conf, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return 1 << 20

    @property
    def fingerprint(self) -> str:
        """Short hash of the head layout, vocabulary size, a few weights and, for a shipped model, the
        SHA-256 of the verified file its weights were loaded from: ties saved rankings to a model."""
        a = self.adapter
        probe = (
            torch.cat(
                [
                    a.out_projs[0].weight.flatten()[:64],
                    a.out_projs[-1].weight.flatten()[-64:],
                    a.unembedding[:2].flatten()[:64],
                ]
            )
            .detach()
            .float()
            .cpu()
        )
        layout = json.dumps([a.family, a.n_layers, a.n_heads, a.head_dim, a.d_model, int(a.unembedding.shape[0])])
        digest = hashlib.sha256(layout.encode())
        digest.update(probe.round(decimals=4).numpy().tobytes())
        digest.update(self.weights_sha256.encode())
        return digest.hexdigest()[:16]

    backend = "hf"  # where forward passes run: "hf" (in-process hooks) or "nnsight" (traces)
    # True: forward passes run this process's module, so a pass may stand recorded outputs in for blocks
    blocks_run_here = True
    # True: rank_heads asks the model for SOMP statistics (head_statistics) instead of capturing head writes
    ranks_from_statistics = False

    def forward(self, **inputs):
        """One forward pass (the model's output object, with .logits); head edits in effect apply."""
        return self.module(**inputs)

    def generate(self, **kwargs):
        """transformers' generate on the model; head edits in effect apply at every step."""
        return self.module.generate(**kwargs)

    def __repr__(self) -> str:
        return (
            f"HeadModel({self.name!r}, family={self.adapter.family}, layers={self.n_layers}, "
            f"heads={self.n_heads}, head_dim={self.head_dim}, d_model={self.d_model})"
        )
