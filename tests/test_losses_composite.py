"""multitask, the WGAN-GP gradient penalty, and the l1/l2 parameter penalties."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.losses.composite import gradient_penalty
from trainlab.losses.penalties import l1_penalty, l2_penalty, penalised_parameters, penalty


def heads_and_targets(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pred = {"age": torch.randn(6, 1, generator=g, dtype=torch.float64),
            "kind": torch.randn(6, 3, generator=g, dtype=torch.float64)}
    target = {"age": torch.randn(6, 1, generator=g, dtype=torch.float64), "kind": torch.tensor([0, 2, 1, 1, 0, 2])}
    return pred, target


def test_multitask_fixed_weights_is_weighted_sum():
    pred, target = heads_and_targets()
    loss = build_loss({"name": "multitask", "losses": {"age": {"name": "huber", "delta": 0.5}, "kind": "cross_entropy"},
                       "weights": {"kind": 0.3}})
    expected = F.huber_loss(pred["age"], target["age"], delta=0.5) + 0.3 * F.cross_entropy(pred["kind"], target["kind"])
    torch.testing.assert_close(loss(pred, target), expected, rtol=0, atol=1e-12)
    assert set(loss.last_components) == {"age", "kind"}
    torch.testing.assert_close(loss.last_components["kind"], F.cross_entropy(pred["kind"], target["kind"]))
    loss.check(pred, target)
    assert loss.predict(pred)["kind"].tolist() == pred["kind"].argmax(1).tolist()
    assert loss.output_dims({"age": ("regression", None, 1), "kind": ("multiclass", 3, 1)}) == {"age": 1, "kind": 3}


def test_multitask_uncertainty_weights_formula_and_learning():
    pred, target = heads_and_targets()
    loss = build_loss({"name": "multitask", "losses": {"age": "mse", "kind": "cross_entropy"},
                       "learn_weights": True}).double()
    with torch.no_grad():
        loss.log_vars["age"].fill_(0.7)
        loss.log_vars["kind"].fill_(-0.4)
    mse, ce = F.mse_loss(pred["age"], target["age"]), F.cross_entropy(pred["kind"], target["kind"])
    expected = math.exp(-0.7) * mse + 0.7 + math.exp(0.4) * ce - 0.4
    torch.testing.assert_close(loss(pred, target), expected, rtol=0, atol=1e-12)
    # with the task losses held fixed, s_i converges to log L_i (the minimiser of exp(-s) L + s)
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.05)
    for _ in range(500):
        optimizer.zero_grad()
        loss(pred, target).backward()
        optimizer.step()
    torch.testing.assert_close(loss.log_vars["age"].detach(), torch.log(mse), atol=1e-3, rtol=0)
    torch.testing.assert_close(loss.log_vars["kind"].detach(), torch.log(ce), atol=1e-3, rtol=0)


def test_multitask_errors():
    with pytest.raises(ConfigError, match="fixed 'weights' or learn_weights=True, not both"):
        build_loss({"name": "multitask", "losses": {"a": "mse"}, "weights": {"a": 1}, "learn_weights": True})
    with pytest.raises(ConfigError, match="weights name unknown task 'b'"):
        build_loss({"name": "multitask", "losses": {"a": "mse"}, "weights": {"b": 1}})
    with pytest.raises(ConfigError, match="reduction must be 'mean' or 'sum'"):
        build_loss({"name": "multitask", "losses": {"a": "mse"}, "reduction": "none"})
    loss = build_loss({"name": "multitask", "losses": {"age": "mse", "kind": "cross_entropy"}})
    pred, target = heads_and_targets()
    with pytest.raises(DataError, match="multitask: target has no entry for task 'kind'"):
        loss.check(pred, {"age": target["age"]})
    with pytest.raises(DataError, match="multitask expects pred as a dict"):
        loss.check(pred["age"], target)
    with pytest.raises(DataError, match="cross_entropy expects integer class labels"):
        loss.check(pred, {**target, "kind": target["kind"].double()})
    with pytest.raises(DataError, match="one output head per task"):
        loss.output_dim("regression", None, 1)


# --------------------------------------------------------------------------- gradient penalty


def test_gradient_penalty_linear_critic_closed_form():
    """D(x) = w . x has grad w everywhere, so the penalty is lambda (||w|| - 1)^2."""
    critic = nn.Linear(5, 1).double()
    real, fake = torch.randn(8, 5, dtype=torch.float64), torch.randn(8, 5, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, lambda_=10.0)
    expected = 10.0 * (critic.weight.norm() - 1) ** 2
    torch.testing.assert_close(gp, expected, rtol=0, atol=1e-12)
    gp.backward()  # reaches the critic's parameters (create_graph=True)
    torch.testing.assert_close(critic.weight.grad, 20.0 * (critic.weight.norm() - 1) * critic.weight
                               / critic.weight.norm(), rtol=0, atol=1e-10)


def test_gradient_penalty_matches_manual_reference_for_a_nonlinear_critic():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    real, fake = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, lambda_=2.0, generator=torch.Generator().manual_seed(5))
    mix = torch.rand((6, 1), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    norms = []
    for row in mix * real + (1 - mix) * fake:  # per-sample gradients, one at a time
        row = row.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(row[None]).sum(), row)
        norms.append(grad.norm())
    torch.testing.assert_close(gp, 2.0 * ((torch.stack(norms) - 1) ** 2).mean(), rtol=0, atol=1e-12)


def test_gradient_penalty_with_zero_gradient_is_finite():
    critic = nn.Linear(4, 1)
    nn.init.zeros_(critic.weight)
    gp = gradient_penalty(critic, torch.randn(3, 4), torch.randn(3, 4))
    gp.backward()
    assert float(gp.detach()) == pytest.approx(10.0) and torch.isfinite(critic.weight.grad).all()


# --------------------------------------------------------------------------- penalties


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 2))


def test_penalised_parameters_are_weights_only():
    model = small_model()
    chosen = penalised_parameters(model)
    assert [tuple(p.shape) for p in chosen] == [(6, 4), (2, 6)]  # no biases, no LayerNorm gain/shift


def test_penalty_values_and_gradients():
    model = small_model()
    weights = [model[0].weight, model[3].weight]
    torch.testing.assert_close(l1_penalty(weights), sum(w.abs().sum() for w in weights))
    torch.testing.assert_close(l2_penalty(weights), sum(w.square().sum() for w in weights))
    total = penalty(model, l1=0.01, l2=0.1)
    total.backward()
    for w in weights:
        torch.testing.assert_close(w.grad, 0.01 * w.sign() + 0.2 * w)
    assert model[0].bias.grad is None and model[1].weight.grad is None
    assert float(penalty(model)) == 0.0


def test_penalty_gradient_finite_at_zero_weights():
    model = small_model()
    nn.init.zeros_(model[0].weight)
    penalty(model, l1=0.1, l2=0.1).backward()
    assert torch.equal(model[0].weight.grad, torch.zeros_like(model[0].weight))


def test_penalty_rejects_negative_coefficients():
    with pytest.raises(ValueError, match="penalty coefficients must be >= 0; got l1=-1"):
        penalty(small_model(), l1=-1)
