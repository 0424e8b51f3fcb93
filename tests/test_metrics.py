"""Metrics agree with scikit-learn's to 1e-6, on random predictions and on a real run's summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn import metrics as sk

from tests.conftest import DIGITS_MLP
from trainlab import metrics
from trainlab.cli import main
from trainlab.config import load_config
from trainlab.builders import build


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
    y_pred = built.loss.predict(output).numpy()
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
