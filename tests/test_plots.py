"""Plots: valid PNG files written atomically, and the plotted data equals what was asked for."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from trainlab.errors import ConfigError
from trainlab.lr_finder import suggest_lr
from trainlab.plots import (
    curves_figure,
    lr_finder_figure,
    plot_curves,
    plot_lr_finder,
    plot_schedule,
    save_figure,
    schedule_figure,
)
from trainlab.schedules import build_schedule, schedule_series

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path) -> None:
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_SIGNATURE
    image = imread(path)  # decodes the whole file: a truncated PNG fails here
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0  # something was drawn


def lines_with_gid(figure: Figure, gid: str):
    return [line for line in figure.axes[0].get_lines() if line.get_gid() == gid]


def test_schedule_figure_plots_the_schedule_values_and_epoch_boundaries():
    schedule = build_schedule({"name": "warmup_cosine", "warmup_steps": 10, "min_factor": 0.1}, 95, 10)
    figure = schedule_figure(schedule, 95, 3e-4, steps_per_epoch=10, title="wc")
    (line,) = lines_with_gid(figure, "lr")
    x, y = line.get_data()
    np.testing.assert_array_equal(np.asarray(x), np.arange(95))
    np.testing.assert_allclose(np.asarray(y), 3e-4 * np.array(schedule_series(schedule, 95)), rtol=1e-15)
    boundaries = [line.get_xdata()[0] for line in lines_with_gid(figure, "epoch_boundary")]
    assert boundaries == list(range(10, 95, 10))
    assert figure.axes[0].get_title() == "wc"


def test_schedule_figure_draws_each_optimizer_groups_lr(write_config, tmp_path, capsys):
    """Per-group lrs (the speedrun's Muon 0.24 beside SGD 106 and 1340): one line each, lr_g x the
    schedule, on a log axis when they span more than 100x."""
    schedule = build_schedule({"name": "warmup_linear", "warmup_steps": 0}, 40, 10)
    factors = np.array(schedule_series(schedule, 40))
    groups = {"filters": 0.24, "biases": 106.0, "head": 1340.0}
    figure = schedule_figure(schedule, 40, 106.0, steps_per_epoch=10, group_lrs=groups)
    for name, lr in groups.items():
        (line,) = lines_with_gid(figure, f"lr:{name}")
        np.testing.assert_allclose(np.asarray(line.get_ydata()), lr * factors, rtol=1e-12)
        assert line.get_label() == f"{name} (lr {lr:g})"
    assert figure.axes[0].get_yscale() == "log"
    near = schedule_figure(schedule, 40, 0.1, group_lrs={"a": 0.1, "b": 0.3})
    assert near.axes[0].get_yscale() == "linear"
    # trainlab schedule: the groups' lrs come from the config (a group without lr takes the top-level one)
    from tests.conftest import DIGITS_MLP
    from trainlab.cli import main

    config = write_config(DIGITS_MLP, strategy__optimizer={
        "name": "sgd", "lr": 0.05, "groups": [{"name": "head", "select": "head", "lr": 0.5}, {"select": "biases"}]})
    assert main(["schedule", str(config), "--plot", str(tmp_path / "lr.png")]) == 0
    assert "groups: head lr 0.5, group1 lr 0.05)" in capsys.readouterr().out
    assert_png(tmp_path / "lr.png")
    twins = write_config(DIGITS_MLP, strategy__optimizer={
        "name": "sgd", "lr": 0.05, "groups": [{"name": "a", "select": "head", "lr": 0.5}, {"name": "a", "select": "biases"}]})
    assert main(["schedule", str(twins), "--plot", str(tmp_path / "twins.png")]) == 2  # a name is a route: unique
    assert "groups[1]: groups[0] has the name 'a' too" in capsys.readouterr().err


def test_schedule_figure_without_epochs_has_no_boundaries_and_thins_many_epochs():
    schedule = build_schedule("constant", 50, 5)
    assert lines_with_gid(schedule_figure(schedule, 50, 0.1), "epoch_boundary") == []
    many = schedule_figure(build_schedule("cosine", 1000, 2), 1000, 0.1, steps_per_epoch=2)
    drawn = lines_with_gid(many, "epoch_boundary")
    assert 50 <= len(drawn) <= 100  # 499 boundaries thinned to at most 100 faint lines


def test_plot_schedule_writes_a_png(tmp_path):
    schedule = build_schedule({"name": "one_cycle"}, 200, 20)
    path = plot_schedule(schedule, 200, 0.01, tmp_path / "sub" / "schedule.png", steps_per_epoch=20)
    assert path == tmp_path / "sub" / "schedule.png"
    assert_png(path)
    assert sorted(os.listdir(path.parent)) == ["schedule.png"]  # no temp file left behind


def test_lr_finder_figure_marks_the_suggestion_on_a_log_axis():
    lrs = np.geomspace(1e-5, 1.0, 30)
    losses = 1.0 - 0.5 * np.tanh(np.log10(lrs) + 3)
    losses[-1] = np.nan  # the divergence that ended the sweep is left out
    figure = lr_finder_figure(lrs, losses, suggestion=1e-3)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log"
    (loss_line,) = lines_with_gid(figure, "loss")
    np.testing.assert_allclose(loss_line.get_xdata(), lrs[:-1])
    np.testing.assert_allclose(loss_line.get_ydata(), losses[:-1])
    (marker,) = lines_with_gid(figure, "suggestion")
    assert marker.get_xdata()[0] == pytest.approx(1e-3)
    (point,) = lines_with_gid(figure, "suggestion_point")
    nearest = np.argmin(np.abs(np.log(lrs[:-1] / 1e-3)))
    assert point.get_xdata()[0] == pytest.approx(lrs[nearest])
    assert "1.00e-03" in axes.get_legend().get_texts()[-1].get_text()


def test_plot_lr_finder_writes_a_png(tmp_path):
    lrs = np.geomspace(1e-6, 1.0, 20)
    path = plot_lr_finder(lrs, 1 / (1 + lrs), 1e-2, tmp_path / "lr_find.png")
    assert_png(path)
    assert lines_with_gid(lr_finder_figure(lrs, 1 / (1 + lrs), None), "suggestion") == []


def test_curves_figure_draws_one_line_per_strategy():
    histories = {
        "sgd": [{"epoch": 1, "val_loss": 0.9, "lr": 0.1}, {"epoch": 2, "val_loss": 0.5}, {"epoch": 3, "val_loss": 0.4}],
        "adam": [{"epoch": 1, "val_loss": 0.7}, {"epoch": 2}, {"epoch": 3, "val_loss": 0.2}],
        "no_val": [{"epoch": 1, "train_loss": 1.0}],
    }
    figure = curves_figure(histories, "val_loss")
    (sgd,) = lines_with_gid(figure, "curve:sgd")
    (adam,) = lines_with_gid(figure, "curve:adam")
    assert list(sgd.get_xdata()) == [1, 2, 3] and list(sgd.get_ydata()) == [0.9, 0.5, 0.4]
    assert list(adam.get_xdata()) == [1, 3] and list(adam.get_ydata()) == [0.7, 0.2]  # missing epoch skipped
    assert lines_with_gid(figure, "curve:no_val") == []
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["sgd", "adam"]


def test_curves_missing_metric_lists_available_keys(tmp_path):
    with pytest.raises(ConfigError, match="metric 'val_acc' is in no history; available: lr, val_loss"):
        plot_curves({"a": [{"epoch": 1, "val_loss": 0.3, "lr": 0.1}]}, "val_acc", tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_a_metric_that_is_not_a_number_per_epoch_is_refused_and_runs_without_it_are_named():
    from trainlab.plots import missing_metric

    histories = {"a": [{"epoch": 1, "val_confusion_matrix": [[3, 1], [0, 4]], "val_loss": 0.5, "ok": True}],
                 "b": [{"epoch": 1, "val_loss": 0.7}]}
    with pytest.raises(ConfigError, match=r"^metric 'val_confusion_matrix' is not one number per epoch \(it holds "
                                          r"a list\); plot one of: val_loss$"):
        curves_figure(histories, "val_confusion_matrix")
    with pytest.raises(ConfigError, match=r"available: val_loss; did you mean 'val_loss'\?$"):  # lists and booleans: not offered
        curves_figure(histories, "val_nope")
    assert missing_metric(histories, "val_confusion_matrix") == ["b"]
    assert missing_metric(histories, "val_loss") == []


def test_plot_curves_writes_a_png(tmp_path):
    histories = {name: [{"epoch": e, "val_loss": 1 / (e + k)} for e in range(1, 11)] for k, name in enumerate("abc")}
    assert_png(plot_curves(histories, "val_loss", tmp_path / "curves.png"))


def test_save_is_atomic_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    figure = schedule_figure(build_schedule("constant", 10, 1), 10, 0.1)

    def fail(self, handle, **kwargs):
        handle.write(PNG_SIGNATURE)  # a partial write, then the crash
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(figure, path)
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["plot.png"]
    monkeypatch.undo()
    save_figure(figure, path)  # a successful write replaces it
    assert_png(path)


def test_bad_plot_arguments_are_rejected(tmp_path):
    schedule = build_schedule("constant", 10, 1)
    with pytest.raises(ConfigError, match="must end in one of .png, .pdf, .svg"):
        plot_schedule(schedule, 10, 0.1, tmp_path / "plot.jpg")
    with pytest.raises(ValueError, match="base_lr"):
        schedule_figure(schedule, 10, 0.0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        schedule_figure(schedule, 10, 0.1, steps_per_epoch=0)
    with pytest.raises(ValueError, match="equal length"):
        lr_finder_figure([1e-3, 1e-2], [1.0], None)
    with pytest.raises(ValueError, match="> 0"):
        lr_finder_figure([0.0, 1e-2], [1.0, 0.5], None)


def test_schedule_figure_of_an_absurdly_long_run_is_bounded():
    """10^18 steps (epochs: 10**18 in a config) plot in bounded time: sampled steps, thinned epoch lines."""
    import time

    from trainlab.plots import MAX_EPOCH_LINES, MAX_SCHEDULE_POINTS

    total = 10**18
    schedule = build_schedule({"name": "warmup_cosine", "warmup_steps": 10**17}, total, 10**6)
    started = time.perf_counter()
    figure = schedule_figure(schedule, total, 0.1, steps_per_epoch=10**6)
    assert time.perf_counter() - started < 10
    (line,) = lines_with_gid(figure, "lr")
    x, y = (np.asarray(v) for v in line.get_data())
    assert len(x) == MAX_SCHEDULE_POINTS and x[0] == 0 and int(x[-1]) == total - 1
    # cosine after a linear warm-up, at the sampled steps (independent closed form)
    t = np.array([int(v) for v in x], dtype=object)
    warm = 10**17
    expected = [0.1 * (s + 1) / warm if s < warm else
                0.1 * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))) for s in t]
    np.testing.assert_allclose(y, np.array(expected, dtype=float), rtol=1e-6, atol=1e-12)
    assert 0 < len(lines_with_gid(figure, "epoch_boundary")) <= MAX_EPOCH_LINES


def test_lr_finder_figure_draws_the_smoothed_loss_the_suggestion_is_decided_on():
    rng = np.random.default_rng(0)
    lrs = np.geomspace(1e-5, 10.0, 60)
    losses = 1.0 - 0.5 * np.tanh(np.log10(lrs) + 3) + 0.05 * rng.standard_normal(60)
    losses[-5:] = [5.0, 20.0, 80.0, np.inf, np.nan]  # divergence: the smoothed curve stops before it
    beta, average, reference = 0.98, 0.0, []  # bias-corrected EMA, written out here independently
    for i, loss in enumerate(losses):
        if not np.isfinite(loss):
            break
        average = beta * average + (1 - beta) * loss
        value = average / (1 - beta ** (i + 1))
        if i > 0 and value > 4 * min(reference):
            break
        reference.append(value)
    suggestion = suggest_lr(lrs, losses)
    figure = lr_finder_figure(lrs, losses, suggestion)
    (smoothed,) = lines_with_gid(figure, "smoothed")
    np.testing.assert_allclose(smoothed.get_ydata(), reference, rtol=1e-12)
    np.testing.assert_allclose(smoothed.get_xdata(), lrs[:len(reference)])
    (point,) = lines_with_gid(figure, "suggestion_point")
    index = int(np.argmin(np.abs(np.log(lrs[:len(reference)] / suggestion))))
    assert point.get_xdata()[0] == pytest.approx(suggestion)
    assert point.get_ydata()[0] == pytest.approx(reference[index])  # on the smoothed curve, not the raw one


def test_lr_finder_figure_shows_the_raw_losses_below_the_lagging_smoothed_curve():
    """The loss axis was fitted to the smoothed curve, whose EMA lags the drop: the raw losses' minimum (0.2
    here, the smoothed one about 0.6) ran off the plot. The final blow-up still does not set the top."""
    lrs = np.geomspace(1e-6, 1.0, 80)
    losses = np.where(lrs < 1e-2, 1.0, 0.2)
    losses[-3:] = [1e3, 1e6, np.inf]
    figure = lr_finder_figure(lrs, losses, None)
    low, high = figure.axes[0].get_ylim()
    (smoothed,) = lines_with_gid(figure, "smoothed")
    assert min(smoothed.get_ydata()) > 0.5
    assert low < 0.2 and 1.0 < high < 10


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_files_written_atomically_get_the_mode_a_plain_open_would(tmp_path, mask):
    """mkstemp makes 0o600 files: a report or run folder could not be shared; open() honours the umask."""
    from trainlab.atomic import write_text

    previous = os.umask(mask)
    try:
        text = write_text(tmp_path / "summary.json", "{}")
        figure = save_figure(schedule_figure(build_schedule("constant", 10, 5), 10, 0.1), tmp_path / "lr.png")
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(previous)
    expected = 0o666 & ~mask
    assert os.stat(tmp_path / "plain.txt").st_mode & 0o777 == expected  # the reference: open() itself
    assert os.stat(text).st_mode & 0o777 == expected and os.stat(figure).st_mode & 0o777 == expected


# --------------------------------------------------------------------------- trainlab plot: epoch records only

def _run_with_step_records(folder):
    """A run folder as `train --set output.log_every_n_steps=3 --set strategy.epochs=2` writes it: step records
    (``"scope": "step"``, fractional epoch, grad_norm) between the epoch records, and an event."""
    import json

    folder.mkdir()
    (folder / "config.yaml").write_text("name: lg\n")
    lines = [
        {"scope": "step", "step": 3, "epoch": 0.5, "train_loss": 1.18, "lr": 0.01, "grad_norm": 0.81},
        {"scope": "step", "step": 6, "epoch": 1.0, "train_loss": 1.05, "lr": 0.01, "grad_norm": 0.71},
        {"epoch": 1, "step": 6, "lr": 0.01, "train_loss": 1.12, "val_loss": 0.93, "elapsed_s": 0.36},
        {"scope": "step", "step": 9, "epoch": 1.5, "train_loss": 0.94, "lr": 0.01, "grad_norm": 0.61},
        {"event": "checkpoint_failed", "step": 12, "epoch": 2, "train_loss": 9.0},
        {"scope": "step", "step": 12, "epoch": 2.0, "train_loss": 0.76, "lr": 0.01, "grad_norm": 0.76},
        {"epoch": 2, "step": 12, "lr": 0.01, "train_loss": 0.85, "val_loss": 0.71, "elapsed_s": 0.76},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_plot_run_folders_draws_one_value_per_epoch_from_epoch_records_only(tmp_path, monkeypatch):
    from trainlab import plots, run_plots

    drawn = {}
    real = plots.curves_figure
    monkeypatch.setattr(plots, "curves_figure", lambda h, m: drawn.setdefault("figure", real(h, m)))
    run = _run_with_step_records(tmp_path / "lg")
    run_plots.plot_run_folders([run], "train_loss", tmp_path / "tl.png")
    (line,) = lines_with_gid(drawn["figure"], "curve:lg")
    assert list(line.get_xdata()) == [1, 2] and list(line.get_ydata()) == [1.12, 0.85]


@pytest.mark.parametrize("metric, message", [
    ("grad_norm", "metric 'grad_norm' is only in step records, and 'trainlab plot' draws one value per epoch; "
                  "plot one of: elapsed_s, lr, step, train_loss, val_loss"),
    ("nope", "metric 'nope' is in no history; available: elapsed_s, lr, step, train_loss, val_loss"),
])
def test_plot_refuses_a_step_only_metric_and_lists_epoch_record_keys(tmp_path, capsys, metric, message):
    from trainlab.cli import main

    run = _run_with_step_records(tmp_path / "lg")
    assert main(["plot", str(run), "--metric", metric, "-o", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "c.png").exists()


def _ended_run(folder, status: str, lines: list[dict]):
    import json

    folder.mkdir()
    (folder / "config.yaml").write_text("name: ended\n")
    (folder / "run.json").write_text(json.dumps({"status": status}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def test_a_run_that_diverged_before_its_first_epoch_is_said_so_not_to_record_one_yet(tmp_path, capsys):
    """Its line read "the run recorded no epoch yet", as of a run still running; none will come."""
    from trainlab.cli import main

    run = _ended_run(tmp_path / "div", "diverged", [
        {"scope": "step", "step": 2, "epoch": 0.2, "train_loss": 3.0e6, "lr": 0.5},
        {"event": "divergence", "step": 3, "epoch": 1, "value": "inf", "problem": "non-finite loss"}])
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: nothing to plot: {run} holds no epoch records: the run diverged at step 3, before its "
                   f"first epoch ended ('trainlab report {run} -o report.html' draws its step records and events)\n")
    good = _run_with_step_records(tmp_path / "lg")
    assert main(["plot", str(good), str(run), "-o", str(tmp_path / "c.png")]) == 0
    assert capsys.readouterr().err == ("warning: no 'val_loss' in div (the run diverged at step 3, before its first "
                                       "epoch ended): left out of the plot\n")


def test_a_metric_null_in_every_epoch_is_said_to_be_non_finite_not_absent(tmp_path, capsys):
    """It read "metric 'val_loss' is in no history; available: elapsed_s, lr, step", though every epoch record
    holds it (as null: non-finite)."""
    from trainlab.cli import main

    run = _ended_run(tmp_path / "nan", "finished", [
        {"epoch": e, "step": 3 * e, "lr": 0.5, "train_loss": None, "val_loss": None, "elapsed_s": 0.1 * e}
        for e in (1, 2)])
    assert main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 3
    assert capsys.readouterr().err == ("error: metric 'val_loss' is recorded but not a finite number (null) in every "
                                       "epoch of nan: training went non-finite (summary.json's non_finite says "
                                       "where); nothing to draw\n")
    good = _run_with_step_records(tmp_path / "lg")
    assert main(["plot", str(good), str(run), "-o", str(tmp_path / "c.png")]) == 0
    assert capsys.readouterr().err == ("warning: no 'val_loss' in nan (not a finite number in any epoch: training "
                                       "went non-finite): left out of the plot\n")


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_an_output_path_that_is_a_folder_or_under_a_file_is_a_usage_error(tmp_path, capsys, write_config, where):
    """`trainlab schedule --plot d.png` with d.png a folder, or report -o notes.txt/r.html, said "cannot read or
    write (d.png): Is a directory" / "(notes.txt): File exists", exit 5, as for a full disk."""
    from tests.conftest import LINREG
    from trainlab.cli import main
    from trainlab.report import write_report

    (tmp_path / "d.png").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    plot, page = ((tmp_path / "d.png", tmp_path / "d.png") if where == "folder"
                  else (tmp_path / "notes.txt" / "s.png", tmp_path / "notes.txt" / "r.html"))
    assert main(["schedule", str(write_config(LINREG)), "--plot", str(plot)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: output path '{plot}'"), err
    assert ("is a folder" if where == "folder" else "'notes.txt' is a file, not a folder".replace(
        "notes.txt", str(tmp_path / "notes.txt"))) in err
    if where == "folder":
        page = tmp_path / "d.html"
        page.mkdir()
    with pytest.raises(ConfigError, match=f"^output path '{page}'"):
        write_report([tmp_path], page)
    assert (tmp_path / "notes.txt").read_text() == "mine"
