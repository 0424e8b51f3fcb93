"""Why a record key a command names (``--metric``, ``--target``, a monitor) is not among a run's records, and
what to name instead: :func:`unrecorded_hint`, the one hint compare, tune, ``train --target`` and the
monitors give (a metric the run does not list, one that is a list or a matrix and no number, another task's
metric, a Keras/scikit-learn name of a trainlab record, a loss that records no predictions' metrics).
"""

from __future__ import annotations

from typing import Any

from trainlab.errors import ConfigError
from trainlab.metrics import (
    CLASSIFICATION,
    REGRESSION,
    TASKS,
    canonical_metric_name,
    get_metric,
    gives_predictions,
    is_built_in,
    is_user_metric,
    unprefixed,
)
from trainlab.name_aliases import METRIC_NAMES, trainlab_name
from trainlab.registry import did_you_mean


def unrecorded_hint(key: str, recorded: list[str], loss: Any = None) -> str:
    """What to add to "``key`` is not recorded", for ``key`` a split's record of a metric (``val_roc_auc``):

    1. ``loss`` (its registered name, class or instance; None: not known) trains embeddings
       (:func:`gives_predictions` is False): ``; metric 'accuracy' cannot be computed for loss 'triplet' ...``
       naming the split's loss record, the one thing such a run records (adding the metric is refused);
    2. a built-in metric of another task than the recorded built-in metrics' (``val_r2`` beside
       ``val_accuracy``): :func:`_other_task_hint`;
    3. a built-in metric the config does not list: ``; add 'roc_auc' to the run's metrics ...`` (a
       did-you-mean would offer ``val_recall``), or, for a list-valued one (``val_f1_per_class``, also as
       the bare name), that it is not a number and which numbers stand in (:func:`not_a_number_hint`);

    else (an unknown name, ``train_``: the loop records train_loss alone) :func:`did_you_mean` among ``recorded``.
    A split's key of another framework's metric name (Keras's ``val_sparse_categorical_accuracy``, ``val_AUC``:
    :data:`~trainlab.name_aliases.METRIC_NAMES`) is pointed to trainlab's record of it first
    (:func:`_renamed_record_hint`)."""
    renamed = _renamed_record_hint(key, recorded, loss)
    if renamed is not None:
        return renamed
    name = unprefixed(key)
    if (not key.startswith(("val_", "test_")) or name in (key, "loss") or key in recorded
            or any(other.casefold() == key.casefold() for other in recorded)):  # val_f1 of metrics: [F1]
        return not_a_number_hint(key, recorded) or did_you_mean(key, recorded)
    from trainlab.losses import registered_loss  # a name: its registered class (module:attr is not imported)

    factory = registered_loss(loss) if isinstance(loss, str) else loss
    if factory is not None and not gives_predictions(factory):
        return (f"; metric '{name}' cannot be computed for loss '{_loss_name(loss)}', which trains embeddings and "
                f"gives no predictions (its runs record the loss only: {key.partition('_')[0]}_loss)")
    if is_user_metric(name):
        return did_you_mean(key, recorded)
    try:
        wanted = set(get_metric(name).tasks)
    except ConfigError:  # top_0_accuracy
        return did_you_mean(key, recorded)
    run_tasks = _recorded_tasks(recorded)
    if not wanted & run_tasks:
        return _other_task_hint(name, wanted, run_tasks) if run_tasks else did_you_mean(key, recorded)
    return not_a_number_hint(key, recorded) or \
        f"; add '{name}' to the run's metrics (metrics: [...] in a config, metrics=[...] in fit) to record it"


def not_a_number_hint(key: str, recorded: list[str]) -> str:
    """For ``key`` a list-valued built-in metric or its record key (``test_f1_per_class``, ``confusion_matrix``),
    which the config may well list but which no ranking, target or monitor can read:
    ``; f1_per_class is a list (one value per class), not a number; use a number: f1_macro (recorded as
    'test_f1_macro'), f1_weighted or f1_micro ...``, the stand-ins of the ``recorded`` keys' task, and that no key
    picks one class's value (a ``module:function`` metric can return it); the confusion matrix is K x K counts
    (one 2 x 2 per label for multi-label records). The one wording of ``--target``, ``compare --metric``,
    ``tune --metric`` and the monitors (early stopping, reduce_on_plateau). "" for any other key."""
    name = unprefixed(key)
    try:
        if name == "loss" or is_user_metric(name) or get_metric(name).scalar:
            return ""
    except ConfigError:  # an unknown name: the did-you-mean
        return ""
    name = canonical_metric_name(name)
    prefix = key[:len(key) - len(name)]  # "test_", or "" for the bare name
    if name == "confusion_matrix":
        multilabel = _recorded_tasks(recorded) == {"multilabel"}
        what = "one 2 x 2 matrix of counts per label ([[tn, fp], [fn, tp]])" if multilabel else \
            "a K x K matrix of counts (rows: true class, columns: predicted class)"
        stand_ins = ["hamming_accuracy", "subset_accuracy"] if multilabel else \
            ["accuracy", "balanced_accuracy", "matthews_corrcoef"]
        own = "a module:function metric can return a number made from it"
    else:
        what = "a list (one value per class)"
        stand_ins = [name.replace("_per_class", f"_{average}") for average in ("macro", "weighted", "micro")]
        own = "no key picks one class's value out of the list: a module:function metric can return it"
    held = [f"{stand_in} (recorded as '{prefix}{stand_in}')" if prefix + stand_in in recorded else stand_in
            for stand_in in stand_ins]
    add = "" if any(prefix + stand_in in recorded for stand_in in stand_ins) and prefix else \
        " (add one to the run's metrics to record it)"
    return (f"; {name} is {what}, not a number; use a number: {', '.join(held[:-1])} or {held[-1]}{add}; {own} "
            "(docs/extending.md, 'A metric')")


def _renamed_record_hint(key: str, recorded: list[str], loss: Any = None) -> str | None:
    """For ``<split>_<name>``, ``name`` another framework's metric name: ``; did you mean 'val_accuracy'?``
    when trainlab records its metric (``val_sparse_categorical_accuracy``), else ``; trainlab records it as
    'val_roc_auc'`` and what :func:`unrecorded_hint` says of that key (add the metric; another task's). None
    for any other key."""
    split, _, name = key.partition("_")
    equivalent = trainlab_name(name, METRIC_NAMES) if split in ("val", "test", "train") else None
    if equivalent is None:
        return None
    twin = f"{split}_{equivalent}"
    if twin in recorded:
        return f"; did you mean '{twin}'?"
    return f"; trainlab records it as '{twin}'{unrecorded_hint(twin, recorded, loss)}"


def _recorded_tasks(recorded: list[str]) -> set[str]:
    """The tasks that every built-in metric among the ``recorded`` keys allows (all: none is built in);
    empty for records of no common task (``val_accuracy`` beside ``val_mse``: a damaged record)."""
    tasks = set(TASKS)
    for other in {unprefixed(k) for k in recorded}:
        if is_built_in(other):
            tasks &= get_metric(other).tasks
    return tasks


def _other_task_hint(name: str, wanted: set[str], run_tasks: set[str]) -> str:
    """``; r2 is a regression metric, and these records are of a classification task``: ``name`` fits the
    tasks ``wanted``, none of the ``run_tasks`` (:func:`_recorded_tasks`), so no config can add it here."""
    specific = wanted <= CLASSIFICATION and run_tasks <= CLASSIFICATION  # subset_accuracy on a multiclass run
    return (f"; {name} is a {_task_words(wanted, specific)} metric, and these records are of a "
            f"{_task_words(run_tasks, specific)} task")


def _task_words(tasks: set[str], specific: bool = False) -> str:
    """``regression``, ``classification`` (any of binary, multiclass, multilabel), or with ``specific``
    (or a mix of both kinds) the tasks themselves: ``binary or multiclass``."""
    if tasks <= REGRESSION:
        return "regression"
    if tasks <= CLASSIFICATION and not specific:
        return "classification"
    return " or ".join(task for task in TASKS if task in tasks)


def _loss_name(loss: Any) -> str:
    """The name a loss is known by in a config (``triplet``)."""
    return loss if isinstance(loss, str) else str(getattr(loss, "name", type(loss).__name__))
