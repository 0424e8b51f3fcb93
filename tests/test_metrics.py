"""Metrics agree with scikit-learn's to 1e-6, on random predictions and on a real run's summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn import metrics as sk
from sklearn.preprocessing import label_binarize

from tests.conftest import DIGITS_MLP
from trainlab import metrics
from trainlab.builders import build
from trainlab.cli import main
from trainlab.config import load_config
from trainlab.errors import ConfigError, DataError
from trainlab.losses import LOSSES, build_loss


@pytest.mark.parametrize("num_classes", [2, 3, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn(num_classes, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, num_classes, 300))
    if num_classes == 10:
        p[p == 9] = 8  # a class never predicted: zero-division handling
    got = metrics.compute(["accuracy", "precision", "recall", "f1", "f1_per_class", "confusion_matrix"],
                          torch.from_numpy(p), torch.from_numpy(y), num_classes)
    average = "binary" if num_classes == 2 else "macro"
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, p), abs=1e-6)
    assert got["precision"] == pytest.approx(sk.precision_score(y, p, average=average, zero_division=0), abs=1e-6)
    assert got["recall"] == pytest.approx(sk.recall_score(y, p, average=average, zero_division=0), abs=1e-6)
    assert got["f1"] == pytest.approx(sk.f1_score(y, p, average=average, zero_division=0), abs=1e-6)
    np.testing.assert_allclose(got["f1_per_class"],
                               sk.f1_score(y, p, average=None, labels=range(num_classes), zero_division=0),
                               atol=1e-6)
    assert got["confusion_matrix"] == sk.confusion_matrix(y, p, labels=range(num_classes)).tolist()


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(200, 2))
    p = y + rng.normal(scale=0.5, size=(200, 2))
    got = metrics.compute(["mse", "mae", "r2"], torch.from_numpy(p), torch.from_numpy(y), None)
    assert got["mse"] == pytest.approx(sk.mean_squared_error(y, p), abs=1e-6)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, p), abs=1e-6)
    assert got["r2"] == pytest.approx(sk.r2_score(y, p), abs=1e-6)


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


def _scored(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and softmax probabilities that carry some signal about them."""
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    return y, _softmax(logits)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_score_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(400) < 0.3).astype(np.int64)
    scores = 1 / (1 + np.exp(-(rng.normal(size=400) + 1.2 * y)))
    if seed == 2:
        scores = np.round(scores, 1)  # many tied scores: the curves must step over a tie at once
        scores = np.clip(scores, 0.05, 0.95)
    p = (scores > 0.5).astype(np.int64)
    names = ["roc_auc", "average_precision", "log_loss", "balanced_accuracy", "matthews_corrcoef",
             "precision_micro"]
    got = metrics.compute(names, torch.from_numpy(p), torch.from_numpy(y), 2, task="binary",
                          probabilities=torch.from_numpy(scores))
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, scores), abs=1e-12)
    assert got["average_precision"] == pytest.approx(sk.average_precision_score(y, scores), abs=1e-12)
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, scores), abs=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, p), abs=1e-12)
    assert got["matthews_corrcoef"] == pytest.approx(sk.matthews_corrcoef(y, p), abs=1e-12)
    assert got["precision_micro"] == pytest.approx(sk.precision_score(y, p, average="micro"), abs=1e-12)
    # cross_entropy on a binary task gives (N, 2) softmax probabilities: the positive column is used
    two_columns = torch.from_numpy(np.stack([1 - scores, scores], 1))
    again = metrics.compute(["roc_auc", "log_loss"], torch.from_numpy(p), torch.from_numpy(y), 2, task="binary",
                            probabilities=two_columns)
    assert again["roc_auc"] == pytest.approx(got["roc_auc"]) and again["log_loss"] == pytest.approx(got["log_loss"])


@pytest.mark.parametrize("num_classes", [3, 10])
@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_score_metrics_match_sklearn(num_classes, seed):
    rng = np.random.default_rng(seed)
    y, probabilities = _scored(rng, 500, num_classes)
    p = probabilities.argmax(1)
    ks = [k for k in (1, 2, 3, 5, 12) if k != num_classes]
    names = ["roc_auc", "average_precision", "log_loss", "balanced_accuracy", "matthews_corrcoef", "f1_micro",
             *[f"top_{k}_accuracy" for k in ks]]
    got = metrics.compute(names, torch.from_numpy(p), torch.from_numpy(y), num_classes, task="multiclass",
                          probabilities=torch.from_numpy(probabilities))
    labels = list(range(num_classes))
    assert got["roc_auc"] == pytest.approx(
        sk.roc_auc_score(y, probabilities, multi_class="ovr", average="macro"), abs=1e-12)
    assert got["average_precision"] == pytest.approx(
        sk.average_precision_score(label_binarize(y, classes=labels), probabilities, average="macro"), abs=1e-12)
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, probabilities, labels=labels), abs=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, p), abs=1e-12)
    assert got["matthews_corrcoef"] == pytest.approx(sk.matthews_corrcoef(y, p), abs=1e-12)
    assert got["f1_micro"] == pytest.approx(sk.f1_score(y, p, average="micro"), abs=1e-12)
    for k in ks:
        expected = sk.top_k_accuracy_score(y, probabilities, k=min(k, num_classes - 1), labels=labels) \
            if k < num_classes else 1.0
        assert got[f"top_{k}_accuracy"] == pytest.approx(expected, abs=1e-12), k


def test_balanced_accuracy_and_mcc_with_a_class_never_predicted():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 200)
    p = np.where(rng.random(200) < 0.5, y, rng.integers(0, 4, 200))
    p[p == 3] = 2
    got = metrics.compute(["balanced_accuracy", "matthews_corrcoef"], torch.from_numpy(p), torch.from_numpy(y), 4,
                          task="multiclass")
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, p), abs=1e-12)
    assert got["matthews_corrcoef"] == pytest.approx(sk.matthews_corrcoef(y, p), abs=1e-12)
    constant = metrics.compute(["matthews_corrcoef"], torch.zeros(5, dtype=torch.long),
                               torch.tensor([0, 1, 0, 1, 1]), 2, task="binary")
    assert constant["matthews_corrcoef"] == sk.matthews_corrcoef([0, 1, 0, 1, 1], [0] * 5) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n, num_labels = 300, 5
    y = (rng.random((n, num_labels)) < np.array([0.5, 0.1, 0.3, 0.05, 0.7])).astype(np.float32)
    scores = 1 / (1 + np.exp(-(rng.normal(size=(n, num_labels)) + 2.0 * y - 1.0)))
    p = (scores > 0.5).astype(np.int64)
    if seed == 1:
        p[:, 3] = 0  # a label never predicted: zero-division handling
    names = ["accuracy", "subset_accuracy", "hamming_accuracy", "precision", "recall", "f1", "f1_macro",
             "precision_micro", "recall_micro", "f1_micro", "precision_per_class", "recall_per_class",
             "f1_per_class", "confusion_matrix", "roc_auc", "average_precision", "log_loss"]
    got = metrics.compute(names, torch.from_numpy(p), torch.from_numpy(y), num_labels, task="multilabel",
                          probabilities=torch.from_numpy(scores))
    assert got["accuracy"] == got["subset_accuracy"] == pytest.approx(sk.accuracy_score(y, p), abs=1e-12)
    assert got["hamming_accuracy"] == pytest.approx(1 - sk.hamming_loss(y, p), abs=1e-12)
    for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score), ("f1", sk.f1_score)):
        assert got[name] == pytest.approx(fn(y, p, average="macro", zero_division=0), abs=1e-12), name
        assert got[f"{name}_micro"] == pytest.approx(fn(y, p, average="micro", zero_division=0), abs=1e-12), name
        np.testing.assert_allclose(got[f"{name}_per_class"], fn(y, p, average=None, zero_division=0), atol=1e-12)
    assert got["f1_macro"] == got["f1"]
    assert got["confusion_matrix"] == sk.multilabel_confusion_matrix(y, p).tolist()
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, scores, average="macro"), abs=1e-12)
    assert got["average_precision"] == pytest.approx(sk.average_precision_score(y, scores, average="macro"),
                                                     abs=1e-12)
    per_label = [sk.log_loss(y[:, j], scores[:, j], labels=[0, 1]) for j in range(num_labels)]
    assert got["log_loss"] == pytest.approx(np.mean(per_label), abs=1e-12)
    # the three-argument call reads a 2-D target with classes as multi-label
    old = metrics.compute(["f1", "accuracy"], torch.from_numpy(p), torch.from_numpy(y), num_labels)
    assert old == {"f1": got["f1"], "accuracy": got["accuracy"]}


def test_score_metrics_skip_labels_without_both_values():
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], dtype=np.float32)  # label 1 is never positive
    scores = np.array([[0.9, 0.2], [0.4, 0.1], [0.3, 0.7], [0.2, 0.3]])
    got = metrics.compute(["roc_auc", "average_precision"], torch.from_numpy((scores > 0.5).astype(np.int64)),
                          torch.from_numpy(y), 2, task="multilabel", probabilities=torch.from_numpy(scores))
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y[:, 0], scores[:, 0]))
    assert got["average_precision"] == pytest.approx(sk.average_precision_score(y[:, 0], scores[:, 0]))
    none = metrics.compute(["roc_auc"], torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long), 2,
                           task="binary", probabilities=torch.tensor([0.1, 0.2, 0.3]))
    assert np.isnan(none["roc_auc"])


def test_loss_probabilities_feed_the_score_metrics():
    """What the engine does: predictions and probabilities from the same loss and outputs."""
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(200, 4))
    y = rng.integers(0, 4, 200)
    loss = build_loss("cross_entropy")
    output = torch.from_numpy(logits)
    got = metrics.compute(["accuracy", "roc_auc", "log_loss"], loss.predict(output), torch.from_numpy(y), 4,
                          task="multiclass", probabilities=loss.probabilities(output))
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, _softmax(logits), multi_class="ovr"), abs=1e-12)
    assert got["log_loss"] == pytest.approx(sk.log_loss(y, _softmax(logits)), abs=1e-12)
    with pytest.raises(DataError, match="metric 'roc_auc' needs the model's class probabilities"):
        metrics.compute(["roc_auc"], loss.predict(output), torch.from_numpy(y), 4, task="multiclass")


def test_an_abbreviation_is_suggested_only_when_it_names_one_metric():
    from trainlab.registry import _abbreviated, did_you_mean

    assert did_you_mean("acc", metrics.METRICS.names()) == "; did you mean 'accuracy'?"
    assert _abbreviated("recall_m", ["recall_macro", "recall_micro"]) == []  # which one?
    assert _abbreviated("ac", ["accuracy"]) == []  # too short to tell


def test_validate_metrics_per_task():
    assert metrics.validate_metrics(["loss", "roc_auc", "top_3_accuracy"], "multiclass") == ["roc_auc",
                                                                                           "top_3_accuracy"]
    cases = [
        (["f1_macor"], "multiclass", r"unknown metric 'f1_macor'; did you mean 'f1_macro'\?"),
        (["top5_accuracy"], "multiclass", r"unknown metric 'top5_accuracy'; did you mean 'top_5_accuracy'\?"),
        (["acc"], "multiclass", r"unknown metric 'acc'; did you mean 'accuracy'\?"),  # difflib: 0.55 < 0.6
        (["bal_acc"], "multiclass", r"unknown metric 'bal_acc'; did you mean 'balanced_accuracy'\?"),
        (["top_0_accuracy"], "multiclass", r"metric 'top_0_accuracy': k must be >= 1"),
        (["top_5_accuracy"], "binary", r"metric 'top_5_accuracy' applies to multiclass tasks but the data is a "
                                       r"binary task \(metrics of a binary task: accuracy, average_precision, "
                                       r"balanced_accuracy, .*, roc_auc\)$"),
        (["hamming_accuracy"], "multiclass", r"applies to multilabel tasks but the data is a multiclass task"),
        (["matthews_corrcoef"], "multilabel", r"applies to binary, multiclass tasks but the data is a multilabel"),
        (["r2"], "binary", r"metric 'r2' applies to regression tasks"),
        (["accuracy"], "regression", r"applies to binary, multiclass, multilabel tasks .* \(metrics of a regression "
                                     r"task: mae, mse, r2\)$"),
    ]
    for names, task, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            metrics.validate_metrics(names, task)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="metric 'roc_auc' needs the model's class probabilities, which loss "
                                          "'hinge' does not give"):
        metrics.validate_metrics(["accuracy", "roc_auc"], "binary", loss=build_loss("hinge"))
    assert metrics.validate_metrics(["roc_auc"], "binary", loss=build_loss("bce")) == ["roc_auc"]
    assert metrics.default_metrics("multilabel")[:2] == ["subset_accuracy", "hamming_accuracy"]
    assert metrics.validate_metrics(metrics.default_metrics("multilabel"), "multilabel")


def test_scalar_and_direction():
    assert not metrics.is_scalar("val_f1_per_class") and not metrics.is_scalar("confusion_matrix")
    assert metrics.is_scalar("val_loss") and metrics.is_scalar("val_top_5_accuracy") and metrics.is_scalar("f1")
    assert metrics.higher_is_better("val_roc_auc") and metrics.higher_is_better("top_2_accuracy")
    assert not metrics.higher_is_better("val_loss") and not metrics.higher_is_better("log_loss")
    assert not metrics.higher_is_better("test_mae")
    with pytest.raises(ConfigError, match="unknown metric 'val_f2'"):
        metrics.is_scalar("val_f2")


def test_a_user_metric_record_key_splits_at_the_split_prefix():
    """``val_mylosses:my_metric`` was read as a module ``val_mylosses`` ("cannot import module"); a user
    metric is by contract one number, higher is better, so nothing is imported to know that."""
    for key in ("val_mylosses:my_metric", "test_mylosses:my_metric", "mylosses:my_metric"):
        assert metrics.is_scalar(key) and metrics.higher_is_better(key)
    assert metrics.monitor_mode("val_no_such_module:metric") == "max"


@pytest.mark.parametrize("source", ["digits", "breast_cancer"])
def test_summary_equals_sklearn_on_the_same_predictions(write_config, tmp_path, source):
    loss = "bce" if source == "breast_cancer" else "cross_entropy"
    config = write_config(DIGITS_MLP, data={"source": source}, strategy__loss=loss)
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["test"]) == {"accuracy", "precision", "recall", "f1", "loss"}
    built = build(load_config(out / "config.yaml"), quiet=True)
    built.model.load_state_dict(load_file(out / "model.safetensors"))
    output = built.evaluator.outputs(built.data.test)
    y_pred = built.loss.predict(output).cpu().numpy()
    y_true = built.data.test.y.numpy()
    average = "binary" if source == "breast_cancer" else "macro"
    expected = {
        "accuracy": sk.accuracy_score(y_true, y_pred),
        "precision": sk.precision_score(y_true, y_pred, average=average, zero_division=0),
        "recall": sk.recall_score(y_true, y_pred, average=average, zero_division=0),
        "f1": sk.f1_score(y_true, y_pred, average=average, zero_division=0),
    }
    for key, value in expected.items():
        assert summary["test"][key] == pytest.approx(value, abs=1e-6), key
    assert summary["test"]["accuracy"] > 0.8


def test_a_loss_that_trains_embeddings_reports_the_loss_only(tmp_path):
    """triplet / nt_xent outputs predict no target: no default metric (accuracy failed inside the evaluation)."""
    from trainlab.config import validate
    from trainlab.experiment import train

    config = validate({"name": "t", "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
                       "strategy": {"loss": {"name": "triplet", "embedding_dim": 4}, "optimizer": "adam",
                                    "batch_size": 32, "epochs": 1}, "output": {"progress": "off"}})
    summary, _ = train(config, out=tmp_path / "run", quiet=True)
    assert set(summary["test"]) == {"loss"} and set(summary["val"]) == {"loss"}
    assert metrics.default_metrics("multiclass", LOSSES.get("nt_xent")) == []
    assert metrics.default_metrics("multiclass", LOSSES.get("cross_entropy")) == ["accuracy", "precision", "recall", "f1"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_accuracy_takes_tied_classes_in_argmax_order(seed):
    """Rounded logits tie often. The rule: the lower class index first, as argmax; scikit-learn's
    top_k_accuracy_score takes the higher index first, so on the columns reversed it is the reference."""
    rng = np.random.default_rng(seed)
    num_classes = 5
    logits = np.round(rng.normal(size=(300, num_classes)))
    logits[:20, 2:] = -200.0  # softmax underflows to exactly 0: classes 2..4 tie for the places after 0 and 1
    probabilities = torch.from_numpy(logits).float().softmax(1).numpy()
    y = rng.integers(0, num_classes, 300)
    predicted = probabilities.argmax(1)  # numpy: the first of equal maxima
    names = ["accuracy", *[f"top_{k}_accuracy" for k in range(1, num_classes)]]
    got = metrics.compute(names, torch.from_numpy(predicted), torch.from_numpy(y), num_classes, task="multiclass",
                          probabilities=torch.from_numpy(probabilities))
    labels = list(range(num_classes))
    assert got["top_1_accuracy"] == got["accuracy"] == pytest.approx(sk.accuracy_score(y, predicted), abs=1e-12)
    for k in range(1, num_classes):
        mirrored = sk.top_k_accuracy_score(num_classes - 1 - y, probabilities[:, ::-1], k=k, labels=labels)
        assert got[f"top_{k}_accuracy"] == pytest.approx(mirrored, abs=1e-12), k
    # the ties matter here: scikit-learn's own order gives other numbers
    assert any(got[f"top_{k}_accuracy"] != pytest.approx(sk.top_k_accuracy_score(y, probabilities, k=k, labels=labels))
               for k in range(1, num_classes))


def test_top_1_accuracy_equals_accuracy_when_softmax_ties_what_the_logits_order():
    """float32 softmax of logits 1e-8 apart gives equal probabilities; the loss predicts the larger logit."""
    logits = torch.tensor([[0.0, 1e-8, -3.0], [0.0, 1e-8, -3.0], [-3.0, 0.0, 1e-8]])
    loss = build_loss("cross_entropy")
    probabilities = loss.probabilities(logits)
    assert probabilities[0, 0] == probabilities[0, 1] and probabilities[2, 1] == probabilities[2, 2]
    y = torch.tensor([1, 0, 1])
    predicted = loss.predict(logits)
    got = metrics.compute(["accuracy", "top_1_accuracy", "top_2_accuracy"], predicted, y, 3, task="multiclass",
                          probabilities=probabilities)
    expected = sk.accuracy_score(y.numpy(), logits.numpy().argmax(1))
    assert got["accuracy"] == got["top_1_accuracy"] == pytest.approx(expected)
    assert expected == pytest.approx(1 / 3)
    assert got["top_2_accuracy"] == 1.0  # every row's two most probable classes are the tied two


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_score_metrics_of_non_finite_probabilities_are_nan_not_a_plausible_number(bad):
    """scikit-learn raises on such input; a run records NaN (null) and goes on, as for an undefined AUC."""
    y = np.array([0, 1, 1, 0])
    scores = np.array([0.2, bad, 0.7, 0.1])
    with pytest.raises(ValueError):
        sk.roc_auc_score(y, scores)
    names = ["roc_auc", "average_precision", "log_loss"]
    got = metrics.compute(names, torch.tensor([0, 0, 1, 0]), torch.from_numpy(y), 2, task="binary",
                          probabilities=torch.from_numpy(scores))
    assert all(np.isnan(got[name]) for name in names), got
    probabilities = np.full((3, 3), 1 / 3)
    probabilities[1] = bad
    multi = metrics.compute([*names, "top_2_accuracy"], torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2]), 3,
                            task="multiclass", probabilities=torch.from_numpy(probabilities))
    assert all(np.isnan(value) for value in multi.values()), multi
    labels = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    label_scores = np.array([[0.9, bad], [0.1, 0.8], [0.7, 0.6]])
    multilabel = metrics.compute(names, torch.from_numpy(labels), torch.from_numpy(labels), 2, task="multilabel",
                                 probabilities=torch.from_numpy(label_scores))
    assert all(np.isnan(value) for value in multilabel.values()), multilabel


def test_r2_of_fewer_than_two_rows_is_nan_as_sklearn():
    import warnings

    one = metrics.compute(["r2", "mse"], torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]]), None, task="regression")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn: "R^2 score is not well-defined with less than two samples."
        reference = sk.r2_score([[0.0, 0.0]], [[1.0, 2.0]])
    assert np.isnan(reference) and np.isnan(one["r2"]) and one["mse"] == pytest.approx(2.5)
    two = metrics.compute(["r2"], torch.tensor([1.0, 2.0]), torch.tensor([0.0, 3.0]), None, task="regression")
    assert two["r2"] == pytest.approx(sk.r2_score([0.0, 3.0], [1.0, 2.0]))


def test_a_top_k_accuracy_over_every_class_is_warned_about(write_config, tmp_path, capsys):
    """top_7_accuracy on 5 classes was accepted without a word, and is 1 whatever the model."""
    assert metrics.top_k_warning(["accuracy", "top_5_accuracy"], "multiclass", 5) == (
        "metric 'top_5_accuracy' covers all 5 classes: it is 1 whatever the model; use k below 5 (e.g. "
        "top_2_accuracy)")
    assert metrics.top_k_warning(["top_4_accuracy"], "multiclass", 5) is None
    assert metrics.top_k_warning(["top_2_accuracy"], "multiclass", 2) is not None
    from tests.conftest import DIGITS_MLP
    from trainlab.cli import main

    config = write_config(DIGITS_MLP, metrics=["accuracy", "top_10_accuracy"], strategy__epochs=1)
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    assert "warning: metric 'top_10_accuracy' covers all 10 classes" in capsys.readouterr().err


USER_METRICS = '''import numpy as np
import torch


def as_numpy(predictions, target, num_classes):
    return np.float64(0.25)


def as_tensor(predictions, target, num_classes):
    return (predictions == target).float().mean()


def as_text(predictions, target, num_classes):
    return "good"


def as_list(predictions, target, num_classes):
    return [0.5]
'''


def test_a_user_metric_value_is_a_python_float_or_one_error(tmp_path, monkeypatch):
    """"good" was recorded as 'good' and np.float64 stayed np.float64 in the returned summary."""
    import sys

    (tmp_path / "usermetric_t.py").write_text(USER_METRICS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    predictions, target = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0, 0])
    try:
        values = metrics.compute(["usermetric_t:as_numpy", "usermetric_t:as_tensor"], predictions, target, 2,
                                 task="binary")
        assert values == {"usermetric_t:as_numpy": 0.25, "usermetric_t:as_tensor": 0.75}
        assert all(type(value) is float for value in values.values())
        for attr, shown in (("as_text", "str ('good')"), ("as_list", "list ([0.5])")):
            with pytest.raises(ConfigError) as caught:
                metrics.compute([f"usermetric_t:{attr}"], predictions, target, 2, task="binary")
            assert str(caught.value).startswith(f"metric 'usermetric_t:{attr}' returned {shown}, not a number")
    finally:
        sys.modules.pop("usermetric_t", None)


def test_compute_takes_numpy_arrays_and_lists_as_tensors_and_matches_sklearn():
    """NumPy inputs raised AttributeError: 'numpy.ndarray' object has no attribute 'detach'."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    scores = rng.dirichlet(np.ones(3), 200)
    names = ["accuracy", "f1", "log_loss"]
    from_numpy = metrics.compute(names, p, y, 3, task="multiclass", probabilities=scores)
    from_lists = metrics.compute(names, p.tolist(), y.tolist(), 3, task="multiclass", probabilities=scores.tolist())
    assert from_numpy == from_lists
    assert from_numpy["accuracy"] == pytest.approx(sk.accuracy_score(y, p), abs=1e-12)
    assert from_numpy["f1"] == pytest.approx(sk.f1_score(y, p, average="macro"), abs=1e-12)
    assert from_numpy["log_loss"] == pytest.approx(sk.log_loss(y, scores), abs=1e-9)
    target = rng.normal(size=(50, 1))
    prediction = target[:, 0] + rng.normal(size=50)  # (N,) against (N, 1): not broadcast to (N, N)
    assert metrics.compute(["mse"], prediction, target, None)["mse"] == pytest.approx(
        sk.mean_squared_error(target[:, 0], prediction), rel=1e-12)


def test_compute_of_a_binary_task_scores_class_1_when_no_row_holds_it():
    """Without num_classes, K was read as the largest label + 1: all-0 targets and predictions gave K = 1 and
    precision, recall and F1 of class 0 (1.0, "perfect"), where scikit-learn scores the positive class 1."""
    target, predictions = [0, 0, 0, 0], [0, 0, 0, 0]
    got = metrics.compute(["precision", "recall", "f1", "accuracy"], predictions, target, None, task="binary")
    expected = {"precision": sk.precision_score(target, predictions, zero_division=0),
                "recall": sk.recall_score(target, predictions, zero_division=0),
                "f1": sk.f1_score(target, predictions, zero_division=0),
                "accuracy": sk.accuracy_score(target, predictions)}
    assert got == pytest.approx(expected) and expected["f1"] == 0.0


@pytest.mark.parametrize("call, error, message", [
    (lambda: metrics.compute(["accuracy"], torch.tensor([0, 1, 1, 0]), torch.tensor([0, 1, 0]), 2, task="binary"),
     DataError, r"^4 predictions but 3 targets; give one of each per sample$"),
    (lambda: metrics.compute(["roc_auc"], [0, 1], [0, 1], 2, task="binary", probabilities=[0.2, 0.7, 0.1]),
     DataError, r"^2 predictions and 3 rows of probabilities but 2 targets"),
    (lambda: metrics.compute(["accuracy"], [0, 1], [0, 1], 2, task="classification"),
     ConfigError, r"^task must be one of regression, binary, multiclass, multilabel; got 'classification' "
                  r"\(class labels: 'binary' or 'multiclass'\)$"),
    (lambda: metrics.compute(["accuracy"], [0, 1], [0, 1], 2, task="multiclas"),
     ConfigError, r"got 'multiclas'; did you mean 'multiclass'\?$"),
    (lambda: metrics.compute(["f1"], [0, 1, 2, 1], [0, 2, 1, 1], 3, task="multilabel"),
     DataError, r"^a multilabel task takes \(N, L\) 0/1 targets and predictions, one column per label; got targets "
                r"\(4,\) and predictions \(4,\) \(one class per row is task='binary' or 'multiclass'\)$"),
    (lambda: metrics.compute(["f1"], [[0, 1], [1, 1]], [[0, 2], [1, 1]], 2, task="multilabel"),
     DataError, r"^a multilabel task's targets are 0/1 per label; got 2 \(pass loss.predict"),
    (lambda: metrics.compute(["f1_macro"], [[0.3, -2.0], [1.5, 0.4]], [[1, 0], [1, 1]], 2, task="multilabel"),
     DataError, r"^a multilabel task's predictions are 0/1 per label; got 0.3 \(pass loss.predict\(output\) as "
                r"predictions, and probabilities= for the scores\)$"),
    (lambda: metrics.compute(["accuracy"], [0, 2], [0, 1], None, task="binary"),
     DataError, r"^binary predictions are class indices 0..1; got 2"),
    (lambda: metrics.compute(["mse"], [0, 1, 2], [0, 2, 1], 3, task="multiclass"),
     ConfigError, r"^metric 'mse' applies to regression tasks but the data is a multiclass task \(metrics of a "
                  r"multiclass task: accuracy, average_precision, "),
    (lambda: metrics.compute(["accuracy"], [0.3, 0.9], [0, 1], 2, task="binary"),
     DataError, r"^binary predictions are class indices 0..1; got 0.3 \(pass loss.predict\(output\) as predictions"),
    (lambda: metrics.compute(["accuracy"], [0, 1], [0, 3], 3, task="multiclass"),
     DataError, r"^multiclass targets are class indices 0..2; got 3"),
    (lambda: metrics.compute(["accuracy"], np.array(["a", "b"]), [0, 1], 2, task="binary"),
     DataError, r"^predictions must be a tensor or array of numbers, one row per sample; got ndarray"),
    (lambda: metrics.compute(["mse"], np.zeros(4), np.zeros((4, 2)), None, task="regression"),
     DataError, r"^regression predictions shaped \(4,\) do not match targets shaped \(4, 2\)$"),
])
def test_compute_refuses_inputs_no_metric_reads_right_with_one_error(call, error, message):
    """Different lengths were torch's RuntimeError, task='classification' passed, task='multilabel' on class
    indices scored f1 1.0 for wrong predictions, and mse on a multiclass task was computed without a word."""
    with pytest.raises(error, match=message):
        call()


def test_validate_metrics_builds_a_loss_given_by_name_or_spec():
    """A loss name was read as no loss at all: roc_auc with 'hinge', which gives no probabilities, passed."""
    with pytest.raises(ConfigError, match="metric 'roc_auc' needs the model's class probabilities, which loss "
                                          "'hinge' does not give"):
        metrics.validate_metrics(["f1", "roc_auc"], "binary", loss="hinge")
    assert metrics.validate_metrics(["roc_auc"], "binary", loss={"name": "focal", "gamma": 2.0}) == ["roc_auc"]
    with pytest.raises(ConfigError, match="unknown loss 'hingee'; did you mean 'hinge'"):
        metrics.validate_metrics(["f1"], "binary", loss="hingee")


def test_rows_of_the_losss_ignore_index_are_left_out_of_the_metrics_as_of_the_loss():
    """cross_entropy's ignore_index left rows out of the loss but not of the metrics: a class the model is never
    taught counted as an error in every val accuracy (0.62 where scikit-learn on the rows the loss scores says
    0.93). Now the metrics are scikit-learn's on the kept rows."""
    import trainlab

    generator = torch.Generator().manual_seed(0)

    def rows(n):
        y = torch.randint(0, 3, (n,), generator=generator)
        x = torch.randn(n, 4, generator=generator)
        x[torch.arange(n), y] += 2.0
        return x, y

    (x, y), (x_val, y_val) = rows(300), rows(120)
    result = trainlab.fit(torch.nn.Linear(4, 3), train=(x, y), val=(x_val, y_val), task="multiclass",
                          metrics=["accuracy", "f1_macro"], strategy={
                              "loss": {"name": "cross_entropy", "ignore_index": 0},
                              "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 32, "epochs": 3})
    with torch.no_grad():
        predicted = result.model(x_val).argmax(1).numpy()
    kept = (y_val != 0).numpy()
    record = result.history[-1]
    assert record["val_accuracy"] == pytest.approx(sk.accuracy_score(y_val.numpy()[kept], predicted[kept]))
    assert record["val_f1_macro"] == pytest.approx(sk.f1_score(y_val.numpy()[kept], predicted[kept], average="macro",
                                                               labels=sorted(set(y_val.numpy()[kept]) |
                                                                             set(predicted[kept])),
                                                               zero_division=0))
    assert record["val_accuracy"] != pytest.approx(sk.accuracy_score(y_val.numpy(), predicted))
    # a split of only such rows: every metric undefined (NaN), not an F1 of 0.0 that ranks runs
    only_ignored = trainlab.fit(torch.nn.Linear(4, 3), train=(x, y), val=(x_val, torch.zeros_like(y_val)),
                                task="multiclass", metrics=["accuracy", "f1_macro", "precision"], strategy={
                                    "loss": {"name": "cross_entropy", "ignore_index": 0},
                                    "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 32, "epochs": 1})
    last = only_ignored.history[-1]
    assert all(math.isnan(last[key]) for key in ("val_accuracy", "val_f1_macro", "val_precision")), last
