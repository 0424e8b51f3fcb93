"""A run folder whose training raised (run.json ``"status": "failed"`` with its ``error``, trainlab.experiment)
under a comparison: without a compare-error.json (trained by ``trainlab train``, or its error record not
written) it is skipped and reported as failed with its recorded error, as a compare-error.json's run is, for
the exact config hash; a config differing only in its output section resumes it. It was refused as damaged
("has status 'failed', which no run records")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.test_compare_damaged_runs import LABEL, RUN, _args, _files, _one_error_line, finished_comparison
from trainlab.cli import main
from trainlab.compare.run_actions import plan_runs, run_action
from trainlab.compare.strategies import parse_strategies

ERROR = "the schedule (strategy.schedule) raised KeyError: 'late boom' at step 6 (at my_code.py:12); ..."


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """:func:`~tests.test_compare_damaged_runs.finished_comparison`, once for the module."""
    return finished_comparison(tmp_path_factory.mktemp("failed"))


@pytest.fixture
def failed(finished: Path, tmp_path: Path) -> Path:
    """A copy of :func:`finished` whose run records failing as trainlab.experiment._record_failure records it
    (no summary.json nor model: a run that raised never wrote them)."""
    folder = Path(shutil.copytree(finished, tmp_path / "cmp", symlinks=True))
    for name in ("summary.json", "model.safetensors"):
        (folder / "out" / RUN / name).unlink()
    info = folder / "out" / RUN / "run.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "status": "failed", "error": ERROR}))
    return folder


def _plan(folder: Path, **output):
    base = yaml.safe_load((folder / "base.yaml").read_text())
    strategies = parse_strategies({"strategies": {"plain": None}})
    [plan] = plan_runs({"base": {**base, "output": {**base["output"], **output}}}, strategies, [0], folder / "out")
    return plan


def test_a_failed_run_is_skipped_as_failed_with_its_recorded_error_and_not_trained_again(failed: Path, capsys):
    assert run_action(_plan(failed)) == ("failed", ERROR)
    before = _files(failed / "out" / "runs")
    capsys.readouterr()
    assert main(_args(failed)) == 4  # no run finished (it was refused as damaged, exit 3)
    line = _one_error_line(capsys)
    assert line.startswith("error: no run finished: 1 of 1 runs failed")  # counted failed, not "not run yet"
    assert "run.json" in line  # where its reason is recorded
    [entry] = json.loads((failed / "out" / "leaderboard.json").read_text())["tasks"]["base"]["strategies"]
    assert (entry["failed"], entry["missing"]) == (1, 0)
    assert [f["reason"] for f in entry["failures"]] == [ERROR]
    assert _files(failed / "out" / "runs") == before  # nothing trained again, nothing rewritten


def test_a_failed_run_whose_config_differs_only_in_its_output_section_is_resumed(failed: Path):
    """Its failure may have come of the output section (a full disk under its checkpoint policy), as a
    compare-error.json's run is skipped for the exact config hash only."""
    assert run_action(_plan(failed, checkpoint={"every_n_steps": 2})) == ("partial", f"resuming {LABEL} (status failed)")


def test_a_status_no_run_records_is_still_damaged_and_the_list_names_failed(failed: Path):
    info = failed / "out" / RUN / "run.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "status": "done"}))
    action, note = run_action(_plan(failed))
    assert action == "damaged"
    assert "which no run records (one of running, interrupted, finished, diverged, failed)" in note
