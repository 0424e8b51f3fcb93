"""What a run's data files were when it ran: a digest of their paths, sizes and modification times.

A finished run is reused (``trainlab compare`` skips it) only while its config *and* its data are
the same. The config has its hash; the data has this fingerprint, recorded in ``run.json`` as
``data_fingerprint``. It is ``make``'s rule: a file whose size or modification time (ns) changed,
or a file added to or removed from a data folder, is a change. Content is not read (a CIFAR folder
holds 60,000 files), so a copy that sets new times (``cp`` without ``-p``) counts as a change too:
the safe side, one run repeated.

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


def _entries(root: Path, skip: Path | None) -> list[str]:
    """One line per file under ``root`` (itself when a file): relative path, size, mtime in ns; folders
    trainlab wrote (:func:`is_output_folder`) below ``root`` and ``skip`` are left out."""
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
            lines.append(f"{prefix}{entry.name}|{stat.st_size}|{stat.st_mtime_ns}")

    walk(str(root), "")
    return lines


def data_fingerprint(data: Mapping[str, Any]) -> str | None:
    """SHA-256 (first 16 hex digits) over each named file's (or each file under a named folder's)
    relative path, size and modification time; None when the section names no file. Where the files
    lie is not part of it (the config hash holds the paths as written; a folder moved with ``mv``
    keeps its fingerprint).

    A missing path is part of the digest as missing (so its later appearance is a change); a
    ``cache_dir`` inside a data folder and trainlab's output folders there (:data:`OUTPUT_MARKERS`) are
    left out (runs write them).
    """
    named = named_files(data)
    if not named:
        return None
    cache = data.get("cache_dir")
    skip = Path(cache).expanduser().resolve() if isinstance(cache, str) and cache else None
    digest = hashlib.sha256()
    for key, path in named.items():
        digest.update(f"{key}\n".encode())  # not the path: the same files reached from another cwd are the same
        try:
            lines = _entries(path, skip) if path.exists() else ["missing"]
        except OSError:
            lines = ["unreadable"]
        digest.update("\n".join(lines).encode() + b"\n")
    return digest.hexdigest()[:16]
