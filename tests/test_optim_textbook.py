"""Textbook optimizers against NumPy transcriptions of the published update rules.

Each reference below is written from the paper, not from trainlab's code:
random quadratics f(x) = 1/2 x^T A x - b^T x per tensor, float64, 50 steps, a
learning rate that changes every step (as a schedule would write it), weight
decay on the matrix ("decay" group) and none on the vector ("no_decay").
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import trainlab.optim.builtins  # noqa: F401
from tests.optim_quadratics import assert_same, grad, quadratics
from trainlab.errors import ConfigError
from trainlab.optim import OPTIMIZERS

STEPS = 50


def _lrs(lr: float) -> list[float]:
    return [lr * (1.0 + 0.5 * math.sin(t)) for t in range(STEPS)]  # a changing LR, as a schedule writes it


def _run(spec: dict, problems, lrs: list[float] | None, weight_decay: float = 0.0) -> list[list[np.ndarray]]:
    """trainlab's optimizer on the quadratics; returns the parameters after every step."""
    params = [torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64)) for _, _, x0 in problems]
    groups = [{"params": [params[0]], "group": "decay", "weight_decay": weight_decay},
              {"params": [params[1]], "group": "no_decay", "weight_decay": 0.0}]
    optimizer = OPTIMIZERS.build(spec, groups, lr=lrs[0] if lrs else 1.0)
    trajectory = []
    for t in range(STEPS):
        for group in optimizer.param_groups:
            group["lr"] = lrs[t] if lrs else group["lr"]
        for p, problem in zip(params, problems, strict=True):
            p.grad = torch.from_numpy(grad(problem, p.detach().numpy()))
        optimizer.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


# --- NumPy references -----------------------------------------------------------------------------


def momentum_reference(problems, lrs, gamma, weight_decays):
    """Polyak heavy ball, LR inside the velocity: v = gamma v + eta g; theta = theta - v."""
    xs = [x0.copy() for _, _, x0 in problems]
    vs = [np.zeros_like(x) for x in xs]
    out = []
    for eta in lrs:
        for i, problem in enumerate(problems):
            g = grad(problem, xs[i]) + weight_decays[i] * xs[i]
            vs[i] = gamma * vs[i] + eta * g
            xs[i] = xs[i] - vs[i]
        out.append([x.copy() for x in xs])
    return out


def zeiler_reference(problems, steps, rho, eps):
    """Zeiler 2012, Algorithm 1."""
    xs = [x0.copy() for _, _, x0 in problems]
    eg2 = [np.zeros_like(x) for x in xs]
    edx2 = [np.zeros_like(x) for x in xs]
    out = []
    for _ in range(steps):
        for i, problem in enumerate(problems):
            g = grad(problem, xs[i])
            eg2[i] = rho * eg2[i] + (1 - rho) * g**2
            dx = -np.sqrt(edx2[i] + eps) / np.sqrt(eg2[i] + eps) * g
            edx2[i] = rho * edx2[i] + (1 - rho) * dx**2
            xs[i] = xs[i] + dx
        out.append([x.copy() for x in xs])
    return out


def adam_reference(problems, lrs, beta1, beta2, eps, weight_decays, bias_correction):
    """Kingma & Ba 2015, Algorithm 1 (optionally without the bias-correction lines)."""
    xs = [x0.copy() for _, _, x0 in problems]
    ms = [np.zeros_like(x) for x in xs]
    vs = [np.zeros_like(x) for x in xs]
    out = []
    for t, alpha in enumerate(lrs, start=1):
        for i, problem in enumerate(problems):
            g = grad(problem, xs[i]) + weight_decays[i] * xs[i]
            ms[i] = beta1 * ms[i] + (1 - beta1) * g
            vs[i] = beta2 * vs[i] + (1 - beta2) * g * g
            m_hat = ms[i] / (1 - beta1**t) if bias_correction else ms[i]
            v_hat = vs[i] / (1 - beta2**t) if bias_correction else vs[i]
            xs[i] = xs[i] - alpha * m_hat / (np.sqrt(v_hat) + eps)
        out.append([x.copy() for x in xs])
    return out


# --- tests ----------------------------------------------------------------------------------------


def test_momentum_textbook_matches_reference():
    problems, lrs = quadratics(0), _lrs(0.05)
    trajectory = _run({"name": "momentum_textbook", "momentum": 0.8}, problems, lrs, weight_decay=0.1)
    assert_same(trajectory, momentum_reference(problems, lrs, 0.8, [0.1, 0.0]))


def test_momentum_textbook_differs_from_torch_only_when_lr_changes():
    problems = quadratics(1)
    constant = [0.05] * STEPS
    ours = _run({"name": "momentum_textbook", "momentum": 0.8}, problems, constant)
    torch_form = _run({"name": "momentum", "momentum": 0.8}, problems, constant)
    assert_same(ours, torch_form)
    changing = _lrs(0.05)
    ours = _run({"name": "momentum_textbook", "momentum": 0.8}, problems, changing)
    torch_form = _run({"name": "momentum", "momentum": 0.8}, problems, changing)
    assert np.abs(ours[-1][0] - torch_form[-1][0]).max() > 1e-3


def test_adadelta_zeiler_matches_reference():
    problems = quadratics(2)
    trajectory = _run({"name": "adadelta_zeiler", "rho": 0.9, "eps": 1e-4}, problems, None)
    assert_same(trajectory, zeiler_reference(problems, STEPS, 0.9, 1e-4))
    assert np.abs(trajectory[-1][0] - problems[0][2]).max() > 1e-2  # it moved


def test_adadelta_zeiler_equals_torch_adadelta_at_lr_1():
    problems = quadratics(3)
    ours = _run({"name": "adadelta_zeiler", "rho": 0.9}, problems, None)
    torch_form = _run({"name": "adadelta", "rho": 0.9, "eps": 1e-6}, problems, [1.0] * STEPS)
    assert_same(ours, torch_form)


def test_adadelta_zeiler_requires_lr_one():
    with pytest.raises(ConfigError, match=r"adadelta_zeiler has no learning rate.*Received: lr=0.001"):
        OPTIMIZERS.build("adadelta_zeiler", [{"params": [torch.nn.Parameter(torch.zeros(2))]}], lr=0.001)


@pytest.mark.parametrize("bias_correction", [True, False])
def test_adam_textbook_matches_reference(bias_correction):
    problems, lrs = quadratics(4), _lrs(0.02)
    spec = {"name": "adam_textbook", "betas": [0.8, 0.95], "eps": 1e-6, "bias_correction": bias_correction}
    trajectory = _run(spec, problems, lrs, weight_decay=0.05)
    assert_same(trajectory, adam_reference(problems, lrs, 0.8, 0.95, 1e-6, [0.05, 0.0], bias_correction))


def test_adam_textbook_with_bias_correction_is_torch_adam_and_without_is_not():
    problems, lrs = quadratics(5), _lrs(0.02)
    torch_adam = _run({"name": "adam", "fused": False}, problems, lrs)
    assert_same(_run({"name": "adam_textbook"}, problems, lrs), torch_adam)
    uncorrected = _run({"name": "adam_textbook", "bias_correction": False}, problems, lrs)
    # first step: (1 - beta1) / sqrt(1 - beta2) = 3.16x the corrected step, per coordinate
    first_corrected = np.abs(torch_adam[0][1] - problems[1][2])
    first_uncorrected = np.abs(uncorrected[0][1] - problems[1][2])
    np.testing.assert_allclose(first_uncorrected / first_corrected, 0.1 / math.sqrt(0.001), rtol=1e-4)


def test_textbook_optimizers_validate_arguments():
    params = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ConfigError, match=r"momentum_textbook': momentum must be in \[0, 1\); got 1.5"):
        OPTIMIZERS.build({"name": "momentum_textbook", "momentum": 1.5}, params, lr=0.1)
    with pytest.raises(ConfigError, match=r"betas\[1\] must be in \[0, 1\); got 1.0"):
        OPTIMIZERS.build({"name": "adam_textbook", "betas": [0.9, 1.0]}, params, lr=0.1)
    with pytest.raises(ConfigError, match="bias_correction"):
        OPTIMIZERS.build({"name": "adam_textbook", "bias_correction": "yes"}, params, lr=0.1)
