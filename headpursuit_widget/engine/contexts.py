"""Eliciting contexts built from a concept's name and words: prompts whose next token is a concept word.

Heads are ranked where the concept is about to be produced (head writes at the last position of
these contexts, positions="last"). The format is few-shot question answering, chosen on held-out
dev questions (docs/verification.md): a few example words, then the question again, e.g.

    Q: Name a colour.
    A: red
    Q: Name another colour.
    A: green
    Q: Name another colour.
    A:

The category word is the concept's name made singular ("countries" -> "country"); a name that is
not a plain word ("my_list2") becomes "word like <example>". Rank and verification contexts come from
different seeds (`part`), so verification never measures on the contexts that were ranked on.
"""

from __future__ import annotations

import random
import re

from .errors import HeadPursuitError

N_CONTEXTS = 32
SHOTS = 3
PARTS = ("rank", "verify")


def singular(name: str) -> str:
    """A crude English singular of a plural category name: "countries" -> "country", "colours" -> "colour"."""
    word = name.strip().lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def eliciting_contexts(name: str, words, *, part: str = "rank", n: int = N_CONTEXTS, seed: int = 0) -> list[str]:
    """n few-shot prompts that ask for one more `name` after SHOTS example words.

    words: the concept's words (at least 2). part: "rank" or "verify" (disjoint draws for the same seed).
    """
    if part not in PARTS:
        raise HeadPursuitError(f"part must be one of {PARTS}, got {part!r}")
    words = list(dict.fromkeys(words))
    if len(words) < 2:
        raise HeadPursuitError(f"eliciting contexts need at least 2 words for concept {name!r}, got {len(words)}")
    plain = re.fullmatch(r"[A-Za-z]+( [A-Za-z]+)?", name.strip() or "")
    rng = random.Random(f"{seed}/{part}/{name}")
    shots = min(SHOTS, len(words) - 1)
    out = []
    for _ in range(n):
        examples = rng.sample(words, shots + 1)
        cat = singular(name) if plain else f"word like {examples[-1]}"
        lines = [f"Q: Name {_article(cat)} {cat}.\nA: {examples[0]}"]
        lines += [f"Q: Name another {cat}.\nA: {w}" for w in examples[1:shots]]
        out.append("\n".join(lines) + f"\nQ: Name another {cat}.\nA:")
    return out
