"""trainlab.fit's inputs as a sweep of the Python API passed them: relabelled classes the result names,
tensors that carry autograd history, pandas' nullable number columns, arguments of the wrong kind, a whole
config given as the strategy, and mid-epoch validations asked for without validation data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import LabelEncoder

import trainlab
from trainlab.errors import ConfigError, DataError
from trainlab.fit_inputs import as_split

STRATEGY = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.1}, "batch_size": 32, "epochs": 3}


def _points(n: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 2)).astype(np.float32)


def _linear(inputs: int = 2, outputs: int = 3) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(inputs, outputs)


@pytest.mark.parametrize("labels, task, outputs, loss", [
    ([1, 2, 3], "multiclass", 3, "cross_entropy"),  # UCI's wine writes its classes 1, 2, 3
    ([-1, 1], None, 1, "bce"),                      # -1/+1, inferred binary
    ([2, 5, 9], "multiclass", 3, "cross_entropy"),
])
def test_relabelled_classes_are_named_in_output_order_as_label_encoder_orders_them(labels, task, outputs, loss):
    """Labels without a 0 are trained as classes 0..K-1; the result did not say which is which, so a user's
    ``model(x).argmax(1) == y`` scored the model at about 0."""
    x = _points()
    y = np.asarray(labels)[np.digitize(x[:, 0], np.quantile(x[:, 0], np.linspace(0, 1, len(labels) + 1)[1:-1]))]
    model = _linear(outputs=outputs)
    result = trainlab.fit(model, (x, y), {**STRATEGY, "loss": loss}, val=(x, y), task=task)
    encoder = LabelEncoder().fit(y)  # the reference: scikit-learn's class order
    assert result.class_names == [str(v) for v in encoder.classes_]
    with torch.no_grad():
        out = model.cpu()(torch.from_numpy(x))  # fit leaves the model on the run's device (a GPU where present)
        index = (out[:, 0] > 0).long() if outputs == 1 else out.argmax(1)
    predicted = np.asarray([int(name) for name in result.class_names])[index.numpy()]
    assert (predicted == y).mean() == pytest.approx(result.summary["val"]["accuracy"])


def test_class_names_are_those_given_and_none_for_class_indices_and_regression():
    x = _points()
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    assert trainlab.fit(_linear(), (x, y), STRATEGY).class_names is None
    named = trainlab.fit(_linear(), (x, y), STRATEGY, class_names=["low", "mid", "high"])
    assert named.class_names == ["low", "mid", "high"]
    regression = trainlab.fit(_linear(outputs=1), (x, x[:, 0] * 2), {**STRATEGY, "loss": "mse"})
    assert regression.class_names is None


def test_a_pandas_category_of_names_is_told_its_codes_and_categories_and_those_train():
    """A category Series of strings was refused as 'got dtype object', naming LabelEncoder; its own codes and
    categories are the classes, in the categories' order."""
    x = _points()
    names = np.asarray(["owl", "cat", "dog"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)]
    y = pd.Series(names, dtype="category")
    with pytest.raises(DataError) as caught:
        trainlab.fit(_linear(), (x, y), STRATEGY)
    assert str(caught.value) == ("train y must hold numbers; got a pandas category Series ('cat', 'dog', 'owl'); "
                                 "pass its codes and its categories as the class names: y.cat.codes.to_numpy() "
                                 "with class_names=list(y.cat.categories)")
    result = trainlab.fit(_linear(), (x, y.cat.codes.to_numpy()), STRATEGY, class_names=list(y.cat.categories))
    assert result.class_names == ["cat", "dog", "owl"]
    # a val Series has its own categories ('cat', 'owl': 'owl' would be code 1, training's 'dog'): told to code
    # it by the training classes, which gives the labels the training names mean
    val = pd.Series(names[names != "dog"], dtype="category")
    with pytest.raises(DataError, match=r"^val y must hold numbers; got a pandas category Series \('cat', 'owl'\); "
                                        r"pass the codes of the training classes: pd.Categorical\(y, "
                                        r"categories=<the class_names>\).codes "):
        trainlab.fit(_linear(), (x, y.cat.codes.to_numpy()), STRATEGY, val=(x[names != "dog"], val),
                     class_names=list(y.cat.categories))
    codes = pd.Categorical(val, categories=result.class_names).codes
    assert [result.class_names[code] for code in codes] == list(val)


def test_a_bare_pandas_categorical_is_told_its_own_codes_and_a_string_series_its_own_dtype():
    """A pd.Categorical (no .cat accessor) as y was an internal AttributeError; a Series of pandas' string dtype
    was said to be 'dtype object'."""
    x = _points()
    names = np.asarray(["owl", "cat"])[(x[:, 0] > 0).astype(int)]
    with pytest.raises(DataError) as caught:
        trainlab.fit(_linear(), (x, pd.Categorical(names)), STRATEGY)
    assert str(caught.value) == ("train y must hold numbers; got a pandas Categorical ('cat', 'owl'); pass its "
                                 "codes and its categories as the class names: y.codes with "
                                 "class_names=list(y.categories)")
    with pytest.raises(DataError, match=r"^train y must hold numbers; got dtype string \(class names: "):
        trainlab.fit(_linear(), (x, pd.Series(names, dtype="string")), STRATEGY)


def _features_with_history():
    torch.manual_seed(1)
    raw = torch.randn(64, 5)
    encoder = torch.nn.Linear(5, 3)
    return encoder, encoder(raw), (raw[:, 0] > 0).long()


def test_inputs_with_autograd_history_train_as_their_values_and_leave_the_encoder_alone():
    """Features computed without torch.no_grad() failed at the second step ('backward through the graph a
    second time'), after the first backward wrote gradients into the encoder."""
    encoder, features, y = _features_with_history()
    result = trainlab.fit(_linear(3, 2), (features, y), STRATEGY)
    reference = trainlab.fit(_linear(3, 2), (features.detach().clone(), y), STRATEGY)
    assert result.history == [{**r, "elapsed_s": a["elapsed_s"]} for r, a in zip(reference.history, result.history,
                                                                                strict=True)]
    assert all(p.grad is None for p in encoder.parameters())


def test_a_float64_tensor_that_requires_grad_trains_and_shares_its_storage():
    """It failed with "Can't call numpy() on Tensor that requires grad"; detaching copies nothing."""
    x = torch.from_numpy(_points().astype(np.float64)).requires_grad_()
    y = (x[:, 0] > 0).long().detach()
    result = trainlab.fit(_linear(outputs=2), (x, y), STRATEGY)
    reference = trainlab.fit(_linear(outputs=2), (x.detach().clone(), y), STRATEGY)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in reference.history]
    assert x.grad is None
    features = _features_with_history()[1]
    split = as_split((features, y[:64]), "train")
    assert split.x.data_ptr() == features.data_ptr() and not split.x.requires_grad


def test_dataset_items_with_autograd_history_are_detached():
    encoder, features, y = _features_with_history()
    items = [(features[i], y[i]) for i in range(len(y))]

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return len(items)

        def __getitem__(self, i):
            return items[i]

    result = trainlab.fit(_linear(3, 2), Items(), STRATEGY)
    reference = trainlab.fit(_linear(3, 2), (features.detach(), y), STRATEGY)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in reference.history]
    assert all(p.grad is None for p in encoder.parameters())


def test_pandas_nullable_number_columns_are_numbers():
    """A frame of Float64 columns (read_csv(dtype_backend='numpy_nullable')) was refused as 'text or category
    columns'; Int64 and boolean targets are labels as int64 ones are."""
    x = _points()
    y = (x[:, 0] > 0).astype(int)
    frame = pd.DataFrame(x, columns=["a", "b"])
    result = trainlab.fit(_linear(outputs=2), (frame.astype("Float64"), pd.Series(y).astype("Int64")), STRATEGY)
    reference = trainlab.fit(_linear(outputs=2), (frame.astype("float64"), y), STRATEGY)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in reference.history]
    flags = frame.assign(b=x[:, 1] > 0)  # a boolean column beside a number one: all float64, as NumPy makes them
    result = trainlab.fit(_linear(outputs=2), (flags.astype({"a": "Float64", "b": "boolean"}), y), STRATEGY)
    reference = trainlab.fit(_linear(outputs=2), (flags.astype("float64"), y), STRATEGY)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in reference.history]


def test_a_nullable_uint64_column_past_int64_is_not_wrapped_to_negative_numbers():
    from trainlab.fit_inputs import _from_array

    frame = pd.DataFrame({"a": pd.array([2**63 + 4096, 1], dtype="UInt64"), "b": pd.array([1, 2], dtype="Int64")})
    np.testing.assert_array_equal(_from_array(frame, "train x").numpy(), np.array([[2.0**63 + 4096, 1], [1, 2]]))
    small = pd.DataFrame({"a": pd.array([200, 1], dtype="UInt8"), "b": pd.array([1, 2], dtype="Int64")})
    assert _from_array(small, "train x").dtype == torch.int64


def test_a_missing_value_in_a_nullable_column_is_named_by_row_and_column():
    x = pd.DataFrame(_points(), columns=["a", "b"]).astype("Float64")
    x.iloc[7, 1] = pd.NA
    with pytest.raises(DataError, match=r"train x has a non-finite value at row index 7, column 'b'"):  # its labels
        trainlab.fit(_linear(outputs=2), (x, np.arange(len(x)) % 2), STRATEGY)
    text = pd.DataFrame({"a": _points()[:, 0], "colour": "red"})
    with pytest.raises(DataError, match="text or category columns"):
        trainlab.fit(_linear(outputs=2), (text, np.arange(len(text)) % 2), STRATEGY)


@pytest.mark.parametrize("dtype", ["category", "string", object])
def test_a_frame_column_that_is_no_number_is_named_with_its_dtype(dtype):
    """A wide frame's refusal said 'dtype object' alone: the column to encode was not named."""
    x = pd.DataFrame({"a": _points()[:, 0], "b": _points()[:, 1], "city": ["x", "y"] * (len(_points()) // 2)})
    x["city"] = x["city"].astype(dtype)
    with pytest.raises(DataError, match=rf"^train x must hold numbers; got column 'city' \({x['city'].dtype}\) "
                                        r"\(text or category columns: encode them first"):
        trainlab.fit(_linear(inputs=3, outputs=2), (x, np.arange(len(x)) % 2), STRATEGY)


def _columns_fit(val_x: object, val_y: object = None, y: object = None) -> dict:
    x = pd.DataFrame(_points(), columns=["a", "b"])
    y = (x["a"] > x["b"]).astype(int) if y is None else y
    val_y = y if val_y is None else val_y
    return trainlab.fit(_linear(outputs=2), (x, y), STRATEGY, val=(val_x, val_y), seed=0).summary["val"]


def test_val_frame_columns_are_read_by_name_in_any_order_and_other_names_are_refused():
    """X_val[cols[::-1]] was read by position: every feature met another's weights (val R^2 0.50 -> -0.20 in a user's
    trial) without a word; scikit-learn refuses such a frame, and run.predict(df) reads columns by name."""
    x = pd.DataFrame(_points(), columns=["a", "b"])
    same = _columns_fit(x)
    assert _columns_fit(x[["b", "a"]]) == same  # the same columns, another order: matched by name
    assert _columns_fit(x.to_numpy()) == same  # an array: by position, as always
    assert _columns_fit(pd.DataFrame(x.to_numpy())) == same  # default names 0..n-1 name nothing
    swapped = _columns_fit(x[["b", "a"]].to_numpy())  # by position, the features swapped: another result
    assert swapped != same
    with pytest.raises(DataError, match=r"^val x's columns are not train x's \(missing 'a'; not in train x: 'A'\); "
                                        r"fit reads a DataFrame's columns by name, as the model learnt them: give val "
                                        r"x the columns of train x \(val_x\[train_x.columns\] where it has them all\)$"):
        _columns_fit(x.rename(columns={"a": "A"}))
    with pytest.raises(DataError, match=r"^val x's columns are not train x's \('b' more than once\)"):
        _columns_fit(x.assign(c=x["b"]).set_axis(["a", "b", "b"], axis=1))


def test_integer_and_nan_column_labels_are_matched_as_pandas_matches_them():
    """A review: train's columns 0..n-1 beside val's [1, 0] read val by position (swapped features, no word); float
    labels with a NaN refused two identical frames ('missing nan; not in train x: nan')."""
    from trainlab.fit_columns import in_training_order

    values = torch.arange(6.0).reshape(2, 3)
    reordered = in_training_order("val x", values, pd.Index([2, 0, 1]), pd.RangeIndex(3))
    assert reordered.tolist() == values[:, [1, 2, 0]].tolist()
    nan_labels = pd.Index([0.5, 1.0, np.nan])
    assert in_training_order("val x", values, nan_labels, pd.Index([0.5, 1.0, np.nan])) is values
    assert in_training_order("val x", values, pd.Index(["a", "b", "c"]), pd.RangeIndex(3)) is values  # by position
    x = pd.DataFrame(_points())  # columns 0, 1
    y = (x[0] > x[1]).astype(int)
    fits = [trainlab.fit(_linear(outputs=2), (x, y), STRATEGY, val=(val, y), seed=0).summary["val"]
            for val in (x, x[[1, 0]])]
    assert fits[0] == fits[1]


def test_val_target_frame_columns_are_read_by_name_too():
    """A two-target y frame in another order named each target by the other's column."""
    x = pd.DataFrame(_points(), columns=["a", "b"])
    y = pd.DataFrame({"sum": x["a"] + x["b"], "diff": x["a"] - x["b"]})
    fitted = trainlab.fit(torch.nn.Linear(2, 2), (x, y), {**STRATEGY, "loss": "mse"}, val=(x, y[["diff", "sum"]]),
                          test=(x, y), seed=0)
    assert fitted.summary["val"] == fitted.summary["test"]


def test_arguments_of_the_wrong_kind_are_one_error_naming_the_argument(tmp_path):
    x = _points()
    y = (x[:, 0] > 0).astype(int)
    with pytest.raises(ConfigError, match=r"^train is None; fit needs training data"):
        trainlab.fit(_linear(), None, STRATEGY, out=tmp_path / "none")  # was AttributeError: ... no attribute 'y'
    assert not (tmp_path / "none").exists()
    for out in (5, b"records"):  # was pathlib's TypeError
        with pytest.raises(ConfigError, match=r"^out must be a path \(str or pathlib.Path\); got"):
            trainlab.fit(_linear(), (x, y), STRATEGY, out=out)

    class Noop(trainlab.Callback):
        pass

    with pytest.raises(ConfigError, match=r"callbacks must be a trainlab.Callback instance or a list of them; got a "
                                          r"dict \(of 1 item\): give its callbacks as a list, e.g. "
                                          r"list\(callbacks.values\(\)\)"):
        trainlab.fit(_linear(), (x, y), STRATEGY, callbacks={"a": Noop()})  # was: '... instances; got str'
    with pytest.raises(ConfigError, match=r"callbacks must be .* got int$"):
        trainlab.fit(_linear(), (x, y), STRATEGY, callbacks=5)


def test_a_whole_config_as_the_strategy_is_refused_naming_where_its_sections_go(tmp_path):
    """Its seed, metrics and runtime were dropped without a word."""
    import yaml

    whole = {"name": "mine", "seed": 7, "data": {"source": "digits"}, "model": {"name": "linear"},
             "strategy": STRATEGY, "metrics": ["accuracy", "roc_auc"], "runtime": {"num_threads": 1}}
    path = tmp_path / "whole.yaml"
    path.write_text(yaml.safe_dump(whole, sort_keys=False))
    x = _points()
    y = (x[:, 0] > 0).astype(int)
    with pytest.raises(ConfigError) as caught:
        trainlab.fit(_linear(outputs=2), (x, y), path)
    message = str(caught.value)
    assert message.startswith(f"strategy file '{path}' is a whole config (besides strategy: it holds name, seed, "
                              "data, model, metrics, runtime), but fit reads only a strategy")
    assert "pass seed=7, metrics=['accuracy', 'roc_auc'], runtime={'num_threads': 1} to fit" in message
    assert "data: is fit's train=/val=/test=" in message and "name: has no fit argument" in message
    assert message.endswith(f"or run the whole config with `trainlab train {path}`")
    with pytest.raises(ConfigError, match=r"^the strategy dict is a whole config \(besides strategy: it holds seed\)"):
        trainlab.fit(_linear(outputs=2), (x, y), {"strategy": STRATEGY, "seed": 7})
    # the strategy: section alone, in a file or a dict, is the strategy
    path.write_text(yaml.safe_dump({"strategy": STRATEGY}))
    reference = trainlab.fit(_linear(outputs=2), (x, y), STRATEGY).history
    for given in (path, {"strategy": STRATEGY}):
        history = trainlab.fit(_linear(outputs=2), (x, y), given).history
        assert [r["train_loss"] for r in history] == [r["train_loss"] for r in reference]


def test_mid_epoch_validations_without_validation_data_are_warned_of(capsys):
    x = _points()
    y = (x[:, 0] > 0).astype(int)
    trainlab.fit(_linear(outputs=2), (x, y), {**STRATEGY, "eval_every_n_steps": 2})
    assert ("warning: strategy.eval_every_n_steps=2 asks for a validation every 2 steps, but fit was given no val "
            "data: nothing is validated (its step records hold no val_* values); pass val=\n") in capsys.readouterr().err
    trainlab.fit(_linear(outputs=2), (x, y), {**STRATEGY, "eval_every_n_steps": 2}, val=(x, y))
    assert "eval_every_n_steps" not in capsys.readouterr().err


@pytest.mark.parametrize("value", ["false", "no", 0, None])
def test_fit_and_train_refuse_an_overwrite_that_is_not_a_bool_before_touching_the_folder(tmp_path, value):
    """overwrite="false" is a true string: fit and train replaced the earlier records with it."""
    from trainlab.experiment import train

    x, y = np.zeros((8, 2), np.float32), np.linspace(0.0, 1.0, 8, dtype=np.float32)
    trainlab.fit(torch.nn.Linear(2, 1), (x, y), {"loss": "mse", "optimizer": "adam", "epochs": 1}, out=tmp_path / "f",
                 task="regression")
    before = (tmp_path / "f" / "summary.json").read_bytes()
    with pytest.raises(ConfigError, match=rf"^overwrite must be True or False; got {re.escape(repr(value))}$"):
        trainlab.fit(torch.nn.Linear(2, 1), (x, y), {"loss": "mse", "optimizer": "adam", "epochs": 2},
                     out=tmp_path / "f", task="regression", overwrite=value)
    assert (tmp_path / "f" / "summary.json").read_bytes() == before
    config = {"data": {"source": "synthetic_linear"}, "model": {"name": "linear"},
              "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1}}
    with pytest.raises(ConfigError, match=rf"^train's overwrite must be True or False; got {re.escape(repr(value))}$"):
        train(config, out=tmp_path / "t", overwrite=value)
    assert not (tmp_path / "t").exists()


# ----------------------------------------------------------------------------- a new user's inputs


def _signs(n: int = 80):
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(int)


BCE = {"loss": "bce", "optimizer": "adam", "epochs": 1}
CROSS_ENTROPY = {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1}


def test_multilabel_class_names_of_another_count_than_the_label_columns_are_refused(tmp_path):
    """2 names for 4 label columns were written to result.class_names and labels.json."""
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(n_samples=200, n_features=6, n_classes=4, random_state=0)
    x = x.astype(np.float32)
    with pytest.raises(DataError, match=r"^train y has 4 label columns but 2 class names are given \(class_names\); "
                                        r"give one name per label column, in column order$"):
        trainlab.fit(torch.nn.Linear(6, 4), (x, y), BCE, test=(x, y), class_names=["a", "b"], out=tmp_path / "two")
    assert not (tmp_path / "two").exists()
    named = trainlab.fit(torch.nn.Linear(6, 4), (x, y), BCE, class_names=list("abcd"), metrics=["f1_per_class"])
    assert named.class_names == ["a", "b", "c", "d"]


def _generator(x):
    return (row for row in x)


@pytest.mark.parametrize("make, message", [
    (lambda x: torch.from_numpy(x).to_sparse(), r"train x is a sparse tensor \(torch.sparse_coo\); pass "
                                                r"x.to_dense\(\): fit trains on dense tensors$"),
    (lambda x: torch.from_numpy(x).to_sparse_csr(), r"train x is a sparse tensor \(torch.sparse_csr\); pass "
                                                    r"x.to_dense\(\)"),
    (lambda x: __import__("scipy.sparse").sparse.csr_matrix(x),
     r"train x is a scipy.sparse csr_matrix \(as TfidfVectorizer, CountVectorizer and OneHotEncoder return\); "
     r"pass x.toarray\(\): fit trains on dense arrays$"),
    (lambda x: {"a": x[:, 0], "b": x[:, 1]}, r"train x is a dict; fit takes x as one array, tensor or DataFrame of "
                                             r"numbers \(for a dict of columns: pandas.DataFrame\(x\)\)$"),
    (_generator, r"train x is a generator; fit takes x as an array, tensor or DataFrame of numbers, not an iterator: "
                 r"collect its rows first, e.g. np.stack\(list\(x\)\)$"),
    (lambda x: {1, 2}, r"train x is a set; fit takes x as an array, tensor or DataFrame of numbers$"),
])
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_x_that_is_no_dense_array_is_named_with_what_to_pass(make, message):
    """A sparse tensor raised torch's NotImplementedError (aten::ne.Scalar on SparseCPU); a scipy.sparse matrix,
    a dict or a generator was called 'text or category columns'."""
    x, y = _signs()
    with pytest.raises(DataError, match="^" + message) as caught:
        trainlab.fit(torch.nn.Linear(4, 2), (make(x), y), CROSS_ENTROPY)
    assert "text or category" not in str(caught.value)


def test_sparse_targets_name_y_and_the_fixes_named_give_the_dense_values():
    import scipy.sparse

    x, y = _signs()
    with pytest.raises(DataError, match=r"^val y is a sparse tensor \(torch.sparse_coo\); pass y.to_dense\(\)"):
        as_split((x, torch.from_numpy(y).to_sparse()), "val")
    dense = as_split((x, y), "train")
    for fixed in (torch.from_numpy(x).to_sparse().to_dense(), scipy.sparse.csr_matrix(x).toarray(),
                  np.stack(list(_generator(x)))):
        assert torch.equal(as_split((fixed, y), "train").x, dense.x)


def test_soft_targets_with_bce_are_named_as_such_and_the_fix_trains():
    """Fractional targets in [0, 1] were told 'set task=binary: labels without a 0 are read as a regression
    target', and task='binary' then failed with 'labels must be integer class indices'."""
    x, _ = _signs()
    soft = np.random.default_rng(1).uniform(size=len(x)).astype(np.float32)
    fix = ("soft targets or probabilities, not class labels; threshold them into 0/1 class labels (such as y > 0.5) "
           "to train a classifier, or use a regression loss such as mse to predict the values themselves")
    for task in (None, "regression"):
        with pytest.raises(DataError) as caught:
            trainlab.fit(torch.nn.Linear(4, 1), (x, soft), BCE, task=task)
        assert str(caught.value) == (f"bce trains on 0/1 class labels, but the targets hold fractional values in "
                                     f"[0, 1] (such as {soft[0]:g}): {fix}")
    with pytest.raises(DataError, match=re.escape("cross_entropy trains on class labels, but the targets hold "
                                                  f"fractional values in [0, 1] (such as {soft[0]:g}): {fix}")):
        trainlab.fit(torch.nn.Linear(4, 2), (x, soft), CROSS_ENTROPY)
    with pytest.raises(DataError) as caught:
        trainlab.fit(torch.nn.Linear(4, 1), (x, soft), BCE, task="binary")
    assert str(caught.value) == (f"task='binary' takes class labels, but train y holds fractional values in [0, 1] "
                                 f"(such as {soft[0]:g}): {fix}")
    thresholded = trainlab.fit(torch.nn.Linear(4, 1), (x, (soft > 0.5).astype(int)), BCE, val=(x, soft > 0.5))
    assert "accuracy" in thresholded.summary["val"]
    regression = trainlab.fit(torch.nn.Linear(4, 1), (x, soft), {**BCE, "loss": "mse"}, val=(x, soft))
    assert "mse" in regression.summary["val"]


def test_a_task_given_that_the_loss_does_not_suit_is_said_as_given_without_the_inference_rule():
    """The ~600-character rule of how a task is inferred followed task='regression' given by the caller."""
    x, y = _signs()
    with pytest.raises(DataError) as caught:
        trainlab.fit(torch.nn.Linear(4, 2), (x, y), CROSS_ENTROPY, task="regression")
    assert str(caught.value) == ("cross_entropy needs a classification task, but task='regression' was given; set "
                                 "task='multiclass' if the targets are class labels, or use a regression loss such "
                                 "as mse or huber")
    with pytest.raises(DataError) as caught:  # values no class task takes: no task to set is offered
        trainlab.fit(torch.nn.Linear(4, 2), (x, x[:, 0] * 3), CROSS_ENTROPY, task="regression")
    assert str(caught.value) == ("cross_entropy needs a classification task, but task='regression' was given; use a "
                                 "regression loss such as mse or huber")
    with pytest.raises(DataError, match=r"^bce needs a binary \(or multilabel\) task, but task='regression' was "
                                        r"given; set task='binary' if the targets are class labels, or use"):
        trainlab.fit(torch.nn.Linear(4, 1), (x, y), BCE, task="regression")
    with pytest.raises(DataError) as inferred:  # inferred: the rule stays, it is why the task is regression
        trainlab.fit(torch.nn.Linear(4, 2), (x, y + 1), CROSS_ENTROPY)
    assert "without task, targets are classes when" in str(inferred.value)


def test_targets_of_three_dimensions_with_a_class_loss_name_their_shape():
    x, _ = _signs(60)
    y = np.random.default_rng(0).normal(size=(60, 2, 2)).astype(np.float32)
    with pytest.raises(DataError) as caught:
        trainlab.fit(torch.nn.Linear(4, 2), (x, y), CROSS_ENTROPY)
    assert str(caught.value) == ("cross_entropy takes one class index per row, shaped (N,), but the targets are "
                                 "shaped (60, 2, 2); give such labels, or, to predict those values, use a regression "
                                 "loss such as mse")
    with pytest.raises(DataError, match=r"^bce takes one 0/1 label per row, shaped \(N,\), or \(N, L\) for L labels, "
                                        r"but the targets are shaped \(60, 2, 2\)"):
        trainlab.fit(torch.nn.Linear(4, 1), (x, y), BCE)


def test_one_output_for_two_classes_is_one_score_and_two_for_bce_name_the_fix():
    x, y = _signs()
    with pytest.raises(DataError, match=r"^the model outputs 1 score per row but the data has 2 classes \(labels "
                                        r"0..1\); give its last layer 2 outputs or use loss bce \(one logit: P\(class "
                                        r"1\)\) "):  # both fixes, as bce's refusal of 2 outputs names both
        trainlab.fit(torch.nn.Linear(4, 1), (x, y), CROSS_ENTROPY)
    with pytest.raises(DataError) as caught:  # a multiclass task of 2 classes: bce would refuse it in turn
        trainlab.fit(torch.nn.Linear(4, 1), (x, y), CROSS_ENTROPY, task="multiclass")
    assert "give its last layer 2 outputs (or" in str(caught.value) and "bce" not in str(caught.value)
    with pytest.raises(DataError, match=r"^bce: expects one output per sample; got shape \(\d+, 2\); give the "
                                        r"model's last layer 1 output \(one logit\), or use cross_entropy for 2 "
                                        r"outputs \(one score per class\)$"):
        trainlab.fit(torch.nn.Linear(4, 2), (x, y), BCE)


def test_metrics_as_one_name_is_a_one_item_list_and_other_kinds_name_fits_argument():
    """metrics="accuracy" gave pydantic's "config key 'metrics': Input should be a valid list"."""
    x, y = _signs()
    one = trainlab.fit(_linear(4, 2), (x, y), CROSS_ENTROPY, val=(x, y), metrics="accuracy")
    listed = trainlab.fit(_linear(4, 2), (x, y), CROSS_ENTROPY, val=(x, y), metrics=["accuracy"])
    assert one.summary["val"] == listed.summary["val"] and sorted(one.summary["val"]) == ["accuracy", "loss"]
    # names joined by commas, as a config's ``metrics: accuracy,f1`` ('unknown metric' before)
    joined = trainlab.fit(_linear(4, 2), (x, y), CROSS_ENTROPY, val=(x, y), metrics="accuracy, f1,")
    assert sorted(joined.summary["val"]) == ["accuracy", "f1", "loss"]
    for metrics in (5, {"accuracy": 1}, ["accuracy", 5]):
        with pytest.raises(ConfigError, match=r"^metrics must be a list of metric names, e.g. metrics=\['accuracy', "
                                              r"'f1'\]; got "):
            trainlab.fit(_linear(4, 2), (x, y), CROSS_ENTROPY, metrics=metrics)


def test_a_val_label_the_training_values_lack_names_the_fix_and_the_fix_trains():
    """Labels 1..K: 'val y label 3 ... is not a class of the training data (classes: 1, 2)' had no fix, while
    labels 0..K-1 were told to name all the classes in class_names."""
    x, y = _signs()
    val_x, val_y = np.concatenate([x, x[:3]]), np.concatenate([y + 1, [3, 3, 3]])
    with pytest.raises(DataError) as caught:
        trainlab.fit(torch.nn.Linear(4, 2), (x, y + 1), CROSS_ENTROPY, val=(val_x, val_y), task="binary")
    assert str(caught.value) == ("val y label 3 at row 80 (counting from 0) is not a class of the training data "
                                 "(classes: 1, 2); to keep it, number the classes 0..K-1 in every split and set "
                                 "class_names to the names of all K classes and task='multiclass' (the task given is "
                                 "binary), or add training rows of it")
    kept = trainlab.fit(torch.nn.Linear(4, 3), (x, y), CROSS_ENTROPY, val=(val_x, val_y - 1), task="multiclass",
                        class_names=["one", "two", "three"])
    assert kept.class_names == ["one", "two", "three"] and "accuracy" in kept.summary["val"]


def test_pandas_x_and_y_of_one_index_in_another_order_are_warned_of(capsys):
    """X.sample(frac=1) beside its y trained every row on another row's target without a word (fit pairs by
    position, as scikit-learn does). An index reset on one side only (a scaled copy) says nothing."""
    x = pd.DataFrame(_points(), columns=["a", "b"]).sample(frac=1, random_state=1)  # train_test_split's order
    y = pd.Series((x["a"] > 0).astype(int))
    shuffled = x.sample(frac=1, random_state=0)
    trainlab.fit(_linear(outputs=2), (shuffled, y), STRATEGY)
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    first = next(i for i, (a, b) in enumerate(zip(shuffled.index, y.index, strict=True)) if a != b)
    assert line == (f"warning: train x and y hold the same pandas index labels in another order (row {first}: x's "
                    f"{shuffled.index[first]}, y's {y.index[first]}); fit pairs rows by position, not by label: "
                    "align them first if they pair by label (y = y.loc[x.index])")
    trainlab.fit(_linear(outputs=2), (shuffled.reset_index(drop=True), y.loc[shuffled.index]), STRATEGY)
    mixed = list(range(len(x) - 1)) + ["a"]  # labels of two types: no order to compare, no crash (TypeError)
    trainlab.fit(_linear(outputs=2), (x.set_axis(mixed), y.set_axis(mixed[::-1])), STRATEGY)
    trainlab.fit(_linear(outputs=2), (shuffled, y.loc[shuffled.index]), STRATEGY)
    assert "warning:" not in capsys.readouterr().err
