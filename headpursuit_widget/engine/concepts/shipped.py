"""Shipped concepts: word lists plus ranking, probe, evaluation and neutral prompt sets.

Each concept is a JSON file ``data/<name>.json`` next to this module; ``names()`` lists them,
``get(name)`` loads one as a frozen :class:`ConceptSpec`, and ``control()`` returns the
factual control task (prompts whose right answer is one token for the default model), drawn from
several domains (``control_domains()``) none of whose answers is a word of a shipped concept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ..errors import HeadPursuitError

__all__ = ["ConceptSpec", "control", "control_domains", "get", "names"]

_PROMPT_FIELDS = ("rank_prompts", "eval_prompts", "probe_prompts", "neutral_prompts")
_OPTIONAL_FIELDS = ("sentence_prompts",)


@dataclass(frozen=True)
class ConceptSpec:
    """A shipped concept.

    words: the concept's words (dictionary source); rank_prompts: generic text used to rank
    heads; probe_prompts: held-out prompts whose next token should be a concept word;
    eval_prompts: held-out prompts for generation that invite the concept;
    neutral_prompts: prompts that do not mention it (for enhancement);
    sentence_prompts: held-out fill-in sentences and list continuations whose next token should be a
    concept word (a third question format for verify; () where a concept has none).
    Ranking prompts never overlap the held-out ones.
    """

    name: str
    description: str
    words: tuple[str, ...]
    rank_prompts: tuple[str, ...]
    eval_prompts: tuple[str, ...]
    probe_prompts: tuple[str, ...]
    neutral_prompts: tuple[str, ...]
    sentence_prompts: tuple[str, ...] = ()


def _data():
    return resources.files(__package__).joinpath("data")


def names() -> list[str]:
    """Sorted names of the shipped concepts."""
    return sorted(p.name[:-5] for p in _data().iterdir() if p.name.endswith(".json") and not p.name.startswith("_"))


def _read(filename: str):
    return json.loads(_data().joinpath(filename).read_text(encoding="utf-8"))


@cache
def get(name: str) -> ConceptSpec:
    """Load the shipped concept ``name``; HeadPursuitError lists the available names if unknown."""
    available = names()
    if not isinstance(name, str) or name not in available:
        raise HeadPursuitError(f"unknown concept {name!r}; shipped concepts: {', '.join(available)}")
    raw = _read(f"{name}.json")
    expected = {"name", "description", "words", *_PROMPT_FIELDS}
    if not expected <= set(raw) <= expected | set(_OPTIONAL_FIELDS):
        raise HeadPursuitError(
            f"concept file {name}.json: fields {sorted(raw)}; expected {sorted(expected)}, optionally "
            f"{list(_OPTIONAL_FIELDS)}"
        )
    spec = ConceptSpec(
        name=raw["name"],
        description=raw["description"],
        words=tuple(raw["words"]),
        **{f: tuple(raw[f]) for f in _PROMPT_FIELDS + _OPTIONAL_FIELDS if f in raw},
    )
    _validate(spec, name)
    return spec


def _validate(spec: ConceptSpec, name: str) -> None:
    if spec.name != name:
        raise HeadPursuitError(f"concept file {name}.json names itself {spec.name!r}")
    present = [f for f in _OPTIONAL_FIELDS if getattr(spec, f)]
    for field in ("words", *_PROMPT_FIELDS, *present):
        values = getattr(spec, field)
        if not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise HeadPursuitError(f"concept {name!r}: {field} must be a non-empty list of strings")
        if len(set(values)) != len(values):
            raise HeadPursuitError(f"concept {name!r}: duplicate entries in {field}")
    leaked = set(spec.rank_prompts) & set(spec.probe_prompts + spec.eval_prompts + spec.sentence_prompts)
    if leaked:
        raise HeadPursuitError(f"concept {name!r}: ranking prompts reused as held-out prompts: {sorted(leaked)}")


@cache
def _control_facts() -> tuple[tuple[str, str, str], ...]:
    """(prompt, answer, domain) of every control fact, domain by domain."""
    domains = _read("_control.json")["domains"]
    return tuple((p, a, domain) for domain, pairs in domains.items() for p, a in pairs)


def control() -> list[tuple[str, str]]:
    """Factual control task: [(prompt, answer)]; each answer is one SmolLM2 token."""
    return [(p, a) for p, a, _ in _control_facts()]


def control_domains() -> dict[tuple[str, str], str]:
    """The domain ("opposites", "science", ...) of each control (prompt, answer) pair."""
    return {(p, a): domain for p, a, domain in _control_facts()}
