"""The tutorial's y = 2x + 1 + noise task reaches the least-squares solution through the CLI."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from tests.conftest import LINREG, least_squares
from trainlab.cli import main


@pytest.mark.slow
def test_reference_config_reaches_least_squares(write_config, tmp_path):
    config = write_config(LINREG)
    out = tmp_path / "runs" / "x"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for split in ("val", "test"):
        assert set(summary[split]) == {"mse", "mae", "r2", "loss"}
    weights = load_file(out / "model.safetensors")
    assert set(weights) == {"weight", "bias"}
    slope, intercept = least_squares()
    assert slope == pytest.approx(1.967, abs=1e-3) and intercept == pytest.approx(1.208, abs=1e-3)
    assert float(weights["weight"]) == pytest.approx(slope, abs=1e-3)
    assert float(weights["bias"]) == pytest.approx(intercept, abs=1e-3)
    assert summary["mode"].startswith("batch gradient descent")
    for name in ("config.yaml", "metrics.jsonl", "run.json"):
        assert (out / name).is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 5000 and {"epoch", "step", "lr", "train_loss", "val_mse", "elapsed_s"} <= set(records[-1])


def test_single_sample_sgd_with_decay_reaches_least_squares(write_config, tmp_path):
    config = write_config(LINREG, strategy__batch_size=1, strategy__epochs=60,
                          strategy__optimizer={"name": "sgd", "lr": 0.01},
                          strategy__schedule={"name": "exponential", "gamma": 0.9})
    out = tmp_path / "sgd"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    weights = load_file(out / "model.safetensors")
    slope, intercept = least_squares()
    assert float(weights["weight"]) == pytest.approx(slope, abs=2e-2)
    assert float(weights["bias"]) == pytest.approx(intercept, abs=2e-2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"].startswith("stochastic gradient descent")


def test_overrides_change_the_run(write_config, tmp_path):
    config = write_config(LINREG, strategy__epochs=3)
    out = tmp_path / "o"
    assert main(["train", str(config), "--out", str(out), "--quiet", "--set", "strategy.optimizer.lr=0.001",
                 "--set", "strategy.batch_size=10"]) == 0
    resolved = (out / "config.yaml").read_text()
    assert "lr: 0.001" in resolved and "batch_size: 10" in resolved
