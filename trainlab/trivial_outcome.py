"""The warning of a finished run whose final model does no better than a constant: it learnt nothing of the inputs.

A run can end without an error and still have learnt nothing: a frozen encoder on 95% of one class predicts
that class for every row (accuracy 0.95, and a binary f1 of that class 0.97), a regression head that starts near
0 against targets around 7.4 (std 1.1) ends at R² -5 after its step budget. The metrics are right, but nothing
says what they mean. :class:`TrivialOutcome` watches the final evaluation's predictions of the validation and
test splits (:meth:`~trainlab.engine.evaluation.Evaluator.evaluate`'s ``observe``) and :meth:`TrivialOutcome.warn`
says once:

- classification (binary, multiclass): one class predicted for every row of each of val and test that holds
  rows of two or more classes (a split of one class tells nothing; a model whose predictions vary on either
  split is no constant). The fix named is the learning rate or a longer run, or, after a symmetric
  ``strategy.init`` (``zeros``, ``constant``: every unit of a layer alike), the initialisation. Said as the
  class frequencies learnt where that class is the training majority,
  else as no class told apart; a binary run predicting class 1 is told that f1, precision and recall are of it.
- regression: R² below 0 on val (else test), as the run's ``r2`` metric gives it (the mean over target
  columns), worse than predicting the split's mean for every row. The fix named is the
  data's (``data.standardize_target``) only where it applies: targets trained as they are, whose mean is far
  from 0 beside their spread (:data:`FAR_MEAN_IN_STDS`) and whose predictions' mean stayed far from it (the
  outputs start near 0 and did not travel to the mean), and a loss that takes standardised targets (not a
  Poisson loss, whose outputs are log-rates of counts). Targets warned of before training with that fix
  (:func:`~trainlab.run_checks.warn_if_raw_scale_targets`: far from unit scale, or out of a one-layer model's
  reach; ``RAW_TARGETS_WARNED`` in the data's extras) are not said again.

The warnings hold no number of the run's own (the metrics beside them do), so that a fit and a train say the
same for the same data. The runs of ``compare`` and ``tune`` are not judged
(:func:`~trainlab.run_summary.outcome_told_by_caller`): their leaderboard and trials.csv set each run's metrics
beside the others'. Multi-label runs and outputs no
prediction can be read from (a diverged run's NaN: warned of as such) are not observed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trainlab.data import Dataset
from trainlab.losses.base import Loss, scored_rows
from trainlab.metrics import MetricInputs, r2
from trainlab.notices import warn
from trainlab.run_checks import RAW_TARGETS_WARNED, column_scales, standardizing_applies

# a mean more than this many standard deviations from 0: outputs that start near 0 must move that far first
FAR_MEAN_IN_STDS = 3.0
FEW_ROWS_FOR_R2 = 10  # below this many rows a split's R² (against its own mean) is said to be noise
SPLITS = ("val", "test")


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
            if predictions.numel() == target.numel() and len(target):  # one prediction per target
                self.seen[split] = (predictions.detach().cpu(), target.detach().cpu())

        return observe

    def warn(self, data: Dataset, loss: Loss, standardized: bool, fix: str, init: str | None = None) -> None:
        """The warning, if the outcome is a constant's (the module docstring); ``loss``: the run's;
        ``standardized``: whether the targets were trained standardised; ``fix``: the data's fix of raw targets
        (:attr:`~trainlab.run_checks.InputFixes.raw_targets`); ``init``: the name of a symmetric
        ``strategy.init`` (:func:`~trainlab.initializers.symmetric_init`), named as the cause instead of the learning rate."""
        retry = symmetric_init_advice(init) if init else "train longer or with another learning rate (trainlab lr-find)"
        if self.task == "regression":
            split = next((name for name in SPLITS if name in self.seen), None)
            if split is not None:
                self._warn_regression(split, data, loss.name, standardized, fix, retry)
        elif self.seen:
            self._warn_one_class(data, loss, retry)

    def _warn_one_class(self, data: Dataset, loss: Loss, retry: str) -> None:
        judged = {split: (self.seen[split][0].reshape(-1).long(), self.seen[split][1].reshape(-1).long())
                  for split in SPLITS if split in self.seen and len(torch.unique(self.seen[split][1])) > 1}
        predicted = {int(value) for predictions, _ in judged.values() for value in torch.unique(predictions)}
        if len(predicted) != 1:  # no split to judge, or predictions that vary
            return
        index = predicted.pop()
        names = data.class_names
        name = repr(names[index]) if names and 0 <= index < len(names) else f"class {index}"
        first = next(iter(judged))
        share = float((judged[first][1] == index).double().mean())
        labels = data.train.y.reshape(-1).long()
        kept = scored_rows(loss, data.train.y)  # not the labels of the loss's ignore_index, as evaluation does
        labels = labels if kept is None else labels[kept.reshape(-1)]
        counts = torch.bincount(labels[labels >= 0])
        majority = len(counts) > index and int(counts.argmax()) == index
        said = (f"the final model predicts {name} for every {' and '.join(judged)} row ({share:.1%} of the {first} "
                f"rows are {name}): ")
        said += ("it learnt the class frequencies (the training majority), not the inputs" if majority
                 else "it tells no class apart")
        if self.task == "binary" and index == 1:
            said += f"; f1, precision and recall are of class 1{f' ({name})' if names else ''}, the one predicted"
        weighed = next((key for key in ("class_weights", "pos_weight") if getattr(loss, key, None) is not None), None)
        rare = "" if not majority else \
            f"; or weigh the rare class more: the loss's {weighed} did not stop it" if weighed else \
            "; or, for a rare class, weigh it in the loss (class_weights; pos_weight for bce)"
        warn(f"{said}; {retry}{rare}")

    def _warn_regression(self, split: str, data: Dataset, loss_name: str, standardized: bool, fix: str,
                         retry: str) -> None:
        predictions, target = self.seen[split]
        score = r2(MetricInputs(predictions, target, "regression", None))  # the run's own r2 metric
        if not score < 0:  # NaN (one row) too
            return
        if data.extras.get(RAW_TARGETS_WARNED):
            return  # warned before training, with the fix (run_checks.warn_if_raw_scale_targets)
        applies = standardizing_applies(loss_name, standardized)
        said = f"the final model's {split} R² is below 0: worse than predicting the {split} targets' mean for every row"
        means, spreads, _ = column_scales(data.train.y.double().reshape(len(data.train.y), -1))
        column = int((means.abs() - FAR_MEAN_IN_STDS * spreads).argmax())
        mean, spread = float(means[column]), float(spreads[column])
        predicted = float(predictions.double().reshape(len(predictions), -1)[:, column].mean())
        short = abs(predicted - mean) > abs(mean) / 2  # the outputs stayed nearer 0 than the targets' mean
        if applies and abs(mean) > FAR_MEAN_IN_STDS * spread and short:
            warn(f"{said}; the training targets (mean {mean:.4g}, std {spread:.4g}) are not standardised, and the "
                 f"outputs, which start near 0, fell short of their mean: {fix}")
        elif len(target) < FEW_ROWS_FOR_R2 and score > -1:
            # linnerud's 3 validation rows, "train longer" after early stopping: an R² a little below 0 on a few
            # rows says little (a model far off, R² -1780 on 9 rows, is told as any other)
            warn(f"{said}, but on {len(target)} rows only, whose own mean is the baseline: an R² a little below 0 on "
                 f"so few rows is mostly noise; hold out more {split} rows before reading it")
        else:
            warn(f"{said}; {retry}, or check the features")


def symmetric_init_advice(name: str) -> str:
    """The fix of a constant outcome after a symmetric initializer: a teacher's ``strategy.init: zeros`` MLP,
    whose hidden units all got the same (zero) gradients, was told to train longer or change the learning rate."""
    return (f"strategy.init '{name}' starts every unit of a layer with the same weights, so they get the same "
            "gradients and stay alike (no symmetry breaking): leave strategy.init out (the model's default "
            "initialisation) or use kaiming or xavier")
