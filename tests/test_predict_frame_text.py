"""A DataFrame's cells written as text are read as the same cells of a CSV file are (docs/predict.md).

``predict_file(df)`` refused a bool feature written as ``'True'``/``'False'`` (``df.astype(str)``, or
``pd.read_csv(path, dtype=str)``) with "'False' is not a number", though the same CSV file's cells are read
as booleans. Every feature kind a CSV holds as text (floats, integers, booleans, categories, missing
markers) is checked here against predictions written out in NumPy from the run's preprocessing.json and
its model.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import trainlab
import trainlab.experiment
from trainlab.config import validate
from trainlab.errors import DataError


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weight = rng.normal(30, 10, n)
    organic = rng.random(n) > 0.5
    bottles = rng.integers(1, 100, n)
    region = rng.choice(["north", "south", "east"], n)
    label = np.where(organic & (weight > 28), "fine", np.where(region == "north", "plain", "table"))
    return pd.DataFrame({"weight": weight, "organic": organic, "bottles": bottles, "region": region,
                         "label": label})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frame_text")
    _table(240, 0).to_csv(tmp / "train.csv", index=False)
    raw = {"name": "wines", "seed": 0, "data": {"source": "csv", "path": str(tmp / "train.csv"), "target": "label"},
           "model": {"name": "mlp", "hidden": [16]},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.03}, "batch_size": 32,
                        "epochs": 5},
           "output": {"progress": "off", "checkpoint": {"every_seconds": None}}}
    trainlab.experiment.train(validate(raw), out=tmp / "run", quiet=True)
    new = _table(30, 5).drop(columns="label")
    new.index = [f"w{i:02d}" for i in range(len(new))]
    new.to_csv(tmp / "new.csv", index=False)
    return {"folder": tmp / "run", "loaded": trainlab.load_run(tmp / "run"), "new": new, "file": tmp / "new.csv"}


def _reference(folder, model: torch.nn.Module, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The predicted classes of typed ``rows`` (indices, names), written out: standardise the numeric columns with
    preprocessing.json's mean and scale, append one-hot blocks of its categories, argmax the model's outputs."""
    fitted = json.loads((folder / "preprocessing.json").read_text())
    numeric = rows[fitted["numeric_columns"]].to_numpy(dtype=np.float64)
    blocks = [((numeric - np.array(fitted["mean"])) / np.array(fitted["scale"])).astype(np.float32)]
    for name, categories in zip(fitted["categorical_columns"], fitted["categories"], strict=True):
        blocks.append((rows[name].to_numpy()[:, None] == np.array(categories)[None, :]).astype(np.float32))
    with torch.no_grad():
        outputs = model(torch.from_numpy(np.concatenate(blocks, axis=1))).numpy()
    names = json.loads((folder / "labels.json").read_text())["class_names"]
    return outputs.argmax(axis=1), np.array(names)[outputs.argmax(axis=1)]


def test_every_feature_written_as_text_predicts_as_the_typed_frame_and_the_file(run):
    loaded, new = run["loaded"], run["new"]
    indices, want = _reference(run["folder"], loaded.model, new)
    as_bool_text = new.assign(organic=new["organic"].astype(str))  # 'True'/'False'
    assert set(as_bool_text["organic"]) == {"True", "False"}
    lower = new.assign(organic=new["organic"].map({True: "true", False: "FALSE"}))  # CSV's other bool words
    all_text = new.astype(str)
    read_as_text = pd.read_csv(run["file"], dtype=str).set_axis(new.index)
    assert all(pd.api.types.is_string_dtype(read_as_text[c]) for c in read_as_text)  # the premise: no numbers
    for frame in (new, as_bool_text, lower, all_text, read_as_text):
        table = loaded.predict_file(frame)
        assert table["prediction"].tolist() == want.tolist()
        assert list(table.index) == list(new.index)
        np.testing.assert_array_equal(loaded.predict(frame), indices)
    assert loaded.predict_file(run["file"])["prediction"].tolist() == want.tolist()


@pytest.mark.parametrize("column, marker, message", [
    ("organic", "NA", "the DataFrame, row index 'w03', column 'organic': a missing or non-finite value"),
    ("weight", "nan", "the DataFrame, row index 'w03', column 'weight': a missing or non-finite value"),
    ("bottles", "", "the DataFrame, row index 'w03', column 'bottles': a missing or non-finite value"),
    ("region", "NA", "the DataFrame, row index 'w03', column 'region': a missing value"),
])
def test_a_missing_marker_written_as_text_is_a_missing_cell_as_in_a_csv_file(run, column, marker, message):
    text = run["new"].astype(str)
    text.loc["w03", column] = marker
    with pytest.raises(DataError, match=f"^{message}; predict needs every feature$"):
        run["loaded"].predict_file(text)
    text.reset_index(drop=True).to_csv(run["file"].with_name("marked.csv"), index=False)
    with pytest.raises(DataError, match="line 5, column '" + column):  # the file says so of the same cell
        run["loaded"].predict_file(run["file"].with_name("marked.csv"))


def test_text_that_is_no_number_nor_a_bool_word_is_refused_by_its_cell_as_in_a_csv_file(run):
    text = run["new"].astype(str)
    text.loc["w04", "weight"] = "heavy"
    with pytest.raises(DataError, match=r"^the DataFrame, row index 'w04', column 'weight': 'heavy' is not a number$"):
        run["loaded"].predict_file(text)
    text = run["new"].astype(str)
    text.loc["w04", "organic"] = "yes"  # not every cell a bool word: text, as a CSV file's column would be
    with pytest.raises(DataError, match=r"^the DataFrame, row index 'w00', column 'organic': 'True' is not a number$"):
        run["loaded"].predict_file(text)
    text.to_csv(run["file"].with_name("yes.csv"), index=False)
    with pytest.raises(DataError, match=r"line 2, column 'organic': 'True' is not a number$"):
        run["loaded"].predict_file(run["file"].with_name("yes.csv"))
