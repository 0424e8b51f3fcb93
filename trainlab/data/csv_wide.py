"""The reader of CSV files too wide for pandas: more than :data:`WIDE_COLUMNS` columns.

pandas spends seconds per 10^4 columns on bookkeeping, so a wide file is read by the csv module
(:func:`~trainlab.data.csv_rows.file_rows`) and each row parsed into float64 as it is read
(:class:`_WideRows`), without the text of every cell; only the columns that hold text keep it
(:class:`WideCells`). The numbers are read as pandas' C parser reads a narrow file's
(:func:`wide_number`, :func:`wide_bools`), so that a file reads the same on both sides of the line.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainlab.data.csv_rows import MISSING, data_rows, file_rows

# above this many columns the table is read by the csv module into float64 blocks (and the text that is text)
WIDE_COLUMNS = 2000


@dataclass
class WideCells:
    """The cells of a wide file, as :func:`read_wide` reads them: each parsed once, as its row is read.

    ``values`` (N, W) float64 is every cell as a number, as :func:`parse_numbers` reads it (NaN where missing,
    and where the cell is not a number). ``text`` maps a column's index to its cells as written (spaces kept)
    for the columns that hold a cell that is not a number, and those read_table's ``text_columns`` names;
    any other column's text is read from the file again when it is asked for
    (:func:`~trainlab.data.csv_table.strings`; :meth:`~trainlab.data.csv_table.CsvTable.cell` for messages).
    ``repeats``: (row, cells) of the data rows that are the header again.
    """

    values: np.ndarray
    text: dict[int, np.ndarray]
    repeats: list[tuple[int, list[str]]]

    def __len__(self) -> int:
        return len(self.values)


_MISSING_SET = frozenset(MISSING)


def wide_number(cell: str) -> float:
    """``cell`` as pandas' C parser reads a number: float() of it, except that digit separators (``1_000``),
    digits of other scripts (``１２``) and spellings of NaN that are no missing-value marker (``-nan``, ``nAn``:
    pandas reads NaN from :data:`MISSING` alone here), which float() also reads, are not numbers (ValueError)."""
    if "_" in cell or not cell.isascii():
        raise ValueError(cell)
    value = float(cell)
    if math.isnan(value):
        raise ValueError(cell)
    return value


# the cells pandas' C parser reads as booleans (exactly so: " True" is text), a column of only these and
# missing cells being a boolean column
BOOL_WORDS = {"True": 1.0, "TRUE": 1.0, "true": 1.0, "False": 0.0, "FALSE": 0.0, "false": 0.0}


def wide_bools(cells: np.ndarray) -> np.ndarray | None:
    """A wide file's text column ``cells`` (as written) as 1.0/0.0 (NaN where missing) when every cell is a
    :data:`BOOL_WORDS` word or missing and one is a word, as pandas reads a narrow file's; else None."""
    missing = np.isin(cells, MISSING)
    words = cells[~missing]
    if len(words) == 0 or not np.isin(words, list(BOOL_WORDS)).all():
        return None
    values = np.full(len(cells), np.nan)
    values[~missing] = [BOOL_WORDS[word] for word in words]
    return values


class _WideRows:
    """Rows of a wide file into float64 blocks of about 2^16 cells as they are read (no text of every cell),
    keeping the text of the columns that hold some (:class:`WideCells`)."""

    def __init__(self, header: list[str], text_columns: Sequence[str]) -> None:
        listed = set(text_columns)
        self.header = header
        self.block_rows = max(1, (1 << 16) // len(header))
        self.blocks: list[np.ndarray] = []
        self.filled = self.block_rows  # rows of the last block used: none yet
        self.count = 0
        self.text: dict[int, list[str]] = {j: [] for j, name in enumerate(header) if name in listed}
        self.late: set[int] = set()  # text columns found after their first rows, whose earlier text is gone
        self.repeats: list[tuple[int, list[str]]] = []

    def _next_row(self) -> np.ndarray:
        if self.filled == self.block_rows:
            self.blocks.append(np.empty((self.block_rows, len(self.header)), dtype=np.float64))
            self.filled = 0
        self.filled += 1
        return self.blocks[-1][self.filled - 1]

    def add(self, row: list[str]) -> None:
        """Row ``row`` (its cells as written) parsed into the next float64 row: float() of each cell (what
        ``astype(float64)`` of the stripped cell gives), NaN for a missing cell, a text column's cell, and
        a cell that is not a number, whose column is kept as text from then on."""
        for column, cells in self.text.items():
            cells.append(row[column])
        target = self._next_row()
        self.count += 1
        if row[0].strip() == self.header[0] and [cell.strip() for cell in row] == self.header:
            self.repeats.append((self.count - 1, row))  # refused once read: not parsed, no column made text
            target[:] = np.nan
            return
        written = list(row)
        for column in self.text:
            row[column] = "nan"
        joined = "".join(row)
        plain = "_" not in joined and joined.isascii()  # float() also reads 1_000 and other scripts' digits
        with contextlib.suppress(ValueError):
            if plain:
                target[:] = row  # the usual row: every cell a number, one C loop
                if not self._spelled_nan(written, row, target):
                    return
        row = ["nan" if cell.strip() in _MISSING_SET else cell for cell in row]
        with contextlib.suppress(ValueError):
            if plain:
                target[:] = row
                if not self._spelled_nan(written, row, target):
                    return
        for column, cell in enumerate(row):
            if column in self.text or written[column].strip() in _MISSING_SET:
                target[column] = np.nan
                continue
            try:
                target[column] = wide_number(cell)
            except ValueError:  # not a number: the column is text from here on
                target[column] = np.nan
                self.text[column] = [""] * (self.count - 1) + [cell]
                if self.count > 1:
                    self.late.add(column)

    def _spelled_nan(self, written: list[str], parsed: list[str], target: np.ndarray) -> bool:
        """Whether a cell of the row ``written`` that float() read as NaN (from ``parsed``: the row with its text
        and missing cells as ``nan``) is no missing-value marker nor a text column's: a ``-nan`` of the file's
        own, which pandas reads as text (:func:`wide_number`). The NaNs counted against the ``nan`` cells first:
        the cells are looked at only where they differ (a ``NaN`` or ``-nan`` written in the file)."""
        nans = np.flatnonzero(np.isnan(target))
        if len(nans) == parsed.count("nan"):
            return False
        return any(column not in self.text and written[column].strip() not in _MISSING_SET
                   for column in nans.tolist())

    def cells(self) -> WideCells:
        values = np.concatenate(self.blocks) if self.blocks else np.empty((0, len(self.header)))
        text = {column: np.array(cells, dtype=str) for column, cells in self.text.items()}
        return WideCells(values[:self.count], text, self.repeats)


def parse_numbers(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Stripped strings -> float64 (missing markers NaN), and the rows that are not numbers (or None), each
    cell read as :func:`wide_number` reads it."""
    missing = np.isin(cells, MISSING)
    text = np.where(missing, "nan", cells)
    joined = "".join(text.tolist())
    if "_" not in joined and joined.isascii():
        with contextlib.suppress(ValueError):
            values = text.astype(np.float64)
            if not np.isnan(values[~missing]).any():  # a '-nan' of the file's own: read cell by cell (below)
                return values, None
    values = np.full(len(cells), np.nan)
    bad = np.zeros(len(cells), dtype=bool)
    for i, cell in enumerate(text):
        if missing[i]:
            continue
        try:
            values[i] = wide_number(cell)
        except ValueError:
            bad[i] = True
    return values, (np.flatnonzero(bad) if bad.any() else None)


def wide_text_numbers(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A wide file's text column ``cells`` (as written) as numbers, as pandas reads the column of a narrow
    file: booleans as 1.0/0.0 (:func:`wide_bools`), else :func:`parse_numbers` of the stripped cells."""
    if (bools := wide_bools(cells)) is not None:
        return bools, None
    return parse_numbers(np.char.strip(cells))


def read_wide(file: Path, delimiter: str, header: list[str], settable: bool,
              text_columns: Sequence[str] = ()) -> tuple[WideCells, list[int]]:
    """A wide file's cells (:class:`WideCells`: each parsed as a number as its row is read, text kept for
    ``text_columns`` and the columns that hold some) and the start line of every data row; the field counts
    are checked as it goes (``settable``: as for :func:`~trainlab.data.csv_rows.check_field_counts`)."""
    lines = []
    parsed = _WideRows(header, text_columns)
    for line, row in data_rows(file, delimiter, header, settable):
        lines.append(line)
        parsed.add(row)
    cells = parsed.cells()
    if parsed.late:  # a column whose first text is below its first rows: its earlier cells, as written
        cells.text.update(written_columns(file, delimiter, sorted(parsed.late)))
    return cells, lines


def written_columns(file: Path, delimiter: str, columns: list[int]) -> dict[int, np.ndarray]:
    """Columns ``columns`` (indices) of a wide file as written (spaces kept), read from the file again."""
    cells: dict[int, list[str]] = {column: [] for column in columns}
    rows = file_rows(file, delimiter)
    next(rows, None)  # the header
    for _line, row in rows:
        for column in columns:
            cells[column].append(row[column])
    return {column: np.array(text, dtype=str) for column, text in cells.items()}
