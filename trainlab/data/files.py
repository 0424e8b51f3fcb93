"""Array files a user already has: ``npz`` and ``csv``."""

from __future__ import annotations

import csv
import zipfile

import numpy as np

from trainlab.data import DATA_SOURCES, RawData
from trainlab.data.paths import resolve
from trainlab.errors import DataError


@DATA_SOURCES.register("npz")
def npz(path: str, x: str = "x", y: str = "y", task: str | None = None) -> RawData:
    """A NumPy ``.npz`` holding ``x``/``y`` (names configurable) and optionally ``x_val``, ``x_test`` ...

    Read with ``allow_pickle=False``: object arrays are refused.
    """
    file = resolve(path, "a .npz archive")
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise DataError(f"cannot read npz file {file}: {exc} (truncated or not an .npz?)") from None
    missing = [k for k in (x, y) if k not in arrays]
    if missing:
        raise DataError(f"npz file {file} has no array '{missing[0]}' (arrays: {', '.join(sorted(arrays))})")

    def pair(suffix: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        return arrays.get(f"{x}_{suffix}"), arrays.get(f"{y}_{suffix}")

    x_val, y_val = pair("val")
    x_test, y_test = pair("test")
    return RawData(arrays[x], arrays[y], x_val, y_val, x_test, y_test, task=task)  # type: ignore[arg-type]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@DATA_SOURCES.register("csv")
def csv_file(path: str, target: str, features: list[str] | None = None, task: str | None = None,
             delimiter: str = ",") -> RawData:
    """A CSV with a header row: feature columns plus the named ``target`` column.

    Features must be numeric. A target column of non-numeric strings is a class
    label column (classes in sorted order); a mix of numbers and strings is an error.
    """
    file = resolve(path, "a CSV file with a header row")
    try:
        with open(file, newline="") as handle:
            rows = list(csv.reader(handle, delimiter=delimiter))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read CSV file {file}: {exc}") from None
    if not rows:
        raise DataError(f"CSV file {file} is empty")
    header, body = rows[0], [r for r in rows[1:] if r]
    if target not in header:
        raise DataError(f"CSV file {file} has no target column '{target}' (columns: {', '.join(header)})")
    columns = features or [c for c in header if c != target]
    unknown = [c for c in columns if c not in header]
    if unknown:
        raise DataError(f"CSV file {file} has no column '{unknown[0]}' (columns: {', '.join(header)})")
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(f"CSV file {file} line {line} has {len(row)} fields; the header has {len(header)}")
    x = np.empty((len(body), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        col = header.index(name)
        for i, row in enumerate(body):
            value = _number(row[col])
            if value is None:
                raise DataError(
                    f"CSV file {file} line {i + 2}, column '{name}': '{row[col]}' is not a number"
                )
            x[i, j] = value
    raw_targets = [row[header.index(target)] for row in body]
    numbers = [_number(t) for t in raw_targets]
    class_names = None
    if all(v is not None for v in numbers):
        y = np.asarray(numbers, dtype=np.float64)
        if task != "regression" and np.all(np.mod(y, 1) == 0) and task is not None:
            y = y.astype(np.int64)
    elif all(v is None for v in numbers):
        class_names = sorted(set(raw_targets))
        y = np.asarray([class_names.index(t) for t in raw_targets], dtype=np.int64)
        task = task or ("binary" if len(class_names) == 2 else "multiclass")
    else:
        line = next(i for i, v in enumerate(numbers) if v is None) + 2
        raise DataError(
            f"CSV file {file} line {line}, target '{target}': '{raw_targets[line - 2]}' is not a number "
            "while other targets are numeric"
        )
    if task in ("binary", "multiclass") and y.dtype != np.int64:
        if not np.all(np.mod(y, 1) == 0):
            raise DataError(f"CSV file {file}: task '{task}' needs integer class labels in '{target}'")
        y = y.astype(np.int64)
    return RawData(x, y, task=task, class_names=class_names)  # type: ignore[arg-type]
