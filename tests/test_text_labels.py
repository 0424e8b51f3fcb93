"""Text sources read a label column as the ``csv`` source reads a target: labels differing only in case
are warned of, a word among numbers is refused; and a line repeating the header (files joined with
``cat``) is refused by both, with its line, instead of becoming a one-row class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.config import DataConfig
from trainlab.data import DATA_SOURCES, load_dataset
from trainlab.data.predict_media import read_texts
from trainlab.data.text import read_table
from trainlab.errors import DataError

SOURCES = {"text_tsv": ("\t", "sentence"), "text_csv": (",", "text")}
REPEAT_HINT = "repeats the header: files joined with cat? delete that line"


def text_file(path: Path, source: str, labels: list[str], header_again_after: int | None = None) -> Path:
    """A ``source`` file of one text per label; the header line again after row ``header_again_after``."""
    delimiter, text_column = SOURCES[source]
    header = f"{text_column}{delimiter}label\n"
    lines = [f"text number {i} about {label}{delimiter}{label}\n" for i, label in enumerate(labels)]
    if header_again_after is not None:
        lines.insert(header_again_after, header)
    path.write_text(header + "".join(lines), encoding="utf-8")
    return path


def load_text(file: Path, source: str, **options):
    return load_dataset(DataConfig(source=source, train=str(file), val_fraction=0.0, test_fraction=0.0, **options))


def csv_file(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(map(str, row)) for row in [header, *rows]) + "\n", encoding="utf-8")
    return path


def load_csv(file: Path, **options):
    return load_dataset(DataConfig(source="csv", path=str(file), target="label", val_fraction=0.0,
                                   test_fraction=0.0, **options))


def message(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


# ----------------------------------------------------------------------------- labels differing in case


@pytest.mark.parametrize("source", SOURCES)
def test_labels_differing_only_in_case_are_warned_of_as_the_csv_source_does(tmp_path, capsys, source):
    labels = ["negative", "Positive", "positive"] * 6
    file = text_file(tmp_path / f"train.{source}", source, labels)
    data = load_text(file, source)
    assert data.class_names == ["Positive", "negative", "positive"]  # still three classes: a warning, not a fix
    err = capsys.readouterr().err
    said = (f"warning: train file {file}: the class labels 'Positive' and 'positive' in 'label' differ only in "
            "case, so they are two classes; fix the data if they are one")
    assert err.splitlines() == [said]
    # the csv source says the same of the same column, naming its own file
    table = csv_file(tmp_path / "t.csv", ["x", "label"], [[i, label] for i, label in enumerate(labels)])
    load_csv(table)
    assert capsys.readouterr().err.splitlines() == [said.replace(f"train file {file}", f"CSV file {table}")]


def test_labels_differing_otherwise_give_no_warning(tmp_path, capsys):
    file = text_file(tmp_path / "train.tsv", "text_tsv", ["negative", "positive"] * 6)
    load_text(file, "text_tsv")
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- a word among numbers


@pytest.mark.parametrize("source", SOURCES)
def test_a_word_among_number_labels_is_refused_as_the_csv_source_refuses_it(tmp_path, source):
    labels = ["0", "1", "one", "1", "0", "1"] * 3
    file = text_file(tmp_path / f"train.{source}", source, labels)
    with pytest.raises(DataError) as err:
        load_text(file, source)
    assert message(err) == (f"train file {file} line 4, target 'label': 'one' is not a number while other "
                            "targets are numeric")
    table = csv_file(tmp_path / "t.csv", ["x", "label"], [[i, label] for i, label in enumerate(labels)])
    with pytest.raises(DataError) as csv_err:
        load_csv(table)
    assert message(csv_err) == (f"CSV file {table} line 4, target 'label': 'one' is not a number while other "
                                "targets are numeric")


def test_a_number_among_word_labels_is_refused_naming_the_minority(tmp_path):
    """Mostly words: the first number is the odd one out; mostly numbers: the first word is."""
    file = text_file(tmp_path / "train.tsv", "text_tsv", ["pos", "neg", "3"] * 4)
    with pytest.raises(DataError) as err:
        load_text(file, "text_tsv")
    assert f"train file {file} line 4, target 'label': '3' is a number while 8 of the 12 targets are names" \
        in message(err)
    file = text_file(tmp_path / "train.tsv", "text_tsv", ["0", "1", "pos"] * 4)
    with pytest.raises(DataError) as err:
        load_text(file, "text_tsv")
    assert f"train file {file} line 4, target 'label': 'pos' is not a number while other targets are numeric" \
        in message(err)


@pytest.mark.parametrize("labels", [["0", "1"], ["pos", "neg"], ["inf", "one"], ["1.5", "2.25"]])
def test_labels_all_numbers_or_all_words_still_load(tmp_path, labels):
    file = text_file(tmp_path / "train.tsv", "text_tsv", labels * 6)
    assert len(load_text(file, "text_tsv").train) == 12


# ----------------------------------------------------------------------------- the header again


@pytest.mark.parametrize("source", SOURCES)
def test_a_repeated_header_line_is_refused_with_its_line(tmp_path, source):
    file = text_file(tmp_path / f"joined.{source}", source, ["neg", "pos"] * 5, header_again_after=4)
    with pytest.raises(DataError) as err:
        load_text(file, source)
    assert message(err).startswith(f"text file {file} line 6 {REPEAT_HINT}")  # header 1, rows 2..5, header 6


def test_a_repeated_header_with_padded_cells_and_crlf_is_found(tmp_path):
    file = tmp_path / "joined.tsv"
    file.write_bytes(b"sentence\tlabel\r\ngood\tpos\r\nbad\tneg\r\n sentence \tlabel \r\nfine\tpos\r\n")
    with pytest.raises(DataError) as err:
        load_text(file, "text_tsv")
    assert f"line 4 {REPEAT_HINT}" in message(err)


def test_a_row_that_only_starts_like_the_header_is_data(tmp_path):
    """A text that is the word 'sentence' is data; only a whole repeated header is refused."""
    file = tmp_path / "train.tsv"
    file.write_text("sentence\tlabel\n" + "sentence\tpos\nother\tneg\n" * 4, encoding="utf-8")
    assert load_text(file, "text_tsv").class_names == ["neg", "pos"]


def test_predict_refuses_a_repeated_header_in_its_input(tmp_path):
    file = text_file(tmp_path / "input.tsv", "text_tsv", ["neg", "pos"], header_again_after=1)
    encoding = {"tokenizer": "word", "vocab": ["<pad>", "<unk>", "text"], "max_length": 4}
    with pytest.raises(DataError) as err:
        read_texts(file, "text_tsv", {}, encoding)
    assert f"line 3 {REPEAT_HINT}" in message(err)


def test_a_one_column_predict_file_keeps_a_text_equal_to_its_header(tmp_path):
    file = tmp_path / "input.tsv"
    file.write_text("sentence\nhello\nsentence\n", encoding="utf-8")
    encoding = {"tokenizer": "word", "vocab": ["<pad>", "<unk>", "hello", "sentence"], "max_length": 2}
    assert read_texts(file, "text_tsv", {}, encoding).tolist() == [[2, 0], [3, 0]]


def csv_rows(n: int) -> list[list[object]]:
    return [[i, ["red", "blue"][i % 2], ["a", "b"][i % 3 % 2]] for i in range(n)]


@pytest.mark.parametrize("header", [["city", "color", "label"], ["x", "color", "label"]])
def test_the_csv_source_refuses_a_repeated_header_before_reading_it_as_data(tmp_path, header):
    """Text columns only (``city``): the header row was a category and a class; a number column (``x``): the
    header row was 'x is not a number'. Both are the one line that names the cause."""
    rows = csv_rows(8)
    if header[0] == "city":
        rows = [[f"town{i}", color, label] for i, color, label in rows]
    file = csv_file(tmp_path / "joined.csv", header, [*rows[:3], header, *rows[3:]])
    with pytest.raises(DataError) as err:
        load_csv(file)
    assert message(err).startswith(f"CSV file {file} line 5 {REPEAT_HINT}")
    csv_file(tmp_path / "clean.csv", header, rows)
    assert load_csv(tmp_path / "clean.csv").class_names == ["a", "b"]


def test_a_wide_csv_refuses_a_repeated_header_too(tmp_path):
    """More than 2,000 columns are read by the csv module into strings: the same check."""
    header = [f"f{j}" for j in range(2001)] + ["label"]
    rows = [[*np.arange(2001) + i, ["a", "b"][i % 2]] for i in range(4)]
    file = csv_file(tmp_path / "wide.csv", header, [*rows[:2], header, *rows[2:]])
    with pytest.raises(DataError) as err:
        DATA_SOURCES.build({"name": "csv", "path": str(file), "target": "label"})
    assert message(err).startswith(f"CSV file {file} line 4 {REPEAT_HINT}")


def test_a_csv_row_holding_the_first_header_name_as_a_value_is_data(tmp_path):
    header = ["kind", "label"]
    rows = [["kind", "a"], ["other", "b"]] * 4  # a category that happens to be named as its column
    file = csv_file(tmp_path / "t.csv", header, rows)
    assert load_csv(file).class_names == ["a", "b"]


@pytest.mark.parametrize("source", ["text_tsv", "text_csv"])
def test_a_multilabel_task_on_a_text_source_is_refused_as_unsupported(tmp_path, source):
    """It was refused after reading as "(N,) ... or give one target column per label", which label_column (a
    string) cannot give."""
    from trainlab.errors import ConfigError

    file = text_file(tmp_path / ("t.tsv" if source == "text_tsv" else "t.csv"), source, ["a", "b"] * 10)
    with pytest.raises(ConfigError, match=r"^data.task: multilabel is not supported by the text sources, which read "
                                          r"one label per row \(label_column\); use data.task: binary or multiclass"):
        load_text(file, source, task="multilabel")


@pytest.mark.parametrize("source", ["text_tsv", "text_csv"])
def test_labels_differing_only_in_spaces_are_warned_of_as_the_csv_source_does(tmp_path, capsys, source):
    file = text_file(tmp_path / ("t.tsv" if source == "text_tsv" else "t.csv"), source,
                     ["positive", "negative", "  positive  "] * 6)
    data = load_text(file, source)
    assert data.class_names == ["negative", "positive"]
    err = capsys.readouterr().err
    assert err.count("differ only in spaces") == 1
    assert f"warning: text file {file}: the labels 'positive' and ' " in err
    assert ("positive ' differ only in spaces around them, which are stripped, so they are read as one class, "
            "'positive'; fix the data if they are two") in err


def test_a_quote_never_closed_is_named_where_it_opened(tmp_path):
    """A text opening with a quote it never closes swallows the next lines: the error named a later, correct
    line ("line 6 has 3 fields ... a text holding a comma must be quoted") and never the open quote."""
    rows = ['text,label', 'good one,positive', '"a text, quoted",negative', '"never closed, and so on,positive',
            'plain text,negative', '"a later quote, correct",positive', 'x,positive']
    file = tmp_path / "q.csv"
    file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_text(file, "text_csv")
    assert str(caught.value) == (
        f"text file {file} line 4: the quoted text that opens at line 4 is closed at line 6 by a quote with more text "
        "after it: a quote never closed at line 4 joins the lines after it up to the next quote (close it); a "
        "closing quote must be followed by the comma; a quote inside "
        "a text is written twice (\"\"), not escaped with a backslash, and a space after the closing quote is text too")
    fine = tmp_path / "m.csv"  # a text of several lines, quoted as it should be: read, no such error
    fine.write_text('text,label\n' + '"two\nlines, one text",positive\nplain,negative\n' * 5, encoding="utf-8")
    assert len(load_text(fine, "text_csv").train) == 10


def test_a_stray_quote_never_merges_two_rows_and_names_its_own_line(tmp_path):
    """A user trial: a stray quote at line 32 swallowed line 33 up to that row's own opening quote, and the two rows
    were read as one text (exit 0, 60 rows of 61, the merged text given line 33's label); a quote never closed to
    the end of the file was named at line 31, the row before it. Line numbers counted as grep -n counts them."""
    rows = [f"plain film {i},{i % 2}" for i in range(30)]
    cases = {
        "merged": (['"never closed,1'] + [f'"bad film {i}",{i % 2}' for i in range(30)],
                   "line 32: the quoted text that opens at line 32 is closed at line 33 by a quote with more text "
                   "after it: a quote never closed at line 32 joins the lines after it"),
        "to the end": (['"never closed,1'] + rows,
                       "line 32: a quote that opens a text there is never closed, so the record runs on to the end of "
                       "the file (line 62)"),
        "one line": (['"quoted" more,1'], "line 32: a quoted text's closing quote is followed by more text; a "
                                          "closing quote must be followed by the comma"),
        "a space": (['"quoted" ,1'], "line 32: a quoted text's closing quote is followed by more text; a closing "
                                     "quote must be followed by the comma; a quote inside a text is written twice "
                                     "(\"\"), not escaped with a backslash, and a space after the closing quote is "
                                     "text too"),
    }
    for name, (tail, said) in cases.items():
        file = tmp_path / f"{name}.csv"
        file.write_text("\n".join(["text,label", *rows, *tail]) + "\n", encoding="utf-8")
        assert file.read_text().splitlines()[31] == tail[0]  # line 32 (grep -n) is where the quote opens
        with pytest.raises(DataError) as caught:
            load_text(file, "text_csv")
        assert str(caught.value).startswith(f"text file {file} {said}"), (name, str(caught.value))
    fine = tmp_path / "fine.csv"  # quotes written twice inside a quoted text, a quote inside an unquoted one
    fine.write_text('text,label\n' + '"a ""quoted"" word",1\nsay "hi" twice,0\n' * 5, encoding="utf-8")
    table = read_table(fine, "text", "label", ",")
    assert table.texts == ['a "quoted" word', 'say "hi" twice'] * 5 and table.lines == tuple(range(2, 12))


def test_numbers_and_missing_markers_with_spaces_are_no_label_twins(tmp_path, capsys):
    """' 1' beside '1' is one number, ' NA' beside 'NA' one missing marker: the csv source says nothing of them."""
    file = text_file(tmp_path / "n.tsv", "text_tsv", ["1", " 1", "0", "0 "] * 5)
    load_text(file, "text_tsv")
    assert "differ only in spaces" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- a text column of numbers


def test_a_text_column_of_numbers_only_is_warned_of_naming_the_other_columns(tmp_path, capsys):
    """data.text_column pointed at an id column trained on the ids as one-word texts without a word."""
    rows = [[1000 + i, f"the match was {('great', 'bad')[i % 2]} today", ("sports", "cooking")[i % 2], i / 4]
            for i in range(12)]
    file = csv_file(tmp_path / "train.csv", ["id", "text", "label", "score"], rows)
    load_text(file, "text_csv", text_column="id")
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert line == (f"warning: data.text_column 'id' of {file} holds only numbers (1000, 1001, 1002, ...), while its "
                    "column text holds words: if the texts are there, set data.text_column")
    load_text(file, "text_csv")  # the texts, one of them a number among words: no warning
    rows[0][1] = "42"
    load_text(csv_file(tmp_path / "one.csv", ["id", "text", "label", "score"], rows), "text_csv")
    codes = [[f"{10000 + i}", ("north", "south")[i % 2], i / 4] for i in range(12)]  # numeric codes are the texts
    load_text(csv_file(tmp_path / "zip.csv", ["text", "label", "score"], codes), "text_csv")
    assert "warning:" not in capsys.readouterr().err
