"""The same ``trainlab tune`` command run again on a study that has its ``--trials`` already: one line says
there is nothing to run, no worker is started (``--jobs 2`` spawned two interpreters to find that out), and
the summary follows as ever."""

from __future__ import annotations

import json

import pytest

import trainlab.tune.runner as runner
from tests.test_tune import settings
from trainlab.cli import main
from trainlab.tune.runner import nothing_left_line

SPACE = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}


def _tune(tmp_path, *extra: str) -> int:
    tuned = settings(tmp_path, 2, space=SPACE)
    return main(["tune", str(tuned.base), "--space", str(tmp_path / "space.yaml"), "--out", str(tmp_path / "out"),
                 "--pruner", "none", *extra])


def test_a_finished_study_run_again_starts_no_worker_and_says_so(tmp_path, capsys, monkeypatch):
    assert _tune(tmp_path, "--trials", "2") == 0
    before = json.loads((tmp_path / "out" / "best.json").read_text())
    capsys.readouterr()

    def no_workers(*args, **kwargs):
        raise AssertionError("a finished study started its workers")

    monkeypatch.setattr(runner, "run_workers", no_workers)
    assert _tune(tmp_path, "--trials", "2", "--jobs", "2") == 0
    err = capsys.readouterr().err
    out = tmp_path / "out"
    assert err.startswith(f"study trainlab-base already has its 2 trials (2 complete, 0 pruned, 0 failed): nothing "
                          f"to run; its results are in {out}\nstudy trainlab-base: 2 complete\nbest trial "), err
    after = json.loads((out / "best.json").read_text())
    assert (after["trial"], after["params"], after["counts"]) == (before["trial"], before["params"], before["counts"])


def test_fewer_trials_asked_for_than_the_study_has_is_said_as_more(tmp_path, capsys, monkeypatch):
    assert _tune(tmp_path, "--trials", "2", "--quiet") == 0
    monkeypatch.setattr(runner, "run_workers", lambda *args, **kwargs: pytest.fail("workers started"))
    assert _tune(tmp_path, "--trials", "1") == 0
    assert "study trainlab-base already has 2 trials, more than the 1 --trials asks for (2 complete, 0 pruned, " \
           "0 failed): nothing to run" in capsys.readouterr().err


def test_a_study_short_of_its_total_runs_on(tmp_path, capsys):
    assert _tune(tmp_path, "--trials", "1", "--quiet") == 0
    assert nothing_left_line(settings(tmp_path, 2, space=SPACE)) is None  # one of 2: a worker has a trial to run
    assert nothing_left_line(settings(tmp_path, 1, space=SPACE)) is not None
    assert _tune(tmp_path, "--trials", "2") == 0
    err = capsys.readouterr().err
    assert "nothing to run" not in err and "trial 1: val_accuracy=" in err
