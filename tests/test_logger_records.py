"""What the loggers and metrics.jsonl hold around checkpoints and resumes: each TensorBoard tag one value per
step (a step logged and validated, a resume from a checkpoint that owes its step's validation), metrics.jsonl
never behind the newest checkpoint, JSON list cells of metrics.csv, and the messages about metric names."""

from __future__ import annotations

import collections
import copy
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from tests.conftest import DIGITS_MLP
from tests.resume_from_checkpoints import resume_a_copy, train_keeping_checkpoints
from trainlab.callbacks.base import Callback
from trainlab.callbacks.loggers import TensorBoardLogger, csv_text
from trainlab.errors import ConfigError

TIMING = ("elapsed_s", "samples_per_s")  # wall-clock values: a resumed run's differ


def _logged_config() -> dict:
    """Digits, 2 epochs of 19 steps: a step record every 5 steps, a mid-epoch validation every 10 (steps 10, 20,
    30: each also a step record's step), both loggers."""
    raw = copy.deepcopy(DIGITS_MLP)
    raw["model"]["dropout"] = 0.0
    raw["strategy"].update(epochs=2, batch_size=64, eval_every_n_steps=10)
    raw["metrics"] = ["accuracy", "f1"]
    raw["output"] = {"progress": "off", "loggers": ["tensorboard", "csv"], "log_every_n_steps": 5}
    raw["runtime"] = {"num_threads": 1}  # the module fixture's run and a test's resumed one sum alike
    return raw


def _raw_points(run: Path) -> collections.Counter:
    """(tag, step) -> how many values the event files hold, read without TensorBoard's purge."""
    counts: collections.Counter = collections.Counter()
    for path in sorted((run / "tensorboard").iterdir()):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                counts[(value.tag, event.step)] += 1
    return counts


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag as TensorBoard shows it (the purge markers applied), timing tags left out."""
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return {tag: [(point.step, point.value) for point in events.Scalars(tag)]
            for tag in events.Tags()["scalars"] if not tag.endswith(TIMING)}


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def checkpointed_run(tmp_path_factory):
    """The uninterrupted run, a checkpoint every 10 steps kept."""
    tmp_path = tmp_path_factory.mktemp("logged")
    full, checkpoints = train_keeping_checkpoints(_logged_config(), tmp_path, every_n_steps=10)
    return tmp_path, full, checkpoints


def test_a_step_logged_and_validated_writes_each_tag_once(checkpointed_run):
    """Steps 10 and 30 have a step record and a mid-epoch validation's record, both holding epoch and lr: each
    tag gets one value there, the records' (metrics.jsonl)."""
    _, full, _ = checkpointed_run
    step_records = [r for r in _records(full) if r.get("scope") == "step"]
    validated = {r["step"] for r in step_records if "val_loss" in r}
    logged = {r["step"] for r in step_records if "train_loss" in r}
    assert {10, 30} <= validated & logged  # the case under test happens in this run
    twice = {key: n for key, n in _raw_points(full).items() if n > 1}
    assert twice == {}
    expected: dict[str, dict[int, float]] = collections.defaultdict(dict)
    for record in step_records:
        for key, value in record.items():
            if key not in ("scope", "step", *TIMING) and isinstance(value, float | int):
                expected[f"step/{key}"][record["step"]] = value
    shown = _scalars(full)
    for tag, values in expected.items():
        assert [step for step, _ in shown[tag]] == sorted(values), tag
        assert [value for _, value in shown[tag]] == pytest.approx([values[s] for s in sorted(values)], rel=1e-6)


def test_a_run_resumed_from_a_checkpoint_that_owes_its_steps_validation_draws_each_step_once(checkpointed_run):
    """The step-10 checkpoint is written before step 10's mid-epoch validation, which the resumed run makes
    again. The copy resumed from it holds the event files of the whole uninterrupted run (a kill after its
    last write): once TensorBoard applies the resumed file's purge marker, every tag holds one value per step,
    the uninterrupted run's values, and the resumed file starts with a SessionLog.START marker at step 10."""
    tmp_path, full, checkpoints = checkpointed_run
    resumed = resume_a_copy(full, checkpoints[10], tmp_path)
    files = sorted((resumed / "tensorboard").iterdir())
    assert len(files) == 2  # a resumed run writes a new event file (docs/loggers.md)
    markers = [event.step for event in EventFileLoader(str(files[1])).Load()
               if event.HasField("session_log") and event.session_log.status == event.session_log.START]
    assert markers == [10]
    shown, uninterrupted = _scalars(resumed), _scalars(full)
    assert shown.keys() == uninterrupted.keys()
    differ = {tag: sorted(set(shown[tag]) ^ set(uninterrupted[tag])) for tag in shown
              if shown[tag] != uninterrupted[tag]}
    assert differ == {}


def test_the_rewritten_step_keeps_the_checkpoints_records_of_that_step(tmp_path):
    """Resumed at step 20 (a checkpoint that owes step 20's validation): the interrupted run's events of step 20
    are purged, the checkpoint's step-20 step record written again, and the validation the resumed run makes
    at step 20 adds its own keys; epoch and lr, which both records hold, are written once."""
    first = TensorBoardLogger(tmp_path)
    step_10 = {"scope": "step", "step": 10, "epoch": 0.5, "train_loss": 0.9, "lr": 0.1}
    step_20 = {"scope": "step", "step": 20, "epoch": 1.0, "train_loss": 0.8, "lr": 0.1}
    for record in (step_10, step_20, {"scope": "step", "step": 20, "epoch": 1.0, "lr": 0.1, "val_loss": 0.75}):
        first.log(record)
    first.close(None)  # killed after its step-20 validation
    state = SimpleNamespace(step=20, history=[], step_records=[step_10, step_20], validation_due=True)
    view = SimpleNamespace(state=state, control=SimpleNamespace(interrupted_by=None))
    resumed = TensorBoardLogger(tmp_path)
    resumed.on_train_start(view)
    resumed.log({"scope": "step", "step": 20, "epoch": 1.0, "lr": 0.1, "val_loss": 0.7}, view)  # made again
    resumed.log({"scope": "step", "step": 30, "epoch": 1.5, "train_loss": 0.6, "lr": 0.1}, view)
    resumed.close(None)
    shown = _scalars(tmp_path)
    assert shown["step/val_loss"] == [(20, pytest.approx(0.7))]
    assert shown["step/train_loss"] == [(10, pytest.approx(0.9)), (20, pytest.approx(0.8)), (30, pytest.approx(0.6))]
    assert [step for step, _ in shown["step/epoch"]] == [10, 20, 30]
    assert [step for step, _ in shown["step/lr"]] == [10, 20, 30]


class _FileAtCheckpoint(Callback):
    """After each step checkpoint is written (order 95: after the saver's 90), what metrics.jsonl holds then
    against the state that checkpoint captured: a SIGKILL at that instant leaves that file."""

    order = 95
    name = "file_at_checkpoint"

    def __init__(self, run: Path):
        self.run, self.seen = run, []

    def on_step_end(self, view, loss) -> None:
        from trainlab.engine.checkpoint import folder_name

        if (self.run / "checkpoint" / folder_name(view.state.step)).is_dir():
            path = self.run / "metrics.jsonl"
            lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
            epochs = sum(1 for r in lines if "epoch" in r and "scope" not in r and "event" not in r)
            steps = sum(1 for r in lines if r.get("scope") == "step")
            self.seen.append((view.state.step, (epochs, steps), (len(view.state.history), len(view.state.step_records))))


def test_metrics_jsonl_is_never_behind_the_newest_checkpoint(tmp_path):
    """metrics.jsonl is rewritten at most every 2 s at an epoch's end: without the write before each checkpoint,
    a kill right after a checkpoint leaves a file that lacks records the checkpoint (and metrics.csv) holds."""
    from trainlab.config import validate
    from trainlab.experiment import train

    raw = _logged_config()
    raw["strategy"]["epochs"] = 3
    raw["output"]["checkpoint"] = {"every_n_steps": 7, "keep_last": 100, "every_seconds": None}
    watcher = _FileAtCheckpoint(tmp_path / "run")
    train(validate(raw), out=tmp_path / "run", quiet=True, callbacks=[watcher])
    assert len(watcher.seen) >= 7  # steps 7, 14, ..., 56 of 57
    assert [(step, on_file) for step, on_file, _ in watcher.seen] == [(step, held) for step, _, held in watcher.seen]


def test_records_md_says_what_metrics_jsonl_holds_after_a_kill():
    text = " ".join((Path(__file__).parents[1] / "docs" / "records.md").read_text().split())
    assert "before every checkpoint is written" in text and "every record up to the newest checkpoint" in text


def test_csv_list_cells_hold_null_for_non_finite_values_as_json_does():
    """A diverged run's confusion matrix is all NaN: its cell is JSON (null), readable by json.loads with NaN
    refused; a non-finite scalar stays Python's nan/inf, which pandas reads as a float."""
    records = [{"epoch": 1, "val_loss": math.nan, "val_cm": [[math.nan, 1.0], [math.inf, -math.inf]]},
               {"epoch": 2, "val_loss": math.inf, "val_cm": [[1, 0], [0, 1]]}]
    text = csv_text(records)

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    table = pd.read_csv(__import__("io").StringIO(text))
    cells = [json.loads(cell, parse_constant=refuse) for cell in table["val_cm"]]
    assert cells == [[[None, 1.0], [None, None]], [[1, 0], [0, 1]]]
    assert np.isnan(table["val_loss"][0]) and table["val_loss"][1] == math.inf
    assert text.splitlines()[1].startswith("1,nan,")


def test_loggers_md_describes_a_resumed_runs_new_event_file():
    text = " ".join((Path(__file__).parents[1] / "docs" / "loggers.md").read_text().split())
    assert "appends to the same event files" not in text
    assert "A resumed run writes a new event file" in text and "SessionLog.START" in text


# --------------------------------------------------------------------------- messages about metric names


def test_a_class_absent_from_a_split_is_worded_as_the_macro_average_counts_it(capsys):
    """The warning says what the metrics do (scikit-learn's rule), checked here against scikit-learn: a class
    with no row in the targets counts in the macro precision when the model predicts it, and not otherwise."""
    from sklearn.metrics import precision_score, recall_score

    from trainlab.data.labels import warn_classes_absent
    from trainlab.metrics import compute

    warn_classes_absent("val", np.array([0, 1, 2]), np.array([0, 0, 1]), ["a", "b", "c"],
                        "they are in the training data only")
    line = capsys.readouterr().err.strip()
    assert line.startswith("warning: the val split holds no row of 1 of the 3 classes (c): they are in the "
                           "training data only, so val metrics score them on no row: a macro average counts such a "
                           "class only where the model predicts it")
    assert "leave them out" not in line
    target = np.array([0, 0, 1, 1])
    for predicted in (np.array([0, 2, 1, 1]), np.array([0, 1, 1, 1])):  # class 2 predicted once / never
        ours = compute(["precision_macro", "recall_macro", "recall_per_class"], predicted, target, 3, task="multiclass")
        assert ours["precision_macro"] == pytest.approx(precision_score(target, predicted, average="macro",
                                                                        zero_division=0))
        assert ours["recall_macro"] == pytest.approx(recall_score(target, predicted, average="macro",
                                                                  zero_division=0))
        assert len(ours["recall_per_class"]) == 3 and ours["recall_per_class"][2] == 0  # shown, recall 0


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass", "multilabel"])
def test_a_metric_of_another_task_lists_every_metric_of_the_data_task(task):
    """The list is every registered metric that task accepts, each tried here one by one."""
    from trainlab.metrics import METRICS, validate_metrics

    accepted = []
    for name in METRICS.names():
        try:
            validate_metrics([name], task)
        except ConfigError:
            continue
        accepted.append(name)
    foreign = "accuracy" if task == "regression" else "mse"
    with pytest.raises(ConfigError) as caught:
        validate_metrics([foreign], task)
    listed = str(caught.value).rsplit(": ", 1)[1].rstrip(")").split(", ")
    extra = ["top_<k>_accuracy"] if task == "multiclass" else []
    assert listed == accepted + extra
    assert len(accepted) > 4 or task == "regression"  # more than the defaults


def test_plot_of_a_misspelt_metric_suggests_the_recorded_one(tmp_path):
    from trainlab.plots import plot_curves

    history = {"a": [{"epoch": 1, "val_loss": 0.3, "val_accuracy": 0.9}]}
    with pytest.raises(ConfigError, match=r"^metric 'val_acuracy' is in no history; available: val_accuracy, "
                                          r"val_loss; did you mean 'val_accuracy'\?$"):
        plot_curves(history, "val_acuracy", tmp_path / "c.png")


def test_a_metric_listed_twice_in_another_letter_case_is_refused():
    """Names ignore letter case (the registry's lookup): [F1, f1] would compute and record one metric twice."""
    from trainlab.config import validate
    from trainlab.metrics import canonical_metric_name, validate_metrics
    from trainlab.preflight import check_components

    message = (r"^metrics lists the metric 'f1' twice \(as 'F1' and 'f1': metric names ignore letter case\); "
               r"list it once, as 'f1'$")
    with pytest.raises(ConfigError, match=message):
        validate_metrics(["F1", "accuracy", "f1"], "multiclass")
    with pytest.raises(ConfigError, match=message):  # what compare and tune check before any run
        check_components(validate({**copy.deepcopy(DIGITS_MLP), "metrics": ["F1", "f1"]}))
    with pytest.raises(ConfigError, match=r"'top_5_accuracy' twice"):
        validate_metrics(["Top_5_Accuracy", "top_5_accuracy"], "multiclass")
    assert [canonical_metric_name(n) for n in ("F1", "Top_3_Accuracy", "loss", "mymod:MyMetric", "nope")] == \
        ["f1", "top_3_accuracy", "loss", "mymod:MyMetric", "nope"]


def test_a_monitor_in_another_letter_case_than_the_recorded_key_is_pointed_to_it():
    from trainlab.metric_hints import unrecorded_hint

    assert unrecorded_hint("val_f1", ["val_loss", "val_F1"]) == "; did you mean 'val_F1'?"


def test_a_resumed_runs_event_file_is_named_after_the_interrupted_ones(tmp_path):
    """TensorBoard reads event files in name order (seconds, host, pid, counter): a file made in the second of
    the newest one could sort before it (counter 10 before 9), so the logger waits for the next second."""
    from trainlab.callbacks.loggers import wait_for_a_later_event_file

    (tmp_path / "events.out.tfevents.1700000005.host.42.9").write_bytes(b"")
    (tmp_path / "events.out.tfevents.1700000004.host.42.10").write_bytes(b"")
    times = iter([1700000005.2, 1700000005.7, 1700000006.01])
    slept: list[float] = []
    wait_for_a_later_event_file(tmp_path, clock=lambda: next(times), sleep=slept.append)
    assert len(slept) == 2
    wait_for_a_later_event_file(tmp_path, clock=lambda: 1700000009.0, sleep=slept.append)  # a later second
    assert len(slept) == 2


def test_a_checkpoint_with_nothing_recorded_since_the_last_write_writes_no_byte_of_metrics_jsonl(tmp_path, monkeypatch):
    """metrics.jsonl was rewritten whole (and fsynced) before every checkpoint and best/ save: with
    every_n_steps: 1 and log_every_n_steps: 1 that grew quadratic in the run's length. Each case below
    that adds, extends or replaces a record still writes, so the file is never behind a checkpoint."""
    from trainlab import run_folder
    from trainlab.callbacks.metrics_recorder import MetricsRecorder
    from trainlab.engine.state import TrainState

    writes: list[tuple[str, int]] = []  # ("whole" | "append", bytes)
    real_whole, real_append, fail = run_folder.write_text, run_folder.append_bytes, [False]

    def whole(path, text):
        if fail[0]:
            raise OSError(28, "No space left on device")
        writes.append(("whole", len(text)))
        return real_whole(path, text)

    def append(path, data):
        if fail[0]:
            raise OSError(28, "No space left on device")
        writes.append(("append", len(data)))
        return real_append(path, data)

    monkeypatch.setattr(run_folder, "write_text", whole)
    monkeypatch.setattr(run_folder, "append_bytes", append)
    folder = SimpleNamespace(path=tmp_path)
    folder.write_metrics = run_folder.RunDir.write_metrics.__get__(folder)
    recorder = MetricsRecorder(folder)
    view = SimpleNamespace(state=TrainState(), control=SimpleNamespace(rollback_to=None))
    recorder.on_before_save(view)  # the first write, though nothing is recorded
    recorder.on_before_save(view)  # nothing new (a best/ save after the checkpoint)
    assert [kind for kind, _ in writes] == ["whole"]
    view.state.step_records.append({"scope": "step", "step": 1, "loss": 0.5})
    recorder.on_before_save(view)
    recorder.on_before_save(view)
    assert [kind for kind, _ in writes] == ["whole", "append"]
    view.state.step_records[-1]["val_auc"] = 0.9  # a callback adding a value to the record its hook got
    recorder.on_before_save(view)
    assert writes[-1][0] == "whole" and '"val_auc": 0.9' in (tmp_path / "metrics.jsonl").read_text()
    view.state.events.append({"event": "parameters", "step": 1})
    view.state.history.append({"epoch": 1, "step": 1})
    recorder.on_before_save(view)
    count = len(writes)
    # a rollback restores a new TrainState: records of the same count, other values
    view.state = TrainState(history=[{"epoch": 1, "step": 1}], events=[{"event": "parameters", "step": 1}],
                            step_records=[{"scope": "step", "step": 1, "loss": 0.4, "val_auc": 0.8}])
    recorder.on_before_save(view)
    assert len(writes) == count + 1 and writes[-1][0] == "whole" and '"loss": 0.4' in (tmp_path / "metrics.jsonl").read_text()
    fail[0] = True  # a failed write is retried at the next checkpoint, though nothing new came since
    view.state.step_records.append({"scope": "step", "step": 2, "loss": 0.3})
    recorder.on_before_save(view)  # warns: metrics.jsonl not written
    fail[0] = False
    recorder.on_before_save(view)
    assert writes[-1][0] == "whole" and '"loss": 0.3' in (tmp_path / "metrics.jsonl").read_text()
    count = len(writes)
    view.control.rollback_to = object()  # a rollback asked for: no checkpoint follows
    view.state.step_records.append({"scope": "step", "step": 3, "loss": 0.2})
    recorder.on_before_save(view)
    assert len(writes) == count


def test_loggers_md_says_a_rollbacks_replayed_steps_are_written_again():
    """It said "Each tag has one value per step", false after a divergence rollback: the TensorBoard logger
    dedups only within a step, and the replayed steps are logged again with the replay's values."""
    text = " ".join((Path(__file__).parents[1] / "docs" / "loggers.md").read_text().split())
    assert "Each tag has one value per step:" not in text
    assert "except after a divergence rollback" in text and "two values at each replayed step" in text
