"""Batched SOMP against an independent slow reference (numpy lstsq refits) and scikit-learn's OMP."""

import numpy as np
import pytest
import torch

import headpursuit_widget as hp
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
