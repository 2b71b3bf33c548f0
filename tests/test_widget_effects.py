"""What each head does, in the widget: the grid's "does" view (grid_view), the head panel's effect numbers,
"Edit top heads" on the selective set, the verdict on the applied edits, and the snapshot of both.

Real engine, no browser, on the planted model of tests/planted.py: its concept head P (colours) and its
generic answer head G are known by construction, so the widget must show P as the selective set and
judge it "specific", and mark G generic and judge it "generic"."""

from __future__ import annotations

import json

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers
from planted import CONCEPT, planted_model

import headpursuit_widget as hp
from headpursuit_widget.widget import HeadPursuit
from headpursuit_widget.widget.snapshot import snapshot_html


@pytest.fixture(scope="module")
def tiny_model(make_tiny):
    return make_tiny("llama")


@pytest.fixture(scope="module")
def planted(tokenizer):
    """(HeadModel, {"concept": P, "generic": G}) with P the colour head and G the generic answer head."""
    return planted_model(tokenizer, strength=1.0, seed=0)


@pytest.fixture(scope="module")
def selected(planted):
    """A widget whose selection ran in the background, and the engine's own selected ranking."""
    model, _ = planted
    w = HeadPursuit(model, concept=CONCEPT, prompt="", max_new_tokens=4, debounce=0.01, top_k=1)
    r = hp.rank_heads(model, None, CONCEPT, progress=False)  # refine=True: the selective set and effects
    assert w.wait(180)
    yield w, r
    w.close()


def test_does_view_carries_the_selections_effects_as_buffers(selected, planted):
    w, r = selected
    e, info = r.effects, planted[1]
    assert e is not None and w.effects_note == ""
    np.testing.assert_allclose(w.selectivity, e.selectivity, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(w.generic, e.generic)
    np.testing.assert_array_equal(w.exact, e.exact)
    # the planted truth: P is the most selective head, G is marked generic, P was measured by an edited pass
    assert np.unravel_index(np.argmax(w.selectivity), w.selectivity.shape) == info["concept"]
    assert w.generic[info["generic"]] and not w.generic[info["concept"]] and w.exact[info["concept"]]
    state, paths, buffers = _remove_buffers(w.get_state())
    for name, dtype in (("selectivity", np.float32), ("generic", np.uint8), ("exact", np.uint8)):
        assert [name, "buffer"] in paths
        assert state[name]["shape"] == [w.n_layers, w.n_heads]
        got = np.frombuffer(bytes(buffers[paths.index([name, "buffer"])]), dtype=dtype)
        np.testing.assert_allclose(got.reshape(w.n_layers, w.n_heads), getattr(w, name), rtol=1e-6)
    # the view is a choice of what to show, not of what is sent: switching it leaves the arrays alone
    w.grid_view = "does"
    np.testing.assert_allclose(w.selectivity, e.selectivity, rtol=1e-5, atol=1e-6)
    with pytest.raises(traitlets.TraitError, match="grid_view must be one of 'writes', 'does'"):
        w.grid_view = "reads"
    w.grid_view = "writes"


def test_panel_shows_the_heads_effect(selected, planted):
    w, r = selected
    for layer, head in [planted[1]["concept"], planted[1]["generic"], (0, 0)]:
        w.selected = [layer, head]
        want = r.effects.head(layer, head)
        got = w.head_effect
        assert (got["layer"], got["head"], got["concept"], got["alpha"]) == (layer, head, "colours", -1.0)
        assert got["concept_ratio"] == pytest.approx(want["concept"], rel=1e-5)
        assert [name for name, _ in got["others"]] == list(want["others"])
        assert dict(got["others"]) == pytest.approx(want["others"], rel=1e-5)
        assert got["control_drop"] == pytest.approx(want["control_drop"], rel=1e-5, abs=1e-6)
        assert got["selectivity"] == pytest.approx(want["selectivity"], rel=1e-5, abs=1e-6)
        assert (got["generic"], got["exact"]) == (want["generic"], want["exact"])
        json.dumps(got)  # plain JSON for the front end
    concept, generic = planted[1]["concept"], planted[1]["generic"]
    w.selected = list(concept)
    assert w.head_effect["concept_ratio"] < 0.1 and min(dict(w.head_effect["others"]).values()) > 0.8
    w.selected = list(generic)
    assert w.head_effect["generic"]
    w.selected = []
    assert w.head_effect == {}


def test_edit_top_applies_the_selective_set_and_the_verdict_follows(selected, planted):
    w, r = selected
    model, info = planted
    (layer, head) = info["concept"]
    assert r.recommended == (info["concept"],) and w.ranking.recommended == r.recommended
    assert w.verdict_on == "the top head of the selective set x-1" and w.verdict_label == "specific"
    w.edit_top()
    try:
        assert w.strengths == {f"{layer}.{head}": -1.0}
        assert w.top_note == f"Edited the top 1 heads of the selective set: L{layer}H{head} x-1"
        assert w.wait(120)
        assert w.verdict_on == f"the applied edits (L{layer}H{head} x-1)"
        expected = hp.verify(model, r, edits={info["concept"]: -1.0})
        assert w.verdict == expected.summary() and w.verdict_label == expected.verdict == "specific"
        # the user edits the answer head instead: the verdict line says generic
        w.strengths = {"{}.{}".format(*info["generic"]): -1.0}
        assert w.wait(120)
        assert w.verdict_label == "generic" and w.verdict.endswith(": generic")
    finally:
        w.clear_edits()
        assert w.wait(120)
    assert w.verdict_on == "the top head of the selective set x-1" and w.verdict_label == "specific"


def test_without_a_selection_the_view_says_why(tiny_model):
    w = HeadPursuit(tiny_model, concept="colours", prompt="", debounce=0.01, verify=False, grid_view="does")
    try:
        assert w.wait(60)
        assert w.grid_view == "does" and w.selectivity is None and w.head_effect == {}
        assert "verify=False" in w.effects_note
        # a ranking made by hp.rank_heads is already selected: its effects show at once, without a background run
        ranked = HeadPursuit(tiny_model, ranking=hp.rank_heads(tiny_model, None, "colours", progress=False))
        try:
            assert ranked.selectivity is not None and ranked.effects_note == ""
            assert ranked.wait(120)
        finally:
            ranked.close()
    finally:
        w.close()


def test_setup_keeps_the_grid_view(tiny_model):
    w = HeadPursuit(tiny_model, concept="colours", prompt="", debounce=0.01, verify=False, grid_view="does")
    try:
        setup = json.loads(w.to_json())
        assert setup["grid_view"] == "does"
        back = HeadPursuit.from_json(tiny_model, w.to_json(), debounce=0.01, verify=False)
        try:
            assert back.wait(60) and back.grid_view == "does"
        finally:
            back.close()
        del setup["grid_view"]  # a setup saved before the view existed opens on what heads write
        old = HeadPursuit.from_json(tiny_model, json.dumps(setup), debounce=0.01, verify=False)
        try:
            assert old.wait(60) and old.grid_view == "writes"
        finally:
            old.close()
    finally:
        w.close()


def test_snapshot_shows_what_heads_do(selected, planted):
    w, r = selected
    w.grid_view, w.selected = "does", list(planted[1]["concept"])
    try:
        html = w.snapshot()
        assert "What flipping each head does" in html
        assert html.count("<rect") >= w.n_layers * w.n_heads
        assert html.count("<line") == int(w.generic.sum()) >= 1  # the generic heads are crossed
        e = r.effects.head(*planted[1]["concept"])
        assert f"colours {e['concept']:.2f}x" in html
        assert all(f"{name} {ratio:.2f}x" in html for name, ratio in e["others"].items())
        assert "Verdict: " in html and "<script" not in html
    finally:
        w.grid_view, w.selected = "writes", []


def test_snapshot_escapes_effect_names_and_the_verdict():
    evil = '<img src=x onerror="alert(1)">'
    html = snapshot_html(
        concept=evil,
        score_name="z",
        scores=np.array([[0.1, 0.9]]),
        significant=np.array([[False, True]]),
        head=(0, 1),
        tokens=[],
        edits={},
        prompt="",
        baseline="",
        edited="",
        status="ready",
        error="",
        does=(np.array([[-0.5, 1.0]]), np.array([[True, False]])),
        head_effect={
            "concept": 0.3,
            "others": {evil: 0.9},
            "control_drop": 0.1,
            "selectivity": 1.1,
            "generic": False,
            "exact": True,
        },
        verdict=evil,
    )
    assert "<img" not in html
    assert html.count("&lt;img src=x") == 4  # concept (title and effect list), a category, the verdict
    assert "<line" in html  # the generic head is crossed
