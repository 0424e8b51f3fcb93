"""Checkpoints on disk: pickle-free, atomic, verified.

Layout of one checkpoint folder ``checkpoint/step-000000123/``::

    tensors.safetensors   every tensor (weights, optimizer moments, RNG states, best weights)
    state.json            everything else (counters, history, callback state, python/numpy RNG)
    manifest.json         written last: format version, step, epoch, SHA-256 of each file

A checkpoint is written into a temporary folder, each file fsynced, the
manifest last, then the folder is renamed into place. A checkpoint counts only
if its manifest parses and every hash matches; :func:`latest` skips (with a
warning) any that does not, and falls back to the previous one. Nothing here
ever unpickles: tensors are read with safetensors, the rest with json.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load

from trainlab.atomic import fsync_dir, tensors_to_bytes

FORMAT_VERSION = 1
TENSORS, STATE, MANIFEST = "tensors.safetensors", "state.json", "manifest.json"
PREFIX = "step-"
BEST = "best"


class CheckpointError(Exception):
    """A checkpoint folder that is incomplete, corrupted or not ours."""


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
        manifest = {"format": FORMAT_VERSION, **info, "files": {f: _sha256(d) for f, d in blobs.items()}}
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """(manifest, tree, tensors) of a verified checkpoint, or CheckpointError saying what is wrong."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise CheckpointError(f"{folder.name}: no manifest (incomplete checkpoint)") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{folder.name}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{folder.name}: manifest format {manifest.get('format')!r} is not {FORMAT_VERSION}")
    expected = manifest.get("files", {})
    if set(expected) != {TENSORS, STATE}:
        raise CheckpointError(f"{folder.name}: manifest lists {sorted(expected)}, expected {[TENSORS, STATE]}")
    blobs = {}
    for file, digest in expected.items():
        try:
            data = (folder / file).read_bytes()
        except OSError as exc:
            raise CheckpointError(f"{folder.name}/{file}: {exc.strerror or exc}") from None
        if _sha256(data) != digest:
            raise CheckpointError(f"{folder.name}/{file}: SHA-256 does not match the manifest (corrupted)")
        blobs[file] = data
    try:
        tensors = safetensors_load(blobs[TENSORS])
        tree = json.loads(blobs[STATE])
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{folder.name}: not a valid safetensors/JSON checkpoint ({exc})") from None
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
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]), reverse=True)


def latest(root: str | os.PathLike[str]):
    """The newest checkpoint that verifies, skipping broken ones with a warning; None if none does."""
    for folder in step_folders(root):
        try:
            return folder, *load(folder)
        except CheckpointError as exc:
            warnings.warn(f"skipping checkpoint {exc}; falling back to the previous one", stacklevel=2)
    return None


def prune(root: str | os.PathLike[str], keep_last: int) -> None:
    for folder in step_folders(root)[keep_last:]:
        shutil.rmtree(folder, ignore_errors=True)


def folder_name(step: int) -> str:
    return f"{PREFIX}{step:09d}"
