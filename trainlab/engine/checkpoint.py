"""Checkpoints on disk: pickle-free, atomic, verified.

Layout of one checkpoint folder ``checkpoint/step-000000123/``::

    tensors.safetensors   every tensor (weights, optimizer moments, RNG states, best weights)
    state.json            everything else (counters, history, callback state, python/numpy RNG)
    manifest.json         written last: format version, step, epoch, SHA-256 and byte size of each file

A checkpoint is written into a temporary folder, each file fsynced, the
manifest last, then the folder is renamed into place. A checkpoint counts only
if its manifest parses and every hash matches; :func:`latest` skips (with a
warning) any that does not, and falls back to the previous one. Nothing here
ever unpickles: tensors are read with safetensors, the rest with json.

Reading is bounded and validated, so a planted or damaged checkpoint is skipped, never followed:
each file must be a regular file (not a link to /dev/zero, not a FIFO) whose size is the one the
manifest records (the manifest itself at most 1 MiB); the manifest and state.json must have the
shapes checked by :func:`check_manifest` and :func:`check_state` (plus an optional ``validate``
hook of the engine's own); JSON nested too deeply is refused. Anything wrong is a CheckpointError.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load

from trainlab.atomic import fsync_dir, named_after, tensors_to_bytes
from trainlab.notices import warn

FORMAT_VERSION = 1
TENSORS, STATE, MANIFEST = "tensors.safetensors", "state.json", "manifest.json"
PREFIX = "step-"
BEST = "best"


MAX_MANIFEST_BYTES = 1 << 20
MAX_STATE_BYTES = 1 << 30  # state.json of a manifest without sizes (format 1 before sizes were recorded)
MAX_JSON_DEPTH = 100
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CheckpointError(Exception):
    """A checkpoint folder that is incomplete, corrupted or not ours."""


class CheckpointUnreadable(CheckpointError):
    """A checkpoint that could not be used now but may be whole: a read error, a file that changed while it
    was read, a manifest format of another trainlab version, a state that does not fit this run's build.
    Skipped like any other, never set aside as damaged (:func:`latest`)."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def save(root: str | os.PathLike[str], name: str, tree: dict[str, Any], tensors: dict[str, torch.Tensor],
         info: dict[str, Any]) -> Path:
    """Write checkpoint ``root/name`` atomically; on any OSError nothing under ``name`` changes."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        blobs = {TENSORS: tensors_to_bytes(tensors), STATE: json.dumps(tree).encode()}
        for file, data in blobs.items():
            _write_file(tmp / file, data)
        manifest = {"format": FORMAT_VERSION, **info, "files": {f: _sha256(d) for f, d in blobs.items()},
                    "sizes": {f: len(d) for f, d in blobs.items()}}
        _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2).encode())
        fsync_dir(tmp)
        if final.exists():  # re-saving the same step (after a resume): swap, never delete first
            old = root / f".{name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(root)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and (exc.filename is None or str(exc.filename).startswith(str(tmp))):
            raise named_after(exc, final) from None
        raise
    return final


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """The manifest's shape: {"format": 1, "files": {file: sha256}, "sizes"?: {file: bytes}, "step"?: n, ...}."""
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{where}: manifest is a JSON {type(manifest).__name__}, not an object")
    version = manifest.get("format")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise CheckpointUnreadable(f"{where}: manifest format {str(version)[:20]!r} is not {FORMAT_VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {TENSORS, STATE}:
        shown = sorted(files) if isinstance(files, dict) else type(files).__name__
        raise CheckpointError(f"{where}: manifest 'files' is {str(shown)[:80]}, expected {[TENSORS, STATE]}")
    if not all(isinstance(d, str) and _SHA256.match(d) for d in files.values()):
        raise CheckpointError(f"{where}: manifest 'files' must map each file to a SHA-256 hex digest")
    sizes = manifest.get("sizes")
    if sizes is not None and not (isinstance(sizes, dict) and set(sizes) == set(files)
                                  and all(_is_count(n) for n in sizes.values())):
        raise CheckpointError(f"{where}: manifest 'sizes' must map each file to its byte count")
    for key in ("step", "epoch", "batch_in_epoch"):
        if key in manifest and not _is_count(manifest[key]):
            raise CheckpointError(f"{where}: manifest '{key}' must be a count; got {str(manifest[key])[:40]!r}")
    if "config_hash" in manifest and not isinstance(manifest["config_hash"], str | None):
        raise CheckpointError(f"{where}: manifest 'config_hash' must be a string")
    return manifest


# Keys of the engine's tree (at the top or under "parts") and their JSON types; absent keys are the
# engine's business (its ``validate`` hook).
_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "parts": (dict,), "train_state": (dict,), "epoch_samples": (int,), "optimizer": (dict,),
    "schedule": (dict, type(None)), "scaler": (dict, type(None)), "callbacks": (dict, list, type(None)),
    "rng": (dict,), "python_rng": (dict, list),
}


def check_state(tree: Any, tensors: dict[str, Any], where: str) -> dict[str, Any]:
    """The state tree's shape: an object; known keys of the right JSON type; every tensor reference
    (``{"__tensor__": key}``) names a tensor of the file; tuple/items markers hold lists."""
    if not isinstance(tree, dict):
        raise CheckpointError(f"{where}: state.json is a JSON {type(tree).__name__}, not an object")
    for level in (tree, tree.get("parts")):
        for key, types in _STATE_TYPES.items():
            if isinstance(level, dict) and key in level and (not isinstance(level[key], types)
                                                             or isinstance(level[key], bool)):
                raise CheckpointError(f"{where}: state '{key}' is a {type(level[key]).__name__}")
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise CheckpointError(f"{where}: state.json is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            if len(node) == 1:
                (marker, value), = node.items()
                if marker in ("__tensor__", "__ndarray__") and (not isinstance(value, str) or value not in tensors):
                    raise CheckpointError(f"{where}: state refers to tensor {str(value)[:60]!r}, which is not stored")
                if marker == "__tuple__" and not isinstance(value, list):
                    raise CheckpointError(f"{where}: state holds a malformed tuple")
                if marker == "__items__" and not (isinstance(value, list) and all(
                        isinstance(pair, list) and len(pair) == 2 for pair in value)):
                    raise CheckpointError(f"{where}: state holds a malformed mapping")
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return tree


def _read_bounded(path: Path, where: str, size: int | None, limit: int | None) -> bytes:
    """A regular file's bytes, refusing links, devices, FIFOs and sizes other than ``size`` / over ``limit``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise CheckpointError(f"{where}: missing (incomplete checkpoint)") from None
    except OSError as exc:
        raise CheckpointUnreadable(f"{where}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{where}: not a regular file (a link or a device is never part of a checkpoint)")
    if size is not None and info.st_size != size:
        raise CheckpointError(f"{where}: {info.st_size} bytes, the manifest says {size} (corrupted)")
    if limit is not None and info.st_size > limit:
        raise CheckpointError(f"{where}: {info.st_size} bytes, more than {limit} allowed")
    try:
        with open(path, "rb") as handle:
            data = handle.read(info.st_size + 1)
    except OSError as exc:
        raise CheckpointUnreadable(f"{where}: {exc.strerror or exc}") from None
    if len(data) != info.st_size:
        raise CheckpointUnreadable(f"{where}: changed size while being read")
    return data


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise CheckpointError(f"{where}: not valid JSON ({reason})") from None


def load(folder: str | os.PathLike[str], validate: Callable[[dict[str, Any]], None] | None = None
         ) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """(manifest, tree, tensors) of a verified checkpoint, or CheckpointError saying what is wrong.

    ``validate(tree)`` is the engine's own check of the state it wrote; a ValueError, TypeError or
    KeyError it raises makes the checkpoint invalid like any other damage.
    """
    folder = Path(folder)
    name = folder.name
    if folder.is_symlink() or not folder.is_dir():
        raise CheckpointError(f"{name}: not a checkpoint folder")
    try:
        manifest_bytes = _read_bounded(folder / MANIFEST, f"{name}/{MANIFEST}", None, MAX_MANIFEST_BYTES)
    except CheckpointError as exc:
        if not (folder / MANIFEST).exists() and not (folder / MANIFEST).is_symlink():
            raise CheckpointError(f"{name}: no manifest (incomplete checkpoint)") from None
        raise type(exc)(f"{name}: unreadable manifest ({exc})") from None
    manifest = check_manifest(_json(manifest_bytes, f"{name}/{MANIFEST}"), name)
    sizes = manifest.get("sizes") or {}
    blobs = {}
    for file, digest in manifest["files"].items():
        limit = MAX_STATE_BYTES if file == STATE else None
        data = _read_bounded(folder / file, f"{name}/{file}", sizes.get(file), limit)
        if _sha256(data) != digest:
            raise CheckpointError(f"{name}/{file}: SHA-256 does not match the manifest (corrupted)")
        blobs[file] = data
    try:
        tensors = safetensors_load(blobs[TENSORS])
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{name}: not a valid safetensors/JSON checkpoint ({exc})") from None
    tree = check_state(_json(blobs[STATE], f"{name}/{STATE}"), tensors, name)
    if validate is not None:
        try:
            validate(tree)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise CheckpointUnreadable(f"{name}: state does not fit this run ({type(exc).__name__}: "
                                  f"{str(exc)[:200]})") from None
    return manifest, tree, tensors


def step_folders(root: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint folders, newest step first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if path.is_dir() and path.name.startswith(PREFIX) and path.name[len(PREFIX):].isdigit():
            found.append(path)
    return sorted(found, key=folder_step, reverse=True)


def folder_step(folder: Path) -> int:
    """The step of a checkpoint folder of :func:`step_folders` (``step-000000120``: 120)."""
    return int(folder.name[len(PREFIX):])


DAMAGED = "damaged-"  # a checkpoint that failed to verify, set aside by a resume: ``damaged-step-000000123``


def latest(root: str | os.PathLike[str], validate: Callable[[dict[str, Any]], None] | None = None,
           set_aside: bool = False):
    """The newest checkpoint that verifies, skipping broken ones with a warning; None if none does.

    ``set_aside`` (a resume, which goes on to write checkpoints here): each damaged one (not a
    :class:`CheckpointUnreadable`, which may be whole) is renamed ``damaged-step-...``, kept for a look but no
    longer a step folder. Left in place, a broken checkpoint
    of a later step than the resumed one would count among the newest that :func:`prune` keeps, and the
    resumed run's new checkpoints would be deleted as they were written: a run resumed from step 0 that
    is interrupted again would start from step 0 again."""
    for folder in step_folders(root):
        try:
            return folder, *load(folder, validate)
        except CheckpointError as exc:
            damaged = set_aside and not isinstance(exc, CheckpointUnreadable)  # not one that may be whole
            moved = _set_aside(folder) if damaged else None
            where = f"; set aside as {moved.name}" if moved is not None else ""
            warn(f"skipping checkpoint {exc}{where}; falling back to the previous one")
    return None


def _set_aside(folder: Path) -> Path | None:
    """Rename ``folder`` to ``damaged-<name>`` (``-2``, ``-3``, ... if taken); None if it cannot be renamed."""
    for attempt in range(1, 100):
        target = folder.with_name(f"{DAMAGED}{folder.name}" + (f"-{attempt}" if attempt > 1 else ""))
        if target.exists() or target.is_symlink():
            continue
        try:
            os.rename(folder, target)
        except OSError:
            return None
        return target
    return None


DELETING = ".deleting-"  # a checkpoint folder renamed aside to be deleted: ``.step-000000123.deleting-<pid>``


def remove(folder: Path) -> bool:
    """Delete checkpoint ``folder`` whole or not at all; True when it is gone.

    It is renamed aside first (one atomic rename, hidden from :func:`step_folders`), then the renamed folder
    is deleted. Deleting in place would empty a folder whose parent is not writable and then fail to remove
    it: a checkpoint without its files, still listed. A folder that cannot be renamed stays whole; one whose
    deletion stops after the rename (its files not removable) is a hidden leftover, never a checkpoint,
    which :func:`prune_after_finish` tries again.
    """
    aside = folder.with_name(f".{folder.name}{DELETING}{os.getpid()}")
    try:
        os.rename(folder, aside)
    except OSError:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True


def prune(root: str | os.PathLike[str], keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step folders, each whole or not at all (:func:`remove`)."""
    for folder in step_folders(root)[keep_last:]:
        remove(folder)


def folder_name(step: int) -> str:
    return f"{PREFIX}{step:09d}"


KEEP_AFTER_FINISH = ("none", "last", "all")


def prune_after_finish(root: str | os.PathLike[str], keep: str) -> list[Path]:
    """Delete the checkpoints a finished run no longer needs; returns the folders kept, newest first.

    ``keep``: ``"all"`` deletes nothing; ``"last"`` keeps ``best/`` and the newest step folder
    (what ``trainlab resume`` and a look at the best evaluation need); ``"none"`` deletes every
    checkpoint (``model.safetensors`` holds the final weights). Leftover temporary folders of
    interrupted writes (``.step-*.tmp-*``) and of interrupted deletions (``.step-*.deleting-*``) go in
    every mode but ``all``. Each checkpoint goes whole or stays whole (:func:`remove`): one that cannot
    be deleted (``checkpoint/`` not writable) is left as it was and reported as kept.
    """
    if keep not in KEEP_AFTER_FINISH:
        raise ValueError(f"keep must be one of {', '.join(KEEP_AFTER_FINISH)}; got {keep!r}")
    root = Path(root)
    steps = step_folders(root)
    best = root / BEST
    kept = [*steps, *([best] if best.is_dir() else [])]
    if keep == "all" or not root.is_dir():
        return kept
    keep_set = set() if keep == "none" else {*steps[:1], best}
    for path in list(root.iterdir()):
        temporary = path.name.startswith(".") and (".tmp-" in path.name or DELETING in path.name)
        if path in keep_set or not (path in kept or temporary) or path.is_symlink():
            continue
        if temporary:
            shutil.rmtree(path, ignore_errors=True)  # no checkpoint: what is left of it may be left
        else:
            remove(path)
    return [path for path in kept if path.exists()]
