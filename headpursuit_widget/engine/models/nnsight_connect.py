"""Connecting the nnsight backend: wrapping a loaded model, loading one whose weights stay on a server,
and checking the remote target (NDIF, a self-hosted NDIF-protocol server, or nnsight's local simulation)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from ..errors import HeadPursuitError
from .head_model import HeadModel
from .nnsight_model import NNsightHeadModel, import_nnsight

API_KEY_ENV = "NDIF_API_KEY"
SERVE_ROUTE = "/v1/nnsight/generate"  # where nnsight-serve (nnsight.modeling.vllm.serve) takes traces
REMOTE_MODES = (False, True, "local")


def wrap(model: HeadModel, *, remote: bool | str = False, url: str | None = None, api_key: str | None = None):
    """An NNsightHeadModel over model's transformers model and tokenizer (the weights are shared, not copied)."""
    nnsight = import_nnsight()
    target = _check_remote(remote, url, api_key)
    padding_side = model.tokenizer.padding_side  # nnsight sets it to "left" on the shared tokenizer
    lm = nnsight.TransformersModel(model.module, tokenizer=model.tokenizer, task="text-generation")
    model.tokenizer.padding_side = padding_side
    return NNsightHeadModel(
        module=model.module,
        tokenizer=model.tokenizer,
        name=model.name,
        weights_sha256=model.weights_sha256,
        lm=lm,
        remote=target,
        api_key=_api_key(target, api_key),
    )


def _api_key(target, api_key: str | None) -> str | None:
    if target is True:
        return api_key or os.environ.get(API_KEY_ENV)
    return api_key


def _check_remote(remote, url: str | None, api_key: str | None) -> bool | str:
    """remote/url -> the trace target (False, "local", True or a URL), after checking keys and reachability."""
    if remote not in REMOTE_MODES:
        raise HeadPursuitError(f"remote must be False, True (NDIF) or 'local' (simulated), got {remote!r}")
    if url is not None:
        if remote is not False:
            raise HeadPursuitError("give either url= (an nnsight server) or remote=, not both")
        _check_reachable(url)
        return url
    if remote is True and not _api_key(True, api_key):
        raise HeadPursuitError(
            f"remote=True sends traces to NDIF and needs an API key: set the {API_KEY_ENV} environment "
            "variable (keys from https://login.ndif.us) or pass api_key="
        )
    return remote


def _check_reachable(url: str, timeout: float = 5.0) -> None:
    """Raise a HeadPursuitError naming what to set when nothing answers at url, or when an nnsight-serve
    (vLLM) server answers there: this backend speaks NDIF's request protocol, which it does not."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise HeadPursuitError(f"url must be an http:// or https:// address of an nnsight server, got {url!r}")
    try:
        urllib.request.urlopen(url, timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # something answers; the request itself says whether it serves nnsight
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HeadPursuitError(
            f"no nnsight server answers at {url} ({reason}): start the server there, or set url= to the "
            "address of a running one (for NDIF itself use remote=True)"
        ) from None
    if SERVE_ROUTE in _routes(url, timeout):
        raise HeadPursuitError(
            f"{url} is an nnsight-serve (vLLM) server, which backend='nnsight' cannot use: url= speaks NDIF's "
            "request protocol (NDIF or a self-hosted NDIF), while nnsight-serve runs traces of nnsight's vLLM "
            "client (nnsight.modeling.vllm.VLLM(repo).trace(..., serve=url)); point url= at an NDIF-protocol "
            "server, use remote=True, or run the widget on the GPU box (docs/scale.md)"
        )


def _routes(url: str, timeout: float) -> set:
    """The paths a FastAPI server at url publishes in /openapi.json (empty when it publishes none)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/openapi.json", timeout=timeout) as response:
            return set(json.loads(response.read()).get("paths", {}))
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return set()


def load(
    name_or_path: str,
    *,
    remote: bool | str = False,
    url: str | None = None,
    api_key: str | None = None,
    loader=None,
    **load_kwargs,
) -> NNsightHeadModel:
    """load_model(..., backend="nnsight"): the weights load here (through `loader`, the hf loader)
    and nnsight wraps them; remote/url send the traces elsewhere."""
    import_nnsight()
    target = _check_remote(remote, url, api_key)
    if target not in (False, "local"):
        return _load_remote(name_or_path, target, api_key, **load_kwargs)
    return wrap(loader(name_or_path, **load_kwargs), remote=target)


def _load_remote(repo_id: str, target, api_key: str | None, **load_kwargs) -> NNsightHeadModel:
    """A model whose weights stay on the server: the local copy is built on the meta device."""
    from transformers import AutoTokenizer

    nnsight = import_nnsight()
    try:
        trust = load_kwargs.get("trust_remote_code", False)
        tokenizer = AutoTokenizer.from_pretrained(repo_id, trust_remote_code=trust)
        lm = nnsight.TransformersModel(repo_id, task="text-generation", tokenizer=tokenizer, **load_kwargs)
    except (OSError, ValueError) as exc:
        raise HeadPursuitError(f"could not read the config and tokenizer of {repo_id!r}: {exc}") from None
    return NNsightHeadModel(
        module=lm._module, tokenizer=lm.tokenizer, name=repo_id, lm=lm, remote=target, api_key=_api_key(target, api_key)
    )
