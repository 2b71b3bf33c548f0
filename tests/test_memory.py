"""Ranking memory: a concept too large for the memory available is refused before SOMP allocates."""

import pytest

import headpursuit_widget as hp
from headpursuit_widget.engine import memory
from headpursuit_widget.engine.concepts.null_words import random_words
from headpursuit_widget.engine.ranking import pursuit

PROMPTS = ["The car was painted", "She wore a dress", "The flag has stripes", "A small house"]


def test_giant_word_list_gets_a_clear_error_before_somp(tiny, monkeypatch):
    words = random_words(tiny.tokenizer)[:800]
    acts = hp.capture(tiny, PROMPTS, progress=False)
    ran = []
    monkeypatch.setattr(pursuit, "_somp_rows", lambda *args: ran.append(1))
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 256 << 10)
    with pytest.raises(hp.HeadPursuitError, match=r"SOMP of 8 signal sets .* atoms needs about .* GiB .* fewer words"):
        hp.rank_heads(tiny, PROMPTS, words, n_null=2, activations=acts, progress=False)
    assert ran == []
