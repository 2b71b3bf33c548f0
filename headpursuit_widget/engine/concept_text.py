"""Concept text typed by a user (a widget box, a form): a shipped name or a word list, never a file."""

from __future__ import annotations

import re

from .errors import HeadPursuitError


def parse_concept_text(text: str, *, shipped_names=None) -> str | list[str]:
    """A shipped concept name (returned as is; `shipped_names` defaults to the shipped concepts) or the
    words of `text` split at commas, semicolons or newlines (at whitespace when it has none of those).

    Pure string work: the filesystem is never touched, so typed text cannot name a file to read.
    """
    if not isinstance(text, str):
        raise HeadPursuitError(f"concept text must be a str, got {type(text).__name__}")
    if shipped_names is None:
        from .. import concepts

        shipped_names = concepts.names()
    text = text.strip()
    if text in shipped_names:
        return text
    sep = r"[,;\n]" if re.search(r"[,;\n]", text) else r"\s+"
    words = [w.strip() for w in re.split(sep, text) if w.strip()]
    if not words:
        raise HeadPursuitError(
            f"empty concept: type a shipped concept ({', '.join(shipped_names)}) or words separated by commas"
        )
    return words
