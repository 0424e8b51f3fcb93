"""The array shapes ``predict`` takes as N rows of a run's input shape, and the message when it refuses one.

One rule (:func:`rows_shape`) for ``trainlab predict``'s .npz files and ``LoadedRun.predict``'s arrays
(:mod:`trainlab.data.predict_input` reads both through it), so that the command line and Python take the
same shapes; :func:`shape_error` names the shapes taken.
"""

from __future__ import annotations

import numpy as np

from trainlab.errors import DataError


def _batch_text(shape: tuple[int, ...]) -> str:
    """``(N, 30)``: the shape of N rows shaped ``shape``."""
    return "(" + ", ".join(["N", *(str(d) for d in shape)]) + ")"


def rows_shape(shape: tuple[int, ...], input_shape: tuple[int, ...] | list[int]) -> tuple[int, ...] | None:
    """The shape (N, *input_shape) that an array shaped ``shape`` is read as, or None when predict refuses it.

    The one rule for arrays of model inputs, ``trainlab predict``'s .npz files (:func:`read_for_predict`) and
    :meth:`trainlab.loaded_run.LoadedRun.predict`'s arrays (:func:`model_rows`) alike. For a run whose rows are
    shaped ``input_shape``:

    1. N rows, (N, *input_shape) (N may be 0);
    2. one row, ``input_shape``: N = 1 (unambiguous: a batch has one more axis);
    3. an empty 1-D array, (0,): N = 0;
    4. one-channel images, ``input_shape`` (1, H, W): also N images (N, H, W) and one image (H, W), the
       channel axis added (IDX and grayscale arrays store them so). A 2-D array is read as one image only
       when it is the run's own (H, W); no other reading of a 2-D array (N rows of W values) is taken.

    Examples:
        >>> rows_shape((5, 28, 28), (1, 28, 28)), rows_shape((28, 28), (1, 28, 28))
        ((5, 1, 28, 28), (1, 1, 28, 28))
        >>> rows_shape((5, 28), (1, 28, 28)) is None
        True
    """
    got, row = tuple(int(d) for d in shape), tuple(int(d) for d in input_shape)
    if got[1:] == row:
        return got
    if got == row:
        return (1, *row)
    if got == (0,):
        return (0, *row)
    if len(row) == 3 and row[0] == 1:
        image = row[1:]
        if got == image:
            return (1, *row)
        if got[1:] == image:
            return (got[0], *row)
    return None


def _shapes_taken(input_shape: tuple[int, ...]) -> tuple[list[str], list[str]]:
    """(the shapes of one row, the shapes of N rows) that :func:`rows_shape` takes, as text."""
    one, many = [str(input_shape)], [_batch_text(input_shape)]
    if len(input_shape) == 3 and input_shape[0] == 1:
        one.append(str(input_shape[1:]))
        many.append(_batch_text(input_shape[1:]))
    return one, many


def shape_error(where: str, shape: tuple[int, ...], input_shape: tuple[int, ...] | list[int],
                fix: str = "") -> DataError:
    """The one-line DataError for an array shaped ``shape`` that :func:`rows_shape` refuses, naming the shapes
    it takes. ``where`` begins the message (``predict``, ``npz file f.npz``); ``fix`` (``"; ..."``), when given,
    ends it instead of the shapes taken."""
    got, row = tuple(int(d) for d in shape), tuple(int(d) for d in input_shape)
    one, many = _shapes_taken(row)
    images = len(row) == 3
    last = images and (row[1], row[2], row[0])  # an image's shape with its channels last, as PIL and Keras hold it
    if images and got == last:
        return DataError(f"{where}: got one image shaped {got}, its channels last (H, W, C) as PIL and Keras store "
                         f"images; the run takes them channels first {row}: pass x.transpose(2, 0, 1)")
    if not fix and images and len(got) == 4 and got[1:] == last:
        fix = ("; they are images with their channels last (N, H, W, C), as PIL and Keras store them: pass "
               "x.transpose(0, 3, 1, 2)")
    if not fix and len(row) == 1 and len(got) > 2 and int(np.prod(got[1:])) == row[0]:
        fix = "; reshape them with x.reshape(len(x), -1) (flattened as in training)"
    if fix:
        return DataError(f"{where}: rows are shaped {got[1:]} but the run was trained on {row}{fix}")
    if len(got) == len(row) + 1:
        taken = f"N images shaped {' or '.join(many)}" if images else f"an array shaped {' or '.join(many)}"
        return DataError(f"{where}: rows are shaped {got[1:]} but the run was trained on {row}; pass {taken}")
    if images:
        taken = f"one image shaped {' or '.join(one)}; N images shaped {' or '.join(many)}"
    else:
        taken = f"one row shaped {' or '.join(one)} or N rows shaped {' or '.join(many)}"
    hint = "; for N rows of one feature pass x.reshape(-1, 1)" if row == (1,) and len(got) == 1 else ""
    return DataError(f"{where}: got an input shaped {got}; the run takes {taken}{hint}")
