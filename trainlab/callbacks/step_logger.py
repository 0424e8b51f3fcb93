"""Step records every ``log_every_n_steps`` optimizer steps (the HF Trainer's ``logging_steps``).

Each record: ``{"scope": "step", "step", "epoch" (fractional), "train_loss" (the per-sample mean of
the data loss since the last record: each step's mean weighted by its samples, or by what its mean divides
by for a class-weighted loss, as the epoch record's ``train_loss``), "lr", "grad_norm" (global L2 norm of the last step's gradients,
before clipping), "samples_per_s", "elapsed_s"}``, kept in ``state.step_records`` and so in
metrics.jsonl and every checkpoint.

The sums since the last record are checkpointed (:meth:`StepLogger.state_dict`): a resumed run's next
record covers the same steps as the uninterrupted run's, bit for bit, and a rollback takes them back with
the steps it discards. ``samples_per_s`` counts from the resume or the rollback.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.engine.state import EpochSum


class StepLogger(Callback):
    # before the divergence guard (20), whose rollback snapshot taken at a step's end then holds this step's
    # sums and record: a run rolled back to it goes on from the same sums the uninterrupted one had there
    order = 15
    name = "step_logger"

    def __init__(self, every_n_steps: int, micro_batches_per_epoch: int, device: torch.device | None = None):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1; got {every_n_steps}")
        self.every, self.micro_batches = every_n_steps, micro_batches_per_epoch
        self.device = torch.device("cpu") if device is None else device  # the step losses' device
        # sum of samples x mean over the steps since the last record (EpochSum: no tensor kernel per step),
        # on the losses' device (a checkpoint's, read onto the CPU, is loaded onto it)
        self._sum = EpochSum(self.device)
        self._samples = 0
        self._seen = 0  # state.samples_seen after the last step: a step's samples are the difference
        self._since: tuple[float, int] | None = None  # (monotonic time, samples_seen) at the last record

        self._restored = False  # the sums came from a checkpoint or a snapshot: training goes on from them

    def on_train_start(self, view: TrainerView) -> None:
        self._since = (time.monotonic(), view.state.samples_seen)
        if not self._restored:
            self._sum.reset()
            self._samples, self._seen = 0, view.state.samples_seen

    def state_dict(self) -> dict[str, Any]:
        return {"sum": self._sum.state_dict(), "samples": self._samples, "seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "sum" not in state:  # a checkpoint written before the sums were kept: they start again at 0
            return
        if state["sum"] is None:  # a checkpoint written before the first step of its run
            self._sum.reset()
        else:
            self._sum.load_state_dict(state["sum"], rows_so_far=int(state["samples"]))
        self._samples, self._seen = int(state["samples"]), int(state["seen"])
        self._since = (time.monotonic(), self._seen)  # a rollback moves samples_seen back: the rate restarts
        self._restored = True

    def on_step_end(self, view: TrainerView, loss: torch.Tensor) -> None:
        state = view.state
        samples, self._seen = state.samples_seen - self._seen, state.samples_seen
        weight = view.loss_weight()
        self._sum.add(loss.detach(), samples if weight is None else weight)
        self._samples += samples
        if state.step % self.every:
            return
        now = time.monotonic()
        then, samples = self._since or (now, state.samples_seen)
        record: dict[str, Any] = {
            "scope": "step", "step": state.step,
            "epoch": round(state.epoch + state.batch_in_epoch / self.micro_batches, 6),
            "train_loss": self._sum.mean() if self._samples else None, **view.lrs(),
        }
        grad_norm = view.grad_norm()
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        record["samples_per_s"] = round((state.samples_seen - samples) / (now - then), 3) if now > then else None
        view.log(record)
        self._sum.reset()
        self._samples, self._since = 0, (now, state.samples_seen)
