"""Tabular preprocessing fitted on the training split, kept as a JSON-serialisable dict.

:func:`fit` learns, from the training rows only:

- per numeric feature column j: ``mean_j`` and ``scale_j`` (the population standard deviation,
  ``ddof=0``) when ``standardize`` is on; a column whose training std is (near) zero,
  its variance within float64 rounding of zero (scikit-learn's bound, :func:`column_stats`), keeps
  ``scale_j = 1`` so that val/test values that
  differ from the constant stay bounded (a ``1/(0 + 1e-8)`` scale turned them into 1e8 on digits);
- per categorical column: its categories, sorted, as seen in the training rows;
- for regression with ``standardize_target``: per target column ``mean`` and ``scale`` (std; 1 when 0);
- the task and the class names (index order), so a prediction can be named.

Before it learns anything, :func:`fit` refuses regression targets no model could learn from, while they are
still float64: constant ones, and unstandardised ones their float32 cast would erase
(:mod:`trainlab.data.regression_targets`).

:func:`apply` maps raw rows to model inputs::

    x = [ (x_numeric - mean) / scale  |  one_hot(cat_1)  |  one_hot(cat_2)  | ... ]

numeric columns first (in ``numeric_columns`` order), then one block per categorical column
(in ``categorical_columns`` order, categories sorted). A value that is not a category's text but
equals exactly one category as a finite number (``'1'`` beside training's ``'1.0'``) encodes as that
category; any other category not seen in training encodes as an all-zero block and is reported with
one warning line. :func:`transform_target` /
:func:`inverse_target` map regression targets to and from standardised units:
``y_std = (y - mean) / scale`` and ``y = y_std * scale + mean``; metrics are reported in original
units by applying :func:`inverse_target` to both predictions and targets.

The dict holds only str/int/float/bool/None, lists and dicts: ``json.dumps`` writes it as is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from trainlab.config_fields import counted, short_repr, shown_name
from trainlab.data.regression_targets import check_regression_targets
from trainlab.errors import DataError
from trainlab.notices import warn
from trainlab.registry import case_twin

# 2: ``constant_columns`` by scikit-learn's variance bound (:func:`column_stats`); 1, before it, also counted a
# column whose std was at most 1e-6 of its mean (Unix times), which did vary in training
FORMAT = 2
ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)
UNSEEN_SHOWN = 3  # unseen categories a warning names; it counts them all
# New rows read the wrong way round, in training standard deviations (looks_raw, looks_standardised_already):
# a root mean square of 3 of them (MISREAD_SQUARE = 3^2) is far out, and "far better the other way" is
# MISREAD_RATIO times closer in squares. No training row of the scikit-learn sets, predicted alone, reads as
# misread either way; most rows of theirs read the wrong way round do.
MISREAD_SQUARE = 9.0
MISREAD_RATIO = 10.0


def column_stats(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, scale, constant mask) per column of 2-D ``values``, computed in float64.

    A column is constant when its variance is at most what float64 rounding of the mean computation
    leaves in the values of a constant column, scikit-learn's bound (``_is_constant_feature``):
    ``var <= n eps var + (n mean eps)^2``, eps float64's machine epsilon. Its scale is 1 (StandardScaler's
    too). A column that varies by 29 around 1.7e9 (Unix times) is not constant: scale 29."""
    values = values.astype(np.float64, copy=False)
    mean = values.mean(axis=0)
    var = values.var(axis=0)
    eps, n = np.finfo(np.float64).eps, len(values)
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    return mean, np.where(constant, 1.0, np.sqrt(var)), constant


def fit(
    x_train: np.ndarray,
    *,
    task: str,
    class_names: Sequence[str] | None = None,
    standardize: bool = False,
    numeric_columns: Sequence[str] | None = None,
    categorical_train: np.ndarray | None = None,
    categorical_columns: Sequence[str] = (),
    y_train: np.ndarray | None = None,
    standardize_target: bool = False,
    source: str | None = None,
    target_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The preprocessing learnt from the training split (see the module docstring).

    Args:
        x_train: numeric features (N, F) (or any shape when ``standardize`` is off and there are
            no categorical columns: images and token ids pass through unchanged).
        task, class_names: recorded so that a prediction can be mapped to its class name.
        standardize: z-score each numeric column with the training statistics.
        numeric_columns: names of the F numeric columns (CSV headers); None for unnamed arrays.
        categorical_train: (N, C) strings, the categorical columns of the training rows.
        categorical_columns: names of the C categorical columns.
        y_train: training targets, as read (float64), needed for ``standardize_target``; regression
            targets are checked here, before they become float32.
        standardize_target: z-score regression targets (``task`` must be regression).
        source: the data source name, for :mod:`trainlab.data.predict_input`.
        target_names: the target columns' names (a CSV's ``data.target``) for messages (None: by position).
    Raises:
        DataError: regression targets no model could learn (constant, or lost in float32 unstandardised:
            :func:`trainlab.data.regression_targets.check_regression_targets`).
    """
    if task == "regression" and y_train is not None:
        check_regression_targets(np.asarray(y_train), standardize_target, target_names)
    tabular = x_train.ndim == 2
    if standardize and not tabular:
        raise DataError(f"data.standardize applies to tabular features (one vector per row); these are shaped "
                        f"{tuple(x_train.shape[1:])} per row (images are normalised per channel instead); "
                        "set data.standardize: false")
    result: dict[str, Any] = {
        "format": FORMAT,
        "source": source,
        "task": task,
        "class_names": list(class_names) if class_names is not None else None,
        "input_shape": list(x_train.shape[1:]),
        "numeric_columns": list(numeric_columns) if numeric_columns is not None else None,
        "standardize": bool(standardize),
        "mean": None,
        "scale": None,
        "constant_columns": [],
        "categorical_columns": list(categorical_columns),
        "categories": [],
        "target": None,
    }
    if standardize:
        mean, scale, constant = column_stats(x_train)
        result["mean"], result["scale"] = mean.tolist(), scale.tolist()
        result["constant_columns"] = np.flatnonzero(constant).tolist()
    if categorical_train is not None and len(categorical_columns):
        result["categories"] = [sorted({str(v) for v in np.unique(categorical_train[:, j])})
                                for j in range(len(categorical_columns))]
    if standardize_target:
        if task != "regression":
            raise DataError(f"data.standardize_target applies to regression targets; this task is {task}")
        if y_train is None:
            raise DataError("data.standardize_target needs the training targets")
        mean, scale, _ = column_stats(np.asarray(y_train).reshape(len(y_train), -1))
        result["target"] = {"mean": mean.tolist(), "scale": scale.tolist()}
    return result


def output_features(preprocessing: dict[str, Any]) -> list[str] | None:
    """Names of the model's input columns after :func:`apply` (``col=category`` for one-hot)."""
    names = preprocessing.get("numeric_columns")
    if names is None:
        return None
    encoded = [f"{col}={cat}" for col, cats in zip(preprocessing["categorical_columns"], preprocessing["categories"],
                                                   strict=True) for cat in cats]
    return list(names) + encoded


def _as_number(text: str) -> float | None:
    """``text`` as a finite float (``'1'``, ``'1.0'``, ``'1e0'``, ``' 2'``), else None (words, ``nan``, ``inf``,
    and ``'1_0'``, which Python's ``float`` reads as 10 but no CSV writer means so)."""
    if "_" in text:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _same_number(unseen: np.ndarray, categories: list[str]) -> dict[str, int]:
    """``{value: i}`` for each ``unseen`` text whose number equals that of exactly one category ``i``, both
    finite floats: a column kept as text that training read as ``'1.0'`` and a new file writes as ``'1'``."""
    positions: dict[float, list[int]] = {}
    for i, category in enumerate(categories):
        if (number := _as_number(category)) is not None:
            positions.setdefault(number, []).append(i)
    if not positions:
        return {}
    twins = {}
    for value in unseen.tolist():
        number = _as_number(value)
        matches = positions.get(number, []) if number is not None else []
        if len(matches) == 1:  # '1' beside trained '1' and '1.0' is neither: it stays unseen
            twins[value] = matches[0]
    return twins


def _one_hot(values: np.ndarray, categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, len(categories)) float32 one-hot of ``values`` and the mask of rows whose value is unseen.

    A value matches the category of the same text; failing that, the one category equal to it as a
    number (:func:`_same_number`: ``'1'`` is category ``'1.0'``). Training's val/test splits and predict's
    rows are encoded here alike."""
    known = np.asarray(categories, dtype=str)
    values = values.astype(str)
    out = np.zeros((len(values), len(known)), dtype=np.float32)
    if len(known) == 0:
        return out, np.ones(len(values), dtype=bool)
    position = np.searchsorted(known, values)
    position = np.minimum(position, len(known) - 1)
    seen = known[position] == values
    for value, index in _same_number(np.unique(values[~seen]), categories).items():
        rows = ~seen & (values == value)
        position[rows] = index
        seen |= rows
    out[np.flatnonzero(seen), position[seen]] = 1.0
    return out, ~seen


def apply(preprocessing: dict[str, Any], x: np.ndarray, categorical: np.ndarray | None = None,
          what: str = "rows", where: Callable[[int, int], str] | None = None) -> np.ndarray:
    """Model inputs from raw rows: standardise numeric columns, append one-hot categorical blocks.

    Args:
        preprocessing: from :func:`fit` (or read back from JSON).
        x: numeric features (N, F) in ``numeric_columns`` order (any shape when not tabular).
        categorical: (N, C) strings in ``categorical_columns`` order, when there are any.
        what: how the warning about unseen categories names these rows ("test data", "input.csv").
        where: ``where(row, column)`` names one numeric cell in messages ("CSV file f.csv line 7, column
            'beta'"); by default ``what``, the row index and the column's name.

    Raises:
        DataError: a finite value whose standardised value ``(x - mean) / scale`` is beyond float32's
            range (a column with a tiny training scale): it would become inf in the model's input.
    """
    columns = preprocessing.get("categorical_columns") or []
    if not preprocessing.get("standardize") and not columns:
        return x
    if x.ndim != 2:
        raise DataError(f"{what}: tabular preprocessing expects features (N, F); got {tuple(x.shape)}")
    if preprocessing.get("standardize"):
        mean = np.asarray(preprocessing["mean"], dtype=np.float64)
        scale = np.asarray(preprocessing["scale"], dtype=np.float64)
        if x.shape[1] != len(mean):
            raise DataError(f"{what}: {x.shape[1]} numeric feature columns but the preprocessing was fitted on "
                            f"{len(mean)}")
        with np.errstate(over="ignore"):  # an overflow is refused below, by its cell, not warned of by NumPy
            standardised = (x.astype(np.float64) - mean) / scale
        _check_standardised_range(preprocessing, x, standardised, what, where)
        out = standardised.astype(np.float32)
    else:
        out = x.astype(np.float32, copy=True)
    if not columns:
        return out
    if categorical is None or categorical.shape != (len(x), len(columns)):
        got = None if categorical is None else tuple(categorical.shape)
        raise DataError(f"{what}: expected {len(columns)} categorical column(s) ({', '.join(map(shown_name, columns))}); got {got}")
    blocks = [out]
    for j, (name, categories) in enumerate(zip(columns, preprocessing["categories"], strict=True)):
        encoded, unseen = _one_hot(categorical[:, j], categories)
        if unseen.any():
            values = np.unique(categorical[unseen, j])
            shown = ", ".join(short_repr(str(v)) for v in values[:UNSEEN_SHOWN])
            listed = (f"{len(values)} values, e.g. {shown}" if len(values) > UNSEEN_SHOWN
                      else f"{counted(len(values), 'value')}: {shown}")
            warn(f"{what}: {int(unseen.sum())} row(s) have categories of '{name}' not seen in training "
                 f"({listed}); they are encoded as all zeros{_case_twins(values, categories)}")
        blocks.append(encoded)
    return np.concatenate(blocks, axis=1)


def _case_twins(unseen: np.ndarray, categories: list[str]) -> str:
    """``"; 'A' is the training category 'a' in another letter case (categories match exactly)"`` for the first
    of ``unseen`` that equals exactly one training category but for letter case; ``""`` for none."""
    for value in unseen.tolist():
        twin = case_twin(str(value), categories)
        if twin is not None:
            return (f"; {short_repr(str(value))} is the training category {short_repr(twin)} in another letter "
                    "case (categories match exactly): write it as in training")
    return ""


def warn_constant_changed(preprocessing: dict[str, Any], x: np.ndarray, what: str) -> None:
    """For new rows (predict's, ``run.preprocess``'s; not training's own splits): one warning per column that
    held one value in every training row (``constant_columns``) and holds another in some of ``x``'s raw
    numeric rows (a finite value not within 1e-7 relative of it): the model never saw the column vary, so the
    weights it meets there were never trained on it, and the change moves predictions by ``(x - mean) / 1``
    through them (scale 1: :func:`column_stats`), unsaid before. Runs whose preprocessing predates
    :data:`FORMAT` 2 are not judged: their constant columns may have varied in training."""
    if not preprocessing.get("standardize") or preprocessing.get("format") != FORMAT or x.ndim != 2 \
            or x.shape[1] != len(preprocessing.get("mean") or []):  # rows of another width: apply refuses them
        return
    names = preprocessing.get("numeric_columns") or []
    for col in preprocessing.get("constant_columns") or []:
        if not isinstance(col, int) or not 0 <= col < x.shape[1]:
            continue
        value = float(preprocessing["mean"][col])
        column = x[:, col].astype(np.float64)
        other = np.isfinite(column) & ~np.isclose(column, value, rtol=1e-7, atol=0.0)
        if other.any():
            name = f"'{shown_name(names[col])}'" if col < len(names) else f"column {col}"
            shown = ", ".join(f"{v:.12g}" for v in np.unique(column[other])[:UNSEEN_SHOWN])  # 1.7e9 + 1000 shown
            warn(f"{what}: {int(other.sum())} row(s) have a value of {name} other than {value:.12g}, its value in "
                 f"every training row (here: {shown}); the model never saw it vary, so the change moves "
                 "their predictions through weights never trained on it")


def varying_columns(preprocessing: dict[str, Any]) -> list[int]:
    """The numeric columns a standardising preprocessing scales by a training standard deviation: every one
    but the columns constant in training (scale 1: :func:`column_stats`); none without standardisation."""
    if not preprocessing.get("standardize"):
        return []
    constant = set(preprocessing.get("constant_columns") or [])
    return [j for j in range(len(preprocessing.get("mean") or [])) if j not in constant]


def _feature_squares(rows: np.ndarray) -> np.ndarray:
    """Per column, the mean of ``rows ** 2`` (float64; inf where it overflows), sorted ascending."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sort(np.mean(np.square(rows, dtype=np.float64), axis=0))


def looks_raw(given: np.ndarray, standardised: np.ndarray) -> bool:
    """Whether rows given as model inputs (N, F) (the :func:`varying_columns`) look like raw rows: their mean
    square ``g`` over every value is at least 9 (3 training standard deviations) and 10 times that of the same
    rows standardised as the training rows were (``standardised``). The mean, not a median: raw rows may be far
    in a few features only (breast_cancer's areas in the hundreds beside fractions); a row rightly far in one
    feature (a rare indicator, 14 deviations out) is farther still standardised again, so the ratio spares it."""
    if given.ndim != 2 or not given.size:
        return False
    far = float(np.mean(_feature_squares(given)))
    return far >= MISREAD_SQUARE and far >= MISREAD_RATIO * float(np.mean(_feature_squares(standardised)))


def looks_standardised_already(raw: np.ndarray, standardised: np.ndarray) -> float | None:
    """For rows taken raw (N, F) and the same rows standardised (the :func:`varying_columns`): ``sqrt(d)`` when
    they look standardised already, else None. ``d`` is the lower median over the features of their mean square
    once standardised (of F values, the ((F + 1) // 2)-th smallest): standardising twice moves most features,
    by ``-mean / scale``, so at least half must lie 3 deviations out (``d >= 9``), and the rows as given must
    have the size of standardised values (mean square at most 9: rows in other units are no such rows), and
    not all be whole numbers (z-scores practically never are: rare flags or counts, a row ``[1, 1]`` of two 1%
    indicators 10 deviations out, are). At least 2 features: one indicator column would read so."""
    if raw.ndim != 2 or raw.shape[1] < 2 or not len(raw) or np.all(np.mod(raw, 1) == 0):
        return None
    squares = _feature_squares(standardised)
    far = float(squares[(len(squares) - 1) // 2])
    if far < MISREAD_SQUARE or float(np.mean(_feature_squares(raw))) > MISREAD_SQUARE:
        return None
    return math.sqrt(far)


def warn_standardised_twice(preprocessing: dict[str, Any], raw: np.ndarray, standardised: np.ndarray,
                            what: str) -> None:
    """For new raw rows (a file, a DataFrame or ``run.preprocess``'s rows) and what :func:`apply` made of
    them: one warning when they look standardised already (:func:`looks_standardised_already`: the
    standardised rows lie far out while the rows as given have the size of standardised values). Rows that
    ``run.preprocess`` or ``run.read`` returned, saved and given again, are standardised twice that way, every prediction
    silently wrong (a wine run's 'alcohol' lands 16 standard deviations out). Rows holding NaN or inf are left
    out (an all-NaN file was said to average nan, "nan standard deviations out", before its error)."""
    columns = varying_columns(preprocessing)
    width = len(preprocessing.get("mean") or [])
    if not columns or raw.ndim != 2 or raw.shape[1] != width or standardised.ndim != 2 \
            or standardised.shape[1] < width:
        return
    twice, given = standardised[:, columns].astype(np.float64), raw[:, columns].astype(np.float64)
    finite = np.isfinite(given).all(axis=1)  # a row holding NaN is refused on its own, not averaged here as nan
    twice, given = twice[finite], given[finite]
    distance = looks_standardised_already(given, twice)
    if distance is None:
        return
    means = twice.mean(axis=0)
    farthest = int(np.abs(means).argmax())
    column = columns[farthest]
    names = preprocessing.get("numeric_columns") or []
    name = f"'{shown_name(names[column])}'" if column < len(names) else f"{column} (counting from 0)"
    warn(f"{what}: these rows look standardised already: their values have the size of standardised ones, and "
         f"standardised as the training rows were they lie {distance:.3g} training standard deviations out (the "
         f"median feature; {name} averages {given[:, farthest].mean():.4g} here, {means[farthest]:.3g} standard "
         f"deviations from its training mean {preprocessing['mean'][column]:.4g}); rows are taken raw, as "
         "the training file held them, so rows standardised already (what run.preprocess and run.read return) are "
         "standardised twice: give the raw rows (from Python, pass standardised ones to run.predict(x))")


def _check_standardised_range(preprocessing: dict[str, Any], x: np.ndarray, standardised: np.ndarray, what: str,
                              where: Callable[[int, int], str] | None) -> None:
    """Refuse the first finite raw value whose standardised value is beyond float32's range (the cast to
    float32 would make it inf, with a NumPy warning), naming its cell, value, and the training statistics."""
    from trainlab.config_fields import FLOAT32_MAX

    beyond = np.isfinite(standardised) & (np.abs(standardised) > FLOAT32_MAX)
    beyond |= np.isfinite(x) & ~np.isfinite(standardised)  # beyond float64 even: (1e308 - m) / 1e-3
    if not beyond.any():
        return
    row, col = (int(i) for i in np.argwhere(beyond)[0])
    names = preprocessing.get("numeric_columns") or []
    place = where(row, col) if where is not None else (
        f"{what}: row {row}, column {shown_name(names[col]) if col < len(names) else col}")
    mean, scale = preprocessing["mean"][col], preprocessing["scale"][col]
    raise DataError(f"{place}: {x[row, col]:g} standardises to {standardised[row, col]:.3g} with the training mean "
                    f"{mean:g} and scale {scale:g}, beyond float32's range (about ±3.4e38), in which the model "
                    "computes; the value is far outside the training data's range")


def _target_stats(preprocessing: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    target = preprocessing.get("target")
    if not target:
        return None
    return np.asarray(target["mean"], dtype=np.float64), np.asarray(target["scale"], dtype=np.float64)


def _affine(y: ArrayOrTensor, scale: np.ndarray, shift: np.ndarray) -> ArrayOrTensor:
    """``y * scale + shift`` per target column, for (N,) or (N, d) ``y``, keeping its type and dtype."""
    if isinstance(y, torch.Tensor):
        dtype = y.dtype if y.is_floating_point() else torch.float32
        s = torch.as_tensor(scale, dtype=dtype, device=y.device)
        b = torch.as_tensor(shift, dtype=dtype, device=y.device)
        if y.ndim == 1:
            s, b = s.reshape(-1)[0], b.reshape(-1)[0]
        return y.to(dtype) * s + b
    y = np.asarray(y)
    dtype = y.dtype if np.issubdtype(y.dtype, np.floating) else np.float32
    if y.ndim == 1:
        scale, shift = scale.reshape(-1)[:1], shift.reshape(-1)[:1]
    return (y * scale + shift).astype(dtype)


def transform_target(preprocessing: dict[str, Any], y: ArrayOrTensor) -> ArrayOrTensor:
    """Regression targets in standardised units, ``(y - mean) / scale``; unchanged without target stats."""
    stats = _target_stats(preprocessing)
    if stats is None:
        return y
    mean, scale = stats
    return _affine(y, 1.0 / scale, -mean / scale)


def inverse_target(preprocessing: dict[str, Any], y: ArrayOrTensor) -> ArrayOrTensor:
    """Predictions or targets back in original units, ``y * scale + mean``, in float64 (a tensor on the
    CPU: MPS has no float64); unchanged without target stats.

    Works on NumPy arrays and torch tensors, shaped (N,) or (N, d). The engine applies it to the
    model's regression outputs and to the targets before computing metrics, predict to what it
    returns and writes, the report to its residuals. Float64, because a target of 1e8 +- 3 is a
    multiple of 8 in float32: the metrics of float32 originals were those of the rounding.
    """
    stats = _target_stats(preprocessing)
    if stats is None:
        return y
    mean, scale = stats
    y = y.detach().cpu().double() if isinstance(y, torch.Tensor) else np.asarray(y, dtype=np.float64)
    return _affine(y, scale, mean)
