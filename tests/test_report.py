"""trainlab.report: what is plotted (against NumPy written here), what the page holds, and bad input."""

from __future__ import annotations

import base64
import hashlib
import html as html_module
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from report_fixtures import SEVEN, fake_comparison, fake_run

from trainlab.cli import main
from trainlab.errors import ConfigError, RunDirError
from trainlab.report import write_report
from trainlab.report.predictions import Predictions, confusion_matrix, load_predictions
from trainlab.report.series import (
    ABSENT,
    config_diff,
    curve,
    decimate,
    loss_gap,
    performance_profile,
    seed_band,
)
from trainlab.report.sources import classify, read_metrics

MAX_BYTES = 5_000_000


def figures_of(html: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json" id="figure-\d+-json">(.*?)</script>', html, re.S)
    return [json.loads(b.replace("<\\/", "</")) for b in blocks]


def array(value) -> list:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata" (base64)[, "shape"]}."""
    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        if "shape" in value:
            data = data.reshape([int(n) for n in str(value["shape"]).split(",")])
        return data.tolist()
    return value


# --------------------------------------------------------------------------- series

def test_curve_keeps_finite_points_and_the_last_value_of_a_repeated_step():
    records = [{"step": 1, "val_loss": 0.9}, {"step": 2, "val_loss": float("nan")}, {"step": 3},
               {"step": 2, "val_loss": 0.5}, {"step": 1, "val_loss": 0.8}, {"val_loss": 0.1}]
    assert curve(records, "val_loss") == ([2.0, 1.0], [0.5, 0.8])


def test_decimate_keeps_first_last_and_at_most_the_budget():
    assert list(decimate(5, 10)) == [0, 1, 2, 3, 4]
    kept = decimate(1001, 300)
    assert kept[0] == 0 and kept[-1] == 1000 and len(kept) <= 300 and np.all(np.diff(kept) > 0)


def test_seed_band_is_the_mean_min_and_max_over_seeds_at_each_step():
    rng = np.random.default_rng(1)
    values = rng.random((3, 4))  # seed x epoch
    clocks = np.cumsum(rng.random((3, 4)), axis=1)
    runs = [[{"step": 10 * (e + 1), "val_loss": values[s, e], "elapsed_s": clocks[s, e]} for e in range(4)]
            for s in range(3)]
    runs[2] = runs[2][:2]  # the third seed stopped early: later steps average the other two
    band = seed_band(runs, "val_loss")
    assert band.x.tolist() == [10, 20, 30, 40]
    expected_mean = [values[:, 0].mean(), values[:, 1].mean(), values[:2, 2].mean(), values[:2, 3].mean()]
    np.testing.assert_allclose(band.mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(band.low, [values[:, 0].min(), values[:, 1].min(), values[:2, 2].min(),
                                          values[:2, 3].min()])
    np.testing.assert_allclose(band.high, [values[:, 0].max(), values[:, 1].max(), values[:2, 2].max(),
                                           values[:2, 3].max()])
    assert band.seeds.tolist() == [3, 3, 2, 2]
    clock = seed_band(runs, "val_loss", axis="elapsed_s")
    np.testing.assert_allclose(clock.x, [clocks[:, 0].mean(), clocks[:, 1].mean(), clocks[:2, 2].mean(),
                                         clocks[:2, 3].mean()])
    assert seed_band(runs, "val_accuracy") is None


def test_loss_gap_is_val_minus_train_of_the_last_epoch_record_with_both():
    records = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.5}, {"epoch": 2, "train_loss": 0.4, "val_loss": 0.7},
               {"epoch": 3, "train_loss": 0.3},
               # a mid-epoch validation's step record: its train_loss covers the steps since the last record
               {"scope": "step", "epoch": 3.5, "step": 9, "train_loss": 0.1, "val_loss": 0.9}]
    assert loss_gap(records) == pytest.approx(0.3)
    assert loss_gap([{"epoch": 1, "train_loss": 0.3}]) is None


def test_performance_profile_matches_the_dolan_more_formula():
    times = {"a": {"x": 10.0, "y": 20.0, "z": None}, "b": {"x": 30.0, "y": 15.0, "z": 60.0},
             "c": {"x": None, "y": None, "z": None}}
    taus = [1.0, 1.5, 2.0, 4.0, 100.0]
    # ratio table written out by hand: rows tasks a, b, c; columns x, y, z
    ratios = np.array([[1.0, 2.0, np.inf], [2.0, 1.0, 4.0], [np.inf, np.inf, np.inf]])
    expected = {s: [(ratios[:, j] <= tau).mean() for tau in taus] for j, s in enumerate("xyz")}
    assert performance_profile(times, taus) == expected


def test_config_diff_splits_shared_base_from_differences_and_ignores_names_seeds_output():
    configs = {"sgd": {"name": "a", "seed": 1, "output": {"dir": "x"},
                       "strategy": {"optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 5}},
               "adam": {"name": "b", "seed": 2, "output": {"dir": "y"},
                        "strategy": {"optimizer": {"name": "adam", "lr": 0.1, "betas": [0.9, 0.99]}, "epochs": 5}}}
    base, diff = config_diff(configs)
    assert base == {"strategy.epochs": 5, "strategy.optimizer.lr": 0.1}
    assert diff == {"sgd": {"strategy.optimizer.betas": ABSENT, "strategy.optimizer.name": "sgd"},
                    "adam": {"strategy.optimizer.betas": [0.9, 0.99], "strategy.optimizer.name": "adam"}}


def test_confusion_matrix_counts_true_by_predicted():
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    expected = np.zeros((4, 4), dtype=int)
    np.add.at(expected, (y_true, y_pred), 1)
    names = ["a", "b", "c", "d"]
    np.testing.assert_array_equal(confusion_matrix(Predictions("classification", y_true, y_pred, names)), expected)


def test_read_metrics_separates_events_and_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1, "step": 5, "val_loss": 1.0}\n{"event": "rollback", "step": 7}\n{"epoch": 2, "st')
    records, events = read_metrics(path)
    assert records == [{"epoch": 1, "step": 5, "val_loss": 1.0}] and events == [{"event": "rollback", "step": 7}]


# --------------------------------------------------------------------------- pages

@pytest.fixture(scope="module")
def seven_by_five(tmp_path_factory) -> Path:
    return fake_comparison(tmp_path_factory.mktemp("cmp") / "cmp", SEVEN, seeds=5)


def test_comparison_report_of_seven_strategies_by_five_seeds_is_complete_and_under_5_mb(seven_by_five, tmp_path):
    out = write_report([seven_by_five], tmp_path / "report.html")
    html = out.read_text()
    assert out.stat().st_size < MAX_BYTES
    # self-contained: one embedded plotly bundle, nothing loaded from a file or host
    assert html.count('id="plotly-js-gzip-base64"') == 1
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", html)
    assert "http://" not in html and "https://" not in html
    sections = re.findall(r'<h2 id="s\d+">(.*?)</h2>', html)
    assert sections == ["leaderboard", "learning curves", "time to target (val_accuracy reaching 0.8)",
                        "learning rate followed", "generalisation gap", "predictions of the best strategy",
                        "strategy configs (diff against the shared base)", "environment"]
    board = json.loads((seven_by_five / "leaderboard.json").read_text())
    entries = board["tasks"]["digits"]["strategies"]
    for entry in entries:  # every strategy's row with its mean and verdict
        row = re.search(rf'<td><span class="name">{entry["name"]}</span></td>.*?</tr>', html, re.S).group(0)
        assert f"{entry['metrics']['test_accuracy']['mean']:.4g}" in row and entry["vs_best"]["verdict"] in row
    figures = figures_of(html)
    kinds = [f["layout"]["title"]["text"].split(":")[0] for f in figures]
    assert len(figures) == 9 and "confusion matrix on the test split" in kinds
    # the CI chart's error bars are the leaderboard's ci95
    chart = figures[0]
    adam = next(t for t in chart["data"] if t["type"] == "scatter" and t["name"] == entries[0]["name"])
    stats = entries[0]["metrics"]["test_accuracy"]
    assert adam["y"][0] + adam["error_y"]["array"][0] == pytest.approx(stats["ci95"][1])
    assert adam["y"][0] - adam["error_y"]["arrayminus"][0] == pytest.approx(stats["ci95"][0])
    # the LR chart plots the lr of the records (mean over seeds; the seeds share the schedule)
    lr_chart = next(f for f in figures if f["layout"]["title"]["text"].startswith("learning rate"))
    sgd = next(t for t in lr_chart["data"] if t["name"] == "sgd")
    records = [json.loads(x) for x in (seven_by_five / "runs/digits/sgd/seed-0/metrics.jsonl").read_text().splitlines()]
    by_step = {r["step"]: r["lr"] for r in records}
    assert all(math.isclose(by_step[x], y, rel_tol=1e-9) for x, y in zip(array(sgd["x"]), array(sgd["y"]), strict=True))
    # a strategy that never reached the target is named with its misses
    assert "hopeless<br>(5 missed)" in json.dumps(figures)


def test_two_tasks_give_both_leaderboards_and_the_performance_profile(tmp_path):
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam", "hopeless")}, seeds=2,
                           tasks=("digits", "wine"), epochs=6)
    html = write_report([root], tmp_path / "r.html").read_text()
    sections = re.findall(r'<h2 id="s\d+">(.*?)</h2>', html)
    assert "digits: leaderboard" in sections and "wine: leaderboard" in sections
    assert "performance profile over tasks" in sections
    profile = next(f for f in figures_of(html) if f["layout"]["title"]["text"].startswith("performance profile"))
    curves = {t["name"]: array(t["y"]) for t in profile["data"]}
    assert curves["adam"][0] == 1.0 and curves["hopeless"][-1] == 0.0  # adam fastest on both tasks; hopeless never


def _section(html: str, heading: str) -> str:
    """The HTML of the h2 section headed ``heading``, up to the next h2."""
    match = re.search(rf'<h2 id="s\d+">{re.escape(heading)}</h2>(.*?)(?=<h2 |</main>)', html, re.S)
    assert match, f"no section {heading!r}"
    return match.group(1)


def test_two_tasks_each_get_their_own_strategy_configs_not_the_first_tasks(tmp_path):
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2,
                           tasks=("digits", "imb"), target=None, epochs=2)
    # the second task's base config differs (data, loss, epochs), and so does the lr adam inherits from it
    for config_path in (root / "runs" / "imb").glob("*/seed-*/config.yaml"):
        config = yaml.safe_load(config_path.read_text())
        config["data"] = {"source": "npz", "path": "imb.npz"}
        config["strategy"].update(loss="bce", epochs=15)
        if config["strategy"]["optimizer"]["name"] == "adam":
            config["strategy"]["optimizer"]["lr"] = 0.0005
        config_path.write_text(yaml.safe_dump(config))
    html = write_report([root], tmp_path / "r.html").read_text()
    sections = re.findall(r'<h2 id="s\d+">(.*?)</h2>', html)
    heading = "strategy configs (diff against the shared base)"
    assert heading not in sections
    digits, imb = _section(html, f"digits: {heading}"), _section(html, f"imb: {heading}")
    assert sections.index(f"digits: {heading}") < sections.index("imb: leaderboard")

    def lr_row(section: str) -> list[str]:
        row = re.search(r"<tr><td><code>strategy\.optimizer\.lr</code></td>(.*?)</tr>", section).group(1)
        return re.findall(r"<td>(.*?)</td>", row)

    def columns(section: str) -> list[str]:
        return re.findall(r'<th><span class="name">(.*?)</span></th>', section)  # each strategy, wrapping

    assert dict(zip(columns(digits), lr_row(digits), strict=True)) == {"adam": "0.003", "sgd": "0.1"}
    assert dict(zip(columns(imb), lr_row(imb), strict=True)) == {"adam": "0.0005", "sgd": "0.1"}
    assert "data.source: &quot;digits&quot;" in digits and "strategy.epochs: 2" in digits
    assert "data.source: &quot;npz&quot;" in imb and "strategy.loss: &quot;bce&quot;" in imb
    assert "strategy.epochs: 15" in imb and "digits" not in imb


def test_a_task_without_runs_says_so_in_its_config_section(tmp_path):
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2,
                           tasks=("digits", "wine"), target=None, epochs=2)
    shutil.rmtree(root / "runs" / "wine")
    html = write_report([root], tmp_path / "r.html").read_text()
    assert "No run of task wine to read configs from." in _section(
        html, "wine: strategy configs (diff against the shared base)")


def _train(tmp_path: Path, raw: dict) -> Path:
    from trainlab.config import validate
    from trainlab.experiment import train

    return train(validate(raw), out=tmp_path / raw["name"], quiet=True)[1]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    raw = {"name": "digits", "seed": 0, "data": {"source": "digits"}, "model": {"name": "mlp", "hidden": [16]},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 64,
                        "epochs": 2}, "metrics": ["accuracy"], "output": {"progress": "off"}}
    return _train(tmp_path_factory.mktemp("runs"), raw)


def test_single_run_report_rebuilds_the_model_for_its_confusion_matrix(digits_run, tmp_path):
    assert not (digits_run / "predictions.npz").exists()
    html = write_report(str(digits_run), tmp_path / "run.html").read_text()  # one folder, not in a list
    sections = re.findall(r'<h2 id="s\d+">(.*?)</h2>', html)
    assert sections == ["results", "learning curves", "learning rate followed", "confusion matrix or residuals",
                        "events", "config", "environment"]
    heatmap = next(t for f in figures_of(html) for t in f["data"] if t["type"] == "heatmap")
    counts = np.asarray(array(heatmap["customdata"]))
    summary = json.loads((digits_run / "summary.json").read_text())
    # the rebuilt model's predictions agree with the accuracy the run recorded when it finished
    assert np.trace(counts) / counts.sum() == pytest.approx(summary["test"]["accuracy"], abs=1e-9)
    assert heatmap["x"] == [str(i) for i in range(10)]
    assert "epochs=2 reached" in html or summary["stop_reason"] in html


def test_comparison_report_tables_every_test_metric_time_and_updates_with_their_intervals(seven_by_five, tmp_path):
    """The page showed the ranking metric alone: test_f1, the training time's interval, the optimizer updates
    (which batch size multiplies) and the convergence epoch were in leaderboard.json only."""
    html = write_report([seven_by_five], tmp_path / "report.html").read_text()
    start = html.index("Every recorded figure per strategy")
    table = html[start:html.index("</table>", start)]
    board = json.loads((seven_by_five / "leaderboard.json").read_text())
    entries = board["tasks"]["digits"]["strategies"]
    keys = [key for key in entries[0]["metrics"] if key.startswith("test_")]
    assert len(keys) >= 2 and "train time (s)" in table
    for entry in entries:
        row = re.search(rf'<td><span class="name">{re.escape(entry["name"])}</span></td>.*?</tr>', table, re.S).group(0)
        for key in keys:
            stats = entry["metrics"][key]
            if stats.get("ci95"):
                assert f"{stats['mean']:.4g} [{stats['ci95'][0]:.4g}, {stats['ci95'][1]:.4g}]" in row, (key, row)


def test_comparison_report_rebuilds_a_real_best_run(digits_run, tmp_path):
    root = fake_comparison(tmp_path / "cmp", {"adam": ("adam", 0.01, 0.99), "sgd": ("sgd", 0.1, 0.5)}, seeds=2,
                           real_best_run=digits_run, epochs=4)
    html = write_report([root], tmp_path / "r.html").read_text()
    assert "confusion matrix on the test split: adam, seed 0" in html


def test_regression_run_gets_a_residual_plot_in_target_units(tmp_path):
    raw = {"name": "linreg", "seed": 0, "data": {"source": "synthetic_linear", "n": 200}, "model": {"name": "linear"},
           "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 32, "epochs": 3},
           "metrics": ["mse", "r2"], "output": {"progress": "off"}}
    run = _train(tmp_path, raw)
    predictions = load_predictions(run)
    assert predictions.task == "regression"
    summary = json.loads((run / "summary.json").read_text())
    mse = float(np.mean((predictions.y_true - predictions.y_pred) ** 2))
    assert mse == pytest.approx(summary["test"]["mse"], rel=1e-5)
    html = write_report([run], tmp_path / "r.html").read_text()
    residual = next(f for f in figures_of(html) if f["layout"]["title"]["text"].startswith("residuals"))
    assert residual["layout"]["yaxis"]["title"]["text"] == "residual: true - predicted (target units)"



def test_a_run_without_test_or_validation_split_says_so_instead_of_a_figure(tmp_path):
    from trainlab.report.predictions import Unavailable

    raw = {"name": "nosplit", "seed": 0,
           "data": {"source": "diabetes", "test_fraction": 0.0, "val_fraction": 0.0},
           "model": {"name": "linear"}, "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01},
                                                     "batch_size": 32, "epochs": 1}, "output": {"progress": "off"}}
    predictions = load_predictions(_train(tmp_path, raw))
    assert isinstance(predictions, Unavailable) and "has no test or validation split" in predictions.reason

def test_a_run_whose_labels_json_changed_or_went_gets_no_matrix_under_other_names(tmp_path):
    """eval and predict refuse a labels.json changed or deleted since training; the report drew a full confusion
    matrix under the edited class names, with no notice."""
    from trainlab.report.predictions import Unavailable

    raw = {"name": "iris", "seed": 0, "data": {"source": "iris"}, "model": {"name": "linear"},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1},
           "output": {"progress": "off"}}
    run = _train(tmp_path, raw)
    assert not isinstance(load_predictions(run), Unavailable)
    labels = json.loads((run / "labels.json").read_text())
    (run / "labels.json").write_text(json.dumps({**labels, "class_names": ["x", "y", "z"]}))
    predictions = load_predictions(run)
    assert isinstance(predictions, Unavailable) and "labels.json was changed after training" in predictions.reason
    (run / "labels.json").unlink()
    predictions = load_predictions(run)
    assert isinstance(predictions, Unavailable) and "labels.json" in predictions.reason, predictions


def test_the_confusion_matrix_leaves_out_the_rows_of_the_losss_ignore_index_as_the_metrics_do(tmp_path):
    """The report rebuilt the matrix from every test row, so it disagreed with the run's test metrics."""
    raw = {"name": "ignored", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
           "strategy": {"loss": {"name": "cross_entropy", "ignore_index": 0},
                        "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 16, "epochs": 3},
           "metrics": ["accuracy"], "output": {"progress": "off"}}
    run = _train(tmp_path, raw)
    predictions = load_predictions(run)
    summary = json.loads((run / "summary.json").read_text())
    assert 0 not in set(predictions.y_true.tolist()) and len(predictions.y_true) > 0
    assert summary["test"]["accuracy"] == pytest.approx(float(np.mean(predictions.y_true == predictions.y_pred)))


def _npz_splits(tmp_path: Path, targets, seed: int = 0) -> dict[str, np.ndarray]:
    """train/val/test splits of x ~ N(0, 1) with 3 features and y = targets(x, rng), saved as data.npz."""
    rng = np.random.default_rng(seed)
    splits = {}
    for suffix, n in (("", 150), ("_val", 40), ("_test", 40)):
        x = rng.normal(size=(n, 3))
        splits[f"x{suffix}"], splits[f"y{suffix}"] = x, targets(x, rng)
    np.savez(tmp_path / "data.npz", **splits)
    return splits


def _linear_by_hand(run: Path, x: np.ndarray) -> np.ndarray:
    """x W^T + b in float64 with the weights of the run's linear model."""
    from safetensors.numpy import load_file

    weights = load_file(run / "model.safetensors")
    return x @ weights["weight"].astype(np.float64).T + weights["bias"].astype(np.float64)


def test_residuals_of_a_standardised_target_are_in_its_own_units_one_panel_per_output(tmp_path):
    def targets(x, rng):  # a price (~5e5 +- 1e5) and a rate (~+-0.02): units five million times apart
        price = 5e5 + 2e5 * (x @ [0.5, -0.3, 0.2]) + 1e4 * rng.normal(size=len(x))
        return np.stack([price, 0.01 * (x @ [1.0, 0.5, -1.0])], axis=1)

    splits = _npz_splits(tmp_path, targets)
    raw = {"name": "price", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "data.npz"),
                                                "standardize_target": True},
           "model": {"name": "linear"}, "output": {"progress": "off"}, "metrics": ["mse"],
           "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 32, "epochs": 3}}
    run = _train(tmp_path, raw)
    # by hand: the model predicts z-scored targets; back in units with the training targets' mean and
    # population std (ddof=0), per output column
    y_train = splits["y"]
    predicted = _linear_by_hand(run, splits["x_test"]) * y_train.std(axis=0) + y_train.mean(axis=0)
    residual = splits["y_test"] - predicted
    html = write_report([run], tmp_path / "r.html").read_text()
    figure = next(f for f in figures_of(html) if f["layout"]["title"]["text"].startswith("residuals"))
    traces = [t for t in figure["data"] if t["type"] == "scatter"]
    assert [t["name"] for t in traces] == ["output 0", "output 1"]  # npz targets have no column names
    for column, trace in enumerate(traces):
        atol = 1e-5 * y_train[:, column].std()  # float32 model outputs
        np.testing.assert_allclose(array(trace["x"]), predicted[:, column], rtol=0, atol=atol)
        np.testing.assert_allclose(array(trace["y"]), residual[:, column], rtol=0, atol=atol)
        suffix = "" if column == 0 else str(column + 1)
        assert figure["layout"][f"xaxis{suffix}"]["title"]["text"] == f"predicted output {column} (units of output {column})"
        assert figure["layout"][f"yaxis{suffix}"]["title"]["text"] == (f"residual: true - predicted "
                                                                       f"(units of output {column})")


def test_multi_output_csv_residual_panels_are_named_by_the_target_columns(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 2))
    rows = ["a,b,t_price,t_rate"] + [f"{a},{b},{5e5 + 1e5 * a},{0.01 * b}" for a, b in x]
    (tmp_path / "two.csv").write_text("\n".join(rows) + "\n")
    raw = {"name": "two", "seed": 0, "data": {"source": "csv", "path": str(tmp_path / "two.csv"),
                                              "target": ["t_price", "t_rate"], "standardize_target": True},
           "model": {"name": "linear"}, "output": {"progress": "off"}, "metrics": ["mse"],
           "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 32, "epochs": 2}}
    run = _train(tmp_path, raw)
    figure = next(f for f in figures_of(write_report([run], tmp_path / "r.html").read_text())
                  if f["layout"]["title"]["text"].startswith("residuals"))
    assert [t["name"] for t in figure["data"]] == ["t_price", "t_rate"]
    assert [a["text"] for a in figure["layout"]["annotations"]] == ["t_price", "t_rate"]
    price = np.asarray(array(figure["data"][0]["x"]))
    assert 1e5 < np.median(price) < 1e6  # the price in its units, not z-scores near 0


def test_multilabel_confusion_matrices_are_sklearns_per_label():
    from sklearn.metrics import multilabel_confusion_matrix

    rng = np.random.default_rng(4)
    y_true, y_pred = rng.integers(0, 2, (200, 3)), rng.integers(0, 2, (200, 3))
    y_pred[:, 2] = 0  # a label never predicted still gets its matrix
    counts = confusion_matrix(Predictions("multilabel", y_true, y_pred, ["a", "b", "c"]))
    np.testing.assert_array_equal(counts, multilabel_confusion_matrix(y_true, y_pred))


def test_multilabel_predictions_npz_is_read_as_multilabel(tmp_path):
    y_true = np.array([[1, 0, 1], [0, 0, 1]])
    np.savez(tmp_path / "predictions.npz", y_true=y_true, y_pred=1 - y_true, class_names=np.array(["r", "g", "b"]))
    predictions = load_predictions(tmp_path)
    assert predictions.task == "multilabel" and predictions.names == ["r", "g", "b"]
    np.testing.assert_array_equal(predictions.y_true, y_true)


def test_a_predictions_npz_that_is_a_link_or_declares_too_much_is_not_read(tmp_path, monkeypatch):
    import trainlab.npz_archive as npz_archive
    from trainlab.report.predictions import Unavailable

    elsewhere = tmp_path / "elsewhere.npz"
    np.savez(elsewhere, y_true=np.array([0, 1]), y_pred=np.array([0, 1]))
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "predictions.npz").symlink_to(elsewhere)
    found = load_predictions(linked)
    assert isinstance(found, Unavailable) and "symbolic link" in found.reason, found
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    np.savez_compressed(bomb / "predictions.npz", y_true=np.zeros(100_000), y_pred=np.zeros(100_000))
    monkeypatch.setattr(npz_archive, "array_bytes_limit", lambda: 1000)  # as if the arrays were larger than memory
    found = load_predictions(bomb)
    assert isinstance(found, Unavailable) and "declares shape" in found.reason, found


def test_multilabel_run_gets_one_2x2_matrix_per_label_not_a_class_matrix(tmp_path):
    from sklearn.metrics import multilabel_confusion_matrix

    splits = _npz_splits(tmp_path, lambda x, rng: (x @ np.array([[1.0, 0, -1], [0, 1, 1], [1, 1, 0]])
                                                   + 0.5 * rng.normal(size=(len(x), 3)) > 0).astype(int))
    raw = {"name": "tags", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "data.npz")},
           "model": {"name": "linear"}, "output": {"progress": "off"},
           "strategy": {"loss": "bce", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 32, "epochs": 3}}
    run = _train(tmp_path, raw)
    (run / "labels.json").write_text(json.dumps({"class_names": ["red", "big", "new"]}))
    logits = _linear_by_hand(run, splits["x_test"])
    assert np.abs(logits).min() > 1e-4  # no decision hangs on float32 rounding
    expected = multilabel_confusion_matrix(splits["y_test"], (logits > 0).astype(int))
    html = write_report([run], tmp_path / "r.html").read_text()
    heatmaps = [t for f in figures_of(html) for t in f["data"] if t["type"] == "heatmap"]
    assert [h["name"] for h in heatmaps] == ["red", "big", "new"]
    for heatmap, matrix in zip(heatmaps, expected, strict=True):
        np.testing.assert_array_equal(array(heatmap["customdata"]), matrix)
        assert heatmap["x"] == heatmap["y"] == ["absent", "present"]
        assert np.asarray(heatmap["text"])[0, 0] == f"TN {matrix[0, 0]}"
    assert "confusion matrix per label on the test split" in html


def test_several_run_folders_and_a_run_without_model_or_predictions(tmp_path):
    rng = np.random.default_rng(0)
    for name, quality in (("a", 0.9), ("b", 0.8)):
        fake_run(tmp_path / "x" / name, optimizer="sgd", lr=0.1, seed=0, quality=quality, rng=rng, epochs=4,
                 predictions=name == "a",
                 events=[{"event": "rollback", "step": 40, "epoch": 1, "lr": 0.05}] if name == "b" else None)
    html = write_report([tmp_path / "x/a", tmp_path / "x/b"], tmp_path / "r.html").read_text()
    assert "Confusion matrix / residuals unavailable for b:" in html and "no model.safetensors" in html
    assert "<td>rollback</td>" in html
    assert "confusion matrix on the test split: a" in html


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("not_a_run", "is not a run folder"), ("mixed", "pass one comparison folder"),
    ("bad_out", "must end in .html"), ("study", r"holds a tuning study \(trainlab tune\), whose report is .*report.html")])
def test_bad_paths_are_one_line_config_errors(tmp_path, seven_by_five, capsys, case, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.journal").write_text("")
    out = tmp_path / ("r.txt" if case == "bad_out" else "r.html")
    paths = {"missing": [tmp_path / "nope"], "not_a_run": [tmp_path / "empty"], "study": [tmp_path / "study"],
             "mixed": [seven_by_five, seven_by_five / "runs/digits/sgd/seed-0"], "bad_out": [seven_by_five]}[case]
    with pytest.raises(ConfigError, match=message):
        write_report(paths, out)
    assert main(["report", *map(str, paths), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not out.exists()


def test_classify_reads_a_comparison_and_its_runs(seven_by_five):
    comparison = classify([seven_by_five])
    assert set(comparison.runs["digits"]) == set(SEVEN)
    assert [r.seed for r in comparison.runs["digits"]["adam"]] == [0, 1, 2, 3, 4]


def test_cli_report_writes_the_file(seven_by_five, tmp_path, capsys):
    assert main(["report", str(seven_by_five), "-o", str(tmp_path / "r.html")]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'r.html'}")


# --------------------------------------------------------------------------- trainlab plot

def test_cli_plot_draws_one_line_per_run_with_the_legend_outside(seven_by_five, tmp_path, monkeypatch):
    from trainlab import plots

    drawn = {}
    real = plots.curves_figure

    def spy(histories, metric):
        drawn["figure"] = figure = real(histories, metric)
        return figure

    monkeypatch.setattr(plots, "curves_figure", spy)
    runs = [seven_by_five / f"runs/digits/{name}/seed-0" for name in SEVEN]
    assert main(["plot", *map(str, runs), "--metric", "val_accuracy", "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = drawn["figure"].axes[0]
    labels = [t.get_text() for t in axes.get_legend().get_texts()]
    assert labels == [f"{name}/seed-0" for name in SEVEN]  # seed-0 repeats, so the strategy folder is added
    assert axes.get_legend().get_bbox_to_anchor().x0 >= axes.get_window_extent().x1  # beside the axes
    first = [json.loads(x) for x in (runs[0] / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x]
    assert list(axes.get_lines()[0].get_ydata()) == [r["val_accuracy"] for r in first]


@pytest.mark.parametrize("args, message", [
    (["--metric", "val_nope"], "metric 'val_nope' is in no history"), (["-o", "c.gif"], "must end in one of"),
])
def test_cli_plot_bad_input_exits_2(seven_by_five, tmp_path, capsys, args, message):
    run = seven_by_five / "runs/digits/sgd/seed-0"
    argv = ["plot", str(run), *args, *([] if "-o" in args else ["-o", str(tmp_path / "c.png")])]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert main(["plot", str(seven_by_five), "-o", str(tmp_path / "c.png")]) == 2
    assert "is a comparison folder" in capsys.readouterr().err


def test_cli_plot_names_the_runs_it_leaves_out_for_lack_of_the_metric(seven_by_five, tmp_path, capsys):
    import shutil

    run = seven_by_five / "runs/digits/sgd/seed-0"
    other = tmp_path / "no-accuracy"
    shutil.copytree(run, other)
    records = [json.loads(line) for line in (other / "metrics.jsonl").read_text().splitlines()]
    (other / "metrics.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "val_accuracy"}) + "\n"
                                                 for r in records))
    assert main(["plot", str(run), str(other), "--metric", "val_accuracy", "-o", str(tmp_path / "c.png")]) == 0
    assert "warning: no 'val_accuracy' in no-accuracy: left out of the plot" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["schedule", "lr-find"])
def test_a_plot_path_of_another_format_is_refused_before_any_work(tmp_path, capsys, command, monkeypatch):
    import trainlab.config

    monkeypatch.setattr(trainlab.config, "load_config", lambda *a, **k: pytest.fail("read the config first"))
    assert main([command, str(tmp_path / "missing.yaml"), "--plot", str(tmp_path / "s.jpg")]) == 2
    assert capsys.readouterr().err == f"error: plot path '{tmp_path / 's.jpg'}' must end in one of .png, .pdf, .svg\n"


def test_a_diverged_seed_and_an_unfinished_run_without_summary_still_give_a_report(tmp_path):
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=3, epochs=4)
    diverged = root / "runs/digits/adam/seed-0"
    (diverged / "summary.json").write_text(json.dumps({"name": "x", "status": "diverged", "steps": 12, "events": []}))
    (diverged / "run.json").write_text(json.dumps({"format": 1, "status": "diverged"}))
    with (diverged / "metrics.jsonl").open("a") as handle:
        handle.write(json.dumps({"event": "diverged", "step": 12, "loss": None}) + "\n")
    running = root / "runs/digits/sgd/seed-2"  # a run still in progress has no summary.json yet
    (running / "summary.json").unlink()
    (running / "run.json").write_text(json.dumps({"format": 1, "status": "running"}))
    html = write_report([root], tmp_path / "r.html").read_text()
    assert "confusion matrix on the test split: adam, seed 1" in html  # the first finished seed of the best
    assert len(figures_of(html)) == 9


@pytest.mark.parametrize("folders", ["comparison", "run folder"])
def test_a_finished_run_without_its_summary_is_refused_as_compare_refuses_it(tmp_path, capsys, folders):
    """A finished run's summary.json deleted: compare refused the folder (exit 3), a damaged one made the report
    exit 3, but a missing one gave a report (exit 0) showing the run as if it had not finished."""
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, epochs=2)
    run = root / "runs/digits/sgd/seed-1"
    (run / "summary.json").unlink()
    out = tmp_path / "r.html"
    assert main(["report", str(root if folders == "comparison" else run), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    fix = (f"delete the folder {run} and run the same 'trainlab compare' command again to train that run again"
           if folders == "comparison" else "leave the run out of the report")
    assert err == (f"error: {run / 'summary.json'} of the finished run {run} is missing (its run.json says it "
                   f"finished, and a run writes its summary.json first); restore it from a copy, or {fix}\n")


def test_class_names_recorded_in_labels_json_name_the_confusion_matrix(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    (run / "labels.json").write_text(json.dumps({"class_names": names}))
    from trainlab.run_records import DIGESTS_KEY

    info = json.loads((run / "run.json").read_text())  # as a run trained with these names records them
    info[DIGESTS_KEY]["labels.json"] = hashlib.sha256((run / "labels.json").read_bytes()).hexdigest()
    (run / "run.json").write_text(json.dumps(info))
    predictions = load_predictions(run)
    assert predictions.names == names


def test_the_lr_chart_draws_each_param_groups_lr_where_the_records_have_them():
    """``lr/<label>`` columns (strategy.optimizer.groups): one line per label, the mean over seeds at each
    step (written here in NumPy), in the strategy's colour; a strategy without them keeps its one ``lr``."""
    from trainlab.report.figures import lr_figure

    rng = np.random.default_rng(4)
    steps = [5, 10, 15]
    head = rng.random((2, 3))  # seed x step
    routed = [[{"step": t, "lr": 0.1, "lr/rest": 0.1, "lr/head": head[s, i]} for i, t in enumerate(steps)]
              for s in range(2)]
    plain = [[{"step": t, "lr": 0.5 / (i + 1)} for i, t in enumerate(steps)]]
    figure = lr_figure({"muon": routed, "sgd": plain}, {"muon": "#111111", "sgd": "#222222"}).to_plotly_json()
    traces = {t["name"]: t for t in figure["data"]}
    assert list(traces) == ["muon · rest", "muon · head", "sgd"]
    assert array(traces["muon · head"]["y"]) == pytest.approx(head.mean(axis=0).tolist(), rel=1e-12)
    assert array(traces["muon · rest"]["y"]) == pytest.approx([0.1] * 3) and array(traces["sgd"]["x"]) == steps
    assert {traces[n]["line"]["color"] for n in ("muon · rest", "muon · head")} == {"#111111"}
    assert traces["muon · rest"]["line"]["dash"] != traces["muon · head"]["line"]["dash"]


def test_a_diverged_run_is_said_to_have_diverged_with_its_reason_not_to_be_resumed(tmp_path, capsys):
    """Its summary.json as a diverged run writes it: 'reason', no 'stop_reason', no metrics, no model. The
    report said 'no stop reason' and 'the run did not finish'; eval said "try 'trainlab resume'", which starts
    over and diverges again."""
    from trainlab import load_run

    run = tmp_path / "q"
    fake_run(run, optimizer="sgd", lr=0.001, seed=0, quality=0.5, rng=np.random.default_rng(0), epochs=2,
             predictions=False, status="diverged")
    reason = "training diverged at step 4: non-finite loss (inf)"
    (run / "summary.json").write_text(json.dumps({"name": "quartic", "status": "diverged", "steps": 10,
                                                  "events": [], "reason": reason}))
    html = write_report([run], tmp_path / "r.html").read_text()
    assert f"status diverged; {reason};" in html and "no stop reason" not in html
    assert f"No summary.json metrics (the run diverged: {reason})." in html
    assert f"no model.safetensors (the run diverged: {reason}; resuming would diverge again" in html
    assert "did not finish" not in html
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {run} has no model.safetensors (the run diverged: {reason}; resuming would "
                          "diverge again: train it again with a lower learning rate") and err.count("\n") == 1
    assert "trainlab resume" not in err and "did not finish" not in err
    with pytest.raises(RunDirError, match=r"the run diverged: training diverged at step 4.*strategy\.divergence"):
        load_run(run)


def test_a_run_without_a_model_that_did_not_diverge_is_still_told_to_resume(tmp_path, capsys):
    run = tmp_path / "r"
    fake_run(run, optimizer="sgd", lr=0.1, seed=0, quality=0.5, rng=np.random.default_rng(0), epochs=2,
             predictions=False, status="interrupted")
    assert main(["eval", str(run)]) == 2
    assert f"(the run did not finish; try 'trainlab resume {run}')" in capsys.readouterr().err


def test_a_finished_run_whose_model_was_deleted_is_told_to_train_again_not_to_resume(tmp_path, capsys):
    """resume refuses a finished run (it would tell the user to evaluate it): eval must not send them there."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "iris", "seed": 0, "data": {"source": "iris"}, "model": {"name": "linear"},
                                      "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1},
                                                   "epochs": 1}, "output": {"progress": "off"}}))
    run = tmp_path / "r"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    (run / "model.safetensors").unlink()
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {run} has no model.safetensors (the run finished, but the file was moved or deleted "
                   f"since: restore it, or train the run again with 'trainlab train {run / 'config.yaml'} --out {run} "
                   "--overwrite'; a comparison's run: delete its folder and run the comparison again; its "
                   "checkpoints still hold weights (step-000000003): eval and predict take --checkpoint last (the "
                   "newest step checkpoint's weights))\n")
    assert main(["eval", str(run), "--checkpoint", "last"]) == 0  # the way the line names works
    assert main(["train", str(run / "config.yaml"), "--out", str(run), "--overwrite", "--quiet"]) == 0
    assert main(["eval", str(run)]) == 0


def test_a_run_still_training_is_said_to_be_so_not_told_to_resume(tmp_path, capsys):
    """eval of a run another process trains (it holds the folder's lock): resume would be refused as in use."""
    from trainlab.run_lock import RunLock

    run = tmp_path / "r"
    fake_run(run, optimizer="sgd", lr=0.1, seed=0, quality=0.5, rng=np.random.default_rng(0), epochs=2,
             predictions=False, status="running")
    lock = RunLock(run)
    lock.acquire()
    try:
        assert main(["eval", str(run)]) == 2
        assert (f"error: {run} has no model.safetensors (the run is still training (process {os.getpid()} holds "
                "its lock): wait for it to finish)") in capsys.readouterr().err
    finally:
        lock.release()
    assert main(["eval", str(run)]) == 2  # the lock free again: an interrupted run, to be resumed
    assert f"(the run did not finish; try 'trainlab resume {run}')" in capsys.readouterr().err


@pytest.mark.parametrize(("verdict", "css", "test"), [("better", "verdict-better", "paired-t"),
                                                      ("worse on every seed", "verdict-worse-on-every-seed", "sign")])
def test_a_better_verdict_is_shown_with_its_holm_p_and_its_own_colour(tmp_path, verdict, css, test):
    """compare calls a lower-ranked strategy that beat the best on the shared seeds 'better', and one below the
    best on every seed where no test shows it 'worse on every seed'."""
    root = fake_comparison(tmp_path / "cmp", {name: SEVEN[name] for name in ("adam", "sgd", "hopeless")}, seeds=2)
    board = json.loads((root / "leaderboard.json").read_text())
    flaky = board["tasks"]["digits"]["strategies"][1]
    flaky["vs_best"].update({"verdict": verdict, "p_holm": 0.0123, "test": test})
    (root / "leaderboard.json").write_text(json.dumps(board))
    html = write_report([root], tmp_path / "report.html").read_text()
    row = re.search(rf'<td><span class="name">{flaky["name"]}</span></td>.*?</tr>', html, re.S).group(0)
    assert f'<span class="{css}">{verdict} (p_holm = 0.0123, {test})</span>' in row
    assert f".{css} {{" in html


@pytest.mark.parametrize("damage", ["tasks a list", "strategies a mapping", "an entry a number"])
def test_a_leaderboard_of_another_shape_is_one_data_error(tmp_path, capsys, damage):
    root = fake_comparison(tmp_path / "cmp", {name: SEVEN[name] for name in ("adam", "sgd")}, seeds=2)
    board = json.loads((root / "leaderboard.json").read_text())
    if damage == "tasks a list":
        board["tasks"] = [1, 2]
    elif damage == "strategies a mapping":
        board["tasks"]["digits"]["strategies"] = {"adam": 1}
    else:
        board["tasks"]["digits"]["strategies"][0] = 7
    (root / "leaderboard.json").write_text(json.dumps(board))
    assert main(["report", str(root), "--out", str(tmp_path / "r.html")]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root / 'leaderboard.json'} is not a leaderboard as 'trainlab compare' writes it")
    assert err.count("\n") == 1 and not (tmp_path / "r.html").exists()


# --------------------------------------------------------------------------- a run folder sent by someone else

def _tiny_run(folder: Path, config_extra: dict | None = None) -> Path:
    fake_run(folder, optimizer="sgd", lr=0.1, seed=0, quality=0.9, rng=np.random.default_rng(0), epochs=2,
             predictions=False)
    if config_extra:
        with open(folder / "config.yaml", "a") as handle:
            handle.write(json.dumps(config_extra)[1:-1] + "\n")  # one flow-style mapping entry per key
    return folder


@pytest.mark.parametrize("record, code", [("config.yaml", 2), ("run.json", 3), ("summary.json", 3),
                                          ("metrics.jsonl", 3), ("leaderboard.json", 3)])
def test_a_record_linked_to_a_file_outside_the_folder_is_refused_not_copied_into_the_report(
        tmp_path, capsys, record, code):
    """A folder sent to you can link config.yaml to your ~/.config/gh/hosts.yml: the report copied it."""
    secret = tmp_path / "hosts.yml"
    secret.write_text('{"oauth_token": "gho_SECRET123", "seed": 0}\n')  # valid YAML and JSON
    if record == "leaderboard.json":
        folder = fake_comparison(tmp_path / "cmp", {name: SEVEN[name] for name in ("adam", "sgd")}, seeds=2,
                                 target=None, epochs=2)
    else:
        folder = _tiny_run(tmp_path / "run")
    (folder / record).unlink()
    (folder / record).symlink_to(secret)
    out = tmp_path / "r.html"
    assert main(["report", str(folder), "-o", str(out)]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "symbolic link" in err
    assert not out.exists() and "SECRET" not in err


BOMB = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 7))


@pytest.mark.parametrize("record, text, code, message", [
    ("config.yaml", "l0: &l0 [x]\n" + BOMB, 2, "expands to more than"),  # 10^6 values: an alias bomb
    ("config.yaml", "[" * 5000 + "]" * 5000, 2, "nested too deeply"),
    ("config.yaml", "- a list\n", 3, "not a mapping of config sections"),
    ("config.yaml", f"seed: {'9' * 5000}\n", 2, "Exceeds the limit"),
    ("summary.json", "[" * 200_000 + "]" * 200_000, 3, "nested too deeply"),
    ("run.json", "[" * 200_000 + "]" * 200_000, 3, "nested too deeply"),
    ("summary.json", "[1, 2]", 3, "not an object"),
])
def test_a_hostile_record_is_one_error_line_with_exit_2_or_3(tmp_path, capsys, record, text, code, message):
    folder = _tiny_run(tmp_path / "run")
    (folder / record).write_text(text)
    out = tmp_path / "r.html"
    assert main(["report", str(folder), "-o", str(out)]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err and not out.exists()


def test_a_deeply_nested_metrics_line_is_skipped_like_a_torn_one(tmp_path):
    folder = _tiny_run(tmp_path / "run")
    with open(folder / "metrics.jsonl", "a") as handle:
        handle.write("[" * 200_000 + "]" * 200_000 + "\n")
    records, _ = read_metrics(folder / "metrics.jsonl")
    assert len(records) > 0 and all(isinstance(r, dict) for r in records)


def test_a_damaged_metrics_line_is_named_in_one_warning_and_the_curves_keep_the_other_lines(tmp_path, capsys):
    """The report left a damaged line out of its curves without a word: a run looked as if it had never
    logged that epoch."""
    folder = _tiny_run(tmp_path / "run")
    path = folder / "metrics.jsonl"
    lines = path.read_text().splitlines()
    intact = [json.loads(line) for line in lines]
    lines[1] = lines[1][: len(lines[1]) // 2]  # a line damaged in the middle of the file
    path.write_text("\n".join(lines) + "\n")
    records, events = read_metrics(path)
    kept = intact[:1] + intact[2:]
    assert records + events and records == [r for r in kept if "event" not in r]
    assert events == [r for r in kept if "event" in r]
    assert capsys.readouterr().err == (f"warning: {path}: line 2 is not a JSON record (the file was damaged after "
                                       "trainlab wrote it); left out of the report's curves\n")
    assert read_metrics(path, left_out_of=None) == (records, events)  # a caller that warned already
    assert capsys.readouterr().err == ""
    out = tmp_path / "r.html"
    assert main(["report", str(folder), "-o", str(out)]) == 0 and out.is_file()
    err = capsys.readouterr().err
    assert err.count(f"warning: {path}: line 2 is not a JSON record") == 1 and "error" not in err


def test_a_config_key_holding_html_is_escaped_in_the_config_diff(tmp_path):
    a = _tiny_run(tmp_path / "a")
    b = _tiny_run(tmp_path / "b", {"<img src=x onerror=alert(document.cookie)>": 1})
    html = write_report([a, b], tmp_path / "r.html").read_text()
    assert "<code>&lt;img src=x onerror=alert(document.cookie)&gt;</code>" in html
    assert "<img" not in html


def test_a_leaderboard_verdict_holding_html_is_escaped_and_gets_the_neutral_class(tmp_path):
    root = fake_comparison(tmp_path / "cmp", {name: SEVEN[name] for name in ("adam", "sgd", "hopeless")}, seeds=2,
                           target=None, epochs=2)
    board = json.loads((root / "leaderboard.json").read_text())
    first, second, third = board["tasks"]["digits"]["strategies"]
    first["vs_best"] = {"verdict": '"><img src=x onerror=alert(1)>'}
    second["vs_best"] = {"verdict": "worse", "p_holm": 0.01, "test": "<script>alert(2)</script>"}
    third["vs_best"] = {"verdict": "x onmouseover=alert(3)"}
    (root / "leaderboard.json").write_text(json.dumps(board))
    html = write_report([root], tmp_path / "report.html").read_text()
    assert "<img" not in html and "<script>alert" not in html and "onmouseover=alert(3)" in html
    assert '<span class="verdict-other">&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</span>' in html
    assert '<span class="verdict-other">x onmouseover=alert(3)</span>' in html
    assert '<span class="verdict-worse">worse (p_holm = 0.01, &lt;script&gt;alert(2)&lt;/script&gt;)</span>' in html


def _visible(page: str) -> str:
    """The page's text as a reader sees it (tags dropped, entities unescaped, runs of space as one)."""
    main_part = page.split("<main>")[1].split("</main>")[0]
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", main_part)).split())


def test_the_reasons_runs_failed_are_under_the_leaderboard_and_no_interval_gets_no_method(tmp_path):
    """A strategy whose 5 seeds all diverged showed only "0 (5)", "– ± –" and "[–, –] t": the reasons were in
    leaderboard.json's failures and the terminal, never the report; and "t" named an interval that is not there."""
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=2)
    board = json.loads((root / "leaderboard.json").read_text())
    sgd = next(e for e in board["tasks"]["digits"]["strategies"] if e["name"] == "sgd")
    reason = "diverged: training diverged at step 5: non-finite loss (nan)"
    sgd.update(runs=0, failed=2, failures=[{"seed": 0, "reason": reason}, {"seed": 1, "reason": reason}])
    sgd["metrics"]["test_accuracy"].update(mean=None, std=None, median=None, ci95=None, ci_method="t", values=[],
                                           seeds=[])
    (root / "leaderboard.json").write_text(json.dumps(board))
    page = write_report([root], tmp_path / "r.html").read_text()
    text = _visible(page)
    assert "2 runs failed and are left out of the statistics above" in text
    assert f"strategy seed reason sgd 0 {reason} sgd 1 {reason}" in text
    assert "[–, –]" not in text and "– t " not in text  # no interval, and no method named for it
    leaderboard = text[text.index("strategy test_accuracy"):text.index("runs failed")]
    assert "] t " in leaderboard  # adam's interval keeps its method


def test_a_seed_that_did_not_run_is_counted_and_named_under_the_leaderboard(tmp_path):
    """A seed another process held (compare's not_run) left 2 of --seeds 3 values in the report without a word,
    where the terminal and leaderboard.json said "1 not run" and why."""
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=2)
    board = json.loads((root / "leaderboard.json").read_text())
    adam = next(e for e in board["tasks"]["digits"]["strategies"] if e["name"] == "adam")
    reason = "busy: another process holds its folder (lock cmp/runs/digits/adam/seed-2/.lock)"
    adam.update(missing=1, not_run=[{"seed": 2, "reason": reason}])
    (root / "leaderboard.json").write_text(json.dumps(board))
    text = _visible(write_report([root], tmp_path / "r.html").read_text())
    assert " 2 (0; 1 not run) " in text
    assert f"1 seed did not run and is left out of the statistics above (rerun the same trainlab compare command to " \
           f"train it). Why: strategy seed reason adam 2 {reason}" in text


@pytest.mark.filterwarnings("ignore:Degrees of freedom:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_one_seed_is_said_in_the_singular_and_its_chart_names_no_interval(tmp_path):
    """The lead said "1 seeds" and the chart "mean with 95% CI (t)" over no interval (the fixture's std of one
    seed warns)."""
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=1, target=None, epochs=2)
    board = json.loads((root / "leaderboard.json").read_text())
    for entry in board["tasks"]["digits"]["strategies"]:  # as compare writes one seed: no interval, no method
        entry["metrics"]["test_accuracy"].update(ci95=None, ci_method=None)
    (root / "leaderboard.json").write_text(json.dumps(board))
    page = write_report([root], tmp_path / "r.html").read_text()
    assert "1 task, 2 strategies, 1 seed; ranked by" in _visible(page)
    title = figures_of(page)[0]["layout"]["title"]["text"]
    assert title == "test_accuracy: mean (no 95% CI: fewer than 2 finished seeds), dots are seeds"


def test_long_names_get_short_distinct_labels_in_every_chart_and_wrap_in_the_table(tmp_path):
    """~190-character names: the charts' axes and legends show labels of at most 28 / 40 characters, distinct,
    with the full name in the hover text; the table keeps the full name in a cell that wraps."""
    stem = "adam_with_a_very_long_descriptive_name_" * 4
    names = {stem + "lr=0.001": ("adam", 0.001, 0.95), stem + "lr=0.003": ("adam", 0.003, 0.96),
             "sgd": ("sgd", 0.1, 0.9)}
    root = fake_comparison(tmp_path / "cmp", names, seeds=2, target=None, epochs=2)
    page = write_report([root], tmp_path / "r.html").read_text()
    for name in names:
        assert f'<span class="name">{name}</span>' in page
    chart, curves = figures_of(page)[0], figures_of(page)[1]
    ticks = [trace["x"][0] for trace in chart["data"] if trace["type"] == "scatter"]
    assert len(set(ticks)) == 3 and all(len(tick) <= 28 for tick in ticks)
    assert ticks[0].endswith("lr=0.003") and ticks[1].endswith("lr=0.001")  # ranked: best first
    assert any(stem + "lr=0.003" in trace.get("hovertemplate", "") for trace in chart["data"])
    legend = [trace["name"] for trace in curves["data"] if trace.get("showlegend", True) is not False]
    assert len(set(legend)) == 3 and all(len(name) <= 40 for name in legend)


def test_seeds_without_a_time_to_target_are_told_apart_as_missed_failed_or_not_run():
    """A strategy whose 4 crashed seeds never trained was labelled "(4 missed)" in the time-to-target chart."""
    from trainlab.report import figures
    from trainlab.report.sections import _unreached

    entry = {"seeds": [0, 1, 2, 3, 4, 5], "failures": [{"seed": 1, "reason": "RuntimeError"}, {"seed": 3, "reason": "x"}],
             "not_run": [{"seed": 5, "reason": "disk full"}]}
    values = [12.0, None, None, None, 8.5, None]
    assert _unreached(entry, values) == "1 missed, 2 failed, 1 not run"
    assert _unreached(entry, [12.0, 3.0, 1.0, 2.0, 8.5, 4.0]) == ""
    chart = figures.box_by_group({"flaky": values, "steady": [1.0] * 6}, {"flaky": "#111", "steady": "#222"}, "s",
                                 "time", note_missing={"flaky": _unreached(entry, values), "steady": ""})
    assert list(chart.layout.xaxis.categoryarray) == ["flaky<br>(1 missed, 2 failed, 1 not run)", "steady"]
