"""Concepts from user input: a str is a shipped name or an error, never a path; typed text never touches files."""

import builtins
import pathlib

import pytest

import headpursuit_widget as hp
from headpursuit_widget.engine.concepts.text import concept_from_text

WORDS = ["red", "blue", "green", "yellow", "black", "white"]
PROMPTS = ["The car was painted", "She wore a dress", "The flag has stripes", "A small house"]


def test_long_string_concept_is_a_clear_error(tiny):
    """300 characters used to reach Path(text).is_file() and raise OSError (file name too long)."""
    with pytest.raises(hp.HeadPursuitError, match=r"unknown concept 'xxxx.*…") as info:
        hp.rank_heads(tiny, PROMPTS, "x" * 300, progress=False)
    assert len(str(info.value)) < 400  # the input is echoed shortened


def test_word_file_only_as_a_path_object(tmp_path, tiny):
    words = tmp_path / "words.txt"
    words.write_text("# colours\n" + "\n".join(WORDS) + "\n")
    with pytest.raises(hp.HeadPursuitError, match="a str is never read as a file"):
        hp.rank_heads(tiny, PROMPTS, str(words), k=3, n_null=2, progress=False)
    ranking = hp.rank_heads(tiny, PROMPTS, words, k=3, n_null=2, progress=False)
    assert ranking.concept["name"] == "words" and ranking.concept["words"] == WORDS


def test_unreadable_word_files_are_named(tmp_path, tiny):
    with pytest.raises(hp.HeadPursuitError, match="word file not found"):
        hp.Concept.from_file(tmp_path / "missing.txt", tiny.tokenizer)
    with pytest.raises(hp.HeadPursuitError, match="cannot read word file"):
        hp.Concept.from_file(tmp_path / ("y" * 300), tiny.tokenizer)  # name too long for the filesystem
    with pytest.raises(hp.HeadPursuitError, match="cannot read word file"):
        hp.Concept.from_file(tmp_path, tiny.tokenizer)  # a folder


def test_typed_concept_text_never_touches_the_filesystem(monkeypatch, tmp_path):
    secret = tmp_path / "secret.key"
    secret.write_text("hunter2\n")

    def forbidden(*args, **kwargs):
        raise AssertionError("the filesystem was touched")

    for name in ("is_file", "exists", "read_text", "open"):
        monkeypatch.setattr(pathlib.Path, name, forbidden)
    monkeypatch.setattr(builtins, "open", forbidden)
    assert concept_from_text(str(secret), shipped_names=["colours"]) == [str(secret)]
    assert concept_from_text("x" * 300, shipped_names=["colours"]) == ["x" * 300]
    assert concept_from_text(" colours ", shipped_names=["colours"]) == "colours"
    assert concept_from_text("red, dark blue;green\nwhite", shipped_names=[]) == ["red", "dark blue", "green", "white"]
    assert concept_from_text("red blue  green", shipped_names=[]) == ["red", "blue", "green"]
    with pytest.raises(hp.HeadPursuitError, match="empty concept"):
        concept_from_text(" , ;", shipped_names=["colours"])
    assert concept_from_text(["red", " "], shipped_names=[]) == ["red"]
    with pytest.raises(hp.HeadPursuitError, match="must be a str or a list"):
        concept_from_text(3, shipped_names=[])


def test_default_shipped_names():
    assert concept_from_text("colours") == "colours"
