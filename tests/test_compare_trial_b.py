"""What a user trial of ``trainlab compare`` found (trial B): a loss-scale warning the leaderboard forgot, a
strategy whose runs all failed told to add seeds, a std printed as ``1e+02`` beside ``2985``, round-off
spread on identical values, and a worker SIGKILLed from outside counted against its strategy.

The references are written here: numpy for the statistics, the format spec for the printed std.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from scipy import stats as scipy_stats

from tests.child_env import with_repo_first
from tests.compare_configs import iris_base
from trainlab.cli import main
from trainlab.compare import stats
from trainlab.compare.leaderboard import build_leaderboard, metric_block
from trainlab.compare.leaderboard_output import print_leaderboard, to_csv
from trainlab.compare.machine_failure import not_run_error
from trainlab.compare.run_actions import ERROR_FILE, RunPlan, run_action
from trainlab.config import validate

ROOT = Path(__file__).resolve().parents[1]
SMOOTHED = {"strategy.loss": {"name": "cross_entropy", "label_smoothing": 0.2}}
KILLED = "worker died: killed by SIGKILL, perhaps out of memory"


# --------------------------------------------------------------------------- 1. the loss-scale caveat is kept

def test_the_loss_scale_warning_is_kept_in_the_leaderboard_and_printed_under_the_table(tmp_path: Path, capsys):
    """Ranked by test_loss over two losses: the warning came before the runs, and nothing of it in the board."""
    base, strategies, out = tmp_path / "iris.yaml", tmp_path / "s.yaml", tmp_path / "cmp"
    base.write_text(yaml.safe_dump(iris_base(epochs=1)))
    strategies.write_text(yaml.safe_dump({"strategies": {"plain": None, "smooth": SMOOTHED}}))
    command = ["compare", str(base), "--strategies", str(strategies), "--seeds", "1", "--jobs", "1", "--out", str(out)]

    assert main([*command, "--metric", "test_loss"]) == 0
    printed = capsys.readouterr()
    (warning,) = [line for line in printed.err.splitlines() if line.startswith("warning: ")]
    text = warning.removeprefix("warning: ")
    assert "train different losses" in text
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["notes"] == [text]  # the report reads it from here: a plain sentence, no "warning: "
    lines = printed.out.splitlines()
    table_end = max(i for i, line in enumerate(lines) if line.startswith("└"))
    assert f"note: {text}" in lines[table_end + 1:]  # one line, after the table

    # the same runs ranked by a metric of one formula: no caveat left over from the run before
    assert main([*command, "--metric", "test_accuracy"]) == 0
    printed = capsys.readouterr()
    # (one seed each at 0.6: the first-place tie is noted, the loss-scale caveat is gone)
    assert [note for note in json.loads((out / "leaderboard.json").read_text())["notes"]
            if "tie for first" not in note] == []
    assert "note: --metric" not in printed.out and "warning: " not in printed.err

    # --direction against the metric's own ranked the worst strategy first without a word (tune warned of it)
    assert main([*command, "--metric", "test_accuracy", "--direction", "min"]) == 0
    printed = capsys.readouterr()
    reversed_ranking = ("--direction min ranks the lowest test_accuracy first, of which higher is better: the best "
                        "strategy will be the one of the lowest test_accuracy; leave --direction out (max) unless "
                        "that is meant")
    assert [line for line in printed.err.splitlines() if line.startswith("warning: ")] == [
        f"warning: {reversed_ranking}"]
    assert json.loads((out / "leaderboard.json").read_text())["notes"][0] == reversed_ranking


# --------------------------------------------------------------------------- fabricated run folders

def _summary(mse: float) -> dict:
    return {"status": "finished", "train_time_s": 0.05, "best_epoch": 1,
            "val": {"loss": mse, "mse": mse}, "test": {"loss": mse, "mse": mse}}


def _plans(root: Path, runs: dict[str, dict[int, float | str | None]]) -> list[RunPlan]:
    """Run folders per strategy and seed: a number is a finished run's test_mse, ``"failed"`` a run that raised,
    ``"machine"`` one the machine stopped, None no folder (not run yet)."""
    plans = []
    for strategy, seeds in runs.items():
        for seed, outcome in seeds.items():
            path = root / strategy / f"seed-{seed}"
            if outcome is not None:
                path.mkdir(parents=True)
            if isinstance(outcome, float):
                (path / "summary.json").write_text(json.dumps(_summary(outcome)))
            elif outcome is not None:
                machine = outcome == "machine"
                (path / ERROR_FILE).write_text(json.dumps({
                    "reason": KILLED if machine else "ValueError: bad", "config_hash": None,
                    "machine_failure": machine}))
            plans.append(RunPlan("diab", strategy, seed, {}, path))
    return plans


def _entries(board: dict) -> dict[str, dict]:
    return {entry["name"]: entry for entry in board["tasks"]["diab"]["strategies"]}


# --------------------------------------------------------------------------- 2. the verdict of untested strategies

def test_a_strategy_whose_runs_all_failed_is_said_so_not_told_to_add_seeds(tmp_path: Path):
    board = build_leaderboard(_plans(tmp_path, {
        "ok": {0: 3000.0, 1: 3100.0, 2: 2900.0},
        "huge": {0: "failed", 1: "failed", 2: "failed"},
        "lone": {0: 3050.0, 1: None, 2: None},  # one run, the others not run yet: more seeds would help
        "stopped": {0: "machine", 1: "machine", 2: "machine"},
    }), "test_mse")
    verdicts = {name: entry["vs_best"]["verdict"] for name, entry in _entries(board).items()}
    assert verdicts == {"ok": "best", "huge": "all runs failed", "lone": "too few seeds", "stopped": "not run"}
    rows = {row["strategy"]: row["verdict"] for row in csv.DictReader(io.StringIO(to_csv(board)))}
    assert rows["huge"] == "all runs failed"
    buffer = io.StringIO()
    print_leaderboard(board, Console(file=buffer, width=250))
    (row,) = [line for line in buffer.getvalue().splitlines() if "│ huge" in line]
    assert "all runs failed" in row and "too few seeds" not in row


def test_a_task_whose_runs_all_failed_has_no_best_and_says_why(tmp_path: Path):
    board = build_leaderboard(_plans(tmp_path, {"huge": {0: "failed", 1: "failed"}}), "test_mse")
    (entry,) = board["tasks"]["diab"]["strategies"]
    assert board["tasks"]["diab"]["best"] is None and entry["vs_best"]["verdict"] == "all runs failed"


# --------------------------------------------------------------------------- 3. the printed std

@pytest.mark.parametrize(("mean", "std"), [(2985.0, 99.507), (3570.0, 340.2), (4034.0, 1604.3), (4308.0, 95.3)])
def test_the_std_beside_a_plain_mean_is_printed_with_its_decimals_not_in_e_notation(tmp_path: Path, mean, std):
    """``2985 ± 1e+02`` (std 99.507): two significant digits in e-notation hid the std's digits the mean shows."""
    values = [mean - std, mean, mean + std]  # sample std (ddof 1) = std
    assert np.std(values, ddof=1) == pytest.approx(std)
    board = build_leaderboard(_plans(tmp_path, {"ok": dict(enumerate(values))}), "test_mse")
    buffer = io.StringIO()
    print_leaderboard(board, Console(file=buffer, width=250))
    expected = f"{mean:.0f} ± {np.std(values, ddof=1):.0f} n=3"  # the mean has no decimals: neither has the std
    (row,) = [line for line in buffer.getvalue().splitlines() if "│ ok" in line]
    assert expected in row and "e+" not in row, row


def test_a_small_std_keeps_two_significant_digits_and_an_accuracy_s_is_as_before():
    from trainlab.compare.leaderboard_output import format_std

    assert format_std(0.31, 2985.0) == "0.31"  # never "0" beside an integer mean: 0 means no spread
    assert format_std(0.0043, 0.9712) == "0.0043"
    assert format_std(0.0039, 0.961) == "0.0039"
    assert format_std(0.0, 0.5) == "0"
    assert format_std(5e4, 1.2345e6) == "5e+04"  # beside a mean in e-notation (1.234e+06), e-notation too
    assert format_std(None, 0.5) == "-"


# --------------------------------------------------------------------------- 4. identical values across seeds

SEED_INDEPENDENT = 0.841225626740947  # /tmp/trialB/s2/cmpl2: three runs of this test accuracy


def test_identical_values_have_their_value_as_mean_and_no_spread():
    values = [SEED_INDEPENDENT] * 3
    assert float(np.mean(values)) != SEED_INDEPENDENT  # float summation is off in the last bit: the defect
    assert float(np.std(values, ddof=1)) > 0
    block = metric_block(values, [0, 1, 2], "test_accuracy")
    assert block["mean"] == block["median"] == block["iqm"] == SEED_INDEPENDENT
    assert block["std"] == 0.0
    assert block["ci95"] == [SEED_INDEPENDENT, SEED_INDEPENDENT]
    assert block["iqm_ci95"] == [SEED_INDEPENDENT, SEED_INDEPENDENT]
    assert (block["min"], block["max"], block["values"]) == (SEED_INDEPENDENT, SEED_INDEPENDENT, values)


def test_values_equal_within_the_tie_tolerance_are_one_value():
    """0.85 and 0.8500000000000001 are the same three numbers summed in another order (docs: ties)."""
    values = [0.8500000000000001, 0.85, 0.85]
    assert values[0] != values[1] and abs(values[0] - values[1]) <= 1e-12 * 0.85
    described = stats.describe(values)
    assert described["mean"] == described["median"] == 0.85 and described["std"] == 0.0
    assert stats.t_interval(values) == (0.85, 0.85)
    assert stats.iqm(values) == 0.85
    assert stats.bootstrap_interval(values) == ((0.85, 0.85), "bootstrap-percentile")


def test_values_that_differ_keep_their_statistics():
    values = [0.85, 0.85 + 1e-5, 0.86]  # 1e-5 apart is more than round-off
    described = stats.describe(values)
    assert described["mean"] == pytest.approx(np.mean(values), rel=1e-15)
    assert described["std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    half = scipy_stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
    assert stats.t_interval(values) == pytest.approx((np.mean(values) - half, np.mean(values) + half))


def test_the_csv_of_a_seed_independent_strategy_has_its_value_and_no_spread(tmp_path: Path):
    value = SEED_INDEPENDENT  # as a test_mse: cmpl2's leaderboard.csv had std 1.36e-16 and a mean 1 ulp off
    board = build_leaderboard(_plans(tmp_path, {"flat": dict.fromkeys(range(3), value)}), "test_mse")
    (row,) = csv.DictReader(io.StringIO(to_csv(board)))
    assert (float(row["mean"]), float(row["std"])) == (value, 0.0)
    assert (float(row["ci95_low"]), float(row["ci95_high"])) == (value, value)


# --------------------------------------------------------------------------- 5. a worker killed from outside

def test_a_worker_killed_by_a_signal_is_the_machine_s_and_one_that_exited_is_the_run_s(tmp_path: Path):
    from trainlab.compare.pool import death_outcome

    killed, exited = (RunPlan("iris", name, 0, {}, tmp_path / name / "seed-0") for name in ("killed", "exited"))
    outcome = death_outcome(killed, -signal.SIGKILL, 0.0)
    assert (outcome["status"], outcome["reason"]) == ("not run", KILLED)
    assert json.loads((killed.path / ERROR_FILE).read_text()) == {
        "reason": KILLED, "config_hash": None, "data_fingerprint": None, "machine_failure": True}
    segfault = death_outcome(killed, -signal.SIGSEGV, 0.0)
    assert (segfault["status"], segfault["reason"]) == ("not run", "worker died: killed by SIGSEGV")
    outcome = death_outcome(exited, 3, 0.0)  # os._exit(3) in the run's own code: its failure
    assert (outcome["status"], outcome["reason"]) == ("failed", "worker died: exited with code 3")


def test_a_config_whose_worker_is_killed_in_two_invocations_in_a_row_is_its_failure(tmp_path: Path):
    """The out-of-memory killer stopping a config's worker every time made it 'not run' on every invocation, its
    strategy ranked on the seeds that fit, as MemoryError twice no longer does (out_of_memory_again)."""
    from trainlab.compare.pool import death_outcome, earlier_deaths

    raw = {"name": "k", "seed": 0, "data": {"source": "iris"}, "model": {"name": "linear"},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1}}
    plan = RunPlan("iris", "big", 0, raw, tmp_path / "big" / "seed-0")
    first = death_outcome(plan, -signal.SIGKILL, 0.0, earlier_deaths([(plan, "new")]).get(plan.label))
    assert (first["status"], first["reason"]) == ("not run", KILLED)
    record = json.loads((plan.path / ERROR_FILE).read_text())
    assert record["config_hash"] == validate(raw).hash() and record["machine_failure"] is True
    second = death_outcome(plan, -signal.SIGKILL, 0.0, earlier_deaths([(plan, "new")]).get(plan.label))
    assert second["status"] == "failed" and second["reason"].startswith(f"{KILLED} again, as in the invocation before")
    assert json.loads((plan.path / ERROR_FILE).read_text())["machine_failure"] is False
    assert run_action(plan)[0] == "failed"  # the next invocation does not train it again
    changed = RunPlan("iris", "big", 0, {**raw, "strategy": {**raw["strategy"], "batch_size": 8}}, plan.path)
    assert death_outcome(changed, -signal.SIGKILL, 0.0, record)["status"] == "not run"  # another config: the machine's


def test_the_error_line_of_a_killed_worker_says_to_rerun_the_same_command(tmp_path: Path):
    board = build_leaderboard(_plans(tmp_path, {"ok": {0: 3000.0, 1: 3100.0}, "sgdm": {0: "machine", 1: 3050.0}}),
                              "test_mse")
    sgdm = _entries(board)["sgdm"]
    assert (sgdm["runs"], sgdm["failed"], sgdm["not_run"]) == (1, 0, [{"seed": 0, "reason": KILLED}])
    error = not_run_error(board, tmp_path)
    assert str(error) == (f"1 run of 4 could not run for the machine's reasons (diab/sgdm/seed-0: {KILLED}); "
                          f"{tmp_path / 'leaderboard.json'} lists it under 'not_run', left out of the statistics: "
                          "rerun the same command to retry it")


_KILL_ITS_OWN_WORKER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path

    import trainlab.experiment as experiment
    from trainlab.cli import main

    real_train, parent = experiment.train, os.getpid()

    def train(config, out=None, **kwargs):
        if Path(out).parent.name == "doomed" and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
        return real_train(config, out=out, **kwargs)

    experiment.train = train
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_a_worker_killed_from_outside_is_not_run_exit_5_and_the_same_command_trains_it(tmp_path: Path):
    """/tmp/trialB/s2/killworker.py: 'failed: sgdm seed 0: worker died: killed by SIGKILL', ranked below, exit 0."""
    base, strategies, out = tmp_path / "iris.yaml", tmp_path / "s.yaml", tmp_path / "cmp"
    base.write_text(yaml.safe_dump(iris_base(epochs=1)))
    strategies.write_text(yaml.safe_dump({"strategies": {"a": None, "doomed": None}}))
    script = tmp_path / "kill_its_own_worker.py"
    script.write_text(_KILL_ITS_OWN_WORKER)
    arguments = ["compare", str(base), "--strategies", str(strategies), "--seeds", "1", "--jobs", "2", "--out", str(out)]
    # CUDA hidden: compare then forks its workers, which alone inherit the script's patched experiment.train
    environment = {**os.environ, "PYTHONPATH": with_repo_first(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    killed = subprocess.run([sys.executable, str(script), *arguments], env=environment, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == 5, killed.stdout + killed.stderr
    errors = [line for line in killed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: 1 run of 2 could not run for the machine's reasons (iris/doomed/seed-0: {KILLED}); "
                      f"{out / 'leaderboard.json'} lists it under 'not_run', left out of the statistics: rerun the "
                      "same command to retry it"], killed.stderr
    doomed = {e["name"]: e for e in json.loads((out / "leaderboard.json").read_text())["tasks"]["iris"]["strategies"]}
    doomed = doomed["doomed"]
    assert (doomed["runs"], doomed["failed"], doomed["missing"], doomed["failures"]) == (0, 0, 1, [])
    assert doomed["not_run"] == [{"seed": 0, "reason": KILLED}] and doomed["vs_best"]["verdict"] == "not run"
    assert f"not run: doomed seed 0: {KILLED}" in killed.stdout

    again = subprocess.run([sys.executable, "-m", "trainlab.cli", *arguments], env=environment, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    board = json.loads((out / "leaderboard.json").read_text())
    assert {e["name"]: (e["runs"], e["failed"], e["missing"]) for e in board["tasks"]["iris"]["strategies"]} == {
        "a": (1, 0, 0), "doomed": (1, 0, 0)}


def test_a_strategy_with_failed_and_unrun_seeds_is_not_said_to_have_failed_all():
    """Review: one seed failed, two not run (the machine stopped them): 'all runs failed' said more seeds
    would not help, where the same command trains the two."""
    from trainlab.compare.leaderboard import untested_verdict

    def entry(failed, missing):
        return {"metrics": {"test_accuracy": {"values": []}}, "failed": failed, "missing": missing}

    assert untested_verdict(entry(1, 2), "test_accuracy") == "1 failed, 2 not run"
    assert untested_verdict(entry(3, 0), "test_accuracy") == "all runs failed"
    assert untested_verdict(entry(0, 3), "test_accuracy") == "not run"
    assert untested_verdict({"metrics": {"test_accuracy": {"values": [0.9]}}, "failed": 2, "missing": 0},
                            "test_accuracy") == "too few seeds"
