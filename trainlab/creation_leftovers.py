"""What a ``train`` leaves in its folder before run.json, and whether a later ``train`` may reuse or replace it.

A new run writes :data:`CREATION_FILES` (config.yaml and the JSON records predict reads) before run.json,
whose arrival marks the folder complete. A run killed or stopped by an error (a full disk) in between
leaves those files and nothing else; :class:`trainlab.run_folder.RunDir` asks here whether that folder is
(1) one a killed run left (:func:`killed_while_created`: reused as if empty), (2) what this same run
would write again (:func:`left_by_this_run`: reused, nothing is lost), or (3) another config's records
(:func:`creation_leftovers`) which ``--overwrite`` may replace only when each file is byte for byte
what trainlab writes (:func:`written_by_trainlab`): a hand-written config.yaml is never deleted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trainlab.bounded_read import read_regular_file
from trainlab.run_leftovers import is_stale_temporary
from trainlab.run_lock import LOCK

# What a new run writes before run.json (experiment.train); run.json's arrival marks the folder complete.
CREATION_FILES = frozenset({"config.yaml", "labels.json", "preprocessing.json", "model.json"})
MAX_CREATION_RECORD_BYTES = 64 << 20  # larger than any record a run writes (a text run's preprocessing, its vocabulary)
# trainlab.atomic's temporary of one of them (mkstemp's ".labels.json.b3sh1q8l.tmp"), renamed into place once written
_CREATION_TEMPORARY = re.compile(rf"^\.(?:{'|'.join(map(re.escape, sorted(CREATION_FILES)))})\.[A-Za-z0-9_]{{6,}}\.tmp$")


def stopped_before_run_json(path: Path) -> bool:
    """True if ``path`` (a folder without run.json) holds what a ``train`` stopped before run.json leaves:
    one of :data:`CREATION_FILES`, or, killed while it wrote the first of them, nothing but its lock and
    :mod:`trainlab.atomic` temporaries of them (``.labels.json.<random>.tmp``). A folder of anything else
    (a user's files, a bare ``.lock``, someone else's ``.tmp``) is not: it is nothing trainlab left."""
    entries = list(path.iterdir())
    if any(entry.name in CREATION_FILES for entry in entries):
        return True
    temporaries = [entry for entry in entries if _CREATION_TEMPORARY.match(entry.name)
                   and entry.is_file() and not entry.is_symlink()]
    return (bool(temporaries) and any(entry.name == LOCK for entry in entries)
            and len(entries) == len(temporaries) + 1)


def killed_while_created(path: Path) -> bool:
    """True if ``path`` holds what a run killed before writing run.json leaves: its lock (a file,
    taken and free, checked by the caller), no run.json, and only :data:`CREATION_FILES` and
    stale temporaries besides. Such a folder is reused as if empty."""
    for entry in path.iterdir():
        if entry.name == LOCK:
            continue
        if entry.name in CREATION_FILES and entry.is_file() and not entry.is_symlink():
            continue
        if not is_stale_temporary(entry):
            return False
    return True


def left_by_this_run(path: Path, records: Mapping[str, Any]) -> bool:
    """True if ``path`` holds what an earlier attempt of the same run wrote before an error (a full disk)
    stopped it short of run.json: at least one file, each (besides a lock and stale temporaries) one of
    :data:`CREATION_FILES`, a regular file (not a link), holding ``records[name]``: the same text
    (config.yaml), or the same JSON value (the .json records). Such a folder holds nothing but what this
    run writes again, so reusing it loses nothing; any other file (a user's own config.yaml among them,
    unless identical) makes it False."""
    found = False
    for entry in path.iterdir():
        if entry.name == LOCK or is_stale_temporary(entry):
            continue
        if entry.name not in CREATION_FILES or entry.name not in records:
            return False
        try:
            data = read_regular_file(entry, MAX_CREATION_RECORD_BYTES, follow_links=False)
            expected = records[entry.name]
            same = (data == expected.encode() if isinstance(expected, str)
                    else json.loads(data) == json.loads(json.dumps(expected)))
        except (OSError, ValueError, RecursionError, TypeError):  # a link, a folder, too large, not JSON
            return False
        if not same:
            return False
        found = True
    return found


def creation_leftovers(path: Path) -> list[str]:
    """The :data:`CREATION_FILES` in ``path``, sorted, when they are all it holds besides its lock (the
    caller's, or a free one) and stale temporaries, each a regular file (not a link), and no run.json:
    what a ``train`` stopped before run.json left. ``[]`` otherwise (an empty folder among them)."""
    names = []
    for entry in path.iterdir():
        if entry.name == LOCK or is_stale_temporary(entry):
            continue
        if entry.name not in CREATION_FILES or entry.is_symlink() or not entry.is_file():
            return []
        names.append(entry.name)
    return sorted(names)


def written_by_trainlab(path: Path, names: Iterable[str]) -> bool:
    """True if each of ``names`` in ``path`` is byte for byte what trainlab writes there: a ``.json``
    record a JSON object in :func:`trainlab.atomic.write_json`'s layout, ``config.yaml`` a resolved
    config (every section of :class:`trainlab.config.Config`, in its order) in
    :func:`trainlab.config.dump_yaml`'s layout (its first-line mark, or none as before it). A file a user wrote (comments, a layout of their own,
    sections left to their defaults) is not; neither is one that cannot be read."""
    import yaml

    from trainlab.config import WRITTEN_MARK, Config
    from trainlab.yaml_files import yaml_dump, yaml_load

    for name in names:
        try:
            text = read_regular_file(path / name, MAX_CREATION_RECORD_BYTES, follow_links=False).decode()
            if name == "config.yaml":
                value = yaml_load(text)  # read and written back as dump_yaml wrote it
                dumped = yaml_dump(value, sort_keys=False) if isinstance(value, dict) else None
                same = (isinstance(value, dict) and list(value) == list(Config.model_fields)  # older runs: no mark
                        and text in (f"{WRITTEN_MARK}\n{dumped}", dumped))
            else:
                value = json.loads(text)
                same = isinstance(value, dict) and json.dumps(value, indent=2, sort_keys=False) + "\n" == text
        except (OSError, ValueError, RecursionError, yaml.YAMLError):  # a link, a folder, too large, not UTF-8
            return False
        if not same:
            return False
    return True


def leftovers_message(path: Path, leftovers: list[str], ours: bool, cli: bool, overwrite: bool) -> str:
    """The one line for a folder of another config's :func:`creation_leftovers` that :meth:`RunDir.create`
    does not reuse. ``ours`` (:func:`written_by_trainlab`): ``overwrite`` would replace them; otherwise the
    user removes them (``overwrite`` given: it was refused)."""
    listed = ", ".join(leftovers)
    stopped = "left by a train that stopped before training started, with another config"
    if ours:
        replace = "pass --overwrite" if cli else "pass overwrite=True"
        return (f"output folder {path} already exists and holds only {listed} (no run.json), {stopped}: "
                f"{replace} to replace them, remove those files or choose another --out")
    if overwrite:
        return (f"refusing to overwrite {path}: it holds only {listed} (no run.json), not as trainlab writes them "
                f"(edited, or files of yours?); if {stopped}, remove those files yourself or choose another --out")
    return (f"output folder {path} already exists and holds only {listed} (no run.json), {stopped} (or written "
            "by hand): remove those files or choose another --out")
