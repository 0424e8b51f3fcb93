"""The warning of a finished run whose final model does no better than a constant: it learnt nothing of the inputs.

A run can end without an error and still have learnt nothing: a frozen encoder on 95% of one class predicts
that class for every row (accuracy 0.95, and a binary f1 of that class 0.97), a regression head that starts near
0 against targets around 7.4 (std 1.1) ends at R² -5 after its step budget. The metrics are right, but nothing
says what they mean. :class:`TrivialOutcome` watches the final evaluation's predictions of the validation and
test splits (:meth:`~trainlab.engine.evaluation.Evaluator.evaluate`'s ``observe``) and :meth:`TrivialOutcome.warn`
says once, for the first of them with rows:

- classification (binary, multiclass): every row predicted as one class while the split's targets hold two
  or more. A binary run predicting class 1 is told that f1, precision and recall are of that class.
- regression: R² below 0 (the mean over target columns of ``1 - SSE / SST``, columns without spread left
  out): worse than predicting the split's mean for every row. Where the targets were trained as they are
  and their mean is far from 0 beside their spread (:data:`FAR_MEAN_IN_STDS`), the fix named is the data's
  (``data.standardize_target``: the outputs start near 0 and must travel to the mean first); where they are
  far from unit scale, the warning before training said so with that fix, and nothing is said again.

The warnings hold no number of the run's own (the R² is in the metrics beside it), so that the runs of a
compare or tune on one dataset say them once (:func:`~trainlab.notices.warn`'s each-once in their workers).

Multi-label runs and outputs no prediction can be read from (a diverged run's NaN: warned of as such) are not
observed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trainlab.data import Dataset
from trainlab.notices import warn
from trainlab.run_checks import targets_off_unit_scale

# a mean more than this many standard deviations from 0: outputs that start near 0 must move that far first
FAR_MEAN_IN_STDS = 3.0
SPLITS = ("val", "test")


def _r2(predictions: torch.Tensor, target: torch.Tensor) -> float | None:
    """The mean over columns of ``1 - SSE / SST`` (float64), columns of one value left out; None where none
    is left."""
    predicted = predictions.double().reshape(len(predictions), -1)
    actual = target.double().reshape(len(target), -1)
    total = ((actual - actual.mean(dim=0)) ** 2).sum(dim=0)
    kept = total > 0
    if not bool(kept.any()):
        return None
    residual = ((actual - predicted) ** 2).sum(dim=0)
    return float((1 - residual[kept] / total[kept]).mean())


@dataclass
class TrivialOutcome:
    """The predictions of val and test as the final evaluation makes them (:meth:`observer`), and the warning
    of :meth:`warn` (the module docstring)."""

    task: str | None
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def observer(self, split: str) -> Callable[[torch.Tensor, torch.Tensor], None] | None:
        """What :meth:`~trainlab.engine.evaluation.Evaluator.evaluate` calls with split ``split``'s predictions
        and targets; None for a task this does not judge (multi-label)."""
        if self.task not in ("binary", "multiclass", "regression"):
            return None

        def observe(predictions: torch.Tensor, target: torch.Tensor) -> None:
            self.seen[split] = (predictions.detach().cpu(), target.detach().cpu())

        return observe

    def warn(self, data: Dataset, standardized: bool, fix: str) -> None:
        """The warning for the first of val and test observed with rows, if its outcome is a constant's;
        ``standardized``: whether the targets were trained standardised; ``fix``: the data's fix of raw targets
        (:attr:`~trainlab.run_checks.InputFixes.raw_targets`)."""
        split = next((name for name in SPLITS if name in self.seen and len(self.seen[name][1])), None)
        if split is None:
            return
        predictions, target = self.seen[split]
        if predictions.numel() != target.numel():  # not one prediction per target (a model of its own making)
            return
        if self.task == "regression":
            self._warn_regression(split, predictions, target, data, standardized, fix)
        else:
            self._warn_one_class(split, predictions, target, data)

    def _warn_one_class(self, split: str, predictions: torch.Tensor, target: torch.Tensor, data: Dataset) -> None:
        predicted = predictions.reshape(-1).long()
        classes = torch.unique(target.reshape(-1).long())
        if len(classes) < 2 or len(torch.unique(predicted)) != 1:
            return
        index = int(predicted[0])
        names = data.class_names
        name = repr(names[index]) if names and 0 <= index < len(names) else f"class {index}"
        share = float((target.reshape(-1).long() == index).double().mean())
        said = (f"the final model predicts {name} for every {split} row ({share:.1%} of them are {name}): it learnt "
                "the class frequencies, not the inputs")
        if self.task == "binary" and index == 1:
            said += f"; f1, precision and recall are of class 1 ({name}), the one predicted, so they look good"
        warn(f"{said}; train longer or with another learning rate (trainlab lr-find), or, for a rare class, weigh "
             "it in the loss (class_weights; pos_weight for bce)")

    def _warn_regression(self, split: str, predictions: torch.Tensor, target: torch.Tensor, data: Dataset,
                         standardized: bool, fix: str) -> None:
        r2 = _r2(predictions, target)
        if r2 is None or r2 >= 0:
            return
        if not standardized and targets_off_unit_scale(data.train.y) is not None:
            return  # warned before training, with this fix (run_checks.warn_if_raw_scale_targets)
        said = f"the final model's {split} R² is below 0: worse than predicting the {split} targets' mean for every row"
        trained = data.train.y.double().reshape(len(data.train.y), -1)
        means = trained.mean(dim=0)
        spreads = trained.std(dim=0) if len(trained) > 1 else torch.zeros_like(means)
        column = int((means.abs() - FAR_MEAN_IN_STDS * spreads).argmax())
        mean, spread = float(means[column]), float(spreads[column])
        if not standardized and abs(mean) > FAR_MEAN_IN_STDS * spread:
            warn(f"{said}; the training targets (mean {mean:.4g}, std {spread:.4g}) are not standardised, so the "
                 f"outputs, which start near 0, must first travel to their mean: {fix}")
        else:
            warn(f"{said}; train longer or with another learning rate (trainlab lr-find), or check the features")
