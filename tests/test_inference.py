"""trainlab.load_run and trainlab predict: class names, probabilities, original units, any working directory,
no re-reading of the training data."""

from __future__ import annotations

import importlib.util
import json
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import trainlab
import trainlab.experiment
from trainlab.cli import main
from trainlab.config import validate
from trainlab.errors import DataError
from trainlab.run_records import MODEL_RECORD

SPECIES = ["cat", "dog", "bird"]


def _classification_csv(path: Path, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weight = rng.normal(30, 10, n)  # raw scale: standardisation matters
    height = rng.normal(500, 100, n)
    colour = rng.choice(["red", "green", "blue"], n)
    label = np.where(weight > 35, "dog", np.where(colour == "red", "cat", "bird"))
    table = pd.DataFrame({"weight": weight, "height": height, "colour": colour, "species": label})
    table.to_csv(path, index=False)
    return table


def _regression_csv(path: Path, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n), rng.normal(10, 3, n)
    price = 20_000 + 5_000 * x1 + 800 * x2 + rng.normal(0, 50, n)  # far from unit scale
    table = pd.DataFrame({"x1": x1, "x2": x2, "price": price})
    table.to_csv(path, index=False)
    return table


def _train(tmp: Path, name: str, data: dict, loss: str, epochs: int, model: dict | None = None) -> Path:
    raw = {"name": name, "seed": 0, "data": data, "model": model or {"name": "mlp", "hidden": [16]},
           "strategy": {"loss": loss, "optimizer": {"name": "adam", "lr": 0.03}, "batch_size": 32, "epochs": epochs},
           "output": {"progress": "off", "checkpoint": {"every_seconds": None}}}
    config_path = tmp / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    out = tmp / f"run-{name}"
    trainlab.experiment.train(validate(raw), out=out, quiet=True)
    return out


def csv_runs(tmp: Path) -> dict:
    """Two finished CSV runs (classification of pets, linear regression of houses) whose training files are
    gone (predict must not need them), and new rows: ``new_pets`` (no label column), ``new_houses``."""
    _classification_csv(tmp / "pets.csv", 300, 0)
    _regression_csv(tmp / "houses.csv", 300, 1)
    classify = _train(tmp, "pets", {"source": "csv", "path": str(tmp / "pets.csv"), "target": "species"},
                      "cross_entropy", 15)
    regress = _train(tmp, "houses", {"source": "csv", "path": str(tmp / "houses.csv"), "target": "price",
                                     "standardize_target": True}, "mse", 20, {"name": "linear"})
    (tmp / "pets.csv").unlink()
    (tmp / "houses.csv").unlink()
    new_pets = _classification_csv(tmp / "new_pets.csv", 50, 7).drop(columns="species")
    new_pets.to_csv(tmp / "new_pets.csv", index=False)
    new_houses = _regression_csv(tmp / "new_houses.csv", 40, 8)
    return {"tmp": tmp, "classify": classify, "regress": regress, "new_pets": new_pets, "new_houses": new_houses}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return csv_runs(tmp_path_factory.mktemp("inference"))


def _reference_inputs(run: Path, table: pd.DataFrame) -> np.ndarray:
    """The model inputs, computed here from preprocessing.json: z-scored numbers, then one-hot categories."""
    fitted = json.loads((run / "preprocessing.json").read_text())
    numeric = (table[fitted["numeric_columns"]].to_numpy(np.float64) - np.array(fitted["mean"])) / np.array(fitted["scale"])
    blocks = [numeric]
    for column, categories in zip(fitted["categorical_columns"], fitted["categories"], strict=True):
        blocks.append(np.array([[value == c for c in categories] for value in table[column]], dtype=np.float64))
    return np.hstack(blocks).astype(np.float32)


def test_load_run_names_classes_and_predicts_without_the_training_data(runs):
    loaded = trainlab.load_run(runs["classify"])
    assert loaded.task == "multiclass" and loaded.class_names == sorted(SPECIES)
    assert not loaded.model.training
    x = _reference_inputs(runs["classify"], runs["new_pets"])
    import torch

    logits = loaded.model(torch.from_numpy(x)).detach().numpy().astype(np.float64)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(loaded.predict(x), logits.argmax(axis=1))
    np.testing.assert_allclose(loaded.predict_proba(x), softmax, rtol=1e-5, atol=1e-7)

    rows = loaded.predict_file(runs["tmp"] / "new_pets.csv", proba=True)
    assert list(rows.columns) == ["prediction", *sorted(SPECIES)] and len(rows) == 50
    assert list(rows["prediction"]) == [sorted(SPECIES)[i] for i in logits.argmax(axis=1)]
    np.testing.assert_allclose(rows[sorted(SPECIES)].to_numpy(), softmax, rtol=1e-5, atol=1e-7)
    truth = np.where(runs["new_pets"]["weight"] > 35, "dog", np.where(runs["new_pets"]["colour"] == "red", "cat", "bird"))
    assert (rows["prediction"].to_numpy() == truth).mean() > 0.8  # a trained model, not a random one


def test_regression_predictions_come_back_in_original_units(runs):
    loaded = trainlab.load_run(runs["regress"])
    table = runs["new_houses"]
    rows = loaded.predict_file(runs["tmp"] / "new_houses.csv")  # the target column present is ignored
    assert list(rows.columns) == ["prediction"]
    fitted = json.loads((runs["regress"] / "preprocessing.json").read_text())
    import torch

    standardised = loaded.model(torch.from_numpy(_reference_inputs(runs["regress"], table))).detach().numpy()[:, 0]
    expected = standardised * fitted["target"]["scale"][0] + fitted["target"]["mean"][0]
    np.testing.assert_allclose(rows["prediction"], expected, rtol=1e-5)
    residual = rows["prediction"] - table["price"]
    assert 1 - (residual**2).sum() / ((table["price"] - table["price"].mean())**2).sum() > 0.95  # R^2


def test_cli_predict_from_another_directory_writes_csv_or_prints_it(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(out), "--proba"]) == 0
    written = pd.read_csv(out)
    expected = trainlab.load_run(runs["classify"]).predict_file(runs["tmp"] / "new_pets.csv", proba=True)
    assert list(written["prediction"]) == list(expected["prediction"])
    np.testing.assert_allclose(written[sorted(SPECIES)], expected[sorted(SPECIES)], rtol=1e-6)
    capsys.readouterr()
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv")]) == 0
    printed = pd.read_csv(StringIO(capsys.readouterr().out))
    assert list(printed.columns) == ["prediction"] and list(printed["prediction"]) == list(expected["prediction"])


def test_without_model_json_the_run_is_rebuilt_from_its_data(runs, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(runs["regress"], run)
    (run / MODEL_RECORD).unlink()
    with pytest.raises(DataError, match=r"model.json is missing, though .*run.json records it"):
        trainlab.load_run(run)
    info = json.loads((run / "run.json").read_text())
    del info["records_sha256"]  # a run older than model.json and the digests
    (run / "run.json").write_text(json.dumps(info))
    _regression_csv(runs["tmp"] / "houses.csv", 300, 1)  # the rebuild reads the training data again
    try:
        rebuilt = trainlab.load_run(run).predict_file(runs["tmp"] / "new_houses.csv")
    finally:
        (runs["tmp"] / "houses.csv").unlink()
    direct = trainlab.load_run(runs["regress"]).predict_file(runs["tmp"] / "new_houses.csv")
    np.testing.assert_allclose(rebuilt["prediction"], direct["prediction"], rtol=1e-6)


def test_binary_and_multilabel_outputs(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 3))
    table = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "spam": np.where(x[:, 0] > 0, "yes", "no"),
                          "red": (x[:, 1] > 0).astype(int), "big": (x[:, 2] > 0).astype(int)})
    table.to_csv(tmp_path / "t.csv", index=False)
    binary = _train(tmp_path, "bin", {"source": "csv", "path": str(tmp_path / "t.csv"), "target": "spam",
                                      "features": ["a", "b", "c"]}, "bce", 20)
    multi = _train(tmp_path, "ml", {"source": "csv", "path": str(tmp_path / "t.csv"), "target": ["red", "big"],
                                    "features": ["a", "b", "c"]}, "bce", 20)
    rows = trainlab.load_run(binary).predict_file(tmp_path / "t.csv", proba=True)
    assert list(rows.columns) == ["prediction", "no", "yes"]
    np.testing.assert_allclose(rows["no"] + rows["yes"], 1.0, rtol=1e-6)
    assert ((rows["yes"] > 0.5) == (rows["prediction"] == "yes")).all()
    assert (rows["prediction"] == table["spam"]).mean() > 0.9
    labels = trainlab.load_run(multi).predict_file(tmp_path / "t.csv", proba=True)
    assert list(labels.columns) == ["red", "big", "proba_red", "proba_big"]
    assert set(np.unique(labels[["red", "big"]])) <= {0, 1}
    assert ((labels["proba_red"] > 0.5).astype(int) == labels["red"]).all()
    assert (labels["red"] == table["red"]).mean() > 0.85


def test_predict_errors_are_one_line(runs, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    runs["new_pets"].drop(columns="height").to_csv(bad, index=False)
    assert main(["predict", str(runs["classify"]), str(bad)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no feature column 'height'" in err and len(err.strip().splitlines()) == 1
    assert main(["predict", str(tmp_path), str(bad)]) != 0
    assert "not a trainlab run folder" in capsys.readouterr().err
    assert main(["predict", str(runs["regress"]), str(runs["tmp"] / "new_houses.csv"), "--proba"]) == 2  # usage, not data
    assert "--proba applies to classification" in capsys.readouterr().err


def test_image_folder_run_predicts_a_folder_of_images(tmp_path, monkeypatch, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in (("dark", 40), ("bright", 210)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(24):
            pixels = np.clip(rng.normal(level, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "images" / label / f"{i}.png")
    (tmp_path / "new" / "sub").mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 230, np.uint8)).save(tmp_path / "new" / "a.png")  # another size: resized
    Image.fromarray(np.full((8, 8, 3), 30, np.uint8)).save(tmp_path / "new" / "sub" / "b.jpg")
    run = _train(tmp_path, "img", {"source": "image_folder", "path": str(tmp_path / "images"), "workers": 0},
                 "cross_entropy", 10, {"name": "mlp", "hidden": [8]})
    record = json.loads((run / MODEL_RECORD).read_text())
    assert record["normalize"] is not None and record["eval_transform"] is False  # no rebuild from the images
    shutil.rmtree(tmp_path / "images")
    (tmp_path / "new" / "README.txt").write_text("my photos")  # not an image: skipped, and said so
    (tmp_path / "new" / ".DS_Store").write_text("x")  # hidden: skipped silently
    rows = trainlab.load_run(run).predict_file(tmp_path / "new", proba=True)
    assert list(rows.columns) == ["file", "prediction", "bright", "dark"]
    assert list(rows["file"]) == ["a.png", "sub/b.jpg"] and list(rows["prediction"]) == ["bright", "dark"]
    err = capsys.readouterr().err
    assert "predict skips 1 file(s) under" in err and "(e.g. README.txt); no row is written for them" in err
    one = trainlab.load_run(run).predict_file(tmp_path / "new" / "sub" / "b.jpg")  # one image: a folder of one
    assert one.to_dict("list") == {"file": ["b.jpg"], "prediction": ["dark"]}


def test_text_run_predicts_a_tsv_with_its_own_vocabulary(tmp_path, monkeypatch, capsys):
    good, bad = ["great fun film", "lovely acting", "a great story"], ["dull boring film", "awful plot", "boring"]
    lines = ["sentence\tlabel"] + [f"{good[i % 3]}\tpos" if i % 2 else f"{bad[i % 3]}\tneg" for i in range(120)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "new.tsv").write_text("sentence\nwhat a great lovely film\nboring and awful\n")
    run = _train(tmp_path, "txt", {"source": "text_tsv", "train": str(tmp_path / "train.tsv"), "max_length": 8,
                                   "vocab_size": 50},
                 "cross_entropy", 10, {"name": "transformer_encoder", "d_model": 16, "heads": 2, "layers": 1})
    (tmp_path / "train.tsv").unlink()
    loaded = trainlab.load_run(run)
    rows = loaded.predict_file(tmp_path / "new.tsv")
    assert list(rows["prediction"]) == ["pos", "neg"]
    # from Python: a list of strings, a Series, a DataFrame with the text column; one row per text
    texts = ["what a great lovely film", "boring and awful", ""]
    indices = loaded.predict(texts)
    assert [loaded.class_names[i] for i in indices[:2]] == ["pos", "neg"] and len(indices) == 3
    np.testing.assert_array_equal(loaded.predict(pd.Series(texts)), indices)
    table = loaded.predict_file(pd.DataFrame({"sentence": texts[:2]}), proba=True)
    assert list(table["prediction"]) == ["pos", "neg"] and list(table.columns) == ["prediction", "neg", "pos"]
    with pytest.raises(trainlab.errors.DataError, match="the DataFrame needs the text column 'sentence'"):
        loaded.predict(pd.DataFrame({"text": texts}))
    # the wrong column, through the CLI: the hint names what the file must hold, not a --set predict lacks
    (tmp_path / "other.tsv").write_text("text\nwhat a great lovely film\n")
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "other.tsv")]) == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: text file {tmp_path / 'other.tsv'}: the input needs a column named 'sentence' "
                     "(this run's data.text_column), tab-separated; got columns: 'text'"]
    (tmp_path / "other.tsv").write_text("Sentence\nwhat a great lovely film\n")  # a user trial: no hint for this
    assert main(["predict", str(run), str(tmp_path / "other.tsv")]) == 3
    assert capsys.readouterr().err.strip().endswith("got columns: 'Sentence'; rename its column 'Sentence' to 'sentence'")
    with pytest.raises(trainlab.errors.DataError, match="got columns: Sentence; did you mean 'Sentence'"):
        loaded.predict(pd.DataFrame({"Sentence": texts}))
    # an .npz is a zip by its first bytes: it was told to "unzip it first"
    np.savez(tmp_path / "rows.npz", x=np.zeros((2, 8), dtype=np.float32))
    assert main(["predict", str(run), str(tmp_path / "rows.npz")]) == 3
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: rows.npz: a run trained on data source 'text_tsv' predicts from a tab-separated text file with a "
        "header row and a column named 'sentence' (this run's data.text_column), one text per row, not from an .npz"]


@pytest.mark.parametrize("source, header, fragments", [
    ("text_tsv", "text", ["column named 'sentence' (this run's data.text_column), tab-separated; "
                          "got columns: 'text'"]),
    ("text_tsv", "sentence,label", ["got columns: 'sentence,label'; the file looks comma-separated: "
                                    "save it tab-separated"]),
    ("text_tsv", "sentence;label", ["the file looks semicolon-separated"]),
    ("text_csv", "text\tlabel", ["column named 'text' (this run's data.text_column), comma-separated; "
                                  "got columns: 'text\\tlabel'; the file looks tab-separated: save it comma-separated"]),
])
def test_predict_text_input_without_the_runs_text_column(tmp_path, source, header, fragments):
    from trainlab.data.predict_media import read_texts
    from trainlab.errors import DataError

    file = tmp_path / "new.txt"
    file.write_text(f"{header}\na b\n")
    with pytest.raises(DataError) as caught:
        read_texts(file, source, {}, {"tokenizer": "word", "vocab": ["<pad>", "<unk>", "a"], "max_length": 4})
    message = str(caught.value)
    assert "set data.text_column" not in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_predict_text_input_reads_the_runs_own_text_column(tmp_path):
    from trainlab.data.predict_media import read_texts

    file = tmp_path / "new.tsv"
    file.write_text("id\tbody\n1\ta b\n")
    ids = read_texts(file, "text_tsv", {"text_column": "body"},
                     {"tokenizer": "word", "vocab": ["<pad>", "<unk>", "a"], "max_length": 4})
    assert ids.shape == (1, 4)


def test_load_run_leaves_the_callers_random_state_alone(runs):
    import torch

    torch.manual_seed(123)
    np.random.seed(123)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(123)
    np.random.seed(123)
    trainlab.load_run(runs["classify"])
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])


# --------------------------------------------------------------------------- predict's inputs: arrays


def test_predict_checks_rows_against_the_runs_input_shape(runs):
    from trainlab.errors import DataError

    loaded = trainlab.load_run(runs["classify"])
    x = loaded.read(runs["tmp"] / "new_pets.csv").numpy()  # 2 numeric + 3 one-hot colour columns
    assert loaded.input_shape == (5,)
    with pytest.raises(DataError) as caught:
        loaded.predict(x[:, :4])
    assert str(caught.value) == ("predict: rows are shaped (4,) but the run was trained on (5,); "
                                 "pass an array shaped (N, 5)")
    for bad in (x[0, :4], x[None]):
        with pytest.raises(DataError, match=r"the run takes one row shaped \(5,\) or N rows shaped \(N, 5\)"):
            loaded.predict(bad)
    # one row without the batch axis is one row, as x[:1] is
    np.testing.assert_array_equal(loaded.predict(x[0]), loaded.predict(x[:1]))
    np.testing.assert_allclose(loaded.predict_proba(x[0]), loaded.predict_proba(x[:1]))
    assert loaded.predict(x[0]).shape == (1,)


def test_predict_converts_numbers_to_the_dtype_the_model_takes(runs):
    import torch

    loaded = trainlab.load_run(runs["classify"])
    x = loaded.read(runs["tmp"] / "new_pets.csv").numpy()
    expected = loaded.predict(x)
    rounded = np.round(x).astype(np.int64)  # integer features: float32 for this model, as in training
    np.testing.assert_array_equal(loaded.predict(rounded), loaded.predict(rounded.astype(np.float32)))
    np.testing.assert_array_equal(loaded.predict(x.astype(np.float64)), expected)
    np.testing.assert_array_equal(loaded.predict(x.tolist()), expected)
    # an object array of numbers (df.to_numpy() gives one whenever the frame has a text column)
    np.testing.assert_array_equal(loaded.predict(x.astype(object)), expected)
    np.testing.assert_array_equal(loaded.predict(np.array([[1, 2.5, True, np.float32(0), np.int64(1)]], object)),
                                  loaded.predict(np.array([[1, 2.5, 1, 0, 1]], np.float32)))
    np.testing.assert_array_equal(loaded.predict(torch.from_numpy(x).double().requires_grad_()), expected)
    assert loaded.predict(x > 0).shape == (len(x),)  # booleans are numbers too


def test_predict_on_zero_rows_returns_an_empty_result(runs):
    loaded = trainlab.load_run(runs["classify"])
    for empty in (np.zeros((0, 5), np.float32), []):
        predicted = loaded.predict(empty)
        assert predicted.shape == (0,) and predicted.dtype == np.int64
    assert loaded.predict_proba(np.zeros((0, 5))).shape == (0, 3)
    assert trainlab.load_run(runs["regress"]).predict(np.zeros((0, 2))).shape == (0,)


@pytest.mark.parametrize("rows, message", [
    ([[0.0] * 5, [np.nan] * 5], "predict: row 1 holds nan (as float32); the model takes finite numbers"),
    ([[0.0] * 5, [0.0] * 4 + [-1e39]], "predict: row 1: -1e+39 is beyond float32's range (about ±3.4e38)"),
    ([[0.0] * 5, [1.0] * 4], "all of one length; this list does not make one array"),
    ([["red"] * 5], "got values of dtype <U3 such as 'red': for a run trained on a CSV pass a pandas DataFrame"),
    (np.array([[0.5, 1.0, 2.0, 0, "red"]], dtype=object),  # was AttributeError: 'float' object has no attribute 'item'
     "got values of dtype object such as 'red': for a run trained on a CSV pass a pandas DataFrame"),
    (np.array([], dtype=str), "got values of dtype <U1 (none: it is empty): for a run trained on a CSV"),  # not "such as None"
    (3.0, "got a scalar"),
])
def test_predict_refuses_values_the_model_cannot_take_in_one_line(runs, rows, message):
    from trainlab.errors import DataError

    with pytest.raises(DataError) as caught:
        trainlab.load_run(runs["classify"]).predict(rows)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_model_rows_keeps_integer_inputs_whole_and_in_range():
    import torch

    from trainlab.data.predict_input import model_rows
    from trainlab.errors import DataError

    ids = model_rows(np.array([[1.0, 4.0, 0.0]]), (3,), "int64", vocab_size=5)
    assert ids.dtype == torch.int64 and ids.tolist() == [[1, 4, 0]]
    assert model_rows(np.array([3, 1], np.int32), (2,), "int64").dtype == torch.int64  # one row of ids
    with pytest.raises(DataError, match=r"row 1 holds 0.5, not a whole number; this run's model takes int64"):
        model_rows([[1, 2, 3], [0.5, 1, 1]], (3,), "int64", vocab_size=5)
    with pytest.raises(DataError, match=r"row 0 holds 7; this run's model takes token ids from 0 to 4 "
                                        r"\(vocabulary size 5\)"):
        model_rows([[1, 7, 3]], (3,), "int64", vocab_size=5)
    with pytest.raises(DataError, match=r"row 0 holds 300; this run's model takes uint8 inputs, as its training "
                                        r"rows were \(0 to 255\)"):
        model_rows(np.array([[[300]]]), (1, 1), "uint8")


def test_text_run_predicts_token_ids_of_any_integer_or_whole_float_dtype(tmp_path, monkeypatch):
    from trainlab.errors import DataError

    lines = ["sentence\tlabel"] + [f"good film {i % 5}\tpos" if i % 2 else f"bad film {i % 5}\tneg" for i in range(40)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "new.tsv").write_text("sentence\ngood film\nbad film\n")
    run = _train(tmp_path, "tokens", {"source": "text_tsv", "train": str(tmp_path / "train.tsv"), "max_length": 4},
                 "cross_entropy", 1, {"name": "transformer_encoder", "d_model": 8, "heads": 1, "layers": 1})
    loaded = trainlab.load_run(run)
    ids = loaded.read(tmp_path / "new.tsv")
    assert loaded.input_dtype == "int64" and not ids.is_floating_point()
    expected = loaded.predict(ids)
    np.testing.assert_array_equal(loaded.predict(ids.numpy().astype(np.float64)), expected)
    np.testing.assert_array_equal(loaded.predict(ids.numpy().astype(np.int32).tolist()), expected)
    with pytest.raises(DataError, match=f"token ids from 0 to {loaded.vocab_size - 1}"):
        loaded.predict(np.full((1, 4), loaded.vocab_size))
    with pytest.raises(DataError) as caught:  # neither texts nor ids of the run's length: texts are named
        loaded.predict([1, 2, 3])
    assert str(caught.value) == ("predict: got an input shaped (3,); a text run takes texts (a list of strings, a "
                                 "pandas Series, or a DataFrame with the text column), or token ids shaped (N, 4)")


# --------------------------------------------------------------------------- predict's inputs: DataFrames


def test_read_takes_a_dataframe_like_the_training_csv(runs, tmp_path):
    loaded = trainlab.load_run(runs["classify"])
    table = _classification_csv(tmp_path / "with_target.csv", 30, 11)  # the target column is there
    from_csv = loaded.read(tmp_path / "with_target.csv")
    shuffled = table[["species", "colour", "height", "weight"]].set_index(np.arange(100, 130))
    torch_rows = loaded.read(shuffled)
    np.testing.assert_array_equal(torch_rows.numpy(), from_csv.numpy())
    np.testing.assert_array_equal(loaded.predict(shuffled), loaded.predict(from_csv))
    np.testing.assert_allclose(loaded.predict_proba(shuffled), loaded.predict_proba(from_csv))
    np.testing.assert_array_equal(loaded.predict(table.iloc[3]), loaded.predict(from_csv[3:4]))  # a Series: a row
    rows = loaded.predict_file(shuffled, proba=True)
    expected = loaded.predict_file(tmp_path / "with_target.csv", proba=True)
    assert list(rows.index) == list(range(100, 130))  # the DataFrame's own index, to join on
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), expected)
    assert loaded.predict(table.iloc[:0]).shape == (0,)


def test_predict_takes_a_dataframe_of_raw_columns_in_original_units(runs):
    loaded = trainlab.load_run(runs["regress"])
    table = runs["new_houses"]
    expected = loaded.predict_file(runs["tmp"] / "new_houses.csv")["prediction"].to_numpy()
    np.testing.assert_allclose(loaded.predict(table.drop(columns="price")), expected, rtol=1e-6)
    raw = table[["x1", "x2"]].to_numpy()  # arrays are model inputs: the raw columns are not standardised
    assert not np.allclose(loaded.predict(raw), expected, rtol=1e-3)


@pytest.mark.parametrize("change, message", [
    # 'weight' is there as itself: no did-you-mean offers a column the run already reads
    (lambda t: t.drop(columns="height"), "the DataFrame has no feature column 'height'; "
                                         "the run was trained on columns weight, height, colour"),
    (lambda t: t.rename(columns={"height": "heigth"}), "the DataFrame has no feature column 'height'; did you mean "
                                                       "'heigth'?; the run was trained on columns weight, height, colour"),
    (lambda t: t.assign(weight=t["weight"].astype(object).where(t.index != 4, "heavy")),
     "the DataFrame, row index 4, column 'weight': 'heavy' is not a number"),
    (lambda t: t.assign(weight=t["weight"].astype(object).where(t.index != 4, "1\n2")).set_index(t.index + 100),
     "the DataFrame, row index 104, column 'weight': '1\\n2' is not a number"),  # one line; not np.int64(104)
    (lambda t: t.assign(height=t["height"].where(t.index != 2)),
     "the DataFrame, row index 2, column 'height': a missing or non-finite value; predict needs every feature"),
])
def test_dataframe_errors_name_the_column_and_row(runs, change, message):
    from trainlab.errors import DataError

    with pytest.raises(DataError) as caught:
        trainlab.load_run(runs["classify"]).predict(change(runs["new_pets"]))
    assert str(caught.value) == message


def test_a_missing_columns_did_you_mean_is_never_the_runs_target_column():
    """User trial: a diabetes run's predict on another CSV said "no feature column 'age'; did you mean
    'target'?": the target column, which predict ignores."""
    from trainlab.data.predict_input import _missing_column, _target_columns

    have, wanted = ["target", "sex", "bmi"], ["age", "sex", "bmi"]
    assert str(_missing_column("age", "f.csv", have, wanted, _target_columns({"target": "target"}))) == (
        "f.csv has no feature column 'age'; the run was trained on columns age, sex, bmi")
    assert "did you mean 'target'?" in str(_missing_column("age", "f.csv", have, wanted, set()))  # difflib: 0.67
    assert _target_columns({"target": ["y1", "y2"]}) == {"y1", "y2"} and _target_columns({}) == set()


def test_a_dataframe_for_a_run_not_trained_on_a_csv_is_refused_in_one_line():
    from trainlab.data.predict_input import read_for_predict
    from trainlab.errors import DataError

    fitted = {"source": "npz", "numeric_columns": None, "input_shape": [2]}
    with pytest.raises(DataError, match=r"a DataFrame holds the raw columns of a run trained on a CSV; this run's "
                                        r"data source is 'npz': pass predict\(\) its rows as an array"):
        read_for_predict({"source": "npz"}, fitted, pd.DataFrame({"a": [1.0], "b": [2.0]}))


def test_a_dataframe_category_column_of_whole_floats_reads_as_the_csv_wrote_it():
    """An int category column with a missing cell is float in pandas (1.0); a CSV had '1': the same text."""
    from trainlab.data.csv_table import CsvTable, strings
    from trainlab.data.predict_input import _category_cells

    frame = pd.DataFrame({"zip": _category_cells(pd.Series([1.0, np.nan, 20.0])),
                          "code": _category_cells(pd.Series([1.5, 2.0, np.nan]))})
    table = CsvTable(Path("frame"), ["zip", "code"], ",", frame)
    assert strings(table, "zip").tolist() == ["1", "", "20"]
    assert strings(table, "code").tolist() == ["1.5", "2.0", ""]  # not whole: left as pandas writes it


@pytest.mark.parametrize(("loss", "reading"), [
    ({"name": "poisson_nll", "log_input": True}, torch.exp),  # the model outputs log lambda: the rate is exp
    ({"name": "gaussian_nll"}, lambda output: output[:, :1]),  # means and variances: the mean is the prediction
])
def test_regression_predict_reads_outputs_as_the_loss_and_the_metrics_do(tmp_path, loss, reading):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = rng.poisson(np.exp(0.5 * x[:, 0] + 1.0)).astype(np.float32)
    np.savez(tmp_path / "counts.npz", x=x, y=y)
    config = {"name": "counts", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "counts.npz"),
                                                     "task": "regression"},
              "model": {"name": "linear"}, "strategy": {"loss": loss, "optimizer": {"name": "adam", "lr": 0.05},
                                                        "batch_size": 50, "epochs": 3},
              "output": {"progress": "off"}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    run = trainlab.load_run(tmp_path / "run")
    with torch.no_grad():
        expected = reading(run.model(torch.from_numpy(x[:5]))).reshape(5).numpy()
    np.testing.assert_allclose(run.predict(x[:5]), expected, rtol=1e-5)


def test_an_idx_run_reads_one_channel_images_stored_h_w_and_names_what_it_reads(tmp_path):
    from trainlab.data.predict_input import read_for_predict
    from trainlab.errors import DataError

    fitted = {"format": 1, "source": "idx", "task": "multiclass", "class_names": None, "input_shape": [1, 3, 2],
              "numeric_columns": None, "standardize": False, "mean": None, "scale": None, "constant_columns": [],
              "categorical_columns": [], "categories": [], "target": None}
    images = np.arange(4 * 3 * 2, dtype=np.uint8).reshape(4, 3, 2)  # (N, H, W) as IDX stores them
    np.savez(tmp_path / "x.npz", x=images)
    rows = read_for_predict({"source": "idx"}, fitted, tmp_path / "x.npz")
    assert tuple(rows.shape) == (4, 1, 3, 2) and torch.equal(rows[:, 0], torch.from_numpy(images))
    with pytest.raises(DataError, match=r"the input '.*' is a folder, not a file.*expected a .npz of images shaped "
                                        r"\(N, C, H, W\) or \(N, H, W\)"):
        read_for_predict({"source": "idx"}, fitted, tmp_path)
    with pytest.raises(DataError, match=r"rows are shaped \(3, 2\) but the run was trained on \(6,\); reshape them "
                                        r"with x.reshape\(len\(x\), -1\)"):
        read_for_predict({"source": "idx"}, {**fitted, "input_shape": [6]}, tmp_path / "x.npz")


@pytest.mark.parametrize("shape, input_shape, rows", [
    ((5, 6), (6,), (5, 6)), ((6,), (6,), (1, 6)), ((0,), (6,), (0, 6)),
    ((5, 3, 4, 4), (3, 4, 4), (5, 3, 4, 4)), ((3, 4, 4), (3, 4, 4), (1, 3, 4, 4)),
    ((5, 1, 28, 28), (1, 28, 28), (5, 1, 28, 28)), ((1, 28, 28), (1, 28, 28), (1, 1, 28, 28)),
    ((5, 28, 28), (1, 28, 28), (5, 1, 28, 28)), ((28, 28), (1, 28, 28), (1, 1, 28, 28)),
    ((0, 28, 28), (1, 28, 28), (0, 1, 28, 28)), ((6, 5), (1, 6, 5), (1, 1, 6, 5)),
    # refused: a 2-D array that is not the run's own (H, W), channel-less images of a 3-channel run
    ((6, 5), (1, 5, 6), None), ((5, 28), (1, 28, 28), None), ((28,), (1, 28, 28), None),
    ((4, 4), (3, 4, 4), None), ((5, 4, 4), (3, 4, 4), None), ((2, 5, 6), (6,), None),
])
def test_rows_shape_is_the_one_rule_for_the_shapes_predict_takes(shape, input_shape, rows):
    from trainlab.data.predict_shapes import rows_shape

    assert rows_shape(shape, input_shape) == rows


@pytest.mark.parametrize("shape, input_shape, message", [
    ((5, 28), (1, 28, 28), "predict: got an input shaped (5, 28); the run takes one image shaped (1, 28, 28) or "
                           "(28, 28); N images shaped (N, 1, 28, 28) or (N, 28, 28)"),
    ((5, 3, 28, 28), (1, 28, 28), "predict: rows are shaped (3, 28, 28) but the run was trained on (1, 28, 28); "
                                  "pass N images shaped (N, 1, 28, 28) or (N, 28, 28)"),
    ((4, 4), (3, 4, 4), "predict: got an input shaped (4, 4); the run takes one image shaped (3, 4, 4); N images "
                        "shaped (N, 3, 4, 4)"),
    ((5, 4), (5,), "predict: rows are shaped (4,) but the run was trained on (5,); pass an array shaped (N, 5)"),
    ((2, 3, 2), (6,), "predict: rows are shaped (3, 2) but the run was trained on (6,); reshape them with "
                      "x.reshape(len(x), -1) (flattened as in training)"),
    ((5,), (1,), "predict: got an input shaped (5,); the run takes one row shaped (1,) or N rows shaped (N, 1); "
                 "for N rows of one feature pass x.reshape(-1, 1)"),
    # np.asarray(PIL image) and Keras' arrays hold their channels last
    ((32, 24, 3), (3, 32, 24), "predict: got one image shaped (32, 24, 3), its channels last (H, W, C) as PIL and "
                               "Keras store images; the run takes them channels first (3, 32, 24): pass "
                               "x.transpose(2, 0, 1)"),
    ((7, 32, 24, 3), (3, 32, 24), "predict: rows are shaped (32, 24, 3) but the run was trained on (3, 32, 24); they "
                                  "are images with their channels last (N, H, W, C), as PIL and Keras store them: "
                                  "pass x.transpose(0, 3, 1, 2)"),
])
def test_shape_error_names_the_shapes_the_run_takes(shape, input_shape, message):
    from trainlab.data.predict_shapes import shape_error

    assert str(shape_error("predict", shape, input_shape)) == message


def test_cli_and_python_predict_take_the_same_shapes_of_one_channel_images(tmp_path, capsys):
    """An IDX run (input (1, 6, 5)): `trainlab predict` took (N, H, W) but read one (H, W) image as 6 rows of 5
    values; load_run(...).predict refused both. Both now take the same shapes, by one rule (rows_shape)."""
    from tests.test_data_readers import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 6, 5), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 3)
    run_dir = _train(tmp_path, "idx", {"source": "idx", "path": str(tmp_path)}, "cross_entropy", 1)
    run = trainlab.load_run(run_dir)
    assert run.input_shape == (1, 6, 5)
    images = rng.integers(0, 256, (4, 6, 5), dtype=np.uint8)
    expected = run.predict(images[:, None])  # (N, C, H, W): taken before too
    for x, want in ((images, expected), (images[0], expected[:1]), (images[:1, None][0], expected[:1])):
        np.testing.assert_array_equal(run.predict(x), want)
        np.savez(tmp_path / "new.npz", x=x)
        assert main(["predict", str(run_dir), str(tmp_path / "new.npz")]) == 0
        assert capsys.readouterr().out.split() == ["prediction", *(str(int(i)) for i in want)]
    bad = images[:, :, :4]  # (4, 6, 4): the same one line from both, naming the shapes taken
    taken = ("got an input shaped (4, 6, 4); the run takes one image shaped (1, 6, 5) or (6, 5); N images shaped "
             "(N, 1, 6, 5) or (N, 6, 5)")
    with pytest.raises(DataError) as caught:
        run.predict(bad)
    assert str(caught.value) == f"predict: {taken}"
    np.savez(tmp_path / "bad.npz", x=bad)
    assert main(["predict", str(run_dir), str(tmp_path / "bad.npz")]) == 3
    assert capsys.readouterr().err.strip() == f"error: npz file {tmp_path / 'bad.npz'}: {taken}"
    with pytest.raises(DataError, match=r"got an input shaped \(5, 6\); the run takes one image shaped"):
        run.predict(images[0].T)  # (W, H): a 2-D array is one image only when it is the run's own (H, W)


def test_a_header_only_csv_predicts_zero_rows_with_the_usual_columns(runs, tmp_path, capsys):
    header_only = tmp_path / "none.csv"
    runs["new_pets"].iloc[:0].to_csv(header_only, index=False)
    assert header_only.read_text().strip() == "weight,height,colour"
    rows = trainlab.load_run(runs["classify"]).predict_file(header_only, proba=True)
    assert len(rows) == 0 and list(rows.columns) == ["prediction", *sorted(SPECIES)]
    capsys.readouterr()
    assert main(["predict", str(runs["classify"]), str(header_only)]) == 0
    assert capsys.readouterr().out.strip() == "prediction"


def test_several_regression_targets_predict_one_column_named_by_each_target(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    table = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "rent": 2 * x[:, 0], "tax": x[:, 1] - x[:, 0]})
    table.to_csv(tmp_path / "two.csv", index=False)
    run = _train(tmp_path, "two", {"source": "csv", "path": str(tmp_path / "two.csv"), "target": ["rent", "tax"]},
                 "mse", 30, {"name": "linear"})
    rows = trainlab.load_run(run).predict_file(table)
    assert list(rows.columns) == ["prediction_rent", "prediction_tax"]
    assert np.corrcoef(rows["prediction_rent"], table["rent"])[0, 1] > 0.95  # each column is its own target
    assert np.corrcoef(rows["prediction_tax"], table["tax"])[0, 1] > 0.95


def test_cli_predict_creates_the_output_folder_and_a_write_error_names_the_users_file(runs, tmp_path, capsys):
    out = tmp_path / "new" / "sub" / "p.csv"
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(out)]) == 0
    assert out.read_text().startswith("prediction\n")
    (tmp_path / "a_file").write_text("x")
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o",
                 str(tmp_path / "a_file" / "p.csv")]) == 2  # a path through a file: the path's fault
    assert (f"error: output path '{tmp_path / 'a_file' / 'p.csv'}': '{tmp_path / 'a_file'}' is a file, not a folder"
            in capsys.readouterr().err)
    from trainlab.atomic import write_text

    with pytest.raises(FileNotFoundError) as caught:
        write_text(tmp_path / "absent" / "x.csv", "a")
    assert caught.value.filename == str(tmp_path / "absent" / "x.csv")  # not the hidden temporary beside it
    assert "its folder does not exist" in str(caught.value)


def test_a_changed_model_file_is_refused_by_eval_predict_and_report_and_an_old_run_still_loads(runs, tmp_path, capsys):
    import hashlib

    run = tmp_path / "pets"
    shutil.copytree(runs["classify"], run)
    weights = run / "model.safetensors"
    info = json.loads((run / "run.json").read_text())
    assert info["model_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()  # vouched for by run.json
    assert main(["predict", str(run), str(runs["tmp"] / "new_pets.csv")]) == 0
    capsys.readouterr()

    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x40  # a flipped bit in the last float: still valid safetensors, another model
    weights.write_bytes(bytes(data))
    for argv in (["eval", str(run)], ["predict", str(run), str(runs["tmp"] / "new_pets.csv")]):  # eval: before the data
        assert main(argv) == 3
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err and "SHA-256" in err and "model_sha256" in err, err
    from trainlab.report.predictions import Unavailable, load_predictions

    assert isinstance(load_predictions(run), Unavailable)  # the report says why instead of drawing another model

    for damaged in ('{"format": 1, "model_sha', json.dumps({**info, "model_sha256": None})):
        (run / "run.json").write_text(damaged)  # a check that cannot be made is not skipped
        assert main(["predict", str(run), str(runs["tmp"] / "new_pets.csv")]) == 3
        err = capsys.readouterr().err
        assert err.startswith("error:") and ("cannot read" in err or "not a SHA-256 hex digest" in err), err
    del info["model_sha256"]  # a run written before the digest existed loads as it did
    (run / "run.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert trainlab.load_run(run).predict(np.zeros((1, 5), np.float32)).shape == (1,)
    assert "warning" not in capsys.readouterr().err
    (run / "run.json").unlink()  # a run folder that lost its record: loads, and says the check was not made
    assert main(["predict", str(run), str(runs["tmp"] / "new_pets.csv")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {run / 'run.json'} is missing: {weights} is loaded without the check of its "
                        "SHA-256 that run.json records, so a damaged file would go unnoticed"], warnings


def test_eval_refuses_class_names_changed_after_training_as_predict_does(runs, tmp_path, capsys):
    """eval printed the run's per-class numbers under the names of a labels.json edited after training."""
    run = tmp_path / "pets"
    shutil.copytree(runs["classify"], run)
    labels = json.loads((run / "labels.json").read_text())
    labels["class_names"] = labels["class_names"][::-1]  # same count, valid JSON: other names on the rows
    (run / "labels.json").write_text(json.dumps(labels))
    for argv in (["eval", str(run)], ["predict", str(run), str(runs["tmp"] / "new_pets.csv")]):  # eval: before the data
        assert main(argv) == 3
        err = capsys.readouterr().err
        assert err.startswith(f"error: {run / 'labels.json'} was changed after training (its SHA-256 is not the one ") \
            and err.count("\n") == 1, err


def test_a_config_yaml_changed_after_training_is_refused_by_eval_predict_and_report(runs, tmp_path, capsys):
    import yaml

    run = tmp_path / "pets"
    shutil.copytree(runs["classify"], run)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text("# reformatted\n" + yaml.safe_dump(stored, sort_keys=True))  # same settings
    new_rows = str(runs["tmp"] / "new_pets.csv")
    assert main(["predict", str(run), new_rows]) == 0  # (the training data is gone: eval could not run)
    capsys.readouterr()
    stored["data"]["val_fraction"] = 0.3  # another split: eval reported its numbers as the run's
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    for argv in (["eval", str(run), "--split", "val"], ["predict", str(run), new_rows]):  # eval: before the data
        assert main(argv) == 3
        err = capsys.readouterr().err
        assert err.startswith(f"error: {run / 'config.yaml'} was changed after training (its config hash ") \
            and "recorded in" in err and err.count("\n") == 1, err
    from trainlab.report.predictions import Unavailable, load_predictions

    assert isinstance(load_predictions(run), Unavailable)
    info = json.loads((run / "run.json").read_text())
    del info["resolved_config_hash"]  # a run older than the record loads as it did
    (run / "run.json").write_text(json.dumps(info))
    assert main(["predict", str(run), new_rows]) == 0


@pytest.mark.parametrize("source, text", [("text_tsv", "sentence\nawful\n\ngreat\n\n\n"),
                                          ("text_csv", "text\nawful\n\n\"\"\ngreat\n\n")])
def test_predict_text_keeps_an_empty_line_as_an_empty_text_so_rows_stay_aligned(tmp_path, source, text):
    from trainlab.data.predict_media import read_texts

    file = tmp_path / "new.txt"
    file.write_text(text)
    vocab = {"tokenizer": "word", "vocab": ["<pad>", "<unk>", "awful", "great"], "max_length": 3}
    ids = read_texts(file, source, {}, vocab)
    rows = [line for line in text.split("\n")[1:]]
    while rows and rows[-1] == "":  # the trailing newlines end the file; they are no rows
        rows.pop()
    assert ids.shape == (len(rows), 3)
    first = {"awful": 2, "great": 3}
    assert [int(row[0]) for row in ids] == [first.get(r.strip('"'), 0) for r in rows]  # empty: all padding


def test_a_transposed_idx_run_says_how_predict_takes_its_rows(tmp_path, capsys):
    from tests.test_data_readers import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 6, 6), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n, dtype=np.uint8) % 3)
    run = _train(tmp_path, "emnist", {"source": "idx", "path": str(tmp_path), "transpose": True}, "cross_entropy", 1)
    np.savez(tmp_path / "rows.npz", x=rng.integers(0, 256, (4, 1, 6, 6), dtype=np.uint8))
    capsys.readouterr()
    assert len(trainlab.load_run(run).predict_file(tmp_path / "rows.npz")) == 4
    assert ("this run trained on IDX images transposed (data.transpose): predict takes rows as the model saw "
            "them, already transposed") in capsys.readouterr().err


@pytest.mark.parametrize("file, change, message", [
    ("labels.json", lambda r: {**r, "class_names": 5},  # the fuzzer's: TypeError 'int' object is not iterable, exit 4
     "labels.json: 'class_names' is 5, not a list of class names (strings); the file was changed or damaged"),
    ("labels.json", lambda r: [1, 2], "labels.json holds list [1, 2], not a JSON object"),
    ("labels.json", lambda r: {**r, "class_names": ["cat", "dog"]}, "labels.json names 2 classes but the model has 3"),
    ("model.json", lambda r: {**r, "input_shape": "5"}, "model.json: 'input_shape' is '5', not a list of whole numbers"),
    ("model.json", lambda r: {k: v for k, v in r.items() if k != "output_dim"}, "model.json has no 'output_dim'"),
    ("model.json", lambda r: {**r, "model": ["mlp"]}, "model.json: 'model' is ['mlp'], not a model spec with a name"),
    ("preprocessing.json", lambda r: {**r, "mean": "x"}, "preprocessing.json: 'mean' is 'x', not a list of numbers"),
    ("preprocessing.json", lambda r: {**r, "mean": r["mean"][:1]},
     "preprocessing.json: 'mean' and 'scale' must give one number per numeric column (2)"),
    ("preprocessing.json", lambda r: {**r, "categories": []},
     "preprocessing.json: 'categories' must hold one list per categorical column (1); got 0"),
])
def test_a_run_record_of_the_wrong_json_types_is_one_data_error_naming_the_file(runs, tmp_path, file, change,
                                                                                message):
    from trainlab.errors import DataError

    run = tmp_path / "run"
    shutil.copytree(runs["classify"], run)
    (run / file).write_text(json.dumps(change(json.loads((run / file).read_text()))))
    with pytest.raises(DataError, match=r"was changed after training \(its SHA-256 is not the one"):
        trainlab.load_run(run)  # the digest run.json records for it
    info = json.loads((run / "run.json").read_text())
    del info["records_sha256"]  # a run older than the digests: its records are checked by type
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(DataError) as caught:
        trainlab.load_run(run)
    assert str(caught.value).startswith(str(run / file)) and message in str(caught.value)


def test_a_csv_given_to_a_run_of_a_scikit_learn_set_says_what_the_run_reads(tmp_path, capsys):
    """It said 'predict reads CSV and npz inputs ... (not supported yet)' of a CSV, to a run that reads an npz."""
    from trainlab.experiment import train

    _, run = train(validate({"name": "iris", "seed": 0, "data": {"source": "iris"}, "model": {"name": "linear"},
                             "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                          "batch_size": 32, "epochs": 1}, "output": {"progress": "off"}}),
                   out=tmp_path / "run", quiet=True)
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c,d\n1,2,3,4\n")
    assert main(["predict", str(run), str(rows)]) == 3
    assert capsys.readouterr().err.strip() == ("error: rows.csv: a run trained on data source 'iris' predicts from an "
                                               ".npz holding an array x shaped (N, 4) (CSV inputs are read for runs "
                                               "trained on a CSV)")
    np.savez(tmp_path / "rows.npz", x=np.ones((2, 4), dtype=np.float32))
    assert main(["predict", str(run), str(tmp_path / "rows.npz")]) == 0


def test_cli_predict_refuses_an_output_that_is_a_folder_before_predicting(tmp_path, capsys, monkeypatch):
    """It predicted, then said 'cannot read or write (.../.pets run é.usbfkz29.tmp): Is a directory', exit 5."""
    import trainlab.predict_command

    def no_predicting(*args, **kwargs):
        raise AssertionError("predicted before checking -o")

    monkeypatch.setattr(trainlab.predict_command, "load_run", no_predicting)  # the name predict looks up
    folder = tmp_path / "out dir é"
    folder.mkdir()
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "new.csv"), "-o", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: -o {folder} is a folder; give the CSV file to write, e.g. -o "
                   f"{folder / 'predictions.csv'}\n")
    assert list(folder.iterdir()) == []
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "new.csv"), "-o", ""]) == 2  # was "-o  is a folder"
    assert capsys.readouterr().err == "error: -o is empty; give the CSV file to write, e.g. -o predictions.csv\n"


@pytest.mark.parametrize("record", ["config.yaml", "run.json", "labels.json", "preprocessing.json", "model.json",
                                    "model.safetensors"])
def test_a_record_that_is_a_link_is_refused_by_eval_and_predict_even_to_the_same_bytes(runs, tmp_path, capsys,
                                                                                       record):
    """A run folder's records are the files its run wrote: a link (config.yaml to ~/.config/gh/hosts.yml) is
    refused before it is read, even when it points at a copy of the very file."""
    run = tmp_path / "pets"
    shutil.copytree(runs["classify"], run)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(run / record, elsewhere / record)
    (run / record).symlink_to(elsewhere / record)
    commands = [["predict", str(run), str(runs["tmp"] / "new_pets.csv")]]
    if record in ("config.yaml", "run.json", "model.safetensors"):  # what eval reads (it rebuilds from the data)
        commands.append(["eval", str(run)])
    for argv in commands:
        assert main(argv) in (2, 3)
        err = capsys.readouterr().err
        assert err.startswith("error:") and err.count("\n") == 1 and "is a symbolic link" in err, err


@pytest.mark.parametrize("name", ["/etc/hostname", "../outside.txt", "config.yaml"])
def test_records_sha256_may_name_only_the_runs_own_records(runs, tmp_path, name):
    """A planted name made predict read any file and say whether it matched a guessed digest."""
    run = tmp_path / "pets"
    shutil.copytree(runs["classify"], run)
    (tmp_path / "outside.txt").write_text("secret")
    info = json.loads((run / "run.json").read_text())
    info["records_sha256"] = {**info["records_sha256"], name: "0" * 64}
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match=r"records_sha256 names '.*', which is not a record of a run \(labels.json"):
        trainlab.load_run(run)


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_run_json_nested_too_deeply_is_one_data_error(runs, tmp_path, capsys, command):
    run = tmp_path / "pets"
    shutil.copytree(runs["classify"], run)
    (run / "run.json").write_text("[" * 200_000 + "]" * 200_000)
    argv = [command, str(run)] + ([str(runs["tmp"] / "new_pets.csv")] if command == "predict" else [])
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "nested too deeply" in err, err


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft is not installed")
def test_load_run_on_a_lora_fit_folder_gives_advice_that_loads_its_weights(tmp_path):
    """fit with finetune.lora merges the adapters into the user's layers when it ends: the folder's weights have
    the module's own keys, and the plain advice, followed as written, loads them into a fresh module that
    computes what fit's model does. A folder of before (peft's state_dict: base_model.model.0.base_layer.weight,
    lora_A, ...) gets the apply_lora advice, which loads it, and merging gives the same function."""
    import re

    from safetensors.torch import load_file, save_file
    from sklearn.metrics import log_loss as sklearn_log_loss

    from trainlab.errors import RunDirError
    from trainlab.lora import apply_lora

    def mlp():
        return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 6)).astype("float32"), np.arange(60) % 3
    torch.manual_seed(0)
    result = trainlab.fit(mlp(), (x, y), {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05},
                                          "epochs": 2, "finetune": {"lora": {"rank": 2, "alpha": 4.0}}},
                          test=(x, y), metrics=["log_loss"], out=tmp_path / "fit")
    inputs = torch.tensor(x[:10])
    expected = result.model.cpu().eval()(inputs)
    with torch.no_grad():  # the merged module computes what the adapted one was evaluated as (before the merge)
        probabilities = torch.softmax(result.model(torch.tensor(x)).double(), dim=1).numpy()
    assert result.summary["test"]["log_loss"] == pytest.approx(sklearn_log_loss(y, probabilities), rel=1e-5)
    with pytest.raises(RunDirError) as info:
        trainlab.load_run(tmp_path / "fit")
    assert "LoRA" not in str(info.value) and "load its weights into it with model.load_state_dict(" in str(info.value)
    fresh = mlp()
    fresh.load_state_dict(load_file(tmp_path / "fit" / "model.safetensors"))
    torch.testing.assert_close(fresh.eval()(inputs), expected)
    # a fit folder written before the merge: peft's keys
    torch.manual_seed(1)
    wrapped = apply_lora(mlp(), rank=2, alpha=4.0)
    with torch.no_grad():
        for name, parameter in wrapped.named_parameters():
            if "lora_B" in name:
                parameter.normal_()  # adapters that change the function (B = 0 at the start)
    save_file({k: v.contiguous() for k, v in wrapped.state_dict().items()}, str(tmp_path / "fit" / "model.safetensors"))
    before = wrapped.eval()(inputs)
    with pytest.raises(RunDirError) as info:
        trainlab.load_run(tmp_path / "fit")
    message = str(info.value)
    assert "\n" not in message and "trained with LoRA adapters" in message
    call = re.search(r"model = (apply_lora\(model[^)]*\))", message).group(1)
    assert call == "apply_lora(model, rank=2, alpha=4.0, dropout=0.0)"
    model = eval(call, {"apply_lora": apply_lora, "model": mlp()})  # the advice, as written
    model.load_state_dict(load_file(tmp_path / "fit" / "model.safetensors"))
    torch.testing.assert_close(model.eval()(inputs), before)
    plain = model.merge_and_unload()
    assert set(plain.state_dict()) == set(mlp().state_dict())
    torch.testing.assert_close(plain(inputs), before)
