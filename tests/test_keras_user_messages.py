"""What a Keras user meets, each checked against what the run then does: the early-stopping warning's
boundary (a patience that can never cut the run short, and the one it suggests, which does), metric names
of Keras and scikit-learn pointed to trainlab's metrics of the task, the data's held-out fractions under
their Keras and scikit-learn names, ``early_stopping.mode: auto``, and the class-weighted validation loss
that the docs now state (against NumPy)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import trainlab
from trainlab import plan_warnings
from trainlab.callbacks.early_stopping import EarlyStopping
from trainlab.cli import main
from trainlab.config_strategy import EarlyStoppingConfig
from trainlab.engine.batching import BatchPlan
from trainlab.errors import ConfigError
from trainlab.metrics import METRICS, TASKS, get_metric, validate_metrics
from trainlab.name_aliases import METRIC_NAMES
from trainlab.run_result_lines import restored_line

ROOT = Path(__file__).resolve().parents[1]
STILL = {"name": "sgd", "lr": 1e-30}  # no weight moves: the monitor never improves after its first value
BASE = {"loss": "cross_entropy", "optimizer": STILL, "batch_size": 10, "epochs": 5}
N_TRAIN = 30  # 3 steps per epoch at batch_size 10

BREAST_CANCER = {  # the user's es.yaml, one thread
    "name": "bc-es", "seed": 0, "data": {"source": "breast_cancer"}, "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "bce", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 32, "epochs": 40,
                 "early_stopping": {"monitor": "val_loss", "patience": 4, "restore_best": True},
                 "schedule": {"name": "reduce_on_plateau", "patience": 1, "factor": 0.5}},
    "metrics": ["accuracy", "f1", "roc_auc"], "runtime": {"num_threads": 1}, "output": {"progress": "off"},
}


def _data(n: int = N_TRAIN, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return (rng.normal(scale=2.0, size=(3, 4))[y] + rng.normal(size=(n, 4))).astype(np.float32), y


def _fit(strategy: dict, **kwargs) -> trainlab.FitResult:
    x, y = _data()
    torch.manual_seed(0)
    return trainlab.fit(torch.nn.Linear(4, 3), (x, y), strategy, val=_data(15, seed=1),
                        runtime={"num_threads": 1}, **kwargs)


def _warnings(capsys, about: str) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:") and about in line]


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------------- early stopping's boundary

def _stops_before_the_last(patience: int, validations: int) -> bool:
    """Whether the callback itself, fed a flat monitor (the first value the best), asks to stop at a
    validation before the run's last."""
    stopping = EarlyStopping(patience=patience)
    return any(stopping.evaluate(0.5, epoch)[0] for epoch in range(1, validations))


@pytest.mark.parametrize("patience", range(7))
def test_the_warning_is_given_exactly_when_the_callback_cannot_stop_before_the_last_validation(monkeypatch, patience):
    said: list[str] = []
    monkeypatch.setattr(plan_warnings, "warn", said.append)
    for validations in range(1, 10):  # one per epoch, 3 steps each
        said.clear()
        plan_warnings.warn_if_never_stops_early(patience, "val_loss", False, BatchPlan(N_TRAIN, 10, 0),
                                                3 * validations, None)
        assert bool(said) == (not _stops_before_the_last(patience, validations)), (validations, said)
        suggested = re.search(r"set patience to (\d+) or less", said[0]) if said else None
        if suggested:  # the suggestion stops early; one more does not
            assert _stops_before_the_last(int(suggested.group(1)), validations)
            assert not _stops_before_the_last(int(suggested.group(1)) + 1, validations)


def test_a_patience_one_short_of_the_epochs_is_warned_of_and_trains_every_epoch(capsys):
    """5 validations, patience 4: the first is the best, the 4 after it end at the 5th, the last: the run
    trains its 5 epochs; the patience the warning names (3) stops after the 4th epoch, and is not warned of."""
    result = _fit(dict(BASE, early_stopping={"patience": 4}))
    lines = _warnings(capsys, "early_stopping.patience")
    assert len(lines) == 1, lines
    assert "at validation 5 at the earliest" in lines[0] and "in 5 validations" in lines[0]
    assert "can never stop the run early" in lines[0]
    assert result.summary["steps"] == 15 and result.summary["epochs_run"] == 5
    suggested = int(re.search(r"set patience to (\d+) or less", lines[0]).group(1))
    assert suggested == 3
    result = _fit(dict(BASE, early_stopping={"patience": suggested}))
    assert _warnings(capsys, "early_stopping.patience") == []
    assert result.summary["epochs_run"] == 4 and result.summary["steps"] == 12


@pytest.mark.parametrize(("epochs", "patience", "fix"), [
    (2, 1, "train longer: patience=1 needs 3 validations"),
    (2, 0, "train longer: patience=0 needs 3 validations"),
    (2, 5, "train longer: patience=5 needs 7 validations, patience: 1 needs 3"),
    (3, 5, "set patience to 1 or less"),
])
def test_a_run_too_short_to_stop_is_told_to_train_longer(capsys, epochs, patience, fix):
    result = _fit(dict(BASE, epochs=epochs, early_stopping={"patience": patience}))
    lines = _warnings(capsys, "early_stopping.patience")
    assert len(lines) == 1 and fix in lines[0], lines
    assert result.summary["epochs_run"] == epochs
    if epochs == 3:  # the named patience cuts the 3-epoch run short
        assert _fit(dict(BASE, epochs=3, early_stopping={"patience": 1})).summary["epochs_run"] == 2


@pytest.mark.parametrize(("patience", "warned", "epochs_run"), [(4, True, 5), (3, False, 4)])
def test_the_users_breast_cancer_config_on_both_sides_of_the_boundary(tmp_path, capsys, patience, warned, epochs_run):
    """The report's command: es.yaml with --set strategy.epochs=5 --set '~strategy.schedule'; a still optimizer
    (lr 1e-30) keeps val_loss flat, so the first validation is the best."""
    config = tmp_path / "es.yaml"
    config.write_text(yaml.safe_dump(BREAST_CANCER))
    capsys.readouterr()
    code = main(["train", str(config), "--set", "strategy.epochs=5", "--set", "~strategy.schedule",
                 "--set", f"strategy.early_stopping.patience={patience}", "--set", "strategy.optimizer.lr=1e-30",
                 "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 0
    lines = _warnings(capsys, "early_stopping.patience")
    assert len(lines) == int(warned), lines
    if warned:
        assert "set patience to 3 or less" in lines[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs_run"] == epochs_run


# ----------------------------------------------------------------------------------- metric names

def test_every_metric_alias_names_a_metric_and_shadows_none():
    for alias, name in METRIC_NAMES.items():
        assert get_metric(name).name.lower() == name, alias
        assert alias == alias.casefold() and alias not in METRICS and name != alias


@pytest.mark.parametrize(("name", "task", "suggested"), [
    ("sparse_categorical_accuracy", "multiclass", "accuracy"),  # was 'subset_accuracy', multi-label only
    ("categorical_accuracy", "multiclass", "accuracy"),
    ("binary_accuracy", "binary", "accuracy"),
    ("acc", "multilabel", "accuracy"),
    ("AUC", "binary", "roc_auc"),
    ("auc", "multiclass", "roc_auc"),
    ("SparseTopKCategoricalAccuracy", "multiclass", "top_5_accuracy"),
    ("sparse_categorical_crossentropy", "multiclass", "log_loss"),
    ("mean_squared_error", "regression", "mse"),
    ("MeanAbsoluteError", "regression", "mae"),
    ("r2_score", "regression", "r2"),
    ("roc_auc_score", "multilabel", "roc_auc"),
    ("f1_score", "binary", "f1"),
])
def test_a_keras_or_sklearn_metric_name_points_to_the_tasks_metric(name, task, suggested):
    with pytest.raises(ConfigError, match=rf"^unknown metric '{name}'; did you mean '{suggested}'\? \(metrics of a "
                                          rf"{task} task: ") as info:
        validate_metrics([name], task)
    assert "\n" not in str(info.value)
    assert validate_metrics([suggested], task) == [suggested]  # following it is accepted


@pytest.mark.parametrize(("name", "task", "said"), [
    ("binary_accuracy", "regression", "trainlab's name for it is 'accuracy', a metric of binary, multiclass, "
                                      "multilabel tasks, not of this regression task"),
    ("top_k_categorical_accuracy", "binary", "trainlab's name for it is 'top_5_accuracy', a metric of "
                                             "multiclass tasks, not of this binary task"),
    ("mean_squared_error", "multiclass", "trainlab's name for it is 'mse', a metric of regression tasks"),
])
def test_an_equivalent_of_another_task_is_said_to_be_one(name, task, said):
    with pytest.raises(ConfigError) as info:
        validate_metrics([name], task)
    assert said in str(info.value) and "did you mean" not in str(info.value)


def _typos(name: str) -> list[str]:
    return [name[:i] + name[i + 1:] for i in range(len(name))] + [name + "s", name.replace("_", "")]


@pytest.mark.parametrize("task", TASKS)
def test_no_suggestion_is_a_metric_the_task_refuses(task):
    """Every alias and every one-letter typo of every metric (of any task): what the did-you-mean offers on
    ``task`` is accepted on ``task``."""
    names = list(METRIC_NAMES) + [typo for name in METRICS.names() for typo in _typos(name)]
    offered = 0
    for name in names:
        if name in METRICS:
            continue
        try:
            validate_metrics([name], task)
        except ConfigError as exc:
            suggestion = re.search(r"did you mean '([^']+)'\?", str(exc))
            if suggestion:
                offered += 1
                assert validate_metrics([suggestion.group(1)], task), (name, str(exc))
    assert offered > 10


def test_fit_with_keras_metric_names_says_which_to_use():
    with pytest.raises(ConfigError) as info:
        _fit(dict(BASE, epochs=1), metrics=["sparse_categorical_accuracy"])
    assert str(info.value).startswith("unknown metric 'sparse_categorical_accuracy'; did you mean 'accuracy'?")


def test_metrics_compute_suggests_the_tasks_metric():
    with pytest.raises(ConfigError, match=r"did you mean 'accuracy'\?"):
        trainlab.metrics.compute(["sparse_categorical_accuracy"], np.array([0, 1, 2]), np.array([0, 1, 1]), 3,
                                 task="multiclass")


@pytest.mark.parametrize(("monitor", "said"), [
    ("val_sparse_categorical_accuracy", "; did you mean 'val_accuracy'? (available: "),
    ("val_AUC", "; trainlab records it as 'val_roc_auc'; add 'roc_auc' to the run's metrics"),  # was 'val_f1'
    ("val_mean_squared_error", "; trainlab records it as 'val_mse'; mse is a regression metric"),
])
def test_a_keras_monitor_name_points_to_trainlabs_record(monitor, said):
    with pytest.raises(ConfigError) as info:
        _fit(dict(BASE, epochs=1, early_stopping={"monitor": monitor}), metrics=["accuracy", "f1"])
    assert str(info.value).startswith(f"early_stopping monitors '{monitor}', which is not recorded{said}")
    assert "did you mean 'val_f1'" not in str(info.value)


# ----------------------------------------------------------------------------------- the data's fractions

@pytest.mark.parametrize(("key", "suggested"), [
    ("data.validation_split", "did you mean 'val_fraction'?"),
    ("data.validation_fraction", "did you mean 'val_fraction'?"),
    ("data.test_size", "did you mean 'test_fraction'?"),
    ("validation_split", "did you mean 'data.val_fraction'?"),
])
def test_keras_and_sklearn_split_names_point_to_the_datas_fractions(tmp_path, capsys, key, suggested):
    config = tmp_path / "es.yaml"
    config.write_text(yaml.safe_dump(BREAST_CANCER))
    capsys.readouterr()
    assert main(["train", str(config), "--set", f"{key}=0.2", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and suggested in lines[0], lines
    assert f"'{key.rsplit('.', 1)[-1]}'" in lines[0]


def test_the_suggested_val_fraction_holds_out_that_fraction(tmp_path):
    config = tmp_path / "es.yaml"
    config.write_text(yaml.safe_dump(BREAST_CANCER))
    assert main(["train", str(config), "--set", "data.val_fraction=0.3", "--set", "strategy.epochs=1",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())["rows"]
    assert rows["val"] / (rows["train"] + rows["val"]) == pytest.approx(0.3, abs=0.01)


# ----------------------------------------------------------------------------------- early_stopping.mode auto

@pytest.mark.parametrize(("monitor", "mode"), [("val_loss", "min"), ("val_accuracy", "max"), ("val_mae", "min")])
def test_mode_auto_is_the_monitors_direction_as_leaving_it_out(monitor, mode):
    auto = EarlyStoppingConfig.model_validate({"monitor": monitor, "mode": "auto"})
    assert auto.mode == mode
    assert auto == EarlyStoppingConfig.model_validate({"monitor": monitor})  # same config, same hash


def test_mode_auto_trains_as_the_monitors_direction():
    """val_accuracy with mode auto stops as mode max does (min would stop on the first rise)."""
    strategy = dict(BASE, optimizer={"name": "sgd", "lr": 0.05}, epochs=8)
    runs = [_fit(dict(strategy, early_stopping={"monitor": "val_accuracy", "patience": 2, "mode": mode}))
            for mode in ("auto", "max")]
    assert [r["val_accuracy"] for r in runs[0].history] == [r["val_accuracy"] for r in runs[1].history]
    assert runs[0].summary["stop_reason"] == runs[1].summary["stop_reason"]


@pytest.mark.parametrize(("word", "hint"), [("Auto", "; did you mean 'auto'?"), ("maximum", "; did you mean 'max'?"),
                                            ("sideways", "")])
def test_another_mode_word_is_one_line_naming_auto(tmp_path, capsys, word, hint):
    config = tmp_path / "es.yaml"
    config.write_text(yaml.safe_dump(BREAST_CANCER))
    capsys.readouterr()
    assert main(["train", str(config), "--set", f"strategy.early_stopping.mode={word}",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    lines = _error_lines(capsys)
    assert lines == [f"error: config key 'strategy.early_stopping.mode': must be 'min', 'max' or 'auto' (the "
                     f"monitor's direction, as leaving mode out); got '{word}'{hint}"]


# ----------------------------------------------------------------------------------- class-weighted val_loss

def _weighted_cross_entropy(logits: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """sum_i w_(y_i) (-log softmax(z_i)_(y_i)) / sum_i w_(y_i), in float64."""
    z = logits.astype(np.float64)
    log_p = z - z.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    w = weights[y]
    return float((w * -log_p[np.arange(len(y)), y]).sum() / w.sum())


def test_val_loss_is_class_weighted_as_the_docs_say():
    weights = np.array([1.0, 1.0, 20.0])
    result = _fit(dict(BASE, optimizer={"name": "sgd", "lr": 0.05}, epochs=2,
                       loss={"name": "cross_entropy", "class_weights": weights.tolist()}))
    x_val, y_val = _data(15, seed=1)
    with torch.no_grad():
        logits = result.model.cpu()(torch.from_numpy(x_val)).numpy()  # fit leaves it on the run's device
    weighted = _weighted_cross_entropy(logits, y_val, weights)
    plain = _weighted_cross_entropy(logits, y_val, np.ones(3))
    assert result.history[-1]["val_loss"] == pytest.approx(weighted, rel=1e-5)
    assert abs(weighted - plain) > 1e-3  # the weights change it: not Keras's unweighted val_loss
    for doc in ("README.md", "docs/losses.md"):
        text = " ".join((ROOT / doc).read_text().split())
        assert "Keras's `class_weight` weighs" in text and "`val_loss`" in text, doc


def test_reduce_on_plateau_mode_auto_is_the_monitors_direction_as_leaving_it_out():
    """strategy.schedule.mode: auto (Keras's ReduceLROnPlateau default) was refused: "must be one of 'min', 'max'"."""
    from trainlab.schedules import build_schedule

    for monitor, direction in (("val_loss", "min"), ("val_accuracy", "max")):
        auto = build_schedule({"name": "reduce_on_plateau", "mode": "auto", "monitor": monitor}, 100, 10)
        left_out = build_schedule({"name": "reduce_on_plateau", "monitor": monitor}, 100, 10)
        assert auto.mode == left_out.mode == direction


# ----------------------------------------------------------------------------------- whose weights are saved

@pytest.mark.parametrize("restore_best", [True, False])
def test_the_summary_and_the_result_say_whose_weights_early_stopping_left(restore_best):
    """A teacher's two runs, with and without restore_best, printed the same lines and wrote summaries that differed
    only in their numbers. Now ``restored_epoch`` names the epoch put back, and the saved model's validation loss
    is that epoch's record's (or, without restore_best, the last epoch's)."""
    strategy = dict(BASE, optimizer={"name": "sgd", "lr": 3.0}, epochs=30,
                    early_stopping={"patience": 2, "restore_best": restore_best})
    result = _fit(strategy)
    summary = result.summary
    epochs = [r for r in result.history if r.get("scope", "epoch") == "epoch" and "val_loss" in r]
    best = min(epochs, key=lambda r: r["val_loss"])
    assert summary["stopped_early"] and summary["best_epoch"] == best["epoch"] < summary["epochs_run"]
    kept = best if restore_best else epochs[-1]
    assert summary["restored_epoch"] == (best["epoch"] if restore_best else None)
    assert summary["val"]["loss"] == pytest.approx(kept["val_loss"], rel=1e-5)
    line = restored_line(summary)
    if restore_best:
        assert line == (f"model: epoch {best['epoch']}'s weights, the best val_loss (early stopping's restore_best), "
                        "not the last epoch's")
    else:
        assert line == "model: the last epoch's weights (early_stopping.restore_best: false), not the best epoch's"


def test_no_line_where_the_best_epoch_is_the_last_or_nothing_stopped():
    assert restored_line({"restored_epoch": 5, "epochs_run": 5, "stopped_early": False}) is None
    assert restored_line({"restored_epoch": None, "epochs_run": 5, "stopped_early": False,
                          "stop_reason": "epochs=5 reached"}) is None
    assert restored_line({"epochs_run": 5, "stopped_early": False}) is None  # a summary written before the key
    never = "early stopping: val_loss did not improve for 3 epochs (no value so far was a number)"
    assert restored_line({"restored_epoch": None, "epochs_run": 3, "stopped_early": True, "stop_reason": never}) \
        is None  # restore_best had nothing to restore: not said to be false (a review)
    assert restored_line({"restored_epoch": 3, "epochs_run": 5, "stopped_early": False,
                          "stop_reason": "epochs=5 reached"}) == ("model: epoch 3's weights (early stopping's "
                                                                   "restore_best), not the last epoch's")
