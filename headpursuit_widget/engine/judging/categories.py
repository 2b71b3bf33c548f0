"""What an edit is judged on: the concept's answers, other categories' answers asked the same way, the control.

A concept head cuts its own category's answers while other categories' answers stay. So every causal
measure of this package (effects, selection, verify) reads one Battery: the concept's prompts, a few
OTHER categories' eliciting contexts (engine/concepts/contexts.py: "Q: Name a country.\\nA:" for countries,
in the same format as the concept's), and the control facts with their domains.
Each category's mass is the next-token probability of its own tokens; tokens it shares with the
concept are left out of it, and a category that shares most of its tokens with the concept is not
used. The control never holds a fact whose answer is a token of any of these categories.

The control: the shipped control facts (hp.concepts.control(), several domains: opposites, science,
literature, units, ...) restricted to the facts this model gets right (its top next token is the
answer's first token), kept per model (in memory, and on disk: judging/kept.py); the even-numbered facts
are the "refine" half (selection), the odd-numbered ones the "verify" half. A model that knows fewer than
MIN_KNOWN of them (a small or random model) is measured on all of them: the drop in the answers'
log-probability still measures collateral damage.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ..concepts import shipped as shipped_concepts
from ..concepts.contexts import UNNAMED, eliciting_contexts
from ..concepts.dictionary import Concept
from ..errors import HeadPursuitError, check_cancel
from ..progress import Progress
from ..progress import bar as progress_bar
from . import kept
from .probes import answer_ids, facts_known, next_token_logprobs_each, passes

OTHER_CATEGORIES = ("colours", "countries", "animals", "numbers", "food")  # asked as "Name a <category>."
N_OTHER = {"rank": 6, "verify": 8}  # eliciting contexts per other category, per part
N_CONTROL = {"rank": 18, "verify": None}  # control facts per part (rank: 2 of each of 9 domains; verify: all)
MAX_SHARED = 0.5  # a category sharing more than this fraction of its tokens with the concept is not an "other"


@dataclass(frozen=True)
class Category:
    """One category's prompts and the token ids whose next-token probability is its mass."""

    name: str
    prompts: tuple[str, ...]
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class Battery:
    """The concept, the other categories and the control facts (with each fact's domain); formats: the
    concept asked in other question formats (same token ids), measured beside its own prompts."""

    concept: Category
    others: tuple[Category, ...]
    control: tuple[tuple[str, str], ...]
    domains: tuple[str, ...]
    formats: tuple[Category, ...] = ()

    @property
    def other_names(self) -> list[str]:
        return [c.name for c in self.others]

    @property
    def prompts(self) -> list[str]:
        """Every prompt, category by category (the concept, its formats, the others), then the control's."""
        cats = (self.concept, *self.formats, *self.others)
        return [p for c in cats for p in c.prompts] + [p for p, _ in self.control]


@dataclass(frozen=True)
class Reading:
    """One edit set's measures: the concept's mean mass, each other category's (n_others,), the control
    answers' log-probabilities (n_control,) in nats, and the concept's mean mass in each format (n_formats,)."""

    mass: float
    other_masses: np.ndarray
    control: np.ndarray
    format_masses: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class Effect:
    """An edit set against the unedited model: mass ratios (edited / unedited mean mass), control drop (nats);
    format_ratios: the concept's ratio in each of the battery's formats (n_formats,)."""

    mass_ratio: float
    other_ratios: np.ndarray
    control_drop: float
    domain_drops: dict
    format_ratios: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def others_median(self) -> float:
        """The other categories' median ratio (lower_median; 1 with none)."""
        return float(lower_median(self.other_ratios)) if len(self.other_ratios) else 1.0

    @property
    def selectivity(self) -> float:
        return float(selectivity(self.mass_ratio, self.other_ratios))


def lower_median(values, axis: int = 0):
    """The median along `axis`, taking the lower of the two middle values for an even count: at least half
    of the values are <= it. So an answer head that cuts half of 4 other categories (food 0.18x, animals
    0.69x) while it raises another (numbers 1.51x) has a median of 0.69x, not 0.83x."""
    values = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    return np.take(values, (values.shape[axis] - 1) // 2, axis=axis)


def selectivity(mass_ratio, other_ratios):
    """Median over the other categories (axis 0 of other_ratios) of log(ratio), minus the concept's
    log(ratio): > 0 where an edit cuts the concept more than the others. Ratios are clipped at 1e-6."""
    log = np.log(np.clip(mass_ratio, 1e-6, None))
    if not len(other_ratios):
        return -log
    return np.median(np.log(np.clip(other_ratios, 1e-6, None)), axis=0) - log


def other_categories(tokenizer, concept_name: str, concept_ids, others=None, *, part: str, seed: int = 0):
    """The other categories to measure beside a concept: `others` (shipped names; default OTHER_CATEGORIES
    without the concept), each with N_OTHER[part] eliciting contexts of `part` and its tokens not shared with
    the concept; categories sharing more than MAX_SHARED of their tokens with the concept are dropped."""
    names = [n for n in OTHER_CATEGORIES if n != concept_name] if others is None else list(others)
    unknown = [n for n in names if n not in shipped_concepts.names()]
    if unknown:
        raise HeadPursuitError(
            f"unknown other categories {unknown}; accepted: shipped concepts {', '.join(shipped_concepts.names())}"
        )
    taken = {int(i) for i in concept_ids}
    out = []
    for name in dict.fromkeys(names):
        if name == concept_name:
            continue
        with warnings.catch_warnings():  # words a tokenizer splits: a fact of the shipped list, not the user's
            warnings.simplefilter("ignore")
            con = Concept.from_words(name, shipped_concepts.get(name).words, tokenizer)
        ids = [i for i in con.token_ids if i not in taken]
        if len(ids) < (1 - MAX_SHARED) * len(con.token_ids):
            continue
        words = list(con.mapping) or list(con.words)
        prompts = eliciting_contexts(name, words, part=part, seed=seed, n=N_OTHER[part])
        out.append(Category(name, tuple(prompts), tuple(ids)))
    return tuple(out)


def battery(
    model, concept: dict, prompts, *, part: str, others=None, control=None, formats=None, seed: int = 0, cancel=None
) -> Battery:
    """The Battery for `concept` (a ranking's concept dict: name, token_ids) measured on `prompts`, and on
    each of `formats` ({format name: prompts}) beside them.

    control: (prompt, answer) pairs (default: the `part` half of the shipped control this model knows:
    "rank" -> the refine half, "verify" -> the verify half), without facts answered by a measured category.
    """
    prompts = list(prompts)
    if not prompts:
        raise HeadPursuitError("the concept needs at least one probe prompt")
    name = concept["name"] if concept["name"] != UNNAMED else ""
    ids = [int(i) for i in concept["token_ids"]]
    cats = other_categories(model.tokenizer, name, ids, others, part=part, seed=seed)
    excluded = set(ids).union(*(c.token_ids for c in cats))
    if control is None:
        half = "refine" if part == "rank" else "verify"
        pairs = control_split(model, half=half, exclude_ids=excluded, n=N_CONTROL[part], cancel=cancel)
    else:
        pairs = list(control)
    if not pairs:
        raise HeadPursuitError("the control task is empty: give (prompt, answer) pairs")
    asked = tuple(Category(f, tuple(ps), tuple(ids)) for f, ps in (formats or {}).items())
    concept_cat = Category(concept["name"], tuple(prompts), tuple(ids))
    return Battery(concept_cat, cats, tuple(pairs), tuple(domains_of(pairs)), asked)


HALVES = ("refine", "verify")
MIN_KNOWN = 4
_KNOWN: dict = {}


def control_split(
    model, *, half: str, exclude_ids=(), n: int | None = None, cancel: threading.Event | None = None
) -> list[tuple[str, str]]:
    """The `half` ("refine" or "verify") of the control facts this model answers right, without the
    facts whose answer's first token is in `exclude_ids` (token ids of the categories being measured);
    the domains take turns (one fact of each, then the next of each, ...), and `n` keeps the first n."""
    if half not in HALVES:
        raise HeadPursuitError(f"half must be one of {HALVES}, got {half!r}")
    key = model.fingerprint
    if key not in _KNOWN:
        _KNOWN[key] = _known(model, shipped_concepts.control(), cancel)
    pairs = _KNOWN[key][HALVES.index(half) :: 2]
    excluded = {int(i) for i in exclude_ids}
    kept = [pair for pair, first in zip(pairs, answer_ids(model.tokenizer, pairs)) if first not in excluded]
    return interleaved(kept)[:n]


def _known(model, pairs, cancel) -> list[tuple[str, str]]:
    """The pairs this model answers right (all of them when it knows fewer than MIN_KNOWN), read from disk
    when measured before (judging/kept.py)."""
    local = model.module if model.backend == "hf" else None  # passes of this process's module are kept
    path = kept.entry_path(model.fingerprint, local, "control", pairs)
    found = kept.load_arrays(path, "kept control")
    if found is None:
        right = set(facts_known(model, pairs, cancel=cancel))
        found = {"known": np.array([pair in right for pair in pairs])}
        if path is not None:
            kept.store_arrays(path, found)
    known = [pair for pair, ok in zip(pairs, found["known"]) if ok]
    return known if len(known) >= MIN_KNOWN else list(pairs)


def interleaved(pairs) -> list[tuple[str, str]]:
    """The pairs with their domains taking turns, each domain's facts in their order."""
    by_domain: dict = {}
    for pair, domain in zip(pairs, domains_of(pairs)):
        by_domain.setdefault(domain, []).append(pair)
    rounds = max((len(v) for v in by_domain.values()), default=0)
    return [facts[i] for i in range(rounds) for facts in by_domain.values() if i < len(facts)]


def domains_of(pairs) -> list[str]:
    """The domain of each (prompt, answer) pair: its shipped control domain, "custom" for other pairs."""
    known = shipped_concepts.control_domains()
    return [known.get((p, a), "custom") for p, a in pairs]


def measure(
    model,
    bat: Battery,
    edit_sets,
    *,
    cancel: threading.Event | None = None,
    progress: Progress = False,
    desc: str = "measuring",
) -> list[Reading]:
    """A Reading per edit set (None: unedited). Edit sets measured before on this battery are read from
    disk (engine/judging/kept.py); the others take one pass over the battery's prompts each (and the unedited
    pass, whose recorded blocks the edited passes start from, when two or more are new). A set `cancel`
    raises engine.errors.Cancelled, even when everything is kept."""
    check_cancel(cancel)
    local = model.module if model.backend == "hf" else None  # passes of this process's module are kept
    path = kept.entry_path(model.fingerprint, local, "readings", dataclasses.asdict(bat))
    known = kept.load(path)
    keys = [kept.edit_key(model.adapter, e) for e in edit_sets]
    todo = {k: e for k, e in zip(keys, edit_sets) if k not in known}
    base = kept.edit_key(model.adapter, None)
    if len(todo) > 1 and base not in todo:
        todo = {base: None, **todo}
    if todo:
        found = dict(zip(todo, _measured(model, bat, list(todo.values()), cancel, progress, desc)))
        new = {k: dataclasses.asdict(r) for k, r in found.items()}
        known.update(new)
        if path is not None:
            kept.store(path, new)
    return [Reading(float(known[k]["mass"]), *(np.asarray(known[k][f]) for f in kept.FIELDS[1:])) for k in keys]


def _measured(model, bat: Battery, edit_sets, cancel, progress, desc) -> list[Reading]:
    """A Reading per edit set from one pass over the battery's prompts per set."""
    columns = reading_columns(model.tokenizer, bat)
    with progress_bar(progress, total=passes(bat.prompts, edit_sets), desc=desc) as bar:
        logprobs = next_token_logprobs_each(
            model, bat.prompts, edit_sets, cancel=cancel, on_pass=bar.update, columns=columns
        )
    return readings(model.tokenizer, bat, columns, logprobs)


def reading_columns(tokenizer, bat: Battery) -> list[int]:
    """The token ids a Reading reads (every category's and each control answer's), sorted."""
    cats = (bat.concept, *bat.formats, *bat.others)
    return sorted({i for c in cats for i in c.token_ids} | set(answer_ids(tokenizer, bat.control)))


def readings(tokenizer, bat: Battery, columns: list[int], logprobs) -> list[Reading]:
    """A Reading per tensor of `logprobs`, each (n_prompts, len(columns)): the next-token log-probabilities
    of `columns` (normalised over the whole vocabulary) after each of bat.prompts."""
    where = {tok: j for j, tok in enumerate(columns)}
    control_ids = answer_ids(tokenizer, bat.control)
    spans, start = [], 0
    for c in (bat.concept, *bat.formats, *bat.others):
        spans.append((start, start + len(c.prompts), torch.as_tensor([where[i] for i in c.token_ids])))
        start += len(c.prompts)
    ctrl_cols = torch.as_tensor([where[i] for i in control_ids])
    out = []
    for lp in logprobs:
        masses = [float(lp[a:b][:, cols].double().logsumexp(1).exp().mean()) for a, b, cols in spans]
        control = lp[start:][torch.arange(len(control_ids)), ctrl_cols].double().numpy()
        nf = 1 + len(bat.formats)
        out.append(Reading(masses[0], np.asarray(masses[nf:]), control, np.asarray(masses[1:nf])))
    return out


def effect_of(reading: Reading, base: Reading, domains) -> Effect:
    """The Effect of an edited Reading against the unedited one (domains: one per control fact)."""
    drops = base.control - reading.control
    by_domain: dict = {}
    for domain, drop in zip(domains, drops):
        by_domain.setdefault(domain, []).append(drop)
    return Effect(
        mass_ratio=ratio(reading.mass, base.mass),
        other_ratios=np.array([ratio(e, b) for e, b in zip(reading.other_masses, base.other_masses)]),
        control_drop=float(drops.mean()),
        domain_drops={d: float(np.mean(v)) for d, v in by_domain.items()},
        format_ratios=np.array([ratio(e, b) for e, b in zip(reading.format_masses, base.format_masses)]),
    )


def ratio(edited: float, base: float) -> float:
    """edited / base; 1.0 where the base mass is 0 (nothing to cut)."""
    return float(edited / base) if base > 0 else 1.0
