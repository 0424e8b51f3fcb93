"""Evaluation: a split's loss and metrics from a Step's predictions, in batches, without gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from trainlab.data.dataset import Split
from trainlab.engine.step import Step
from trainlab.engine.tta import TestTimeAugmentation
from trainlab.losses.base import Loss, scored_rows, sums_over_rows
from trainlab.metric_compute import metric_values
from trainlab.metrics import MetricInputs, gives_predictions

BatchTransform = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


class Evaluator:
    """``evaluate(split)`` -> ``{"loss": ..., <metric>: ...}`` (no split prefix) for one step's model.

    The loss is in the units the model trains on (a ``reduction: sum`` loss divided by the split's rows, as
    the training records give it); regression metrics go through ``original_units``
    (the inverse of a target standardisation) so that MSE, MAE and R² are in the data's own units.

    With ``tta`` the outputs are the average over its views of each (transformed) batch
    (:mod:`trainlab.engine.tta`); the loss and metrics are computed on that average.

    When the outputs hold what no prediction can be read from (a NaN; +inf logits; for regression any
    infinite value: a diverged model, ``strategy.divergence.policy: off``), every metric is NaN
    (recorded as null): they would describe argmaxes of NaN. The loss is left as computed. A -inf among
    finite logits (a class given probability 0) is a prediction like any other.

    The step is put in eval mode (schedule-free optimizers: the averaged weights x) and left
    there; the Trainer switches it back before the next training step.
    """

    def __init__(self, step: Step, loss: Loss, metric_names: Sequence[str], num_classes: int | None,
                 task: str | None = None, transform: BatchTransform | None = None, batch_size: int = 2048,
                 original_units: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 tta: TestTimeAugmentation | None = None):
        self.step, self.loss, self.metric_names = step, loss, list(metric_names)
        self.num_classes, self.task = num_classes, task
        self.transform, self.batch_size = transform, batch_size
        self.original_units = original_units  # regression: standardised targets -> the data's units
        self.tta = tta

    @torch.no_grad()
    def outputs(self, split: Split) -> torch.Tensor:
        """The model's outputs (float32) for every row of ``split``, in order."""
        self.step.set_mode(training=False)
        outputs = []
        for start in range(0, len(split), self.batch_size):
            x = split.x[start:start + self.batch_size].to(self.step.device)
            if self.transform is not None:
                x = self.transform(x, None)
            outputs.append(self.step.predict(x).float() if self.tta is None else self.tta(self.step.predict, x))
        return torch.cat(outputs) if outputs else torch.zeros(0)

    def evaluate(self, split: Split,
                 observe: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> dict[str, Any]:
        """``{"loss": ..., <metric>: ...}`` of ``split``; ``observe``, where given, is called with the
        predictions and targets the metrics are computed on (the rows scored, regression in the data's
        units), unless the outputs hold no prediction (below): :mod:`trainlab.trivial_outcome`."""
        if len(split) == 0:
            return {}
        output = self.outputs(split)
        target = split.y.to(self.step.device)
        with torch.no_grad():
            loss = self.loss(output, target)
            # a reduction: sum loss per row, as the training records give it (StandardStep._per_row): the
            # train, val and test losses of one run are on one scale, whatever each split's size
            if sums_over_rows(self.loss):
                loss = loss / len(target)
            result: dict[str, Any] = {"loss": float(loss)}
        predictions = self.loss.predict(output)
        if self.original_units is not None and self.task == "regression":
            # the loss stays in training units; metrics (mse, mae, r2) are reported in the data's own units
            # (float64, on the CPU: inverse_target)
            predictions, target = self.original_units(predictions), self.original_units(target)
        probabilities = self.loss.probabilities(output)
        kept = scored_rows(self.loss, target)  # not the rows of its ignore_index
        none_scored = kept is not None and not bool(kept.any())  # metrics of no row: computed on all for shape
        if kept is not None and not none_scored:
            predictions, target = predictions[kept], target[kept]
            probabilities = None if probabilities is None else probabilities[kept]
        inputs = MetricInputs(predictions.detach().cpu(), target.detach().cpu(), self.task, self.num_classes,
                              None if probabilities is None else probabilities.detach().cpu())
        metrics = metric_values(self.metric_names, inputs)  # checked by the config, made by the loss
        meaningless = none_scored or _meaningless(output, self.task)
        if observe is not None and not meaningless and gives_predictions(self.loss):  # (not an embedding's)
            observe(inputs.predictions, inputs.target)
        if meaningless:
            # a NaN row's argmax is class 0 and a +inf logit's class wins: the accuracy, precision and F1
            # of such outputs are plausible-looking numbers about nothing; NaN (null in the records) as the
            # score metrics of non-finite probabilities are (trainlab.metrics). So are those of no row.
            metrics = {name: _undefined(value) for name, value in metrics.items()}
        result.update(metrics)
        return result


def _meaningless(output: torch.Tensor, task: str | None) -> bool:
    """Whether ``output`` holds what no prediction can be read from: a NaN; for regression an infinite
    value; for softmax class scores a +inf (its softmax is NaN) or a row all -inf, while a -inf among finite
    scores is a class given probability 0 (a log-probability that underflowed, a masked logit). One logit
    per sample (or per label) is a sigmoid's: +inf and -inf are probabilities 1 and 0."""
    if bool(torch.isnan(output).any()):
        return True
    if task == "regression":
        return bool(torch.isinf(output).any())
    if output.ndim < 2 or output.shape[1] < 2 or task == "multilabel":  # a sigmoid per logit: +-inf are 1 and 0
        return False
    return bool(torch.isposinf(output).any() or torch.isneginf(output.reshape(len(output), -1)).all(dim=1).any())


def _undefined(value: Any) -> Any:
    """``value`` (a metric: a number, or per-class numbers) with every number NaN, its shape kept."""
    if isinstance(value, dict):
        return {key: _undefined(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_undefined(item) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float("nan")
    return value
