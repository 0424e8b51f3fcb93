"""The report's validation-vs-test chart said "(the best epoch was chosen on validation)" for every run, also
where the evaluated model was simply the one training ended with (no early stopping, or restore_best false):
its title now says which model the runs' summaries were evaluated on, read from each run's config and summary."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from report_fixtures import SEVEN, fake_comparison

from trainlab.report import write_report
from trainlab.report.series import restored_monitor

CHOSEN = "validation vs test accuracy (early stopping restored the epoch of the best val_loss: chosen on validation)"
LAST = "validation vs test accuracy (the model at the end of training: no epoch was chosen on validation)"
STOPPING = {"monitor": "val_loss", "mode": "min", "patience": 10, "min_delta": 0.0, "restore_best": True}


def _titles(html: str) -> list[str]:
    blocks = re.findall(r'<script type="application/json" id="figure-\d+-json">(.*?)</script>', html, re.S)
    figures = [json.loads(b.replace("<\\/", "</")) for b in blocks]
    # a long title is broken into lines (report.figures.style): read as one line
    return [f["layout"]["title"]["text"].replace("<br>", " ") for f in figures if "title" in f["layout"]]


def _gap_title(root: Path, out: Path) -> str:
    titles = [t for t in _titles(write_report([root], out).read_text()) if t.startswith("validation vs test")]
    assert len(titles) == 1, titles
    return titles[0]


def _set_stopping(root: Path, stopping, only: str | None = None) -> None:
    """Every run's config.yaml (or only strategy ``only``'s) with ``strategy.early_stopping: stopping``."""
    for config_file in root.glob("runs/*/*/seed-*/config.yaml"):
        if only is None or config_file.parts[-3] == only:
            config = yaml.safe_load(config_file.read_text())
            config["strategy"]["early_stopping"] = stopping
            config_file.write_text(yaml.safe_dump(config))


@pytest.fixture
def comparison(tmp_path) -> Path:
    return fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=3)


def test_without_early_stopping_the_chart_says_the_model_at_the_end_of_training(comparison, tmp_path):
    assert _gap_title(comparison, tmp_path / "r.html") == LAST  # the fixture's configs: no early stopping


def test_with_early_stopping_restoring_the_best_epoch_the_chart_says_it_was_chosen_on_validation(comparison,
                                                                                                   tmp_path):
    _set_stopping(comparison, STOPPING)
    assert _gap_title(comparison, tmp_path / "r.html") == CHOSEN


def test_early_stopping_that_restores_nothing_is_the_model_at_the_end_of_training(comparison, tmp_path):
    _set_stopping(comparison, {**STOPPING, "restore_best": False})
    assert _gap_title(comparison, tmp_path / "r.html") == LAST


def test_a_mix_counts_the_runs_of_each_and_a_training_monitor_is_not_called_validation(comparison, tmp_path):
    _set_stopping(comparison, STOPPING, only="adam")
    assert _gap_title(comparison, tmp_path / "a.html") == (
        "validation vs test accuracy (early stopping restored the epoch of the best val_loss in 2 of 4 runs, the "
        "others are the model at the end of training)")
    _set_stopping(comparison, {**STOPPING, "monitor": "train_loss"})
    assert _gap_title(comparison, tmp_path / "b.html") == (
        "validation vs test accuracy (early stopping restored the epoch of the best train_loss: chosen on the "
        "training data)")


def test_restored_monitor_needs_early_stopping_restore_best_and_a_best_epoch():
    finished = {"status": "finished", "best_epoch": 4}
    assert restored_monitor({"strategy": {"early_stopping": STOPPING}}, finished) == "val_loss"
    assert restored_monitor({"strategy": {"early_stopping": True}}, finished) == "val_loss"  # its defaults
    assert restored_monitor({"strategy": {"early_stopping": {**STOPPING, "monitor": "val_accuracy"}}},
                            finished) == "val_accuracy"
    # no epoch was best (every monitored value NaN): early stopping restores nothing
    assert restored_monitor({"strategy": {"early_stopping": STOPPING}}, {**finished, "best_epoch": None}) is None
    for stopping in (None, False, {**STOPPING, "restore_best": False}):
        assert restored_monitor({"strategy": {"early_stopping": stopping}}, finished) is None
    assert restored_monitor({}, finished) is None


def test_real_runs_config_and_summary_say_which_model_was_evaluated(tmp_path):
    """What trainlab writes (config.yaml's resolved early_stopping section, summary.json's best_epoch) is what
    the caption reads: a run with `early_stopping: true` restored its best epoch, one without did not."""
    from trainlab.config import validate
    from trainlab.experiment import train
    from trainlab.report.sources import load_run

    base = {"seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
            "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                         "epochs": 2}, "metrics": ["accuracy"], "output": {"progress": "off"}}
    stopped = {**base, "name": "stopped", "strategy": {**base["strategy"], "early_stopping": True}}
    plain = train(validate({**base, "name": "plain"}), out=tmp_path / "plain", quiet=True)[1]
    restored = train(validate(stopped), out=tmp_path / "stopped", quiet=True)[1]
    assert restored_monitor(load_run(plain).config, load_run(plain).summary) is None
    assert restored_monitor(load_run(restored).config, load_run(restored).summary) == "val_loss"
    titles = [t for t in _titles(write_report([plain, restored], tmp_path / "r.html").read_text())
              if t.startswith("validation vs test")]
    assert titles == ["validation vs test accuracy (early stopping restored the epoch of the best val_loss in 1 of 2 "
                      "runs, the other is the model at the end of training)"]
