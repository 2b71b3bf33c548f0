"""Adapters for every supported text family: layout read from the model, clear errors otherwise."""

import pytest
import torch
import transformers as tf
from conftest import FAMILIES

import headpursuit_widget as hp
from headpursuit_widget.engine.models.adapters import SUPPORTED


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_layout_comes_from_the_output_projection(make_tiny, family):
    m = make_tiny(family)
    conf = m.module.config
    assert m.n_layers == 2 and m.n_heads == 4 and m.d_model == 64
    expected = getattr(conf, "head_dim", None) or 16
    assert m.head_dim == expected
    assert m.adapter.approximate == (family in ("gemma2", "gemma3_text"))
    W = m.adapter.head_weights(1)
    assert W.shape == (4, expected, 64)
    z = torch.randn(3, 4 * expected)
    proj = m.adapter.out_projs[1]
    bias = getattr(proj, "bias", None)
    direct = proj(z) - (bias if bias is not None else 0)
    by_heads = torch.einsum("bhk,hkd->bd", z.reshape(3, 4, expected), W)
    torch.testing.assert_close(direct, by_heads, rtol=1e-5, atol=1e-5)


def test_unsupported_architecture_lists_supported(tokenizer):
    conf = tf.BloomConfig(hidden_size=32, n_layer=1, n_head=4, vocab_size=len(tokenizer))
    model = tf.AutoModelForCausalLM.from_config(conf)
    with pytest.raises(hp.HeadPursuitError, match="unsupported architecture 'bloom'.*llama"):
        hp.wrap(model, tokenizer)
    assert "gpt2" in SUPPORTED and "qwen2_5_vl" in SUPPORTED


def test_load_model_refuses_an_unsupported_folder_before_loading_weights(tmp_path):
    tf.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64).save_pretrained(
        tmp_path
    )  # a config alone: no weights to load, so only the architecture check can answer
    with pytest.raises(hp.HeadPursuitError, match="unsupported architecture 'bert'.*llama"):
        hp.load_model(str(tmp_path))


def test_unknown_model_name_is_explained():
    with pytest.raises(hp.HeadPursuitError, match="unknown model 'no-such-model'.*smollm2"):
        hp.load_model("no-such-model")
    with pytest.raises(hp.HeadPursuitError, match="GGUF file not found"):
        hp.load_model("/nonexistent/x.gguf")
    with pytest.raises(hp.HeadPursuitError, match="offline"):
        hp.load_model("some-org/not-cached-model")


def test_head_index_checks(tiny):
    for bad in [(2, 0), (0, 4), (-1, 0)]:
        with pytest.raises(hp.HeadPursuitError, match="out of range"):
            tiny.adapter.check_head(*bad)
