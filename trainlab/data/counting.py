"""How many rows each split of a data config holds, without decoding images, tokenizing text or building a model.

Contract: for a config that :func:`trainlab.data.load_dataset` loads without error,
:func:`count_splits` returns exactly ``(len(train), len(val), len(test))`` of the Dataset it
would return. It gets there in two steps:

1. A per-source *row counter* (the :data:`ROW_COUNTERS` registry, name -> function; the built-in
   sources' counters are in :mod:`trainlab.data.row_counters`) reads only
   what decides the counts: archive indexes and file sizes instead of pixels, the IDX header, the
   label column of a table. It returns :class:`SourceRows`: the training targets (what the split
   stratifies on, and what a task is inferred from) after ``data.nan_policy``, plus the row counts
   of the val/test splits the source has of its own (None where it has none).
2. :func:`split_sizes` applies :func:`trainlab.data.dataset.split_indices`' arithmetic: test is
   carved from train (when the source has no test split), then val from what remains; stratified
   per class for binary/multiclass tasks (:func:`trainlab.data.dataset.held_out_counts`), otherwise
   ``max(1, round(n * fraction))``. The counts do not depend on the seed; only which rows go where does.

A source without a counter (a ``module:attr`` source, for one) is read by the source itself and
counted from its arrays; that still builds no model and skips the preprocessing, and a one-line
note on stderr says so. A user source can register a counter under its reference
(``@row_counter("mydata:two_moons")`` in its module, which the reference imports). Counting validates only what it reads: a file the loader would refuse
for a bad pixel or token is counted anyway.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainlab.config import DataConfig
from trainlab.data import DATA_SOURCES, RawData, _clean, source_options
from trainlab.data.dataset import held_out_counts, infer_task, one_label_per_row
from trainlab.errors import ConfigError
from trainlab.notices import note


@dataclass(frozen=True)
class SourceRows:
    """What a source yields, counted: the training targets and the sizes of its own val/test splits.

    ``train_targets``: (N,) or (N, L) targets of the training rows as the loader sees them after
    ``data.nan_policy`` (class indices, not names). ``val``/``test``: rows of the source's own
    split, or None when the loader carves that split from train. ``task``: the task the source
    fixes (None: inferred from the targets, as :func:`~trainlab.data.dataset.infer_task` does).
    """

    train_targets: np.ndarray
    val: int | None = None
    test: int | None = None
    task: str | None = None


@dataclass(frozen=True)
class SplitSizes:
    train: int
    val: int
    test: int


RowCounter = Callable[[dict[str, Any], DataConfig], SourceRows]
# source name -> counter(options, config); ``options`` are the source's keyword arguments with its
# defaults filled in (bound to the source's own signature, so the defaults live in one place)
ROW_COUNTERS: dict[str, RowCounter] = {}
# (source name, the registering module's name) -> counter: two files of one module name (extA/mydata.py and
# extB/mydata.py, imported side by side by trainlab.user_code) each count their own source
_MODULE_COUNTERS: dict[tuple[str, str], RowCounter] = {}


def _file_module(name: str) -> str:
    """A module's name as its file names it: ``mydata`` for ``mydata__trainlab_<hash>`` (trainlab.user_code's name
    for a second file of one module name)."""
    return name.partition("__trainlab_")[0]


def _builtin(counter: RowCounter) -> bool:
    return getattr(counter, "__module__", "").startswith("trainlab.")


def row_counter(*names: str) -> Callable[[RowCounter], RowCounter]:
    """Decorator: register a counter for the sources ``names``.

    A user's module registering a name again replaces its own counter (a module imported again: a notebook's
    ``importlib.reload``, a second base config beside another file of that module name); a built-in source's
    name is refused (ConfigError naming the user's module), as is a name two of trainlab's counters take."""

    def add(counter: RowCounter) -> RowCounter:
        module = getattr(counter, "__module__", "") or ""
        if not _builtin(counter):  # the built-in names taken first, whichever module is imported first
            import trainlab.data.row_counters  # noqa: F401
        for name in names:
            existing = ROW_COUNTERS.get(name)
            if existing is not None and _builtin(existing) and not _builtin(counter):
                own = _file_module(module)
                where = inspect.getsourcefile(counter) or own
                raise ConfigError(f"row counter '{name}' in {where} takes the name of trainlab's built-in source "
                                  f"'{name}': register it under your source's own reference "
                                  f"(@row_counter('{own}:<your source function>'))")
            if existing is not None and _builtin(existing):
                raise ValueError(f"row counter '{name}' is already registered")
            ROW_COUNTERS[name] = counter
            _MODULE_COUNTERS[(name, module)] = counter
        return counter

    return add


# ----------------------------------------------------------------------------- split arithmetic


def _held_out(groups: list[int], fraction: float, stratified: bool) -> list[int]:
    """Rows :func:`~trainlab.data.dataset.split_indices` holds out of each group (a class, or all rows)."""
    if fraction <= 0:
        return [0] * len(groups)
    if not stratified:
        n = groups[0]
        return [min(n, max(1, int(round(n * fraction))))]
    # the classes' order stands for split_indices' seeded tie-break: neither the total nor the sizes left
    # (as a multiset) depend on it
    return held_out_counts(groups, fraction)


def split_sizes(rows: SourceRows, config: DataConfig) -> SplitSizes:
    """Train/val/test sizes after :func:`~trainlab.data.load_dataset` carves the missing splits from train."""
    targets = np.asarray(rows.train_targets)
    task = config.task or rows.task or infer_task(targets)
    targets = one_label_per_row(targets, task)  # a (N, 1) column or one-hot rows: split as load_dataset does
    stratified = task in ("binary", "multiclass") and targets.ndim == 1
    if stratified:
        groups = [int(c) for c in np.unique(targets, return_counts=True)[1]]
    else:
        groups = [len(targets)]
    test = rows.test
    if test is None:
        held = _held_out(groups, config.test_fraction, stratified)
        groups = [g - h for g, h in zip(groups, held, strict=True)]
        test = sum(held)
    val = rows.val
    if val is None:
        held = _held_out(groups, config.val_fraction, stratified)
        groups = [g - h for g, h in zip(groups, held, strict=True)]
        val = sum(held)
    return SplitSizes(sum(groups), val, test)


# ----------------------------------------------------------------------------- the entry point


def _bound_options(config: DataConfig) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The source's factory and its keyword arguments with defaults applied; unknown options refused."""
    import trainlab.data.builtins  # noqa: F401  (registers the built-in sources)

    factory = DATA_SOURCES.get(config.source)
    options = source_options(config)
    try:
        bound = inspect.signature(factory).bind(**options)
    except TypeError:  # let the registry word the error (unknown option, did-you-mean, valid options)
        DATA_SOURCES.build({"name": config.source, **options})
        raise
    except ValueError:  # a factory without a signature: nothing to bind
        return factory, dict(options)
    bound.apply_defaults()
    return factory, dict(bound.arguments)


def count_rows(config: DataConfig) -> SourceRows:
    """The source's rows, counted by its registered counter (or read by the source, with a note)."""
    import trainlab.data.row_counters  # noqa: F401  (registers the built-in sources' counters)

    factory, options = _bound_options(config)
    module = getattr(factory, "__module__", "") or ""  # a user's source: the counter its own module registered
    counter = _MODULE_COUNTERS.get((config.source, module))
    if counter is None:  # also "module:attr"
        counter = ROW_COUNTERS.get(config.source) or ROW_COUNTERS.get(config.source.lower())
        registered = getattr(counter, "__module__", "") or ""
        if registered != module and _file_module(registered) == _file_module(module):
            counter = None  # another file's module of that name counted its own source: not this one's
    if counter is None:
        note(f"note: data source '{config.source}' has no row counter; reading it to count the rows "
             "(no model is built)")
        return rows_of_raw(DATA_SOURCES.build({"name": config.source, **source_options(config)}), config)
    return counter(options, config)


def count_splits(config: DataConfig) -> SplitSizes:
    """``len(train), len(val), len(test)`` of ``load_dataset(config)``, counted without loading it."""
    return split_sizes(count_rows(config), config)


# ----------------------------------------------------------------------------- sources read whole (cheap)


def rows_of_raw(raw: RawData, config: DataConfig) -> SourceRows:
    """Count what a source returned, with the loader's own NaN policy (for sources cheap to read)."""
    if not isinstance(raw, RawData):
        raise ConfigError(f"data source '{config.source}' must return trainlab.data.RawData")
    policy = config.nan_policy
    _, y_train, _ = _clean("training data", np.asarray(raw.x_train), np.asarray(raw.y_train), policy,
                           raw.locate, raw.x_categorical, raw.missing_cells)
    sizes = {}
    for name, x, y in (("validation data", raw.x_val, raw.y_val), ("test data", raw.x_test, raw.y_test)):
        sizes[name] = None if x is None else len(_clean(name, np.asarray(x), np.asarray(y), policy)[0])
    return SourceRows(y_train, sizes["validation data"], sizes["test data"], raw.task)


__all__ = ["ROW_COUNTERS", "SourceRows", "SplitSizes", "count_rows", "count_splits", "row_counter", "rows_of_raw",
           "split_sizes"]
