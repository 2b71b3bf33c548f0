"""The planted ground truth of tests/planted.py behaves as built: its hand-set heads, and only they,
carry the categories' next-token mass, and SOMP ranking finds the concept head.

Independent truth: the weights set by hand (P = info["concept"] writes the colour tokens' unembedding
rows, G = info["generic"] every category's), checked with the existing engine's measures:
mass_and_control on the "verify" eliciting contexts, capture, rank_heads.
"""

from __future__ import annotations

import pytest
import torch
from planted import CATEGORIES, CONCEPT, category_token_ids, planted_model

import headpursuit_widget as hp
from headpursuit_widget.engine.activations.capture import capture
from headpursuit_widget.engine.concepts.contexts import eliciting_contexts
from headpursuit_widget.engine.concepts.dictionary import dictionary_rows
from headpursuit_widget.engine.judging.probes import mass_and_control


@pytest.fixture(scope="module")
def planted(tokenizer):
    return planted_model(tokenizer, strength=1.0, seed=0)


@pytest.fixture(scope="module")
def ids(tokenizer):
    return category_token_ids(tokenizer)


@pytest.fixture(scope="module")
def contexts():
    return {name: eliciting_contexts(name, hp.concepts.get(name).words, part="verify", n=8) for name in CATEGORIES}


def _others(model, info) -> list[tuple[int, int]]:
    planted_heads = (info["concept"], info["generic"])
    return [(i, h) for i in range(model.n_layers) for h in range(model.n_heads) if (i, h) not in planted_heads]


@pytest.fixture(scope="module")
def masses(planted, contexts, ids):
    """category -> {label: mean mass of its tokens on its contexts}; labels "base" (unedited), "P" and
    "G" (flipped, alpha -1) and, for the concept, every other head (flipped)."""
    model, info = planted
    pairs = hp.concepts.control()[:4]  # the control log-probs are not looked at here
    out = {}
    for name in CATEGORIES:
        labels = {"base": None, "P": {info["concept"]: -1.0}, "G": {info["generic"]: -1.0}}
        if name == CONCEPT:
            labels.update({head: {head: -1.0} for head in _others(model, info)})
        res = mass_and_control(model, contexts[name], pairs, ids[name], list(labels.values()))
        out[name] = {label: mass for label, (mass, _) in zip(labels, res)}
    return out


@pytest.fixture(scope="module")
def ranking(planted):
    return hp.rank_heads(planted[0], None, CONCEPT, refine=False, progress=False)


def test_info_and_layout(planted):
    model, info = planted
    assert info == {"concept": (1, 2), "generic": (2, 1), "strength": 1.0}
    assert (model.n_layers, model.n_heads, model.head_dim, model.d_model) == (3, 4, 16, 64)
    assert model.module.model.layers[1].self_attn.v_proj.bias is not None


def test_unedited_concept_mass_is_substantial(masses):
    assert masses[CONCEPT]["base"] >= 0.2, masses[CONCEPT]


def test_flipping_the_concept_head_removes_its_concept_only(masses):
    assert masses[CONCEPT]["P"] <= 0.2 * masses[CONCEPT]["base"], masses[CONCEPT]
    for name in CATEGORIES:
        if name != CONCEPT:
            assert masses[name]["P"] >= 0.9 * masses[name]["base"], (name, masses[name])


def test_flipping_the_generic_head_cuts_every_category(masses):
    for name in CATEGORIES:
        assert masses[name]["G"] <= 0.5 * masses[name]["base"], (name, masses[name])


def test_flipping_any_other_head_leaves_the_concept(masses, planted):
    concept = masses[CONCEPT]
    for head in _others(*planted):
        assert 0.8 <= concept[head] / concept["base"] <= 1.25, (head, concept[head], concept["base"])


def test_planted_heads_write_their_rows(planted, contexts, ids):
    """At the last position P's mean write points along its concept's (mean normalised) unembedding
    rows and no other category's, G's along every category's; the other heads' writes point along no
    category and are tiny beside P's."""
    model, info = planted
    writes = capture(model, [c for name in CATEGORIES for c in contexts[name]], positions="last", progress=False)
    rows = [dictionary_rows(model.adapter, ids[name], normalize=True, fold_norm=False) for name in CATEGORIES]
    directions = torch.nn.functional.normalize(torch.stack([r.mean(0) for r in rows]), dim=-1)  # (5, d_model)
    cos = torch.nn.functional.normalize(writes.mean(2), dim=-1) @ directions.T  # (n_layers, n_heads, 5)
    concept = CATEGORIES.index(CONCEPT)
    p, g = cos[info["concept"]], cos[info["generic"]]
    assert p[concept] >= 0.9 and all(abs(p[i]) <= 0.2 for i in range(len(CATEGORIES)) if i != concept), p
    assert (g >= 0.3).all(), g
    smallest = writes[info["concept"]].norm(dim=-1).min()
    for head in _others(model, info):
        assert (cos[head].abs() <= 0.6).all(), (head, cos[head])
        assert writes[head].norm(dim=-1).max() * 20 <= smallest, head


def test_ranking_finds_the_concept_head(ranking, planted):
    _, info = planted
    z = torch.as_tensor(ranking.scores)
    layer, head = info["concept"]
    best = divmod(int(z.argmax()), ranking.n_heads)
    assert best == (layer, head), z
    second = z.flatten().sort(descending=True).values[1]
    assert z[layer, head] >= second + 1.5, z
    assert ranking.significant[layer, head]
    assert ranking.score_table["evr"][layer, head] >= 0.8


def test_strength_zero_removes_the_plant(tokenizer):
    model, info = planted_model(tokenizer, strength=0.0, seed=0)
    ranking = hp.rank_heads(model, None, CONCEPT, refine=False, progress=False, n_null=10)
    layer, head = info["concept"]
    assert not ranking.significant[layer, head]
    assert ranking.scores[layer, head] < 2.0
