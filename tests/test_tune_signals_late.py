"""SIGINT/SIGTERM to `trainlab tune` outside its trials: before them (while it starts) one `error:` line and
128 + the signal; once the study's results are written, a warning and exit 0 with the report written.
`tune` was left out of the CLI's signal handling: a SIGTERM at either moment killed it silently (143), and
a Ctrl-C after its results printed a KeyboardInterrupt traceback from an atexit callback."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import yaml

import trainlab.tune.report
import trainlab.tune.runner
from tests.forked_runs import fork_cli, wait

BASE = {"name": "late", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                     "epochs": 2},
        "metrics": ["accuracy"], "output": {"progress": "off"}, "runtime": {"num_threads": 1}}


def _files(tmp_path):
    base, space = tmp_path / "base.yaml", tmp_path / "space.yaml"
    base.write_text(yaml.safe_dump(BASE))
    space.write_text(yaml.safe_dump({"strategy.optimizer.lr": {"low": 0.001, "high": 0.1, "log": True}}))
    return base, space


def _signal_self_then(original, signum: int):
    def wrapped(*args, **kwargs):
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the handler runs here
        return original(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_report_is_written_is_said_and_the_study_completes(signum, tmp_path, monkeypatch):
    base, space = _files(tmp_path)
    monkeypatch.setattr(trainlab.tune.report, "write_report", _signal_self_then(trainlab.tune.report.write_report,
                                                                                signum))
    out, log = tmp_path / "out", tmp_path / "stderr.log"
    code = wait(fork_cli(["tune", str(base), "--space", str(space), "--trials", "2", "--out", str(out),
                          "--quiet"], log))
    err = log.read_text()
    assert code == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    name = signal.Signals(signum).name
    assert f"warning: {name} received while finishing; the study is complete" in err, err
    assert (out / "report.html").is_file() and json.loads((out / "best.json").read_text())["counts"]["COMPLETE"] == 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_tune_starts_is_one_error_line(signum, tmp_path, monkeypatch):
    base, space = _files(tmp_path)
    monkeypatch.setattr(trainlab.tune.runner, "prepare", _signal_self_then(trainlab.tune.runner.prepare, signum))
    out, log = tmp_path / "out", tmp_path / "stderr.log"
    code = wait(fork_cli(["tune", str(base), "--space", str(space), "--trials", "2", "--out", str(out)], log))
    err = log.read_text()
    assert code == 128 + signum, err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("error: interrupted"), err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_as_a_trial_starts_names_the_trial_and_the_rerun(signum, tmp_path, monkeypatch):
    """Before the run's own handler is up (the trial's config being built), a signal was told as a bare
    `error: interrupted`, though the trial was recorded as failed and the same command continues."""
    import trainlab.tune.objective

    base, space = _files(tmp_path)
    monkeypatch.setattr(trainlab.tune.objective, "trial_config",
                        _signal_self_then(trainlab.tune.objective.trial_config, signum))
    out, log = tmp_path / "out", tmp_path / "stderr.log"
    code = wait(fork_cli(["tune", str(base), "--space", str(space), "--trials", "2", "--out", str(out)], log))
    err = log.read_text()
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"error: {name} received during trial 0 (outside its run), which is recorded as failed; "), err
    assert "trainlab tune" in err, err  # the command that continues the study
