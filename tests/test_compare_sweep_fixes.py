"""compare's sweep fixes: a warning where the ranking (or target) metric is the training loss of different
losses; intervals of times, rates and counts clipped at 0; the printed table's words for its intervals and
for a missed target."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from scipy import stats as sps

from tests.test_compare import BASE
from trainlab.cli import main
from trainlab.compare import command
from trainlab.compare.leaderboard import metric_block
from trainlab.compare.leaderboard_output import print_leaderboard
from trainlab.compare.loss_scale import differing_losses, loss_scale_warning
from trainlab.compare.metric_keys import metric_range
from trainlab.compare.strategies import NamedStrategy, validate_strategies
from trainlab.records import SUMMARY_NUMBERS

SMOOTHED = {"strategy.loss": {"name": "cross_entropy", "label_smoothing": 0.2}}
REGRESSION = {**BASE, "name": "diabetes", "data": {"source": "diabetes", "task": "regression"},
              "model": {"name": "linear"}, "strategy": {**BASE["strategy"], "loss": "mse", "epochs": 1},
              "metrics": ["mse", "mae"]}


def _compare(tmp_path: Path, strategies: dict, *flags: str) -> int:
    base_file, strategies_file = tmp_path / "base.yaml", tmp_path / "strategies.yaml"
    base_file.write_text(yaml.safe_dump({**BASE, "strategy": {**BASE["strategy"], "epochs": 1}}))
    strategies_file.write_text(yaml.safe_dump({"strategies": strategies}))
    return main(["compare", str(base_file), "--strategies", str(strategies_file), "--seeds", "1", "--jobs", "1",
                 "--out", str(tmp_path / "out"), *flags])


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


# --------------------------------------------------------------------------- the training loss of different losses


def test_ranking_by_the_loss_of_different_losses_warns_once_before_any_run(tmp_path: Path, capsys, monkeypatch):
    """bce vs focal(gamma=5) was ranked by test_loss, focal's smaller scale "winning", without a word."""
    seen_before_runs = []

    def no_runs(*args, **kwargs):
        seen_before_runs.append(capsys.readouterr().err)
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "run_plans", no_runs)
    with pytest.raises(KeyboardInterrupt):
        command.compare({"iris": BASE}, {"plain": None, "smooth": SMOOTHED}, tmp_path / "out", seeds=1, jobs=1,
                        metric="test_loss", quiet=True)
    (line,) = _warnings(seen_before_runs[0])
    assert line.startswith("warning: --metric test_loss is each strategy's own training loss")
    assert "cross_entropy in 'plain'" in line and "cross_entropy(label_smoothing=0.2) in 'smooth'" in line
    assert "--metric test_log_loss" in line and "add log_loss to the config's metrics" in line  # BASE lists accuracy


def test_the_warning_leaves_the_comparison_to_run(tmp_path: Path, capsys):
    """A warning, not a refusal: the board is written and ranked by what was asked."""
    assert _compare(tmp_path, {"plain": None, "smooth": SMOOTHED}, "--metric", "test_loss") == 0
    assert len(_warnings(capsys.readouterr().err)) == 1
    assert (tmp_path / "out" / "leaderboard.json").exists()


@pytest.mark.parametrize(("strategies", "metric"), [
    ({"plain": None, "smooth": SMOOTHED}, "test_log_loss"),  # one formula for every loss
    ({"plain": None, "smooth": SMOOTHED}, "test_accuracy"),
    ({"plain": None, "fast": {"strategy.optimizer": {"name": "adam", "lr": 0.1}}}, "test_loss"),  # one loss
    # options at their loss's defaults are no other loss
    ({"plain": None, "same": {"strategy.loss": {"name": "cross_entropy", "label_smoothing": 0, "reduction": "mean"}}},
     "val_loss"),
])
def test_no_warning_where_the_values_are_on_one_scale(strategies, metric):
    configs = validate_strategies({"iris": {**BASE, "metrics": ["accuracy", "log_loss"]}},
                                  [NamedStrategy(name, dict(o or {})) for name, o in strategies.items()])
    assert loss_scale_warning(configs, metric, None) is None


def test_a_target_on_the_loss_of_regression_losses_suggests_mse_or_mae():
    configs = validate_strategies({"diabetes": REGRESSION},
                                  [NamedStrategy("mse", {}), NamedStrategy("huber", {"strategy.loss": "huber"})])
    line = loss_scale_warning(configs, "test_r2", "val_loss")
    assert line is not None and line.startswith("--target val_loss is each strategy's own training loss")
    assert "mse in 'mse'; huber in 'huber'" in line and "--target val_mse or val_mae" in line
    assert "log_loss" not in line
    both = loss_scale_warning(configs, "test_loss", "val_loss")
    assert "--metric test_loss and --target val_loss are" in both and "--metric test_mse or test_mae / --target" in both
    # only the metrics every strategy records (test_mae was suggested, then refused: add 'mae' to the metrics)
    configs = validate_strategies({"diabetes": {**REGRESSION, "metrics": ["mse", "r2"]}},
                                  [NamedStrategy("mse", {}), NamedStrategy("huber", {"strategy.loss": "huber"})])
    assert loss_scale_warning(configs, "test_loss", None).endswith(
        "compare by --metric test_mse (one formula for every strategy)")
    # a config without a metrics list records the task's defaults, mse and mae among them
    configs = validate_strategies({"diabetes": {**REGRESSION, "metrics": None}},
                                  [NamedStrategy("mse", {}), NamedStrategy("huber", {"strategy.loss": "huber"})])
    assert "compare by --metric test_mse or test_mae (" in loss_scale_warning(configs, "test_loss", None)


def test_log_loss_is_suggested_without_asking_for_it_where_every_config_lists_it():
    configs = validate_strategies({"iris": {**BASE, "metrics": ["accuracy", "log_loss"]}},
                                  [NamedStrategy("plain", {}), NamedStrategy("focal", {"strategy.loss": "focal"})])
    line = loss_scale_warning(configs, "val_loss", None)
    assert "--metric val_log_loss" in line and "add log_loss" not in line


def test_differing_losses_groups_owners_by_the_loss_they_train():
    specs = {"a": {"name": "focal"}, "b": {"name": "focal", "gamma": 2}, "c": {"name": "focal", "gamma": 5.0},
             "d": {"gamma": 5, "name": "focal"}, "e": {"name": "cross_entropy", "class_weights": [1, 2.5]},
             "f": {"name": "cross_entropy", "class_weights": [1.0, 2.5]}, "g": "auto"}
    assert differing_losses(specs) == {"focal": ["a", "b"], "focal(gamma=5)": ["c", "d"],
                                       "cross_entropy(class_weights=[1,2.5])": ["e", "f"], "auto": ["g"]}
    assert differing_losses({"a": "bce", "b": {"name": "bce", "reduction": "mean"}}) == {}
    # a sum is recorded per row (as a mean is) unless class weights make the mean divide by their sum
    assert differing_losses({"a": "mse", "b": {"name": "mse", "reduction": "sum"}}) == {}
    weighted = {"name": "cross_entropy", "class_weights": [1, 3]}
    assert differing_losses({"a": weighted, "b": {**weighted, "reduction": "sum"}}) == {
        "cross_entropy(class_weights=[1,3])": ["a"], "cross_entropy(class_weights=[1,3], reduction=sum)": ["b"]}
    assert differing_losses({}) == {}


# --------------------------------------------------------------------------- bounded summary numbers


@pytest.mark.parametrize("key", SUMMARY_NUMBERS)
def test_times_rates_and_counts_are_never_negative(key):
    assert metric_range(key) == (0.0, math.inf)


def test_a_metric_named_in_capitals_is_clipped_as_its_lowercase_name():
    """metrics: [F1] records test_F1; its interval reached 1.011 where test_f1's was clipped at 1."""
    values = [0.99, 1.0, 1.0]
    assert sps.t.interval(0.95, df=2, loc=np.mean(values), scale=sps.sem(values))[1] > 1
    block = metric_block(values, [0, 1, 2], "test_F1")
    assert block["ci95"][1] == 1.0 and block["ci_method"] == "t, clipped to [0, 1]"


def test_a_time_interval_is_clipped_at_zero():
    """train_time_s's 95% CI was [-0.061, 0.20] s."""
    values = [0.01, 0.02, 0.2]
    low, high = sps.t.interval(0.95, df=2, loc=np.mean(values), scale=sps.sem(values))
    assert low < 0
    for key in ("train_time_s", "samples_per_s", "steps"):
        block = metric_block(values, [0, 1, 2], key)
        assert block["ci95"] == pytest.approx([0.0, high]) and block["ci_method"] == "t, clipped to [0, inf]"


# --------------------------------------------------------------------------- the printed table


def _entry(name: str, rank: int, values: list[float], times: list[float | None]) -> dict:
    reached = [t for t in times if t is not None]
    median = float(np.median([math.inf if t is None else t for t in times]))
    return {"name": name, "rank": rank, "runs": len(values), "failed": 0, "failures": [],
            "metrics": {"test_accuracy": metric_block(values, list(range(len(values))), "test_accuracy")},
            "vs_best": {"verdict": "best" if rank == 1 else "indistinguishable", "p_holm": None if rank == 1 else 0.5,
                        "prob_improvement": None if rank == 1 else 0.4},
            "time_to_target_s": {"median": None if math.isinf(median) else median, "reached": len(reached),
                                 "values": times}}


def _table(entries: list[dict], seeds: int = 3) -> str:
    board = {"metric": "test_accuracy", "direction": "max", "seeds": seeds,
             "target": {"metric": "val_accuracy", "value": 0.9}, "tasks": {"iris": {"strategies": entries}}}
    out = io.StringIO()
    print_leaderboard(board, Console(file=out, width=250))
    return out.getvalue()


def test_the_table_names_a_clipped_interval_as_the_json_does_and_a_missed_target_in_words():
    """The title said '95% t CI' over intervals the JSON calls 't, clipped to [0, 1]'; a missed target
    printed '- s (0/3)'."""
    entries = [_entry("near_one", 1, [0.99, 1.0, 1.0], [1.25, 1.5, 2.0]),
               _entry("never", 2, [0.5, 0.6, 0.7], [None, None, None]),
               _entry("once", 3, [0.5, 0.52, 0.55], [3.0, None, None])]
    assert entries[0]["metrics"]["test_accuracy"]["ci_method"] == "t, clipped to [0, 1]"
    text = _table(entries)
    assert "[95% CI: t, clipped to [0, 1]]" in text and "95% t CI" not in text
    assert "1.5 s (3/3)" in text and "not reached (0/3)" in text and "most missed (1/3)" in text
    assert "- s (" not in text


def test_the_table_says_t_where_no_interval_was_clipped():
    text = _table([_entry("a", 1, [0.5, 0.6, 0.7], [1.0, 1.0, 1.0])])
    assert "[95% CI: t]" in text and "clipped" not in text


def test_one_seed_is_said_in_the_singular_and_names_no_interval_method():
    """--seeds 1 titled the table "1 seeds, mean ± std [95% CI: t]", though no interval is computed."""
    entries = [_entry("a", 1, [0.5], [1.0]), _entry("b", 2, [0.6], [None])]
    assert entries[0]["metrics"]["test_accuracy"]["ci95"] is None
    assert entries[0]["metrics"]["test_accuracy"]["ci_method"] is None  # leaderboard.json names no method either
    text = _table(entries, seeds=1).replace("\n", " ")
    assert "1 seed, mean ± std" in text and "1 seeds" not in text and "95% CI:" not in text


def test_long_names_are_shortened_in_the_table_with_a_middle_ellipsis_that_keeps_them_apart():
    """Two ~190-character names printed as the same cut prefix; now each keeps its start and its end."""
    stem = "adam_with_a_very_long_descriptive_name_" * 4
    long_one, long_two = stem + "lr=0.001", stem + "lr=0.002"
    text = _table([_entry(long_one, 1, [0.5, 0.6, 0.7], [1.0] * 3), _entry(long_two, 2, [0.5, 0.6, 0.6], [1.0] * 3),
                   _entry("sgd", 3, [0.4, 0.5, 0.5], [1.0] * 3)])
    rows = [line for line in text.splitlines() if "…" in line]
    assert len(rows) == 2 and all(len(line) < 200 for line in rows)
    assert "…" in rows[0] and rows[0].split("│")[2].strip().endswith("lr=0.001")
    assert rows[1].split("│")[2].strip().endswith("lr=0.002")
    assert "sgd" in text


def test_the_profile_without_a_target_says_no_run_finished_rather_than_a_target_missed():
    """Without --target a strategy whose runs all diverged was printed 'inf (a target missed)': there was none."""
    from trainlab.compare.leaderboard_output import profile_lines

    board = {"metric": "test_loss", "target": None,
             "profile": {"tasks": ["wine"], "geomean_ratio": {"adam": 1.0, "sgd_lr50": None}}}
    lines = profile_lines(board, {})
    assert lines[2] == f"  {'sgd_lr50':<24} inf (no run finished on a task)" and "target missed" not in "".join(lines)
    board["target"] = {"metric": "val_accuracy", "value": 0.9}
    assert profile_lines(board, {})[2] == f"  {'sgd_lr50':<24} inf (a target missed)"


def test_verdicts_that_show_no_difference_on_few_seeds_are_said_to_be_no_evidence_of_equality():
    """29 'indistinguishable' verdicts on 3 seeds, one 7 points below the best, read as 'all equal'."""
    from trainlab.compare.leaderboard import undetected_note

    entries = [{"vs_best": {"verdict": "best"}}, {"vs_best": {"verdict": "indistinguishable"}},
               {"vs_best": {"verdict": "indistinguishable"}}]
    assert undetected_note("bc", entries, 3) == (
        "task 'bc': no strategy is told apart from the best (p_holm < 0.05) in 2 comparisons on 3 seeds: "
        "'indistinguishable' means no difference was shown, not that the strategies are equal; 3 seeds and a Holm "
        "correction over 2 comparisons give the tests little power: 10 seeds or more tell such differences apart")
    assert undetected_note("bc", entries, 10) is None  # enough seeds: the verdicts stand as they are
    shown = [*entries, {"vs_best": {"verdict": "worse"}}]
    assert undetected_note("bc", shown, 3) is None  # a difference was shown: the tests had the power for it
    assert undetected_note("bc", entries[:1], 3) is None  # nothing compared
