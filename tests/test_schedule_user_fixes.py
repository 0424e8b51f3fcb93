"""A user's findings around schedules, each checked against what the run or an independent reference does:

1. a number YAML 1.1 leaves as text (``1e-400``, ``1e400``: an exponent without a dot) was read by a
   component's option as 0.0 or refused as "not a number"; it is refused as ``1.0e-400`` is, naming the key;
2. the reduce_on_plateau patience warning named validation patience + 1 and advised patience + 2; the LR
   drops at validation patience + 2 at the earliest (torch's ReduceLROnPlateau fed the run's own val_loss);
3. an unrecorded reduce_on_plateau monitor gave a patience warning and then the error: one line now;
4. a near-miss choice of a component's ``Literal`` option names the closest choice.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from trainlab.cli import main
from trainlab.errors import ConfigError
from trainlab.initializers import INITIALIZERS
from trainlab.optim import build_optimizer

BASE = {"name": "s1", "seed": 0, "data": {"source": "synthetic_linear", "standardize": True, "n": 100},
        "model": {"name": "linear"},
        "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 7, "epochs": 4},
        "output": {"log_every_n_steps": 1}, "runtime": {"num_threads": 1}}
TOO_SMALL = "1e-400 is too small for a 64-bit float (it would read as 0.0); write 0 or a number above 1e-308"


def _run(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


# --------------------------------------------------------------------------- 1. 1e-400 and 1e400 as text

def test_an_option_written_1e_400_in_a_file_is_refused_naming_the_key(tmp_path, capsys):
    text = yaml.safe_dump(BASE).replace("  epochs: 4\n", "  epochs: 4\n  schedule: {name: warmup_cosine, min_factor: 1e-400}\n")
    (tmp_path / "c.yaml").write_text(text)
    assert yaml.safe_load(text)["strategy"]["schedule"]["min_factor"] == "1e-400"  # YAML 1.1 leaves it as text
    code, err = _run(capsys, "schedule", str(tmp_path / "c.yaml"), "--plot", str(tmp_path / "x.png"))
    assert code == 2
    line = _one_line(err)
    assert "'min_factor'" in line and TOO_SMALL in line
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("setting", "words"), [
    ("strategy.schedule.gamma=1e-400", TOO_SMALL),
    ("strategy.schedule.gamma=1e400", "1e400 is not a finite number (a 64-bit float reads it as inf)"),
    ("strategy.schedule.gamma=-1e400", "-1e400 is not a finite number (a 64-bit float reads it as -inf)"),
])
def test_a_set_number_that_no_float_holds_is_refused_as_written(tmp_path, capsys, setting, words):
    """``--set gamma=1e-400`` said ``(0.0) must be a number in (0, 1]``: a value the user never wrote."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BASE))
    code, err = _run(capsys, "schedule", str(tmp_path / "c.yaml"), "--set", "strategy.schedule.name=step",
                     "--set", setting, "--plot", str(tmp_path / "x.png"))
    assert code == 2
    line = _one_line(err)
    assert "'gamma'" in line and words in line and "(0.0)" not in line


def test_a_list_item_written_1e_400_is_named():
    with pytest.raises(ConfigError, match=r"option 'betas' must be a list of 2 numbers; item 1: 1e-400 is too "
                                          r"small for a 64-bit float"):
        build_optimizer({"name": "adam", "lr": 0.01, "betas": [0.9, "1e-400"]},
                        [{"params": [torch.nn.Parameter(torch.zeros(2))]}])


# --------------------------------------------------------------------------- 2. the plateau warning

def _lr_after_validations(metrics: list[dict], validations: int, patience: int, threshold: float) -> list[float]:
    """torch.optim.lr_scheduler.ReduceLROnPlateau (the reference) fed the run's own val_loss records: the lr
    it gives after each validation."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.01)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=patience, threshold=threshold,
                                                           factor=0.1, eps=0.0)
    lrs = []
    for record in [m for m in metrics if "val_loss" in m][:validations]:
        scheduler.step(record["val_loss"])
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_the_plateau_warning_says_when_the_lr_drops_and_the_run_agrees(tmp_path, capsys, patience):
    """4 validations (one per epoch of 15 steps, the last at the final step): the LR drops at validation
    patience + 2 at the earliest, so only patience 0 and 1 lower it for a step; the warning says so for 2
    and 3, and names patience 1 as the largest that acts."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BASE))
    code, err = _run(capsys, "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"),
                     "--set", "strategy.schedule.name=reduce_on_plateau", "--set",
                     f"strategy.schedule.patience={patience}", "--set", "strategy.schedule.threshold=0.9")
    assert code == 0, err
    metrics = [json.loads(line) for line in Path(tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if m.get("scope") == "step"]
    assert len(steps) == 60 and len([m for m in metrics if "val_loss" in m]) == 4
    reference = _lr_after_validations(metrics, 4, patience, threshold=0.9)
    for epoch in range(1, 4):  # the steps after validation `epoch` train at the lr the reference gives then
        trained = {m["lr"] for m in steps if epoch * 15 < m["step"] <= (epoch + 1) * 15}
        assert len(trained) == 1, trained
        assert trained.pop() == pytest.approx(reference[epoch - 1], rel=1e-6), (epoch, reference)
    lowered = any(m["lr"] < 0.01 for m in steps)
    warnings = [line for line in err.splitlines() if line.startswith("warning:") and "reduce_on_plateau" in line]
    assert len(warnings) == int(not lowered), (err, lowered)
    assert lowered == (patience <= 1)
    if warnings:
        assert f"at validation {patience + 2} at the earliest" in warnings[0]
        assert "in 4 validations" in warnings[0] and "set patience to 1 or less" in warnings[0]
        assert f"validation {patience + 1} " not in warnings[0]


# --------------------------------------------------------------------------- 3. an unrecorded monitor

def test_an_unrecorded_plateau_monitor_is_one_error_line_and_no_warning(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BASE))
    code, err = _run(capsys, "train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"),
                     "--set", "strategy.schedule.name=reduce_on_plateau", "--set",
                     "strategy.schedule.monitor=val_acc")
    assert code == 2
    line = _one_line(err)
    assert line.startswith("schedule reduce_on_plateau monitors 'val_acc', which is not recorded")
    assert "(available: train_loss, val_loss, val_mse, val_mae, val_r2)" in line
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- 4. did-you-mean for choices

@pytest.mark.parametrize(("option", "given", "closest"), [
    ("mode", "fan_inn", "fan_in"), ("mode", "FAN_OUT", "fan_out"), ("nonlinearity", "rellu", "relu")])
def test_a_near_miss_of_a_literal_option_names_the_closest_choice(option, given, closest):
    with pytest.raises(ConfigError, match=rf"option '{option}' must be one of .*\(did you mean '{closest}'\?\); "
                                          rf"got '{given}'$"):
        INITIALIZERS.build({"name": "kaiming_normal", option: given})


def test_a_choice_far_from_every_literal_gets_no_guess():
    with pytest.raises(ConfigError) as raised:
        INITIALIZERS.build({"name": "kaiming_normal", "mode": "zzz"})
    assert "did you mean" not in str(raised.value)


def test_a_near_miss_of_a_config_choice_names_the_closest(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BASE))
    code, err = _run(capsys, "schedule", str(tmp_path / "c.yaml"), "--set", "strategy.divergence.policy=rollbak",
                     "--plot", str(tmp_path / "x.png"))
    assert code == 2 and _one_line(err).endswith("got 'rollbak'; did you mean 'rollback'?")


def test_a_near_miss_of_a_schedule_choice_names_the_closest():
    """``per: steps`` said only "must be one of 'epoch', 'step'"."""
    from trainlab.errors import ConfigError
    from trainlab.schedules import build_schedule

    with pytest.raises(ConfigError, match=r"must be one of 'epoch', 'step'; did you mean 'step'\?"):
        build_schedule({"name": "exponential", "per": "steps", "gamma": 0.9}, 60, 15)
