"""A CSV file's rows with their file line numbers, read by Python's csv module in one pass.

The slow, exact reader beside pandas' fast one (:mod:`trainlab.data.csv_table`): it gives the line where
each row starts (a quoted field may hold line breaks), for the messages that name a line, and reads the
files too wide for pandas (:mod:`trainlab.data.csv_wide`). Dialect as in :mod:`trainlab.data.csv_table`:
UTF-8 with or without a byte-order mark, ``"``-quoted fields, blank lines skipped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from trainlab.data.table_diagnosis import not_utf8, ragged_row_error
from trainlab.errors import DataError

# cells read as missing (NaN), so that data.nan_policy decides; a subset of pandas' default na_values
MISSING = ("", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "<NA>", "#N/A")
# the Python csv module refuses fields longer than this; big enough for any real cell
FIELD_LIMIT = 64 * 1024 * 1024


def open_text(file: Path) -> io.TextIOWrapper:
    """``file`` opened for the csv module; utf-8-sig: a byte-order mark (Excel writes one) is not part of the
    first column's name."""
    return open(file, newline="", encoding="utf-8-sig")


def file_rows(file: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank row, header included, in one pure-Python pass."""
    limit = csv.field_size_limit()
    csv.field_size_limit(FIELD_LIMIT)
    try:
        with open_text(file) as handle:
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


def data_rows(file: Path, delimiter: str, header: list[str], settable: bool = True) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every data row (the header passed over); a DataError at the first row whose
    field count is not the header's (``settable``: whether the hint may say "set data.delimiter", as for
    :func:`~trainlab.data.table_diagnosis.delimiter_hint`)."""
    rows = file_rows(file, delimiter)
    header_line = next(rows, (1, []))[0]
    for line, row in rows:
        if len(row) != len(header):
            rows.close()
            raise ragged_row_error(file, line, row, header, delimiter, settable, header_line)
        yield line, row


def check_field_counts(file: Path, delimiter: str, header: list[str], settable: bool = True) -> list[int]:
    """The start line of every data row, the field counts checked (:func:`data_rows`)."""
    return [line for line, _row in data_rows(file, delimiter, header, settable)]


def written_row(file: Path, delimiter: str, line: int) -> list[str]:
    """The data row that starts at file line ``line``, as written, read from the file again (for a message)."""
    rows = file_rows(file, delimiter)
    for start, cells in rows:
        if start == line:
            rows.close()
            return cells
    raise DataError(f"CSV file {file} changed while it was read (line {line} is gone); read it again")
