"""Engine input: every bad argument gets a HeadPursuitError that names it and says what is accepted."""

import numpy as np
import pytest
import torch
import transformers as tf

import headpursuit_widget as hp
from headpursuit_widget.engine.errors import shorten

PROMPTS = ["The red car stopped", "A blue sky over green hills", "Leaves in autumn"]
WORDS = ["red", "blue", "green", "yellow", "black", "white"]


def test_missing_local_path_is_named():
    with pytest.raises(hp.HeadPursuitError, match="model path /no/such/dir does not exist"):
        hp.load_model("/no/such/dir")
    with pytest.raises(hp.HeadPursuitError, match="does not exist"):
        hp.load_model("./models/mine")


@pytest.mark.parametrize("bad", [None, 3, ["smollm2"]])
def test_load_model_needs_a_name_or_path(bad):
    with pytest.raises(hp.HeadPursuitError, match="needs a model name or path"):
        hp.load_model(bad)


def test_bad_dtype_and_device_map_are_named():
    with pytest.raises(hp.HeadPursuitError, match="dtype must be .* got 'banana'"):
        hp.load_model("smollm2", dtype="banana")
    with pytest.raises(hp.HeadPursuitError, match="dtype must be"):
        hp.load_model("smollm2", dtype=torch.int8)
    with pytest.raises(hp.HeadPursuitError, match="device_map must be .* got 'banana'"):
        hp.load_model("smollm2", device_map="banana")
    with pytest.raises(hp.HeadPursuitError, match="device_map must be"):
        hp.load_model("smollm2", device_map=True)


def test_config_without_weights_is_named(tmp_path, tokenizer):
    tf.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=4
    ).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(hp.HeadPursuitError, match="could not load the weights of"):
        hp.load_model(tmp_path)


@pytest.mark.parametrize(
    "alpha, message",
    [(1e39, "at most 3.4e\\+38 .*float32"), (-1e39, "at most"), (True, "finite number"), (np.bool_(True), "finite")],
)
def test_alphas_beyond_float32_or_bools_are_refused(tiny, alpha, message):
    with pytest.raises(hp.HeadPursuitError, match=message):
        with hp.edit_heads(tiny, {(0, 1): alpha}):
            pass
    assert all(not p._forward_pre_hooks for p in tiny.adapter.out_projs)


@pytest.mark.parametrize("alpha", [np.float32(-1.0), torch.tensor(-1.0), np.int64(-1)])
def test_numpy_and_0d_tensor_alphas_edit_like_floats(tiny, alpha):
    enc = tiny.tokenizer(PROMPTS[:1], return_tensors="pt")
    with torch.no_grad():
        with hp.edit_heads(tiny, {(1, 2): -1.0}):
            expected = tiny.module(**enc).logits
        with hp.edit_heads(tiny, {(1, 2): alpha}):
            got = tiny.module(**enc).logits
        plain = tiny.module(**enc).logits
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, plain)


def test_bools_are_not_ints(tiny):
    with pytest.raises(hp.HeadPursuitError, match="head index must be a pair of ints"):
        hp.edit_heads(tiny, {(True, 0): -1.0}).__enter__()
    with pytest.raises(hp.HeadPursuitError, match="k \\(SOMP atoms\\) must be a positive int \\(not a bool\\)"):
        hp.rank_heads(tiny, PROMPTS, WORDS, k=True, progress=False)
    with pytest.raises(hp.HeadPursuitError, match="n_null"):
        hp.rank_heads(tiny, PROMPTS, WORDS, n_null=True, progress=False)
    with pytest.raises(hp.HeadPursuitError, match="batch_size must be a positive int"):
        hp.capture(tiny, PROMPTS, batch_size=True, progress=False)
    with pytest.raises(hp.HeadPursuitError, match="max_new_tokens must be a positive int"):
        hp.generate(tiny, PROMPTS[:1], max_new_tokens=True)
    ranking = hp.rank_heads(tiny, PROMPTS, WORDS, k=3, n_null=2, progress=False)
    with pytest.raises(hp.HeadPursuitError, match="number of heads .* must be an int"):
        ranking.top(True)
    with pytest.raises(hp.HeadPursuitError, match="number of heads .* must be an int"):
        hp.random_heads(ranking, True)
    assert len(ranking.top(np.int64(2))) == 2


def test_nested_edits_of_the_same_head_are_refused(tiny):
    enc = tiny.tokenizer(PROMPTS[:1], return_tensors="pt")
    with torch.no_grad(), hp.edit_heads(tiny, {(0, 1): -1.0}):
        flipped = tiny.module(**enc).logits
        with pytest.raises(hp.HeadPursuitError, match=r"heads \[\(0, 1\)\] are already edited"):
            with hp.edit_heads(tiny, {(0, 1): -1.0, (1, 0): 0.0}):
                pass
        torch.testing.assert_close(tiny.module(**enc).logits, flipped)  # the outer edit is intact
        with hp.edit_heads(tiny, {(1, 0): 0.0}):  # another head nests fine
            with hp.edit_heads(tiny, {(0, 2): 1.0}):
                pass
    with hp.edit_heads(tiny, {(0, 1): 2.0}):  # after the block the head is free again
        pass


def test_bad_generate_options_are_named(tiny):
    with pytest.raises(hp.HeadPursuitError, match="'banana'.*accepted: .*temperature"):
        hp.generate(tiny, PROMPTS[:1], max_new_tokens=2, banana=3)
    with pytest.raises(hp.HeadPursuitError, match="'pad_token_id'"):
        hp.generate(tiny, PROMPTS[:1], max_new_tokens=2, pad_token_id=0)
    with pytest.raises(hp.HeadPursuitError, match="transformers refused the extra generate options"):
        hp.generate(tiny, PROMPTS[:1], max_new_tokens=2, num_beams=2)  # beam search cannot stream
    assert all(not p._forward_pre_hooks for p in tiny.adapter.out_projs)


def test_echoed_input_is_shortened(tiny):
    word = "q" * 100_000
    with pytest.raises(hp.HeadPursuitError) as info:
        hp.rank_heads(tiny, PROMPTS, word, progress=False)
    assert len(str(info.value)) < 500
    with pytest.warns(UserWarning) as record:
        hp.Concept.from_words("c", ["red", word], tiny.tokenizer)
    assert all(len(str(w.message)) < 500 for w in record)
    assert shorten("abcdef", 4) == "abc…" and shorten("abc", 4) == "abc"
