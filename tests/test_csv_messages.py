"""One-line errors for CSV files that fail for a reason the file's look gives away: a trailing delimiter, a
file that is not UTF-8 text (Latin-1, UTF-16, gzip, zip), no header row, Excel's ``sep=`` line, comment
lines, a space before a quote, UCI's ``?`` for missing; and two image-folder listings
(a broken link where a class folder should be, Windows' ``Thumbs.db`` in a predict folder).

The files are written here byte by byte; the expected lines and bytes are counted by hand.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.config import DataConfig
from trainlab.data import DATA_SOURCES, load_dataset
from trainlab.data.predict_media import read_images
from trainlab.errors import DataError

ROWS = [(0.5, -1.0, 0), (1.5, 2.0, 1), (-0.25, 0.0, 0), (2.0, 1.0, 1)]


def csv_text(rows=ROWS, delimiter=",", end="") -> str:
    lines = [delimiter.join(["a", "b", "y"]) + end]
    lines += [delimiter.join(str(v) for v in row) + end for row in rows]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str | bytes) -> str:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return str(path)


def error_of(path: str, **options) -> str:
    with pytest.raises(DataError) as err:
        DATA_SOURCES.build({"name": "csv", "path": path, "target": "y", **options})
    message = str(err.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- a trailing delimiter


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), ("\t", "tab"), (";", "semicolon")])
def test_a_trailing_delimiter_is_named(tmp_path, delimiter, name):
    path = write(tmp_path / "t.csv", csv_text(delimiter=delimiter, end=delimiter))
    message = error_of(path, delimiter=delimiter)
    assert message == (f"CSV file {path}: its last column has no name and is empty in every row: each line ends "
                       f"in a {name} (a trailing delimiter); delete the {name} at the end of each line, or choose "
                       "the feature columns with data.features")


@pytest.mark.parametrize("policy", ["error", "drop"])
def test_a_trailing_delimiter_is_named_under_either_nan_policy(tmp_path, policy):
    """Under ``nan_policy: drop`` the nameless column made every row NaN ("empty after dropping rows")."""
    path = write(tmp_path / "t.csv", csv_text(end=","))
    with pytest.raises(DataError, match="its last column has no name and is empty in every row"):
        load_dataset(DataConfig(source="csv", path=path, target="y", nan_policy=policy))


def test_a_named_column_empty_in_every_row_is_named_when_drop_empties_the_data(tmp_path):
    """Under ``nan_policy: drop`` a named all-empty column (an export of a column nobody filled) dropped every row;
    the error said only "empty after dropping rows with NaN/Inf", not which column did it."""
    text = "a,unfilled,b,y\n" + "".join(f"{a},,{b},{y}\n" for a, b, y in ROWS)
    path = write(tmp_path / "t.csv", text)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(source="csv", path=path, target="y", nan_policy="drop"))
    # it said "the features column of line 2, column 'unfilled'", as if the column were a line's
    assert str(err.value) == (f"training data is empty after dropping rows with NaN/Inf: the first row's feature at "
                              f"line 2, column 'unfilled' of {path} is NaN/Inf, and so is that column in every other "
                              "row (drop or fill that column)")


def test_a_nameless_column_with_values_or_left_out_is_read(tmp_path):
    """Only an empty nameless column is the trailing delimiter; data.features may leave it out."""
    text = "a,b,y,\n" + "".join(f"{a},{b},{y},\n" for a, b, y in ROWS)
    raw = DATA_SOURCES.build({"name": "csv", "path": write(tmp_path / "t.csv", text), "target": "y",
                              "features": ["a", "b"]})
    np.testing.assert_array_equal(raw.x_train, np.array([r[:2] for r in ROWS], dtype=np.float32))


# ----------------------------------------------------------------------------- encodings


def test_latin1_names_the_line_of_the_first_non_utf8_byte(tmp_path):
    text = "a,city,y\n0.5,Paris,0\n1.5,Z\u00fcrich,1\n"
    path = write(tmp_path / "l.csv", text.encode("latin-1"))
    assert error_of(path, categorical=["city"]) == (
        f"CSV file {path} is not UTF-8 (line 3 has the byte 0xfc): save it as UTF-8 "
        f"(e.g. iconv -f latin1 -t utf-8 {path} > {tmp_path / 'l-utf8.csv'})")


def test_a_windows_1252_export_is_told_to_convert_from_cp1252(tmp_path):
    """Excel on Windows writes the euro sign as 0x80, a control character in Latin-1: 'iconv -f latin1' kept it
    so, silently. A UTF-8 euro sign elsewhere in the file is no such byte."""
    text = "a,price \u20ac,y\n0.5,\u00e9t\u00e9,0\n"
    path = write(tmp_path / "w.csv", text.encode("cp1252"))
    assert error_of(path, categorical=["price \u20ac"]) == (
        f"CSV file {path} is not UTF-8 (line 1 has the byte 0x80): save it as UTF-8 "
        f"(e.g. iconv -f cp1252 -t utf-8 {path} > {tmp_path / 'w-utf8.csv'})")
    mixed = write(tmp_path / "m.csv", "a,\u20ac,y\n".encode() + "0.5,Z\u00fcrich,0\n".encode("latin-1"))
    assert "iconv -f latin1 " in error_of(mixed, categorical=["\u20ac"])
    undefined = write(tmp_path / "u.csv", b"a,b\x80,y\n0.5,x\x81,0\n")  # 0x81: cp1252 has none, iconv stops there
    assert "iconv -f latin1 " in error_of(undefined, categorical=["b\u20ac"])


def test_the_iconv_command_names_the_file_by_its_path_quoted_for_the_shell(tmp_path):
    """The command must work as pasted, from any folder: the file's path, not its bare name, shell-quoted."""
    folder = tmp_path / "my data"
    folder.mkdir()
    path = write(folder / "it's.csv", "a,city,y\n1.5,Z\u00fcrich,1\n".encode("latin-1"))
    assert error_of(path, categorical=["city"]).endswith(
        f"(e.g. iconv -f latin1 -t utf-8 '{folder}/it'\"'\"'s.csv' > '{folder}/it'\"'\"'s-utf8.csv')")


def test_the_line_is_counted_across_read_chunks(tmp_path):
    """The decoder reads 1 MiB at a time; a bad byte past the first chunk is on the file's line."""
    line = "0.5,1.0,0\n"
    count = (1 << 20) // len(line) + 50  # past the first chunk
    text = ("a,b,y\n" + line * count).encode() + b"0.5,\xe9,1\n"
    path = write(tmp_path / "big.csv", text)
    assert f"is not UTF-8 (line {count + 2} has the byte 0xe9)" in error_of(path)


def test_a_character_cut_at_a_chunk_boundary_is_not_an_error_there(tmp_path):
    """A two-byte character split by the 1 MiB chunk edge is whole; the bad byte comes later."""
    head = b"a,b,y\n"
    filler = b"0.5,1.0,0\n" * ((1 << 20) // 10 - 1)
    pad = (1 << 20) - len(head) - len(filler) - 1  # the \xc3 of \xc3\xa9 is the chunk's last byte
    body = head + filler + b"#" * pad + "\u00e9\n".encode() + b"\xff\n"
    assert len(head + filler + b"#" * pad) == (1 << 20) - 1
    from trainlab.data.table_diagnosis import _first_non_utf8

    path = tmp_path / "edge.csv"
    path.write_bytes(body)
    newlines = body[:body.index(b"\xff")].count(b"\n")
    assert _first_non_utf8(path) == (newlines + 1, 0xFF)


def test_a_file_cut_inside_a_character_names_its_last_line(tmp_path):
    from trainlab.data.table_diagnosis import _first_non_utf8

    path = tmp_path / "cut.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xc3")
    assert _first_non_utf8(path) == (3, 0xC3)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_is_recognised_by_its_byte_order_mark(tmp_path, encoding):
    data = csv_text(delimiter="\t").encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path = write(tmp_path / "u.txt", data)
    assert error_of(path, delimiter="\t") == (f"CSV file {path} is saved as UTF-16 (Excel's 'Unicode text'): save it "
                                              "as 'CSV UTF-8' instead")


def test_gzip_and_zip_are_recognised_by_their_first_bytes(tmp_path):
    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress(csv_text().encode()))
    assert error_of(str(gz)) == f"CSV file {gz} is gzip-compressed: gunzip it first"
    for method in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):  # stored: the archive may decode as UTF-8
        archive = tmp_path / f"t{method}.zip"
        with zipfile.ZipFile(archive, "w", compression=method) as handle:
            handle.writestr("t.csv", csv_text())
        assert error_of(str(archive)) == f"CSV file {archive} is a zip archive: unzip it first"


@pytest.mark.parametrize("image_format, what", [("PNG", "a PNG image"), ("JPEG", "a JPEG image"), ("GIF", "a GIF image")])
def test_an_image_given_for_a_table_is_named_as_one(tmp_path, image_format, what):
    """An image given to a text run's predict was "not UTF-8 ... (e.g. iconv -f latin1 -t utf-8 x.png > ...)"."""
    from PIL import Image

    path = tmp_path / f"x.{image_format.lower()}"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path, format=image_format)
    assert error_of(str(path)) == f"CSV file {path} is {what}, not a text table"


def test_the_text_source_says_the_same(tmp_path):
    path = write(tmp_path / "t.tsv", "sentence\tlabel\nfine\t1\ncaf\u00e9 noir\t0\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        DATA_SOURCES.build({"name": "text_tsv", "train": path, "vocab_size": 50, "max_length": 8})
    assert str(err.value) == (f"text file {path} is not UTF-8 (line 3 has the byte 0xe9): save it as UTF-8 "
                              f"(e.g. iconv -f latin1 -t utf-8 {path} > {tmp_path / 't-utf8.tsv'})")


# ----------------------------------------------------------------------------- header lines


def test_a_file_without_a_header_row_is_said(tmp_path):
    path = write(tmp_path / "n.csv", "".join(f"{a},{b},{y}\n" for a, b, y in ROWS))
    assert error_of(path) == (f"CSV file {path} has no target column 'y' (columns: 0.5, -1.0, 0); its first line "
                              "looks like a data row, but the first line is read as the header, which names the "
                              "columns: add a header line naming the columns")


def test_a_header_of_names_gets_no_header_hint(tmp_path):
    path = write(tmp_path / "h.csv", "a,b,label\n1,2,0\n")
    assert "looks like a data row" not in error_of(path)


@pytest.mark.parametrize(("first", "delimiter", "fix"), [
    ("sep=;", ",", " and set data.delimiter: ';'"),
    ("sep=;", ";", ""),
    ("sep=,", ",", ""),
    ("sep=\t", ",", " and set data.delimiter: '\\t'"),
])
def test_excels_sep_line_is_named(tmp_path, first, delimiter, fix):
    path = write(tmp_path / "e.csv", first + "\n" + csv_text(delimiter=delimiter))
    assert error_of(path, delimiter=delimiter) == (
        f"CSV file {path} line 1 is {first!r}, Excel's hint of the delimiter, not a header row: delete that "
        f"line{fix}")


# ----------------------------------------------------------------------------- ragged rows


def test_a_comment_line_before_the_header_is_said(tmp_path):
    path = write(tmp_path / "c.csv", "# exported 2024\n" + csv_text())
    assert error_of(path) == (f"CSV file {path} line 2 has 3 fields; the header has 1; line 1 starts with '#': "
                              "comment lines are not supported, delete it")


def test_a_comment_line_among_the_rows_is_said(tmp_path):
    text = csv_text().replace("1.5,2.0,1\n", "1.5,2.0,1\n  # a note\n")
    path = write(tmp_path / "c.csv", text)
    assert error_of(path) == (f"CSV file {path} line 4 has 1 field; the header has 3; line 4 starts with '#': "
                              "comment lines are not supported, delete it")


def test_a_ragged_row_without_a_comment_gets_no_comment_hint(tmp_path):
    path = write(tmp_path / "r.csv", csv_text() + "1,2\n")
    assert error_of(path) == f"CSV file {path} line 6 has 2 fields; the header has 3"


def test_a_space_before_a_quote_is_said(tmp_path):
    path = write(tmp_path / "s.csv", 'a, note, y\n0.5, "x, 0", 1\n')
    assert error_of(path) == (f"CSV file {path} line 2 has 4 fields; the header has 3; a space before an opening "
                              "quote makes the quote part of the text (' \"x'), so the comma inside the quotes "
                              "splits the field: write no space after the commas")


# ----------------------------------------------------------------------------- cells


def test_a_cell_of_spaces_is_missing_as_an_empty_one_in_a_column_of_numbers(tmp_path):
    """Spaces around a cell are stripped: a cell of spaces is an empty cell, missing, as in a text column and
    in a wide file (a column of numbers refused it: "'  ' is not a number; ... delete the spaces")."""
    path = write(tmp_path / "w.csv", csv_text().replace("1.5,2.0,1", "1.5,  ,1"))
    raw = DATA_SOURCES.build({"name": "csv", "path": path, "target": "y"})
    assert np.isnan(raw.x_train[1, 1]) and np.isfinite(np.delete(raw.x_train.reshape(-1), 3)).all()
    with pytest.raises(DataError, match=r"^training data has a missing feature value \(nan\) at line 3, column 'b' "):
        load_dataset(DataConfig(source="csv", path=path, target="y"))


@pytest.mark.parametrize("marker", ["?", "-", ".", "n.a.", "N/a", "--"])
def test_a_missing_value_marker_that_is_not_read_as_one_is_named(tmp_path, marker):
    path = write(tmp_path / "q.csv", csv_text().replace("1.5,2.0,1", f"1.5,{marker},1"))
    assert error_of(path) == (f"CSV file {path} line 3, column 'b': '{marker}' is not a number (if '{marker}' marks "
                              "a missing value, replace it with an empty cell or NA)")


def test_a_column_of_words_with_a_few_numbers_names_the_number_and_data_categorical(tmp_path):
    """yes/no/Y/N/1/0/TRUE/FALSE: the first word was called 'not a number' (line 2, 'FALSE'), where the odd
    cells are the numbers, and the fix for a column of categories went unsaid."""
    words = ["yes", "no", "Y", "N", "TRUE", "FALSE"]
    rows = "".join(f"{i},{'1' if i == 4 else words[i % 6]},{i % 2}\n" for i in range(12))
    path = write(tmp_path / "m.csv", "a,member,y\n" + rows)
    assert error_of(path) == (f"CSV file {path} line 6, column 'member': '1' is a number in a column of words (such "
                              "as 'yes'); if its values are categories, list 'member' in data.categorical, or fix "
                              "that cell if it is a typo")
    # a column of '?' with a few numbers: the marker is named as one, however many there are
    marked = "".join(f"{i},{'?' if i % 5 else i * 1.5},{i % 2}\n" for i in range(30))
    assert error_of(write(tmp_path / "q.csv", "a,b,y\n" + marked)) == (
        f"CSV file {tmp_path / 'q.csv'} line 3, column 'b': '?' is not a number (if '?' marks a missing value, "
        "replace it with an empty cell or NA)")
    numbers = "".join(f"{i},{'x' if i == 4 else i * 1.5},{i % 2}\n" for i in range(12))  # mostly numbers
    assert error_of(write(tmp_path / "n.csv", "a,b,y\n" + numbers)) == (
        f"CSV file {tmp_path / 'n.csv'} line 6, column 'b': 'x' is not a number; if its values are categories, list "
        "'b' in data.categorical")


def test_other_text_gets_no_missing_hint(tmp_path):
    path = write(tmp_path / "o.csv", csv_text().replace("1.5,2.0,1", "1.5,2.0,1\n2,x,1"))
    message = error_of(path, categorical=[])
    assert "'x' is not a number" in message and "missing value" not in message


# ----------------------------------------------------------------------------- image folders


def save_png(file: Path, seed: int = 0) -> None:
    from PIL import Image

    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (4, 6, 3), dtype=np.uint8)).save(file)


def test_a_broken_link_where_a_class_folder_should_be_is_refused(tmp_path):
    save_png(tmp_path / "a" / "x.png")
    save_png(tmp_path / "b" / "y.png", 1)
    target = tmp_path.parent / f"{tmp_path.name}-gone" / "c"
    (tmp_path / "c").symlink_to(target)
    with pytest.raises(DataError) as err:
        DATA_SOURCES.build({"name": "image_folder", "path": str(tmp_path), "workers": 0})
    assert str(err.value) == (f"{tmp_path} contains c, a broken symbolic link (its target {target} does not exist); "
                              "restore its target if it is a class or split folder, or remove the link")


def test_a_link_to_a_class_folder_is_a_class(tmp_path):
    save_png(tmp_path / "data" / "a" / "x.png")
    save_png(tmp_path / "elsewhere" / "b" / "y.png", 1)
    (tmp_path / "data" / "b").symlink_to(tmp_path / "elsewhere" / "b")
    raw = DATA_SOURCES.build({"name": "image_folder", "path": str(tmp_path / "data"), "workers": 0})
    assert raw.class_names == ["a", "b"]


@pytest.mark.parametrize("name", ["Thumbs.db", "desktop.ini", "__MACOSX/y.png"])
def test_predict_skips_the_files_training_skips_without_a_word(tmp_path, capsys, name):
    save_png(tmp_path / "x.png")
    if name.endswith(".png"):  # a zip made on a Mac: its __MACOSX/ copy is no image to predict
        save_png(tmp_path / name, 1)
    else:
        (tmp_path / name).write_bytes(b"\0" * 8)
    images, names = read_images(tmp_path, {"mode": "RGB"}, (3, 4, 6))
    assert names == ["x.png"] and images.shape == (1, 3, 4, 6)
    assert "predict skips" not in capsys.readouterr().err


def test_a_column_name_of_another_letter_case_is_suggested(tmp_path):
    """'Y1' for the column 'y1': difflib rates them 0.5, below its cut-off, so nothing was suggested."""
    path = write(tmp_path / "t.csv", "x1,x2,y1\n1,2,3\n4,5,6\n")
    assert error_of(path, target="Y1") == (f"CSV file {path} has no target column 'Y1'; did you mean 'y1'? "
                                           "(columns: x1, x2, y1)")
    assert "has no column 'X2'; did you mean 'x2'?" in error_of(path, target="y1", features=["x1", "X2"])
    semicolons = write(tmp_path / "s.csv", "x;y;target\n1;2;3\n")  # the header read whole is no name to offer
    assert error_of(semicolons, target="target") == (f"CSV file {semicolons} has no target column 'target' (columns: "
                                                     "x;y;target); the header looks semicolon-separated: set "
                                                     "data.delimiter: ';'")


def test_a_column_named_by_one_of_its_words_is_suggested_when_one_column_has_it(tmp_path):
    """'Spend' for 'Monthly Spend': difflib rates them 0.56 and the word is not the name's start, so nothing was
    suggested (while 'Churn' got 'Churn Label'); a word two columns share suggests neither."""
    path = write(tmp_path / "t.csv", "Customer Age,Monthly Spend,Monthly_Fee,plan-type,y\n1,2,3,a,0\n4,5,6,b,1\n")
    assert error_of(path, target="y", features=["Customer Age", "Spend"]) == (
        f"CSV file {path} has no column 'Spend'; did you mean 'Monthly Spend'? (columns: Customer Age, Monthly "
        "Spend, Monthly_Fee, plan-type, y)")
    assert "has no column 'fee'; did you mean 'Monthly_Fee'?" in error_of(path, target="y", features=["fee"])
    assert "has no target column 'Type'; did you mean 'plan-type'?" in error_of(path, target="Type")
    both = write(tmp_path / "b.csv", "Monthly Spend,Yearly Spend,y\n1,2,0\n3,4,1\n")
    assert "did you mean" not in error_of(both, target="y", features=["spend"])  # two columns have it
