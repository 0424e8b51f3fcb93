"""What a run's data files were when it ran: digests of their paths, sizes and modification times.

A finished run is reused (``trainlab compare`` skips it) only while its config *and* its data are
the same. The config has its hash; the data has this fingerprint, recorded in ``run.json`` as
``data_fingerprint``. It is ``make``'s rule: a file whose size or modification time (ns) changed,
or a file added to or removed from a data folder, is a change. Content is not read (a CIFAR folder
holds 60,000 files), so a copy that sets new times (``cp`` without ``-p``) counts as a change too:
the safe side, one run repeated.

The fingerprint is one digest per input the data section names (``train=1f0c... test=9ab2...``), so
that a change names its file (:func:`data_changes`). A ``data.path`` that only locates the named
``train``/``val``/``test`` files (``text_tsv``, ``text_csv``) is no input of its own: other files in
that folder are not read, and do not count. A folder that is the data (``image_folder``'s
``data.path``, a class folder per label) counts with every file under it. Runs recorded before this
form hold one digest over all inputs, ``data.path``'s whole folder included (:func:`_legacy_digest`):
it is still compared, and files added to a locating folder after such a run began are forgiven.

Built-in sets (``scikit-learn``, ``mnist1d``, synthetic) name no file: the config alone fixes them
and the fingerprint is None.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainlab.folder_owner import MARKERS
from trainlab.run_lock import LOCK

# the data keys that name files whose content a run reads (data.cache_dir only holds a copy of them)
READ_KEYS = ("path", "train", "val", "test", "tokenizer_path")
# a file that makes its folder trainlab's output, not data: the results a command writes
# (trainlab.folder_owner.MARKERS: run.json beside config.yaml, leaderboard.json, a study's files) and the
# lock a run folder or comparison holds while it is written (.lock). Runs written beside the data
# (data.path: . with the default runs/ out) are left out, so a run does not change its own data's fingerprint.
OUTPUT_MARKERS = (*MARKERS, LOCK)


def named_files(data: Mapping[str, Any]) -> dict[str, Path]:
    """``key -> path`` for every :data:`READ_KEYS` value of a data section (its paths resolved as a run's
    config.yaml holds them); ``train``/``val``/``test`` are relative to ``path`` when that is set."""
    named: dict[str, Path] = {}
    for key in READ_KEYS:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if key in ("train", "val", "test") and not path.is_absolute() and isinstance(data.get("path"), str):
            path = Path(data["path"]).expanduser() / path
        named[key] = path
    return named


def is_output_folder(folder: str) -> bool:
    """``folder`` holds one of :data:`OUTPUT_MARKERS` as a regular file (run.json only beside a config.yaml,
    as a run folder has it: a data folder's own run.json stays data): trainlab wrote it."""
    def holds(name: str) -> bool:
        return os.path.isfile(os.path.join(folder, name))

    return any(holds(marker) and (marker != "run.json" or holds("config.yaml")) for marker in OUTPUT_MARKERS)


def _entries(root: Path, skip: Path | None, before_ns: int | None = None) -> list[str]:
    """One line per file under ``root`` (itself when a file): relative path, size, mtime in ns; folders
    trainlab wrote (:func:`is_output_folder`) below ``root`` and ``skip`` are left out, and (``before_ns``)
    files modified after that time."""
    if root.is_file():
        stat = root.stat()
        return [f"{stat.st_size}|{stat.st_mtime_ns}"]
    lines: list[str] = []
    seen: set[Path] = set()  # folders walked, resolved: a link back up the tree is not walked again

    def walk(folder: str, prefix: str) -> None:
        seen.add(Path(folder).resolve())
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            if entry.is_dir():  # following links, as the readers do (a class folder may be a link)
                real = Path(entry.path).resolve()
                if real not in seen and (skip is None or real != skip) and not is_output_folder(entry.path):
                    walk(entry.path, f"{prefix}{entry.name}/")
                continue
            try:
                stat = entry.stat()
            except OSError:  # a dangling link or a file removed while walking
                continue
            if before_ns is None or stat.st_mtime_ns <= before_ns:
                lines.append(f"{prefix}{entry.name}|{stat.st_size}|{stat.st_mtime_ns}")

    walk(str(root), "")
    return lines


def _lines(key: str, path: Path, skip: Path | None, before_ns: int | None = None) -> bytes:
    """What the digest of input ``key`` at ``path`` covers (the path itself is not part of it: the same
    files reached from another cwd, or moved with ``mv``, are the same)."""
    try:
        lines = _entries(path, skip, before_ns) if path.exists() else ["missing"]
    except OSError:
        lines = ["unreadable"]
    return f"{key}\n".encode() + "\n".join(lines).encode() + b"\n"


def _skipped(data: Mapping[str, Any]) -> Path | None:
    """``data.cache_dir``, resolved: a run writes it, maybe inside a data folder."""
    cache = data.get("cache_dir")
    return Path(cache).expanduser().resolve() if isinstance(cache, str) and cache else None


# sources whose data.path only locates the train/val/test files they name (no other file there is read)
LOCATING_SOURCES = frozenset({"text_tsv", "text_csv"})


def fingerprinted_files(data: Mapping[str, Any]) -> dict[str, Path]:
    """:func:`named_files` that are inputs of their own: all but the ``path`` of a :data:`LOCATING_SOURCES`
    source that names ``train``/``val``/``test`` files (any other source may read its folder's every file)."""
    named = named_files(data)
    if data.get("source") in LOCATING_SOURCES and "path" in named \
            and any(key in named for key in ("train", "val", "test")):
        del named["path"]
    return named


def file_fingerprints(data: Mapping[str, Any]) -> dict[str, str]:
    """``key -> digest`` (SHA-256, first 16 hex digits) of each of :func:`fingerprinted_files`: a file's
    size and modification time, or each file's relative path, size and time under a folder. A missing
    path is digested as missing (so its later appearance is a change); a ``cache_dir`` inside a data
    folder and trainlab's output folders there (:data:`OUTPUT_MARKERS`) are left out (runs write them)."""
    skip = _skipped(data)
    return {key: hashlib.sha256(_lines(key, path, skip)).hexdigest()[:16]
            for key, path in fingerprinted_files(data).items()}


def data_fingerprint(data: Mapping[str, Any]) -> str | None:
    """The data section's inputs as run.json records them: ``key=digest`` of :func:`file_fingerprints`,
    space-separated; None when the section names no file. Equal strings: the same data."""
    prints = file_fingerprints(data)
    return " ".join(f"{key}={digest}" for key, digest in prints.items()) or None


def _legacy_digest(data: Mapping[str, Any], before_ns: int | None = None) -> str:
    """The fingerprint runs recorded before :func:`data_fingerprint` kept one digest per input: one digest
    over every :func:`named_files` input, a locating ``data.path``'s whole folder included (``before_ns``:
    only its files last modified by then)."""
    skip = _skipped(data)
    digest = hashlib.sha256()
    for key, path in named_files(data).items():
        digest.update(_lines(key, path, skip, before_ns if key == "path" else None))
    return digest.hexdigest()[:16]


def _shown(path: Path) -> str:
    return f"files under {path}" if path.is_dir() else str(path)


def data_changes(info: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """What of ``data``'s inputs changed since a run recorded ``info`` (its run.json: ``data_fingerprint``,
    and ``created``, when it began): the changed files (``files under F`` for a folder), comma-separated;
    "" when none did, or nothing was recorded.

    A fingerprint of the form before per-input digests (:func:`_legacy_digest`) cannot tell which input
    changed: all are named then. Compared with its own rule, it would see a file added to a folder that
    only locates the named files as a change; when the digest matches with the files modified after the
    run began left out, the named inputs are as they were, and nothing changed that the run reads.
    """
    recorded = info.get("data_fingerprint")
    if not isinstance(recorded, str) or not recorded:
        return ""
    inputs = fingerprinted_files(data)
    if "=" not in recorded:  # one digest of all inputs (runs recorded before per-input digests)
        created = info.get("created")
        before = int(created * 1e9) if isinstance(created, int | float) and "path" not in inputs else None
        if recorded == _legacy_digest(data) or (before is not None and recorded == _legacy_digest(data, before)):
            return ""
        return ", ".join(_shown(path) for path in inputs.values())
    then = dict(part.partition("=")[::2] for part in recorded.split())
    now = file_fingerprints(data)
    changed = [key for key in (*now, *(k for k in then if k not in now)) if then.get(key) != now.get(key)]
    return ", ".join(_shown(inputs[key]) if key in inputs else f"data.{key}" for key in changed)


def tokenizer_changes(info: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """:func:`data_changes` of ``data.tokenizer_path`` alone: what ``predict`` reads of a run's data section
    (it encodes new texts with the run's tokenizer and reads no training file). "" when it is unchanged,
    ``data`` names no tokenizer, or ``info`` records no digest of it alone (a fingerprint of the one-digest
    form, :func:`_legacy_digest`, cannot tell the tokenizer's change from the training files')."""
    recorded = info.get("data_fingerprint")
    tokenizer_path = data.get("tokenizer_path")
    if not isinstance(recorded, str) or not isinstance(tokenizer_path, str) or not tokenizer_path:
        return ""
    then = dict(part.partition("=")[::2] for part in recorded.split() if "=" in part).get("tokenizer_path")
    if not then:
        return ""
    alone = {"tokenizer_path": tokenizer_path, "cache_dir": data.get("cache_dir")}
    return data_changes({"data_fingerprint": f"tokenizer_path={then}"}, alone)
