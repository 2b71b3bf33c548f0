"""HeadPursuit widget: traits drive the right engine calls (tiny random model, no browser)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

import headpursuit_widget as hp
from headpursuit_widget import widget as widget_mod
from headpursuit_widget._serialization import array_from_json, array_to_json
from headpursuit_widget.widget import HeadPursuit, parse_concept, samples_key

PROMPT = "The sky at dusk is"


@pytest.fixture(scope="module")
def tiny_model(make_tiny):
    """2 layers x 4 heads, random weights, SmolLM2's tokenizer (tests/conftest.py)."""
    return make_tiny("llama")


AS_WIDGET = dict(k=50, n_null=6, score="specificity")  # the widget's ranking options until it adopts issue 10


@pytest.fixture(scope="module")
def ranked(tiny_model):
    """A widget on the colours concept and the engine's own ranking of the same prompts."""
    w = HeadPursuit(tiny_model, concept="colours", max_new_tokens=4, debounce=0.01)
    r = hp.rank_heads(tiny_model, list(hp.concepts.get("colours").rank_prompts), "colours", progress=False, **AS_WIDGET)
    yield w, r
    w.close()


@pytest.fixture
def widget(tiny_model):
    w = HeadPursuit(tiny_model, concept="colours", max_new_tokens=4, debounce=0.01)
    yield w
    w.close()


@pytest.fixture
def sent(monkeypatch):
    """Messages the widgets send to the front end, as (widget, content)."""
    log = []
    monkeypatch.setattr(HeadPursuit, "send", lambda self, content, buffers=None: log.append(content))
    return log


class SlowGenerate:
    """Stand-in for hp.generate that streams one piece every `step` seconds and honours cancel."""

    def __init__(self, n=40, step=0.02):
        self.n, self.step, self.calls = n, step, []
        self.started = threading.Event()

    def __call__(self, model, prompts, edits=None, max_new_tokens=32, on_token=None, cancel=None, **kw):
        label = "base" if not edits else ",".join(f"{l}.{h}x{a:g}" for (l, h), a in sorted(edits.items()))
        self.calls.append({"edits": edits, "cancel": cancel})
        self.started.set()
        pieces = []
        for i in range(self.n):
            if cancel is not None and cancel.is_set():
                break
            piece = f" {label}{i}"
            pieces.append(piece)
            on_token(0, piece)
            time.sleep(self.step)
        return ["".join(pieces)]


def test_grid_shows_the_engine_ranking(ranked, tiny_model):
    w, r = ranked
    assert (w.n_layers, w.n_heads) == (tiny_model.n_layers, tiny_model.n_heads)
    np.testing.assert_allclose(w.scores, r.scores)
    np.testing.assert_array_equal(w.above_null, r.above_null)
    assert w.ranking.top(3) == r.top(3)
    assert w.concept_words == r.concept["words"]
    layer, head = r.top(1)[0]
    first = [tok.strip() for tok, _ in r.tokens(layer, head, 3)]
    assert w.head_tokens[layer * w.n_heads + head] == ", ".join(first)
    assert w.status == "ready" and w.error == ""


def test_arrays_travel_as_binary_buffers(ranked):
    w, r = ranked
    state, paths, buffers = _remove_buffers(w.get_state())
    for name in ("scores", "above_null"):
        assert [name, "buffer"] in paths
        assert state[name]["shape"] == [w.n_layers, w.n_heads]
    index = paths.index(["scores", "buffer"])
    got = np.frombuffer(bytes(buffers[index]), dtype=np.float32).reshape(w.n_layers, w.n_heads)
    np.testing.assert_allclose(got, r.scores, rtol=1e-6)
    assert not any(isinstance(v, list) and v and isinstance(v[0], float) for v in state.values())


def test_array_codec_roundtrip():
    for a in (np.arange(6, dtype=np.float64).reshape(2, 3) / 7, np.array([[True, False]]), np.arange(4)):
        back = array_from_json(array_to_json(a))
        np.testing.assert_allclose(back, a, rtol=1e-6)
        assert back.shape == a.shape
    assert array_to_json(None) is None
    with pytest.raises(TypeError, match="dtype"):
        array_to_json(np.array(["a"]))


def test_score_switch_recolours(ranked):
    w, r = ranked
    try:
        for name in ("logit_lens", "evr"):
            w.method = name
            np.testing.assert_allclose(w.scores, r.score_table[name])
            assert w.ranking.score_name == name
        with pytest.raises(traitlets.TraitError, match="unknown score"):
            w.method = "bogus"
    finally:
        w.method = "specificity"


def test_selecting_a_head_fills_the_panel(ranked):
    w, r = ranked
    layer, head = r.top(2)[1]
    w.selected = [layer, head]
    assert w.tokens == [[t, g] for t, g in r.tokens(layer, head, 10)]
    assert w.lens_tokens == [[t, v] for t, v in r.lens_tokens(layer, head, 10)]
    np.testing.assert_allclose(w.curve, r.evr_curve(layer, head))
    w.selected = []
    assert w.tokens == [] and w.curve is None
    with pytest.raises(traitlets.TraitError, match="selected must be"):
        w.selected = [w.n_layers, 0]


def test_prompt_and_strengths_regenerate_with_edits(widget, tiny_model, monkeypatch):
    calls = []
    real = widget_mod.generate

    def spy(model, prompts, edits=None, **kw):
        calls.append(edits)
        return real(model, prompts, edits=edits, **kw)

    monkeypatch.setattr(widget_mod, "generate", spy)
    widget.prompt = PROMPT
    assert widget.wait(60)
    expected = hp.generate(tiny_model, [PROMPT], max_new_tokens=4)[0]
    assert widget.baseline_text == expected and widget.edited_text == expected
    assert calls == [None]
    widget.strengths = {"1.0": -1, "0.2": 3}
    assert widget.wait(60)
    edits = {(1, 0): -1.0, (0, 2): 3.0}
    assert calls == [None, edits]  # baseline is not regenerated for a strength change
    assert widget.edited_text == hp.generate(tiny_model, [PROMPT], edits=edits, max_new_tokens=4)[0]
    assert widget.baseline_text == expected and widget.status == "ready"
    widget.clear_edits()
    assert widget.wait(60)
    assert widget.edited_text == expected and len(calls) == 2


def test_slider_moves_are_debounced(widget, monkeypatch):
    slow = SlowGenerate(n=2, step=0.0)
    monkeypatch.setattr(widget_mod, "generate", slow)
    widget.prompt = PROMPT
    assert widget.wait(30)
    widget.debounce = 0.3
    for alpha in (2.0, 0.0, -1.0, -2.0):
        widget.strengths = {"1.1": alpha}
    assert widget.wait(30)
    assert [c["edits"] for c in slow.calls] == [None, {(1, 1): -2.0}]
    assert widget.edited_text == " 1.1x-20 1.1x-21"


def test_latest_setting_wins_and_cancels_the_older(widget, monkeypatch, sent):
    slow = SlowGenerate(n=40, step=0.02)
    monkeypatch.setattr(widget_mod, "generate", slow)
    widget.prompt = PROMPT
    assert widget.wait(30)
    slow.started.clear()
    widget.strengths = {"0.0": 2.0}
    assert slow.started.wait(10)
    time.sleep(0.1)
    widget.strengths = {"0.1": -1.0}
    assert widget.wait(30)
    first, last = slow.calls[-2], slow.calls[-1]
    assert first["edits"] == {(0, 0): 2.0} and first["cancel"].is_set()
    assert last["edits"] == {(0, 1): -1.0} and not last["cancel"].is_set()
    assert widget.edited_text == "".join(f" 0.1x-1{i}" for i in range(40))
    # once the newer answer started streaming, no piece of the older one was sent
    starts = [i for i, m in enumerate(sent) if m["type"] == "stream_start" and m["target"] == "edited"]
    old_gen = sent[starts[-2]]["gen"]
    assert all(m.get("gen") != old_gen for m in sent[starts[-1] :])
    assert all("0.0x2" not in m.get("piece", "") for m in sent[starts[-1] :])


def test_stop_cancels_and_keeps_the_partial_answer(widget, monkeypatch, sent):
    slow = SlowGenerate(n=200, step=0.02)
    monkeypatch.setattr(widget_mod, "generate", slow)
    widget.prompt = PROMPT
    assert slow.started.wait(10)
    time.sleep(0.15)
    widget.stop()
    assert widget.wait(10)
    assert slow.calls[-1]["cancel"].is_set()
    assert widget.status == "stopped"
    streamed = "".join(m["piece"] for m in sent if m["type"] == "token")
    assert 0 < len(widget.baseline_text) < len("".join(f" base{i}" for i in range(200)))
    assert widget.baseline_text == streamed


def test_new_concept_reuses_cached_activations(widget, tiny_model, monkeypatch):
    captures = []
    real = widget_mod.capture
    monkeypatch.setattr(widget_mod, "capture", lambda *a, **k: captures.append(1) or real(*a, **k))
    progress = []
    widget.observe(lambda c: progress.append(c["new"]), "progress")
    widget.concept = "red, green, blue, white"
    assert widget.wait(60)
    assert captures == []
    assert widget.concept_words == ["red", "green", "blue", "white"]
    prompts = list(hp.concepts.get("colours").rank_prompts)
    r = hp.rank_heads(tiny_model, prompts, ["red", "green", "blue", "white"], progress=False, **AS_WIDGET)
    np.testing.assert_allclose(widget.scores, r.scores)
    assert any(0 < p < 1 for p in progress) and widget.progress == 0


def test_new_prompts_capture_once_with_progress_per_batch(tiny_model, monkeypatch):
    prompts = [f"Sentence number {i} is about the weather." for i in range(20)]
    captures, fractions = [], []
    real = widget_mod.capture

    def spy(m, p, on_progress=None, **k):
        captures.append(len(p))
        return real(m, p, on_progress=lambda f: (fractions.append(f), on_progress(f)), **k)

    monkeypatch.setattr(widget_mod, "capture", spy)
    w = HeadPursuit(tiny_model, concept=["red", "green", "blue"], prompts=prompts)
    assert captures == [20] and fractions == [8 / 20, 16 / 20, 1.0]  # one capture, progress per batch of 8
    acts = real(tiny_model, prompts, progress=False)
    r = hp.rank_heads(tiny_model, prompts, ["red", "green", "blue"], activations=acts, progress=False, **AS_WIDGET)
    np.testing.assert_allclose(w.scores, r.scores, rtol=1e-5, atol=1e-7)
    w.close()


def test_errors_show_in_the_widget(widget, monkeypatch):
    before = widget.scores.copy()
    widget.concept = "qwxzv, zzqqj"
    assert widget.wait(60)
    assert widget.status == "error"
    assert "ranking failed" in widget.error and "qwxzv" in widget.error
    np.testing.assert_array_equal(widget.scores, before)

    def broken(*a, **k):
        raise RuntimeError("out of memory on the test device")

    monkeypatch.setattr(widget_mod, "generate", broken)
    widget.prompt = PROMPT
    assert widget.wait(30)
    assert widget.status == "error" and "out of memory on the test device" in widget.error


def test_bad_input_is_rejected_clearly(widget, tiny_model, ranked):
    with pytest.raises(traitlets.TraitError, match="'layer.head'"):
        widget.strengths = {"7.0": 1.5}
    with pytest.raises(traitlets.TraitError, match="finite"):
        widget.strengths = {"0.0": float("nan")}
    with pytest.raises(ValueError, match="exactly one of"):
        HeadPursuit(tiny_model)
    with pytest.raises(TypeError, match="HeadModel"):
        HeadPursuit(object(), concept="colours")
    with pytest.raises(TypeError, match="unexpected keyword"):
        HeadPursuit(tiny_model, concept="colours", colour="red")
    with pytest.raises(ValueError, match="empty concept"):
        parse_concept(" , ")


def test_apply_top_message_and_saved_ranking(ranked, tiny_model, tmp_path, monkeypatch):
    w, r = ranked
    w.top_k, w.top_alpha = 2, 0.0
    w._on_msg(w, {"type": "apply_top"}, [])
    assert w.strengths == {f"{l}.{h}": 0.0 for l, h in r.top(2)}
    w.stop()
    w.clear_edits()
    assert w.wait(60)
    path = r.save(tmp_path / "r.npz")
    monkeypatch.setattr(widget_mod, "capture", lambda *a, **k: pytest.fail("a saved ranking needs no capture"))
    w2 = HeadPursuit(tiny_model, ranking=hp.HeadRanking.load(path, model=tiny_model))
    np.testing.assert_allclose(w2.scores, r.scores)
    assert w2.concept == "colours"
    w2.close()


def test_parse_concept():
    assert parse_concept("colours") == "colours"
    assert parse_concept("red, dark blue;green") == ["red", "dark blue", "green"]
    assert parse_concept("red green") == ["red", "green"]
    assert parse_concept(["red", " "]) == ["red"]


def test_samples_key_hashes_images_by_content():
    from PIL import Image

    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    key = samples_key(["a prompt", (red, "What is shown?")])
    assert key == samples_key(["a prompt", (Image.new("RGB", (8, 8), "red"), "What is shown?")])
    assert key != samples_key(["a prompt", (blue, "What is shown?")])
    hash(key)
