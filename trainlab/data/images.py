"""``image_folder``: class-per-folder PNG/JPEG images, decoded with Pillow into uint8 (N, C, H, W).

Layouts::

    path/train/<class>/*.jpg   path/test/<class>/*.jpg   (path/val/<class>/... optional)
    path/<class>/*.png                                     (no split folders: load_dataset splits)

Split folders may also be named as other datasets ship them, in any case (:data:`SPLIT_NAMES`:
``training/``, ``valid/``, ``validation/``, ``dev/``, ``testing/``, ``Train/``). Classes are the
sorted folder names of the training split, in Unicode NFC (macOS writes ``café/`` decomposed, NFD:
the same class); val/test folders must use the same names (a subset is fine). Hidden files
(``.DS_Store``), a Mac zip's ``__MACOSX/`` and Windows' ``Thumbs.db``/``desktop.ini`` are skipped. What is not read is
warned of, one line each: other folders beside the split folders (``holdout/``, ``eval/``: not a test
split, which is then held out of train), and images lying outside any class folder (in ``path`` or
directly in ``train/``). In a class folder, a nested folder or a file that is not a
``.png``/``.jpg``/``.jpeg`` image is an error (a broken symbolic link is called one); a folder holding only
trainlab's image cache files (:data:`CACHE_FILE`: a former run's ``cache_dir``) is skipped, warned of. Images are
decoded as viewers show them: turned upright by their EXIF orientation (phone photos store the
pixels sideways), and transparent pixels composited over white (:mod:`trainlab.data.image_decode`).
Decoding runs in a pool of worker processes (Pillow holds the GIL, so threads do not help), in chunks
written straight into one preallocated array. With ``cache_dir`` the decoded arrays are saved as an
``.npz`` keyed by the file list, sizes and modification times, and reused while none of them changes; a
damaged one is warned of, decoded again and rewritten, and a new one deletes the files it replaces (those
written for the same folder, size and mode: :func:`_remove_replaced`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.config_fields import counted, short_repr
from trainlab.data import DATA_SOURCES, RawData
from trainlab.data.cache import DAMAGE, not_written, read_entry, write_npz
from trainlab.data.image_decode import MODES, decode_images, first_size
from trainlab.data.labels import case_twins
from trainlab.data.paths import resolve
from trainlab.data.transforms import check_statistics, image_transforms
from trainlab.errors import WRITE_ERRNOS, ConfigError, DataError
from trainlab.notices import warn
from trainlab.registry import did_you_mean

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# data.mode's Pillow modes said in words, and what a user may call them: the did-you-mean of a refused mode
MODE_MEANINGS = {"RGB": "3 channels, colour", "L": "1 channel, grayscale"}
MODE_NAMES = {"grey": "L", "gray": "L", "greyscale": "L", "grayscale": "L", "grey_scale": "L", "gray_scale": "L",
              "mono": "L", "monochrome": "L", "luminance": "L", "color": "RGB", "colour": "RGB", "rgba": "RGB",
              "cmyk": "RGB"}
SPLITS = ("train", "val", "test")
# split folder names as datasets ship them, matched case-insensitively (Kaggle's valid/, Train/, testing/)
SPLIT_NAMES = {"train": ("train", "training"), "val": ("val", "valid", "validation", "dev"),
               "test": ("test", "testing")}
# bump when the cached layout or the decoding (trainlab.data.image_decode) changes (2: 16-bit images scaled,
# not clipped; 3: EXIF orientation applied, transparency over white)
CACHE_VERSION = 3
# files operating systems leave in folders of pictures (Windows' thumbnail caches and folder settings), lower case;
# macOS's .DS_Store is a dot file
OS_FILES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})
# the name of the file a run writes into data.cache_dir (_cache_file): the 16 hex digits key its images
CACHE_FILE = re.compile(r"image_folder-[0-9a-f]{16}\.npz")
# the member of a cache file naming what it was written for (_source_key), beside the splits' arrays
SOURCE_MEMBER = "source"


# ----------------------------------------------------------------------------- scanning folders


@dataclass(frozen=True)
class FolderSplit:
    files: list[Path]
    labels: np.ndarray  # int64, indices into the training class names


def is_hidden(name: str) -> bool:
    """Dot files and folders, the ``__MACOSX`` folder of a zip made on a Mac, and the files Windows leaves
    (:data:`OS_FILES`, in any case): never classes or images."""
    return name.startswith(".") or name == "__MACOSX" or name.lower() in OS_FILES


def class_name(folder_name: str) -> str:
    """The class a folder name stands for: the name in Unicode NFC. macOS writes names decomposed (NFD:
    ``e`` + combining accent), Linux and Windows keep what they are given, so one dataset copied
    between them can hold ``café/`` both ways; both are the class ``café``."""
    return unicodedata.normalize("NFC", folder_name)


def is_image_name(name: str) -> bool:
    """A ``.png``/``.jpg``/``.jpeg`` name, in any case: what image_folder decodes."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def split_names_text() -> str:
    """The accepted split folder names, for messages: ``train/ (or training/), val/ (or valid/, ...) ...``."""
    def one(aliases: tuple[str, ...]) -> str:
        rest = ", ".join(f"{a}/" for a in aliases[1:])
        return f"{aliases[0]}/ (or {rest})" if rest else f"{aliases[0]}/"

    parts = [one(SPLIT_NAMES[split]) for split in SPLITS]
    return f"{', '.join(parts[:-1])} and {parts[-1]}, in any case"


def split_folders(names: list[str], where: str) -> dict[str, str]:
    """The split folders among ``names`` (a folder's entries): split -> the folder's own name, by
    :data:`SPLIT_NAMES`; two folders naming one split (val/ and valid/) are refused. Without a train
    folder, alias names alone (classes called ``valid/`` and ``invalid/``) are class folders, while
    ``val/`` or ``test/`` is an error, as before the aliases."""
    matches: dict[str, list[str]] = {}
    for name in sorted(names):
        split = next((s for s, aliases in SPLIT_NAMES.items() if name.lower() in aliases), None)
        if split is not None:
            matches.setdefault(split, []).append(name)
    if "train" not in matches:
        present = [n for found in matches.values() for n in found]
        if {"val", "test"} & set(present):
            raise DataError(f"{where} has {', '.join(n + '/' for n in present)} but no train/ folder (or training/)")
        return {}  # only alias names (classes called valid/, Dev/): class folders
    for split, folders in matches.items():
        if len(folders) > 1:
            raise DataError(f"{where} has both {folders[0]}/ and {folders[1]}/ as the {split} split; keep one")
    return {split: matches[split][0] for split in SPLITS if split in matches}


ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _extract_advice(archive: Path) -> str:
    return f"training reads images extracted, e.g. tar -xf {archive} -C <folder>, then set data.path to that folder"


def _extract_hint(folder: Path) -> str:
    """How to go on when ``folder`` holds archives instead of class folders (the shared CIFAR tars)."""
    archives = sorted(name for name in os.listdir(folder) if is_archive_name(name) and (folder / name).is_file())
    if not archives:
        return ""
    return f"; it holds archives ({_examples(archives)}): {_extract_advice(folder / archives[0])}"


def is_cache_folder(folder: str | os.PathLike[str]) -> bool:
    """``folder`` holds trainlab's image cache files (:data:`CACHE_FILE`) and nothing else visible: what a run
    with ``data.cache_dir`` there left, never a class of images. A class folder is told from its first
    visible entry, not listed whole."""
    found = False
    try:
        with os.scandir(folder) as listing:
            for entry in listing:
                if is_hidden(entry.name):
                    continue
                if not CACHE_FILE.fullmatch(entry.name):
                    return False
                found = True
    except OSError:
        return False
    return found


@dataclass(frozen=True)
class _Caches:
    """The cache folders a scan skips: the one ``data.cache_dir`` names (``configured``), and any other holding
    only trainlab's cache files (a former run's cache_dir), which :func:`scan` notes (``former``)."""

    configured: Path | None
    former: set[Path] = field(default_factory=set)


def _is_cache(entry: os.DirEntry, cache: _Caches) -> bool:
    """``entry`` is the folder ``data.cache_dir`` names, holding no image (runs write it; a class folder
    named as the cache_dir holds images, and :func:`scan` refuses it), or another folder holding only
    trainlab's cache files (:func:`is_cache_folder`), recorded in ``cache.former``. A loop of symbolic links
    (``is_dir`` raises ELOOP) is no cache: the caller refuses it as a broken link."""
    try:
        if not entry.is_dir():
            return False
    except OSError:
        return False
    if cache.configured is not None and Path(entry.path).resolve() == cache.configured:
        return not any(is_image_name(name) for name in os.listdir(entry.path))
    if is_cache_folder(entry.path):
        cache.former.add(Path(entry.path))
        return True
    return False


def _examples(names: list[str], suffix: str = "") -> str:
    """Up to three of ``names`` for a message, each followed by ``suffix``."""
    return ", ".join(n + suffix for n in names[:3]) + (", ..." if len(names) > 3 else "")


def _loose_images(folder: Path) -> list[str]:
    """The image files lying directly in ``folder``, sorted (hidden ones left out)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_file() and is_image_name(e.name) and not is_hidden(e.name))



def is_broken_link(entry: os.DirEntry) -> bool:
    """``entry`` is a symbolic link whose target is gone, or a loop of links (``os.path.exists`` says False for
    both; ``DirEntry.is_dir`` says False for the first and raises ELOOP for the second, so ask this first)."""
    return entry.is_symlink() and not os.path.exists(entry.path)


def refuse_broken_link(entry: os.DirEntry, folder: str | os.PathLike, what: str = "") -> None:
    """Raise :func:`broken_link_error` for ``entry`` of ``folder`` where it :func:`is_broken_link`."""
    if is_broken_link(entry):
        raise broken_link_error(folder, entry.path, what)


def broken_link_error(folder: str | os.PathLike, link: str, what: str = "") -> DataError:
    """The one line for a symbolic link in ``folder`` whose target is gone or that loops (training's readers and
    predict's walk say it alike): its name and target, and to restore the target (``what``: when that applies) or
    remove it."""
    gone = "does not exist"
    try:
        os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            gone = "leads back to a link before it: a loop"
    return DataError(f"{folder} contains {os.path.basename(link)}, a broken symbolic link (its target "
                     f"{os.readlink(link)} {gone}); restore its target{what + ',' if what else ''} or remove the link")

def _class_folders(folder: Path, cache: _Caches) -> list[Path]:
    """The class folders in ``folder``, sorted by :func:`class_name` (the same order whichever normalisation
    the file system keeps); two folders whose names differ only by normalisation are refused."""
    with os.scandir(folder) as entries:
        listed = [e for e in entries if not is_hidden(e.name) and not _is_cache(e, cache)]
    for entry in listed:  # is_dir() follows a link: one whose target is gone would drop its class unsaid
        refuse_broken_link(entry, folder, " if it is a class folder")
    folders = sorted((Path(e.path) for e in listed if e.is_dir()), key=lambda path: (class_name(path.name), path.name))
    for first, second in zip(folders, folders[1:], strict=False):
        if class_name(first.name) == class_name(second.name):
            raise DataError(f"{folder} holds two class folders named '{class_name(first.name)}' that differ only "
                            f"by Unicode normalisation ({ascii(first.name)} and {ascii(second.name)}: one written "
                            "decomposed, as macOS does); move the images of one into the other")
    if not folders:
        loose = _loose_images(folder)
        unlabeled = (f"; its {len(loose)} image file(s) ({_examples(loose)}) lie in no class folder, so they have "
                     "no label: put each into its <class>/ folder (a set without labels, such as Kaggle's test/, "
                     "cannot be scored: move it out of data.path; trainlab predict reads it)") if loose else ""
        raise DataError(f"no class folders in {folder} (expected {folder}/<class>/*.png or *.jpg)"
                        f"{unlabeled}{_extract_hint(folder)}")
    return folders


def _images_in(folder: Path, cache: _Caches, at_top: bool = False, others: list[Path] | None = None) -> list[Path]:
    """The images of one class folder; a nested folder is an error, another file (a README, a .webp image) is
    not read and is appended to ``others`` (torchvision's ImageFolder and Keras skip them silently; the caller
    warns). ``at_top``: the class folders lie directly in ``data.path`` (no split folders), where a folder of
    folders may be a split named otherwise (Kaggle's ``training_set/``), which the error then says."""
    files, unread = [], []
    with os.scandir(folder) as listing:  # scandir: the entry type comes with the listing, no stat per file
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if is_hidden(entry.name):
            continue
        refuse_broken_link(entry, f"class folder {folder}")  # before is_dir(), which raises for a loop
        if _is_cache(entry, cache):
            continue
        if entry.is_dir():
            split_hint = (f"; if {folder.name}/ is a split of class folders, name the split folders "
                          f"{split_names_text()}") if at_top else ""
            raise DataError(f"class folder {folder} contains the folder {entry.name}/; a class folder holds "
                            f"{'/'.join(IMAGE_EXTENSIONS)} images and nested folders are not read: move its "
                            f"images up into {folder} or move it out{split_hint}")
        if CACHE_FILE.fullmatch(entry.name):
            raise DataError(f"class folder {folder} contains {entry.name}, trainlab's image cache (a former "
                            "data.cache_dir here), which is not an image; move it out, and keep cache_dir outside "
                            "the class folders")
        if not (entry.is_file() and is_image_name(entry.name)):
            unread.append(Path(entry.path))
            continue
        files.append(Path(entry.path))
    if not files:
        what = f" (it holds {counted(len(unread), 'other file')}: {_examples([p.name for p in unread])})" if unread else ""
        raise DataError(f"class folder {folder} has no images (expected *.png, *.jpg or *.jpeg){what}")
    if others is not None:
        others += unread
    return files


def _skipped_notice(root: Path, others: list[Path]) -> str | None:
    """The one warning for the files of class folders that are not images and so are not read."""
    if not others:
        return None
    names = [str(path.relative_to(root)) for path in others]
    kind = "/".join(IMAGE_EXTENSIONS)
    what = f"is not a {kind} image and is" if len(others) == 1 else f"are not {kind} images and are"
    return f"{counted(len(others), 'file')} in the class folders of {root} {what} not read ({_examples(names)})"


def _loose_notice(folder: Path) -> str | None:
    """The warning for images lying directly in ``folder``, a class folders' parent: they are not read."""
    loose = _loose_images(folder)
    if not loose:
        return None
    return (f"{len(loose)} image file(s) lie directly in {folder} ({_examples(loose)}), outside any class "
            "folder: they are not read; move each into its class folder")


def _beside_splits_notice(root: Path, folders: list[str], images: list[str], has_test: bool) -> str | None:
    """The warning for what lies beside the split folders and is not read: other folders (a test split
    named ``holdout/`` or ``eval/``) and images. There is no option naming the split folders: renaming is
    the way to have one read."""
    if not folders and not images:
        return None
    unread = [_examples(folders, "/")] if folders else []
    if images:
        unread.append(f"{len(images)} image file(s) ({_examples(images)})")
    rename = f"; rename {folders[0]}/ to test/ (or val/) to read it as that split" if folders else ""
    held_out = "" if has_test else " (without a test split, test_fraction of train is held out)"
    return (f"{root}: {' and '.join(unread)} beside the split folders are not read; image_folder reads only "
            f"the split folders {split_names_text()}, each holding <class>/ folders{held_out}{rename}")


def _case_twins_notices(classes: list[str], folder: Path) -> list[str]:
    """The warnings for class folders of ``folder`` whose names differ only in letter case (``cat/``, ``Cat/``):
    two classes, where the data most likely means one (a case-insensitive file system, macOS's or Windows',
    would hold them as one folder); the CSV and text sources warn alike (:func:`~trainlab.data.labels.case_twins`)."""
    return [f"{folder}: the class folders {first}/ and {second}/ differ only in letter case, so they are two "
            f"classes; move the images of one into the other if they are one class"
            for first, second in case_twins(classes)]


def scan(root: Path, cache_dir: str | None = None) -> tuple[dict[str, FolderSplit], list[str]]:
    """The splits found under ``root`` (train, and val/test when present) and the class names.

    A ``cache_dir`` inside ``root`` (beside the class folders, or inside one) is not a class folder and
    is skipped; a ``cache_dir`` that is a class folder itself is refused (its cache would be read as an
    image of that class). Another folder holding only trainlab's cache files (a former run's cache_dir) is
    skipped too, with a warning.
    """
    cache = _Caches(Path(cache_dir).expanduser().resolve() if cache_dir else None)
    with os.scandir(root) as listing:
        entries = sorted((e for e in listing if not is_hidden(e.name) and not _is_cache(e, cache)),
                         key=lambda e: e.name)
    for entry in entries:  # a link whose target is gone, or a loop of links (is_dir() raises ELOOP for it)
        refuse_broken_link(entry, root, " if it is a class or split folder")
    names = [e.name for e in entries if e.is_dir()]
    found = split_folders(names, str(root))
    split_roots = {split: root / name for split, name in found.items()}
    notices = [] if not split_roots else [_beside_splits_notice(
        root, [n for n in names if n not in found.values()],
        [e.name for e in entries if e.is_file() and is_image_name(e.name)], "test" in found)]
    split_roots = split_roots or {"train": root}
    train_classes = [class_name(p.name) for p in _class_folders(split_roots["train"], cache)]
    notices += _case_twins_notices(train_classes, split_roots["train"])
    index = {name: i for i, name in enumerate(train_classes)}
    splits = {}
    others: list[Path] = []  # files of the class folders that are not images: skipped, said once
    for split, folder in split_roots.items():
        files, labels = [], []
        class_folders = _class_folders(folder, cache)
        notices.append(_loose_notice(folder))
        for class_folder in class_folders:
            if class_name(class_folder.name) not in index:
                raise DataError(f"{split} class folder {class_folder} has no counterpart in the training "
                                f"classes ({', '.join(train_classes[:20])})"
                                f"{did_you_mean(class_name(class_folder.name), train_classes)}")
            if class_folder.resolve() == cache.configured:
                raise ConfigError(f"data.cache_dir {cache_dir} is the class folder {class_folder}, where the cache "
                                  "would be read as an image of that class; choose a folder outside the class "
                                  f"folders (e.g. {root / 'cache'})")
            images = _images_in(class_folder, cache, at_top=folder == root, others=others)
            files += images
            labels += [index[class_name(class_folder.name)]] * len(images)
        splits[split] = FolderSplit(files, np.asarray(labels, dtype=np.int64))
    notices.append(_skipped_notice(root, others))
    notices += [f"{folder} holds only trainlab's image cache (a former run's data.cache_dir), no images: it is not "
                "read as a class folder (set data.cache_dir to it to reuse the cache, or remove it)"
                for folder in sorted(cache.former)]
    for notice in notices:  # once the tree is known good: an error is then the only line
        if notice:
            warn(notice)
    return splits, train_classes


# ----------------------------------------------------------------------------- cache


def _source_key(root: Path, size: tuple[int, int] | None, mode: str) -> str:
    """What a cache file is written for, whatever the images hold: the folder, ``data.size`` and ``data.mode``.
    Stored in the file (:data:`SOURCE_MEMBER`), it tells which files a new one replaces (:func:`_remove_replaced`)."""
    return hashlib.sha256(f"{root.resolve()}|{size}|{mode}".encode()).hexdigest()[:16]


def _cache_file(cache_dir: str, root: Path, splits: dict[str, FolderSplit], size: tuple[int, int] | None,
                mode: str) -> Path | None:
    """The cache's file in ``cache_dir`` (made when missing), keyed by every image's name, size and mtime;
    None, with a warning, when the folder cannot be made for the disk's or the permissions' sake."""
    digest = hashlib.sha256(f"{CACHE_VERSION}|{root.resolve()}|{size}|{mode}".encode())
    for name, split in splits.items():
        for file, label in zip(split.files, split.labels, strict=True):
            stat = file.stat()
            digest.update(f"{name}|{label}|{file.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    folder = Path(cache_dir).expanduser()
    file = folder / f"image_folder-{digest.hexdigest()[:16]}.npz"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:  # the disk's or the permissions' fault: the run goes on, uncached
            warn(f"data.cache_dir: image cache {not_written(file, exc)}; training goes on without it")
            return None
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # the folder, or a folder above it, is a file
            blocker = next(path for path in (folder, *folder.parents) if path.exists() and not path.is_dir())
            what = "is a file" if blocker == folder else f"lies under {blocker}, which is a file"
            raise ConfigError(f"data.cache_dir {folder} {what}, not a folder; set cache_dir to a folder "
                              "(it is made when missing), or remove cache_dir") from None
        raise DataError(f"cannot create data.cache_dir {folder}: {exc}; fix it or remove cache_dir") from None
    return file


def _cache_check(splits: dict[str, FolderSplit], size: tuple[int, int],
                 mode: str) -> Callable[[dict[str, np.ndarray]], str | None]:
    """The check of a cache file's arrays (:func:`trainlab.data.cache.read_entry`): each split's is uint8
    (images, ``mode``'s channels, ``size``), one image per file."""
    def check(arrays: dict[str, np.ndarray]) -> str | None:
        for name, split in splits.items():
            array = arrays[name]
            expected = (len(split.files), MODES[mode], *size)
            if array.dtype != np.uint8 or array.shape != expected:
                return f"its {name} images are {array.dtype} {tuple(array.shape)}; expected uint8 {expected}"
        return None

    return check


def _read_cache(file: Path, splits: dict[str, FolderSplit], size: tuple[int, int],
                mode: str) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the cache is missing, or damaged or not the arrays it should hold
    (one warning naming it: :func:`trainlab.data.cache.read_entry`): the images are then decoded again and
    the file rewritten. ``size``: (H, W) of every image, ``data.size`` or the first training image's."""
    return read_entry(file, list(splits), _cache_check(splits, size, mode), "the images are decoded again")


def _remove_replaced(file: Path, source: str) -> None:
    """Delete the other cache files beside ``file`` written for the same ``source`` (:func:`_source_key`):
    files of that folder's images as they were before a change (an image added, edited, removed), which no run
    reads again, each as large as the decoded images. Files written before their source was recorded, or
    unreadable, are left alone; so is a file another process removes first."""
    try:
        with os.scandir(file.parent) as listing:
            others = [Path(e.path) for e in listing if CACHE_FILE.fullmatch(e.name) and e.name != file.name]
    except OSError:
        return
    for other in others:
        try:
            with np.load(other, allow_pickle=False) as archive:
                replaced = SOURCE_MEMBER in archive.files and str(archive[SOURCE_MEMBER]) == source
            if replaced:
                other.unlink()
        except DAMAGE:
            continue


def _write_cache(file: Path, arrays: dict[str, np.ndarray], source: str) -> None:
    """Write the cache atomically (a reader never sees half of it), recording its ``source``, then remove the
    files it replaces (:func:`_remove_replaced`); one that cannot be written (disk full, read-only, permission
    denied) is one warning, and the run trains on the arrays just decoded."""
    try:
        write_npz(file, {**arrays, SOURCE_MEMBER: np.asarray(source)})
    except OSError as exc:
        warn(f"data.cache_dir: image cache {not_written(file, exc)}; training goes on without it, and the "
             "next run decodes the images again")
        return
    _remove_replaced(file, source)


# ----------------------------------------------------------------------------- the source


def _size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    values = [size, size] if isinstance(size, int) else list(size)
    if len(values) != 2 or not all(isinstance(v, int) and v > 0 for v in values):
        raise ConfigError(f"data.size must be a positive int or [height, width]; got {size!r}")
    return values[0], values[1]


def check_image_folder_values(size: int | Sequence[int] | None, mode: str | None, workers: int,
                              mean: float | Sequence[float] | None, std: float | Sequence[float] | None
                              ) -> tuple[int, int] | None:
    """The options of :func:`image_folder` that the config alone decides, checked before any file is read
    (``trainlab compare`` and ``tune`` check them before their runs: trainlab.preflight): ``mode`` (None is
    RGB), ``workers``, ``size`` (returned as (H, W), or None) and ``mean``/``std`` against the channels
    ``mode`` gives (RGB 3, L 1)."""
    mode = "RGB" if mode is None else mode
    if mode not in MODES:
        hint = did_you_mean(mode, list(MODES), MODE_NAMES) if isinstance(mode, str) else ""
        modes = ", ".join(f"{name} ({MODE_MEANINGS[name]})" for name in MODES)
        raise ConfigError(f"data.mode must be one of {modes}; got {short_repr(mode)}{hint}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError(f"data.workers must be an int >= 0; got {workers!r}")
    target = _size(size)
    check_statistics(mean, std, 1 if mode == "L" else 3)
    return target


@DATA_SOURCES.register("image_folder")
def image_folder(
    path: str,
    size: int | Sequence[int] | None = None,
    mode: str | None = None,
    workers: int = 2,
    cache_dir: str | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    augment: bool | Mapping[str, Any] | None = None,
) -> RawData:
    """Class-per-folder images as uint8 (N, C, H, W) and int64 class indices.

    Args:
        path: the folder with ``train/`` (and optionally ``val/``, ``test/``), or with the class folders.
        size: ``H`` or ``[H, W]``: resize every image (bilinear). Default: all images must share one size.
        mode: ``RGB`` (3 channels) or ``L`` (grayscale, 1 channel). None (the default) reads RGB and warns
            where every training image is gray (:func:`warn_if_grayscale`); ``RGB`` said outright does not.
        workers: decoding processes; 0 or 1 decodes in this process.
        cache_dir: folder for an ``.npz`` of the decoded arrays, reused while the files are unchanged. It
            may lie inside ``path`` (it is skipped when the class folders are read), but not be a class folder.
        mean, std, augment: per-batch normalisation and augmentation, see ``image_transforms``;
            statistics default to those of the training split, after val/test are held out.
    """
    target = check_image_folder_values(size, mode, workers, mean, std)
    chosen_mode, mode = mode, "RGB" if mode is None else mode
    root = resolve(path, "a folder of class folders (<class>/*.jpg) or of train/ and test/ class folders")
    if not root.is_dir():
        extract = f": {_extract_advice(root)}" if is_archive_name(root.name) else ""
        raise DataError(f"data.path for image_folder must be a folder; {root} is a file{extract}")
    splits, class_names = scan(root, cache_dir)

    cache = _cache_file(cache_dir, root, splits, target, mode) if cache_dir else None
    first = splits["train"].files[0]
    shape = target or first_size(first)  # the image's header only: no pixels decoded
    arrays = _read_cache(cache, splits, shape, mode) if cache else None
    if arrays is None:
        arrays = {name: decode_images(split.files, shape, mode, target is not None, workers, first)
                  for name, split in splits.items()}
        if cache:
            _write_cache(cache, arrays, _source_key(root, target, mode))

    if chosen_mode is None:
        warn_if_grayscale(arrays["train"], root)
    return RawData(
        arrays["train"], splits["train"].labels,
        arrays.get("val"), splits["val"].labels if "val" in splits else None,
        arrays.get("test"), splits["test"].labels if "test" in splits else None,
        class_names=class_names, fit_transforms=partial(image_transforms, mean=mean, std=std, augment=augment),
    )


def warn_if_grayscale(images: np.ndarray, root: Path) -> None:
    """One warning where every training image of ``root``, decoded as RGB (uint8 (N, 3, H, W)), is grayscale
    (its three channels equal, as Pillow converts an ``L`` image, or a gray JPEG): the model then takes three
    copies of one channel (three times the first layer's work, and statistics such as CIFAR's per-channel
    constants applied to gray values), where ``data.mode: L`` gives the one channel (``data.mode: RGB`` said
    outright keeps the three without the warning: the caller warns only where the mode was left out). Read
    256 images at a time: the first 256 settle the usual (colour) folder without reading the rest."""
    if images.ndim != 4 or images.shape[1] != 3 or not len(images):
        return
    for start in range(0, len(images), 256):  # chunks: no full-size temporaries for a large gray set
        part = images[start:start + 256]
        if not (np.array_equal(part[:, 0], part[:, 1]) and np.array_equal(part[:, 1], part[:, 2])):
            return
    warn(f"every training image in {root} is grayscale (its red, green and blue are equal): read as RGB, the "
         "model takes 3 copies of one channel; set data.mode: L for one channel (and data.mean/std of one value, "
         "or null for the training images' own), or data.mode: RGB to keep 3 channels without this warning")


image_folder.check_values = lambda options: check_image_folder_values(  # type: ignore[attr-defined]
    options["size"], options["mode"], options["workers"], options["mean"], options["std"])
