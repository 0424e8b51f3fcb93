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
    majority, line = _warnings(capsys)  # f1 of the majority class 1, said before the run; then the outcome
    assert majority.startswith("warning: f1 is of class 1 ('other'), ") and majority.endswith(
        "relabel it 1 (y = 1 - y, class_names reversed) to make it class 1, or watch f1_macro, balanced_accuracy "
        "and f1_per_class")  # trainlab.fit has no data.positive_class
    assert line == (f"warning: the final model predicts 'other' for every val row ({share:.1%} of the val rows are "
                    "'other'): it learnt the class frequencies (the training majority), not the inputs; f1, "
                    "precision and recall are of class 1 ('other'), the one predicted; train longer or with another "
                    "learning rate (trainlab lr-find); or, for a rare class, weigh it in the loss (class_weights; "
                    "pos_weight for bce)")
    # weights that did not stop it: said so, not advised again
    trainlab.fit(_leaning_model([0.0, 5.0]), (x[:120], y[:120]),
                 {**FROZEN, "loss": {"name": "cross_entropy", "class_weights": [3.0, 1.0]}}, val=(x[120:], y[120:]),
                 metrics=["accuracy"])
    (line,) = _warnings(capsys)
    assert line.endswith("; or weigh the rare class more: the loss's class_weights did not stop it")


def test_the_test_split_is_judged_too_and_a_constant_minority_tells_no_class_apart(capsys):
    x, y = _imbalanced()
    y3 = np.where(x[:, 0] > 0.5, 2, y)  # three classes; 0 the rarest
    trainlab.fit(_leaning_model([5.0, 0.0, 0.0]), (x[:120], y3[:120]), FROZEN, test=(x[120:], y3[120:]))
    (line,) = _warnings(capsys)
    share = float(np.mean(y3[120:] == 0))
    assert line == (f"warning: the final model predicts class 0 for every test row ({share:.1%} of the test rows are "
                    "class 0): it tells no class apart; train longer or with another learning rate (trainlab lr-find)")
    # val of one class cannot tell: test, which holds both, is judged
    ones = np.ones_like(y)
    trainlab.fit(_leaning_model([0.0, 5.0]), (x[:120], y[:120]), FROZEN, val=(x[120:160], ones[120:160]),
                 test=(x[160:], y[160:]), task="binary")
    assert [line for line in _warnings(capsys) if "for every test row" in line]


def test_a_model_whose_predictions_vary_on_one_split_is_no_constant(capsys):
    """A review: a bce model that ranked the rows well (val AUC 0.87) predicted one class on val alone and was
    said to have learnt the class frequencies."""
    x, y = _imbalanced()
    model = _leaning_model([0.0, 5.0])
    with torch.no_grad():
        model.weight.zero_()
        model.weight[1, 0] = -20.0  # class 0 wherever x0 > 0.25: never in val (rows 120-159 chosen below)
    val = np.flatnonzero(x[:, 0] < 0.0)[-40:]
    test = np.flatnonzero(x[:, 0] > 0.5)[:20]
    trainlab.fit(model, (x[:120], y[:120]), FROZEN, val=(x[val], y[val]), test=(x[test], y[test]))
    assert not [line for line in _warnings(capsys) if "for every" in line]


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
                           "standardised, and the outputs, which start near 0, fell short of their mean: "
                           "standardise y yourself before fit")
    assert r2 == pytest.approx(result.summary["val"]["r2"], rel=1e-4)  # the number is the metrics'
    centred = (1.1 * x[:, 0]).astype(np.float32)
    trainlab.fit(_leaning_model([3.0]), (x[:200], centred[:200]), strategy, val=(x[200:], centred[200:]))
    (line,) = _warnings(capsys)
    assert line.endswith("worse than predicting the val targets' mean for every row; train longer or with another "
                         "learning rate (trainlab lr-find), or check the features")
    # on 3 validation rows (linnerud's split) R² is noise: more rows, not "train longer", after early stopping
    trainlab.fit(_leaning_model([0.2]), (x[:200], centred[:200]), strategy, val=(x[200:203], centred[200:203]))
    (line,) = _warnings(capsys)
    assert line.endswith("worse than predicting the val targets' mean for every row, but on 3 rows only, whose own "
                         "mean is the baseline: an R² a little below 0 on so few rows is mostly noise; hold out more "
                         "val rows before reading it"), line
    # far off on few rows (R² far below -1) is a bad model, said as any other
    trainlab.fit(_leaning_model([30.0]), (x[:200], centred[:200]), strategy, val=(x[200:209], centred[200:209]))
    (line,) = _warnings(capsys)
    assert "so few rows" not in line and "train longer or with another learning rate" in line, line
    # a model that reached the targets' mean and is still worse than it (no signal): the length, not the scale
    noise = rng.normal(size=(300, 3)).astype(np.float32)
    trainlab.fit(_leaning_model([7.4]), (noise[:200], far[:200]), strategy, val=(noise[200:], far[200:]))
    (line,) = _warnings(capsys)
    assert "train longer or with another learning rate" in line and "standardis" not in line
    # a Poisson loss takes counts, not standardised targets: the length is named, never the scale
    counts = rng.poisson(30, size=300).astype(np.float32)
    poisson = {**strategy, "loss": "poisson_nll", "optimizer": {"name": "sgd", "lr": 1e-9}}
    trainlab.fit(_leaning_model([0.0]), (x[:200], counts[:200]), poisson, val=(x[200:], counts[200:]))
    (line,) = _warnings(capsys)
    assert "R² is below 0" in line and "standardis" not in line
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


def test_the_runs_of_a_comparison_are_not_judged_one_by_one(capsys):
    """compare's leaderboard sets each run's metrics beside the others': no run's own warning among its lines."""
    from trainlab.run_summary import outcome_told_by_caller
    from trainlab.trivial_outcome import TrivialOutcome

    x, y = _imbalanced()
    with outcome_told_by_caller():
        trainlab.fit(_leaning_model([0.0, 5.0]), (x[:120], y[:120]), FROZEN, val=(x[120:], y[120:]))
    assert [line for line in _warnings(capsys) if "final model" in line] == []  # (the plan's warnings stay)
    assert TrivialOutcome("binary").observer("val") is not None and TrivialOutcome("multilabel").observer("val") is None


def test_ignored_labels_are_no_training_class_of_the_majority():
    """A review: the training majority counted the rows of the loss's ignore_index (clamped into class 0, or a
    class of its own), so a constant majority prediction was told 'it tells no class apart'."""
    x, _ = _imbalanced()
    y = np.array(([0] * 6 + [1] * 3 + [2]) * 20)  # 0 is the ignore_index: class 1 is the majority of the rest
    strategy = {**FROZEN, "loss": {"name": "cross_entropy", "ignore_index": 0}}
    with pytest.MonkeyPatch.context() as patch:
        said: list[str] = []
        patch.setattr("trainlab.trivial_outcome.warn", said.append)
        trainlab.fit(_leaning_model([0.0, 5.0, 0.0]), (x[:150], y[:150]), strategy, val=(x[150:], y[150:]),
                     task="multiclass")
    (line,) = [line for line in said if "for every" in line]
    assert "it learnt the class frequencies (the training majority)" in line


@pytest.mark.parametrize("init", ["zeros", [{"name": "zeros"}]])
def test_a_symmetric_init_is_named_as_the_cause_not_the_learning_rate(capsys, init):
    """A teacher's MLP with strategy.init zeros (one initializer, or a list of them) predicted one class for every row and was told to train longer or
    change the learning rate (trainlab lr-find): its hidden units started alike and got the same gradients."""
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    x = (rng.normal(scale=3.0, size=(3, 4))[y] + rng.normal(size=(300, 4))).astype(np.float32)
    strategy = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 30, "epochs": 3}

    def warned(**extra) -> list[str]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        trainlab.fit(model, (x[:200], y[:200]), dict(strategy, **extra), val=(x[200:], y[200:]),
                     runtime={"num_threads": 1})
        return [line for line in _warnings(capsys) if "for every" in line]

    lines = warned(init=init)
    assert len(lines) == 1 and "strategy.init 'zeros' starts every unit of a layer with the same weights" in lines[0]
    assert "lr-find" not in lines[0]
    assert warned() == []  # the default initialisation tells the classes apart


def test_the_init_named_is_the_fill_the_list_ends_with():
    """A review: [zeros, kaiming_normal] ends with kaiming's weights and was blamed on zeros."""
    from trainlab.config_strategy import InitConfig
    from trainlab.initializers import symmetric_init

    def chain(*names: str) -> list[InitConfig]:
        return [InitConfig.model_validate({"name": name}) for name in names]

    assert symmetric_init(chain("zeros", "kaiming_normal")) is None
    assert symmetric_init(chain("kaiming_normal", "zeros", "dirac")) == "zeros"  # dirac fills some layers only
    assert symmetric_init(InitConfig.model_validate({"name": "constant", "value": 0.5})) == "constant"
    assert symmetric_init(None) is None
