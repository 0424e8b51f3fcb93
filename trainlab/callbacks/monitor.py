"""Reading a monitored value out of an epoch record, with explicit direction."""

from __future__ import annotations

import math
from typing import Any

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.metric_hints import not_a_number_hint, unrecorded_hint
from trainlab.metrics import get_metric, is_user_metric


def check_monitor(monitor: str, available: list[str], owner: str, loss: Any = None) -> None:
    """A ConfigError unless ``monitor`` is one of the ``available`` records (``train_loss``, ``val_...``).

    ``owner`` (``early_stopping``) names the watcher in the message; ``loss`` (the run's loss, or its name;
    None: not known) words the advice for a metric it cannot have. A ``test_`` or ``train_`` record is
    pointed to its ``val_`` twin (:func:`_validation_hint`); any other key gets
    :func:`~trainlab.metric_hints.unrecorded_hint` (add the metric; a loss that trains embeddings records the
    loss alone; a metric of another task; or a did-you-mean). The validation record of a list-valued metric
    (``val_f1_per_class``; ``val_confusion_matrix``, K x K counts), listed in the config or not, is no number
    to watch: its message names the numbers that stand in, in the words ``--target`` and ``compare --metric``
    use (:func:`~trainlab.metric_hints.not_a_number_hint`)."""
    if monitor not in available:
        listed = not_a_number_hint(monitor, available) if isinstance(monitor, str) and monitor.startswith("val_") \
            else ""
        if listed:
            raise ConfigError(f"{owner} cannot monitor '{monitor}'{listed} (available: {', '.join(available)})")
        hint = _validation_hint(str(monitor), available, owner, loss)
        if hint is None:
            hint = unrecorded_hint(str(monitor), available, loss) or _callback_value_hint(str(monitor))
        raise ConfigError(
            f"{owner} monitors {short_repr(monitor)}, which is not recorded{hint} "
            f"(available: {', '.join(available)})"
        )


def _callback_value_hint(monitor: str) -> str:
    """For a ``val_`` key that names no metric trainlab knows (``val_custom``): a value a callback adds to the
    validation record (``record["val_custom"] = ...``) cannot be monitored, as the monitor is checked before
    training, when no callback has run; a ``module:function`` metric can (docs/extending.md, "A metric")."""
    name = monitor.removeprefix("val_")
    if name == monitor or is_user_metric(name):
        return ""
    try:
        get_metric(name)
        return ""  # a built-in metric: unrecorded_hint said to add it
    except ConfigError:
        pass
    return (f"; a value a callback adds to the records (record['{monitor}'] = ...) cannot be monitored, as the "
            "monitor is checked before training: compute it in a metric, a module:function listed in metrics "
            "(docs/extending.md, 'A metric'), recorded as val_<module>:<function>, which can be")


def _validation_hint(monitor: str, available: list[str], owner: str, loss: Any = None) -> str | None:
    """For ``test_<m>`` or ``train_<m>``: ``owner`` watches the validation records, so monitor ``val_<m>``
    (adding ``<m>`` to the metrics when it is not recorded and ``loss`` can have it); None for any other key.

    Only the validation split is watched: the test split must not steer training (its score would no
    longer estimate unseen data), and of the training split the loop records ``train_loss`` alone. A
    "add 'accuracy' to the run's metrics" for ``test_accuracy`` would be wrong when accuracy is there."""
    split, _, name = monitor.partition("_")
    if split not in ("test", "train") or not name:
        return None
    twin = f"val_{name}"
    why = ", as the test split must not steer training" if split == "test" else \
        "; of the training split only train_loss is recorded"
    note = f": {owner} watches the validation records (val_...){why}"
    if twin in available:
        return f"{note}; monitor '{twin}'"
    advice = unrecorded_hint(twin, available, loss)  # "; add 'roc_auc' to the run's metrics ...", or why not
    return f"{note}; monitor '{twin}'{advice}" if advice.startswith("; add ") else note + advice


def is_improvement(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """min: value < best - min_delta; max: value > best + min_delta. NaN never improves."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def read(record: dict[str, Any], monitor: str) -> float:
    return float(record[monitor])
