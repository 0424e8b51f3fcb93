"""trainlab compare refuses before any run what every run would fail or ignore, and exits as documented:
2 for a bad strategy, --metric or --target (no run folder made), 4 when no run finished, 143 on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from tests.child_env import iris_on_file, skip_where_compare_spawns, with_repo_first
from tests.test_compare import BASE, ROOT
from trainlab.cli import main
from trainlab.compare import compare, stats
from trainlab.compare.strategies import load_strategies, parse_strategies, validate_strategies
from trainlab.errors import ConfigError

# no metrics list and no data.task: the task (regression) is read from the data before any run
REGRESSION = {**BASE, "name": "diabetes", "data": {"source": "diabetes"}, "model": {"name": "linear"},
              "strategy": {**BASE["strategy"], "loss": "mse", "epochs": 2}, "metrics": None}


def _compare(tmp_path: Path, base: dict, strategies: dict | str, *flags: str) -> tuple[int, Path]:
    """``trainlab compare`` in process: (exit code, --out folder)."""
    base_file, strategies_file, out = tmp_path / "base.yaml", tmp_path / "strategies.yaml", tmp_path / "out"
    base_file.write_text(yaml.safe_dump(base))
    strategies_file.write_text(strategies if isinstance(strategies, str) else yaml.safe_dump(strategies))
    code = main(["compare", str(base_file), "--strategies", str(strategies_file), "--seeds", "1", "--jobs", "1",
                 "--out", str(out), *flags])
    return code, out


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


# --------------------------------------------------------------------------- refused before any run


def test_weight_decay_is_placed_as_the_run_places_it(tmp_path: Path, capsys):
    decay = {"strategies": {"wd": {"strategy.regularization.weight_decay": 0.01}}}
    code, out = _compare(tmp_path, BASE, decay)  # adam: its weight_decay is L2, not decoupled
    line = _one_error_line(capsys)
    assert code == 2 and not out.exists()
    assert line.startswith("error: strategy 'wd': strategy.regularization.weight_decay (decoupled) has no home "
                           "in optimizer 'adam'")
    adamw = {**BASE, "strategy": {**BASE["strategy"], "optimizer": {"name": "adamw", "lr": 0.01}}}
    validate_strategies({"iris": adamw}, parse_strategies(decay))  # decoupled: placed, accepted


def test_a_metric_no_run_records_is_refused_with_a_did_you_mean(tmp_path: Path, capsys):
    code, out = _compare(tmp_path, BASE, {"strategies": {"a": None}}, "--metric", "test_acuracy")
    line = _one_error_line(capsys)
    assert code == 2 and not out.exists()
    assert line.startswith("error: --metric 'test_acuracy' is not recorded by the runs of task 'base'; "
                           "did you mean 'test_accuracy'? (recorded: test_loss, test_accuracy, val_loss")


def test_a_built_in_metric_the_config_does_not_list_is_said_to_be_added(tmp_path: Path, capsys):
    """--metric test_roc_auc was offered 'test_recall'; a metric of another task keeps the did-you-mean."""
    code, out = _compare(tmp_path, BASE, {"strategies": {"a": None}}, "--metric", "test_roc_auc")
    line = _one_error_line(capsys)
    assert code == 2 and not out.exists()
    assert line.startswith("error: --metric 'test_roc_auc' is not recorded by the runs of task 'base'; add "
                           "'roc_auc' to the run's metrics (metrics: [...] in a config, metrics=[...] in fit) to "
                           "record it (recorded: ")
    code, out = _compare(tmp_path, REGRESSION, {"strategies": {"a": None}}, "--metric", "test_accuracy")
    assert code == 2 and "add 'accuracy'" not in _one_error_line(capsys)


def test_the_default_metric_on_a_regression_task_is_refused_before_any_run(tmp_path: Path, capsys):
    code, out = _compare(tmp_path, REGRESSION, {"strategies": {"a": None}})
    line = _one_error_line(capsys)
    assert code == 2 and not out.exists()
    assert "--metric 'test_accuracy' is not recorded by the runs of task 'base'" in line
    assert "test_mse, test_mae, test_r2" in line and line.endswith("pass --metric with one of these")


def test_a_metric_only_some_strategies_record_names_the_strategy(tmp_path: Path):
    strategies = parse_strategies({"strategies": {"a": None, "f1-only": {"metrics": ["f1"]}}})
    with pytest.raises(ConfigError, match="^metric 'test_accuracy' is not recorded by strategy 'f1-only' on "
                                          "task 'iris'"):
        compare({"iris": BASE}, strategies, tmp_path / "out", seeds=1, jobs=1, quiet=True)
    assert not (tmp_path / "out").exists()


def test_an_unknown_target_metric_is_refused_with_a_did_you_mean(tmp_path: Path, capsys):
    code, out = _compare(tmp_path, BASE, {"strategies": {"a": None}}, "--target", "val_acc=0.9")
    line = _one_error_line(capsys)
    assert code == 2 and not out.exists()
    assert line == ("error: --target 'val_acc' is not recorded by the runs of task 'base'; did you mean "
                    "'val_accuracy'? (recorded: val_loss, val_accuracy)")


@pytest.mark.parametrize("strategies, message", [
    ({"strategies": {"a": {"seed": 5}}}, "strategy 'a' sets 'seed', which compare sets for every run: each run's "
                                         "seed is k of --seeds"),
    ({"grid": {"seed": [1, 2]}}, "strategy 'seed=1' sets 'seed'"),
    ({"strategies": {"a": {"name": "x"}}}, "strategy 'a' sets 'name'"),
])
def test_keys_compare_sets_itself_are_refused_in_a_strategy(strategies, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_strategies(strategies)


def test_set_seed_is_refused(tmp_path: Path, capsys):
    code, out = _compare(tmp_path, BASE, {"strategies": {"a": None}}, "--set", "seed=3")
    assert code == 2 and not out.exists()
    assert _one_error_line(capsys).startswith("error: --set seed=3: compare sets 'seed' for every run")


def test_a_strategy_name_too_long_for_its_runs_is_refused_naming_the_strategy(tmp_path: Path, capsys):
    """A run is named ``<task>-<strategy>``: a 234-character strategy name made a 239-character run name,
    refused as "config key 'name' ... got 239 characters", a key the user never set."""
    long_name = "adam_with_a_very_long_descriptive_name_" * 6
    code, out = _compare(tmp_path, BASE, {"strategies": {long_name: None, "s": {"strategy.batch_size": 8}}})
    assert code == 2 and not out.exists()
    assert _one_error_line(capsys) == (
        "error: strategy 'adam_with_a_very_long_descriptive_name_a...': name too long (234 characters); at most 195 "
        "with task 'base' (each run is named <task>-<strategy>, at most 200 characters)")
    fits = "x" * 195  # base-xxx... is 200 characters: accepted
    from trainlab.compare.strategies import NamedStrategy, check_run_names

    check_run_names(["base"], [NamedStrategy(fits, {})])
    with pytest.raises(ConfigError, match="at most 188 with task 'longer_task'"):  # the longest task bounds it
        check_run_names(["base", "longer_task"], [NamedStrategy(fits, {})])


def test_a_grid_of_a_million_points_is_refused_at_once():
    import time

    grid = {f"k{i}": list(range(10)) for i in range(6)}
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"the grid makes 1,000,000 strategies \(10 x 10 x 10 x 10 x 10 x 10 "
                                          r"values\); a comparison runs at most 1,000"):
        parse_strategies({"grid": grid})
    assert time.perf_counter() - started < 1  # counted, not listed
    named = {"strategies": {f"s{i}": {} for i in range(600)}, "grid": {"a": list(range(20)), "b": list(range(25))}}
    with pytest.raises(ConfigError, match="defines 1,100 strategies; a comparison runs at most 1,000"):
        parse_strategies(named)


@pytest.mark.parametrize("text, message", [
    ("", "is empty; a strategies file holds 'strategies: {name: {config key: value}}' and/or 'grid: "),
    ("# only a comment\n", "is empty; a strategies file holds"),
    ("- a\n- b\n", "must be a mapping with 'strategies: {name: {config key: value}}' and/or 'grid: "
                   "{config key: [values]}'; got list"),
])
def test_an_empty_or_shapeless_strategies_file_says_what_it_must_hold(tmp_path: Path, text, message):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_strategies(path)
    assert "data, model and strategy" not in str(caught.value)


# --------------------------------------------------------------------------- exit statuses after runs


def test_no_finished_run_exits_4_naming_where_the_reasons_are(tmp_path: Path, capsys):
    blowups = {"strategies": {"huge": {"strategy.optimizer.lr": 1e30}, "huger": {"strategy.optimizer.lr": 1e35}}}
    code, out = _compare(tmp_path, BASE, blowups)
    line = _one_error_line(capsys)
    assert code == 4
    assert line == (f"error: no run finished: 2 of 2 runs failed, all for the same reason: diverged: training "
                    f"diverged at step 2: non-finite loss (nan); the reasons are under 'failures' in "
                    f"{out / 'leaderboard.json'} (and in each run folder's compare-error.json, summary.json or run.json)")
    board = json.loads((out / "leaderboard.json").read_text())
    assert all("diverged" in f["reason"] for e in board["tasks"]["base"]["strategies"] for f in e["failures"])


def test_no_finished_run_for_one_shared_reason_says_it_in_the_line(tmp_path: Path, capsys):
    """A target column of numbers and text fails every run the same way (the data is read in the runs when the
    base names its metrics): the line says why, not only where the reasons are. (A data file not found, or a
    target column the header lacks, is refused before any run: tests/test_compare_precheck.py.)"""
    rows = "".join(f"{i},{i % 3},{'x' if i == 7 else i % 2}\n" for i in range(30))
    (tmp_path / "table.csv").write_text("a,b,y\n" + rows)
    base = {**BASE, "data": {"source": "csv", "path": str(tmp_path / "table.csv"), "target": "y"}}
    code, out = _compare(tmp_path, base, {"strategies": {"a": None, "b": {"strategy.optimizer.lr": 0.02}}})
    line = _one_error_line(capsys)
    assert code == 3  # the data's doing, one reason for every run: exit 3 as train's (a review: it was 4)
    assert line.startswith("error: no run finished: 2 of 2 runs failed, all for the same reason: DataError: ")
    assert "'y'" in line
    assert line.endswith(f"the reasons are under 'failures' in {out / 'leaderboard.json'} (and in each run "
                         "folder's compare-error.json, summary.json or run.json)")


def test_a_strategy_every_run_of_which_its_config_refuses_exits_2_after_ranking_the_rest(tmp_path: Path, capsys):
    """class_weights of 2 numbers for iris's 3 classes: only the data says so, in the runs; the comparison ranks
    the other strategy and exits 2 naming the refused one (it was exit 0 with 'all runs failed' in the table)."""
    code, out = _compare(tmp_path, BASE, {"strategies": {
        "plain": None, "weighted": {"strategy.loss": {"name": "cross_entropy", "class_weights": [1, 2]}}}})
    err = capsys.readouterr().err
    assert code == 2
    line, = [line for line in err.splitlines() if line.startswith("error: ")]
    assert line.startswith("error: strategy 'weighted': every run was refused: strategy.loss: cross_entropy: "
                           "class_weights has 2 entries but the model outputs 3")
    assert f"the leaderboard, {out / 'leaderboard.json'}, ranks the other strategies" in line
    board = json.loads((out / "leaderboard.json").read_text())
    ranked = {e["name"]: e["runs"] for table in board["tasks"].values() for e in table["strategies"]}
    assert ranked == {"plain": 1, "weighted": 0}
    # alone, the same strategy exits 2 too (no run finished, one reason: the config's); two strategies refused
    # for other reasons, too, naming both (it was exit 4)
    code, _ = _compare(tmp_path, BASE, {"strategies": {
        "weighted": {"strategy.loss": {"name": "cross_entropy", "class_weights": [1, 2]}}}})
    assert code == 2 and "error: no run finished: 1 of 1 runs failed" in capsys.readouterr().err
    two = {"w2": {"strategy.loss": {"name": "cross_entropy", "class_weights": [1, 2]}},
           "w4": {"strategy.loss": {"name": "cross_entropy", "class_weights": [1, 2, 3, 4]}}}
    code, _ = _compare(tmp_path, BASE, {"strategies": two})
    assert code == 2
    assert "runs failed (refused on their config or data: 'w2', 'w4')" in capsys.readouterr().err
    code, out = _compare(tmp_path, BASE, {"strategies": {"plain": None, **two}})
    line, = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and line.startswith("error: strategies 'w2', 'w4': every run was refused: 'w2': strategy.loss: ")


def test_a_regression_leaderboard_ranks_lower_is_better_first(tmp_path: Path):
    strategies = parse_strategies({"strategies": {"crawl": {"strategy.optimizer.lr": 1e-5},
                                                  "good": {"strategy.optimizer.lr": 0.3}}})
    board = compare({"diabetes": REGRESSION}, strategies, tmp_path / "reg", seeds=2, jobs=1, metric="test_mse",
                     live=False, quiet=True)
    assert board["direction"] == "min"
    entries = board["tasks"]["diabetes"]["strategies"]
    assert [e["name"] for e in entries] == ["good", "crawl"] and board["tasks"]["diabetes"]["best"] == "good"
    assert entries[0]["metrics"]["test_mse"]["mean"] < entries[1]["metrics"]["test_mse"]["mean"]


def test_a_comparison_after_an_interrupted_one_in_the_same_process_runs(tmp_path: Path, monkeypatch):
    """--jobs 1 runs in this process: the stop flag an interruption leaves must not skip the next comparison."""
    from trainlab.compare import runner

    monkeypatch.setattr(runner, "_stop_requested", True)  # as an interrupted in-process comparison leaves it
    strategies = parse_strategies({"strategies": {"fast": {"strategy.optimizer.lr": 0.1}}})
    board = compare({"diabetes": REGRESSION}, strategies, tmp_path / "again", seeds=1, jobs=1, metric="test_mse",
                     live=False, quiet=True)
    assert board["tasks"]["diabetes"]["strategies"][0]["runs"] == 1

def _die(*args):
    os._exit(9)  # a worker killed under its run (as the kernel's OOM killer would)


def test_a_run_whose_worker_died_is_listed_as_failed_and_run_again_next_time(tmp_path: Path, monkeypatch):
    from trainlab.compare import runner

    skip_where_compare_spawns("this test's monkeypatched runner.execute")
    monkeypatch.setattr(runner, "execute", _die)
    strategies = parse_strategies({"strategies": {"fast": {"strategy.optimizer.lr": 0.1}}})
    board = compare({"diabetes": REGRESSION}, strategies, tmp_path / "dead", seeds=1, jobs=2, metric="test_mse",
                     live=False, quiet=True)
    entry = board["tasks"]["diabetes"]["strategies"][0]
    assert entry["failed"] == 1 and entry["failures"][0]["reason"].startswith("worker died")
    from trainlab.compare.run_actions import plan_runs

    plan = plan_runs({"diabetes": REGRESSION}, strategies, [0], tmp_path / "dead")[0]
    assert runner.run_action(plan)[0] != "failed"  # a death need not recur: the next invocation retries it

def test_a_metric_of_an_empty_split_is_an_error_after_the_runs_with_the_board_kept(tmp_path: Path, capsys):
    """No test split: the runs record no test_ keys, which only the finished runs can show."""
    base = {**REGRESSION, "data": {"source": "diabetes", "test_fraction": 0.0, "standardize_target": True}}
    code, out = _compare(tmp_path, base, {"strategies": {"fast": {"strategy.optimizer.lr": 0.1}}},
                         "--metric", "test_mse")
    line = _one_error_line(capsys)
    assert code == 2 and "--metric 'test_mse' is in none of the finished runs' summaries" in line
    assert "they have: steps, train_time_s, val_loss, val_mae, val_mse, val_r2" in line
    assert (out / "leaderboard.json").is_file()

@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_checkpoints_and_exits_143(tmp_path: Path, jobs: str):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(iris_on_file({**BASE, "strategy": {**BASE["strategy"], "epochs": 100_000}})))
    strategies = tmp_path / "s.yaml"
    strategies.write_text("strategies:\n  a:\n  b: {strategy.optimizer.lr: 0.02}\n")
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "trainlab.cli", "compare", str(base), "--strategies",
                                str(strategies), "--seeds", "1", "--jobs", jobs, "--out", str(out)],
                               env={**os.environ, "PYTHONPATH": with_repo_first(ROOT)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list(out.glob("runs/*/*/*/run.json")):
            time.sleep(0.05)
        assert time.time() < deadline, "no run started within 120 s"
        time.sleep(1.0)  # inside the first run's training loop
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:  # not left training its 100,000 epochs on the CI machine's cores when the test fails
        if process.poll() is None:
            process.kill()  # its pool workers die with it (pool._pin_worker)
            process.communicate()
    assert process.returncode == 143, err
    last = err.strip().splitlines()[-1]
    # the runs in progress checkpointed on their way out: a rerun resumes them, and the line counts them
    assert list(out.glob("runs/*/*/*/checkpoint/step-*")), "no checkpoint written"
    waiting = [json.loads(p.read_text())["status"] for p in out.glob("runs/*/*/*/run.json")].count("interrupted")
    assert waiting >= 1 and last.startswith(f"error: interrupted: {waiting} run{'s' if waiting > 1 else ''} "
                                            "checkpointed; run the same command again"), last


def test_the_interrupt_line_counts_the_runs_waiting_at_a_checkpoint(tmp_path: Path):
    """Read from the run folders (a pool's stopped workers report nothing back): a run not started, or one
    that finished before the interrupt, is not counted."""
    from trainlab.compare.run_actions import RunPlan
    from trainlab.compare.runner import interruption

    plans = []
    for name, status in (("a", "interrupted"), ("b", "finished"), ("c", None), ("d", "interrupted")):
        folder = tmp_path / name
        folder.mkdir()
        if status is not None:
            (folder / "run.json").write_text(json.dumps({"status": status}))
        plans.append((RunPlan("t", name, 0, {}, folder), "new"))
    error = interruption(plans, signal.SIGTERM)
    assert str(error) == "interrupted: 2 runs checkpointed; run the same command again to finish the comparison"
    assert error.exit_code == 143
    assert str(interruption(plans[1:3], signal.SIGINT)).startswith("interrupted: run the same command")
    assert str(interruption(plans[:1], signal.SIGINT)).startswith("interrupted: 1 run checkpointed;")


# --------------------------------------------------------------------------- statistics


def test_identical_values_report_the_percentile_interval():
    assert stats.bootstrap_interval([0.7, 0.7, 0.7]) == ((0.7, 0.7), "bootstrap-percentile")


def _entry(name: str, values: list[float], failed: int = 0) -> dict:
    mean = sum(values) / len(values) if values else None
    return {"name": name, "failed": failed,
            "metrics": {"test_accuracy": {"mean": mean, "values": values, "seeds": list(range(len(values)))}}}


def test_a_tie_for_first_is_said_as_a_tie_not_a_win():
    """Two strategies equal on every seed: the table called the first in the file 'best' and the other
    'indistinguishable p=1', with no word that rank 1 was the file's order."""
    from trainlab.compare.leaderboard import first_place_tie, rank_and_test

    entries = [_entry("adam", [0.9912, 0.9912, 0.9912]), _entry("worse", [0.95, 0.96, 0.94]),
               _entry("sgd_cos", [0.9912, 0.9912, 0.9912]), _entry("lucky", [0.9912], failed=2)]
    rank_and_test(entries, "test_accuracy", "max")
    assert [e["name"] for e in entries][:2] == ["adam", "sgd_cos"]
    assert first_place_tie("wine", entries, "test_accuracy", "max") == (
        "task 'wine': 'adam', 'sgd_cos' tie for first on test_accuracy (mean 0.9912); 'adam' is ranked first by its "
        "place in the strategies file, not by its score")
    clear = [_entry("adam", [0.99, 0.98, 0.99]), _entry("sgd", [0.9912, 0.9912, 0.9912])]
    rank_and_test(clear, "test_accuracy", "max")
    assert first_place_tie("wine", clear, "test_accuracy", "max") is None


def test_a_lucky_survivor_of_failed_seeds_never_ranks_first():
    from trainlab.compare.leaderboard import rank_and_test

    entries = [_entry("lucky", [0.99], failed=4), _entry("flaky", [0.97, 0.98, 0.96], failed=2),
               _entry("steady", [0.90, 0.91, 0.92, 0.90, 0.91]), _entry("steady-too", [0.88, 0.89, 0.90, 0.88, 0.9])]
    rank_and_test(entries, "test_accuracy", "max")
    assert [e["name"] for e in entries] == ["steady", "steady-too", "flaky", "lucky"]
    assert entries[0]["vs_best"]["verdict"] == "best" and entries[1]["vs_best"]["test"] is not None
    assert entries[3]["vs_best"]["verdict"] == "too few seeds"


def test_a_loss_that_cannot_fit_the_configs_task_is_refused_before_any_run(tmp_path: Path, capsys):
    base = {**REGRESSION, "data": {"source": "diabetes", "task": "regression"}}
    code, out = _compare(tmp_path, base, {"strategies": {"ce": {"strategy.loss": "cross_entropy"}}}, "--metric", "test_mse")
    assert code == 2 and not (out / "runs").exists()
    assert "strategy 'ce': cross_entropy is a single-label classification loss but the data is a regression task" \
        in _one_error_line(capsys)


def test_a_strategy_whose_loss_cannot_fit_the_datas_inferred_task_is_refused_before_any_run(tmp_path: Path, capsys):
    """data.task left out: the data is read for its task (iris: multiclass), once, before the runs."""
    base = {**REGRESSION, "data": {"source": "iris"}, "strategy": {**REGRESSION["strategy"], "loss": "cross_entropy"}}
    code, out = _compare(tmp_path, base, {"strategies": {"ce": {}, "mse": {"strategy.loss": "mse"}}})
    assert code == 2 and not (out / "runs").exists()
    assert "strategy 'mse': mse is a regression loss but the data is a multiclass classification task" \
        in _one_error_line(capsys)


def test_a_strategy_leaving_a_data_source_without_its_file_is_refused_before_any_run(tmp_path: Path, capsys):
    code, out = _compare(tmp_path, REGRESSION, {"strategies": {"csv": {"data.source": "csv"}}}, "--metric", "test_mse")
    assert code == 2 and not (out / "runs").exists()
    assert "strategy 'csv': data source 'csv' needs data.path, data.target (not set)" in _one_error_line(capsys)


def test_a_bad_set_value_is_blamed_on_the_base_config_not_the_first_strategy(tmp_path: Path, capsys):
    code, _ = _compare(tmp_path, REGRESSION, {"strategies": {"a": {"strategy.batch_size": 8}, "b": {}}},
                       "--metric", "test_mse", "--set", "strategy.epochs=0")
    assert code == 2
    assert _one_error_line(capsys).startswith("error: the base config of task 'base' (with any --set): config key "
                                              "'strategy.epochs'")


def test_compare_and_report_read_a_damaged_metrics_jsonl_alike(tmp_path):
    from trainlab.compare.run_record import read_metrics_lines
    from trainlab.report.sources import read_metrics

    lines = ['{"epoch": 1, "step": 5, "val_loss": 0.5}', '{"event": "divergence", "step": 6}', "[1, 2]",
             '{"epoch": 2, "step": 10, "val_\ufffd": 1}', '{"epoch": 3, "step": 15, "val_lo']  # a list, a torn tail
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    curves, events = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in curves] == [5, 10] and events == [{"event": "divergence", "step": 6}]
    assert read_metrics_lines(tmp_path, "the test").records == curves


def _block_entry(name: str, values: list[float], failed: int = 0, metric: str = "test_accuracy") -> dict:
    from trainlab.compare.leaderboard import metric_block

    return {"name": name, "failed": failed, "metrics": {metric: metric_block(values, list(range(len(values))), metric)}}


def test_a_strategy_better_than_the_best_on_the_shared_seeds_is_called_better_not_worse():
    """b beats a on every seed both finished, but one of b's seeds diverged, so b ranks below a."""
    from trainlab.compare.leaderboard import rank_and_test

    a, b, c = [0.80, 0.81, 0.82], [0.95, 0.97, 0.96], [0.60, 0.62, 0.61]
    entries = [_block_entry("a", a), _block_entry("b", b, failed=1), _block_entry("c", c)]
    rank_and_test(entries, "test_accuracy", "max")
    by_name = {e["name"]: e for e in entries}
    assert [e["name"] for e in entries] == ["a", "c", "b"]
    better, worse = by_name["b"]["vs_best"], by_name["c"]["vs_best"]
    assert better["p"] == pytest.approx(sps.ttest_rel(b, a).pvalue) and better["p_holm"] < 0.05
    assert better["verdict"] == "better" and better["prob_improvement"] == 1.0
    assert worse["p"] == pytest.approx(sps.ttest_rel(c, a).pvalue) and worse["p_holm"] < 0.05
    assert worse["verdict"] == "worse" and worse["prob_improvement"] == 0.0


def test_a_lower_loss_than_the_best_on_the_shared_seeds_is_better():
    from trainlab.compare.leaderboard import rank_and_test

    entries = [_block_entry("steady", [0.50, 0.52, 0.51], metric="test_loss"),
               _block_entry("flaky", [0.20, 0.23, 0.21], failed=2, metric="test_loss")]
    rank_and_test(entries, "test_loss", "min")
    flaky = entries[1]["vs_best"]
    assert entries[1]["name"] == "flaky" and flaky["p"] == pytest.approx(
        sps.ttest_rel([0.20, 0.23, 0.21], [0.50, 0.52, 0.51]).pvalue)
    assert flaky["verdict"] == "better" and flaky["prob_improvement"] == 1.0


def test_means_equal_up_to_round_off_keep_the_files_order():
    from trainlab.compare.leaderboard import rank_and_test

    first, second = [0.85, 0.8, 0.9], [0.8, 0.9, 0.85]
    assert np.mean(first) != np.mean(second)  # the same three numbers, summed in another order
    for names in (["b", "a"], ["a", "b"]):
        entries = [_block_entry(names[0], first), _block_entry(names[1], second), _block_entry("low", [0.7, 0.7, 0.71])]
        rank_and_test(entries, "test_accuracy", "max")
        assert [e["name"] for e in entries] == [*names, "low"]
    # a real difference, however small, still ranks
    entries = [_block_entry("a", [0.5, 0.5, 0.5]), _block_entry("b", [0.5 + 1e-5] * 3)]
    rank_and_test(entries, "test_accuracy", "max")
    assert [e["name"] for e in entries] == ["b", "a"]


def test_the_log_loss_interval_is_clipped_at_zero():
    from trainlab.compare.leaderboard import metric_block

    values = [0.01, 0.02, 0.2]
    low, high = sps.t.interval(0.95, df=2, loc=np.mean(values), scale=sps.sem(values))
    assert low < 0
    block = metric_block(values, [0, 1, 2], "test_log_loss")
    assert block["ci95"] == pytest.approx([0.0, high]) and block["ci_method"] == "t, clipped to [0, inf]"


def _finished_run(folder: Path, test_value: float, val_values: list[float | None]) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(
        {"status": "finished", "test": {"roc_auc": test_value, "loss": 0.3}, "val": {"roc_auc": None, "loss": 0.3},
         "train_time_s": 1.0}))
    lines = [{"epoch": e, "step": 10 * e, "train_loss": 0.5, "val_loss": 0.4, "elapsed_s": float(e), "val_roc_auc": v}
             for e, v in enumerate(val_values, start=1)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_null_validation_values_are_left_out_of_convergence_and_the_board_says_so(tmp_path: Path):
    """NaN is written as null (roc_auc on a val split lacking a class): no crash, no leaderboard lost."""
    from io import StringIO

    from rich.console import Console

    from trainlab.compare.leaderboard import build_leaderboard
    from trainlab.compare.leaderboard_output import print_leaderboard
    from trainlab.compare.run_actions import RunPlan

    curves = {("holes", 0): [0.7, None, 0.8, None], ("holes", 1): [0.6, 0.9, None, 0.5],
              ("empty", 0): [None, None], ("empty", 1): [None, None, None]}
    plans = []
    for (strategy, seed), values in curves.items():
        path = tmp_path / strategy / f"seed-{seed}"
        _finished_run(path, 0.8 + seed / 100, values)
        plans.append(RunPlan("task", strategy, seed, {}, path))
    board = build_leaderboard(plans, "test_roc_auc")
    entries = {e["name"]: e["convergence"] for e in board["tasks"]["task"]["strategies"]}
    holes = entries["holes"]
    assert holes["best_val_epoch"]["values"] == [3, 2]  # the largest finite value's epoch
    # mean height over the finite points only, trapezoid rule written out
    expected = [((3 - 1) * (0.7 + 0.8) / 2) / (3 - 1),
                ((2 - 1) * (0.6 + 0.9) / 2 + (4 - 2) * (0.9 + 0.5) / 2) / (4 - 1)]
    assert holes["val_curve_mean"]["values"] == pytest.approx(expected)
    assert holes["gap_loss"]["values"] == pytest.approx([-0.1, -0.1])
    # these summaries have no train block: gap_loss is the last epoch record's, and the block says so
    assert holes["note"].startswith("in 2 of 2 finished runs, gap_loss is val_loss - train_loss of the last epoch")
    empty = entries["empty"]
    assert empty["best_val_epoch"] == {"n": 0, "mean": None, "std": None, "median": None, "min": None, "max": None,
                                       "ci95": None, "ci_method": None, "iqm": None, "iqm_ci95": None,
                                       "iqm_ci_method": None, "values": [None, None], "seeds": [0, 1]}
    assert empty["val_curve_mean"]["values"] == [None, None]
    assert empty["note"].startswith("val_roc_auc has no finite value in 2 of 2 finished runs")
    buffer = StringIO()
    print_leaderboard(board, Console(file=buffer, width=200))
    assert "note: empty: val_roc_auc has no finite value" in buffer.getvalue()


def test_a_ctrl_c_after_every_run_finished_still_writes_the_leaderboard_and_report(tmp_path: Path, capfd,
                                                                                 monkeypatch):
    """The runs are on disk when the signal comes: it was `error: interrupted` (exit 130) with the report
    missing; now it is said once and the comparison's results are written, exit 0."""
    from trainlab.compare import command

    building = command.build_leaderboard

    def interrupted_build(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, before the leaderboard is built
        return building(*args, **kwargs)

    monkeypatch.setattr(command, "build_leaderboard", interrupted_build)
    code, out = _compare(tmp_path, BASE, {"strategies": {"a": None}})
    err = capfd.readouterr().err  # said with os.write on descriptor 2 (safe in a signal handler)
    assert code == 0, err
    assert "warning: SIGINT received while finishing; the comparison is complete" in err
    assert (out / "leaderboard.json").is_file() and (out / "report.html").is_file()


def test_a_set_that_every_strategy_replaces_is_refused(tmp_path: Path, capsys):
    """Each strategy set `strategy.optimizer`, so `--set strategy.optimizer.lr=abc` reached no run: it was
    dropped without a word (even its bad value), and the runs it was meant to change were 'already done'."""
    strategies = {"strategies": {"sgd": {"strategy.optimizer": {"name": "sgd", "lr": 0.1}},
                                 "adam": {"strategy.optimizer.lr": 0.02}}}
    code, out = _compare(tmp_path, BASE, strategies, "--set", "strategy.optimizer.lr=abc")
    line = _one_error_line(capsys)
    assert code == 2 and line == (
        "error: --set strategy.optimizer.lr=abc changes no run: every strategy sets its own value over it: "
        "adam (strategy.optimizer.lr), sgd (strategy.optimizer); set it in the strategies file, or drop it "
        "from those strategies")  # the file's order (safe_dump sorts the names)
    assert not out.exists()


def test_a_set_that_some_strategies_replace_is_said_and_reaches_the_others(tmp_path: Path, capsys):
    strategies = {"strategies": {"base": None, "sgd": {"strategy.optimizer": {"name": "sgd", "lr": 0.1}}}}
    code, out = _compare(tmp_path, BASE, strategies, "--set", "strategy.optimizer.lr=0.05")
    err = capsys.readouterr().err
    assert code == 0, err
    assert "warning: --set strategy.optimizer.lr=0.05 does not reach the runs of sgd (strategy.optimizer): each " \
           "sets its own value over it" in err
    stored = {p.parts[-3]: yaml.safe_load((p.parent / "config.yaml").read_text())["strategy"]["optimizer"]["lr"]
              for p in out.glob("runs/*/*/*/run.json")}
    assert stored == {"base": 0.05, "sgd": 0.1}


def test_a_set_refused_for_one_of_several_bases_names_that_base(tmp_path: Path, capsys):
    first, second = tmp_path / "iris.yaml", tmp_path / "plain.yaml"
    first.write_text(yaml.safe_dump({**BASE, "strategy": {**BASE["strategy"], "regularization": {"l2": 0.001}}}))
    second.write_text(yaml.safe_dump(BASE))
    strategies = tmp_path / "s.yaml"
    strategies.write_text("strategies:\n  a:\n")
    code = main(["compare", str(first), str(second), "--strategies", str(strategies), "--seeds", "1",
                 "--out", str(tmp_path / "out"), "--set", "~strategy.regularization"])
    line = _one_error_line(capsys)
    assert code == 2 and line.startswith(f"error: {second}: --set ~strategy.regularization"), line
