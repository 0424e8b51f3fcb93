"""A whole-number key given a fraction names the value (pydantic's int_from_float said "got a number with a
fractional part" and no number), and two settings that do nothing are warned of: an L1/L2 penalty on a model
without a trainable weight tensor of 2+ dimensions (trainlab.plan_warnings.warn_if_nothing_penalised), and
grad_accum_steps with batch_size: full (warn_if_accumulating_full_batch). Each warning's claim is checked
against what the run does: the weights come out exactly as without the setting."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import trainlab
from tests.conftest import LINREG
from trainlab.config import load_config
from trainlab.errors import ConfigError

# ------------------------------------------------------------------------- 1. a fraction for a whole number

WHOLE_NUMBER_KEYS = ["strategy.early_stopping.patience", "strategy.epochs", "strategy.grad_accum_steps",
                     "strategy.eval_every_n_steps", "strategy.max_steps", "seed"]


def _with(dotted: str, value: object) -> dict:
    config = copy.deepcopy(LINREG)
    config["strategy"]["early_stopping"] = {"patience": 2}
    node = config
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


@pytest.mark.parametrize("key", WHOLE_NUMBER_KEYS)
@pytest.mark.parametrize("value", [2.5, -1.5])
def test_a_fraction_in_a_yaml_file_is_named_as_no_whole_number(tmp_path: Path, key: str, value: float):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_with(key, value)))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"config key '{key}': must be a whole number; got {value}"


@pytest.mark.parametrize("key, value", [("strategy.early_stopping.patience", "2.5"), ("strategy.epochs", "2.5"),
                                        ("strategy.grad_accum_steps", "1.5"),
                                        ("strategy.eval_every_n_steps", "2.5")])
def test_a_fraction_set_on_the_command_line_is_one_line_naming_it(tmp_path: Path, capsys, key: str, value: str):
    from trainlab.cli import main

    path = tmp_path / "es.yaml"
    path.write_text(yaml.safe_dump(_with("strategy.epochs", 2)))
    code = main(["train", str(path), "--set", f"{key}={value}", "--set", f"output.dir={tmp_path / 'run'}"])
    assert code == 2
    assert capsys.readouterr().err == f"error: config key '{key}': must be a whole number; got {value}\n"


def test_a_float_beyond_int64_is_named_as_the_integer_checks_name_it(tmp_path: Path):
    """pydantic's int_parsing_size called the YAML float 1e19 an "input string"; the config's own check of an
    integer beyond int64 says "must be an integer of magnitude below 2**63"."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_with("strategy.epochs", 1e19)))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == "config key 'strategy.epochs': must be an integer of magnitude below 2**63; got 1e+19"


def test_a_whole_float_is_still_a_whole_number(tmp_path: Path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_with("strategy.early_stopping.patience", 3.0)))
    assert load_config(path).strategy.early_stopping.patience == 3


# ------------------------------------------------------------------------------ shared: a fit and its warnings

def _warnings(capsys, about: str) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:") and about in line]


def _weights(model: torch.nn.Module) -> list[np.ndarray]:
    return [p.detach().cpu().double().numpy().copy() for p in model.parameters()]


def _regression(n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)


# --------------------------------------------------------------------- 2. a penalty with no weights to act on

class VectorAndScalar(torch.nn.Module):
    """y = x . w + b with w a 1-D tensor and b a 0-d scalar: no parameter of 2+ dimensions."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(3))
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).sum(-1, keepdim=True) + self.b


PENALISED = {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 8, "epochs": 2,
             "regularization": {"l2": 0.5}}


def _fit(model: torch.nn.Module, strategy: dict) -> trainlab.FitResult:
    return trainlab.fit(model, _regression(), strategy)


def test_a_penalty_on_a_model_without_2d_weights_is_warned_of_once_and_changes_nothing(capsys):
    penalised = VectorAndScalar()
    result = _fit(penalised, PENALISED)
    lines = _warnings(capsys, "regularization")
    assert lines == ["warning: strategy.regularization.l2=0.5 penalises only weight tensors of 2+ dimensions (not "
                     "biases or norm weights), but model 'VectorAndScalar' has no trainable weight tensor of 2+ "
                     "dimensions for it to act on (its parameters are 'w' of shape (3,), 'b' of shape ()): no "
                     "penalty is added and the run trains as without it; remove it"]
    assert result.history and all("train_penalty" not in record for record in result.history)
    plain = VectorAndScalar()
    _fit(plain, {**PENALISED, "regularization": {}})
    assert _warnings(capsys, "regularization") == []
    for a, b in zip(_weights(penalised), _weights(plain), strict=True):  # the claim: as without it
        np.testing.assert_array_equal(a, b)


def test_both_penalties_are_named_together(capsys):
    _fit(VectorAndScalar(), {**PENALISED, "regularization": {"l1": 0.1, "l2": 0.5}})
    lines = _warnings(capsys, "regularization")
    assert len(lines) == 1 and lines[0].startswith("warning: strategy.regularization.l1=0.1 and l2=0.5 penalise only")
    assert lines[0].endswith("as without them; remove them")


def test_a_penalty_on_frozen_2d_weights_says_they_are_frozen(capsys):
    model = torch.nn.Linear(3, 1)
    model.weight.requires_grad_(False)
    _fit(model, PENALISED)
    lines = _warnings(capsys, "regularization")
    assert len(lines) == 1 and "(its weight tensors of 2+ dimensions are frozen (requires_grad False))" in lines[0]


def test_a_penalty_with_a_2d_weight_is_not_warned_of_and_acts(capsys):
    result = _fit(torch.nn.Linear(3, 1), PENALISED)
    assert _warnings(capsys, "regularization") == []
    epochs = [record for record in result.history if record.get("scope") != "step"]
    assert epochs and all(record["train_penalty"] > 0 for record in epochs)


def test_lr_auto_warns_of_the_penalty_once_not_for_its_probe_too(capsys):
    """lr: auto builds a throw-away step for its range test before the run's own: one warning, not two."""
    _fit(VectorAndScalar(), {**PENALISED, "optimizer": {"name": "adam", "lr": "auto"}})
    assert len(_warnings(capsys, "regularization")) == 1


# ---------------------------------------------------------------------- 3. accumulation on a full batch

FULL = {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": "full", "epochs": 3}


def _linear_fit(strategy: dict) -> list[np.ndarray]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    trainlab.fit(model, _regression(), strategy)
    return _weights(model)


def test_grad_accum_steps_with_a_full_batch_is_warned_of_and_changes_nothing(capsys):
    accumulated = _linear_fit({**FULL, "grad_accum_steps": 4})
    lines = _warnings(capsys, "grad_accum_steps")
    assert lines == ["warning: strategy.grad_accum_steps=4 does nothing with strategy.batch_size: full: each "
                     "optimizer step already takes the whole training set (40 rows) as its one micro-batch, 1 step "
                     "per epoch, so nothing is accumulated; remove strategy.grad_accum_steps"]
    plain = _linear_fit(FULL)
    assert _warnings(capsys, "grad_accum_steps") == []
    for a, b in zip(accumulated, plain, strict=True):  # the claim: as without it
        np.testing.assert_array_equal(a, b)


def test_grad_accum_steps_on_mini_batches_keeps_its_own_warning(capsys):
    _linear_fit({**FULL, "batch_size": 20, "grad_accum_steps": 3})
    lines = _warnings(capsys, "grad_accum_steps")
    assert len(lines) == 1 and lines[0].startswith("warning: an optimizer step of 20 x 3 (grad_accum_steps) rows "
                                                   "exceeds the training set (40 rows)")
