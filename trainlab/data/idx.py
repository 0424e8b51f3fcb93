"""``idx``: MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), gzipped or not.

IDX layout (LeCun): a big-endian header ``0x00 0x00 <dtype> <ndim>`` followed by ``ndim``
big-endian uint32 dimensions, then the values row-major. Images are ``0x00000803``
(uint8, 3 dims: count, rows, cols), labels ``0x00000801`` (uint8, 1 dim: count).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.data import DATA_SOURCES, RawData
from trainlab.data.paths import resolve
from trainlab.data.transforms import image_transforms, statistics_check
from trainlab.errors import ConfigError, DataError

UBYTE = 0x08  # the IDX dtype byte of unsigned bytes, the only one MNIST-family files use
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801


# deflate expands at most ~1032:1, so a .gz file claiming more than this many bytes per byte is truncated
MAX_DEFLATE_RATIO = 1032
GZIP_MAGIC = b"\x1f\x8b"  # the first two bytes of every gzip stream (RFC 1952)


def _misnamed(file: Path, gz: bool) -> str | None:
    """The error for a file whose compression its name belies, else None: gzip data named without ``.gz``
    (read as IDX, its magic number would be 0x1f8b....), or a ``.gz`` name on data that is no gzip stream."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(2)
    except OSError:
        return None  # the read that follows says why
    if not gz and head == GZIP_MAGIC:
        return (f"IDX file {file} is gzip-compressed (it starts with 0x1f8b, gzip's magic number) but its name does "
                f"not end in .gz; rename it to {file.name}.gz (read as gzip), or decompress it: "
                f"mv {file} {file}.gz && gunzip {file}.gz")
    if gz and len(head) == 2 and head != GZIP_MAGIC:
        return (f"IDX file {file} is named .gz but is not gzip-compressed (it starts with 0x{head.hex()}, not "
                f"gzip's 0x1f8b); rename it to {file.with_suffix('').name}")
    return None


def _read_exactly(file: Path, ndim: int) -> tuple[tuple[int, ...], bytes]:
    """The dimensions in the header and the ``prod(dims)`` value bytes, read no further than that.

    The size the header claims is computed with Python integers (no int64 overflow) and checked
    against what the file can hold *before* reading: the byte count of a plain file, and for
    ``.gz`` the compressed size times the largest deflate ratio. A gzip stream that decompresses
    to more than the header says (a gzip bomb) is refused after reading one byte past the claim.
    """
    kind = {1: "idx1-ubyte label", 3: "idx3-ubyte image"}.get(ndim, f"idx{ndim}-ubyte")
    expected_magic = (UBYTE << 8) | ndim
    header_size = 4 + 4 * ndim
    gz = file.suffix == ".gz"
    misnamed = _misnamed(file, gz)
    if misnamed:
        raise DataError(misnamed)
    try:
        stored = file.stat().st_size
        with (gzip.open(file, "rb") if gz else open(file, "rb")) as handle:
            head = handle.read(header_size)
            if len(head) < 4:
                raise DataError(f"IDX file {file} is truncated: {len(head)} bytes, shorter than the 4-byte magic number")
            magic = int.from_bytes(head[:4], "big")
            if magic != expected_magic:
                raise DataError(f"IDX file {file} has magic number 0x{magic:08x}; expected 0x{expected_magic:08x} "
                                f"(an {kind} file: 2 zero bytes, dtype byte 0x08, {ndim} dimension(s))")
            if len(head) < header_size:
                raise DataError(f"IDX file {file} is truncated: {len(head)} bytes, expected a {header_size}-byte "
                                "header")
            dims = tuple(int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
            values = math.prod(dims)
            expected = header_size + values
            shape = " x ".join(str(d) for d in dims)
            claim = f"expected {expected} bytes ({header_size}-byte header + {shape} values)"
            possible = stored * MAX_DEFLATE_RATIO if gz else stored
            if expected > possible:
                got = f"a {stored}-byte gzip stream cannot hold that" if gz else f"got {stored}"
                raise DataError(f"IDX file {file} is truncated: {claim}, {got}")
            data = handle.read(values)
            extra = handle.read(1)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"IDX file {file} is not a complete gzip stream ({exc}); re-download or gunzip it") from None
    except OSError as exc:
        raise DataError(f"cannot read IDX file {file}: {exc}") from None
    if len(data) < values:
        raise DataError(f"IDX file {file} is truncated: {claim}, got {header_size + len(data)}")
    if extra:
        got = "more (decompressing stopped there)" if gz else str(stored)
        raise DataError(f"IDX file {file} is longer than its header says: {claim}, got {got}")
    return dims, data


def read_idx(file: Path, ndim: int) -> np.ndarray:
    """The uint8 array stored in an IDX file with ``ndim`` dimensions, after checking header and size."""
    dims, data = _read_exactly(file, ndim)
    return np.frombuffer(data, dtype=np.uint8).reshape(dims).copy()  # writable, for torch


def _idx_file(folder: Path, name: str, what: str) -> Path:
    """``name`` in ``folder``, also trying it with/without ``.gz`` and the ``train-images.idx3-ubyte`` spelling."""
    base = name[:-3] if name.endswith(".gz") else name
    names = [name, base if name.endswith(".gz") else f"{name}.gz"]
    dotted = base.replace("-idx", ".idx")
    if dotted != base:
        names += [dotted, f"{dotted}.gz"]
    tried = [folder / n for n in names]
    for path in tried:
        if path.is_file():
            return path
    key = f"data.{what.replace(' ', '_')}"
    try:
        present = sorted(e.name for e in os.scandir(folder) if e.is_file() and "idx" in e.name)
    except OSError:
        present = []
    seen = f"; IDX files there: {', '.join(present[:8])}{', ...' if len(present) > 8 else ''}" if present else ""
    split_off = (f" (or {key}=null with data.{'test_labels' if 'images' in what else 'test_images'}=null to split "
                 "a test set off train)" if what.startswith("test") else "")
    raise DataError(f"no {what} file in {folder} (tried {', '.join(str(p) for p in tried)}){seen}; "
                    f"set {key} to its file name{split_off}")


def _split(folder: Path, images_name: str, labels_name: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_file = _idx_file(folder, images_name, f"{prefix} images")
    labels_file = _idx_file(folder, labels_name, f"{prefix} labels")
    images, labels = read_idx(images_file, 3), read_idx(labels_file, 1)
    if not len(images) or not len(labels):  # a header of 0 items: "training data is empty" named no file
        empty = images_file if not len(images) else labels_file
        raise DataError(f"IDX {prefix} split: {empty} holds no {'images' if empty == images_file else 'labels'} "
                        f"(its header counts 0); the {prefix} split needs at least one image and its label")
    if len(images) != len(labels):
        raise DataError(f"IDX {prefix} split: {images_file} holds {len(images)} images but {labels_file} "
                        f"holds {len(labels)} labels")
    return images, labels.astype(np.int64)


@DATA_SOURCES.register("idx")
def idx(
    path: str,
    train_images: str = "train-images-idx3-ubyte",
    train_labels: str = "train-labels-idx1-ubyte",
    test_images: str | None = "t10k-images-idx3-ubyte",
    test_labels: str | None = "t10k-labels-idx1-ubyte",
    flatten: bool = False,
    transpose: bool = False,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    augment: bool | Mapping[str, Any] | None = None,
    class_names: list[str] | None = None,
) -> RawData:
    """Images uint8 (N, 1, rows, cols) (``flatten``: (N, rows * cols)) and int64 labels; task multiclass.

    Args:
        path: the folder holding the four files. Each name is also found with/without ``.gz``.
        test_images, test_labels: ``null`` for both to have ``load_dataset`` split a test set off train.
        transpose: swap rows and columns (EMNIST stores its images transposed).
        mean, std: normalisation in [0, 1] units; default: computed on the training file
            (MNIST: 0.1307, 0.3081). Applied per batch: ``(x / 255 - mean) / std``.
        augment: see :func:`trainlab.data.transforms.image_transforms` (not with ``flatten``).
        class_names: e.g. Fashion-MNIST's ten names; default none (classes 0..max label).
    """
    folder = resolve(path, "a folder of IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], ...)")
    if not folder.is_dir():
        raise DataError(f"data.path for idx must be a folder of IDX files; {folder} is a file")
    if (test_images is None) != (test_labels is None):  # before any file is read: the config's own mistake
        images, labels = ("null" if name is None else repr(name) for name in (test_images, test_labels))
        raise ConfigError("set both data.test_images and data.test_labels, or both to null; got "
                          f"test_images={images}, test_labels={labels}")
    x_train, y_train = _split(folder, train_images, train_labels, "train")
    x_test = y_test = None
    if test_images is not None and test_labels is not None:
        x_test, y_test = _split(folder, test_images, test_labels, "test")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DataError(f"IDX test images are {x_test.shape[1]}x{x_test.shape[2]} but train images are "
                            f"{x_train.shape[1]}x{x_train.shape[2]}")

    def shape(images: np.ndarray) -> np.ndarray:
        images = images.transpose(0, 2, 1) if transpose else images
        return images.reshape(len(images), -1) if flatten else images[:, None, :, :]

    x_train = np.ascontiguousarray(shape(x_train))
    x_test = None if x_test is None else np.ascontiguousarray(shape(x_test))
    return RawData(x_train, y_train, x_test=x_test, y_test=y_test, task="multiclass", class_names=class_names,
                   fit_transforms=partial(image_transforms, mean=mean, std=std, augment=augment))


idx.check_values = statistics_check(1)  # type: ignore[attr-defined]  # (N, 1, rows, cols) images
