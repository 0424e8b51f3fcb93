"""The ``csv`` source: a table a user already has (the ``npz`` source is :mod:`trainlab.data.npz_file`).

Its label checks are shared with the text sources, so that one label column reads the same from a CSV
table and a text file: :func:`trainlab.data.labels.warn_case_twins` and
:func:`trainlab.data.table_diagnosis.not_a_number`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from trainlab.config_fields import counted, short_repr, shown_name
from trainlab.data import DATA_SOURCES, RawData, receives_shared
from trainlab.data.csv_rows import MISSING
from trainlab.data.csv_table import (
    CsvTable,
    check_delimiter,
    empty_rows,
    is_bool_column,
    numbers,
    numeric_block,
    read_table,
    separator_fix,
    strings,
)
from trainlab.data.dataset import SURE_CLASSES, check_float32_range
from trainlab.data.labels import warn_case_twins
from trainlab.data.paths import resolve_file
from trainlab.data.table_diagnosis import (
    DELIMITER_NAMES,
    MISSING_LOOKALIKES,
    NO_HEADER,
    delimiter_hint,
    not_a_number,
    parses_as_number,
    separated_number,
)
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn
from trainlab.registry import did_you_mean


def _shown(header: list[str]) -> str:
    """The header for a message, cut after 50 names (a 60,000-column file stays one short line)."""
    return ", ".join(shown_name(name) for name in header[:50]) + (f", ... ({len(header)} columns)" if len(header) > 50 else "")


def _column_names(value: list[str] | str | None, key: str) -> list[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"data.{key} must be a column name or a list of column names; got {value!r}")
    return list(names)


def _check_column_lists(features: list[str] | None, targets: list[str]) -> None:
    """Each column at most once in ``data.features`` and in ``data.target``, and no target among the features:
    a feature column that is the target hands the model its answer (test accuracy 1.0 on random labels)."""
    for key, names in (("features", features or []), ("target", targets)):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ConfigError(f"data.{key} lists the column {short_repr(name)} twice; list each column once")
            seen.add(name)
    leaked = [name for name in features or [] if name in set(targets)]
    if leaked:
        raise ConfigError(f"data.features lists the target column {short_repr(leaked[0])}, which would give the "
                          "model its own answer as an input; remove it from data.features")


def _require(file: Path, header: list[str], names: list[str], what: str, delimiter: str) -> None:
    """A DataError for the first of ``names`` not in ``header``; a header of numbers only is a data row
    (a file saved without its header), which the message says (:data:`NO_HEADER`)."""
    known = set(header)
    for name in names:
        if name not in known:
            no_header = NO_HEADER + " naming the columns" if all(parses_as_number(cell) for cell in header) else ""
            misread = delimiter_hint(header, delimiter)
            close = "" if misread or no_header else (did_you_mean(name, header) or _column_of_word(name, header))
            raise DataError(f"CSV file {file} has no {what} '{name}'{close} "
                            f"(columns: {_shown(header)}){misread}{no_header}")


def _column_of_word(name: str, header: list[str]) -> str:
    """``"; did you mean 'Monthly Spend'?"`` for ``Spend``: the one column having ``name`` as one of its words
    (split at spaces, ``_`` and ``-``; letter case aside), which difflib (0.56 similar) and the abbreviation
    rule (the word is not its start) miss; ``""`` when no column, or several, do."""
    def words(text: str) -> list[str]:
        return [word for word in re.split(r"[\s_\-]+", text.casefold()) if word]

    wanted = words(name)
    found = [column for column in header if len(wanted) == 1 and wanted[0] in words(column)]
    return f"; did you mean '{found[0]}'?" if len(found) == 1 else ""


class CsvColumns(NamedTuple):
    """The column options of a ``csv`` data section, checked by :func:`csv_columns`."""

    targets: list[str]  # at least one
    features: list[str] | None  # None: every column but the targets
    categorical: list[str] | None  # None: the columns holding no numbers at all
    delimiter: str


def csv_columns(target: str | list[str], features: list[str] | str | None = None,
                categorical: list[str] | str | None = None, delimiter: str = ",") -> CsvColumns:
    """The column options of a ``csv`` data section as lists, checked before the file is opened.

    Raises the ConfigError of :func:`csv_file` for a name that is not a string, an empty ``target``, a
    column listed twice, a target among the features, and a bad ``delimiter``. Then
    :func:`check_csv_columns` checks them against the file's header.
    """
    targets = _column_names(target, "target") or []
    if not targets:
        raise ConfigError("data.target must name at least one column")
    feature_names = _column_names(features, "features")
    if feature_names == []:  # left as [], it would mean every column (an id column too), silently
        raise ConfigError("data.features is empty: list the feature columns, or leave features out for every "
                          "column except the target")
    categorical_names = _column_names(categorical, "categorical")
    _check_column_lists(feature_names, targets)
    return CsvColumns(targets, feature_names, categorical_names, check_delimiter(delimiter))


def check_csv_columns(file: Path, header: list[str], columns: CsvColumns) -> list[str]:
    """The feature columns of ``file``, whose header line is ``header``, for the options ``columns``.

    Raises, in this order, the error :func:`csv_file` raises for a target missing from the header, no
    feature column besides the targets, a feature or categorical column missing from the header, a feature
    column with no name but the last (whose case :func:`_refuse_trailing_delimiter` words) (each a
    DataError naming the header, with a did-you-mean, a misread-delimiter or a missing-header hint where
    one applies), and a categorical column that is not a feature (ConfigError). Reads nothing: ``trainlab
    compare`` calls it on the header line alone (:func:`trainlab.preflight.check_data_columns`),
    so they refuse a config with the run's own line.
    """
    delimiter = columns.delimiter
    _require(file, header, columns.targets, "target column", delimiter)
    target_set = set(columns.targets)
    features = list(columns.features) if columns.features else [c for c in header if c not in target_set]
    if not features:  # a model of no inputs would train (input_shape [0]) and predict a constant
        raise DataError(f"CSV file {file} has no feature columns besides the target "
                        f"{', '.join(repr(t) for t in columns.targets)} (columns: {_shown(header)}); add the columns "
                        "to predict it from")
    _require(file, header, features, "column", delimiter)
    unnamed = [i for i, name in enumerate(header[:-1]) if name == "" and name in features]  # the last: below
    if unnamed:  # a feature named '' (in preprocessing.json, predict's header): a column left unnamed
        raise DataError(f"CSV file {file}: column {unnamed[0] + 1} of the header has no name (columns: "
                        f"{_shown(header)}); name it, or choose the feature columns with data.features")
    if columns.categorical is not None:
        _require(file, header, columns.categorical, "categorical column", delimiter)
        outside = [c for c in columns.categorical if c not in set(features)]
        if outside:
            raise ConfigError(f"data.categorical names '{outside[0]}', which is not a feature column "
                              f"(features: {_shown(features)})")
    return features


def _refuse_trailing_delimiter(table: CsvTable, columns: list[str]) -> None:
    """A DataError when the header ends in the delimiter (its last column has no name) and that column is
    empty in every row: each line ends in a delimiter (some exports do), and the column would be a feature
    that is missing in every row, which ``data.nan_policy`` refuses at line 2 or drops every row for."""
    name = table.header[-1]
    if name != "" or name not in set(columns) or (strings(table, name) != "").any():
        return
    shown = DELIMITER_NAMES.get(table.delimiter, repr(table.delimiter))
    raise DataError(f"CSV file {table.file}: its last column has no name and is empty in every row: each line "
                    f"ends in a {shown} (a trailing delimiter); delete the {shown} at the end of each line, or "
                    "choose the feature columns with data.features")


def _not_a_number(table: CsvTable, name: str, row: int, what: str) -> DataError:
    return not_a_number(table.place(row, name, what), table.cell(row, name, strip=False), what)


def _separated(table: CsvTable, name: str, cells: np.ndarray, what: str, may_be_classes: bool = True,
               task: str | None = None, categories: bool = False) -> DataError | None:
    """The error for a column of numbers written with thousands separators, a decimal comma, a currency or a
    percent sign (read as text otherwise), or None where the column is read as text after all.

    A target is refused where ``task`` (``data.task``) is regression, or, with no task given, where it would
    make more classes than half its rows (an amount's or a percentage's: more than
    :data:`~trainlab.data.dataset.SURE_CLASSES` too): grades written ``1,3``/``2,0``/``1,7`` over many rows are
    classes, a price per row is not; a classification task given reads it as class names. One of several
    targets (``may_be_classes=False``) is a number whatever it holds. A feature column is refused (it can be
    kept as text with ``data.categorical``, which the message says), but for a few amount or percentage
    levels ($9.99, $19.99; 0%, 100%) in a column read as ``categories`` (no number among them, no
    data.categorical list), read so as before, with one warning."""
    found = separated_number(cells)
    if found is None:
        return None
    kind, example = found
    levels = len(set(cells.tolist()) - {""})
    unit = kind in ("currency", "percent")
    if what == "target" and may_be_classes and task != "regression":
        if task in ("binary", "multiclass", "multilabel"):
            return None
        if levels <= (min(SURE_CLASSES, len(cells) / 2) if unit else len(cells) / 2):
            return None
    how, fix = separator_fix(example, kind)
    if what != "target" and unit and levels <= SURE_CLASSES and categories:
        warn(f"CSV file {table.file}, column '{name}': '{example}' is a number written with {how}, so the column "
             f"is read as {levels} categories; to read its values as numbers, write them {fix}")
        return None
    row = int(np.flatnonzero(cells == example)[0])
    return DataError(f"CSV file {table.file} line {table.line(row)}, {what} '{name}': '{example}' is a number "
                     f"written with {how}, which would make the column text (one "
                     f"{'class' if what == 'target' else 'category'} per value); write its numbers {fix}"
                     + ("" if what == "target" else ", or list the column in data.categorical if it is text"))


# a column is called an identifier when at least this many rows hold distinct values
IDENTIFIER_MIN_ROWS = 20
IDENTIFIER_HINT = "; choose the feature columns with data.features"


def _consecutive_whole_columns(x: np.ndarray) -> list[int]:
    """The columns of ``x`` (N, F) float64 that hold N consecutive whole numbers, each once: ``max - min + 1
    == N`` (False where a cell is NaN or infinite), every value whole, and N distinct values.

    Reads the parsed block in slices of about 2^20 cells (no copy of the whole block), so a 60,000-column file
    costs a few reductions per slice, not a parse per column."""
    n, width = x.shape
    step = max(1, (1 << 20) // max(n, 1))
    found = []
    for start in range(0, width, step):
        block = x[:, start:start + step]
        with np.errstate(invalid="ignore"):  # inf - inf where a column holds inf only: NaN, not consecutive
            spans = block.max(axis=0) - block.min(axis=0) + 1
        for j in np.flatnonzero(spans == n):
            column = block[:, j]
            if np.array_equal(column, np.round(column)) and len(np.unique(column)) == n:
                found.append(start + int(j))
    return found


def _identifier_warnings(table: CsvTable, x: np.ndarray, numeric_names: list[str], cats: np.ndarray | None,
                         categorical_names: list[str]) -> Callable[[dict[str, Any]], None] | None:
    """Warn of feature columns chosen by default that look like row ids, dates or free text.

    Numeric: ``n >= 20`` whole numbers, each once, consecutive (``max - min + 1 == n``): a row number
    (or a year per row), warned of now; read from ``x``, the features :func:`_features` parsed (float64:
    ids beyond 2^24 stay exact), whose columns are ``numeric_names`` (the file is not parsed again).
    Text: more distinct non-missing values than half the rows (and at
    least 20): each becomes a one-hot feature seen in about one row, which a model can only memorise.
    Returns the warning of those, for :class:`~trainlab.data.RawData`'s ``after_fit``: it counts the
    features as the training split's categories, which only the fitted preprocessing knows (38 of a
    60-row id column once val/test are held out); None when there is none.
    """
    n = len(table)
    if n < IDENTIFIER_MIN_ROWS:
        return None
    for j in _consecutive_whole_columns(x):
        warn(f"CSV file {table.file}: column '{numeric_names[j]}' holds {n} consecutive whole numbers, each once (a "
             f"row number, an id or a year?), and is used as a feature{IDENTIFIER_HINT}")
    found = []  # (column, distinct values in the file)
    for j, name in enumerate(categorical_names):
        distinct = len(set(np.unique(cats[:, j])) - {""})  # a missing cell is not a value
        if distinct >= IDENTIFIER_MIN_ROWS and distinct > n / 2:
            found.append((name, distinct))
    if not found:
        return None

    def warn_text_identifiers(fitted: dict[str, Any]) -> None:
        categories = dict(zip(fitted["categorical_columns"], fitted["categories"], strict=True))
        for name, distinct in found:
            warn(f"CSV file {table.file}: text column '{name}' has {distinct} distinct values in {n} rows (an id, a "
                 f"date or free text?): one-hot encoded into {len(categories[name])} features (one per value in "
                 f"the training split) that a model can only memorise{IDENTIFIER_HINT}")

    return warn_text_identifiers


def _features(table: CsvTable, columns: list[str], categorical: list[str] | None
              ) -> tuple[np.ndarray, list[str], np.ndarray | None, list[str]]:
    """Numeric features (N, F) float64 with their names, and categorical strings (N, C) with theirs.

    A column is categorical when ``data.categorical`` lists it, or (``categorical`` not given) when
    none of its cells is a number; a column mixing numbers and other text is an error.
    """
    listed = set(categorical or ())
    candidates = [c for c in columns if c not in listed]
    block, unparsed = numeric_block(table, candidates)  # one conversion for the columns that are all numbers
    unparsed_set = set(unparsed)
    keep = np.ones(len(candidates), dtype=bool)
    categorical_names = []
    for j, name in enumerate(candidates):
        if name not in unparsed_set:
            continue
        values, bad = numbers(table, name)
        categories = bad is not None and categorical is None and not np.isfinite(values).any()
        if bad is not None and (error := _separated(table, name, strings(table, name), "column",
                                                    categories=categories)) is not None:
            raise error
        if bad is not None and categorical is None and not np.isfinite(values).any():
            categorical_names.append(name)  # only text (and missing cells): a categorical column
            keep[j] = False
            continue
        if bad is not None:
            if categorical is not None:  # listing columns turns off telling text columns apart on their own
                raise DataError(f"{_not_a_number(table, name, int(bad[0]), 'column')}; the column is read as "
                                f"numbers because data.categorical does not list it: add {short_repr(name)} to "
                                "data.categorical if it is text")
            raise _mixed_column(table, name, values, bad)
        check_float32_range(values, lambda row, _col, name=name: table.place(row, name))
        block[:, j] = values
    numeric_names = [c for c, k in zip(candidates, keep, strict=True) if k]
    x = block if keep.all() else block[:, keep]
    categorical_names = [c for c in columns if c in listed or c in set(categorical_names)]
    cats = np.stack([strings(table, n) for n in categorical_names], axis=1) if categorical_names else None
    return x, numeric_names, cats, categorical_names


def _mixed_column(table: CsvTable, name: str, values: np.ndarray, bad: np.ndarray) -> DataError:
    """The error for feature column ``name`` holding numbers and text (``bad``: the rows of text). Where the
    text is words (``yes``/``no``, with a ``1`` among them) and most of the column, the odd cell is the first
    number, named so; else the first text cell, as not a number (UCI's ``?``, however many, as a possible
    missing-value marker). Unless every text cell is such a marker, the fix for a column of categories is
    named too: list it in data.categorical."""
    numbers_at = np.flatnonzero(np.isfinite(values))
    markers = {table.cell(int(row), name).casefold() for row in bad[:1000]} <= MISSING_LOOKALIKES
    if markers:  # a '?' among numbers, however many: a missing value, said so
        return _not_a_number(table, name, int(bad[0]), "column")
    categories = f"; if its values are categories, list {short_repr(name)} in data.categorical"
    if len(bad) > len(numbers_at):
        row = int(numbers_at[0])
        text = table.cell(int(bad[0]), name)
        return DataError(f"{table.place(row, name, 'column')}: {short_repr(table.cell(row, name))} is a number in a "
                         f"column of words (such as {short_repr(text)}){categories}, or fix that cell if it is a "
                         "typo")
    return DataError(f"{_not_a_number(table, name, int(bad[0]), 'column')}{categories}")


def _words_among_targets(table: CsvTable, name: str, targets: list[str]) -> DataError:
    """A target column of words where several target columns are given: they are read as numbers, 0/1 labels
    (multilabel) or values (regression), so its words (``yes``/``no``) are to be written as 0 and 1. It was
    "'no' is not a number while other targets are numeric", where no target was numeric."""
    words = sorted({str(cell) for cell in strings(table, name) if str(cell).strip()})
    shown = ", ".join(short_repr(word) for word in words[:4]) + (", ..." if len(words) > 4 else "")
    two = f" (e.g. {short_repr(words[0])} -> 0, {short_repr(words[1])} -> 1)" if len(words) == 2 else ""
    return DataError(f"CSV file {table.file}, target {name!r} holds words ({shown}), and the {len(targets)} target "
                     f"columns data.target names are read as numbers: 0/1 labels, one column per label "
                     f"(multilabel), or values (regression); write its labels as 0 and 1{two}")


def _target(table: CsvTable, targets: list[str], task: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Targets: numbers (N,) or (N, L) float64, or string class labels as indices with their sorted names.

    A missing class label (an empty cell) is NaN among the indices (float64 then), which ``data.nan_policy``
    refuses with its line or drops, as it does a missing number."""
    if len(targets) > 1:  # one 0/1 column per label (multilabel), or several regression outputs
        columns = []
        for name in targets:
            values, bad = numbers(table, name)
            if bad is not None and (error := _separated(table, name, strings(table, name), "target",
                                                      may_be_classes=False)) is not None:  # several: numbers
                raise error
            if bad is not None and not np.isfinite(values).any():  # a column of words, none a number
                raise _words_among_targets(table, name, targets)
            if bad is not None:
                raise _not_a_number(table, name, int(bad[0]), "target")
            columns.append(values)
        return np.stack(columns, axis=1), list(targets)
    name = targets[0]
    values, bad = numbers(table, name)
    if bad is None and is_bool_column(table, name):  # True/False: classes named so (predict prints them)
        missing = np.isnan(values)  # kept as NaN: data.nan_policy refuses or drops the row
        return (values if missing.any() else values.astype(np.int64)), ["False", "True"]
    if bad is None:
        return values, None
    labels = strings(table, name)
    if (error := _separated(table, name, labels, "target", task=task)) is not None:
        raise error
    if np.isfinite(values).any():  # a mix of numbers and text
        raise _not_a_number(table, name, int(bad[0]), "target")
    empty = labels == ""
    class_names, indices = np.unique(labels[~empty], return_inverse=True)  # sorted names, index = class id
    names = [str(c) for c in class_names]
    warn_case_twins(names, f"CSV file {table.file}", name)
    return _with_missing(indices.astype(np.int64), empty), names


def _with_missing(indices: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Class indices (N,) int64 of the labelled rows, or, where ``missing`` marks a row, float64 with NaN
    there, so that ``data.nan_policy`` refuses or drops those rows as it does a missing number."""
    if not missing.any():
        return indices
    out = np.full(len(missing), np.nan)
    out[~missing] = indices
    return out


@DATA_SOURCES.register("csv")
@receives_shared
def csv_file(path: str, target: str | list[str], features: list[str] | str | None = None,
             categorical: list[str] | str | None = None, delimiter: str = ",", task: str | None = None,
             nan_policy: str = "error") -> RawData:
    """A CSV with a header row: feature columns plus the ``target`` column (or a list of them).

    Read by pandas' C parser (:mod:`trainlab.data.csv_table`: BOM, quoted fields, ``delimiter``).
    Numeric feature cells that are empty or a missing-value marker (``NA``, ``NaN``, ``null`` ...)
    are NaN, which ``data.nan_policy`` refuses (default) or drops; a row of delimiters alone (``,,,``) is
    refused as such under the default (``nan_policy``: the source is given it). Categorical features
    (``categorical``, or every column holding no numbers at all) are one-hot encoded with the
    training split's categories. Features are standardised by default (``data.standardize``).

    Targets: a column of non-numeric strings is a class label column (classes in sorted order,
    named in ``class_names``); a mix of numbers and strings is an error. Numeric targets get the
    task of :func:`trainlab.data.dataset.infer_task` unless ``data.task`` says otherwise; a list
    of 0/1 columns (``target: [a, b, c]``) is a multi-label task whose class names are the columns.
    """
    checked = csv_columns(target, features, categorical, delimiter)
    targets, features, categorical = checked.targets, checked.features, checked.categorical
    file = resolve_file(path, "a CSV file with a header row")
    table = read_table(file, checked.delimiter, text_columns=categorical or ())
    columns = check_csv_columns(file, table.header, checked)
    if len(table) == 0:
        raise DataError(f"CSV file {file} has a header but no data rows")
    if nan_policy != "drop" and len(empty := empty_rows(table)):  # "a missing feature value" at its first column
        more = f", and so {'does' if len(empty) == 2 else 'do'} {counted(len(empty) - 1, 'more row')}" \
            if len(empty) > 1 else ""
        raise DataError(f"CSV file {file} line {table.line(int(empty[0]))} holds no value (only delimiters or "
                        f"missing-value markers){more}: "
                        "delete such rows (spreadsheet exports leave them below the data)")
    _refuse_trailing_delimiter(table, columns)
    x, numeric_names, cats, categorical_names = _features(table, columns, categorical)
    y, class_names = _target(table, targets, task)
    after_fit = None
    if features is None:
        after_fit = _identifier_warnings(table, x, numeric_names, cats if categorical is None else None,
                                         categorical_names if categorical is None else [])

    def locate(part: str, row: int, col: int) -> str:
        names = {"features": numeric_names, "categorical": categorical_names, "targets": targets}[part]
        name = names[col] if col < len(names) else names[0]
        return f"line {table.line(row)}, column '{name}' of {file}"

    markers = ", ".join(marker for marker in MISSING if marker)
    return RawData(x, y, class_names=class_names, locate=locate, standardize=True, feature_names=numeric_names,
                   x_categorical=cats, categorical_names=categorical_names or None,
                   missing_cells=f"the cell is empty or a missing-value marker: {markers} are read as missing",
                   after_fit=after_fit, target_names=list(targets))
