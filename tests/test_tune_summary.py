"""What a study says when it ends: the summary (under --quiet too), why it stopped short, the importances."""

from __future__ import annotations

import json
import time
import types

import optuna
from optuna.distributions import FloatDistribution

import trainlab.tune.study as study_module
from tests.test_tune import settings, write
from trainlab.cli import main
from trainlab.tune.results import format_best, importances
from trainlab.tune.runner import timeout_line

SPACE = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}


def test_the_summary_prints_under_quiet(tmp_path, capsys):
    """--help says --quiet hides the progress line and notes, and that the final summary still prints."""
    base, space = write(tmp_path, space=SPACE)
    assert main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(tmp_path / "out"),
                 "--pruner", "none", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "study trainlab-base: 1 complete\nbest trial 0: val_accuracy = " in err, err


def test_a_study_that_timeout_ended_short_of_its_trials_says_so(tmp_path, capsys, monkeypatch):
    """--trials 10 --timeout 60 whose clock passes the deadline after the first trial: 1 of 10, said, exit 0."""
    calls = []

    def clock() -> float:  # the worker's deadline check: now, then an hour later
        calls.append(None)
        return time.time() + (0 if len(calls) == 1 else 3600)

    monkeypatch.setattr(study_module, "time", types.SimpleNamespace(time=clock, sleep=time.sleep))
    base, space = write(tmp_path, space=SPACE)
    assert main(["tune", str(base), "--space", str(space), "--trials", "10", "--timeout", "60",
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.endswith("\n--timeout 60 s passed: no further trial was started, and the study has 1 of its 10 "
                        "trials; rerun the same trainlab tune command to continue the study to 10 trials\n"), err
    assert "study trainlab-base: 1 complete" in err


def test_a_study_that_timeout_ended_before_any_trial_says_so_in_its_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(study_module, "time", types.SimpleNamespace(time=lambda: time.time() + 3600,
                                                                    sleep=time.sleep))
    base, space = write(tmp_path, space=SPACE)
    assert main(["tune", str(base), "--space", str(space), "--trials", "10", "--timeout", "60",
                 "--out", str(tmp_path / "out"), "--quiet"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: no trial of study 'trainlab-base' completed (no trials)") and err.count("\n") == 1
    assert err.endswith("; --timeout 60 s passed: no further trial was started, and the study has 0 of its 10 "
                        "trials; rerun the same trainlab tune command to continue the study to 10 trials\n"), err


def test_the_timeout_line_is_only_for_a_study_short_of_its_trials(tmp_path):
    short = {"counts": {"COMPLETE": 1, "PRUNED": 1, "FAIL": 3}}
    assert timeout_line(settings(tmp_path, 10, timeout_s=5), short) == (
        "--timeout 5 s passed: no further trial was started, and the study has 2 of its 10 trials; rerun the "
        "same trainlab tune command to continue the study to 10 trials")
    assert timeout_line(settings(tmp_path, 2, timeout_s=5), short) is None  # the total reached
    assert timeout_line(settings(tmp_path, 10), short) is None  # no --timeout: nothing stopped it early


def test_importances_name_the_conditional_keys_they_leave_out():
    """fANOVA assesses only the keys every complete trial sets: a when: key vanished from importances.json."""
    study = optuna.create_study(direction="maximize")
    for i in range(6):
        params = {"lr": 0.01 * (i + 1), **({"momentum": 0.1 * i} if i % 2 else {})}
        study.add_trial(optuna.create_trial(params=params, value=float(i), distributions={
            key: FloatDistribution(0.0, 1.0) for key in params}))
    found = importances(study, 0)
    assert list(found["importances"]) == ["lr"]
    assert found["left_out"] == {"momentum": "conditional: set in 3 of 6 complete trials, and fANOVA assesses only "
                                             "the keys every complete trial sets"}
    json.dumps(found)
    best = {"study": "s", "metric": "val_accuracy", "counts": {"COMPLETE": 6}, **found}
    assert format_best(best).endswith("importances: lr 1.00 (left out, not set in every complete trial: momentum)")
    # a key of the space that no complete trial set (its when: never met): named too, not silently missing
    found = importances(study, 0, ["lr", "momentum", "weight_decay"])
    assert found["left_out"]["weight_decay"] == ("conditional: set in 0 of 6 complete trials, and fANOVA assesses "
                                                 "only the keys every complete trial sets")


def test_the_summary_says_why_there_are_no_importances():
    """With 3 complete trials importances.json held only its note; the terminal said nothing of them."""
    study = optuna.create_study(direction="maximize")
    for i in range(3):
        study.add_trial(optuna.create_trial(params={"lr": 0.01 * (i + 1)}, value=float(i),
                                            distributions={"lr": FloatDistribution(0.0, 1.0)}))
    found = importances(study, 0)
    best = {"study": "s", "metric": "val_accuracy", "counts": {"COMPLETE": 3}, **found}
    assert format_best(best).endswith("importances: none (3 complete trials; importances need at least 4)")
