"""scikit-learn's bundled datasets (no download): digits, iris, wine, breast_cancer, diabetes."""

from __future__ import annotations

import numpy as np

from trainlab.data import DATA_SOURCES, RawData


def _bundled(loader_name: str, task: str) -> RawData:
    from sklearn import datasets

    bunch = getattr(datasets, loader_name)()
    x = np.asarray(bunch.data, dtype=np.float32)
    classes = task != "regression"
    names = [str(n) for n in bunch.target_names] if classes else None
    y = np.asarray(bunch.target)
    # features on very different scales (breast_cancer, wine) stall plain GD: load_dataset
    # standardises them with the training split's mean and std once the splits are drawn
    # (data.standardize, on by default here)
    return RawData(x, y if classes else y.astype(np.float32), task=task, class_names=names,  # type: ignore[arg-type]
                   standardize=True, feature_names=[str(n) for n in getattr(bunch, "feature_names", [])] or None)


def _register(name: str, loader_name: str, task: str) -> None:
    def source() -> RawData:
        return _bundled(loader_name, task)

    source.__name__ = source.__qualname__ = name  # messages then say "iris() got ...", not "_register.<locals>"
    source.__doc__ = f"sklearn.datasets.{loader_name}; features standardised unless data.standardize: false."
    DATA_SOURCES.register(name)(source)


_register("digits", "load_digits", "multiclass")
_register("iris", "load_iris", "multiclass")
_register("wine", "load_wine", "multiclass")
_register("breast_cancer", "load_breast_cancer", "binary")
_register("diabetes", "load_diabetes", "regression")
