"""rank_heads on tiny models: scores against direct recomputation, save/load without pickle, clear errors."""

import io
import json
import zipfile
from collections import Counter

import numpy as np
import pytest
import torch

import headpursuit_widget as hp
from headpursuit_widget.engine.concepts.dictionary import dictionary_rows
from headpursuit_widget.engine.judging.baselines import layer_matched_sets
from headpursuit_widget.engine.ranking.file import _SHAPES
from headpursuit_widget.engine.ranking.logit_lens import logit_lens_top

WORDS = ["red", "blue", "green", "yellow", "black", "white", "purple", "orange"]
PROMPTS = [
    "The car was painted",
    "She wore a dress",
    "The flag has stripes",
    "A small house",
    "Leaves in autumn",
    "The ocean at night",
]


@pytest.fixture
def ranking(tiny):
    return hp.rank_heads(tiny, PROMPTS, WORDS, k=5, n_null=3, refine=False, progress=False)


def test_scores_agree_with_direct_somp_and_logit_lens(tiny, ranking):
    acts = hp.capture(tiny, PROMPTS, progress=False)
    concept = hp.Concept.from_words("c", WORDS, tiny.tokenizer)
    D = dictionary_rows(tiny.adapter, concept.token_ids, normalize=True, fold_norm=False)
    for layer, head in [(0, 0), (1, 3)]:
        res = hp.somp(acts[layer, head], D, 5)
        assert ranking.score_table["evr"][layer, head] == pytest.approx(float(res.evr[-1]), abs=1e-9)
        ids = [concept.token_ids[i] for i in res.atoms.tolist()]
        assert [t for t, _ in ranking.tokens(layer, head)] == [tiny.tokenizer.decode([i]) for i in ids]
        raw = tiny.adapter.unembedding[list(concept.token_ids)]
        lens = (acts[layer, head] @ raw.T).mean().item()
        assert ranking.score_table["logit_lens"][layer, head] == pytest.approx(lens, rel=1e-4)
    spec = ranking.score_table["evr"] - ranking.null_evr.mean(0)
    np.testing.assert_allclose(ranking.score_table["specificity"], spec)
    sd = ranking.null_evr.std(0, ddof=1)
    np.testing.assert_allclose(ranking.scores, spec / (sd * np.sqrt(1 + 1 / 3)))
    assert ranking.score_name == "z" and ranking.null_evr.shape == (3, 2, 4)
    np.testing.assert_array_equal(ranking.above_null, ranking.score_table["evr"] > ranking.null_evr.max(0))
    curve = ranking.evr_curve(1, 3)
    assert curve.shape == (5,) and np.all(np.diff(curve) >= -1e-12)
    np.testing.assert_allclose(np.cumsum([w for _, w in ranking.tokens(1, 3)]), curve)


def test_lens_tokens_are_the_top_of_the_full_vocabulary(tiny, ranking):
    acts = hp.capture(tiny, PROMPTS, progress=False)
    logits = acts[1, 2].mean(0) @ tiny.adapter.unembedding.T
    top = logits.topk(3)
    got = ranking.lens_tokens(1, 2, n=3)
    assert [t for t, _ in got] == [tiny.tokenizer.decode([i]) for i in top.indices.tolist()]
    np.testing.assert_allclose([v for _, v in got], top.values.numpy(), rtol=1e-4)


@pytest.mark.parametrize("chunk_bytes", [1, 4 * 3 * 100, 1 << 30])
def test_lens_top_over_vocabulary_slices_is_the_full_topk(chunk_bytes):
    gen = torch.Generator().manual_seed(0)
    writes, unembedding = torch.randn(3, 16, generator=gen), torch.randn(1000, 16, generator=gen)
    values, indices = logit_lens_top(writes, unembedding, 7, chunk_bytes=chunk_bytes)
    full = (writes @ unembedding.T).topk(7, dim=1)
    np.testing.assert_array_equal(indices.numpy(), full.indices.numpy())
    np.testing.assert_allclose(values.numpy(), full.values.numpy(), rtol=1e-6)


def test_top_orders_by_active_score(ranking):
    for name in ranking.score_names:
        r = ranking.with_score(name)
        flat = r.scores.ravel()
        top = r.top(8)
        assert [r.scores[l, h] for l, h in top] == sorted(flat, reverse=True)
    with pytest.raises(hp.HeadPursuitError, match="from 1 to 8"):
        ranking.top(9)
    with pytest.raises(hp.HeadPursuitError, match="from 1 to 8"):
        ranking.top(0)
    with pytest.raises(hp.HeadPursuitError, match="unknown score"):
        ranking.with_score("f1")


def test_difference_of_two_concepts_is_their_scores_head_by_head(tiny, make_tiny, ranking):
    import dataclasses

    # a hand-made 2 x 4 case: known scores, known difference
    a = dataclasses.replace(ranking, score_table={**ranking.score_table, "z": np.arange(8.0).reshape(2, 4)})
    b = dataclasses.replace(ranking, score_table={**ranking.score_table, "z": np.full((2, 4), 2.5)})
    np.testing.assert_array_equal(a.difference(b), [[-2.5, -1.5, -0.5, 0.5], [1.5, 2.5, 3.5, 4.5]])
    np.testing.assert_array_equal(b.difference(a), -a.difference(b))
    # two real rankings on one model: z(A) - z(B) recomputed from each one's EVR and null draws
    other = hp.rank_heads(
        tiny, PROMPTS, ["dog", "cat", "horse", "cow", "sheep", "bird"], k=5, n_null=3, refine=False, progress=False
    )

    def z(r):
        n = r.null_evr.shape[0]
        return (r.score_table["evr"] - r.null_evr.mean(0)) / (r.null_evr.std(0, ddof=1) * np.sqrt(1 + 1 / n))

    np.testing.assert_allclose(ranking.difference(other), z(ranking) - z(other))
    evr_diff = ranking.score_table["evr"] - other.score_table["evr"]
    np.testing.assert_allclose(ranking.difference(other, "evr"), evr_diff)
    np.testing.assert_allclose(ranking.with_score("evr").difference(other), evr_diff)
    with pytest.raises(hp.HeadPursuitError, match="unknown score"):
        ranking.difference(other, "f1")
    with pytest.raises(hp.HeadPursuitError, match="another HeadRanking"):
        ranking.difference(np.zeros((2, 4)))
    foreign = hp.rank_heads(make_tiny("qwen2"), PROMPTS, WORDS, k=5, n_null=3, refine=False, progress=False)
    with pytest.raises(hp.HeadPursuitError, match="different models"):
        ranking.difference(foreign)


def test_method_logit_lens_and_reused_activations(tiny):
    acts = hp.capture(tiny, PROMPTS, progress=False)
    r = hp.rank_heads(tiny, None, WORDS, method="logit_lens", k=4, n_null=2, activations=acts, progress=False)
    assert r.method == "logit_lens" and r.score_name == "logit_lens"
    with pytest.raises(hp.HeadPursuitError, match="activations must be"):
        hp.rank_heads(tiny, None, WORDS, activations=acts[:1], progress=False)


def test_save_load_roundtrip_without_pickle(tmp_path, tiny, make_tiny, ranking):
    path = ranking.save(tmp_path / "r.npz")
    with np.load(path, allow_pickle=False) as data:  # would raise if anything needed pickle
        assert json.loads(str(data["meta"]))["format"] == "headpursuit-ranking/2"
    back = hp.HeadRanking.load(path, model=tiny)
    for name in ranking.score_names:
        np.testing.assert_array_equal(back.score_table[name], ranking.score_table[name])
    assert back.top(5) == ranking.top(5) and back.tokens(1, 1) == ranking.tokens(1, 1)
    assert back.lens_tokens(0, 2) == ranking.lens_tokens(0, 2) and back.concept == ranking.concept
    with pytest.raises(hp.HeadPursuitError, match="was made for model 'tiny-llama-0'"):
        hp.HeadRanking.load(path, model=make_tiny("llama", seed=1))


def test_corrupted_or_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(hp.HeadPursuitError, match="not a head ranking file"):
        hp.HeadRanking.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(hp.HeadPursuitError, match="not a head ranking file"):
        hp.HeadRanking.load(other)
    with pytest.raises(hp.HeadPursuitError, match="not found"):
        hp.HeadRanking.load(tmp_path / "missing.npz")


def test_random_heads_match_the_layer_histogram(ranking):
    for n in (1, 3, 6):
        top = ranking.top(n)
        for seed in range(5):
            rand = hp.random_heads(ranking, n, seed=seed)
            assert Counter(l for l, _ in rand) == Counter(l for l, _ in top)
            assert len(set(rand)) == n


def test_concept_errors_name_the_problem(tiny):
    with pytest.raises(hp.HeadPursuitError, match="empty"):
        hp.rank_heads(tiny, PROMPTS, [], progress=False)
    with pytest.raises(hp.HeadPursuitError, match="none of its words is a single token.*'qzxqv"):
        hp.rank_heads(tiny, PROMPTS, ["qzxqvwk", "zzqxjvbn"], progress=False)
    with pytest.raises(hp.HeadPursuitError, match="unknown concept 'colors-typo'.*colours"):
        hp.rank_heads(tiny, PROMPTS, "colors-typo", progress=False)
    with pytest.raises(hp.HeadPursuitError, match="at least 2 prompts"):
        hp.rank_heads(tiny, ["one prompt"], WORDS, progress=False)
    with pytest.raises(hp.HeadPursuitError, match="unknown method"):
        hp.rank_heads(tiny, PROMPTS, WORDS, method="pca", progress=False)
    with pytest.warns(UserWarning, match="qzxqvwk"):
        c = hp.Concept.from_words("c", ["red", "qzxqvwk"], tiny.tokenizer)
    assert c.missing_words == ("qzxqvwk",) and len(c.split_words["qzxqvwk"]) > 1


def test_whole_word_rule_keeps_single_token_variants(real_tokenizer):
    tokenizer = real_tokenizer  # SmolLM2 splits "turquoise", which the tiny tokenizer keeps whole
    c = hp.Concept.from_words("c", ["red", "Blue"], tokenizer)
    for word, ids in c.mapping.items():
        for i in ids:
            assert tokenizer.decode([i]).strip().lower() == word.lower()
    assert set(c.token_ids) == {i for ids in c.mapping.values() for i in ids}
    every = hp.Concept.from_words("c", ["turquoise"], tokenizer, rule="all_subtokens")
    first = hp.Concept.from_words("c", ["turquoise"], tokenizer, rule="first_subtoken")
    assert set(first.token_ids) <= set(every.token_ids)
    with pytest.raises(hp.HeadPursuitError, match="unknown sub-token rule"):
        hp.Concept.from_words("c", ["red"], tokenizer, rule="bpe")


def _rewrite(src, dst, meta=None, **arrays):
    """Copy a saved ranking with its metadata replaced by meta(old) and some arrays replaced."""
    with np.load(src, allow_pickle=False) as data:
        contents = {name: data[name] for name in data.files}
    old = json.loads(str(contents["meta"]))
    contents["meta"] = np.array(json.dumps(meta(old) if meta else old))
    contents.update(arrays)
    np.savez(dst, **contents)
    return dst


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: {k: v for k, v in m.items() if k != "vocab"}, "'vocab' must be an object"),
        (lambda m: [m], "metadata must be a JSON object, got list"),
        (lambda m: {**m, "vocab": {**m["vocab"], "seven": "x"}}, "vocab entry 'seven'"),
        (lambda m: {**m, "vocab": dict(list(m["vocab"].items())[1:])}, "vocab lacks 1 token id"),
        (lambda m: {**m, "method": 3}, "metadata 'method' must be a str"),
        (lambda m: {**m, "dims": {**m["dims"], "k": 4}}, "'atoms' has shape .* its k is 5, but the file's k is 4"),
    ],
)
def test_bad_metadata_is_named(tmp_path, ranking, edit, message):
    path = _rewrite(ranking.save(tmp_path / "r.npz"), tmp_path / "bad.npz", meta=edit)
    with pytest.raises(hp.HeadPursuitError, match=message):
        hp.HeadRanking.load(path)


def test_arrays_of_the_wrong_shape_are_refused(tmp_path, ranking):
    src = ranking.save(tmp_path / "r.npz")
    swapped = _rewrite(src, tmp_path / "t.npz", evr=ranking.score_table["evr"].T.copy())  # (4, 2) for (2, 4)
    with pytest.raises(hp.HeadPursuitError, match=r"'evr' has shape \(4, 2\): its n_layers is 4"):
        hp.HeadRanking.load(swapped)
    flat = _rewrite(src, tmp_path / "f.npz", lens_ids=ranking.lens_ids[..., 0])
    with pytest.raises(hp.HeadPursuitError, match=r"'lens_ids' has shape \(2, 4\); expected shapes: .*lens_ids"):
        hp.HeadRanking.load(flat)


def test_huge_declared_array_is_refused_before_reading(tmp_path, ranking):
    """The file's arrays hold headers only: a loader that read one before checking its declared size
    would fail on the missing data (or allocate 12 GiB) instead of naming the cap."""
    src = ranking.save(tmp_path / "r.npz")
    big = {"n_layers": 40_000, "n_heads": 10_000, "k": 5, "n_null": 4, "n_lens": 10}
    out = tmp_path / "huge.npz"
    with np.load(src, allow_pickle=False) as data, zipfile.ZipFile(out, "w") as zf:
        meta = json.loads(str(data["meta"]))
        meta["dims"] = big
        for name in data.files:
            if name == "meta":
                zf.writestr("meta.npy", _npy_bytes(np.array(json.dumps(meta))))
                continue
            header = {"descr": "<f8", "fortran_order": False, "shape": tuple(big[d] for d in _SHAPES[name])}
            buf = io.BytesIO()
            np.lib.format.write_array_header_2_0(buf, header)  # magic + header, no data
            zf.writestr(name + ".npy", buf.getvalue())
    with pytest.raises(hp.HeadPursuitError, match=r"'null_evr' declares 11.9 GiB .* more than the 1 GiB"):
        hp.HeadRanking.load(out)


def _npy_bytes(array):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def test_interrupted_save_keeps_the_previous_file(tmp_path, ranking, monkeypatch):
    path = ranking.save(tmp_path / "r.npz")
    before = path.read_bytes()

    def interrupted(fh, **arrays):
        fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ranking.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]  # no temporary file left behind


def test_verify_draws_share_heads_as_little_as_the_layers_allow():
    heads = [(21, 5), (22, 8), (22, 1)]
    sets = layer_matched_sets(heads, 9, 5, seed=3)
    assert sets == layer_matched_sets(heads, 9, 5, seed=3) and len(sets) == 5
    uses: Counter = Counter()
    for draw in sets:
        assert Counter(l for l, _ in draw) == Counter(l for l, _ in heads)
        assert len(set(draw)) == len(draw) and not set(draw) & set(heads)
        uses.update(draw)
    # layer 21: 5 draws of 1 from 8 others -> no head twice; layer 22: 10 picks from 7 others -> each 1 or 2 times
    assert max(n for (l, _), n in uses.items() if l == 21) == 1
    assert sorted(n for (l, _), n in uses.items() if l == 22) == [1, 1, 1, 1, 2, 2, 2]
    # a layer with too few other heads draws from all of them
    assert sorted(layer_matched_sets([(0, 0), (0, 1)], 2, 1)[0]) == [(0, 0), (0, 1)]
