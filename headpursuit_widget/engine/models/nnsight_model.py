"""The nnsight backend: a HeadModel whose forward passes run inside nnsight traces.

Every trace body below uses only torch, nnsight envoys and nnsight_layers.py (registered with nnsight,
so its source travels with the trace), so the same code runs in this process
(remote=False), through nnsight's local simulation of a remote request (remote="local": the trace
is serialised and deserialised with this package hidden, as on a server), on NDIF (remote=True) or
on a self-hosted NDIF-protocol server (url=...). Head edits scale the head's slice of o_proj's input inside the
trace, at every generation step. Capture returns, per batch, only the mean z of every head,
(n_layers, batch, n_heads*head_dim): W_O is applied here, from the local weights. Ranking needs no
local weights: head_statistics computes SOMP's statistics inside the trace (activations/statistics.py).
"""

from __future__ import annotations

import hashlib
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import torch

from ..errors import HeadPursuitError
from . import nnsight_layers
from .adapters import head_scale, norm_eps, norm_gain
from .head_model import HeadModel
from .nnsight_layers import layer_mean_z

INSTALL_HINT = "pip install 'headpursuit-widget[nnsight]'"
# nnsight warns when an open `tracer.all()` loop outlives the generation: that is how it ends here.
_OPEN_LOOP_WARNING = ".*was never reached: the loop asked for a step the run did not make.*"


def import_nnsight():
    """The nnsight module, or a HeadPursuitError saying how to install it."""
    try:
        import nnsight
    except ImportError:
        raise HeadPursuitError(f"backend='nnsight' needs the nnsight package: {INSTALL_HINT}") from None
    return nnsight


@dataclass(repr=False)
class NNsightHeadModel(HeadModel):
    """A HeadModel over an nnsight TransformersModel `lm` (model is the transformers module it wraps).

    remote: False (traces run here), "local" (serialised as for a server, run here), True (NDIF) or
    the URL of a server speaking NDIF's request protocol. api_key: sent with remote requests.
    bytes_returned: bytes of the capture statistics that came back from traces so far.
    """

    lm: Any = None  # nnsight.TransformersModel: its envoys and proxies are built at run time
    remote: bool | str = False
    api_key: str | None = None
    bytes_returned: int = field(init=False, default=0)
    _plans: list = field(init=False, repr=False, default_factory=list)

    backend = "nnsight"
    ranks_from_statistics = True  # ranking never brings head writes back (activations/statistics.py)

    def __post_init__(self):
        super().__post_init__()
        import_nnsight().register(nnsight_layers)  # its source travels with remote traces
        if self.is_vlm:
            raise HeadPursuitError("backend='nnsight' supports text models only; load a VLM with backend='hf'")
        paths = {id(m): name for name, m in self.module.named_modules()}
        a = self.adapter
        self._projs: list[Any] = [self.lm.get(paths[id(p)]) for p in a.out_projs]
        self._norms: list[Any] = [self.lm.get(paths[id(n)]) if n is not None else None for n in a.post_norms]
        self._eps = [norm_eps(n) if n is not None else 0.0 for n in a.post_norms]
        self._unembed = self.lm.get(paths[id(_owner(self.module, a.unembedding))])

    @property
    def device(self) -> torch.device:
        device = self.adapter.unembedding.device
        return torch.device("cpu") if device.type == "meta" else device  # weights on the server: inputs stay here

    @property
    def blocks_run_here(self) -> bool:  # type: ignore[override]
        """In-process traces run this module's blocks; serialised ("local") and remote ones run whole."""
        return self.remote is False

    @property
    def weights_here(self) -> bool:
        """False for a model loaded with remote=True/url=: its local copy is on the meta device."""
        return self.adapter.unembedding.device.type != "meta"

    @property
    def fingerprint(self) -> str:
        if self.weights_here:
            return super().fingerprint
        layout = f"{self.name}|{self.adapter.family}|{self.n_layers}|{self.n_heads}|{self.head_dim}|{self.d_model}"
        return hashlib.sha256(layout.encode()).hexdigest()[:16]

    def _trace_backend(self):
        """The nnsight backend object for lm.trace/generate: None runs in-process."""
        if self.remote is False:
            return None
        if self.remote == "local":
            from nnsight.intervention.backends.local import LocalSimulationBackend

            return LocalSimulationBackend(self.lm)
        from nnsight.intervention.backends.remote import RemoteBackend

        host = self.remote if isinstance(self.remote, str) else None
        return RemoteBackend(self.lm.to_model_key(), host=host, api_key=self.api_key)

    @contextmanager
    def edits_in_effect(self, plan: dict[int, dict[int, float]]):
        """Within the block, every trace scales these heads (on top of edits already in effect)."""
        self._plans.append(plan)
        try:
            yield
        finally:
            self._plans.remove(plan)

    def _scales(self) -> dict[int, torch.Tensor]:
        """{layer: (n_heads*head_dim,) multiplier of o_proj's input} of all edits in effect."""
        scales: dict[int, torch.Tensor] = {}
        for plan in self._plans:
            for layer, heads in plan.items():
                scale = head_scale(self.adapter, heads)
                scales[layer] = scales[layer] * scale if layer in scales else scale
        dtype = self.adapter.out_projs[0].weight.dtype
        return {layer: scales[layer].to(dtype) for layer in sorted(scales)}

    def forward(self, **inputs):
        """One forward pass in a trace, edits in effect; returns an object with .logits."""
        lm, projs, scales = self.lm, self._projs, self._scales()
        with self.lock, torch.inference_mode(), lm.trace(backend=self._trace_backend()) as tracer:
            with tracer.invoke(**inputs):
                for layer, scale in scales.items():
                    z = projs[layer].input
                    projs[layer].input = z * scale.to(z.device)
                logits = lm.output.logits.save()
        return SimpleNamespace(logits=logits)

    def mean_z(self, inputs: dict, weight: torch.Tensor) -> torch.Tensor:
        """Weighted mean of every head's z over positions, (n_layers, batch, n_heads*head_dim) float32.

        weight: (batch, seq), rows summing to 1 over the selected positions. Where a post-attention
        norm follows (Gemma-2/3) each position's z is divided by the RMS of the norm's input, as in
        capture's hook path. Edits in effect apply before z is read. The forward stops after the
        last layer's attention.
        """
        if not self.weights_here:
            raise HeadPursuitError(
                f"capture returns head writes, which need W_O of {self.name!r} in this process, but a model "
                "loaded with remote=True or url= keeps its weights on the server; rank_heads (without "
                "activations=), generate and edits work on it - see docs/scale.md"
            )
        lm, projs, norms, eps, scales = self.lm, self._projs, self._norms, self._eps, self._scales()
        with self.lock, torch.inference_mode(), lm.trace(backend=self._trace_backend()) as tracer:
            with tracer.invoke(**inputs, use_cache=False):
                means = [
                    layer_mean_z(projs[layer], norms[layer], eps[layer], scales.get(layer), weight).cpu()
                    for layer in range(len(projs))
                ]
                stacked: Any = cast(Any, torch.stack(means)).save()  # an nnsight proxy inside the trace
                tracer.stop()
        self.bytes_returned += stacked.numel() * stacked.element_size()
        return stacked

    def _write_gains(self, fold_norm: bool) -> tuple[list, Any]:
        """(per-layer post-attention norm gains or None, the final norm's gain for fold_norm or None),
        (d_model,) float32, computed here: they need the norms' weights in this process."""
        a = self.adapter
        if not self.weights_here and (a.approximate or (fold_norm and a.final_norm is not None)):
            raise HeadPursuitError(
                f"ranking {self.name!r} with its weights on the server supports models without post-attention "
                "norms (not Gemma-2/3) and fold_norm=False: the norm gains are read from local weights"
            )
        gains = [norm_gain(n, a.d_model) if n is not None else None for n in a.post_norms]
        fold = norm_gain(a.final_norm, a.d_model) if fold_norm and a.final_norm is not None else None
        return gains, fold

    def head_statistics(
        self,
        inputs: dict,
        weight: torch.Tensor,
        row_ids: torch.Tensor,
        *,
        normalize: bool,
        fold_norm: bool,
        totals=None,
    ) -> dict[str, torch.Tensor]:
        """What SOMP and the Logit Lens need from one batch, computed inside the trace (activations/statistics.py).

        weight (batch, seq) as for mean_z; row_ids (m,) the unembedding rows scored against (made as
        dictionary_rows makes them). Each head's mean write x = mean z @ W_O[h] (times the norm gain
        on Gemma-2/3) is formed in float64 next to the model and returns only as:
        shift (n_layers, n_heads, m) float64: the batch's mean x . each row; proj (n_layers, batch,
        n_heads, m) float32: (x - the batch's mean x) . each row (so float32 rounds the spread only, not
        the part all samples share); sq (n_layers, batch, n_heads) float64: |x|^2; zsum (n_layers,
        n_heads*head_dim) float64: the batch's sum of mean z.
        totals: for the last batch, (zsum of the earlier batches (n_layers, n_heads*head_dim) float64,
        number of samples in all batches, n_lens, blocks (G, m') long: positions in row_ids of each of G
        dictionaries); it adds mean_sq (n_layers, n_heads) float64: |mean write over all samples|^2,
        lens_ids/lens_vals (n_layers, n_heads, n_lens): the mean write's top tokens over the whole
        vocabulary, gram (G, m', m') float64: each dictionary's Gram matrix, and row_norms (m,) float32:
        the rows' norms before normalisation.
        """
        nnsight = import_nnsight()
        a, lm, projs, norms, eps, scales = self.adapter, self.lm, self._projs, self._norms, self._eps, self._scales()
        unembed, gains, fold = self._unembed, *self._write_gains(fold_norm)
        shape, transpose = (a.n_heads, a.head_dim, a.d_model), a.kind == "linear"
        before, n_total, n_lens, blocks = totals if totals is not None else (None, 0, 0, torch.empty(0, 0))
        with self.lock, torch.inference_mode(), lm.trace(backend=self._trace_backend()) as tracer:
            with tracer.invoke(**inputs, use_cache=False):
                u = unembed.weight
                raw = u[row_ids.to(u.device)].float()
                if fold is not None:
                    raw = raw * fold.to(raw.device)
                norm = raw.norm(dim=1, keepdim=True)
                rows = (raw / norm.clamp_min(1e-12) if normalize else raw).double()
                proj, shift, sq, zsum, mean_sq, lens_ids, lens_vals = [], [], [], [], [], [], []
                for layer in range(len(projs)):
                    zmean = layer_mean_z(projs[layer], norms[layer], eps[layer], scales.get(layer), weight).double()
                    wo = projs[layer].weight
                    wo = (wo.T if transpose else wo).double().reshape(shape)
                    write = torch.einsum("bhk,hkd->bhd", zmean.reshape(zmean.shape[0], *shape[:2]), wo)
                    if gains[layer] is not None:
                        write = write * gains[layer].to(write.device).double()
                    centre = write.mean(0)  # float32 keeps the spread, not the common part
                    shift.append((centre @ rows.T.to(write.device)).cpu())
                    proj.append(((write - centre) @ rows.T.to(write.device)).float().cpu())
                    sq.append(write.pow(2).sum(-1).cpu())
                    zsum.append(zmean.sum(0).cpu())
                    if before is not None:
                        zbar = (zmean.sum(0) + before[layer].to(zmean.device)) / n_total
                        mean = torch.einsum("hk,hkd->hd", zbar.reshape(shape[:2]), wo)
                        if gains[layer] is not None:
                            mean = mean * gains[layer].to(mean.device).double()
                        mean_sq.append(mean.pow(2).sum(-1).cpu())
                        top = (mean.to(u.device, u.dtype) @ u.T).float().topk(n_lens, dim=1)
                        lens_ids.append(top.indices.cpu())
                        lens_vals.append(top.values.cpu())
                saved: Any = {"proj": torch.stack(proj), "shift": torch.stack(shift), "sq": torch.stack(sq)}
                saved["zsum"] = torch.stack(zsum)
                if before is not None:
                    dictionaries = rows[blocks.to(rows.device)]
                    saved["mean_sq"] = torch.stack(mean_sq)
                    saved["gram"] = (dictionaries @ dictionaries.transpose(1, 2)).cpu()
                    saved["lens_ids"], saved["lens_vals"] = torch.stack(lens_ids), torch.stack(lens_vals)
                    saved["row_norms"] = norm[:, 0].cpu()
                saved = nnsight.save(saved)
                tracer.stop()
        self.bytes_returned += sum(t.numel() * t.element_size() for t in saved.values())
        return dict(saved)

    def generate(self, **kwargs):
        """transformers' generate inside an nnsight trace; edits in effect apply at every step.

        In-process the streamer and stopping criteria run live. Through a remote or simulated
        request they cannot travel: cancellation is checked before sending, and the new tokens are
        handed to the streamer when the ids come back.
        """
        streamer, stopping_criteria = kwargs.pop("streamer", None), kwargs.pop("stopping_criteria", None)
        max_new_tokens = kwargs.pop("max_new_tokens")
        lm, projs, scales = self.lm, self._projs, self._scales()
        live = self.remote is False
        if not live and any(c.event.is_set() for c in stopping_criteria or [] if hasattr(c, "event")):
            return None  # cancelled before the request left
        inputs = {k: kwargs.pop(k) for k in ("input_ids", "attention_mask") if k in kwargs}
        extra = {"streamer": streamer, "stopping_criteria": stopping_criteria} if live else {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_OPEN_LOOP_WARNING)
            with (
                self.lock,
                torch.inference_mode(),
                lm.generate(max_new_tokens=max_new_tokens, backend=self._trace_backend(), **kwargs, **extra) as tracer,
            ):
                with tracer.invoke(**inputs):
                    for _ in tracer.all() if scales else ():  # a loop that touches no module never ends
                        for layer, scale in scales.items():
                            z = projs[layer].input
                            projs[layer].input = z * scale.to(z.device)
                with tracer.invoke():
                    ids = tracer.result.save()
        if not live and streamer is not None:
            sequences = getattr(ids, "sequences", ids)  # return_dict_in_generate=True gives an output object
            width = inputs["input_ids"].shape[1]
            streamer.put(sequences[:, :width])
            for step in range(width, sequences.shape[1]):
                streamer.put(sequences[:, step])
            streamer.end()
        return ids


def _owner(module: torch.nn.Module, weight: torch.Tensor) -> torch.nn.Module:
    """The submodule whose own `weight` is this tensor (the unembedding: lm_head, or the tied embedding)."""
    return next(m for m in module.modules() if m._parameters.get("weight") is weight)


def statistics_bytes(
    n_layers: int,
    n_heads: int,
    head_dim: int,
    *,
    n_rows: int,
    n_prompts: int,
    n_batches: int,
    dictionaries: tuple,
    n_lens: int,
) -> dict[str, int]:
    """Bytes that head_statistics returns for one ranking: {"per_prompt", "per_batch", "once", "total"}.

    n_rows: distinct dictionary rows (m_u); dictionaries: (G, m), G dictionaries of m rows. Per prompt:
    a float32 projection on every row and a float64 |x|^2 per head; per batch: the float64 sum of mean
    z and the batch mean's float64 projections; once: |mean write|^2 (float64), n_lens top tokens
    (int64 + float32) per head, the G float64 Gram matrices and the float32 row norms.
    """
    heads = n_layers * n_heads
    g, m = dictionaries
    out = {
        "per_prompt": heads * (4 * n_rows + 8),
        "per_batch": 8 * heads * (head_dim + n_rows),
        "once": heads * (8 + 12 * n_lens) + 8 * g * m * m + 4 * n_rows,
    }
    out["total"] = n_prompts * out["per_prompt"] + n_batches * out["per_batch"] + out["once"]
    return out
