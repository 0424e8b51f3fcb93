"""Reading a val or test DataFrame's columns by name, as the training DataFrame named them (:func:`trainlab.fit`).

fit turns each split into a tensor, whose columns are positions. Where train x and a val or test x are both
pandas DataFrames with column names, a position is not what the user means: ``X_val[cols[::-1]]`` holds the
same features in another order, and read by position each feature would meet another's weights (scikit-learn
refuses such a frame: "The feature names should match those that were passed during fit"). So, as
``run.predict(df)`` reads a DataFrame, the columns are matched by name: the same names in another order are
put in the training order (:func:`in_training_order`); other names are one DataError naming the columns
missing and those training never had. Positions as names (0..n-1: a frame made anew from an array) beside
other names name nothing, and an array or tensor beside a DataFrame is read by position, as fit always did.
"""

from __future__ import annotations

from typing import Any

import torch

from trainlab.config_fields import plain_scalar, short_repr
from trainlab.errors import DataError


def _positions(columns: Any) -> bool:
    """Whether pandas ``columns`` are the positions 0..n-1 in order (the default ``RangeIndex``, or the integers a
    frame of an array's columns gets, as ``pd.get_dummies`` of class labels gives 0..K-1): no names of features."""
    return list(columns) == list(range(len(columns)))


def _shown(names: list[Any]) -> str:
    listed = ", ".join(short_repr(plain_scalar(name)) for name in names[:5])
    return listed + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def in_training_order(what: str, values: torch.Tensor, columns: Any, training: Any) -> torch.Tensor:
    """``values`` (the (N, C) tensor of a DataFrame whose column labels are ``columns``) with its columns in the
    order of the training frame's ``training`` labels, matched by name (pandas' ``get_indexer``: NaN labels
    match, MultiIndex tuples too); unchanged where the names are the training ones in their order, where either
    side is a Series (None), and where one side is positions 0..n-1 (:func:`_positions`) that are not a
    reordering of the other's. ``what``: ``val x``, ``test y``.

    A DataError where the names are not the training ones (some missing, some new, or a name repeated so that
    no one order holds), naming them and the fix."""
    if columns is None or training is None or values.ndim != 2:
        return values
    import pandas as pd

    given, wanted = pd.Index(columns), pd.Index(training)  # pandas' matching: NaN labels equal, MultiIndex tuples
    if given.equals(wanted):
        return values
    if given.is_unique and wanted.is_unique and len(given) == len(wanted):
        order = given.get_indexer(wanted)
        if (order >= 0).all():  # the same names in another order (a permutation of 0..n-1 too)
            return values[:, torch.as_tensor(order)]
    if _positions(given) or _positions(wanted):
        return values  # a frame made anew from an array beside a named one: by position, as an array is read
    given, wanted = list(given), list(wanted)
    position = {name: j for j, name in enumerate(given)}
    part = what.split()[-1]
    missing = [name for name in wanted if name not in position]
    new = [name for name in dict.fromkeys(given) if name not in set(wanted)]
    said = [f"missing {_shown(missing)}"] if missing else []
    said += [f"not in train {part}: {_shown(new)}"] if new else []
    if not said:  # the same names, one repeated on a side: no one order reads them
        repeated = [name for name in dict.fromkeys(given + wanted) if given.count(name) + wanted.count(name) > 2]
        said = [f"{_shown(repeated)} more than once"]
    raise DataError(f"{what}'s columns are not train {part}'s ({'; '.join(said)}); fit reads a DataFrame's columns "
                    f"by name, as the model learnt them: give {what} the columns of train {part} "
                    f"({what.replace(' ', '_')}[train_{part}.columns] where it has them all)")
