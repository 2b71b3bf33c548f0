"""The widget's validators: the engine's rules for each trait, reported as TraitError."""

from __future__ import annotations

from typing import Any

import traitlets as t

from ..engine import HeadPursuitError
from ..engine.concepts.dictionary import RULES
from ..engine.concepts.text import concept_from_text
from ..engine.editing.edits import parse_edits
from ..engine.editing.generation import check_max_new_tokens
from ..engine.heads import head_key, parse_head_key
from ..engine.ranking.scores import check_score


def _trait_error(what: str, exc: HeadPursuitError) -> t.TraitError:
    return t.TraitError(f"{what}: {exc}")


def _parsed_or_none(text: str):
    """``concept_from_text(text)``, or None for text that names no concept."""
    try:
        return concept_from_text(text)
    except HeadPursuitError:
        return None


class Validation(t.HasTraits):
    """Validators of HeadPursuit's traits against its model."""

    _model: Any
    concept: str
    images: list

    @t.validate("strengths")
    def _check_strengths(self, proposal):
        value = proposal["value"]
        try:
            for key in value:
                parse_head_key(key)  # the trait's keys are "layer.head" strings (JSON)
            parse_edits(self._model.adapter, value)
        except HeadPursuitError as exc:
            raise _trait_error("strengths", exc) from None
        return {head_key(*parse_head_key(key)): float(alpha) for key, alpha in value.items()}  # "01.02" -> "1.2"

    @t.validate("selected")
    def _check_selected(self, proposal):
        sel = list(proposal["value"])
        try:
            if sel and len(sel) != 2:
                raise HeadPursuitError(f"got {sel}")
            if sel:
                self._model.adapter.check_head(*sel)
        except HeadPursuitError as exc:
            raise _trait_error("selected must be [] or [layer, head]", exc) from None
        return sel

    @t.validate("score")
    def _check_score(self, proposal):
        try:
            return check_score(proposal["value"])
        except HeadPursuitError as exc:
            raise _trait_error("score", exc) from None

    @t.validate("compare")
    def _check_compare(self, proposal):
        text = proposal["value"].strip()
        if not text:
            return ""
        try:
            parsed = concept_from_text(text)
        except HeadPursuitError as exc:
            raise _trait_error("compare", exc) from None
        if parsed == _parsed_or_none(self.concept):
            raise t.TraitError(f"compare: {text!r} is the concept itself; type another concept, or '' to compare none")
        return text

    @t.validate("images")
    def _check_images(self, proposal):
        images = list(proposal["value"])
        if images and not getattr(self._model, "is_vlm", False):
            raise t.TraitError(
                f"images need a vision-language model with its processor; {self._model.name!r} is a text model"
            )
        return images

    @t.validate("sample_index")
    def _check_sample_index(self, proposal):
        i, n = proposal["value"], len(self.images)
        if not (0 <= i < n or i == n == 0):
            raise t.TraitError(f"sample_index must be from 0 to {max(n - 1, 0)} (one of the {n} images), got {i}")
        return i

    @t.validate("rule")
    def _check_rule(self, proposal):
        if proposal["value"] not in RULES:
            raise t.TraitError(f"rule: unknown sub-token rule {proposal['value']!r}; accepted: {', '.join(RULES)}")
        return proposal["value"]

    @t.validate("max_new_tokens")
    def _check_max_new_tokens(self, proposal):
        try:
            return check_max_new_tokens(proposal["value"])
        except HeadPursuitError as exc:
            raise _trait_error("max_new_tokens", exc) from None
