"""benchmarks/heldout/final2 is usable as written: checked with the SmolLM2 tokenizer, never with the model.

Every listed word is one token (so no word is silently left out of the concept), every probe's answer
is a listed word whose " word" token is in the concept, control answers are one token with a leading
space and no concept word, and no prompt is reused from the dev or spent final split."""

import json
import warnings
from pathlib import Path

import pytest

import headpursuit_widget as hp

HELDOUT = Path(__file__).parent.parent / "benchmarks" / "heldout"
CONCEPTS = ("colours", "countries", "animals", "numbers", "emotions", "nouns")


def read(name):
    """One concept file of the final2 split."""
    return json.loads((HELDOUT / "final2" / f"{name}.json").read_text())


def earlier_prompts():
    """Probe prompts of the dev and the spent final split."""
    old = [json.loads((HELDOUT / f"{name}.json").read_text()) for name in CONCEPTS]
    return {q["prompt"] for data in old for split in ("dev", "final") for q in data[split]}


@pytest.mark.parametrize("name", CONCEPTS)
def test_final2_concept_words_and_probes(real_tokenizer, name):
    data = read(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a word split into several tokens would only warn
        concept = hp.Concept.from_words(name, data["words"], real_tokenizer)
    assert len(set(data["words"])) == len(data["words"])
    probes = data["final2"]
    assert len(probes) >= 40
    assert len({q["prompt"] for q in probes}) == len(probes)
    assert not {q["prompt"] for q in probes} & earlier_prompts()
    for q in probes:
        assert q["answer"] in data["words"], q
        assert not q["prompt"][-1].isspace(), q
        ids = real_tokenizer.encode(" " + q["answer"], add_special_tokens=False)
        assert len(ids) == 1 and ids[0] in concept.token_ids, q


def test_final2_control(real_tokenizer):
    pairs = json.loads((HELDOUT / "final2" / "control.json").read_text())["pairs"]
    shipped = {p for p, _ in hp.concepts.control()}
    concept_words = {w.lower() for name in CONCEPTS for w in read(name)["words"]}
    assert len(pairs) >= 60 and len({p for p, _ in pairs}) == len(pairs)
    # the issue-17 shipped control (written after final2 was used up) shares some prompts with final2's;
    # final3's control shares none (tests/test_selectivity.py)
    assert len({p for p, _ in pairs} & shipped) <= 13
    for _, answer in pairs:
        assert answer.startswith(" ") and answer.strip().lower() not in concept_words, answer
        assert len(real_tokenizer.encode(answer, add_special_tokens=False)) == 1, answer
