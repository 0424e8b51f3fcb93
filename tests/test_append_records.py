"""Records written per epoch, step and checkpoint cost what they add, not the run's length.

metrics.csv and metrics.jsonl are appended to (each whole line in one write) and rewritten whole only when
appending cannot give what the run holds; a checkpoint's state.json joins each record's JSON text, encoded
once. References are written out here: the csv module reading the file back, json lines sorted by the
documented order, and ``json.dumps`` of ``dataclasses.asdict`` (what state.json was before).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np

from trainlab.callbacks import loggers
from trainlab.callbacks.loggers import CsvLogger
from trainlab.engine import snapshot
from trainlab.engine import state as state_module
from trainlab.engine.serialize import split_state, state_json
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


def test_a_line_cut_off_by_a_kill_mid_append_leaves_the_records_before_it_readable():
    whole = "".join(json.dumps({"epoch": e, "step": e}) + "\n" for e in range(1, 4))
    parsed = parse_metrics(whole + '{"epoch": 4, "st')
    assert [r["epoch"] for r in parsed.records] == [1, 2, 3]
    assert parsed.damaged == (4,) and parsed.cut_off


def _old_state_json(state: TrainState) -> str:
    """state.json's train_state as it was encoded before records were cached: asdict, split, json.dumps."""
    return json.dumps(split_state({"train_state": asdict(state)}, "parts")[0])


def test_state_json_is_the_same_bytes_and_encodes_each_record_once(monkeypatch):
    encoded: list[int] = []
    real_dumps = json.dumps
    monkeypatch.setattr(state_module.json, "dumps", lambda value, **kw: encoded.append(1) or real_dumps(value, **kw))
    state = TrainState()
    for step in range(1, 401):
        state.step_records.append({"scope": "step", "step": step, "train_loss": 1.0 / step, "per_class": [0.5, 1.0]})
        if step % 4 == 0:
            state.history.append({"epoch": step // 4, "step": step, "val_loss": float("nan") if step == 8 else 0.3})
        before = len(encoded)
        new = state_json(split_state({"train_state": state.state_dict()}, "parts")[0])
        assert len(encoded) - before <= 6  # the new records (and state_json's own few), not the run's 400
        assert new == _old_state_json(state)
    state.history[-1]["val_accuracy"] = 0.9  # a callback adds a value to a record already encoded
    assert state_json(split_state({"train_state": state.state_dict()}, "parts")[0]) == _old_state_json(state)
    state.history.append({"epoch": 101, "step": 401, "val_loss": np.float64(0.25)})  # not plain JSON: as before
    assert state_json(split_state({"train_state": state.state_dict()}, "parts")[0]) == _old_state_json(state)


def test_a_snapshot_of_cached_records_restores_copies_and_clones_cheaply():
    state = TrainState(history=[{"epoch": 1, "step": 1, "val_loss": 0.5}])
    captured = snapshot.capture({"train_state": state.state_dict()})
    state.history[0]["val_loss"] = 9.0  # training goes on; the snapshot keeps what it captured
    clone = captured.clone()
    restored = snapshot.restore(clone)["train_state"]["history"]
    assert restored == [{"epoch": 1, "step": 1, "val_loss": 0.5}] and type(restored) is list
    restored[0]["val_loss"] = 1.0
    assert snapshot.restore(captured)["train_state"]["history"][0]["val_loss"] == 0.5
    assert json.loads(json.dumps(captured.tree))["parts"]["train_state"]["history"][0]["val_loss"] == 0.5
