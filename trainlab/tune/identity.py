"""What a study is made with, and the one study an ``--out`` folder holds.

A study records, as its user attribute ``trainlab_made_with``, the metric, the parsed search
space and the resolved base config it was created with (:func:`made_with`), and a rerun with
another of them is refused (:func:`check_made_with`): its trials would mix two searches. One
``--out`` holds the run folders of one study (``trials/<number>`` would collide), its name kept
in ``DIR/.tune.study`` (:func:`claim_folder`, once the study is accepted: a refused run leaves no record).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from trainlab.atomic import write_text
from trainlab.config import validate
from trainlab.config_identity import first_difference, outcome_dict
from trainlab.errors import ConfigError
from trainlab.tune.space import SearchSpace
from trainlab.tune.storage import LOCK_NAME, STUDY_MARKER, FileLock
from trainlab.yaml_files import flow_yaml

if TYPE_CHECKING:
    from trainlab.tune.study import TuneSettings

ATTR_MADE_WITH = "trainlab_made_with"  # study user attr: {"metric", "space", "base"} it was made with


def made_with(settings: TuneSettings, space: SearchSpace, base_raw: dict[str, Any]) -> dict[str, Any]:
    """What decides a study's trial values: the metric, the parsed space and the base config's
    :func:`~trainlab.config_identity.outcome_dict` (keys added by later trainlab versions at their default
    are left out, so an upgrade keeps the record)."""
    return {"metric": settings.metric, "space": space.to_dict(), "base": outcome_dict(validate(copy.deepcopy(base_raw)))}


def _new_study(settings: TuneSettings) -> str:
    """Where a new study can be made: the default journal storage holds one study per --out (the journal
    lives there), so another --study on the same --out is refused (:func:`claim_folder`)."""
    return "another --out" if settings.storage is None else "another --study name (and --out)"


def new_study_advice(settings: TuneSettings) -> str:
    """How to start a new study, worded for the storage in use: ``rerun with another --out``."""
    return f"rerun with {_new_study(settings)}"


def refuse_another_metric(study: optuna.Study, settings: TuneSettings) -> None:
    """A ConfigError when the study's record names another metric than ``--metric`` (checked before its
    direction, which the metric decides unless ``--direction`` is given)."""
    recorded = (study.user_attrs.get(ATTR_MADE_WITH) or {}).get("metric")
    if recorded is not None and recorded != settings.metric:
        raise ConfigError(f"study '{settings.name}' tunes {recorded}, not --metric {settings.metric}; "
                          f"rerun with --metric {recorded}, or start a new study with {_new_study(settings)}")


def check_made_with(study: optuna.Study, settings: TuneSettings, space: SearchSpace, made: dict[str, Any]) -> None:
    """Refuse to continue a study with another space or base config (its trials would mix two searches;
    another metric is refused when the study is opened, :func:`refuse_another_metric`). A study without
    the record takes this one: a new study, or one made before the record was kept, whose trials must
    then lie in the space."""
    new_study = _new_study(settings)
    recorded = study.user_attrs.get(ATTR_MADE_WITH)
    if recorded is None:
        by_key = {p.key: p for p in space.params}
        for trial in study.get_trials(deepcopy=False):
            for key, value in space.decode(trial.params).items():
                if key not in by_key or not by_key[key].contains(value):
                    raise ConfigError(f"study '{settings.name}' was made with another search space (its trial "
                                      f"{trial.number} has {key}={flow_yaml(value)}, not a point of "
                                      f"{settings.space}); rerun with the study's own, or start a new study "
                                      f"with {new_study}")
        study.set_user_attr(ATTR_MADE_WITH, made)
        return
    for part, what in (("space", "search space"), ("base", "base config")):
        found = first_difference(recorded[part], made[part])
        if found:
            own = "the study's own (base file and --set)" if part == "base" else "the study's own"
            raise ConfigError(f"study '{settings.name}' was made with another {what} ({found}); rerun with "
                              f"{own}, or start a new study with {new_study}")


def _folder_owner(settings: TuneSettings, storage: optuna.storages.BaseStorage) -> str | None:
    """The study whose run folders ``--out`` holds: the name in ``DIR/.tune.study``; for a journal folder
    from before that record, the journal's other study; None for a folder of no study yet."""
    marker = settings.out / STUDY_MARKER
    owner = marker.read_text().strip() if marker.exists() else None
    if owner is None and settings.storage is None:  # a folder from before the marker: its journal says
        owner = next((n for n in optuna.get_all_study_names(storage) if n != settings.name), None)
    return owner


def refuse_held_folder(settings: TuneSettings, storage: optuna.storages.BaseStorage) -> None:
    """A ConfigError when --out holds the run folders of another study (``trials/<number>`` would collide);
    only reads, so a refused run creates nothing (:func:`claim_folder` records the study once accepted)."""
    owner = _folder_owner(settings, storage)
    if owner is not None and owner != settings.name:
        raise ConfigError(f"{settings.out} holds the trials of study '{owner}'; study '{settings.name}' "
                          f"needs another --out (or --study {owner} to continue that one)")


def claim_folder(settings: TuneSettings, storage: optuna.storages.BaseStorage) -> None:
    """Record the accepted study as the one whose run folders --out holds, in ``DIR/.tune.study``, under the
    folder's lock; refused as :func:`refuse_held_folder` says if another study recorded itself meanwhile.
    Written only once the study is accepted: a refused run's record would claim the folder for a study that
    has no trials in it."""
    marker = settings.out / STUDY_MARKER
    with FileLock(settings.out / LOCK_NAME).held():
        refuse_held_folder(settings, storage)
        if not marker.exists():
            write_text(marker, settings.name + "\n")


@contextlib.contextmanager
def folder_removed_on_refusal(out: Path) -> Iterator[None]:
    """Inside: an error (a refusal before any trial) removes ``out`` again when it did not exist before and
    holds nothing but the claim lock (:data:`LOCK_NAME`, which an RDB storage other than PostgreSQL takes
    there), and the parents created with it; a folder anything else was written into (a journal, another
    process's study) is left as it is."""
    created = [folder for folder in (out, *out.parents) if not folder.exists()]
    try:
        yield
    except BaseException:
        # a leftover lock file misleads no one: an OSError here never hides the refusal
        with contextlib.suppress(OSError):
            if created and {p.name for p in out.iterdir()} <= {LOCK_NAME} and _unlinked_if_free(out / LOCK_NAME):
                for folder in created:  # out first, then its parents: each only while empty
                    folder.rmdir()
        raise


def _unlinked_if_free(lock: Path) -> bool:
    """Remove the lock file ``lock`` while holding its ``flock`` (another tune process starting on the same
    new folder may hold it: then it stays, and False); True when it is gone (or was never made)."""
    try:
        descriptor = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return False
    try:
        lock.unlink(missing_ok=True)  # held: no one waits on this file now
    finally:
        os.close(descriptor)
    return True
