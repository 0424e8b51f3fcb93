"""What ``trainlab compare`` prints and writes beside its ranking: the performance profile's heading without
--target (it ranks speed alone), the direction of convergence counts (fewer steps is better), the
convergence figures' dispersion (checked against numpy and scipy.stats), the note for a --metric with no
validation counterpart, and ``--quiet``.

Most tests read hand-written run folders (summary.json, metrics.jsonl) through the leaderboard, so the
numbers behind each assertion are known; the --quiet test trains one tiny run."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from compare_configs import iris_base
from rich.console import Console
from scipy import stats as scipy_stats

from trainlab.cli import main
from trainlab.compare import compare
from trainlab.compare.leaderboard import build_leaderboard, target_example
from trainlab.compare.leaderboard_output import print_leaderboard, to_csv
from trainlab.compare.metric_keys import direction_of
from trainlab.compare.run_actions import RunPlan
from trainlab.compare.strategies import NamedStrategy
from trainlab.errors import ConfigError

TARGET = {"metric": "val_accuracy", "value": 0.9, "direction": "max"}


def _run(folder: Path, *, test_accuracy: float, val_accuracy: float, train_time_s: float, steps: int,
         curve: list[float | None], train_loss: float = 0.5, val_loss: float = 0.4) -> None:
    """A finished run's folder: summary.json and one metrics.jsonl record per epoch (epochs 1..len(curve))."""
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({
        "status": "finished", "test": {"accuracy": test_accuracy, "loss": 0.3},
        "val": {"accuracy": val_accuracy, "loss": val_loss}, "train_time_s": train_time_s, "steps": steps,
        "epochs_run": len(curve), "best_epoch": 1, "samples_per_s": 100.0}))
    lines = [{"epoch": e, "step": 10 * e, "elapsed_s": train_time_s * e / len(curve), "train_loss": train_loss,
              "val_loss": val_loss, "val_accuracy": v} for e, v in enumerate(curve, start=1)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def _plans(root: Path, runs: dict[tuple[str, str, int], dict]) -> list[RunPlan]:
    plans = []
    for (task, strategy, seed), run in runs.items():
        path = root / task / strategy / f"seed-{seed}"
        _run(path, **run)
        plans.append(RunPlan(task, strategy, seed, {}, path))
    return plans


def _printed(board: dict) -> str:
    buffer = io.StringIO()
    print_leaderboard(board, Console(file=buffer, width=250))
    return buffer.getvalue()


# --------------------------------------------------------------------------- 1. the profile without --target

@pytest.fixture
def two_tasks(tmp_path: Path) -> list[RunPlan]:
    """'full' trains fastest and learns nothing (near chance); 'mini' is slower and good, on both tasks."""
    runs = {}
    for task in ("wine", "digits"):
        for seed in (0, 1):
            runs[(task, "full", seed)] = {"test_accuracy": 0.13 + seed / 100, "val_accuracy": 0.12,
                                          "train_time_s": 0.01 + seed / 1000, "steps": 8,
                                          "curve": [0.10, 0.12]}
            runs[(task, "mini", seed)] = {"test_accuracy": 0.95 + seed / 100, "val_accuracy": 0.94,
                                          "train_time_s": 0.05 + seed / 1000, "steps": 32,
                                          "curve": [0.85, 0.94]}
    return _plans(tmp_path, runs)


def test_without_target_the_profile_says_it_ranks_speed_alone_and_how_to_rank_time_to_a_quality(two_tasks):
    """It printed "(median train_time_s (no --target given)): geometric mean of time ratios to the best" with
    'full 1': the fastest shown as best though it scored near chance."""
    board = build_leaderboard(two_tasks, "test_accuracy")
    assert board["tasks"]["digits"]["best"] == "mini"
    assert board["profile"]["geomean_ratio"]["full"] == pytest.approx(1.0)  # the profile itself is unchanged
    assert "train_time_s" in board["profile"]["measure"].split()  # the report names the measure by this key
    printed = _printed(board)
    assert ("performance profile over 2 tasks on training time alone, whatever test_accuracy (no --target given): "
            "geometric mean of median train_time_s ratios to the fastest") in printed
    assert "to rank the time each strategy takes to reach a quality: --target val_accuracy=0.9" in printed
    assert "ratios to the best" not in printed
    # the fastest first, whatever the ranking (mini ranks first on accuracy)
    assert printed.index("  full ") < printed.index("  mini ")
    by_time = _printed(build_leaderboard(two_tasks, "train_time_s"))
    assert "on training time, the ranking metric (no --target given)" in by_time and "whatever" not in by_time


def test_with_target_the_profile_is_of_the_time_to_reach_it(two_tasks):
    board = build_leaderboard(two_tasks, "test_accuracy", target=TARGET)
    printed = _printed(board)
    assert ("performance profile over 2 tasks (median time to val_accuracy=0.9): geometric mean of time ratios "
            "to the fastest to reach it") in printed
    assert "training time alone" not in printed and "--target val_accuracy" not in printed
    assert board["profile"]["geomean_ratio"] == {"full": None, "mini": pytest.approx(1.0)}  # full never got there


@pytest.mark.parametrize(("metric", "example"), [
    ("test_accuracy", "val_accuracy=0.9"), ("test_f1_macro", "val_f1_macro=0.9"),
    ("test_mse", "val_mse=<value>"), ("test_r2", "val_r2=<value>"), ("train_time_s", "val_loss=<value>")])
def test_the_suggested_target_fits_the_metric(metric, example):
    assert target_example(metric) == example


# --------------------------------------------------------------------------- 2. direction of convergence counts

@pytest.mark.parametrize(("metric", "direction"), [
    ("steps", "min"), ("best_epoch", "min"), ("epochs_run", "min"), ("best_val_epoch", "min"),
    ("steps_to_target", "min"), ("train_time_s", "min"), ("test_loss", "min"), ("test_per_class_error", "min"),
    ("samples_per_s", "max"), ("steps_per_s", "max"), ("samples_per_epoch", "max"), ("test_accuracy", "max"),
    ("test_r2", "max"), ("test_mymetrics:stepwise_score", "max")])
def test_convergence_counts_are_minimised_and_rates_maximised(metric, direction):
    assert direction_of(metric) == direction


def test_metric_steps_ranks_the_fewest_steps_first_and_direction_overrides(two_tasks):
    """--metric steps ranked 'max': the strategy that needed 4x the steps was best."""
    board = build_leaderboard(two_tasks, "steps")
    assert board["direction"] == "min"
    assert [e["name"] for e in board["tasks"]["wine"]["strategies"]] == ["full", "mini"]
    board = build_leaderboard(two_tasks, "steps", direction="max")
    assert [e["name"] for e in board["tasks"]["wine"]["strategies"]] == ["mini", "full"]


# --------------------------------------------------------------------------- 3. convergence dispersion

CURVES = {  # seed -> validation accuracy by epoch 1..n
    0: [0.50, 0.80, 0.78],
    1: [0.60, 0.70, 0.90, 0.95, 0.97, 0.99],
    2: [0.99, 0.95],
    3: [0.40, 0.60, 0.70, 0.75, 0.80],
    4: [None, None],  # NaN written as null: no best epoch, no curve mean
}


def _expected_figures(seed: int) -> tuple[int | None, float | None]:
    """best_val_epoch and val_curve_mean written out with numpy: argmax, and the trapezoid rule over the span."""
    points = [(e, v) for e, v in enumerate(CURVES[seed], start=1) if v is not None]
    if not points:
        return None, None
    x, y = np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points])
    area = np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2)
    return int(x[np.argmax(y)]), float(area / (x[-1] - x[0]))


def _reference(values: list[float | None], low: float = -math.inf, high: float = math.inf) -> dict:
    """n, mean, std (ddof=1), the Student-t 95% interval clipped to [low, high], and the IQM, by scipy."""
    x = np.array([v for v in values if v is not None], dtype=float)
    lo, hi = scipy_stats.t.interval(0.95, df=x.size - 1, loc=x.mean(), scale=scipy_stats.sem(x))
    return {"n": x.size, "mean": x.mean(), "std": x.std(ddof=1), "ci95": [max(lo, low), min(hi, high)],
            "iqm": scipy_stats.trim_mean(x, 0.25), "clipped": lo < low or hi > high}


@pytest.fixture
def curves(tmp_path: Path) -> list[RunPlan]:
    runs = {}
    for seed, curve in CURVES.items():
        runs[("task", "a", seed)] = {"test_accuracy": 0.80 + seed / 50, "val_accuracy": 0.85 + seed * seed / 200,
                                     "train_time_s": 1.0, "steps": 10 * len(curve), "curve": curve,
                                     "train_loss": 0.2 + seed / 10, "val_loss": 0.5 - seed / 30}
        runs[("task", "b", seed)] = {"test_accuracy": 0.70, "val_accuracy": 0.70, "train_time_s": 1.0,
                                     "steps": 10, "curve": [0.6, 0.7]}
    return _plans(tmp_path, runs)


def test_each_convergence_figure_has_the_leaderboards_dispersion_as_scipy_computes_it(curves):
    """The block held only mean, median and values: no std, no interval, unlike every metric."""
    board = build_leaderboard(curves, "test_accuracy")
    block = next(e for e in board["tasks"]["task"]["strategies"] if e["name"] == "a")["convergence"]
    expected = [_expected_figures(seed) for seed in CURVES]
    assert block["best_val_epoch"]["values"] == [best for best, _ in expected]
    assert block["val_curve_mean"]["values"] == pytest.approx([mean for _, mean in expected])
    gaps = [0.85 + s * s / 200 - (0.80 + s / 50) for s in CURVES]
    assert block["gap_val_test"]["values"] == pytest.approx(gaps)
    assert block["best_val_epoch"]["seeds"] == list(CURVES)
    bounds = {"best_val_epoch": (0.0, math.inf), "val_curve_mean": (0.0, 1.0)}  # an epoch; an accuracy's mean
    clipped = set()
    for figure in ("best_val_epoch", "val_curve_mean", "gap_loss", "gap_val_test"):
        got = block[figure]
        want = _reference(got["values"], *bounds.get(figure, (-math.inf, math.inf)))
        assert got["n"] == want["n"], figure
        assert (got["mean"], got["std"], got["iqm"]) == pytest.approx((want["mean"], want["std"], want["iqm"]))
        assert got["ci95"] == pytest.approx(want["ci95"]), figure
        assert got["ci_method"].startswith("t") and ("clipped" in got["ci_method"]) == want["clipped"]
        assert got["iqm_ci95"][0] <= got["iqm"] <= got["iqm_ci95"][1]
        clipped |= {figure} if want["clipped"] else set()
    assert clipped == {"best_val_epoch", "val_curve_mean"}  # both bounds are exercised
    assert block["best_val_epoch"]["n"] == 4  # seed 4 has no finite validation value


def test_leaderboard_csv_has_each_convergence_figures_statistics(curves):
    board = build_leaderboard(curves, "test_accuracy")
    rows = {row["strategy"]: row for row in csv.DictReader(io.StringIO(to_csv(board)))}
    for entry in board["tasks"]["task"]["strategies"]:
        row, block = rows[entry["name"]], entry["convergence"]
        assert row["convergence_val_metric"] == "val_accuracy"
        for figure in ("best_val_epoch", "val_curve_mean", "gap_loss", "gap_val_test"):
            ci = block[figure]["ci95"]
            assert int(row[f"{figure}_n"]) == block[figure]["n"]
            assert [float(row[f"{figure}_{k}"]) for k in ("mean", "std", "ci95_low", "ci95_high")] == \
                [block[figure]["mean"], block[figure]["std"], ci[0], ci[1]]
    printed = _printed(board)
    assert printed.count("convergence per strategy (best_val_epoch, val_curve_mean, gap_loss, gap_val_test: n, "
                         "mean, std, 95% CI): in leaderboard.csv and under 'convergence' in leaderboard.json") == 1


# --------------------------------------------------------------------------- 4. a metric with no validation curve

@pytest.mark.parametrize("metric", ["train_time_s", "steps"])
def test_a_summary_metric_says_its_figures_follow_val_loss_and_have_no_gap_val_test(curves, metric):
    """val_metric quietly became val_loss and gap_val_test was null in every run, with no note."""
    board = build_leaderboard(curves, metric)
    note = (f"--metric {metric} has no validation curve or test value: best_val_epoch and val_curve_mean follow "
            "val_loss, and gap_val_test is null in every run (a test_ --metric has all three)")
    for entry in board["tasks"]["task"]["strategies"]:
        block = entry["convergence"]
        assert block["val_metric"] == "val_loss" and block["gap_val_test"]["n"] == 0
        assert block["note"].startswith(note)
    printed = _printed(board)
    assert printed.count(note) == 1  # once under the table, not once per strategy
    assert f"  note: {note}" in printed


def test_a_split_metric_has_no_such_note(curves):
    board = build_leaderboard(curves, "test_accuracy")
    b = next(e for e in board["tasks"]["task"]["strategies"] if e["name"] == "b")
    assert "no validation curve" not in b["convergence"].get("note", "") and "no validation curve" not in _printed(board)


# --------------------------------------------------------------------------- 5. --quiet

@pytest.fixture
def files(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(iris_base(epochs=1)))
    (tmp_path / "strategies.yaml").write_text(yaml.safe_dump({"strategies": {"a": None}}))
    return tmp_path


def test_compare_quiet_drops_the_progress_and_keeps_the_leaderboard(files, capsys):
    """`trainlab compare ... --quiet` was refused: unrecognized arguments: --quiet."""
    args = ["compare", "iris.yaml", "--strategies", "strategies.yaml", "--seeds", "1", "--jobs", "1", "--out", "out"]
    assert main([*args, "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "[1/1]" not in out and "compare: done" not in out  # no line per run, no panel
    assert "iris: ranked by test_accuracy (max), 1 seed" in out  # the final result, as train --quiet's summary
    assert "leaderboard: out/leaderboard.json, out/leaderboard.csv" in out
    assert err == ""
    assert main(args) == 0  # without it: the same leaderboard, the runs found done
    assert "1 of 1 runs already done in their folders: skipped" in capsys.readouterr().out


def test_python_quiet_prints_no_table_unless_asked(files, capsys):
    strategies = [NamedStrategy("a", {})]
    compare({"iris": iris_base(epochs=1)}, strategies, "out", seeds=1, jobs=1, live=False, quiet=True)
    assert "ranked by" not in capsys.readouterr().out
    compare({"iris": iris_base(epochs=1)}, strategies, "out", seeds=1, jobs=1, live=False, quiet=True,
            show_leaderboard=True)
    assert "iris: ranked by test_accuracy" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"^show_leaderboard must be True, False or None; got 'yes'$"):
        compare({"iris": iris_base(epochs=1)}, strategies, "out", seeds=1, show_leaderboard="yes")
