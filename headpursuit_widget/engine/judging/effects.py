"""What each head does: flip it and measure its own concept, other categories and the control.

SOMP says what a head writes; this says what editing it does. For every head, under alpha (default
-1, a flip): the concept's answer-mass ratio, each other category's ratio asked in the same format,
and the control facts' log-probability drop (engine/judging/categories.py). A concept head cuts its concept
more than the others (`selectivity` > 0) and is not `generic` (an answer or format head, whose edit
cuts the other categories too, median below GENERIC_BELOW).

Three methods:
- "exact": one edited forward pass per head and batch, each from the head's layer on (the unedited
  layers' outputs are recorded once per batch, engine/editing/prefix.py);
- "answer": every head edited at the answer position only, exactly, one position per head from its
  layer on (engine/judging/answer_flips.py), then the n_check most selective heads edited everywhere;
- "attribution": one forward and one backward pass per batch give every head's first-order effect
  (gradient x the edit's change of the head's write, summed over positions, on each prompt's log mass
  or answer log-probability), then the n_check most selective heads by that estimate are measured
  exactly. `exact` marks the heads whose numbers come from edits at every position.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..activations.inputs import encode
from ..concepts.contexts import eliciting_contexts
from ..concepts.resolve import concept_record, resolve_concept, words_of
from ..editing.edits import parse_edits
from ..errors import HeadPursuitError, check_cancel, check_int, shorten
from ..files import read_checked, write_atomic
from ..hooks import hooks_removed
from ..progress import Progress
from ..progress import bar as progress_bar
from . import kept
from .answer_flips import answer_flips
from .categories import Battery, battery, effect_of, lower_median, measure, selectivity
from .probes import answer_ids

METHODS = ("answer", "attribution", "exact")
SCREENS = ("answer", "attribution")  # methods that estimate every head, then measure n_check exactly
DEFAULT_METHOD = "exact"  # attribution agreed poorly with exact flips on SmolLM2 (docs/effects.md)
GENERIC_BELOW = 0.8  # a head whose edit leaves the other categories' median below this is generic
N_CHECK = 8  # heads attribution re-measures exactly
N_CONTEXTS = 16  # the concept's eliciting contexts measured by default
FORMAT = "headpursuit-effects/1"
_ESTIMATES = ("mass_ratio", "other_ratios", "control_drop")  # attribute()'s arrays, in its order
_SHAPES = {
    "mass_ratio": ("n_layers", "n_heads"),
    "other_ratios": ("n_others", "n_layers", "n_heads"),
    "control_drop": ("n_layers", "n_heads"),
    "exact": ("n_layers", "n_heads"),
}


@dataclass(frozen=True)
class HeadEffects:
    """Each head's edit (alpha) measured: mass_ratio (n_layers, n_heads) concept mass edited / unedited;
    other_ratios (n_others, n_layers, n_heads) the same for each of `others`; control_drop (n_layers,
    n_heads) mean log-prob loss of the control answers (nats); exact (n_layers, n_heads) bool, True where
    the numbers come from an edited pass (else a gradient estimate)."""

    concept: str
    others: tuple
    alpha: float
    method: str
    mass_ratio: np.ndarray
    other_ratios: np.ndarray
    control_drop: np.ndarray
    exact: np.ndarray
    model_name: str
    fingerprint: str
    options: dict = field(default_factory=dict)

    n_layers = property(lambda self: self.mass_ratio.shape[0])
    n_heads = property(lambda self: self.mass_ratio.shape[1])

    @property
    def others_median(self) -> np.ndarray:
        """(n_layers, n_heads): the median (categories.lower_median) over other categories of their mass ratio
        (1 with no others)."""
        if not len(self.others):
            return np.ones_like(self.mass_ratio)
        return lower_median(self.other_ratios, axis=0)

    @property
    def selectivity(self) -> np.ndarray:
        """(n_layers, n_heads) float64: median over other categories of log(ratio) minus the concept's
        log(ratio): > 0 where the edit cuts the concept more than the others (natural log units)."""
        return selectivity(self.mass_ratio, self.other_ratios)

    @property
    def generic(self) -> np.ndarray:
        """(n_layers, n_heads) bool: the edit also cuts the other categories (their median < GENERIC_BELOW)."""
        return self.others_median < GENERIC_BELOW

    def top(self, n: int = 10) -> list[tuple[int, int]]:
        """The n most selective heads that are not generic, as (layer, head), exactly measured first."""
        n = check_int(n, "number of heads", minimum=1)
        sel = np.where(self.generic, -np.inf, self.selectivity)
        order = np.lexsort((-sel.ravel(), ~self.exact.ravel()))
        return [(int(i // self.n_heads), int(i % self.n_heads)) for i in order if np.isfinite(sel.ravel()[i])][:n]

    def head(self, layer: int, head: int) -> dict:
        """One head's numbers: {"concept": ratio, "others": {name: ratio}, "control_drop": nats, ...}."""
        if not (0 <= layer < self.n_layers and 0 <= head < self.n_heads):
            raise HeadPursuitError(
                f"head ({layer}, {head}) is out of range: layers 0..{self.n_layers - 1}, heads 0..{self.n_heads - 1}"
            )
        return {
            "concept": float(self.mass_ratio[layer, head]),
            "others": {n: float(self.other_ratios[i, layer, head]) for i, n in enumerate(self.others)},
            "control_drop": float(self.control_drop[layer, head]),
            "selectivity": float(self.selectivity[layer, head]),
            "generic": bool(self.generic[layer, head]),
            "exact": bool(self.exact[layer, head]),
        }

    def save(self, path) -> Path:
        """Write a .npz (arrays + JSON metadata), readable without pickle; replaced atomically."""
        meta = {
            "format": FORMAT,
            "concept": self.concept,
            "others": list(self.others),
            "alpha": self.alpha,
            "method": self.method,
            "model_name": self.model_name,
            "fingerprint": self.fingerprint,
            "options": self.options,
        }
        arrays = {name: np.asarray(getattr(self, name)) for name in _SHAPES}
        return write_atomic(Path(path), meta, arrays)

    @classmethod
    def load(cls, path, model=None) -> HeadEffects:
        """Read saved effects (no pickle); with model=, refuse effects measured on another model."""
        path = Path(path)
        if not path.is_file():
            raise HeadPursuitError(f"effects file not found: {path}")
        meta, arrays = read_checked(path, _SHAPES, _dims, what="head effects file")
        if meta.get("format") != FORMAT:
            raise HeadPursuitError(f"{path}: unknown format {shorten(repr(meta.get('format')))}, expected {FORMAT!r}")
        kinds: dict[str, type | tuple[type, ...]] = {"concept": str, "others": list, "alpha": (int, float)}
        kinds.update(method=str, model_name=str, fingerprint=str, options=dict)
        for name, kind in kinds.items():
            if not isinstance(meta.get(name), kind) or isinstance(meta.get(name), bool):
                raise HeadPursuitError(f"{path}: metadata {name!r} is missing or of the wrong type")
        if model is not None and model.fingerprint != meta["fingerprint"]:
            raise HeadPursuitError(f"{path} was measured on model {meta['model_name']!r}, not on {model.name!r}")
        return cls(
            concept=meta["concept"],
            others=tuple(str(n) for n in meta["others"]),
            alpha=float(meta["alpha"]),
            method=meta["method"],
            mass_ratio=arrays["mass_ratio"].astype(np.float64),
            other_ratios=arrays["other_ratios"].astype(np.float64),
            control_drop=arrays["control_drop"].astype(np.float64),
            exact=arrays["exact"].astype(bool),
            model_name=meta["model_name"],
            fingerprint=meta["fingerprint"],
            options=meta["options"],
        )


def effects_from_record(grid: dict, ranking) -> HeadEffects:
    """HeadEffects from the JSON grid a selection keeps (ranking.options["selection"]["effects"])."""
    return HeadEffects(
        concept=ranking.concept["name"],
        others=tuple(grid["others"]),
        alpha=-1.0,
        method=str(grid.get("method", "attribution")),  # rankings saved before the answer screen: attribution
        mass_ratio=np.asarray(grid["mass_ratio"], dtype=np.float64),
        other_ratios=np.asarray(grid["other_ratios"], dtype=np.float64).reshape(
            len(grid["others"]), *np.shape(grid["mass_ratio"])
        ),
        control_drop=np.asarray(grid["control_drop"], dtype=np.float64),
        exact=np.asarray(grid["exact"], dtype=bool),
        model_name=ranking.model_name,
        fingerprint=ranking.fingerprint,
    )


def _dims(meta: dict) -> dict:
    others = meta.get("others")
    return {"n_others": len(others)} if isinstance(others, list) else {}


def effects(
    model,
    concept,
    *,
    others=None,
    alpha: float = -1.0,
    method: str = DEFAULT_METHOD,
    prompts=None,
    n_check: int = N_CHECK,
    seed: int = 0,
    cancel: threading.Event | None = None,
    progress: Progress = True,
) -> HeadEffects:
    """Every head's edit by `alpha`, measured on the concept, on other categories and on the control.

    concept: a HeadRanking (its concept) or anything rank_heads accepts. others: shipped concept names
    (default: colours, countries, animals, numbers, food without the concept; engine/judging/categories.py).
    prompts: the concept's prompts (default: the first 16 of its "rank" eliciting contexts for `seed`).
    method: "exact", "answer" (every head edited at the answer position, then the n_check most selective
    everywhere) or "attribution" (gradient estimate, then the n_check most selective heads exactly).
    """
    if method not in METHODS:
        raise HeadPursuitError(f"unknown method {shorten(repr(method))}; accepted: {', '.join(METHODS)}")
    n_check = check_int(n_check, "n_check (heads measured exactly)", minimum=0)
    if model.is_vlm:
        raise HeadPursuitError("effects measure text next-token predictions; vision-language models are not supported")
    if method in SCREENS and model.backend != "hf":
        raise HeadPursuitError(
            f"method={method!r} needs this process's model; use method='exact' on the {model.backend} backend"
        )
    parse_edits(model.adapter, {(0, 0): alpha})  # alpha checked before any pass
    record = _record_of(model, concept)
    if prompts is None:
        prompts = eliciting_contexts(record["name"], words_of(record), part="rank", seed=seed)[:N_CONTEXTS]
    bat = battery(model, record, prompts, part="rank", others=others, seed=seed, cancel=cancel)
    return measure_heads(
        model, bat, alpha=float(alpha), method=method, n_check=n_check, cancel=cancel, progress=progress
    )


def _record_of(model, concept) -> dict:
    """A ranking's concept record, or one made from anything rank_heads accepts."""
    record = getattr(concept, "concept", None)
    if isinstance(record, dict) and hasattr(concept, "fingerprint"):
        if concept.fingerprint != model.fingerprint:
            raise HeadPursuitError(f"the ranking was made for model {concept.model_name!r}, not for {model.name!r}")
        return record
    con, spec = resolve_concept(concept, model.tokenizer)
    return concept_record(con, spec)


def measure_heads(
    model,
    bat: Battery,
    *,
    alpha: float,
    method: str,
    n_check: int = N_CHECK,
    heads=None,
    cancel=None,
    progress: Progress = False,
) -> HeadEffects:
    """HeadEffects over `heads` (default: all) of a Battery; heads left out stay at ratio 1, drop 0, not exact."""
    L, H = model.n_layers, model.n_heads
    wanted = [(layer, h) for layer in range(L) for h in range(H)] if heads is None else [tuple(h) for h in heads]
    result = HeadEffects(
        concept=bat.concept.name,
        others=tuple(bat.other_names),
        alpha=alpha,
        method=method,
        mass_ratio=np.ones((L, H)),
        other_ratios=np.ones((len(bat.others), L, H)),
        control_drop=np.zeros((L, H)),
        exact=np.zeros((L, H), dtype=bool),
        model_name=model.name,
        fingerprint=model.fingerprint,
        options={"n_prompts": len(bat.concept.prompts), "n_control": len(bat.control), "n_check": n_check},
    )
    if method in SCREENS:
        result.mass_ratio[:], result.other_ratios[:], result.control_drop[:] = _estimated(
            model, bat, alpha, method, cancel=cancel, progress=progress
        )
        sel = result.selectivity
        wanted = sorted(wanted, key=lambda h: -sel[h])[:n_check]
    if wanted:
        base, *edited = measure(
            model, bat, [None, *({h: alpha} for h in wanted)], cancel=cancel, progress=progress, desc="flipping heads"
        )
        for (layer, h), reading in zip(wanted, edited):
            e = effect_of(reading, base, bat.domains)
            result.mass_ratio[layer, h], result.control_drop[layer, h] = e.mass_ratio, e.control_drop
            result.other_ratios[:, layer, h] = e.other_ratios
            result.exact[layer, h] = True
    return result


def _estimated(model, bat: Battery, alpha: float, method: str, *, cancel, progress):
    """Every head's estimate by a screening method (attribute() or _at_answer()), read from disk when this
    battery was screened that way before (judging/kept.py)."""
    path = kept.entry_path(model.fingerprint, model.module, method, dataclasses.asdict(bat), alpha)
    found = kept.load_arrays(path, f"kept {method} estimates")
    if found is None:
        screen = attribute if method == "attribution" else _at_answer
        found = dict(zip(_ESTIMATES, screen(model, bat, alpha, cancel=cancel, progress=progress)))
        if path is not None:
            kept.store_arrays(path, found)
    return tuple(found[name] for name in _ESTIMATES)


def _at_answer(model, bat: Battery, alpha: float, *, cancel, progress):
    """answer_flips() as attribute()'s arrays: mass ratio (L, H), other ratios (n_others, L, H), control drop (L, H)."""
    base, *edited = answer_flips(model, bat, alpha, cancel=cancel, progress=progress)
    found = [effect_of(r, base, bat.domains) for r in edited]
    shape = (model.n_layers, model.n_heads)
    others = np.array([e.other_ratios for e in found]).T.reshape(len(bat.others), *shape)
    return (
        np.array([e.mass_ratio for e in found]).reshape(shape),
        others,
        np.array([e.control_drop for e in found]).reshape(shape),
    )


def attribute(model, bat: Battery, alpha: float, *, batch_size: int = 16, cancel=None, progress: Progress = False):
    """First-order estimates for every head from one forward and one backward pass per batch: (mass ratio
    (L, H), other ratios (n_others, L, H), control drop (L, H)). Per prompt, d(metric)/d(head input) .
    (alpha - 1) * head input, summed over positions, where the metric is the log of the prompt's category
    mass (a control prompt: its answer's log-probability); a category's ratio is then
    sum_i mass_i exp(estimate_i) / sum_i mass_i over its prompts."""
    cats = (bat.concept, *bat.others)
    rows: list[tuple[int, object]] = [
        (c, torch.as_tensor(cat.token_ids)) for c, cat in enumerate(cats) for _ in cat.prompts
    ]
    rows += [(-1, torch.as_tensor([a])) for a in answer_ids(model.tokenizer, bat.control)]
    prompts = bat.prompts
    L, H, hd = model.n_layers, model.n_heads, model.head_dim
    est = torch.zeros(len(prompts), L, H, dtype=torch.float64)
    base = torch.zeros(len(prompts), dtype=torch.float64)
    projs = model.adapter.out_projs
    with (
        model.lock,
        hooks_removed([]) as handles,
        progress_bar(progress, total=-(-len(prompts) // batch_size), desc="attribution") as bar,
    ):
        for start in range(0, len(prompts), batch_size):
            check_cancel(cancel)
            inputs = encode(model, prompts[start : start + batch_size], positions="last", padding_side="left").inputs
            opened: list = [None] * L  # per layer: (out_proj input, zero tensor added to it that requires grad)
            for layer in range(L):
                handles.append(projs[layer].register_forward_pre_hook(_opened(opened, layer)))
            with torch.enable_grad():
                position_ids = (inputs["attention_mask"].cumsum(1) - 1).clamp_min(0)
                out = model.forward(**inputs, position_ids=position_ids, logits_to_keep=1, use_cache=False)
                lp = out.logits[:, -1].float().log_softmax(-1)
                batch_rows = rows[start : start + len(lp)]
                metric = torch.stack([lp[i, ids].logsumexp(0) for i, (_, ids) in enumerate(batch_rows)])
                grads = torch.autograd.grad(metric.sum(), [d for _, d in opened])
            while handles:
                handles.pop().remove()
            for layer, ((z, _), g) in enumerate(zip(opened, grads)):
                prod = (z.float() * g.float()).reshape(z.shape[0], z.shape[1], H, hd).sum((1, 3))
                est[start : start + len(lp), layer] = (alpha - 1.0) * prod.double().cpu()
            base[start : start + len(lp)] = metric.detach().double().cpu()
            bar.update(1)
    kinds = torch.as_tensor([k for k, _ in rows])
    ratios = []
    for c in range(len(cats)):
        sel = kinds == c
        mass = base[sel].exp()
        ratios.append(
            ((mass[:, None, None] * est[sel].clamp(-50, 50).exp()).sum(0) / mass.sum().clamp_min(1e-30)).numpy()
        )
    drop = (-est[kinds == -1].mean(0)).numpy()
    return ratios[0], np.stack(ratios[1:]) if len(ratios) > 1 else np.ones((0, L, H)), drop


def _opened(opened: list, layer: int):
    """A pre-hook on layer's output projection that adds a zero tensor requiring grad to its input and keeps
    (input, that tensor) in opened[layer]: the tensor's gradient is the gradient of the heads' inputs."""

    def hook(module, args):
        delta = torch.zeros_like(args[0], requires_grad=True)
        opened[layer] = (args[0].detach(), delta)
        return (args[0] + delta,) + tuple(args[1:])

    return hook
