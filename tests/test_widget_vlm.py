"""HeadPursuit on a vision-language model: ranking over image tokens, the image strip, and
generation on the picked sample's image (tiny random Llava from tests/vlm_factory.py, no browser)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import traitlets
import vlm_factory as F
from ipywidgets.widgets.widget import _remove_buffers

import headpursuit_widget as hp
from headpursuit_widget.engine.activations import images
from headpursuit_widget.engine.activations.vision import load_image
from headpursuit_widget.widget import HeadPursuit
from headpursuit_widget.widget import answers as answers_mod
from headpursuit_widget.widget.session import ACTIVATIONS

WORDS = images.class_names("colours")
RANK = dict(k=5, n_null=2)


@pytest.fixture(scope="module")
def vlm():
    """Tiny random Llava (2 layers x 4 heads) with its processor."""
    return hp.wrap(*F.build("llava"))


@pytest.fixture(scope="module")
def samples():
    return images.samples("colours", 1)[:4]


@pytest.fixture
def widget(vlm, samples):
    w = HeadPursuit(vlm, concept=WORDS, samples=samples, max_new_tokens=3, debounce=0.01, **RANK)
    # the first answers are generating on the worker thread: direct engine calls on the same
    # model must wait for them (hooks of two threads on one model would mix)
    assert w.wait(60)
    yield w
    w.close()


def _same_pixels(a, b) -> bool:
    return np.array_equal(np.asarray(load_image(a)), np.asarray(load_image(b)))


def test_ranks_on_image_positions_and_fills_the_strip(widget, vlm, samples):
    r = hp.rank_heads(vlm, samples, WORDS, positions="image", progress=False, **RANK)
    np.testing.assert_allclose(widget.scores, r.scores, rtol=1e-5, atol=1e-7)
    top = widget.ranking.top(3)  # near-ties may swap: compare the scores of the top heads
    np.testing.assert_allclose(sorted(r.scores[h] for h in top), sorted(r.scores[h] for h in r.top(3)), rtol=1e-5)
    assert ACTIVATIONS.holds(vlm, samples, positions="image")
    assert widget.images == [images.to_png(im) for im, _ in samples]
    assert all(png.startswith(b"\x89PNG") for png in widget.images)
    assert widget.sample_index == 0 and widget.prompt == samples[0][1]  # the picked sample's prompt
    _state, paths, _buffers = _remove_buffers(widget.get_state())
    assert [["images", i] for i in range(len(samples))] == [p for p in paths if p[0] == "images"]


def test_picking_a_sample_regenerates_on_its_image(widget, vlm, samples, monkeypatch):
    calls = []
    real = answers_mod.generate

    def spy(model, prompts, edits=None, images=None, **kw):
        calls.append((edits, images))
        return real(model, prompts, edits=edits, images=images, **kw)

    monkeypatch.setattr(answers_mod, "generate", spy)
    prompt = samples[0][1]
    widget.strengths = {"1.0": -1.0, "0.2": 3.0}
    assert widget.wait(60)
    edits = {"1.0": -1.0, "0.2": 3.0}
    want = hp.generate(vlm, [prompt], images=[samples[0][0]], edits=edits, max_new_tokens=3)[0]
    assert widget.edited_text == want
    calls.clear()
    widget.sample_index = 2  # as a click on the strip does
    assert widget.wait(60)
    assert [e for e, _ in calls] == [None, edits]  # a new image: baseline and edited answers again
    assert all(len(ims) == 1 and _same_pixels(ims[0], samples[2][0]) for _, ims in calls)
    assert widget.baseline_text == hp.generate(vlm, [prompt], images=[samples[2][0]], max_new_tokens=3)[0]
    assert widget.edited_text == hp.generate(vlm, [prompt], images=[samples[2][0]], edits=edits, max_new_tokens=3)[0]
    assert widget.status == "ready" and widget.error == ""
    with pytest.raises(traitlets.TraitError, match="sample_index"):
        widget.sample_index = len(samples)
    widget.images = widget.images[:2]  # a shorter strip set from Python: the pick falls back to 0
    assert widget.wait(60)
    assert widget.sample_index == 0
    assert widget.baseline_text == hp.generate(vlm, [prompt], images=[samples[0][0]], max_new_tokens=3)[0]


def test_sample_picks_are_debounced_and_the_latest_wins(widget, samples, monkeypatch):
    seen, holding = [], threading.Event()

    def slow(model, prompts, edits=None, images=None, on_token=None, cancel=None, **kw):
        """Answers at once, except on image 1: one piece, then it waits until it is cancelled."""
        index = next(i for i, (im, _) in enumerate(samples) if _same_pixels(im, images[0]))
        seen.append(index)
        if index == 1:
            on_token(0, " s1.0")
            holding.set()
            assert cancel.wait(30), "the answer on image 1 was never cancelled"
            return [" s1.0"]
        return [f"image {index}"]

    monkeypatch.setattr(answers_mod, "generate", slow)
    widget.debounce = 0.3
    for i in (1, 2, 3):
        widget.sample_index = i
    assert widget.wait(30)
    assert seen == [3]  # one baseline, on the last pick
    widget.debounce = 0.0
    widget.sample_index = 1
    assert holding.wait(10)
    widget.sample_index = 2  # cancels the running answer on image 1
    assert widget.wait(30)
    assert seen[-2:] == [1, 2] and widget.baseline_text == "image 2"


def test_images_with_one_prompt(vlm, samples):
    pics, question = [im for im, _ in samples], "What colour is it?"
    w = HeadPursuit(vlm, concept=WORDS, images=pics, prompt=question, max_new_tokens=2, **RANK)
    try:
        assert w.wait(60)
        pairs = [(im, question) for im in pics]
        r = hp.rank_heads(vlm, pairs, WORDS, positions="image", progress=False, **RANK)
        np.testing.assert_allclose(w.scores, r.scores, rtol=1e-5, atol=1e-7)
        assert len(w.images) == len(pics) and w.prompt == question
        saved = HeadPursuit(vlm, ranking=w.ranking, images=pics)  # a saved ranking: the strip only
        assert saved.images == w.images and saved.prompt == "" and saved.baseline_text == ""
        saved.close()
        assert w.baseline_text == hp.generate(vlm, [question], images=[pics[0]], max_new_tokens=2)[0]
    finally:
        w.close()
    with pytest.raises(ValueError, match="needs prompt="):
        HeadPursuit(vlm, concept=WORDS, images=pics)
    with pytest.raises(ValueError, match="not both"):
        HeadPursuit(vlm, concept=WORDS, images=pics, prompt=question, samples=samples)


def test_text_models_show_no_strip(make_tiny, samples):
    tiny = make_tiny("llama")
    w = HeadPursuit(tiny, concept="colours", max_new_tokens=2)
    try:
        assert w.images == [] and w.sample_index == 0
        assert w.session.positions == "last"  # text: each concept on its eliciting contexts
        with pytest.raises(traitlets.TraitError, match="vision-language"):
            w.images = [images.to_png(samples[0][0])]
    finally:
        w.close()
    with pytest.raises(ValueError, match="text model"):
        HeadPursuit(tiny, concept="colours", images=[samples[0][0]], prompt="What colour?")
