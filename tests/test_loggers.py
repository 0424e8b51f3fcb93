"""Loggers as callbacks: TensorBoard event files and metrics.csv hold the run's records; a failing logger
warns once, disables itself and the run finishes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import DIGITS_MLP
from trainlab.callbacks.loggers import CsvLogger, TensorBoardLogger, csv_text, logger_callbacks
from trainlab.config import validate
from trainlab.errors import ConfigError
from trainlab.experiment import train


def _config(**output):
    raw = copy.deepcopy(DIGITS_MLP)
    raw["strategy"]["epochs"] = 2
    raw["output"] = {"progress": "off", **output}
    return validate(raw)


def _epoch_records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "epoch" in r and "event" not in r]


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("logged") / "run"
    config = _config(loggers=["tensorboard", "csv"])
    warnings: list[str] = []
    train(config, out=out, quiet=True)  # the run wires output.loggers itself
    return out, warnings


def test_tensorboard_event_file_holds_the_epoch_scalars_and_hparams(logged_run):
    out, warnings = logged_run
    assert warnings == []
    records = _epoch_records(out)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        assert key in scalars
        points = events.Scalars(key)
        assert [p.step for p in points] == [r["step"] for r in records]
        assert [p.value for p in points] == pytest.approx([r[key] for r in records], rel=1e-6)
    assert events.Scalars("hparam/val_accuracy")[0].value == pytest.approx(records[-1]["val_accuracy"], rel=1e-6)
    assert "config/text_summary" in events.Tags()["tensors"]  # add_text is stored as a tensor summary


def test_csv_logger_writes_one_row_per_epoch_record(logged_run):
    out, _ = logged_run
    records = _epoch_records(out)
    table = pd.read_csv(out / "metrics.csv")
    assert list(table["epoch"]) == [r["epoch"] for r in records]
    for key in ("train_loss", "val_loss", "val_f1", "lr"):
        assert list(table[key]) == pytest.approx([r[key] for r in records], rel=1e-12)


def test_step_records_go_under_step_tags(tmp_path):
    logger = TensorBoardLogger(tmp_path)
    for step, loss in [(1, 0.9), (2, 0.7), (3, 0.4)]:
        logger.log({"step": step, "train_loss": loss, "lr": 0.1, "grad_norm": 2.0})
    logger.log({"event": "divergence", "step": 3})  # events are not charted
    logger.close(None)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["step/grad_norm", "step/lr", "step/train_loss"]
    assert [(p.step, p.value) for p in events.Scalars("step/train_loss")] == [(1, pytest.approx(0.9)),
                                                                              (2, pytest.approx(0.7)),
                                                                              (3, pytest.approx(0.4))]


def test_a_failing_logger_warns_once_and_the_run_finishes(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")  # the logger's run folder is a file: every write fails
    config = _config()
    warnings: list[str] = []
    broken = [CsvLogger(blocker, warn=warnings.append), TensorBoardLogger(blocker / "sub", warn=warnings.append)]
    summary, path = train(config, out=tmp_path / "run", quiet=True, callbacks=broken)
    assert summary["status"] == "finished" and (path / "model.safetensors").exists()
    assert len(warnings) == 3  # once each, though every epoch's write failed, and the csv's last try at the end
    assert "failed and is disabled" in warnings[0] and broken[1].disabled  # tensorboard
    assert "metrics.csv not written: Not a directory" in warnings[1]  # the csv logger retries (a full disk clears)
    assert "metrics.csv not written at the run's end" in warnings[2]
    assert not broken[0].disabled


def test_csv_text_takes_the_union_of_columns_and_writes_lists_as_json():
    text = csv_text([{"epoch": 1, "val_loss": 0.5}, {"epoch": 2, "val_loss": None, "val_f1_per_class": [0.1, 0.2]}])
    assert text.splitlines() == ["epoch,val_loss,val_f1_per_class", "1,0.5,", '2,,"[0.1, 0.2]"']


def test_unknown_or_missing_loggers_are_refused_in_one_line(monkeypatch):
    with pytest.raises(ConfigError, match="did you mean 'tensorboard'"):
        _config(loggers=["tensorbord"])
    with pytest.raises(ConfigError, match="mlflow logger is not available"):
        _config(loggers=["mlflow"])
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(ConfigError, match=r"pip install 'trainlab\[tensorboard\]'"):
        logger_callbacks(_config(loggers=["tensorboard"]), "unused")


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint(tmp_path):
    from types import SimpleNamespace

    first = TensorBoardLogger(tmp_path)
    for epoch, step, loss in [(1, 10, 0.9), (2, 20, 0.8), (3, 30, 0.7)]:
        first.log({"epoch": epoch, "step": step, "train_loss": loss})
    first.close(None)  # killed after step 30; the newest checkpoint is at step 20, whose history holds epochs 1-2
    resumed = TensorBoardLogger(tmp_path)
    history = [{"epoch": 1, "step": 10, "train_loss": 0.9}, {"epoch": 2, "step": 20, "train_loss": 0.8}]
    view = SimpleNamespace(state=SimpleNamespace(step=20, history=history, step_records=[]))
    resumed.on_train_start(view)
    for epoch, step, loss in [(3, 30, 0.65), (4, 40, 0.6)]:
        resumed.log({"epoch": epoch, "step": step, "train_loss": loss}, view)
    resumed.close(None)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(p.step, round(p.value, 6)) for p in events.Scalars("train_loss")] == [(10, 0.9), (20, 0.8), (30, 0.65),
                                                                                    (40, 0.6)]


def test_step_records_as_the_engine_writes_them_stay_out_of_the_epoch_tags(tmp_path):
    """The step logger's records carry scope: step and a fractional epoch (docs/records.md)."""
    logger = TensorBoardLogger(tmp_path)
    for step in (5, 10):
        logger.log({"scope": "step", "step": step, "epoch": step / 20, "train_loss": 1.0 / step, "lr": 0.1})
    logger.log({"epoch": 1, "step": 20, "train_loss": 0.05, "lr": 0.1})
    logger.close(None)
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [p.step for p in events.Scalars("step/train_loss")] == [5, 10]
    epoch_tag = next(t for t in events.Tags()["scalars"] if not t.startswith("step/") and t.endswith("train_loss"))
    assert [p.value for p in events.Scalars(epoch_tag)] == [pytest.approx(0.05)]  # the epoch record only


def test_a_run_stopped_by_a_signal_and_resumed_is_one_hparams_session(tmp_path):
    from types import SimpleNamespace

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    def view(step, interrupted_by):
        return SimpleNamespace(state=SimpleNamespace(step=step, history=[]),
                               control=SimpleNamespace(interrupted_by=interrupted_by))

    config = {"strategy": {"optimizer": {"name": "adam", "lr": 0.01}}}
    first = TensorBoardLogger(tmp_path, config)
    first.on_train_start(view(0, None))
    first.log({"epoch": 1, "step": 10, "train_loss": 0.9}, view(10, None))
    first.on_train_end(view(10, 15))  # SIGTERM: checkpointed at step 10, resumed later
    resumed = TensorBoardLogger(tmp_path, config)
    resumed.on_train_start(view(10, None))
    resumed.log({"epoch": 2, "step": 20, "train_loss": 0.7}, view(20, None))
    resumed.on_train_end(view(20, None))
    sessions, finals = [], []
    for path in sorted((tmp_path / "tensorboard").iterdir()):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    sessions.append(event.step)
                if value.tag == "hparam/train_loss":
                    finals.append((event.step, round(value.tensor.float_val[0], 6)))  # the loader stores tensors
    assert sessions == [20] and finals == [(20, 0.7)]


def test_a_run_stopped_on_its_last_step_still_gets_its_hparams_session_when_resumed(tmp_path):
    from types import SimpleNamespace

    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    config = {"strategy": {"optimizer": {"name": "adam"}}}
    last = {"epoch": 2, "step": 20, "train_loss": 0.7}
    first = TensorBoardLogger(tmp_path, config)
    first.on_train_start(SimpleNamespace(state=SimpleNamespace(step=0, history=[]), control=None))
    first.log(last, None)
    first.on_train_end(SimpleNamespace(state=SimpleNamespace(step=20, history=[last]),
                                       control=SimpleNamespace(interrupted_by=15)))
    resumed = TensorBoardLogger(tmp_path, config)  # nothing left to train: no epoch is logged
    view = SimpleNamespace(state=SimpleNamespace(step=20, history=[last]), control=SimpleNamespace(interrupted_by=None))
    resumed.on_train_start(view)
    resumed.on_train_end(view)
    sessions = [event.step for path in (tmp_path / "tensorboard").iterdir()
                for event in EventFileLoader(str(path)).Load()
                for value in event.summary.value if value.tag == "_hparams_/session_start_info"]
    assert sessions == [20]
