"""Regression targets no model could learn, refused while the training split's targets are still float64,
before :func:`trainlab.data.targets_tensor` casts them to the float32 the model trains in.

- Constant: every target column holds one value in every training row. There is nothing to learn (the
  mean is every prediction's answer), as with a classification target of one class, which
  :func:`trainlab.data.labels.refuse_one_class` refuses; a standardised constant is all zeros alike.
- Lost in float32: a column whose float32 values keep too little of its variation. float32 holds about
  7 significant digits, so neighbouring values at 1e12 are 2^16 = 65,536 apart (``np.spacing``): targets
  1e12 + 1e3 * N(0, 1) all cast to one value, and a run on them printed test R^2 0 (the targets it scored
  against were that one value). The share of a column's variance the cast rounds away is

      lost = mean((float32(y) - y)^2) / var(y)        (var: population variance, in float64)

  the mean squared rounding error over the variance; no model can reach R^2 above ``1 - lost`` against
  the real targets, and the metrics, computed on the rounded ones, would not say so. A column is refused
  when ``lost`` exceeds :data:`MAX_ROUNDED_SHARE` (1%: a spread of about 3 float32 spacings at its
  magnitude, std = spacing / sqrt(12 x 0.01)). ``data.standardize_target`` z-scores the targets in float64
  before the cast, which keeps them whole, so standardised targets are not checked for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trainlab.config_fields import counted, short_repr
from trainlab.errors import DataError

MAX_ROUNDED_SHARE = 0.01  # a target column whose float32 cast rounds away more of its variance is refused
STANDARDIZE_FIX = ("set data.standardize_target: true (the targets are then standardised in float64 before the "
                   "cast; metrics and predictions stay in the original units)")


def _column_name(column: int, width: int, names: Sequence[str] | None) -> str:
    """``"the regression target 'y'"`` (a named column), ``"the regression target"`` (one unnamed column)
    or ``"target column 1 of 3"``."""
    if names is not None and column < len(names):
        return f"the regression target {short_repr(str(names[column]))}"
    return "the regression target" if width == 1 else f"target column {column} of {width}"


def float32_rounded_share(column: np.ndarray) -> float:
    """The share of ``column``'s variance its float32 cast rounds away, ``mean((float32(y) - y)^2) / var(y)``
    (computed in float64); 0 for a constant column (nothing to round away)."""
    values = np.asarray(column, dtype=np.float64)
    variance = float(values.var())
    if variance == 0:
        return 0.0
    rounding = values.astype(np.float32).astype(np.float64) - values
    return float(np.mean(rounding ** 2)) / variance


def refuse_constant_targets(y: np.ndarray, names: Sequence[str] | None = None) -> None:
    """A DataError when every column of the training targets ``y`` ((N,) or (N, d)) holds one value in
    every row, naming the column(s) and the value(s)."""
    columns = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if not len(columns) or not bool(np.all(columns == columns[0])):
        return
    width, rows = columns.shape[1], len(columns)
    fix = ("nothing could be learnt from it; a regression model needs targets that vary (is the target the "
           "column to predict?)")
    if width == 1:
        raise DataError(f"{_column_name(0, 1, names)} is {columns[0, 0]:g} in all {rows} training rows: {fix}")
    values = ", ".join(f"{_column_name(j, width, names).removeprefix('the regression ')} is {columns[0, j]:g}"
                       for j in range(width))
    raise DataError(f"every regression target column is constant in all {rows} training rows ({values}): {fix}")


def refuse_float32_lost_targets(y: np.ndarray, names: Sequence[str] | None = None, fix: str = STANDARDIZE_FIX
                                ) -> None:
    """A DataError for the first column of the float64 training targets ``y`` ((N,) or (N, d)) whose float32
    cast rounds away more than :data:`MAX_ROUNDED_SHARE` of its variance (:func:`float32_rounded_share`),
    naming the column, its mean and std (float64), the spacing of float32 values at its magnitude, the share
    lost and how many distinct values are left, and ``fix`` (a config run's: :data:`STANDARDIZE_FIX`)."""
    columns = np.asarray(y).reshape(len(y), -1)
    if np.issubdtype(columns.dtype, np.floating) and columns.dtype.itemsize <= 4:
        return  # float32 (or narrower) already: the cast changes nothing
    for j in range(columns.shape[1]):
        column = columns[:, j].astype(np.float64)
        lost = float32_rounded_share(column)
        if lost <= MAX_ROUNDED_SHARE:
            continue
        mean, std = float(column.mean()), float(column.std())
        spacing = float(np.spacing(np.float32(abs(mean))))
        share = "all" if lost >= 1 else f"{lost:.1%}"
        left = len(np.unique(column.astype(np.float32)))
        raise DataError(f"{_column_name(j, columns.shape[1], names)} (mean {mean:.4g}, std {std:.4g} in the "
                        "training split) cannot be held in float32, in which the model trains: float32 cannot "
                        f"hold differences that small at that magnitude (its values near {abs(mean):.3g} are "
                        f"{spacing:.4g} apart), so the cast would round away {share} of the target's variance "
                        f"({counted(left, 'distinct value')} left of {len(np.unique(column))}); {fix}")


def check_regression_targets(y_train: np.ndarray, standardized: bool, names: Sequence[str] | None = None,
                             fix: str = STANDARDIZE_FIX) -> None:
    """Refuse training-split regression targets ``y_train`` (as read, float64) no model could learn: constant
    ones (:func:`refuse_constant_targets`), and, unless they are standardised (``standardized``: in float64,
    before the cast), ones their float32 cast would erase (:func:`refuse_float32_lost_targets`). ``names``
    name the target columns in messages (a CSV's ``data.target``); None: by position. ``fix`` is what the
    float32 refusal tells to do (a caller of ``trainlab.fit`` standardises y itself)."""
    refuse_constant_targets(y_train, names)
    if not standardized:
        refuse_float32_lost_targets(y_train, names, fix)
