"""engine/session.py: which prompts a concept is ranked on, and request resolution."""

from __future__ import annotations

import pytest

import headpursuit_widget as hp
from headpursuit_widget.engine.session import ActivationCache, Session, resolve_samples


class _Model:
    """Just what Session and resolve_samples read without ranking."""

    fingerprint, name, is_vlm = "fake", "fake-text-model", False


def test_prompts_policy():
    names = hp.concepts.names()
    first, other = names[0], names[1]
    s = Session(_Model())
    assert s.positions == "prompt"
    assert s.prompts_for(other) == tuple(hp.concepts.get(other).rank_prompts)  # its own prompts
    assert s.prompts_for(["red", "blue"]) == tuple(hp.concepts.get(first).rank_prompts)  # nothing ranked yet
    fixed = Session(_Model(), prompts=["a", "b"])
    assert fixed.prompts_for(other) == ("a", "b") and fixed.prompts_for(["red"]) == ("a", "b")


def test_resolve_samples_rejects_clearly():
    with pytest.raises(hp.HeadPursuitError, match="not both"):
        resolve_samples(_Model(), prompts=["a"], samples=["b"])
    with pytest.raises(hp.HeadPursuitError, match="is a text model"):
        resolve_samples(_Model(), images=["x.png"], prompt="What?")
    assert resolve_samples(_Model(), prompts=["a"], prompt="p") == (["a"], [], "p")


def test_cache_evicts_the_least_recently_used(monkeypatch):
    from headpursuit_widget.engine import session as session_mod

    calls = []
    monkeypatch.setattr(session_mod, "capture", lambda m, s, **k: calls.append(tuple(s)) or tuple(s))
    cache, model = ActivationCache(max_entries=2), _Model()
    for samples in (["a"], ["b"], ["a"], ["c"], ["a"], ["b"]):
        cache.capture(model, samples)
    assert calls == [("a",), ("b",), ("c",), ("b",)]  # "b" was least recently used when "c" came
    assert cache.holds(model, ["a"]) and cache.holds(model, ["b"]) and not cache.holds(model, ["c"])
