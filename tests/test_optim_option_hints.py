"""What a wrong optimizer config says: Nesterov momentum without a momentum buffer (named with its value and
the fix, not torch's "Nesterov momentum requires a momentum and zero dampening"), and an option the named
optimizer does not take but a sibling does (``nesterov`` on ``momentum``, ``bias_correction`` on ``adam``).
The suggested configs are checked by building them and stepping them against torch.optim.SGD and a NumPy
Adam without bias correction, not against trainlab's own code."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import yaml

from trainlab.cli import main
from trainlab.errors import ConfigError
from trainlab.optim import build_optimizer


def _groups(values=(1.0, -2.0, 0.5)) -> tuple[torch.nn.Parameter, list[dict]]:
    weight = torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))
    return weight, [{"params": [weight], "group": "all"}]


def _error(spec: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        build_optimizer(spec, _groups()[1])
    message = str(caught.value)
    assert "\n" not in message and "requires a momentum" not in message  # one line, not torch's text
    return message


def _suggested(message: str) -> dict:
    """The ``{name: ..., ...}`` config the message suggests, read as YAML."""
    found = re.search(r"\{name: [^}]*\}", message)
    assert found, message
    return yaml.safe_load(found.group(0))


# --------------------------------------------------------------------------- nesterov without momentum


@pytest.mark.parametrize(("spec", "expected"), [
    ({"name": "sgd", "lr": 0.1, "nesterov": True},
     "optimizer 'sgd': nesterov: true needs momentum > 0 (e.g. 0.9) and dampening 0; momentum is 0.0 (the default)"),
    ({"name": "sgd", "lr": 0.1, "nesterov": True, "momentum": 0},
     "optimizer 'sgd': nesterov: true needs momentum > 0 (e.g. 0.9) and dampening 0; momentum is 0"),
    ({"name": "sgd", "lr": 0.1, "nesterov": True, "momentum": 0.9, "dampening": 0.1},
     "optimizer 'sgd': nesterov: true needs momentum > 0 (e.g. 0.9) and dampening 0; dampening is 0.1"),
    ({"name": "nesterov", "lr": 0.1, "momentum": 0},
     "optimizer 'nesterov': momentum must be > 0 (e.g. 0.9, its default): Nesterov momentum looks ahead along the "
     "momentum buffer; got momentum 0 (for plain gradient descent use name: sgd)"),
])
def test_nesterov_without_momentum_names_the_value_and_the_fix(spec, expected):
    assert _error(spec) == expected


@pytest.mark.parametrize("spec", [{"name": "sgd", "lr": 0.1, "nesterov": False},
                                  {"name": "sgd", "lr": 0.1, "dampening": 0.5, "momentum": 0.9},
                                  {"name": "nesterov", "lr": 0.1}])
def test_sgd_without_nesterov_and_nesterov_with_momentum_still_build(spec):
    assert isinstance(build_optimizer(spec, _groups()[1]), torch.optim.SGD)


def test_cli_says_it_in_one_error_line_exit_2(tmp_path, capsys):
    config = {"name": "n", "seed": 0, "data": {"source": "synthetic_linear", "n": 40}, "model": {"name": "linear"},
              "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1, "nesterov": True},
                           "batch_size": "full", "epochs": 1},
              "runtime": {"num_threads": 1, "device": "cpu"}, "output": {"progress": "off"}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["error: optimizer 'sgd': nesterov: true needs momentum > 0 (e.g. 0.9) and dampening 0; "
                   "momentum is 0.0 (the default)"]


# --------------------------------------------------------------------------- an option a sibling takes


def _torch_sgd_steps(values, lr: float, momentum: float, nesterov: bool, steps: int = 3) -> np.ndarray:
    weight = torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))
    optimizer = torch.optim.SGD([weight], lr=lr, momentum=momentum, nesterov=nesterov)
    for _ in range(steps):
        optimizer.zero_grad()
        (weight ** 2).sum().backward()
        optimizer.step()
    return weight.detach().numpy()


def _steps(spec: dict, values=(1.0, -2.0, 0.5), steps: int = 3) -> np.ndarray:
    weight, groups = _groups(values)
    optimizer = build_optimizer(spec, groups)
    for _ in range(steps):
        optimizer.zero_grad()
        (weight ** 2).sum().backward()
        optimizer.step()
    return weight.detach().numpy()


def test_nesterov_on_momentum_points_to_optimizer_nesterov_and_to_sgd_with_momentum_and_nesterov():
    """Was "optimizer 'momentum' has no option 'nesterov' (options: lr, momentum, weight_decay)" and nothing
    more; the suggested sgd config keeps momentum's 0.9 (sgd's own default is 0) and is torch's Nesterov SGD."""
    message = _error({"name": "momentum", "lr": 0.1, "nesterov": True})
    assert message.startswith("optimizer 'momentum' has no option 'nesterov' (options: lr, momentum, weight_decay); "
                              "use name: nesterov, the optimizer of that name, or optimizer 'sgd', which takes it: ")
    suggested = _suggested(message)
    assert suggested == {"name": "sgd", "momentum": 0.9, "nesterov": True}
    reference = _torch_sgd_steps((1.0, -2.0, 0.5), lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(_steps({**suggested, "lr": 0.1}), reference, rtol=1e-12)
    np.testing.assert_allclose(_steps({"name": "nesterov", "lr": 0.1}), reference, rtol=1e-12)


def test_bias_correction_on_adam_points_to_adam_textbook_which_then_steps_without_correction():
    message = _error({"name": "adam", "lr": 0.1, "bias_correction": False})
    assert message.startswith("optimizer 'adam' has no option 'bias_correction' (options: lr, betas, eps, "
                              "weight_decay, amsgrad, fused); optimizer 'adam_textbook' takes it: ")
    suggested = _suggested(message)
    assert suggested == {"name": "adam_textbook", "bias_correction": False}
    # NumPy Adam without bias correction: m, v moving averages; theta -= lr m / (sqrt(v) + eps)
    theta, m, v = np.array([1.0, -2.0, 0.5]), np.zeros(3), np.zeros(3)
    for _ in range(3):
        g = 2 * theta
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        theta = theta - 0.1 * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(_steps({**suggested, "lr": 0.1}), theta, rtol=1e-10)


def test_nesterov_false_on_momentum_is_not_sent_to_optimizer_nesterov():
    message = _error({"name": "momentum", "lr": 0.1, "nesterov": False})
    assert "use name: nesterov" not in message
    assert _suggested(message) == {"name": "sgd", "momentum": 0.9, "nesterov": False}


@pytest.mark.parametrize(("spec", "listed"), [
    ({"name": "lbfgs", "weight_decay": 0.1}, "(options: lr, max_iter, history_size, tolerance_grad, "
                                             "tolerance_change, line_search_fn)"),
    ({"name": "adam", "lr": 0.1, "momentum": 0.9}, "(options: lr, betas, eps, weight_decay, amsgrad, fused)"),
    ({"name": "adam", "lr": 0.1, "nesterov": True}, "(options: lr, betas, eps, weight_decay, amsgrad, fused)"),
])
def test_an_option_no_sibling_takes_gets_no_hint(spec, listed):
    """Only optimizers sharing at least half of their options (momentum/sgd, adam/adam_textbook) are named:
    rmsprop's momentum is no fix for adam's, nor is optimizer nesterov (SGD) for adam with nesterov."""
    assert _error(spec).endswith(listed)
