"""Independent references the tests and benchmarks check the engine against (numpy, weights edited
directly): slow and literal on purpose, never used by the engine itself."""

from __future__ import annotations

import copy

import numpy as np
import torch

from .engine import HeadModel, wrap


def reference_somp(H: np.ndarray, D: np.ndarray, k: int, center: bool = True):
    """docs/method.md "SOMP", literally: l1 correlation selection, least-squares refit every step.

    H (n, d), D (m, d) -> (atoms: list of k row indices, coef (n, k), evr (k,)), all float64."""
    H, D = H.astype(np.float64), D.astype(np.float64)
    Hc = H - H.mean(0) if center else H
    R, S, evr = Hc.copy(), list[int](), list[float]()
    X = np.zeros((Hc.shape[0], 0))
    for _ in range(k):
        c = np.abs(R @ D.T).sum(0)
        c[S] = -np.inf
        S.append(int(c.argmax()))
        X = np.linalg.lstsq(D[S].T, Hc.T, rcond=None)[0].T
        R = Hc - X @ D[S]
        evr.append(1 - (R**2).sum() / (Hc**2).sum())
    return S, X, np.array(evr)


def baked(model: HeadModel, edits: dict) -> HeadModel:
    """A copy of the model whose W_O blocks are scaled directly (columns for Linear, rows for Conv1D)."""
    other = wrap(copy.deepcopy(model.module), model.tokenizer, name="baked")
    a = other.adapter
    with torch.no_grad():
        for (layer, head), alpha in edits.items():
            sl = slice(head * a.head_dim, (head + 1) * a.head_dim)
            w = a.out_projs[layer].weight
            if a.kind == "linear":
                w[:, sl] *= alpha
            else:
                w[sl, :] *= alpha
    return other
