"""Head pursuit on vision-language models: capture over image tokens, exact edits, every class end to end.

Tiny random VLMs come from tests/vlm_factory.py; the truth they are checked against is computed
here by hand (plain hooks on the decoder's o_proj, W_O columns scaled in a copy of the model).
"""

import copy

import pytest
import torch
import vlm_factory as F

import headpursuit_widget as hp
from headpursuit_widget import image_tasks
from headpursuit_widget.engine.activations import images
from headpursuit_widget.engine.activations.vision import encode_vision

# Where transformers 5.x keeps the text decoder, and how many image tokens one 16x16 (Qwen: 56x56)
# image becomes: Llava 4x4 patches (CLS dropped); Qwen 4x4 patches merged 2x2; Idefics3 4x4 patches,
# pixel-shuffled by scale factor 2.
DECODER = {
    "llava": "language_model",
    "qwen2_vl": "language_model",
    "idefics3": "text_model",
    "llava_next": "language_model",
    "qwen2_5_vl": "language_model",
}
TOKENS_PER_IMAGE = {"llava": 16, "qwen2_vl": 4, "idefics3": 4}
PROMPTS = ["What colour is it?", "Describe the shape you can see in this picture, please.", "Name it."]


def _o_projs(module, kind):
    return [layer.self_attn.o_proj for layer in getattr(module.model, DECODER[kind]).layers]


def _no_hooks(model) -> bool:
    return all(not p._forward_pre_hooks and not p._forward_hooks for p in model.adapter.out_projs)


@pytest.fixture(scope="module")
def pics():
    return [item.image for item in images.labelled_images("shapes", 1)[:3]]


@pytest.mark.parametrize("kind", sorted(TOKENS_PER_IMAGE))
def test_capture_equals_manual_mean_over_image_tokens(kind, pics):
    module, proc = F.build(kind)
    model = hp.wrap(module, proc)
    samples = list(zip(pics, PROMPTS))
    got = {
        pos: hp.capture(model, samples, positions=pos, batch_size=2, progress=False)
        for pos in ("image", "prompt", "all")
    }

    # Manual: the processor on hand-written placeholders, every o_proj input kept, means by hand.
    ph = "<|vision_start|><|image_pad|><|vision_end|>" if kind == "qwen2_vl" else "<image>"
    texts = [ph + p for p in PROMPTS]
    enc = proc(text=texts, images=[[im] for im in pics], padding=True, return_tensors="pt")
    ids = enc["input_ids"]
    is_img = ids == module.config.image_token_id
    assert is_img.sum(1).tolist() == [TOKENS_PER_IMAGE[kind]] * 3
    zs, handles = (
        [],
        [p.register_forward_pre_hook(lambda m, a: zs.append(a[0].detach())) for p in _o_projs(module, kind)],
    )
    try:
        with torch.no_grad():
            module(**enc)
    finally:
        for h in handles:
            h.remove()
    n_heads, hd = 4, 8
    for layer, (z, proj) in enumerate(zip(zs, _o_projs(module, kind))):
        for i, prompt in enumerate(PROMPTS):
            txt_ids = proc.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            last, n = int(is_img[i].nonzero().max()), len(txt_ids)
            end = next(j for j in range(last + 1, ids.shape[1]) if ids[i, j : j + n].tolist() == txt_ids)
            assert end <= last + 2  # right after the image (and its closing marker, if any)
            for pos, rows in (
                ("image", is_img[i].nonzero().flatten()),
                ("prompt", torch.arange(end, end + len(txt_ids))),
            ):
                zmean = z[i, rows].mean(0)
                for h in range(n_heads):
                    w = zmean[h * hd : (h + 1) * hd] @ proj.weight[:, h * hd : (h + 1) * hd].T
                    torch.testing.assert_close(got[pos][layer, h, i], w, rtol=1e-4, atol=1e-6)
    # "all" is the token-count weighted mix of the two.
    n_img = torch.tensor(float(TOKENS_PER_IMAGE[kind]))
    n_txt = torch.tensor([len(proc.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in PROMPTS]).float()
    mix = (got["image"] * n_img + got["prompt"] * n_txt[:, None]) / (n_img + n_txt)[:, None]
    torch.testing.assert_close(got["all"], mix, rtol=1e-4, atol=1e-6)
    assert _no_hooks(model)


@pytest.mark.parametrize("kind", ["llava_next", "qwen2_5_vl"])
def test_edits_equal_baked_weights_with_kv_cache(kind, pics):
    module, proc = F.build(kind)
    model = hp.wrap(module, proc)
    edits = {(0, 1): -1.0, (1, 3): 0.0, (1, 0): 3.0}
    baked = copy.deepcopy(module)
    with torch.no_grad():
        for (layer, head), alpha in edits.items():
            _o_projs(baked, kind)[layer].weight[:, head * 8 : (head + 1) * 8] *= alpha
    samples = list(zip(pics[:2], PROMPTS[:2]))
    batch = encode_vision(model, samples, positions="all", padding_side="left")
    kw = dict(
        max_new_tokens=6,
        do_sample=False,
        output_scores=True,
        return_dict_in_generate=True,
        pad_token_id=proc.tokenizer.pad_token_id,
    )
    with torch.no_grad():
        with hp.edit_heads(model, edits):
            hooked = module.generate(**batch.inputs, **kw)
        plain = module.generate(**batch.inputs, **kw)
        ref = baked.generate(**batch.inputs, **kw)
    assert _no_hooks(model)
    assert torch.equal(hooked.sequences, ref.sequences)
    for a, b in zip(hooked.scores, ref.scores):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(hooked.scores[0], plain.scores[0])  # the edit does something
    texts = hp.generate(model, PROMPTS[:2], images=pics[:2], edits=edits, max_new_tokens=6, chat=False)
    assert texts == hp.generate(hp.wrap(baked, proc), PROMPTS[:2], images=pics[:2], max_new_tokens=6, chat=False)


@pytest.mark.parametrize("kind", F.KINDS)
def test_each_class_wrap_rank_edit_generate(kind):
    module, proc = F.build(kind)
    model = hp.wrap(module, proc)
    assert model.is_vlm and (model.n_layers, model.n_heads, model.head_dim, model.d_model) == (2, 4, 8, 32)
    samples = images.samples("colours", 1)[:6]
    r = hp.rank_heads(model, samples, images.class_names("colours"), positions="image", k=5, n_null=2, progress=False)
    assert r.scores.shape == (2, 4) and len(r.top(2)) == 2
    edits = {head: -1.0 for head in r.top(2)}
    pics, prompts = [s[0] for s in samples[:2]], [s[1] for s in samples[:2]]
    batch = encode_vision(model, samples[:2], positions="all")
    with torch.no_grad():
        base = module(**batch.inputs).logits
        with hp.edit_heads(model, edits):
            edited = module(**batch.inputs).logits
    assert not torch.allclose(base, edited)
    texts = hp.generate(model, prompts, images=pics, edits=edits, max_new_tokens=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert _no_hooks(model)


def test_smollm2_inside_a_vlm_keeps_its_text_behaviour(smollm2):
    """Llava with SmolLM2 as its language module: text captures and logits equal SmolLM2's own,
    so its generations stay meaningful."""
    module, proc = F.build("llava", text_model=smollm2.module)
    model = hp.wrap(module, proc)
    assert (model.n_layers, model.n_heads, model.head_dim, model.d_model) == (30, 9, 64, 576)
    prompts = ["The capital of France is", "Red, green and"]
    torch.testing.assert_close(
        hp.capture(model, prompts, progress=False), hp.capture(smollm2, prompts, progress=False), rtol=1e-4, atol=1e-5
    )
    enc = smollm2.tokenizer(prompts[:1], return_tensors="pt")
    with torch.no_grad():
        want, got = smollm2.module(**enc).logits, module(**enc).logits
    torch.testing.assert_close(got[..., : want.shape[-1]], want, rtol=1e-4, atol=1e-4)
    assert "Paris" in hp.generate(model, prompts[:1], max_new_tokens=3, chat=False)[0]
    pic = images.labelled_images("colours", 1)[0].image
    answer = hp.generate(model, ["What colour is the shape?"], images=[pic], max_new_tokens=4)
    assert len(answer) == 1 and answer[0].strip()


@pytest.mark.parametrize("kind", ["llava_next", "qwen2_5_vl"])
def test_documented_recipe_runs_on_a_saved_tiny_model(kind, tmp_path):
    """docs/vlm.md: hp.load_model(folder or cached hub id, device_map="auto") + image_tasks.run_image_task."""
    module, proc = F.build(kind)
    module.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    model = hp.load_model(str(tmp_path), dtype=torch.float32, device_map="auto")
    assert model.is_vlm and type(model.module) is type(module)
    report = image_tasks.run_image_task(
        model, "digits", n_per_class=1, top=2, max_new_tokens=3, k=5, n_null=2, progress=False
    )
    assert report["heads"] == report["ranking"].top(2) and report["labels"] == images.class_names("digits")
    assert sorted(l for l, _ in report["random_heads"]) == sorted(l for l, _ in report["heads"])
    pairs = images.samples("digits", 1)
    assert report["answers"]["baseline"] == hp.generate(
        model, [p for _, p in pairs], images=[i for i, _ in pairs], max_new_tokens=3
    )
    edited = hp.generate(
        model,
        [p for _, p in pairs],
        images=[i for i, _ in pairs],
        max_new_tokens=3,
        edits={h: -1.0 for h in report["heads"]},
    )
    assert report["answers"]["top"] == edited
    assert set(report["accuracy"]) == {"baseline", "top", "random"}


def test_answers_are_scored_by_whole_words():
    assert image_tasks.is_correct("It is a Three.", "three", "digits")
    assert image_tasks.is_correct("The digit is 3", "three", "digits")
    assert not image_tasks.is_correct("thirteen or 13", "three", "digits")
    assert image_tasks.is_correct("A red square", "red", "colours") and not image_tasks.is_correct(
        "reddish", "red", "colours"
    )
