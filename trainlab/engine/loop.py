"""The training loop: ``Trainer.fit`` sequences epochs of steps and fires events.

Pseudo-code of :meth:`Trainer.fit`::

    on_train_start
    while not done:                        # done: finished, a stop was asked for, a signal, or epochs/max_steps
        run_epoch:
            on_epoch_start                 # skipped when resuming mid-epoch
            (a stop asked here: the epoch never happens, no record)
            for each step of the epoch's plan (from batch_in_epoch on):
                on_step_start              # e.g. the LR adapter writes the step's LR
                (a stop asked here: the step is not taken; the epoch closes as after the previous step,
                 its record's lr the one that step ran with)
                output = step.train_step(batches, state)
                on_step_end(output.loss)   # divergence guard, checkpoints, progress
                (every validation.every_n_steps steps: a mid-epoch validation, on_before_validation
                 then on_validation_end)
            on_before_validation           # a guard's pending checks: a rollback it asks replaces the validation
            record = train_<loss> sums + evaluate()  (epoch, step, lr, train_loss, val_*, elapsed_s)
            on_validation_end(record), on_epoch_end(record)
                                           # an epoch ended at a mid-epoch validation's step reuses its val_*:
                                           # on_epoch_end(record) alone (below)
    on_train_end                           # in finally, after the step is put in eval mode; every hook runs
                                           # (a user's failing one raised after the built-in ones ran); a
                                           # signal's checkpoint, written there, holds the step as the loop
                                           # left it (train mode mid-epoch), not its eval switch

An epoch that ends early has a record too: a callback's stop (``control.stop``: early stopping, a
tuner's pruning, a user's callback) or the step limit (``max_steps``, a time budget) after the
epoch's k-th step (a stop asked in that step's ``on_step_end`` or the next one's ``on_step_start``, which
is then not taken) closes it with a partial-epoch record at that step, validated, so the last
history record scores the weights training ended with (the summary's final evaluation can differ:
early stopping's restore_best, TTA, weight averaging). When that step made a mid-epoch validation
(``every_n_steps``; the stop may be its own doing: early stopping, a tuner's pruning), the record takes
its val_* from that validation (``TrainState.mid_epoch_val``, checkpointed) instead of evaluating the same
weights again, and ``on_validation_end`` is not fired a second time for them: each validation is run,
and seen by the callbacks (early stopping's patience, a pruner's reports), once. An epoch that a stop ends
before its first step (asked in its ``on_epoch_start``, or its first step's ``on_step_start``) has no record:
it never happened (as Lightning's ``should_stop`` skips the epoch's batches), and the last record, the
previous epoch's, already scores the weights training ended with.

The records the hooks are given (``on_validation_end``, ``on_epoch_end``, ``on_log``) are made JSON values after
each hook (:meth:`CallbackList.fire_record`): a callback may add its own number to them, also a NumPy
scalar or a 0-d tensor, and a value JSON cannot hold is refused at that hook, not after training. A signal (SIGINT/SIGTERM,
``control.interrupted_by``) leaves the epoch open: the run is resumed later and the epoch's record comes at
its end, as if never interrupted (a divergence stop raises, with no record). A signal is not a stop: it
ends this process's loop without touching ``control.should_stop``, so a stop decided at the signal's step, or
at the validation of the epoch it closed, is in the interrupted run's checkpoint. A checkpoint written by (or
after) the stopping step's hooks carries the stop, and the run resumed from it writes the same partial record
before it ends.

The Trainer knows nothing of models or optimizers: a :class:`~trainlab.engine.step.Step`
owns them. The epoch's data order is a pure function of (seed, epoch) (see
:mod:`trainlab.engine.batching`), and every other bit of state is captured by
:meth:`Trainer.capture`, so a run resumed from any checkpoint continues bit-identically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.callbacks.base import Callback, Event, TrainerView
from trainlab.callbacks.callback_list import CallbackList
from trainlab.callbacks.lr_adapter import LRAdapter
from trainlab.engine import snapshot
from trainlab.engine.batching import BatchPlan, TensorBatches
from trainlab.engine.snapshot import Snapshot
from trainlab.engine.state import Control, EpochSum, TrainState
from trainlab.engine.step import Step, lr_columns
from trainlab.engine.step_checks import check_step, check_step_output
from trainlab.notices import warn


@dataclass(frozen=True)
class Limits:
    """When training ends: after ``epochs`` epochs or ``max_steps`` optimizer steps, whichever comes first."""

    epochs: int | None
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set epochs or max_steps (or both)")

    def total_steps(self, steps_per_epoch: int) -> int:
        by_epochs = (self.epochs or 0) * steps_per_epoch
        if self.max_steps is None:
            return by_epochs
        return min(by_epochs, self.max_steps) if self.epochs else self.max_steps


@dataclass(frozen=True)
class Validation:
    """How the run validates: ``evaluate()`` -> metrics without prefix, at every epoch's end and, with
    ``every_n_steps``, also every that many optimizer steps inside an epoch (recorded as step records)."""

    evaluate: Callable[[], dict[str, Any]] = dict  # dict() -> {}: no validation data
    every_n_steps: int | None = None


class Trainer:
    """Runs a Step over planned batches until the limits, firing events to callbacks."""

    clock = staticmethod(time.perf_counter)  # the wall clock of train_time_s (tests put in a fake one)

    def __init__(self, step: Step, batches: TensorBatches, plan: BatchPlan, limits: Limits,
                 callbacks: Sequence[Callback] = (), validation: Validation = Validation()):
        check_step(step)
        self.step, self.batches, self.plan, self.limits = step, batches, plan, limits
        self._output_checked = False  # the first step's StepOutput is checked (check_step_output)
        self.callbacks = CallbackList(list(callbacks))
        self.validation = validation
        self.state, self.control = TrainState(), Control()
        self.view = TrainerView(self)
        self._sums: dict[str, EpochSum] = {}  # per named loss: sum of weight * step mean (EpochSum)
        self.last_loss_weight: torch.Tensor | None = None  # StepOutput.weight of the last step
        self._epoch_samples = 0
        self._fit_started: float | None = None
        self._limit_reason: str | None = None  # who set limits.max_steps, when not the config
        # a signal's run only, during on_train_end: a copy of the step's state as the loop ended, before the
        # eval switch (what :meth:`capture` checkpoints; see :meth:`_step_as_the_loop_left_it`)
        self._loop_end_step: dict[str, Any] | None = None

    @property
    def total_steps(self) -> int:
        return self.limits.total_steps(self.plan.steps_per_epoch)

    def end_at_step(self, step: int, reason: str) -> None:
        """Train until step ``step`` (a time budget re-planning the run; the epochs still cap it); the
        summary's ``stop_reason`` names ``reason``."""
        self.limits = Limits(self.limits.epochs, step)
        self._limit_reason = reason

    def add_callbacks(self, callbacks: Sequence[Callback]) -> None:
        """Add callbacks before :meth:`fit` (a run folder's callbacks join once the folder exists)."""
        self.callbacks = CallbackList([*self.callbacks.callbacks, *callbacks])

    def _step_limit_reached(self) -> bool:
        return self.limits.max_steps is not None and self.state.step >= self.limits.max_steps

    def done(self) -> bool:
        """Training ends: finished, a stop asked for, a signal received (``interrupted_by``), or a limit reached."""
        control = self.control
        if self.state.finished or control.should_stop or control.interrupted_by is not None:
            return True
        if self._step_limit_reached():
            return True
        return self.limits.epochs is not None and self.state.epoch >= self.limits.epochs

    # ------------------------------------------------------------------ fit

    # gradients on whatever the caller's mode (a notebook's torch.set_grad_enabled(False) or inference_mode
    # around fit gave torch's 'element 0 of tensors does not require grad'); evaluation turns them off itself
    @torch.inference_mode(False)
    @torch.enable_grad()
    def fit(self) -> TrainState:
        self._fit_started = self.clock()
        self._loop_end_step = None
        trained = False
        try:
            # inside the try: a failing on_train_start still gets every on_train_end (a progress bar stopped)
            self.callbacks.fire(Event.TRAIN_START, self.view)
            if self.state.validation_due:  # resumed from a checkpoint written just before a mid-epoch validation
                self._validate_due()
            while True:
                while not self.done():
                    self.run_epoch()
                if self._owes_epoch_record():  # resumed from a checkpoint written after a mid-epoch stop
                    self.close_epoch()
                    continue  # saving the epoch's checkpoint may have asked for a rollback
                # guards that check lazily clear the last steps now; a rollback there trains on
                if self.control.interrupted_by is not None or self.view.prepare_save():
                    break
                self.restore(self.control.rollback_to)
            if self.control.interrupted_by is None and not self.state.finished:
                self._finish()
            trained = True
        finally:
            self.state.train_time_s += self.clock() - self._fit_started
            self._fit_started = None
            self._loop_end_step = self._step_as_the_loop_left_it()
            self.step.set_mode(training=False)  # evaluation, restore-best and saving see the eval weights
            # every on_train_end runs, a user's failing one too: the built-in ones write the run's end
            failure = self.callbacks.fire_to_all(Event.TRAIN_END, self.view)
            self._loop_end_step = None
            if failure is not None and not trained:  # the failure training raised is the one told
                warn(f"{failure}, after training had failed (the error below)")
        if failure is not None:
            raise failure
        return self.state

    def _step_as_the_loop_left_it(self) -> dict[str, Any] | None:
        """A copy of the step's state before the eval switch of the run's end, when a signal ended the loop
        (else None): the checkpoint ``on_train_end`` writes is the point the resumed run goes on from.

        Mid-epoch the loop leaves the step in train mode, and the uninterrupted run takes its next step from
        there. The eval switch is not undone exactly by the train switch a resume makes: schedule-free AdamW
        evaluates x = lerp(y, z, 1 - 1/beta1) and rebuilds y = lerp(x, z, 1 - beta1), a rounding off in the
        last bits, so a checkpoint of the switched state resumed off the uninterrupted run's path. Copied,
        because the switch changes the parameters in place; a finished run's end is no resume point (and an
        epoch's end is in eval mode already: the next epoch switches back in either run)."""
        lossy = getattr(self.step, "eval_switch_changes_state", None)  # optional in the Step contract
        if self.control.interrupted_by is None or (lossy is not None and not lossy()):
            return None  # the switch changes no state of this step: no copy (a large model's memory)
        return snapshot.detached_copy(self.step.state_dict())

    def _finish(self) -> None:
        state = self.state
        if self.control.should_stop:
            state.stop_reason, state.stopped_early = self.control.stop_reason, True
        elif self._step_limit_reached():
            state.stop_reason = (f"max_steps={self.limits.max_steps} reached" if self._limit_reason is None
                                 else f"{self._limit_reason}: ended at step {self.limits.max_steps}")
        else:
            state.stop_reason = f"epochs={self.limits.epochs} reached"
        state.finished = True

    def run_epoch(self) -> None:
        state = self.state
        self.step.set_mode(training=True)
        if state.batch_in_epoch == 0:
            self._reset_sums()
            self.callbacks.fire(Event.EPOCH_START, self.view)
            if self.control.should_stop:
                return  # asked before the epoch's first step: the epoch never happens, and has no record
        # rolled back to a snapshot taken before its step's validation: it runs again (unless a guard rolls back)
        if state.validation_due and not self._validate_due():
            return
        skipped = frozenset(batch for epoch, batch in state.skipped_batches if epoch == state.epoch)
        view, control, fetch, train_step = self.view, self.control, self.batches.fetch, self.step.train_step
        step_start, step_end = self.callbacks.hooks[Event.STEP_START], self.callbacks.hooks[Event.STEP_END]
        every = self.validation.every_n_steps
        ran_with = None  # the LR columns of the last step taken, when a stop before the next one ends the epoch
        # only a hook besides the LR schedule's can ask a stop before a step: the plain loop reads no LRs here
        stoppable = any(not isinstance(getattr(hook, "__self__", None), LRAdapter) for hook in step_start)
        for position, indices in self.plan.steps(state.epoch, state.batch_in_epoch, skipped, self.batches.device):
            # before the LR adapter writes the next step's (or a stop is already asked: a validation re-run)
            lrs = lr_columns(self.step) if stoppable or control.should_stop else None
            for hook in step_start:
                hook(view)
            if control.should_stop:  # asked by these hooks, or by a validation run again after a rollback above
                ran_with = lrs  # the record's lr is the one the last step ran with, not the next one's
                break  # asked before this step: it is not taken, the epoch ends at the last step that was
            state.batch_in_epoch = position
            if not indices:
                continue  # every micro-batch of this step was skipped after a rollback
            output = train_step([fetch(index, state.step, state.epoch, micro) for micro, index in enumerate(indices)],
                                state)
            if not self._output_checked:
                check_step_output(self.step, output)
                self._output_checked = True
            state.step += 1
            self._tally(output.losses, output.samples, output.weight)
            self.last_loss_weight = output.weight  # TrainerView.loss_weight: the step records weigh it so too
            loss = output.losses["loss"]
            state.validation_due = bool(every) and self._validation_due(position)  # before a checkpoint is written
            for hook in step_end:
                hook(view, loss)
            if state.validation_due and control.rollback_to is None and not self._validate_due():
                return  # a rollback, restored (the restored state says where to continue)
            if control.rollback_to is not None:
                self.restore(control.rollback_to)
                return  # the restored state says where to continue
            if (control.should_stop or control.interrupted_by is not None
                    or (self.limits.max_steps is not None and state.step >= self.limits.max_steps)):
                break  # the limit is read every step: a time budget moves it
        if state.batch_in_epoch < self.plan.micro_batches and control.interrupted_by is not None:
            return  # a signal mid-epoch: the resumed run goes on with this epoch, whose record comes at its end
        if state.batch_in_epoch == 0:
            return  # stopped before the epoch's first step (in its on_step_start): no step, no record
        self.close_epoch(ran_with)

    def _owes_epoch_record(self) -> bool:
        """Done (called once :meth:`done` holds) mid-epoch without the partial epoch's record: a run resumed from
        the checkpoint its last step wrote after a stop (or the step limit) was decided, where the uninterrupted
        run went on to the record."""
        return self.state.batch_in_epoch > 0 and self.control.interrupted_by is None and not self.state.finished

    def close_epoch(self, lrs: dict[str, float] | None = None) -> None:
        """The epoch's record (a partial epoch's when a stop or the step limit ended it early), and its hooks:
        ``on_validation_end`` and ``on_epoch_end``, the first left out when the record reuses a mid-epoch
        validation of this step (its callbacks saw that validation already). ``lrs``: the LR columns the last
        step ran with, when the step holds the next one's already (a stop asked in ``on_step_start``)."""
        if not self._checks_clear():  # a guard found a bad step: undone (restored), not validated and recorded
            return
        record, reused = self.end_epoch()
        if lrs is not None:
            record.update(lrs)  # the same keys, in place: the history's record too
        if not reused:
            self.callbacks.fire_record(Event.VALIDATION_END, self.view, record)
        self.callbacks.fire_record(Event.EPOCH_END, self.view, record)
        if self.control.rollback_to is not None:  # asked for while saving the epoch's checkpoint
            self.restore(self.control.rollback_to)

    def end_epoch(self) -> tuple[dict[str, Any], bool]:
        """The epoch's record, and whether its val_* are a mid-epoch validation's of this step (reused)."""
        state = self.state
        state.epoch += 1
        state.batch_in_epoch = 0
        record: dict[str, Any] = {"epoch": state.epoch, "step": state.step, **lr_columns(self.step)}
        for name, tally in self._sums.items():  # train_loss is the data loss alone; train_penalty apart
            record[f"train_{name}"] = tally.mean()
        self.step.set_mode(training=False)  # validation callbacks see the weights that were evaluated
        reused = self._validation_at_this_step()
        metrics = self.validation.evaluate() if reused is None else reused
        record.update({f"val_{k}": v for k, v in metrics.items()})
        record["elapsed_s"] = round(self.elapsed(), 6)
        state.history.append(record)
        state.mid_epoch_val = None  # the epoch is closed: a later validation belongs to the next one
        return record, reused is not None

    def _validation_at_this_step(self) -> dict[str, Any] | None:
        """The metrics of the mid-epoch validation made at the current step (no training step since, so the
        weights it evaluated are the current ones), else None."""
        made = self.state.mid_epoch_val
        return made["metrics"] if made is not None and made["step"] == self.state.step else None

    def _validation_due(self, position: int) -> bool:
        every = self.validation.every_n_steps
        # not on an epoch's last step: the epoch record validates there anyway
        return bool(every) and self.state.step % every == 0 and position < self.plan.micro_batches

    def _validate_due(self) -> bool:
        """The mid-epoch validation the last step owes (``state.validation_due``), and its callbacks. False when a
        rollback was restored: a guard's, instead of the validation (:meth:`_checks_clear`), or one a callback
        asked for in ``on_validation_end`` (the caller returns: the restored state says where to continue)."""
        self.state.validation_due = False
        if self._checks_clear():
            self.callbacks.fire_record(Event.VALIDATION_END, self.view, self.validate_mid_epoch())
            self.step.set_mode(training=True)
            if self.control.rollback_to is None:
                return True
            self.restore(self.control.rollback_to)
        return False

    def _checks_clear(self) -> bool:
        """Fire ``on_before_validation``: a guard that checks lazily (the divergence guard) clears its pending
        steps. When one asked for a rollback (``control.rollback_to``) it is restored here and the answer is
        False: those weights are not validated, so no record, early stopping or tuner's pruner sees them."""
        if self.callbacks.hooks[Event.BEFORE_VALIDATION]:
            self.callbacks.fire(Event.BEFORE_VALIDATION, self.view)
        if self.control.rollback_to is None:
            return True
        self.restore(self.control.rollback_to)
        return False

    def validate_mid_epoch(self) -> dict[str, Any]:
        """A validation pass inside an epoch, recorded as a step record (``scope: step``)."""
        state = self.state
        epoch = state.epoch + state.batch_in_epoch / self.plan.micro_batches
        record: dict[str, Any] = {"scope": "step", "step": state.step, "epoch": round(epoch, 6),
                                  **lr_columns(self.step)}
        self.step.set_mode(training=False)
        metrics = self.validation.evaluate()
        # kept for a partial epoch closed at this step (a stop its hooks decide, the step limit)
        state.mid_epoch_val = {"step": state.step, "metrics": metrics}
        record.update({f"val_{k}": v for k, v in metrics.items()})
        record["elapsed_s"] = round(self.elapsed(), 6)
        self.view.log(record)
        return record

    def elapsed(self) -> float:
        """Training wall time so far, summed over resumes."""
        running = 0.0 if self._fit_started is None else self.clock() - self._fit_started
        return self.state.train_time_s + running

    def _reset_sums(self) -> None:
        for tally in self._sums.values():
            tally.reset()
        self._epoch_samples = 0

    def _tally(self, losses: dict[str, torch.Tensor], samples: int, weight: torch.Tensor | None = None) -> None:
        """Add a step's losses to the epoch's sums: each weighted by the step's rows, the data loss by
        ``weight`` where the step gives one (StepOutput.weight: what its mean divides by)."""
        sums = self._sums
        for name, value in losses.items():
            tally = sums.get(name)
            if tally is None:
                tally = sums[name] = EpochSum(value.device)
            tally.add(value, weight if weight is not None and name == "loss" else samples)
        self._epoch_samples += samples
        self.state.samples_seen += samples

    # ------------------------------------------------------------------ capture / restore

    def capture(self) -> Snapshot:
        """Everything needed to continue bit-identically (tensors referenced, not copied). In a signal's
        ``on_train_end`` the step's part is its state as the loop left it, before the eval switch that the
        end's hooks see (:meth:`_step_as_the_loop_left_it`)."""
        train_state = self.state.state_dict()
        train_state["train_time_s"] = self.elapsed()  # a resumed run keeps counting wall time
        step_state = self._loop_end_step if self._loop_end_step is not None else self.step.state_dict()
        return snapshot.capture({
            "train_state": train_state,
            "control": self.control.state_dict(),
            "step": step_state,
            "callbacks": self.callbacks.state_dict(),
            "epoch_sums": {name: tally.state_dict() for name, tally in self._sums.items()},
            "epoch_samples": self._epoch_samples,
        }, self.batches.device)

    def restore(self, captured: Snapshot) -> None:
        # inside fit (a rollback) the wall time already spent stays spent: train_time_s never goes back
        spent = self.elapsed() if self._fit_started is not None else None
        parts = snapshot.restore(captured, self.batches.device)
        self._loop_end_step = None  # the step is the restored one now
        self.step.load_state_dict(parts["step"])
        self.callbacks.load_state_dict(parts["callbacks"])
        self.state = TrainState()
        self.state.load_state_dict(parts["train_state"])
        if spent is not None:
            self.state.train_time_s, self._fit_started = spent, self.clock()
        self.control = Control()
        self.control.load_state_dict(parts["control"])
        self._sums = {}
        self._epoch_samples = int(parts["epoch_samples"])
        for name, tally_state in parts["epoch_sums"].items():
            self._sums[name] = EpochSum(self.batches.device)
            self._sums[name].load_state_dict(tally_state, rows_so_far=self._epoch_samples)
