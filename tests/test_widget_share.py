"""The widget's first render (background ranking, opening prompt) and its export: copied code,
JSON setups and the static HTML snapshot (tiny random model; the real model where marked slow)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import headpursuit_widget as hp
from headpursuit_widget.widget import HeadPursuit
from headpursuit_widget.widget.session import Session
from headpursuit_widget.widget.snapshot import MARKER, snapshot_html

EDITS = {"1.0": -1.0, "0.2": 3.0, "1.3": 0.0}


@pytest.fixture(scope="module")
def tiny_model(make_tiny):
    return make_tiny("llama")


@pytest.fixture
def edited(tiny_model):
    """A ranked colours widget with three head edits, answers generated."""
    w = HeadPursuit(tiny_model, concept="colours", max_new_tokens=6, debounce=0.01)
    w.strengths = EDITS
    assert w.wait(60)
    yield w
    w.close()


def test_constructor_returns_while_ranking_runs_then_shows_the_baseline(tiny_model, monkeypatch):
    release, entered = threading.Event(), threading.Event()
    real = Session.rank

    def held(self, concept, **kw):
        entered.set()
        assert release.wait(30), "the test never released the ranking"
        return real(self, concept, **kw)

    monkeypatch.setattr(Session, "rank", held)
    w = HeadPursuit(tiny_model, concept="colours", max_new_tokens=4)
    try:
        assert entered.wait(30)  # ranking runs on the worker while the constructor has returned
        assert w.status == "ranking" and w.ranking is None and w.scores is None
        assert w.prompt == hp.concepts.get("colours").eval_prompts[0]
        with pytest.raises(hp.HeadPursuitError, match="still running"):
            w.edit_top()
        release.set()
        assert w.wait(60)
        assert w.status == "ready" and w.ranking is not None
        assert w.baseline_text == hp.generate(tiny_model, [w.prompt], max_new_tokens=4)[0] != ""
    finally:
        release.set()
        w.close()


def test_word_lists_open_on_a_prompt_that_names_the_words(tiny_model):
    w = HeadPursuit(tiny_model, concept="dog, cat, horse", max_new_tokens=2)
    try:
        assert w.prompt == "Write two sentences that use these words: dog, cat, horse."
        silent = HeadPursuit(tiny_model, concept="colours", prompt="")  # '' asks for no answer
        assert silent.prompt == "" and silent.wait(60) and silent.baseline_text == ""
        silent.close()
    finally:
        w.close()


def test_a_failed_first_ranking_shows_and_raises_on_use(tiny_model):
    w = HeadPursuit(tiny_model, concept="qwxzv, zzqqj", prompt="")
    try:
        assert w.wait(60)
        assert w.status == "error" and "ranking failed" in w.error and "qwxzv" in w.error
        with pytest.raises(hp.HeadPursuitError, match="ranking of 'qwxzv, zzqqj' failed"):
            w.ranking  # noqa: B018 - the property raises
        with pytest.raises(hp.HeadPursuitError, match="failed"):
            w.edit_top()
        w.concept = "colours"  # a good concept recovers
        assert w.wait(60)
        assert w.status == "ready" and w.ranking.top(1)
    finally:
        w.close()


def _run_copied(code: str) -> str:
    namespace: dict = {}
    exec(compile(code, "<copied>", "exec"), namespace)  # the copied code, run as a user would
    return namespace["answer"]


def test_copied_code_reproduces_the_edited_answer(edited, tiny_model, monkeypatch):
    loaded = []
    monkeypatch.setattr(hp, "load_model", lambda name: loaded.append(name) or tiny_model)
    code = edited.to_code()
    assert edited.code == code and "(1, 0): -1.0" in code and "max_new_tokens=6" in code
    assert _run_copied(code) == edited.edited_text
    assert loaded == [tiny_model.name]
    assert edited.edited_text != edited.baseline_text  # the edits matter, so the check has teeth
    edited.strengths = {}
    assert edited.wait(60)
    assert _run_copied(edited.code) == edited.edited_text == edited.baseline_text


@pytest.mark.slow
def test_copied_code_reproduces_the_edited_answer_on_the_real_model(smollm2):
    w = HeadPursuit(smollm2, concept="colours", max_new_tokens=12)
    try:
        assert w.wait(600)  # generous: the background selection shares the cores with this answer
        w.edit_top(k=4, alpha=-1.0)  # the top 4: their verdict is the one the quickstart kept
        assert w.wait(600)
        assert _run_copied(w.to_code()) == w.edited_text
    finally:
        w.close()


def test_json_setup_round_trip(edited, tiny_model):
    edited.selected, edited.score, edited.top_k = [1, 2], "evr", 3
    text = edited.to_json()
    setup = json.loads(text)
    assert setup["strengths"] == EDITS and setup["model"] == tiny_model.name and setup["concept"] == "colours"
    back = HeadPursuit.from_json(tiny_model, text, debounce=0.01)
    try:
        assert back.wait(60)
        for name in ("concept", "prompt", "strengths", "selected", "score", "top_k", "top_alpha", "max_new_tokens"):
            assert getattr(back, name) == getattr(edited, name), name
        np.testing.assert_allclose(back.scores, edited.scores)
        assert back.edited_text == edited.edited_text
    finally:
        back.close()


def test_from_json_rejects_what_is_not_a_setup(edited, tiny_model):
    with pytest.raises(hp.HeadPursuitError, match="invalid JSON"):
        HeadPursuit.from_json(tiny_model, "{not json")
    with pytest.raises(hp.HeadPursuitError, match="format"):
        HeadPursuit.from_json(tiny_model, json.dumps({"concept": "colours"}))
    setup = json.loads(edited.to_json())
    with pytest.raises(hp.HeadPursuitError, match="not for"):
        HeadPursuit.from_json(tiny_model, json.dumps({**setup, "model": "another-model"}))
    del setup["strengths"]
    with pytest.raises(hp.HeadPursuitError, match="lacks strengths"):
        HeadPursuit.from_json(tiny_model, json.dumps(setup))


def test_the_mimebundle_carries_a_static_snapshot(edited):
    data, _ = edited._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    html = data["text/html"]
    assert MARKER in html and "<script" not in html
    assert html.count("<rect") >= edited.n_layers * edited.n_heads
    r = edited.ranking
    layer, head = r.top(1)[0]
    assert f"L{layer}H{head}</b> tokens" in html  # no head selected: the top head's panel
    assert "L1H0 &times; -1" in html
    from html import escape

    assert escape(edited.edited_text) in html and escape(edited.prompt) in html
    assert "object at 0x" not in data["text/plain"]


def test_snapshot_escapes_every_text():
    evil = '<img src=x onerror="alert(1)">'
    html = snapshot_html(
        concept=evil,
        score_name="specificity",
        scores=np.array([[0.1, 0.9]]),
        significant=np.array([[False, True]]),
        head=(0, 1),
        tokens=[(evil, 0.5)],
        edits={(0, 1): -1.0},
        prompt=evil,
        baseline=evil,
        edited="</span>" + evil,
        status="ready",
        error=evil,
    )
    assert "<img" not in html and "</span><img" not in html
    assert html.count("&lt;img src=x") == 6
