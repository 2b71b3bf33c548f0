"""HeadPursuit widget: traits drive the right engine calls (tiny random model, no browser)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

import headpursuit_widget as hp
from headpursuit_widget._serialization import array_from_json, array_to_json
from headpursuit_widget.engine.concepts.text import concept_from_text
from headpursuit_widget.widget import HeadPursuit
from headpursuit_widget.widget import answers as answers_mod
from headpursuit_widget.widget import session as session_mod
from headpursuit_widget.widget.session import samples_key

PROMPT = "The sky at dusk is"


@pytest.fixture(scope="module")
def tiny_model(make_tiny):
    """2 layers x 4 heads, random weights, SmolLM2's tokenizer (tests/conftest.py)."""
    return make_tiny("llama")


@pytest.fixture(scope="module")
def ranked(tiny_model):
    """A widget on the colours concept and the engine's own ranking of the same prompts."""
    w = HeadPursuit(tiny_model, concept="colours", max_new_tokens=4, debounce=0.01)
    r = hp.rank_heads(tiny_model, None, "colours", progress=False)
    assert w.wait(60)
    yield w, r
    w.close()


@pytest.fixture
def widget(tiny_model):
    w = HeadPursuit(tiny_model, concept="colours", max_new_tokens=4, debounce=0.01)
    assert w.wait(60)
    yield w
    w.close()


@pytest.fixture
def sent(monkeypatch):
    """Messages the widgets send to the front end, as (widget, content)."""
    log = []
    monkeypatch.setattr(HeadPursuit, "send", lambda self, content, buffers=None: log.append(content))
    return log


class FakeGenerate:
    """Stand-in for hp.generate that streams ``n`` pieces labelled by its edits and honours cancel.

    Calls numbered in ``hold`` (0 = the first) stream ``hold_after`` pieces, set ``holding`` and
    then wait until they are cancelled, so a test can act while an answer is half streamed."""

    def __init__(self, n=40, hold=(), hold_after=3):
        self.n, self.hold, self.hold_after, self.calls = n, set(hold), hold_after, []
        self.started, self.holding = threading.Event(), threading.Event()

    def __call__(self, model, prompts, edits=None, max_new_tokens=32, on_token=None, cancel=None, **kw):
        label = "base" if not edits else ",".join(f"{key}x{a:g}" for key, a in sorted(edits.items()))
        held = len(self.calls) in self.hold
        self.calls.append({"edits": edits, "cancel": cancel})
        self.started.set()
        pieces = []
        for i in range(self.n):
            if held and i == self.hold_after:
                self.holding.set()
                assert cancel.wait(30), "a held answer was never cancelled"
            if cancel.is_set():
                break
            piece = f" {label}{i}"
            pieces.append(piece)
            on_token(0, piece)
        return ["".join(pieces)]


def test_grid_shows_the_engine_ranking(ranked, tiny_model):
    w, r = ranked
    assert (w.n_layers, w.n_heads) == (tiny_model.n_layers, tiny_model.n_heads)
    np.testing.assert_allclose(w.scores, r.scores)
    np.testing.assert_array_equal(w.significant, r.significant)
    assert w.ranking.top(3) == r.top(3)
    assert w.concept_words == r.concept["words"]
    layer, head = r.top(1)[0]
    first = [tok.strip() for tok, _ in r.tokens(layer, head, 3)]
    assert w.head_tokens[layer * w.n_heads + head] == ", ".join(first)
    assert w.status == "ready" and w.error == ""


def test_arrays_travel_as_binary_buffers(ranked):
    w, r = ranked
    state, paths, buffers = _remove_buffers(w.get_state())
    for name in ("scores", "significant"):
        assert [name, "buffer"] in paths
        assert state[name]["shape"] == [w.n_layers, w.n_heads]
    index = paths.index(["scores", "buffer"])
    got = np.frombuffer(bytes(buffers[index]), dtype=np.float32).reshape(w.n_layers, w.n_heads)
    np.testing.assert_allclose(got, r.scores, rtol=1e-6)
    lists_of_floats = {k for k, v in state.items() if isinstance(v, list) and v and isinstance(v[0], float)}
    assert lists_of_floats <= {"concept_prob"}  # two numbers (baseline, edited); arrays go as buffers


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
            w.score = name
            np.testing.assert_allclose(w.scores, r.score_table[name])
            assert w.ranking.score_name == name
        with pytest.raises(traitlets.TraitError, match="unknown score"):
            w.score = "bogus"
    finally:
        w.score = "z"


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
    real = answers_mod.generate

    def spy(model, prompts, edits=None, **kw):
        calls.append(edits)
        return real(model, prompts, edits=edits, **kw)

    monkeypatch.setattr(answers_mod, "generate", spy)
    widget.prompt = PROMPT
    assert widget.wait(60)
    expected = hp.generate(tiny_model, [PROMPT], max_new_tokens=4)[0]
    assert widget.baseline_text == expected and widget.edited_text == expected
    assert calls == [None]
    widget.strengths = {"1.0": -1, "0.2": 3}
    assert widget.wait(60)
    assert calls == [None, {"1.0": -1.0, "0.2": 3.0}]  # baseline is not regenerated for a strength change
    edits = {(1, 0): -1.0, (0, 2): 3.0}
    assert widget.edited_text == hp.generate(tiny_model, [PROMPT], edits=edits, max_new_tokens=4)[0]
    assert widget.baseline_text == expected and widget.status == "ready"
    widget.clear_edits()
    assert widget.wait(60)
    assert widget.edited_text == expected and len(calls) == 2


def test_slider_moves_are_debounced(widget, monkeypatch):
    slow = FakeGenerate(n=2)
    monkeypatch.setattr(answers_mod, "generate", slow)
    widget.prompt = PROMPT
    assert widget.wait(30)
    widget.debounce = 0.3
    for alpha in (2.0, 0.0, -1.0, -2.0):
        widget.strengths = {"1.1": alpha}
    assert widget.wait(30)
    assert [c["edits"] for c in slow.calls] == [None, {"1.1": -2.0}]
    assert widget.edited_text == " 1.1x-20 1.1x-21"


def test_latest_setting_wins_and_cancels_the_older(widget, monkeypatch, sent):
    slow = FakeGenerate(n=40, hold={1})  # call 0 is the baseline, call 1 the first edited answer
    monkeypatch.setattr(answers_mod, "generate", slow)
    widget.prompt = PROMPT
    assert widget.wait(30)
    widget.strengths = {"0.0": 2.0}
    assert slow.holding.wait(10)  # half streamed
    widget.strengths = {"0.1": -1.0}
    assert widget.wait(30)
    first, last = slow.calls[-2], slow.calls[-1]
    assert first["edits"] == {"0.0": 2.0} and first["cancel"].reason == "superseded"
    assert last["edits"] == {"0.1": -1.0} and not last["cancel"].is_set()
    assert widget.edited_text == "".join(f" 0.1x-1{i}" for i in range(40))
    # once the newer answer started streaming, no piece of the older one was sent
    starts = [i for i, m in enumerate(sent) if m["type"] == "stream_start" and m["target"] == "edited"]
    old_gen = sent[starts[-2]]["gen"]
    assert all(m.get("gen") != old_gen for m in sent[starts[-1] :])
    assert all("0.0x2" not in m.get("piece", "") for m in sent[starts[-1] :])


def test_stop_cancels_and_keeps_the_partial_answer(widget, monkeypatch, sent):
    slow = FakeGenerate(n=200, hold={0}, hold_after=5)
    monkeypatch.setattr(answers_mod, "generate", slow)
    widget.prompt = PROMPT
    assert slow.holding.wait(10)
    widget.stop()
    assert widget.wait(10)
    assert slow.calls[-1]["cancel"].reason == "stopped"
    assert widget.status == "stopped"
    streamed = "".join(m["piece"] for m in sent if m["type"] == "token")
    assert widget.baseline_text == streamed == "".join(f" base{i}" for i in range(5))


def test_new_concept_captures_its_contexts_once(widget, tiny_model, monkeypatch):
    captures = []
    real = session_mod.capture
    monkeypatch.setattr(session_mod, "capture", lambda *a, **k: captures.append(1) or real(*a, **k))
    progress, notes, grids = [], [], []
    widget.observe(lambda c: progress.append(c["new"]), "progress")
    widget.observe(lambda c: notes.append(c["new"]), "grid_note")
    widget.observe(lambda c: grids.append((widget.grid_note, c["new"].copy())), "scores")
    words = ["red", "green", "blue", "brown"]  # a list no other test types: the process's capture cache holds none
    widget.concept = ", ".join(words)
    assert widget.wait(60)
    assert captures == [1, 1]  # its own eliciting contexts: the first grid's quarter, then the rest
    assert widget.concept_words == words and widget.grid_note == ""
    r = hp.rank_heads(tiny_model, None, words, refine=False, progress=False)
    np.testing.assert_allclose(widget.scores, r.scores, rtol=1e-4, atol=1e-4)
    n = len(r.options["contexts"])
    first = [scores for note, scores in grids if note.startswith("first grid")]
    assert len(first) == 1 and notes[0].startswith(f"first grid, from {n // 4} of {n} contexts") and notes[-1] == ""
    assert not np.allclose(first[0], r.scores)  # drawn from fewer contexts
    assert any(0 < p < 1 for p in progress) and widget.progress == 0
    widget.concept = "colours"
    assert widget.wait(60)
    assert captures == [1, 1]  # colours' contexts were captured when the widget opened


def test_new_prompts_capture_once_with_progress_per_batch(tiny_model, monkeypatch):
    prompts = [f"Sentence number {i} is about the weather." for i in range(20)]
    captures, fractions = [], []
    real = session_mod.capture

    def spy(m, p, on_progress=None, **k):
        captures.append(len(p))
        return real(m, p, on_progress=lambda f: (fractions.append(f), on_progress(f)), **k)

    monkeypatch.setattr(session_mod, "capture", spy)
    w = HeadPursuit(tiny_model, concept=["red", "green", "blue"], prompts=prompts)
    assert w.wait(60)
    # the first grid's 8 prompts, then the other 12; progress per batch of 8 over the whole
    assert captures == [8, 12] and fractions == [1.0, 8 / 12, 1.0]
    assert w.progress == 0 and w.grid_note == ""
    acts = real(tiny_model, prompts, progress=False)
    r = hp.rank_heads(tiny_model, prompts, ["red", "green", "blue"], activations=acts, refine=False, progress=False)
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

    monkeypatch.setattr(answers_mod, "generate", broken)
    widget.prompt = PROMPT
    assert widget.wait(30)
    assert widget.status == "error" and "out of memory on the test device" in widget.error


def test_bad_input_is_rejected_clearly(widget, tiny_model, ranked):
    with pytest.raises(traitlets.TraitError, match="strengths: head \\(7, 0\\) is out of range"):
        widget.strengths = {"7.0": 1.5}
    with pytest.raises(traitlets.TraitError, match="'layer.head'"):
        widget.strengths = {"1-2": 1.5}
    with pytest.raises(traitlets.TraitError, match="max_new_tokens must be an int from 1 to 4096"):
        widget.max_new_tokens = 4097
    with pytest.raises(traitlets.TraitError, match="finite"):
        widget.strengths = {"0.0": float("nan")}
    with pytest.raises(ValueError, match="exactly one of"):
        HeadPursuit(tiny_model)
    with pytest.raises(TypeError, match="HeadModel"):
        HeadPursuit(object(), concept="colours")
    with pytest.raises(TypeError, match="unexpected keyword"):
        HeadPursuit(tiny_model, concept="colours", colour="red")
    with pytest.raises(hp.HeadPursuitError, match="empty concept"):
        concept_from_text(" , ")


def test_apply_top_message_and_saved_ranking(ranked, tiny_model, tmp_path, monkeypatch):
    w, r = ranked
    w.top_k, w.top_alpha = 2, 0.0
    w._on_msg(w, {"type": "apply_top"}, [])
    assert w.strengths == {f"{l}.{h}": 0.0 for l, h in r.top(2)}
    w.stop()
    w.clear_edits()
    assert w.wait(60)
    path = r.save(tmp_path / "r.npz")
    monkeypatch.setattr(session_mod, "capture", lambda *a, **k: pytest.fail("a saved ranking needs no capture"))
    w2 = HeadPursuit(tiny_model, ranking=hp.HeadRanking.load(path, model=tiny_model), prompt="")
    np.testing.assert_allclose(w2.scores, r.scores)
    assert w2.concept == "colours"
    w2.close()


def test_concept_from_text():
    assert concept_from_text("colours") == "colours"
    assert concept_from_text("red, dark blue;green") == ["red", "dark blue", "green"]
    assert concept_from_text("red green") == ["red", "green"]
    assert concept_from_text(["red", " "]) == ["red"]


def test_samples_key_hashes_images_by_content():
    from PIL import Image

    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    key = samples_key(["a prompt", (red, "What is shown?")])
    assert key == samples_key(["a prompt", (Image.new("RGB", (8, 8), "red"), "What is shown?")])
    assert key != samples_key(["a prompt", (blue, "What is shown?")])
    hash(key)


def test_closed_widget_starts_no_generation(widget, monkeypatch):
    fake = FakeGenerate(n=2)
    monkeypatch.setattr(answers_mod, "generate", fake)
    widget.close()
    widget.prompt = PROMPT
    widget.strengths = {"1.1": -1.0}
    widget.regenerate()
    assert widget.wait(5) and fake.calls == []


def test_strength_keys_are_normalised_and_checked_by_the_engine(widget):
    widget.strengths = {"01.02": -1.0}
    assert widget.strengths == {"1.2": -1.0}  # the grid marks the head it edits
    with pytest.raises(traitlets.TraitError, match="strengths"):
        widget.strengths = {"1.1": 1e39}  # overflows the float32 weights
    assert widget.strengths == {"1.2": -1.0}


def test_rejected_update_from_the_front_end_is_sent_back(widget, monkeypatch):
    widget.strengths = {"1.1": -1.0}
    sent_states = []
    monkeypatch.setattr(HeadPursuit, "send_state", lambda self, key=None: sent_states.append(key))
    widget.set_state({"strengths": {"1.1": 1e39}})
    assert widget.strengths == {"1.1": -1.0}
    assert ["strengths"] in sent_states
    assert "strengths" in widget.error
