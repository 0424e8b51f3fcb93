"""Data sources: a registry of readers and the one function that turns a config into a Dataset.

A source is a factory ``source(**kwargs) -> RawData``. :func:`load_dataset`
validates what it returns (finite values, label range, non-empty), splits off
val/test with a seeded, stratified split where the source has none, and converts
to tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainlab.config import DataConfig
from trainlab.data.dataset import (
    BatchTransform,
    Dataset,
    Split,
    Task,
    check_finite,
    infer_task,
    split_indices,
)
from trainlab.errors import ConfigError, DataError
from trainlab.registry import Registry

DATA_SOURCES: Registry = Registry("data source")


TASKS = ("regression", "binary", "multiclass")


def check_task(task: str | None) -> None:
    """``data.task`` is one of :data:`TASKS`, or None to infer it from the targets."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"data.task must be one of {', '.join(TASKS)} (or left out to infer it); got {task!r}")


@dataclass
class RawData:
    """What a source reads: a train split, optional val/test splits, optional task facts.

    ``locate(part, row, column)`` optionally names a cell of ``x_train`` (part
    ``"features"``) or ``y_train`` (``"targets"``) as the user knows it, e.g. a CSV
    line and column name; error messages use it instead of array indices.
    ``fit_transforms(x_train)`` optionally builds ``(train_transform, eval_transform)`` from
    the training split as it is *after* val/test are split off (image normalisation
    statistics), so held-out rows never shape the inputs' scaling.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    task: Task | None = None
    class_names: list[str] | None = None
    train_transform: BatchTransform | None = None
    eval_transform: BatchTransform | None = None
    extras: dict | None = None
    locate: Callable[[str, int, int], str] | None = None
    fit_transforms: Callable[[np.ndarray], tuple[BatchTransform, BatchTransform]] | None = None


def _at(locate: Callable[[str, int, int], str] | None, part: str, row: int, col: int | None) -> str:
    """Where a cell is, for messages: the source's own words (``locate``) or 0-based indices."""
    if locate:
        return locate(part, row, col or 0)
    return f"row {row}" + (f", column {col}" if col is not None else "") + " (counting from 0)"


def _check_numeric(name: str, part: str, array: np.ndarray) -> None:
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)) \
            or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{name} {part} have dtype {array.dtype}; trainlab needs real numbers "
                        "(encode class names as integers 0..K-1)")


def _clean(name: str, x: np.ndarray, y: np.ndarray, policy: str,
           locate: Callable[[str, int, int], str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{name} must hold one row per sample; got features {x.shape} and targets {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} feature rows but {len(y)} targets")
    if len(x) == 0:
        raise DataError(f"{name} is empty (0 rows)")
    _check_numeric(name, "features", x)
    _check_numeric(name, "targets", y)
    if policy != "drop":
        for part, array in (("features", x), ("targets", y)):
            if not np.issubdtype(array.dtype, np.floating):
                continue
            bad = np.argwhere(~np.isfinite(array.reshape(len(array), -1)))
            if len(bad):
                row, col = (int(i) for i in bad[0])
                value = array.reshape(len(array), -1)[row, col]
                where = _at(locate, part, row, col if array.ndim > 1 else None)
                raise DataError(f"{name} {part} has a non-finite value ({value}) at {where}; "
                                "fix the data or set data.nan_policy: drop")
        return x, y
    keep_x = check_finite(f"{name} features", x, policy)
    keep_y = check_finite(f"{name} targets", y, policy)
    if keep_x is not None or keep_y is not None:
        keep = np.arange(len(x))
        for rows in (keep_x, keep_y):
            if rows is not None:
                keep = np.intersect1d(keep, rows)
        x, y = x[keep], y[keep]
        if len(x) == 0:
            raise DataError(f"{name} is empty after dropping rows with NaN/Inf")
    return x, y


def _check_labels(name: str, y: np.ndarray, task: str, num_classes: int | None,
                  locate: Callable[[str, int, int], str] | None = None) -> None:
    """Class labels are whole numbers in [0, num_classes) (num_classes None: only >= 0 is checked)."""
    if y.ndim != 1:
        raise DataError(f"{name} labels of a {task} task must be one label per row; got shape {y.shape}")
    whole = np.equal(np.mod(y, 1), 0)
    if not np.all(whole):
        row = int(np.flatnonzero(~whole)[0])
        raise DataError(f"{name} labels must be integer class indices for a {task} task; got {y[row]} at "
                        f"{_at(locate, 'targets', row, None)}")
    hint = " (binary labels are 0 and 1)" if task == "binary" else ""
    negative = np.flatnonzero(y < 0)
    if len(negative):
        row = int(negative[0])
        raise DataError(f"{name} label {int(y[row])} at {_at(locate, 'targets', row, None)} is negative; "
                        f"class labels are 0, 1, ..., K-1{hint}")
    if num_classes is not None and len(too_big := np.flatnonzero(y >= num_classes)):
        row = int(too_big[0])
        raise DataError(f"{name} label {int(y[row])} at {_at(locate, 'targets', row, None)} is out of range "
                        f"[0, {num_classes}){hint}")


def _same_layout(name: str, x: np.ndarray, y: np.ndarray, x_train: np.ndarray, y_train: np.ndarray) -> None:
    if x.shape[1:] != x_train.shape[1:]:
        raise DataError(f"{name} features are shaped {tuple(x.shape[1:])} per row but the training features "
                        f"{tuple(x_train.shape[1:])}")
    width, train_width = (int(np.prod(a.shape[1:], dtype=np.int64)) for a in (y, y_train))
    if width != train_width:
        raise DataError(f"{name} has {width} target value(s) per row but the training data {train_width}")


def _targets(y: np.ndarray, task: Task) -> torch.Tensor:
    if task == "regression":
        y = y.astype(np.float32)
        return torch.from_numpy(y.reshape(len(y), -1).copy())
    return torch.from_numpy(y.astype(np.int64).copy())


def _features(x: np.ndarray) -> torch.Tensor:
    if x.dtype == np.uint8 or np.issubdtype(x.dtype, np.integer):  # images/tokens: converted per batch
        return torch.from_numpy(np.ascontiguousarray(x))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def load_dataset(config: DataConfig, seed: int) -> Dataset:
    """Read the configured source and return validated train/val/test splits."""
    import trainlab.data.builtins  # noqa: F401  (registers the built-in sources)

    raw = DATA_SOURCES.build({"name": config.source, **config.source_kwargs()})
    if not isinstance(raw, RawData):
        raise ConfigError(f"data source '{config.source}' must return trainlab.data.RawData")
    check_task(raw.task)
    policy = config.nan_policy
    x_train, y_train = np.asarray(raw.x_train), np.asarray(raw.y_train)
    x_train, y_train = _clean("training data", x_train, y_train, policy, raw.locate)
    locate = raw.locate if len(x_train) == len(raw.x_train) else None  # dropping rows renumbers them
    task = raw.task or infer_task(y_train)
    num_classes = None
    if task != "regression":  # checked before splitting, so that rows are the source's rows
        _check_labels("training data", y_train, task, None, locate)  # whole numbers >= 0
        num_classes = (2 if task == "binary" else len(raw.class_names) if raw.class_names
                       else int(max(y_train.max(), 1)) + 1)
        _check_labels("training data", y_train, task, num_classes, locate)
    stratify = y_train if task != "regression" else None

    if raw.x_test is None:
        keep, held = split_indices(len(x_train), config.test_fraction, seed, stratify)
        x_test, y_test = x_train[held], y_train[held]
        x_train, y_train = x_train[keep], y_train[keep]
        stratify = y_train if task != "regression" else None
    else:
        x_test, y_test = _clean("test data", np.asarray(raw.x_test), np.asarray(raw.y_test), policy)
        _same_layout("test data", x_test, y_test, x_train, y_train)
        if num_classes is not None:
            _check_labels("test data", y_test, task, num_classes)
    if raw.x_val is None:
        keep, held = split_indices(len(x_train), config.val_fraction, seed + 1, stratify)
        x_val, y_val = x_train[held], y_train[held]
        x_train, y_train = x_train[keep], y_train[keep]
    else:
        x_val, y_val = _clean("validation data", np.asarray(raw.x_val), np.asarray(raw.y_val), policy)
        _same_layout("validation data", x_val, y_val, x_train, y_train)
        if num_classes is not None:
            _check_labels("validation data", y_val, task, num_classes)
    if len(x_train) == 0:
        raise DataError("training data is empty after splitting off val/test")
    if (raw.extras or {}).get("standardize"):
        # z-score with the training split's statistics only: val/test never leak into the scaling
        mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
        x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))

    train_transform, eval_transform = raw.train_transform, raw.eval_transform
    if raw.fit_transforms is not None:
        train_transform, eval_transform = raw.fit_transforms(x_train)

    return Dataset(
        train=Split(_features(x_train), _targets(y_train, task)),
        val=Split(_features(x_val), _targets(y_val, task)),
        test=Split(_features(x_test), _targets(y_test, task)),
        task=task,
        num_classes=num_classes,
        class_names=raw.class_names,
        train_transform=train_transform,
        eval_transform=eval_transform,
        extras=dict(raw.extras or {}),
    )


def describe(dataset: Dataset) -> dict[str, Any]:
    return {
        "task": dataset.task,
        "num_classes": dataset.num_classes,
        "input_shape": list(dataset.input_shape),
        "sizes": {"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)},
    }


__all__ = ["DATA_SOURCES", "TASKS", "Dataset", "RawData", "Split", "check_task", "describe", "load_dataset"]
