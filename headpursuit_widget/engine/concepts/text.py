"""Concept text typed by a user (a widget box, a form): a shipped name or a word list, never a file."""

from __future__ import annotations

import re

from ..errors import HeadPursuitError
from . import shipped as shipped_concepts


def concept_from_text(text, *, shipped_names=None) -> str | list[str]:
    """A shipped concept name (returned as is; `shipped_names` defaults to the shipped concepts) or the
    words of `text` split at commas, semicolons or newlines (at whitespace when it has none of those).
    A list or tuple is kept as its non-blank words.

    Pure string work: the filesystem is never touched, so typed text cannot name a file to read.
    """
    if shipped_names is None:
        shipped_names = shipped_concepts.names()
    if isinstance(text, (list, tuple)):
        words = [str(w).strip() for w in text if str(w).strip()]
    elif isinstance(text, str):
        text = text.strip()
        if text in shipped_names:
            return text
        sep = r"[,;\n]" if re.search(r"[,;\n]", text) else r"\s+"
        words = [w.strip() for w in re.split(sep, text) if w.strip()]
    else:
        raise HeadPursuitError(f"concept text must be a str or a list of words, got {type(text).__name__}")
    if not words:
        raise HeadPursuitError(
            f"empty concept: type a shipped concept ({', '.join(shipped_names)}) or words separated by commas"
        )
    return words
