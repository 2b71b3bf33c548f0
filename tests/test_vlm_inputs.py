"""VLM inputs: image formats, bad input, processors without (or with a broken) torchvision, the image set."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import vlm_factory as F

import headpursuit_widget as hp
from headpursuit_widget.engine.activations import images
from headpursuit_widget.engine.activations.vision import encode_vision, load_image
from headpursuit_widget.engine.models import processor
from headpursuit_widget.engine.models.processor import load_processor

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def llava():
    module, proc = F.build("llava")
    return hp.wrap(module, proc)


@pytest.fixture(scope="module")
def pic():
    return images.labelled_images("digits", 1)[3].image


def test_pil_array_float_array_and_path_give_the_same_capture(llava, pic, tmp_path):
    path = tmp_path / "three.png"
    pic.save(path)
    arr = np.asarray(pic)
    forms = [pic, arr, arr / 255.0, str(path), path]
    caps = [hp.capture(llava, [(im, "Which digit?")], positions="image", progress=False) for im in forms]
    for c in caps[1:]:
        torch.testing.assert_close(c, caps[0], rtol=0, atol=1e-6)
    dict_cap = hp.capture(llava, [{"image": pic, "prompt": "Which digit?"}], positions="image", progress=False)
    torch.testing.assert_close(dict_cap, caps[0], rtol=0, atol=0)
    other = hp.capture(
        llava, [(images.labelled_images("digits", 1)[7].image, "Which digit?")], positions="image", progress=False
    )
    assert not torch.allclose(other, caps[0])  # the image really is what is averaged over


def test_two_images_in_one_sample_count_both(llava, pic):
    batch = encode_vision(llava, [([pic, pic], "<image> and <image>: same digit?")], positions="image")
    assert int(batch.select.sum()) == 2 * 16


def test_prompt_and_all_positions_exclude_padding(llava, pic):
    samples = [(pic, "Which digit?"), (pic, "Which digit is written in this small square image?")]
    for side in ("left", "right"):
        b = encode_vision(llava, samples, positions="prompt", padding_side=side)
        n_txt = [len(llava.tokenizer(p, add_special_tokens=False)["input_ids"]) for _, p in samples]
        assert b.select.sum(1).tolist() == n_txt
        assert not (b.select & ~b.inputs["attention_mask"].bool()).any()


def test_images_without_a_processor_is_a_clear_error(pic):
    module, proc = F.build("llava")
    model = hp.wrap(module, proc.tokenizer)
    assert not model.is_vlm
    with pytest.raises(hp.HeadPursuitError, match="processor"):
        hp.capture(model, [(pic, "Which digit?")], progress=False)
    with pytest.raises(hp.HeadPursuitError, match="processor"):
        hp.generate(model, ["Which digit?"], images=[pic], max_new_tokens=2)


def test_processor_of_another_model_is_a_clear_error(pic):
    module, _ = F.build("llava")
    _, qwen_proc = F.build("qwen2_vl")
    with pytest.raises(hp.HeadPursuitError, match="does not match"):
        hp.wrap(module, qwen_proc)


@pytest.mark.parametrize(
    "sample, match",
    [
        (("IMG", "<image> and <image>: which digits?"), "2 image token"),
        ((["IMG", "IMG"], "<image> which digit?"), "1 image token"),
        ((123, "Which digit?"), "unsupported image type"),
        (("/no/such/file.png", "Which digit?"), "not found"),
        ((np.zeros((4, 4, 2)), "Which digit?"), r"\(H, W\)"),
        ({"image": "IMG"}, "'prompt'"),
    ],
)
def test_bad_samples_are_clear_errors(llava, pic, sample, match):
    def fill(x):
        return pic if isinstance(x, str) and x == "IMG" else [fill(i) for i in x] if isinstance(x, list) else x

    sample = {k: fill(v) for k, v in sample.items()} if isinstance(sample, dict) else (fill(sample[0]), sample[1])
    with pytest.raises(hp.HeadPursuitError, match=match):
        hp.capture(llava, [sample], positions="image", progress=False)


def test_mixed_and_text_only_samples(llava, pic):
    with pytest.raises(hp.HeadPursuitError, match="no image"):
        hp.capture(llava, [(pic, "Which digit?"), "Just text"], progress=False)
    with pytest.raises(hp.HeadPursuitError, match="image"):
        hp.capture(llava, ["Just text", "More text"], positions="image", progress=False)
    acts = hp.capture(llava, ["Just text", "More text"], positions="prompt", progress=False)
    assert acts.shape == (2, 4, 2, 32)
    with pytest.raises(hp.HeadPursuitError, match="images"):
        hp.generate(llava, ["a", "b"], images=[pic], max_new_tokens=2)


@pytest.mark.parametrize("kind", ["llava", "qwen2_vl", "smolvlm"])
def test_saved_processor_reloads_without_torchvision(kind, pic, tmp_path, monkeypatch):
    """Without torchvision AutoProcessor fails for classes with a video processor (Qwen, SmolVLM)."""
    monkeypatch.setattr(processor, "_torchvision_usable", lambda: False)  # also where it is installed
    module, proc = F.build(kind)
    proc.save_pretrained(tmp_path)
    loaded = load_processor(tmp_path)
    assert type(loaded).__name__ == type(proc).__name__
    model, model2 = hp.wrap(module, proc), hp.wrap(module, loaded)
    a, b = (
        encode_vision(model, [(pic, "Which digit?")], chat=True),
        encode_vision(model2, [(pic, "Which digit?")], chat=True),
    )
    assert a.inputs.keys() == b.inputs.keys()
    for key in a.inputs:
        torch.testing.assert_close(a.inputs[key], b.inputs[key], rtol=0, atol=0)


@pytest.mark.subprocess
def test_broken_torchvision_falls_back_to_pil(pic, tmp_path):
    """A torchvision that fails on import (built for another torch) breaks transformers' image
    processors, PIL ones included; hp.load_model hides it and loads the PIL path."""
    fake = tmp_path / "site" / "torchvision"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    module, proc = F.build("qwen2_vl")
    saved = tmp_path / "qwen2_vl"
    module.save_pretrained(saved)
    proc.save_pretrained(saved)
    pic.save(tmp_path / "pic.png")
    want = hp.capture(hp.wrap(module, proc), [(pic, "Which digit?")], positions="image", progress=False)
    script = textwrap.dedent(f"""
        import sys, torch, transformers
        if sys.argv[1] == "plain":
            transformers.AutoProcessor.from_pretrained({str(saved)!r})
        else:
            import headpursuit_widget as hp
            model = hp.load_model({str(saved)!r})
            acts = hp.capture(model, [({str(tmp_path / "pic.png")!r}, "Which digit?")], positions="image")
            torch.save(acts, {str(tmp_path / "acts.pt")!r})
    """)
    path = [str(tmp_path / "site"), str(REPO), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}
    runs = {
        mode: subprocess.run([sys.executable, "-c", script, mode], env=env, capture_output=True, text=True, timeout=120)
        for mode in ("plain", "engine")
    }
    assert runs["plain"].returncode != 0 and "torchvision" in runs["plain"].stderr  # the failure is real
    assert runs["engine"].returncode == 0, runs["engine"].stderr[-2000:]
    torch.testing.assert_close(torch.load(tmp_path / "acts.pt"), want, rtol=1e-5, atol=1e-6)


def test_image_set_is_deterministic_and_drawn_as_labelled():
    for task in images.TASKS:
        items = images.labelled_images(task, 2, seed=3)
        names = images.class_names(task)
        assert [i.label for i in items] == names * 2
        again = images.labelled_images(task, 2, seed=3)
        assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image)) for a, b in zip(items, again))
        assert all(i.image.size == (64, 64) and i.image.mode == "RGB" for i in items)
    for item in images.labelled_images("colours", 2):
        px = np.asarray(item.image).reshape(-1, 3)
        colours, counts = np.unique(px, axis=0, return_counts=True)
        top2 = {tuple(c) for c in colours[np.argsort(counts)[-2:]]}  # background and the shape
        assert images.COLOURS[item.label] in top2
    digits = images.labelled_images("digits", 1)
    assert len({np.asarray(d.image).tobytes() for d in digits}) == 10
    one, eight = ((np.asarray(digits[k].image) != np.asarray(digits[k].image)[0, 0]).any(-1).sum() for k in (1, 8))
    assert 0 < one < eight  # an "8" has more ink than a "1"


def test_png_bytes_round_trip(pic):
    from io import BytesIO

    from PIL import Image

    png = images.to_png(pic)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(BytesIO(png))), np.asarray(pic))
    assert np.array_equal(np.asarray(load_image(np.asarray(pic))), np.asarray(pic))


def test_sample_key_follows_prompt_and_pixels(pic):
    from headpursuit_widget.engine.activations.vision import sample_key

    key = sample_key((pic, "Which digit?"))
    assert key == sample_key({"image": np.asarray(pic), "prompt": "Which digit?"})
    assert key != sample_key((pic, "Which digit is it?"))
    assert key != sample_key((pic.rotate(90), "Which digit?"))
    assert sample_key("Which digit?") != key
