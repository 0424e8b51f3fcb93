"""In-memory datasets: splits of (x, y) tensors, task metadata, and batching.

Data is batched by indexing a seeded permutation of the training split; there is
no per-sample collate. A split may carry a per-batch ``transform`` (e.g. uint8
images -> normalised float, with augmentation on the training split).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from trainlab.config_fields import FLOAT32_MAX
from trainlab.errors import DataError

Task = Literal["regression", "binary", "multiclass", "multilabel"]
TASKS: tuple[str, ...] = ("regression", "binary", "multiclass", "multilabel")
# whole-number targets 0..K-1 are classes up to SURE_CLASSES, and up to MAX_INFERRED_CLASSES when no
# class is rare; beyond that they are counts (regression). See infer_task.
SURE_CLASSES = 10
MAX_INFERRED_CLASSES = 20
# several target columns of 0/1 but for at most this share of their cells (at least one cell) are labels with
# typos, not a regression: infer_task reads them as multi-label, whose check names the stray cell
STRAY_LABEL_SHARE = 0.01
# one column of labels 0..K-1 but for at most this share of the rows (-1 for "unlabeled", a typed 7) is classes
# with typos (stray_class_values), which a class-index loss's refusal names
STRAY_CLASS_SHARE = 0.05
BatchTransform = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


@dataclass(frozen=True)
class BatchRows:
    """Which training rows a batch holds, for a transform whose draw depends on the sample and the epoch.

    A transform with the attribute ``takes_rows = True`` is called ``transform(x, generator, rows)``
    (the alternating flip, :class:`trainlab.data.augment.AlternatingFlip`); every other transform is called
    ``transform(x, generator)``. All four fields are pure functions of the run's position, so such a
    transform needs no state in the checkpoint.
    """

    index: torch.Tensor  # (N,) int64: each sample's row in the training split, in batch order
    epoch: int  # the 0-based epoch the batch belongs to
    seed: int  # the run's seed
    n: int  # rows in the training split


@dataclass(frozen=True)
class Split:
    """Features ``x`` (N, ...) and targets ``y`` (N,) or (N, d)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, index: torch.Tensor | np.ndarray) -> Split:
        index = torch.as_tensor(index, dtype=torch.long)
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class Dataset:
    """Train/val/test splits plus what the model and loss need to know."""

    train: Split
    val: Split
    test: Split
    task: Task
    num_classes: int | None = None  # classification only
    class_names: list[str] | None = None
    train_transform: BatchTransform | None = None  # applied per batch, training only
    eval_transform: BatchTransform | None = None  # applied per batch at evaluation
    extras: dict = field(default_factory=dict)  # source-specific facts (e.g. a tokenizer, target_kind)
    # the fitted preprocessing (trainlab.data.preprocessing): JSON-serialisable, for predict on new rows
    preprocessing: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def target_dim(self) -> int:
        return 1 if self.train.y.ndim == 1 else int(self.train.y.shape[1])

    def with_splits(self, **splits: Split) -> Dataset:
        return replace(self, **splits)


def _whole(y: np.ndarray) -> bool:
    """Every value is a whole number (integer or bool dtype, or floats such as 0.0/1.0 as pandas writes)."""
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return True
    return bool(np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0))


def numbered_from_one(y: np.ndarray) -> bool:
    """1-D whole-number targets whose distinct values are exactly ``1, ..., K``: class labels numbered from 1
    (UCI's wine: 1, 2, 3; months 1..12) more likely than counts, by :func:`infer_task`'s rule for 0..K-1:
    ``2 <= K <=`` :data:`SURE_CLASSES`, or ``K <=`` :data:`MAX_INFERRED_CLASSES` with every value holding at
    least ``1 / (5 K)`` of the rows (the high values of counts are rare). :func:`infer_task` still reads them
    as regression; ``data.task: multiclass`` reads them as classes."""
    if y.ndim != 1 or len(y) == 0 or not _whole(y):
        return False
    values, counts = np.unique(y, return_counts=True)
    k = len(values)
    return k >= 2 and values[0] == 1 and values[-1] == k and _classes_more_likely(counts, len(y))


SMALL_COUNT = 30  # whole targets without a 0 read as counts only up to this (Poisson(6): 1..15)


def is_count_target(y: np.ndarray) -> bool:
    """Whole, non-negative 1-D targets that :func:`infer_task` reads as regression and that look like event
    counts: they include 0, or stay small (<= :data:`SMALL_COUNT`). Not labels numbered from 1
    (:func:`numbered_from_one`), nor whole-number measurements such as prices in whole units or
    diabetes scores 25..346, which never reach 0 and run large."""
    return (y.ndim == 1 and len(y) > 0 and _whole(y) and bool(y.min() >= 0)
            and (bool(y.min() == 0) or bool(y.max() <= SMALL_COUNT))
            and infer_task(y) == "regression" and not numbered_from_one(y))


def is_one_hot(y: np.ndarray) -> bool:
    """``y`` is (N, K), K >= 2, of 0/1 values with exactly one 1 in every row: K classes in one-hot form (what
    Keras's ``to_categorical`` writes and its ``categorical_crossentropy`` takes), not K independent labels."""
    if y.ndim != 2 or y.shape[1] < 2 or not len(y) or not (np.issubdtype(y.dtype, np.number)
                                                            or np.issubdtype(y.dtype, np.bool_)):
        return False
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))


def stray_label_cells(y: np.ndarray) -> int | None:
    """How many cells of (N, L) numeric targets, L > 1, are not 0 or 1, when they are few enough for the
    columns to be 0/1 labels with typos: at most :data:`STRAY_LABEL_SHARE` of the N L cells (at least one
    cell). None for anything else: 1-D targets, no rows, text, or a table whose other values are too many to
    be typos (a regression on several columns)."""
    if y.ndim != 2 or y.shape[1] < 2 or not len(y) or not (np.issubdtype(y.dtype, np.number)
                                                            or np.issubdtype(y.dtype, np.bool_)):
        return None
    stray = int(np.count_nonzero((y != 0) & (y != 1)))
    return stray if stray <= max(1, int(STRAY_LABEL_SHARE * y.size)) else None


def stray_class_values(y: np.ndarray) -> tuple[int, list[tuple[float, int]]] | None:
    """``(K, [(value, rows), ...])``: the values, with their row counts, that keep 1-D targets from reading as
    class labels 0..K-1 where the rest are such labels with typos: the labels ``0, 1, ..., m`` (m >= 1) hold all but at most
    :data:`STRAY_CLASS_SHARE` of the rows, each of them at least ``1 / (5 K)`` of the rows as classes in use
    do (:func:`_classes_more_likely`), and without the other values they read as classes (:func:`infer_task`).
    None for anything else: counts whose tail thins out (Poisson's 0..8 and a 10: its 7 and 8 are rare too),
    measurements, labels numbered from 1 (which ``data.task`` reads as classes), too many distinct values."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not len(y) or not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
        return None
    values, counts = np.unique(y, return_counts=True)
    if len(values) > MAX_INFERRED_CLASSES + 10:  # no few typos among a handful of classes
        return None
    labels = 0
    while labels < len(values) and np.any(values == labels):  # 0, 1, ..., m
        labels += 1
    in_range = np.isin(values, np.arange(labels))
    if labels < 2 or in_range.all() or counts[~in_range].sum() > STRAY_CLASS_SHARE * len(y):
        return None
    kept = counts[in_range]
    if kept.min() < kept.sum() / (5 * labels) or infer_task(y[np.isin(y, np.arange(labels))]) == "regression":
        return None
    return labels, [(float(v), int(c)) for v, c in zip(values[~in_range], counts[~in_range], strict=True)]


def one_label_per_row(y: np.ndarray, task: str) -> np.ndarray:
    """The targets of a ``binary`` or ``multiclass`` task as one label per row: a (N, 1) column (scikit-learn's
    and Keras's ``y.reshape(-1, 1)``) as its (N,) values, one-hot rows (:func:`is_one_hot`) as their class
    indices ``y.argmax(1)``, and no rows of K columns (an empty split of one-hot targets) as no labels;
    anything else, and the targets of other tasks, unchanged."""
    if task not in ("binary", "multiclass") or y.ndim != 2:
        return y
    if y.shape[1] == 1 or not len(y):
        return y.reshape(len(y))
    return np.argmax(y, axis=1) if is_one_hot(y) else y


def infer_task(y: np.ndarray) -> Task:
    """The task the targets ``y`` imply when ``data.task`` is not set: the one place trainlab decides.

    Rule, in order (a (N, 1) ``y`` is read as its one column, as a 1-D ``y``):

    1. 2-D ``y`` (N, L) with L > 1 whose values are all 0 or 1: ``multilabel`` (L independent labels),
       unless every row holds exactly one 1 (:func:`is_one_hot`): then L classes in one-hot form,
       ``binary`` for L = 2, else ``multiclass`` (whatever L and however rare a class: the width says
       they are classes), which :func:`one_label_per_row` reads as class indices. Columns of 0/1 but
       for a few cells (at most :data:`STRAY_LABEL_SHARE` of them, at least one: :func:`stray_label_cells`)
       are ``multilabel`` too: labels with a typo, whose check names the stray cell (read as a regression,
       the typo would send the user to the wrong task); ``data.task: regression`` reads them as numbers.
    2. 1-D whole-number ``y`` (integers, bools, or floats written ``0.0/1.0``) whose distinct values
       are exactly ``0, 1, ..., K-1`` are classes (``binary`` when the values lie in {0, 1}, else
       ``multiclass``) when

       - ``K <= SURE_CLASSES`` (10), or
       - ``K <= MAX_INFERRED_CLASSES`` (20) and every class holds at least ``1 / (5 K)`` of the rows
         (class labels are used; the high values of counts are rare).

    3. Exactly -1 and 1 (the SVM convention): ``binary``, classes named ``-1`` and ``1``.
    4. Anything else is ``regression``. This includes non-negative integers with many distinct
       values, gaps or a rare tail (0, 1, ..., 17 from a Poisson count): counts, not an 18-class
       problem (see :func:`is_count_target`). ``data.task: multiclass`` reads them as classes, and
       ``data.task: regression`` reads small counts (0..5) as numbers.

    String labels never reach this function: readers turn them into indices 0..K-1 with the
    names in ``class_names``.

    >>> infer_task(np.array([0, 1, 1, 0])), infer_task(np.array([0.0, 2.0, 1.0]))
    ('binary', 'multiclass')
    >>> infer_task(np.array([0, 3, 17, 250])), infer_task(np.array([[0, 1], [1, 1]]))
    ('regression', 'multilabel')
    >>> infer_task(np.array([[0], [1], [1]])), infer_task(np.array([[0, 1, 0], [1, 0, 0]]))
    ('binary', 'multiclass')
    >>> infer_task(np.array([[0, 1], [1, 1], [2, 0]])), infer_task(np.array([[0, 1], [2, 1], [2, 0]]))
    ('multilabel', 'regression')
    """
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if is_one_hot(y):
        return "binary" if y.shape[1] == 2 else "multiclass"
    if y.ndim == 2 and y.shape[1] > 1:
        return "multilabel" if stray_label_cells(y) is not None else "regression"
    if y.ndim != 1 or len(y) == 0 or not _whole(y):
        return "regression"
    values, counts = np.unique(y, return_counts=True)
    k = len(values)
    if k == 2 and values[0] == -1 and values[1] == 1:
        return "binary"  # the SVM/perceptron convention: two classes named -1 and 1
    if values[0] != 0 or values[-1] != k - 1:
        return "binary" if k == 1 and values[0] == 1 else "regression"
    if not _classes_more_likely(counts, len(y)):
        return "regression"
    return "binary" if k <= 2 else "multiclass"


def _classes_more_likely(counts: np.ndarray, rows: int) -> bool:
    """Whether K consecutive whole values (0..K-1, or 1..K) with ``counts`` rows each of ``rows`` read as classes
    rather than counts: ``K <=`` :data:`SURE_CLASSES`, or ``K <=`` :data:`MAX_INFERRED_CLASSES` with every value
    holding at least ``1 / (5 K)`` of the rows (class labels are used; the high values of counts are rare)."""
    k = len(counts)
    return k <= SURE_CLASSES or (k <= MAX_INFERRED_CLASSES and bool(counts.min() >= rows / (5 * k)))


def class_values(y: np.ndarray) -> np.ndarray | None:
    """The sorted distinct labels of 1-D whole-number class targets ``y`` that hold no 0 (numbered
    from 1, as UCI's wine writes 1, 2, 3, or from any positive number, or -1/1); None otherwise: labels
    holding 0 are class indices 0..K-1, where a negative one (-1 often marks unlabeled rows) is refused.

    A task set to ``binary``/``multiclass`` on such labels reads the k-th smallest value as class k
    and keeps the values as the class names (what scikit-learn's ``LabelEncoder`` does), so no
    class is left without rows and predictions print the labels as the data wrote them. Labels
    that hold 0 are class indices 0..K-1, where a stray large value is a typo to refuse.
    """
    if y.ndim != 1 or len(y) == 0 or not _whole(y) or bool((y == 0).any()):
        return None
    return np.unique(y)


# per-class rounding is kept while its total is within this share of n * fraction (or within one row)
ROUNDING_TOLERANCE = 0.1


def held_out_counts(sizes: Sequence[int], fraction: float, tie_order: Sequence[int] | None = None) -> list[int]:
    """Rows a stratified split holds out of each class of ``sizes`` rows, for ``0 < fraction < 1``.

    1. Each class rounded on its own, ``round(size * fraction)`` clipped to 1..``size - 1`` for a class of
       two or more rows (a class of one row: none), as earlier versions split every data set, when the
       total is within :data:`ROUNDING_TOLERANCE` (10%) of ``n * fraction``, or within one row. Rounding
       is off by at most half a row per class, so this holds for classes of dozens of rows or more, also
       beside a rare class whose clip to 1 row the other classes' total absorbs ([1000, 2] at 0.2:
       [200, 1]): every bundled and example data set (digits, iris, breast_cancer, MNIST, CIFAR-10,
       SST-2 ...) splits as before, and so the documented figures stand.
    2. Otherwise the classes are too small for per-class rounding (15 classes of 3 rows would hold out
       a third at fraction 0.2; 50 classes of 2 rows half). ``max(1, round(n * fraction))`` rows are then
       allocated by largest remainder, as scikit-learn's ``StratifiedShuffleSplit`` does:
       ``floor(size * fraction)`` each, then one more row to the classes with the largest fractional
       parts (on a tie the larger class, then the order of ``tie_order``, a permutation of the classes;
       default their order), never a class's last row. Some classes then hold no row out.

    The counts' sum, and the sizes the classes are left with (as a multiset), depend on ``sizes`` and
    ``fraction`` only, never on ``tie_order``: :func:`trainlab.data.counting.split_sizes` relies on it.

    >>> held_out_counts([178, 182, 177], 0.2), held_out_counts([1000, 2], 0.2), held_out_counts([3] * 5, 0.2)
    ([36, 36, 35], [200, 1], [1, 1, 1, 0, 0])
    """
    exact = [size * fraction for size in sizes]
    rounded = [min(max(int(round(value)), 1), size - 1) if size > 1 else 0 for value, size in zip(exact, sizes,
                                                                                                 strict=True)]
    if abs(sum(rounded) - sum(exact)) <= max(1.0, ROUNDING_TOLERANCE * sum(exact)):
        return rounded
    capacity = [max(size - 1, 0) for size in sizes]  # a class keeps one row in training
    held = [min(math.floor(value), cap) for value, cap in zip(exact, capacity, strict=True)]
    ties = list(tie_order) if tie_order is not None else list(range(len(sizes)))
    rank = {k: i for i, k in enumerate(ties)}
    order = sorted(range(len(sizes)), key=lambda k: (-(exact[k] - math.floor(exact[k])), -sizes[k], rank[k]))
    left = min(max(1, int(round(sum(sizes) * fraction))), sum(capacity)) - sum(held)
    while left > 0:  # one row per class and pass, largest remainder first, until the total is reached
        for k in order:
            if left and held[k] < capacity[k]:
                held[k] += 1
                left -= 1
    return held


def split_indices(
    n: int, fraction: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (stratified when ``labels`` is 1-D) split into (keep, held_out) indices.

    A random split holds out ``max(1, round(n * fraction))`` rows; a stratified one holds out
    :func:`held_out_counts` of each class (about as many; fewer where each class must keep a row).
    Multi-label targets (``labels`` 2-D) are split at random: stratifying on label sets is not done.
    """
    rng = np.random.default_rng(seed)
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    if labels is None or labels.ndim != 1:
        order = rng.permutation(n)
        n_out = max(1, int(round(n * fraction)))
        return np.sort(order[n_out:]), np.sort(order[:n_out])
    members = [rng.permutation(np.flatnonzero(labels == cls)) for cls in np.unique(labels)]
    # drawn after the permutations, so the permutations are those of every earlier version
    counts = held_out_counts([len(m) for m in members], fraction, rng.permutation(len(members)))
    held = [m[:count] for m, count in zip(members, counts, strict=True)]
    held_out = np.sort(np.concatenate(held)) if held else np.arange(0)
    kept = np.ones(n, dtype=bool)  # a mask, not np.setdiff1d: that sorts and hashes (seconds at 10^6 rows)
    kept[held_out] = False
    return np.flatnonzero(kept), held_out


def row_position(shape: tuple[int, ...], flat: int) -> str:
    """Index ``flat`` of a row of an array shaped ``shape`` flattened, as the index in the row's own shape
    (``shape[1:]``): ``[5, 2]``, for messages naming a cell of rows of several axes."""
    return "[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, shape[1:])) + "]"


def check_float32_range(array: np.ndarray, where: Callable[[int, int], str]) -> None:
    """Raise a one-line DataError at the first finite value of ``array`` whose magnitude exceeds float32's
    range (it would become inf), naming it by ``where(row, column)`` (column: the index in the row flattened).

    Only a wider float array (float64) can hold one; any other dtype passes at no cost. NaN and inf are
    left to the NaN policy (:func:`check_finite`): they are missing or infinite, not too large.
    """
    # float(): compared as a float16, FLOAT32_MAX would overflow (a NumPy warning) before the comparison
    if not np.issubdtype(array.dtype, np.floating) or float(np.finfo(array.dtype).max) <= FLOAT32_MAX \
            or not array.size:
        return
    flat = array.reshape(len(array), -1)
    beyond = np.isfinite(flat) & (np.abs(flat) > FLOAT32_MAX)
    if beyond.any():
        row, col = (int(i) for i in np.argwhere(beyond)[0])
        raise DataError(f"{where(row, col)}: {flat[row, col]:g} is beyond float32's range (about ±3.4e38), "
                        "in which the model computes; rescale the column (e.g. a larger unit or a log scale)")


def check_finite(name: str, array: np.ndarray, policy: str) -> np.ndarray | None:
    """Raise on the first NaN/Inf (row, column), or return the rows to keep when policy is 'drop'."""
    if not np.issubdtype(array.dtype, np.floating):
        return None
    flat = array.reshape(len(array), -1)
    bad = ~np.isfinite(flat)
    if not bad.any():
        return None
    if policy == "drop":
        return np.flatnonzero(~bad.any(axis=1))
    row, col = np.argwhere(bad)[0]
    value = flat[row, col]
    raise DataError(
        f"{name} has a non-finite value ({value}) at row {row}, column {col}; "
        "fix the data or set data.nan_policy: drop"
    )
