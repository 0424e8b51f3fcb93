"""The training loop: ``Trainer.fit`` drives epochs of optimizer steps and fires events.

Pseudo-code of :meth:`Trainer.fit`::

    on_train_start
    while not done:                        # done: epochs or max_steps reached, or control.should_stop
        run_epoch:
            on_epoch_start                 # skipped when resuming mid-epoch
            for each batch of the epoch's permutation (from batch_in_epoch on):
                on_step_start              # e.g. the LR schedule writes the step's LR
                loss = train_step(batch)   # forward, loss + penalties, backward, clip, decay, step
                on_step_end(loss)          # divergence guard, checkpoints, progress
            record = evaluate(val)         # epoch, step, lr, train_loss, val_loss, val_<metric>...
            on_validation_end(record), on_epoch_end(record)
    on_train_end                           # in finally

The epoch's data order is a pure function of (seed, epoch), and every other bit
of state (weights, optimizer, schedule, callbacks, RNGs, counters, the running
epoch loss) is captured by :meth:`capture`, so a run resumed from any checkpoint
continues bit-identically.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.data.dataset import Dataset, Split, epoch_permutation
from trainlab.callbacks.base import Callback, CallbackList, Event
from trainlab.engine.serialize import join_state, split_state
from trainlab.engine.state import Control, EpochSum, TrainState
from trainlab.losses.base import Loss
from trainlab.losses.penalties import l1_penalty, l2_penalty, penalised_parameters
from trainlab.metrics import compute
from trainlab.optim import requires_closure

_NO_AUTOCAST = contextlib.nullcontext()  # reusable; fp32 steps skip building a context each time


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs, resolved from the strategy (batch size already an int)."""

    batch_size: int
    epochs: int | None
    max_steps: int | None
    seed: int
    grad_accum_steps: int = 1
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float = 0.0  # decoupled, decay group only
    eval_batch_size: int = 2048
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast)
    channels_last: bool = False  # 4-d inputs and the model's conv weights in NHWC layout


class Trainer:
    """Owns the model, loss, optimizer and data for one run; callbacks plug in the rest."""

    def __init__(self, model: nn.Module, loss_fn: Loss, optimizer: torch.optim.Optimizer, data: Dataset,
                 settings: LoopSettings, metric_names: Sequence[str], callbacks: Sequence[Callback] = (),
                 device: torch.device | str = "cpu", schedule: Callable[[int], float] | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self._input_format = torch.channels_last if settings.channels_last else None
        if self._input_format is not None:
            self.model.to(memory_format=self._input_format)  # 4-d weights only; others are left as they are
        self.loss_fn = loss_fn.to(self.device)
        self.optimizer = optimizer
        self.data = data
        self.settings = settings
        self.metric_names = list(metric_names)
        self.schedule = schedule
        self.callbacks = CallbackList(list(callbacks))
        self.state = TrainState()
        self.control = Control()
        self.train_x, self.train_y = data.train.x.to(self.device), data.train.y.to(self.device)
        self.n_train = len(data.train)
        self.steps_per_epoch = self._steps_per_epoch()
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]
        self.refresh_parameters()
        self._epoch_loss = EpochSum(self.device)  # sum of batch_size * data loss
        self._epoch_penalty = EpochSum(self.device)  # the same for the l1/l2 terms
        self._epoch_samples = 0
        self._closure = requires_closure(optimizer)
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
        self.scaler = torch.amp.GradScaler(self.device.type) if settings.precision == "fp16" else None
        self._schedule_free = hasattr(optimizer, "train") and hasattr(optimizer, "eval")  # see set_train_mode
        self._fit_started = time.perf_counter()
        self._fitting = False

    def refresh_parameters(self) -> None:
        """Re-read which parameters train (call after freezing or unfreezing)."""
        # decoupled weight decay: weights (ndim >= 2) of each group, scaled by that group's lr
        # (group index, not the dict: optimizer.load_state_dict replaces the group dicts)
        self.decay_groups = [
            (index, params) for index, group in enumerate(self.optimizer.param_groups)
            if group.get("group") in ("decay", "all")
            and (params := [p for p in group["params"] if p.requires_grad and p.ndim >= 2])
        ]
        self.penalty_params = penalised_parameters(self.model)

    # ------------------------------------------------------------------ sizes and stopping

    def _steps_per_epoch(self) -> int:
        micro = -(-self.n_train // self.settings.batch_size)
        return -(-micro // self.settings.grad_accum_steps)

    @property
    def total_steps(self) -> int:
        by_epochs = (self.settings.epochs or 0) * self.steps_per_epoch
        if self.settings.max_steps is None:
            return by_epochs
        return min(by_epochs, self.settings.max_steps) if self.settings.epochs else self.settings.max_steps

    def done(self) -> bool:
        if self.control.should_stop:
            return True
        if self.settings.max_steps is not None and self.state.step >= self.settings.max_steps:
            return True
        return self.settings.epochs is not None and self.state.epoch >= self.settings.epochs

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ fit

    def fit(self) -> TrainState:
        started = self._fit_started = time.perf_counter()
        self._fitting = True
        self.callbacks.fire(Event.TRAIN_START, self)
        try:
            while not self.done():
                self.run_epoch()
            if self.control.interrupted_by is not None:
                return self.state
            if self.control.should_stop and self.state.stop_reason is None:
                self.state.stop_reason = self.control.stop_reason
                self.state.stopped_early = True
            if self.state.stop_reason is None:
                self.state.stop_reason = self._limit_reason()
            self.state.finished = True
        finally:
            self.state.train_time_s += time.perf_counter() - started
            self._fitting = False
            self.callbacks.fire(Event.TRAIN_END, self)
        return self.state

    def _limit_reason(self) -> str:
        if self.settings.max_steps is not None and self.state.step >= self.settings.max_steps:
            return f"max_steps={self.settings.max_steps} reached"
        return f"epochs={self.settings.epochs} reached"

    def run_epoch(self) -> None:
        state, settings = self.state, self.settings
        if self._schedule_free:
            self.optimizer.train()
        self.model.train()
        if state.batch_in_epoch == 0:
            self._epoch_loss.reset()
            self._epoch_penalty.reset()
            self._epoch_samples = 0
            self.callbacks.fire(Event.EPOCH_START, self)
        order = epoch_permutation(self.n_train, settings.seed, state.epoch).to(self.device)
        bs, accum = settings.batch_size, settings.grad_accum_steps
        n_micro = -(-self.n_train // bs)
        skipped = {tuple(pair) for pair in state.skipped_batches if pair[0] == state.epoch}
        micro = state.batch_in_epoch
        while micro < n_micro:
            if accum == 1 and not skipped:  # the common case, kept lean: one slice, no lists
                batches = [order[micro * bs:(micro + 1) * bs]]
            else:
                batches = [order[b * bs:(b + 1) * bs] for b in range(micro, min(micro + accum, n_micro))
                           if (state.epoch, b) not in skipped]
            self.callbacks.fire(Event.STEP_START, self)
            loss = self.train_step(batches) if batches else None
            micro += accum
            state.batch_in_epoch = min(micro, n_micro)
            if loss is None:
                continue
            state.step += 1
            self.callbacks.fire(Event.STEP_END, self, loss)
            if self.control.rollback_to is not None:
                self.restore(self.control.rollback_to)
                self.control.rollback_to = None
                return  # the restored state says where to continue
            if self.control.should_stop or (settings.max_steps is not None and state.step >= settings.max_steps):
                break
        if state.batch_in_epoch < n_micro and not self._epoch_end_due():
            return
        record = self.end_epoch()
        self.callbacks.fire(Event.VALIDATION_END, self, record)
        self.callbacks.fire(Event.EPOCH_END, self, record)

    def _epoch_end_due(self) -> bool:
        # a max_steps stop inside an epoch still validates, so the run ends with a record
        return self.settings.max_steps is not None and self.state.step >= self.settings.max_steps

    def end_epoch(self) -> dict[str, Any]:
        state = self.state
        state.epoch += 1
        state.batch_in_epoch = 0
        record: dict[str, Any] = {"epoch": state.epoch, "step": state.step, "lr": self.current_lr()}
        samples = max(self._epoch_samples, 1)
        record["train_loss"] = self._epoch_loss.value() / samples  # the data loss alone
        if self.settings.l1 or self.settings.l2:
            record["train_penalty"] = self._epoch_penalty.value() / samples  # l1 * sum|w| + l2 * sum w^2
        record.update({f"val_{k}": v for k, v in self.evaluate(self.data.val).items()})
        record["elapsed_s"] = round(state.train_time_s + time.perf_counter() - self._fit_started, 6)
        state.history.append(record)
        return record

    # ------------------------------------------------------------------ one step

    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.settings.precision
        if precision == "fp32":
            return _NO_AUTOCAST
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.train_x[index], self.train_y[index]
        if self.data.train_transform is not None:
            x = self.data.train_transform(x, self._augment_generator())
        return x, y

    def _augment_generator(self) -> torch.Generator:
        # augmentation randomness is a pure function of (seed, step): nothing to save for resume
        generator = getattr(self, "_generator", None)
        if generator is None:
            generator = self._generator = torch.Generator(device=self.device)
        return generator.manual_seed(self.settings.seed * 7_919 + self.state.step)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._input_format is not None and x.ndim == 4:
            x = x.contiguous(memory_format=self._input_format)
        with self._autocast():
            return self.model(x)

    def _data_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        output = self._forward(x)
        return self.loss_fn(output.float() if output.dtype != torch.float32 else output, y)

    def _penalty(self) -> torch.Tensor | None:
        settings = self.settings
        if not (settings.l1 or settings.l2) or not self.penalty_params:
            return None
        total = settings.l1 * l1_penalty(self.penalty_params) if settings.l1 else None
        if settings.l2:
            l2 = settings.l2 * l2_penalty(self.penalty_params)
            total = l2 if total is None else total + l2
        return total

    def train_step(self, indices: list[torch.Tensor]) -> torch.Tensor:
        """One optimizer step over ``len(indices)`` micro-batches; returns the mean data loss (a tensor)."""
        settings, optimizer = self.settings, self.optimizer
        scale = 1.0 / len(indices)
        total = None
        samples = 0
        if self._closure:  # L-BFGS re-evaluates the loss itself
            x, y = self._batch(torch.cat(indices))

            def closure() -> torch.Tensor:
                optimizer.zero_grad(set_to_none=True)
                loss = self._data_loss(x, y)
                penalty = self._penalty()
                (loss if penalty is None else loss + penalty).backward()
                return loss

            total = optimizer.step(closure).detach()
            samples = len(x)
        else:
            for index in indices:
                x, y = self._batch(index)
                loss = self._data_loss(x, y)
                penalty = self._penalty()
                objective = loss if penalty is None else loss + penalty
                objective = objective * scale if scale != 1.0 else objective
                (objective if self.scaler is None else self.scaler.scale(objective)).backward()
                detached = loss.detach()
                self._epoch_loss.add(detached, len(index))
                if penalty is not None:
                    self._epoch_penalty.add(penalty.detach(), len(index))
                part = detached if len(indices) == 1 else detached * len(index)
                total = part if total is None else total + part
                samples += len(index)
            if len(indices) > 1:
                total = total / samples
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)  # clip and decay see true gradients
            if settings.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(self._trainable(), settings.clip_grad_norm, foreach=True)
            if settings.clip_grad_value is not None:
                torch.nn.utils.clip_grad_value_(self._trainable(), settings.clip_grad_value)
            if settings.weight_decay:  # decoupled: w <- w - lr * wd * w
                with torch.no_grad():
                    for index, params in self.decay_groups:
                        lr = optimizer.param_groups[index]["lr"]
                        torch._foreach_mul_(params, 1.0 - lr * settings.weight_decay)
            if self.scaler is None:
                optimizer.step()
            else:
                self.scaler.step(optimizer)  # skips the step when the scaled gradients overflowed
                self.scaler.update()
            optimizer.zero_grad(set_to_none=True)
        if self._closure:
            self._epoch_loss.add(total, samples)
        self._epoch_samples += samples
        self.state.samples_seen += samples
        return total

    def _trainable(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def predict_outputs(self, split: Split) -> torch.Tensor:
        was_training = self.model.training
        if self._schedule_free:
            self.optimizer.eval()
        self.model.eval()
        outputs = []
        for start in range(0, len(split), self.settings.eval_batch_size):
            x = split.x[start:start + self.settings.eval_batch_size].to(self.device)
            if self.data.eval_transform is not None:
                x = self.data.eval_transform(x, None)
            outputs.append(self._forward(x).float())
        if was_training:
            self.model.train()
            if self._schedule_free:
                self.optimizer.train()
        if not outputs:
            return torch.zeros(0)
        return torch.cat(outputs)

    def evaluate(self, split: Split) -> dict[str, Any]:
        """Loss plus every configured metric on ``split`` (metric names without prefix)."""
        if len(split) == 0:
            return {}
        output = self.predict_outputs(split)
        target = split.y.to(self.device)
        with torch.no_grad():
            result: dict[str, Any] = {"loss": float(self.loss_fn(output, target))}
        predictions = self.loss_fn.predict(output)
        result.update(compute(self.metric_names, predictions, target, self.data.num_classes))
        return result

    # ------------------------------------------------------------------ capture / restore

    def capture(self, clone: bool = False) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Everything needed to continue bit-identically: (JSON tree, tensors)."""
        np_state = np.random.get_state(legacy=True)
        train_state = self.state.state_dict()
        if self._fitting:  # wall time of this fit() so far, so a resumed run keeps counting
            train_state["train_time_s"] += time.perf_counter() - self._fit_started
        tree = {
            "train_state": train_state,
            "epoch_samples": self._epoch_samples,
            "optimizer": None,
            "schedule": self.schedule.state_dict() if hasattr(self.schedule, "state_dict") else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "callbacks": None,
            "rng": {
                "python": random.getstate(),
                "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            },
        }
        tensors: dict[str, torch.Tensor] = {}
        for key, value in self.model.state_dict().items():
            tensors[f"model.{key}"] = value
        for key, value in self.loss_fn.state_dict().items():
            tensors[f"loss.{key}"] = value
        tree["optimizer"], optim_tensors = split_state(self.optimizer.state_dict(), "optimizer")
        tree["callbacks"], callback_tensors = split_state(self.callbacks.state_dict(), "callbacks")
        tree["python_rng"], _ = split_state(tree["rng"].pop("python"), "python_rng")
        tensors.update(optim_tensors)
        tensors.update(callback_tensors)
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        for name, tally in (("epoch_loss", self._epoch_loss), ("epoch_penalty", self._epoch_penalty)):
            tree[f"{name}_sizes"], parts = tally.state_dict()
            tensors[f"loop.{name}"] = parts["total"]
            tensors[f"loop.{name}_pending"] = parts["pending"]
        if clone:
            tensors = {k: v.detach().clone() for k, v in tensors.items()}
            tree = join_state(split_state(tree)[0], {})  # a deep copy of the JSON part
        return tree, tensors

    def restore(self, snapshot: tuple[dict[str, Any], dict[str, torch.Tensor]]) -> None:
        tree, snapshot_tensors = snapshot
        # copies: optimizer.load_state_dict aliases same-device tensors, and a snapshot may be reused
        tensors = {k: v.clone() for k, v in snapshot_tensors.items()}
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        loss_state = {k[len("loss."):]: v for k, v in tensors.items() if k.startswith("loss.")}
        if loss_state:
            self.loss_fn.load_state_dict(loss_state)
        self.optimizer.load_state_dict(join_state(tree["optimizer"], tensors))
        if tree.get("schedule") is not None and hasattr(self.schedule, "load_state_dict"):
            self.schedule.load_state_dict(tree["schedule"])
        self.callbacks.load_state_dict(join_state(tree["callbacks"], tensors))
        if self.scaler is not None and tree.get("scaler"):
            self.scaler.load_state_dict(tree["scaler"])
        self.state = TrainState()
        self.state.load_state_dict(join_state(tree["train_state"], {}))
        self._epoch_samples = int(tree["epoch_samples"])
        for name, tally in (("epoch_loss", self._epoch_loss), ("epoch_penalty", self._epoch_penalty)):
            tally.load_state_dict(tree.get(f"{name}_sizes", []), {"total": tensors[f"loop.{name}"],
                                                                   "pending": tensors.get(f"loop.{name}_pending")})
        python_rng = join_state(tree["python_rng"], {})
        random.setstate((python_rng[0], tuple(python_rng[1]), python_rng[2]))
        kind, keys, *rest = tree["rng"]["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        torch.set_rng_state(tensors["rng.torch"].clone())
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"].clone(), self.device)
