"""Hooks equal baked weights (also through the KV cache); hooks always removed; bad edits rejected up front."""

import pytest
import torch

import headpursuit_widget as hp
from headpursuit_widget.testing import baked

PROMPTS = ["The colour of the sky is", "Paris is the capital of"]


def greedy(m, enc, n):
    return m.module.generate(
        **enc,
        max_new_tokens=n,
        do_sample=False,
        pad_token_id=m.tokenizer.pad_token_id,
        output_scores=True,
        return_dict_in_generate=True,
        use_cache=True,
    )


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen3", "gemma3_text"])
def test_hooks_equal_baked_weights_with_kv_cache(make_tiny, family):
    m = make_tiny(family)
    edits = {(0, 1): -1.0, (1, 3): 0.0, (1, 0): 5.0}
    ref = baked(m, edits)
    enc = m.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with hp.edit_heads(m, edits):
        logits = m.module(**enc).logits
        hooked = greedy(m, enc, 8)
    torch.testing.assert_close(logits, ref.module(**enc).logits, rtol=1e-4, atol=1e-4)
    expected = greedy(ref, enc, 8)
    assert torch.equal(hooked.sequences, expected.sequences)
    for a, b in zip(hooked.scores, expected.scores):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    plain = m.module(**enc).logits  # hooks gone: back to the unedited model
    assert not torch.allclose(plain, logits)
    assert all(not p._forward_pre_hooks for p in m.adapter.out_projs)


def test_generate_with_edits_matches_baked_model(tiny):
    edits = {(1, 2): -1.0, (0, 0): 3.0}
    ref = baked(tiny, edits)
    assert hp.generate(tiny, PROMPTS, edits=edits, max_new_tokens=6, chat=False) == hp.generate(
        ref, PROMPTS, max_new_tokens=6, chat=False
    )


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_hooks_removed_on_exceptions_and_interrupts(tiny, error):
    with pytest.raises(error), hp.edit_heads(tiny, {(0, 0): -1.0, (1, 1): 0.0}):
        assert any(p._forward_pre_hooks for p in tiny.adapter.out_projs)
        raise error("stop")
    assert all(not p._forward_pre_hooks for p in tiny.adapter.out_projs)


@pytest.mark.parametrize(
    "edits, message",
    [
        ({(0, 0): float("nan")}, "finite number"),
        ({(0, 0): float("inf")}, "finite number"),
        ({(0, 0): "x"}, "finite number"),
        ({(2, 0): -1.0}, "out of range"),
        ({(0, 9): -1.0}, "out of range"),
        ({"1-2": -1.0}, "not 'layer.head'"),
        ([(0, 0)], "must be a dict"),
    ],
)
def test_bad_edits_rejected_before_anything_is_applied(tiny, edits, message):
    good = {(0, 1): -1.0}
    with pytest.raises(hp.HeadPursuitError, match=message):
        with hp.edit_heads(tiny, {**good, **edits} if isinstance(edits, dict) else edits):
            pass
    assert all(not p._forward_pre_hooks for p in tiny.adapter.out_projs)


def test_string_keys_and_numpy_ints_are_accepted(tiny):
    import numpy as np

    enc = tiny.tokenizer(PROMPTS[:1], return_tensors="pt")
    with hp.edit_heads(tiny, {"1.2": -1.0}):
        a = tiny.module(**enc).logits
    with hp.edit_heads(tiny, {(np.int64(1), np.int64(2)): -1.0}):
        b = tiny.module(**enc).logits
    torch.testing.assert_close(a, b)


def test_threads_do_not_mix_hooks(tiny):
    """A generation with edits on another thread never leaks its hooks into a capture on this one."""
    import threading

    prompts = ["The red car", "A blue sky over green hills"]
    clean = hp.capture(tiny, prompts, progress=False)
    started = threading.Event()
    worker = threading.Thread(
        target=lambda: hp.generate(
            tiny,
            ["Once upon a time"],
            edits={(0, 0): 0.0, (1, 1): -1.0},
            max_new_tokens=30,
            chat=False,
            on_token=lambda i, p: started.set(),
        )
    )
    worker.start()
    started.wait(10)
    during = hp.capture(tiny, prompts, progress=False)
    worker.join()
    torch.testing.assert_close(during, clean)
