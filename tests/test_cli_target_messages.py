"""The command line's messages on --target, monitors, usage, lr-find without an lr and plot of an empty run.

Each test reproduces a user's report: the refusal comes before any training, in one ``error:`` line that
says what is wrong and what would be valid (not advice that is itself refused).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.child_env import with_repo_first
from trainlab.callbacks.monitor import check_monitor
from trainlab.cli import main
from trainlab.compare.metric_keys import parse_target
from trainlab.errors import ConfigError
from trainlab.metric_hints import unrecorded_hint

REPO = Path(__file__).resolve().parents[1]

IRIS = {"name": "base", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [16]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                     "epochs": 3},
        "runtime": {"num_threads": 1}, "output": {"progress": "off"}}
DIABETES = {**IRIS, "data": {"source": "diabetes"}, "model": {"name": "linear"},
            "strategy": {**IRIS["strategy"], "loss": "mse"}}


def _config(tmp_path: Path, config: dict, name: str = "base.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _usage_error(argv: list[str], capsys) -> tuple[str, str]:
    """(stdout, stderr) of a command line argparse refuses (exit 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    return captured.out, captured.err


# --------------------------------------------------------------------------- 1. --target with an embedding loss

def test_train_refuses_a_target_that_an_embedding_loss_cannot_record_before_training(tmp_path):
    """A fresh process, as the user's: the built-in losses are registered by nothing before the check
    (in this test process another test may have registered them, which hid the defect)."""
    config, out = _config(tmp_path, IRIS), tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "trainlab.cli", "train", config, "--out", str(out),
                             "--set", "strategy.loss=triplet", "--target", "val_accuracy=0.9"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**os.environ, "PYTHONPATH": with_repo_first(REPO)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == ("error: --target 'val_accuracy' is not recorded by this run; metric 'accuracy' cannot "
                             "be computed for loss 'triplet', which trains embeddings and gives no predictions (its "
                             "runs record the loss only: val_loss) (its validation metrics: val_loss)\n")
    assert not out.exists()  # refused up front, as with metrics=[] and as compare does


# --------------------------------------------------------------------------- 2. monitors of an embedding loss

@pytest.mark.parametrize("owner", ["early_stopping", "schedule reduce_on_plateau"])
def test_a_monitor_an_embedding_loss_cannot_record_says_so_instead_of_add_the_metric(owner):
    with pytest.raises(ConfigError) as error:
        check_monitor("val_accuracy", ["train_loss", "val_loss"], owner, loss="triplet")
    assert str(error.value) == (f"{owner} monitors 'val_accuracy', which is not recorded; metric 'accuracy' cannot "
                                "be computed for loss 'triplet', which trains embeddings and gives no predictions "
                                "(its runs record the loss only: val_loss) (available: train_loss, val_loss)")
    # the earlier fix for test_/train_ monitors stays: the val_ twin is named, and why it cannot be added
    with pytest.raises(ConfigError) as error:
        check_monitor("test_accuracy", ["train_loss", "val_loss"], owner, loss="triplet")
    message = str(error.value)
    assert "as the test split must not steer training; metric 'accuracy' cannot be computed for loss 'triplet'" \
        in message and "add 'accuracy'" not in message


def test_a_monitor_of_a_loss_that_gives_predictions_is_still_told_to_add_the_metric():
    for loss in ("cross_entropy", None, "mymodule:my_loss"):  # a user loss is not imported for a message
        with pytest.raises(ConfigError, match="; add 'accuracy' to the run's metrics"):
            check_monitor("val_accuracy", ["train_loss", "val_loss"], "early_stopping", loss=loss)


def test_train_with_early_stopping_on_accuracy_and_an_embedding_loss_names_what_can_be_monitored(tmp_path, capsys):
    config = _config(tmp_path, IRIS)
    assert main(["train", config, "--out", str(tmp_path / "r"), "--set", "strategy.loss=triplet",
                 "--set", "strategy.early_stopping.monitor=val_accuracy"]) == 2
    err = capsys.readouterr().err
    assert "metric 'accuracy' cannot be computed for loss 'triplet'" in err and "add 'accuracy'" not in err


# --------------------------------------------------------------------------- 3. usage errors

def test_no_command_is_one_error_line_on_stderr(capsys):
    out, err = _usage_error([], capsys)
    assert out == ""
    assert err == ("error: a command is needed: trainlab {train,eval,resume,compare,demo,advise,schedule,lr-find,"
                   "predict,report,plot,tune} ... (see 'trainlab --help')\n")


def test_an_extra_argument_points_to_the_command_help(tmp_path, capsys):
    config = _config(tmp_path, IRIS)
    assert _usage_error(["train", config, "reg.yaml"], capsys)[1] == \
        "error: unrecognized arguments: reg.yaml (see 'trainlab train --help')\n"
    assert _usage_error(["plot", str(tmp_path), "--plot", "x.png"], capsys)[1] == \
        "error: unrecognized arguments: --plot x.png (see 'trainlab plot --help')\n"
    assert _usage_error(["--bogus"], capsys)[1] == "error: unrecognized arguments: --bogus (see 'trainlab --help')\n"


@pytest.mark.parametrize(("argv", "hint"), [
    (["train", "CONFIG", "--ovewrite"], "--ovewrite; did you mean '--overwrite'? (see 'trainlab train --help')"),
    (["train", "CONFIG", "--sett=strategy.epochs=2"], "--sett=strategy.epochs=2; did you mean '--set'?"),
    (["compare", "CONFIG", "--strategies", "s.yaml", "--seed", "3"], "--seed 3; did you mean '--seeds'? (see "
                                                                     "'trainlab compare --help')"),
    (["tune", "CONFIG", "--space", "s.yaml", "--trials", "3", "--job", "2"], "--job 2; did you mean '--jobs'?"),
    (["--quite", "train", "CONFIG"], "--quite; did you mean '--quiet'?"),
    # no hint from the "--" alone (compared with it, --gpu read as '--out', --verbose as '--overwrite')
    (["train", "CONFIG", "--gpu"], "--gpu (see 'trainlab train --help')"),
    (["train", "CONFIG", "--verbose"], "--verbose (see 'trainlab train --help')"),
    (["train", "CONFIG", "--lr", "0.1"], "--lr 0.1 (see 'trainlab train --help')"),
    # Optuna's names: what trainlab tune's flags are (tune's --trials given, so unrecognized comes first)
    (["tune", "CONFIG", "--space", "s.yaml", "--trials", "2", "--sampler", "random"],
     "--sampler random; trainlab tune always samples with Optuna's TPE sampler (--seed seeds it); --pruner chooses "
     "the pruner (see 'trainlab tune --help')"),
    (["tune", "CONFIG", "--space", "s.yaml", "--trials", "2", "--n_jobs", "2"],
     "--n_jobs 2; the number of parallel workers is --jobs (see"),
])
def test_a_misspelt_flag_gets_a_did_you_mean(tmp_path, capsys, argv, hint):
    """`--ovewrite` was "unrecognized arguments: --ovewrite" alone, though a misspelt command got a hint."""
    config = _config(tmp_path, IRIS)
    err = _usage_error([config if word == "CONFIG" else word for word in argv], capsys)[1]
    assert err.startswith(f"error: unrecognized arguments: {hint}") and err.count("\n") == 1, err


@pytest.mark.parametrize(("argv", "line"), [
    (["schedule", "CONFIG", "--plto", "s.png"], "error: the following arguments are required: --plot; '--plto' is "
                                                "none of its options; did you mean '--plot'? (see 'trainlab schedule --help')"),
    (["compare", "CONFIG", "--strategy=s.yaml"], "error: the following arguments are required: --strategies; "
                                                 "'--strategy' is none of its options; did you mean '--strategies'?"),
    (["schedule", "CONFIG"], "error: the following arguments are required: --plot (see 'trainlab schedule --help')"),
])
def test_a_misspelt_required_flag_is_named_beside_the_one_missing(tmp_path, capsys, argv, line):
    """argparse reports a missing required flag before one it does not know: '--plto' got no word, nor a hint."""
    config = _config(tmp_path, IRIS)
    err = _usage_error([config if word == "CONFIG" else word for word in argv], capsys)[1]
    assert err.startswith(line) and err.count("\n") == 1, err


# --------------------------------------------------------------------------- 4. --target of another task, or as a comparison

def test_a_target_of_another_task_says_which_task_the_metric_is_of(tmp_path, capsys):
    assert main(["train", _config(tmp_path, IRIS), "--out", str(tmp_path / "r"), "--target", "val_r2=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target 'val_r2' is not recorded by this run; r2 is a regression metric, and these "
                          "records are of a classification task (its validation metrics: val_loss, val_accuracy")
    assert "did you mean" not in err
    assert main(["train", _config(tmp_path, DIABETES), "--out", str(tmp_path / "r"), "--target",
                 "val_accuracy=0.9"]) == 2
    assert capsys.readouterr().err == (
        "error: --target 'val_accuracy' is not recorded by this run; accuracy is a classification metric, and these "
        "records are of a regression task (its validation metrics: val_loss, val_mse, val_mae, val_r2)\n")
    assert not (tmp_path / "r").exists()


def test_a_metric_of_another_classification_task_names_the_tasks():
    recorded = ["val_loss", "val_subset_accuracy", "val_f1_macro"]  # a multilabel run
    assert unrecorded_hint("val_top_5_accuracy", recorded) == \
        "; top_5_accuracy is a multiclass metric, and these records are of a multilabel task"
    assert unrecorded_hint("val_roc_auc", recorded).startswith("; add 'roc_auc' to the run's metrics")


@pytest.mark.parametrize("text", ["val_accuracy>=0.9", "val_accuracy>0.9", "val_accuracy=>0.9", "val_accuracy==0.9"])
def test_a_target_written_as_a_comparison_is_told_the_form(text):
    with pytest.raises(ConfigError) as error:
        parse_target(text)
    message = str(error.value)
    assert message.startswith("--target expects val_<metric>=<number>, not a comparison")
    assert message.endswith("write e.g. val_accuracy=0.9") and "is not recorded" not in message


def test_train_target_as_a_comparison_is_one_line_before_training(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", _config(tmp_path, IRIS), "--out", str(out), "--target", "val_loss<=0.3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target expects val_<metric>=<number>, not a comparison ('<=' in 'val_loss<=0.3')")
    assert err.count("\n") == 1 and "write e.g. val_loss=0.3" in err and not out.exists()


@pytest.mark.parametrize("command", ["train", "compare"])
def test_an_empty_target_is_refused_not_taken_for_none(tmp_path, capsys, command):
    """``--target ''`` (a shell variable left empty) trained and timed nothing, without a word."""
    out = tmp_path / "r"
    strategies = tmp_path / "s.yaml"
    strategies.write_text("strategies: {a: {}}\n")
    extra = ["--strategies", str(strategies), "--seeds", "1"] if command == "compare" else []
    assert main([command, _config(tmp_path, IRIS), *extra, "--out", str(out), "--target", ""]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --target expects val_<metric>=<number> (e.g. val_accuracy=0.9 or val_loss=0.3); "
                   "got ''\n")
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "compare"])
def test_a_second_target_is_refused_not_dropped(tmp_path, capsys, command):
    """argparse kept the last --target and dropped the first without a word."""
    _, err = _usage_error([command, _config(tmp_path, IRIS), "--target", "val_accuracy=0.5", "--target",
                           "val_loss=0.3"], capsys)
    assert err.startswith("error: argument --target: given twice ('val_accuracy=0.5', then 'val_loss=0.3'): it "
                          "takes one value")
    assert err.count("\n") == 1


@pytest.mark.parametrize("argv, flag, first, second", [
    (["train", "CONFIG", "--out", "a", "--out", "b"], "--out", "a", "b"),
    (["eval", "RUN", "--split", "val", "--split", "test"], "--split", "val", "test"),  # a flag with a default
    (["plot", "RUN", "-o", "p1.png", "--out", "p2.png"], "-o/--out", "p1.png", "p2.png"),
    (["tune", "CONFIG", "--space", "s.yaml", "--trials", "2", "--trials", "3"], "--trials", "2", "3"),
])
def test_any_one_value_flag_given_twice_is_refused_not_dropped(tmp_path, capsys, argv, flag, first, second):
    """A CLI trial: `--out runs/b1 --out runs/b2` wrote runs/b2 alone, `--split val --split test` printed test:
    argparse keeps the last; only --target refused a repeat."""
    argv = [_config(tmp_path, IRIS) if word == "CONFIG" else str(tmp_path / "run") if word == "RUN" else word
            for word in argv]
    _, err = _usage_error(argv, capsys)
    assert err.startswith(f"error: argument {flag}: given twice ('{first}', then '{second}'): it takes one value"), err
    assert err.count("\n") == 1
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --------------------------------------------------------------------------- 5. lr-find needs no lr

@pytest.mark.parametrize("optimizer", ["sgd", "lion", "lamb", "muon", "schedule_free_adamw"])
def test_lr_find_sweeps_an_optimizer_that_has_no_default_lr(tmp_path, capsys, optimizer):
    config = _config(tmp_path, IRIS)
    assert main(["lr-find", config, "--set", f"strategy.optimizer={{name: {optimizer}}}", "--steps", "30"]) == 0
    assert capsys.readouterr().out.startswith("suggested lr: ")


def test_lr_find_without_an_lr_draws_the_curve_a_given_lr_draws(tmp_path):
    """The sweep sets the lr itself: the placeholder lr it is built with changes no point of the curve."""
    from trainlab.config import load_config
    from trainlab.lr_find_run import lr_find_config

    path = _config(tmp_path, IRIS)
    unset = load_config(path, ["strategy.optimizer={name: sgd, momentum: 0.9}"])
    given = load_config(path, ["strategy.optimizer={name: sgd, momentum: 0.9, lr: 0.05}"])
    _, lrs_unset, losses_unset = lr_find_config(unset, num_steps=30)
    _, lrs_given, losses_given = lr_find_config(given, num_steps=30)
    assert lrs_unset == pytest.approx(lrs_given, rel=1e-12)
    assert losses_unset == pytest.approx(losses_given, rel=1e-5)


def test_train_without_an_lr_for_sgd_is_still_refused(tmp_path, capsys):
    """Only lr-find lets a missing lr through: a run needs one."""
    config = _config(tmp_path, IRIS)
    assert main(["train", config, "--out", str(tmp_path / "r"), "--set", "strategy.optimizer={name: sgd}"]) == 2
    assert "optimizer 'sgd' has no default learning rate" in capsys.readouterr().err


# --------------------------------------------------------------------------- 6. plot of a run with no epoch yet

def _started_run(folder: Path, lines: str) -> Path:
    """A run folder as a run writes it before its first epoch ends: config, run.json, a metrics.jsonl."""
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(IRIS))
    (folder / "run.json").write_text(json.dumps({"status": "running"}))
    (folder / "metrics.jsonl").write_text(lines)
    return folder


def test_plot_of_a_run_with_an_empty_metrics_file_says_no_epoch_is_recorded(tmp_path, capsys):
    run = _started_run(tmp_path / "run", "")
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err == (f"error: nothing to plot: {run / 'metrics.jsonl'} holds no epoch records "
                                       "(empty: the run recorded no epoch yet)\n")
    steps = _started_run(tmp_path / "steps", json.dumps({"step": 1, "train_loss": 0.5}) + "\n")
    assert main(["plot", str(steps), "--metric", "train_loss", "-o", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: nothing to plot: {steps / 'metrics.jsonl'} holds no epoch records (only step "
                          "records and events: the run recorded no epoch yet") and err.count("\n") == 1
    assert not (tmp_path / "c.png").exists()


def test_lr_find_with_lr_auto_and_a_fixed_lr_optimizer_names_the_fixed_lr(tmp_path, capsys):
    """lr-find of adadelta_zeiler with lr: auto said "Received: lr=1e-07", the sweep's start shown as the user's."""
    config = _config(tmp_path, {**IRIS, "strategy": {**IRIS["strategy"],
                                                     "optimizer": {"name": "adadelta_zeiler", "lr": "auto"}}})
    assert main(["lr-find", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lr: auto cannot be used with optimizer 'adadelta_zeiler'" in err[0], err
    assert "1e-07" not in err[0]


def test_an_r2_undefined_on_a_one_row_validation_split_is_said_so_by_early_stopping_and_target(tmp_path, capsys):
    """val_r2 on 1 validation row is NaN every epoch: early stopping stopped after its patience with an untrained
    model, saying nothing until then, and --target said 'no such validation metric' of a metric recorded (null)."""
    config = {**DIABETES, "data": {"source": "diabetes", "val_fraction": 0.003},  # 442 rows: 1 in val
              "strategy": {**DIABETES["strategy"], "epochs": 5,
                           "early_stopping": {"monitor": "val_r2", "mode": "max", "patience": 2}},
              "metrics": ["mse", "r2"]}
    argv = ["train", _config(tmp_path, config), "--out", str(tmp_path / "run"), "--target", "val_r2=0.9"]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert ("warning: early stopping monitors val_r2, which is NaN (undefined) at epoch 1 (R² is undefined on fewer "
            "than 2 rows or a constant target): if it stays NaN, no value improves on another, and the run stops "
            "after 2 such validations with no best to restore; monitor val_loss, or hold out more validation rows "
            "(data.val_fraction)") in printed.err.splitlines()
    assert "val_r2 >= 0.9 was not reached (no value of it was a number: undefined on this validation split)" in \
        printed.out + printed.err


@pytest.mark.parametrize("given", ["test_accuracy=0.9", "train_accuracy=0.9"])
def test_a_target_on_the_test_or_training_split_is_pointed_at_the_validation_metric(given):
    """The generic form error left the user to find that targets are validation metrics."""
    with pytest.raises(ConfigError) as info:
        parse_target(given)
    assert str(info.value).endswith(f"got '{given}'; did you mean val_accuracy=0.9? (a target is watched on the "
                                    "validation split as the run trains)")
