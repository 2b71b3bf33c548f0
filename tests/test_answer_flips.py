"""The answer-position screen (engine/judging/answer_flips.py) against a slow reference: each prompt run
alone, whole, without a cache, with the head's input scaled at the last position only by a hook."""

import numpy as np
import pytest
import torch

import headpursuit_widget as hp
from headpursuit_widget.engine.activations.inputs import encode
from headpursuit_widget.engine.concepts.contexts import eliciting_contexts
from headpursuit_widget.engine.judging import categories
from headpursuit_widget.engine.judging.answer_flips import answer_flips
from headpursuit_widget.engine.judging.effects import effects


def _reference(m, bat, head, alpha):
    """(n_prompts, n_columns) log-probabilities with `head` scaled by alpha at each prompt's last position."""
    layer, h = head or (0, 0)
    hd = m.head_dim
    columns = categories.reading_columns(m.tokenizer, bat)

    def hook(module, args):
        x = args[0].clone()
        x[:, -1, h * hd : (h + 1) * hd] *= alpha
        return (x, *args[1:])

    rows = []
    handle = m.adapter.out_projs[layer].register_forward_pre_hook(hook) if head else None
    try:
        with torch.inference_mode():
            for prompt in bat.prompts:
                inputs = encode(m, [prompt], positions="last").inputs
                logits = m.module(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
                rows.append(logits[0, -1].float().log_softmax(-1)[columns])
    finally:
        if handle is not None:
            handle.remove()
    return categories.readings(m.tokenizer, bat, columns, [torch.stack(rows)])[0]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma2", "gemma3_text", "qwen3"])
def test_answer_flips_equal_a_whole_forward_edited_at_the_last_position(make_tiny, family):
    m = make_tiny(family)
    record = hp.rank_heads(m, None, "colours", n_null=2, refine=False, progress=False).concept
    prompts = eliciting_contexts("colours", record["words"], part="rank")[:4]
    bat = categories.battery(m, record, prompts, part="rank")
    got = answer_flips(m, bat, -1.0)
    assert len(got) == 1 + m.n_layers * m.n_heads
    for head in [None, (0, 1), (m.n_layers - 1, m.n_heads - 1), (1, 0)]:
        want = _reference(m, bat, head, -1.0)
        reading = got[0 if head is None else 1 + head[0] * m.n_heads + head[1]]
        assert reading.mass == pytest.approx(want.mass, rel=1e-3), (family, head)
        np.testing.assert_allclose(reading.other_masses, want.other_masses, rtol=1e-3)
        np.testing.assert_allclose(reading.control, want.control, atol=1e-3)
    # the edit is really applied: flipping a head changes the readings somewhere
    assert any(abs(r.mass - got[0].mass) > 1e-6 for r in got[1:])


def test_the_answer_screen_marks_only_its_checked_heads_exact(make_tiny):
    m = make_tiny("llama")
    exact = effects(m, "colours", method="exact", progress=False)
    est = effects(m, "colours", method="answer", n_check=3, progress=False)
    assert est.exact.sum() == 3 and est.method == "answer"
    np.testing.assert_allclose(est.mass_ratio[est.exact], exact.mass_ratio[est.exact], rtol=1e-4)
    # the last layer's heads write at the answer only through the last position: the screen is exact there
    np.testing.assert_allclose(est.mass_ratio[-1], exact.mass_ratio[-1], rtol=1e-3)
