"""The widget says which heads are real: significance marks, the null beside a head's EVR, the
background refine + verify verdict (of the applied edits, else of the top heads), "Edit top heads"
on the selective set, the next-token readout, the sub-token rule, and answers that never mix prompts
(tiny random model, no browser)."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch
import traitlets

import headpursuit_widget as hp
from headpursuit_widget import protocol
from headpursuit_widget.engine.activations.inputs import format_prompt
from headpursuit_widget.widget import HeadPursuit
from headpursuit_widget.widget import answers as answers_mod

PROMPT = "The sky at dusk is"


@pytest.fixture(scope="module")
def tiny_model(make_tiny):
    return make_tiny("llama")


@pytest.fixture
def make_widget(tiny_model):
    made = []

    def make(**kw):
        kw.setdefault("prompt", "")  # no opening answer: each test sets the prompt it streams
        w = HeadPursuit(tiny_model, concept=kw.pop("concept", "colours"), max_new_tokens=4, debounce=0.01, **kw)
        made.append(w)
        assert w.wait(60)  # the constructor returns at once; the first ranking runs on the worker
        return w

    yield make
    for w in made:
        w.close()


class FakeCheck:
    """Stand-ins for hp.refine / hp.verify that record their calls. refine returns the ranking
    ordered by raw EVR with its top 2 heads as the selective set (so its top differs from the
    default's); verify's call number ``hold`` waits until it is cancelled. Its verdict is "generic"
    for edits, "specific" for the top heads."""

    def __init__(self, hold=None):
        self.refined, self.verified, self.hold = [], [], hold
        self.holding = threading.Event()

    def refine(self, model, ranking, *, cancel=None, progress=False):
        self.refined.append(ranking)
        by_evr = dataclasses.replace(ranking, score_name="evr")
        return dataclasses.replace(by_evr, recommended=tuple(by_evr.top(2)))

    def verify(self, model, ranking, *, k=4, alpha=-1.0, edits=None, cancel=None, **kw):
        call = len(self.verified)
        self.verified.append({"ranking": ranking, "k": k, "alpha": alpha, "edits": edits, "cancel": cancel})
        if call == self.hold:
            self.holding.set()
            assert cancel.wait(30), "a held verification was never cancelled"
        if edits:
            summary = f"{len(edits)} heads of {ranking.concept['name']} ({sorted(edits.items())}): checked"
        else:
            summary = f"top {k} heads of {ranking.concept['name']} at x{alpha:g}: checked"
        verdict = "generic" if edits else "specific"
        return type("Verification", (), {"summary": lambda self: summary, "verdict": verdict})()


@pytest.fixture
def check(monkeypatch):
    fake = FakeCheck()
    monkeypatch.setattr(hp, "refine", fake.refine, raising=False)
    monkeypatch.setattr(hp, "verify", fake.verify, raising=False)
    return fake


def test_grid_marks_significant_heads_and_the_panel_shows_the_null(make_widget, tiny_model):
    w = make_widget(verify=False)
    r = hp.rank_heads(tiny_model, None, "colours", progress=False)
    np.testing.assert_array_equal(w.significant, r.significant)
    layer, head = 1, 2
    w.selected = [layer, head]
    draws = r.null_evr[:, layer, head]
    assert w.head_stats["layer"] == layer and w.head_stats["head"] == head
    assert w.head_stats["evr"] == pytest.approx(r.score_table["evr"][layer, head])
    assert w.head_stats["null_mean"] == pytest.approx(sum(draws) / len(draws))
    assert w.head_stats["null_sd"] == pytest.approx(float(np.std(draws, ddof=1)))
    assert w.head_stats["significant"] == bool(w.significant[layer, head])
    w.selected = []
    assert w.head_stats == {}


def test_verdict_comes_from_refine_then_verify_in_the_background(make_widget, check):
    w = make_widget(top_k=2, top_alpha=0.0)
    assert w.wait(60)
    assert len(check.refined) == 1 and check.refined[0].score_name == "z"
    assert check.verified[-1]["k"] == 2 and check.verified[-1]["alpha"] == 0.0
    assert check.verified[-1]["ranking"].score_name == "evr"  # verify checks the refined ranking
    assert check.verified[-1]["edits"] is None  # no edits applied: the top heads
    assert w.verdict == "top 2 heads of colours at x0: checked"
    assert w.verdict_label == "specific" and w.verdict_on == "the top 2 heads of the selective set x0"
    # "Edit top heads" now applies the refined ranking's selective set and says so
    w.score = "logit_lens"  # the dropdown does not change the selection
    w.edit_top()
    refined = check.verified[-1]["ranking"]
    top = refined.top(2)
    assert top == list(refined.recommended)
    assert w.strengths == {f"{layer}.{head}": 0.0 for layer, head in top}
    assert "of the selective set:" in w.top_note
    assert all(f"L{layer}H{head}" in w.top_note for layer, head in top)
    assert w.wait(60)  # the verdict follows the applied edits
    assert check.verified[-1]["edits"] == dict.fromkeys(top, 0.0)
    assert w.verdict_label == "generic" and w.verdict_on.startswith("the applied edits (")
    w.edit_top(k=3)  # more heads than the selective set holds: the note says where the rest come from
    assert "it has 2 heads; the rest follow ranking.top" in w.top_note
    w.stop()
    w.clear_edits()
    assert w.wait(60)
    assert check.verified[-1]["edits"] is None and check.verified[-1]["k"] == 2  # back to the top heads
    w.top_k = 3  # a new k re-verifies without refining again
    assert w.wait(60)
    assert len(check.refined) == 1 and check.verified[-1]["k"] == 3


def test_a_new_concept_cancels_the_running_verification(make_widget, check):
    w = make_widget(verify=False)
    check.hold = 0
    w._verify_on = True
    w._select_heads()
    assert check.holding.wait(30)
    w.concept = "red, green, blue, white"
    assert w.wait(60)
    assert check.verified[0]["cancel"].reason == "superseded"
    assert w.verdict == "top 4 heads of custom at x-1: checked"


def test_edit_top_before_refinement_says_which_score_it_followed(make_widget, tiny_model):
    w = make_widget(verify=False, top_k=3)
    w.score = "evr"
    w.edit_top()
    r = hp.rank_heads(tiny_model, None, "colours", refine=False, progress=False)
    assert w.strengths == {f"{layer}.{head}": -1.0 for layer, head in r.top(3)}  # the default score, not evr
    assert "ranked by z, not yet selected by what they do" in w.top_note


def test_verification_failure_is_a_line_not_an_error(make_widget, monkeypatch):
    def broken(model, ranking, **kw):
        raise RuntimeError("no probe prompts for this concept")

    monkeypatch.setattr(hp, "refine", broken, raising=False)
    w = make_widget()
    assert w.wait(60)
    assert w.verdict == "verification failed: RuntimeError: no probe prompts for this concept"
    assert w.effects_note == "not measured: the selection failed (RuntimeError: no probe prompts for this concept)"
    assert w.status == "ready" and w.error == ""


def test_verdict_is_the_engines_summary(make_widget, tiny_model):
    w = make_widget()
    assert w.wait(120)
    refined = hp.rank_heads(tiny_model, None, "colours", progress=False)  # selected by what heads do
    expected = hp.verify(tiny_model, refined, k=w.top_k, alpha=w.top_alpha)
    assert w.verdict == expected.summary() and w.verdict_label == expected.verdict
    assert w.verdict_on == f"the top {w.top_k} heads of the selective set x-1"


def test_verdict_follows_the_applied_edits_and_drops_the_stale_check(make_widget, check):
    w = make_widget()
    assert w.wait(60) and check.verified[-1]["edits"] is None
    check.hold = len(check.verified)  # the check of the first edits waits until it is cancelled
    w.strengths = {"1.0": -1.0}
    assert check.holding.wait(30)
    w.strengths = {"1.0": -1.0, "0.2": 0.5, "1.3": 1.0}  # alpha 1 is no edit
    assert w.wait(60)
    stale, last = check.verified[check.hold], check.verified[-1]
    assert stale["edits"] == {(1, 0): -1.0} and stale["cancel"].reason == "superseded"
    assert last["edits"] == {(0, 2): 0.5, (1, 0): -1.0}
    assert w.verdict == f"2 heads of colours ({sorted(last['edits'].items())}): checked"
    assert w.verdict_on == "the applied edits (L0H2 x0.5, L1H0 x-1)" and w.verdict_label == "generic"
    n = len(check.verified)
    w.top_k = 3  # the verdict judges the edits, not the top heads: nothing to re-check
    assert w.wait(60) and len(check.verified) == n
    w.clear_edits()
    assert w.wait(60)
    assert check.verified[-1]["edits"] is None and check.verified[-1]["k"] == 3
    assert w.verdict == "top 3 heads of colours at x-1: checked" and w.verdict_label == "specific"
    assert len(check.refined) == 1  # edits never re-run the selection


def _concept_prob(model, token_ids, edits=None) -> float:
    """P(next token in token_ids) after PROMPT, from one plain forward pass."""
    tok = model.tokenizer
    chat = bool(getattr(tok, "chat_template", None))
    ids = tok.encode(format_prompt(tok, PROMPT, chat), add_special_tokens=not chat)
    with hp.edit_heads(model, edits or {}), torch.no_grad():
        logits = model.module(torch.tensor([ids])).logits[0, -1].float()
    return float(logits.softmax(-1)[token_ids].sum())


def test_next_token_readout_baseline_and_edited(make_widget, tiny_model):
    w = make_widget(verify=False)
    w.prompt = PROMPT
    assert w.wait(60)
    ids = w.ranking.concept["token_ids"]
    base = _concept_prob(tiny_model, ids)
    assert w.concept_prob == pytest.approx([base, base], rel=1e-4)
    w.strengths = {"1.0": 8.0, "1.1": 8.0}
    assert w.wait(60)
    edited = _concept_prob(tiny_model, ids, {(1, 0): 8.0, (1, 1): 8.0})
    assert abs(edited - base) > 1e-6  # the edit moves the readout (else the test could not fail)
    assert w.concept_prob == pytest.approx([base, edited], rel=1e-4)
    w.prompt = ""
    assert w.wait(60)
    assert w.concept_prob == []


def test_sub_token_rule_is_a_trait_and_reranks(make_widget, tiny_model):
    prompts = list(hp.concepts.get("colours").rank_prompts)
    w = make_widget(verify=False, concept="crimson, magenta, red", prompts=prompts)
    assert w.rule_names == ["whole_word", "first_subtoken", "all_subtokens"]
    w.rule = "first_subtoken"
    assert w.wait(60)
    r = hp.rank_heads(tiny_model, prompts, ["crimson", "magenta", "red"], rule="first_subtoken", progress=False)
    np.testing.assert_allclose(w.scores, r.scores, rtol=1e-5, atol=1e-7)
    assert w.ranking.concept["rule"] == "first_subtoken"
    with pytest.raises(traitlets.TraitError, match="accepted: whole_word, first_subtoken, all_subtokens"):
        w.rule = "every_piece"


def test_a_failed_concept_says_the_grid_is_the_old_one(make_widget):
    w = make_widget(verify=False)
    w.concept = "qwxzv, zzqqj"
    assert w.wait(60)
    assert w.status == "error"
    assert "the grid still shows the previous concept 'colours'" in w.error
    w.concept = " , "
    assert "concept not ranked (the grid still shows the previous concept 'colours')" in w.error


class Streams:
    """hp.generate stand-in: streams 'base' or 'edit' pieces; the call numbered ``hold`` waits for cancel."""

    def __init__(self, hold=None):
        self.hold, self.calls, self.holding = hold, [], threading.Event()

    def __call__(self, model, prompts, edits=None, max_new_tokens=32, on_token=None, cancel=None, **kw):
        label = f"{prompts[0][:3]}-{'edit' if edits else 'base'}"
        call = len(self.calls)
        self.calls.append(label)
        pieces = []
        for i in range(6):
            if call == self.hold and i == 2:
                self.holding.set()
                assert cancel.wait(30)
            if cancel.is_set():
                break
            pieces.append(f"{label}{i} ")
            on_token(0, pieces[-1])
        return ["".join(pieces)]


def test_stop_on_a_new_prompt_leaves_no_old_edited_answer(make_widget, monkeypatch):
    fake = Streams(hold=2)  # calls: old baseline, old edited, new baseline (held)
    monkeypatch.setattr(answers_mod, "generate", fake)
    monkeypatch.setattr(answers_mod, "next_token_probs", lambda m, p, e, c: torch.zeros(1, m.adapter.vocab_size))
    w = make_widget(verify=False)
    w.strengths = {"0.1": -1.0}
    w.prompt = "Old prompt"
    assert w.wait(30)
    assert w.edited_text.startswith("Old-edit")
    w.prompt = "New prompt"
    assert fake.holding.wait(10)
    w.stop()
    assert w.wait(30)
    assert w.status == "stopped"
    assert w.baseline_text == "New-base0 New-base1 " and w.edited_text == ""


def test_every_stream_ends_and_unchanged_answers_are_not_regenerated(make_widget, monkeypatch):
    sent = []
    monkeypatch.setattr(HeadPursuit, "send", lambda self, content, buffers=None: sent.append(content))
    fake = Streams()
    monkeypatch.setattr(answers_mod, "generate", fake)
    w = make_widget(verify=False)
    w.prompt = PROMPT
    assert w.wait(30)
    w.strengths = {"0.1": -1.0}
    assert w.wait(30)
    w.clear_edits()
    assert w.wait(30)
    w.concept = "red, green, blue, white"  # a new concept: new readout, same answers
    assert w.wait(60)
    assert fake.calls == ["The-base", "The-edit"]
    starts = [(m["target"], m["gen"]) for m in sent if m["type"] == protocol.STREAM_START]
    ends = [(m["target"], m["gen"]) for m in sent if m["type"] == protocol.STREAM_END]
    assert starts == ends and len(starts) == 2
    assert w.edited_text == w.baseline_text and w.status == "ready"
