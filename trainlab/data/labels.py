"""Class labels: the checks every split's targets get, and classes numbered from 1 read as 0..K-1.

:func:`read_class_labels` decides, on the training targets (before splitting, so rows are the
source's rows), how a task's labels become the model's: class indices 0..K-1 as they are, labels
numbered from 1 (UCI's wine: 1, 2, 3) mapped to 0..K-1 and named by their values, 0/1 columns for a
multi-label task. The :class:`ClassLabels` it returns checks and maps a given val/test split alike.
``load_dataset`` and ``trainlab.fit`` both read their labels through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainlab.config_fields import counted, short_repr, shown_name
from trainlab.data.dataset import class_values, is_one_hot, one_label_per_row, stray_label_cells
from trainlab.errors import DataError
from trainlab.notices import warn, warn_of_split

# more classes than this is a label typo (1000000000 would allocate a 64 GB output layer), not a task
MAX_CLASSES = 100_000

Locate = Callable[[str, int, int], str]


def cell_at(locate: Locate | None, part: str, row: int, col: int | None) -> str:
    """Where a cell is, for messages: the source's own words (``locate``) or 0-based indices."""
    if locate:
        return locate(part, row, col or 0)
    return f"row {row}" + (f", column {col}" if col is not None else "") + " (counting from 0)"


def check_labels(name: str, y: np.ndarray, task: str, num_classes: int | None,
                  locate: Locate | None = None) -> None:
    """Class labels are whole numbers in [0, num_classes) (num_classes None: only >= 0 is checked)."""
    if y.ndim != 1:
        # 0/1 columns here are no one-hot classes (one_label_per_row read those): a row has no 1 or several
        hint = ("; 0/1 columns with no 1 or several 1s in a row are independent labels: set data.task: multilabel"
                if y.ndim == 2 and np.isin(y, (0, 1)).all() else "")
        raise DataError(f"{name} labels of a {task} task must be one label per row; got shape {y.shape}{hint}")
    whole = np.equal(np.mod(y, 1), 0)
    if not np.all(whole):
        row = int(np.flatnonzero(~whole)[0])
        raise DataError(f"{name} labels must be integer class indices for a {task} task; got {y[row]} at "
                        f"{cell_at(locate, 'targets', row, None)}")
    hint = " (binary labels are 0 and 1)" if task == "binary" else ""
    negative = np.flatnonzero(y < 0)
    if len(negative):
        row = int(negative[0])
        raise DataError(f"{name} label {int(y[row])} at {cell_at(locate, 'targets', row, None)} is negative; "
                        f"class labels are 0, 1, ..., K-1{hint} (-1 often marks unlabeled rows: drop or relabel them)")
    if num_classes is not None and len(too_big := np.flatnonzero(y >= num_classes)):
        row = int(too_big[0])
        raise DataError(f"{name} label {int(y[row])} at {cell_at(locate, 'targets', row, None)} is out of range "
                        f"[0, {num_classes}){hint}")


def check_class_count(name: str, y: np.ndarray, locate: Locate | None) -> None:
    """Refuse labels that would make more than :data:`MAX_CLASSES` classes, before anything is allocated."""
    row = int(np.argmax(y))
    if y[row] >= MAX_CLASSES:  # not y + 1 > ...: the largest integers would wrap around
        raise DataError(f"{name} label {int(y[row])} at {cell_at(locate, 'targets', row, None)} would make "
                        f"{int(y[row]) + 1} classes; trainlab allows at most {MAX_CLASSES} (class labels are "
                        "0, 1, ..., K-1: a typo?)")


def as_training_classes(name: str, y: np.ndarray, values: np.ndarray, fix: str = "",
                        locate: Locate | None = None) -> np.ndarray:
    """A given split's labels as the training classes' indices (``values``: the training labels, sorted); a
    label none of them is, is one DataError naming its cell (:func:`cell_at`) and ending in ``fix`` (what to
    do, or "")."""
    index = np.searchsorted(values, y)
    known = (index < len(values)) & (values[np.minimum(index, len(values) - 1)] == y)
    if not np.all(known):
        row = int(np.flatnonzero(~known)[0])
        shown = f"{y[row]:g}" if y[row] != int(y[row]) else str(int(y[row]))
        raise DataError(f"{name} label {shown} at {cell_at(locate, 'targets', row, None)} is not a class of the "
                        f"training data (classes: {', '.join(str(int(v)) for v in values)}){fix}")
    return index


def check_multilabel(name: str, y: np.ndarray, locate: Locate | None = None) -> None:
    """Multi-label targets are (N, L) of 0/1: one column per label."""
    if y.ndim != 2:
        # one target per row (a single target column): a one-class-per-row task, which the fix names
        kind = "binary" if np.isin(y, (0, 1)).all() else "multiclass"
        single = "" if y.ndim != 1 else (f"; one label per row is a {kind} task: set data.task: {kind} (or leave "
                                         "it out to infer it), or give one target column per label")
        raise DataError(f"{name} targets of a multilabel task must be one 0/1 column per label, shaped (N, L); "
                        f"got shape {y.shape}{single}")
    bad = np.argwhere((y != 0) & (y != 1))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        raise DataError(f"{name} label {_shown(y[row, col])} at {cell_at(locate, 'targets', row, col)} must be 0 or "
                        f"1 for a multilabel task{_stray_note(y, len(bad))}")


def _shown(value: object) -> str:
    """A label as the file writes it: ``2``, not ``2.0`` (a CSV's targets are read as floats)."""
    number = float(value)  # type: ignore[arg-type]
    return str(int(number)) if number.is_integer() else f"{number:g}"


def _stray_note(y: np.ndarray, stray: int) -> str:
    """For (N, L) targets of 0/1 but for ``stray`` cells few enough to be typos
    (:func:`~trainlab.data.dataset.stray_label_cells`: what makes an unset task multilabel): how many, and
    the other reading of the columns; "" for any other table."""
    if stray_label_cells(y) is None:
        return ""
    verb = "is" if stray == 1 else "are"
    return (f" (one 0/1 column per label: {stray} of the {y.size} target cells {verb} not 0 or 1, the rest are); fix "
            f"{'it' if stray == 1 else 'them'}, or set data.task: regression if the {y.shape[1]} columns are numbers "
            "to predict")


def warn_one_hot(what: str, width: int, task: str, keep: str = "set data.task: multilabel") -> None:
    """The one warning line for one-hot targets (:func:`~trainlab.data.dataset.is_one_hot`) of ``width``
    columns read as the class indices ``y.argmax(1)`` of a ``task`` task: ``what`` names them, ``keep`` says
    how to keep the columns as independent labels. A binary task of more than 2 columns is refused instead."""
    if task == "binary" and width > 2:
        raise DataError(f"data.task is binary but {what} are one-hot over {width} classes (exactly one 1 in every "
                        "row); set data.task: multiclass")
    warn(f"{what}: every row holds exactly one 1, so they are one-hot classes (Keras's to_categorical), read as "
         f"the class indices y.argmax(1) of a {task} task (as Keras's categorical_crossentropy reads them); for "
         f"independent 0/1 labels {keep}")


def named_classes_task(class_names: list[str] | None, y_train: np.ndarray) -> str | None:
    """The task of targets whose classes are named (class folders, string labels, ``data.class_names``,
    ``trainlab.fit``'s ``class_names``) when none is given: binary for up to 2 names, else multiclass.
    None without names, or for targets that are not one label per row (0/1 columns: the names name
    labels, and :func:`~trainlab.data.dataset.infer_task` reads them as multilabel)."""
    if class_names is None or y_train.ndim != 1:
        return None
    return "binary" if len(class_names) <= 2 else "multiclass"


def refuse_duplicate_names(class_names: list[str], names_key: str) -> None:
    """A DataError naming the first class name given twice: two classes under one name would make
    predictions and per-class metrics ambiguous. One pass over a set (at most MAX_CLASSES names)."""
    seen: set[str] = set()
    for name in class_names:
        if name in seen:
            raise DataError(f"the class names ({names_key}) hold {short_repr(name)} twice; give each class one "
                            "name, in class-index order")
        seen.add(name)


def refuse_one_class(y_train: np.ndarray, class_names: list[str] | None) -> None:
    """A DataError when the training labels (class indices) hold a single class: nothing to learn."""
    if len(y_train) and len(np.unique(y_train)) < 2:
        only = class_names[int(y_train[0])] if class_names else f"{y_train[0]:g}"
        # "a classifier", not the task's name: one class reads as a binary task, though the data may name four
        raise DataError(f"the training targets hold one class ({short_repr(str(only))} in all {len(y_train)} rows); a "
                        "classifier needs rows of at least two classes")


def _label_list(indices: np.ndarray, class_names: list[str] | None) -> str:
    """``urgent, vip`` (or ``0, 3`` without names: a 1.0 read as the 1 written), the first five and ``...``."""
    names = [class_names[int(i)] if class_names else f"{i:g}" for i in indices[:5]]
    return ", ".join(map(shown_name, names)) + (", ..." if len(indices) > 5 else "")


def warn_classes_absent(split: str, classes: np.ndarray, y: np.ndarray, class_names: list[str] | None,
                        why: str) -> None:
    """One warning naming the ``classes`` (training class indices) that the labels ``y`` of the ``split``
    have no row of, with ``why``, and what that split's metrics then make of them, which they do not say: a
    macro average counts such a class only where the model predicts it (the classes in the targets or the
    predictions, scikit-learn's rule, docs/metrics.md), so it averages over a number of classes that depends
    on the model; the per-class lists and the confusion matrix show it (recall 0, a row of zeros)."""
    missing = classes[~np.isin(classes, y)]
    if len(missing):
        warn_of_split(split, f"the {split} split holds no row of {len(missing)} of the {len(classes)} classes "
                     f"({_label_list(missing, class_names)}): {why}, so "
                     f"{split} metrics score them on no row: a macro average counts such a class only where the "
                     "model predicts it (the classes in the targets or the predictions, as scikit-learn), and the "
                     "per-class lists and the confusion matrix show it (recall 0, a row of zeros); add rows of "
                     "those classes")


def warn_labels_never_positive(y_by_split: dict[str, np.ndarray], class_names: list[str] | None) -> None:
    """Multi-label targets: one warning naming the labels that are 1 in no training row (the model cannot learn
    to predict them: each scores f1 0, which lowers f1_macro, and roc_auc and average_precision leave them
    out), and one per val/test split naming the labels the training rows hold but that split never has as 1
    (its recall of them is 0 over no row, and its roc_auc and average_precision leave them out), as a
    single-label split's missing classes are warned of (:func:`warn_classes_absent`). ``y_by_split``: ``train``,
    ``val``, ``test`` to their (N, L) 0/1 targets."""
    train = y_by_split["train"]
    if train.ndim != 2 or not len(train):
        return
    never = np.flatnonzero(train.sum(axis=0) == 0)
    if len(never):
        warn(f"{counted(len(never), 'label')} of {train.shape[1]} ({_label_list(never, class_names)}) "
             f"{'is' if len(never) == 1 else 'are'} 1 in no training row: the model cannot learn to predict "
             f"{'it' if len(never) == 1 else 'them'} (f1 0, which lowers f1_macro; roc_auc and average_precision "
             "leave such labels out); add rows where they are 1, or drop the column")
    learnt = train.sum(axis=0) > 0
    for split in ("val", "test"):
        y = y_by_split.get(split)
        if y is None or y.ndim != 2 or not len(y):
            continue
        absent = np.flatnonzero(learnt & (y.sum(axis=0) == 0))
        if len(absent):
            warn_of_split(split, f"the {split} split holds no row where {counted(len(absent), 'label')} "
                                 f"({_label_list(absent, class_names)}) {'is' if len(absent) == 1 else 'are'} 1: "
                                 f"{split} recall of {'it' if len(absent) == 1 else 'them'} is 0 over no row, and "
                                 f"{split} roc_auc and average_precision leave {'it' if len(absent) == 1 else 'them'} "
                                 "out; add rows where they are 1")


@dataclass(frozen=True)
class ClassLabels:
    """How ``task``'s targets are read: ``num_classes`` (None for regression), ``class_names`` (None:
    unnamed indices), and ``values``, the training labels when they were numbered from 1."""

    task: str
    num_classes: int | None
    class_names: list[str] | None
    values: np.ndarray | None = None

    def given(self, name: str, y: np.ndarray, names_key: str | None = None, task_given: bool = False,
              locate: Locate | None = None) -> np.ndarray:
        """A given (val/test) split's targets, mapped as the training ones were and checked.

        ``names_key``: the option that names the classes (``data.class_names`` for a source that takes
        it), which the error for a label beyond the training ones suggests; None: the source has none.
        ``task_given``: the task was given (``data.task``, the source's, fit's ``task``), not inferred, so
        that error's fix for a binary task also sets the task: names alone would leave it binary.
        ``locate``: how the errors name a bad label's cell (:func:`cell_at`; ``trainlab.fit`` names a pandas
        y's by its index labels, as for the training labels); None: by its 0-based row.
        """
        y = one_label_per_row(y, self.task)  # (N, 1) and one-hot rows, as the training targets were read
        if self.values is not None:
            y = as_training_classes(name, y, self.values, self._unseen_value_fix(names_key, task_given), locate)
        if self.task == "multilabel":
            check_multilabel(name, y, locate)
        elif self.num_classes is not None:
            if self.class_names is None:  # binary or multiclass, unnamed: the training labels made the classes
                self._refuse_labels_beyond_training(name, y, names_key, task_given, locate)
            check_labels(name, y, self.task, self.num_classes, locate)
        return y

    def _unseen_value_fix(self, names_key: str | None, task_given: bool) -> str:
        """What to do with a given split's label that none of the training values (labels without a 0) is,
        as :meth:`_refuse_labels_beyond_training` says it for labels 0..K-1."""
        if not names_key:
            return "; add training rows of it, or drop such rows"
        binary = " and data.task: multiclass (the task given is binary)" if self.task == "binary" and task_given else ""
        return (f"; to keep it, number the classes 0..K-1 in every split and set {names_key} to the names of all "
                f"K classes{binary}, or add training rows of it")

    def _refuse_labels_beyond_training(self, name: str, y: np.ndarray, names_key: str | None,
                                       task_given: bool, locate: Locate | None = None) -> None:
        """Unnamed classes are 0..(largest training label), so a given split's label above that is a class
        the training data lacks (an MNIST subset without 9s, 0/1 training labels and a test label 2): say
        so, not only "out of range"."""
        if y.ndim != 1:  # one label per row is check_labels' to say
            return
        num_classes = int(self.num_classes or 0)
        whole = np.equal(np.mod(y, 1), 0)  # fractional labels get check_labels' own error
        beyond = np.flatnonzero(whole & (y >= num_classes))
        if not len(beyond) or not np.all(whole):
            return
        row, needed = int(beyond[0]), int(y[beyond].max()) + 1
        binary = self.task == "binary"
        named = f"set {names_key} to the names of all the classes (at least {needed}, for labels 0..{needed - 1}"
        if binary and task_given:  # names alone leave a given binary task binary (fit words it task='multiclass')
            named += ") and data.task: multiclass (the task given is binary)"
        else:  # more than two names make an inferred task multiclass
            named += ", a multiclass task)" if binary else ")"
        fix = f"to keep it, {named}, or add training rows of it" if names_key else "add training rows of it, or drop such rows"
        raise DataError(f"{name} label {int(y[row])} at {cell_at(locate, 'targets', row, None)} is out of range "
                        f"[0, {num_classes}){' (binary labels are 0 and 1)' if binary else ''}: the classes are "
                        f"inferred from the training labels, which go up to {num_classes - 1}, so the training data "
                        f"has no row of class {int(y[row])}; {fix}")


def _named(indices: np.ndarray, names: list[str]) -> str:
    """``class 0 ('a')`` or ``classes 3, 7 ('d', 'h')`` (at most five shown)."""
    shown = ", ".join(short_repr(str(names[int(i)])) for i in indices[:5]) + (", ..." if len(indices) > 5 else "")
    return f"class{'' if len(indices) == 1 else 'es'} {_listed(indices)} ({shown})"


def _listed(values: np.ndarray) -> str:
    return ", ".join(str(int(v)) for v in values[:5]) + (", ..." if len(values) > 5 else "")


# where a config run's class names come from, as its messages name it
SOURCE_NAMES = "data.class_names, or the source's"


def read_class_labels(task: str, y_train: np.ndarray, class_names: list[str] | None,
                      locate: Locate | None = None,
                      names_key: str = SOURCE_NAMES, name: str = "training data") -> tuple[ClassLabels, np.ndarray]:
    """``(labels, training targets as the model takes them)``; checks the training labels of ``task``
    and the class names (each name once).

    ``names_key``: where ``class_names`` came from, as the errors and warnings about the names say it (a
    config run: ``data.class_names`` or the source's own names; ``trainlab.fit``: its ``class_names``).
    ``name``: what the errors about a bad label call the training targets (``train y`` for
    ``trainlab.fit``, whose argument is ``train=(x, y)``, as its val/test ones are ``val y``).
    """
    if class_names is not None:
        refuse_duplicate_names(class_names, names_key)
    if task in ("binary", "multiclass") and is_one_hot(y_train):
        warn_one_hot(f"the training targets ({y_train.shape[0]} rows of {y_train.shape[1]} 0/1 columns)",
                     y_train.shape[1], task, "set data.task: multilabel (trainlab.fit: task='multilabel')")
    y_train = one_label_per_row(y_train, task)
    values = class_values(y_train) if task in ("binary", "multiclass") else None
    from_one_as_indices = None  # labels without 0 read as indices because the names reach past them
    if values is not None and class_names is not None:  # names given (data.class_names) for labels 1..K
        if y_train.max() < len(class_names) and values.min() > 0:  # -1/1 with two names: the values path
            values, from_one_as_indices = None, values  # indices into the names (a split that lacks class 0)
        elif len(values) != len(class_names):
            raise DataError(f"the training labels hold {len(values)} values ({_listed(values)}) but "
                            f"{len(class_names)} class names are given ({names_key}); give one name per value")
    elif class_names is not None and task in ("binary", "multiclass") and len(y_train) \
            and y_train.ndim == 1 and y_train.max() >= len(class_names):
        raise DataError(f"the training labels go up to {int(y_train.max())} but {len(class_names)} class names are "
                        f"given ({names_key}): labels 0..K-1 need K = {int(y_train.max()) + 1} names")
    if values is not None:  # labels 1..K (no 0): class k is the k-th smallest, named by its label (or the names given)
        if task == "binary" and len(values) > 2:
            raise DataError(f"data.task is binary but the training labels hold {len(values)} values "
                            f"({_listed(values)}); set data.task: multiclass")
        y_train, class_names = np.searchsorted(values, y_train), class_names or [str(int(v)) for v in values]
    if task == "multilabel":
        check_multilabel(name, y_train, locate)
        return ClassLabels(task, int(y_train.shape[1]), class_names), y_train
    if task == "regression":
        return ClassLabels(task, None, class_names), y_train
    check_labels(name, y_train, task, None, locate)  # whole numbers >= 0
    if task == "binary" and class_names is not None and len(class_names) > 2 and len(y_train) and y_train.max() >= 2:
        # named classes (string labels, a source's names): "label 2 ... out of range" would name a label no file holds
        raise DataError(f"data.task is binary but the training labels hold {len(class_names)} classes "
                        f"({', '.join(map(shown_name, class_names[:5]))}{', ...' if len(class_names) > 5 else ''}); "
                        "set data.task: multiclass")
    check_class_count(name, y_train, locate)
    num_classes = 2 if task == "binary" else len(class_names) if class_names else int(max(y_train.max(), 1)) + 1
    check_labels(name, y_train, task, num_classes, locate)
    refuse_one_class(y_train, class_names)
    empty = np.flatnonzero(np.bincount(y_train.astype(np.int64), minlength=num_classes) == 0)
    if len(empty) and from_one_as_indices is not None:
        warn(f"the training labels hold no 0 ({_listed(from_one_as_indices)}) but are read as indices "
             f"0..{num_classes - 1} into the {num_classes} class names ({names_key}), so {_named(empty, class_names)} "
             f"{'has' if len(empty) == 1 else 'have'} no training rows; if the labels count from 1, give names for "
             f"the {len(from_one_as_indices)} labels present only (the k-th smallest label takes the k-th name)")
    elif len(empty) and class_names is not None:
        warn(f"{_named(empty, class_names)} of the {num_classes} named classes ({names_key}) "
             f"{'has' if len(empty) == 1 else 'have'} no training rows: the model cannot learn to predict "
             f"{'it' if len(empty) == 1 else 'them'} (a subset of the data that lacks {'it' if len(empty) == 1 else 'them'}?)")
    elif len(empty):
        warn(f"{len(empty)} of the {num_classes} classes have no training rows (labels {_listed(empty)}): labels "
             f"holding 0 are class indices 0..{num_classes - 1}, so gaps make empty classes; relabel the data "
             "0..K-1 if those classes do not exist")
    return ClassLabels(task, num_classes, class_names, values), y_train


def case_twins(class_names: list[str]) -> list[tuple[str, str]]:
    """The pairs of ``class_names`` that differ only in letter case (``Positive``, ``positive``), each as
    (the first of its spelling seen, the later one), in the order of ``class_names``."""
    folded: dict[str, str] = {}
    pairs = []
    for class_name in class_names:
        if (twin := folded.setdefault(class_name.casefold(), class_name)) != class_name:
            pairs.append((twin, class_name))
    return pairs


def warn_case_twins(class_names: list[str], where: str, column: str) -> None:
    """Warn of class labels in ``column`` that differ only in case (:func:`case_twins`): two classes,
    where the data most likely means one. ``where`` names the file (``CSV file a.csv``)."""
    for twin, class_name in case_twins(class_names):
        warn(f"{where}: the class labels {short_repr(twin)} and {short_repr(class_name)} in '{column}' differ "
             "only in case, so they are two classes; fix the data if they are one")
