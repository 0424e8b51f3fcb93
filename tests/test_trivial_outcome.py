"""A run that ends no better than a constant is warned of (trainlab/trivial_outcome.py).

User trials: a frozen MiniLM on 570 'other' and 30 'torch' docstrings predicted 'other' for every row (test
accuracy 0.95, binary f1 0.974: the majority class's), and a regression head trained on targets around 7.4
(std 1.1) ended at test R² -5.4, both with exit 0 and no word.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score

import trainlab

WARNING = "warning: "


def _warnings(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith(WARNING)]


def _leaning_model(bias: list[float], inputs: int = 3) -> torch.nn.Linear:
    """A linear model whose bias outweighs its inputs: it predicts the class of the largest bias."""
    torch.manual_seed(0)
    model = torch.nn.Linear(inputs, len(bias))
    with torch.no_grad():
        model.weight.mul_(1e-3)
        model.bias.copy_(torch.tensor(bias))
    return model


def _imbalanced(n: int = 200, rare: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (rng.uniform(size=n) > rare).astype(np.int64)  # class 1 the majority
    return x, y


FROZEN = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 1e-9}, "batch_size": 50, "epochs": 1}


def test_a_model_predicting_the_majority_for_every_row_is_warned_of_with_its_share(capsys):
    x, y = _imbalanced()
    result = trainlab.fit(_leaning_model([0.0, 5.0]), (x[:120], y[:120]), FROZEN, val=(x[120:], y[120:]),
                          class_names=["apytorch", "other"], metrics=["accuracy", "f1"])
    share = float(np.mean(y[120:] == 1))
    assert result.summary["val"]["accuracy"] == pytest.approx(share)  # the premise: every row 'other'
    (line,) = _warnings(capsys)
    assert line == (f"warning: the final model predicts 'other' for every val row ({share:.1%} of them are 'other'): "
                    "it learnt the class frequencies, not the inputs; f1, precision and recall are of class 1 "
                    "('other'), the one predicted, so they look good; train longer or with another learning rate "
                    "(trainlab lr-find), or, for a rare class, weigh it in the loss (class_weights; pos_weight for "
                    "bce)")


def test_the_test_split_is_judged_where_there_is_no_validation_and_class_0_has_no_f1_note(capsys):
    x, y = _imbalanced()
    y3 = np.where(x[:, 0] > 0.5, 2, y)  # three classes
    trainlab.fit(_leaning_model([5.0, 0.0, 0.0]), (x[:120], y3[:120]), FROZEN, test=(x[120:], y3[120:]))
    (line,) = _warnings(capsys)
    share = float(np.mean(y3[120:] == 0))
    assert line.startswith(f"warning: the final model predicts class 0 for every test row ({share:.1%} of them are "
                           "class 0): it learnt the class frequencies, not the inputs; train longer")


def test_a_model_that_tells_classes_apart_or_a_split_of_one_class_is_not_warned_of(capsys):
    x, y = _imbalanced()
    separable = (x[:, 0] > 0).astype(np.int64)
    adam = {**FROZEN, "optimizer": {"name": "adam", "lr": 0.1}, "epochs": 20}
    trainlab.fit(_leaning_model([0.0, 0.0]), (x[:120], separable[:120]), adam, val=(x[120:], separable[120:]))
    assert _warnings(capsys) == []
    ones = np.ones_like(y)
    trainlab.fit(_leaning_model([0.0, 5.0]), (x[:120], separable[:120]), FROZEN, val=(x[120:], ones[120:]),
                 task="binary")  # every val row is class 1, and so is every prediction: right, not trivial
    assert not [line for line in _warnings(capsys) if "for every val row" in line]  # (the absent class is said)


def test_a_regression_worse_than_the_mean_names_the_targets_scale_or_the_length(capsys):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    far = (7.4 + 1.1 * x[:, 0]).astype(np.float32)  # 6.7 stds from 0
    strategy = {"loss": "mse", "optimizer": {"name": "sgd", "lr": 1e-4}, "batch_size": 50, "epochs": 1}
    result = trainlab.fit(_leaning_model([0.0]), (x[:200], far[:200]), strategy, val=(x[200:], far[200:]))
    predictions = result.model(torch.as_tensor(x[200:])).detach().numpy()[:, 0]
    r2 = r2_score(far[200:], predictions)
    assert r2 < 0 and result.summary["val"]["r2"] == pytest.approx(r2, rel=1e-4)
    (line,) = _warnings(capsys)
    mean, std = far[:200].astype(np.float64).mean(), far[:200].astype(np.float64).std(ddof=1)
    assert line.startswith("warning: the final model's val R² is below 0: worse than predicting the val targets' "
                           f"mean for every row; the training targets (mean {mean:.4g}, std {std:.4g}) are not "
                           "standardised, so the outputs, which start near 0, must first travel to their mean: "
                           "standardise y yourself before fit")
    assert r2 == pytest.approx(result.summary["val"]["r2"], rel=1e-4)  # the number is the metrics'
    centred = (1.1 * x[:, 0]).astype(np.float32)
    trainlab.fit(_leaning_model([3.0]), (x[:200], centred[:200]), strategy, val=(x[200:], centred[200:]))
    (line,) = _warnings(capsys)
    assert line.endswith("worse than predicting the val targets' mean for every row; train longer or with another "
                         "learning rate (trainlab lr-find), or check the features")
    good = {**strategy, "optimizer": {"name": "adam", "lr": 0.05}, "epochs": 30}
    trainlab.fit(_leaning_model([0.0]), (x[:200], centred[:200]), good, val=(x[200:], centred[200:]))
    assert _warnings(capsys) == []


def test_a_config_run_warns_too_and_names_the_config_fix(tmp_path, capsys):
    from trainlab.config import validate
    from trainlab.experiment import train

    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    rows = "\n".join(f"{a:.6f},{50 + 2 * a + rng.normal():.6f}" for a in x)  # targets 50 +- 2: 25 stds from 0
    (tmp_path / "far.csv").write_text(f"x,y\n{rows}\n")
    config = validate({"name": "far", "seed": 0, "data": {"source": "csv", "path": str(tmp_path / "far.csv"),
                                                          "target": "y"},
                       "model": {"name": "linear"},
                       "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 1e-4}, "batch_size": 50,
                                    "epochs": 1}})
    train(config, out=tmp_path / "run", quiet=True)
    lines = [line for line in _warnings(capsys) if "R²" in line]
    assert len(lines) == 1 and lines[0].endswith("set data.standardize_target: true (metrics and predictions stay in "
                                                 "the original units)")
