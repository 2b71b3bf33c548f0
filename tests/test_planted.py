"""The planted positive control (issue 17): on a tiny model whose colour head P and generic answer head G
were set by hand (tests/planted.py), the pipeline must find P first, judge it "specific" and G "generic".

This is the proof that the verdict CAN say "specific" when it is true: on the default model it had
never said it. docs/effects.md carries the power curve (benchmarks/bench_planted.py)."""

from __future__ import annotations

import pytest
from planted import planted_model

import headpursuit_widget as hp


@pytest.fixture(scope="module")
def planted(tokenizer):
    return planted_model(tokenizer, strength=1.0, seed=0)


@pytest.fixture(scope="module")
def ranking(planted):
    m, _ = planted
    return hp.rank_heads(m, None, "colours", progress=False)


@pytest.mark.parametrize("method", ["exact", "answer", "attribution"])
def test_effects_put_the_planted_head_first_and_mark_the_generic_one(planted, method):
    m, info = planted
    e = hp.effects(m, "colours", method=method, progress=False)
    assert e.top(1) == [info["concept"]]
    assert e.generic[info["generic"]] and not e.generic[info["concept"]]
    assert e.mass_ratio[info["concept"]] < 0.2 and e.others_median[info["concept"]] >= 0.9
    assert e.exact[info["concept"]]  # the screens re-measure their best candidates with full edits


def test_the_default_selection_recommends_the_planted_head_first(planted, ranking):
    _, info = planted
    assert ranking.recommended[:1] == (info["concept"],)
    assert ranking.top(1) == [info["concept"]]
    assert info["generic"] not in ranking.recommended
    assert ranking.effects.generic[info["generic"]]


def test_verify_says_specific_for_the_planted_head_and_generic_for_the_answer_head(planted, ranking):
    m, info = planted
    v = hp.verify(m, ranking, edits={info["concept"]: -1.0})
    assert v.verdict == "specific", v.summary()
    assert v.mass_ratio <= 0.35 and v.others_median >= 0.8 and v.random_median >= 0.7
    g = hp.verify(m, ranking, edits={info["generic"]: -1.0})
    assert g.verdict == "generic", g.summary()
    both = hp.verify(m, ranking, edits={info["concept"]: -1.0, info["generic"]: -1.0})
    assert both.verdict == "generic"  # adding an answer head makes the set generic, whatever P does


def test_without_the_plant_nothing_is_specific(tokenizer):
    m, info = planted_model(tokenizer, strength=0.0, seed=0)
    r = hp.rank_heads(m, None, "colours", progress=False)
    v = hp.verify(m, r, edits={info["concept"]: -1.0})
    assert v.verdict != "specific", v.summary()
