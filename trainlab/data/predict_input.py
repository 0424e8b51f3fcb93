"""Inputs for ``trainlab predict``: new rows read like the run's training data, without targets.

:func:`read_for_predict` reads a CSV or npz file holding the feature columns the run was trained
on (a target column may be present; it is ignored), and applies the run's own fitted
preprocessing (:mod:`trainlab.data.preprocessing`: training-split standardisation statistics,
one-hot categories). Nothing is re-fitted on the new rows. Rows come back in file order, one per
input row, so that outputs can be written next to them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab.data import preprocessing as prep
from trainlab.data.csv_table import check_delimiter, numbers, read_table, strings
from trainlab.data.paths import resolve_file
from trainlab.errors import DataError
from trainlab.registry import did_you_mean


def _options(data_config: Any) -> dict[str, Any]:
    """The ``data`` section as a plain dict (a DataConfig, or the dict read from config.yaml)."""
    if isinstance(data_config, Mapping):
        return dict(data_config)
    return {**data_config.model_dump(), **dict(data_config.model_extra or {})}


def _csv_rows(file: Path, options: dict[str, Any], fitted: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None]:
    numeric = fitted.get("numeric_columns")
    categorical = fitted.get("categorical_columns") or []
    if numeric is None:
        raise DataError("the run's preprocessing does not name its feature columns; it was not trained on a CSV")
    table = read_table(file, check_delimiter(options.get("delimiter", ",")), text_columns=categorical)
    for name in [*numeric, *categorical]:
        if name not in set(table.header):
            raise DataError(f"{file} has no feature column '{name}'{did_you_mean(name, table.header)}; the run was "
                            f"trained on columns {', '.join([*numeric, *categorical][:50])}")
    if len(table) == 0:
        raise DataError(f"CSV file {file} has a header but no rows to predict")
    x = np.empty((len(table), len(numeric)), dtype=np.float32)
    for j, name in enumerate(numeric):
        values, bad = numbers(table, name)
        if bad is not None:
            row = int(bad[0])
            raise DataError(f"CSV file {file} line {table.line(row)}, column '{name}': "
                            f"'{str(table.frame[name].iloc[row]).strip()}' is not a number")  # type: ignore[index]
        missing = np.flatnonzero(~np.isfinite(values))
        if len(missing):
            raise DataError(f"CSV file {file} line {table.line(int(missing[0]))}, column '{name}': a missing or "
                            "non-finite value; predict needs every feature")
        x[:, j] = values
    cats = np.stack([strings(table, n) for n in categorical], axis=1) if categorical else None
    return x, cats


def _npz_rows(file: Path, options: dict[str, Any]) -> np.ndarray:
    key = options.get("x", "x")
    try:
        with np.load(file, allow_pickle=False) as archive:
            names = list(archive.files)
            if key not in names and len(names) != 1:
                raise DataError(f"npz file {file} has no array '{key}' (arrays: {', '.join(sorted(names))})")
            return archive[key if key in names else names[0]]
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"cannot read npz file {file}: {str(exc).splitlines()[0]}") from None


def read_for_predict(data_config: Any, fitted: dict[str, Any], path: str | os.PathLike[str]) -> torch.Tensor:
    """The model inputs for the rows of ``path``, preprocessed exactly as the run's training data.

    Args:
        data_config: the run's ``data`` section (a :class:`~trainlab.config.DataConfig` or its dict):
            gives ``delimiter`` (csv) and ``x`` (the npz array name).
        fitted: the run's preprocessing (``Dataset.preprocessing``, as stored in the run folder).
        path: a CSV (with the training feature columns; a target column is ignored) or an ``.npz``
            (array ``x``, or its only array). Its format follows the run's source.

    Returns:
        (N, ...) float32 features (integer ids stay int64), one row per input row in file order.
    """
    options = _options(data_config)
    source = fitted.get("source") or options.get("source")
    file = resolve_file(path, "a file of rows to predict")
    if source == "csv" or (source is None and file.suffix.lower() in (".csv", ".tsv", ".txt")):
        x, cats = _csv_rows(file, options, fitted)
    elif source == "npz" or file.suffix.lower() == ".npz":
        x, cats = _npz_rows(file, options), None
        shape = fitted.get("input_shape")
        if shape is not None and list(x.shape[1:]) != list(shape):
            raise DataError(f"npz file {file}: rows are shaped {tuple(x.shape[1:])} but the run was trained on "
                            f"{tuple(shape)}")
    else:
        raise DataError(f"predict reads CSV and npz inputs; the run's data source is '{source}' (not supported yet)")
    x = prep.apply(fitted, x, cats, what=str(file))
    if np.issubdtype(x.dtype, np.integer):
        return torch.from_numpy(np.ascontiguousarray(x))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
