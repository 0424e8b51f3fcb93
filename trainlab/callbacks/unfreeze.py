"""Fine-tuning schedule as a callback: freeze the backbone, unfreeze it after N epochs.

Applied before the first step of every epoch (and so after a resume too): the
backbone's ``requires_grad`` follows ``freeze``/``unfreeze_after_epochs``, batch-norm
layers of a frozen backbone stay in eval mode, and the trainable/total parameter
counts are logged whenever they change.
"""

from __future__ import annotations

from typing import Any

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.finetune import apply_epoch_freezing, frozen_norms_to_eval, parameter_counts


class UnfreezeSchedule(Callback):
    order = 8
    name = "finetune"

    def __init__(self, freeze: bool, unfreeze_after_epochs: int | None):
        self.freeze, self.unfreeze_after_epochs = freeze, unfreeze_after_epochs
        self._epoch: int | None = None
        self._counts: dict[str, int] | None = None

    def on_step_start(self, view: TrainerView) -> None:
        epoch = view.state.epoch
        if epoch == self._epoch or view.model is None:
            return
        self._epoch = epoch
        frozen = apply_epoch_freezing(view.model, epoch, self.freeze, self.unfreeze_after_epochs)
        if frozen:
            frozen_norms_to_eval(view.model)
        view.parameters_changed()
        counts = parameter_counts(view.model)
        if counts != self._counts:
            self._counts = counts
            view.state.events.append({"event": "parameters", "step": view.state.step,
                                      "epoch": epoch + 1, "backbone_frozen": frozen, **counts})

    def state_dict(self) -> dict[str, Any]:
        """The counts last logged: a resumed run logs a ``parameters`` event where the uninterrupted one
        did, not again at its first step (its records stay the uninterrupted run's)."""
        return {"counts": self._counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._counts = state.get("counts")  # a checkpoint of before this state: logged again, as then
        # a restore (a resume, a divergence rollback within the epoch) put every layer back in train mode:
        # the freezing is applied again at the next step, as after a validation
        self._epoch = None

    def on_validation_end(self, view: TrainerView, record) -> None:
        self._epoch = None  # evaluation put every layer back in train mode: re-apply next step
