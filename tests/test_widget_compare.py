"""Comparing two concepts in the widget: the grid shows the engine's difference of their rankings,
the panel both concepts' EVR against their nulls (tiny random model, no browser)."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

import headpursuit_widget as hp
from headpursuit_widget.widget import HeadPursuit


@pytest.fixture
def widget(make_tiny):
    w = HeadPursuit(make_tiny("llama"), concept="colours", prompt="", debounce=0.01, verify=False)
    assert w.wait(60)
    yield w
    w.close()


def _rank(model, concept):
    return hp.rank_heads(model, None, concept, refine=False, progress=False)


def test_compare_shows_the_difference_of_the_two_rankings(widget):
    m = widget.model
    colours, animals = _rank(m, "colours"), _rank(m, "animals")
    widget.compare = "animals"
    assert widget.wait(60) and widget.error == "" and widget.status == "ready"
    assert widget.scores_minus == "animals"
    np.testing.assert_allclose(widget.scores, colours.score_table["z"] - animals.score_table["z"])
    np.testing.assert_array_equal(widget.significant, colours.significant)
    widget.score = "evr"  # the difference follows the score switch
    np.testing.assert_allclose(widget.scores, colours.score_table["evr"] - animals.score_table["evr"])
    # the synced array is the difference, as a binary buffer of the grid's shape
    state, paths, buffers = _remove_buffers(widget.get_state())
    got = np.frombuffer(bytes(buffers[paths.index(["scores", "buffer"])]), dtype=np.float32)
    np.testing.assert_allclose(got.reshape(m.n_layers, m.n_heads), widget.scores, rtol=1e-6)
    assert state["scores_minus"] == "animals" and state["compare"] == "animals"

    widget.selected = [1, 2]
    for stats, r in ((widget.head_stats, colours), (widget.compare_stats, animals)):
        assert stats == {
            "layer": 1,
            "head": 2,
            "evr": pytest.approx(r.score_table["evr"][1, 2]),
            "null_mean": pytest.approx(r.null_evr[:, 1, 2].mean()),
            "null_sd": pytest.approx(r.null_evr[:, 1, 2].std(ddof=1)),
            "significant": bool(r.significant[1, 2]),
        }

    widget.compare = ""  # off: the concept's own scores again, no second head in the panel
    np.testing.assert_allclose(widget.scores, colours.score_table["evr"])
    assert widget.scores_minus == "" and widget.compare_stats == {}


def test_typed_words_compare_too(widget):
    words = ["dog", "cat", "horse", "cow"]
    widget.compare = " dog, cat, horse, cow "
    assert widget.wait(60) and widget.scores_minus == "dog, cat, horse, cow"
    expected = _rank(widget.model, "colours").difference(_rank(widget.model, words))
    np.testing.assert_allclose(widget.scores, expected)


def test_bad_compare_values_are_refused_clearly(widget):
    with pytest.raises(traitlets.TraitError, match="compare: .*the concept itself"):
        widget.compare = "colours"
    with pytest.raises(traitlets.TraitError, match="compare: .*empty concept"):
        widget.compare = " , ; "
    assert widget.compare == "" and widget.scores_minus == ""
    widget.compare = "   "  # blank is "off"
    assert widget.compare == ""


def test_a_compare_that_fails_to_rank_leaves_the_concept_alone(widget):
    before = widget.scores.copy()
    widget.compare = "zzzqqqxxyy"  # a word the tokenizer keeps no whole-word token of
    assert widget.wait(60)
    assert widget.status == "error" and "compare not ranked" in widget.error
    assert widget.scores_minus == "" and widget.compare_stats == {}
    np.testing.assert_array_equal(widget.scores, before)


def test_compare_from_the_constructor_and_through_a_saved_setup(widget):
    """compare= ranks the second concept like typing it in the box; to_json/from_json keep it."""
    m = widget.model
    w = HeadPursuit(m, concept="colours", compare="animals", prompt="", debounce=0.01, verify=False)
    try:
        assert w.wait(60) and w.error == "" and w.scores_minus == "animals"
        expected = _rank(m, "colours").score_table["z"] - _rank(m, "animals").score_table["z"]
        np.testing.assert_allclose(w.scores, expected)
        back = HeadPursuit.from_json(m, w.to_json(), debounce=0.01, verify=False)
        try:
            assert back.wait(60) and back.compare == "animals" and back.scores_minus == "animals"
            np.testing.assert_allclose(back.scores, w.scores)
        finally:
            back.close()
    finally:
        w.close()
    with pytest.raises(traitlets.TraitError, match="is the concept itself"):
        HeadPursuit(m, concept="colours", compare="colours", prompt="", verify=False)
