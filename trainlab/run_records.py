"""The JSON records of a run folder that :func:`trainlab.inference.load_run` reads, checked as read.

``config.yaml`` is checked against the hash run.json recorded for it (:func:`load_trained_config`), and
the three JSON records against the SHA-256 digests run.json records when the run finishes
(:func:`check_record_digests`): a changed mean in preprocessing.json silently changed predictions.
``labels.json`` (``{"task", "class_names"}``), ``model.json`` (what predict rebuilds the model from) and
``preprocessing.json`` (trainlab.data.preprocessing's fitted dict) are plain JSON anyone can edit. A
record that is valid JSON but holds another type (a hand edit, another tool's file) is one DataError
naming the file and the key (exit 3), not a TypeError deep in predict. Each checked key is
``(test, what it must be, required)``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from trainlab.bounded_read import read_regular_file
from trainlab.config import DATA_TASKS, Config, load_config
from trainlab.config_fields import short_repr
from trainlab.errors import DataError
from trainlab.records import (
    FIT_METRICS,
    FIT_MODEL,
    FIT_STRATEGY,
    MAX_RECORD_BYTES,
    read_record_object,
    read_record_text,
)
from trainlab.run_layout import is_run_folder

LABELS_RECORD = "labels.json"
PREPROCESSING_RECORD = "preprocessing.json"
MODEL_RECORD = "model.json"
DIGESTS_KEY = "records_sha256"  # run.json: {record file: SHA-256}, written when the run finishes
DIGESTED_RECORDS = (LABELS_RECORD, PREPROCESSING_RECORD, MODEL_RECORD)  # the only names DIGESTS_KEY may hold


# what pathlib's is_file() reads as "no such file"; any other OSError of a stat is a folder or file that cannot be read
_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def labels_record(task: str, class_names: list[str]) -> dict[str, Any]:
    """labels.json's content: the task and the class names in the order the model's outputs index them
    (a run folder's, and ``trainlab.fit(out=...)``'s)."""
    return {"task": task, "class_names": list(class_names)}


def unreadable(path: Path, exc: OSError, kind: str = "file") -> DataError:
    """``path`` (a record, or with ``kind="folder"`` the run folder holding it) cannot be read: a data
    problem (exit 3), not a failed write (5)."""
    return DataError(f"cannot read the {kind} {path}: {exc.strerror or exc}; make it readable to this user, "
                     "or leave it out")


def is_fit_records(path: Path) -> bool:
    """``path`` holds the records of ``trainlab.fit(out=...)``, a model that is the user's own module, which no
    config rebuilds: its strategy.yaml (of :data:`~trainlab.records.FIT_RECORDS`: no ``trainlab train`` writes
    one) beside its model or its metrics (a strategies file of the user's, named so, is none), and no run.json
    (it is not a run folder)."""
    return (not is_run_folder(path) and is_record_file(path / FIT_STRATEGY)
            and (is_record_file(path / FIT_MODEL) or is_record_file(path / FIT_METRICS)))


def is_record_file(path: Path) -> bool:
    """``path.is_file()``, but a ``path`` that cannot be looked up is a DataError (:func:`unreadable`), not an
    OSError naming a file that may not exist, which the CLI reports as a failed write (exit 5). Permission
    denied on the lookup is the folder's (no search permission: nothing in it can be read), so the folder is
    named."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return False
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise unreadable(path.parent, exc, "folder") from None
        raise unreadable(path, exc) from None


def check_readable(path: Path) -> None:
    """DataError (:func:`unreadable`) when the regular file ``path`` is there but may not be read (mode
    000, another user's); anything else wrong with it is left to the reader that follows, which says it
    as its own kind of error. Opened, never read: a link or a device is not followed or touched."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return
        os.close(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise unreadable(path, exc) from None


def read_json(path: Path, what: str) -> Any:
    """The JSON in ``path`` (read bounded); DataError naming ``what`` it holds when unreadable."""
    try:
        return json.loads(read_record_text(path))
    except (OSError, ValueError, RecursionError) as exc:
        raise DataError(f"cannot read {what} {path}: {str(exc).splitlines()[0][:200]}") from None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _or_null(test: Any) -> Any:
    return lambda value: value is None or test(value)


def _stats(*keys: str) -> Any:
    return lambda value: isinstance(value, dict) and all(_numbers(value.get(key)) for key in keys)


LABELS_FIELDS = {"class_names": (_or_null(_texts), "a list of class names (strings)", False)}
MODEL_FIELDS = {
    "task": (lambda v: isinstance(v, str), "a task name", True),
    "num_classes": (_or_null(_whole), "a whole number or null", True),
    "target_dim": (_whole, "a whole number", True),
    "input_shape": (lambda v: isinstance(v, list) and all(_whole(d) for d in v), "a list of whole numbers", True),
    "input_dtype": (_or_null(lambda v: isinstance(v, str)), "a dtype name", False),
    "output_dim": (_whole, "a whole number", True),
    "loss": (lambda v: isinstance(v, str | dict), "a loss name or spec", True),
    "model": (lambda v: isinstance(v, dict) and isinstance(v.get("name"), str), "a model spec with a name", True),
    "eval_transform": (lambda v: isinstance(v, bool), "true or false", False),
    "normalize": (_or_null(_stats("mean", "std")), "null or lists of numbers 'mean' and 'std'", False),
    "text": (_or_null(lambda v: isinstance(v, dict)), "null or a tokenizer record", False),
}
PREPROCESSING_FIELDS = {
    "source": (_or_null(lambda v: isinstance(v, str)), "a data source name", False),
    "input_shape": (lambda v: isinstance(v, list) and all(_whole(d) for d in v), "a list of whole numbers", False),
    "numeric_columns": (_or_null(_texts), "a list of column names", False),
    "standardize": (lambda v: isinstance(v, bool), "true or false", False),
    "mean": (_or_null(_numbers), "a list of numbers", False),
    "scale": (_or_null(_numbers), "a list of numbers", False),
    "categorical_columns": (_or_null(_texts), "a list of column names", False),
    "categories": (_or_null(lambda v: isinstance(v, list) and all(_texts(c) for c in v)),
                   "a list of lists of categories", False),
    "target": (_or_null(_stats("mean", "scale")), "null or lists of numbers 'mean' and 'scale'", False),
}


def recorded_class_names(run: Path, count: int | None = None) -> list[str] | None:
    """The class names ``run``'s labels.json records (``{"class_names": [...]}``, or a bare list), as
    strings, when there are ``count`` of them (any number when None); None when the file is absent,
    unreadable or holds none. For display (the report, printed metrics): predict reads it checked."""
    try:
        recorded = json.loads(read_record_text(run / LABELS_RECORD))
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(recorded, dict):
        recorded = recorded.get("class_names")
    if isinstance(recorded, list) and (count is None or len(recorded) == count):
        return [str(name) for name in recorded]
    return None


def checked(record: Any, path: Path, fields: dict[str, tuple[Any, str, bool]]) -> dict[str, Any]:
    """``record`` (read from ``path``) when it is a JSON object whose ``fields`` hold what they must."""
    damaged = "the file was changed or damaged after training; restore it or retrain the run"
    if not isinstance(record, dict):
        raise DataError(f"{path} holds {type(record).__name__} {short_repr(record)}, not a JSON object; {damaged}")
    for key, (test, expected, required) in fields.items():
        if key not in record:
            if required:
                raise DataError(f"{path} has no '{key}'; {damaged}")
        elif not test(record[key]):
            raise DataError(f"{path}: '{key}' is {short_repr(record[key])}, not {expected}; {damaged}")
    return record


def consistent(path: Path, fitted: dict[str, Any]) -> dict[str, Any]:
    """Preprocessing whose lists agree: a statistic per numeric column, a category list per categorical one."""
    numeric = fitted.get("numeric_columns")
    if fitted.get("standardize"):
        mean, scale = fitted.get("mean"), fitted.get("scale")
        widths = {len(mean or []), len(scale or [])} | ({len(numeric)} if numeric is not None else set())
        if mean is None or scale is None or len(widths) != 1:
            raise DataError(f"{path}: 'mean' and 'scale' must give one number per numeric column "
                            f"({len(numeric) if numeric is not None else 'unnamed'}); got "
                            f"{short_repr(mean)} and {short_repr(scale)}; restore the file or retrain the run")
    columns, categories = fitted.get("categorical_columns") or [], fitted.get("categories") or []
    if len(columns) != len(categories):
        raise DataError(f"{path}: 'categories' must hold one list per categorical column ({len(columns)}); got "
                        f"{len(categories)}; restore the file or retrain the run")
    return fitted


def load_trained_config(run: Path, config_path: Path | None = None) -> Config:
    """The run's config (``config_path``, default ``run/config.yaml``) when its hash is the one run.json
    recorded for it (``resolved_config_hash``, the config the run trained with). A config.yaml changed
    after training (``val_fraction: 0.1`` made 0.3: another split, evaluated without a word) raises a
    DataError; a run older than the record, or without run.json, is not checked (a damaged run.json is
    refused where the model's digest is read)."""
    config_path = config_path or run / "config.yaml"
    config = load_config(config_path, follow_links=False)
    try:
        info = json.loads(read_record_text(run / "run.json"))
    except (OSError, ValueError, RecursionError):
        return config
    recorded = info.get("resolved_config_hash") if isinstance(info, dict) else None
    if isinstance(recorded, str) and config.hash() != recorded:
        raise DataError(f"{config_path} was changed after training (its config hash {config.hash()} is not the "
                        f"{recorded} recorded in {run / 'run.json'}): the model was trained with other settings; "
                        "restore the file, or train a new run with the new settings")
    return with_recorded_task(config, run)


def with_recorded_task(config: Config, run: Path) -> Config:
    """``config`` with ``data.task`` set to the task ``run`` trained on (model.json's, else labels.json's) when
    the config left it to be inferred: the data is rebuilt as the run read it, also where a later trainlab
    infers the task of the same targets otherwise ((N, 1) columns of whole numbers, once regression; one-hot
    columns, once multi-label). In memory only, after the hash check: config.yaml and its hash stay."""
    if config.data.task is not None:
        return config
    for name in (MODEL_RECORD, LABELS_RECORD):
        task = (read_record_object(run / name) or {}).get("task")  # absent, damaged, not an object: {}
        if task in DATA_TASKS:
            return config.model_copy(update={"data": config.data.model_copy(update={"task": task})})
    return config


def record_digests(run: Path) -> dict[str, str]:
    """SHA-256 of each record predict reads that ``run`` holds, for run.json's :data:`DIGESTS_KEY`."""
    return {name: hashlib.sha256((run / name).read_bytes()).hexdigest() for name in DIGESTED_RECORDS
            if (run / name).is_file()}


def check_record_digests(run: Path) -> None:
    """DataError when a record run.json vouches for is gone, changed or a symbolic link, or when run.json
    names a file that is none of :data:`DIGESTED_RECORDS` (``/etc/shadow``, ``../x``: a damaged or planted
    run.json must not make predict read, and its error tell about, any file outside the run folder); runs
    older than the digests (or without a readable run.json: refused where the model's digest is read)
    are not checked."""
    try:
        info = json.loads(read_record_text(run / "run.json"))
    except (OSError, ValueError, RecursionError):
        return
    digests = info.get(DIGESTS_KEY) if isinstance(info, dict) else None
    if not isinstance(digests, dict):
        return
    for name, digest in digests.items():
        if name not in DIGESTED_RECORDS:
            raise DataError(f"{run / 'run.json'}: {DIGESTS_KEY} names {short_repr(name)}, which is not a record of "
                            f"a run ({', '.join(DIGESTED_RECORDS)}); the file was damaged: restore it or retrain the run")
        path = run / name
        try:
            held = read_regular_file(path, MAX_RECORD_BYTES, follow_links=False)
        except FileNotFoundError:
            raise DataError(f"{path} is missing, though {run / 'run.json'} records it; restore it or retrain the run") \
                from None
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        if hashlib.sha256(held).hexdigest() != digest:
            raise DataError(f"{path} was changed after training (its SHA-256 is not the one {run / 'run.json'} "
                            "records): predictions would use other class names, scaling or model settings; "
                            "restore it or retrain the run")
