"""The ``npz`` source: a NumPy ``.npz`` archive a user already has, read by
:func:`trainlab.npz_archive.open_npz` (no pickles; each array's declared size checked first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainlab.data import DATA_SOURCES, RawData
from trainlab.data.paths import resolve_file
from trainlab.errors import DataError
from trainlab.npz_archive import open_npz


def _check_array(file: Path, name: str, array: np.ndarray) -> None:
    if array.ndim == 0:
        raise DataError(f"npz file {file}: array '{name}' is a scalar; expected one row per sample")
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        hint = "; encode class names as integers 0..K-1" if array.dtype.kind in "US" else ""
        raise DataError(f"npz file {file}: array '{name}' has dtype {array.dtype}; trainlab reads numbers{hint}")


@DATA_SOURCES.register("npz")
def npz(path: str, x: str = "x", y: str = "y") -> RawData:
    """A NumPy ``.npz`` holding ``x``/``y`` (names configurable) and optionally ``x_val``, ``x_test`` ...

    Read with ``allow_pickle=False``: object arrays are refused. ``x`` is (N, features...); a 1-D
    ``x`` (N,) is refused (one feature is (N, 1), as the CSV reader gives it). A 2-D 0/1 ``y`` (N, L)
    is a multi-label task (see :func:`trainlab.data.dataset.infer_task`).
    """
    file = resolve_file(path, "a .npz archive")
    arrays = open_npz(file, x, y)
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
        if arrays[xs].ndim == 1:  # the CSV reader's one feature column is (N, 1); (N,) is no row of features
            raise DataError(f"npz file {file}: array '{xs}' is shaped {arrays[xs].shape}, one number per sample; "
                            f"features are (N, features...): save one feature as {xs}.reshape(-1, 1)")
        if len(arrays[xs]) != len(arrays[ys]):
            raise DataError(f"npz file {file}: '{xs}' has {len(arrays[xs])} rows but '{ys}' has {len(arrays[ys])}")
        if len(arrays[xs]) == 0:
            raise DataError(f"npz file {file}: '{xs}' and '{ys}' have 0 rows")
        return arrays[xs], arrays[ys]

    x_train, y_train = pair("")
    x_val, y_val = pair("val")
    x_test, y_test = pair("test")
    return RawData(x_train, y_train, x_val, y_val, x_test, y_test)
