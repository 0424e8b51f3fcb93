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


def test_a_missing_value_in_a_nullable_column_is_named_by_row_and_column():
    x = pd.DataFrame(_points(), columns=["a", "b"]).astype("Float64")
    x.iloc[7, 1] = pd.NA
    with pytest.raises(DataError, match=r"train x has a non-finite value at row 7, column 1"):
        trainlab.fit(_linear(outputs=2), (x, np.arange(len(x)) % 2), STRATEGY)
    text = pd.DataFrame({"a": _points()[:, 0], "colour": "red"})
    with pytest.raises(DataError, match="text or category columns"):
        trainlab.fit(_linear(outputs=2), (text, np.arange(len(text)) % 2), STRATEGY)


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
