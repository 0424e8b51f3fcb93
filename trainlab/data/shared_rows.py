"""Held-out rows that are copies of training rows: a warning, since their scores measure recall of seen rows.

A split drawn row by row from a file that holds each example several times (rows appended twice, a
table exported with repeats) puts copies of training rows into val and test, with no sign in the
metrics: the test score rises with the share of copies, and early stopping and ``compare`` steer by rows
the model trained on. scikit-learn's
``train_test_split`` says nothing of it either; the fix is the user's (``drop_duplicates`` before the
split, or given val/test files of other examples), so trainlab names the share and leaves the rows.
"""

from __future__ import annotations

import numpy as np

from trainlab.notices import warn_training

# the share of a held-out split's rows that copy a training row before it is worth a warning: a few
# repeats occur by chance in small or discrete data (iris holds one repeated row of 150), a share this
# size is how the file was made
NOTABLE_SHARE = 0.05


def row_bytes(*parts: np.ndarray | None) -> np.ndarray:
    """Each row's bytes across ``parts`` (features, categorical codes): a (rows, bytes) uint8 array. Two rows
    have the same bytes exactly when every part holds the same values of the same dtype."""
    columns = [np.ascontiguousarray(np.asarray(p).reshape(len(p), -1)) for p in parts if p is not None]
    flat = [c.view(np.uint8).reshape(len(c), -1) for c in columns]
    return np.concatenate(flat, axis=1) if len(flat) > 1 else flat[0]


def shared_row_count(train: tuple[np.ndarray | None, ...], held: tuple[np.ndarray | None, ...]) -> int:
    """How many rows of ``held`` equal some row of ``train`` (each a tuple of the same parts, row-aligned).

    A set of the training rows' bytes (hashed): ~0.3 s for 48,000 MNIST images, where np.isin's sort of
    the rows as numpy void values took 3 s."""
    if len(held[0]) == 0 or len(train[0]) == 0:
        return 0
    seen = set(map(bytes, row_bytes(*train)))
    return sum(bytes(row) in seen for row in row_bytes(*held))


def warn_of_shared_rows(train: tuple[np.ndarray | None, ...], held_outs: dict[str, tuple[np.ndarray | None, ...]]
                        ) -> None:
    """One warning per held-out split (``{"val": parts, "test": parts}``) whose rows copy training rows
    (features identical, labels aside) in a share of at least :data:`NOTABLE_SHARE`. Parts of object
    dtype (text before encoding) are not compared."""
    if any(p is not None and np.asarray(p).dtype == object for p in train):
        return
    for split, parts in held_outs.items():
        shared = shared_row_count(train, parts)
        if shared and shared >= NOTABLE_SHARE * len(parts[0]):
            warn_training(
                f"{shared} of the {len(parts[0])} {split} rows ({shared / len(parts[0]):.0%}) have features "
                f"identical to a training row: {split} metrics partly score rows the model trained on; if the "
                "data holds repeated examples, drop the repeats before the split (pandas drop_duplicates) "
                f"or give {split} rows of other examples")
