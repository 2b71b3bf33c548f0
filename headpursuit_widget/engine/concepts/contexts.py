"""Eliciting contexts built from a concept's name and words: prompts whose next token is a concept word.

Heads are ranked where the concept is about to be produced (head writes at the last position of
these contexts, positions="last"). The format is question answering whose examples come from OTHER
categories, so that no concept word appears in the context, e.g.

    Q: Name a fruit.
    A: apple
    Q: Give an example of a metal.
    A: iron
    Q: Name a colour.
    A:

Why no concept word in the context: with the concept's own words as examples ("Name another
colour"), heads that copy earlier words of the context write the concept's directions for ANY word
list, and a list of plain unrelated nouns got as many significant heads as colours (docs/verification.md).
The category word is the concept's name made singular ("countries" -> "country"); a name that is not a
plain word ("my_list2"), or the name "custom" a bare word list gets, becomes "word like <example>", the
only concept word in such a context. Rank
and verify contexts ask with different phrasings (`part`), so verification never measures on the
contexts that were ranked on.
"""

from __future__ import annotations

import random
import re

from ..errors import HeadPursuitError
from .dictionary import Concept

N_CONTEXTS = 32
UNNAMED = "custom"  # the name a bare word list gets: no category to ask for
PARTS = ("rank", "verify")
# each part asks with its own phrasings, so the two parts never share a context
ASK = {
    "rank": ("Name {a} {c}.", "Give an example of {a} {c}.", "Tell me {a} {c}."),
    "verify": ("Name one {c}.", "Say {a} {c}.", "Pick {a} {c}."),
}
# (category, answer) pairs that demonstrate the format; those of the concept's category or words are left out
SHOTS = (
    ("fruit", "apple"),
    ("planet", "Mars"),
    ("metal", "iron"),
    ("day of the week", "Monday"),
    ("musical instrument", "piano"),
    ("sport", "tennis"),
    ("city", "Paris"),
    ("vegetable", "carrot"),
    ("tool", "hammer"),
    ("language", "Spanish"),
    ("month", "July"),
    ("drink", "coffee"),
    ("flower", "rose"),
    ("vehicle", "bicycle"),
    ("body part", "hand"),
    ("season", "winter"),
)


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


def _ask(rng: random.Random, part: str, category: str) -> str:
    return rng.choice(ASK[part]).format(a=_article(category), c=category)


def eliciting_contexts(name: str, words, *, part: str = "rank", n: int = N_CONTEXTS, seed: int = 0) -> list[str]:
    """n distinct prompts (fewer only if the shots run out) that ask for one `name` after 2-3 answered
    questions about other categories.

    words: the concept's words (at least 2; shots whose answer is one of them are left out).
    part: "rank" or "verify" (different phrasings of the last question, so the parts are disjoint).
    """
    if part not in PARTS:
        raise HeadPursuitError(f"part must be one of {PARTS}, got {part!r}")
    words = list(dict.fromkeys(words))
    if len(words) < 2:
        raise HeadPursuitError(f"eliciting contexts need at least 2 words for concept {name!r}, got {len(words)}")
    plain = name != UNNAMED and re.fullmatch(r"[A-Za-z]+( [A-Za-z]+)?", name.strip() or "")
    rng = random.Random(f"{seed}/{part}/{name}")
    category = singular(name) if plain else None
    taken = {w.strip().lower() for w in words}
    shots = [(c, w) for c, w in SHOTS if w.lower() not in taken and c != category]
    out: dict[str, None] = {}
    for _ in range(50 * n):  # distinct contexts; 16 shots x 2-3 places x 3 phrasings leave plenty
        if len(out) == n:
            break
        cat = category or f"word like {rng.choice(words)}"
        demo = "".join(
            f"Q: {_ask(rng, part, c)}\nA: {w}\n" for c, w in rng.sample(shots, min(len(shots), rng.choice((2, 3))))
        )
        out[demo + f"Q: {_ask(rng, part, cat)}\nA:"] = None
    return list(out)


def concept_contexts(concept: Concept, *, seed: int = 0) -> list[str]:
    """The eliciting contexts a tokenised concept is ranked on when no prompts are given (the "rank"
    part for `seed`): built from its name and the words the dictionary kept."""
    return eliciting_contexts(concept.name, list(concept.mapping) or list(concept.words), part="rank", seed=seed)
