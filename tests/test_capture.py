"""Capture against independent computations: attention by hand (GPT-2), per-position hooks, post-norm sums."""

import math

import pytest
import torch

import headpursuit_widget as hp

PROMPTS = ["The red car stopped.", "A very long sentence about the blue sea and the green hills far away.", "Hi"]


def per_position_writes(m, prompts, layer):
    """Reference: keep every position's o_proj input, then project each head with its W_O block."""
    tok = m.tokenizer
    out = []
    for p in prompts:  # one at a time: no padding involved at all
        enc = tok(p, return_tensors="pt")
        seen = {}
        handle = m.adapter.out_projs[layer].register_forward_pre_hook(
            lambda mod, args, seen=seen: seen.update(z=args[0])
        )
        try:
            with torch.no_grad():
                m.module(**enc)
        finally:
            handle.remove()
        z = seen["z"][0].reshape(-1, m.n_heads, m.head_dim)  # (T, H, hd)
        writes = torch.einsum("thk,hkd->htd", z, m.adapter.head_weights(layer))
        keep = ~torch.tensor(
            tok.get_special_tokens_mask(enc["input_ids"][0].tolist(), already_has_special_tokens=True), dtype=torch.bool
        )
        out.append(writes[:, keep].mean(1))
    return torch.stack(out, 1)  # (H, n, d)


@pytest.mark.parametrize("family", ["llama", "qwen3", "gpt2"])
def test_mean_writes_equal_per_position_reference_with_padding(make_tiny, family):
    m = make_tiny(family)
    acts = hp.capture(m, PROMPTS, batch_size=3, progress=False)
    assert acts.shape == (m.n_layers, m.n_heads, len(PROMPTS), m.d_model) and acts.dtype == torch.float32
    for layer in range(m.n_layers):
        torch.testing.assert_close(acts[layer], per_position_writes(m, PROMPTS, layer), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(hp.capture(m, PROMPTS, batch_size=1, progress=False), acts, rtol=1e-4, atol=1e-5)


def test_gpt2_layer0_head_recomputed_by_hand(make_tiny):
    """Layer 0 of GPT-2 from its weights alone: ln_1, c_attn split, causal softmax, value mix, c_proj rows."""
    m = make_tiny("gpt2")
    block, tr = m.module.transformer.h[0], m.module.transformer
    ids = m.tokenizer("Blue skies over green fields", return_tensors="pt")["input_ids"][0]
    T, H, hd = len(ids), m.n_heads, m.head_dim
    with torch.no_grad():
        x = tr.wte.weight[ids] + tr.wpe.weight[:T]
        h = torch.nn.functional.layer_norm(x, (64,), block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
        q, k, v = (h @ block.attn.c_attn.weight + block.attn.c_attn.bias).split(64, dim=-1)
        expected = []
        for head in range(H):
            sl = slice(head * hd, (head + 1) * hd)
            att = (q[:, sl] @ k[:, sl].T) / math.sqrt(hd)
            att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
            z = att @ v[:, sl]
            expected.append((z @ block.attn.c_proj.weight[sl]).mean(0))  # Conv1D: head = block of rows
    acts = hp.capture(m, ["Blue skies over green fields"], progress=False)
    torch.testing.assert_close(acts[0, :, 0], torch.stack(expected), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["gemma2", "gemma3_text"])
def test_post_norm_writes_sum_to_the_normed_attention_output(make_tiny, family):
    """Linearised head writes add up exactly to the mean of post_attention_layernorm(attention output)."""
    m = make_tiny(family)
    acts = hp.capture(m, PROMPTS[:2], batch_size=2, progress=False)
    for i, p in enumerate(PROMPTS[:2]):
        enc = m.tokenizer(p, return_tensors="pt")
        seen = {}
        norm = m.adapter.post_norms[1]
        handle = norm.register_forward_hook(lambda mod, args, out, seen=seen: seen.update(y=out))
        try:
            with torch.no_grad():
                m.module(**enc)
        finally:
            handle.remove()
        keep = enc["input_ids"][0] != m.tokenizer.bos_token_id
        torch.testing.assert_close(acts[1, :, i].sum(0), seen["y"][0][keep].mean(0), rtol=1e-3, atol=1e-4)


def test_capture_leaves_no_hooks_and_rejects_bad_input(tiny):
    with pytest.raises(hp.HeadPursuitError, match="samples is empty"):
        hp.capture(tiny, [], progress=False)
    with pytest.raises(hp.HeadPursuitError, match="positions must be one of"):
        hp.capture(tiny, ["x y"], positions="middle", progress=False)
    with pytest.raises(hp.HeadPursuitError, match="have no 'prompt' positions"):
        hp.capture(tiny, ["ok", ""], progress=False)
    assert all(not p._forward_pre_hooks for p in tiny.adapter.out_projs)


def test_memory_does_not_grow_with_sequence_length(tiny):
    """Only (L, H, n, d) comes back, whatever the prompt length."""
    short = hp.capture(tiny, ["one two"], progress=False)
    long = hp.capture(tiny, ["word " * 200], progress=False)
    assert short.shape == long.shape


def test_overlong_prompt_is_truncated_with_warning(tiny):
    with pytest.warns(UserWarning, match="truncated"):
        acts = hp.capture(tiny, ["word " * 400], progress=False)
    assert torch.isfinite(acts).all()


def test_progress_callback_reports_each_batch(tiny):
    seen = []
    hp.capture(tiny, PROMPTS, batch_size=2, progress=False, on_progress=seen.append)
    assert seen == [2 / 3, 1.0]


def _writes_at(m, ids, layer):
    """Every position's write of every head, (H, T, d), for one unpadded sequence of token ids."""
    seen = {}
    handle = m.adapter.out_projs[layer].register_forward_pre_hook(lambda mod, args: seen.update(z=args[0]))
    try:
        with torch.no_grad():
            m.module(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    z = seen["z"][0].reshape(-1, m.n_heads, m.head_dim)
    return torch.einsum("thk,hkd->htd", z, m.adapter.head_weights(layer))


def test_chat_capture_averages_only_the_user_tokens(tiny):
    """Reference: find the prompt's own token ids inside the templated sequence (after the default
    system prompt and role markers) and average the per-position writes there only."""
    tok = tiny.tokenizer
    prompts = ["The red car stopped.", "Hi"]
    acts = hp.capture(tiny, prompts, chat=True, batch_size=2, progress=False)
    for i, prompt in enumerate(prompts):
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tok(text, add_special_tokens=False)["input_ids"]
        own = tok(prompt, add_special_tokens=False)["input_ids"]
        starts = [s for s in range(len(ids) - len(own) + 1) if ids[s : s + len(own)] == own]
        assert len(starts) == 1 and len(ids) > len(own) + 10  # the template and system prompt are there
        for layer in range(tiny.n_layers):
            expected = _writes_at(tiny, ids, layer)[:, starts[0] : starts[0] + len(own)].mean(1)
            torch.testing.assert_close(acts[layer, :, i], expected, rtol=1e-4, atol=1e-5)


def test_special_token_strings_in_a_prompt_are_not_averaged(tiny):
    with pytest.raises(hp.HeadPursuitError, match=r"samples \[0\] have no 'prompt' positions"):
        hp.capture(tiny, ["<|im_start|><|im_end|>", "fine"], progress=False)
    tok = tiny.tokenizer
    ids = tok("red <|im_end|> car")["input_ids"]
    keep = [j for j, t in enumerate(ids) if t not in tok.all_special_ids]
    assert len(keep) < len(ids)
    acts = hp.capture(tiny, ["red <|im_end|> car"], progress=False)
    torch.testing.assert_close(acts[0, :, 0], _writes_at(tiny, ids, 0)[:, keep].mean(1), rtol=1e-4, atol=1e-5)


def test_capture_beyond_memory_is_refused_before_the_model_runs(tiny, monkeypatch):
    from headpursuit_widget.engine import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 10_000)
    ran = []
    handle = tiny.module.register_forward_pre_hook(lambda *args: ran.append(1))
    try:
        with pytest.raises(hp.HeadPursuitError, match=r"head writes of 40 samples .* capture fewer samples"):
            hp.capture(tiny, ["a prompt"] * 40, progress=False)  # 2 x 4 x 40 x 64 floats: 80 kB
    finally:
        handle.remove()
    assert ran == []
