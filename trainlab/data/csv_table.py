"""Reading a CSV file into named columns with pandas' C parser, with one-line errors that name lines.

The fast path is one ``pandas.read_csv`` call (about a second per 10^7 cells). Line numbers are
only needed when something is wrong, so they come from a second, pure-Python pass over the file
(:meth:`CsvTable.line`) that is made only on the error path, or when a row may be short.

Dialect: a header row; UTF-8 with or without a byte-order mark; fields quoted with ``"`` may hold
the delimiter and newlines; ``delimiter`` is one character (``,`` by default, ``;`` or a tab);
blank lines are skipped. Cells in :data:`MISSING` (and empty cells) are missing values (NaN).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainlab.errors import ConfigError, DataError

# cells read as missing (NaN), so that data.nan_policy decides; a subset of pandas' default na_values
MISSING = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "<NA>", "#N/A")
# a sentinel column one past the header's: a row with one field too many fills it instead of being
# silently accepted (pandas would otherwise take an extra first-row field as an index column)
_EXTRA = "\x00trainlab-extra-field"
# the Python csv module refuses fields longer than this; big enough for any real cell
FIELD_LIMIT = 64 * 1024 * 1024


def check_delimiter(delimiter: object) -> str:
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise ConfigError(f"data.delimiter must be one character such as ',', ';' or '\\t'; got {delimiter!r}")
    return delimiter


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
    except UnicodeDecodeError as exc:
        raise DataError(f"CSV file {file} is not UTF-8 ({exc})") from None
    except csv.Error as exc:
        raise DataError(f"CSV file {file} is not valid CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read CSV file {file}: {exc.strerror or exc}") from None
    finally:
        csv.field_size_limit(limit)


def read_header(file: Path, delimiter: str) -> tuple[list[str], int]:
    """The header's column names (stripped) and the number of file lines up to its end.

    One-line errors for an empty file or repeated names.
    """
    rows = _rows(file, delimiter)
    first = next(rows, None)
    second = next(rows, None)  # where the first data row starts: the header ends on the line before
    rows.close()
    if first is None:
        raise DataError(f"CSV file {file} is empty (expected a header row)")
    header = [cell.strip() for cell in first[1]]
    repeated = [name for name, count in Counter(header).items() if count > 1]
    if repeated:
        shown = ", ".join(header[:50]) + (", ..." if len(header) > 50 else "")
        raise DataError(f"CSV file {file} has column '{repeated[0]}' more than once (columns: {shown})")
    return header, (second[0] - 1 if second else first[0])


@dataclass
class CsvTable:
    """The columns of a CSV file as pandas read them, and the file lines of its data rows."""

    file: Path
    header: list[str]
    delimiter: str
    frame: object  # pandas.DataFrame, one column per header name
    _lines: list[int] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.frame)  # type: ignore[arg-type]

    def column(self, name: str) -> np.ndarray:
        return self.frame[name].to_numpy()  # type: ignore[index]

    def line(self, row: int) -> int:
        """The file line (1-based) where data row ``row`` (0-based) starts."""
        if self._lines is None:
            self._lines = check_field_counts(self.file, self.delimiter, len(self.header))
        return self._lines[row]


def check_field_counts(file: Path, delimiter: str, width: int) -> list[int]:
    """The start line of every data row; a DataError at the first row whose field count is not ``width``."""
    lines = []
    rows = _rows(file, delimiter)
    next(rows, None)  # the header
    for line, row in rows:
        if len(row) != width:
            rows.close()
            raise DataError(f"CSV file {file} line {line} has {len(row)} fields; the header has {width}")
        lines.append(line)
    return lines


def read_table(file: Path, delimiter: str = ",") -> CsvTable:
    """Every column of ``file`` (pandas infers each column's type); ragged rows are one-line errors."""
    import pandas as pd

    header, header_lines = read_header(file, delimiter)
    try:
        frame = pd.read_csv(
            file, sep=delimiter, header=None, skiprows=header_lines, names=[*header, _EXTRA],
            encoding="utf-8-sig", engine="c",
            na_values=list(MISSING), keep_default_na=False, skip_blank_lines=True, low_memory=False,
        )
    except UnicodeDecodeError as exc:
        raise DataError(f"CSV file {file} is not UTF-8 ({exc})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"CSV file {file} is empty (expected a header row)") from None
    except pd.errors.ParserError as exc:
        check_field_counts(file, delimiter, len(header))  # names the line when a row is ragged
        first = (str(exc).strip().splitlines() or ["parse error"])[0]
        raise DataError(f"CSV file {file} is not valid CSV: {first}") from None
    except OSError as exc:
        raise DataError(f"cannot read CSV file {file}: {exc.strerror or exc}") from None
    table = CsvTable(file, header, delimiter, frame)
    if len(frame) and (frame[_EXTRA].notna().any() or frame[header[-1]].isna().any()):
        # one field too many fills the sentinel; one too few leaves the last column missing: find the row
        table._lines = check_field_counts(file, delimiter, len(header))
    table.frame = frame.drop(columns=[_EXTRA])
    return table


def numbers(table: CsvTable, name: str, what: str = "column") -> tuple[np.ndarray, np.ndarray | None]:
    """Column ``name`` as float64 (NaN where missing), and the rows holding text that is not a number.

    The second value is None when every non-missing cell is a number.
    """
    import pandas as pd

    series = table.frame[name]  # type: ignore[index]
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), None
    values = pd.to_numeric(series.str.strip(), errors="coerce")
    bad = values.isna().to_numpy() & series.notna().to_numpy()
    return values.to_numpy(dtype=np.float64, na_value=np.nan), (np.flatnonzero(bad) if bad.any() else None)


def strings(table: CsvTable, name: str) -> np.ndarray:
    """Column ``name`` as stripped strings, missing cells as ``""``."""
    series = table.frame[name]  # type: ignore[index]
    return series.astype("string").str.strip().fillna("").to_numpy(dtype=str)
