"""``--target val_loss=-1`` with a loss that is never negative is refused before training, as
``val_mse=-1`` is: one ``error:`` line naming the loss, exit 2, no run folder.

A user's ``trainlab train iris.yaml --target val_loss=-1`` (cross_entropy) trained and ended "val_loss <= -1
was not reached", exit 0. Losses that can be negative (gaussian_nll, poisson_nll, nll, a user's loss,
``loss: auto`` before the data chose one) keep their negative targets: one is reached below.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from trainlab.cli import main
from trainlab.compare.metric_keys import NON_NEGATIVE_LOSSES, parse_target
from trainlab.errors import ConfigError
from trainlab.losses import build_loss

IRIS = {"name": "iris", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [16]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 10,
                     "epochs": 2},
        "runtime": {"num_threads": 1}, "output": {"progress": "off"}}
DIABETES = {**IRIS, "data": {"source": "diabetes", "standardize_target": True}, "model": {"name": "linear"}}


def _config(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize(("base", "loss", "target"), [
    (IRIS, "cross_entropy", "val_loss=-1"), (IRIS, "focal", "val_loss=-0.5"), (DIABETES, "mse", "val_loss=-1"),
    (DIABETES, "huber", "val_loss=-1e-3"), (DIABETES, "mae", "val_loss=-2")])
def test_train_refuses_a_negative_loss_target_of_a_loss_that_is_never_negative(tmp_path, capsys, base, loss, target):
    config, out = _config(tmp_path, {**base, "strategy": {**base["strategy"], "loss": loss}}), tmp_path / "run"
    assert main(["train", config, "--out", str(out), "--target", target]) == 2
    captured = capsys.readouterr()
    key, _, value = target.partition("=")
    assert captured.err == (f"error: --target {target} can never be reached: {key} is >= 0, as loss {loss} is "
                            f"never negative; give a target >= 0 (e.g. {key}=0.1)\n")
    assert captured.out == ""
    assert not out.exists()  # refused before any folder or training


def test_compare_refuses_it_when_no_runs_loss_can_be_negative(tmp_path, capsys):
    """Every strategy's loss never negative: no run can reach val_loss=-1 (refused before any run, as train
    refuses it); with one strategy's loss gaussian_nll, which can, the same target passes that check."""
    base = _config(tmp_path, {**DIABETES, "strategy": {**DIABETES["strategy"], "loss": "mse"}})
    strategies = tmp_path / "s.yaml"
    strategies.write_text("strategies:\n  mse:\n  huber: {strategy.loss: huber}\n")
    out = tmp_path / "out"
    assert main(["compare", base, "--strategies", str(strategies), "--out", str(out), "--seeds", "1",
                 "--target", "val_loss=-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target val_loss=-1 can never be reached: val_loss is >= 0, as loss ")
    assert err.count("\n") == 1 and not out.exists()
    from trainlab.compare.metric_keys import refuse_negative_loss_target

    refuse_negative_loss_target("val_loss=-1", parse_target("val_loss=-1"), ["mse", "gaussian_nll"])  # no error:
    # gaussian_nll may reach it


def test_a_target_of_zero_and_other_metrics_are_left_as_they_were():
    assert parse_target("val_loss=0", loss="cross_entropy") == {"metric": "val_loss", "value": 0.0, "direction": "min"}
    assert parse_target("val_loss=0.2", loss="mse")["value"] == 0.2
    assert parse_target("val_r2=-0.5", loss="mse")["value"] == -0.5  # r2 can be negative whatever the loss
    with pytest.raises(ConfigError, match="can never be reached: val_mse is >= 0$"):  # the range rule comes first
        parse_target("val_mse=-1", loss="mse")


@pytest.mark.parametrize("loss", ["gaussian_nll", "poisson_nll", "nll", "kl_div", "adaptive", "multitask", "auto",
                                  "mymodule:my_loss", None])
def test_losses_that_can_be_negative_or_are_not_known_keep_negative_targets(loss):
    assert parse_target("val_loss=-1", loss=loss) == {"metric": "val_loss", "value": -1.0, "direction": "min"}


def test_the_losses_left_out_can_be_negative_by_their_reference_formulas():
    """torch's own functions: a Gaussian NLL with a small variance at the mean, a Poisson NLL on log rates."""
    target = torch.tensor([1.0, 2.0])
    assert float(F.gaussian_nll_loss(target, target, torch.full_like(target, 0.01))) == \
        pytest.approx(0.5 * math.log(0.01))  # < 0
    counts = torch.tensor([10.0])
    assert float(F.poisson_nll_loss(torch.log(counts), counts, log_input=True)) == \
        pytest.approx(10.0 - 10.0 * math.log(10.0))  # exp(x) - y x < 0
    assert float(F.nll_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))) == -2.0  # outputs not log-probabilities


def _inputs(loss, rows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (pred, target) of the shapes ``loss``'s target kind takes, far from and at the target."""
    kind = loss.target_kind
    if kind == "continuous":
        target = torch.randn(rows, 3, generator=generator) * 50
        pred = torch.cat([torch.randn(rows // 2, 3, generator=generator) * 50, target[rows // 2:]])
        return pred, target
    if kind == "binary":
        pred = torch.rand(rows, generator=generator) if loss.name == "bce_prob" else \
            torch.randn(rows, generator=generator) * 20
        return pred, torch.randint(0, 2, (rows,), generator=generator)
    if kind == "class_index":
        return torch.randn(rows, 4, generator=generator) * 20, torch.randint(0, 4, (rows,), generator=generator)
    views = 2 if kind == "pair" else loss.num_views
    pred = torch.randn(rows, views * loss.embedding_dim, generator=generator) * 5
    return pred, torch.randint(0, 2, (rows,), generator=generator)


@pytest.mark.parametrize("name", sorted(NON_NEGATIVE_LOSSES))
def test_every_loss_named_never_negative_is_at_least_zero_per_sample(name):
    generator = torch.Generator().manual_seed(0)
    loss = build_loss({"name": name, "reduction": "none"})
    values = np.concatenate([loss(*_inputs(loss, 64, generator)).detach().reshape(-1).numpy() for _ in range(5)])
    # >= 0 up to float32 rounding (1 - cos of two equal vectors can be -1 ulp)
    assert values.min() >= -4 * np.finfo(np.float32).eps, (name, values.min())


def test_a_negative_target_of_gaussian_nll_is_trained_for_and_reached(tmp_path, capsys):
    """y = 2a - b + N(0, 0.05): the Gaussian NLL of a good fit is log(sd) + 0.5 log(2 pi) + ..., far below 0."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    frame = pd.DataFrame(x, columns=["a", "b"])
    frame["y"] = 2 * x[:, 0] - x[:, 1] + rng.normal(scale=0.05, size=400)
    frame.to_csv(tmp_path / "linear.csv", index=False)
    config = {**DIABETES, "data": {"source": "csv", "path": str(tmp_path / "linear.csv"), "target": "y",
                                   "standardize_target": True},
              "strategy": {**DIABETES["strategy"], "loss": "gaussian_nll", "epochs": 30, "batch_size": 32,
                           "optimizer": {"name": "adam", "lr": 0.05}}}
    assert main(["train", _config(tmp_path, config), "--out", str(tmp_path / "run"), "--target",
                 "val_loss=-1"]) == 0
    assert "time to val_loss <= -1:" in capsys.readouterr().out
