"""Loggers as callbacks: the run's records also go to TensorBoard and to a CSV file.

``output.loggers: [tensorboard, csv]`` adds, per name, a :class:`RecordLogger` from
:data:`LOGGERS` (built by :func:`logger_callbacks`):

- ``tensorboard``: ``<run>/tensorboard/`` event files (``torch.utils.tensorboard.SummaryWriter``):
  every scalar of each epoch record as tag ``<key>`` at x = the record's ``step``; each step record
  (a record with ``"step"`` and no ``"epoch"``) as tag ``step/<key>``; the resolved config as text
  (tag ``config``) at the start, and the hyperparameters (flattened config keys) with the last
  epoch's scalars as ``hparam/<key>`` at the end (the HPARAMS tab; not when a signal stopped the run:
  its resumed end writes them, so a run is one session). A tag has one value per step: a key that two
  records of one step both hold (``epoch`` and ``lr`` of the step logger's record and of a mid-epoch
  validation's) is written once (after a divergence rollback the replayed steps are written again, so a
  tag holds two values at each of them). A resumed run writes a new event file whose purge marker (TensorBoard's
  ``SessionLog.START``, ``purge_step``) drops every event from the checkpoint's step on, and writes the
  checkpoint's records of that step again: the resumed run then writes each later record (and a validation
  the checkpoint still owes at its own step) once, so no step is drawn twice.
- ``csv``: ``<run>/metrics.csv``, one row per epoch record, one column per key (the union, in
  order of first appearance); each epoch's row appended, the file rewritten whole (atomically) from the
  run's history only when it must (:class:`CsvLogger`), so a resumed run's file holds every epoch. A non-finite number is written as Python writes it (``nan``,
  ``inf``: what ``float()`` and pandas read); lists (per-class metrics) as JSON, where a non-finite value
  is ``null``, as in metrics.jsonl.

MLflow is not included: even ``mlflow-skinny`` 3.17 installs 23 further packages (fastapi, uvicorn,
databricks-sdk, opentelemetry, cryptography, ...), too heavy for a logger; the config refuses it.

A logger never loses the run: any exception inside one (a full disk, a broken backend) is
reported once as a warning line, and that logger disables itself; training goes on.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainlab.atomic import append_bytes, appended_size, write_bytes
from trainlab.callbacks.base import Callback, TrainerView
from trainlab.errors import ConfigError
from trainlab.notices import warn as notices_warn
from trainlab.records import is_epoch_record, json_safe

Warn = Callable[[str], None]


def is_scalar_value(value: Any) -> bool:
    """A finite-or-not real number (not a bool, not a list): what a scalar chart can draw."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and None become their JSON text (hparams take scalars)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


class RecordLogger(Callback):
    """Base of the loggers: sends records somewhere; a failure warns once and disables the logger.

    Subclasses override :meth:`open`, :meth:`write_epoch`, :meth:`write_step` and :meth:`close`.
    Epoch records arrive through ``on_epoch_end``; step records through ``on_log`` (the loop's hook
    for records logged between epochs) or :meth:`log`. ``warn`` gets the failure's message (default
    :func:`trainlab.notices.warn`, which prefixes ``warning:``).
    """

    order = 95  # after the recorder (80) and the checkpoints (90): a logger only reads

    def __init__(self, run_dir: str | Path, config: Mapping[str, Any] | None = None, warn: Warn = notices_warn):
        self.run_dir = Path(run_dir)
        self.config = dict(config or {})
        self.warn = warn
        self.disabled = False
        self._opened = False

    # -- what a backend implements
    def open(self, view: TrainerView) -> None: ...
    def write_epoch(self, view: TrainerView | None, record: dict[str, Any]) -> None: ...
    def write_step(self, record: dict[str, Any]) -> None: ...
    def close(self, view: TrainerView) -> None: ...

    # -- the guard every hook goes through
    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        if self.disabled:
            return
        try:
            action(*args)
        except Exception as exc:  # noqa: BLE001 -- a logger must never end the run
            self.disabled = True
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            self.warn(f"logger '{self.name or type(self).__name__}' failed and is disabled for the rest "
                      f"of the run ({type(exc).__name__}: {first}); training goes on")
            try:
                self.close(None)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 -- already reported
                pass

    def _ensure_open(self, view: TrainerView | None) -> None:
        if not self._opened:
            self._opened = True
            self.open(view)  # type: ignore[arg-type]

    def log(self, record: Mapping[str, Any], view: TrainerView | None = None) -> None:
        """Send one record: a step record (``scope: step``, whose ``epoch`` is fractional, or ``step`` without
        ``epoch``), else an epoch record (has ``epoch``); event records (``event``) are not logged."""
        record = dict(record)
        if "event" in record:
            return

        def send() -> None:
            self._ensure_open(view)
            if record.get("scope") == "step" or ("step" in record and "epoch" not in record):
                self.write_step(record)
            elif is_epoch_record(record):  # no event (returned above), not a step record
                self.write_epoch(view, record)

        self._guarded(send)

    # -- the loop's hooks
    def on_train_start(self, view: TrainerView) -> None:
        self._guarded(self._ensure_open, view)

    def on_log(self, view: TrainerView, record: dict[str, Any]) -> None:
        self.log(record, view)

    def on_epoch_end(self, view: TrainerView, record: dict[str, Any]) -> None:
        self.log(record, view)

    def on_train_end(self, view: TrainerView) -> None:
        if self._opened:
            self._guarded(self.close, view)


class TensorBoardLogger(RecordLogger):
    """Scalars, config text and hparams into ``<run>/tensorboard`` (see the module docstring)."""

    name = "logger:tensorboard"
    folder = "tensorboard"

    def __init__(self, run_dir: str | Path, config: Mapping[str, Any] | None = None, warn: Warn = notices_warn):
        super().__init__(run_dir, config, warn)
        self.writer: Any = None
        self._last_epoch: dict[str, Any] = {}
        self._written_step: int | None = None  # the step of the values in _written
        self._written: dict[str, float] = {}  # tag -> value written at _written_step

    def open(self, view: TrainerView | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        resumed_at = view.state.step if view is not None else 0
        if resumed_at and view.state.history:  # a segment that logs no epoch still ends the run's session
            self._last_epoch = dict(view.state.history[-1])
        # a resumed run drops what was logged from its checkpoint's step on (steps >= resumed_at), the records
        # of that step included: the interrupted run may have logged a mid-epoch validation the checkpoint still
        # owes (it runs after its step's checkpoint), which the resumed run makes and logs again
        if resumed_at:
            wait_for_a_later_event_file(self.run_dir / self.folder)
        self.writer = SummaryWriter(log_dir=str(self.run_dir / self.folder),
                                    purge_step=resumed_at if resumed_at else None)
        if resumed_at:
            self._rewrite_step(view.state, resumed_at)  # type: ignore[union-attr]
        if self.config and not resumed_at:
            text = json.dumps(self.config, indent=2, default=str)
            self.writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)  # indented: a code block

    def _rewrite_step(self, state: Any, step: int) -> None:
        """Write again the records of ``step`` that the checkpoint holds (the purge dropped them), in the order
        the run logged them: its step records, then its epoch record."""
        for record in getattr(state, "step_records", ()):
            if record.get("step") == step:
                self.write_step(record)
        for record in state.history:
            if record.get("step") == step and is_epoch_record(record):
                self.write_epoch(None, record)

    def _scalar(self, tag: str, value: float, step: int) -> None:
        """``add_scalar``, once per tag and step: a value the tag already holds at ``step`` is not written again
        (a step record and a mid-epoch validation of one step both carry ``epoch`` and ``lr``)."""
        if step != self._written_step:
            self._written_step, self._written = step, {}
        previous = self._written.get(tag)
        if previous is not None and (previous == value or math.isnan(previous) and math.isnan(value)):
            return
        self._written[tag] = value
        self.writer.add_scalar(tag, value, step)

    def write_epoch(self, view: TrainerView | None, record: dict[str, Any]) -> None:
        x = int(record.get("step", record["epoch"]))
        for key, value in record.items():
            if key not in ("epoch", "step") and is_scalar_value(value):
                self._scalar(key, float(value), x)
        self._scalar("epoch", float(record["epoch"]), x)
        self._last_epoch = record

    def write_step(self, record: dict[str, Any]) -> None:
        x = int(record["step"])
        for key, value in record.items():
            if key != "step" and is_scalar_value(value):
                self._scalar(f"step/{key}", float(value), x)

    def close(self, view: TrainerView | None) -> None:
        if self.writer is None:
            return
        writer, self.writer = self.writer, None
        try:
            # a segment stopped by a signal is continued by `resume`, whose close writes them: one session per run
            if view is not None and self.config and self._last_epoch and view.control.interrupted_by is None:
                from torch.utils.tensorboard.summary import hparams

                metrics = {f"hparam/{k}": float(v) for k, v in self._last_epoch.items()
                           if k not in ("epoch", "step") and is_scalar_value(v)}
                experiment, start, end = hparams(flatten(self.config), metrics)
                step = int(self._last_epoch.get("step", 0))
                for summary in (experiment, start, end):  # add_hparams would write them into a sub-folder
                    writer.file_writer.add_summary(summary, step)
                for key, value in metrics.items():
                    writer.add_scalar(key, value, step)
        finally:
            writer.close()


def wait_for_a_later_event_file(folder: Path, clock: Callable[[], float] = time.time,
                                sleep: Callable[[float], None] = time.sleep) -> None:
    """Wait (at most about a second) until an event file made now sorts after those in ``folder``.

    TensorBoard reads a folder's event files in name order, ``events.out.tfevents.<unix seconds>.<host>.<pid>.<n>``:
    a resumed run's file made in the same second as the interrupted run's (a run killed in its first second, a
    resume in the same process) could sort before it by pid or counter (``.10`` sorts before ``.9``), and its
    purge marker would then come before the events it is to drop."""
    seconds = [int(part) for path in folder.glob("events.out.tfevents.*")
               if (part := path.name.split(".")[3]).isdigit()]
    newest = max(seconds, default=None)
    while newest is not None and int(clock()) == newest:
        sleep(0.05)


class CsvLogger(RecordLogger):
    """``<run>/metrics.csv``: the epoch records of the run's history, one row each.

    Each epoch appends its new rows (:func:`~trainlab.atomic.append_bytes`: one write, fsynced), so an epoch
    costs the same at epoch 5,000 as at epoch 5. The file is rewritten whole (atomically, from the history)
    only when appending would not give the file the history holds: the first write of a process (a resumed
    run's file may hold rows past its checkpoint, or a row cut off by a kill), a new column, a history that is
    not the list last written (a divergence rollback or a resume restored it), a change to the last row
    written, a record written that the history does not (yet) hold, a file whose size is not the one last
    written (a file changed by someone else), or an append that failed (a full disk: the append is cut back,
    :func:`~trainlab.atomic.append_bytes`, and the whole file written instead). A whole write that fails too
    warns once and is tried again at the next epoch: a full disk never turns the logger off. A change a
    callback makes to a row before the last one written reaches the file at the run's end, which rewrites it
    whole once (:meth:`close`).
    """

    name = "logger:csv"
    file = "metrics.csv"

    def __init__(self, run_dir: str | Path, config: Mapping[str, Any] | None = None, warn: Warn = notices_warn):
        super().__init__(run_dir, config, warn)
        self._written: CsvExtent | None = None  # what the file holds, None: rewrite it at the next epoch
        self._failing = False  # the last write failed (warned once until one succeeds)

    def write_epoch(self, view: TrainerView | None, record: dict[str, Any]) -> None:
        history = view.state.history if view is not None else [record]
        written, self._written = self._written, None  # a write that fails leaves the file to be rewritten
        path = self.run_dir / self.file
        rows = written.new_rows(history, path) if written is not None else None
        if rows is not None and not rows:
            self._written = written
            return
        if rows is not None:
            try:
                size = append_bytes(path, csv_rows_text(rows, written.columns).encode())
            except OSError:
                pass  # cut back to the rows before (append_bytes): the file is rewritten whole below
            else:
                self._written = written.extended(history, rows, size)
                return
        records = [r for r in history if is_epoch_record(r)]
        complete = bool(records) and (records[-1] is record or records[-1] == record)
        if not complete:
            records.append(record)  # a record not (yet) in the history: write it too, and rewrite next time
        text = csv_text(records).encode()
        if not self._write_whole(text):
            return  # the next epoch (or the run's end) writes the whole file again
        if complete and view is not None:  # without a view each record is a file of its own
            self._written = CsvExtent.of(history, records, len(text))

    def _write_whole(self, text: bytes, last: bool = False) -> bool:
        """The file replaced by ``text`` atomically; a write that fails (a full disk) warns once for a run of
        failures and returns False, the logger left on: the records are in the history, and a later write that
        succeeds holds them all. ``last``: the run's end, after which nothing writes the file again: a failure
        then says so, whether or not it was warned of before."""
        try:
            write_bytes(self.run_dir / self.file, text)
        except OSError as exc:
            where = exc.filename or self.file
            if last:
                self.warn(f"{where} not written at the run's end: {exc.strerror or exc}; it may lack the last "
                          "epochs' rows, which metrics.jsonl holds")
            elif not self._failing:
                self.warn(f"{where} not written: {exc.strerror or exc}; training continues and the rows are "
                          "written at the next epoch or the run's end, once there is room")
            self._failing = True
            return False
        self._failing = False
        return True

    def close(self, view: TrainerView | None) -> None:
        """At the run's end (a view: not after a failure) the file is written whole from the history once, so a
        value a callback changed in a row before the last one written is in it (appends check the last), and
        rows a full disk kept out are in it when there is room again (if there is none, a warning says the file
        may lack them)."""
        if view is None:
            return
        records = [record for record in view.state.history if is_epoch_record(record)]
        if records:
            self._write_whole(csv_text(records).encode(), last=True)


@dataclass
class CsvExtent:
    """What :class:`CsvLogger` last wrote: the history list (by identity), how many of its records were read,
    the columns, the last row's record as it was written (a shallow copy: a key a callback adds afterwards
    shows) and the file's size after the write."""

    history: list[dict[str, Any]]
    read: int
    columns: list[str]
    last_row: dict[str, Any] | None
    size: int

    @classmethod
    def of(cls, history: list[dict[str, Any]], rows: list[dict[str, Any]], size: int) -> CsvExtent:
        columns: dict[str, None] = {}
        for record in rows:
            columns.update(dict.fromkeys(record))
        return cls(history, len(history), list(columns), dict(rows[-1]) if rows else None, size)

    def new_rows(self, history: list[dict[str, Any]], path: Path) -> list[dict[str, Any]] | None:
        """The rows to append for ``history`` (possibly none), or None when the file must be rewritten whole."""
        if history is not self.history or len(history) < self.read or appended_size(path) != self.size:
            return None
        if self.last_row is not None:
            last = next((history[i] for i in range(self.read - 1, -1, -1) if is_epoch_record(history[i])), None)
            if last is None or last != self.last_row:
                return None  # the last row written changed since (a callback after this logger added a value)
        rows = [r for r in history[self.read:] if is_epoch_record(r)]
        known = set(self.columns)
        if any(key not in known for row in rows for key in row):
            return None  # a new column: the header changes
        return rows

    def extended(self, history: list[dict[str, Any]], rows: list[dict[str, Any]], size: int) -> CsvExtent:
        return CsvExtent(history, len(history), self.columns, dict(rows[-1]) if rows else self.last_row, size)


def csv_text(records: list[Mapping[str, Any]]) -> str:
    """CSV of ``records``: header = every key in order of first appearance; missing cells empty;
    lists and dicts as JSON (a non-finite value in them as ``null``, as metrics.jsonl has it: JSON has no
    NaN); None as an empty cell; a float as ``repr`` writes it (``nan``, ``inf`` when non-finite)."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(list(columns))
    return header.getvalue() + csv_rows_text(records, list(columns))


def csv_rows_text(records: list[Mapping[str, Any]], columns: list[str]) -> str:
    """The CSV lines of ``records`` under ``columns`` (no header), each cell as :func:`csv_text` writes it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for record in records:
        row = []
        for column in columns:
            value = record.get(column)
            if value is None:
                row.append("")
            elif isinstance(value, list | dict):
                row.append(json.dumps(json_safe(value), allow_nan=False))
            else:
                row.append(value if not isinstance(value, float) else repr(value))
        writer.writerow(row)
    return buffer.getvalue()


LOGGERS: dict[str, type[RecordLogger]] = {"tensorboard": TensorBoardLogger, "csv": CsvLogger}
EXTRAS = {"tensorboard": ("tensorboard", "trainlab[tensorboard]")}  # logger -> (module it needs, pip extra)


def check_loggers(names: list[str]) -> None:
    """Refuse (ConfigError, one line) a logger that is unknown or whose package is not installed."""
    import importlib.util

    from trainlab.registry import did_you_mean

    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"output.loggers: unknown logger '{name}'{did_you_mean(name, list(LOGGERS))} "
                              f"(available: {', '.join(LOGGERS)})")
        module, extra = EXTRAS.get(name, (None, None))
        if module is not None and importlib.util.find_spec(module) is None:
            raise ConfigError(f"output.loggers: '{name}' needs the '{module}' package, which is not installed; "
                              f"pip install '{extra}' (or remove '{name}' from output.loggers)")


def logger_callbacks(config: Any, run_dir: str | Path) -> list[Callback]:
    """The callbacks of ``config.output.loggers``, writing into ``run_dir`` (the run folder being written).

    Nothing is created until training starts. Raises ConfigError for an unknown logger or a missing
    package (call it before the run folder is created to leave no folder behind).
    """
    names = list(config.output.loggers)
    check_loggers(names)
    tree = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    return [LOGGERS[name](run_dir, tree) for name in names]
