"""Every built-in callback on scripted values through a fake view: no training (Keras early_stopping_test)."""

from __future__ import annotations

import math
import signal

import numpy as np
import pytest
import torch

from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.callbacks.divergence_guard import DivergenceGuard
from trainlab.callbacks.lr_adapter import LRAdapter
from trainlab.callbacks.progress import ProgressBar, ProgressLog, format_eta, progress_kind
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.callbacks.spike_rule import spike_threshold
from trainlab.callbacks.step_logger import StepLogger
from trainlab.engine import checkpoint
from trainlab.engine.snapshot import Snapshot
from trainlab.engine.state import Control, TrainState
from trainlab.errors import TrainingError


class FakeView:
    """What a callback sees of the Trainer, scripted."""

    def __init__(self, total_steps: int = 100, epochs: int | None = 10):
        self.state, self.control = TrainState(), Control()
        self.total_steps, self.epochs, self.steps_per_epoch = total_steps, epochs, 10
        self.lr_factors: list[float] = []
        self.lr = 0.1
        self.weight = torch.ones(3)
        self.saves_vetoed = 0

    def set_lr_factor(self, factor: float) -> None:
        self.lr_factors.append(factor)

    def lrs(self) -> dict[str, float]:
        return {"lr": self.lr}

    def loss_weight(self) -> None:  # the steps' losses are means over their rows (TrainerView.loss_weight)
        return None

    def weights(self):
        return {"w": self.weight.clone()}

    def capture(self) -> Snapshot:
        return Snapshot({"parts": {"train_state": self.state.state_dict()}, "rng": {}}, {"w": self.weight.clone()})

    def snapshot(self) -> Snapshot:
        return self.capture().clone()

    def prepare_save(self) -> bool:
        for callback in getattr(self, "guards", []):
            callback.on_before_save(self)
        return self.control.rollback_to is None

    def grad_norm(self):
        return 2.5

    def log(self, record):
        self.state.step_records.append(record)

    def step_with(self, callback, loss: float) -> None:
        self.state.step += 1
        self.state.batch_in_epoch += 1
        callback.on_step_end(self, torch.tensor(loss))


# ----------------------------------------------------------------------------- divergence guard

def test_spike_threshold_is_median_plus_factor_times_the_robust_spread():
    rng = np.random.default_rng(0)
    recent = list(rng.exponential(0.1, size=50))
    median = np.median(recent)
    mad = np.median(np.abs(np.asarray(recent) - median))
    expected = median + 20 * max(1.4826 * mad, 2.0 / 4)
    assert spike_threshold(recent, reference=2.0, spike_factor=20) == pytest.approx(expected, rel=1e-12)
    assert spike_threshold(recent, reference=1e-6, spike_factor=20) == pytest.approx(median + 20 * 1.4826 * mad)


def _guard(policy: str = "stop", window: int = 50, check_every: int = 10) -> DivergenceGuard:
    return DivergenceGuard(policy, spike_factor=20.0, window=window, lr_factor=0.5, max_rollbacks=2,
                           check_every=check_every)


def test_a_long_converging_run_with_hard_batches_is_healthy():
    """400 epochs x 50 batches decaying from 2.3 to 1e-4, with a hard batch of loss 1-2 now and then."""
    rng = np.random.default_rng(1)
    guard, view = _guard(), FakeView(total_steps=20_000)
    guard.on_train_start(view)
    for step in range(20_000):
        level = 2.3 * math.exp(-step / 1500) + 1e-4
        loss = level * rng.lognormal(0, 0.5)
        if step > 3000 and rng.random() < 0.01:
            loss = rng.uniform(1.0, 2.0)  # a misclassified sample in an otherwise fitted batch
        view.step_with(guard, loss)
    assert not view.control.should_stop and view.state.events == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e3])
def test_a_real_spike_or_non_finite_loss_stops_naming_step_and_value(bad):
    guard, view = _guard(), FakeView()
    guard.on_train_start(view)
    for _ in range(60):
        view.step_with(guard, 0.5)
    with pytest.raises(TrainingError, match="at step 61: (non-finite loss|loss spike)"):
        view.step_with(guard, bad)
        for _ in range(9):  # read at the next check, every 10 steps
            view.step_with(guard, 0.5)
    assert view.state.events[-1]["action"] == "stop" and view.state.events[-1]["step"] == 61


def test_losses_are_read_every_check_every_steps_and_before_any_save():
    guard, view = _guard(check_every=10), FakeView()
    view.guards = [guard]
    guard.on_train_start(view)
    for _ in range(3):
        view.step_with(guard, 0.5)
    assert len(guard._pending) == 3 and len(guard.rule.recent) == 0
    view.step_with(guard, float("nan"))
    with pytest.raises(TrainingError, match="non-finite loss"):  # a save clears pending checks first
        view.prepare_save()


def test_non_finite_weights_veto_a_save():
    guard, view = _guard(), FakeView()
    view.guards = [guard]
    view.weight = torch.tensor([1.0, float("inf"), 0.0])
    with pytest.raises(TrainingError, match="non-finite weights"):
        view.prepare_save()


def test_rollback_asks_for_the_last_snapshot_with_a_lower_lr_and_the_batch_skipped():
    guard, view = _guard("rollback", window=10, check_every=5), FakeView()
    guard.on_train_start(view)
    for _ in range(20):
        view.step_with(guard, 0.5)
    assert guard.snapshot is not None and guard.snapshot.step == 20  # taken at the window's multiples
    view.step_with(guard, float("nan"))
    for _ in range(4):
        view.step_with(guard, 0.5)
    target = view.control.rollback_to
    assert target is not None and target.step == 10  # the newest snapshot at least a window before step 21
    restored = target.train_state()
    assert restored["rollbacks"] == 1 and restored["lr_scale"] == 0.5
    assert restored["skipped_batches"] == [[0, 20]]  # (epoch, batch) of step 21
    assert restored["events"][-1]["action"] == "rollback"


def test_the_guards_snapshot_is_saved_with_its_state_but_never_inside_itself():
    guard, view = _guard("rollback", window=10), FakeView()
    guard.on_train_start(view)
    state = guard.state_dict()
    assert len(state["snapshots"]) == 1 and isinstance(state["snapshots"][0]["tree"], str)
    other = _guard("rollback", window=10)
    other.load_state_dict(state)
    assert other.snapshot is not None and torch.equal(other.snapshot.tensors["w"], guard.snapshot.tensors["w"])


# ----------------------------------------------------------------------------- checkpoint cadence

def _saver(tmp_path, **cadence) -> CheckpointSaver:
    options = {"every_n_steps": None, "every_n_epochs": None, "every_seconds": None, "keep_last": 100}
    options.update(cadence)
    return CheckpointSaver(tmp_path, **options, warn=lambda m: None)


def _saved_steps(tmp_path) -> list[int]:
    return sorted(int(p.name[len(checkpoint.PREFIX):]) for p in checkpoint.step_folders(tmp_path))


def test_checkpoints_every_n_steps(tmp_path):
    saver, view = _saver(tmp_path, every_n_steps=4), FakeView()
    for _ in range(10):
        view.step_with(saver, 0.1)
    assert _saved_steps(tmp_path) == [4, 8]


def test_checkpoints_every_n_epochs_and_the_best_by_the_monitor(tmp_path):
    saver, view = _saver(tmp_path, every_n_epochs=2), FakeView()
    for epoch, val_loss in enumerate([0.9, 0.5, 0.7, 0.4], start=1):
        view.state.step, view.state.epoch = epoch * 10, epoch
        saver.on_epoch_end(view, {"epoch": epoch, "val_loss": val_loss})
    assert _saved_steps(tmp_path) == [20, 40]
    manifest, _, _ = checkpoint.load(tmp_path / checkpoint.BEST)
    assert manifest["val_loss"] == 0.4


def test_checkpoints_every_n_seconds(tmp_path, monkeypatch):
    clock = iter([0.0, 0.0, 10.0, 31.0, 31.0, 40.0, 62.0, 62.0])
    monkeypatch.setattr("trainlab.callbacks.checkpoint_saver.time.monotonic", lambda: next(clock))
    saver, view = _saver(tmp_path, every_seconds=30.0), FakeView()
    saver.on_train_start(view)
    for _ in range(4):
        view.step_with(saver, 0.1)
    assert _saved_steps(tmp_path) == [2, 4]


def test_a_vetoed_save_writes_nothing(tmp_path):
    saver, view = _saver(tmp_path, every_n_steps=1), FakeView()
    view.control.rollback_to = view.snapshot()
    view.step_with(saver, 0.1)
    assert _saved_steps(tmp_path) == []


def test_keep_last_prunes_old_checkpoints(tmp_path):
    saver, view = _saver(tmp_path, every_n_steps=1, keep_last=2), FakeView()
    for _ in range(5):
        view.step_with(saver, 0.1)
    assert _saved_steps(tmp_path) == [4, 5]


# ----------------------------------------------------------------------------- LR adapter, signals, progress

class StepSchedule:
    def __call__(self, step: int) -> float:
        return 1.0 if step < 3 else 0.1


def test_the_lr_adapter_writes_schedule_times_rollback_scale():
    adapter, view = LRAdapter(StepSchedule()), FakeView()
    for step in range(5):
        view.state.step = step
        view.state.lr_scale = 0.5 if step == 4 else 1.0
        adapter.on_step_start(view)
    assert view.lr_factors == [1.0, 1.0, 1.0, 0.1, 0.05]


class Plateau:
    monitor = "val_loss"

    def __init__(self):
        self.seen: list[float] = []

    def __call__(self, step: int) -> float:
        return 1.0

    def observe(self, value: float) -> None:
        self.seen.append(value)

    def state_dict(self):
        return {"seen": list(self.seen)}

    def load_state_dict(self, state):
        self.seen = list(state["seen"])


def test_the_lr_adapter_feeds_adaptive_schedules_and_saves_their_state():
    schedule = Plateau()
    adapter, view = LRAdapter(schedule), FakeView()
    adapter.on_validation_end(view, {"val_loss": 0.7})
    adapter.on_validation_end(view, {"val_loss": 0.6})
    other = LRAdapter(Plateau())
    other.load_state_dict(adapter.state_dict())
    assert other.schedule.seen == [0.7, 0.6]


def test_a_signal_stops_at_the_next_step_end():
    stop, view = SignalStop(), FakeView()
    view.step_with(stop, 0.1)
    assert view.control.interrupted_by is None
    stop.handler(signal.SIGTERM, None)
    view.step_with(stop, 0.1)
    assert view.control.interrupted_by == signal.SIGTERM
    assert not view.control.should_stop  # not the run's decision: the loop ends on interrupted_by
    assert view.control.state_dict() == {"should_stop": False, "stop_reason": None}
    view.control.stop("early stopping")  # the run's own stop at the same step is kept for the resume
    assert view.control.state_dict() == {"should_stop": True, "stop_reason": "early stopping"}


def test_a_second_ctrl_c_stops_at_once():
    stop = SignalStop()
    stop.handler(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        stop.handler(signal.SIGINT, None)


def test_progress_lines_come_every_n_seconds_with_rate_and_eta(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("trainlab.callbacks.progress.time.monotonic", lambda: now[0])
    lines: list[str] = []
    progress, view = ProgressLog("val_accuracy", every_seconds=30.0, write=lines.append), FakeView(total_steps=100)
    progress.on_train_start(view)
    for _ in range(40):  # one step per second, 32 samples each
        now[0] += 1.0
        view.state.samples_seen += 32
        view.step_with(progress, 0.25)
    assert len(lines) == 1
    assert "step 30/100" in lines[0] and "32.0 samples/s" in lines[0] and "ETA 1:10" in lines[0]
    assert "loss 0.25" in lines[0]


def test_the_progress_bar_shows_the_epoch_that_ended_at_its_end():
    """The bar's last frame of a 2-epoch run read "epoch 3/2": at an epoch's end state.epoch already counts it."""
    bar, view = ProgressBar("val_loss", refresh_s=0.0), FakeView(total_steps=20, epochs=2)
    bar.on_train_start(view)
    try:
        shown = []
        for epoch in range(2):
            for _ in range(10):
                view.step_with(bar, 0.5)
                shown.append(bar._progress.tasks[0].description)
            view.state.epoch = epoch + 1  # as the loop counts an epoch before its epoch-end hooks
            bar.on_epoch_end(view, {"train_loss": 0.5, "val_loss": 0.4})
            shown.append(bar._progress.tasks[0].description)
    finally:
        bar.on_train_end(view)
    assert shown == ["epoch 1/2"] * 11 + ["epoch 2/2"] * 11


def test_progress_kind_and_eta_format():
    assert progress_kind("auto", is_tty=True) == "bar" and progress_kind("auto", is_tty=False) == "log"
    assert progress_kind("off", is_tty=True) is None
    assert format_eta(3725) == "1:02:05" and format_eta(65) == "1:05" and format_eta(None) == "?"


def test_step_records_every_n_steps_with_the_mean_loss_since_the_last():
    logger, view = StepLogger(every_n_steps=3, micro_batches_per_epoch=10), FakeView()
    logger.on_train_start(view)
    for loss, rows in zip([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [32, 32, 32, 32, 32, 16, 32], strict=True):
        view.state.samples_seen += rows  # the loop counts a step's rows before its step-end hooks
        view.step_with(logger, loss)
    records = view.state.step_records
    assert [r["step"] for r in records] == [3, 6]
    # per-sample means: steps of equal rows average plainly; a short step counts for its rows
    assert records[0]["train_loss"] == 2.0 and records[1]["train_loss"] == pytest.approx((4 * 32 + 5 * 32 + 6 * 16) / 80)
    assert records[0]["epoch"] == 0.3 and records[0]["grad_norm"] == 2.5 and records[0]["scope"] == "step"
