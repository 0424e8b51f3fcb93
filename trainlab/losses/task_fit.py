"""Whether the training targets fit the task a loss trains on, said before training: the checks a config run
(:mod:`trainlab.builders`) and :func:`trainlab.fit` share, so that one mistake reads the same
from both. The loss contract itself is :mod:`trainlab.losses.base`.
"""

from __future__ import annotations

import torch
from torch import nn

from trainlab.config_fields import counted
from trainlab.data.dataset import Dataset, stray_class_values
from trainlab.data.labels import MAX_CLASSES
from trainlab.errors import DataError
from trainlab.losses.base import Loss, regression_loss_on_classes

# what to do with soft targets (fractional values in [0, 1]: label smoothing, a teacher's or annotators'
# probabilities), which no classification loss here takes as class labels
SOFT_TARGETS_FIX = ("threshold them into 0/1 class labels (such as y > 0.5) to train a classifier, or use a "
                    "regression loss such as mse to predict the values themselves")


def soft_target(target: torch.Tensor) -> float | None:
    """The first fractional value of a floating ``target`` whose values all lie in [0, 1] (soft targets,
    probabilities), or None: whole numbers, or values beyond [0, 1] (which are no probabilities)."""
    if not target.is_floating_point() or not target.numel():
        return None
    fractional = target[target != target.round()]
    if not len(fractional) or bool(((target < 0) | (target > 1)).any()):
        return None
    return float(fractional[0])


def refuse_soft_targets(target: torch.Tensor, takes: str, holds: str) -> None:
    """Raise one DataError where ``target`` holds soft targets (:func:`soft_target`), naming what ``takes``
    class labels and what ``holds`` the values, with :data:`SOFT_TARGETS_FIX`.

    Args:
        target: the training targets.
        takes: the clause that needs class labels, e.g. ``"bce trains on 0/1 class labels"``.
        holds: the targets and their verb, e.g. ``"the targets hold"`` or ``"train y holds"``.

    Raises:
        DataError: ``"{takes}, but {holds} fractional values in [0, 1] (such as 0.3): soft targets or
        probabilities, not class labels; threshold them ..."``.
    """
    if (value := soft_target(target)) is not None:
        raise DataError(f"{takes}, but {holds} fractional values in [0, 1] (such as {value:g}): soft targets or "
                        f"probabilities, not class labels; {SOFT_TARGETS_FIX}")


def check_task_fits(loss: nn.Module, data: Dataset, task_given: bool,
                    target_shape: tuple[int, ...] | None = None) -> None:
    """One DataError where a class-label loss (``target_kind`` ``class_index`` or ``binary``) meets a regression
    task and the training targets or the way the task came to be say more than
    :meth:`~trainlab.losses.base.Loss.output_dim`'s task-inference explanation
    (:data:`~trainlab.losses.base.REGRESSION_LABELS`): targets not shaped as such labels (``target_shape``,
    the targets' shape as given: a regression task holds them as (N, d)), soft targets (fractional values in
    [0, 1], :func:`refuse_soft_targets`), and a ``task_given`` (``data.task``, fit's ``task``) said as given, with a task
    to set only where the targets are whole numbers. A regression loss on classes with names that are no numbers
    (iris' ``'setosa'``) is refused without output_dim's ``set data.task: regression``, which such classes refuse
    too. Anything else passes: output_dim and ``check`` word it."""
    kind, task, target = getattr(loss, "target_kind", None), data.task, data.train.y
    if kind == "continuous" and task != "regression" and type(loss).output_dim is Loss.output_dim \
            and (named := _a_class_name(data.class_names)) is not None:  # (a loss of its own may take classes)
        raise DataError(regression_loss_on_classes(getattr(loss, "name", type(loss).__name__), task,
                                                   data.num_classes, named))
    if kind not in ("class_index", "binary") or task != "regression":
        return
    name, shape = getattr(loss, "name", type(loss).__name__), tuple(target_shape or ())
    per_label = kind == "binary" or getattr(loss, "takes_multilabel", False)  # (N, L) targets too (focal)
    # only a shape as given: the data layer holds a regression target as (N, d), one column as (N, 1)
    if target_shape is not None and len(shape) > (2 if per_label else 1):
        labels = ("one 0/1 label per row, shaped (N,)" if kind == "binary" else "one class index per row, shaped "
                  "(N,)") + (", or (N, L) for L labels" if per_label else "")
        raise DataError(f"{name} takes {labels}, but the targets are shaped {shape}; give such labels, or, to "
                        "predict those values, use a regression loss such as mse")
    refuse_soft_targets(target, f"{name} trains on {'0/1 ' if kind == 'binary' else ''}class labels",
                        "the targets hold")
    if kind == "class_index" and not task_given:
        # a config's task is read from the source's rows before the validation and test rows are split off
        read = torch.cat([target, *(part.y.to(target.dtype) for part in (data.val, data.test) if part is not None
                                    and part.y.shape[1:] == target.shape[1:])])
        if (stray := stray_labels(read)) is not None:
            raise DataError(f"{name} trains on class labels 0..K-1, but the targets are read as a regression: "
                            f"{stray[0]}; {stray[1]}")
    if task_given:
        whole = not target.is_floating_point() or bool((target == target.round()).all())
        wanted = "a classification task" if kind == "class_index" else "a binary (or multilabel) task"
        relabel = (f"set data.task: {'multiclass' if kind == 'class_index' else 'binary'} if the targets are class "
                   "labels, or " if whole else "")
        raise DataError(f"{name} needs {wanted}, but data.task: regression was given; {relabel}use a regression "
                        "loss such as mse or huber")


def stray_labels(target: torch.Tensor) -> tuple[str, str] | None:
    """The values that keep class labels from reading as classes, and the fix they call for
    (:func:`~trainlab.data.dataset.stray_class_values`: labels 0..K-1 with a few typos, such as -1 for
    "unlabeled" or a typed 7): ``("labels 0..2 and 1 row of 7", fix)``; None where the targets are no such
    labels. ``data.task: multiclass`` is offered where every stray is a whole number it would read as a class
    (beside empty classes up to it), ``-1``'s usual meaning where a -1 is among them."""
    found = stray_class_values(target.numpy())
    if found is None:
        return None
    labels, off = found
    shown = ", ".join(f"{counted(rows, 'row')} of {_number(value)}" for value, rows in off[:3])
    more = f" and {len(off) - 3} more values" if len(off) > 3 else ""
    fix = "fix or drop those rows"
    if any(value == -1 for value, _ in off):
        fix += " (-1 often marks unlabeled ones)"
    if all(value == int(value) and 0 <= value < MAX_CLASSES for value, _ in off):
        fix += ", or set data.task: multiclass to read every whole number as a class"
    return f"labels 0..{labels - 1} and {shown}{more}", fix


def _number(value: float) -> str:
    """``value`` as written: ``1234567`` for a whole number (``:g`` gave ``1.23457e+06``), ``2.5``."""
    return str(int(value)) if value == int(value) else repr(value)


def _a_class_name(names: list[str] | None) -> str | None:
    """The first class name that is no number (``'setosa'``): classes ``data.task: regression`` refuses; None
    where every name is one (labels 0..4 may be ratings to predict)."""
    for name in names or ():
        try:
            float(name)
        except (TypeError, ValueError):
            return name
    return None
