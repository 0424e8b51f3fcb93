"""``data.positive_class``: which of a binary task's two classes is class 1, the positive class.

A binary model outputs P(class 1), and ``precision``, ``recall``, ``f1``, ``average_precision``, bce's
``pos_weight`` and focal's ``alpha`` are all of class 1. Classes are numbered in their sorted order (string
labels alphabetically: ``fraud`` < ``ok``), so the class a user means as "positive" (the rare one, say) can
be class 0. ``positive_class`` names it, and the data is read with the two classes swapped: its rows get
label 1, the other class's label 0, and the class names are recorded in that order (``['ok', 'fraud']``), so
predictions, metrics and reports all follow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.notices import warn
from trainlab.registry import did_you_mean
from trainlab.yaml_files import YAML_BOOLS, flow_yaml

KEY = "data.positive_class"


def positive_index(positive: Any, task: str, class_names: list[str] | None) -> int | None:
    """The index (0 or 1) of the class ``positive`` names among the data's classes as read (``class_names``,
    or ``0``/``1`` for unnamed labels); None where ``positive`` is None. A ConfigError (exit 2) for a task
    that is not binary or a name that is not one of the two classes."""
    if positive is None:
        return None
    if task != "binary":
        scores = "per-label metrics: f1_per_class, recall_per_class" if task == "multilabel" else \
            "metrics of every class: f1_macro, recall_per_class"
        raise ConfigError(f"{KEY} ({short_repr(positive)}) chooses class 1 of a binary task, but this data is "
                          f"{task}; leave it out ({scores})")
    names = binary_names(class_names)
    shown = _spelt(positive, names) if isinstance(positive, bool) else str(positive)
    if shown not in names:
        listed = ", ".join(repr(name) for name in names)
        raise ConfigError(f"{KEY} {short_repr(positive)} is not a class of this data (its classes: {listed})"
                          f"{did_you_mean(shown, names)}")
    return names.index(shown)


def _spelt(positive: bool, names: list[str]) -> str:
    """The class name an unquoted ``yes``/``true``/``on`` (True) or ``no``/``false``/``off`` (False) was written
    as, whatever its case (labels ``yes``/``no``, or ``True``/``False`` from a CSV of booleans); ``str(positive)``
    where no class, or several, spell it (the refusal then lists the classes)."""
    spelt = [name for name in names if name.casefold() in YAML_BOOLS[positive]]
    return spelt[0] if len(spelt) == 1 else str(positive)


def swapped_names(class_names: list[str] | None) -> list[str]:
    """The class names once the two classes are swapped (unnamed labels 0/1 are named by their value)."""
    first, second = binary_names(class_names)
    return [second, first]


def swapped_labels(y: np.ndarray) -> np.ndarray:
    """Binary labels 0/1 with the two classes swapped: 1 - y, of y's dtype."""
    return (1 - y).astype(y.dtype, copy=False)


# the binary metrics that score class 1 alone (roc_auc, accuracy and the macro averages treat both classes alike)
CLASS_ONE_METRICS = ("precision", "recall", "f1", "average_precision")
RARE_SHARE = 0.2  # a class below this share of the training rows is rare (the advisor's MINORITY_FRACTION too)


def scores_class_one(metric: str | None) -> bool:
    """Whether the record key ``metric`` (``test_f1``, ``val_average_precision``) scores class 1 alone, so that
    runs that set ``data.positive_class`` differently would rank figures of different classes by it: the rule
    ``trainlab compare`` and ``trainlab tune`` refuse such runs by."""
    return metric is not None and metric.split("_", 1)[-1] in CLASS_ONE_METRICS


def binary_names(class_names: list[str] | None) -> list[str]:
    """A binary task's two class names, ``['0', '1']`` for unnamed labels (as data.positive_class takes them)."""
    return list(class_names) if class_names else ["0", "1"]


def choose_positive(name: str) -> str:
    """The setting that makes class ``name`` class 1, as a fix says it: ``set data.positive_class: fraud``
    (quoted where YAML would read it otherwise: ``'no'``)."""
    return f"set {KEY}: {flow_yaml(name)}"


def both_classes_metrics(split: str) -> str:
    """Metrics that score both classes alike, whichever is positive, of ``split`` (``val``, ``test``): the ones
    to rank or tune by where runs set data.positive_class differently."""
    return ", ".join(f"{split}_{name}" for name in ("f1_macro", "roc_auc", "accuracy"))


def warn_if_positive_is_majority(data: Any, metric_names: list[str], pos_weight: Any = None,
                                 data_config: Any = None) -> None:
    """Binary data whose class 1 is the majority of the training rows: one warning when the run scores class
    1 alone (:data:`CLASS_ONE_METRICS`) while class 0 is rare (below :data:`RARE_SHARE`), as string labels
    sorted alphabetically make it (``fraud`` < ``ok``): f1 0.99 is then the majority's; one when bce's
    ``pos_weight`` (``pos_weight``: the loss's, a tensor or None) is above 1, which weighs that majority up
    and deepens the imbalance. Both name the fix: ``data.positive_class`` for a run of a config
    (``data_config``, the run's ``data`` section), else (None, or ``trainlab.fit``'s ``in_memory`` arrays)
    relabelling the rare class 1. Where ``data.positive_class`` is set, class 1 is the user's choice, and only
    the ``pos_weight`` warning is given."""
    configured = data_config is not None and data_config.source != "in_memory"
    chosen = configured and data_config.positive_class is not None
    if data.task != "binary" or not len(data.train):
        return
    y = np.asarray(data.train.y).reshape(-1)
    ones = int((y == 1).sum())
    zeros = len(y) - ones
    if ones <= zeros:
        return
    names = binary_names(data.class_names)
    share = ones / len(y)
    fix = f"{choose_positive(names[0])} to make it class 1" if configured else \
        "relabel it 1 (y = 1 - y, class_names reversed) to make it class 1"
    scored = [name for name in metric_names if name in CLASS_ONE_METRICS]
    if scored and zeros < RARE_SHARE * len(y) and not chosen:
        warn(f"{', '.join(scored)} {'is' if len(scored) == 1 else 'are'} of class 1 ({names[1]!r}), {share:.1%} of "
             f"the training rows, not of the rare class {names[0]!r} (class 0; classes are numbered in sorted "
             f"order): {fix}, or watch f1_macro, balanced_accuracy and f1_per_class")
    weights = [] if pos_weight is None else np.asarray(pos_weight.detach().cpu() if hasattr(pos_weight, "detach")
                                                       else pos_weight, dtype=np.float64).reshape(-1)
    if len(weights) == 1 and weights[0] > 1 and zeros:
        warn(f"strategy.loss.pos_weight {weights[0]:.4g} weighs class 1 ({names[1]!r}), {share:.1%} of the training "
             f"rows: the majority, so it deepens the imbalance; pos_weight {zeros / ones:.4g} (n_neg / n_pos) "
             f"balances the classes, or {fix} (then pos_weight {ones / zeros:.4g})")
