"""trainlab.tune from Python: the command's defaults, --jobs from an unguarded script, PruningCallback in
your own Optuna objective, Optuna's log level left as found."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import trainlab.tune
import trainlab.tune.runner
from tests.child_env import with_repo_first
from tests.test_tune import BASE as TUNE_BASE
from trainlab.cli import main
from trainlab.errors import ConfigError, TrainingError
from trainlab.experiment import train
from trainlab.tune import TuneSettings, tune
from trainlab.tune.objective import PruningCallback

REPO = Path(__file__).resolve().parents[1]

BASE = TUNE_BASE  # tests/test_tune.py's iris config
SPACE = {"strategy.optimizer.lr": {"low": 1.0e-4, "high": 0.5, "log": True}}


def write(folder: Path, space: dict = SPACE) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(BASE))
    (folder / "space.yaml").write_text(yaml.safe_dump(space))
    return folder / "base.yaml", folder / "space.yaml"


# --------------------------------------------------------------------------- the command's defaults

@pytest.mark.parametrize("metric", [None, "val_accuracy", "val_loss"])
def test_settings_made_in_python_equal_the_commands_with_the_same_options(tmp_path, monkeypatch, metric):
    """Every default of TuneSettings (direction from the metric, out, pruner, seed, jobs ...) is the CLI's:
    the settings `trainlab tune` builds equal TuneSettings given only what the command line gave."""
    monkeypatch.chdir(tmp_path)
    base, space = write(tmp_path)
    made: list[TuneSettings] = []
    monkeypatch.setattr(trainlab.tune, "tune", made.append)  # the command imports it when it runs
    assert main(["tune", "base.yaml", "--space", "space.yaml", "--trials", "3",
                 *(["--metric", metric] if metric else [])]) == 0
    given = {"metric": metric} if metric else {}
    assert made == [TuneSettings(base="base.yaml", space="space.yaml", trials=3, **given)]


@pytest.mark.parametrize(("metric", "direction"), [("val_accuracy", "maximize"), ("val_f1", "maximize"),
                                                   ("val_r2", "maximize"), ("val_loss", "minimize"),
                                                   ("val_mse", "minimize"), ("val_error", "minimize"),
                                                   ("val_focal_loss", "minimize")])
def test_the_direction_follows_the_metric_unless_given(metric, direction):
    assert TuneSettings(base="b.yaml", space="s.yaml", trials=1, metric=metric).direction == direction
    other = "maximize" if direction == "minimize" else "minimize"
    assert TuneSettings(base="b.yaml", space="s.yaml", trials=1, metric=metric, direction=other).direction == other


def test_tuning_val_loss_from_python_picks_the_trial_with_the_lowest_loss(tmp_path):
    base, space = write(tmp_path)
    out = tmp_path / "out"
    best = tune(TuneSettings(base=base, space=space, trials=4, out=out, metric="val_loss", pruner="none",
                             quiet=True))
    with open(out / "trials.csv") as handle:
        values = {int(r["number"]): float(r["value"]) for r in csv.DictReader(handle) if r["state"] == "COMPLETE"}
    assert len(set(values.values())) == 4  # distinct losses: the lowest is one trial
    lowest = min(values, key=values.__getitem__)
    assert (best["direction"], best["trial"], best["value"]) == ("minimize", lowest, values[lowest])
    summary = json.loads((out / "trials" / str(lowest) / "summary.json").read_text())
    assert summary["val"]["loss"] == values[lowest]


# --------------------------------------------------------------------------- --jobs from a script

UNGUARDED = """
    import sys
    from trainlab.errors import TrainlabError
    from trainlab.tune import TuneSettings, tune

    print("script body", flush=True)
    try:
        tune(TuneSettings(base={base!r}, space={space!r}, trials=2, out={out!r}, quiet=True, pruner="none",
                          jobs=2))
    except TrainlabError as exc:
        print(f"error: {{type(exc).__name__}}: {{exc}}", file=sys.stderr)
        sys.exit(exc.exit_code)
"""


@pytest.mark.slow
def test_jobs_from_a_script_without_a_main_guard_is_one_error_naming_the_guard(tmp_path):
    """The spawned workers import the script, whose unguarded tune(jobs=2) ran again in each: multiprocessing
    refused it with a bootstrapping traceback per worker, then 'tune workers exited with codes [1, 1]'."""
    base, space = write(tmp_path)
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(UNGUARDED.format(base=str(base), space=str(space), out=str(tmp_path / "out"))))
    env = {**os.environ, "PYTHONPATH": with_repo_first(REPO)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == ConfigError.exit_code, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # one line: no worker's traceback
    assert done.stderr.startswith(f"error: ConfigError: tune(jobs=2) ran again in its worker processes when they "
                                  f"imported {script}: guard the call with if __name__ == '__main__':")
    assert done.stdout.count("script body") == 3  # the script, then each worker importing it
    assert not (tmp_path / "out" / "trials").exists()  # no trial ran


def test_an_error_of_the_workers_is_raised_when_the_results_cannot_be_written(tmp_path, monkeypatch):
    """The unguarded script's workers ran its body too, which deleted the study folder: writing the results
    raised KeyError ('Record does not exist.') over the workers' error."""
    base, space = write(tmp_path)
    out = tmp_path / "out"

    def workers_delete_the_study_and_fail(settings, space, base_raw):
        (out / "study.journal").unlink()
        raise ConfigError("the workers' error")

    monkeypatch.setattr(trainlab.tune.runner, "run_workers", workers_delete_the_study_and_fail)
    with pytest.raises(ConfigError, match="the workers' error"):
        tune(TuneSettings(base=base, space=space, trials=2, out=out, quiet=True))


# --------------------------------------------------------------------------- your own objective

class PruneFromEpoch(optuna.pruners.BasePruner):
    """Prunes once a trial has reported ``epoch``: a decision known in advance, unlike the median's."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.last_step is not None and trial.last_step >= self.epoch


@pytest.mark.parametrize(("pruner", "state", "epochs_run"), [(PruneFromEpoch(2), TrialState.PRUNED, 2),
                                                             (optuna.pruners.NopPruner(), TrialState.COMPLETE, 4)])
def test_check_pruned_makes_a_pruned_run_a_pruned_trial_in_your_own_objective(tmp_path, pruner, state, epochs_run):
    """docs/tune.md's objective: a pruned run ends normally, so without check_pruned Optuna recorded it COMPLETE."""
    config = copy.deepcopy(BASE)
    config["strategy"]["epochs"] = 4
    runs: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        pruning = PruningCallback(trial, "val_accuracy")
        summary, _ = train(config, out=tmp_path / str(trial.number), quiet=True, callbacks=[pruning])
        runs.append(summary)
        pruning.check_pruned()
        return summary["val"]["accuracy"]

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", pruner=pruner)
        study.optimize(objective, n_trials=1)
    finally:
        optuna.logging.set_verbosity(previous)
    [trial] = study.trials
    [summary] = runs
    assert trial.state == state
    assert summary["epochs_run"] == epochs_run and sorted(trial.intermediate_values) == list(range(1, epochs_run + 1))
    if state == TrialState.COMPLETE:
        assert trial.value == summary["val"]["accuracy"]


# --------------------------------------------------------------------------- Optuna's log level

@pytest.mark.parametrize("ends", ["returns", "raises"])
def test_tune_leaves_optunas_log_level_as_it_found_it(tmp_path, ends):
    """It stayed WARNING for the rest of the Python session (an INFO level the caller had set was lost)."""
    diverging = {"strategy.optimizer.lr": {"low": 1.0e7, "high": 1.0e8, "log": True}}
    base, space = write(tmp_path, diverging if ends == "raises" else SPACE)
    settings = TuneSettings(base=base, space=space, trials=1, out=tmp_path / "out", quiet=True, pruner="none",
                            overrides=("strategy.optimizer.name=sgd",) if ends == "raises" else ())
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        if ends == "raises":  # every trial diverges: the study stops with its failures
            with pytest.raises(TrainingError):
                tune(settings)
        else:
            tune(settings)
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(previous)
