"""Reading a CSV file into named columns with pandas' C parser, with one-line errors that name lines.

The fast path is one ``pandas.read_csv`` call (about a second per 10^7 cells). Line numbers are
only needed when something is wrong, so they come from a second, pure-Python pass over the file
(:meth:`CsvTable.line`) that is made only on the error path, or when a row may be short.

Dialect: a header row; UTF-8 with or without a byte-order mark; fields quoted with ``"`` may hold
the delimiter and newlines; ``delimiter`` is one character (``,`` by default, ``;`` or a tab);
blank lines are skipped. Cells in :data:`MISSING` (and empty cells) are missing values (NaN). A data
row that repeats the header (:func:`refuse_repeated_header`: files joined with ``cat``) is refused.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.data.dataset import check_float32_range
from trainlab.errors import ConfigError, DataError

# cells read as missing (NaN), so that data.nan_policy decides; a subset of pandas' default na_values
MISSING = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "<NA>", "#N/A")
# a sentinel column one past the header's: a row with one field too many fills it instead of being
# silently accepted (pandas would otherwise take an extra first-row field as an index column)
_EXTRA = "\x00trainlab-extra-field"
# the Python csv module refuses fields longer than this; big enough for any real cell
FIELD_LIMIT = 64 * 1024 * 1024


# the hint for a header line that looks like a data row (a file saved without its header); the csv and text
# sources' alike
NO_HEADER = ("; its first line looks like a data row, but the first line is read as the header, which names the "
             "columns: add a header line")


DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}


def other_delimiter(line: str, delimiter: str) -> str | None:
    """The delimiter a header line read with ``delimiter`` seems to use instead: the commonest other one
    of :data:`DELIMITER_NAMES` in it; None when the line holds ``delimiter`` or none of them."""
    if delimiter in line:
        return None
    others = [other for other in DELIMITER_NAMES if other != delimiter and other in line]
    return max(others, key=line.count) if others else None


def check_delimiter(delimiter: object) -> str:
    """One character; the two characters ``\\t`` (what ``--set data.delimiter=\\t`` gives) mean a tab."""
    if delimiter == "\\t":
        return "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise ConfigError(f"data.delimiter must be one character such as ',', ';' or '\\t'; got {delimiter!r}")
    return delimiter


def refuse_repeated_header(file: Path, line: int, cells: Sequence[str], header: Sequence[str], kind: str) -> None:
    """A DataError when the data row ``cells`` (starting on file ``line``) is the header again, every cell
    (stripped) the name of its column: what ``cat a.csv b.csv`` leaves when each file has its header. Read
    as data it would be one row of a class named as the label column (``label``) or a category named as
    its column. A one-column header is not checked (a one-word text is data there); ``kind`` names the
    file in the message (``CSV``, ``text``)."""
    if len(header) > 1 and len(cells) == len(header) and all(
            cell.strip() == name for cell, name in zip(cells, header, strict=True)):
        raise DataError(f"{kind} file {file} line {line} repeats the header: files joined with cat? delete that "
                        "line (to join files with headers, keep the first file's: tail -n +2 for the others)")


# the first bytes of files that are not text, with what to do about each
_MAGIC = ((b"\x1f\x8b", "is gzip-compressed: gunzip it first"),
          (b"PK\x03\x04", "is a zip archive: unzip it first"),
          (b"\xff\xfe", "is saved as UTF-16 (Excel's 'Unicode text'): save it as 'CSV UTF-8' instead"),
          (b"\xfe\xff", "is saved as UTF-16 (Excel's 'Unicode text'): save it as 'CSV UTF-8' instead"))


def _first_non_utf8(file: Path) -> tuple[int, int] | None:
    """(1-based line, byte value) of the first byte of ``file`` that is not UTF-8, read in 1 MiB chunks
    (the offset in a decoder's exception is within its chunk, so the file's is counted here)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0  # in the bytes fed so far
    with open(file, "rb") as handle:
        while chunk := handle.read(1 << 20):
            pending = decoder.getstate()[0]  # an unfinished character carried over from the last chunk
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                return newlines - pending.count(b"\n") + data[:exc.start].count(b"\n") + 1, data[exc.start]
            newlines += chunk.count(b"\n")
    pending = decoder.getstate()[0]  # a character cut off by the end of the file
    return (newlines - pending.count(b"\n") + 1, pending[0]) if pending else None


def not_utf8(file: Path, kind: str) -> DataError:
    """The error for ``file`` (a ``kind`` file: ``CSV``, ``text``) that failed to decode as UTF-8: a gzip or
    zip file, or UTF-16 text (Excel's "Unicode text"), by their first bytes; otherwise the line of the first
    byte that is not UTF-8 (a Latin-1 or Windows-1252 export: ``ü`` is the one byte 0xfc) and how to convert."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(4)
        for magic, what in _MAGIC:
            if head.startswith(magic):
                return DataError(f"{kind} file {file} {what}")
        found = _first_non_utf8(file)
    except OSError as exc:
        return DataError(f"cannot read {kind} file {file}: {exc.strerror or exc}")
    where = f" (line {found[0]} has the byte 0x{found[1]:02x})" if found else ""
    return DataError(f"{kind} file {file} is not UTF-8{where}: save it as UTF-8 "
                     f"(e.g. iconv -f latin1 -t utf-8 {file.name} > {file.stem}-utf8{file.suffix})")


def _open_text(file: Path) -> io.TextIOWrapper:
    # utf-8-sig: a byte-order mark (Excel writes one) is not part of the first column's name
    return open(file, newline="", encoding="utf-8-sig")


def _rows(file: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank row, header included, in one pure-Python pass."""
    limit = csv.field_size_limit()
    csv.field_size_limit(FIELD_LIMIT)
    try:
        with _open_text(file) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            start = 1
            for row in reader:
                if row:  # blank lines are skipped, as pandas does
                    yield start, row
                start = reader.line_num + 1
    except UnicodeDecodeError:
        raise not_utf8(file, "CSV") from None
    except csv.Error as exc:
        raise DataError(f"CSV file {file} is not valid CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read CSV file {file}: {exc.strerror or exc}") from None
    finally:
        csv.field_size_limit(limit)


def read_header(file: Path, delimiter: str, settable: bool = True) -> tuple[list[str], int]:
    """The header's column names (stripped) and the number of file lines up to its end.

    One-line errors for an empty file, repeated names, and a first line that is Excel's ``sep=;`` (the
    delimiter hint Excel reads and writes, which is no header) (``settable``: as for :func:`delimiter_hint`).
    """
    rows = _rows(file, delimiter)
    first = next(rows, None)
    second = next(rows, None)  # where the first data row starts: the header ends on the line before
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
        raise DataError(f"CSV file {file} has column '{repeated[0]}' more than once (columns: {shown})")
    return header, (second[0] - 1 if second else first[0])


@dataclass
class CsvTable:
    """The cells of a CSV file by column, and the file lines of its data rows.

    ``frame`` is a pandas DataFrame (the usual, tall file) or, for a wide file (more than
    :data:`WIDE_COLUMNS` columns, where pandas spends seconds per 10^4 columns on bookkeeping), a
    NumPy array of the raw cell strings (N, W). Use :func:`numbers`, :func:`strings` and
    :func:`numeric_block`, which read both.
    """

    file: Path
    header: list[str]
    delimiter: str
    frame: Any
    _lines: list[int] | None = field(default=None, repr=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {name: j for j, name in enumerate(self.header)}

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def wide(self) -> bool:
        return isinstance(self.frame, np.ndarray)

    def cell(self, row: int, name: str, strip: bool = True) -> str:
        """The cell as text, for messages; ``strip=False``: with its spaces (a wide table's are stripped)."""
        if self.wide:
            cell = str(self.frame[row, self._index[name]])
        else:
            cell = str(self.frame.iloc[row, self._index[name]])
        return cell.strip() if strip else cell

    def line(self, row: int) -> int:
        """The file line (1-based) where data row ``row`` (0-based) starts."""
        if self._lines is None:
            self._lines = check_field_counts(self.file, self.delimiter, self.header)
        return self._lines[row]

    def place(self, row: int, name: str, what: str = "column") -> str:
        """A cell for messages: ``CSV file f.csv line 7, column 'a'`` (``what``: ``target`` for a target column)."""
        return f"CSV file {self.file} line {self.line(row)}, {what} '{name}'"


# above this many columns the table is read by the csv module into one array of strings
WIDE_COLUMNS = 2000


def hint_written(delimiter: str) -> str:
    """``delimiter`` as it is written in YAML or ``--set`` (a tab as ``\\t``)."""
    return "\\t" if delimiter == "\t" else delimiter


def delimiter_hint(header: list[str], delimiter: str, settable: bool = True) -> str:
    """``"; the header looks semicolon-separated: set data.delimiter: ';'"`` when a header read with
    ``delimiter`` is one column holding another delimiter (:func:`other_delimiter`), else ``""``.
    ``settable=False`` (predict: the run fixes data.delimiter): "save it comma-separated" instead."""
    other = other_delimiter(header[0], delimiter) if len(header) == 1 else None
    if other is None:
        return ""
    fix = (f"set data.delimiter: '{hint_written(other)}'" if settable
           else f"save it {DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated")
    return f"; the header looks {DELIMITER_NAMES[other]}-separated: {fix}"


def _ragged(file: Path, line: int, row: list[str], header: list[str], delimiter: str, settable: bool,
            header_line: int = 1) -> DataError:
    """The error for data row ``row`` (at file ``line``) whose field count is not the header's (read from file
    ``header_line``). The shorter of the two starting with ``#`` is a comment line, which the message says
    are not read as such; a field starting with a space and a quote (``1, "a, b"``) is split at the
    delimiter inside the quotes, which the message says too. A
    one-column header that holds another delimiter is the cause (a semicolon export read as commas:
    its decimal commas split each row into many fields), so the message says which delimiter to set,
    and that the decimal commas must become points when it sees some: the next error otherwise."""
    hint = delimiter_hint(header, delimiter, settable)
    short = (header_line, header) if len(header) < len(row) else (line, row)
    if short[1][0].lstrip().startswith("#"):  # a comment line ("# exported 2024") is read as a row
        hint += f"; line {short[0]} starts with '#': comment lines are not supported, delete it"
    spaced = next((cell for cell in [*header, *row] if re.match(r'\s+"', cell)), None)
    if spaced is not None:  # `1, "a, b"`: a quote opens a field only as its first character
        hint += (f"; a space before an opening quote makes the quote part of the text ({spaced!r}), so the "
                 f"{DELIMITER_NAMES.get(delimiter, repr(delimiter))} inside the quotes splits the field: write "
                 f"no space after the {DELIMITER_NAMES.get(delimiter, repr(delimiter))}s")
    if hint and delimiter == ",":
        other = other_delimiter(header[0], delimiter)
        cells = [cell.strip() for cell in delimiter.join(row).split(other)]
        comma = next((cell for cell in cells if _DECIMAL_COMMA.fullmatch(cell)  # 1,234 may be grouping: not said
                      and not any(pattern.fullmatch(cell) for pattern in _GROUPED)), None)
        if comma is not None:
            hint += (f", and write its numbers with a decimal point ('{comma}' has a decimal comma: "
                     f"{plain_number(comma, 'decimal')})")
    return DataError(f"CSV file {file} line {line} has {len(row)} fields; the header has {len(header)}{hint}")


def check_field_counts(file: Path, delimiter: str, header: list[str], settable: bool = True) -> list[int]:
    """The start line of every data row; a DataError at the first row whose field count is not the header's
    (``settable``: as for :func:`delimiter_hint`)."""
    lines = []
    rows = _rows(file, delimiter)
    header_line = next(rows, (1, []))[0]
    for line, row in rows:
        if len(row) != len(header):
            rows.close()
            raise _ragged(file, line, row, header, delimiter, settable, header_line)
        lines.append(line)
    return lines


def _read_wide(file: Path, delimiter: str, header: list[str], settable: bool) -> CsvTable:
    """A wide file: the csv module, field counts checked as it goes, cells kept as strings."""
    lines, cells = [], []
    rows = _rows(file, delimiter)
    header_line = next(rows, (1, []))[0]
    for line, row in rows:
        if len(row) != len(header):
            rows.close()
            raise _ragged(file, line, row, header, delimiter, settable, header_line)
        lines.append(line)
        cells.append(row)
    frame = np.array(cells, dtype=str) if cells else np.empty((0, len(header)), dtype=str)
    return CsvTable(file, header, delimiter, np.char.strip(frame), _lines=lines)


def read_table(file: Path, delimiter: str = ",", text_columns: Sequence[str] = (),
               delimiter_settable: bool = True) -> CsvTable:
    """Every column of ``file``; ragged rows and a row repeating the header are one-line errors.

    pandas infers each column's type, except ``text_columns``, which are kept as text (a categorical
    column of codes such as ``"007"`` keeps its leading zeros). ``delimiter_settable``: whether a ragged
    row's hint may say "set data.delimiter" (False for predict, whose run fixes it).
    """
    import pandas as pd

    header, header_lines = read_header(file, delimiter, delimiter_settable)
    if len(header) > WIDE_COLUMNS:
        wide = _read_wide(file, delimiter, header, delimiter_settable)
        _check_repeated_header(wide)
        return wide
    try:
        frame = pd.read_csv(
            file, sep=delimiter, header=None, skiprows=header_lines, names=[*header, _EXTRA],
            encoding="utf-8-sig", engine="c",
            na_values=list(MISSING), keep_default_na=False, skip_blank_lines=True, low_memory=False,
            dtype={name: str for name in text_columns if name in set(header)} or None,
        )
    except UnicodeDecodeError:
        raise not_utf8(file, "CSV") from None
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({name: np.empty(0) for name in [*header, _EXTRA]})
    except pd.errors.ParserError as exc:
        check_field_counts(file, delimiter, header, delimiter_settable)  # names the line when a row is ragged
        first = (str(exc).strip().splitlines() or ["parse error"])[0]
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
    if table.wide:
        candidates = np.flatnonzero(table.frame[:, 0] == name)
    elif pd.api.types.is_string_dtype(table.frame[name]) or pd.api.types.is_object_dtype(table.frame[name]):
        candidates = np.flatnonzero(table.frame[name].to_numpy() == name)
    else:  # numbers or booleans: a header name in the column would have made it text
        return
    for row in candidates:
        cells = [table.cell(int(row), column) for column in table.header]
        refuse_repeated_header(table.file, table.line(int(row)), cells, table.header, "CSV")


def _parse_numbers(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Stripped strings -> float64 (missing markers NaN), and the rows that are not numbers (or None)."""
    missing = np.isin(cells, MISSING)
    text = np.where(missing, "nan", cells)
    try:
        return text.astype(np.float64), None
    except ValueError:
        pass
    values = np.full(len(cells), np.nan)
    bad = np.zeros(len(cells), dtype=bool)
    for i, cell in enumerate(text):
        try:
            values[i] = float(cell)
        except ValueError:
            bad[i] = True
    return values, np.flatnonzero(bad)


def numbers(table: CsvTable, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Column ``name`` as float64 (NaN where missing), and the rows holding text that is not a number.

    The second value is None when every non-missing cell is a number.
    """
    import pandas as pd

    if table.wide:
        return _parse_numbers(table.frame[:, table._index[name]])
    series = table.frame[name]
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), None
    if is_bool_column(table, name):  # True/False with missing cells: pandas keeps Python bools and NaN
        return series.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else np.nan).to_numpy(
            dtype=np.float64), None
    values = pd.to_numeric(series.str.strip(), errors="coerce")
    bad = values.isna().to_numpy() & series.notna().to_numpy()
    return values.to_numpy(dtype=np.float64, na_value=np.nan), (np.flatnonzero(bad) if bad.any() else None)


def numeric_block(table: CsvTable, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Columns ``names`` as float32 (N, len(names)) in one conversion where possible.

    Returns the block and the names of the columns that are not all numbers (their block columns
    are NaN; read them with :func:`numbers`). A number beyond float32's range (1e308) is a DataError
    naming its cell, not an inf.
    """
    import pandas as pd

    if not names:
        return np.empty((len(table), 0), dtype=np.float32), []
    if table.wide:
        cells = table.frame[:, [table._index[n] for n in names]]
        values, bad = _parse_numbers(cells.reshape(-1))
        values = values.reshape(cells.shape)
        check_float32_range(values, lambda row, col: table.place(row, names[col]))
        block = values.astype(np.float32)
        if bad is None:
            return block, []
        columns = sorted({int(c) for c in bad % len(names)})
        block[:, columns] = np.nan
        return block, [names[c] for c in columns]
    frame = table.frame
    numeric = [pd.api.types.is_bool_dtype(frame[n]) or pd.api.types.is_numeric_dtype(frame[n]) for n in names]
    block = np.full((len(table), len(names)), np.nan, dtype=np.float32)
    chosen = [j for j, ok in enumerate(numeric) if ok]
    if chosen:
        with np.errstate(over="ignore"):  # a value beyond float32's range becomes inf: refused just below
            block[:, chosen] = frame[[names[j] for j in chosen]].to_numpy(dtype=np.float32, na_value=np.nan)
        for j in np.flatnonzero(np.isinf(block).any(axis=0)):  # a cell of "inf" stays inf: the NaN policy's
            column, _ = numbers(table, names[j])
            check_float32_range(column, lambda row, _col, name=names[j]: table.place(row, name))
    return block, [n for n, ok in zip(names, numeric, strict=True) if not ok]


def is_bool_column(table: CsvTable, name: str) -> bool:
    """Column ``name`` holds only ``True``/``False`` (and missing cells), which pandas reads as booleans."""
    return not table.wide and is_bool_series(table.frame[name])


def is_bool_series(series: Any) -> bool:
    """``series`` holds only booleans and missing cells (pandas keeps Python bools and NaN then)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return True
    present = series.dropna()
    if len(present) == 0 or not isinstance(present.iloc[0], bool | np.bool_):  # text: no pass over the rows
        return False
    return bool(present.map(lambda v: isinstance(v, bool | np.bool_)).all())


# a number written with thousands separators: 1,234 / 1 234 / 1'234 / 1_234 / 1\u00a0234 (French exports) with
# a decimal point, 1.234.567 with a decimal comma, or Indian grouping 1,00,000; a first group starting with 0
# ("0,125") is a decimal comma, not grouping
_GROUPED = (re.compile(r"[-+]?[1-9]\d{0,2}(?:([,' _\u00a0\u202f])\d{3})(?:\1\d{3})*(?:\.\d+)?"),
            re.compile(r"[-+]?[1-9]\d{0,2}(?:\.\d{3}){2,}(?:,\d+)?"),
            re.compile(r"[-+]?[1-9]\d?(?:,\d{2})+,\d{3}(?:\.\d+)?"))


# a decimal comma (European exports): 12,5 / -0,125 / 3,14159 / 1.234,5 (dot-grouped) / 1,5e-3
_DECIMAL_COMMA = re.compile(r"[-+]?(?:\d+|[1-9]\d{0,2}(?:\.\d{3})+),\d+(?:[eE][-+]?\d+)?")


def separated_number(cells: np.ndarray) -> tuple[str, str] | None:
    """``(kind, example)`` when every non-empty cell is a number and some are written with separators
    that make them text, else None. ``kind`` is ``"decimal"`` when some cell can only be a decimal
    comma (``12,5``, ``0,125``, ``3,14159``: then ``1,234`` in the same column is 1.234 too), else
    ``"grouped"`` (thousands separators: ``864,237``). Read as text, such a column makes a target of
    many one-row classes or a categorical feature of many one-row categories; the caller says so instead.
    """
    present = [c for c in cells if c]
    grouped = decimal = None
    for cell in present:
        if any(pattern.fullmatch(cell) for pattern in _GROUPED):
            grouped = grouped or cell
            continue
        if _DECIMAL_COMMA.fullmatch(cell):
            decimal = decimal or cell
            continue
        try:
            float(cell)
        except ValueError:
            return None
    if decimal is not None:
        return "decimal", decimal
    return ("grouped", grouped) if grouped is not None else None


def plain_number(cell: str, kind: str) -> str:
    """``cell`` (a :func:`separated_number` example of ``kind``) as a plain number: ``1.234.567,5`` and
    (decimal) ``12,5`` -> ``1234567.5`` and ``12.5``; (grouped) ``1 234`` -> ``1234``."""
    if kind == "decimal" or _GROUPED[1].fullmatch(cell):
        return cell.replace(".", "").replace(",", ".")
    return re.sub(r"[,' _\u00a0\u202f]", "", cell)


def strings(table: CsvTable, name: str) -> np.ndarray:
    """Column ``name`` as stripped strings, missing markers as ``""``."""
    if table.wide:
        cells = table.frame[:, table._index[name]]
        return np.where(np.isin(cells, MISSING), "", cells)
    series = table.frame[name]
    return series.astype("string").str.strip().fillna("").to_numpy(dtype=str)
