"""Report fixes from the sweep: the config diff tells an absent key from a null one, and axis titles
give "(fraction)" only to metrics that are fractions."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from report_fixtures import fake_run

from trainlab.report import write_report
from trainlab.report.figures import _metric_title, leaderboard_chart
from trainlab.report.series import ABSENT, config_diff

EMA = {"kind": "ema", "decay": 0.9}


def _run_with_strategy(folder: Path, **strategy) -> Path:
    """A tiny fake run whose config.yaml's ``strategy`` gets ``strategy``'s keys (a None value is YAML null)."""
    fake_run(folder, optimizer="sgd", lr=0.1, seed=0, quality=0.9, rng=np.random.default_rng(0), epochs=2,
             predictions=False)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["strategy"].update(strategy)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def _diff_rows(page: str) -> list[list[str]]:
    """The config-diff table's rows (header first) as the visible text of their cells."""
    start = page.index("Keys where the runs differ")
    table = page[start:page.index("</table>", start)]
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
             for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]


def test_config_diff_tells_an_absent_key_from_a_null_one_and_drops_a_null_parent_of_listed_keys():
    base = {"strategy": {"weight_averaging": None, "clip_grad_norm": None, "epochs": 3}}
    ema = {"strategy": {"weight_averaging": EMA, "clip_grad_norm": 1.0, "epochs": 3, "warmup": None}}
    shared, diff = config_diff({"base": base, "ema": ema})
    assert shared == {"strategy.epochs": 3}
    # weight_averaging itself (null against a mapping) is no row of its own: its keys' rows say it
    assert diff == {"base": {"strategy.clip_grad_norm": None, "strategy.warmup": ABSENT,
                             "strategy.weight_averaging.decay": ABSENT, "strategy.weight_averaging.kind": ABSENT},
                    "ema": {"strategy.clip_grad_norm": 1.0, "strategy.warmup": None,
                            "strategy.weight_averaging.decay": 0.9, "strategy.weight_averaging.kind": "ema"}}


def test_config_diff_keeps_a_parent_row_when_a_config_sets_it_to_a_value_not_a_mapping():
    # "cosine" against a mapping is a real difference the children's rows alone would hide
    _, diff = config_diff({"a": {"schedule": "cosine"}, "b": {"schedule": {"name": "step", "gamma": 0.5}}})
    assert diff == {"a": {"schedule": "cosine", "schedule.gamma": ABSENT, "schedule.name": ABSENT},
                    "b": {"schedule": ABSENT, "schedule.gamma": 0.5, "schedule.name": "step"}}


def test_config_diff_shares_a_key_every_config_holds_as_null_and_lists_null_against_absent():
    shared, diff = config_diff({"a": {"x": None, "y": None}, "b": {"x": None}})
    assert shared == {"x": None}
    assert diff == {"a": {"y": None}, "b": {"y": ABSENT}}


def test_the_report_shows_an_absent_key_as_not_set_and_null_only_where_the_config_holds_null(tmp_path):
    a = _run_with_strategy(tmp_path / "a", weight_averaging=None, clip_grad_norm=None)
    b = _run_with_strategy(tmp_path / "b", weight_averaging=EMA, clip_grad_norm=1.0)
    rows = _diff_rows(write_report([a, b], tmp_path / "r.html").read_text())
    header, body = rows[0], {row[0]: row[1:] for row in rows[1:]}
    assert header[0] == "config key" and len(header) == 3
    assert body == {"strategy.clip_grad_norm": ["null", "1.0"],
                    "strategy.weight_averaging.decay": ["(not set)", "0.9"],
                    "strategy.weight_averaging.kind": ["(not set)", json.dumps("ema")]}


@pytest.mark.parametrize("key, title", [
    # fractions: [0, 1] in trainlab.compare.metric_keys.RANGES, averaging suffix and top_<k>_ understood
    ("val_accuracy", "val_accuracy (fraction)"),
    ("train_accuracy", "train_accuracy (fraction)"),
    ("val_subset_accuracy", "val_subset_accuracy (fraction)"),
    ("val_hamming_accuracy", "val_hamming_accuracy (fraction)"),
    ("val_f1_macro", "val_f1_macro (fraction)"),
    ("test_precision_micro", "test_precision_micro (fraction)"),
    ("val_recall_weighted", "val_recall_weighted (fraction)"),
    ("val_top_2_accuracy", "val_top_2_accuracy (fraction)"),
    ("test_roc_auc", "test_roc_auc (fraction)"),
    # not fractions: R² is at most 1 and unbounded below, MCC in [-1, 1]
    ("test_r2", "test_r2"),
    ("val_r2", "val_r2"),
    ("val_matthews_corrcoef", "val_matthews_corrcoef"),
    ("test_mcc", "test_mcc"),
    # the other units
    ("val_mae", "val_mae (target units)"),
    ("val_mse", "val_mse (target units²)"),
    ("val_loss", "val_loss (mean per sample)"),
    ("train_time_s", "train_time_s (s)"),
    ("samples_per_s", "samples_per_s"),  # a rate, not seconds
])
def test_axis_titles_give_a_fraction_unit_only_to_metrics_in_0_1(key, title):
    assert _metric_title(key) == title


def test_a_negative_r2_leaderboard_chart_is_not_titled_a_fraction():
    entries = [{"name": "adam", "metrics": {"test_r2": {"mean": 0.5, "ci95": [0.38, 0.62], "values": [0.48, 0.51]}}},
               {"name": "slow", "metrics": {"test_r2": {"mean": -0.03, "ci95": [-1.2, 1.0],
                                                        "values": [-3.9, 0.6]}}}]
    figure = leaderboard_chart(entries, "test_r2", {"adam": "#000000", "slow": "#111111"})
    assert figure.layout.yaxis.title.text == "test_r2"


def test_a_strategy_whose_seeds_all_failed_is_a_column_that_says_so():
    """A browser check: such a strategy was an empty column of the chart, told only by hovering its empty spot."""
    entries = [{"name": "adam", "metrics": {"test_accuracy": {"mean": 0.9, "ci95": [0.8, 1.0], "values": [0.85, 0.95]}}},
               {"name": "huge_lr", "metrics": {"test_accuracy": {"mean": None, "ci95": None, "values": []}}}]
    figure = leaderboard_chart(entries, "test_accuracy", {"adam": "#000000", "huge_lr": "#111111"})
    assert [(a.x, a.text) for a in figure.layout.annotations] == [("huge_lr", "no finished run")]


def test_a_comparison_rerun_with_fewer_strategies_and_seeds_reports_only_the_runs_its_leaderboard_ranks(tmp_path):
    """An earlier invocation's runs stay under runs/ (another strategy, more seeds): the leaderboard ranks the
    current ones only, and so must the report's charts and tables."""
    from tests.test_compare import BASE
    from trainlab.compare import compare
    from trainlab.compare.strategies import parse_strategies
    from trainlab.report.sources import load_comparison

    out = tmp_path / "cmp"
    base = {**BASE, "strategy": {**BASE["strategy"], "epochs": 1}}
    earlier = {"kept": None, "dropped_since": {"strategy.optimizer.lr": 0.02}}
    compare({"iris": base}, parse_strategies({"strategies": earlier}), out, seeds=2, live=False, quiet=True)
    compare({"iris": base}, parse_strategies({"strategies": {"kept": None}}), out, seeds=1, live=False, quiet=True)
    assert {p.name for p in (out / "runs/iris").iterdir()} == {"kept", "dropped_since"}  # the earlier runs stay
    comparison = load_comparison(out)
    assert {name: [run.seed for run in runs] for name, runs in comparison.runs["iris"].items()} == {"kept": [0]}
    html_text = write_report([out], tmp_path / "r.html").read_text()
    assert "kept" in html_text and "dropped_since" not in html_text
