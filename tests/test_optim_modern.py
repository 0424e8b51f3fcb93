"""Lion, LAMB, Schedule-Free AdamW and Prodigy against NumPy transcriptions of the papers.

Random quadratics f(x) = 1/2 x^T A x - b^T x per tensor, float64, 50 steps, a
learning rate that changes every step, weight decay on the matrix ("decay"
group) and none on the vector ("no_decay"). Each reference is written from the
paper's pseudo-code, independently of trainlab's code (Schedule-Free keeps x
and z explicitly where trainlab keeps y and z). Then: foreach path == loop path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import trainlab.optim.builtins  # noqa: F401
import trainlab.optim.core
from tests.optim_quadratics import assert_same, grad, quadratics
from trainlab.errors import ConfigError
from trainlab.optim import OPTIMIZERS
from trainlab.optim.core import cache_buckets

STEPS = 50


def _lrs(lr: float) -> list[float]:
    return [lr * (1.0 + 0.5 * math.sin(t)) for t in range(STEPS)]


def _build(spec: dict, problems, lr: float, weight_decay: float):
    params = [torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64)) for _, _, x0 in problems]
    groups = [{"params": [params[0]], "group": "decay", "weight_decay": weight_decay},
              {"params": [params[1]], "group": "no_decay", "weight_decay": 0.0}]
    return params, OPTIMIZERS.build(spec, groups, lr=lr)


def _run(spec: dict, problems, lrs: list[float], weight_decay: float):
    """trainlab's optimizer on the quadratics: (parameters after every step, optimizer, parameters)."""
    params, optimizer = _build(spec, problems, lrs[0], weight_decay)
    trajectory = []
    for lr in lrs:
        for group in optimizer.param_groups:
            group["lr"] = lr
        for p, problem in zip(params, problems, strict=True):
            p.grad = torch.from_numpy(grad(problem, p.detach().numpy()))
        optimizer.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory, optimizer, params


def _moved(trajectory, problems) -> float:
    return max(np.abs(x - x0).max() for x, (_, _, x0) in zip(trajectory[-1], problems, strict=True))


# --- NumPy references -----------------------------------------------------------------------------


def lion_reference(problems, lrs, beta1, beta2, weight_decays):
    """Chen et al. 2023, Algorithm 2."""
    xs = [x0.copy() for _, _, x0 in problems]
    ms = [np.zeros_like(x) for x in xs]
    out = []
    for eta in lrs:
        for i, problem in enumerate(problems):
            g = grad(problem, xs[i])
            c = beta1 * ms[i] + (1 - beta1) * g
            xs[i] = xs[i] - eta * (np.sign(c) + weight_decays[i] * xs[i])
            ms[i] = beta2 * ms[i] + (1 - beta2) * g
        out.append([x.copy() for x in xs])
    return out


def lamb_reference(problems, lrs, beta1, beta2, eps, weight_decays, phi_bounds=(0.0, np.inf)):
    """You et al. 2019, Algorithm 2 with phi(z) = min(max(z, lower), upper), one layer per tensor."""
    xs = [x0.copy() for _, _, x0 in problems]
    ms = [np.zeros_like(x) for x in xs]
    vs = [np.zeros_like(x) for x in xs]
    out = []
    for t, eta in enumerate(lrs, start=1):
        for i, problem in enumerate(problems):
            g = grad(problem, xs[i])
            ms[i] = beta1 * ms[i] + (1 - beta1) * g
            vs[i] = beta2 * vs[i] + (1 - beta2) * g**2
            r = (ms[i] / (1 - beta1**t)) / (np.sqrt(vs[i] / (1 - beta2**t)) + eps)
            u = r + weight_decays[i] * xs[i]
            w_norm, u_norm = min(max(np.linalg.norm(xs[i]), phi_bounds[0]), phi_bounds[1]), np.linalg.norm(u)
            ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
            xs[i] = xs[i] - eta * ratio * u
        out.append([x.copy() for x in xs])
    return out


def schedule_free_reference(problems, lrs, beta1, beta2, eps, weight_decays, warmup_steps):
    """Defazio et al. 2024, Algorithm 1, keeping x and z; returns (y after each step, final x)."""
    xs = [x0.copy() for _, _, x0 in problems]
    zs = [x0.copy() for _, _, x0 in problems]
    vs = [np.zeros_like(x) for x in xs]
    weight_sum = 0.0
    out = []
    for t, lr in enumerate(lrs, start=1):
        gamma = lr * math.sqrt(1 - beta2**t) * (min(1.0, t / warmup_steps) if warmup_steps else 1.0)
        weight_sum += gamma**2
        c = gamma**2 / weight_sum
        ys_next = []
        for i, problem in enumerate(problems):
            y = (1 - beta1) * zs[i] + beta1 * xs[i]
            g = grad(problem, y)
            vs[i] = beta2 * vs[i] + (1 - beta2) * g**2
            zs[i] = zs[i] - gamma * g / (np.sqrt(vs[i]) + eps) - gamma * weight_decays[i] * y
            xs[i] = (1 - c) * xs[i] + c * zs[i]
            ys_next.append((1 - beta1) * zs[i] + beta1 * xs[i])
        out.append(ys_next)
    return out, xs


def prodigy_reference(problems, lrs, beta1, beta2, eps, weight_decays, d0):
    """Mishchenko & Defazio 2023, Algorithm 3 (Adam version), one d for all tensors."""
    beta3 = math.sqrt(beta2)
    xs = [x0.copy() for _, _, x0 in problems]
    x0s = [x0.copy() for _, _, x0 in problems]
    ms = [np.zeros_like(x) for x in xs]
    vs = [np.zeros_like(x) for x in xs]
    ss = [np.zeros_like(x) for x in xs]
    d, r = d0, 0.0
    out, ds = [], []
    for gamma in lrs:
        gs = [grad(problem, x) for problem, x in zip(problems, xs, strict=True)]
        r = beta3 * r + (1 - beta3) * gamma * d**2 * sum(np.sum(g * (x0 - x)) for g, x0, x in zip(gs, x0s, xs, strict=True))
        for i, g in enumerate(gs):
            ms[i] = beta1 * ms[i] + (1 - beta1) * d * g
            vs[i] = beta2 * vs[i] + (1 - beta2) * d**2 * g**2
            ss[i] = beta3 * ss[i] + (1 - beta3) * gamma * d**2 * g
        d_next = max(d, r / sum(np.abs(s).sum() for s in ss))
        for i in range(len(xs)):
            xs[i] = xs[i] - gamma * d * weight_decays[i] * xs[i] - gamma * d * ms[i] / (np.sqrt(vs[i]) + d * eps)
        d = d_next
        out.append([x.copy() for x in xs])
        ds.append(d)
    return out, ds


# --- against the references -----------------------------------------------------------------------


@pytest.mark.parametrize("foreach", [True, False])
def test_lion_matches_reference(foreach):
    problems, lrs = quadratics(0), _lrs(0.01)
    spec = {"name": "lion", "betas": [0.8, 0.95], "foreach": foreach}
    trajectory, _, _ = _run(spec, problems, lrs, weight_decay=0.5)
    assert_same(trajectory, lion_reference(problems, lrs, 0.8, 0.95, [0.5, 0.0]))
    assert _moved(trajectory, problems) > 0.1


@pytest.mark.parametrize(("foreach", "bounds"), [(True, None), (False, None), (True, (3.3, 3.4)), (False, (3.3, 3.4))])
def test_lamb_matches_reference(foreach, bounds):
    problems, lrs = quadratics(1), _lrs(0.02)
    spec = {"name": "lamb", "betas": [0.8, 0.95], "eps": 1e-6, "foreach": foreach}
    if bounds:  # initial norms are 3.49 (matrix) and 3.16 (vector): both bounds act
        spec["norm_bounds"] = list(bounds)
    trajectory, _, _ = _run(spec, problems, lrs, weight_decay=0.1)
    reference = lamb_reference(problems, lrs, 0.8, 0.95, 1e-6, [0.1, 0.0], bounds or (0.0, np.inf))
    assert_same(trajectory, reference)
    assert _moved(trajectory, problems) > 0.1


def test_lamb_trust_ratio_is_one_for_zero_weights():
    """A zero-initialised tensor still moves (ratio 1 where ||theta|| = 0), by lr * ||u|| in norm."""
    p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    optimizer = OPTIMIZERS.build({"name": "lamb", "weight_decay": 0.0}, [{"params": [p]}], lr=0.1)
    p.grad = torch.tensor([1.0, -2.0, 3.0, 0.5], dtype=torch.float64)
    optimizer.step()
    np.testing.assert_allclose(p.detach().numpy(), -0.1 * np.sign(p.grad.numpy()), atol=1e-6)


@pytest.mark.parametrize(("foreach", "warmup_steps"), [(True, 0), (False, 0), (True, 5)])
def test_schedule_free_adamw_matches_reference(foreach, warmup_steps):
    problems, lrs = quadratics(2), _lrs(0.05)
    spec = {"name": "schedule_free_adamw", "betas": [0.9, 0.95], "eps": 1e-6, "warmup_steps": warmup_steps,
            "foreach": foreach}
    trajectory, optimizer, params = _run(spec, problems, lrs, weight_decay=0.1)
    ys, x_final = schedule_free_reference(problems, lrs, 0.9, 0.95, 1e-6, [0.1, 0.0], warmup_steps)
    assert_same(trajectory, ys)  # in train mode the parameters hold y
    optimizer.eval()
    assert_same([[p.detach().numpy() for p in params]], [x_final])  # in eval mode, x
    optimizer.train()
    assert_same([[p.detach().numpy() for p in params]], [ys[-1]])
    assert _moved(trajectory, problems) > 0.1


def test_schedule_free_step_in_eval_mode_raises_and_switch_is_idempotent():
    problems = quadratics(3)
    trajectory, optimizer, params = _run({"name": "schedule_free_adamw"}, problems, [0.01] * 5, 0.0)
    optimizer.eval()
    x = [p.detach().clone() for p in params]
    optimizer.eval()  # a second eval() must not move the weights again
    assert all(torch.equal(a, p.detach()) for a, p in zip(x, params, strict=True))
    assert not any(torch.equal(a, torch.from_numpy(y)) for a, y in zip(x, trajectory[-1], strict=True))
    with pytest.raises(RuntimeError, match=r"call optimizer.train\(\) first"):
        optimizer.step()
    assert optimizer.state_dict()["param_groups"][0]["train_mode"] is False


def test_schedule_free_rejects_beta1_zero():
    with pytest.raises(ConfigError, match=r"`betas\[0\]` must be in \(0, 1\)"):
        OPTIMIZERS.build({"name": "schedule_free_adamw", "betas": [0.0, 0.999]},
                         [{"params": [torch.nn.Parameter(torch.zeros(2))]}], lr=0.01)


@pytest.mark.parametrize("foreach", [True, False])
def test_prodigy_matches_reference(foreach):
    problems, lrs = quadratics(4), _lrs(1.0)
    spec = {"name": "prodigy", "betas": [0.9, 0.99], "eps": 1e-8, "d0": 1e-4, "foreach": foreach}
    trajectory, optimizer, _ = _run(spec, problems, lrs, weight_decay=0.01)
    reference, ds = prodigy_reference(problems, lrs, 0.9, 0.99, 1e-8, [0.01, 0.0], 1e-4)
    assert_same(trajectory, reference)
    assert optimizer.param_groups[0]["d"] == pytest.approx(ds[-1], rel=1e-9)
    assert optimizer.param_groups[1]["d"] == optimizer.param_groups[0]["d"]
    assert ds[-1] > 100 * 1e-4  # d grew from d0: the estimate is doing its job


def test_prodigy_lr_defaults_to_one():
    optimizer = OPTIMIZERS.get("prodigy")([{"params": [torch.nn.Parameter(torch.zeros(2))]}])
    assert optimizer.param_groups[0]["lr"] == 1.0


# --- foreach == loop --------------------------------------------------------------------------------


SPECS = {
    "lion": {"name": "lion", "weight_decay": 0.1},
    "lamb": {"name": "lamb", "weight_decay": 0.1},
    "schedule_free_adamw": {"name": "schedule_free_adamw", "weight_decay": 0.1, "warmup_steps": 3},
    "prodigy": {"name": "prodigy", "weight_decay": 0.1},
}


def _float32_run(spec: dict, lr: float) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (40, 3), (1,), (16, 16), (3, 2, 3, 3)]
    params = [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in shapes]
    groups = [{"params": [p for p in params if p.ndim >= 2]},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = OPTIMIZERS.build(spec, groups, lr=lr)
    for _ in range(20):
        for p in params:
            p.grad = p.detach() * 0.5 + torch.randn(p.shape, generator=generator)
        optimizer.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_foreach_equals_loop(name, monkeypatch):
    monkeypatch.setattr(trainlab.optim.core, "CPU_BUCKET_ELEMENTS", 64)  # several buckets, one tensor > budget
    lr = {"lion": 0.01, "lamb": 0.01, "schedule_free_adamw": 0.01, "prodigy": 1.0}[name]
    start = _float32_run({**SPECS[name], "foreach": False}, lr=0.0)
    looped = _float32_run({**SPECS[name], "foreach": False}, lr=lr)
    fused = _float32_run({**SPECS[name], "foreach": True}, lr=lr)
    for a, b, p0 in zip(fused, looped, start, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
        assert not torch.equal(a, p0)


def test_cache_buckets_split_by_element_budget():
    tensors = [torch.zeros(n) for n in (10, 20, 40, 100, 5, 5)]
    assert cache_buckets(tensors, budget=40) == [slice(0, 2), slice(2, 3), slice(3, 4), slice(4, 6)]
    assert cache_buckets([], budget=40) == []
