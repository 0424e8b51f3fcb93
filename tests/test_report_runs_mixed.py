"""Reports and plots of run folders that differ: in record kind, in task, in how they ended, in how they are named.

Defects a user test found: the by-step train_loss line joined step records (mean since the last step record)
and epoch records (mean over the epoch), a false spike at each epoch's end; a report of a regression run and a
classification run showed only the first run's first metric ("–" for the other's accuracy); ``trainlab plot
runs/wine runs/wine`` drew one line labelled ``//tmp/.../runs/wine``; a SIGKILLed run was "running"; the
gap charts of run folders titled their axis "strategy"; "in 1 of 2 runs, the others are".
"""

from __future__ import annotations

import base64
import html as html_module
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from report_fixtures import fake_run

from trainlab.cli import main
from trainlab.report import write_report
from trainlab.report.sections import evaluated_model_text
from trainlab.report.series import curve_records, seed_band
from trainlab.report.sources import RunRecords, run_labels


def figures_of(html: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json" id="figure-\d+-json">(.*?)</script>', html, re.S)
    return [json.loads(b.replace("<\\/", "</")) for b in blocks]


def array(value) -> list:
    """A plotly JSON array: a list, or a typed array {"dtype", "bdata" (base64)[, "shape"]}."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).tolist()
    return value


def figure_titled(html: str, start: str) -> dict:
    found = [f for f in figures_of(html) if str(f["layout"]["title"]["text"]).startswith(start)]
    assert len(found) == 1, [f["layout"]["title"]["text"] for f in figures_of(html)]
    return found[0]


def text_of(html: str) -> str:
    """The page's words: tags, scripts and styles out, spaces collapsed."""
    body = re.sub(r"<(script|style).*?</\1>", "", html, flags=re.S)
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", body)).split())


# --------------------------------------------------------------------------- records of both kinds

EPOCHS, STEPS_PER_EPOCH, LOG_EVERY = 4, 18, 5


def mixed_records(rng: np.random.Generator) -> tuple[list[dict], dict[int, float], dict[int, float]]:
    """Records as a run with a step logger writes them: a step record every 5 steps (train_loss: the mean since
    the last one) and an epoch record at each epoch's end (train_loss: the epoch's mean, far above the
    windows around it). Returns (records, step-record train_loss by step, epoch-record val_loss by step)."""
    records, step_means, validations = [], {}, {}
    for step in range(1, EPOCHS * STEPS_PER_EPOCH + 1):
        if step % LOG_EVERY == 0:
            step_means[step] = float(rng.uniform(0.2, 0.6))
            records.append({"scope": "step", "step": step, "epoch": round(step / STEPS_PER_EPOCH, 6),
                            "train_loss": step_means[step], "lr": 0.003, "samples_per_s": 900.0})
        if step % STEPS_PER_EPOCH == 0:
            validations[step] = float(rng.uniform(0.3, 0.5))
            records.append({"epoch": step // STEPS_PER_EPOCH, "step": step, "lr": 0.003,
                            "train_loss": float(rng.uniform(1.2, 1.4)), "val_loss": validations[step],
                            "elapsed_s": 0.1 * step})
    return records, step_means, validations


def test_a_by_step_train_loss_line_takes_the_step_records_only():
    records, step_means, validations = mixed_records(np.random.default_rng(0))
    band = seed_band([records], "train_loss")
    assert band.x.tolist() == sorted(step_means)  # 18, 36, ... (epoch ends) are not on the line
    np.testing.assert_array_equal(band.mean, [step_means[s] for s in sorted(step_means)])
    assert max(band.mean) < 1.0  # no epoch mean (1.2 to 1.4) among them: no spike
    # the validations are values at their step: the epoch records' own line
    assert seed_band([records], "val_loss").x.tolist() == sorted(validations)


def test_the_mean_over_seeds_takes_one_kind_of_record_per_seed():
    rng = np.random.default_rng(1)
    seeds = [mixed_records(rng) for _ in range(3)]
    band = seed_band([records for records, _, _ in seeds], "train_loss")
    by_seed = np.array([[means[s] for s in sorted(means)] for _, means, _ in seeds])  # seed x logged step
    np.testing.assert_allclose(band.mean, by_seed.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(band.low, by_seed.min(axis=0), rtol=1e-12)
    np.testing.assert_allclose(band.high, by_seed.max(axis=0), rtol=1e-12)


def test_runs_without_step_records_and_the_clock_axis_take_the_epoch_records():
    records, _, _ = mixed_records(np.random.default_rng(2))
    epochs = [r for r in records if "scope" not in r]
    assert curve_records(epochs, "train_loss") == epochs  # no step records: the epoch means
    # step records hold no elapsed_s: on the wall-clock axis the line is the epoch records' alone
    clock = seed_band([records], "train_loss", axis="elapsed_s")
    np.testing.assert_allclose(clock.x, [r["elapsed_s"] for r in epochs])
    np.testing.assert_array_equal(clock.mean, [r["train_loss"] for r in epochs])


def write_run(folder: Path, *, metrics: list[str], summary: dict | None, records: list[dict],
              status: str = "finished", loss: str = "cross_entropy") -> Path:
    """A run folder as trainlab train writes it (config.yaml, metrics.jsonl, run.json, summary.json)."""
    folder.mkdir(parents=True)
    config = {"name": folder.name, "seed": 0, "data": {"source": "wine"}, "model": {"name": "mlp", "hidden": [16]},
              "strategy": {"loss": loss, "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 10,
                           "epochs": EPOCHS}, "metrics": metrics}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "run.json").write_text(json.dumps({"format": 1, "trainlab": "0.1.0", "status": status}))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps({"name": folder.name, "status": status, "seed": 0,
                                                         "epochs_run": EPOCHS, "steps": EPOCHS * STEPS_PER_EPOCH,
                                                         "train_time_s": 0.5, **summary}))
    return folder


def test_the_reports_by_step_train_loss_is_the_step_records(tmp_path):
    records, step_means, _ = mixed_records(np.random.default_rng(3))
    run = write_run(tmp_path / "adam", metrics=["accuracy"], records=records,
                    summary={"val": {"loss": 0.4, "accuracy": 0.9}, "test": {"loss": 0.41, "accuracy": 0.88}})
    html = write_report([run], tmp_path / "r.html").read_text()
    curves = figure_titled(html, "learning curves by step")
    train = [trace for trace in curves["data"] if trace.get("hovertemplate", "").endswith("<extra>train_loss</extra>")]
    assert len(train) == 1
    assert array(train[0]["x"]) == sorted(step_means)
    np.testing.assert_allclose(array(train[0]["y"]), [step_means[s] for s in sorted(step_means)])


# --------------------------------------------------------------------------- runs of different tasks

CLASSIFIER = {"val": {"loss": 0.041, "accuracy": 1.0, "f1": 0.97}, "test": {"loss": 0.023, "accuracy": 0.94, "f1": 0.93}}
REGRESSOR = {"val": {"loss": 0.57, "mse": 3418.3, "mae": 47.3, "r2": 0.404},
             "test": {"loss": 0.48, "mse": 2876.5, "mae": 42.98, "r2": 0.516}}


@pytest.fixture
def two_tasks(tmp_path) -> tuple[Path, Path]:
    records, _, _ = mixed_records(np.random.default_rng(4))

    def validated(key: str) -> list[dict]:  # each epoch record with the task's validation metric
        return [{**r, key: 0.5} if "val_loss" in r else r for r in records]

    wine = write_run(tmp_path / "wine", metrics=["accuracy", "f1"], summary=CLASSIFIER,
                     records=validated("val_accuracy"))
    diab = write_run(tmp_path / "diab", metrics=["mse", "mae", "r2"], summary=REGRESSOR, records=validated("val_mse"),
                     loss="mse")
    return diab, wine


def results_rows(html: str) -> dict[str, dict[str, str]]:
    """The results section's tables as {run: {column: cell}}."""
    section = html.split(">results</h2>", 1)[1].split("<h2", 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for table in re.findall(r"<table>(.*?)</table>", section, re.S):
        header = [text_of(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>", 1)[1], re.S):
            cells = [text_of(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


@pytest.mark.parametrize("wine_first", [False, True])
def test_each_run_shows_its_own_metrics(two_tasks, tmp_path, wine_first):
    diab, wine = two_tasks
    html = write_report([wine, diab] if wine_first else [diab, wine], tmp_path / "r.html").read_text()
    rows = results_rows(html)
    for run, summary in (("wine", CLASSIFIER), ("diab", REGRESSOR)):
        shown = {k: v for k, v in rows[run].items() if k.startswith(("val_", "test_"))}
        expected = {f"{split}_{name}": f"{value:.4g}" for split in ("val", "test")
                    for name, value in summary[split].items() if (split, name) != ("val", "loss")}
        assert shown == expected  # every metric the run has, none it lacks, and no "–"
        assert rows[run]["status"] == "finished" and rows[run]["epochs"] == str(EPOCHS)


@pytest.mark.parametrize("wine_first", [False, True])
def test_a_bar_chart_per_metric_over_the_runs_that_have_it(two_tasks, tmp_path, wine_first):
    diab, wine = two_tasks
    html = write_report([wine, diab] if wine_first else [diab, wine], tmp_path / "r.html").read_text()
    accuracy = figure_titled(html, "test_accuracy by run")["data"][0]
    assert (array(accuracy["x"]), array(accuracy["y"])) == (["wine"], [0.94])
    mse = figure_titled(html, "test_mse by run")["data"][0]
    assert (array(mse["x"]), array(mse["y"])) == (["diab"], [2876.5])
    # the units, as a comparison's charts give them (a browser check: "test_mse" alone)
    assert [figure_titled(html, f"{key} by run")["layout"]["yaxis"]["title"]["text"]
            for key in ("test_accuracy", "test_mse")] == ["test_accuracy (fraction)", "test_mse (target units²)"]
    assert "The runs train different losses (" in html  # one loss axis holds cross-entropy and mse
    # the curves show each task's validation metric; the val-vs-test gap of each over its own runs
    curves = figure_titled(html, "learning curves by step")
    assert {a["text"] for a in curves["layout"]["annotations"]} >= {"val_accuracy", "val_mse"}
    for name, run, gap in (("accuracy", "wine", 1.0 - 0.94), ("mse", "diab", 3418.3 - 2876.5)):
        box = figure_titled(html, f"validation vs test {name} ")["data"]
        assert [array(trace["x"])[0] for trace in box] == [run]
        assert array(box[0]["y"]) == [pytest.approx(gap)]


# --------------------------------------------------------------------------- labels and repeated folders

def records_at(*paths: str) -> list[RunRecords]:
    return [RunRecords(Path(path), {}, [], [], {}, {}) for path in paths]


def test_parents_are_added_only_to_the_names_that_repeat():
    runs = records_at("/r/A/adam/seed-0", "/r/B/adam/seed-0", "/r/C/base/adam/seed-0", "/r/ut1/runs/wine")
    assert run_labels(runs) == ["A/adam/seed-0", "B/adam/seed-0", "base/adam/seed-0", "wine"]


def test_a_label_that_reaches_the_root_is_the_absolute_path_never_two_slashes():
    assert run_labels(records_at("/a/x", "/b/a/x")) == ["/a/x", "a/x"]
    assert not any(label.startswith("//") for label in run_labels(records_at("/t/wine", "/t/wine")))


def plotted_labels(monkeypatch, argv: list[str]) -> list[str]:
    from trainlab import plots

    drawn = {}
    real = plots.curves_figure

    def spy(histories, metric):
        drawn["figure"] = real(histories, metric)
        return drawn["figure"]

    monkeypatch.setattr(plots, "curves_figure", spy)
    assert main(["plot", *argv]) == 0
    return [text.get_text() for text in drawn["figure"].axes[0].get_legend().get_texts()]


@pytest.mark.parametrize("second", ["runs/wine", "runs/wine/", "ABSOLUTE", "./runs/../runs/wine"])
def test_one_folder_given_twice_is_plotted_and_reported_once_by_its_name(tmp_path, monkeypatch, second):
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path / "runs/wine", optimizer="adam", lr=0.01, seed=0, quality=0.9, rng=np.random.default_rng(5),
             epochs=3, predictions=False)
    second = str(tmp_path / "runs/wine") if second == "ABSOLUTE" else second
    assert plotted_labels(monkeypatch, ["runs/wine", second, "-o", "pp.png"]) == ["wine"]
    html = write_report(["runs/wine", second], tmp_path / "r.html").read_text()
    assert "trainlab run: " in html  # one run folder: the single-run page


def test_a_unique_name_beside_repeated_ones_keeps_its_bare_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(6)
    folders = ["A/adam/seed-0", "B/adam/seed-0", "C/base/adam/seed-0", "ut1/runs/wine"]
    for folder in folders:
        fake_run(tmp_path / folder, optimizer="adam", lr=0.01, seed=0, quality=0.9, rng=rng, epochs=3,
                 predictions=False)
    assert plotted_labels(monkeypatch, [*folders, "-o", "pp.png"]) == [
        "A/adam/seed-0", "B/adam/seed-0", "base/adam/seed-0", "wine"]


# --------------------------------------------------------------------------- a killed run

def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("writer", ["killed", "no lock", "alive"])
def test_a_run_whose_writer_is_gone_is_stopped_not_running(tmp_path, writer):
    records, step_means, _ = mixed_records(np.random.default_rng(7))
    run = write_run(tmp_path / "killed2", metrics=["accuracy"], summary=None, records=records, status="running")
    if writer != "no lock":
        (run / ".lock").write_text(str(os.getpid() if writer == "alive" else dead_pid()))
    html = text_of(write_report([run], tmp_path / "r.html").read_text())
    last_epoch = EPOCHS * STEPS_PER_EPOCH  # the records' last step and clock: an epoch record's
    counts = f"{EPOCHS} epochs, {last_epoch} steps, {0.1 * last_epoch:.4g} s training (from its records"
    assert counts in html
    if writer == "alive":  # a live process holds its lock: still running
        assert "status running; no stop reason;" in html and "end: running" in html
        return
    assert "status stopped; writer gone, not finished (killed?); resume with 'trainlab resume " in html
    assert "end: stopped" in html and "status running" not in html and "end: running" not in html


# --------------------------------------------------------------------------- gap charts

def test_the_gap_charts_of_run_folders_name_their_axis_run(two_tasks, tmp_path):
    html = write_report(list(two_tasks), tmp_path / "r.html").read_text()
    for start in ("generalisation gap in loss of the runs reporting accuracy, f1,",
                  "generalisation gap in loss of the runs reporting mse, mae, r2,",
                  "validation vs test accuracy", "validation vs test mse"):
        assert figure_titled(html, start)["layout"]["xaxis"]["title"]["text"] == "run"


def _restored(stopping: bool) -> RunRecords:
    config = {"strategy": {"early_stopping": {"monitor": "val_loss"} if stopping else None}}
    return RunRecords(Path("r"), config, [], [], {"status": "finished", "best_epoch": 3}, {})


@pytest.mark.parametrize(("restored", "runs", "says"), [
    (1, 2, "in 1 of 2 runs, the other is the model at the end of training"),
    (2, 4, "in 2 of 4 runs, the others are the model at the end of training"),
    (1, 3, "in 1 of 3 runs, the others are the model at the end of training"),
])
def test_the_validation_vs_test_title_counts_the_other_runs_in_number(restored, runs, says):
    text = evaluated_model_text([_restored(i < restored) for i in range(runs)])
    assert text == f"early stopping restored the epoch of the best val_loss {says}"


def test_every_run_restored_by_different_monitors_is_said_as_all_chosen():
    """Two runs restored by val_log_loss and val_loss read "in 2 of 2 runs, the others are the model at the end
    of training": there were no others."""
    def restored_by(monitor: str) -> RunRecords:
        config = {"strategy": {"early_stopping": {"monitor": monitor}}}
        return RunRecords(Path("r"), config, [], [], {"status": "finished", "best_epoch": 3}, {})

    assert evaluated_model_text([restored_by("val_log_loss"), restored_by("val_loss")]) == \
        "early stopping restored the epoch of the best val_log_loss or val_loss: chosen on validation"
    assert evaluated_model_text([restored_by("train_loss"), restored_by("val_loss")]) == \
        "early stopping restored the epoch of the best train_loss or val_loss: chosen on validation or on the " \
        "training data"


def test_runs_of_different_tasks_get_a_loss_gap_chart_each_as_their_tables(two_tasks, tmp_path):
    """A cross-entropy gap and a standardised-MSE gap are not on one scale: one chart per results table."""
    html = write_report(list(two_tasks), tmp_path / "r.html").read_text()
    for start, run in (("generalisation gap in loss of the runs reporting mse, mae, r2, trained on mse ", "diab"),
                       ("generalisation gap in loss of the runs reporting accuracy, f1, trained on cross_entropy ",
                        "wine")):
        assert [array(trace["x"])[0] for trace in figure_titled(html, start)["data"]] == [run]
    assert len([f for f in figures_of(html) if f["layout"]["title"]["text"].startswith("generalisation gap")]) == 2


def test_runs_of_one_task_that_train_different_losses_get_a_loss_gap_chart_each(tmp_path):
    records, _, _ = mixed_records(np.random.default_rng(8))
    runs = [write_run(tmp_path / name, metrics=["mse", "mae", "r2"], summary=REGRESSOR, records=records, loss=loss)
            for name, loss in (("mse", "mse"), ("huber", "huber"), ("mse2", "mse"))]
    html = write_report(runs, tmp_path / "r.html").read_text()
    charts = {loss: figure_titled(html, f"generalisation gap in loss of the runs trained on {loss} ")
              for loss in ("mse", "huber")}
    assert [array(trace["x"])[0] for trace in charts["mse"]["data"]] == ["mse", "mse2"]
    assert [array(trace["x"])[0] for trace in charts["huber"]["data"]] == ["huber"]


def test_runs_of_one_task_and_loss_share_one_untitled_loss_gap_chart(tmp_path):
    records, _, _ = mixed_records(np.random.default_rng(9))
    runs = [write_run(tmp_path / name, metrics=["accuracy", "f1"], summary=CLASSIFIER, records=records)
            for name in ("a", "b")]
    chart = figure_titled(write_report(runs, tmp_path / "r.html").read_text(), "generalisation gap in loss")
    assert chart["layout"]["title"]["text"].startswith("generalisation gap in loss (above 0")
    assert [array(trace["x"])[0] for trace in chart["data"]] == ["a", "b"]
