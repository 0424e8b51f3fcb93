"""Data sources: a registry of readers and the one function that turns a config into a Dataset.

A source is a factory ``source(**kwargs) -> RawData``. It may carry ``check_values``, a function of its
options (defaults filled in) that raises the ConfigError its call would raise from them alone, before any file is
read: ``trainlab compare`` and ``tune`` call it before their runs (trainlab.preflight). :func:`load_dataset`
validates what it returns (finite values, label range, non-empty), splits off
val/test with a seeded, stratified split where the source has none, and converts
to tensors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainlab.config import DataConfig
from trainlab.config_fields import short_repr
from trainlab.data import preprocessing
from trainlab.data.dataset import (
    TASKS,
    BatchTransform,
    Dataset,
    Split,
    Task,
    check_finite,
    check_float32_range,
    infer_task,
    is_count_target,
    row_position,
    split_indices,
)
from trainlab.data.labels import (
    MAX_CLASSES,
    ClassLabels,
    cell_at,
    named_classes_task,
    read_class_labels,
    warn_classes_absent,
    warn_labels_never_positive,
)
from trainlab.data.positive_class import positive_index, swapped_labels, swapped_names
from trainlab.data.shared_rows import warn_of_shared_rows
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn, warn_of_split
from trainlab.registry import Registry, value_hint

DATA_SOURCES: Registry = Registry("data source", selector="source")


def users_source(source: str) -> bool:
    """Whether data source ``source`` is the user's own: a ``module:attr`` reference, or a name their code
    registered. Its options may mean anything (an ``augment`` of its own, a ``path`` that is a URL), so the
    checks of the built-in sources' options leave it alone. ``fit``'s arrays (``in_memory``: no registered
    factory) are trainlab's."""
    return ":" in source or (source in DATA_SOURCES and
                             not DATA_SOURCES.get(source).__module__.startswith("trainlab."))


def check_task(task: str | None) -> None:
    """``data.task`` is one of :data:`TASKS`, or None to infer it from the targets."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"data.task must be one of {', '.join(TASKS)} (or left out to infer it); got {task!r}"
                          f"{value_hint(task, TASKS)}")


@dataclass
class RawData:
    """What a source reads: a train split, optional val/test splits, optional task facts.

    ``locate(part, row, column)`` optionally names a cell of ``x_train`` (part
    ``"features"``), ``y_train`` (``"targets"``) or ``x_categorical`` (``"categorical"``) as the
    user knows it, e.g. a CSV line and column name; error messages use it instead of array indices.
    ``fit_transforms(x_train)`` optionally builds ``(train_transform, eval_transform)`` from
    the training split as it is *after* val/test are split off (image normalisation
    statistics), so held-out rows never shape the inputs' scaling.

    Tabular sources also give ``feature_names`` (the numeric columns of ``x_train``), the raw
    ``x_categorical`` strings (N, C) with their ``categorical_names`` (one-hot encoded by
    :mod:`trainlab.data.preprocessing` once the split is drawn; missing cells are ``""``), and
    ``standardize``: the default of ``data.standardize`` for this source; ``target_names`` name the target
    columns in messages (a CSV's ``data.target``). ``missing_cells`` says what the
    source reads as a missing value (NaN), for the message that refuses one (a CSV's empty cells and markers).
    ``after_fit(fitted)`` is called with the preprocessing fitted on the training split, before it is applied:
    a source's warnings that count what training encodes (a CSV's id-like text column: its training categories).

    ``encode_rows(rows)`` is for a source whose features are fitted too (a text source's vocabulary): its x
    arrays are then row numbers (int64, (N,)) into what it read, and once val/test are split off, the loader
    calls it with ``{"train": rows, "val": rows, "test": rows}`` (a split the source gave indexes its own rows;
    one held out indexes the training rows). It returns each split's features, fitted on the training split's
    rows only, and the extras that fit adds (the vocabulary).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    task: Task | None = None
    class_names: list[str] | None = None
    train_transform: BatchTransform | None = None
    eval_transform: BatchTransform | None = None
    extras: dict | None = None
    locate: Callable[[str, int, int], str] | None = None
    fit_transforms: Callable[[np.ndarray], tuple[BatchTransform, BatchTransform]] | None = None
    standardize: bool = False
    feature_names: list[str] | None = None
    x_categorical: np.ndarray | None = None
    categorical_names: list[str] | None = None
    target_names: list[str] | None = None
    missing_cells: str | None = None
    after_fit: Callable[[dict[str, Any]], None] | None = None
    encode_rows: Callable[[dict[str, np.ndarray]], tuple[dict[str, np.ndarray], dict[str, Any]]] | None = None


# how to turn text features into numbers, for the message refusing them
TEXT_FEATURES_FIX = ("encode text or categorical columns as numbers (integer codes or one-hot columns), or save the "
                     "table as a CSV file for the csv source, which one-hot encodes its text columns (docs/data.md, "
                     "'CSV files', categorical)")


def _holds_numbers(array: np.ndarray) -> bool:
    """Whether an object array's values are all numbers (Python floats or ints, held as objects)."""
    try:
        array.astype(np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _check_numeric(name: str, part: str, array: np.ndarray) -> None:
    """Refuse ``array`` (the ``part``, ``features`` or ``targets``, of the split ``name``) unless it holds real
    numbers, naming the fix: numbers held as objects are cast, targets encode class names as 0..K-1,
    features encode their text columns (:data:`TEXT_FEATURES_FIX`)."""
    if (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)) \
            and not np.issubdtype(array.dtype, np.complexfloating):
        return
    if np.issubdtype(array.dtype, np.complexfloating):
        fix = "give the real and imaginary parts as columns of their own"
    elif array.dtype == object and _holds_numbers(array):
        fix = ("the values are numbers held as Python objects: convert them with x.astype(np.float32)" if part == "features"
               else "the values are numbers held as Python objects: convert them with y.astype(np.int64) for class labels")
    elif part == "targets":
        fix = "encode class names as integers 0..K-1"
    else:
        fix = TEXT_FEATURES_FIX
    raise DataError(f"{name} {part} have dtype {array.dtype}; trainlab needs real numbers: {fix}")


def _clean(name: str, x: np.ndarray, y: np.ndarray, policy: str,
           locate: Callable[[str, int, int], str] | None = None,
           categorical: np.ndarray | None = None, missing_cells: str | None = None,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Check shapes and dtypes; refuse values beyond float32's range; refuse (policy ``error``) or drop
    (``drop``) rows with NaN/Inf or a missing category. Returns the kept ``(x, y, categorical)``."""
    x, y, categorical, _ = _clean_rows(name, x, y, policy, locate, categorical, missing_cells)
    return x, y, categorical


def _why_no_row_is_whole(x: np.ndarray, y: np.ndarray, locate: Callable[[str, int, int], str] | None) -> str:
    """For the error of a split that nan_policy: drop emptied: the first feature or target column that is
    NaN/Inf in every row ("" when none is: then each row has its own)."""
    for part, array in (("features", x), ("targets", y)):
        if not np.issubdtype(array.dtype, np.floating):
            continue
        columns = array.reshape(len(array), -1)
        empty = np.flatnonzero((~np.isfinite(columns)).all(axis=0))
        if len(empty):
            if array.ndim > 2 and locate is None:  # no column: a position within each row's own shape
                position = row_position(array.shape, int(empty[0]))
                return f": the {part} at position {position} (counting from 0) are NaN/Inf in every row (drop or " \
                       "fill that position)"
            where = cell_at(locate, part, 0, int(empty[0]) if array.ndim > 1 else None)
            return f": the first row's {part.removesuffix('s')} at {where} is NaN/Inf, and so is that column in " \
                   "every other row (drop or fill that column)"
    return ""


def _cell(locate: Callable[[str, int, int], str] | None, part: str, array: np.ndarray, row: int, flat: int) -> str:
    """Where value ``flat`` (its index in the row flattened) of row ``row`` of ``array`` is, for messages:
    ``row 17, column 2`` for a table (rows shaped (k,)), ``row 17, position [5, 2]`` for rows of several
    axes (a sequence's (20, 3): the flattened 17 named no column of the data), ``row 17`` for rows of one
    value (both counting from 0); a source's ``locate`` names cells in its own words (columns of a file)."""
    if array.ndim > 2 and locate is None:
        return f"row {row}, position {row_position(array.shape, flat)} (counting from 0)"
    return cell_at(locate, part, row, flat if array.ndim > 1 else None)


def _clean_rows(name: str, x: np.ndarray, y: np.ndarray, policy: str,
                locate: Callable[[str, int, int], str] | None = None, categorical: np.ndarray | None = None,
                missing_cells: str | None = None, split_after: bool = False,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """:func:`_clean`, plus the indices of the kept rows among the given ones (None: every row kept).
    ``missing_cells`` (:class:`RawData`'s) is said where a NaN is refused. ``split_after``: val or test rows
    are still to be split off these, which the count of dropped rows says (of the file's 700, not the 441
    that train)."""
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{name} must hold one row per sample; got features {x.shape} and targets {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} feature rows but {len(y)} targets")
    if len(x) == 0:
        raise DataError(f"{name} is empty (0 rows)")
    _check_numeric(name, "features", x)
    _check_numeric(name, "targets", y)
    for part, array in (("features", x), ("targets", y)):  # refused whatever the policy: rescaling fixes them
        check_float32_range(array, lambda row, col, part=part, array=array:
                            f"{name} {part} at {_cell(locate, part, array, row, col)}")
    missing_category = (categorical == "") if categorical is not None else None
    if policy != "drop":
        for part, array in (("features", x), ("targets", y)):
            if not np.issubdtype(array.dtype, np.floating):
                continue
            flat = array.reshape(len(array), -1)
            finite = np.isfinite(flat)
            bad = np.argwhere(~finite)
            if len(bad):
                row, col = (int(i) for i in bad[0])
                # a feature column missing in every row: the cause, whatever cell came first
                empty = np.flatnonzero(~finite.any(0)) if part == "features" and len(flat) >= 2 else ()
                if len(empty):
                    row, col = 0, int(empty[0])
                value = flat[row, col]
                where = _cell(locate, part, array, row, col)
                missing = bool(np.isnan(value)) and missing_cells is not None  # a CSV's empty cell or NA
                said = f" ({missing_cells})" if missing else ""
                fix = ("; fix the data or set data.nan_policy: drop" if not len(empty) else
                       ", and so is that column in every other row: leave the column out (a CSV's: choose the "
                       "feature columns with data.features), as data.nan_policy: drop would drop every row")
                raise DataError(f"{name} has a {'missing' if missing else 'non-finite'} {part[:-1]} value ({value}) "
                                f"at {where}{said}{fix}")
        if missing_category is not None and missing_category.any():
            row, col = (int(i) for i in np.argwhere(missing_category)[0])
            raise DataError(f"{name} has a missing category at {cell_at(locate, 'categorical', row, col)}; "
                            "fix the data or set data.nan_policy: drop")
        return x, y, categorical, None
    keep_x = check_finite(f"{name} features", x, policy)
    keep_y = check_finite(f"{name} targets", y, policy)
    keep_c = None if missing_category is None or not missing_category.any() \
        else np.flatnonzero(~missing_category.any(axis=1))
    keep = None
    if keep_x is not None or keep_y is not None or keep_c is not None:
        keep = np.arange(len(x))
        for rows in (keep_x, keep_y, keep_c):
            if rows is not None:
                keep = np.intersect1d(keep, rows)
        if len(keep) == 0:
            raise DataError(f"{name} is empty after dropping rows with NaN/Inf{_why_no_row_is_whole(x, y, locate)}")
        dropped = len(x) - len(keep)
        x, y = x[keep], y[keep]
        categorical = None if categorical is None else categorical[keep]
        if dropped:
            before = " as read, before val/test were split off" if split_after else ""
            warn(f"data.nan_policy: drop dropped {dropped} of {dropped + len(x)} rows of the {name}{before} "
                 "(a NaN/Inf value or a missing category)")
    return x, y, categorical, keep


def _zero_based(part: str, row: int, column: int) -> str:
    """A cell by its 0-based row in the source's data, for a source that gives no ``locate``."""
    return (f"row {row}" + (f", column {column}" if column else "")
            + " (counting from 0 in the source's arrays, before data.nan_policy dropped rows)")


def _renumbered(locate: Callable[[str, int, int], str], kept: np.ndarray) -> Callable[[str, int, int], str]:
    """``locate`` for the rows left after dropping: row i is the source's row ``kept[i]``."""
    return lambda part, row, column: locate(part, int(kept[row]), column)


def _same_layout(name: str, x: np.ndarray, y: np.ndarray, x_train: np.ndarray, y_train: np.ndarray) -> None:
    if x.shape[1:] != x_train.shape[1:]:
        raise DataError(f"{name} features are shaped {tuple(x.shape[1:])} per row but the training features "
                        f"{tuple(x_train.shape[1:])}")
    width, train_width = (int(np.prod(a.shape[1:], dtype=np.int64)) for a in (y, y_train))
    if width != train_width:
        raise DataError(f"{name} has {width} target value(s) per row but the training data {train_width}")


FORWARDED = ("task", "nan_policy")  # shared data keys a source marked with receives_shared() is given


def receives_shared(factory: Callable[..., RawData]) -> Callable[..., RawData]:
    """Mark a data source that takes ``data.task`` and ``data.nan_policy`` as ``task=``/``nan_policy=``
    (the text sources read labels by the task and drop unlabeled rows); other sources never get them."""
    factory.receives_shared = True  # type: ignore[attr-defined]
    return factory


def source_options(config: DataConfig) -> dict[str, Any]:
    """The source's keyword arguments: its own data keys, plus :data:`FORWARDED` for a marked source."""
    options = config.source_kwargs()
    try:
        factory = DATA_SOURCES.get(config.source)
    except ConfigError:  # unknown source: the build words the error
        return options
    if getattr(factory, "receives_shared", False):
        options.update({key: getattr(config, key) for key in FORWARDED})
    return options


def _decide_task(config: DataConfig, raw: RawData, y_train: np.ndarray) -> Task:
    """``data.task``, else the source's, else classes where the source names them (class folders, string
    labels: :func:`~trainlab.data.labels.named_classes_task`), else :func:`~trainlab.data.dataset.infer_task`."""
    task = config.task or raw.task or named_classes_task(raw.class_names, y_train) or infer_task(y_train)
    if task == "regression" and raw.class_names is not None and y_train.ndim == 1:
        raise DataError(f"data.task is regression but the targets are class labels such as "
                        f"{short_repr(raw.class_names[0])}; leave data.task out or set it to binary/multiclass")
    return task  # type: ignore[return-value]


def targets_tensor(y: np.ndarray, task: Task) -> torch.Tensor:
    """Targets as the losses take them: float (N, d) for regression, float (N, L) 0/1 for multilabel, int64 classes."""
    if task == "regression":
        y = y.astype(np.float32)
        width = int(np.prod(y.shape[1:], dtype=np.int64))  # (N,) -> (N, 1); also for an empty split
        return torch.from_numpy(y.reshape(len(y), width).copy())
    if task == "multilabel":
        return torch.from_numpy(y.astype(np.float32).copy())
    return torch.from_numpy(y.astype(np.int64).copy())


def _features(x: np.ndarray) -> torch.Tensor:
    if x.dtype == np.uint8 or np.issubdtype(x.dtype, np.integer):  # images/tokens: converted per batch
        return torch.from_numpy(np.ascontiguousarray(x))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _take(index: np.ndarray, *arrays: np.ndarray | None) -> list[np.ndarray | None]:
    return [None if a is None else a[index] for a in arrays]


@dataclass(frozen=True)
class HeldOut:
    """A split :func:`_split_off` held out of the training rows, kept for its warnings, which
    :func:`load_dataset` gives only once training is known to keep a row (else its error says it all).

    ``held``: the rows held out, as indices into ``labels``' rows; ``labels``: the targets the split was
    stratified on (None: a random split)."""

    split: str
    fraction: float
    held: np.ndarray
    labels: np.ndarray | None

    def warn(self, class_names: list[str] | None) -> None:
        """One warning line for an empty split (its metrics will be missing), else one naming the classes a
        stratified split has no row of (:func:`_warn_if_classes_missing`)."""
        _warn_if_empty(self.split, len(self.held), self.fraction, self.labels is not None)
        if self.labels is not None:
            _warn_if_classes_missing(self.split, self.held, self.labels, class_names)


def _warn_if_empty(split: str, n: int, fraction: float, stratified: bool) -> None:
    """An empty held-out split. A stratified split holds rows out per class and keeps a class's only row
    in training, so there every class has one row left; a random split holds at least one row out, so
    there no row is left (the test split took them)."""
    if n == 0 and fraction > 0:
        why = ("every class has a single row left (after any test split), and the stratified split keeps each "
               "class's only row in training" if stratified else "no rows are left after the test split")
        warn_of_split(split, f"the {split} split is empty: {why}, so {split} metrics will be missing; add rows")


def _warn_if_classes_missing(split: str, held: np.ndarray, stratify: np.ndarray, class_names: list[str] | None
                             ) -> None:
    """One warning naming the classes a non-empty stratified held-out split has no row of: classes too
    small for the fraction (:func:`~trainlab.data.dataset.held_out_counts` keeps each class's last row in
    training), whose absence that split's metrics do not show."""
    if len(held):
        warn_classes_absent(split, np.unique(stratify), stratify[held], class_names,
                             f"they have too few rows for {split}_fraction")


def _split_off(name: str, fraction: float, seed: int, x: np.ndarray, y: np.ndarray, cat: np.ndarray | None,
               stratify: np.ndarray | None) -> tuple[tuple, tuple, HeldOut]:
    """``((x, y, cat) kept, (x, y, cat) held out, what was held out)``: a seeded (stratified) ``fraction``
    of the rows held out; the caller gives its warnings (:meth:`HeldOut.warn`)."""
    keep, held = split_indices(len(x), fraction, seed, stratify)
    held_out = (x[held], y[held], None if cat is None else cat[held])
    labels = stratify if stratify is not None and stratify.ndim == 1 else None
    return _take(keep, x, y, cat), held_out, HeldOut(name, fraction, held, labels)


def empty_training_error(rows: int, dropped: int, held_outs: list[HeldOut], given_splits: str | None) -> DataError:
    """The error for training rows that the held-out splits took every one of: a random split (regression,
    multilabel) holds out ``max(1, round(n * fraction))`` rows, so 1 or 2 rows, or a fraction near 1, leave
    none (a stratified split keeps a row of each class). It names the ``rows`` read (``dropped``: those
    data.nan_policy dropped before), what each split held out at its fraction, and the fix: lower fractions
    where they can leave a row, else (a row or two, a split each) more rows or no held-out splits at all;
    ``given_splits``: how the source takes val/test splits of its own, or None."""
    read = f"{rows} row{'' if rows == 1 else 's'} " + (
        f"left after data.nan_policy: drop dropped {dropped}" if dropped else "read")
    took = " and ".join(f"{len(h.held)} went to {h.split} (data.{h.split}_fraction {h.fraction:g})"
                        for h in held_outs if len(h.held))
    splitting = [h for h in held_outs if h.fraction > 0]
    keys = " and ".join(f"data.{h.split}_fraction" for h in splitting)
    given = f", give {given_splits}" if given_splits else ""
    if len(splitting) < rows:  # each split that is not 0 takes a row at least: small enough fractions leave one
        fix = f"lower {keys} (0 holds no split out){given}, or add rows"
    else:
        every = "the 1 row" if rows == 1 else f"all {rows} rows"
        fix = (f"add rows{given}, or set {keys} to 0 (training on {every}, with no "
               f"{' or '.join(h.split for h in splitting)} metrics)")
    return DataError(f"training data is empty after splitting off val/test: of the {read}, {took}, as a random "
                     f"split holds out round(rows * fraction) of them, at least one; {fix}")


def _encoded_rows(raw: RawData, extras: dict[str, Any], *splits: np.ndarray) -> tuple[np.ndarray, ...]:
    """The train, val and test ``splits`` as features: themselves, or for a source with ``encode_rows`` (its x
    are row numbers) what it encodes them to, fitted on the training split's rows only (a text source's
    vocabulary, which it adds to ``extras``), never on the rows held out of the training file."""
    if raw.encode_rows is None:
        return splits
    encoded, fitted = raw.encode_rows(dict(zip(("train", "val", "test"), splits, strict=True)))
    extras.update(fitted)
    return encoded["train"], encoded["val"], encoded["test"]


def _given_splits(source: str) -> str | None:
    """How ``source`` takes val/test splits of its own, for :func:`empty_training_error`'s fix: the text
    sources' ``data.val``/``data.test`` files; None for a source without such options (csv)."""
    given = [f"data.{split}" for split in ("val", "test") if DATA_SOURCES.takes_option(source, split)]
    return f"{' and '.join(given)} files" if given else None


def _refuse_empty_training(source: str, rows: int, kept: np.ndarray | None, training_rows: int,
                           held_outs: list[HeldOut], class_names: list[str] | None) -> None:
    """Refuse training data the held-out splits took every row of (:func:`empty_training_error`; ``rows``:
    the source's, ``kept``: those data.nan_policy kept, None for all), then give the held-out splits'
    warnings: only then, as an empty val split is no news when nothing trains."""
    if training_rows == 0:
        read = rows if kept is None else len(kept)
        raise empty_training_error(read, rows - read, held_outs, _given_splits(source))
    for held in held_outs:
        held.warn(class_names)


def _splits_after(config: DataConfig, raw: RawData) -> bool:
    """Whether val or test rows are still to be split off the source's training rows (a fraction of them)."""
    return bool((raw.x_val is None and config.val_fraction) or (raw.x_test is None and config.test_fraction))


def load_dataset(config: DataConfig, seed: int = 0) -> Dataset:
    """Read the configured source and return validated, preprocessed train/val/test splits.

    Steps: read (the source) -> clean (NaN policy) -> task (``data.task`` or :func:`infer_task`)
    -> check labels -> split off test, then val, seeded by ``data.split_seed`` (stratified for
    binary/multiclass) -> fit :mod:`~trainlab.data.preprocessing` on the training split and apply it
    to every split. ``seed`` (the run's seed) is not used: the split depends on ``split_seed`` only,
    so runs over several seeds compare on one split.
    """
    import trainlab.data.builtins  # noqa: F401  (registers the built-in sources)

    raw = DATA_SOURCES.build({"name": config.source, **source_options(config)})
    if not isinstance(raw, RawData):
        raise ConfigError(f"data source '{config.source}' must return trainlab.data.RawData")
    check_task(raw.task)
    policy = config.nan_policy
    x_train, y_train = np.asarray(raw.x_train), np.asarray(raw.y_train)
    cat_train = raw.x_categorical
    if cat_train is not None and (raw.x_val is not None or raw.x_test is not None):
        raise ConfigError(f"data source '{config.source}': categorical columns need load_dataset to split val/test")
    x_train, y_train, cat_train, kept = _clean_rows("training data", x_train, y_train, policy, raw.locate, cat_train,
                                                 raw.missing_cells, split_after=_splits_after(config, raw))
    locate = raw.locate
    if kept is not None and len(kept) < len(raw.x_train):  # name a cell by its row in the source (a file line)
        locate = _renumbered(raw.locate or _zero_based, kept)
    task = _decide_task(config, raw, y_train)
    extras = dict(raw.extras or {})
    class_names = raw.class_names if task != "regression" else None  # (multi-target CSVs name their columns)
    labels, y_train = read_class_labels(task, y_train, class_names, locate)
    if task == "regression" and raw.task is None and is_count_target(y_train):
        extras["target_kind"] = "count"  # whole numbers >= 0 with many values: the advisor may propose poisson_nll
    stratify = y_train if task in ("binary", "multiclass") else None

    names_key = "data.class_names" if DATA_SOURCES.takes_option(config.source, "class_names") else None
    task_given = (config.task or raw.task) is not None

    training_classes = np.unique(y_train) if stratify is not None and stratify.ndim == 1 else None

    def check_given(name: str, split: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y, _ = _clean(name, np.asarray(x), np.asarray(y), policy)
        _same_layout(name, x, y, x_train, y_train)
        y = labels.given(name, y, names_key, task_given)
        if training_classes is not None and len(y):
            warn_classes_absent(split, training_classes, y, labels.class_names,
                                 "they are in the training data only")
        return x, y

    held_outs: list[HeldOut] = []
    if raw.x_test is None:
        (x_train, y_train, cat_train), (x_test, y_test, cat_test), held = _split_off(
            "test", config.test_fraction, config.split_seed, x_train, y_train, cat_train, stratify)
        held_outs.append(held)
        stratify = y_train if task in ("binary", "multiclass") else None
    else:
        x_test, y_test = check_given("test data", "test", raw.x_test, raw.y_test)
        cat_test = None
    if raw.x_val is None:
        (x_train, y_train, cat_train), (x_val, y_val, cat_val), held = _split_off(
            "val", config.val_fraction, config.split_seed + 1, x_train, y_train, cat_train, stratify)
        held_outs.append(held)
    else:
        x_val, y_val = check_given("validation data", "val", raw.x_val, raw.y_val)
        cat_val = None
    _refuse_empty_training(config.source, len(raw.x_train), kept, len(x_train), held_outs, labels.class_names)
    x_train, x_val, x_test = _encoded_rows(raw, extras, x_train, x_val, x_test)
    warn_of_shared_rows((x_train, cat_train), {"val": (x_val, cat_val), "test": (x_test, cat_test)})

    return _prepared(config, raw, task, labels, extras, {
        "training data": (x_train, y_train, cat_train), "validation data": (x_val, y_val, cat_val),
        "test data": (x_test, y_test, cat_test)})


def _prepared(config: DataConfig, raw: RawData, task: str, labels: ClassLabels, extras: dict[str, Any],
              splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> Dataset:
    """The Dataset of the cleaned, split ``splits`` (training, validation, test), their labels as
    :func:`_labelled_splits` reads them: preprocessing fitted on the training split and applied to each, the
    source's transforms (fitted on the training images)."""
    labels, splits = _labelled_splits(config, task, labels, splits)
    fitted, prepared = _preprocess(config, raw, task, labels.class_names, splits)
    train, val, test = (Split(_features(x), targets_tensor(y, task)) for x, y in prepared)
    train_transform, eval_transform = raw.train_transform, raw.eval_transform
    if raw.fit_transforms is not None:
        train_transform, eval_transform = raw.fit_transforms(prepared[0][0])
    if raw.target_names and len(raw.target_names) > 1:  # several target columns: messages name them (run_checks)
        extras = {**extras, "target_names": list(raw.target_names)}
    return Dataset(train=train, val=val, test=test, task=task, num_classes=labels.num_classes,
                   class_names=labels.class_names,
                   train_transform=train_transform, eval_transform=eval_transform, extras=extras,
                   preprocessing=fitted)


SPLIT_KEYS = {"training data": "train", "validation data": "val", "test data": "test"}  # _prepared's splits


def _labelled_splits(config: DataConfig, task: str, labels: ClassLabels,
                     splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                     ) -> tuple[ClassLabels, dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]]:
    """``(labels, splits)`` as the run reads them: multi-label labels no training row (or no val/test row) sets
    warned of (:func:`~trainlab.data.labels.warn_labels_never_positive`); a binary task's two classes swapped
    in every split and in the names where ``data.positive_class`` names the class read as 0
    (:mod:`trainlab.data.positive_class`)."""
    if task == "multilabel":
        warn_labels_never_positive({SPLIT_KEYS[name]: y for name, (_, y, _) in splits.items()}, labels.class_names)
    if positive_index(config.positive_class, task, labels.class_names) == 0:
        labels = dataclasses.replace(labels, class_names=swapped_names(labels.class_names))
        splits = {name: (x, swapped_labels(y), cat) for name, (x, y, cat) in splits.items()}
    return labels, splits


def _preprocess(config: DataConfig, raw: RawData, task: str, class_names: list[str] | None,
                splits: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                ) -> tuple[dict[str, Any], list[tuple[np.ndarray, np.ndarray]]]:
    """Fit the preprocessing on the first split (training) and apply it to every split: ``(fitted, [(x, y)])``."""
    x_train, y_train, cat_train = next(iter(splits.values()))
    standardize = raw.standardize if config.standardize is None else config.standardize
    fitted = preprocessing.fit(
        x_train, task=task, class_names=class_names, standardize=standardize,
        numeric_columns=raw.feature_names, categorical_train=cat_train,
        categorical_columns=raw.categorical_names or (), y_train=y_train,
        standardize_target=config.standardize_target, source=config.source, target_names=raw.target_names,
    )
    if raw.after_fit is not None:
        raw.after_fit(fitted)
    return fitted, [(preprocessing.apply(fitted, x, cat, name), preprocessing.transform_target(fitted, y))
                    for name, (x, y, cat) in splits.items()]


def describe(dataset: Dataset) -> dict[str, Any]:
    return {
        "task": dataset.task,
        "num_classes": dataset.num_classes,
        "class_names": dataset.class_names,
        "input_shape": list(dataset.input_shape),
        "sizes": {"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)},
    }


__all__ = ["DATA_SOURCES", "MAX_CLASSES", "TASKS", "Dataset", "RawData", "Split", "check_task", "describe",
           "load_dataset"]
