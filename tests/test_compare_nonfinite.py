"""A finished run whose ranking metric is NaN, inf or missing counts against its strategy as a failed run
does: the user test's `overflow` strategy (seeds 1 and 2 finished with test_mse null) ranked first on its
two surviving seeds, printed `n=4`, and leaderboard.json said runs 4, failed 0 over a test_mse of n 2."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from trainlab.cli import main
from trainlab.compare.display import Tally
from trainlab.compare.leaderboard import build_leaderboard
from trainlab.compare.leaderboard_output import print_leaderboard, to_csv
from trainlab.compare.metric_keys import read_metric
from trainlab.compare.run_actions import RunPlan

# seed -> test mse (None: written as null, the summary's non_finite naming the value) and test r2
STEADY = {0: (3000.0, 0.50), 1: (3070.0, 0.48), 2: (3040.0, 0.49), 3: (3010.0, 0.50)}
OVERFLOW = {0: (2940.0, 0.51), 1: (None, None), 2: (None, None), 3: (3000.0, None)}


def _summary(mse: float | None, r2: float | None, non_finite: list[str]) -> dict:
    summary = {"status": "finished", "train_time_s": 0.05, "best_epoch": 3,
               "val": {"loss": 0.6, "mse": mse, "r2": r2}, "test": {"loss": 0.5, "mse": mse, "r2": r2}}
    if non_finite:
        summary["non_finite"] = non_finite
    return summary


def _fabricated(root: Path) -> list[RunPlan]:
    plans = []
    for strategy, seeds in (("steady", STEADY), ("overflow", OVERFLOW)):
        for seed, (mse, r2) in seeds.items():
            path = root / strategy / f"seed-{seed}"
            path.mkdir(parents=True)
            non_finite = ([f"{split}.mse=nan" for split in ("val", "test")] if mse is None else []) + \
                ([f"{split}.r2=nan" for split in ("val", "test")] if r2 is None else [])
            (path / "summary.json").write_text(json.dumps(_summary(mse, r2, non_finite)))
            plans.append(RunPlan("diab", strategy, seed, {}, path))
    return plans


def _entries(board: dict) -> dict[str, dict]:
    return {e["name"]: e for e in board["tasks"]["diab"]["strategies"]}


def test_a_finished_run_with_a_nan_ranking_metric_counts_as_failed_and_ranks_its_strategy_below(tmp_path):
    board = build_leaderboard(_fabricated(tmp_path), "test_mse")
    entries = _entries(board)
    # overflow's finite mean (2970) is below steady's (3030), but its two NaN seeds are failures: second standing
    assert np.mean([2940.0, 3000.0]) < np.mean([v for v, _ in STEADY.values()])
    assert [e["name"] for e in board["tasks"]["diab"]["strategies"]] == ["steady", "overflow"]
    assert board["tasks"]["diab"]["best"] == "steady" and entries["steady"]["vs_best"]["verdict"] == "best"
    overflow = entries["overflow"]
    assert (overflow["runs"], overflow["failed"], overflow["missing"]) == (2, 2, 0)
    assert overflow["failures"] == [
        {"seed": 1, "reason": "finished, but test_mse is nan (not a finite number): counted as failed"},
        {"seed": 2, "reason": "finished, but test_mse is nan (not a finite number): counted as failed"}]
    mse = overflow["metrics"]["test_mse"]
    assert (mse["n"], mse["seeds"], mse["values"]) == (2, [0, 3], [2940.0, 3000.0])
    assert mse["mean"] == pytest.approx(2970.0) and mse["std"] == pytest.approx(np.std([2940.0, 3000.0], ddof=1))
    # a non-ranking metric's n counts its own finite values: r2 is NaN on seed 3, whose mse is finite
    r2 = overflow["metrics"]["test_r2"]
    assert (r2["n"], r2["seeds"], r2["values"]) == (1, [0], [0.51])
    # each metric's n is its own finite values: the runs counted as failed trained for a finite time
    assert overflow["metrics"]["train_time_s"]["n"] == overflow["metrics"]["test_loss"]["n"] == 4
    steady = entries["steady"]
    assert (steady["runs"], steady["failed"], steady["failures"]) == (4, 0, [])
    assert steady["metrics"]["test_mse"]["n"] == steady["metrics"]["test_r2"]["n"] == 4


def test_the_table_and_the_csv_show_n_and_the_runs_counted_as_failed(tmp_path):
    board = build_leaderboard(_fabricated(tmp_path), "test_mse")
    buffer = io.StringIO()
    print_leaderboard(board, Console(file=buffer, width=250))
    printed = buffer.getvalue()
    row = next(line for line in printed.splitlines() if "overflow" in line and "±" in line)
    assert re.search(r"2970 ± 42 n=2, 2 failed", row), row
    assert re.search(r"3030 ± 32 n=4 ", next(line for line in printed.splitlines() if "steady" in line)), printed
    assert "failed: overflow seed 1: finished, but test_mse is nan (not a finite number): counted as failed" in printed
    rows = {row["strategy"]: row for row in csv.DictReader(io.StringIO(to_csv(board)))}
    assert (rows["overflow"]["rank"], rows["overflow"]["runs"], rows["overflow"]["failed"]) == ("2", "2", "2")
    assert rows["overflow"]["failures"] == ("seed 1: finished, but test_mse is nan (not a finite number): counted "
                                            "as failed; seed 2: finished, but test_mse is nan (not a finite "
                                            "number): counted as failed")
    assert (rows["steady"]["runs"], rows["steady"]["failed"], rows["steady"]["failures"]) == ("4", "0", "")


def test_a_ranking_metric_missing_from_a_finished_summary_is_a_failure_that_says_so(tmp_path):
    plans = _fabricated(tmp_path)
    missing = next(p for p in plans if p.strategy == "steady" and p.seed == 2)
    summary = json.loads((missing.path / "summary.json").read_text())
    del summary["test"]["mse"]
    (missing.path / "summary.json").write_text(json.dumps(summary))
    steady = _entries(build_leaderboard(plans, "test_mse"))["steady"]
    assert steady["failures"] == [{"seed": 2, "reason": "finished, but summary.json records no test_mse: counted "
                                                       "as failed"}]
    assert (steady["runs"], steady["failed"], steady["metrics"]["test_mse"]["n"]) == (3, 1, 3)


def test_a_null_without_a_non_finite_note_is_named_null(tmp_path):
    plans = _fabricated(tmp_path)
    quiet = next(p for p in plans if p.strategy == "overflow" and p.seed == 1)
    (quiet.path / "summary.json").write_text(json.dumps(_summary(None, None, [])))
    overflow = _entries(build_leaderboard(plans, "test_mse"))["overflow"]
    assert overflow["failures"][0] == {"seed": 1, "reason": "finished, but test_mse is null (not a finite number): "
                                                            "counted as failed"}


class _Plan:
    def __init__(self, strategy: str):
        self.task, self.strategy = "diab", strategy


def test_the_live_leader_is_not_a_strategy_whose_runs_finished_non_finite():
    tally = Tally(task="diab", total=4, metric="test_mse", direction="min", read_metric=read_metric)
    tally.record(_Plan("plain"), _summary(2941.0, 0.5, []))
    tally.record(_Plan("overflow"), _summary(2900.0, 0.5, []))
    assert tally.leader() == "overflow test_mse=2900 (n=1)"
    tally.record(_Plan("overflow"), _summary(None, None, ["test.mse=nan"]))
    assert tally.leader() == "plain test_mse=2941 (n=1)"


# --------------------------------------------------------------------------- a real comparison

EVAL_OVERFLOW = '''
import torch
import torch.nn as nn


class EvalOverflow(nn.Module):
    """An MLP whose outputs overflow to inf at evaluation on seeds 1 and 2 (trainlab seeds torch with the
    run's seed): its training loss stays finite, so the run finishes with test_mse NaN."""

    def __init__(self, input_shape, output_dim, hidden=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(), nn.Linear(hidden, output_dim))
        self.bad = torch.initial_seed() in (1, 2)

    def forward(self, x):
        out = self.net(x)
        return out * float("inf") if self.bad and not self.training else out


def make(input_shape, output_dim, hidden=8):
    return EvalOverflow(input_shape, output_dim, hidden)
'''


def test_a_real_comparison_ranks_the_strategy_that_overflows_on_two_seeds_below(tmp_path, capsys):
    (tmp_path / "evaloverflow_models.py").write_text(EVAL_OVERFLOW)
    base = {"name": "diab", "seed": 0, "data": {"source": "diabetes", "standardize_target": True},
            "model": {"name": "mlp", "hidden": [8]},
            "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 64, "epochs": 2},
            "metrics": ["mse", "r2"], "runtime": {"num_threads": 1}}
    (tmp_path / "diab.yaml").write_text(yaml.safe_dump(base))
    strategies = {"strategies": {"plain": None,
                                 "overflow": {"model": {"name": "evaloverflow_models:make", "hidden": 8}}}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(strategies))
    out = tmp_path / "out"
    code = main(["compare", str(tmp_path / "diab.yaml"), "--strategies", str(tmp_path / "s.yaml"), "--seeds", "4",
                 "--jobs", "1", "--out", str(out), "--metric", "test_mse"])
    printed = capsys.readouterr().out
    assert code == 0
    board = json.loads((out / "leaderboard.json").read_text())
    entries = _entries(board)
    values = {}
    for seed in range(4):
        summary = json.loads((out / "runs" / "diab" / "overflow" / f"seed-{seed}" / "summary.json").read_text())
        assert summary["status"] == "finished"
        values[seed] = summary["test"]["mse"]
    assert [seed for seed, value in values.items() if value is None] == [1, 2]
    overflow = entries["overflow"]
    assert board["tasks"]["diab"]["best"] == "plain" and overflow["rank"] == 2
    assert (overflow["runs"], overflow["failed"], overflow["metrics"]["test_mse"]["n"]) == (2, 2, 2)
    assert overflow["metrics"]["test_mse"]["values"] == pytest.approx([values[0], values[3]])
    assert [f["seed"] for f in overflow["failures"]] == [1, 2]
    assert all(f["reason"].startswith("finished, but test_mse is nan") for f in overflow["failures"])
    assert re.search(r"overflow +│ +\S+ ± \S+ n=2, 2 failed", printed), printed
    assert re.search(r"plain +│ +\S+ ± \S+ n=4 ", printed), printed
    rows = {row["strategy"]: row for row in csv.DictReader((out / "leaderboard.csv").read_text().splitlines())}
    assert (rows["overflow"]["runs"], rows["overflow"]["failed"]) == ("2", "2")
    assert rows["overflow"]["failures"].count("counted as failed") == 2
    report = (out / "report.html").read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", report)
    assert "2 (2)" in cells and "4 (0)" in cells  # n (failed)
    assert "<th>n (failed)</th>" in report or "n (failed)" in report
    assert "counted as failed" in report


def test_the_reports_n_is_the_number_of_values_behind_the_statistics(tmp_path):
    """A leaderboard.json of an older compare counted a finished run with a NaN metric in `runs`: the report's
    `n (failed)` cell reads the metric's own n, never `runs`."""
    from report_fixtures import SEVEN, fake_comparison

    from trainlab.report import write_report

    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=3, target=None, epochs=2)
    board = json.loads((root / "leaderboard.json").read_text())
    sgd = next(e for e in board["tasks"]["digits"]["strategies"] if e["name"] == "sgd")
    block = sgd["metrics"]["test_accuracy"]
    block.update(values=block["values"][:2], n=2)
    reason = "finished, but test_accuracy is nan (not a finite number): counted as failed"
    sgd.update(runs=3, failed=1, failures=[{"seed": 2, "reason": reason}])
    (root / "leaderboard.json").write_text(json.dumps(board))
    page = write_report([root], tmp_path / "r.html").read_text()
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    assert "2 (1)" in cells and "3 (1)" not in cells and "3 (0)" in cells  # sgd; adam: 3 values, none failed
    assert "n (failed)" in page and reason in page
    del block["n"]  # a board without n: the number of its values
    (root / "leaderboard.json").write_text(json.dumps(board))
    assert "2 (1)" in re.findall(r"<td[^>]*>([^<]*)</td>", write_report([root], tmp_path / "s.html").read_text())
