"""trainlab tune: space checks, sampling, seeding, pruning, failures, totals across processes, restart, PostgreSQL."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml

from trainlab.cli import main
from trainlab.config import load_config
from trainlab.errors import ConfigError
from trainlab.tune import TuneSettings, tune
from trainlab.tune.space import check_space, format_value, parse_space

REPO = Path(__file__).resolve().parents[1]

BASE = {
    "name": "iris",
    "seed": 0,
    "data": {"source": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                 "epochs": 2},
    "metrics": ["accuracy"],
    "runtime": {"num_threads": 1},
    "output": {"progress": "off", "checkpoint": {"every_seconds": None}},
}

SPACE = {
    "strategy.optimizer.name": {"choices": ["sgd", "adam"]},
    "strategy.optimizer.lr": {"low": 1.0e-4, "high": 0.5, "log": True},
    "strategy.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"strategy.optimizer.name": "sgd"}},
    "strategy.batch_size": {"choices": [16, 32]},
}


def write(folder: Path, base: dict = BASE, space: dict = SPACE) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    (folder / "space.yaml").write_text(yaml.safe_dump(space))
    return folder / "base.yaml", folder / "space.yaml"


def read_trials(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv") as handle:
        return list(csv.DictReader(handle))


def settings(tmp_path: Path, trials: int, **changes) -> TuneSettings:
    base, space = write(tmp_path, changes.pop("base", BASE), changes.pop("space", SPACE))
    return TuneSettings(base=base, space=space, trials=trials, out=tmp_path / "out", quiet=True, **changes)


# --------------------------------------------------------------------------- the space

BAD_SPACES = [
    ({"strategy.optimizer.lrr": {"low": 1e-3, "high": 0.1}}, "no option 'lrr'"),
    ({"strategy.optimiser.lr": {"low": 1e-3, "high": 0.1}}, "unknown config key 'strategy.optimiser'"),
    ({"model.hiden": {"choices": [[8], [16]]}}, "did you mean 'hidden'"),
    ({"strategy.optimizer.lr": {"low": 0.1, "high": 0.001}}, "low (0.1) > high (0.001)"),
    ({"strategy.optimizer.lr": {"low": 0.0, "high": 0.1, "log": True}}, "log needs low > 0"),
    ({"strategy.optimizer.lr": {"low": -1.0, "high": 0.1}}, "must be > 0"),
    ({"strategy.batch_size": {"low": 0, "high": 8}}, "strategy.batch_size=0"),
    ({"strategy.optimizer.name": {"choices": ["sgd", "adamm"]}}, "did you mean 'adam'"),
    ({"strategy.optimizer.name": {"choices": ["sgd"]},
      "strategy.optimizer.momentum": {"low": -0.5, "high": 0.9, "when": {"strategy.optimizer.name": "sgd"}}},
     "momentum=-0.5"),
    ({"strategy.optimizer.lr": {"low": 1e-3, "high": 0.1, "when": {"strategy.optimizer.nam": "sgd"}}},
     "'when' names 'strategy.optimizer.nam'"),
    ({"strategy.optimizer.name": {"choices": ["sgd", "adam"]},
      "strategy.optimizer.momentum": {"low": 0.0, "high": 0.9, "when": {"strategy.optimizer.name": "lion"}}},
     "'when' value 'lion' is not a choice"),
    ({"strategy.optimizer.lr": {"lo": 1e-3, "high": 0.1}}, "unknown field 'lo'; did you mean 'low'"),
    ({"strategy.optimizer.lr": {"low": 1e-3, "high": 0.1, "log": True, "step": 0.01}}, "cannot be combined"),
    ({"strategy.optimizer.lr": 0.01}, "needs a mapping"),
]


@pytest.mark.parametrize("space,expected", BAD_SPACES, ids=[str(i) for i in range(len(BAD_SPACES))])
def test_bad_space_fails_in_one_line_before_any_trial(tmp_path, capsys, space, expected):
    base, space_file = write(tmp_path, space=space)
    code = main(["tune", str(base), "--space", str(space_file), "--trials", "3", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected in err
    assert not (tmp_path / "out" / "trials").exists()


def test_conditional_key_is_sampled_exactly_when_its_condition_holds():
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        values = space.sample(study.ask())
        assert ("strategy.optimizer.momentum" in values) == (values["strategy.optimizer.name"] == "sgd")
        assert 1e-4 <= values["strategy.optimizer.lr"] <= 0.5
        seen.add(values["strategy.optimizer.name"])
    assert seen == {"sgd", "adam"}


def test_list_choices_and_float_values_survive_the_override_text():
    space = parse_space({"model.hidden": {"choices": [[8], [16, 16]]}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = {tuple(space.sample(study.ask())["model.hidden"]) for _ in range(20)}
    assert drawn == {(8,), (16, 16)}
    for value in [1e-05, 0.1, 3, "adam", [16, 16], True]:
        assert yaml.safe_load(format_value(value)) == value  # PyYAML reads a bare 1e-05 as a string
    check_space(space, BASE)


def test_int_step_and_float_step_ranges_parse_with_their_kinds():
    space = parse_space({"strategy.epochs": {"low": 1, "high": 7, "step": 2},
                         "strategy.regularization.weight_decay": {"low": 0.0, "high": 0.1, "step": 0.03}})
    epochs, decay = space.params
    assert (epochs.kind, decay.kind) == ("int", "float")
    assert epochs.extremes() == [1, 7]
    assert decay.extremes()[1] == pytest.approx(0.09)  # the last grid point <= high
    with pytest.raises(ConfigError, match="type int needs an integer"):
        parse_space({"strategy.epochs": {"low": 1, "high": 7.5, "type": "int"}})


# --------------------------------------------------------------------------- studies

def test_same_seed_gives_the_same_trials_and_results_are_written(tmp_path):
    first = tune(settings(tmp_path / "a", 5, seed=3, pruner="none"))
    second = tune(settings(tmp_path / "b", 5, seed=3, pruner="none"))
    other = tune(settings(tmp_path / "c", 5, seed=4, pruner="none"))
    rows = [read_trials(tmp_path / d / "out") for d in "abc"]
    params = [[{k: r[k] for k in SPACE} for r in table] for table in rows]
    assert params[0] == params[1]
    assert params[0] != params[2]
    assert first["params"] == second["params"] and first["value"] == second["value"]
    assert other["trial"] in range(5)

    out = tmp_path / "a" / "out"
    best = json.loads((out / "best.json").read_text())
    values = [float(r["value"]) for r in rows[0] if r["state"] == "COMPLETE"]
    assert best["value"] == max(values)
    config = load_config(out / "best.yaml")  # ready for trainlab train
    assert config.strategy.optimizer.lr == pytest.approx(best["params"]["strategy.optimizer.lr"])
    assert config.name == "iris-tuned"
    trial_config = load_config(out / "trials" / str(best["trial"]) / "config.yaml")
    assert config.strategy == trial_config.strategy
    report = (out / "report.html").read_text()
    assert report.count("Plotly.newPlot") >= 3
    assert "<script src=" not in report  # plotly.js is inline: no network request
    assert "importances" in best or "note" in best


def test_hopeless_learning_rates_are_pruned_with_their_epoch(tmp_path):
    space = {"strategy.optimizer.lr": {"low": 1.0e-7, "high": 0.05, "log": True}}
    base = {**BASE, "strategy": {**BASE["strategy"], "epochs": 4}}
    result = tune(settings(tmp_path, 12, space=space, base=base, pruner="median", seed=0))
    rows = read_trials(tmp_path / "out")
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert pruned, rows
    for row in pruned:
        epoch = int(row["pruned_at_epoch"])
        assert 1 <= epoch < 4
        summary = json.loads((Path(row["run_dir"]) / "summary.json").read_text())
        assert summary["epochs_run"] == epoch and "pruned" in summary["stop_reason"]
    # median pruning, written out: the trial's best value so far is below the median of the
    # earlier complete trials' values at that epoch (one worker: "earlier" = lower number)
    study = optuna.load_study(study_name=result["study"], storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "out" / "study.journal"))))
    for row in pruned:
        trial = study.trials[int(row["number"])]
        epoch = int(row["pruned_at_epoch"])
        complete = [t for t in study.trials[:trial.number] if t.state.name == "COMPLETE"]
        assert len(complete) >= 5  # the pruner's startup trials
        median = float(np.median([t.intermediate_values[epoch] for t in complete]))
        assert max(v for s, v in trial.intermediate_values.items() if s <= epoch) < median
    assert len(rows) == 12


def test_diverging_trials_fail_with_their_reason_and_the_study_goes_on(tmp_path):
    base = {**BASE, "data": {"source": "diabetes"}, "metrics": ["mse"],
            "strategy": {**BASE["strategy"], "loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}}}
    space = {"strategy.optimizer.lr": {"choices": [0.001, 0.002, 0.003, 1.0e+6]}}
    result = tune(settings(tmp_path, 4, space=space, base=base, pruner="none", metric="val_mse",
                           direction="minimize"))
    rows = read_trials(tmp_path / "out")
    failed = [r for r in rows if r["state"] == "FAIL"]
    done = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]
    assert len(done) == 4
    assert failed and all(float(r["strategy.optimizer.lr"]) == 1e6 for r in failed)
    assert all("non-finite" in r["fail_reason"] or "diverg" in r["fail_reason"] for r in failed), failed
    assert result["params"]["strategy.optimizer.lr"] < 1


def test_every_trial_failing_stops_the_study_with_an_error(tmp_path):
    base = {**BASE, "data": {"source": "diabetes"}, "metrics": ["mse"],
            "strategy": {**BASE["strategy"], "loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}}}
    space = {"strategy.optimizer.lr": {"low": 1.0e+6, "high": 1.0e+7, "log": True}}
    with pytest.raises(Exception, match="trials failed"):
        tune(settings(tmp_path, 2, space=space, base=base, pruner="none", metric="val_mse",
                      direction="minimize"))
    assert [r["state"] for r in read_trials(tmp_path / "out")] == ["FAIL", "FAIL"]


# --------------------------------------------------------------------------- processes

def _command(base: Path, space: Path, out: Path, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "trainlab.cli", "tune", str(base), "--space", str(space), "--trials", str(trials),
            "--out", str(out), "--quiet", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _finished(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]


@pytest.mark.slow
def test_two_processes_on_one_folder_end_with_exactly_the_total(tmp_path):
    base, space = write(tmp_path)
    out = tmp_path / "out"
    commands = [_command(base, space, out, 10, "--jobs", "2"), _command(base, space, out, 10)]  # 3 workers
    workers = [subprocess.Popen(command, env=_env(), stderr=subprocess.PIPE, text=True) for command in commands]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    rows = read_trials(out)
    numbers = [int(r["number"]) for r in rows]
    assert len(_finished(rows)) == 10 and len(rows) == 10
    assert sorted(numbers) == list(range(10))


@pytest.mark.slow
def test_sigkill_then_rerun_continues_to_the_total(tmp_path):
    slow = {**BASE, "strategy": {**BASE["strategy"], "epochs": 3}}
    base, space = write(tmp_path, base=slow)
    out = tmp_path / "out"
    worker = subprocess.Popen(_command(base, space, out, 8, "--pruner", "none"), env=_env(),
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "trials" / "3").exists() and time.time() < deadline and worker.poll() is None:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert not (out / "trials.csv").exists()  # killed mid-study, before the results
    rerun = subprocess.run(_command(base, space, out, 8, "--pruner", "none"), env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    rows = read_trials(out)
    assert len(_finished(rows)) == 8
    stale = [r for r in rows if r["state"] == "FAIL"]
    assert len(stale) <= 1 and all("died" in r["fail_reason"] for r in stale)
    assert not [r for r in rows if r["state"] == "RUNNING"]


def _postgres_url() -> str:
    url = os.environ.get("TRAINLAB_TEST_POSTGRES_URL")
    if url:
        return url
    script = REPO / ".ci" / "setup-postgres.sh"
    try:
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no PostgreSQL server: {script} could not run: {exc}")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"no PostgreSQL server: {script} failed: {reason}")
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_postgres_two_workers_share_one_study(tmp_path):
    url = _postgres_url()
    base, space = write(tmp_path)
    study = f"test-{uuid.uuid4().hex[:12]}"
    workers = [subprocess.Popen(_command(base, space, tmp_path / f"out{i}", 8, "--storage", url, "--study", study),
                                env=_env(), stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    loaded = optuna.load_study(study_name=study, storage=url.replace("postgresql://", "postgresql+psycopg://"))
    states = [t.state.name for t in loaded.trials]
    assert sum(s in ("COMPLETE", "PRUNED") for s in states) == 8 and len(states) == 8
    assert sorted(t.number for t in loaded.trials) == list(range(8))
    # each worker's run folders are in its own --out; both wrote results of the whole study
    run_folders = sorted(int(p.parent.name) for p in tmp_path.glob("out*/trials/*/summary.json"))
    assert run_folders == [t.number for t in loaded.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(read_trials(tmp_path / "out0")) == len(read_trials(tmp_path / "out1")) == 8
    assert not math.isnan(loaded.best_value)


def test_refit_seeds_compares_tuned_with_base_or_is_refused_before_any_trial(tmp_path):
    try:
        import trainlab.compare  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="--refit-seeds needs trainlab.compare"):
            tune(settings(tmp_path, 2, refit_seeds=2))
        assert not (tmp_path / "out").exists()
        return
    best = tune(settings(tmp_path, 3, refit_seeds=2, pruner="none"))
    refit = best["refit"]
    assert refit["metric"] == "test_accuracy"
    assert sorted(row["strategy"] for row in refit["rows"]) == ["base", "tuned"]
    tuned_runs = sorted((tmp_path / "out" / "refit").glob("runs/*/tuned/seed-*/summary.json"))
    assert len(tuned_runs) == 2
    tuned = load_config(tuned_runs[0].parent / "config.yaml")
    assert tuned.strategy.optimizer.lr == pytest.approx(best["params"]["strategy.optimizer.lr"])
    assert "Refit over seeds" in (tmp_path / "out" / "report.html").read_text()


def test_the_base_config_is_the_first_trial_when_it_lies_in_the_space(tmp_path):
    best = tune(settings(tmp_path / "in", 3, pruner="none"))
    rows = read_trials(tmp_path / "in" / "out")
    first = rows[0]
    assert (first["strategy.optimizer.name"], float(first["strategy.optimizer.lr"]),
            int(first["strategy.batch_size"]), first["strategy.optimizer.momentum"]) == ("adam", 0.01, 32, "")
    assert best["value"] >= float(first["value"])
    outside = {**SPACE, "strategy.batch_size": {"choices": [8, 16]}}  # the base's 32 is not a point
    tune(settings(tmp_path / "out", 2, pruner="none", space=outside))
    assert read_trials(tmp_path / "out" / "out")[0]["strategy.batch_size"] in ("8", "16")


def test_a_metric_the_base_config_does_not_compute_is_refused_before_any_trial(tmp_path, capsys):
    base, space = write(tmp_path)
    code = main(["tune", str(base), "--space", str(space), "--trials", "2", "--metric", "val_f1",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "--metric 'val_f1' is not computed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
