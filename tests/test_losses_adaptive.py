"""Barron's general and adaptive loss: the formula, its limits, log Z against scipy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from trainlab.errors import ConfigError
from trainlab.losses import build_loss
from trainlab.losses.adaptive import general_loss


def np_rho(x: np.ndarray, alpha: float, c: float) -> np.ndarray:
    """The paper's eq. (1)-(3), written directly (no expm1/log1p rewrites)."""
    z = (x / c) ** 2
    if alpha == 2:
        return 0.5 * z
    if alpha == 0:
        return np.log(0.5 * z + 1)
    if alpha == -np.inf:
        return 1 - np.exp(-0.5 * z)
    if alpha == np.inf:
        return np.exp(0.5 * z) - 1
    b = abs(alpha - 2)
    return b / alpha * ((z / b + 1) ** (alpha / 2) - 1)


def fixed(alpha: float, scale: float = 1.0, reduction: str = "none"):
    return build_loss({"name": "adaptive", "alpha": alpha, "scale": scale, "reduction": reduction}).double()




X = np.linspace(-6, 6, 61)


@pytest.mark.parametrize("alpha", [-np.inf, -20.0, -2.0, -0.5, 0.0, 0.3, 1.0, 1.5, 2.0, 3.0, 7.0, np.inf])
@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_matches_paper_formula(alpha: float, scale: float):
    x = X if alpha != np.inf else X / 3  # exp(z / 2) grows fast
    got = fixed(alpha, scale)(torch.tensor(x)[:, None], torch.zeros(len(x), 1)).squeeze(1).numpy()
    np.testing.assert_allclose(got, np_rho(x, alpha, scale), rtol=1e-10, atol=1e-12)


def test_named_special_cases():
    x = torch.tensor(X)[:, None]
    zero = torch.zeros_like(x)
    z = x.square()
    torch.testing.assert_close(fixed(1.0)(x, zero), torch.sqrt(z + 1) - 1)  # Charbonnier / pseudo-Huber
    torch.testing.assert_close(fixed(-2.0)(x, zero), 2 * z / (z + 4))  # Geman-McClure


@pytest.mark.parametrize("limit, near", [(0.0, [1e-7, -1e-7]), (2.0, [2 - 1e-7, 2 + 1e-7]),
                                         (-np.inf, [-1e7])])
def test_continuous_at_the_limits(limit: float, near: list[float]):
    x, zero = torch.tensor(X)[:, None], torch.zeros(len(X), 1)
    for alpha in near:
        torch.testing.assert_close(fixed(alpha)(x, zero), fixed(limit)(x, zero), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("alpha", [-np.inf, -2.0, 0.0, 1.0, 2.0, 4.0])
def test_gradcheck_and_finite_gradients_at_special_alpha(alpha: float):
    x = torch.tensor(np.linspace(-3, 3, 13)[:, None], requires_grad=True)
    loss = fixed(alpha, 1.3, "sum")
    assert torch.autograd.gradcheck(lambda p: loss(p, torch.zeros_like(p)), (x,))
    # the gradient in x through every alpha (a tensor) stays finite, zero residual included
    alphas = torch.tensor([alpha, 1.0], dtype=torch.float64, requires_grad=True)
    values = general_loss(torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True, dtype=torch.float64),
                          alphas, 1.0)
    (grad,) = torch.autograd.grad(values.sum(), alphas)
    assert torch.isfinite(grad).all()


def test_zero_at_zero_and_nonnegative():
    x = torch.tensor(X)[:, None]
    for alpha in (-np.inf, -2.0, 0.0, 0.5, 1.0, 2.0, 5.0):
        values = fixed(alpha)(x, x.clone())
        assert torch.equal(values, torch.zeros_like(values))
        assert (fixed(alpha)(x, torch.zeros_like(x)) >= 0).all()


# --------------------------------------------------------------------------- the learned version


def scipy_log_z(alpha: float) -> float:
    value, _ = integrate.quad(lambda t: math.exp(-np_rho(np.array(t), alpha, 1.0)), 0, np.inf, limit=500,
                              epsabs=0, epsrel=1e-12)
    return math.log(2 * value)


@pytest.mark.parametrize("alpha, closed_form", [
    (0.0, math.log(math.pi * math.sqrt(2))),  # Cauchy: integral of 1 / (1 + x^2 / 2)
    (1.0, math.log(2 * math.e * special.k1(1.0))),  # integral of exp(1 - sqrt(1 + x^2)) = 2 e K_1(1)
    (2.0, 0.5 * math.log(2 * math.pi)),  # Gaussian
])
def test_log_partition_closed_forms(alpha: float, closed_form: float):
    loss = build_loss({"name": "adaptive", "alpha": alpha, "learn_scale": True}).double()
    assert abs(float(loss.log_partition()) - closed_form) < 1e-9


@pytest.mark.parametrize("alpha", [0.001, 0.01, 0.2, 0.7, 1.3, 1.9, 1.999, 2.5, 3.5])
def test_log_partition_matches_scipy(alpha: float):
    loss = build_loss({"name": "adaptive", "alpha": alpha, "learn_scale": True}).double()
    assert abs(float(loss.log_partition()) - scipy_log_z(alpha)) < 1e-8


def test_learned_nll_is_a_normalised_density_and_matches_formula():
    loss = build_loss({"name": "adaptive", "alpha": 0.6, "scale": 1.7, "learn_alpha": True,
                       "learn_scale": True, "reduction": "none"}).double()
    alpha, scale = float(loss.alpha.detach()), float(loss.scale.detach())
    assert abs(alpha - 0.6) < 1e-6 and abs(scale - 1.7) < 1e-6  # the latents are float32-initialised

    def nll(x: float) -> float:
        with torch.no_grad():
            return float(loss(torch.tensor([[x]], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)))

    total, _ = integrate.quad(lambda x: math.exp(-nll(x)), -np.inf, np.inf, limit=400)
    assert abs(total - 1.0) < 1e-7
    x = np.array([-3.0, 0.2, 5.0])
    expected = np_rho(x, alpha, scale) + math.log(scale) + scipy_log_z(alpha)
    got = loss(torch.tensor(x)[:, None], torch.zeros(3, 1, dtype=torch.float64)).squeeze(1)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=0, atol=1e-8)


def test_learned_gradcheck_in_residual_alpha_and_scale():
    loss = build_loss({"name": "adaptive", "alpha": 1.2, "learn_alpha": True, "learn_scale": True,
                       "num_dims": 2, "reduction": "sum"}).double()
    residual = torch.tensor(np.random.default_rng(0).normal(size=(5, 2)) * 2, requires_grad=True)

    def fn(r, alpha_latent, scale_latent):
        loss.alpha_latent, loss.scale_latent = alpha_latent, scale_latent  # functional swap for gradcheck
        return loss(r, torch.zeros_like(r))

    alpha_latent = torch.tensor([0.3, -0.8], dtype=torch.float64, requires_grad=True)
    scale_latent = torch.tensor([0.1, 1.0], dtype=torch.float64, requires_grad=True)
    saved = loss.alpha_latent, loss.scale_latent
    del loss.alpha_latent, loss.scale_latent
    try:
        assert torch.autograd.gradcheck(fn, (residual, alpha_latent, scale_latent), atol=1e-6)
    finally:
        loss.alpha_latent, loss.scale_latent = saved


def test_learning_alpha_and_scale_recovers_the_tails():
    """Maximum likelihood on Gaussian residuals drives alpha to ~2 and c to ~sigma; on standard
    Cauchy residuals alpha goes to 0, where the density is Cauchy with scale c * sqrt(2), so c -> 0.71."""
    rng = np.random.default_rng(0)
    fitted = {}
    for kind, sample in (("gauss", 1.5 * rng.normal(size=2000)), ("cauchy", rng.standard_cauchy(2000))):
        loss = build_loss({"name": "adaptive", "learn_alpha": True, "learn_scale": True,
                           "alpha_range": [0.001, 2.999]}).double()
        residual = torch.tensor(sample)[:, None]
        optimizer = torch.optim.Adam(loss.parameters(), lr=0.1)
        for _ in range(300):
            optimizer.zero_grad()
            loss(residual, torch.zeros_like(residual)).backward()
            optimizer.step()
        fitted[kind] = float(loss.alpha.detach()), float(loss.scale.detach())
    assert 1.8 < fitted["gauss"][0] < 2.4 and abs(fitted["gauss"][1] - 1.5) < 0.2, fitted
    assert fitted["cauchy"][0] < 0.15 and abs(fitted["cauchy"][1] - 1 / math.sqrt(2)) < 0.15, fitted


@pytest.mark.parametrize("kwargs, message", [
    ({"scale": 0.0}, "scale must be a finite value > 0"),
    ({"learn_alpha": True, "alpha_range": [-1.0, 1.0]}, "alpha_range must satisfy 0 <= lo < hi <= 4"),
    ({"learn_alpha": True, "alpha": 2.5}, "initial alpha must lie inside alpha_range"),
    ({"learn_scale": True, "alpha": -2.0}, "learn_scale needs alpha in [0, 4]"),
    ({"alpha": float("nan")}, "got nan"),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):  # the registry names the loss
        build_loss({"name": "adaptive", **kwargs})
