"""Registry optimizers backed by torch.optim: the update rules against NumPy, the groups, L-BFGS and Muon."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import trainlab.optim.builtins  # noqa: F401
from tests.optim_quadratics import assert_same, grad, quadratics
from trainlab.errors import ConfigError
from trainlab.optim import OPTIMIZERS, param_groups, requires_closure
from trainlab.optim.muon import MuonWithAdamW

STEPS = 50




def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.LayerNorm(8), nn.Linear(8, 2))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(32, 4, generator=generator), torch.randn(32, 2, generator=generator)


def _groups_by_hand(model: nn.Module) -> list[dict]:
    """The decay/no_decay split written out, independent of ``param_groups``."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = STEPS) -> list[torch.Tensor]:
    x, y = _data()

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    for _ in range(steps):
        if requires_closure(optimizer):
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


# --- the registry's torch.optim optimizers against NumPy transcriptions of their update rules ----------
#
# Each reference is written from the published rule (as torch.optim's documentation states it),
# not from torch's code: random quadratics (tests/optim_quadratics.py), float64, 50 steps, a
# learning rate that changes every step, weight decay from the spec on the matrix ("decay"
# group) and none on the vector ("no_decay").


def _lrs(lr: float) -> list[float]:
    return [lr * (1.0 + 0.5 * math.sin(t)) for t in range(STEPS)]  # a changing LR, as a schedule writes it


def _run_registry(spec: dict, problems, lrs: list[float]) -> list[list[np.ndarray]]:
    params = [nn.Parameter(torch.tensor(x0, dtype=torch.float64)) for _, _, x0 in problems]
    groups = [{"params": [params[0]], "group": "decay"},  # weight_decay: the spec's
              {"params": [params[1]], "group": "no_decay", "weight_decay": 0.0}]
    optimizer = OPTIMIZERS.build(spec, groups, lr=lrs[0])
    trajectory = []
    for lr in lrs:
        for group in optimizer.param_groups:
            group["lr"] = lr
        for p, problem in zip(params, problems, strict=True):
            p.grad = torch.from_numpy(grad(problem, p.detach().numpy()))
        optimizer.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def _reference(problems, lrs, weight_decays, update) -> list[list[np.ndarray]]:
    """Drive ``update(i, t, lr, wd, x, g, state) -> new x`` (t from 1) over every tensor and step."""
    xs = [x0.copy() for _, _, x0 in problems]
    states: list[dict] = [{} for _ in xs]
    out = []
    for t, lr in enumerate(lrs, start=1):
        for i, problem in enumerate(problems):
            xs[i] = update(t, lr, weight_decays[i], xs[i], grad(problem, xs[i]), states[i])
        out.append([x.copy() for x in xs])
    return out


def sgd_update(momentum=0.0, dampening=0.0, nesterov=False):
    """g += wd x; b = g (t = 1) else mu b + (1 - dampening) g; step g + mu b (Nesterov) or b (Sutskever form)."""
    def update(t, lr, wd, x, g, state):
        g = g + wd * x
        if momentum:
            state["b"] = g if t == 1 else momentum * state["b"] + (1 - dampening) * g
            g = g + momentum * state["b"] if nesterov else state["b"]
        return x - lr * g
    return update


def rmsprop_update(alpha=0.99, eps=1e-8, momentum=0.0, centered=False):
    """Hinton's RMSprop: v = alpha v + (1 - alpha) g^2 (centred: minus the squared mean gradient)."""
    def update(t, lr, wd, x, g, state):
        g = g + wd * x
        state["v"] = alpha * state.get("v", 0.0) + (1 - alpha) * g * g
        v = state["v"]
        if centered:
            state["mean"] = alpha * state.get("mean", 0.0) + (1 - alpha) * g
            v = v - state["mean"] ** 2
        step = g / (np.sqrt(v) + eps)
        if momentum:
            state["b"] = momentum * state.get("b", 0.0) + step
            step = state["b"]
        return x - lr * step
    return update


def adagrad_update(lr_decay=0.0, eps=1e-10):
    """Duchi et al. 2011: s += g^2; x -= lr / (1 + (t - 1) lr_decay) g / (sqrt(s) + eps)."""
    def update(t, lr, wd, x, g, state):
        g = g + wd * x
        state["s"] = state.get("s", 0.0) + g * g
        return x - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(state["s"]) + eps)
    return update


def adadelta_update(rho=0.9, eps=1e-6):
    """Zeiler 2012 with an lr multiplier on the step."""
    def update(t, lr, wd, x, g, state):
        g = g + wd * x
        state["v"] = rho * state.get("v", 0.0) + (1 - rho) * g * g
        dx = np.sqrt(state.get("u", 0.0) + eps) / np.sqrt(state["v"] + eps) * g
        state["u"] = rho * state.get("u", 0.0) + (1 - rho) * dx * dx
        return x - lr * dx
    return update


def adam_update(beta1=0.9, beta2=0.999, eps=1e-8, decoupled=False):
    """Kingma & Ba 2015; decoupled: Loshchilov & Hutter's AdamW, x *= 1 - lr wd before the step."""
    def update(t, lr, wd, x, g, state):
        if decoupled:
            x = x * (1 - lr * wd)
        else:
            g = g + wd * x
        state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
        m_hat, v_hat = state["m"] / (1 - beta1**t), state["v"] / (1 - beta2**t)
        return x - lr * m_hat / (np.sqrt(v_hat) + eps)
    return update


def adamax_update(beta1=0.9, beta2=0.999, eps=1e-8):
    """Kingma & Ba 2015, section 7.1: u = max(beta2 u, |g| + eps); x -= lr / (1 - beta1^t) m / u."""
    def update(t, lr, wd, x, g, state):
        g = g + wd * x
        state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        state["u"] = np.maximum(beta2 * state.get("u", 0.0), np.abs(g) + eps)
        return x - lr / (1 - beta1**t) * state["m"] / state["u"]
    return update


def nadam_update(beta1=0.9, beta2=0.999, eps=1e-8, momentum_decay=4e-3, decoupled=False):
    """Dozat 2016 with the momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi))."""
    def mu(t):
        return beta1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

    def update(t, lr, wd, x, g, state):
        if decoupled:
            x = x * (1 - lr * wd)
        else:
            g = g + wd * x
        product = state.get("mu_product", 1.0) * mu(t)  # prod_{i <= t} mu_i
        state["mu_product"] = product
        state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
        m_hat = mu(t + 1) * state["m"] / (1 - product * mu(t + 1)) + (1 - mu(t)) * g / (1 - product)
        v_hat = state["v"] / (1 - beta2**t)
        return x - lr * m_hat / (np.sqrt(v_hat) + eps)
    return update


def radam_update(beta1=0.9, beta2=0.999, eps=1e-8, decoupled=False):
    """Liu et al. 2020, Algorithm 2: rectify the adaptive step once rho_t > 5, plain momentum before."""
    rho_inf = 2 / (1 - beta2) - 1

    def update(t, lr, wd, x, g, state):
        if decoupled:
            x = x * (1 - lr * wd)
        else:
            g = g + wd * x
        state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
        m_hat = state["m"] / (1 - beta1**t)
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        if rho_t <= 5:
            return x - lr * m_hat
        adaptive = np.sqrt(1 - beta2**t) / (np.sqrt(state["v"]) + eps)
        rectifier = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        return x - lr * m_hat * rectifier * adaptive
    return update


def adafactor_update(beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1.0):
    """Shazeer & Stern 2018 as torch.optim.Adafactor documents it: relative step rho_t = min(lr, 1/sqrt(t))
    scaled by max(eps2, RMS(x)), beta2_t = 1 - t^beta2_decay, factored second moments for matrices
    (V = R C / mean(R) from the row and column means of g^2), the update's RMS clipped to d,
    decoupled weight decay x *= 1 - lr wd."""
    eps1 = np.finfo(np.float64).eps if eps1 is None else eps1

    def rms(a):
        return np.sqrt(np.mean(a * a))

    def update(t, lr, wd, x, g, state):
        beta2 = 1 - t**beta2_decay
        alpha = max(eps2, rms(x)) * min(lr, 1 / math.sqrt(t))
        x = x * (1 - lr * wd)
        if g.ndim > 1:
            state["row"] = beta2 * state.get("row", 0.0) + (1 - beta2) * (g * g).mean(axis=1, keepdims=True)
            state["col"] = beta2 * state.get("col", 0.0) + (1 - beta2) * (g * g).mean(axis=0, keepdims=True)
            v = state["row"] * state["col"] / max(state["row"].mean(), eps1)
        else:
            state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
            v = state["v"]
        u = g / np.maximum(np.sqrt(v), eps1)
        u = u / max(1.0, rms(u) / d)
        return x - alpha * u
    return update


# name, registry spec (lr comes from the schedule), base lr, weight decay of the decay group, reference
UPDATE_RULES = [
    ("sgd", {"weight_decay": 0.01}, 0.05, 0.01, sgd_update()),
    ("momentum", {"momentum": 0.8, "weight_decay": 0.01}, 0.05, 0.01, sgd_update(0.8)),
    ("nesterov", {"momentum": 0.9}, 0.05, 0.0, sgd_update(0.9, nesterov=True)),
    ("sgd", {"momentum": 0.7, "dampening": 0.3, "weight_decay": 0.05}, 0.05, 0.05, sgd_update(0.7, 0.3)),
    ("rmsprop", {"weight_decay": 0.01}, 0.01, 0.01, rmsprop_update()),
    ("rmsprop", {"alpha": 0.9, "momentum": 0.5, "centered": True}, 0.01, 0.0,
     rmsprop_update(0.9, momentum=0.5, centered=True)),
    ("adagrad", {"lr_decay": 0.01, "weight_decay": 0.02}, 0.1, 0.02, adagrad_update(0.01)),
    ("adadelta", {"rho": 0.8, "weight_decay": 0.01}, 1.0, 0.01, adadelta_update(0.8)),
    ("adam", {"weight_decay": 0.01, "betas": [0.8, 0.95]}, 0.02, 0.01, adam_update(0.8, 0.95)),
    ("adam", {"fused": False}, 0.02, 0.0, adam_update()),
    ("adamw", {}, 0.02, 0.01, adam_update(decoupled=True)),  # adamw's default weight decay: 0.01
    ("adamw", {"weight_decay": 0.1, "eps": 1e-6}, 0.02, 0.1, adam_update(eps=1e-6, decoupled=True)),
    ("adamax", {"betas": [0.8, 0.99], "weight_decay": 0.01}, 0.02, 0.01, adamax_update(0.8, 0.99)),
    ("nadam", {"weight_decay": 0.01}, 0.02, 0.01, nadam_update()),
    ("nadam", {"weight_decay": 0.01, "decoupled_weight_decay": True, "momentum_decay": 0.01}, 0.02, 0.01,
     nadam_update(momentum_decay=0.01, decoupled=True)),
    ("radam", {"weight_decay": 0.01}, 0.02, 0.01, radam_update()),
    ("radam", {"weight_decay": 0.01, "decoupled_weight_decay": True}, 0.02, 0.01, radam_update(decoupled=True)),
    ("adafactor", {"weight_decay": 0.1}, 0.01, 0.1, adafactor_update()),
    ("adafactor", {"beta2_decay": -0.5, "d": 1.2, "eps": [None, 1e-2]}, 0.05, 0.0,
     adafactor_update(-0.5, eps2=1e-2, d=1.2)),
]


@pytest.mark.parametrize(("name", "spec", "lr", "weight_decay", "update"), UPDATE_RULES,
                         ids=[f"{rule[0]}-{i}" for i, rule in enumerate(UPDATE_RULES)])
def test_registry_matches_the_update_rule(name, spec, lr, weight_decay, update):
    problems, lrs = quadratics(len(name)), _lrs(lr)
    trajectory = _run_registry({"name": name, **spec}, problems, lrs)
    assert_same(trajectory, _reference(problems, lrs, [weight_decay, 0.0], update))
    assert np.abs(trajectory[-1][0] - problems[0][2]).max() > 1e-2  # it moved


def test_no_decay_group_is_not_decayed():
    """A weight decay kwarg reaches the decay group only: with zero gradients only matrices shrink."""
    model = _model()
    optimizer = OPTIMIZERS.build({"name": "adamw", "weight_decay": 0.5}, param_groups(model), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    for p, old in zip(model.parameters(), before, strict=True):
        if p.ndim >= 2:
            torch.testing.assert_close(p.detach(), old * (1 - 0.1 * 0.5))
        else:
            assert torch.equal(p.detach(), old)


def test_lbfgs_merges_groups_and_matches_torch():
    model = _model()
    reference = copy.deepcopy(model)
    optimizer = OPTIMIZERS.build({"name": "lbfgs", "max_iter": 5}, param_groups(model), lr=1.0)
    assert len(optimizer.param_groups) == 1 and requires_closure(optimizer)
    ours = _train(model, optimizer, steps=10)
    hand = _groups_by_hand(reference)  # same order as the merged groups: L-BFGS flattens in this order
    flat = hand[0]["params"] + hand[1]["params"]
    theirs = _train(reference, torch.optim.LBFGS(flat, lr=1.0, max_iter=5, line_search_fn="strong_wolfe"), steps=10)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=0)


def test_lbfgs_rejects_unknown_line_search():
    with pytest.raises(ConfigError, match="line_search_fn"):
        OPTIMIZERS.build({"name": "lbfgs", "line_search_fn": "armijo"}, param_groups(_model()), lr=1.0)


# --- Muon + AdamW composite ---------------------------------------------------------------------------


def test_muon_matches_torch_muon_plus_adamw():
    model = _model()
    reference = copy.deepcopy(model)
    ours = _train(model, OPTIMIZERS.build({"name": "muon", "adamw_lr": 0.003}, param_groups(model), lr=0.02))
    hand = _groups_by_hand(reference)
    muon = torch.optim.Muon([{"params": hand[0]["params"]}], lr=0.02, weight_decay=0.1,
                            adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW([{"params": hand[1]["params"], "weight_decay": 0.0}], lr=0.003, betas=(0.9, 0.95),
                              weight_decay=0.1, fused=True)
    x, y = _data()
    for _ in range(STEPS):
        muon.zero_grad()
        adamw.zero_grad()
        nn.functional.mse_loss(reference(x), y).backward()
        muon.step()
        adamw.step()
    for a, b in zip(ours, reference.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), atol=1e-7, rtol=0)


@pytest.mark.parametrize("adjust_lr_fn, adamw_lr", [("match_rms_adamw", None), ("original", 0.003)])
def test_muon_with_adamw_follows_the_published_updates_written_in_numpy(adjust_lr_fn, adamw_lr):
    """Against NumPy (float64), not torch: Muon on the matrix (Jordan et al. 2024), B = mu B + g,
    U = g + mu B (nesterov), O = NewtonSchulz5(U), W = W (1 - lr wd) - lr s O with s = 0.2 sqrt(max(A, B))
    (Liu et al. 2025) or sqrt(max(1, A/B)) ("original"); Adam with decoupled decay (Loshchilov & Hutter) on
    the bias, betas (0.9, 0.95), bias-corrected moments. torch's Muon runs Newton-Schulz in bfloat16, hence
    the tolerance: 3% of the distance moved (bfloat16 gives about 1%; no decay is off by 13%)."""
    from tests.muon_reference import newton_schulz5

    lr, wd, mu, (beta1, beta2), eps = 0.02, 0.1, 0.95, (0.9, 0.95), 1e-8
    generator = torch.Generator().manual_seed(7)
    weight = nn.Parameter(torch.randn(5, 3, generator=generator, dtype=torch.float64).float())
    bias = nn.Parameter(torch.randn(5, generator=generator).float())
    grads = [(torch.randn(5, 3, generator=generator), torch.randn(5, generator=generator)) for _ in range(4)]
    options = {"name": "muon", "adjust_lr_fn": adjust_lr_fn, **({"adamw_lr": adamw_lr} if adamw_lr else {})}
    optimizer = OPTIMIZERS.build(options, [{"params": [weight]}, {"params": [bias], "weight_decay": 0.0}], lr=lr)
    w, b = weight.detach().double().numpy().copy(), bias.detach().double().numpy().copy()
    start_w, start_b = w.copy(), b.copy()
    buffer, first, second = np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)
    scale = 0.2 * math.sqrt(max(5, 3)) if adjust_lr_fn == "match_rms_adamw" else math.sqrt(max(1.0, 5 / 3))
    bias_lr = adamw_lr or lr
    for t, (grad_w, grad_b) in enumerate(grads, start=1):
        weight.grad, bias.grad = grad_w.clone(), grad_b.clone()
        optimizer.step()
        g_w, g_b = grad_w.double().numpy(), grad_b.double().numpy()
        buffer = mu * buffer + g_w
        w = w * (1 - lr * wd) - lr * scale * newton_schulz5(g_w + mu * buffer, 5)
        first, second = beta1 * first + (1 - beta1) * g_b, beta2 * second + (1 - beta2) * g_b**2
        step = (first / (1 - beta1**t)) / (np.sqrt(second / (1 - beta2**t)) + eps)
        b = b - bias_lr * step  # the bias group's weight_decay is 0
    moved_w = np.abs(w - start_w).max()
    assert np.abs(weight.detach().double().numpy() - w).max() <= 3e-2 * moved_w
    np.testing.assert_allclose(bias.detach().double().numpy(), b, rtol=0, atol=1e-3 * np.abs(b - start_b).max())


def test_muon_splits_matrices_from_everything_else():
    conv = nn.Conv2d(2, 3, 3)
    linear = nn.Linear(4, 5)
    groups = [{"params": [conv.weight, linear.weight], "group": "decay"},
              {"params": [conv.bias, linear.bias], "group": "no_decay", "weight_decay": 0.0}]
    optimizer = MuonWithAdamW(groups, lr=0.01)
    summary = [(g["optimizer"], g["group"], [tuple(p.shape) for p in g["params"]], g["weight_decay"])
               for g in optimizer.param_groups]
    assert summary == [
        ("muon", "decay", [(5, 4)], 0.1),
        ("adamw", "decay", [(3, 2, 3, 3)], 0.1),  # conv kernels are not flattened: AdamW
        ("adamw", "no_decay", [(3,), (5,)], 0.0),
    ]


def test_muon_lr_written_into_param_groups_reaches_both_parts():
    model = _model()
    optimizer = OPTIMIZERS.build("muon", param_groups(model), lr=0.02)
    for group in optimizer.param_groups:
        group["lr"] = 0.0  # what an LR schedule does
    before = [p.detach().clone() for p in model.parameters()]
    _train(model, optimizer, steps=3)
    for p, old in zip(model.parameters(), before, strict=True):
        assert torch.equal(p.detach(), old)


def test_muon_state_dict_round_trip_continues_identically():
    model = _model()
    optimizer = OPTIMIZERS.build("muon", param_groups(model), lr=0.02)
    _train(model, optimizer, steps=5)
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    expected = _train(model, optimizer, steps=5)

    fresh = _model()
    fresh.load_state_dict(saved_model)
    resumed = OPTIMIZERS.build("muon", param_groups(fresh), lr=0.02)
    resumed.load_state_dict(saved_state)
    assert resumed.muon.state is resumed.state and resumed.adamw.param_groups[0] is resumed.param_groups[1]
    for a, b in zip(_train(fresh, resumed, steps=5), expected, strict=True):
        assert torch.equal(a, b)


def test_muon_rejects_unknown_adjust_lr_fn():
    with pytest.raises(ConfigError, match="adjust_lr_fn"):
        OPTIMIZERS.build({"name": "muon", "adjust_lr_fn": "rms"}, param_groups(_model()), lr=0.01)
