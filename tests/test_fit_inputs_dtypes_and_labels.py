"""trainlab.fit's val/test features of another dtype than the training features, and the cells of pandas
inputs named by their index and column labels.

A float training frame beside val/test from ``pd.get_dummies`` (bool) or rounded (int64) columns trained to
the end and then crashed in torch ("mat1 and mat2 must have the same dtype"), the run lost; now they are
evaluated as float32, checked against the model's outputs on the float32 values written out with NumPy and
sklearn. Floats beside integer training ids are one DataError before training. A NaN in a DataFrame was
named ``row 7, column 1 (counting from 0)``; now ``row index 'cust7', column 'income'``, as predict names it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score

import trainlab
from trainlab.errors import DataError

STRATEGY = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 3}


class _Epochs(trainlab.Callback):
    """Counts the epochs that ended: none when a check refuses the data before training."""

    def __init__(self) -> None:
        self.ended = 0

    def on_epoch_end(self, view, record) -> None:
        self.ended += 1


def _features(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    return x.astype(np.float32), (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model.cpu()(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy().astype(np.float64)


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean of -log softmax(logits)[y], written out in NumPy."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


def test_bool_and_integer_eval_features_beside_float_training_features_are_evaluated_as_float32(tmp_path):
    x, y = _features()
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    val_x = pd.get_dummies(pd.DataFrame({"a": np.where(x[160:200, 0] > 0, "hi", "lo"),
                                         "b": np.where(x[160:200, 1] > 0, "hi", "lo")}))  # 4 columns
    val_x.columns = frame.columns  # a frame is read by its columns' names: the training ones
    assert set(val_x.dtypes) == {np.dtype(bool)}  # the premise: get_dummies gives bool columns
    test_x = np.round(x[200:] * 3).astype(np.int64)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    epochs = _Epochs()
    result = trainlab.fit(model, (frame.iloc[:160], y[:160]), STRATEGY, val=(val_x, y[160:200]),
                          test=(test_x, y[200:]), callbacks=[epochs], out=tmp_path / "run")
    assert epochs.ended == 3
    test_logits = _logits(result.model, test_x)
    assert result.summary["test"]["accuracy"] == pytest.approx(accuracy_score(y[200:], test_logits.argmax(1)))
    assert result.summary["test"]["loss"] == pytest.approx(_cross_entropy(test_logits, y[200:]), rel=1e-5)
    val_logits = _logits(result.model, val_x.to_numpy(dtype=np.float32))
    assert result.history[-1]["val_loss"] == pytest.approx(_cross_entropy(val_logits, y[160:200]), rel=1e-5)
    assert (tmp_path / "run" / "summary.json").is_file()


class _Ids(torch.nn.Module):
    """A token-id model: embeds 3 ids a row (integer inputs only)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head = torch.nn.Embedding(20, 4), torch.nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x).flatten(1))


def _ids(n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(1).integers(0, 20, size=(n, 3))
    return ids, (ids[:, 0] >= 10).astype(np.int64)


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("dtype, wanted", [(np.float32, "float32"), (np.float64, "float32"), (bool, "bool")])
def test_eval_features_the_id_model_cannot_take_are_refused_before_training(tmp_path, split, dtype, wanted):
    ids, y = _ids()
    epochs = _Epochs()
    given = {split: (ids[80:].astype(dtype), y[80:])}
    with pytest.raises(DataError) as caught:
        trainlab.fit(_Ids(), (ids[:80], y[:80]), STRATEGY, callbacks=[epochs], out=tmp_path / "run", **given)
    assert str(caught.value) == (
        f"{split} x is {wanted} but train x is int64, and the model takes the training rows' dtype: pass {split} x "
        "as int64 too (x.astype('int64'); a tensor: x.to(torch.int64)) if it holds the same kind of values, or "
        "train x as float32 (x.astype('float32'); a tensor: x.float()) if its columns are features")
    assert epochs.ended == 0 and not (tmp_path / "run").exists()
    fixed = {split: (ids[80:].astype(dtype).astype("int64"), y[80:])}  # the fix the message gives trains
    trainlab.fit(_Ids(), (ids[:80], y[:80]), STRATEGY, callbacks=[epochs], **fixed)
    assert epochs.ended == 3


def test_integer_eval_ids_of_another_dtype_are_taken_where_they_fit_and_named_where_not():
    ids, y = _ids()
    torch.manual_seed(0)
    result = trainlab.fit(_Ids(), (ids[:80], y[:80]), STRATEGY, test=(ids[80:].astype(np.int32), y[80:]))
    with torch.no_grad():
        logits = result.model.cpu()(torch.from_numpy(ids[80:])).numpy().astype(np.float64)
    assert result.summary["test"]["accuracy"] == pytest.approx(accuracy_score(y[80:], logits.argmax(1)))

    class Pixels(torch.nn.Module):  # uint8 inputs, read as numbers in forward
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x.float() / 255)

    pixels = ids.astype(np.uint8) * 10
    too_bright = pixels[80:].astype(np.int64)
    too_bright[3, 1] = 300
    with pytest.raises(DataError, match=r"^test x at row 3, column 1 \(counting from 0\): 300 is beyond uint8 \(0 to "
                                        r"255\), the dtype of train x, which the model takes; fix the value"):
        trainlab.fit(Pixels(), (pixels[:80], y[:80]), STRATEGY, test=(too_bright, y[80:]))
    frame = pd.DataFrame(too_bright, columns=["r", "g", "b"], index=[f"px{i}" for i in range(len(too_bright))])
    with pytest.raises(DataError, match=r"^test x at row index 'px3', column 'g': 300 is beyond uint8"):
        trainlab.fit(Pixels(), (pixels[:80], y[:80]), STRATEGY, test=(frame, y[80:]))


def _customers(n: int = 100) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(n, 3)), columns=["age", "income", "score"],
                     index=[f"cust{i}" for i in range(n)])
    return x, pd.Series(rng.integers(0, 2, n), index=x.index)


def _message(x, y, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        trainlab.fit(torch.nn.Linear(3, 2), (x, y), {**STRATEGY, "epochs": 1}, **kwargs)
    return str(caught.value)


def test_cells_of_pandas_inputs_are_named_by_their_index_and_column_labels():
    x, y = _customers()
    nan_x = x.copy()
    nan_x.loc["cust7", "income"] = np.nan
    assert _message(nan_x, y) == ("train x has a non-finite value at row index 'cust7', column 'income'; drop or "
                                  "impute such rows first")
    nan_y = y.astype(float)
    nan_y["cust9"] = np.nan
    assert _message(x, nan_y) == "train y has a non-finite value at row index 'cust9'; drop or impute such rows first"
    huge = x.copy()
    huge.loc["cust3", "score"] = 1e39
    assert _message(huge, y).startswith("train x at row index 'cust3', column 'score': 1e+39 is beyond float32's range")
    negative = y.copy()
    negative["cust5"] = -1
    assert _message(x, negative, task="multiclass").startswith(
        "train y label -1 at row index 'cust5' is negative")
    assert _message(x, negative.to_frame("churned"), task="multiclass").startswith(
        "train y label -1 at row index 'cust5', column 'churned' is negative")
    inf_val = x.iloc[:20].copy()
    inf_val.loc["cust12", "age"] = np.inf
    assert _message(x, y, val=(inf_val, y.iloc[:20])).startswith(
        "val x has a non-finite value at row index 'cust12', column 'age'")
    numbered = x.set_axis(range(100, 200)).astype("Float64")  # integer labels, shown as written
    numbered.loc[107, "income"] = pd.NA
    assert _message(numbered, y.to_numpy()).startswith("train x has a non-finite value at row index 107, column "
                                                       "'income';")


def test_cells_of_arrays_and_tensors_are_still_named_by_position():
    x, y = _customers()
    values = x.to_numpy(copy=True)
    values[7, 1] = np.nan
    assert _message(values, y.to_numpy()).startswith("train x has a non-finite value at row 7, column 1 "
                                                      "(counting from 0);")
    assert _message(torch.from_numpy(values), y.to_numpy()).startswith(
        "train x has a non-finite value at row 7, column 1 (counting from 0);")


def _with(labels: pd.Series | pd.DataFrame, where: str, value) -> pd.Series | pd.DataFrame:
    """A copy of ``labels`` whose cell at row label ``where`` (every column of it for a frame) is ``value``."""
    changed = labels.astype(type(value)).copy()
    changed.loc[where] = value
    return changed


def test_bad_val_and_test_labels_of_pandas_y_are_named_by_their_index_and_column_labels():
    """'val y label 3 at row 80 (counting from 0)' named a position of a y whose rows are cust0..cust99; every
    label check of a val/test split now names the cell as the training labels' do (and as the user's frame
    does, y.loc['cust80']), and the training ones are called 'train y', as fit's train=(x, y) and the
    val/test ones ('val y') are."""
    x, y = _customers()  # labels 0/1, rows cust0..cust99
    three = pd.Series(np.arange(100) % 3, index=x.index)  # classes 0, 1, 2 (every one in train and val)
    assert _message(x, three, val=(x, _with(three, "cust80", 3))) == (
        "val y label 3 at row index 'cust80' is out of range [0, 3): the classes are inferred from the training "
        "labels, which go up to 2, so the training data has no row of class 3; to keep it, set class_names to the "
        "names of all the classes (at least 4, for labels 0..3), or add training rows of it")
    assert _message(x, three + 1, task="multiclass", test=(x, _with(three + 1, "cust80", 7))).startswith(
        "test y label 7 at row index 'cust80' is not a class of the training data (classes: 1, 2, 3);")
    assert _message(x, three, val=(x, _with(three, "cust42", 1.5))).startswith(
        "val y labels must be integer class indices for a multiclass task; got 1.5 at row index 'cust42'")
    assert _message(x, y, task="binary", test=(x, _with(y, "cust9", -1).to_frame("churned"))).startswith(
        "test y label -1 at row index 'cust9', column 'churned' is negative;")
    tags = pd.DataFrame(np.stack([y, 1 - y, three % 2], axis=1), index=x.index, columns=["vip", "late", "churned"])
    bad_tag = tags.copy()
    bad_tag.loc["cust4", "churned"] = 2
    assert _message(x, tags, task="multilabel", val=(x, bad_tag)).startswith(
        "val y label 2 at row index 'cust4', column 'churned' must be 0 or 1 for a multilabel task")
    one_hot = pd.get_dummies(three).astype(np.int64)  # columns 0, 1, 2: read as the class of each row
    wider = pd.get_dummies(_with(three, "cust80", 3)).astype(np.int64)
    assert _message(x, one_hot, val=(x, wider)).startswith(  # a row's class: no one column holds it
        "val y label 3 at row index 'cust80' is out of range [0, 3)")


def test_bad_val_labels_of_arrays_and_tensors_are_still_named_by_position():
    x, y = _customers()
    three = np.arange(100) % 3
    beyond = three.copy()
    beyond[80] = 3
    for val_y in (beyond, torch.from_numpy(beyond)):
        assert _message(x, three, val=(x.to_numpy(), val_y)).startswith(
            "val y label 3 at row 80 (counting from 0) is out of range [0, 3)")
