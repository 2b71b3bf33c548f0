"""Edited passes that start at the first edited layer (engine/editing/prefix.py, probes.next_token_logprobs_each)
give the full forward's log-probabilities - against copies of the model with W_O edited directly - skip
the blocks before that layer, and leave the model as it was, also when stopped midway."""

import threading

import pytest
import torch
from conftest import FAMILIES

from headpursuit_widget.engine.errors import Cancelled
from headpursuit_widget.engine.judging.probes import next_token_logprobs, next_token_logprobs_each, passes
from headpursuit_widget.testing import baked

PROMPTS = ["The red car", "A much longer prompt about the blue sea and the green hills", "Hi", "One two three"]


def full_forward_logprobs(model, prompts, edits):
    """The reference: the whole model with the edits baked into its weights (no hooks, no skipped blocks)."""
    return next_token_logprobs(baked(model, edits or {}), prompts)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_edit_set_matches_the_model_with_weights_edited(make_tiny, family):
    m = make_tiny(family)
    sets = [None, {(1, 0): -1.0}, {(0, 2): 0.0, (1, 3): 2.0}, {(1, 1): -1.0, (1, 2): 0.5}]
    got = next_token_logprobs_each(m, PROMPTS, sets, batch_size=3)
    for edits, lp in zip(sets, got):
        torch.testing.assert_close(lp, full_forward_logprobs(m, PROMPTS, edits), atol=2e-5, rtol=1e-5)
    assert not torch.allclose(got[0], got[1])  # the edit changed something


def test_blocks_before_the_first_edited_layer_run_once_per_batch(make_tiny):
    m = make_tiny("llama")
    calls = [0] * m.n_layers
    handles = [
        block.register_forward_pre_hook(lambda mod, args, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, block in enumerate(m.adapter.blocks)
    ]
    ticks = []
    try:
        sets = [None, {(1, 0): -1.0}, {(1, 2): -1.0}, {(0, 1): -1.0}]
        next_token_logprobs_each(m, PROMPTS, sets, batch_size=2, on_pass=lambda: ticks.append(1))
    finally:
        for h in handles:
            h.remove()
    # 2 batches: layer 0 runs for the unedited pass and the layer-0 edit only; layer 1 for all four
    assert calls == [2 * 2, 2 * 4]
    assert len(ticks) == passes(PROMPTS, sets, batch_size=2) == 2 * 4


def test_without_an_unedited_pass_every_set_runs_whole(make_tiny):
    m = make_tiny("llama")
    calls = [0]
    handle = m.adapter.blocks[0].register_forward_pre_hook(lambda mod, args: calls.__setitem__(0, calls[0] + 1))
    try:
        got = next_token_logprobs_each(m, PROMPTS, [{(1, 0): -1.0}, {(1, 1): -1.0}], batch_size=4)
    finally:
        handle.remove()
    assert calls == [2] and passes(PROMPTS, [{(1, 0): -1.0}, {(1, 1): -1.0}], batch_size=4) == 2
    torch.testing.assert_close(got[1], full_forward_logprobs(m, PROMPTS, {(1, 1): -1.0}), atol=2e-5, rtol=1e-5)


def test_a_stop_midway_leaves_the_model_whole(make_tiny):
    m = make_tiny("llama")
    blocks = list(m.adapter.blocks)
    before = full_forward_logprobs(m, PROMPTS, None)
    cancel = threading.Event()
    seen = []

    def on_pass():
        seen.append(1)
        if len(seen) == 2:  # after the first edited pass, while block 0 stands replaced by its recording
            cancel.set()

    with pytest.raises(Cancelled):
        next_token_logprobs_each(m, PROMPTS, [None, {(1, 0): -1.0}, {(1, 1): -1.0}], cancel=cancel, on_pass=on_pass)
    assert list(m.adapter.blocks) == blocks and all(type(b).__name__ != "_Recorded" for b in m.module.modules())
    assert not any(b._forward_hooks or b._forward_pre_hooks for b in m.module.modules())
    torch.testing.assert_close(next_token_logprobs_each(m, PROMPTS, [None])[0], before, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("remote", [False, "local"], ids=["in-process", "serialised"])
def test_nnsight_passes_match_and_skip_only_in_process(make_tiny, remote):
    pytest.importorskip("nnsight")
    import headpursuit_widget as hp

    m = make_tiny("llama")
    nn_model = hp.wrap(m.module, m.tokenizer, name=m.name, backend="nnsight", remote=remote)
    calls = [0]
    handle = m.adapter.blocks[0].register_forward_pre_hook(lambda mod, args: calls.__setitem__(0, calls[0] + 1))
    sets = [None, {(1, 0): -1.0}, {(1, 3): 2.0}]
    try:
        got = next_token_logprobs_each(nn_model, PROMPTS, sets, batch_size=4)
    finally:
        handle.remove()
    for edits, lp in zip(sets, got):
        torch.testing.assert_close(lp, full_forward_logprobs(m, PROMPTS, edits), atol=2e-5, rtol=1e-5)
    assert calls == [1 if remote is False else len(sets)]  # serialised traces run every pass whole, as a server would
