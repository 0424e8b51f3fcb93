"""Data sources: a registry of readers and the one function that turns a config into a Dataset.

A source is a factory ``source(**kwargs) -> RawData``. :func:`load_dataset`
validates what it returns (finite values, label range, non-empty), splits off
val/test with a seeded, stratified split where the source has none, and converts
to tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainlab.config import DataConfig
from trainlab.data.dataset import BatchTransform, Dataset, Split, Task, check_finite, infer_task, split_indices
from trainlab.errors import ConfigError, DataError
from trainlab.registry import Registry

DATA_SOURCES: Registry = Registry("data source")


@dataclass
class RawData:
    """What a source reads: a train split, optional val/test splits, optional task facts."""

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


def _clean(name: str, x: np.ndarray, y: np.ndarray, policy: str) -> tuple[np.ndarray, np.ndarray]:
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} feature rows but {len(y)} targets")
    if len(x) == 0:
        raise DataError(f"{name} is empty (0 rows)")
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


def _check_labels(name: str, y: np.ndarray, num_classes: int) -> None:
    if y.min() < 0 or y.max() >= num_classes:
        bad = int(y[(y < 0) | (y >= num_classes)][0])
        row = int(np.flatnonzero(y == bad)[0])
        raise DataError(f"{name} label {bad} at row {row} is out of range [0, {num_classes})")


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
    import trainlab.data.sources  # noqa: F401  (registers the built-in sources)

    raw = DATA_SOURCES.build({"name": config.source, **config.source_kwargs()})
    if not isinstance(raw, RawData):
        raise ConfigError(f"data source '{config.source}' must return trainlab.data.RawData")
    policy = config.nan_policy
    x_train, y_train = _clean("training data", np.asarray(raw.x_train), np.asarray(raw.y_train), policy)
    task = raw.task or infer_task(y_train)
    stratify = y_train if task != "regression" else None

    if raw.x_test is None:
        keep, held = split_indices(len(x_train), config.test_fraction, seed, stratify)
        x_test, y_test = x_train[held], y_train[held]
        x_train, y_train = x_train[keep], y_train[keep]
        stratify = y_train if task != "regression" else None
    else:
        x_test, y_test = _clean("test data", np.asarray(raw.x_test), np.asarray(raw.y_test), policy)
    if raw.x_val is None:
        keep, held = split_indices(len(x_train), config.val_fraction, seed + 1, stratify)
        x_val, y_val = x_train[held], y_train[held]
        x_train, y_train = x_train[keep], y_train[keep]
    else:
        x_val, y_val = _clean("validation data", np.asarray(raw.x_val), np.asarray(raw.y_val), policy)
    if len(x_train) == 0:
        raise DataError("training data is empty after splitting off val/test")

    num_classes = None
    if task != "regression":
        for name, y in (("training", y_train), ("validation", y_val), ("test", y_test)):
            if len(y) and not np.all(np.equal(np.mod(y, 1), 0)):
                raise DataError(f"{name} labels must be integer class indices for a {task} task")
        num_classes = len(raw.class_names) if raw.class_names else int(max(y_train.max(), 1)) + 1
        if task == "binary":
            num_classes = 2
        for name, y in (("training", y_train), ("validation", y_val), ("test", y_test)):
            if len(y):
                _check_labels(f"{name} data", y, num_classes)

    return Dataset(
        train=Split(_features(x_train), _targets(y_train, task)),
        val=Split(_features(x_val), _targets(y_val, task)),
        test=Split(_features(x_test), _targets(y_test, task)),
        task=task,
        num_classes=num_classes,
        class_names=raw.class_names,
        train_transform=raw.train_transform,
        eval_transform=raw.eval_transform,
        extras=dict(raw.extras or {}),
    )


def describe(dataset: Dataset) -> dict[str, Any]:
    return {
        "task": dataset.task,
        "num_classes": dataset.num_classes,
        "input_shape": list(dataset.input_shape),
        "sizes": {"train": len(dataset.train), "val": len(dataset.val), "test": len(dataset.test)},
    }


__all__ = ["DATA_SOURCES", "Dataset", "RawData", "Split", "describe", "load_dataset"]
