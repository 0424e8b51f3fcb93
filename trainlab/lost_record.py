"""A run folder whose run.json is gone: how to tell one, and what each command can still do with it.

run.json is a run's record of itself (status, config hash, data fingerprint, the model's SHA-256), the
last file a new run writes and the one ``resume`` and ``--overwrite`` go by. A folder that lost it
(deleted by hand, a restore that missed it) still holds trainlab's other records; without a test of its
own, each command's message assumed the folder was something else: resume said a ``train`` had stopped
before training started, ``train --out`` offered ``resume``, ``--overwrite`` refused a folder that "is
not a trainlab run folder", and each pointed at another that refused.

:func:`lost_run_json` tells such a folder by evidence only trainlab writes (a user's folder that happens
to hold a ``config.yaml`` is not one): a ``config.yaml`` as trainlab writes it, byte for byte, beside a
checkpoint manifest of trainlab's format or a ``summary.json`` naming its trainlab version and config hash,
and nothing that is not a run folder's. Such a folder cannot be resumed (what resume checks is gone) but may be replaced by
``--overwrite``; ``eval`` and ``predict`` still read its model, unchecked (:mod:`trainlab.model_file`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from trainlab.creation_leftovers import written_by_trainlab
from trainlab.records import read_record_object
from trainlab.shell_command import command_line


def _trainlab_wrote(path: Path) -> bool:
    """``config.yaml`` byte for byte as trainlab writes it (:func:`written_by_trainlab`: not a file the user
    wrote or edited), and a checkpoint manifest of trainlab's format or a summary.json with trainlab's version
    and config hash."""
    from trainlab.engine import checkpoint

    if not written_by_trainlab(path, ["config.yaml"]):
        return False
    summary = read_record_object(path / "summary.json") or {}
    if isinstance(summary.get("trainlab"), str) and isinstance(summary.get("config_hash"), str):
        return True
    for folder in checkpoint.step_folders(path / "checkpoint"):
        manifest = read_record_object(folder / checkpoint.MANIFEST) or {}
        if manifest.get("format") == checkpoint.FORMAT_VERSION and isinstance(manifest.get("files"), dict):
            return True
    return False


def lost_run_json(path: Path, run_files: Iterable[str]) -> bool:
    """True if ``path`` is a run folder without its run.json: no run.json, a ``config.yaml``, only names
    of ``run_files`` (and hidden temporaries), and trainlab's own evidence (the module docstring)."""
    if not path.is_dir() or (path / "run.json").exists() or (path / "run.json").is_symlink():
        return False
    names = {entry.name for entry in path.iterdir() if not entry.name.startswith(".")}
    return "config.yaml" in names and names <= set(run_files) and _trainlab_wrote(path)


def train_again(path: Path) -> str:
    """How to train such a folder's run again: its config, copied out of the folder, with ``--overwrite``."""
    return (f"run the config (a copy of {path / 'config.yaml'} outside the folder) with "
            f"{command_line('--out', path, '--overwrite')}, or into another --out")


def cannot_resume(path: Path) -> str:
    """The message of a resume of such a folder: why not, and the command that works."""
    finished = (path / "model.safetensors").is_file()
    model = "; eval and predict still read its model.safetensors (unchecked)" if finished else ""
    return (f"cannot resume {path}: its run.json is missing (the run's record of its status, config hash and data, "
            f"which resume checks before continuing a checkpoint){model}; to train it again, {train_again(path)}")


def damaged_run_json_advice(path: Path) -> str:
    """What to do with a run folder whose run.json is damaged (what resume checks before continuing a
    checkpoint): restore it, or train the run again into another folder (``--overwrite`` goes by a readable
    run.json, so it refuses this one: the folder is removed first to reuse its name)."""
    return (f"it cannot be resumed without it: restore run.json from a backup, or train the run again from its "
            f"config (a copy of {path / 'config.yaml'} outside the folder) into another --out (to reuse this one, "
            "remove it first: --overwrite replaces only a folder whose run.json it can read)")
