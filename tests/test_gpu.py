"""CUDA checks (marker gpu; skipped without a GPU): the engine gives the CPU's answers on the GPU."""

import pytest
import torch

import headpursuit_widget as hp
from headpursuit_widget.testing import baked

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
PROMPTS = ["The red car stopped at the light.", "Blue and green flags", "A yellow sun over a grey sea at dusk"]
WORDS = ["red", "blue", "green", "yellow", "grey", "white", "black"]


def on_cuda(m, dtype=torch.float32):
    import copy

    return hp.wrap(copy.deepcopy(m.module).to("cuda", dtype), m.tokenizer, name=m.name)


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "gpt2"])
def test_capture_and_ranking_match_cpu(make_tiny, family):
    cpu = make_tiny(family)
    gpu = on_cuda(cpu)
    a, b = hp.capture(cpu, PROMPTS, progress=False), hp.capture(gpu, PROMPTS, progress=False)
    assert b.device.type == "cpu"
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    r_cpu = hp.rank_heads(cpu, PROMPTS, WORDS, k=5, n_null=3, progress=False)
    r_gpu = hp.rank_heads(gpu, PROMPTS, WORDS, k=5, n_null=3, progress=False)
    assert abs(r_cpu.scores - r_gpu.scores).max() < 1e-3


def test_somp_on_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    H, D = torch.randn(64, 20, 96, generator=g), torch.randn(3, 40, 96, generator=g)
    a, b = hp.somp(H, D, 12), hp.somp(H.cuda(), D.cuda(), 12)
    assert torch.equal(a.atoms, b.atoms.cpu())
    torch.testing.assert_close(a.evr, b.evr.cpu(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_edits_equal_baked_weights_on_cuda_with_kv_cache(make_tiny, dtype):
    m = on_cuda(make_tiny("llama"), dtype)
    edits = {(0, 1): -1.0, (1, 3): 0.0, (1, 0): 2.0}  # exact in bf16 too
    ref = baked(m, edits)
    assert hp.generate(m, PROMPTS, edits=edits, max_new_tokens=8, chat=False) == hp.generate(
        ref, PROMPTS, max_new_tokens=8, chat=False
    )
    assert all(not p._forward_pre_hooks for p in m.adapter.out_projs)


def test_load_model_with_device_map_auto(tmp_path, make_tiny):
    m = make_tiny("qwen3")
    m.module.save_pretrained(tmp_path)
    m.tokenizer.save_pretrained(tmp_path)
    loaded = hp.load_model(str(tmp_path), dtype=torch.bfloat16, device_map="auto")
    assert loaded.device.type == "cuda"
    acts = hp.capture(loaded, PROMPTS, progress=False)
    assert torch.isfinite(acts).all() and acts.shape == (2, 4, 3, 64)
    assert len(hp.generate(loaded, PROMPTS[:1], edits={(1, 1): -1.0}, max_new_tokens=4, chat=False)) == 1
