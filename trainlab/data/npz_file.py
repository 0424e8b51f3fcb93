"""The ``npz`` source: a NumPy ``.npz`` archive a user already has, read by
:func:`trainlab.npz_archive.open_npz` (no pickles; each array's declared size checked first).

Two layouts name the splits (:func:`split_arrays`): trainlab's own ``x``, ``y`` with optional ``x_val``,
``y_val``, ``x_test``, ``y_test``, and Keras's ``mnist.npz`` layout ``x_train``, ``y_train``, ``x_test``,
``y_test`` (and ``x_val``, ``y_val``). An array whose name looks like a split's but which neither layout
reads (``x_valid``, ``test_x``) is warned of: a given test set is never silently replaced by one cut from
the training rows.

Targets are read as ``trainlab.fit`` reads arrays in memory: a (N, 1) ``y`` (``y.reshape(-1, 1)``) is its
(N,) column, and a one-hot ``y`` (Keras's ``to_categorical``) the class indices ``y.argmax(1)``, with a
warning, unless ``data.task`` says multilabel or regression (:func:`~trainlab.data.dataset.one_label_per_row`).
Images are (N, C, H, W) or (N, H, W): a 4-D ``x`` whose channels are clearly last (:func:`is_channels_last`),
as Keras's CIFAR-10 is (N, 32, 32, 3), is refused naming ``x.transpose(0, 3, 1, 2)``: read as it is, a conv
model would take 32 rows of 3 pixels as 32 channels. One channel last (Keras's ``expand_dims(x, -1)``) is
a warning only: a model that flattens its input (mlp) reads it either way.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

import numpy as np

from trainlab.config_fields import short_repr
from trainlab.data import DATA_SOURCES, TEXT_FEATURES_FIX, RawData, receives_shared
from trainlab.data.dataset import is_one_hot
from trainlab.data.labels import warn_one_hot
from trainlab.data.paths import resolve_file
from trainlab.errors import DataError
from trainlab.notices import warn
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


# an image's channels: gray, RGB, RGBA
CHANNEL_COUNTS = (1, 3, 4)


def is_channels_last(shape: tuple[int, ...]) -> bool:
    """``shape`` (N, ...) holds images with their channels last, (N, H, W, C): 4-D, the last axis 1, 3 or 4
    (:data:`CHANNEL_COUNTS`) and the second not, so it cannot be channels first (N, C, H, W). An array that
    could be either ((N, 3, 32, 3): three channels of 32x3 images) is not: it is read channels first."""
    return len(shape) == 4 and shape[3] in CHANNEL_COUNTS and shape[1] not in CHANNEL_COUNTS


def channels_last_fix(name: str, shape: tuple[int, ...]) -> str:
    """What to do with an array ``name`` of :func:`is_channels_last` ``shape``, for the end of a message."""
    n, height, width, channels = shape
    return (f"images with their {channels} channel{'s' * (channels > 1)} last (N, H, W, C), as Keras and PIL store them; trainlab "
            f"reads images channels first (N, C, H, W): save {name}.transpose(0, 3, 1, 2), shaped "
            f"({n}, {channels}, {height}, {width})")


def _check_array(file: Path, name: str, array: np.ndarray, features: bool) -> None:
    """Refuse an array ``name`` that is no .npy array, a scalar, or holds no numbers: text in ``features``
    (an x array) is told how to encode it, text in a y array to encode its class names as 0..K-1."""
    if not isinstance(array, np.ndarray):  # a member written by hand into the zip: np.load gives its bytes
        raise DataError(f"array '{name}' in {file} is not a .npy array (its member {name}.npy holds other "
                        "bytes); write the archive with np.savez(path, x=..., y=...)")
    if array.ndim == 0:
        raise DataError(f"npz file {file}: array '{name}' is a scalar; expected one row per sample")
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        hint = "" if array.dtype.kind not in "US" else f"; {TEXT_FEATURES_FIX}" if features else \
            "; encode class names as integers 0..K-1"
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


def _finite_rows(y: np.ndarray) -> np.ndarray:
    """A mask of the rows of 2-D ``y`` holding no NaN/Inf."""
    return np.isfinite(y).all(axis=1) if np.issubdtype(y.dtype, np.floating) else np.ones(len(y), dtype=bool)


def _one_hot_indices(y: np.ndarray, nan_policy: str) -> np.ndarray | None:
    """``y.argmax(1)`` of one-hot targets (:func:`~trainlab.data.dataset.is_one_hot`), else None. With
    ``nan_policy: drop`` the rows holding NaN/Inf are left out of the test and stay NaN among the indices,
    for the loader to drop; with ``error`` such a ``y`` is left as read, so the loader's error names the cell."""
    finite = _finite_rows(y)
    if (nan_policy != "drop" and not finite.all()) or not is_one_hot(y[finite]):
        return None
    if finite.all():
        return np.argmax(y, axis=1)
    indices = np.full(len(y), np.nan)
    indices[finite] = np.argmax(y[finite], axis=1)
    return indices


def _one_label_per_row(file: Path, names: list[str], ys: list[np.ndarray | None], task: str | None,
                       nan_policy: str) -> tuple[list[np.ndarray | None], str | None]:
    """The splits' targets ``ys`` (arrays ``names``; None: a split the archive lacks) read as ``trainlab.fit``
    reads targets, and the task they fix (None: the loader infers it):

    - a (N, 1) ``y`` is its (N,) column, whatever the task;
    - a one-hot training ``y`` (N, K) of a binary or multiclass task (``data.task``, or none given) is read
      as ``y.argmax(1)`` in every split, with one warning, and fixes the task (``binary`` for K = 2, else
      ``multiclass``: the class indices alone could read as counts); a given split's ``y`` of K columns
      that is not one-hot is refused. ``data.task: multilabel`` (or ``regression``) keeps the columns.
    """
    ys = [y[:, 0] if y is not None and y.ndim == 2 and y.shape[1] == 1 else y for y in ys]
    train = ys[0]
    indices = _one_hot_indices(train, nan_policy) if task in (None, "binary", "multiclass") \
        and train.ndim == 2 else None
    if indices is None:
        return ys, None
    task = task or ("binary" if train.shape[1] == 2 else "multiclass")  # infer_task's rule for one-hot rows
    warn_one_hot(f"npz file {file}: array '{names[0]}' ({len(train)} rows of {train.shape[1]} 0/1 columns)",
                 train.shape[1], task)
    read: list[np.ndarray | None] = [indices]
    for name, y in zip(names[1:], ys[1:], strict=True):
        if y is None or y.shape[1:] != train.shape[1:]:  # no such split, or the loader's layout check words it
            read.append(y)
            continue
        given = _one_hot_indices(y, nan_policy)
        finite = _finite_rows(y)
        # rows neither one-hot nor left to data.nan_policy (whose check names a NaN/Inf cell itself)
        odd = np.flatnonzero(finite & ~(((y == 0) | (y == 1)).all(axis=1) & (y.sum(axis=1) == 1)))
        if given is None and len(odd):
            row = int(odd[0])
            raise DataError(f"npz file {file}: '{names[0]}' is one-hot (read as class indices y.argmax(1)) but "
                            f"'{name}' is not: its row {row} holds {short_repr(y[row].tolist())}; store both "
                            f"as class indices ({name}.argmax(1) where it is one-hot), or set data.task: "
                            "multilabel to read the columns as independent labels")
        read.append(y if given is None else given)
    return read, task


@DATA_SOURCES.register("npz")
@receives_shared
def npz(path: str, x: str = "x", y: str = "y", task: str | None = None, nan_policy: str = "error") -> RawData:
    """A NumPy ``.npz`` holding ``x``/``y`` (names configurable) and optionally ``x_val``, ``x_test`` ...,
    or Keras's ``x_train``, ``y_train``, ``x_test``, ``y_test`` (see :func:`split_arrays`).

    Read with ``allow_pickle=False``: object arrays are refused. ``x`` is (N, features...); a 1-D
    ``x`` (N,) is refused (one feature is (N, 1), as the CSV reader gives it), and so are images with
    their channels last (:func:`is_channels_last`). A 2-D 0/1 ``y`` (N, L) is a multi-label task (see
    :func:`trainlab.data.dataset.infer_task`), unless it is one-hot: then class indices, as a (N, 1)
    ``y`` is its column (:func:`_one_label_per_row`). Arrays named like a split that are not read
    (``x_valid``) are warned of. ``task``, ``nan_policy``: ``data.task`` and ``data.nan_policy``,
    passed by ``load_dataset`` (which applies the NaN policy itself).
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
            _check_array(file, name, arrays[name], features=name == xs)
        if arrays[xs].ndim == 1:  # the CSV reader's one feature column is (N, 1); (N,) is no row of features
            raise DataError(f"npz file {file}: array '{xs}' is shaped {arrays[xs].shape}, one number per sample; "
                            f"features are (N, features...): save one feature as {xs}.reshape(-1, 1)")
        if is_channels_last(arrays[xs].shape):
            message = f"npz file {file}: array '{xs}' is shaped {arrays[xs].shape}: {channels_last_fix(xs, arrays[xs].shape)}"
            if arrays[xs].shape[3] == 1:  # Keras's expand_dims(x, -1): a model that flattens reads it alike
                warn(f"{message} (read as it is: a conv net would take its {arrays[xs].shape[1]} rows as channels)")
            else:  # colour images, whose channels a conv net would take as rows: refused
                raise DataError(message)
        if len(arrays[xs]) != len(arrays[ys]):
            raise DataError(f"npz file {file}: '{xs}' has {len(arrays[xs])} rows but '{ys}' has {len(arrays[ys])}")
        if len(arrays[xs]) == 0:
            raise DataError(f"npz file {file}: '{xs}' and '{ys}' have 0 rows")
        return arrays[xs], arrays[ys]

    x_train, y_train = pair("train")
    x_val, y_val = pair("val")
    x_test, y_test = pair("test")
    _warn_unread_splits(file, layout, arrays)
    (y_train, y_val, y_test), fixed = _one_label_per_row(
        file, [layout[split][1] for split in ("train", "val", "test")], [y_train, y_val, y_test], task, nan_policy)
    return RawData(x_train, y_train, x_val, y_val, x_test, y_test, task=fixed)
