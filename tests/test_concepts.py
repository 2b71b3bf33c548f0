"""Shipped concept files: loadable, well-formed, held-out prompts disjoint from ranking ones."""

import dataclasses
from pathlib import Path

import pytest

import headpursuit_widget.concepts as concepts
from headpursuit_widget.engine import HeadPursuitError
from headpursuit_widget.engine.concepts import shipped as shipped_concepts


def test_names_match_data_files():
    data = Path(shipped_concepts.__file__).parent / "data"
    on_disk = sorted(p.stem for p in data.glob("*.json") if not p.stem.startswith("_"))
    assert concepts.names() == on_disk
    assert "colours" in on_disk


@pytest.mark.parametrize("name", concepts.names())
def test_concept_well_formed(name):
    spec = concepts.get(name)
    assert spec.name == name and spec.description
    assert len(spec.words) >= 20 and len(set(spec.words)) == len(spec.words)
    assert len(spec.rank_prompts) >= 30 and len(spec.probe_prompts) >= 30
    assert len(spec.eval_prompts) >= 20 and len(spec.neutral_prompts) >= 15
    held_out = set(spec.probe_prompts) | set(spec.eval_prompts)
    assert not set(spec.rank_prompts) & held_out
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.words = ()


@pytest.mark.parametrize("name", concepts.names())
def test_neutral_prompts_avoid_concept_words(name):
    spec = concepts.get(name)
    words = {w.lower() for w in spec.words}
    for prompt in spec.neutral_prompts:
        tokens = {t.strip(".,!?;:'\"").lower() for t in prompt.split()}
        assert not tokens & words, (prompt, tokens & words)


def test_unknown_concept_lists_available():
    with pytest.raises(HeadPursuitError) as err:
        concepts.get("colour-ish")
    for name in concepts.names():
        assert name in str(err.value)


def test_control_is_a_copy():
    pairs = concepts.control()
    pairs.clear()
    assert len(concepts.control()) >= 30


def test_control_answers_are_single_tokens(real_tokenizer):
    tokenizer = real_tokenizer
    pairs = concepts.control()
    assert len({p for p, _ in pairs}) == len(pairs)
    for prompt, answer in pairs:
        ids = tokenizer.encode(answer, add_special_tokens=False)
        assert len(ids) == 1, (prompt, answer, tokenizer.convert_ids_to_tokens(ids))
        assert tokenizer.decode(ids) == answer


def test_sentence_prompts_are_a_third_held_out_format():
    with_sentences = {"colours", "countries", "animals", "food", "numbers", "months_weekdays"}
    for name in concepts.names():
        spec = concepts.get(name)
        assert bool(spec.sentence_prompts) == (name in with_sentences), name
        assert not set(spec.sentence_prompts) & set(spec.rank_prompts + spec.probe_prompts), name
        assert all(not p.endswith(" ") for p in spec.sentence_prompts), name
