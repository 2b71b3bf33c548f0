"""Baked edits: hp.bake's copy generates what hooked generation does, saves, and loads without this package.

Every tiny family: same greedy tokens (hp.generate with edits= against hp.generate on the baked copy,
KV cache on) and the same logits; the folder `bake(..., out=)` writes loads with plain transformers in a
process where headpursuit_widget cannot be imported, and gives the same logits and tokens there. Bad
input gets edit_heads' own errors, before anything is copied or written. SmolLM2: baked == hooked.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import FAMILIES

import headpursuit_widget as hp
from headpursuit_widget.cli import main
from headpursuit_widget.engine.editing.bake import CONFIG_KEY

EDITS = {(0, 1): -1.0, (1, 2): 0.0, (1, 0): 2.5}
PROMPTS = ["The colour of the sky is", "Paris is the capital of"]


def _logits(module, ids):
    with torch.no_grad():
        return module(input_ids=ids).logits


def _state(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_baked_model_generates_what_hooked_generation_does(family, make_tiny):
    m = make_tiny(family)
    before = _state(m.module)
    baked = hp.bake(m, EDITS)
    assert type(baked) is type(m.module) and baked is not m.module
    after = m.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the user's model is untouched
    assert getattr(baked.config, CONFIG_KEY) == {"0.1": -1.0, "1.2": 0.0, "1.0": 2.5}
    assert not hasattr(m.module.config, CONFIG_KEY)

    want = hp.generate(m, PROMPTS, edits=EDITS, max_new_tokens=10)
    assert hp.generate(hp.wrap(baked, m.tokenizer), PROMPTS, max_new_tokens=10) == want
    ids = m.tokenizer(PROMPTS[0], return_tensors="pt").input_ids
    with hp.edit_heads(m, EDITS):
        hooked = _logits(m.module, ids)
    torch.testing.assert_close(_logits(baked, ids), hooked, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(_logits(m.module, ids), hooked, atol=1e-3)  # the edit does something


def test_only_the_edited_heads_slices_change(make_tiny):
    for family in ("llama", "gpt2"):
        m = make_tiny(family)
        baked = hp.bake(m, {"1.2": -1})
        old, new = m.adapter.head_weights(1), hp.wrap(baked, m.tokenizer).adapter.head_weights(1)
        torch.testing.assert_close(new[2], -old[2], rtol=0, atol=0)
        keep = [h for h in range(m.n_heads) if h != 2]
        assert torch.equal(new[keep], old[keep])
        changed = [k for k, v in baked.state_dict().items() if not torch.equal(v, m.module.state_dict()[k])]
        assert len(changed) == 1 and ("o_proj" in changed[0] or "c_proj" in changed[0]), changed


def test_baking_twice_multiplies_and_a_plain_module_bakes_too(make_tiny):
    m = make_tiny("qwen2")
    twice = hp.bake(hp.bake(m, {(0, 1): -1.0, (1, 3): 2.0}).eval(), {(0, 1): -1.0})
    assert getattr(twice.config, CONFIG_KEY) == {"0.1": 1.0, "1.3": 2.0}
    ids = m.tokenizer(PROMPTS[1], return_tensors="pt").input_ids
    with hp.edit_heads(m, {(1, 3): 2.0}):
        hooked = _logits(m.module, ids)
    torch.testing.assert_close(_logits(twice, ids), hooked, rtol=1e-5, atol=1e-5)


# Runs with headpursuit_widget unimportable: plain transformers loads each baked folder.
LOAD_PLAIN = textwrap.dedent(
    """
    import json, sys
    sys.modules["headpursuit_widget"] = None
    try:
        import headpursuit_widget
    except ImportError:
        pass
    else:
        raise SystemExit("headpursuit_widget was importable")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    results = {}
    for case in json.load(open(sys.argv[1])):
        model = AutoModelForCausalLM.from_pretrained(case["folder"], dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(case["folder"])
        ids = tok(case["prompt"], return_tensors="pt").input_ids
        want = torch.load(case["expected"])
        with torch.no_grad():
            logits = model(input_ids=ids).logits
            tokens = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                    do_sample=False, temperature=None, top_p=None, top_k=None)
        results[case["family"]] = {
            "same_ids": ids.tolist() == want["ids"].tolist(),
            "max_diff": float((logits - want["logits"]).abs().max()),
            "same_tokens": tokens.tolist() == want["tokens"].tolist(),
            "record": model.config.to_dict().get("headpursuit_baked_edits"),
            "package_modules": sorted(k for k, v in sys.modules.items() if k.startswith("headpursuit") and v),
        }
    print(json.dumps(results))
    """
)


@pytest.mark.subprocess
def test_saved_folders_load_with_plain_transformers_without_the_package(make_tiny, tmp_path):
    cases = []
    for family in FAMILIES:
        m = make_tiny(family)
        folder = tmp_path / family
        assert hp.bake(m, EDITS, out=folder) is not None
        assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
        assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
        ids = m.tokenizer(PROMPTS[0], return_tensors="pt").input_ids
        with hp.edit_heads(m, EDITS), torch.no_grad():
            logits = m.module(input_ids=ids).logits
            tokens = m.module.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=8,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
            )
        expected = tmp_path / f"{family}.pt"
        torch.save({"ids": ids, "logits": logits, "tokens": tokens}, expected)
        cases.append({"family": family, "folder": str(folder), "prompt": PROMPTS[0], "expected": str(expected)})
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_PLAIN, str(spec)], capture_output=True, text=True, cwd=tmp_path, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(results) == set(FAMILIES)
    for family, got in results.items():
        assert got["same_ids"] and got["same_tokens"], (family, got)
        assert got["max_diff"] < 1e-4, (family, got)
        assert got["record"] == {"0.1": -1.0, "1.2": 0.0, "1.0": 2.5} and got["package_modules"] == [], (family, got)


def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(hp.HeadPursuitError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def _enter_edit(m, edits):
    with hp.edit_heads(m, edits):
        pass


@pytest.mark.parametrize(
    "edits, match",
    [
        ({(2, 0): -1.0}, r"head \(2, 0\) is out of range: this model has layers 0..1 and heads 0..3"),
        ({(0, 4): -1.0}, r"head \(0, 4\) is out of range"),
        ({"1.-1": -1.0}, None),
        ({(0, 1): float("nan")}, r"alpha for head \(0, 1\) must be a finite number"),
        ({(0, 1): float("inf")}, r"must be a finite number"),
        ({(0, 1): 1e39}, r"must be a finite number of at most 3.4e\+38"),
        ({(0, 1): True}, r"must be a finite number"),
        ({(0, 1): "-1"}, r"must be a finite number"),
        ([(0, 1)], r"edits must be a dict"),
    ],
)
def test_bad_edits_get_edit_heads_errors_and_nothing_is_written(edits, match, make_tiny, tmp_path):
    m = make_tiny("llama")
    out = tmp_path / "baked"
    message = _error(hp.bake, m, edits, out=out)
    assert message == _error(_enter_edit, m, edits)
    if match:
        assert re.search(match, message), message
    assert not out.exists()


def test_bad_places_and_states_are_refused(make_tiny, tmp_path):
    m = make_tiny("llama")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert "already exists and is not empty" in _error(hp.bake, m, EDITS, out=full)
    assert (full / "keep.txt").read_text() == "mine" and len(list(full.iterdir())) == 1
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "is a file" in _error(hp.bake, m, EDITS, out=afile)
    empty = tmp_path / "empty"
    empty.mkdir()
    hp.bake(m, EDITS, out=empty)  # an empty folder is fine
    assert (empty / "config.json").is_file()
    with hp.edit_heads(m, {(0, 1): -1.0}):
        assert "enclosing edit_heads block" in _error(hp.bake, m, EDITS)
    assert "needs a HeadModel" in _error(hp.bake, "smollm2", EDITS)
    meta = hp.wrap(copy.deepcopy(m.module).to("meta"), m.tokenizer)
    assert "meta device" in _error(hp.bake, meta, EDITS)


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory, make_tiny):
    """(model folder, ranking file) of the tiny Llama."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    m = make_tiny("llama")
    m.module.save_pretrained(folder)
    m.tokenizer.save_pretrained(folder)
    ranking = hp.rank_heads(m, PROMPTS, ["red", "blue", "green"], k=3, n_null=2, progress=False)
    return folder, ranking.save(folder.parent / "r.npz")


def test_cli_bake_saves_the_top_heads_edit(saved_tiny, make_tiny, tmp_path, capsys):
    folder, ranking_file = saved_tiny
    out = tmp_path / "baked"
    args = ["bake", "--ranking", str(ranking_file), "--model", str(folder), "--top-k", "2", "--alpha", "-1"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "with 2 heads x -1 baked in" in printed and str(out) in printed
    m = make_tiny("llama")
    edits = {head: -1.0 for head in hp.HeadRanking.load(ranking_file).top(2)}
    loaded = hp.load_model(str(out))
    want = hp.bake(m, edits).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in loaded.module.state_dict().items())
    assert hp.generate(loaded, PROMPTS, max_new_tokens=6) == hp.generate(m, PROMPTS, edits=edits, max_new_tokens=6)
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 2  # refused before the model is loaded
    err = capsys.readouterr().err
    assert err.startswith("headpursuit: error: ") and "already exists and is not empty" in err
    assert "Traceback" not in err
    bad = tmp_path / "nan"
    assert main([*args[:-2], "--alpha", "nan", "--out", str(bad)]) == 2
    assert "must be a finite number" in capsys.readouterr().err and not bad.exists()


def test_vlm_baked_generates_what_hooked_generation_does(tmp_path):
    import vlm_factory as F

    module, proc = F.build("qwen2_5_vl")
    model = hp.wrap(module, proc)
    edits = {(0, 1): -1.0, (1, 3): 0.0, (1, 0): 3.0}
    baked = hp.bake(model, edits, out=tmp_path / "vlm")
    assert (tmp_path / "vlm" / "processor_config.json").is_file()  # the processor is saved with it
    from headpursuit_widget.engine.activations import images

    pics = [s.image for s in images.labelled_images("colours", 1)[:2]]
    want = hp.generate(model, PROMPTS, images=pics, edits=edits, max_new_tokens=6, chat=False)
    assert hp.generate(hp.wrap(baked, proc), PROMPTS, images=pics, max_new_tokens=6, chat=False) == want


def test_nnsight_wrapped_model_bakes_like_hf(make_tiny):
    pytest.importorskip("nnsight")
    m = make_tiny("llama")
    nn = hp.wrap(m.module, m.tokenizer, backend="nnsight")
    got, want = hp.bake(nn, EDITS).state_dict(), hp.bake(m, EDITS).state_dict()
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_smollm2_baked_generates_what_hooked_generation_does(smollm2):
    edits = {(3, 2): -1.0, (11, 5): -1.0, (17, 0): 0.0, (24, 7): 2.0}
    baked = hp.wrap(hp.bake(smollm2, edits), smollm2.tokenizer)
    prompts = ["What colour is a ripe banana?", "Name three animals that live in the sea."]
    want = hp.generate(smollm2, prompts, edits=edits, max_new_tokens=8)
    assert hp.generate(baked, prompts, max_new_tokens=8) == want
    enc = smollm2.tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        with hp.edit_heads(smollm2, edits):
            hooked = smollm2.module(**enc).logits
        torch.testing.assert_close(baked.module(**enc).logits, hooked, rtol=1e-4, atol=1e-4)
        assert not torch.allclose(smollm2.module(**enc).logits, hooked, atol=1e-2)  # the edit does something
