"""A user's report on multi-label and weighted classification, one section per defect.

1. ``metrics.compute`` scored probabilities of the wrong width (roc_auc 1.0), rows that are no softmax
   (log_loss 2.2e-16) and a multi-label ``num_classes`` other than the label columns; top-k over every class
   was 1 without a word.
2. ``--metric test_f1_per_class`` / ``--target val_confusion_matrix`` said to add a metric the config lists.
3. Several 0/1 target columns with one typo were read as a regression (and advised huber).
4. ``class_weights`` as a NumPy array or tensor (``compute_class_weight``'s output) was refused, and a quoted
   ``"2"`` in a list of numbers was taken and stored as text.
5. ``precision_weighted`` / ``f1_weighted`` did not exist (the did-you-mean offered ``*_micro``).

References are scikit-learn's metrics and hand-written NumPy, never trainlab itself.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pytest
import sklearn.metrics as sk
import torch
import yaml
from sklearn.utils.class_weight import compute_class_weight

from trainlab import metrics
from trainlab.cli import main
from trainlab.data.dataset import infer_task
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.metric_hints import unrecorded_hint

IRIS = {"name": "base", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                     "epochs": 1},
        "metrics": ["accuracy", "f1_macro", "f1_per_class", "confusion_matrix"],
        "runtime": {"num_threads": 1}, "output": {"progress": "off"}}


def _write(tmp_path, config: dict, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return exp / exp.sum(1, keepdims=True)


# --------------------------------------------------------------------------- 1. compute checks probabilities

Y3 = np.array([0, 1, 2])
LABELS = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize("names, target, num_classes, task, probabilities, message", [
    (["roc_auc"], Y3, 3, "multiclass", np.array([[.9, .1], [.2, .8], [.5, .5]]),
     r"^multiclass probabilities shaped \(3, 2\) do not fit 3 targets of 3 classes; pass \(N, 3\), one softmax "
     r"column per class \(loss.probabilities\(output\)\)$"),
    (["log_loss"], Y3, 3, "multiclass", np.full((3, 4), .25), r"^multiclass probabilities shaped \(3, 4\) do not fit"),
    (["log_loss"], Y3, None, "multiclass", np.full((3, 2), .5), r"shaped \(3, 2\) .*K > 2 \(the largest target\)"),
    (["log_loss"], Y3, 3, "multiclass", np.ones((3, 3)),
     r"^multiclass probabilities are softmax rows, each summing to 1; row 0 sums to 3 "),
    (["roc_auc"], np.array([0, 1, 1]), 2, "binary", np.array([[.5, .6], [.2, .8], [.3, .7]]), r"row 0 sums to 1.1 "),
    (["log_loss"], np.array([0, 1, 1]), 2, "binary", np.array([-1.2, 0.3, 2.0]),
     r"^probabilities are in \[0, 1\]; got -1.2 \(pass loss.probabilities\(output\), not the model's outputs or "
     r"logits\)$"),
    (["log_loss"], LABELS, 3, "multilabel", np.full((4, 2), .5),
     r"^multilabel probabilities shaped \(4, 2\) do not fit 4 targets of 3 labels; pass \(N, 3\), one sigmoid per "
     r"label column"),
    (["f1"], LABELS, 5, "multilabel", None,
     r"^num_classes=5 but the multilabel targets have 3 label columns; num_classes of a multilabel task is L, one "
     r"per column: pass 3$"),
])
def test_compute_refuses_probabilities_and_label_counts_no_metric_reads_right(names, target, num_classes, task,
                                                                                probabilities, message):
    """These scored roc_auc 1.0 (two columns for three classes), log_loss 2.2e-16 (rows of ones), raised numpy's
    'operands could not be broadcast together' (multi-label) or passed silently (num_classes=5)."""
    predictions = target if task == "multilabel" else np.zeros(len(target), dtype=np.int64)
    with pytest.raises(DataError, match=message):
        metrics.compute(names, predictions, target, num_classes, task=task, probabilities=probabilities)


def test_softmax_rows_within_float_rounding_are_scored_as_sklearn_scores_them():
    """A float32 softmax over many classes, cast to float64, sums to 1 within rounding: accepted, equal to sklearn."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 500, 400)
    scores = torch.from_numpy(rng.normal(size=(400, 500))).float().softmax(1).double().numpy()
    assert np.abs(scores.sum(1) - 1).max() > 1e-9  # not exactly 1 in float64
    got = metrics.compute(["log_loss"], scores.argmax(1), y, 500, task="multiclass", probabilities=scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that these rows do not sum to 1 at float64 precision
        expected = sk.log_loss(y, scores, labels=list(range(500)))
    assert got["log_loss"] == pytest.approx(expected, rel=1e-9)


def test_top_k_over_every_class_is_computed_with_a_warning_as_sklearn_warns(capsys):
    probabilities = _softmax(np.random.default_rng(1).normal(size=(6, 3)))
    y = np.array([0, 1, 2, 2, 1, 0])
    got = metrics.compute(["top_3_accuracy"], probabilities.argmax(1), y, 3, task="multiclass",
                          probabilities=probabilities)
    with pytest.warns(sk.UndefinedMetricWarning if hasattr(sk, "UndefinedMetricWarning") else Warning):
        expected = sk.top_k_accuracy_score(y, probabilities, k=3)
    assert got["top_3_accuracy"] == expected == 1.0
    assert capsys.readouterr().err == ("warning: metric 'top_3_accuracy' covers all 3 classes: it is 1 whatever the "
                                       "model; use k below 3 (e.g. top_1_accuracy)\n")
    metrics.compute(["top_2_accuracy"], probabilities.argmax(1), y, 3, task="multiclass", probabilities=probabilities)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- 2. a list is not a number


@pytest.mark.parametrize("key, recorded, expected", [
    ("test_f1_per_class", ["test_loss", "test_accuracy", "test_f1_macro"],
     "; f1_per_class is a list (one value per class), not a number; use a number: f1_macro (recorded as "
     "'test_f1_macro'), f1_weighted or f1_micro; no key picks one class's value out of the list: a module:function "
     "metric can return it (docs/extending.md, 'A metric')"),
    ("val_recall_per_class", ["val_loss", "val_accuracy"],
     "; recall_per_class is a list (one value per class), not a number; use a number: recall_macro, "
     "recall_weighted or recall_micro (add one to the run's metrics to record it); no key picks"),
    ("val_confusion_matrix", ["val_loss", "val_accuracy"],
     "; confusion_matrix is a K x K matrix of counts (rows: true class, columns: predicted class), not a number; "
     "use a number: accuracy (recorded as 'val_accuracy'), balanced_accuracy or matthews_corrcoef; a "
     "module:function metric can return a number made from it"),
    ("val_confusion_matrix", ["val_loss", "val_subset_accuracy", "val_hamming_accuracy"],
     "; confusion_matrix is one 2 x 2 matrix of counts per label ([[tn, fp], [fn, tp]]), not a number; use a "
     "number: hamming_accuracy (recorded as 'val_hamming_accuracy') or subset_accuracy (recorded as"),
    ("f1_per_class", ["test_loss", "test_f1_macro"], "; f1_per_class is a list (one value per class), not a number"),
])
def test_a_list_valued_metric_is_said_to_be_no_number_with_the_numbers_that_stand_in(key, recorded, expected):
    """It said "add 'f1_per_class' to the run's metrics" to a config that lists it."""
    assert unrecorded_hint(key, recorded).startswith(expected)


def test_train_and_compare_say_a_listed_per_class_metric_is_no_number(tmp_path, capsys):
    config = _write(tmp_path, IRIS)
    assert main(["train", config, "--target", "val_f1_per_class=0.6", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target 'val_f1_per_class' is not recorded by this run; f1_per_class is a list "
                          "(one value per class), not a number; use a number: f1_macro (recorded as 'val_f1_macro')")
    assert "add 'f1_per_class'" not in err and not (tmp_path / "run").exists()
    strategies = _write(tmp_path, {"strategies": {"adam": None}}, "s.yaml")
    assert main(["compare", config, "--strategies", strategies, "--seeds", "1", "--metric", "test_confusion_matrix",
                 "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert "; confusion_matrix is a K x K matrix of counts (rows: true class, columns: predicted class), not a number" \
        in err
    assert "add 'confusion_matrix'" not in err


# --------------------------------------------------------------------------- 3. 0/1 columns with a typo


def _label_table(tmp_path, stray: dict[tuple[int, int], float]) -> str:
    """A CSV of 4 features and 3 0/1 label columns (a, b, c) over 200 rows, with ``stray`` cells set."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, :3] + rng.normal(size=(200, 3)) > 0).astype(float)
    for (row, col), value in stray.items():
        y[row, col] = value
    lines = ["f0,f1,f2,f3,a,b,c"] + [",".join(f"{v:g}" for v in (*xr, *yr)) for xr, yr in zip(x, y, strict=True)]
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_zero_one_columns_with_one_typo_name_the_cell_not_a_regression(tmp_path, capsys):
    """It said 'bce expects binary targets ... the data is a regression task; set data.task: binary', which
    failed in turn; advise recommended huber."""
    csv = _label_table(tmp_path, {(5, 1): 2.0})
    config = _write(tmp_path, {**IRIS, "data": {"source": "csv", "path": csv, "target": ["a", "b", "c"]},
                               "strategy": {**IRIS["strategy"], "loss": "bce"}, "metrics": None})
    expected = (f"error: training data label 2 at line 7, column 'b' of {csv} must be 0 or 1 for a multilabel task "
                "(one 0/1 column per label: 1 of the 600 target cells is not 0 or 1, the rest are); fix it, or set "
                "data.task: regression if the 3 columns are numbers to predict\n")
    assert main(["train", config, "--out", str(tmp_path / "run")]) == 3
    assert capsys.readouterr().err == expected
    assert main(["advise", config]) == 3
    captured = capsys.readouterr()
    assert captured.err == expected and "huber" not in captured.out


def test_only_a_few_stray_cells_make_zero_one_columns_labels():
    y = (np.random.default_rng(1).random((100, 3)) < 0.4).astype(float)
    one_typo, three_typos = y.copy(), y.copy()
    one_typo[7, 2] = 2
    three_typos[[1, 2, 3], 0] = 3  # 1% of 300 cells: still labels
    assert infer_task(one_typo) == infer_task(three_typos) == "multilabel"
    counts = y.copy()
    counts[:4, 1] = [2, 3, 2, 4]  # 4 of 300 (more than 1%): several count columns, a regression
    assert infer_task(counts) == "regression"
    assert infer_task(np.array([[0.5, 1.0], [0.0, 0.3]])) == "regression"
    tiny = np.array([[0, 1], [1, 1], [2, 0]])  # one stray cell is a typo even under 1% of 6
    assert infer_task(tiny) == "multilabel"


# --------------------------------------------------------------------------- 4. number lists from NumPy and torch


def test_class_weights_from_numpy_and_torch_build_the_loss_a_list_builds():
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    weights = compute_class_weight("balanced", classes=np.unique(y), y=y)  # n / (K n_k)
    np.testing.assert_allclose(weights, len(y) / (3 * np.bincount(y)))
    logits, target = torch.randn(12, 3, dtype=torch.float64), torch.arange(12) % 3
    reference = torch.nn.functional.cross_entropy(logits, target, weight=torch.from_numpy(weights))
    for given in (weights, weights.astype(np.float32), torch.from_numpy(weights), list(weights)):
        loss = build_loss({"name": "cross_entropy", "class_weights": given})
        torch.testing.assert_close(loss(logits, target), reference, rtol=1e-6, atol=0)
    focal = build_loss({"name": "focal", "alpha": np.array([0.25, 0.5, 0.25]), "gamma": np.float32(2.0)})
    assert focal.alpha.tolist() == [0.25, 0.5, 0.25] and focal.gamma == 2.0 and type(focal.gamma) is float
    bce = build_loss({"name": "bce", "pos_weight": np.float64(3.0)})
    assert float(bce.pos_weight) == 3.0


def test_plain_numbers_turns_numpy_and_torch_numbers_into_python_ones():
    from trainlab.option_types import plain_numbers

    plain = plain_numbers({"class_weights": np.array([0.5, 2.0]), "alpha": torch.tensor([1, 2]),
                           "gamma": np.float32(2.0), "steps": np.int64(3), "name": "focal", "grid": np.zeros((2, 2))})
    assert plain["class_weights"] == [0.5, 2.0] and plain["alpha"] == [1, 2] and plain["steps"] == 3
    assert [type(v) for v in plain["class_weights"]] == [float, float] and type(plain["gamma"]) is float
    assert isinstance(plain["grid"], np.ndarray)  # not a number list: left to the checks to refuse
    json.dumps({key: value for key, value in plain.items() if key != "grid"})


def test_only_options_typed_as_numbers_have_arrays_read_as_lists():
    """A factory option annotated Any or torch.Tensor takes the tensor itself, as before."""
    from trainlab.option_types import numbers_read

    def factory(weights: list[float] | None = None, rate: float = 1.0, buffer: Any = None,
                mask: torch.Tensor | None = None) -> None:
        """A user's factory."""

    tensor = torch.tensor([1.0, 0.0])
    read = numbers_read(factory, {"weights": np.array([0.5, 2.0]), "rate": np.float32(0.25), "buffer": tensor,
                                  "mask": tensor})
    assert read["weights"] == [0.5, 2.0] and type(read["rate"]) is float and read["rate"] == 0.25
    assert read["buffer"] is tensor and read["mask"] is tensor


@pytest.mark.parametrize("value", [[1, "2", 3], [1, "0.5", 3]])
def test_a_quoted_number_in_a_list_of_numbers_is_refused_naming_the_item(tmp_path, capsys, value):
    """It was taken (read as a number by the factory) and stored as text ('2') in model.json."""
    config = _write(tmp_path, {**IRIS, "strategy": {**IRIS["strategy"],
                                                    "loss": {"name": "cross_entropy", "class_weights": value}}})
    assert main(["train", config, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        "error: loss 'cross_entropy': option 'class_weights' must be a list of numbers or null (item 1 is the text "
        f"{value[1]!r}: write the number without quotes); got [1, {value[1]!r}, 3]\n")
    assert not (tmp_path / "run").exists()


def test_yaml_1_1_exponents_in_a_list_stay_numbers():
    """PyYAML leaves 1e-1 (no dot) as text: that is a number as written, not a quoted one."""
    loss = build_loss(yaml.safe_load("{name: cross_entropy, class_weights: [1e-1, 1, 2]}"))
    assert loss.class_weights.tolist() == pytest.approx([0.1, 1.0, 2.0])
    with pytest.raises(ConfigError, match=r"must be a list of numbers or null; got array\(\[\[1., 2.\]\]\)"):
        build_loss({"name": "cross_entropy", "class_weights": np.array([[1.0, 2.0]])})  # 2-D: no list of numbers


def test_fit_takes_compute_class_weight_output_and_records_plain_numbers(tmp_path):
    import trainlab

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 4)).astype(np.float32), np.array([0] * 60 + [1] * 20 + [2] * 10)
    weights = compute_class_weight("balanced", classes=np.unique(y), y=y)
    trainlab.fit(torch.nn.Linear(4, 3), train=(x, y), strategy={
        "loss": {"name": "cross_entropy", "class_weights": torch.from_numpy(weights)},
        "optimizer": {"name": "adam", "lr": np.float32(0.5)}, "batch_size": 30, "epochs": 1},
        runtime={"num_threads": 1}, out=tmp_path / "run")
    stored = yaml.safe_load((tmp_path / "run" / "strategy.yaml").read_text())["strategy"]
    assert stored["loss"]["class_weights"] == pytest.approx(90 / (3 * np.array([60, 20, 10])))
    assert stored["optimizer"]["lr"] == 0.5


# --------------------------------------------------------------------------- 5. weighted averages


@pytest.mark.parametrize("name, fn", [("precision", sk.precision_score), ("recall", sk.recall_score),
                                      ("f1", sk.f1_score)])
def test_weighted_averages_match_sklearn(name, fn):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 4, 300))
    p[p == 3] = 2  # a class never predicted: precision 0/0 -> 0
    got = metrics.compute([f"{name}_weighted"], p, y, 5, task="multiclass")  # class 4 has no row: weight 0
    assert got[f"{name}_weighted"] == pytest.approx(fn(y, p, average="weighted", zero_division=0), abs=1e-12)
    labels = (rng.random((200, 4)) < [0.5, 0.1, 0.3, 0.05]).astype(int)
    predicted = np.where(rng.random((200, 4)) < 0.7, labels, 1 - labels)
    got = metrics.compute([f"{name}_weighted"], predicted, labels, 4, task="multilabel")
    assert got[f"{name}_weighted"] == pytest.approx(fn(labels, predicted, average="weighted", zero_division=0),
                                                    abs=1e-12)
    binary_y, binary_p = rng.integers(0, 2, 100), rng.integers(0, 2, 100)
    got = metrics.compute([f"{name}_weighted"], binary_p, binary_y, 2, task="binary")
    assert got[f"{name}_weighted"] == pytest.approx(fn(binary_y, binary_p, average="weighted", zero_division=0),
                                                    abs=1e-12)


def test_weighted_metrics_are_numbers_a_run_records(tmp_path):
    config = _write(tmp_path, {**IRIS, "metrics": ["precision_weighted", "f1_weighted"]})
    assert main(["train", config, "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert isinstance(summary["test"]["f1_weighted"], float)
    assert metrics.is_scalar("val_recall_weighted") and metrics.higher_is_better("test_f1_weighted")


def test_a_config_dict_with_numpy_numbers_validates_to_plain_ones_and_trains(tmp_path):
    """validate() took the array and writing config.yaml then failed with pydantic's serialisation error;
    only fit's strategy path made NumPy numbers plain."""
    import yaml

    from trainlab.config import validate
    from trainlab.experiment import train

    raw = {"name": "w", "seed": 0, "data": {"source": "iris"}, "model": {"name": "linear"},
           "strategy": {"loss": {"name": "cross_entropy", "class_weights": np.array([1.0, 2.0, 0.5], np.float32)},
                        "epochs": 1, "optimizer": {"name": "sgd", "lr": np.float64(0.1)}, "batch_size": torch.tensor(16)},
           "output": {"progress": "off"}, "runtime": {"num_threads": 1}}
    config = validate(raw)
    assert config.strategy.loss.class_weights == [1.0, 2.0, 0.5] and type(config.strategy.optimizer.lr) is float
    _, run = train(config, out=tmp_path / "run", quiet=True)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert stored["strategy"]["loss"]["class_weights"] == [1.0, 2.0, 0.5] and stored["strategy"]["batch_size"] == 16
