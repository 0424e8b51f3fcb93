"""The loss advisor on sklearn's bundled datasets and on synthetic data with known structure."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

from trainlab.advisor import Advice, advise, format_advice, least_squares_residuals, robust_stats
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.metrics import validate_metrics


def checked(advice: Advice) -> Advice:
    """Buildable specs, valid metrics for the task, a reason for every recommendation, plain JSON."""
    loss = build_loss(advice.loss)
    validate_metrics(advice.metrics, advice.task, loss=loss)
    assert advice.reasons and all(reason.strip() for reason in advice.reasons)
    assert advice.metrics_reason.strip()
    for alternative in advice.alternatives:
        build_loss(alternative.loss)
        assert alternative.reason.strip()
    json.dumps(advice.to_dict())  # evidence is plain JSON for `trainlab advise --json`-style output
    return advice


def test_diabetes_is_plain_regression_on_the_fit_residuals():
    data = load_diabetes()
    advice = checked(advise(data.target, "regression", x=data.data))
    assert advice.loss == {"name": "mse"}  # whole numbers 25..346 without a 0: values, not counts
    assert advice.evidence["tails_measured_on"] == "residuals"
    assert advice.evidence["residual_source"] == "least-squares fit of y on 10 features"
    assert any("without heavy tails in the residuals of a least-squares fit" in r for r in advice.reasons)
    assert advice.metrics[0] == "mse"


def test_breast_cancer_is_bce():
    advice = checked(advise(load_breast_cancer().target, "binary"))
    assert advice.task == "binary" and advice.loss == {"name": "bce"}  # 37% minority: no pos_weight
    assert advice.evidence["n_pos"] == 357 and advice.evidence["n_neg"] == 212


def test_digits_is_cross_entropy():
    advice = checked(advise(load_digits().target, "multiclass"))
    assert advice.task == "multiclass" and advice.loss == {"name": "cross_entropy"}
    assert advice.evidence["num_classes"] == 10


def test_gross_outliers_get_a_robust_loss():
    rng = np.random.default_rng(0)
    y = rng.normal(3.0, 2.0, 2000)
    gross = rng.random(2000) < 0.1
    y[gross] += rng.choice([-1, 1], gross.sum()) * rng.uniform(30, 60, gross.sum())
    advice = checked(advise(y, "regression"))
    assert advice.loss["name"] == "huber"
    # delta = 1.345 * 1.4826 * MAD of the targets, recomputed here
    median = np.median(y)
    sigma = 1.4826 * np.median(np.abs(y - median))
    assert advice.loss["delta"] == pytest.approx(1.345 * sigma, rel=1e-2)
    assert 0.08 < advice.evidence["outlier_fraction"] < 0.12
    assert advice.evidence["tails_measured_on"] == "targets"
    assert any("pass the features to measure the residuals instead" in reason for reason in advice.reasons)
    assert advice.metrics[0] == "mae"
    assert {a.loss["name"] for a in advice.alternatives} >= {"adaptive"}


def test_tails_come_from_the_residuals_not_the_spread_of_y():
    rng = np.random.default_rng(1)
    n = 3000
    # heavy-tailed features, Gaussian noise: y's spread is heavy-tailed, the residuals are not
    x = rng.standard_t(df=2.5, size=(n, 2))
    y = x @ np.array([3.0, -1.0]) + rng.normal(0.0, 0.5, n)
    assert advise(y, "regression").loss["name"] == "huber"
    assert checked(advise(y, "regression", x=x)).loss == {"name": "mse"}
    # wide features, heavy-tailed noise: y looks light-tailed, the residuals are heavy
    x = rng.uniform(-10, 10, size=(n, 1))
    noise = rng.normal(0.0, 0.5, n)
    gross = rng.random(n) < 0.05
    noise[gross] += rng.choice([-1, 1], gross.sum()) * rng.uniform(5, 10, gross.sum())
    y = 2.0 * x[:, 0] + noise
    assert advise(y, "regression").loss == {"name": "mse"}
    advice = checked(advise(y, "regression", x=x))
    assert advice.loss["name"] == "huber"
    residuals = y - np.polyval(np.polyfit(x[:, 0], y, 1), x[:, 0])  # NumPy's own line fit
    sigma = 1.4826 * np.median(np.abs(residuals - np.median(residuals)))
    assert advice.loss["delta"] == pytest.approx(1.345 * sigma, rel=1e-2)  # the residuals' scale, ~0.67
    assert advice.loss["delta"] < 1.0


def test_residual_check_is_skipped_where_it_is_not_cheap_or_sound():
    y = np.arange(10.0)
    assert least_squares_residuals(y, None) == (None, "no features given")
    assert least_squares_residuals(y, np.zeros((10, 3, 8, 8)))[0] is None  # images: not a table
    assert least_squares_residuals(y, np.zeros((10, 600)))[1] == "600 features (the check fits up to 512)"
    assert least_squares_residuals(y, np.zeros((10, 5)))[1] == "10 rows are too few to fit 6 coefficients"
    with pytest.raises(DataError, match="advise: 9 feature rows but 10 targets"):
        least_squares_residuals(y, np.zeros((9, 1)))


def test_gaussian_target_stays_mse():
    for seed in range(5):
        assert advise(np.random.default_rng(seed).normal(size=5000), "regression").loss == {"name": "mse"}


def test_a_noise_free_linear_target_is_mse_not_a_huber_fitted_to_rounding_error():
    x = np.linspace(-1, 1, 10)[:, None]
    for y in (3 * x[:, 0] + 1, 1e6 * x[:, 0], np.column_stack([2 * x[:, 0], -x[:, 0] + 5])):
        advice = advise(y, "regression", x=x)
        assert advice.loss == {"name": "mse"} and "noise-free linear relation" in advice.reasons[0], advice
    noisy = 3 * x[:, 0] + 1 + np.random.default_rng(0).normal(scale=1e-3, size=10)
    assert "noise-free" not in advise(noisy, "regression", x=x).reasons[0]


def test_counts_get_poisson_nll():
    rng = np.random.default_rng(2)
    counts = rng.poisson(np.exp(rng.normal(1.0, 0.7, 2000))).astype(np.float32)
    assert counts.min() == 0 and len(np.unique(counts)) > 10
    advice = checked(advise(counts, "regression"))
    assert advice.loss == {"name": "poisson_nll", "log_input": True}
    assert "whole numbers from 0" in advice.reasons[0] and "maximum-likelihood" in advice.reasons[1]
    assert advice.evidence["target_kind"] == "count"
    # Poisson given a varying rate: the targets alone are spread 2x+ their mean, which is no overdispersion
    assert advice.evidence["dispersion"] > 2
    assert not any(reason.startswith("the variance is") and "(overdispersed)" in reason for reason in advice.reasons)
    assert any("rates that vary with the features spread the counts" in reason for reason in advice.reasons)
    # the data layer's mark is enough, zeros or not
    marked = checked(advise(counts + 5, "regression", extras={"target_kind": "count"}))
    assert marked.loss["name"] == "poisson_nll" and "the data marks the target as counts" in marked.reasons[0]
    assert advise(counts + 5, "regression").loss["name"] != "poisson_nll"
    assert advise(np.array([0.0, 1.0, 0.0, 1.0]), "regression").loss == {"name": "mse"}  # 2 values: no counts


def test_labels_numbered_from_one_are_offered_as_classes_not_counts():
    y = np.tile([1.0, 2.0, 3.0], 40)
    advice = checked(advise(y, "regression", x=np.random.default_rng(0).normal(size=(120, 2))))
    assert advice.loss["name"] != "poisson_nll"
    first = advice.alternatives[0]
    assert first.loss == {"name": "cross_entropy"} and "set data.task: multiclass" in first.reason
    assert "1..3" in first.reason
    assert all(a.loss["name"] != "cross_entropy" for a in advise(np.tile([1.0, 2.5, 3.0], 40), "regression").alternatives)


def test_category_codes_1_to_12_are_offered_as_classes_not_advised_as_counts(tmp_path):
    """Months 1..12, 50 rows each: not counts (no poisson_nll), and data.task: multiclass is offered, as for
    1..10. From 11 values on they were flagged as counts (no 0, at most 30) and got poisson_nll."""
    from trainlab.config import DataConfig
    from trainlab.data import load_dataset

    rng = np.random.default_rng(0)
    codes = rng.permutation(np.repeat(np.arange(1, 13), 50))
    rows = "\n".join(f"{a:.4f},{code}" for a, code in zip(rng.normal(size=len(codes)), codes, strict=True))
    (tmp_path / "m.csv").write_text("a,month\n" + rows + "\n")
    data = load_dataset(DataConfig(source="csv", path=str(tmp_path / "m.csv"), target="month"), seed=0)
    assert data.task == "regression" and "target_kind" not in data.extras
    advice = checked(advise(data.train.y.numpy(), data.task, data.extras))
    assert advice.loss["name"] != "poisson_nll"
    assert advice.alternatives[0].loss == {"name": "cross_entropy"} and "1..12" in advice.alternatives[0].reason


def test_imbalanced_binary_gets_pos_weight_and_the_papers_focal():
    y = np.r_[np.zeros(950, dtype=np.int64), np.ones(50, dtype=np.int64)]
    advice = checked(advise(np.random.default_rng(0).permutation(y), "binary"))
    assert advice.loss == {"name": "bce", "pos_weight": 19.0}
    assert advice.metrics[0] == "f1" and "accuracy" not in advice.metrics
    assert "95.0%" in advice.metrics_reason  # the all-negative accuracy
    assert advice.alternatives[0].loss == {"name": "focal", "gamma": 2.0, "alpha": 0.25}  # Lin et al.
    # the rare class is 0: alpha weights label 1, so the rare class's 0.25 is alpha = 0.75
    flipped = advise(1 - y, "binary")
    assert flipped.loss["pos_weight"] == pytest.approx(50 / 950, rel=1e-3)  # 4 significant digits
    assert flipped.alternatives[0].loss["alpha"] == 0.75
    # ... and f1 / recall / precision are of class 1, the majority: the advice watches metrics that show class 0
    named = advise(1 - y, "binary", class_names=["fraud", "ok"])
    assert not {"f1", "recall", "precision", "average_precision"} & set(named.metrics)
    assert named.metrics[:2] == ["f1_macro", "balanced_accuracy"]
    assert "the rare class is class 0 ('fraud'), but f1, recall, precision and average_precision are of class 1 " \
           "('ok'), the majority" in named.metrics_reason
    assert named.reasons[0].startswith("class 0 ('fraud') is only 5.0% of 1000 targets")
    checked(named)


def test_focal_alpha_weights_label_one():
    """The semantics the advice relies on: alpha multiplies the label-1 terms, 1 - alpha the label-0 terms."""
    logits = torch.tensor([[0.3], [-1.2]])
    target = torch.tensor([1, 0])
    plain = build_loss({"name": "focal", "gamma": 2.0, "reduction": "none"})(logits, target)
    weighted = build_loss({"name": "focal", "gamma": 2.0, "alpha": 0.25, "reduction": "none"})(logits, target)
    torch.testing.assert_close(weighted, plain * torch.tensor([0.25, 0.75]))


def test_pos_weight_beats_plain_bce_on_minority_recall():
    rng = np.random.default_rng(3)
    n = 2000
    y = (rng.random(n) < 0.05).astype(np.int64)
    x = rng.normal(size=(n, 2)) + 1.5 * y[:, None]  # overlapping classes: plain bce sacrifices the rare one
    spec = advise(y, "binary").loss
    assert "pos_weight" in spec

    def minority_recall(loss_spec) -> float:
        torch.manual_seed(0)
        model = torch.nn.Linear(2, 1)
        loss = build_loss(loss_spec)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
        inputs, target = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
        for _ in range(200):
            optimizer.zero_grad()
            loss(model(inputs), target).backward()
            optimizer.step()
        predicted = loss.predict(model(inputs).detach())
        return float(predicted[target == 1].float().mean())

    plain, weighted = minority_recall("bce"), minority_recall(spec)
    assert weighted > plain + 0.3, (plain, weighted)


def test_multiclass_imbalance_levels():
    moderate = np.repeat(np.arange(3), [600, 300, 100])  # 6 to 1
    advice = checked(advise(moderate, "multiclass"))
    assert advice.loss["name"] == "cross_entropy"
    n, k = 1000, 3
    np.testing.assert_allclose(advice.loss["class_weights"], [n / (k * 600), n / (k * 300), n / (k * 100)], rtol=1e-3)
    strong = np.repeat(np.arange(4), [1000, 200, 50, 10])  # 100 to 1
    advice = checked(advise(strong, "multiclass"))  # focal measured no better at 47 to 1: an alternative only
    assert advice.loss["name"] == "cross_entropy" and len(advice.loss["class_weights"]) == 4
    assert advice.alternatives[0].loss["name"] == "focal" and advice.alternatives[0].loss["gamma"] == 2.0
    assert advice.metrics[0] == "balanced_accuracy" and "macro f1 can fall" in advice.metrics_reason


def test_multilabel_gets_per_label_bce():
    rng = np.random.default_rng(0)
    y = np.stack([rng.random(1000) < p for p in (0.5, 0.1, 0.3)], axis=1).astype(np.float32)
    advice = checked(advise(y, "multilabel"))
    assert advice.task == "multilabel" and advice.loss["name"] == "bce"
    positives = y.sum(0)
    np.testing.assert_allclose(advice.loss["pos_weight"], (1000 - positives) / positives, rtol=1e-3)
    loss = build_loss(advice.loss)
    assert loss.output_dim("multilabel", 3, 3) == 3
    loss.check(torch.zeros(1000, 3), torch.from_numpy(y))
    balanced = checked(advise(rng.integers(0, 2, (500, 4)), "multilabel"))
    assert balanced.loss == {"name": "bce"} and balanced.metrics[:2] == ["f1_macro", "f1_micro"]


def test_the_task_comes_from_the_caller():
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    assert advise(y, "binary").task == "binary"
    assert advise(y, "regression").task == "regression"
    labels = np.array([0, 3, 1, 2, 2, 1])
    assert advise(labels.astype(float), "multiclass").loss["name"] == "cross_entropy"


def test_errors_are_one_line():
    cases = [
        (lambda: advise(np.array([1.0]), "ranking"), ConfigError, "advise task must be one of"),
        (lambda: advise(np.array([1.0]), None), ConfigError, "advise task must be one of"),
        (lambda: advise(np.array([]), "regression"), DataError, "cannot advise a loss for empty targets"),
        (lambda: advise(np.array([1.0, np.nan]), "regression"), DataError, "targets contain 1 NaN/Inf values"),
        (lambda: advise(np.ones(10, dtype=np.int64), "binary"), DataError, "binary targets hold only class 1"),
        (lambda: advise(np.array([0, 1, 2]), "binary"), DataError, "binary targets must be 0 or 1"),
        (lambda: advise(np.array([0.5, 1.0]), "multiclass"), DataError, "non-negative integer class labels"),
        (lambda: advise(np.array(["a", "b"]), "binary"), DataError, "targets must be numeric"),
        (lambda: advise(np.array([[0, 2], [1, 0]]), "multilabel"), DataError, "2-D array of 0/1"),
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
    assert advise(np.full(5, 2.0), "regression").loss == {"name": "mse"}


def test_format_advice_prints_every_reason():
    advice = advise(np.r_[np.zeros(950, dtype=np.int64), np.ones(50, dtype=np.int64)], "binary")
    text = format_advice(advice)
    lines = text.splitlines()
    assert lines[0] == "task:    binary (from the data)"
    assert lines[1] == "loss:    bce (pos_weight=19.0)"
    assert "watch:   f1, recall, precision, average_precision" in text
    assert "also try: focal (gamma=2.0, alpha=0.25)" in text
    assert "evidence: n=1000, n_pos=50, n_neg=950" in text
    for reason in [*advice.reasons, advice.metrics_reason, *(a.reason for a in advice.alternatives)]:
        assert f"  - {reason}" in lines


def test_several_targets_on_different_scales_are_told_one_delta_does_not_suit_them_all():
    rng = np.random.default_rng(0)
    wide = rng.standard_t(2, 500) * 10.0  # heavy tails: huber
    narrow = rng.standard_t(2, 500) * 2.0
    advice = advise(np.column_stack([wide, narrow]), "regression")
    sigmas = advice.evidence["robust_sigma"]
    assert advice.loss["name"] == "huber" and advice.loss["delta"] == pytest.approx(1.345 * max(sigmas), rel=1e-2)
    note = [r for r in advice.reasons if "robust sigmas differ" in r]
    assert len(note) == 1 and f"{max(sigmas) / min(sigmas):.1f}x" in note[0] and "standardize_target" in note[0]
    one = advise(np.column_stack([wide, wide * 1.5]), "regression")  # within 3x: nothing to say
    assert not any("robust sigmas differ" in r for r in one.reasons)


def test_the_python_snippet_of_docs_advisor_prints_what_trainlab_advise_prints(capsys, monkeypatch):
    """docs/advisor.md on examples/imbalanced_bce.yaml, which sets data.task: "(set by data.task)", as the CLI says."""
    import contextlib
    import io
    import re
    from pathlib import Path

    from trainlab.cli import main

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the example's data paths are relative to the project
    example = str(root / "examples" / "imbalanced_bce.yaml")
    snippet = re.search(r"```python\n(.*?)```", (root / "docs" / "advisor.md").read_text(), re.S).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(snippet.replace('"config.yaml"', repr(example)), {})
    assert main(["advise", example]) == 0
    assert printed.getvalue() == capsys.readouterr().out
    assert printed.getvalue().startswith("task:    binary (set by data.task)\n")


def test_labels_that_fall_off_like_counts_get_the_counts_reading_as_an_alternative():
    """Poisson counts 0..7 read as 8 classes (K <= 10) were advised cross_entropy with a weight of 55 on a
    one-row class, with no word of the counts reading that labels 1..K get for classes."""
    counts = np.random.default_rng(5).poisson(1.5, 442)
    assert list(np.bincount(counts)) == [111, 136, 125, 48, 17, 3, 1, 1]
    first = advise(counts, "multiclass").alternatives[0]
    assert first.loss == {"name": "poisson_nll"}
    assert first.reason.startswith("the labels 0..7 fall off as counts of events do (the largest the rarest): if "
                                   "they are counts, set data.task: regression and use poisson_nll")
    # balanced classes, digits, and ratings whose top grades are common are no counts
    ratings = np.repeat([0, 1, 2, 3, 4], [5, 10, 30, 40, 15])
    for labels in (np.arange(300) % 3, load_digits().target, ratings):
        assert all(a.loss["name"] != "poisson_nll" for a in advise(labels, "multiclass").alternatives)
    # named classes (support tickets sorted by name) are no counts, whatever their frequencies
    named = advise(counts, "multiclass", class_names=["billing", "cancel", "delivery", "other", "refund",
                                                      "warranty", "x", "y"])
    assert all(a.loss["name"] != "poisson_nll" for a in named.alternatives)


def test_class_weights_cover_every_class_of_the_task_and_average_1_over_the_training_rows():
    """fit(class_names=5 names) on labels 0..3 with loss auto: 4 weights for 5 outputs, refused; with a class
    missing in the middle the weights averaged 0.8 over the training rows (K counted the class without rows)."""
    advice = advise(np.repeat([0, 1, 2, 3], [50, 30, 5, 5]), "multiclass", num_classes=5)
    assert advice.loss["class_weights"] == [0.45, 0.75, 4.5, 4.5, 1.0]
    labels = np.repeat([0, 1, 3], [50, 30, 5])
    weights = np.array(advise(labels, "multiclass").loss["class_weights"])
    assert weights[2] == 1.0 and weights[labels].mean() == pytest.approx(1.0, abs=1e-4)
