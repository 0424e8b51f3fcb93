"""The built-in sources' row counters (the contract: :mod:`trainlab.data.counting`).

Each reads only what decides the counts: the scikit-learn sets, synthetic_linear and mnist1d whole
(they are small or cached); npz array headers; the target column of a CSV; the label column of a
text TSV/CSV; IDX headers and label files; CIFAR files' sizes and label bytes; image folders' and
tar archives' listings (class = parent folder).
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from trainlab.config import DataConfig
from trainlab.data import DATA_SOURCES
from trainlab.data.counting import SourceRows, row_counter, rows_of_raw
from trainlab.errors import ConfigError, DataError


@row_counter("digits", "iris", "wine", "breast_cancer", "diabetes", "synthetic_linear", "mnist1d")
def _generated_or_bundled(options: dict[str, Any], config: DataConfig) -> SourceRows:
    """scikit-learn's bundled sets (a small CSV read), synthetic_linear and mnist1d (cached): read whole."""
    return rows_of_raw(DATA_SOURCES.build({"name": config.source, **options}), config)


# ----------------------------------------------------------------------------- npz: array headers


def _npy_shape(archive: zipfile.ZipFile, member: str) -> tuple[int, ...]:
    with archive.open(member) as handle:
        major, _ = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(handle)
    return tuple(shape)


@row_counter("npz")
def _npz(options: dict[str, Any], config: DataConfig) -> SourceRows:
    """Targets read whole (they are small); the feature arrays' row counts from their ``.npy`` headers."""
    if config.nan_policy == "drop":  # which rows go depends on every feature value
        return rows_of_raw(DATA_SOURCES.build({"name": "npz", **options}), config)
    from trainlab.data.npz_file import split_arrays
    from trainlab.data.paths import resolve_file

    file = resolve_file(options["path"], "a .npz archive")
    x, y = options["x"], options["y"]
    try:
        with zipfile.ZipFile(file) as archive:
            members = {name[:-4] for name in archive.namelist() if name.endswith(".npy")}
            layout = split_arrays(x, y, members)  # the arrays the source reads for each split
            if any(name not in members for name in layout["train"]):
                return rows_of_raw(DATA_SOURCES.build({"name": "npz", **options}), config)  # its own error
            sizes = {}
            for suffix in ("val", "test"):
                name = layout[suffix][0]
                sizes[suffix] = _npy_shape(archive, f"{name}.npy")[0] if name in members else None
        with np.load(file, allow_pickle=False) as arrays:
            targets = np.asarray(arrays[layout["train"][1]])
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DataError(f"cannot read npz file {file}: {exc} (truncated or corrupt?)") from None
    return SourceRows(targets, sizes["val"], sizes["test"])


# ----------------------------------------------------------------------------- csv: the target column


@row_counter("csv")
def _csv(options: dict[str, Any], config: DataConfig) -> SourceRows:
    """Every row of the table (pandas' C parser) but only the target column(s) converted."""
    if config.nan_policy == "drop":  # which rows go depends on every feature cell
        return rows_of_raw(DATA_SOURCES.build({"name": "csv", **options}), config)
    from trainlab.data.csv_table import check_delimiter, read_table
    from trainlab.data.files import _column_names, _require, _target
    from trainlab.data.paths import resolve_file

    targets = _column_names(options["target"], "target") or []
    if not targets:
        raise ConfigError("data.target must name at least one column")
    file = resolve_file(options["path"], "a CSV file with a header row")
    categorical = _column_names(options["categorical"], "categorical") or ()
    delimiter = check_delimiter(options["delimiter"])
    table = read_table(file, delimiter, text_columns=categorical)
    _require(file, table.header, targets, "target column", delimiter)
    if len(table) == 0:
        raise DataError(f"CSV file {file} has a header but no data rows")
    y, _ = _target(table, targets, options["task"])  # data.task decides an amount target, as the source reads it
    return SourceRows(y)


# ----------------------------------------------------------------------------- text: the label column


@row_counter("text_tsv", "text_csv")
def _text(options: dict[str, Any], config: DataConfig) -> SourceRows:
    """The rows and labels of each file, read as the source reads them; nothing tokenized."""
    from trainlab.data.csv_table import check_delimiter
    from trainlab.data.text import check_text_options, read_labeled_tables
    from trainlab.data.text_labels import encode_labels

    check_text_options(*(options[key] for key in ("tokenizer", "vocab_size", "max_length", "tokenizer_path")))

    delimiter = "\t" if config.source.lower() == "text_tsv" else check_delimiter(options["delimiter"])
    keys = ("train", "val", "test", "path", "text_column", "label_column", "max_rows", "seed", "nan_policy")
    tables, files = read_labeled_tables(delimiter, **{key: options[key] for key in keys},
                                        quoted=config.source.lower() != "text_tsv")
    labels = encode_labels(tables, files, options["task"])
    sizes = {name: len(tables[name].texts) if name in tables else None for name in ("val", "test")}
    return SourceRows(labels.by_file["train"], sizes["val"], sizes["test"], labels.task)


# ----------------------------------------------------------------------------- idx: headers and labels


@row_counter("idx")
def _idx(options: dict[str, Any], config: DataConfig) -> SourceRows:
    """Image counts from the IDX headers (images never read); the one-byte labels read whole."""
    import gzip

    from trainlab.data.idx import _idx_file, read_idx
    from trainlab.data.paths import resolve

    folder = resolve(options["path"], "a folder of IDX files")
    if not folder.is_dir():
        raise DataError(f"data.path for idx must be a folder of IDX files; {folder} is a file")

    def images_in(name: str, prefix: str) -> int:
        file = _idx_file(folder, name, f"{prefix} images")
        try:
            with (gzip.open(file, "rb") if file.suffix == ".gz" else open(file, "rb")) as handle:
                head = handle.read(8)
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot read IDX file {file}: {exc}") from None
        if len(head) < 8:
            raise DataError(f"IDX file {file} is truncated: {len(head)} bytes, shorter than its header")
        return int.from_bytes(head[4:8], "big")

    labels = read_idx(_idx_file(folder, options["train_labels"], "train labels"), 1).astype(np.int64)
    train = images_in(options["train_images"], "train")
    if train != len(labels):
        raise DataError(f"IDX train split: {train} images but {len(labels)} labels")
    test = None
    if options["test_images"] is not None and options["test_labels"] is not None:
        test = images_in(options["test_images"], "test")
    return SourceRows(labels, test=test, task="multiclass")


# ----------------------------------------------------------------------------- cifar: file sizes


@row_counter("cifar10", "cifar100")
def _cifar(options: dict[str, Any], config: DataConfig) -> SourceRows:
    """Binary release: records = file size / record size, the label bytes read through a memory map.
    Python release: the pickled batches are read (labels sit next to the pixels)."""
    from trainlab.data import cifar

    cifar100 = config.source.lower() == "cifar100"
    if cifar100:
        layouts = {"binary": ("cifar-100-binary", "train.bin"), "python": ("cifar-100-python", "train")}
        train_names, test_name, label_bytes = ["train"], "test", 2
        column = 1 if options["label"] == "fine" else 0
        label_key = "fine_labels" if options["label"] == "fine" else "coarse_labels"
    else:
        layouts = {"binary": ("cifar-10-batches-bin", "data_batch_1.bin"),
                   "python": ("cifar-10-batches-py", "data_batch_1")}
        train_names, test_name, label_bytes = [f"data_batch_{i}" for i in range(1, 6)], "test_batch", 1
        column, label_key = 0, "labels"
    folder, kind = cifar._locate(options["path"], options["format"], layouts)

    def labels_of(name: str) -> np.ndarray:
        if kind == "binary":
            file = cifar._file(folder, f"{name}.bin")
            record = label_bytes + cifar.PIXELS
            size = file.stat().st_size
            if not size or size % record:
                raise DataError(f"CIFAR binary file {file} is truncated or not a CIFAR file: {size} bytes is not "
                                f"a positive multiple of the {record}-byte record")
            records = np.memmap(file, dtype=np.uint8, mode="r", shape=(size // record, record))
            return np.array(records[:, column], dtype=np.int64)
        file = cifar._file(folder, name)
        return np.asarray(cifar.read_pickle(file, layouts["binary"][0]).get(label_key, []), dtype=np.int64)

    train = np.concatenate([labels_of(name) for name in train_names])
    if kind == "binary":
        test_file = cifar._file(folder, f"{test_name}.bin")
        test = test_file.stat().st_size // (label_bytes + cifar.PIXELS)
    else:
        test = len(labels_of(test_name))
    return SourceRows(train, test=test, task="multiclass")


# ----------------------------------------------------------------------------- image folders and their tars


def _is_archive(path: Path) -> bool:
    from trainlab.data.images import is_archive_name

    return path.is_file() and is_archive_name(path.name)


def archive_listing(archives: Iterable[Path]) -> list[PurePosixPath]:
    """The regular files the archives would extract into one folder, as relative paths (headers only)."""
    files = []
    for archive in archives:
        try:
            with tarfile.open(archive, "r|*") as tar:  # a stream: member data is skipped, never seeked back to
                files += [PurePosixPath(member.name) for member in tar if member.isfile()]  # "./a" -> "a"
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"cannot read archive {archive}: {exc}") from None
    return files


def listing_labels(files: list[PurePosixPath]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The labels of each split of a class-folder tree given as relative file paths, by the rules of
    :func:`trainlab.data.images.scan`: ``train/``, ``val/``, ``test/`` when present, else the class
    folders at the top; classes are the training split's sorted folder names; hidden names skipped."""
    from trainlab.data.images import IMAGE_EXTENSIONS, is_hidden, split_folders

    files = [f for f in files if not any(is_hidden(part) for part in f.parts)]
    tops = {f.parts[0] for f in files if len(f.parts) > 1}
    present = {name: split for split, name in split_folders(sorted(tops), "the archive").items()}
    depth = 1 if present else 0  # class folder at parts[depth], image at parts[depth + 1]
    images: dict[str, dict[str, int]] = {split: {} for split in (present.values() or ["train"])}
    for file in files:
        if len(file.parts) != depth + 2 or os.path.splitext(file.name)[1].lower() not in IMAGE_EXTENSIONS:
            continue
        split = present.get(file.parts[0]) if present else "train"
        if split in images:
            images[split][file.parts[depth]] = images[split].get(file.parts[depth], 0) + 1
    classes = sorted(images["train"])
    if not classes:
        raise DataError("the archive has no class folders of images (expected [train/]<class>/*.jpg)")
    index = {name: i for i, name in enumerate(classes)}
    labels = {}
    for split, counts in images.items():
        unknown = [c for c in counts if c not in index]
        if unknown:
            raise DataError(f"{split} class folder {unknown[0]} has no counterpart in the training classes "
                            f"({', '.join(classes[:20])})")
        labels[split] = np.concatenate([np.full(counts[c], index[c], dtype=np.int64) for c in sorted(counts)]) \
            if counts else np.zeros(0, dtype=np.int64)
    return labels, classes


@row_counter("image_folder")
def _image_folder(options: dict[str, Any], config: DataConfig) -> SourceRows:
    """Files listed, never decoded. ``data.path`` may also be the tar(s) of such a folder, not extracted:
    a ``.tar[.gz]`` file, or a folder holding only archives (CIFAR-10's ``train.tar.gz`` and
    ``test.tar.gz``); their members are counted as if extracted there."""
    from trainlab.data.images import is_hidden, scan
    from trainlab.data.paths import resolve

    root = resolve(options["path"], "a folder of class folders (<class>/*.jpg), or a .tar[.gz] of one")
    if _is_archive(root):
        labels, _ = listing_labels(archive_listing([root]))
    elif not root.is_dir():
        raise DataError(f"data.path for image_folder must be a folder (or a .tar[.gz] of one); {root} is a file")
    else:
        with os.scandir(root) as entries:
            listing = sorted(entries, key=lambda e: e.name)
        folders = [e for e in listing if e.is_dir() and not is_hidden(e.name)]
        archives = [Path(e.path) for e in listing if _is_archive(Path(e.path))]
        if not folders and archives:
            labels, _ = listing_labels(archive_listing(archives))
        else:
            splits, _ = scan(root, options.get("cache_dir"))
            labels = {name: split.labels for name, split in splits.items()}
    return SourceRows(labels["train"], len(labels["val"]) if "val" in labels else None,
                      len(labels["test"]) if "test" in labels else None)


__all__ = ["archive_listing", "listing_labels"]
