"""Sweep fixes in trainlab tune: the base config as trial 0 for spaces over loss/schedule/weight averaging
sections, the loss-scale warning for --metric val_loss over a searched loss, the default --metric's
error line, and the report's refit table."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import optuna
import pytest
import yaml

from trainlab.cli import main
from trainlab.tune import TuneSettings, tune
from trainlab.tune.base_point import base_outside, base_values
from trainlab.tune.claims import ATTR_BASE
from trainlab.tune.report import refit_rows, tune_page
from trainlab.tune.runner import loss_scale_warning
from trainlab.tune.space import parse_space
from trainlab.tune.study import study_for

BINARY = {
    "name": "bc",
    "seed": 0,
    "data": {"source": "breast_cancer"},
    "model": {"name": "mlp", "hidden": [4]},
    "strategy": {"loss": "bce", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 64, "epochs": 1},
    "metrics": ["accuracy", "log_loss"],
    "runtime": {"num_threads": 1},
    "output": {"progress": "off", "checkpoint": {"every_seconds": None}},
}
REGRESSION = {**BINARY, "name": "diab", "data": {"source": "diabetes", "standardize_target": True},
              "strategy": {**BINARY["strategy"], "loss": "mse"}, "metrics": ["mse", "mae", "r2"]}


def _with(base: dict, **strategy) -> dict:
    return {**base, "strategy": {**base["strategy"], **strategy}}


def _write(folder: Path, base: dict, space: dict) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    (folder / "space.yaml").write_text(yaml.safe_dump(space))
    return folder / "base.yaml", folder / "space.yaml"


# --------------------------------------------------------------------------- 1. the base config is trial 0

@pytest.mark.parametrize(("base", "space", "expected"), [
    # the one-word choice matches the resolved {name: bce}; a mapping choice matches the one-word base
    (BINARY, {"strategy.loss": {"choices": ["bce", "focal"]}}, {"strategy.loss": "bce"}),
    (BINARY, {"strategy.loss": {"choices": [{"name": "bce"}, "focal"]}}, {"strategy.loss": '{"name": "bce"}'}),
    # an option at the factory's default is the option left out (focal's gamma 2), both ways round
    (_with(BINARY, loss={"name": "focal", "gamma": 2}), {"strategy.loss": {"choices": ["bce", "focal"]}},
     {"strategy.loss": "focal"}),
    (_with(BINARY, loss="focal"), {"strategy.loss": {"choices": ["bce", {"name": "focal", "gamma": 2.0}]}},
     {"strategy.loss": '{"name": "focal", "gamma": 2.0}'}),
    # no schedule is the constant one; a named schedule its one-word choice
    (BINARY, {"strategy.schedule": {"choices": ["constant", "cosine"]}}, {"strategy.schedule": "constant"}),
    (_with(BINARY, schedule="cosine"), {"strategy.schedule": {"choices": ["constant", "cosine"]}},
     {"strategy.schedule": "cosine"}),
    # no weight averaging is the choice null; `ema` the one-word choice
    (BINARY, {"strategy.weight_averaging": {"choices": [None, "ema"]}}, {"strategy.weight_averaging": None}),
    (_with(BINARY, weight_averaging={"kind": "ema", "decay": 0.999}),
     {"strategy.weight_averaging": {"choices": [None, "ema"]}}, {"strategy.weight_averaging": "ema"}),
    # what matched before still does: a name, a number, an unset optimizer option at its default
    (BINARY, {"strategy.optimizer.name": {"choices": ["sgd", "adam"]}, "strategy.optimizer.lr": {"choices": [0.1, 0.01]}},
     {"strategy.optimizer.name": "adam", "strategy.optimizer.lr": 0.01}),
])
def test_a_base_config_that_holds_a_choice_as_the_config_resolves_it_is_a_point_of_the_space(base, space, expected):
    parsed = parse_space(space)
    assert base_outside(parsed, base) is None
    assert base_values(parsed, base) == expected


@pytest.mark.parametrize(("base", "space", "reason"), [
    (_with(BINARY, loss={"name": "focal", "gamma": 5}), {"strategy.loss": {"choices": ["bce", "focal"]}},
     "its strategy.loss {gamma: 5, name: focal} is outside the space's choices bce, focal"),
    (_with(BINARY, schedule="cosine"), {"strategy.schedule": {"choices": ["constant", "step"]}},
     "its strategy.schedule cosine is outside the space's choices constant, step"),
    (BINARY, {"strategy.weight_averaging": {"choices": ["ema", "lookahead"]}},
     "it sets no strategy.weight_averaging"),
])
def test_a_base_config_outside_the_space_is_named_as_it_is_set(base, space, reason):
    parsed = parse_space(space)
    assert base_values(parsed, base) is None
    assert base_outside(parsed, base) == reason


def test_a_space_over_the_loss_runs_the_base_config_as_trial_0_without_the_outside_note(tmp_path, capsys):
    base, space = _write(tmp_path, BINARY, {"strategy.loss": {"choices": ["bce", "focal"]}})
    tune(TuneSettings(base=base, space=space, trials=1, out=tmp_path / "out", metric="val_log_loss",
                      pruner="none"))
    assert "note: the base config is no point of the space" not in capsys.readouterr().err
    (first,) = study_for(TuneSettings(base=base, space=space, trials=1, out=tmp_path / "out")).get_trials()
    assert first.params == {"strategy.loss": "bce"} and first.user_attrs.get(ATTR_BASE) is True


# --------------------------------------------------------------------------- 2. val_loss across losses

def _warning(tmp_path: Path, base: dict, space: dict, metric: str) -> str | None:
    base_file, space_file = _write(tmp_path, base, space)
    settings = TuneSettings(base=base_file, space=space_file, trials=1, out=tmp_path / "out", metric=metric)
    return loss_scale_warning(settings, parse_space(space), base)


def test_val_loss_over_searched_losses_warns_and_suggests_the_one_formula_metric(tmp_path):
    line = _warning(tmp_path, BINARY, {"strategy.loss": {"choices": ["bce", "focal"]}}, "val_loss")
    assert line == ("--metric val_loss is each trial's own training loss, and the space searches "
                    "strategy.loss, so its trials train different losses (bce; focal): their values are on "
                    "different scales, so a lower one need not mean a better model; tune by --metric "
                    "val_log_loss (one formula for every trial: the negative log-likelihood of its probabilities)")
    # an option range that changes the scale (focal's gamma); log_loss not listed: the line says to add it
    gamma = _warning(tmp_path, {**_with(BINARY, loss="focal"), "metrics": ["accuracy"]},
                     {"strategy.loss.gamma": {"low": 1.0, "high": 5.0}}, "val_loss")
    assert gamma is not None and "(focal; focal(gamma=1); focal(gamma=5))" in gamma
    assert gamma.endswith("add log_loss to the config's metrics)")
    # regression losses: mse or mae, the same formula for every trial
    regression = _warning(tmp_path, REGRESSION, {"strategy.loss": {"choices": ["mse", "huber"]}}, "val_loss")
    assert regression is not None and "tune by --metric val_mse or val_mae" in regression
    # only those the runs record: --metric val_mae was suggested, then refused, where metrics lists no mae
    recorded = _warning(tmp_path, {**REGRESSION, "metrics": ["mse", "r2"]},
                        {"strategy.loss": {"choices": ["mse", "huber"]}}, "val_loss")
    assert recorded is not None and recorded.endswith("tune by --metric val_mse (one formula for every trial)")
    neither = _warning(tmp_path, {**REGRESSION, "metrics": ["r2"]}, {"strategy.loss": {"choices": ["mse", "huber"]}},
                       "val_loss")
    assert neither is not None and neither.endswith(
        "tune by --metric val_mse (one formula for every trial; add mse to the config's metrics)")


@pytest.mark.parametrize(("space", "metric"), [
    ({"strategy.loss": {"choices": ["bce", "focal"]}}, "val_log_loss"),  # one formula: no warning
    ({"strategy.loss": {"choices": ["bce", "focal"]}}, "val_accuracy"),
    ({"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1}}, "val_loss"),  # one loss, many optimizers
    ({"strategy.loss": {"choices": ["bce", {"name": "bce"}]}}, "val_loss"),  # one loss written two ways
])
def test_no_loss_scale_warning_where_every_trial_records_one_scale(tmp_path, space, metric):
    assert _warning(tmp_path, BINARY, space, metric) is None


def test_tune_prints_the_loss_scale_warning_once_before_the_first_trial(tmp_path, capsys):
    base, space = _write(tmp_path, BINARY, {"strategy.loss": {"choices": ["bce", "focal"]}})
    assert main(["tune", str(base), "--space", str(space), "--trials", "1", "--metric", "val_loss",
                 "--pruner", "none", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    warnings = [i for i, line in enumerate(err) if line.startswith("warning:")]
    first_trial = next(i for i, line in enumerate(err) if line.startswith("trial 0:"))
    scale = [i for i in warnings if "--metric val_log_loss" in err[i]]  # (the trial may warn of its own outcome)
    assert len(scale) == 1 and scale[0] < first_trial and scale[0] == warnings[0]


# --------------------------------------------------------------------------- 3. the default --metric

def test_the_default_metric_missing_says_it_is_the_default_and_what_to_pass(tmp_path, capsys):
    base, space = _write(tmp_path, REGRESSION, {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1}})
    assert main(["tune", str(base), "--space", str(space), "--trials", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: --metric 'val_accuracy' is not recorded by {base}; accuracy is a classification "
                   "metric, and these records are of a regression task; did you mean 'val_r2'? (its "
                   "validation metrics: val_loss, val_mse, val_mae, val_r2); val_accuracy is --metric's default: "
                   "pass --metric with one of these")
    assert not (tmp_path / "out").exists()
    # another missing metric keeps its own line: no default to speak of
    assert main(["tune", str(base), "--space", str(space), "--trials", "1", "--metric", "val_f1",
                 "--out", str(tmp_path / "out")]) == 2
    assert "is --metric's default" not in capsys.readouterr().err


# --------------------------------------------------------------------------- 4. the refit table

REFIT = {"metric": "test_mse", "dir": "out/refit", "rows": [
    {"task": "diab", "rank": 1, "strategy": "tuned", "runs": 2, "failed": 0, "mean": 2992.133365285472,
     "std": 80.0806976092251, "median": 2992.133365285472, "ci95_low": 2272.636843465192,
     "ci95_high": 3711.6298871057515, "iqm": 2992.133365285472, "test": None, "p": None, "p_holm": None,
     "verdict": "best", "prob_improvement": None, "time_to_target_median_s": None, "target_reached": 0,
     "train_time_s_mean": 0.025445500000000003},
    {"task": "diab", "rank": 2, "strategy": "base", "runs": 2, "failed": 0, "mean": 3001.5, "std": 0.123456,
     "median": 3001.5, "ci95_low": 2999.0, "ci95_high": 3004.0, "iqm": 3001.5, "test": "paired-t", "p": 0.04321,
     "p_holm": 0.04321, "verdict": "worse", "prob_improvement": 0.25, "time_to_target_median_s": None,
     "target_reached": 0, "train_time_s_mean": 0.0695595}]}


def test_refit_rows_leave_out_the_target_columns_of_a_refit_without_a_target():
    rows = refit_rows(REFIT)
    assert [list(row) for row in rows] == [[k for k in REFIT["rows"][0]
                                            if k not in ("time_to_target_median_s", "target_reached")]] * 2
    assert refit_rows({**REFIT, "target": "val_mse<=0.5"}) == REFIT["rows"]


def test_the_reports_refit_table_shows_four_significant_digits_and_no_target_columns(tmp_path):
    base, space = _write(tmp_path, REGRESSION, {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1}})
    settings = TuneSettings(base=base, space=space, trials=1, out=tmp_path / "out", metric="val_mse")
    study = optuna.create_study(direction="minimize")
    study.optimize(lambda trial: trial.suggest_float("strategy.optimizer.lr", 1e-3, 0.1), n_trials=2)
    best = {"counts": {"COMPLETE": 2}, "direction": "minimize", "refit": REFIT}
    page = tune_page(study, settings, best).render()
    section = page[page.index("Refit over seeds"):]
    table = section[:section.index("</table>")]
    cells = [[html.unescape(re.sub("<[^>]+>", "", cell)).strip()
              for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
             for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    assert "target_reached" not in cells[0] and "time_to_target_median_s" not in cells[0]
    by_column = [dict(zip(cells[0], row, strict=True)) for row in cells[1:]]
    assert [(r["mean"], r["std"], r["ci95_low"], r["ci95_high"], r["p"], r["train_time_s_mean"])
            for r in by_column] == [("2992", "80.08", "2273", "3712", "–", "0.02545"),
                                    ("3002", "0.1235", "2999", "3004", "0.04321", "0.06956")]
    assert (by_column[0]["rank"], by_column[0]["runs"], by_column[1]["test"]) == ("1", "2", "paired-t")


def test_the_reports_refit_section_is_compares_leaderboard_and_says_when_the_base_ranks_first(tmp_path):
    """The refit table was leaderboard.csv's ~39 columns (convergence_val_metric, ..._ci95_high), and nothing
    said that the refit ranked the base config above the tuned one. It is compare's table of its
    leaderboard.json now, with that line."""
    from report_fixtures import fake_comparison

    refit_dir = fake_comparison(tmp_path / "out" / "refit", {"tuned": ("adam", 0.01, 0.90), "base": ("sgd", 0.1, 0.95)},
                                seeds=2, target=None, epochs=3)
    base, space = _write(tmp_path, REGRESSION, {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1}})
    settings = TuneSettings(base=base, space=space, trials=1, out=tmp_path / "out", metric="val_accuracy")
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("strategy.optimizer.lr", 1e-3, 0.1), n_trials=2)
    refit = {"metric": "test_accuracy", "dir": str(refit_dir), "rows": REFIT["rows"]}
    page = tune_page(study, settings, {"counts": {"COMPLETE": 2}, "direction": "maximize", "refit": refit}).render()
    section = page[page.index("Refit over seeds"):page.index("Trials</h2>")]
    header = [html.unescape(re.sub("<[^>]+>", "", cell)).strip() for cell in
              re.findall(r"<th[^>]*>(.*?)</th>", section[:section.index("</tr>")], re.S)]
    assert header == ["rank", "strategy", "test_accuracy mean ± std", "95% CI", "median", "n (failed)", "vs best",
                      "P(improvement)", "train time (s, mean)"]
    assert "convergence_val_metric" not in section
    assert ("The base config ranks above the tuned one on test_accuracy over these seeds: the best trial's values "
            "did not hold up on the test split") in html.unescape(re.sub("<[^>]+>", " ", section))
    # a leaderboard.json of other shapes (an entry's metrics a list) falls back to the rows best.json keeps
    board = json.loads((refit_dir / "leaderboard.json").read_text())
    next(iter(board["tasks"].values()))["strategies"][0]["metrics"] = [1]
    (refit_dir / "leaderboard.json").write_text(json.dumps(board))
    page = tune_page(study, settings, {"counts": {"COMPLETE": 2}, "direction": "maximize", "refit": refit}).render()
    section = page[page.index("Refit over seeds"):page.index("Trials</h2>")]
    assert "train_time_s_mean" in section and "The base config ranks above" not in section


@pytest.mark.parametrize("text, message", [
    ("strategy.optimizer.lr: {low: .nan, high: 0.1, log: true}",
     "space file {path}: key 'strategy.optimizer.lr.low': must be a finite number; got nan"),
    ("strategy.optimizer.lr: {low: 0.01, high: .inf}",
     "space file {path}: key 'strategy.optimizer.lr.high': must be a finite number; got inf")])
def test_a_non_finite_bound_in_a_space_file_is_named_as_the_space_files_key_not_a_config_key(tmp_path, text, message):
    from trainlab.errors import ConfigError
    from trainlab.tune.space import load_space

    path = tmp_path / "space.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_space(path)
    assert str(caught.value) == message.format(path=path)


def test_a_warning_every_trial_gives_alike_is_said_once_per_tune(tmp_path, capsys):
    """The trials read the same data and build alike: its warning (targets far from unit scale) came once a
    trial, besides the base point's (notices.each_once)."""
    import numpy as np

    rows = ["x,y"] + [f"{i / 29:.3f},{1e6 * (1 + 2 * i / 29) + 3e4 * np.sin(i):.6g}" for i in range(30)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({
        "name": "big", "seed": 0, "data": {"source": "csv", "path": str(tmp_path / "big.csv"), "target": "y"},
        "model": {"name": "linear"}, "metrics": ["mse"], "output": {"progress": "off"},
        "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": "full", "epochs": 1}}))
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"strategy.optimizer.lr": {"low": 0.001, "high": 0.01, "log": True}}))
    capsys.readouterr()
    assert main(["tune", str(base), "--space", str(space), "--trials", "3", "--metric", "val_mse",
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "the regression targets are large" in warnings[0], warnings


def test_trials_csv_of_a_study_without_trials_is_its_header():
    """A study stopped before its first trial leaves a trials.csv with the columns it would have (was 0 bytes)."""
    from trainlab.tune.results import TRIAL_COLUMNS, trials_csv

    assert trials_csv([], ["strategy.optimizer.lr"]).splitlines() == [",".join([*TRIAL_COLUMNS, "strategy.optimizer.lr"])]


def test_trials_csv_rows_follow_the_header(tmp_path):
    from trainlab.tune.results import TRIAL_COLUMNS, trial_rows, trials_csv

    study = optuna.create_study(direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("strategy.optimizer.lr", 0.1, 0.2), n_trials=2)
    lines = trials_csv(trial_rows(study, ["strategy.optimizer.lr"]), ["strategy.optimizer.lr"]).splitlines()
    assert lines[0].split(",") == [*TRIAL_COLUMNS, "strategy.optimizer.lr"]
    assert [line.split(",")[:2] for line in lines[1:]] == [["0", "COMPLETE"], ["1", "COMPLETE"]]


@pytest.mark.parametrize("trials, dtick", [(5, 1), (40, None)])
def test_the_history_ticks_whole_trial_numbers(trials, dtick):
    """A browser check: 5 trials' history ticked 0, 0.5, 1, 1.5 (trial 1.5); past 20 trials plotly spaces them."""
    import optuna

    from trainlab.tune.report import whole_trial_ticks

    study = optuna.create_study()
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=trials)
    figure = whole_trial_ticks(optuna.visualization.plot_optimization_history(study))
    assert figure.layout.xaxis.dtick == dtick
