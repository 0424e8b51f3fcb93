"""``cifar10`` / ``cifar100``: the official CIFAR releases (Krizhevsky 2009), binary or python-pickle.

Binary release (``cifar-10-batches-bin``: ``data_batch_1..5.bin``, ``test_batch.bin``;
``cifar-100-binary``: ``train.bin``, ``test.bin``): fixed-size records of label byte(s)
then 3072 pixel bytes, 1024 R, 1024 G, 1024 B, each plane 32x32 row-major. CIFAR-10 has
1 label byte; CIFAR-100 has 2 (coarse, then fine).

Python release (``cifar-10-batches-py``, ``cifar-100-python``): pickled dicts with bytes
keys (``b"data"``: uint8 (N, 3072), ``b"labels"`` / ``b"fine_labels"``: lists of ints).
They are read by :class:`RestrictedUnpickler`, which resolves only the few numpy names an
array needs, so a planted pickle cannot run code; anything else is refused.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.data import DATA_SOURCES, RawData
from trainlab.data.paths import resolve
from trainlab.data.transforms import image_transforms, statistics_check
from trainlab.errors import ConfigError, DataError
from trainlab.registry import value_hint

try:  # numpy >= 2 moved numpy.core to numpy._core; old pickles name the former
    from numpy._core.multiarray import _reconstruct
    from numpy._core.numeric import _frombuffer
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]

PIXELS = 3 * 32 * 32
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FORMATS = ("auto", "binary", "python")


# ----------------------------------------------------------------------------- safe unpickling


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles from Python 3 use it for bytes, limited to latin1."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# (module, name) -> object: what pickled numpy arrays reference, under numpy 1.x and 2.x names
SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # protocol <= 4 (the official files)
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,  # bytes inside protocol-2 pickles written by Python 3
}


class UnsafePickle(pickle.UnpicklingError):
    """A pickle referenced a global outside :data:`SAFE_GLOBALS`."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.reference = f"{module}.{name}"


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, strings, numbers and numpy arrays.

    ``find_class`` is the only way a pickle reaches a callable; it returns the entries of
    :data:`SAFE_GLOBALS` and raises :class:`UnsafePickle` for every other name, before
    anything is called. Persistent ids are refused by the base class.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickle(module, name) from None


def read_pickle(file: Path, binary_alternative: str) -> dict[str, Any]:
    """The dict in a CIFAR python batch file, keys decoded to str; DataError on anything unexpected."""
    try:
        with open(file, "rb") as handle:
            content = RestrictedUnpickler(handle, encoding="bytes").load()
    except UnsafePickle as exc:
        raise DataError(f"CIFAR python file {file} references '{exc.reference}', which the safe reader refuses "
                        f"(only numpy arrays are expected); use the binary release ({binary_alternative}) "
                        "instead") from None
    except OSError as exc:
        raise DataError(f"cannot read CIFAR python file {file}: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (any unpickling failure is a bad file: one line, named)
        raise DataError(f"CIFAR python file {file} is not a valid pickle ({type(exc).__name__}: {exc}); "
                        f"truncated? the binary release ({binary_alternative}) is an alternative") from None
    if not isinstance(content, dict):
        raise DataError(f"CIFAR python file {file} holds a {type(content).__name__}, expected a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in content.items()}


def _names(values: Any, file: Path, key: str) -> list[str]:
    if not isinstance(values, list | tuple):
        raise DataError(f"CIFAR meta file {file}: '{key}' should be a list of names")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


# ----------------------------------------------------------------------------- record readers


def read_binary(file: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 3, 32, 32) and labels uint8 (N, label_bytes) from a CIFAR binary file."""
    record = label_bytes + PIXELS
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read CIFAR binary file {file}: {exc}") from None
    if not data or len(data) % record:
        whole = len(data) // record
        raise DataError(f"CIFAR binary file {file} is truncated or not a CIFAR file: {len(data)} bytes is not a "
                        f"positive multiple of the {record}-byte record ({label_bytes} label byte(s) + {PIXELS} "
                        f"pixels); expected {max(whole, 1) * record} bytes for {max(whole, 1)} record(s)")
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
    return records[:, label_bytes:].reshape(-1, 3, 32, 32).copy(), records[:, :label_bytes].copy()


def _pickle_split(file: Path, label_keys: Sequence[str], alternative: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) and labels (N, len(label_keys)) from one python batch file."""
    batch = read_pickle(file, alternative)
    missing = [k for k in ("data", *label_keys) if k not in batch]
    if missing:
        raise DataError(f"CIFAR python file {file} has no key '{missing[0]}' (keys: {', '.join(sorted(batch))})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"CIFAR python file {file}: 'data' must be uint8 (N, {PIXELS}); got {got}")
    labels = []
    for key in label_keys:
        values = np.asarray(batch[key])
        if values.shape != (len(data),) or not np.issubdtype(values.dtype, np.integer):
            raise DataError(f"CIFAR python file {file}: '{key}' must hold {len(data)} integer labels; got "
                            f"{values.dtype} {values.shape}")
        labels.append(values)
    return data.reshape(-1, 3, 32, 32).copy(), np.stack(labels, axis=1)


def _check_range(labels: np.ndarray, limit: int, what: str, file: Path, hint: str = "") -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= limit))
    if len(bad):
        raise DataError(f"{file}: record {bad[0]} has {what} label {int(labels[bad[0]])}, outside 0..{limit - 1}{hint}")


# ----------------------------------------------------------------------------- locating a release


def _locate(path: str, fmt: str, layouts: dict[str, tuple[str, str]]) -> tuple[Path, str]:
    """The folder holding the release and its format. ``layouts``: format -> (folder name, marker file)."""
    if fmt not in FORMATS:
        raise ConfigError(f"data.format must be one of {', '.join(FORMATS)}; got '{fmt}'{value_hint(fmt, FORMATS)}")
    expected = " or ".join(f"{folder}/ (with {marker})" for folder, marker in layouts.values())
    root = resolve(path, expected)
    wanted = [f for f in layouts if fmt in ("auto", f)]  # binary first: faster, and no pickle at all
    tried = []
    for candidate in (root, *(root / layouts[f][0] for f in wanted)):
        for kind in wanted:
            marker = candidate / layouts[kind][1]
            if marker.is_file():
                return candidate, kind
            tried.append(str(marker))
    raise DataError(f"no CIFAR {' or '.join(wanted)} release under {root} (tried {', '.join(tried)})")


def _file(folder: Path, name: str) -> Path:
    file = folder / name
    if not file.is_file():
        raise DataError(f"CIFAR file missing: {file} (the release should have it next to the others)")
    return file


def _raw(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
         class_names: list[str], mean: Any, std: Any, augment: Any) -> RawData:
    return RawData(x_train, y_train.astype(np.int64), x_test=x_test, y_test=y_test.astype(np.int64),
                   task="multiclass", class_names=class_names,
                   fit_transforms=partial(image_transforms, mean=mean, std=std, augment=augment))


# ----------------------------------------------------------------------------- sources


@DATA_SOURCES.register("cifar10")
def cifar10(
    path: str,
    format: str = "auto",
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    augment: bool | Mapping[str, Any] | None = None,
) -> RawData:
    """CIFAR-10: 50,000 train / 10,000 test uint8 (N, 3, 32, 32) images, 10 classes.

    Args:
        path: ``cifar-10-batches-bin`` or ``cifar-10-batches-py``, or the folder holding either.
        format: ``auto`` (binary when both are present), ``binary`` or ``python``.
        mean, std: per-channel normalisation in [0, 1] units; default: computed on the train batches.
        augment: ``true`` for pad-4 reflect random crop + horizontal flip; see ``image_transforms``.
    """
    layouts = {"binary": ("cifar-10-batches-bin", "data_batch_1.bin"),
               "python": ("cifar-10-batches-py", "data_batch_1")}
    folder, kind = _locate(path, format, layouts)
    alternative = "cifar-10-batches-bin"
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    splits = []
    for names in (train_names, ["test_batch"]):
        parts = []
        for name in names:
            file = _file(folder, f"{name}.bin" if kind == "binary" else name)
            images, labels = read_binary(file, 1) if kind == "binary" else _pickle_split(file, ["labels"], alternative)
            _check_range(labels[:, 0], 10, "class", file, " (a CIFAR-100 file? use source cifar100)")
            parts.append((images, labels[:, 0]))
        splits.append((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
    class_names = CIFAR10_CLASSES
    if kind == "binary" and (folder / "batches.meta.txt").is_file():
        class_names = [n.strip() for n in (folder / "batches.meta.txt").read_text().splitlines() if n.strip()]
    elif kind == "python" and (folder / "batches.meta").is_file():
        meta = read_pickle(folder / "batches.meta", alternative)
        class_names = _names(meta.get("label_names"), folder / "batches.meta", "label_names")
    if len(class_names) != 10:
        raise DataError(f"CIFAR-10 meta file in {folder} lists {len(class_names)} class names, expected 10")
    (x_train, y_train), (x_test, y_test) = splits
    return _raw(x_train, y_train, x_test, y_test, class_names, mean, std, augment)


@DATA_SOURCES.register("cifar100")
def cifar100(
    path: str,
    format: str = "auto",
    label: str = "fine",
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    augment: bool | Mapping[str, Any] | None = None,
) -> RawData:
    """CIFAR-100: 50,000 train / 10,000 test uint8 (N, 3, 32, 32) images; 100 fine or 20 coarse classes.

    Args:
        path: ``cifar-100-binary`` or ``cifar-100-python``, or the folder holding either.
        label: ``fine`` (100 classes) or ``coarse`` (20 superclasses).
        format, mean, std, augment: as for ``cifar10``.
    """
    if label not in ("fine", "coarse"):
        raise ConfigError(f"data.label must be 'fine' or 'coarse'; got '{label}'")
    layouts = {"binary": ("cifar-100-binary", "train.bin"), "python": ("cifar-100-python", "train")}
    folder, kind = _locate(path, format, layouts)
    alternative = "cifar-100-binary"
    column, classes = (1, 100) if label == "fine" else (0, 20)
    splits = []
    for name in ("train", "test"):
        file = _file(folder, f"{name}.bin" if kind == "binary" else name)
        if kind == "binary":
            images, labels = read_binary(file, 2)  # columns: coarse, fine
        else:
            images, labels = _pickle_split(file, ["coarse_labels", "fine_labels"], alternative)
        _check_range(labels[:, 0], 20, "coarse", file)
        _check_range(labels[:, 1], 100, "fine", file)
        splits.append((images, labels[:, column]))
    class_names = [str(i) for i in range(classes)]
    if kind == "binary" and (folder / f"{label}_label_names.txt").is_file():
        text = (folder / f"{label}_label_names.txt").read_text()
        class_names = [n.strip() for n in text.splitlines() if n.strip()]
    elif kind == "python" and (folder / "meta").is_file():
        meta = read_pickle(folder / "meta", alternative)
        class_names = _names(meta.get(f"{label}_label_names"), folder / "meta", f"{label}_label_names")
    if len(class_names) != classes:
        raise DataError(f"CIFAR-100 meta in {folder} lists {len(class_names)} {label} class names, expected {classes}")
    (x_train, y_train), (x_test, y_test) = splits
    return _raw(x_train, y_train, x_test, y_test, class_names, mean, std, augment)


cifar10.check_values = cifar100.check_values = statistics_check(3)  # type: ignore[attr-defined]
