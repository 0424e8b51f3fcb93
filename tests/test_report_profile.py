"""The performance profile of a comparison report names what it is measured on: the axis title and the
sentence above it follow the profile's own measure (training time, time to target, the ranking metric),
checked on what ``trainlab compare`` really writes for two tasks, with and without --target."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_fixtures import SEVEN, fake_comparison
from test_report import array, figures_of

from trainlab.compare import compare
from trainlab.compare.strategies import parse_strategies
from trainlab.report import write_report

BASE = {
    "name": "iris", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 2},
    "metrics": ["accuracy"], "output": {"progress": "off"}, "runtime": {"num_threads": 1},
}
TASKS = {"iris": BASE, "wine": {**BASE, "data": {"source": "wine"}}}
STRATEGIES = {"strategies": {"adam": None, "sgd": {"strategy.optimizer": {"name": "sgd", "lr": 0.1}}}}


def _compared(folder: Path, target: str | None) -> Path:
    compare(TASKS, parse_strategies(STRATEGIES), folder, seeds=1, jobs=1, target=target, live=False, quiet=True)
    return folder


@pytest.fixture(scope="module")
def without_target(tmp_path_factory) -> Path:
    return _compared(tmp_path_factory.mktemp("cmp") / "no-target", None)


@pytest.fixture(scope="module")
def with_target(tmp_path_factory) -> Path:
    return _compared(tmp_path_factory.mktemp("cmp") / "target", "val_accuracy=0.5")


def _profile_of(html: str) -> tuple[dict, str]:
    """The profile figure and the sentence before it."""
    figure = next(f for f in figures_of(html) if f["layout"]["title"]["text"].startswith("performance profile"))
    section = html[html.index(">performance profile over tasks</h2>"):]
    sentence = re.search(r'<p class="note">(Measured on: .*?)</p>', section).group(1)
    return figure, sentence


def test_without_target_the_profile_compare_wrote_is_named_as_training_time(without_target, tmp_path):
    board = json.loads((without_target / "leaderboard.json").read_text())
    assert board["target"] is None and "train_time_s" in board["profile"]["measure"]
    figure, sentence = _profile_of(write_report([without_target], tmp_path / "r.html").read_text())
    # what is drawn is compare's profile on training time ...
    for trace in figure["data"]:
        assert array(trace["x"]) == pytest.approx(board["profile"]["taus"])
        assert array(trace["y"]) == pytest.approx(board["profile"]["rho"][trace["name"]])
    # ... and the axis and the sentence say so, not "time to target" nor the ranking metric
    axis = figure["layout"]["xaxis"]["title"]["text"]
    assert "training time" in axis and "target" not in axis
    assert "training time (train_time_s)" in sentence and "time to target" not in sentence
    assert "not the ranking metric" in sentence


def test_with_target_the_profile_compare_wrote_is_named_as_time_to_target(with_target, tmp_path):
    board = json.loads((with_target / "leaderboard.json").read_text())
    assert board["target"] and "time_to_target_s" in board["profile"]["measure"]
    figure, sentence = _profile_of(write_report([with_target], tmp_path / "r.html").read_text())
    for trace in figure["data"]:
        assert array(trace["y"]) == pytest.approx(board["profile"]["rho"][trace["name"]])
    axis = figure["layout"]["xaxis"]["title"]["text"]
    assert "time to target" in axis and "training time" not in axis
    assert "time to target (time_to_target_s)" in sentence and "training time" not in sentence


@pytest.mark.parametrize(("measure", "named"), [(None, "does not name"), ("median epochs_run", "median epochs_run")])
def test_a_profile_measure_compare_never_writes_is_shown_as_written_or_said_to_be_missing(
        without_target, tmp_path, measure, named):
    folder = tmp_path / "cmp"
    folder.mkdir()
    board = json.loads((without_target / "leaderboard.json").read_text())
    board["profile"].pop("measure")
    if measure:
        board["profile"]["measure"] = measure
    (folder / "leaderboard.json").write_text(json.dumps(board))
    figure, sentence = _profile_of(write_report([folder], tmp_path / "r.html").read_text())
    axis = figure["layout"]["xaxis"]["title"]["text"]
    assert named in sentence and "training time" not in sentence + axis and "time to target" not in sentence + axis
    if measure:
        assert axis.startswith(f"tau: {measure} / best")


def test_without_a_profile_in_the_board_the_reports_own_profile_names_its_measure(tmp_path):
    """An older leaderboard.json (no ``profile``): the report profiles time to target, else the metric."""
    strategies = {k: SEVEN[k] for k in ("sgd", "adam")}
    kinds = {0.8: ("time to target", "median time to target / best strategy's"),
             None: ("mean test_accuracy per task", "best strategy's mean test_accuracy / this one's")}
    for target, (named, ratio) in kinds.items():
        root = fake_comparison(tmp_path / f"cmp-{target}", strategies, seeds=2, tasks=("digits", "wine"),
                               target=target, epochs=4)
        assert "profile" not in json.loads((root / "leaderboard.json").read_text())
        figure, sentence = _profile_of(write_report([root], tmp_path / f"r-{target}.html").read_text())
        assert named in sentence
        assert figure["layout"]["xaxis"]["title"]["text"] == f"tau: {ratio} (log scale)"
