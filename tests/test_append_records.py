"""Records written per epoch, step and checkpoint cost what they add, not the run's length.

metrics.csv and metrics.jsonl are appended to (each whole line in one write) and rewritten whole only when
appending cannot give what the run holds. References are written out here: the csv module reading the file
back, and json lines sorted by the documented order.
"""

from __future__ import annotations

import csv
import errno
import json
import math
import os
from types import SimpleNamespace

import pytest

from trainlab import atomic
from trainlab.callbacks import loggers
from trainlab.callbacks.loggers import CsvLogger
from trainlab.engine import snapshot
from trainlab.engine.state import TrainState
from trainlab.records import parse_metrics
from trainlab.run_folder import RunDir


def _view(state: TrainState) -> SimpleNamespace:
    return SimpleNamespace(state=state, control=SimpleNamespace(rollback_to=None, interrupted_by=None))


def _counting(monkeypatch, module, name: str) -> list[int]:
    sizes: list[int] = []
    real = getattr(module, name)

    def spy(path, data):
        sizes.append(len(data))
        return real(path, data)

    monkeypatch.setattr(module, name, spy)
    return sizes


def _csv_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_logger_appends_one_row_per_epoch_and_rewrites_only_when_it_must(tmp_path, monkeypatch):
    rewrites = _counting(monkeypatch, loggers, "write_bytes")
    appends = _counting(monkeypatch, loggers, "append_bytes")
    logger = CsvLogger(tmp_path)
    view = _view(TrainState())
    for epoch in range(1, 201):
        record = {"epoch": epoch, "step": epoch * 3, "train_loss": 1.0 / epoch}
        view.state.history.append(record)
        logger.on_epoch_end(view, record)
    assert len(rewrites) == 1 and len(appends) == 199
    assert max(appends) <= 40  # a row's bytes, at epoch 200 as at epoch 2
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 201))
    assert float(rows[-1]["train_loss"]) == 1.0 / 200

    view.state.history[-1]["late"] = 7  # a callback after the logger adds a value: the row is written again
    record = {"epoch": 201, "step": 603, "train_loss": 0.1}
    view.state.history.append(record)
    logger.on_epoch_end(view, record)
    assert len(rewrites) == 2 and _csv_rows(tmp_path / "metrics.csv")[199]["late"] == "7"

    record = {"epoch": 202, "step": 606, "train_loss": 0.1, "val_loss": 0.2}  # a new column
    view.state.history.append(record)
    logger.on_epoch_end(view, record)
    assert len(rewrites) == 3 and list(_csv_rows(tmp_path / "metrics.csv")[0]) == [
        "epoch", "step", "train_loss", "late", "val_loss"]

    view.state = TrainState(history=[dict(r) for r in view.state.history[:50]])  # a rollback: a shorter history
    record = {"epoch": 51, "step": 153, "train_loss": 0.5}
    view.state.history.append(record)
    logger.on_epoch_end(view, record)
    assert len(rewrites) == 4 and len(_csv_rows(tmp_path / "metrics.csv")) == 51

    with open(tmp_path / "metrics.csv", "a") as handle:  # a row cut off (a kill mid-append), or any change
        handle.write("52,15")
    record = {"epoch": 52, "step": 156, "train_loss": 0.4}
    view.state.history.append(record)
    logger.on_epoch_end(view, record)
    assert len(rewrites) == 5
    assert [int(r["epoch"]) for r in _csv_rows(tmp_path / "metrics.csv")] == list(range(1, 53))


def test_an_append_a_full_disk_cuts_short_leaves_no_partial_row_and_the_file_is_rewritten(tmp_path, monkeypatch):
    """A cut CSV row reads as a value (``0.05555`` for ``0.0555555555``): append_bytes cuts the file back to where
    it ended, and the logger writes the whole file instead of disabling itself."""
    logger = CsvLogger(tmp_path)
    view = _view(TrainState())
    for epoch in (1, 2):
        view.state.history.append({"epoch": epoch, "step": epoch * 10, "train_loss": 0.1 / epoch})
        logger.on_epoch_end(view, view.state.history[-1])
    real_write = os.write
    calls = []

    def full_after_a_few_bytes(fd, data):  # a disk that fills up part-way through the append
        calls.append(len(data))
        if len(calls) == 1:
            real_write(fd, bytes(data[:6]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_after_a_few_bytes)
    view.state.history.append({"epoch": 3, "step": 30, "train_loss": 0.0555555555})
    logger.on_epoch_end(view, view.state.history[-1])
    monkeypatch.setattr(os, "write", real_write)
    assert not logger.disabled
    rows = _csv_rows(tmp_path / "metrics.csv")
    assert [(r["epoch"], r["train_loss"]) for r in rows] == [("1", "0.1"), ("2", "0.05"), ("3", "0.0555555555")]

    path = tmp_path / "cut.jsonl"  # append_bytes itself: the file ends where it ended before the failed write
    path.write_bytes(b'{"epoch": 1}\n')
    calls.clear()
    monkeypatch.setattr(os, "write", full_after_a_few_bytes)
    with pytest.raises(OSError, match="cut.jsonl"):
        atomic.append_bytes(path, b'{"epoch": 2, "step": 20}\n')
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == b'{"epoch": 1}\n'


def test_a_disk_full_for_a_while_loses_no_csv_row_and_warns_once(tmp_path, monkeypatch):
    """The append fails, and so does the whole write: the logger stays on and the rows come once there is room."""
    warnings: list[str] = []
    logger = CsvLogger(tmp_path, warn=warnings.append)
    view = _view(TrainState())
    real_write, full = os.write, [False]

    def disk(fd, data):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    real_whole = loggers.write_bytes

    def whole(path, data):  # the atomic write's temporary file fills the disk as well
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_whole(path, data)

    monkeypatch.setattr(os, "write", disk)
    monkeypatch.setattr(loggers, "write_bytes", whole)
    for epoch in range(1, 8):
        full[0] = epoch in (3, 4, 5)
        view.state.history.append({"epoch": epoch, "step": epoch * 10, "train_loss": 1.0 / epoch})
        logger.on_epoch_end(view, view.state.history[-1])
        if epoch == 4:
            assert [int(r["epoch"]) for r in _csv_rows(tmp_path / "metrics.csv")] == [1, 2]  # no partial row
    assert not logger.disabled and len(warnings) == 1 and "No space left" in warnings[0]
    assert [int(r["epoch"]) for r in _csv_rows(tmp_path / "metrics.csv")] == list(range(1, 8))

    full[0] = True  # full again at the run's end: the epochs written so far stay
    view.state.history.append({"epoch": 8, "step": 80, "train_loss": 0.125})
    logger.on_epoch_end(view, view.state.history[-1])
    logger.on_train_end(view)
    assert [int(r["epoch"]) for r in _csv_rows(tmp_path / "metrics.csv")] == list(range(1, 8))
    assert len(warnings) == 3 and "not written at the run's end" in warnings[2] and "metrics.jsonl holds" in warnings[2]
    full[0] = False


def test_a_change_to_an_earlier_row_reaches_the_csv_at_the_runs_end(tmp_path):
    logger = CsvLogger(tmp_path)
    view = _view(TrainState())
    for epoch in (1, 2, 3):
        view.state.history.append({"epoch": epoch, "step": epoch, "is_best": epoch == 2})
        logger.on_epoch_end(view, view.state.history[-1])
    view.state.history[1]["is_best"] = False  # a user's callback moves the best mark from epoch 2 to epoch 3
    view.state.history[2]["is_best"] = True
    logger.on_train_end(view)
    assert [r["is_best"] for r in _csv_rows(tmp_path / "metrics.csv")] == ["False", "False", "True"]


def _folder(tmp_path) -> SimpleNamespace:
    folder = SimpleNamespace(path=tmp_path)
    folder.write_metrics = RunDir.write_metrics.__get__(folder)
    return folder


def _reference_lines(state: TrainState) -> list[str]:
    """metrics.jsonl as documented: by step; at one step step records, the epoch record, then events; NaN null."""
    def kind(record):
        return 2 if "event" in record else 0 if record.get("scope") == "step" else 1
    ordered = sorted([*state.step_records, *state.history, *state.events], key=lambda r: (r["step"], kind(r)))
    return [json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}) + "\n"
            for r in ordered]


def test_metrics_recorder_appends_what_is_new_and_rewrites_atomically_otherwise(tmp_path, monkeypatch):
    from trainlab import run_folder
    from trainlab.callbacks.metrics_recorder import MetricsRecorder

    rewrites = _counting(monkeypatch, run_folder, "write_text")
    appends = _counting(monkeypatch, run_folder, "append_bytes")
    recorder = MetricsRecorder(_folder(tmp_path))
    view = _view(TrainState())
    path = tmp_path / "metrics.jsonl"
    for step in range(1, 301):
        view.state.step_records.append({"scope": "step", "step": step, "train_loss": 1.0 / step})
        if step % 10 == 0:
            view.state.history.append({"epoch": step // 10, "step": step, "val_loss": float("nan")})
        recorder.on_before_save(view)
    assert len(rewrites) == 1 and len(appends) == 299
    assert max(appends[20:]) - min(appends[20:]) < 120  # a step's lines, not the file
    assert path.read_text().splitlines(keepends=True) == _reference_lines(view.state)

    view.state.step_records[-1]["val_auc"] = 0.5  # changed after it was written
    view.state.events.append({"event": "parameters", "step": 300})
    recorder.on_before_save(view)
    assert len(rewrites) == 2 and path.read_text().splitlines(keepends=True) == _reference_lines(view.state)

    view.state.events.append({"event": "late", "step": 120})  # sorts before the last line written
    recorder.on_before_save(view)
    assert len(rewrites) == 3 and path.read_text().splitlines(keepends=True) == _reference_lines(view.state)

    with open(path, "a") as handle:  # a partial line left by a kill or a failed append
        handle.write('{"scope": "st')
    view.state.step_records.append({"scope": "step", "step": 301, "train_loss": 0.1})
    recorder.on_before_save(view)
    assert len(rewrites) == 4 and path.read_text().splitlines(keepends=True) == _reference_lines(view.state)

    view.state = TrainState(history=list(view.state.history[:3]),  # a rollback restores new, shorter lists
                            step_records=list(view.state.step_records[:30]))
    view.state.step_records.append({"scope": "step", "step": 31, "train_loss": 0.2})
    recorder.on_before_save(view)
    assert len(rewrites) == 5 and path.read_text().splitlines(keepends=True) == _reference_lines(view.state)

    view.state.history[0]["is_best"] = False  # an earlier record changed: not seen by an append, but at the end
    recorder.on_train_end(view)
    assert len(rewrites) == 6 and path.read_text().splitlines(keepends=True) == _reference_lines(view.state)


def test_a_line_cut_off_by_a_kill_mid_append_leaves_the_records_before_it_readable():
    whole = "".join(json.dumps({"epoch": e, "step": e}) + "\n" for e in range(1, 4))
    parsed = parse_metrics(whole + '{"epoch": 4, "st')
    assert [r["epoch"] for r in parsed.records] == [1, 2, 3]
    assert parsed.damaged == (4,) and parsed.cut_off


def test_a_snapshot_restores_the_records_it_captured_not_later_changes():
    state = TrainState(history=[{"epoch": 1, "step": 1, "val_loss": 0.5}])
    captured = snapshot.capture({"train_state": state.state_dict()})
    state.history[0]["val_loss"] = 9.0  # training goes on; the snapshot keeps what it captured
    clone = captured.clone()
    restored = snapshot.restore(clone)["train_state"]["history"]
    assert restored == [{"epoch": 1, "step": 1, "val_loss": 0.5}] and type(restored) is list
    restored[0]["val_loss"] = 1.0
    assert snapshot.restore(captured)["train_state"]["history"][0]["val_loss"] == 0.5
    assert json.loads(json.dumps(captured.tree))["parts"]["train_state"]["history"][0]["val_loss"] == 0.5
