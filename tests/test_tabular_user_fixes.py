"""Fixes from a user test on tabular CSV data: early stopping on a test_ record, a feature column spelt in
another letter case at predict time, numeric-looking categories written as integers, ``data.features: []``
and the identifier warning's feature count."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.datasets import load_diabetes, load_iris
from sklearn.preprocessing import OneHotEncoder

import trainlab
from trainlab.cli import main
from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data import preprocessing as prep
from trainlab.data.predict_input import read_for_predict
from trainlab.errors import ConfigError, DataError

STRATEGY = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05}, "batch_size": 32, "epochs": 2}


def _iris():
    x, y = load_iris(return_X_y=True)
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32), y


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ----------------------------------------------------------------------------- 1. early stopping on test_/train_


def _stopping_error(monitor: str, metrics: list[str]) -> str:
    x, y = _iris()
    strategy = {**STRATEGY, "early_stopping": {"monitor": monitor, "mode": "max", "patience": 2}}
    with pytest.raises(ConfigError) as caught:
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), strategy, val=(x, y), test=(x, y), metrics=metrics)
    return str(caught.value)


def test_early_stopping_on_a_test_record_points_to_its_val_twin_not_to_adding_the_metric():
    message = _stopping_error("test_accuracy", ["accuracy"])
    assert message == ("early_stopping monitors 'test_accuracy', which is not recorded: early_stopping watches the "
                       "validation records (val_...), as the test split must not steer training; monitor "
                       "'val_accuracy' (available: train_loss, val_loss, val_accuracy)")
    assert "add 'accuracy'" not in message


def test_early_stopping_on_a_train_metric_points_to_its_val_twin():
    message = _stopping_error("train_accuracy", ["accuracy"])
    assert message.startswith("early_stopping monitors 'train_accuracy', which is not recorded: early_stopping "
                              "watches the validation records (val_...); of the training split only train_loss is "
                              "recorded; monitor 'val_accuracy' (available: ")


def test_early_stopping_on_a_test_record_of_an_unlisted_metric_says_to_add_it_and_watch_val():
    message = _stopping_error("test_f1", ["accuracy"])
    assert "; monitor 'val_f1'; add 'f1' to the run's metrics" in message
    assert "as the test split must not steer training" in message


# ----------------------------------------------------------------------------- 2. a column in another letter case


def _fitted_on(columns: list[str]) -> dict:
    rng = np.random.default_rng(0)
    return prep.fit(rng.normal(size=(30, len(columns))), task="regression", standardize=True,
                    numeric_columns=columns, source="csv")


def test_predict_names_a_column_in_another_case_as_the_files_to_rename(tmp_path):
    fitted = _fitted_on(["f0", "f1"])
    path = _write_csv(tmp_path / "new.csv", ["F0", "f1"], [[0.5, 1.5], [1.0, 2.0]])
    with pytest.raises(DataError) as caught:
        read_for_predict({"source": "csv"}, fitted, path)
    assert str(caught.value) == (f"{path} has no feature column 'f0' (the file has 'F0': rename it to 'f0'); the run "
                                 "was trained on columns f0, f1")
    with pytest.raises(DataError) as caught:
        read_for_predict({"source": "csv"}, fitted, pd.DataFrame({"F0": [0.5], "f1": [1.5]}))
    assert "(the DataFrame has 'F0': rename it to 'f0');" in str(caught.value)
    assert "?;" not in str(caught.value)


def test_a_case_twin_that_training_read_itself_is_not_offered_for_renaming(tmp_path):
    fitted = _fitted_on(["f0", "F0"])
    path = _write_csv(tmp_path / "new.csv", ["F0"], [[0.5]])
    with pytest.raises(DataError) as caught:
        read_for_predict({"source": "csv"}, fitted, path)
    assert "rename" not in str(caught.value)


# ----------------------------------------------------------------------------- 3. categories that are numbers


def _sklearn_one_hot(train: list[str], rows: list[str]) -> np.ndarray:
    encoder = OneHotEncoder(handle_unknown="ignore").fit(np.asarray(train, dtype=object).reshape(-1, 1))
    return encoder.transform(np.asarray(rows, dtype=object).reshape(-1, 1)).toarray()


def test_a_category_written_as_another_number_encodes_as_that_category(capsys):
    fitted = prep.fit(np.zeros((4, 0)), task="regression", categorical_train=np.array([["1.0"], ["2.0"], ["2.0"],
                      ["1.0"]]), categorical_columns=["sex"])
    rows = ["1", "2", "2.00", "1e0", "3", "nan", "x"]
    got = prep.apply(fitted, np.zeros((len(rows), 0)), np.array(rows).reshape(-1, 1), what="new rows")
    # as sklearn encodes the texts these rows stand for: '1', '2.00', '1e0' are the numbers 1 and 2
    stand_for = ["1.0", "2.0", "2.0", "1.0", "3", "nan", "x"]
    np.testing.assert_array_equal(got, _sklearn_one_hot(["1.0", "2.0"], stand_for))
    err = capsys.readouterr().err
    assert "3 row(s) have categories of 'sex' not seen in training (3 values: '3', 'nan', 'x')" in err


def test_a_number_equal_to_two_categories_stays_unseen(capsys):
    fitted = prep.fit(np.zeros((3, 0)), task="regression", categorical_train=np.array([["1"], ["1.0"], ["2"]]),
                      categorical_columns=["c"])
    rows = ["1", "1.0", "1.00", "2.0"]
    got = prep.apply(fitted, np.zeros((4, 0)), np.array(rows).reshape(-1, 1), what="new rows")
    np.testing.assert_array_equal(got, _sklearn_one_hot(["1", "1.0", "2"], ["1", "1.0", "?", "2"]))
    assert "1 row(s) have categories of 'c' not seen in training (1 value: '1.00')" in capsys.readouterr().err


def test_predict_with_integer_categories_matches_training_float_categories(tmp_path, capsys):
    frame = load_diabetes(as_frame=True, scaled=False).frame.head(120)  # sex is 1.0/2.0: categories '1.0', '2.0'
    frame.to_csv(tmp_path / "train.csv", index=False)
    config = {"name": "sex", "seed": 0, "runtime": {"num_threads": 1},
              "data": {"source": "csv", "path": str(tmp_path / "train.csv"), "target": "target",
                       "categorical": ["sex"], "standardize_target": True},
              "model": {"name": "mlp", "hidden": [8]},
              "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 2},
              "output": {"progress": "off"}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    new = frame.drop(columns="target").head(20)
    new.to_csv(tmp_path / "as_floats.csv", index=False)
    new.assign(sex=new["sex"].astype(int)).to_csv(tmp_path / "as_ints.csv", index=False)
    assert set(pd.read_csv(tmp_path / "as_ints.csv", dtype=str)["sex"]) == {"1", "2"}  # as the file has them
    run = trainlab.load_run(tmp_path / "run")
    assert run.preprocessing["categories"] == [["1.0", "2.0"]]
    capsys.readouterr()
    as_floats = run.predict_file(tmp_path / "as_floats.csv")
    as_ints = run.predict_file(tmp_path / "as_ints.csv")
    assert "warning" not in capsys.readouterr().err
    np.testing.assert_array_equal(as_ints["prediction"].to_numpy(), as_floats["prediction"].to_numpy())


# ----------------------------------------------------------------------------- 4. features: [] and the id warning


def test_an_empty_features_list_is_refused_not_read_as_every_column(tmp_path, capsys):
    path = _write_csv(tmp_path / "d.csv", ["id", "a", "y"], [[f"u{i}", i * 0.5, i % 2] for i in range(30)])
    with pytest.raises(ConfigError) as caught:
        load_dataset(DataConfig(source="csv", path=str(path), target="y", features=[]))
    assert str(caught.value) == ("data.features is empty: list the feature columns, or leave features out for every "
                                 "column except the target")
    config = {"name": "empty", "runtime": {"num_threads": 1},
              "data": {"source": "csv", "path": str(path), "target": "y", "features": []},
              "model": {"name": "linear"}, "strategy": STRATEGY}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: data.features is empty: list the feature columns, or leave features out for every "
                   "column except the target"]


def test_the_identifier_warning_counts_the_training_splits_categories(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = _write_csv(tmp_path / "ids.csv", ["id", "a", "y"],
                      [[f"u{i:03d}", float(rng.normal()), i % 2] for i in range(60)])
    data = load_dataset(DataConfig(source="csv", path=str(path), target="y"))
    err = capsys.readouterr().err
    n_train = len(data.train)  # each id once: the training split holds one category per row
    assert n_train < 60
    assert (f"text column 'id' has 60 distinct values in 60 rows (an id, a date or free text?): one-hot encoded into "
            f"{n_train} features (one per value in the training split)") in err
