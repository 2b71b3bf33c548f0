"""Batched SOMP against an independent slow reference (numpy lstsq refits) and scikit-learn's OMP."""

import numpy as np
import pytest
import torch

import headpursuit_widget as hp
from headpursuit_widget.engine.ranking import pursuit
from headpursuit_widget.testing import reference_somp


@pytest.mark.parametrize("seed", range(4))
def test_batched_somp_matches_slow_reference(seed):
    g = np.random.default_rng(seed)
    H, D = g.normal(size=(5, 9, 24)), g.normal(size=(40, 24))
    res = hp.somp(torch.tensor(H), torch.tensor(D), 10)
    assert res.atoms.shape == (5, 10) and res.coef.shape == (5, 9, 10) and res.evr.shape == (5, 10)
    for b in range(5):
        atoms, coef, evr = reference_somp(H[b], D, 10)
        assert res.atoms[b].tolist() == atoms
        np.testing.assert_allclose(res.coef[b].numpy(), coef, atol=1e-9)
        np.testing.assert_allclose(res.evr[b].numpy(), evr, atol=1e-10)


def test_single_sample_uncentred_is_sklearn_omp():
    linear_model = pytest.importorskip("sklearn.linear_model")
    g = np.random.default_rng(7)
    D = g.normal(size=(30, 16))
    D /= np.linalg.norm(D, axis=1, keepdims=True)  # sklearn's OMP assumes unit-norm atoms
    y = D[[3, 11, 20]].T @ np.array([2.0, -1.5, 0.7]) + 0.01 * g.normal(size=16)
    res = hp.somp(torch.tensor(y[None]), torch.tensor(D), 3, center=False)
    expected = linear_model.orthogonal_mp(D.T, y, n_nonzero_coefs=3)
    support = np.flatnonzero(expected)
    assert sorted(res.atoms.tolist()) == support.tolist() == [3, 11, 20]
    coef = dict(zip(res.atoms.tolist(), res.coef[0].tolist()))
    np.testing.assert_allclose([coef[i] for i in support], expected[support], atol=1e-9)


def test_k_beyond_rank_stays_exact_and_finite():
    g = np.random.default_rng(1)
    D = g.normal(size=(12, 6))
    H = g.normal(size=(4, 6))  # 4 centred samples: rank 3
    res = hp.somp(torch.tensor(H), torch.tensor(np.vstack([D, D])), 10)  # duplicate atoms too
    assert torch.isfinite(res.coef).all() and torch.isfinite(res.evr).all()
    assert (res.evr.diff() >= -1e-12).all()
    assert res.evr[-1] == pytest.approx(1.0, abs=1e-9)  # 6 independent atoms span R^6
    Hc = H - H.mean(0)
    fit = res.coef.numpy() @ np.vstack([D, D])[res.atoms.numpy()]
    np.testing.assert_allclose(fit, Hc, atol=1e-8)


def test_bad_arguments_are_named():
    H, D = torch.randn(3, 8), torch.randn(5, 8)
    with pytest.raises(hp.HeadPursuitError, match="larger than the dictionary"):
        hp.somp(H, D, 6)
    with pytest.raises(hp.HeadPursuitError, match="positive int"):
        hp.somp(H, D, 0)
    with pytest.raises(hp.HeadPursuitError, match="same d"):
        hp.somp(H, torch.randn(5, 7), 2)
    with pytest.raises(hp.HeadPursuitError, match="NaN"):
        hp.somp(H * float("nan"), D, 2)


def test_chunked_stack_of_dictionaries_matches_reference_per_pair():
    """A tiny chunk budget (one signal set per chunk) gives each (dictionary, set) pair the slow reference's answer."""
    g = np.random.default_rng(3)
    H, D = g.normal(size=(5, 7, 16)).astype(np.float32), g.normal(size=(3, 30, 16))
    H_before = H.copy()
    whole = hp.somp(torch.tensor(H), torch.tensor(D), 6)
    chunked = hp.somp(torch.tensor(H), torch.tensor(D), 6, chunk_bytes=1)
    lean = hp.somp(torch.tensor(H), torch.tensor(D), 6, chunk_bytes=1, with_coef=False)
    assert chunked.atoms.shape == (3, 5, 6) and chunked.coef.shape == (3, 5, 7, 6)
    for gi in range(3):
        for b in range(5):
            atoms, coef, evr = reference_somp(H[b], D[gi], 6)
            assert chunked.atoms[gi, b].tolist() == whole.atoms[gi, b].tolist() == atoms
            np.testing.assert_allclose(chunked.coef[gi, b].numpy(), coef, atol=1e-9)
            np.testing.assert_allclose(chunked.evr[gi, b].numpy(), evr, atol=1e-10)
    assert torch.equal(lean.atoms, chunked.atoms) and torch.equal(lean.evr, chunked.evr) and lean.coef is None
    np.testing.assert_array_equal(H, H_before)


def test_float64_input_is_not_centred_in_place():
    H = torch.randn(2, 5, 8, dtype=torch.float64)
    before = H.clone()
    hp.somp(H, torch.randn(10, 8, dtype=torch.float64), 3)
    assert torch.equal(H, before)


def test_problem_beyond_memory_is_refused_before_allocating():
    """10^6 heads x 1000 samples x 1024 dims (8 TB in float64) is a free expanded view: SOMP must refuse it
    with a clear error instead of trying to copy it."""
    H = torch.zeros(1, 1, 1024).expand(1_000_000, 1000, 1024)
    with pytest.raises(hp.HeadPursuitError, match=r"needs about .* GiB .* available; use fewer words or prompts"):
        hp.somp(H, torch.randn(50, 1024), 5)


def test_memory_guard_uses_available_memory(monkeypatch):
    from headpursuit_widget.engine import memory

    H, D = torch.randn(4, 6, 8), torch.randn(20, 8)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 1000)
    with pytest.raises(hp.HeadPursuitError, match="only 0.00 GiB of memory is available"):
        hp.somp(H, D, 3)
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 1 << 30)
    assert hp.somp(H, D, 3).atoms.shape == (4, 3)


def test_bool_k_is_refused():
    with pytest.raises(hp.HeadPursuitError, match="positive int"):
        hp.somp(torch.randn(3, 8), torch.randn(5, 8), True)


@pytest.mark.parametrize("seed", range(3))
def test_somp_from_statistics_matches_slow_reference(seed):
    """somp_gram sees only D Hc^T, |Hc|^2 and D D^T (never H or D) and picks what the reference picks
    from H and D, duplicate atoms and a large common offset (the mean a head's write often carries) included."""
    g = np.random.default_rng(seed)
    D = g.normal(size=(30, 16))
    D = np.vstack([D, D[:3]])
    H = g.normal(size=(4, 12, 16)) + 20 * g.normal(size=(4, 1, 16))
    Hc = H - H.mean(1, keepdims=True)
    P = torch.tensor(np.einsum("md,bnd->bmn", D, Hc))
    res = pursuit.somp_gram(P, torch.tensor((Hc**2).sum((1, 2))), torch.tensor(D @ D.T), 9)
    assert res.coef is None and res.atoms.shape == res.evr.shape == (4, 9)
    for b in range(4):
        atoms, _, evr = reference_somp(H[b], D, 9)
        assert res.atoms[b].tolist() == atoms
        np.testing.assert_allclose(res.evr[b].numpy(), evr, atol=1e-10)


def test_somp_from_statistics_rejects_mismatched_shapes():
    P, energy, gram = torch.randn(2, 5, 3), torch.ones(2), torch.eye(5)
    with pytest.raises(hp.HeadPursuitError, match=r"P \(B, m, n\), energy \(B,\) and gram \(m, m\)"):
        pursuit.somp_gram(P, energy, torch.eye(4), 2)
    with pytest.raises(hp.HeadPursuitError, match="larger than the dictionary"):
        pursuit.somp_gram(P, energy, gram, 6)


@pytest.mark.parametrize("d", [16, 64], ids=["gram-rows-on-demand", "whole-gram"])  # 12 atoms: m > d / 4, m <= d / 4
@pytest.mark.parametrize("chunk_bytes", [1, 60_000, 1 << 28])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_many_dictionaries_on_shared_rows_match_slow_reference(chunk_bytes, d, dtype):
    """somp_evr_many (the null's path: dictionaries of row ids that share rows, grouped and chunked to a
    budget) gives each (dictionary, set) pair the slow reference's final EVR, whatever the budget and
    whether it reads whole Gram matrices or computes their rows; in float32 within float32 rounding."""
    g = np.random.default_rng(7)
    H = g.normal(size=(5, 9, d)) + 5 * g.normal(size=(5, 1, d))
    rows = g.normal(size=(40, d))
    dictionaries = [g.choice(40, size=12, replace=False) for _ in range(6)]
    asked = []

    def rows_of(ids):
        asked.append(len(ids))
        return torch.tensor(rows[ids], dtype=torch.float32)

    H32 = torch.tensor(H, dtype=torch.float32)
    out = pursuit.somp_evr_many(H32, dictionaries, rows_of, 5, chunk_bytes=chunk_bytes, dtype=dtype)
    assert out.shape == (6, 5) and out.dtype == torch.float64
    assert sum(asked) <= 6 * 12  # shared rows fetched once per group
    if dtype == torch.float64:  # float32 halves the bytes: one group fits the middle budget too
        assert (len(asked) == 1) == (chunk_bytes == 1 << 28)
    H64, R64 = H32.double().numpy(), torch.tensor(rows, dtype=torch.float32).double().numpy()  # what it sees
    for gi, ids in enumerate(dictionaries):
        for b in range(5):
            evr = reference_somp(H64[b], R64[ids], 5)[2][-1]
            np.testing.assert_allclose(out[gi, b].item(), evr, atol=1e-10 if dtype == torch.float64 else 1e-5)


def test_many_dictionaries_reject_bad_shapes_and_k():
    H = torch.randn(2, 4, 8)
    with pytest.raises(hp.HeadPursuitError, match=r"H \(B, n, d\) and dictionaries of equal length"):
        pursuit.somp_evr_many(H[0], [[0, 1, 2]], lambda ids: torch.randn(len(ids), 8), 2)
    with pytest.raises(hp.HeadPursuitError, match="k=4 is larger than the dictionary"):
        pursuit.somp_evr_many(H, [[0, 1, 2], [3, 4, 5]], lambda ids: torch.randn(len(ids), 8), 4)
    with pytest.raises(hp.HeadPursuitError, match=r"dictionary rows must be finite, \(3, 8\)"):
        pursuit.somp_evr_many(H, [[0, 1, 2]], lambda ids: torch.randn(len(ids), 7), 2)
