"""Divergence guard: an absurd LR diverges; 'stop' exits 4, 'rollback' recovers and finishes."""

from __future__ import annotations

import json

from tests.conftest import LINREG
from trainlab.cli import main

# full-batch GD on y = 2x + 1 diverges for lr > ~0.035 (largest Hessian eigenvalue ~57)
ABSURD = {**LINREG, "strategy": {**LINREG["strategy"], "optimizer": {"name": "sgd", "lr": 0.5}, "epochs": 400}}


def test_stop_policy_exits_4_naming_step_value_and_checkpoint(write_config, tmp_path, capsys):
    config = write_config(ABSURD, strategy__divergence={"policy": "stop"})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 4
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training diverged at step ")
    assert "loss" in lines[0] and ("checkpoint" in lines[0])
    assert not (out / "model.safetensors").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["events"][-1]["action"] == "stop"
    events = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if "event" in line]
    assert events and events[-1]["event"] == "divergence"


def test_rollback_policy_recovers_with_a_lower_lr_and_finishes(write_config, tmp_path):
    config = write_config(ABSURD, strategy__divergence={"policy": "rollback", "lr_factor": 0.1,
                                                          "max_rollbacks": 5, "window": 10})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rollbacks = [e for e in summary["events"] if e.get("action") == "rollback"]
    assert rollbacks and rollbacks[-1]["lr_scale"] < 0.05
    assert summary["test"]["r2"] > 0.9  # it recovered and fit the line
    assert summary["epochs_run"] == 400
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "divergence" for r in records)


def test_rollback_gives_up_after_max_rollbacks(write_config, tmp_path, capsys):
    config = write_config(ABSURD, strategy__optimizer={"name": "sgd", "lr": 50.0},
                          strategy__divergence={"policy": "rollback", "lr_factor": 0.9, "max_rollbacks": 2})
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 4
    assert "after the maximum number of rollbacks" in capsys.readouterr().err



def test_a_run_that_diverges_at_the_lr_auto_chose_is_told_to_set_a_lower_lr_not_to_run_lr_find(
        write_config, tmp_path, capsys, monkeypatch):
    """The advice was "try a lower learning rate ('trainlab lr-find')": the range test that had chosen the lr
    (SGD on house prices of 3e5, unstandardised: the range test's loss blew up early, the network collapsed to a
    constant whose bias then "descended", and the suggestion diverged in the run). A range test made to
    suggest 50 here."""
    import trainlab.builders

    monkeypatch.setattr(trainlab.builders, "resolve_auto_lr", lambda *args: 50.0)
    config = write_config(LINREG, strategy__optimizer={"name": "sgd", "lr": "auto"})
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 4
    error = capsys.readouterr().err.splitlines()[-1]
    assert "; lr: auto chose 50 (an LR range test) and the run diverged at it: set the lr yourself, lower (e.g. 5), " \
        "or try gradient clipping (strategy.clip_grad_norm)" in error and "lr-find" not in error, error
