"""Edited-pass readings kept on disk (engine/judging/kept.py): a head set measured once on a battery is read
back, equal to measuring it again; anything that changes what a pass computes is measured again.

Independent truth: the same measures made with nothing kept (a fresh, empty captures folder), and a count
of the forward passes that ran."""

import threading

import numpy as np
import pytest
import torch
from support import corrupt

import headpursuit_widget as hp
from headpursuit_widget.engine import kept as engine_kept
from headpursuit_widget.engine.concepts.contexts import eliciting_contexts
from headpursuit_widget.engine.judging import categories, kept, probes

EDITS = [None, {(1, 2): -1.0}, {(0, 1): -1.0, (1, 3): 0.5}, {"1.2": -1}]


@pytest.fixture
def counted(monkeypatch):
    """The prompts' passes that ran, counted as edit sets passed to next_token_logprobs_each."""
    sets = []
    real = probes.next_token_logprobs_each

    def count(model, prompts, edit_sets, **kw):
        sets.extend(edit_sets)
        return real(model, prompts, edit_sets, **kw)

    monkeypatch.setattr(categories, "next_token_logprobs_each", count)
    return sets


def _battery(m):
    record = hp.rank_heads(m, None, "colours", n_null=2, refine=False, progress=False).concept
    prompts = eliciting_contexts("colours", record["words"], part="rank")[:6]
    return categories.battery(m, record, prompts, part="rank")


def _same(a, b):
    assert a.mass == b.mass
    for name in ("other_masses", "control", "format_masses"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_kept_readings_equal_fresh_ones_and_need_no_pass(make_tiny, tmp_path, monkeypatch, counted):
    m = make_tiny("llama", seed=3)
    bat = _battery(m)
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path / "fresh"))
    fresh = categories.measure(m, bat, EDITS)
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path / "kept"))
    first = categories.measure(m, bat, EDITS[:2])
    assert len(list((tmp_path / "kept").rglob("*.readings.npz"))) == 1
    counted.clear()
    again = categories.measure(m, bat, EDITS)  # two kept, one new ({"1.2": -1} is the kept (1, 2) flip)
    assert counted == [EDITS[2]]  # one new set: measured alone, from layer 0
    for a, b in zip(again, fresh):
        _same(a, b)
    for a, b in zip(first, fresh):
        _same(a, b)
    counted.clear()
    for a, b in zip(categories.measure(m, bat, EDITS), fresh):
        _same(a, b)
    assert counted == []


def test_a_weight_edit_or_another_battery_is_measured_again(make_tiny, tmp_path, monkeypatch, counted):
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    m = make_tiny("llama", seed=4)
    bat = _battery(m)
    before = categories.measure(m, bat, EDITS[:2])
    other = categories.battery(
        m,
        dict(bat.concept.__dict__, name="colours", token_ids=bat.concept.token_ids[:3]),
        bat.concept.prompts,
        part="rank",
    )
    counted.clear()
    categories.measure(m, other, EDITS[:2])
    assert len(counted) == 2
    weight = m.adapter.blocks[0].mlp.down_proj.weight  # a weight the fingerprint does not read
    fingerprint = m.fingerprint
    with torch.no_grad():
        saved = weight.clone()
        weight *= 0.5
    try:
        counted.clear()
        edited = categories.measure(m, bat, [None])
        assert counted == [None] and m.fingerprint == fingerprint  # the fingerprint alone cannot tell
        monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path / "fresh"))
        _same(edited[0], categories.measure(m, bat, [None])[0])
        assert edited[0].mass != before[0].mass
    finally:
        with torch.no_grad():
            weight.copy_(saved)


def test_a_corrupt_kept_entry_is_refused_with_the_paths_to_delete(make_tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    m = make_tiny("llama", seed=5)
    bat = _battery(m)
    categories.measure(m, bat, EDITS[:2])
    (entry,) = tmp_path.rglob("*.readings.npz")
    record = corrupt(entry)
    with pytest.raises(hp.HeadPursuitError, match=f"kept readings {entry} is corrupted.*delete {entry} and {record}"):
        categories.measure(m, bat, EDITS[:2])
    entry.unlink()
    record.unlink()
    assert len(categories.measure(m, bat, EDITS[:2])) == 2


@pytest.mark.parametrize(("method", "screen"), [("attribution", "attribute"), ("answer", "answer_flips")])
def test_the_screens_and_the_known_control_facts_are_kept_too(make_tiny, tmp_path, monkeypatch, method, screen):
    """A screen's estimates (gradient, answer position) and the control facts the model knows: read back
    equal, with no pass."""
    import importlib

    effects_mod = importlib.import_module("headpursuit_widget.engine.judging.effects")

    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    m = make_tiny("llama", seed=6)
    calls = []
    for mod, name in ((effects_mod, screen), (categories, "facts_known")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, real=real, name=name, **k: calls.append(name) or real(*a, **k))
    monkeypatch.setattr(categories, "_KNOWN", {})
    first = effects_mod.effects(m, "colours", method=method, n_check=0, progress=False)
    split = categories.control_split(m, half="verify")
    assert calls == ["facts_known", screen]
    monkeypatch.setattr(categories, "_KNOWN", {})  # as in a new process
    again = effects_mod.effects(m, "colours", method=method, n_check=0, progress=False)
    assert calls == ["facts_known", screen] and categories.control_split(m, half="verify") == split
    for name in ("mass_ratio", "other_ratios", "control_drop"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)
    other = effects_mod.effects(m, "colours", alpha=0.5, method=method, n_check=0, progress=False)
    assert calls[-1] == screen and not np.array_equal(other.mass_ratio, first.mass_ratio)


def test_a_set_cancel_stops_even_when_everything_is_kept(make_tiny, tmp_path, monkeypatch, counted):
    from headpursuit_widget.engine.errors import Cancelled

    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    m = make_tiny("llama", seed=7)
    r = hp.rank_heads(m, None, "colours", n_null=2, progress=False)
    hp.verify(m, r, k=2, n_random=2)
    counted.clear()
    hp.verify(m, r, k=2, n_random=2)
    assert counted == []  # all kept
    stop = threading.Event()
    stop.set()
    for judge in (lambda: hp.verify(m, r, k=2, n_random=2, cancel=stop), lambda: hp.refine(m, r, cancel=stop)):
        with pytest.raises(Cancelled):
            judge()


def test_the_key_is_the_same_whatever_torch_s_thread_count():
    """A weight's plain torch sum splits by thread and its last bits change with the thread count; the key's
    sums must not (a user who changes threads, or a test run in two workers, reads what was kept).
    Independent truth: numpy's float64 sum of the same weights, which the key's sums must match closely."""
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 333))
    threads = torch.get_num_threads()
    paths = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            paths.append(kept.entry_path("f" * 16, module, "readings", {"battery": 1}))
    finally:
        torch.set_num_threads(threads)
    assert paths[0] == paths[1] == paths[2]
    for p in module.parameters():
        assert engine_kept._sum(p) == pytest.approx(float(p.detach().double().numpy().sum()), rel=1e-5, abs=1e-5)
