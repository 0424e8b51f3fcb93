"""Fine-tuning schedule as a callback: freeze the backbone, unfreeze it after N epochs.

Applied before the first step of every epoch (and so after a resume too): the
backbone's ``requires_grad`` follows ``freeze``/``unfreeze_after_epochs``, batch-norm
layers of a frozen backbone stay in eval mode, and the trainable/total parameter
counts are logged whenever they change.
"""

from __future__ import annotations

from trainlab.callbacks.base import Callback
from trainlab.finetune import apply_epoch_freezing, frozen_norms_to_eval, parameter_counts


class FinetuneSchedule(Callback):
    order = 8
    name = "finetune"

    def __init__(self, freeze: bool, unfreeze_after_epochs: int | None):
        self.freeze, self.unfreeze_after_epochs = freeze, unfreeze_after_epochs
        self._epoch: int | None = None
        self._counts: dict[str, int] | None = None

    def on_step_start(self, trainer) -> None:
        epoch = trainer.state.epoch
        if epoch == self._epoch:
            return
        self._epoch = epoch
        frozen = apply_epoch_freezing(trainer.model, epoch, self.freeze, self.unfreeze_after_epochs)
        if frozen:
            frozen_norms_to_eval(trainer.model)
        trainer.refresh_parameters()
        counts = parameter_counts(trainer.model)
        if counts != self._counts:
            self._counts = counts
            trainer.state.events.append({"event": "parameters", "step": trainer.state.step,
                                         "epoch": epoch + 1, "backbone_frozen": frozen, **counts})

    def on_validation_end(self, trainer, record) -> None:
        self._epoch = None  # evaluation put every layer back in train mode: re-apply next step
