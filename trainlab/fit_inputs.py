"""What :func:`trainlab.fit` trains on: the user's (x, y) arrays, tensors, pandas objects or map-style torch
Datasets turned into checked :class:`~trainlab.data.dataset.Split` s, and those into the
:class:`~trainlab.data.dataset.Dataset` a config run would build from the same data.

Contract: :func:`as_split` gives one split as tensors (x float32 where floating, y with an (N, 1) column
squeezed), or None for None; anything else fit cannot train on (a DataLoader, ``(x, y, weights)``, a
fraction, an IterableDataset, a sparse tensor or scipy.sparse matrix, a dict, a generator, x of several
inputs (a tuple or list of arrays, for a model whose forward takes several), non-numeric, ragged, non-finite
or float32-overflowing values, x and y of different lengths, an empty train) is one
:class:`~trainlab.errors.DataError` naming the split and what to pass instead, and a cell of a pandas x or y
by its index and column labels (``row index 'cust7', column 'income'``), one of an array, tensor or Dataset
by its 0-based position. :func:`fit_dataset` applies
the data layer's task rule and label reading to the splits (``task``/``class_names`` as
``data.task``/``data.class_names``) and gives val/test x train x's dtype, which the model takes (integer or
bool features beside float ones converted, other mixes one DataError: :func:`_as_training_dtype`) and the
columns of a val or test DataFrame train's order by name (:mod:`trainlab.fit_columns`); bad
arguments are one :class:`~trainlab.errors.ConfigError`. Nothing here trains or writes files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trainlab.config_fields import plain_scalar, short_repr
from trainlab.data import TASKS, targets_tensor
from trainlab.data.dataset import Dataset, Split, check_float32_range, infer_task, row_position
from trainlab.data.labels import (
    ClassLabels,
    Locate,
    named_classes_task,
    read_class_labels,
    warn_classes_absent,
)
from trainlab.data.regression_targets import check_regression_targets
from trainlab.data.shared_rows import warn_of_shared_rows
from trainlab.errors import ConfigError, DataError
from trainlab.fit_columns import in_training_order
from trainlab.losses.task_fit import refuse_soft_targets
from trainlab.notices import warn
from trainlab.registry import did_you_mean
from trainlab.run_checks import FIT_FIXES, FIXES_KEY

Arrays = tuple[Any, Any]


def _tensor(value: Any, what: str) -> torch.Tensor:
    """``value`` (tensor, array, DataFrame, nested lists) as a tensor of numbers, or one DataError. A tensor is
    detached (the same storage, no copy): features computed without ``torch.no_grad()``, or a tensor that
    requires grad, would otherwise carry their graph into training (backward through it a second time,
    gradients written into the module that computed them)."""
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:  # torch's own error (aten::ne on SparseCPU) would come from the checks
            raise DataError(f"{what} is a sparse tensor ({value.layout}); pass {_part(what)}.to_dense(): fit "
                            "trains on dense tensors")
        tensor = value.detach()
    else:
        tensor = _from_array(value, what)
    if tensor.ndim == 0:
        raise DataError(f"{what} is a single number; give one row per sample (an array or tensor)")
    if tensor.dtype in (torch.bfloat16, torch.float16):  # read as NumPy below (no bf16 there), trained in fp32
        tensor = tensor.float()
    return tensor


def _part(what: str) -> str:
    """``x`` or ``y``: the name of the part ``what`` (``train x``, ``val y of item 3``) is about."""
    return what.split()[1]


def _refuse_unlike_an_array(value: Any, what: str) -> None:
    """One DataError for what NumPy would read as a single object (dtype object, 0-d) though it holds rows:
    a scipy.sparse matrix (what TfidfVectorizer and OneHotEncoder return), a dict, a generator or iterator;
    each is named with what to pass instead, not called text or category columns."""
    part, kind = _part(what), type(value).__name__
    if type(value).__module__.startswith("scipy.sparse") and hasattr(value, "toarray"):
        raise DataError(f"{what} is a scipy.sparse {kind} (as TfidfVectorizer, CountVectorizer and OneHotEncoder "
                        f"return); pass {part}.toarray(): fit trains on dense arrays")
    if isinstance(value, Mapping):
        raise DataError(f"{what} is a {kind}; fit takes {part} as one array, tensor or DataFrame of numbers (for a "
                        f"dict of columns: pandas.DataFrame({part}))")
    if isinstance(value, Iterator):
        raise DataError(f"{what} is a {kind}; fit takes {part} as an array, tensor or DataFrame of numbers, not an "
                        f"iterator: collect its rows first, e.g. np.stack(list({part}))")


def _from_array(value: Any, what: str) -> torch.Tensor:
    _refuse_unlike_an_array(value, what)
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists
        raise DataError(f"{what} does not make one array (rows of different lengths?)") from None
    if array.dtype == object and array.ndim == 0:  # an object NumPy holds as one item (a set, a model)
        raise DataError(f"{what} is a {type(value).__name__}; fit takes {_part(what)} as an array, tensor or "
                        "DataFrame of numbers")
    if array.dtype == object and (numbers := _pandas_numbers(value)) is not None:
        array = numbers
    if not (np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)):
        if what.endswith(" y") and str(getattr(value, "dtype", "")) == "category":  # a pandas categorical Series
            raise DataError(_category_labels(value, what))
        hint = (" (class names: encode them as 0..K-1, e.g. with sklearn's LabelEncoder, or train from a CSV "
                "config, which keeps the names)" if what.endswith(" y") else
                " (text or category columns: encode them first, or train from a CSV config, which one-hot "
                "encodes them)")
        own = getattr(value, "dtype", None)  # pandas' own (``string``) where NumPy's copy reads object
        got = _first_unlike_numbers(value) or f"dtype {array.dtype if own is None else own}"
        raise DataError(f"{what} must hold numbers; got {got}{hint}")
    if not array.flags.writeable:  # a pandas frame's read-only view: torch would warn of it, and may not share it
        array = array.copy()
    return torch.as_tensor(array)


def _first_unlike_numbers(value: Any) -> str | None:
    """A pandas DataFrame's first column of neither numbers nor booleans, as messages name it (``column 'city'
    (category)``), so that a wide frame's culprit is found; None for anything else."""
    if not type(value).__module__.startswith("pandas") or getattr(value, "ndim", 0) != 2:
        return None
    from pandas.api import types

    for name, dtype in value.dtypes.items():
        if not (types.is_numeric_dtype(dtype) or types.is_bool_dtype(dtype)):
            return f"column {short_repr(plain_scalar(name))} ({dtype})"
    return None


def _category_labels(value: Any, what: str) -> str:
    """The refusal of a pandas category Series (or a bare ``pd.Categorical``) of class names as ``y``: the
    training one's codes and categories are the classes; a val or test one is coded by the training categories,
    since its own may lack some (its codes would then number the classes apart from training's)."""
    series = hasattr(value, "cat")  # a Series has .cat; a pd.Categorical holds .codes and .categories itself
    categories = list(value.cat.categories if series else value.categories)
    shown = ", ".join(short_repr(name) for name in categories[:3])
    more = ", ..." if len(categories) > 3 else ""
    got = f"{what} must hold numbers; got a pandas {'category Series' if series else 'Categorical'} ({shown}{more})"
    if what.startswith("train "):
        where = "y.cat" if series else "y"
        return (f"{got}; pass its codes and its categories as the class names: {where}.codes"
                f"{'.to_numpy()' if series else ''} with class_names=list({where}.categories)")
    return (f"{got}; pass the codes of the training classes: pd.Categorical(y, categories=<the class_names>).codes "
            "(its own categories may lack some, and its own codes would then name other classes)")


def _pandas_numbers(value: Any) -> np.ndarray | None:
    """A pandas DataFrame or Series whose columns all hold numbers or booleans, pandas' nullable ones
    (``Float64``, ``Int64``, ``boolean``: what ``read_csv(dtype_backend='numpy_nullable')`` gives, which NumPy
    reads as objects) included, as one array: int64 when every column is an integer or boolean one without
    missing values and none is unsigned 64-bit (``UInt64`` past 2**63 wrapped to negative numbers in int64; NumPy
    makes float64 of uint64 beside int64 too), bool when every one is boolean without them, else float64 with
    ``pd.NA`` as NaN (which the finiteness check refuses by row and column). None for anything else (text,
    categories)."""
    if not type(value).__module__.startswith("pandas") or getattr(value, "ndim", 0) not in (1, 2):
        return None
    from pandas.api import types

    dtypes = list(value.dtypes) if value.ndim == 2 else [value.dtype]
    if not dtypes or not all(types.is_numeric_dtype(d) or types.is_bool_dtype(d) for d in dtypes):
        return None
    if bool(np.asarray(value.isna()).any()):
        return value.to_numpy(dtype=np.float64, na_value=np.nan)
    if all(types.is_bool_dtype(d) for d in dtypes):
        return value.to_numpy(dtype=bool)
    if all(types.is_signed_integer_dtype(d) or (types.is_unsigned_integer_dtype(d) and d.itemsize < 8)
           or types.is_bool_dtype(d) for d in dtypes):
        return value.to_numpy(dtype=np.int64)
    return value.to_numpy(dtype=np.float64)


def _stack(rows: list[Any], part: int, what: str) -> torch.Tensor:
    """Part ``part`` (0: x, 1: y) of a dataset's items stacked into one tensor, or one DataError."""
    items = []
    for i, row in enumerate(rows):
        if not (isinstance(row, tuple | list) and len(row) == 2):
            raise DataError(f"{what}: dataset items must be (x, y) pairs; item {i} is a {type(row).__name__}")
        value = row[part]
        if part == 0 and _inputs_of_one_row(value):
            raise DataError(_several_inputs(value, f"{what} of item {i}", batched=False))
        if value is None or isinstance(value, str | bytes | tuple | dict):
            fix = "encode class names as 0..K-1" if part == 1 else "encode text or categories as numbers first"
            raise DataError(f"{what} of item {i} is a {type(value).__name__}; each must be a tensor, an array or "
                            f"a number ({fix})")
        items.append(value if isinstance(value, torch.Tensor) else _from_array(value, f"{what} of item {i}"))
        if items[-1].shape != items[0].shape:
            raise DataError(f"{what} of item {i} is shaped {tuple(items[-1].shape)} but item 0's "
                            f"{tuple(items[0].shape)}; every item must have the same shape")
    return torch.stack(items)


def _inputs_of_one_row(value: Any) -> bool:
    """Whether a dataset item's x is several inputs: a tuple or list of tensors or arrays (numbers beside them
    allowed), not of numbers alone (a row written as a tuple)."""
    return isinstance(value, tuple | list) and bool(value) and any(hasattr(part, "shape") for part in value) \
        and all(hasattr(part, "shape") or isinstance(part, int | float) for part in value)


def _length(value: Any) -> int | None:
    """``len(value)`` (the rows of an array, tensor, DataFrame or list), or None for what has none (a number)."""
    try:
        return len(value)
    except TypeError:
        return None


def _refuse_several_inputs(x: Any, rows: int | None, what: str) -> None:
    """One DataError for x given as a tuple or list of inputs (``((x1, x2), y)``, Keras' ``[x1, x2]`` for a
    model of several inputs), which NumPy would read as one array of ``len(x)`` rows (2, N, d): x holds
    tensors or arrays (anything with a ``shape``) and is no list of ``rows`` rows, while each of its parts has
    ``rows`` rows, or its parts are tables (2+ dimensions) of different shapes (rows of one table all have
    one shape). Nested lists are read as rows, as before."""
    if rows is None or not isinstance(x, tuple | list) or not x or len(x) == rows:
        return
    if not all(hasattr(part, "shape") and len(part.shape) >= 1 for part in x):
        return  # numbers or nested lists: rows
    shapes = [tuple(part.shape) for part in x]
    if all(shape[0] == rows for shape in shapes) or (len(set(shapes)) > 1 and all(len(s) >= 2 for s in shapes)):
        raise DataError(_several_inputs(x, what, batched=True, rows=rows))


def _several_inputs(parts: tuple | list, what: str, batched: bool, rows: int = 0) -> str:
    """What :func:`_refuse_several_inputs` (``batched``: x of every row) and a dataset item's x of several
    parts (one row's) say: fit feeds the model's forward one batch tensor, so the inputs are concatenated
    into one along the features (flattened where they are not (N, d) / (d,)) and split again in forward
    with ``x.split(widths, dim=1)``, or the model is wrapped in a Module that does that split."""
    shapes = [tuple(np.shape(part)) for part in parts]
    kind = "tensor" if all(isinstance(part, torch.Tensor) for part in parts) else "array"
    if len(parts) == 1:
        where = "x" if batched else "the item's x"
        return (f"{what} is a {type(parts).__name__} of 1 {kind} shaped {shapes[0]}; fit takes {where} as ONE tensor "
                f"or array, not inside a {type(parts).__name__}: pass the {kind} itself")
    features = [shape[1:] if batched else shape for shape in shapes]
    flat = all(len(shape) == 1 for shape in features)
    names = [f"x{i + 1}" for i in range(len(parts))]
    if len(names) > 4:
        names = [*names[:2], "...", names[-1]]
    if kind == "tensor":
        concatenate, axis = "torch.cat", ", dim=1" if batched else ""
        flattened = "{}.flatten(1)" if batched else "{}.flatten()"
    else:
        concatenate, axis = "np.concatenate", ", axis=1" if batched else ""
        flattened = "{0}.reshape(len({0}), -1)" if batched else "np.ravel({})"
    joined = ", ".join(name if flat or name == "..." else flattened.format(name) for name in names)
    back = "" if flat else f", then reshape each to its shape {', '.join(map(str, features))}"
    count = f"{len(parts)} {kind}s"
    shown = ", ".join(map(str, shapes)) if len(shapes) <= 4 else f"{shapes[0]}, ..., {shapes[-1]}"
    takes, where = ("x", "as x") if batched else ("each item's x", "as the item's x from __getitem__")
    return (f"{what} is a {type(parts).__name__} of {count} shaped {shown} (a model with several inputs?); fit "
            f"takes {takes} as ONE tensor or array, and the model's forward gets one batch tensor: pass "
            f"{concatenate}([{joined}]{axis}) {where} and split it in forward, {', '.join(names)} = "
            f"x.split({[int(np.prod(shape)) for shape in features]}, dim=1){back} (or wrap the model in a Module "
            f"whose forward does that split and calls it){_rows_differ(shapes, rows) if batched else ''}")


def _rows_differ(shapes: list[tuple[int, ...]], rows: int) -> str:
    """``"; every input needs one row per target (y has 50 rows; x2 has 49)"`` when a part's rows are not y's."""
    other = [f"x{i + 1} has {shape[0] if shape else 0}" for i, shape in enumerate(shapes) if shape[:1] != (rows,)]
    return f"; every input needs one row per target (y has {rows} rows; {', '.join(other)})" if other else ""


def _cell(shape: tuple[int, ...], row: int, flat: int) -> str:
    """Value ``flat`` (its index in the row flattened) of row ``row`` of an array shaped ``shape``, for messages:
    ``row 3, column 2 (counting from 0)`` for a table, ``row 3, position [5, 2] (counting from 0)`` for rows
    of several axes, ``row 3 (counting from 0)`` for rows of one value."""
    if len(shape) > 2:
        return f"row {row}, position {row_position(shape, flat)} (counting from 0)"
    return f"row {row}, column {flat} (counting from 0)" if len(shape) == 2 else f"row {row} (counting from 0)"


@dataclass(frozen=True)
class Labels:
    """The labels a pandas DataFrame or Series given as x or y names its cells by: ``index`` (the row labels)
    and ``columns`` (a DataFrame's; None for a Series), so that messages name a cell as ``run.predict(df)``
    does, ``row index 'cust7', column 'income'``, not by its position."""

    index: Any = field(compare=False)
    columns: Any = field(default=None, compare=False)

    def cell(self, row: int, flat: int) -> str:
        """Row ``row``'s value ``flat`` (its column: pandas rows are flat) by its labels."""
        shown = f"row index {short_repr(plain_scalar(self.index[row]))}"
        return shown if self.columns is None else f"{shown}, column {short_repr(plain_scalar(self.columns[flat]))}"


def _labels(value: Any) -> Labels | None:
    """The :class:`Labels` of a pandas DataFrame or Series; None for anything else (arrays, tensors, lists)."""
    if not type(value).__module__.startswith("pandas") or getattr(value, "ndim", 0) not in (1, 2):
        return None
    return Labels(value.index, value.columns if value.ndim == 2 else None)


def _place(labels: Labels | None, shape: tuple[int, ...], row: int, flat: int) -> str:
    """Where a cell of values shaped ``shape`` is, for messages: by its pandas labels where they were given
    with some, else by position (:func:`_cell`)."""
    return labels.cell(row, flat) if labels is not None else _cell(shape, row, flat)


@dataclass(frozen=True)
class GivenSplit(Split):
    """A :class:`Split` as fit was given it, with the pandas :class:`Labels` of its x and y (None: an array,
    tensor or Dataset), so that :func:`fit_dataset`'s messages name cells as the user's frames do."""

    x_labels: Labels | None = None
    y_labels: Labels | None = None


def _check_finite(what: str, values: torch.Tensor, labels: Labels | None) -> None:
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        row, flat = torch.nonzero(~torch.isfinite(values.reshape(len(values), -1)))[0].tolist()
        raise DataError(f"{what} has a non-finite value at {_place(labels, tuple(values.shape), row, flat)}; drop "
                        "or impute such rows first")


def _check_values(name: str, x: torch.Tensor, y: torch.Tensor, x_labels: Labels | None,
                  y_labels: Labels | None) -> None:
    """x and y of split ``name`` finite, and float32-sized where they are float64 (float32 training: a larger
    value would become inf); each bad cell named by :func:`_place`."""
    for what, values, labels in ((f"{name} x", x, x_labels), (f"{name} y", y, y_labels)):
        _check_finite(what, values, labels)
        if values.dtype == torch.float64:
            check_float32_range(values.cpu().numpy(), lambda row, col, what=what, labels=labels,
                                shape=tuple(values.shape): f"{what} at {_place(labels, shape, row, col)}")


def as_split(data: Arrays | torch.utils.data.Dataset | None, name: str) -> GivenSplit | None:
    """``data`` (an ``(x, y)`` pair or a map-style Dataset of pairs) as one checked :class:`GivenSplit` named
    ``name`` in errors, or None for None (the module's contract above). A cell of a pandas x or y is named
    by its index and column labels, one of an array, tensor or Dataset by its position."""
    if data is None:
        return None
    _refuse_unlike_a_split(data, name)
    x_labels = y_labels = None
    if isinstance(data, tuple | list) and len(data) == 2:
        _refuse_several_inputs(data[0], _length(data[1]), f"{name} x")
        x, y = _tensor(data[0], f"{name} x"), _tensor(data[1], f"{name} y")
        x_labels, y_labels = _labels(data[0]), _labels(data[1])
    elif isinstance(data, torch.utils.data.IterableDataset):
        raise DataError(f"{name} is an IterableDataset; fit takes a map-style Dataset of (x, y) pairs (with len "
                        "and [i]) or (x, y) tensors: collect its items into tensors first")
    elif isinstance(data, torch.utils.data.Dataset):
        if not hasattr(data, "__len__"):
            raise DataError(f"{name} dataset has no len(); fit takes a map-style Dataset with __len__ and "
                            "__getitem__, or (x, y) tensors")
        rows = _items(data, name)  # a map-style dataset of (x, y) pairs
        if not rows:
            raise DataError(f"{name} dataset is empty")
        first = rows[0]
        if not (isinstance(first, tuple | list) and len(first) == 2):
            what = (f"a dict with keys {', '.join(map(str, first))}" if isinstance(first, dict) else
                    f"a {type(first).__name__} of {len(first)} items" if isinstance(first, tuple | list)
                    else f"a {type(first).__name__}")
            raise DataError(f"{name} dataset items must be (x, y) pairs; item 0 is {what}")
        x, y = _tensor(_stack(rows, 0, f"{name} x"), f"{name} x"), _tensor(_stack(rows, 1, f"{name} y"), f"{name} y")
    else:
        raise DataError(f"{name} must be (x, y) tensors or arrays, or a torch Dataset of (x, y) pairs; "
                        f"got {type(data).__name__}")
    if len(x) != len(y):
        raise DataError(f"{name}: x has {len(x)} rows but y has {len(y)}")
    if isinstance(data, tuple | list):
        _warn_if_reordered(data[0], data[1], name)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # one target shaped (N, 1), as Keras' labels come: the task rule reads it as one column
    if len(x) == 0:  # an empty val or test would validate nothing, and early stopping would then ask for val=
        raise DataError(f"{name} is empty (0 rows)" + ("" if name == "train" else f": pass rows, or leave {name}= out"))
    _check_values(name, x, y, x_labels, y_labels)
    if x.is_floating_point() and x.dtype != torch.float32:
        x = x.float()
    return GivenSplit(x, y, x_labels, y_labels)


def _warn_if_reordered(x: Any, y: Any, name: str) -> None:
    """One warning where pandas ``x`` and ``y`` hold the same index labels in another order (``X.sample(frac=1)``
    beside the ``y`` it came with): fit pairs rows by position, as scikit-learn and Keras do, not by label, so
    each row would train on another row's target. Indexes of other labels say nothing, and nor does a default
    index 0..n-1 on either side: a copy made anew (``pd.DataFrame(scaler.fit_transform(X_train))`` beside the
    ``y_train`` of ``train_test_split``) pairs by position as it should."""
    if not (type(x).__module__.startswith("pandas") and type(y).__module__.startswith("pandas")):
        return
    import pandas as pd

    x_index, y_index = getattr(x, "index", None), getattr(y, "index", None)
    if x_index is None or y_index is None or x_index.equals(y_index) or not x_index.is_unique:
        return
    if any(index.equals(pd.RangeIndex(len(index))) for index in (x_index, y_index)):
        return  # one side's index reset (a scaled copy as a new DataFrame): it says nothing of the pairing
    try:
        same_labels = y_index.is_unique and x_index.sort_values().equals(y_index.sort_values())
    except TypeError:  # labels of several types (1 and 'a') have no order: no telling
        return
    if same_labels:
        first = next(i for i, (a, b) in enumerate(zip(x_index, y_index, strict=True)) if a != b)
        shown = [short_repr(plain_scalar(index[first])) for index in (x_index, y_index)]
        warn(f"{name} x and y hold the same pandas index labels in another order (row {first}: x's {shown[0]}, "
             f"y's {shown[1]}); fit pairs rows by position, not by label: align them first if they pair by label "
             "(y = y.loc[x.index])")


def _refuse_unlike_a_split(data: Any, name: str) -> None:
    """One DataError for what Keras' or torch's habits pass where fit takes (x, y): ``(x, y, weights)``,
    ``val=0.2`` (Keras' validation_split), a DataLoader (fit batches the rows itself)."""
    if isinstance(data, tuple | list) and len(data) != 2:
        weights = " (fit takes no sample weights)" if len(data) == 3 else ""
        raise DataError(f"{name} is a {type(data).__name__} of {len(data)} item{'s' * (len(data) != 1)}; "
                        f"give (x, y){weights}")
    if isinstance(data, int | float) and not isinstance(data, bool):
        hint = (f"; to hold out a fraction, split first, e.g. x_train, x_val, y_train, y_val = "
                f"sklearn.model_selection.train_test_split(x, y, test_size={data!r})" if 0 < data < 1 else "")
        raise DataError(f"{name} is the number {data!r}; fit takes {name} data as (x, y) arrays or a Dataset, "
                        f"not a fraction{hint}")
    if isinstance(data, torch.utils.data.DataLoader):
        raise DataError(f"{name} is a DataLoader; pass loader.dataset (fit batches the rows itself, "
                        "strategy.batch_size rows a step)")


def _items(data: torch.utils.data.Dataset, name: str) -> list[Any]:
    """Every item of a map-style dataset; an IndexError before ``len(data)`` items is one DataError."""
    rows = []
    for i in range(len(data)):
        try:
            rows.append(data[i])
        except IndexError as exc:
            raise DataError(f"{name} dataset: item {i} raised IndexError ({exc}), though its len() is {len(data)}; "
                            "__len__ must count the items __getitem__ gives") from None
    return rows


def _class_names(class_names: Any) -> list[str] | None:
    """``class_names`` as a list of str: any ordered 1-D collection of strings (a list, a tuple, a NumPy
    array of str, a pandas Index such as LabelEncoder().classes_); else one ConfigError. A name given
    twice is :func:`~trainlab.data.labels.read_class_labels`' to refuse, as for a config run."""
    if class_names is None:
        return None
    ordered = isinstance(class_names, Iterable) and not isinstance(class_names, str | bytes | Mapping | set | frozenset)
    names = list(class_names) if ordered else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"class_names must be a list of strings, one per class; got {short_repr(class_names)}"
                          + (" (a set has no order: give the names in class-index order)"
                             if isinstance(class_names, set | frozenset) else ""))
    return [str(name) for name in names]  # NumPy's str_ as plain str (labels.json, printed names)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _is_integer(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def _as_training_dtype(name: str, split: Split, train_x: torch.Tensor) -> torch.Tensor:
    """Split ``name``'s x in the dtype of the training rows ``train_x``, which is what the model takes.

    Integer or bool features beside floating training features become that float dtype (as Keras and
    sklearn read them: ``pd.get_dummies`` gives bool columns, a rounded copy int64 ones); integers beside
    integer training rows (token ids, uint8 pixels) become that integer dtype where every value fits it.
    Any other mix (floats beside token ids, anything beside bool rows) is one DataError naming the split,
    both dtypes and the fix, before training starts rather than in its first evaluation.
    """
    x, want = split.x, train_x.dtype
    if x.dtype == want:
        return x
    if want.is_floating_point and (_is_integer(x.dtype) or x.dtype == torch.bool):
        return x.to(want)
    got, wanted = _dtype_name(x.dtype), _dtype_name(want)
    if _is_integer(want) and _is_integer(x.dtype):
        info, wide = torch.iinfo(want), x.long()  # int64: the bounds compare without wrapping around
        outside = (wide < info.min) | (wide > info.max)
        if bool(outside.any()):
            row, flat = torch.nonzero(outside.reshape(len(x), -1))[0].tolist()
            value = wide.reshape(len(x), -1)[row, flat].item()
            where = _place(getattr(split, "x_labels", None), tuple(x.shape), row, flat)
            raise DataError(f"{name} x at {where}: {value} is beyond {wanted} ({info.min} to {info.max}), the "
                            f"dtype of train x, which the model takes; fix the value, or give train x and {name} x "
                            "one dtype that holds both")
        return x.to(want)
    raise DataError(f"{name} x is {got} but train x is {wanted}, and the model takes the training rows' dtype: pass "
                    f"{name} x as {wanted} too (x.astype('{wanted}'); a tensor: x.to(torch.{wanted})) if it holds "
                    f"the same kind of values, or train x as float32 (x.astype('float32'); a tensor: x.float()) if "
                    "its columns are features")


def _in_training_columns(name: str, split: Split, train: Split) -> Split:
    """Split ``name`` with the columns of its pandas x and y in train's order, matched by name
    (:func:`~trainlab.fit_columns.in_training_order`); a y of one column is read as it is, whatever its name."""
    def by_name(part: str, values: torch.Tensor) -> tuple[torch.Tensor, Labels | None]:
        labels, trained = getattr(split, f"{part}_labels", None), getattr(train, f"{part}_labels", None)
        if labels is None or trained is None:  # (in_training_order leaves a y of one column, 1-D, as it is)
            return values, labels
        ordered = in_training_order(f"{name} {part}", values, labels.columns, trained.columns)
        return ordered, labels if ordered is values else Labels(labels.index, trained.columns)

    (x, x_labels), (y, y_labels) = by_name("x", split.x), by_name("y", split.y)
    return split if x is split.x and y is split.y else GivenSplit(x, y, x_labels, y_labels)


def _label_locate(split: Split, task: str) -> Locate | None:
    """How :mod:`~trainlab.data.labels` names a bad label's cell of ``split`` (train, val or test): by its y's
    pandas labels where it had some, else None (its own 0-based positions). A label of one-hot columns read
    as one class index per row (a ``binary``/``multiclass`` task) is named by its row alone: no one column
    holds it."""
    labels = getattr(split, "y_labels", None)
    if labels is None:
        return None
    if labels.columns is not None and len(labels.columns) > 1 and task in ("binary", "multiclass"):
        labels = Labels(labels.index)
    return lambda _part, row, col: labels.cell(row, col)


def _read_labels(task: str, train: Split, names: list[str] | None,
                 regression_loss: str | None) -> tuple[ClassLabels, np.ndarray]:
    """:func:`~trainlab.data.labels.read_class_labels` of the training targets, as ``load_dataset`` reads a
    source's. ``regression_loss``: the regression loss of a run whose task was inferred from whole-number
    targets (no ``task``, no ``class_names``). Its refusal of targets of one value (``the training targets hold
    one class ('0' in all 20 rows)``) adds what ``task='regression'`` would make of them: numbers the same in
    every row, which a regression model is refused too
    (:func:`~trainlab.data.regression_targets.check_regression_targets`), so naming that task alone as the fix
    would lead to a second refusal."""
    try:
        return read_class_labels(task, train.y.numpy(), names, _label_locate(train, task), names_key="class_names",
                                 name="train y")
    except DataError as exc:
        if regression_loss is None or task == "regression" or len(np.unique(train.y.numpy())) > 1:
            raise
        raise DataError(f"{exc}; nor can {regression_loss}, a regression loss, learn from them: task='regression' "
                        "reads them as numbers, which are the same in every row (is y the column to predict?)") \
            from None


def fit_dataset(train: Split, val: Split | None, test: Split | None, task: str | None,
                class_names: list[str] | None, regression_loss: str | None = None) -> Dataset:
    """The splits with the data layer's task rule (``task``, else
    :func:`~trainlab.data.labels.named_classes_task` for ``class_names``, else :func:`infer_task` on the
    training targets) and target types (multi-label targets stay float); the labels are read and checked by
    :func:`~trainlab.data.labels.read_class_labels`, as a config run's are (``class_names`` as
    ``data.class_names``). Multi-label ``class_names`` name the label columns, one each; fractional targets in
    [0, 1] given a classification ``task`` are refused as soft targets. ``regression_loss``: the strategy's
    loss when it is a regression one (``mse``): a refusal of inferred class labels (one class in all rows)
    then names ``task='regression'`` too (:func:`_read_labels`)."""
    if task is not None and task not in TASKS:
        hint = did_you_mean(task, list(TASKS)) if isinstance(task, str) else ""
        raise ConfigError(f"task must be one of {', '.join(TASKS)} (or left out to infer it); got {task!r}{hint}")
    names = _class_names(class_names)
    if task == "regression" and names is not None:
        raise ConfigError("class_names name classes, but task='regression' has none; leave class_names out, or "
                          "set task='binary' or 'multiclass' if the targets are class labels")
    task_given = task is not None
    named_task = None if task_given else named_classes_task(names, train.y.numpy())  # as a config run decides
    if named_task is not None:
        fractional = train.y[train.y != train.y.round()] if train.y.is_floating_point() else train.y[:0]
        if len(fractional):
            raise ConfigError(f"class_names name classes, but the training targets hold {float(fractional[0]):g}, "
                              "which is no class label; leave class_names out for a regression target")
    task = task or named_task or infer_task(train.y.numpy())
    if task_given and task != "regression":
        refuse_soft_targets(train.y, f"task='{task}' takes class labels", "train y holds")  # not bad class indices
    inferred = None if task_given or names is not None else regression_loss
    labels, y_train = _read_labels(task, train, names, inferred)
    if task == "multilabel" and names is not None and len(names) != y_train.shape[1]:
        raise DataError(f"train y has {y_train.shape[1]} label columns but {len(names)} class names are given "
                        "(class_names); give one name per label column, in column order")
    empty = Split(train.x[:0], train.y[:0])
    training_classes = np.unique(y_train) if task in ("binary", "multiclass") and y_train.ndim == 1 else None

    def given(name: str, split: Split) -> Split:
        split = _in_training_columns(name, split, train)
        if split.x.shape[1:] != train.x.shape[1:]:
            raise DataError(f"{name} x rows are shaped {tuple(split.x.shape[1:])} but train x rows "
                            f"{tuple(train.x.shape[1:])}")
        x = _as_training_dtype(name, split, train.x)
        y = split.y.numpy()
        y = y if task == "regression" else labels.given(f"{name} y", y, "class_names", task_given,
                                                        _label_locate(split, task))
        if training_classes is not None and len(y):
            warn_classes_absent(name, training_classes, y, labels.class_names, "they are in the training data only")
        return Split(x, targets_tensor(y, task))

    extras: dict[str, Any] = {FIXES_KEY: FIT_FIXES}
    if task == "regression":  # still as given (float64 where it was): what the float32 cast would erase
        check_regression_targets(y_train, standardized=False, fix=FIT_FIXES.raw_targets)
        columns = getattr(getattr(train, "y_labels", None), "columns", None)
        if columns is not None and len(columns) > 1:  # a DataFrame y's columns: messages name a target by them
            extras["target_names"] = [str(plain_scalar(column)) for column in columns]
    val, test = given("val", val or empty), given("test", test or empty)
    # the tensors as _tensor read them: detached, float16/bfloat16 already float32, so NumPy takes them
    warn_of_shared_rows((train.x.cpu().numpy(),), {"val": (val.x.cpu().numpy(),), "test": (test.x.cpu().numpy(),)})
    return Dataset(Split(train.x, targets_tensor(y_train, task)), val, test, task=task,
                   num_classes=labels.num_classes, class_names=labels.class_names, extras=extras)
