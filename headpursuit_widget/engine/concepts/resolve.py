"""What a user passes as a concept, turned into a tokenised Concept and the plain record rankings keep."""

from __future__ import annotations

import os

from ..errors import HeadPursuitError, shorten
from . import shipped as shipped_concepts
from .contexts import UNNAMED
from .dictionary import Concept


def resolve_concept(concept, tokenizer, rule: str = "whole_word"):
    """(tokenised Concept, shipped ConceptSpec or None) from a shipped name (str), a word file
    (pathlib.Path or other os.PathLike), a word list, a Concept or a ConceptSpec.

    A plain str is never read as a path: a string that is not a shipped name is an error, so text
    typed by a user cannot make the engine read a file."""
    spec = None
    if isinstance(concept, os.PathLike):
        return Concept.from_file(concept, tokenizer, rule), None
    if isinstance(concept, str):
        if concept not in shipped_concepts.names():
            raise HeadPursuitError(
                f"unknown concept {shorten(repr(concept))}: shipped concepts are "
                f"{', '.join(shipped_concepts.names())}; or pass a word list, a Concept, or a word file "
                "as pathlib.Path (a str is never read as a file)"
            )
        spec = shipped_concepts.get(concept)
    elif isinstance(concept, shipped_concepts.ConceptSpec):
        spec = concept
    if spec is not None:
        return Concept.from_words(spec.name, spec.words, tokenizer, rule), spec
    if isinstance(concept, Concept):
        if concept.token_ids and concept.rule == rule:
            return concept, None
        return Concept.from_words(concept.name, concept.words, tokenizer, rule), None
    return Concept.from_words(UNNAMED, concept, tokenizer, rule), None


def concept_record(con: Concept, spec=None) -> dict:
    """The JSON-able record of a tokenised concept that rankings and effects keep (HeadRanking.concept)."""
    return {
        "name": con.name,
        "words": list(con.words),
        "token_ids": list(con.token_ids),
        "token_strings": list(con.token_strings),
        "rule": con.rule,
        "split_words": con.split_words,
        "shipped": spec is not None,
    }


def words_of(concept: dict) -> list[str]:
    """A concept record's words that made it into the dictionary (all words if none is recorded)."""
    split = set(concept.get("split_words") or ())
    return [w for w in concept["words"] if w not in split] or list(concept["words"])
