"""widget/session.py: which prompts a concept is ranked on, and request resolution."""

from __future__ import annotations

import pytest
from support import corrupt

import headpursuit_widget as hp
from headpursuit_widget.widget.session import ActivationCache, Session, resolve_samples


class _Model:
    """Just what Session and resolve_samples read without ranking."""

    fingerprint, name, is_vlm = "fake", "fake-text-model", False


def test_samples_policy(tiny):
    """No prompts: each concept ranks on its own eliciting contexts at the last position, exactly the
    ones rank_heads(model, None, concept) uses; given prompts: every concept ranks on them."""
    s = Session(tiny, seed=3)
    assert s.positions == "last"
    for concept in ("colours", ["red", "blue", "green"]):
        expected = hp.rank_heads(tiny, None, concept, seed=3, refine=False, progress=False).options["contexts"]
        assert list(s.samples_for(concept)) == expected
    assert s.samples_for("colours") != s.samples_for("animals")
    fixed = Session(tiny, prompts=["a", "b"])
    assert fixed.positions == "prompt"
    assert fixed.samples_for("animals") == ("a", "b") and fixed.samples_for(["red"]) == ("a", "b")


def test_resolve_samples_rejects_clearly():
    with pytest.raises(hp.HeadPursuitError, match="not both"):
        resolve_samples(_Model(), prompts=["a"], samples=["b"])
    with pytest.raises(hp.HeadPursuitError, match="is a text model"):
        resolve_samples(_Model(), images=["x.png"], prompt="What?")
    assert resolve_samples(_Model(), prompts=["a"], prompt="p") == (["a"], [], "p")


def test_cache_evicts_the_least_recently_used(monkeypatch):
    from headpursuit_widget.widget import session as session_mod

    calls = []
    monkeypatch.setattr(session_mod, "capture", lambda m, s, **k: calls.append(tuple(s)) or tuple(s))
    cache, model = ActivationCache(max_entries=2), _Model()
    for samples in (["a"], ["b"], ["a"], ["c"], ["a"], ["b"]):
        cache.capture(model, samples)
    assert calls == [("a",), ("b",), ("c",), ("b",)]  # "b" was least recently used when "c" came
    assert cache.holds(model, ["a"]) and cache.holds(model, ["b"]) and not cache.holds(model, ["c"])


def test_a_shipped_concepts_capture_is_kept_on_disk_for_the_next_session(tiny, tmp_path, monkeypatch):
    """A new session (empty memory cache) ranks a shipped concept from the disk entry, with the same scores;
    a word list is not kept."""
    from headpursuit_widget.widget import session as session_mod

    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    calls = []
    real = session_mod.capture
    monkeypatch.setattr(session_mod, "capture", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = Session(tiny, cache=ActivationCache()).rank("colours")
    entries = sorted(tmp_path.rglob("*.npy"))
    assert len(calls) == 1 and len(entries) == 1 and entries[0].with_suffix(".json").is_file()
    _forget_kept_rankings(tmp_path)  # else the next session reads the kept ranking, not the capture
    again = Session(tiny, cache=ActivationCache()).rank("colours")
    assert len(calls) == 1  # read from disk, not captured
    assert (again.scores == first.scores).all()
    Session(tiny, cache=ActivationCache()).rank(["red", "blue", "green"])
    assert len(calls) == 2 and sorted(tmp_path.rglob("*.npy")) == entries
    assert not [p for p in tmp_path.rglob("*") if ".part-" in p.name]


def test_a_corrupt_capture_entry_is_refused_with_the_paths_to_delete(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    Session(tiny, cache=ActivationCache()).rank("animals")
    _forget_kept_rankings(tmp_path)
    (entry,) = tmp_path.rglob("*.npy")
    corrupt(entry, at=-1)
    with pytest.raises(hp.HeadPursuitError, match=f"corrupted.*delete {entry}"):
        Session(tiny, cache=ActivationCache()).rank("animals")
    entry.unlink()
    Session(tiny, cache=ActivationCache()).rank("animals")  # captured and kept again
    assert entry.is_file()


def _forget_kept_rankings(folder) -> None:
    for path in [*folder.rglob("*.ranking.npz"), *folder.rglob("*.ranking.json")]:
        path.unlink()


def test_a_shipped_concepts_ranking_is_kept_and_read_back_whole(tiny, tmp_path, monkeypatch):
    """A new session takes a shipped concept's ranking from disk with neither a capture nor rank_heads, equal
    in every field to the one computed; another concept, other options or other code are not served from it."""
    import numpy as np

    from headpursuit_widget.engine.ranking import kept
    from headpursuit_widget.widget import session as session_mod

    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    ranked = []
    real = session_mod.rank_heads
    monkeypatch.setattr(session_mod, "rank_heads", lambda *a, **k: ranked.append(1) or real(*a, **k))
    first = Session(tiny, cache=ActivationCache()).rank("colours")
    (entry,) = tmp_path.rglob("*.ranking.npz")
    assert entry.with_suffix(".json").is_file() and len(ranked) == 1
    again = Session(tiny, cache=ActivationCache()).rank("colours")
    assert len(ranked) == 1  # neither the capture nor the pursuit ran
    for name in ("concept", "method", "score_name", "options", "model_name", "fingerprint", "vocab", "recommended"):
        assert getattr(again, name) == getattr(first, name), name
    for name in ("scores", "null_evr", "atoms", "gains", "curves", "lens_ids", "lens_vals", "significant"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)
    assert again.score_table.keys() == first.score_table.keys()
    for name, grid in first.score_table.items():
        np.testing.assert_array_equal(again.score_table[name], grid, err_msg=name)
    Session(tiny, cache=ActivationCache(), k=3).rank("colours")  # other options: ranked, kept apart
    Session(tiny, cache=ActivationCache()).rank("animals")
    monkeypatch.setattr(kept, "_STAGES", ("ranking",))  # as if the pipeline's code had changed
    Session(tiny, cache=ActivationCache()).rank("colours")
    assert len(ranked) == 4 and len(list(tmp_path.rglob("*.ranking.npz"))) == 4


def test_a_corrupt_kept_ranking_is_refused_with_the_paths_to_delete(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    first = Session(tiny, cache=ActivationCache()).rank("animals")
    (entry,) = tmp_path.rglob("*.ranking.npz")
    record = corrupt(entry)
    with pytest.raises(hp.HeadPursuitError, match=f"kept ranking {entry} is corrupted.*delete {entry} and {record}"):
        Session(tiny, cache=ActivationCache()).rank("animals")
    entry.unlink()
    again = Session(tiny, cache=ActivationCache()).rank("animals")  # ranked and kept again
    assert entry.is_file() and (again.scores == first.scores).all()


def test_a_first_ranking_on_the_first_quarter_comes_before_the_rest_is_captured(tiny, monkeypatch):
    """on_first gets rank_heads of the first quarter of the contexts (captured alone), before any other
    sample is captured; the final ranking equals the one captured in one piece."""
    import torch

    from headpursuit_widget.widget import session as session_mod

    words = ["red", "blue", "green", "yellow"]
    samples = Session(tiny).samples_for(words)
    n_first = max(session_mod.FIRST_MIN, round(session_mod.FIRST_SHARE * len(samples)))
    assert len(samples) >= 2 * n_first  # else no first grid: the test would say nothing
    captured: list[int] = []
    real = session_mod.capture
    monkeypatch.setattr(session_mod, "capture", lambda m, s, **k: captured.append(len(s)) or real(m, s, **k))
    firsts = []
    final = Session(tiny, cache=ActivationCache()).rank(
        words, on_first=lambda r, n, total: firsts.append((r, n, total, list(captured)))
    )
    ((first, n, total, before),) = firsts
    assert (n, total, before, captured) == (n_first, len(samples), [n_first], [n_first, len(samples) - n_first])
    alone = hp.capture(tiny, list(samples[:n_first]), positions="last", progress=False)
    expected = hp.rank_heads(
        tiny, list(samples[:n_first]), words, activations=alone, positions="last", refine=False, progress=False
    )
    torch.testing.assert_close(torch.as_tensor(first.scores), torch.as_tensor(expected.scores))
    whole = hp.rank_heads(tiny, None, words, refine=False, progress=False)
    torch.testing.assert_close(torch.as_tensor(final.scores), torch.as_tensor(whole.scores), rtol=1e-4, atol=1e-4)
    assert final.options["contexts"] == whole.options["contexts"] and "selection" not in final.options


def test_no_first_ranking_when_the_capture_is_cached_or_too_small(tiny):
    cache, firsts = ActivationCache(), []
    Session(tiny, cache=cache).rank("colours")
    Session(tiny, cache=cache).rank("colours", on_first=lambda *a: firsts.append(a))  # in memory
    Session(tiny, prompts=["a red car", "a blue sky"]).rank("colours", on_first=lambda *a: firsts.append(a))
    assert firsts == []


def test_the_nulls_word_pool_is_kept_on_disk_and_a_corrupt_one_refused(tokenizer, tmp_path, monkeypatch):
    """A new process (empty memory cache) reads the pool the first one built and kept, equal to building it
    again from the vocabulary; a damaged entry is refused with its path."""
    import weakref

    import numpy as np

    from headpursuit_widget.engine.concepts import null_words, pool_cache

    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path))
    monkeypatch.setattr(null_words, "_POOLS", weakref.WeakKeyDictionary())
    monkeypatch.setattr(null_words, "_WORDS", weakref.WeakKeyDictionary())
    built = null_words.word_pool(tokenizer)
    path = pool_cache.entry_path(tokenizer)
    assert path.is_file() and path.parent == tmp_path / "pools"
    words = null_words.random_words(tokenizer)  # the slow reference: every word encoded again
    ids = np.array([tokenizer.encode(" " + w, add_special_tokens=False)[0] for w in words])
    order = np.argsort(ids, kind="stable")
    kept = pool_cache.load(path)
    assert kept[0] == built[0] == [words[i] for i in order]
    assert (kept[1] == built[1]).all() and (kept[1] == ids[order]).all() and kept[1].dtype == np.int64
    monkeypatch.setattr(null_words, "_POOLS", weakref.WeakKeyDictionary())
    monkeypatch.setattr(null_words, "random_words", lambda tok: pytest.fail("the pool was built, not read"))
    assert null_words.word_pool(tokenizer)[0] == built[0]
    path.write_text(path.read_text().replace(built[0][0], built[0][0] + "x", 1))
    monkeypatch.setattr(null_words, "_POOLS", weakref.WeakKeyDictionary())
    with pytest.raises(hp.HeadPursuitError, match=f"delete {path}"):
        null_words.word_pool(tokenizer)


def test_weights_edited_in_place_are_captured_and_ranked_again(make_tiny, tmp_path, monkeypatch):
    """The fingerprint reads a few weights only: a weight edited in place elsewhere must not serve the
    capture or the ranking kept for the weights before. Independent truth: the edited model ranked with
    nothing kept (an empty folder)."""
    import numpy as np
    import torch

    m = make_tiny("llama", seed=5)
    monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path / "kept"))
    before = Session(m, cache=ActivationCache()).rank("colours")
    weight = m.adapter.blocks[0].mlp.down_proj.weight  # a weight the fingerprint does not read
    saved, fingerprint = weight.detach().clone(), m.fingerprint
    try:
        with torch.no_grad():
            weight.mul_(3.0)
        assert m.fingerprint == fingerprint
        kept_after = Session(m, cache=ActivationCache()).rank("colours")
        monkeypatch.setenv("HEADPURSUIT_CAPTURES", str(tmp_path / "fresh"))
        fresh = Session(m, cache=ActivationCache()).rank("colours")
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    np.testing.assert_array_equal(kept_after.scores, fresh.scores)
    assert not np.array_equal(kept_after.scores, before.scores)
    assert len(list((tmp_path / "kept").rglob("*.npy"))) == 2  # one capture per weights
