"""Array files a user already has: ``npz`` and ``csv``."""

from __future__ import annotations

import csv
import zipfile
import zlib
from pathlib import Path

import numpy as np

from trainlab.data import DATA_SOURCES, RawData, check_task
from trainlab.data.paths import resolve_file
from trainlab.errors import DataError

NPY_MAGIC = b"\x93NUMPY"  # a single-array .npy file
ZIP_MAGIC = b"PK"  # every zip (and so every .npz) starts with a "PK" record
# CSV cells read as missing (NaN), so that data.nan_policy decides; a subset of pandas' na_values
MISSING = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None", "<NA>", "#N/A"})


# --------------------------------------------------------------------------- npz

def _open_npz(file: Path, x: str, y: str) -> dict[str, np.ndarray]:
    """Every array of the archive; each way an archive can be unusable is its own one-line DataError."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(len(NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"cannot read npz file {file}: {exc.strerror or exc}") from None
    if not head:
        raise DataError(f"npz file {file} is empty (0 bytes)")
    if head.startswith(NPY_MAGIC):
        raise DataError(f"{file} is a single-array .npy file; the npz source reads an .npz archive holding "
                        f"'{x}' and '{y}' (write it with np.savez(path, {x}=..., {y}=...))")
    if not head.startswith(ZIP_MAGIC):
        raise DataError(f"{file} is not an .npz archive (a zip of .npy arrays); it starts with {head!r}")
    arrays: dict[str, np.ndarray] = {}
    member = ""
    try:
        with np.load(file, allow_pickle=False) as archive:
            for member in archive.files:
                arrays[member] = archive[member]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"npz file {file}: array '{member}' is an object (pickled) array, which trainlab "
                            "refuses to load (unpickling can run code); save numeric arrays") from None
        raise DataError(f"cannot read npz file {file}: {exc} (truncated or corrupt?)") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"cannot read npz file {file}: {exc} (truncated or corrupt?)") from None
    return arrays


def _check_array(file: Path, name: str, array: np.ndarray) -> None:
    if array.ndim == 0:
        raise DataError(f"npz file {file}: array '{name}' is a scalar; expected one row per sample")
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        hint = "; encode class names as integers 0..K-1" if array.dtype.kind in "US" else ""
        raise DataError(f"npz file {file}: array '{name}' has dtype {array.dtype}; trainlab reads numbers{hint}")


@DATA_SOURCES.register("npz")
def npz(path: str, x: str = "x", y: str = "y", task: str | None = None) -> RawData:
    """A NumPy ``.npz`` holding ``x``/``y`` (names configurable) and optionally ``x_val``, ``x_test`` ...

    Read with ``allow_pickle=False``: object arrays are refused.
    """
    check_task(task)
    file = resolve_file(path, "a .npz archive")
    arrays = _open_npz(file, x, y)
    missing = [k for k in (x, y) if k not in arrays]
    if missing:
        raise DataError(f"npz file {file} has no array '{missing[0]}' (arrays: {', '.join(sorted(arrays))})")

    def pair(suffix: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        xs, ys = (f"{x}_{suffix}", f"{y}_{suffix}") if suffix else (x, y)
        if (xs in arrays) != (ys in arrays):
            have, lack = (xs, ys) if xs in arrays else (ys, xs)
            raise DataError(f"npz file {file} has '{have}' but no '{lack}'; store both or neither")
        if xs not in arrays:
            return None, None
        for name in (xs, ys):
            _check_array(file, name, arrays[name])
        if len(arrays[xs]) != len(arrays[ys]):
            raise DataError(f"npz file {file}: '{xs}' has {len(arrays[xs])} rows but '{ys}' has {len(arrays[ys])}")
        if len(arrays[xs]) == 0:
            raise DataError(f"npz file {file}: '{xs}' and '{ys}' have 0 rows")
        return arrays[xs], arrays[ys]

    x_train, y_train = pair("")
    x_val, y_val = pair("val")
    x_test, y_test = pair("test")
    return RawData(x_train, y_train, x_val, y_val, x_test, y_test, task=task)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- csv

def _number(text: str) -> float | None:
    """The cell as a float (NaN for a missing-value marker), or None when it is not a number."""
    if text.strip() in MISSING:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return None


def _read_rows(file: Path, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the non-blank data rows, each with its line number in the file."""
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            body = [(reader.line_num, row) for row in reader if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError as exc:
        raise DataError(f"CSV file {file} is not UTF-8 ({exc})") from None
    except csv.Error as exc:
        raise DataError(f"CSV file {file} is not valid CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read CSV file {file}: {exc.strerror or exc}") from None
    if header is None:
        raise DataError(f"CSV file {file} is empty (expected a header row)")
    return [c.strip() for c in header], body


@DATA_SOURCES.register("csv")
def csv_file(path: str, target: str, features: list[str] | str | None = None, task: str | None = None,
             delimiter: str = ",") -> RawData:
    """A CSV with a header row: feature columns plus the named ``target`` column.

    Features must be numeric; empty cells and missing-value markers (``NA``, ``NaN``,
    ``null`` ...) are NaN, which ``data.nan_policy`` refuses (default) or drops. A
    target column of non-numeric strings is a class label column (classes in sorted
    order); a mix of numbers and strings is an error. Numeric targets are regression
    unless ``task`` says binary or multiclass.
    """
    check_task(task)
    if isinstance(features, str):
        features = [features]
    file = resolve_file(path, "a CSV file with a header row")
    header, body = _read_rows(file, delimiter)
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise DataError(f"CSV file {file} has column '{repeated[0]}' more than once (columns: {', '.join(header)})")
    if target not in header:
        raise DataError(f"CSV file {file} has no target column '{target}' (columns: {', '.join(header)})")
    columns = list(features) if features else [c for c in header if c != target]
    unknown = [c for c in columns if c not in header]
    if unknown:
        raise DataError(f"CSV file {file} has no column '{unknown[0]}' (columns: {', '.join(header)})")
    if not body:
        raise DataError(f"CSV file {file} has a header but no data rows")
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"CSV file {file} line {line} has {len(row)} fields; the header has {len(header)}")
    lines = [line for line, _ in body]

    x = np.empty((len(body), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        col = header.index(name)
        for i, (line, row) in enumerate(body):
            value = _number(row[col])
            if value is None:
                raise DataError(f"CSV file {file} line {line}, column '{name}': '{row[col]}' is not a number")
            x[i, j] = value

    raw_targets = [row[header.index(target)] for _, row in body]
    numbers = [_number(t) for t in raw_targets]
    class_names = None
    if all(v is not None for v in numbers):
        y = np.asarray(numbers, dtype=np.float64)
        if task in ("binary", "multiclass"):
            labels = y[np.isfinite(y)]  # NaN rows are left to data.nan_policy
            if not np.all(np.mod(labels, 1) == 0):
                row = int(np.flatnonzero(np.isfinite(y) & (np.mod(y, 1) != 0))[0])
                raise DataError(f"CSV file {file} line {lines[row]}: task '{task}' needs integer class labels in "
                                f"'{target}'; got '{raw_targets[row]}'")
            if len(labels) == len(y):
                y = y.astype(np.int64)
    elif not any(v is not None and not np.isnan(v) for v in numbers):  # strings (and missing markers)
        empty = [i for i, t in enumerate(raw_targets) if t.strip() in MISSING]
        if empty:
            raise DataError(f"CSV file {file} line {lines[empty[0]]}: the class label in '{target}' is missing")
        if task == "regression":
            raise DataError(f"CSV file {file}: task 'regression' needs numeric targets; '{target}' holds "
                            f"labels such as '{raw_targets[0]}'")
        class_names = sorted(set(raw_targets))
        y = np.asarray([class_names.index(t) for t in raw_targets], dtype=np.int64)
        task = task or ("binary" if len(class_names) == 2 else "multiclass")
    else:
        row = next(i for i, v in enumerate(numbers) if v is None)
        raise DataError(f"CSV file {file} line {lines[row]}, target '{target}': '{raw_targets[row]}' is not a "
                        "number while other targets are numeric")

    def locate(part: str, row: int, col: int) -> str:
        name = columns[col] if part == "features" else target
        return f"line {lines[row]}, column '{name}' of {file}"

    return RawData(x, y, task=task, class_names=class_names, locate=locate)  # type: ignore[arg-type]

