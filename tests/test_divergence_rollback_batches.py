"""Which batches a divergence rollback skips, and what the run sees before the guard has judged a step.

A tiny regression (64 rows, batches of 8) driven through the Trainer directly, one training row poisoned: its
target NaN (the step's loss is NaN), or a loss whose value stays finite while its gradient is NaN (the weights
go NaN, the loss does not). The batch each row falls in is read from the epoch's permutation
(``BatchPlan.order``), independently of the guard.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trainlab.builders import build, run_scope
from trainlab.callbacks.base import Callback
from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.callbacks.divergence_guard import DivergenceGuard
from trainlab.config import validate
from trainlab.data.dataset import Split
from trainlab.engine.batching import BatchPlan, TensorBatches
from trainlab.engine.loop import Limits, Trainer, Validation
from trainlab.engine.objective import Objective
from trainlab.engine.step import StandardStep, StepOptions
from trainlab.losses.regression import MSELoss

ROWS, BATCH, SEED = 64, 8, 0
MARK = 0.5  # the target value that makes PoisonedGradient's gradient NaN


class PoisonedGradient(MSELoss):
    """MSE whose value is unchanged but whose gradient is NaN on a batch holding a target equal to MARK:
    ``0 * sqrt(0)`` adds 0 to the loss and ``0 * inf`` to the gradient."""

    def forward(self, pred, target, weight=None):
        loss = super().forward(pred, target, weight)
        if bool((target == MARK).any()):
            loss = loss + 0.0 * torch.sqrt((pred * 0.0).sum())
        return loss


def _split(n: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.randn(4, 1, generator=generator) + 0.1 * torch.randn(n, 1, generator=generator)
    return Split(x, y)


def _row_in(plan: BatchPlan, epoch: int, micro_batch: int) -> int:
    """A training row that epoch ``epoch`` puts in micro-batch ``micro_batch``."""
    return int(plan.order(epoch)[micro_batch * plan.batch_size])


def _trainer(guard: DivergenceGuard, *, accum: int = 1, poison: dict[int, float] | None = None,
             loss: MSELoss | None = None, callbacks: tuple[Callback, ...] = (), epochs: int = 1) -> Trainer:
    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    loss = loss or MSELoss()
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9), Objective(loss),
                        StepOptions())
    train, val = _split(ROWS, 0), _split(20, 1)
    for row, value in (poison or {}).items():
        train.y[row] = value

    def evaluate() -> dict[str, float]:
        step.set_mode(training=False)
        with torch.no_grad():
            return {"loss": float(MSELoss()(step.predict(val.x), val.y))}

    batches = TensorBatches(train, None, SEED, torch.device("cpu"))
    return Trainer(step, batches, BatchPlan(ROWS, BATCH, SEED, accum), Limits(epochs, None),
                   [guard, *callbacks], Validation(evaluate, None))


def test_a_rollback_with_accumulation_skips_every_micro_batch_of_the_bad_step():
    """Steps of two micro-batches, the bad row in the first of step 2's (micro-batches 2 and 3): which of the
    two made the step's mean loss NaN is not known, so both are skipped, once, and the run goes on. The
    guard skipped the step's last micro-batch alone, again at every rollback, replaying the bad one until
    the rollbacks ran out."""
    plan = BatchPlan(ROWS, BATCH, SEED, 2)
    guard = DivergenceGuard("rollback", 50, 4, 0.5, 3, check_every=1, micro_batches_per_step=2)
    trainer = _trainer(guard, accum=2, poison={_row_in(plan, 0, 2): math.nan})
    state = trainer.fit()
    assert state.finished and state.rollbacks == 1
    assert state.skipped_batches == [[0, 2], [0, 3]]
    (event,) = state.events
    assert event["batches"] == [2, 3] and event["action"] == "rollback"


def test_the_guard_a_run_builds_knows_its_micro_batches_per_step(tmp_path):
    config = validate({"name": "accum", "seed": 0, "data": {"source": "diabetes"}, "model": {"name": "linear"},
                       "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 16,
                                    "grad_accum_steps": 3, "epochs": 1,
                                    "divergence": {"policy": "rollback"}},
                       "output": {"progress": "off"}, "runtime": {"num_threads": 1}})
    with run_scope(config):
        built = build(config, quiet=True)
    (guard,) = built.trainer.callbacks.find(DivergenceGuard)
    assert guard.micro_batches_per_step == 3


def test_weights_a_finite_loss_made_non_finite_at_an_epochs_end_skip_its_last_batch():
    """The epoch's last step has a finite loss and a NaN gradient: the weights are NaN when the epoch closes.
    Its last micro-batch (7 of epoch 0) is skipped, and the run finishes. The skip was recorded as batch -1 of
    the next epoch, which skips nothing: the same step was replayed until the rollbacks ran out."""
    plan = BatchPlan(ROWS, BATCH, SEED, 1)
    guard = DivergenceGuard("rollback", 50, 4, 0.5, 3, check_every=1)
    state = _trainer(guard, poison={_row_in(plan, 0, 7): MARK}, loss=PoisonedGradient()).fit()
    assert state.finished and state.rollbacks == 1 and state.skipped_batches == [[0, 7]]
    (event,) = state.events
    assert (event["epoch"], event["batch"], event["problem"]) == (1, 7, "non-finite weights")


class ValidationsSeen(Callback):
    """The monitored value each on_validation_end is given (a tuner's pruner reports these to Optuna)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_end(self, view: Any, record: dict[str, Any]) -> None:
        self.values.append(record["val_loss"])


def test_no_validation_scores_weights_the_guard_has_not_judged():
    """The guard reads the losses every 10 steps; an epoch is 8. A NaN in the epoch's last step made the
    epoch's validation NaN, and its hooks (early stopping, a tuner's pruner: Optuna keeps the first value
    reported for a step) saw it before the guard rolled the step back."""
    plan = BatchPlan(ROWS, BATCH, SEED, 1)
    seen = ValidationsSeen()
    guard = DivergenceGuard("rollback", 50, 10, 0.5, 3)
    state = _trainer(guard, poison={_row_in(plan, 0, 7): math.nan}, callbacks=(seen,), epochs=2).fit()
    assert state.finished and state.rollbacks >= 1 and [0, 7] in state.skipped_batches
    assert seen.values and all(math.isfinite(value) for value in seen.values)
    assert all(math.isfinite(record["val_loss"]) for record in state.history)


def test_a_checkpoint_due_at_the_bad_step_keeps_the_rollbacks_cause(tmp_path):
    """A NaN loss asks for a rollback in on_step_end; the checkpoint due at that step then finds the weights
    NaN too. One event, naming the loss: the save's check handled the step again and replaced it by a
    'non-finite weights' one."""
    plan = BatchPlan(ROWS, BATCH, SEED, 1)
    saver = CheckpointSaver(tmp_path, every_n_steps=1, every_n_epochs=None, every_seconds=None, keep_last=2)
    guard = DivergenceGuard("rollback", 50, 4, 0.5, 3, check_every=1)
    state = _trainer(guard, poison={_row_in(plan, 0, 2): math.nan}, callbacks=(saver,)).fit()
    assert state.finished and state.rollbacks == 1 and state.skipped_batches == [[0, 2]]
    (event,) = state.events
    assert event["problem"] == "non-finite loss" and event["value"] == "nan"
