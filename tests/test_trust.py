"""Issue 10: last-position capture, the calibrated null (z, p, Benjamini-Hochberg, frequency-matched draws),
eliciting contexts, refinement and verification - against hand computations and slow references."""

import math
import threading

import numpy as np
import pytest
import torch

import headpursuit_widget as hp
from headpursuit_widget.engine.concepts import contexts, null_words
from headpursuit_widget.engine.concepts import resolve as concept_input
from headpursuit_widget.engine.errors import Cancelled
from headpursuit_widget.engine.judging import selection
from headpursuit_widget.engine.judging.verify import VERDICTS
from headpursuit_widget.engine.ranking import null

WORDS = ["red", "blue", "green", "yellow", "black", "white", "purple", "orange"]


def bh_reference(p, q):
    """Benjamini-Hochberg written from its definition: reject H_(1..k*) for the largest k with p_(k) <= qk/m."""
    m = len(p)
    ranked = sorted(range(m), key=lambda i: p[i])
    k_star = max([k for k in range(1, m + 1) if p[ranked[k - 1]] <= q * k / m], default=0)
    return [i in ranked[:k_star] for i in range(m)]


def test_benjamini_hochberg_hand_case_and_reference():
    # m = 5, q = 0.05: thresholds 0.01 0.02 0.03 0.04 0.05; sorted p 0.001 0.03 0.035 0.2 0.8
    # p_(3) = 0.035 > 0.03 and p_(2) = 0.03 > 0.02, so only the first is a discovery
    p = np.array([0.8, 0.03, 0.001, 0.2, 0.035])
    assert null.benjamini_hochberg(p, 0.05).tolist() == [False, False, True, False, False]
    # q = 0.03, thresholds 0.01 0.02 0.03: step-up, p_(2) = 0.019 <= 0.02 takes p_(1) = 0.015 > 0.01 along
    assert null.benjamini_hochberg(np.array([0.015, 0.019, 0.5]), 0.03).tolist() == [True, True, False]
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.002, size=rng.integers(0, 10))])
        for q in (0.05, 0.2):
            assert null.benjamini_hochberg(p, q).tolist() == bh_reference(p.tolist(), q)
    assert null.benjamini_hochberg(p.reshape(-1, 1), 0.05).shape == (len(p), 1)
    with pytest.raises(hp.HeadPursuitError, match="q"):
        null.benjamini_hochberg(p, 1.5)


def test_z_and_p_from_a_hand_made_null():
    null_evr = np.array([[0.1, 0.5], [0.2, 0.5], [0.3, 0.5]])[:, None, :]  # (3 draws, 1, 2)
    evr = np.array([[0.5, 0.4]])
    mean, sd, z, p = null.null_statistics(evr, null_evr)
    assert mean[0].tolist() == pytest.approx([0.2, 0.5])
    assert sd[0, 0] == pytest.approx(0.1)  # sample sd of 0.1, 0.2, 0.3
    assert z[0, 0] == pytest.approx((0.5 - 0.2) / (0.1 * math.sqrt(1 + 1 / 3)))
    assert p[0, 0] == pytest.approx(0.5 * math.erfc(z[0, 0] / math.sqrt(2)))
    assert z[0, 1] == 0.0 and p[0, 1] == pytest.approx(0.5)  # zero-sd head, concept below the null


def test_last_position_capture_equals_a_manual_forward(make_tiny):
    m = make_tiny("llama")
    prompts = ["The red car", "A much longer prompt about the blue sea and green hills", "Hi"]
    acts = hp.capture(m, prompts, positions="last", batch_size=3, progress=False)
    for i, prompt in enumerate(prompts):
        seen = {}
        handle = m.adapter.out_projs[1].register_forward_pre_hook(lambda mod, args, seen=seen: seen.update(z=args[0]))
        try:
            with torch.no_grad():
                m.module(**m.tokenizer(prompt, return_tensors="pt"))
        finally:
            handle.remove()
        z = seen["z"][0, -1].reshape(m.n_heads, m.head_dim)
        expected = torch.einsum("hk,hkd->hd", z, m.adapter.head_weights(1))
        torch.testing.assert_close(acts[1, :, i], expected, rtol=1e-4, atol=1e-5)


def test_frequency_matched_draws_follow_the_profile_and_exclude_the_concept(tokenizer):
    concept = hp.Concept.from_words("colours", WORDS, tokenizer)
    words, ids = null_words.word_pool(tokenizer)
    profile = null_words.frequency_profile(tokenizer, concept)
    assert sum(profile) == len(concept.mapping)
    bounds = np.linspace(0, len(words), null_words.N_BINS + 1).astype(int)
    draws = null_words.frequency_matched_dictionaries(
        tokenizer, profile, len(concept.token_ids), n_draws=5, exclude=concept.token_ids, seed=1
    )
    id_to_bin = {int(i): int(np.searchsorted(bounds, pos, side="right") - 1) for pos, i in enumerate(ids)}
    allowed = {b for b, c in enumerate(profile) if c}
    for draw in draws:
        assert len(draw) == len(concept.token_ids) == len(set(draw.tolist()))
        assert not set(draw.tolist()) & set(concept.token_ids)
        spaced = [int(t) for t in draw if int(t) in id_to_bin]  # the " word" variants identify the words
        assert spaced and {id_to_bin[t] for t in spaced} <= allowed
    again = null_words.frequency_matched_dictionaries(
        tokenizer, profile, len(concept.token_ids), n_draws=5, exclude=concept.token_ids, seed=1
    )
    assert all(np.array_equal(a, b) for a, b in zip(draws, again))


def test_eliciting_contexts_parts_differ_and_name_the_category():
    words = ["France", "Japan", "Peru", "Chile", "Paris"]
    rank = contexts.eliciting_contexts("countries", words, n=12, seed=0)
    verify = contexts.eliciting_contexts("countries", words, part="verify", n=12)
    assert len(set(rank)) == len(set(verify)) == 12 and not set(rank) & set(verify)
    for ctx in rank + verify:
        *shots, last = ctx.split("Q: ")[1:]
        assert last.endswith("\nA:") and "country" in last and 2 <= len(shots) <= 3
        # no concept word anywhere in the context (a shot answering "Paris" is left out as a listed word)
        assert not any(w.lower() in ctx.lower().split() for w in words)
        assert all(s.split("\nA: ")[1].strip() in {w for _, w in contexts.SHOTS} for s in shots)
    assert contexts.eliciting_contexts("my_list2", ["a", "b"], n=1)[0].split("Q: ")[-1].count("word like ") == 1
    with pytest.raises(hp.HeadPursuitError, match="at least 2 words"):
        contexts.eliciting_contexts("x", ["a"])


@pytest.fixture(scope="module")
def tiny_ranking(make_tiny):
    m = make_tiny("llama")
    concept = hp.Concept.from_words("colours", WORDS, m.tokenizer)
    return m, hp.rank_heads(m, None, concept, n_null=4, refine=False, progress=False)


def test_custom_concept_without_prompts_ranks_on_eliciting_contexts(tiny_ranking):
    m, r = tiny_ranking
    assert r.options["positions"] == "last" and r.options["automatic_contexts"]
    assert r.options["contexts"] == contexts.eliciting_contexts("colours", WORDS, part="rank", seed=0)
    assert r.significant.shape == r.null_mean.shape == r.null_sd.shape == (m.n_layers, m.n_heads)
    assert r.significant.dtype == bool and r.recommended == ()
    expected_z = (r.score_table["evr"] - r.null_mean) / (r.null_sd * math.sqrt(1 + 1 / 4))
    np.testing.assert_allclose(r.score_table["z"], expected_z)
    assert r.score_name == "z" and r.top(3) == r.with_score("z").top(3)


def test_save_load_keeps_the_new_fields(tiny_ranking, tmp_path):
    _, r = tiny_ranking
    import dataclasses

    r = dataclasses.replace(r, recommended=((1, 2), (0, 3)))
    back = hp.HeadRanking.load(r.save(tmp_path / "r.npz"))
    assert back.recommended == ((1, 2), (0, 3)) and back.top(2) == [(1, 2), (0, 3)]
    np.testing.assert_array_equal(back.significant, r.significant)
    np.testing.assert_allclose(back.null_mean, r.null_mean)
    np.testing.assert_allclose(back.score_table["z"], r.score_table["z"])
    assert back.top(5)[2:] == [h for h in r.with_score("z").top(7) if h not in ((1, 2), (0, 3))][:3]


def test_verify_returns_a_verdict_and_cancel_stops_it(tiny_ranking):
    m, r = tiny_ranking
    v = hp.verify(m, r, k=2, n_random=3)
    assert v.verdict in VERDICTS and v.specific == (v.verdict == "specific")
    assert len(v.random_mass_ratios) == 3 and v.random_iqr[0] <= v.random_median <= v.random_iqr[1]
    assert v.heads == sorted(r.top(2)) and v.summary().startswith("2 heads: colours ")
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        hp.verify(m, r, cancel=stop)
    with pytest.raises(Cancelled):
        hp.refine(m, r, cancel=stop)


def test_refine_candidates_put_significant_heads_first(tiny_ranking):
    _, r = tiny_ranking
    import dataclasses

    sig = np.zeros_like(r.significant)
    sig[1, 3] = True
    picked = selection.candidates(dataclasses.replace(r, significant=sig), 3)
    assert picked[0] == (1, 3) and picked[1:] == [h for h in r.with_score("z").top(4) if h != (1, 3)][:2]


@pytest.mark.slow
def test_colours_on_smollm2_have_significant_heads_and_a_verdict(smollm2):
    r = hp.rank_heads(smollm2, None, "colours", progress=False)  # what the quickstart's widget ranks and selects
    assert r.significant.sum() > 0 and r.recommended
    v = hp.verify(smollm2, r, k=4)
    assert v.verdict in VERDICTS and len(v.random_mass_ratios) == 5


def test_a_bare_word_list_is_asked_for_by_example_not_as_a_custom(make_tiny):
    """A word list has no category name (it is named "custom"): its contexts ask for a word like one of
    its words, never for "a custom"."""
    m = make_tiny("llama")
    con, _ = concept_input.resolve_concept(["red", "green", "blue"], m.tokenizer)
    assert con.name == contexts.UNNAMED
    asked = [c.split("Q: ")[-1] for c in contexts.concept_contexts(con)]
    assert all("word like " in q and "custom" not in q for q in asked)
    assert {q.split("word like ")[1].split(".")[0] for q in asked} <= {"red", "green", "blue"}
    named = [c.split("Q: ")[-1] for c in contexts.eliciting_contexts("colours", ["red", "blue"], n=3)]
    assert all("colour" in q for q in named)
