"""widget/session.py: which prompts a concept is ranked on, and request resolution."""

from __future__ import annotations

import pytest

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
