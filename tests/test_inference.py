"""trainlab.load_run and trainlab predict: class names, probabilities, original units, any working directory,
no re-reading of the training data."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import trainlab
import trainlab.experiment
from trainlab.cli import main
from trainlab.config import validate
from trainlab.inference import MODEL_RECORD

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


def _with_model_record():
    """experiment.write_data_records, which writes model.json."""
    return trainlab.experiment.write_data_records


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs whose folders hold model.json (as experiment.write_data_records will write it)."""
    tmp = tmp_path_factory.mktemp("inference")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainlab.experiment, "write_data_records", _with_model_record())
        _classification_csv(tmp / "pets.csv", 300, 0)
        _regression_csv(tmp / "houses.csv", 300, 1)
        classify = _train(tmp, "pets", {"source": "csv", "path": str(tmp / "pets.csv"), "target": "species"},
                          "cross_entropy", 15)
        regress = _train(tmp, "houses", {"source": "csv", "path": str(tmp / "houses.csv"), "target": "price",
                                         "standardize_target": True}, "mse", 20, {"name": "linear"})
    # the training data is gone: predict must not need it
    (tmp / "pets.csv").unlink()
    (tmp / "houses.csv").unlink()
    new_pets = _classification_csv(tmp / "new_pets.csv", 50, 7).drop(columns="species")
    new_pets.to_csv(tmp / "new_pets.csv", index=False)
    new_houses = _regression_csv(tmp / "new_houses.csv", 40, 8)
    return {"tmp": tmp, "classify": classify, "regress": regress, "new_pets": new_pets, "new_houses": new_houses}


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
    assert main(["predict", str(runs["regress"]), str(runs["tmp"] / "new_houses.csv"), "--proba"]) == 3
    assert "--proba applies to classification" in capsys.readouterr().err


def test_image_folder_run_predicts_a_folder_of_images(tmp_path, monkeypatch):
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
    monkeypatch.setattr(trainlab.experiment, "write_data_records", _with_model_record())
    run = _train(tmp_path, "img", {"source": "image_folder", "path": str(tmp_path / "images"), "workers": 0},
                 "cross_entropy", 10, {"name": "mlp", "hidden": [8]})
    record = json.loads((run / MODEL_RECORD).read_text())
    assert record["normalize"] is not None and record["eval_transform"] is False  # no rebuild from the images
    shutil.rmtree(tmp_path / "images")
    rows = trainlab.load_run(run).predict_file(tmp_path / "new", proba=True)
    assert list(rows.columns) == ["file", "prediction", "bright", "dark"]
    assert list(rows["file"]) == ["a.png", "sub/b.jpg"] and list(rows["prediction"]) == ["bright", "dark"]


def test_text_run_predicts_a_tsv_with_its_own_vocabulary(tmp_path, monkeypatch, capsys):
    good, bad = ["great fun film", "lovely acting", "a great story"], ["dull boring film", "awful plot", "boring"]
    lines = ["sentence\tlabel"] + [f"{good[i % 3]}\tpos" if i % 2 else f"{bad[i % 3]}\tneg" for i in range(120)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "new.tsv").write_text("sentence\nwhat a great lovely film\nboring and awful\n")
    monkeypatch.setattr(trainlab.experiment, "write_data_records", _with_model_record())
    run = _train(tmp_path, "txt", {"source": "text_tsv", "train": str(tmp_path / "train.tsv"), "max_length": 8,
                                   "vocab_size": 50},
                 "cross_entropy", 10, {"name": "transformer_encoder", "d_model": 16, "heads": 2, "layers": 1})
    (tmp_path / "train.tsv").unlink()
    rows = trainlab.load_run(run).predict_file(tmp_path / "new.tsv")
    assert list(rows["prediction"]) == ["pos", "neg"]
    # the wrong column, through the CLI: the hint names what the file must hold, not a --set predict lacks
    (tmp_path / "other.tsv").write_text("text\nwhat a great lovely film\n")
    capsys.readouterr()
    assert main(["predict", str(run), str(tmp_path / "other.tsv")]) == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: text file {tmp_path / 'other.tsv'}: the input needs a column named 'sentence' "
                     "(this run's data.text_column), tab-separated; got columns: 'text'"]


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
