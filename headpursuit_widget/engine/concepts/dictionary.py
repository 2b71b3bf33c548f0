"""Concept dictionaries: which unembedding rows stand for a list of words.

Default rule "whole_word": each word contributes the variants word, " word", Word, " Word" that
the tokenizer keeps as ONE token; a word with no such variant is reported in `split_words` and left
out (docs/method.md, "Defaults and why": first- or all-sub-token rules pull in fragments such as "p", " be").
The other rules, "first_subtoken" and "all_subtokens", keep the first / every piece of each variant.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import HeadPursuitError, shorten
from ..models.adapters import norm_gain

RULES = ("whole_word", "first_subtoken", "all_subtokens")


def variants(word: str) -> list[str]:
    """The surface forms a word takes in running text: word, " word", Word, " Word" (deduplicated)."""
    cap = word[:1].upper() + word[1:]
    out = []
    for v in (word, " " + word, cap, " " + cap):
        if v not in out:
            out.append(v)
    return out


def word_token_ids(tokenizer, word: str, rule: str) -> list[int]:
    """Dictionary token ids one word contributes under `rule` (unique, first-seen order)."""
    ids: list[int] = []
    for v in variants(word):
        pieces = tokenizer.encode(v, add_special_tokens=False)
        if rule == "whole_word":
            ids += pieces if len(pieces) == 1 else []
        elif rule == "first_subtoken":
            ids += pieces[:1]
        else:
            ids += pieces
    return list(dict.fromkeys(ids))


@dataclass
class Concept:
    """A named word list and, once tokenised, its dictionary token ids.

    mapping: word -> token ids it contributed. split_words: word -> pieces of " word" for words the
    rule left out. token_ids: unique ids in first-seen order (the dictionary rows).
    """

    name: str
    words: tuple[str, ...]
    rule: str = "whole_word"
    mapping: dict = field(default_factory=dict)
    split_words: dict = field(default_factory=dict)
    token_ids: tuple[int, ...] = ()
    token_strings: tuple[str, ...] = ()

    @classmethod
    def from_words(cls, name: str, words, tokenizer, rule: str = "whole_word") -> Concept:
        """Tokenise a word list. Raises when nothing of it is in the vocabulary; warns about left-out words."""
        words = clean_words(words, name)
        if rule not in RULES:
            raise HeadPursuitError(f"unknown sub-token rule {rule!r}; accepted: {', '.join(RULES)}")
        mapping, split = {}, {}
        for word in words:
            ids = word_token_ids(tokenizer, word, rule)
            if ids:
                mapping[word] = tuple(ids)
            else:
                pieces = tokenizer.encode(" " + word, add_special_tokens=False)
                split[word] = [tokenizer.decode([p]) for p in pieces]
        if not mapping:
            raise HeadPursuitError(
                f"concept {shorten(repr(name))}: none of its words is a single token in this vocabulary "
                f"({', '.join(f'{shorten(repr(w))} -> {shorten(p)}' for w, p in list(split.items())[:10])}); "
                f"try rule='first_subtoken' or 'all_subtokens', or other words"
            )
        if split:
            warnings.warn(
                f"concept {shorten(repr(name))}: {len(split)} word(s) split into several tokens and were left out "
                f"(rule={rule!r}): {', '.join(shorten(w) for w in sorted(split)[:20])}",
                stacklevel=2,
            )
        token_ids = tuple(dict.fromkeys(i for group in mapping.values() for i in group))
        strings = tuple(tokenizer.decode([i]) for i in token_ids)
        return cls(
            name=name,
            words=tuple(words),
            rule=rule,
            mapping=mapping,
            split_words=split,
            token_ids=token_ids,
            token_strings=strings,
        )

    @classmethod
    def from_file(cls, path, tokenizer, rule: str = "whole_word", name: str | None = None) -> Concept:
        """One word per line; blank lines and lines starting with # are skipped. `path` is an explicit
        Python argument (str or pathlib.Path): nothing else in the engine reads word files."""
        path = Path(path)
        try:
            lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        except FileNotFoundError:
            raise HeadPursuitError(f"word file not found: {shorten(path)}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise HeadPursuitError(f"cannot read word file {shorten(path)}: {shorten(exc, 120)}") from None
        return cls.from_words(name or path.stem, [ln for ln in lines if ln and not ln.startswith("#")], tokenizer, rule)

    @property
    def missing_words(self) -> tuple[str, ...]:
        return tuple(self.split_words)

    def __len__(self) -> int:
        return len(self.token_ids)


def clean_words(words, name: str) -> list[str]:
    """Strip, drop blanks and duplicates; raise on an empty list or non-strings."""
    if isinstance(words, str):
        raise HeadPursuitError(f"concept {shorten(repr(name))}: pass a list of words, not one string")
    words = list(words or [])
    bad = [w for w in words if not isinstance(w, str)]
    if bad:
        raise HeadPursuitError(f"concept {shorten(repr(name))}: words must be strings, got {shorten(repr(bad[:5]))}")
    words = list(dict.fromkeys(w.strip() for w in words if w.strip()))
    if not words:
        raise HeadPursuitError(f"concept {shorten(repr(name))} is empty: give at least one word")
    return words


def dictionary_rows(adapter, token_ids, normalize: bool, fold_norm: bool) -> torch.Tensor:
    """Unembedding rows for token_ids, float32 (m, d_model): optionally times the final norm's gain
    (what the logits actually see) and L2-normalised (atoms of equal length, the usual OMP setting)."""
    ids = torch.as_tensor(list(token_ids), dtype=torch.long, device=adapter.unembedding.device)
    rows = adapter.unembedding.detach()[ids].float()
    if fold_norm and adapter.final_norm is not None:
        rows = rows * norm_gain(adapter.final_norm, adapter.d_model).to(rows.device)
    if normalize:
        rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return rows
