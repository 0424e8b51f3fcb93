"""Random quadratic problems shared by the optimizer conformance tests (NumPy references).

Each problem is (A, b, x0) with A symmetric positive definite: f(x) = x.A.x / 2 - b.x, grad = A x - b.
Shapes cover a decay-group matrix and a no-decay vector.
"""

from __future__ import annotations

import math

import numpy as np

SHAPES = [(3, 4), (5,)]  # the decay-group matrix and the no-decay vector


def quadratics(seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    problems = []
    for shape in SHAPES:
        n = math.prod(shape)
        m = rng.normal(size=(n, n))
        problems.append((m @ m.T / n + 0.1 * np.eye(n), rng.normal(size=n), rng.normal(size=shape)))
    return problems


def grad(problem, x: np.ndarray) -> np.ndarray:
    a, b, _ = problem
    return (a @ x.ravel() - b).reshape(x.shape)


def assert_same(trajectory, reference) -> None:
    for ours, theirs in zip(trajectory, reference, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
