"""Inputs for ``trainlab predict`` and :class:`trainlab.loaded_run.LoadedRun`: new rows read like the run's
training data, without targets, and checked against what the run's model takes.

:func:`read_for_predict` reads a CSV or npz file, or a ``pandas.DataFrame``, holding the feature
columns the run was trained on (a target column may be present; it is ignored), and applies the
run's own fitted preprocessing (:mod:`trainlab.data.preprocessing`: training-split standardisation
statistics, one-hot categories). Nothing is re-fitted on the new rows. Rows come back in input
order, one per input row, so that outputs can be written next to them. A DataFrame goes through
the CSV path: its columns are read as a CSV file's are, so both give the same inputs.

:func:`trainlab.data.predict_shapes.rows_shape` is the one rule for the array shapes both take as N
rows of the run's input shape. :func:`model_rows` checks arrays that are already model inputs: that shape, numeric values (finite floats; whole, in-range numbers for
integer inputs such as token ids), and converts them to the training rows' dtype.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainlab.config_fields import plain_scalar, short_repr
from trainlab.data import preprocessing as prep
from trainlab.data.csv_rows import MISSING
from trainlab.data.csv_table import (
    DATAFRAME,
    CsvTable,
    check_delimiter,
    is_bool_series,
    numbers,
    read_table,
    separator_fix,
    strings,
)
from trainlab.data.csv_wide import BOOL_WORDS
from trainlab.data.dataset import check_float32_range
from trainlab.data.paths import resolve_file
from trainlab.data.predict_shapes import rows_shape, shape_error
from trainlab.errors import DataError
from trainlab.registry import did_you_mean

FRAME = str(DATAFRAME)  # how messages name rows given as a pandas DataFrame (csv_table's name for it)


def _options(data_config: Any) -> dict[str, Any]:
    """The ``data`` section as a plain dict (a DataConfig, or the dict read from config.yaml)."""
    if isinstance(data_config, Mapping):
        return dict(data_config)
    return {**data_config.model_dump(), **dict(data_config.model_extra or {})}


def is_table(x: object) -> bool:
    """``x`` is a pandas DataFrame or Series (checked without importing pandas)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(x, pandas.DataFrame | pandas.Series)


# --------------------------------------------------------------------------- named columns (CSV, DataFrame)

def _feature_columns(fitted: dict[str, Any]) -> tuple[list[str], list[str]]:
    numeric = fitted.get("numeric_columns")
    if numeric is None:
        raise DataError("the run's preprocessing does not name its feature columns; it was not trained on a CSV")
    return list(numeric), list(fitted.get("categorical_columns") or [])


def _target_columns(options: Mapping[str, Any]) -> set[str]:
    """The run's ``data.target`` column names (one name or a list)."""
    target = options.get("target")
    return {target} if isinstance(target, str) else {str(t) for t in target or []}


def _missing_column(name: str, where: str, have: list[str], wanted: list[str], targets: set[str]) -> DataError:
    """The error for training's column ``name`` missing from ``where``'s columns ``have``. A column of ``have``
    that differs from ``name`` in letter case only is the file's spelling of it: the user is told to rename
    it (``the file has 'F0': rename it to 'f0'``), not asked whether they "mean" a name they did not write.
    A did-you-mean is one of the other columns: not a training feature (it is there under its own name) nor
    one of the run's ``targets`` (predict ignores those: 'age' is not offered 'target')."""
    others = [column for column in have if column not in set(wanted) and column not in targets]
    same_letters = [column for column in others  # not one training reads itself (runs of 'f0' and 'F0')
                    if column.casefold() == name.casefold()]
    if len(same_letters) == 1:
        holder = "the DataFrame" if where == FRAME else "the file"
        hint = f" ({holder} has '{same_letters[0]}': rename it to '{name}')"
    else:
        hint = did_you_mean(name, others)
    return DataError(f"{where} has no feature column '{name}'{hint}; the run was "
                     f"trained on columns {', '.join(wanted[:50])}")


def _not_a_number(table: CsvTable, name: str, row: int, at: Callable[[int], str]) -> DataError:
    """The error for numeric feature ``name``'s cell at ``row``, text: a column of numbers written with
    thousands separators, a decimal comma or a unit sign (:func:`~trainlab.data.table_diagnosis.separated_number`, as
    training judges a column) is told how to write them, in training's words (:func:`separator_fix`); a cell
    that marks a missing value in some datasets (UCI's ``?``: :data:`~trainlab.data.table_diagnosis.MISSING_LOOKALIKES`)
    is named as maybe one, which predict cannot take either."""
    from trainlab.data.table_diagnosis import MISSING_LOOKALIKES, separated_number

    cell = table.cell(row, name)
    cells = strings(table, name)
    found = separated_number(cells)
    if found is None:
        # UCI's '?': training names it as a possible missing-value marker; predict answers every row, so fills it
        hint = (f" (if {short_repr(cell.strip())} marks a missing value: predict needs every feature, so write the "
                "value there)" if cell.strip().casefold() in MISSING_LOOKALIKES else "")
        return DataError(f"{at(row)}, column '{name}': {short_repr(cell)} is not a number{hint}")
    kind, example = found  # the cell that shows the kind (a '$1,200' where the first text cell is '1,200')
    example_row = int(np.flatnonzero(cells == example)[0])
    how, fix = separator_fix(example, kind)
    return DataError(f"{at(example_row)}, column '{name}': '{example}' is a number written with {how}; "
                     f"write its numbers {fix}")


def _feature_rows(table: CsvTable, numeric: list[str], categorical: list[str],
                  at: Callable[[int], str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(numeric features (N, F) float64 (standardised as training's, then float32), categorical cells (N, C) str or None) of ``table``'s rows.

    ``at(row)`` names data row ``row`` in messages ("CSV file f.csv line 7"). A missing cell (empty, or a
    marker such as ``NA``) is refused, numeric or categorical: training refused it too (``data.nan_policy:
    error``) or dropped its row (``drop``), which predict cannot do to a row it must answer; no policy imputes.
    """
    x = np.empty((len(table), len(numeric)), dtype=np.float64)
    for j, name in enumerate(numeric):
        values, bad = numbers(table, name)
        if bad is not None:
            raise _not_a_number(table, name, int(bad[0]), at)
        missing = np.flatnonzero(~np.isfinite(values))
        if len(missing):
            raise DataError(f"{at(int(missing[0]))}, column '{name}': a missing or "
                            "non-finite value; predict needs every feature")
        check_float32_range(values, lambda row, _col, name=name: f"{at(row)}, column '{name}'")
        x[:, j] = values
    cats = np.stack([strings(table, n) for n in categorical], axis=1) if categorical else None
    for j, name in enumerate(categorical):  # strings() reads a missing cell as ''; encoded, it would be all zeros
        missing = np.flatnonzero(cats[:, j] == "") if cats is not None else []
        if len(missing):
            raise DataError(f"{at(int(missing[0]))}, column '{name}': a missing value; predict needs every feature")
    return x, cats


Rows = tuple[np.ndarray, np.ndarray | None, Callable[[int], str]]  # numbers, categories, how row i is named


def _csv_rows(file: Path, options: dict[str, Any], fitted: dict[str, Any]) -> Rows:
    numeric, categorical = _feature_columns(fitted)
    if file.suffix.lower() == ".npz":  # the other way round from _npz_rows' CSV refusal
        listed = ", ".join([*numeric, *categorical][:20]) + (", ..." if len(numeric) + len(categorical) > 20 else "")
        raise DataError(f"{file} is an NPZ file; for a run on the 'csv' source predict reads a CSV file with the "
                        f"training feature columns ({listed}), or from Python a pandas DataFrame of them")
    delimiter = check_delimiter(options.get("delimiter", ","))
    table = read_table(file, delimiter, text_columns=categorical,
                       delimiter_settable=False)  # the run fixed data.delimiter: predict cannot change it
    for name in [*numeric, *categorical]:
        if name not in set(table.header):
            if len(table.header) == 1:  # a file of another delimiter reads as one column: name the delimiter
                _refuse_other_delimiter(file, table.header[0], delimiter, [*numeric, *categorical])
            raise _missing_column(name, str(file), table.header, [*numeric, *categorical], _target_columns(options))

    def at(row: int) -> str:
        return f"CSV file {file} line {table.line(row)}"

    return (*_feature_rows(table, numeric, categorical, at), at)


def _refuse_other_delimiter(file: Path, header: str, delimiter: str, wanted: list[str]) -> None:
    """Refuse a header read as one column that looks separated by another delimiter than the run's, as
    text runs do (:func:`trainlab.data.text.header_hint`); return when it does not look so."""
    from trainlab.data.table_diagnosis import DELIMITER_NAMES
    from trainlab.data.text import header_hint

    hint = header_hint(header, delimiter)
    if "separated" not in hint:
        return
    name = DELIMITER_NAMES.get(delimiter, repr(delimiter))
    raise DataError(f"{file}: the header reads as one column, {short_repr(header)}{hint}: save it {name}-separated "
                    f"(this run's data.delimiter); the run was trained on columns {', '.join(wanted[:50])}")


def _as_csv_cells(text: Any) -> Any:
    """A DataFrame column of text (pandas ``string`` dtype) as :func:`~trainlab.data.csv_table.read_table`
    reads the same cells from a CSV file: a :data:`~trainlab.data.csv_rows.MISSING` marker (``''``, ``NA``,
    ``nan``, ...) is a missing cell, and a column whose other cells are all
    :data:`~trainlab.data.csv_wide.BOOL_WORDS` (``True``, ``false``, ...) holds booleans, 1.0/0.0 (what
    ``astype(str)`` of a bool column writes); other text stays text, which :func:`numbers` reads as numbers
    where it is some (``pd.read_csv(path, dtype=str)``)."""
    cells = text.mask(text.isin(MISSING))
    present = cells.dropna()
    if len(present) and bool(present.isin(list(BOOL_WORDS)).all()):
        return cells.map(BOOL_WORDS).astype("float64")  # missing cells map to NaN, refused as a CSV's are
    return cells


def _frame_cells(series: Any) -> Any:
    """A feature column as :func:`numbers` reads a CSV column: numbers and booleans as they are, else its cells
    as text read as a CSV file's (:func:`_as_csv_cells`)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series
    if is_bool_series(series):
        return series  # True/False with missing cells, as pandas reads them from a CSV
    return _as_csv_cells(series.astype("string"))  # mixed numbers and text (or categories): each cell as its text


def _category_cells(series: Any) -> Any:
    """A category column as its CSV text: whole-number floats (ints that a missing cell made floats:
    1.0) are written as the CSV had them (1), so they match the training categories; a text cell that a
    CSV reads as missing (``NA``) is missing (:func:`_as_csv_cells`)."""
    import pandas as pd

    if pd.api.types.is_float_dtype(series):
        present = series.dropna()
        if len(present) and bool((present == present.round()).all()):
            return series.astype("Int64").astype("string")
    if pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series):
        return series.mask(series.astype("string").isin(MISSING))
    return series


def _frame_rows(frame: Any, options: dict[str, Any], fitted: dict[str, Any]) -> Rows:
    """The feature columns of a DataFrame (or a Series: one row), by name, in any order; others are ignored."""
    import pandas as pd

    if isinstance(frame, pd.Series):
        frame = frame.to_frame().T.infer_objects()  # one row, its index the column names
    numeric, categorical = _feature_columns(fitted)
    header = [str(column).strip() for column in frame.columns]  # a CSV header's names are stripped too
    positions = {}
    for name in [*numeric, *categorical]:
        found = [j for j, have in enumerate(header) if have == name]
        if not found:
            raise _missing_column(name, FRAME, header, [*numeric, *categorical], _target_columns(options))
        if len(found) > 1:
            raise DataError(f"{FRAME} has column '{name}' more than once")
        positions[name] = found[0]
    columns = {}
    for name, j in positions.items():
        series = frame.iloc[:, j].reset_index(drop=True)
        columns[name] = _frame_cells(series) if name in numeric else _category_cells(series)
    table = CsvTable(DATAFRAME, list(columns), ",", pd.DataFrame(columns))

    def at(row: int) -> str:
        label = frame.index[row]  # as the user wrote it: 10, not np.int64(10); a text label's newline escaped
        return f"{FRAME}, row index {short_repr(plain_scalar(label))}"

    return (*_feature_rows(table, numeric, categorical, at), at)


def _npz_rows(file: Path, options: dict[str, Any]) -> np.ndarray:
    """Array ``x`` (the run's ``data.x``) of an .npz, or its only array; numbers (bool, int, uint, float)
    only: a cast would read strings, dates, bytes, records or complex values as some other number."""
    from trainlab.npz_archive import open_npz

    key = options.get("x", "x")
    if file.suffix.lower() in (".csv", ".tsv", ".txt", ".json", ".jsonl"):
        raise DataError(f"{file} is a {file.suffix.lower()[1:].upper()} file; for a run on the "
                        f"'{options.get('source', 'npz')}' source predict reads an .npz holding the inputs as array "
                        f"'{key}' (np.savez(path, {key}=rows))")
    arrays = open_npz(file, key, None, only=key)  # the one array predict reads: the others stay compressed
    if not arrays:
        with np.load(file, allow_pickle=False) as archive:
            names = archive.files
        raise DataError(f"npz file {file} has no array '{key}' (arrays: {', '.join(sorted(names)) or 'none'})")
    name, array = next(iter(arrays.items()))
    if not isinstance(array, np.ndarray):  # a member written by hand into the zip: np.load gives its bytes
        raise DataError(f"array '{name}' in {file} is not a .npy array (its member {name}.npy holds other bytes); "
                        f"write the inputs with np.savez(path, {key}=rows)")
    if array.dtype.kind not in "biuf":
        raise DataError(f"npz file {file}: array '{name}' holds values of dtype {array.dtype}; predict reads numbers "
                        "(a bool, int, uint or float array), the inputs as the training rows held them")
    if array.ndim == 0:
        raise DataError(f"npz file {file}: array '{name}' is one number (a 0-d array); predict reads rows, shaped "
                        "(N, ...)")
    return array


def read_for_predict(data_config: Any, fitted: dict[str, Any], path: str | os.PathLike[str] | Any) -> torch.Tensor:
    """The model inputs for the rows of ``path``, preprocessed exactly as the run's training data.

    Args:
        data_config: the run's ``data`` section (a :class:`~trainlab.config.DataConfig` or its dict):
            gives ``delimiter`` (csv) and ``x`` (the npz array name).
        fitted: the run's preprocessing (``Dataset.preprocessing``, as stored in the run folder).
        path: a CSV (with the training feature columns; a target column is ignored) or an ``.npz``
            (array ``x``, or its only array). Its format follows the run's source. For a run trained
            on a CSV, also a ``pandas.DataFrame`` with the CSV's columns (or a Series: one row). A CSV
            or DataFrame may have no rows (a header only): the result has none either.

    Returns:
        (N, ...) float32 features (integer ids stay int64), one row per input row in input order.
    """
    options = _options(data_config)
    source = fitted.get("source") or options.get("source")
    if is_table(path):
        if fitted.get("numeric_columns") is None:
            raise DataError(f"a DataFrame holds the raw columns of a run trained on a CSV; this run's data source is "
                            f"'{source}': pass predict() its rows as an array (df.to_numpy(), preprocessed as the "
                            "training rows were), or pass read() a file in the run's format")
        x, cats, at = _frame_rows(path, options, fitted)
        what = FRAME
    else:
        shape = fitted.get("input_shape") or []
        layouts = "(N, C, H, W) or (N, H, W)" if len(shape) == 3 and shape[0] == 1 else "(N, C, H, W)"
        expected = (f"a .npz of images shaped {layouts} (a run on IDX or CIFAR files does not read image folders)"
                    if source in ("idx", "cifar10", "cifar100") else "a file of rows to predict")
        file = resolve_file(path, expected, what="the input")
        what = str(file)
        at = None
        if source == "csv" or (source is None and file.suffix.lower() in (".csv", ".tsv", ".txt")):
            x, cats, at = _csv_rows(file, options, fitted)
        elif source == "npz" or file.suffix.lower() == ".npz":
            x, cats = _npz_rows(file, options), None
            shape = fitted.get("input_shape")
            if shape is not None:  # the shapes LoadedRun.predict takes too: one rule (rows_shape)
                rows = rows_shape(x.shape, shape)
                if rows is None:
                    from trainlab.data.npz_file import channels_last_fix, is_channels_last

                    fix = ""
                    if is_channels_last(x.shape) and len(shape) == 3:  # as the npz source refuses them for training
                        fix = f"; they are {channels_last_fix(options.get('x', 'x'), x.shape)}"
                    raise shape_error(f"npz file {file}", x.shape, shape, fix)
                x = x.reshape(rows)
            check_float32_range(x, lambda row, col: f"npz file {file}: row {row}, column {col} (counting from 0)")
        else:
            rows = f" shaped (N, {', '.join(str(n) for n in shape)})" if shape else ""
            raise DataError(f"{file.name}: a run trained on data source '{source}' predicts from an .npz holding "
                            f"an array x{rows} (CSV inputs are read for runs trained on a CSV)")
    numeric = fitted.get("numeric_columns") or []
    where = None if at is None else (lambda row, col: f"{at(row)}, column '{numeric[col]}'")
    prep.warn_constant_changed(fitted, x, what)
    standardised = prep.apply(fitted, x, cats, what=what, where=where)
    prep.warn_standardised_twice(fitted, x, standardised, what)
    x = standardised
    if np.issubdtype(x.dtype, np.integer):
        return torch.from_numpy(np.ascontiguousarray(x))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# --------------------------------------------------------------------------- arrays that are model inputs already


def _is_real(value: Any) -> bool:
    return isinstance(value, Real | np.bool_)  # Python and NumPy ints, floats and bools


def _numbers_of(array: np.ndarray) -> np.ndarray:
    """An object array (``df.to_numpy()`` of a frame with a text column gives one) as float64 when every
    element is a real number, else unchanged (and then refused as not numbers)."""
    if all(_is_real(v) for v in array.reshape(-1)):
        return array.astype(np.float64)
    return array


def _as_tensor(x: Any) -> torch.Tensor:
    """``x`` (a tensor, a NumPy array, nested lists) as a tensor of numbers; one DataError for anything else."""
    if isinstance(x, torch.Tensor):
        rows = x.detach()
    else:
        try:
            array = np.asarray(x)
        except (ValueError, TypeError) as exc:  # ragged lists
            reason = str(exc).splitlines()[0].split(". ")[0][:200]
            raise DataError(f"predict takes rows of numbers shaped (N, ...), all of one length; this "
                            f"{type(x).__name__} does not make one array ({reason})") from None
        if array.dtype == object:
            array = _numbers_of(array)
        if array.dtype.kind not in "biuf":
            example = next((v for v in array.reshape(-1) if not _is_real(v)), None)
            such = f" such as {short_repr(plain_scalar(example))}" if array.size else " (none: it is empty)"
            raise DataError(f"predict takes rows of numbers (the model's inputs, preprocessed as in training); got "
                            f"values of dtype {array.dtype}{such}: for a run "
                            "trained on a CSV pass a pandas DataFrame with its columns, or read a file with "
                            "run.read(path)")
        if array.dtype.kind == "u" and array.dtype.itemsize > 1:  # torch has few ops for uint16/32/64
            array = array.astype(np.int64)
        # copy: negative strides, and a read-only array (np.asarray of a PIL image), which torch warns of
        rows = torch.from_numpy(array if array.flags.c_contiguous and array.flags.writeable else array.copy())
    if rows.is_complex():
        raise DataError(f"predict takes rows of real numbers; got {rows.dtype}")
    return rows


def _first_row(bad: torch.Tensor) -> int:
    """The first row (axis 0) of boolean ``bad`` with a True element."""
    return int(bad.reshape(len(bad), -1).any(dim=1).nonzero()[0, 0])


def _check_ids(rows: torch.Tensor, dtype: torch.dtype, vocab_size: int | None) -> None:
    """Integer model inputs (token ids, uint8 pixels): whole numbers within ``dtype`` (ids below ``vocab_size``)."""
    kind = f"{str(dtype).removeprefix('torch.')} inputs, as its training rows were"
    rows = rows.double() if rows.is_floating_point() else rows.long()  # bounds compare without wrapping around
    if rows.is_floating_point():
        whole = torch.isfinite(rows) & (rows == rows.round())
        if not bool(whole.all()):
            row = _first_row(~whole)
            value = rows[row][~whole[row]].reshape(-1)[0].item()
            raise DataError(f"predict: row {row} holds {value!r}, not a whole number; this run's model takes {kind}")
    info = torch.iinfo(dtype)
    low, high = (0, vocab_size - 1) if vocab_size else (info.min, info.max)
    if vocab_size:
        kind = f"token ids from 0 to {high} (vocabulary size {vocab_size})"
    outside = (rows < low) | (rows > high)
    if bool(outside.any()):
        row = _first_row(outside)
        value = rows[row][outside[row]].reshape(-1)[0].item()
        raise DataError(f"predict: row {row} holds {value!r}; this run's model takes {kind}"
                        + ("" if vocab_size else f" ({low} to {high})"))


def model_rows(x: Any, input_shape: tuple[int, ...], input_dtype: str | None = None,
               vocab_size: int | None = None, ids_and_mask: bool = False) -> torch.Tensor:
    """``x`` as the run's model takes it: rows shaped ``input_shape``, of the training rows' dtype.

    Args:
        x: the model's inputs, preprocessed as the training split was: a tensor, a NumPy array (an
            object array when every element is a number) or nested lists, in a shape :func:`rows_shape`
            takes: (N, *input_shape), one row shaped ``input_shape`` (N = 1), an empty array (N = 0), and
            for one-channel images (1, H, W) also (N, H, W) and one image (H, W).
        input_shape: one training row's shape (``()``: not recorded, not checked).
        input_dtype: the training rows' dtype (``model.json``'s ``input_dtype``). Floating: any real
            numbers, converted to it; they must be finite. Integer (token ids, uint8 pixels): whole
            numbers (of any numeric dtype) within its range, and below ``vocab_size`` when given.
            None (not recorded): floats become float32, integers stay as they are.
        vocab_size: the number of token ids the model embeds, when known.
        ids_and_mask: rows are (2, L) ``[input_ids, attention_mask]`` (``tokenizer: hf``): ``vocab_size``
            bounds the ids, and the mask must hold 0 and 1 only.

    Raises:
        DataError: one line naming the shape or value received and what the run takes.
    """
    rows = _as_tensor(x)
    if rows.ndim == 0:
        raise DataError("predict needs one input row per sample, shaped (N, ...); got a scalar")
    if input_shape:
        shape = rows_shape(rows.shape, input_shape)
        if shape is None:
            raise shape_error("predict", rows.shape, input_shape)
        rows = rows.reshape(shape)
    dtype = getattr(torch, input_dtype, None) if input_dtype else None
    if rows.dtype == torch.float64 and (not isinstance(dtype, torch.dtype) or dtype == torch.float32):
        check_float32_range(rows.cpu().numpy(), lambda row, _col: f"predict: row {row}")  # else it becomes inf
    if not isinstance(dtype, torch.dtype):
        return rows.float() if rows.is_floating_point() else rows
    if dtype.is_floating_point:
        rows = rows.to(dtype)
        finite = torch.isfinite(rows)
        if not bool(finite.all()):
            row = _first_row(~finite)
            value = rows[row][~finite[row]].reshape(-1)[0].item()
            raise DataError(f"predict: row {row} holds {value!r} (as {input_dtype}); the model takes finite numbers")
        return rows
    if rows.numel() and ids_and_mask:
        _check_ids(rows[:, 0], dtype, vocab_size)
        _check_mask(rows[:, 1])
    elif rows.numel():
        _check_ids(rows, dtype, vocab_size)
    return rows.to(dtype)


def _check_mask(mask: torch.Tensor) -> None:
    """An attention mask holds 0 (padding) and 1 (a token) only; other values would weigh tokens silently."""
    bad = (mask != 0) & (mask != 1)
    if bool(bad.any()):
        row = _first_row(bad)
        value = mask[row][bad[row]].reshape(-1)[0].item()
        raise DataError(f"predict: row {row} has {value!r} in its attention mask (x[:, 1]); the mask holds 1 for a "
                        "token and 0 for padding")
