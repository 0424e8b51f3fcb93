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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from trainlab.bounded_read import read_regular_file
from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.metrics import default_metrics, is_scalar
from trainlab.notices import held_back, warn

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


def is_epoch_record(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` (a line of metrics.jsonl) is an epoch record.

    The rule: it has ``epoch``, and is neither a step record (``"scope": "step"``, whose ``epoch`` is
    fractional: a mid-epoch validation or a step logger's line) nor an event record (an ``"event"`` key).
    """
    return "epoch" in record and record.get("scope") != "step" and "event" not in record


@dataclass(frozen=True)
class MetricsLines:
    """A metrics.jsonl's text read line by line (:func:`parse_metrics`).

    ``damaged``: the 1-based numbers of the lines that are not a JSON object, left out of ``records`` and
    ``events``; ``cut_off``: the text ends inside its last line and that line is damaged (a truncated file).
    """

    records: list[dict[str, Any]]  # curve records (epoch and step records), in file order
    events: list[dict[str, Any]]  # records with an "event" key, in file order
    damaged: tuple[int, ...] = ()
    cut_off: bool = False


def parse_metrics(text: str) -> MetricsLines:
    """The records of a metrics.jsonl's text, and which lines are damaged.

    trainlab appends new records to metrics.jsonl in one fsynced write, and rewrites it whole and atomically
    (trainlab.atomic) otherwise (:func:`appended_metrics`): a kill mid-append can leave the last line cut off,
    which the next write replaces (a resume rewrites the file from its checkpoint). A line that is not a JSON
    object (cut off, a damaged byte, JSON nested too deeply to parse, a bare list) is left out, the rest is
    still worth reading, and the caller says so (:func:`damaged_lines_warning`). Blank lines are no records
    and no damage.
    """
    records: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    damaged: list[int] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            record = None
        if isinstance(record, dict):
            (events if "event" in record else records).append(record)
        else:
            damaged.append(number)
    cut_off = bool(damaged) and damaged[-1] == len(lines) and not text.endswith(("\n", "\r"))
    return MetricsLines(records, events, tuple(damaged), cut_off)


def damaged_lines_warning(path: str | os.PathLike[str], parsed: MetricsLines, left_out_of: str) -> str | None:
    """The warning's message (:func:`trainlab.notices.warn`) naming ``path`` and its damaged lines (:func:`parse_metrics`), left out of
    ``left_out_of`` (what the caller computes from the records); None when no line is damaged."""
    lines = parsed.damaged
    if not lines:
        return None
    shown = ", ".join(str(n) for n in lines[:5]) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
    what = f"line {shown} is not a JSON record" if len(lines) == 1 else f"lines {shown} are not JSON records"
    if parsed.cut_off:
        why = "the file ends inside its last line: it was cut off" + (", and damaged before" if len(lines) > 1 else "")
    else:
        why = "the file was damaged after trainlab wrote it"
    return f"{path}: {what} ({why}); left out of {left_out_of}"


def read_metrics_file(path: str | os.PathLike[str], left_out_of: str | None) -> MetricsLines:
    """``path`` (a metrics.jsonl) read as :func:`parse_metrics` reads it, warning
    :func:`damaged_lines_warning` (:func:`trainlab.notices.warn`) when a line is damaged (``left_out_of`` None: no warning, for a
    caller that has said so already). An unreadable file raises as :func:`read_record_text` does
    (FileNotFoundError, OSError, ValueError): what that means is the caller's to say."""
    parsed = parse_metrics(read_record_text(path))
    warning = damaged_lines_warning(path, parsed, left_out_of) if left_out_of is not None else None
    if warning:
        warn(warning)
    return parsed


class EpochRecord(TypedDict):
    epoch: int  # epochs completed, 1-based
    step: int  # optimizer steps completed
    lr: float  # the strategy's LR at the epoch's end (the head's under layer-wise decay: engine.step.recorded_group)
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
    # epoch of the best monitored validation: an int for an epoch's, fractional (its step record's epoch,
    # e.g. 1.5) for a mid-epoch one, which early stopping counts with eval_every_n_steps
    best_epoch: float | None
    # the epoch whose weights early stopping's restore_best put back into model.safetensors; None: the weights
    # training ended with (absent in summaries before 2026-12-07)
    restored_epoch: NotRequired[float | None]
    stopped_early: bool
    stop_reason: str | None
    train_time_s: float
    samples_per_s: float | None
    val: dict[str, Any]  # metric -> value, no prefix ("loss", "accuracy", ...)
    test: dict[str, Any]
    # the same final weights on the training split, evaluated as val/test are (eval mode, no augmentation); absent
    # with output.evaluate_train: false and in summaries before 2026-12-05
    train: NotRequired[dict[str, Any]]
    evaluation: dict[str, Any]  # {"tta": None | {flip, translate, when, views}}: how val/test/train were evaluated
    rows: NotRequired[dict[str, int]]  # {"train", "val", "test"}: rows in each split (summaries since 2026-12-05)
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


_JSON_SCALARS = (str, int, float, bool, type(None))


def plain_value(value: Any) -> Any:
    """``value`` as JSON holds it: a str, number, bool or None as it is; a NumPy scalar, 0-d array or 0-d
    tensor (anything with ``ndim == 0`` and ``item()``: a metric computed in float32, a loss) as the Python
    value ``item()`` gives (so NumPy's float64, a ``float`` subclass, becomes a plain float); another
    subclass of int, float or str (an IntEnum) as that type; lists, tuples and dicts (keys as ``json``
    takes them) walked. Anything else raises TypeError saying what it is: a set, an array or tensor of
    several values, an object."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return value
    if isinstance(value, dict):
        for key in value:
            if type(key) not in _JSON_SCALARS:
                raise TypeError(f"a dict with the key {short_repr(key)} (a {type(key).__name__})")
        return {key: plain_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(item) for item in value]
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        item = value.item()  # NumPy scalars and 0-d arrays, 0-d tensors (on any device)
        if type(item) in _JSON_SCALARS:
            return item
    else:
        for plain in (int, float, str):  # bool cannot be subclassed
            if isinstance(value, plain):
                return plain(value)
    module = kind.__module__.split(".")[0]
    shape = getattr(value, "shape", None)
    shaped = f" shaped {tuple(shape)}" if isinstance(shape, tuple) else ""  # torch.Size is a tuple
    named = f"{'' if module == 'builtins' else module + '.'}{kind.__name__}"
    raise TypeError(f"{'an' if named[0].lower() in 'aeiou' else 'a'} {named}{shaped}")


def plain_record(record: dict[str, Any], where: str) -> None:
    """Make ``record``'s values JSON values in place (:func:`plain_value`), as every record written must be.
    A key that is not a str, or a value that cannot be made one, is taken out of the record (what is left
    stays writable, so the records written so far are kept) and is a ConfigError naming the key, what it
    holds and ``where`` it came from (``callback 'X' (on_epoch_end)``)."""
    for key, value in record.items():
        if type(value) in _JSON_SCALARS and type(key) is str:
            continue  # the loop's own values: nothing to do
        try:
            if type(key) is not str:
                raise TypeError(f"a {type(key).__name__} as its key")
            record[key] = plain_value(value)
        except TypeError as exc:
            del record[key]  # the loop ends here (the ConfigError): no iteration over the changed dict
            raise ConfigError(f"record key {short_repr(key)} holds {exc}, put there by {where}; a record's keys "
                              "are strings and its values numbers, strings, booleans or None (or lists of "
                              "them): give a number, e.g. float(value)") from None


FIT_STRATEGY = "strategy.yaml"  # the strategy fit trained with: only a fit's folder holds one
FIT_METRICS = "metrics.jsonl"
FIT_RECORDS = (FIT_METRICS, "summary.json", FIT_STRATEGY)
"""What ``trainlab.fit(out=...)`` writes besides its model (``model.safetensors``): the records that
``trainlab plot`` and the report's fit reader look for."""
FIT_MODEL = "model.safetensors"


def metrics_file_records(history: list[dict[str, Any]], events: list[dict[str, Any]],
                         step_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines of a metrics.jsonl: step, epoch and event records ordered by ``step`` (at one step: step
    records, then the epoch record, then events; each kind in the order it came), values made JSON values
    (:func:`plain_record`: a NumPy scalar or 0-d tensor a callback added becomes a number; a value JSON
    cannot hold is a ConfigError naming its key), non-finite values null."""
    ordered = sorted((_file_order(record, source, position), record)
                     for source, records in enumerate((step_records, history, events))
                     for position, record in enumerate(records))
    return [metrics_file_record(record) for _, record in ordered]


def metrics_file_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as its line of metrics.jsonl holds it (:func:`metrics_file_records`); the caller's record
    stays as it is."""
    plain = dict(record)
    plain_record(plain, f"a callback (the record of step {short_repr(record.get('step'))})")
    return json_safe(plain)


def metrics_file_line(record: dict[str, Any]) -> str:
    """``record``'s line of metrics.jsonl, its newline included (as :func:`trainlab.atomic.write_jsonl`)."""
    return json.dumps(metrics_file_record(record)) + "\n"


def _file_order(record: dict[str, Any], source: int, position: int) -> tuple[Any, int, int, int]:
    """Where ``record`` (``position`` in list ``source``) sorts among metrics.jsonl's lines: by step, then step
    record < epoch record < event at one step, then the list (step records, history, events) and the position
    in it; total, so no two keys tie (the records themselves are never compared)."""
    kind = 2 if "event" in record else 0 if record.get("scope") == "step" else 1
    return record.get("step", 0), kind, source, position


@dataclass(frozen=True)
class WrittenMetrics:
    """What a metrics.jsonl written from a run's lists holds, as far as appending to it must know
    (:func:`appended_metrics`): the lists (``step_records, history, events``, by identity), how many records of
    each were written, each list's last written record's line (a value added to it afterwards shows), where
    the file's last line sorts, and the file's size in bytes after the write."""

    lists: tuple[list[dict[str, Any]], ...]
    counts: tuple[int, ...]
    last_lines: tuple[str | None, ...]
    last_order: tuple[Any, ...] | None
    size: int

    @classmethod
    def of(cls, step_records: list[dict[str, Any]], history: list[dict[str, Any]], events: list[dict[str, Any]],
           size: int) -> WrittenMetrics:
        """The extent of a file just written whole from these lists (``size`` bytes)."""
        lists = (step_records, history, events)
        orders = [_file_order(records[i], source, i) for source, records in enumerate(lists)
                  for i in range(len(records))]
        return cls(lists, tuple(len(r) for r in lists),
                   tuple(metrics_file_line(r[-1]) if r else None for r in lists), max(orders, default=None), size)


def appended_metrics(step_records: list[dict[str, Any]], history: list[dict[str, Any]],
                     events: list[dict[str, Any]], written: WrittenMetrics
                     ) -> tuple[str, WrittenMetrics] | None:
    """The text to append to the metrics.jsonl ``written`` describes so that it holds what
    :func:`metrics_file_records` of these lists gives, and the extent after (its size still the old one: the
    caller adds the bytes it appended); None when appending cannot give that and the file must be rewritten:
    other lists (a rollback or resume restored new ones), fewer records in one, a list's last written record
    changed (its line is not the one written), or a new record that sorts before the file's last line. A change
    to an earlier written record is not seen here (the run's end rewrites the file whole).

    O(new records): the records already written are not looked at again, but for each list's last one."""
    lists = (step_records, history, events)
    if any(now is not old or len(now) < count for now, old, count in zip(lists, written.lists, written.counts,
                                                                          strict=True)):
        return None
    for records, count, line in zip(lists, written.counts, written.last_lines, strict=True):
        if count and metrics_file_line(records[count - 1]) != line:
            return None
    new = sorted((_file_order(records[i], source, i), records[i]) for source, (records, count)
                 in enumerate(zip(lists, written.counts, strict=True)) for i in range(count, len(records)))
    if not new:
        return "", written
    if written.last_order is not None and new[0][0] < written.last_order:
        return None
    lines = [metrics_file_line(record) for _, record in new]
    last_lines = tuple(metrics_file_line(records[-1]) if len(records) > count else line for records, count, line
                       in zip(lists, written.counts, written.last_lines, strict=True))
    extent = WrittenMetrics(lists, tuple(len(r) for r in lists), last_lines, new[-1][0], written.size)
    return "".join(lines), extent


def safe_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as valid JSON; non-finite values become null, listed under ``non_finite``."""
    found: list[str] = []
    safe = json_safe(summary, "", found)
    if found:
        safe["non_finite"] = found
    return safe


_JSON_KEYS = (str, int, float, bool, type(None))  # the keys json.dumps takes, written as strings


def _is_number_list(value: Any) -> bool:
    """A non-empty list (or tuple) of numbers, booleans or nulls: a confusion matrix's row, a per-class list."""
    return bool(value) and all(item is None or type(item) in (int, float, bool) for item in value)


def _key_text(key: Any) -> str:
    """``key`` as ``json.dumps`` writes a dict's key: a string, a number or a bool as its JSON text in quotes."""
    if not isinstance(key, _JSON_KEYS):
        raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
    return json.dumps(key if isinstance(key, str) else json.dumps(key))


def record_json(value: Any, level: int = 0) -> str:
    """``json.dumps(value, indent=2)``, but each list of numbers (a row of a confusion matrix, a per-class
    list) on one line: a 1000-class confusion matrix is 1000 lines of summary.json, not 1,000,000.
    ``json.loads`` of it equals ``json.loads`` of ``json.dumps(value)``; objects and other lists keep one
    item a line. ``level``: the indentation (2 spaces a level) of the line ``value`` starts on."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, dict) and value:
        items = [f"{inner}{_key_text(key)}: {record_json(item, level + 1)}" for key, item in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list | tuple) and value and not _is_number_list(value):
        items = [f"{inner}{record_json(item, level + 1)}" for item in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)  # a scalar, {}, [], or a list of numbers on one line


def record_json_text(value: Any) -> str:
    """The text of a record file such as summary.json: :func:`record_json` and a final newline."""
    return record_json(value) + "\n"


JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "a boolean", type(None): "null"}


def finished_summary_damage(path: str | os.PathLike[str]) -> str | None:
    """What is wrong with ``path``, the summary.json of a run whose run.json says it finished, worded to
    follow the file's name (``is missing``, ``is not valid JSON (...)``); None when it has the shape of a
    :class:`Summary`: an object with status ``finished``, ``val`` and ``test`` objects, and each of
    :data:`SUMMARY_NUMBERS` it holds a number or null.

    A run writes summary.json atomically before run.json's ``finished`` (trainlab.experiment), so for a
    finished run anything else is damage after the run (a truncated copy, an edit), never a kill.
    """
    try:
        record = json.loads(read_record_text(path))
    except FileNotFoundError:
        return "is missing"
    except json.JSONDecodeError as exc:
        what = exc.msg.removesuffix(" at")  # json's "Invalid control character at" says its own "at"
        return f"is not valid JSON ({what} at line {exc.lineno} column {exc.colno}: cut off or damaged)"
    except (OSError, ValueError) as exc:  # a link, a FIFO, over the size limit, unreadable
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    except RecursionError:
        return "is JSON nested too deeply to read"
    if not isinstance(record, dict):
        return f"holds {JSON_TYPES.get(type(record), type(record).__name__)}, not a JSON object"
    if record.get("status") != "finished":
        return f"has status {short_repr(record.get('status'))}, not 'finished' as run.json says"
    for key in ("val", "test"):
        if key not in record:
            return f"has no '{key}' metrics"
        if not isinstance(record[key], dict):
            return f"has '{key}' as {JSON_TYPES.get(type(record[key]), 'another type')}, not an object of metrics"
    for key in SUMMARY_NUMBERS:
        value = record.get(key)
        if key in record and value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"has '{key}' as {JSON_TYPES.get(type(value), 'another type')}, not a number"
    return None


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
    from trainlab.losses import registered_loss

    names = config.metrics or default_metrics(task or "", registered_loss(config.strategy.loss.name))
    scalars = ["loss", *(n for n in names if n != "loss" and is_scalar(n))]  # a user metric is one (is_scalar)
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
    from trainlab.metric_hints import unrecorded_hint

    with held_back():  # read ahead of the run's loading, which says the data's warnings itself
        val_rows = count_splits(config.data).val
        keys = None if val_rows == 0 or key == "val_loss" else validation_keys(config)
    if val_rows == 0:
        raise ConfigError(f"{flag} '{key}' needs validation records, but {where} has no validation split: set "
                          "data.val_fraction > 0 (or give the source a val split)")
    if keys is None:  # val_loss: every run with a validation split records it
        return
    if key not in keys:
        hint = unrecorded_hint(key, keys, loss=config.strategy.loss.name)  # triplet: no metric can be added
        raise ConfigError(f"{flag} '{key}' is not recorded by {where}{hint} "
                          f"(its validation metrics: {', '.join(keys)})")
