"""The loss advisor on sklearn's bundled datasets and on synthetic targets with known structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

from trainlab.advisor import Advice, advise, format_advice, robust_stats
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss


def buildable(advice: Advice) -> None:
    build_loss(advice.loss)
    for alternative in advice.alternatives:
        build_loss(alternative)
    json.dumps(advice.to_dict())  # evidence is plain JSON for `trainlab advise --json`-style output


def test_diabetes_is_plain_regression():
    advice = advise(load_diabetes().target)
    assert advice.task == "regression" and advice.loss == {"name": "mse"}
    assert advice.evidence["outlier_fraction"] == 0.0 and advice.evidence["excess_kurtosis"] < 0
    assert any("without heavy tails" in reason for reason in advice.reasons)
    assert advice.metrics[0] == "mse"
    buildable(advice)


def test_breast_cancer_is_bce():
    advice = advise(load_breast_cancer().target)
    assert advice.task == "binary" and advice.loss == {"name": "bce"}  # 37% minority: no pos_weight
    assert advice.evidence["n_pos"] == 357 and advice.evidence["n_neg"] == 212
    buildable(advice)


def test_digits_is_cross_entropy():
    advice = advise(load_digits().target)
    assert advice.task == "multiclass" and advice.loss == {"name": "cross_entropy"}
    assert advice.evidence["num_classes"] == 10
    buildable(advice)


def test_gross_outliers_get_a_robust_loss():
    rng = np.random.default_rng(0)
    y = rng.normal(3.0, 2.0, 2000)
    gross = rng.random(2000) < 0.1
    y[gross] += rng.choice([-1, 1], gross.sum()) * rng.uniform(30, 60, gross.sum())
    advice = advise(y)
    assert advice.loss["name"] == "huber"
    # delta = 1.345 * 1.4826 * MAD of the targets, recomputed here
    median = np.median(y)
    sigma = 1.4826 * np.median(np.abs(y - median))
    assert advice.loss["delta"] == pytest.approx(1.345 * sigma, rel=1e-2)
    assert 0.08 < advice.evidence["outlier_fraction"] < 0.12
    assert advice.evidence["median"] == pytest.approx(median, rel=1e-3)
    assert any("|robust z| > 3.5" in reason for reason in advice.reasons)
    assert advice.metrics[0] == "mae"
    assert {a["name"] for a in advice.alternatives} >= {"adaptive"}
    buildable(advice)


def test_heavy_tails_without_point_outliers_get_a_robust_loss():
    y = np.random.default_rng(1).standard_t(df=2.5, size=3000)  # infinite kurtosis
    advice = advise(y)
    assert advice.loss["name"] == "huber"


def test_gaussian_target_stays_mse():
    for seed in range(5):
        assert advise(np.random.default_rng(seed).normal(size=5000)).loss == {"name": "mse"}


def test_imbalanced_binary_gets_pos_weight():
    y = np.r_[np.zeros(950, dtype=np.int64), np.ones(50, dtype=np.int64)]
    advice = advise(np.random.default_rng(0).permutation(y))
    assert advice.loss == {"name": "bce", "pos_weight": 19.0}
    assert advice.metrics[0] == "f1" and "accuracy" not in advice.metrics
    assert any("95.0%" in reason for reason in advice.reasons)  # the all-negative accuracy
    buildable(advice)


def test_multiclass_imbalance_levels():
    moderate = np.repeat(np.arange(3), [600, 300, 100])  # 6 to 1
    advice = advise(moderate)
    assert advice.loss["name"] == "cross_entropy"
    n, k = 1000, 3
    np.testing.assert_allclose(advice.loss["class_weights"], [n / (k * 600), n / (k * 300), n / (k * 100)], rtol=1e-3)
    strong = np.repeat(np.arange(4), [1000, 200, 50, 10])  # 100 to 1
    advice = advise(strong)
    assert advice.loss["name"] == "focal" and advice.loss["gamma"] == 2.0 and len(advice.loss["alpha"]) == 4
    assert advice.metrics[0] == "f1_macro"
    buildable(advice)


def test_multilabel_gets_per_label_bce():
    rng = np.random.default_rng(0)
    y = np.stack([rng.random(1000) < p for p in (0.5, 0.1, 0.3)], axis=1).astype(np.int64)
    advice = advise(y)
    assert advice.task == "multilabel" and advice.loss["name"] == "bce"
    positives = y.sum(0)
    np.testing.assert_allclose(advice.loss["pos_weight"], (1000 - positives) / positives, rtol=1e-3)
    loss = build_loss(advice.loss)
    assert loss.output_dim("multilabel", None, 3) == 3
    assert advise(rng.integers(0, 2, (500, 4))).loss == {"name": "bce"}


def test_task_argument_overrides_inference():
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    assert advise(y).task == "binary"  # float 0/1 is read as labels
    assert advise(y, task="regression").task == "regression"
    labels = np.array([0, 3, 1, 2, 2, 1])
    assert advise(labels).task == "multiclass"
    assert advise(labels.astype(float), task="multiclass").loss["name"] == "cross_entropy"


def test_errors_are_one_line():
    cases = [
        (lambda: advise(np.array([1.0]), task="ranking"), ConfigError, "advise task must be one of"),
        (lambda: advise(np.array([])), DataError, "cannot advise a loss for empty targets"),
        (lambda: advise(np.array([1.0, np.nan])), DataError, "targets contain 1 NaN/Inf values"),
        (lambda: advise(np.ones(10, dtype=np.int64)), DataError, "binary targets hold only class 1"),
        (lambda: advise(np.array([0, 1, 2]), task="binary"), DataError, "binary targets must be 0 or 1"),
        (lambda: advise(np.array([0.5, 1.0]), task="multiclass"), DataError, "non-negative integer class labels"),
        (lambda: advise(np.array(["a", "b"])), DataError, "targets must be numeric"),
    ]
    for call, error, text in cases:
        with pytest.raises(error, match=text) as info:
            call()
        assert "\n" not in str(info.value)


def test_robust_stats_matches_definitions():
    y = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 100.0])
    stats = robust_stats(y)
    assert stats["median"] == 2.5 and stats["mad"] == 1.0
    assert stats["outlier_fraction"] == pytest.approx(1 / 6)  # only 100 has |z| = 97.5 / 1.4826 > 3.5
    centred = y - y.mean()
    assert stats["excess_kurtosis"] == pytest.approx(np.mean(centred**4) / np.mean(centred**2) ** 2 - 3)
    constant = robust_stats(np.full(5, 2.0))
    assert constant["outlier_fraction"] == 0.0 and constant["excess_kurtosis"] == 0.0
    assert advise(np.full(5, 2.0)).loss == {"name": "mse"}


def test_format_advice():
    advice = advise(np.r_[np.zeros(950, dtype=np.int64), np.ones(50, dtype=np.int64)])
    text = format_advice(advice)
    assert text.splitlines()[0] == "task:    binary (inferred from the targets)"
    assert "loss:    bce (pos_weight=19.0)" in text
    assert "watch:   f1, recall, precision" in text
    assert "also try: focal (gamma=2.0, alpha=0.95)" in text
    assert "evidence: n=1000, n_pos=50, n_neg=950" in text
    assert "given" in format_advice(advise(np.array([0, 1, 1, 0]), task="binary")).splitlines()[0]
