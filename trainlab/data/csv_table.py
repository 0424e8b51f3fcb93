"""Reading a CSV file into named columns with pandas' C parser, with one-line errors that name lines.

The fast path is one ``pandas.read_csv`` call (about a second per 10^7 cells). Line numbers are
only needed when something is wrong, so they come from a second, pure-Python pass over the file
(:meth:`CsvTable.line`) that is made only on the error path, or when a row may be short. A file of more
than :data:`~trainlab.data.csv_wide.WIDE_COLUMNS` columns is read by the csv module instead, each cell
parsed as a number as its row is read (:func:`~trainlab.data.csv_wide.read_wide`); only the columns that
hold text keep it.

Dialect: a header row; UTF-8 with or without a byte-order mark; fields quoted with ``"`` may hold
the delimiter and newlines; ``delimiter`` is one character (``,`` by default, ``;`` or a tab);
blank lines are skipped. Spaces around a cell are stripped (:func:`strings` warns where that makes
two spellings of a column, ``' cat'`` and ``'cat'``, one value: :func:`space_twins`). Cells in
:data:`~trainlab.data.csv_rows.MISSING` (and empty cells), spaces around them stripped as well, are missing
values (NaN). A data row that repeats the header
(:func:`~trainlab.data.table_diagnosis.refuse_repeated_header`: files joined with ``cat``) is refused. The
causes named in the errors are found by :mod:`trainlab.data.table_diagnosis`; line numbers and wide files
are read by :mod:`trainlab.data.csv_rows` and :mod:`trainlab.data.csv_wide`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.config_fields import short_repr
from trainlab.data.csv_rows import MISSING, check_field_counts, file_rows, written_row
from trainlab.data.csv_wide import (
    WIDE_COLUMNS,
    WideCells,
    read_wide,
    wide_bools,
    wide_text_numbers,
    written_columns,
)
from trainlab.data.dataset import check_float32_range
from trainlab.data.table_diagnosis import (
    DELIMITER_NAMES,
    hint_written,
    not_utf8,
    plain_number,
    refuse_repeated_header,
)
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn

# a sentinel column one past the header's: a row with one field too many fills it instead of being
# silently accepted (pandas would otherwise take an extra first-row field as an index column)
_EXTRA = "\x00trainlab-extra-field"


def check_delimiter(delimiter: object) -> str:
    """One character; the two characters ``\\t`` (what ``--set data.delimiter=\\t`` gives) mean a tab."""
    if delimiter == "\\t":
        return "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise ConfigError(f"data.delimiter must be one character such as ',', ';' or '\\t'; got {delimiter!r}")
    return delimiter



def read_header(file: Path, delimiter: str, settable: bool = True) -> tuple[list[str], int]:
    """The header's column names (stripped) and the number of rows pandas' ``read_csv(skiprows=)`` passes to
    leave it behind: the file lines before it (blank ones too) and the header as one row, which it is to pandas
    even where a quoted name holds a line break (``"height<newline>(cm)"``, a spreadsheet's wrapped header:
    counting its file lines skipped the first data row too).

    One-line errors for an empty file, repeated names, and a first line that is Excel's ``sep=;`` (the
    delimiter hint Excel reads and writes, which is no header) (``settable``: as for :func:`delimiter_hint`).
    """
    rows = file_rows(file, delimiter)
    first = next(rows, None)
    rows.close()
    if first is None:
        raise DataError(f"CSV file {file} is empty (expected a header row)")
    written = delimiter.join(first[1])
    if excel := re.fullmatch(r"sep=(.)", written):
        hint = excel[1]
        if hint == delimiter:
            fix = ""
        elif settable:
            fix = f" and set data.delimiter: '{hint_written(hint)}'"
        else:
            fix = f" and save the file {DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated"
        raise DataError(f"CSV file {file} line {first[0]} is {written!r}, Excel's hint of the delimiter, not a header "
                        f"row: delete that line{fix}")
    if written.startswith("PK\x03\x04"):  # a zip archive of stored (uncompressed) text decodes as UTF-8
        raise DataError(f"CSV file {file} is a zip archive: unzip it first")
    header = [cell.strip() for cell in first[1]]
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        shown = ", ".join(header[:50]) + (", ..." if len(header) > 50 else "")
        raise DataError(f"CSV file {file} has column '{repeated[0]}' more than once (columns: {shown}); rename one: "
                        "every column needs a name of its own, also one that is not used")
    return header, first[0]


# the file name trainlab.data.predict_input gives the table of a pandas DataFrame's rows (run.predict(df)),
# which no file holds: messages name it "the DataFrame", not "CSV file the DataFrame"
DATAFRAME = Path("the DataFrame")


@dataclass
class CsvTable:
    """The cells of a CSV file by column, and the file lines of its data rows.

    ``frame`` is a pandas DataFrame (the usual, tall file) or, for a wide file (more than
    :data:`~trainlab.data.csv_wide.WIDE_COLUMNS` columns, where pandas spends seconds per 10^4 columns on
    bookkeeping), the :class:`~trainlab.data.csv_wide.WideCells` of :func:`~trainlab.data.csv_wide.read_wide`:
    the cells parsed as numbers as they were read, and the text of the columns that hold some. Use :func:`numbers`, :func:`strings` and
    :func:`numeric_block`, which read both and strip the cells' spaces.
    """

    file: Path
    header: list[str]
    delimiter: str
    frame: Any
    _lines: list[int] | None = field(default=None, repr=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _space_checked: set[str] = field(default_factory=set, repr=False)  # columns :func:`strings` checked

    def __post_init__(self) -> None:
        self._index = {name: j for j, name in enumerate(self.header)}

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def wide(self) -> bool:
        return isinstance(self.frame, WideCells)

    def cell(self, row: int, name: str, strip: bool = True) -> str:
        """The cell as text, for messages; ``strip=False``: with its spaces."""
        if self.wide:
            column = self._index[name]
            text = self.frame.text.get(column)
            cell = str(text[row]) if text is not None else written_row(self.file, self.delimiter, self.line(row))[column]
        else:
            cell = str(self.frame.iloc[row, self._index[name]])
        return cell.strip() if strip else cell

    def line(self, row: int) -> int:
        """The file line (1-based) where data row ``row`` (0-based) starts."""
        if self._lines is None:
            self._lines = check_field_counts(self.file, self.delimiter, self.header)
        return self._lines[row]

    @property
    def source(self) -> str:
        """How messages name the table: ``CSV file f.csv``, or ``the DataFrame`` for a DataFrame's rows
        (:data:`DATAFRAME`)."""
        return str(DATAFRAME) if self.file == DATAFRAME else f"CSV file {self.file}"

    def place(self, row: int, name: str, what: str = "column") -> str:
        """A cell for messages: ``CSV file f.csv line 7, column 'a'`` (``what``: ``target`` for a target column)."""
        return f"CSV file {self.file} line {self.line(row)}, {what} '{name}'"


# above this many columns the table is read by the csv module into one array of strings

def read_table(file: Path, delimiter: str = ",", text_columns: Sequence[str] = (),
               delimiter_settable: bool = True) -> CsvTable:
    """Every column of ``file``; ragged rows and a row repeating the header are one-line errors.

    pandas infers each column's type, except ``text_columns``, which are kept as text (a categorical
    column of codes such as ``"007"`` keeps its leading zeros). ``delimiter_settable``: whether a ragged
    row's hint may say "set data.delimiter" (False for predict, whose run fixes it).
    """
    import pandas as pd

    header, header_rows = read_header(file, delimiter, delimiter_settable)
    if len(header) > WIDE_COLUMNS:
        cells, lines = read_wide(file, delimiter, header, delimiter_settable, text_columns)
        wide = CsvTable(file, header, delimiter, cells, _lines=lines)
        _check_repeated_header(wide)
        return wide
    try:
        frame = pd.read_csv(
            file, sep=delimiter, header=None, skiprows=header_rows, names=[*header, _EXTRA],
            encoding="utf-8-sig", engine="c",
            na_values=list(MISSING), keep_default_na=False, skip_blank_lines=True, low_memory=False,
            dtype={name: str for name in text_columns if name in set(header)} or None,
        )
    except UnicodeDecodeError:
        raise not_utf8(file, "CSV") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({name: np.empty(0) for name in [*header, _EXTRA]})
    except pd.errors.ParserError as exc:
        first = (str(exc).strip().splitlines() or ["parse error"])[0]
        if "EOF inside string" in first:  # pandas counts rows after those it skipped; the file's line is the user's
            *_, (line, _) = file_rows(file, delimiter)  # the unclosed quote's row runs on to the end of the file
            raise DataError(f"CSV file {file} line {line}: a quote (\") opens a field there and is never closed, "
                            "so the rest of the file is read as one text: close it, or write the field without "
                            "the quote") from None
        check_field_counts(file, delimiter, header, delimiter_settable)  # names the line when a row is ragged
        raise DataError(f"CSV file {file} is not valid CSV: {first}") from None
    except OSError as exc:
        raise DataError(f"cannot read CSV file {file}: {exc.strerror or exc}") from None
    table = CsvTable(file, header, delimiter, frame)
    if len(frame) and (frame[_EXTRA].notna().any() or frame[header[-1]].isna().any()):
        # one field too many fills the sentinel; one too few leaves the last column missing: find the row
        table._lines = check_field_counts(file, delimiter, header, delimiter_settable)
    _check_repeated_header(table)
    return table


def _check_repeated_header(table: CsvTable) -> None:
    """:func:`refuse_repeated_header` for the rows whose first cell is the first column's name, found in one
    comparison: none in the usual file, and none at all where pandas read the first column as numbers."""
    import pandas as pd

    name = table.header[0]
    if len(table.header) < 2 or not len(table):
        return
    if table.wide:  # the rows that repeat it were kept as they were read
        for row, cells in table.frame.repeats:
            refuse_repeated_header(table.file, table.line(row), cells, table.header, "CSV")
        return
    if pd.api.types.is_string_dtype(table.frame[name]) or pd.api.types.is_object_dtype(table.frame[name]):
        candidates = np.flatnonzero(table.frame[name].to_numpy() == name)
    else:  # numbers or booleans: a header name in the column would have made it text
        return
    for row in candidates:
        cells = [table.cell(int(row), column) for column in table.header]
        refuse_repeated_header(table.file, table.line(int(row)), cells, table.header, "CSV")



def numbers(table: CsvTable, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Column ``name`` as float64 (NaN where missing), and the rows holding text that is not a number.

    The second value is None when every non-missing cell is a number.
    """
    import pandas as pd

    if table.wide:
        column = table._index[name]
        if column in table.frame.text:
            return wide_text_numbers(table.frame.text[column])
        return table.frame.values[:, column].copy(), None
    series = table.frame[name]
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), None
    if is_bool_column(table, name):  # True/False with missing cells: pandas keeps Python bools and NaN
        return series.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else np.nan).to_numpy(
            dtype=np.float64), None
    # each distinct cell is parsed once (a column of categories holds a few among many rows: 0.4 s -> 0.03 s
    # for 500,000 rows); as text first: pandas keeps an integer past int64/uint64 (1e20 written out) as a Python
    # int in an object column, which has no .str (and was NaN, "not a number", beside text)
    codes, distinct = pd.factorize(series, use_na_sentinel=True)  # a missing cell: code -1
    stripped = pd.Series(distinct, dtype=object).astype("string").str.strip()
    marker = stripped.isin(MISSING).to_numpy()  # ' NA ': pandas' na_values match the cell as written
    parsed = pd.to_numeric(stripped.mask(marker), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.append(parsed, np.nan)[codes]  # code -1 picks the appended NaN / False
    bad = np.append(np.isnan(parsed) & ~marker, False)[codes]
    return values, (np.flatnonzero(bad) if bad.any() else None)


def separator_fix(cell: str, kind: str) -> tuple[str, str]:
    """How ``cell`` is written and how to write it, for the errors of a number written with separators
    (``cell``: a :func:`~trainlab.data.table_diagnosis.separated_number` example of ``kind``), training's and
    predict's alike: ``("thousands separators", "without them (e.g. 26287)")`` for ``26,287``,
    ``("a decimal comma", "with a decimal point (e.g. 12.5)")`` for ``12,5``, ``("a currency sign", "as plain
    numbers, without the sign (e.g. 1200.50)")`` for ``$1,200.50``; the caller writes
    ``'<cell>' is a number written with <how> ... write its numbers <fix>``."""
    how, fix = {"decimal": ("a decimal comma", "with a decimal point"),
                "currency": ("a currency sign", "as plain numbers, without the sign"),
                "percent": ("a percent sign", "as plain numbers, without the sign")}.get(
                    kind, ("thousands separators", "without them"))
    return how, f"{fix} (e.g. {plain_number(cell, kind)})"


def numeric_block(table: CsvTable, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Columns ``names`` as float64 (N, len(names)) in one conversion where possible (float64: a column of
    Unix times, 1.7e9, is a multiple of 128 in float32; preprocessing casts after standardising).

    Returns the block and the names of the columns that are not all numbers (their block columns
    are NaN; read them with :func:`numbers`). A number beyond float32's range (1e308) is a DataError
    naming its cell, not an inf.
    """
    import pandas as pd

    if not names:
        return np.empty((len(table), 0), dtype=np.float64), []
    if table.wide:  # parsed as read: a copy of the columns, the text columns parsed from their text
        columns = [table._index[n] for n in names]
        block = table.frame.values[:, columns]
        unparsed = []
        for k, column in enumerate(columns):
            if column in table.frame.text:
                block[:, k], bad = wide_text_numbers(table.frame.text[column])
                if bad is not None:
                    unparsed.append(k)
        check_float32_range(block, lambda row, col: table.place(row, names[col]))
        block[:, unparsed] = np.nan
        return block, [names[k] for k in unparsed]
    frame = table.frame
    numeric = [pd.api.types.is_bool_dtype(frame[n]) or pd.api.types.is_numeric_dtype(frame[n]) for n in names]
    block = np.full((len(table), len(names)), np.nan, dtype=np.float64)
    chosen = [j for j, ok in enumerate(numeric) if ok]
    if chosen:
        block[:, chosen] = frame[[names[j] for j in chosen]].to_numpy(dtype=np.float64, na_value=np.nan)
        check_float32_range(block[:, chosen], lambda row, col: table.place(row, names[chosen[col]]))
    return block, [n for n, ok in zip(names, numeric, strict=True) if not ok]


def empty_rows(table: CsvTable) -> np.ndarray:
    """The data rows (0-based) whose every cell is missing (a cell of spaces included): lines of delimiters
    alone (``,,,,``), which spreadsheet exports leave below the data. The text columns are read only on the
    rows whose numeric cells are all missing (none, in the usual file)."""
    import pandas as pd

    if table.wide:
        rows = np.flatnonzero(np.isnan(table.frame.values).all(axis=1))
        texts = list(table.frame.text.values())
    else:
        frame = table.frame[table.header]
        numeric = np.array([pd.api.types.is_numeric_dtype(frame[n]) or pd.api.types.is_bool_dtype(frame[n])
                            for n in table.header], dtype=bool)
        rows = np.flatnonzero(frame.isna().to_numpy()[:, numeric].all(axis=1)) if numeric.any() \
            else np.arange(len(frame))
        texts = [frame[name] for name, number in zip(table.header, numeric, strict=True) if not number]
    for cells in texts:
        if not len(rows):
            break
        column = cells[rows] if isinstance(cells, np.ndarray) else cells.iloc[rows].fillna("").to_numpy(dtype=str)
        rows = rows[np.isin(np.char.strip(column), MISSING)]
    return rows


def is_bool_column(table: CsvTable, name: str) -> bool:
    """Column ``name`` holds only ``True``/``False`` (and missing cells), which pandas reads as booleans."""
    if table.wide:
        column = table._index[name]
        return column in table.frame.text and wide_bools(table.frame.text[column]) is not None
    return is_bool_series(table.frame[name])


def is_bool_series(series: Any) -> bool:
    """``series`` holds only booleans and missing cells (pandas keeps Python bools and NaN then)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return True
    present = series.dropna()
    if len(present) == 0 or not isinstance(present.iloc[0], bool | np.bool_):  # text: no pass over the rows
        return False
    return bool(present.map(lambda v: isinstance(v, bool | np.bool_)).all())


def space_twins(cells: np.ndarray) -> list[tuple[str, str]]:
    """The pairs of distinct spellings among ``cells`` (strings, spaces kept) that stripping the spaces around
    them makes one value (``' cat'`` and ``'cat'``): for each such value, in the order first seen, its first
    spelling in ``cells`` and the next other one. One hashing pass (``pandas.unique``), then a loop over the
    merged spellings only.

    >>> space_twins(np.array([" cat", "cat", "dog ", "dog", "cat", "bird"]))
    [(' cat', 'cat'), ('dog ', 'dog')]
    """
    import pandas as pd

    distinct = pd.unique(cells)  # in the order first seen
    keys = np.char.strip(distinct.astype(str))
    merged = pd.Series(keys).duplicated(keep=False).to_numpy()
    first: dict[str, str] = {}
    pairs: dict[str, tuple[str, str]] = {}
    for spelling, key in zip(map(str, distinct[merged]), map(str, keys[merged]), strict=True):
        if key in first:
            pairs.setdefault(key, (first[key], spelling))
        else:
            first[key] = spelling
    return [pairs[key] for key in first]  # each merged value has two spellings at least


def _warn_space_twins(table: CsvTable, name: str, cells: np.ndarray, stripped: np.ndarray) -> None:
    """Warn once per column where stripping the spaces around its ``cells`` (:func:`space_twins`) merged
    distinct spellings into one value: one class of a target column, one category of a feature, where the
    data may mean two (as :func:`trainlab.data.labels.warn_case_twins` warns of ``Cat`` and ``cat``). Missing
    cells are left out: ``' NA'`` and ``'NA'`` are both missing."""
    if name in table._space_checked:
        return
    table._space_checked.add(name)
    changed = cells != stripped
    if not changed.any():  # the usual column: one vectorised comparison
        return
    candidates = np.isin(stripped, np.unique(stripped[changed])) & ~np.isin(stripped, MISSING)
    pairs = space_twins(cells[candidates])
    if pairs:
        (spelling, other), more = pairs[0], len(pairs) - 1
        also = f" ({more} more such pair{'s' if more > 1 else ''} in the column)" if more else ""
        warn(f"{table.source}: the values {short_repr(spelling)} and {short_repr(other)} in "
             f"{short_repr(name)} differ only in spaces around them, which are stripped, so they are read as one "
             f"class or category, {short_repr(spelling.strip())}{also}; fix the data if they are two")


def strings(table: CsvTable, name: str) -> np.ndarray:
    """Column ``name`` as stripped strings, missing markers as ``""``; warns once per column where stripping
    merged two spellings (:func:`_warn_space_twins`)."""
    if table.wide:
        column = table._index[name]
        if column not in table.frame.text:  # a column of numbers: its text is read from the file again
            table.frame.text.update(written_columns(table.file, table.delimiter, [column]))
        cells = table.frame.text[column]
        stripped = np.char.strip(cells)
        _warn_space_twins(table, name, cells, stripped)
        return np.where(np.isin(stripped, MISSING), "", stripped)
    import pandas as pd

    # each distinct cell once (first seen first, as space_twins orders them), NumPy's strip (C) over them; pandas'
    # .str.strip calls Python's per cell; a missing cell (code -1) picks the "" appended
    series = table.frame[name]
    if not (pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)):
        series = series.astype("string")  # numbers as text first: factorize takes -0.0 for 0.0 (equal floats)
    codes, distinct = pd.factorize(series, use_na_sentinel=True)
    cells = pd.Series(distinct, dtype=object).astype("string").to_numpy(dtype=str)
    stripped = np.char.strip(cells)
    _warn_space_twins(table, name, cells, stripped)
    read = np.where(np.isin(stripped, MISSING), "", stripped)  # ' NA ' too, as the wide path reads it
    return np.append(read, "")[codes]
