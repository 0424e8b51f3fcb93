"""Why a text table cannot be read: the causes that :mod:`trainlab.data.csv_table` and the text sources
(:mod:`trainlab.data.text`) name in their one-line errors, and the fix each message gives.

Contract: nothing here parses a table. Each function gets what the caller has already read (a header, a
row, a column's cells) and returns a hint to append to a message, a :class:`~trainlab.errors.DataError` to
raise, or raises one; only :func:`not_utf8` opens the file, to read the bytes that name the cause. The
causes recognised:

- not UTF-8 (:func:`not_utf8`): a gzip or zip file, UTF-16 text (Excel's "Unicode text"), by their first
  bytes; otherwise the line of the first byte that is not UTF-8 and an ``iconv`` command;
- a header line that is a data row (:data:`NO_HEADER`) or holds another delimiter (:func:`other_delimiter`,
  :func:`delimiter_hint`);
- a data row that repeats the header, as ``cat a.csv b.csv`` leaves (:func:`refuse_repeated_header`);
- a row whose field count is not the header's (:func:`ragged_row_error`): a comment line, a space before an
  opening quote, another delimiter with decimal commas;
- numbers written with thousands separators, a decimal comma, a currency or a percent sign, which read as
  text (:func:`separated_number`, :func:`plain_number`).
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainlab.config_fields import counted, short_repr
from trainlab.errors import DataError
from trainlab.shell_command import utf8_conversion

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


# a number written with thousands separators: 1,234 / 1 234 / 1'234 / 1_234 / 1\u00a0234 (French exports) with
# a decimal point, 1.234.567 with a decimal comma, or Indian grouping 1,00,000; a first group starting with 0
# ("0,125") is a decimal comma, not grouping
_GROUPED = (re.compile(r"[-+]?[1-9]\d{0,2}(?:([,' _\u00a0\u202f])\d{3})(?:\1\d{3})*(?:\.\d+)?"),
            re.compile(r"[-+]?[1-9]\d{0,2}(?:\.\d{3}){2,}(?:,\d+)?"),
            re.compile(r"[-+]?[1-9]\d?(?:,\d{2})+,\d{3}(?:\.\d+)?"))


# a decimal comma (European exports): 12,5 / -0,125 / 3,14159 / 1.234,5 (dot-grouped) / 1,5e-3
_DECIMAL_COMMA = re.compile(r"[-+]?(?:\d+|[1-9]\d{0,2}(?:\.\d{3})+),\d+(?:[eE][-+]?\d+)?")


# an amount with a currency sign ($1,200.50, -€3, 9.99 €, £5) or a percentage (12%, 12.5 %): the number inside
_UNIT = re.compile(r"(?P<sign>[-+]?)\s*(?:(?P<before>[$€£¥])\s*(?P<n1>[^$€£¥%\s][^$€£¥%]*?)|"
                   r"(?P<n2>[^$€£¥%\s][^$€£¥%]*?)\s*(?P<after>[$€£¥%]))")


def _unit_number(cell: str) -> tuple[str, str] | None:
    """``(kind, number)`` for a cell that is a number with a currency sign (``"currency"``) or a percent sign
    (``"percent"``), the number as written without it (separators kept); None otherwise."""
    if not any(sign in cell for sign in "$€£¥%"):  # the usual cell: no regex (its spaces are matched lazily)
        return None
    found = _UNIT.fullmatch(cell)
    if found is None:
        return None
    number = found["sign"] + (found["n1"] or found["n2"] or "")
    finite = (value := parsed_number(number)) is not None and math.isfinite(value)  # not 'inf%', 'nan $'
    if not (finite or _DECIMAL_COMMA.fullmatch(number) or any(pattern.fullmatch(number) for pattern in _GROUPED)):
        return None
    return ("percent" if found["after"] == "%" else "currency"), number


def separated_number(cells: np.ndarray) -> tuple[str, str] | None:
    """``(kind, example)`` when every non-empty cell is a number and some are written with separators
    or a unit sign that make them text, else None. ``kind`` is ``"currency"`` or ``"percent"`` when some
    cell carries a currency sign (``$1,200.50``, ``9.99 €``) or a percent sign (``12%``); else ``"decimal"``
    when some cell can only be a decimal comma (``12,5``, ``0,125``, ``3,14159``: then ``1,234`` in the same
    column is 1.234 too), else ``"grouped"`` (thousands separators: ``864,237``). Read as text, such a column
    makes a target of many one-row classes or a categorical feature of many one-row categories; the caller
    says so instead.
    """
    import pandas as pd

    # each distinct cell once, in the order they first appear (the examples named are the same)
    present = [c for c in pd.unique(np.asarray(cells, dtype=object)) if c]
    grouped = decimal = None
    unit: tuple[str, str] | None = None
    for cell in present:
        if (found := _unit_number(cell)) is not None:
            unit = unit or (found[0], cell)
            continue
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
    if unit is not None:
        return unit
    if decimal is not None:
        return "decimal", decimal
    return ("grouped", grouped) if grouped is not None else None


def plain_number(cell: str, kind: str) -> str:
    """``cell`` (a :func:`separated_number` example of ``kind``) as a plain number: ``1.234.567,5`` and
    (decimal) ``12,5`` -> ``1234567.5`` and ``12.5``; (grouped) ``1 234`` -> ``1234``; (currency, percent)
    ``$1,200.50`` -> ``1200.50``, ``12%`` -> ``12``."""
    if kind in ("currency", "percent"):
        found = _unit_number(cell)
        number = found[1] if found is not None else cell
        if parses_as_number(number):
            return number
        grouped = any(pattern.fullmatch(number) for pattern in _GROUPED)  # 1,500 $; else 9,99 € (a decimal comma)
        return plain_number(number, "decimal" if _DECIMAL_COMMA.fullmatch(number) and not grouped else "grouped")
    if kind == "decimal" or _GROUPED[1].fullmatch(cell):
        return cell.replace(".", "").replace(",", ".")
    return re.sub(r"[,' _\u00a0\u202f]", "", cell)


def ragged_row_error(file: Path, line: int, row: list[str], header: list[str], delimiter: str, settable: bool,
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
    if (kind := _NOT_TABLES.get(Path(file).suffix.lower())) is not None:  # a config given where the data goes
        hint += f"; {Path(file).name} is named as {kind}, not a CSV table: give the CSV file of the rows"
    return DataError(f"CSV file {file} line {line} has {counted(len(row), 'field')}; the header has {len(header)}{hint}")


# files a command line may name in a CSV's place (the run's config, a JSON record), read as CSV until a row's
# field count differs from the header's
_NOT_TABLES = {".yaml": "a YAML file", ".yml": "a YAML file", ".json": "a JSON file", ".jsonl": "a JSON Lines file",
               ".py": "a Python file", ".md": "a Markdown file", ".html": "an HTML page", ".xlsx": "an Excel workbook",
               ".ipynb": "a notebook"}


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
          (b"\xfe\xff", "is saved as UTF-16 (Excel's 'Unicode text'): save it as 'CSV UTF-8' instead"),
          # a file of another kind given where a table is read (an image to a text run's predict)
          (b"\x89PNG", "is a PNG image, not a text table"), (b"\xff\xd8\xff", "is a JPEG image, not a text table"),
          (b"GIF8", "is a GIF image, not a text table"), (b"%PDF", "is a PDF document, not a text table"),
          (b"PAR1", "is a Parquet file, not a text table: export it as CSV (pandas: df.to_csv(path, index=False))"))


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
    return DataError(f"{kind} file {file} is not UTF-8{where}: {utf8_conversion(file, _holds_windows_bytes(file))}")


def _holds_windows_bytes(file: Path) -> bool:
    """Whether ``file`` holds a byte 0x80-0x9f that is no part of UTF-8 text around it, read in 1 MiB chunks: in
    Windows-1252 (what Excel on Windows writes) those are ``€``, curly quotes and dashes, in Latin-1 control
    characters, so converting it from Latin-1 would keep them as such. None of the five bytes Windows-1252 leaves
    undefined may be there (iconv stops at them). Decides only the advice: an error in reading it is False."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")  # a stray byte b -> U+DC00 + b
    found = False
    try:
        with open(file, "rb") as handle:
            while chunk := handle.read(1 << 20):
                text = decoder.decode(chunk)
                if _UNDEFINED_IN_CP1252.search(text):
                    return False
                found = found or bool(_WINDOWS_BYTE.search(text))
    except OSError:
        return False
    return found


_WINDOWS_BYTE = re.compile("[\udc80-\udc9f]")
# the bytes Windows-1252 leaves undefined: iconv -f cp1252 stops at them, -f latin1 reads them
_UNDEFINED_IN_CP1252 = re.compile("[\udc81\udc8d\udc8f\udc90\udc9d]")


def parsed_number(cell: str) -> float | None:
    """``float(cell)`` (``inf`` and ``nan`` included), or None when it is not a number."""
    try:
        return float(cell)
    except ValueError:
        return None


def parses_as_number(cell: str) -> bool:
    """``float(cell)`` reads it (``inf`` and ``nan`` included): a header of such cells is a data row."""
    return parsed_number(cell) is not None


# cells that mark a missing value in some datasets (UCI's "?") but are not missing values here (nor in pandas)
MISSING_LOOKALIKES = frozenset({"?", "??", "-", "--", "---", ".", "na", "n.a.", "n.a", "n/a", "#na", "none", "null",
                                "nil", "missing", "unknown"})


def not_a_number(place: str, cell: str, what: str) -> DataError:
    """The error for ``cell`` at ``place`` (file, line and column), text where numbers are read; a target
    (``what``) that is text among numbers (``0``, ``1``, ``one``) is neither numbers nor class names.
    A missing-value marker that is not read as one (:data:`MISSING_LOOKALIKES`, UCI's ``?``) is named so
    (a cell of spaces, or a marker with spaces around it, is missing: the cells are read stripped)."""
    hint, shown = "", short_repr(cell)
    if cell.strip().casefold() in MISSING_LOOKALIKES:
        hint = (f" (if {short_repr(cell.strip())} marks a missing value, replace it with an empty cell or NA)")
    return DataError(f"{place}: {shown} is not a number"
                     + (" while other targets are numeric" if what == "target" else "") + hint)
