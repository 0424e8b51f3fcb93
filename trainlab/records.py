"""The run records' schema: what metrics.jsonl and summary.json hold (documented in docs/records.md).

Comparison, reports and tuning read these, so their keys are a contract:

- an **epoch record** (one per validation at an epoch's end), an **event record**
  (``"event"`` key: divergence, rollback, checkpoint_failed, parameters, ...) and
  later **step records**, one JSON object per line of ``metrics.jsonl``;
- the **summary** (``summary.json``) written once the run ends.

Every value written is valid JSON: a non-finite float becomes ``null`` (and the
summary says why in ``non_finite``), never ``NaN``/``Infinity``.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from trainlab.bounded_read import read_regular_file
from trainlab.errors import ConfigError
from trainlab.metrics import default_metrics, is_scalar

if TYPE_CHECKING:
    from trainlab.config import Config


MAX_RECORD_BYTES = 256 * 2**20  # a run's metrics.jsonl of a million epochs is far below this


def read_record_text(path: str | os.PathLike[str], limit: int = MAX_RECORD_BYTES) -> str:
    """The text of a run-folder record file (run.json, summary.json, metrics.jsonl, config.yaml).

    Bounded as a run folder may be someone else's: a symbolic link (trainlab writes its records in place;
    a link could point at any file of yours, e.g. a token), a FIFO or a folder is refused (ValueError:
    :class:`~trainlab.bounded_read.LinkError`, ``NotRegularFileError``) instead of read, a file over
    ``limit`` bytes too; bytes that are not UTF-8 (a damaged file) become U+FFFD, so a JSON line holding
    them fails to parse like any torn line. Raises OSError when the file cannot be read.
    """
    return read_regular_file(path, limit, follow_links=False).decode("utf-8", errors="replace")


def read_record_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object of a run-folder record (run.json, summary.json), read as :func:`read_record_text`
    reads it; None when it is missing, unreadable, damaged or not an object."""
    try:
        record = json.loads(read_record_text(path))
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def metrics_records(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(curve records, event records) of a metrics.jsonl's text, in file order. A line that is not a JSON
    object (the torn last line of a killed writer, a damaged byte, JSON nested too deeply to parse) is
    skipped: the rest is still worth reading."""
    records: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            (events if "event" in record else records).append(record)
    return records, events


class EpochRecord(TypedDict):
    epoch: int  # epochs completed, 1-based
    step: int  # optimizer steps completed
    lr: float  # the first param group's LR at the epoch's end
    train_loss: float  # mean data loss over the epoch's samples (penalties apart)
    train_penalty: NotRequired[float]  # mean l1 * sum|w| + l2 * sum w^2, when set
    elapsed_s: float  # training wall time so far, summed over resumes
    # plus val_loss and val_<metric> for every configured metric


class EventRecord(TypedDict):
    event: str  # divergence | checkpoint_failed | parameters | ...
    step: int


class Summary(TypedDict):
    name: str
    status: str  # finished | diverged
    seed: int
    config_hash: str  # of the config as given (before lr: auto and loss: auto were resolved)
    epochs_run: int
    steps: int
    best_epoch: int | None
    stopped_early: bool
    stop_reason: str | None
    train_time_s: float
    samples_per_s: float | None
    val: dict[str, Any]  # metric -> value, no prefix ("loss", "accuracy", ...)
    test: dict[str, Any]
    evaluation: dict[str, Any]  # {"tta": None | {flip, translate, when, views}}: how val/test were evaluated
    loss: str
    optimizer: str
    mode: str  # batch / mini-batch / stochastic gradient descent
    events: list[dict[str, Any]]
    notes: dict[str, Any]
    environment: dict[str, Any]
    trainlab: str


def json_safe(value: Any, path: str = "", found: list[str] | None = None) -> Any:
    """``value`` with every non-finite float replaced by None (their paths appended to ``found``)."""
    if isinstance(value, float) and not math.isfinite(value):
        if found is not None:
            found.append(f"{path}={value}")
        return None
    if isinstance(value, dict):
        return {k: json_safe(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def safe_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as valid JSON; non-finite values become null, listed under ``non_finite``."""
    found: list[str] = []
    safe = json_safe(summary, "", found)
    if found:
        safe["non_finite"] = found
    return safe


def is_finite_number(value: Any) -> bool:
    """A record's value that is a number (not a bool) and finite: NaN and inf are written as null, and
    a damaged or edited record may hold anything."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def best_epoch(history: list[dict[str, Any]], monitor: str, mode: str) -> int | None:
    """The epoch whose ``monitor`` was best (first on ties; NaN never best), or None."""
    best, epoch = None, None
    for record in history:
        value = record.get(monitor)
        if not isinstance(value, int | float) or math.isnan(value):
            continue
        if best is None or (value < best if mode == "min" else value > best):
            best, epoch = value, record["epoch"]
    return epoch


# --------------------------------------------------------------------------- which keys a run records

# the summary's own numbers, recorded by every finished run (``summary[key]``)
SUMMARY_NUMBERS = ("train_time_s", "samples_per_s", "epochs_run", "steps", "best_epoch")


def data_task(config: Config) -> str:
    """``config.data.task``, or (left out) the task inferred from the data, which is read for it."""
    if config.data.task:
        return config.data.task
    from trainlab.data import load_dataset

    return load_dataset(config.data, config.seed).task


class DataTasks:
    """:func:`data_task` per data section, each section's data read at most once."""

    def __init__(self) -> None:
        self._tasks: dict[str, str] = {}

    def __call__(self, config: Config) -> str:
        if config.data.task:
            return config.data.task
        section = config.data.model_dump_json()
        if section not in self._tasks:
            self._tasks[section] = data_task(config)
        return self._tasks[section]


def recorded_keys(config: Config, task: str | None) -> list[str]:
    """The numeric keys every finished run of ``config`` records, in the flat form ``test_accuracy``:
    ``test_``/``val_`` + ``loss`` and each scalar metric of ``config.metrics`` (none listed: the
    defaults of ``task``, the data's task, which only then is needed; see :func:`data_task`), then
    :data:`SUMMARY_NUMBERS`. The ``val_`` ones are also in every epoch record. An unknown metric
    name is trainlab.metrics' ConfigError.
    """
    from trainlab.losses import LOSSES

    loss = config.strategy.loss.name
    names = config.metrics or default_metrics(task or "", LOSSES.get(loss) if loss in LOSSES else None)
    scalars = ["loss", *(n for n in names if n != "loss" and (":" in n or is_scalar(n)))]  # ':' a user metric
    return [f"{split}_{name}" for split in ("test", "val") for name in scalars] + list(SUMMARY_NUMBERS)


def validation_keys(config: Config) -> list[str]:
    """The ``val_`` keys of :func:`recorded_keys`: what every epoch record of ``config``'s runs holds
    when they have a validation split (:func:`check_validation_key` checks that too). With neither
    ``metrics`` nor ``data.task`` set, the data is read for its task."""
    task = None if config.metrics else data_task(config)
    return [key for key in recorded_keys(config, task) if key.startswith("val_")]


def check_validation_key(config: Config, key: str, flag: str, where: str) -> None:
    """One ConfigError unless ``key`` is in every epoch record of ``config``'s runs (:func:`validation_keys`):
    ``flag`` (``--target``, ``--metric``) and ``where`` (``this run``, a file name) word the message.
    A run without a validation split records none (its split sizes are counted, not loaded)."""
    from trainlab.data.counting import count_splits
    from trainlab.registry import did_you_mean

    if count_splits(config.data).val == 0:
        raise ConfigError(f"{flag} '{key}' needs validation records, but {where} has no validation split: set "
                          "data.val_fraction > 0 (or give the source a val split)")
    if key == "val_loss":
        return
    keys = validation_keys(config)
    if key not in keys:
        raise ConfigError(f"{flag} '{key}' is not recorded by {where}{did_you_mean(key, keys)} "
                          f"(its validation metrics: {', '.join(keys)})")
