"""The ``npz`` source: a NumPy ``.npz`` archive a user already has, read by
:func:`trainlab.npz_archive.open_npz` (no pickles; each array's declared size checked first).

Two layouts name the splits (:func:`split_arrays`): trainlab's own ``x``, ``y`` with optional ``x_val``,
``y_val``, ``x_test``, ``y_test``, and Keras's ``mnist.npz`` layout ``x_train``, ``y_train``, ``x_test``,
``y_test`` (and ``x_val``, ``y_val``). An array whose name looks like a split's but which neither layout
reads (``x_valid``, ``test_x``) is warned of: a given test set is never silently replaced by one cut from
the training rows.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

import numpy as np

from trainlab.data import DATA_SOURCES, RawData
from trainlab.data.notices import warn
from trainlab.data.paths import resolve_file
from trainlab.errors import DataError
from trainlab.npz_archive import open_npz

TRAIN_SUFFIX = "_train"
# a name that says "split" (x_valid, X_test, test_x, y_holdout): warned of when no layout reads it
SPLIT_LIKE = re.compile(r"(^|[_.-])(train|training|val|valid|validation|dev|test|testing|eval|holdout)([_.-]|$)",
                        re.IGNORECASE)


def _present(name: str, names: Collection[str]) -> str:
    """``name`` as the archive spells it: itself, else the one array differing only in case (scikit-learn's
    ``X_train`` for ``x_train``); ``name`` unchanged when there is none or more than one."""
    if name in names:
        return name
    same = [n for n in names if n.lower() == name.lower()]
    return same[0] if len(same) == 1 else name


def split_arrays(x: str, y: str, names: Collection[str]) -> dict[str, tuple[str, str]]:
    """split (``train``, ``val``, ``test``) -> the (features, targets) array names the npz source reads
    for it from an archive holding arrays ``names``; a split is read only when its arrays are there.

    - ``x`` is in the archive (or ``x`` does not end in ``_train``, or ``y`` does not): ``x``/``y`` train,
      ``{x}_val``/``{y}_val`` and ``{x}_test``/``{y}_test`` the given val and test splits;
    - Keras's layout: no ``x`` but an ``{x}_train`` (``data.x`` left at ``x``: ``x_train``), or ``x`` and
      ``y`` both ending in ``_train`` (``data.x: x_train``, ``data.y: y_train``) and no ``{x}_val`` or
      ``{x}_test`` in the archive (those keep the layout above): ``{stem}_train``,
      ``{stem}_val`` and ``{stem}_test`` for each of the two stems.

    Each name absent as written matches the one array differing from it only in case (``X_test``).
    """
    if _present(x, names) not in names and _present(f"{x}{TRAIN_SUFFIX}", names) in names:
        train, stems = (f"{x}{TRAIN_SUFFIX}", f"{y}{TRAIN_SUFFIX}"), (x, y)  # Keras's, data.x/data.y its stems
    elif (x.endswith(TRAIN_SUFFIX) and y.endswith(TRAIN_SUFFIX)
          and not any(_present(f"{x}_{split}", names) in names for split in ("val", "test"))):
        # Keras's, named by its train arrays (an archive with x_train_val/x_train_test keeps trainlab's layout)
        train, stems = (x, y), (x[:-len(TRAIN_SUFFIX)], y[:-len(TRAIN_SUFFIX)])
    else:
        train, stems = (x, y), (x, y)
    layout = {"train": train, **{split: (f"{stems[0]}_{split}", f"{stems[1]}_{split}") for split in ("val", "test")}}
    return {split: (_present(xs, names), _present(ys, names)) for split, (xs, ys) in layout.items()}


def _missing_hint(name: str, option: str, names: Collection[str]) -> str:
    """How to name the arrays when ``name`` (``data.x`` or ``data.y``, ``option``) is not in the archive."""
    train_arrays = [n for n in names if n.lower() == f"{name}{TRAIN_SUFFIX}".lower()]
    if train_arrays:  # data.x: x_train set by hand, data.y left at y
        return f"; set data.{option}: {train_arrays[0]} (Keras's x_train/y_train/x_test/y_test layout)"
    return ("; set data.x and data.y to the arrays holding the features and the targets (the splits are then "
            "read from <x>_val/<y>_val and <x>_test/<y>_test, or from Keras's x_train/y_train/x_test/y_test)")


def _check_array(file: Path, name: str, array: np.ndarray) -> None:
    if array.ndim == 0:
        raise DataError(f"npz file {file}: array '{name}' is a scalar; expected one row per sample")
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        hint = "; encode class names as integers 0..K-1" if array.dtype.kind in "US" else ""
        raise DataError(f"npz file {file}: array '{name}' has dtype {array.dtype}; trainlab reads numbers{hint}")


def _warn_unread_splits(file: Path, layout: dict[str, tuple[str, str]], names: Collection[str]) -> None:
    """One warning naming the arrays that look like a split (:data:`SPLIT_LIKE`) but are not read."""
    read = {name for pair in layout.values() for name in pair}
    unread = sorted(n for n in names if n not in read and SPLIT_LIKE.search(n))
    if not unread:
        return
    reads = ", ".join(f"{xs}/{ys} ({split})" for split, (xs, ys) in layout.items())
    warn(f"npz file {file}: array(s) {', '.join(unread)} look like a split but are not read: the npz source reads "
         f"{reads}, and holds a missing val or test split out of the training rows; rename the arrays to those "
         "names, or set data.x and data.y")


@DATA_SOURCES.register("npz")
def npz(path: str, x: str = "x", y: str = "y") -> RawData:
    """A NumPy ``.npz`` holding ``x``/``y`` (names configurable) and optionally ``x_val``, ``x_test`` ...,
    or Keras's ``x_train``, ``y_train``, ``x_test``, ``y_test`` (see :func:`split_arrays`).

    Read with ``allow_pickle=False``: object arrays are refused. ``x`` is (N, features...); a 1-D
    ``x`` (N,) is refused (one feature is (N, 1), as the CSV reader gives it). A 2-D 0/1 ``y`` (N, L)
    is a multi-label task (see :func:`trainlab.data.dataset.infer_task`). Arrays named like a split
    that are not read (``x_valid``) are warned of.
    """
    file = resolve_file(path, "a .npz archive")
    arrays = open_npz(file, x, y)
    layout = split_arrays(x, y, arrays)
    for name, option in zip(layout["train"], ("x", "y"), strict=True):
        if name not in arrays:
            raise DataError(f"npz file {file} has no array '{name}' (arrays: {', '.join(sorted(arrays))})"
                            f"{_missing_hint(name, option, arrays)}")

    def pair(split: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        xs, ys = layout[split]
        if (xs in arrays) != (ys in arrays):
            have, lack = (xs, ys) if xs in arrays else (ys, xs)
            raise DataError(f"npz file {file} has '{have}' but no '{lack}'; store both or neither")
        if xs not in arrays:
            return None, None
        for name in (xs, ys):
            _check_array(file, name, arrays[name])
        if arrays[xs].ndim == 1:  # the CSV reader's one feature column is (N, 1); (N,) is no row of features
            raise DataError(f"npz file {file}: array '{xs}' is shaped {arrays[xs].shape}, one number per sample; "
                            f"features are (N, features...): save one feature as {xs}.reshape(-1, 1)")
        if len(arrays[xs]) != len(arrays[ys]):
            raise DataError(f"npz file {file}: '{xs}' has {len(arrays[xs])} rows but '{ys}' has {len(arrays[ys])}")
        if len(arrays[xs]) == 0:
            raise DataError(f"npz file {file}: '{xs}' and '{ys}' have 0 rows")
        return arrays[xs], arrays[ys]

    x_train, y_train = pair("train")
    x_val, y_val = pair("val")
    x_test, y_test = pair("test")
    _warn_unread_splits(file, layout, arrays)
    return RawData(x_train, y_train, x_val, y_val, x_test, y_test)
