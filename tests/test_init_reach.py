"""What a weight fill reaches and what its options may be (trainlab.initializers).

A fill acts on Linear / Conv1d-3d / Embedding weights: on a model with none (raw ``nn.Parameter`` weights,
ConvTranspose only) it is refused rather than doing nothing; weights of other layers it leaves are named in one
warning. A gain <= 0, a std or bound beyond float32, and torch's RuntimeErrors they caused (exit 4) are one
``error:`` line, exit 2. kaiming's ``negative_slope`` (torch's ``a``) sets leaky_relu's gain, checked against
sqrt(2 / (1 + a^2)) / sqrt(fan) written out in NumPy.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import DIGITS_MLP
from trainlab.cli import main
from trainlab.errors import ConfigError
from trainlab.initializers import build_initializers, initialize

FILLS = ["zeros", "constant", "normal", "uniform", "xavier_uniform", "xavier_normal", "kaiming_uniform",
         "kaiming_normal", "orthogonal"]
REFUSAL = "initializer '{}' needs a model with a layer whose weight it fills (Linear, Conv1d/Conv2d/Conv3d, Embedding)"


class RawLinear(nn.Module):
    """A logistic regression of raw parameters: no nn.Linear."""

    def __init__(self, input_shape=(4,), output_dim=3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(output_dim, input_shape[0]) * 0.01)
        self.bias = nn.Parameter(torch.zeros(output_dim))

    def forward(self, x):
        return x @ self.weight.T + self.bias


class Deconv(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(1, 2, 3, padding=1)
        self.head = nn.Linear(2 * 16, 3)

    def forward(self, x):
        return self.head(self.up(x.view(-1, 1, 4, 4)).flatten(1))


def _copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("make", [RawLinear, lambda: nn.Sequential(nn.ConvTranspose2d(1, 2, 3)),
                                  lambda: nn.Sequential(nn.LayerNorm([3, 4]))], ids=["raw", "deconv", "norm"])
def test_a_fill_that_reaches_no_weight_is_refused_and_changes_nothing(fill, make):
    torch.manual_seed(0)
    model = make()
    before = _copy(model)
    with pytest.raises(ConfigError) as caught:
        initialize(model, fill)
    assert str(caught.value).startswith(REFUSAL.format(fill)), str(caught.value)
    assert str(caught.value).endswith(f"remove {fill} from strategy.init, or set those weights in the model's "
                                      "own code")
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())


def test_the_refusal_names_the_weights_it_cannot_reach():
    with pytest.raises(ConfigError, match=r"model 'RawLinear' has none \(its weights: 'weight' of the model "
                                          r"itself\)"):
        initialize(RawLinear(), "zeros")
    with pytest.raises(ConfigError, match=r"model 'Sequential' has none \(its weights: '0.weight' of a "
                                          r"ConvTranspose2d\)"):
        initialize(nn.Sequential(nn.ConvTranspose2d(1, 2, 3)), "xavier_normal")


def test_a_fill_that_reaches_some_weights_fills_them_and_warns_of_the_others(capsys):
    torch.manual_seed(0)
    model = Deconv()
    before = _copy(model)
    initialize(model, "zeros")
    assert torch.count_nonzero(model.head.weight) == 0 and torch.count_nonzero(model.head.bias) == 0
    assert torch.equal(model.up.weight, before["up.weight"]) and torch.equal(model.up.bias, before["up.bias"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert lines == ["warning: initializer 'zeros' fills the weights of Linear, Conv1d/Conv2d/Conv3d, Embedding "
                     "layers only; it leaves 'up.weight' of a ConvTranspose2d in model 'Deconv' as they were"]


def test_norm_gains_of_any_shape_are_no_weight_left_behind(capsys):
    model = nn.Sequential(nn.Linear(4, 12), nn.Unflatten(1, (3, 4)), nn.LayerNorm([3, 4]))
    initialize(model, "kaiming_normal")
    assert torch.equal(model[2].weight, torch.ones(3, 4))
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")] == []


def test_the_cli_refuses_a_fill_on_raw_parameters_with_exit_2(write_config, tmp_path, monkeypatch, capsys):
    (tmp_path / "init_reach_models.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class RawLinear(nn.Module):\n"
        "    def __init__(self, input_shape, output_dim):\n"
        "        super().__init__()\n"
        "        self.weight = nn.Parameter(torch.randn(output_dim, input_shape[0]) * 0.01)\n"
        "        self.bias = nn.Parameter(torch.zeros(output_dim))\n\n"
        "    def forward(self, x):\n"
        "        return x @ self.weight.T + self.bias\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    config = copy.deepcopy(DIGITS_MLP)
    config["model"] = {"name": "init_reach_models:RawLinear"}
    config["strategy"].update(init="zeros", epochs=1)
    path = write_config(config)
    assert main(["train", str(path), "--quiet", "--allow-code", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: " + REFUSAL.format("zeros")), err


# --------------------------------------------------------------------------- option bounds


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "xavier_uniform", "gain": -1}, "initializer 'xavier_uniform': gain must be > 0; got gain=-1"),
    ({"name": "xavier_normal", "gain": -2.5}, "initializer 'xavier_normal': gain must be > 0; got gain=-2.5"),
    ({"name": "xavier_uniform", "gain": 0}, "initializer 'xavier_uniform': gain must be > 0; got gain=0"),
    ({"name": "orthogonal", "gain": -1}, "initializer 'orthogonal': gain must be > 0; got gain=-1"),
    ({"name": "xavier_normal", "gain": 1e39},
     "initializer 'xavier_normal': gain must be a number within ±3.403e+38 (float32's range); got gain=1e+39"),
    ({"name": "normal", "std": 1e39},
     "initializer 'normal': std must be a number within ±3.403e+38 (float32's range); got std=1e+39"),
    ({"name": "normal", "mean": -1e39},
     "initializer 'normal': mean must be a number within ±3.403e+38 (float32's range); got mean=-1e+39"),
    ({"name": "uniform", "low": -1e39, "high": 0.0},
     "initializer 'uniform': low must be a number within ±3.403e+38 (float32's range); got low=-1e+39"),
    ({"name": "uniform", "low": -3e38, "high": 3e38},
     "initializer 'uniform': high - low must be at most 3.403e+38 (float32's largest); got low=-3e+38, high=3e+38"),
])
def test_option_values_no_fill_can_use_are_one_line(spec, message):
    with pytest.raises(ConfigError) as caught:
        build_initializers(spec)
    assert str(caught.value) == message


def test_a_negative_gain_is_exit_2_not_torchs_runtime_error(write_config, tmp_path, capsys):
    config = copy.deepcopy(DIGITS_MLP)
    config["strategy"].update(init={"name": "xavier_uniform", "gain": -1}, epochs=1)
    assert main(["train", str(write_config(config)), "--quiet", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: initializer 'xavier_uniform': gain must be > 0; got gain=-1"]


# --------------------------------------------------------------------------- kaiming's negative slope


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


@pytest.mark.parametrize("name", ["kaiming_normal", "kaiming_uniform"])
@pytest.mark.parametrize("slope", [None, 0.5, 1.0, -2.0])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_leaky_relus_negative_slope_sets_the_gain(name, slope, mode):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 32, 5), nn.Flatten(), nn.Linear(600, 400))
    spec = {"name": name, "nonlinearity": "leaky_relu", "mode": mode}
    if slope is not None:
        spec["negative_slope"] = slope
    initialize(model, spec)
    a = 0.0 if slope is None else slope  # unset: torch's a = 0, ReLU's gain
    for weight in (model[0].weight, model[2].weight):
        fan_in, fan_out = _fans(tuple(weight.shape))
        std = np.sqrt(2.0 / (1.0 + a**2)) / np.sqrt(fan_in if mode == "fan_in" else fan_out)
        w = weight.detach().double().numpy()
        assert w.std() == pytest.approx(std, rel=0.02)
        if name == "kaiming_uniform":
            bound = std * np.sqrt(3.0)
            assert np.abs(w).max() <= bound * (1 + 1e-6) and np.abs(w).max() > 0.99 * bound


def test_negative_slope_with_another_nonlinearity_is_refused():
    with pytest.raises(ConfigError, match=r"^initializer 'kaiming_normal': negative_slope is leaky_relu's slope for "
                                          r"x < 0 and is used with nonlinearity: leaky_relu only; got "
                                          r"negative_slope=0.1 with nonlinearity: relu$"):
        build_initializers({"name": "kaiming_normal", "negative_slope": 0.1})


def test_torchs_name_a_is_pointed_to_negative_slope():
    with pytest.raises(ConfigError) as caught:
        build_initializers({"name": "kaiming_uniform", "a": 0.1})
    assert "has no option 'a'" in str(caught.value)
    assert str(caught.value).endswith("torch's kaiming a (leaky_relu's negative slope) is negative_slope here: "
                                      "{name: kaiming_uniform, nonlinearity: leaky_relu, negative_slope: 0.1}")
