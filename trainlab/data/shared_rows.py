"""Held-out rows that are copies of training rows: a warning, since their scores measure recall of seen rows.

A split drawn row by row from a file that holds each example several times (rows appended twice, a
table exported with repeats) puts copies of training rows into val and test, with no sign in the
metrics: the test score rises with the share of copies, and early stopping and ``compare`` steer by rows
the model trained on. scikit-learn's ``train_test_split`` says nothing of it either; the fix is the user's
(``drop_duplicates`` before the split, or given val/test files of other examples), so trainlab names the
share and leaves the rows.
"""

from __future__ import annotations

import numpy as np

from trainlab.notices import training_notices, warn_training

# the share of a held-out split's rows that copy a training row before it is worth a warning: a few
# repeats occur by chance in small or discrete data (iris holds one repeated row of 150), a share this
# size is how the file was made
NOTABLE_SHARE = 0.05


_CHUNK_ROWS = 1 << 15  # rows hashed at a time: their bytes are copied once (padded to whole 8-byte words)
_MIX_1, _MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's multipliers


def _word_keys(count: int) -> np.ndarray:
    """``count`` fixed pseudo-random 64-bit keys, one per word position (seeded: the same in every process)."""
    return np.random.default_rng(0x5EED).integers(0, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def row_bytes(parts: tuple[np.ndarray | None, ...], dtypes: tuple[np.dtype | None, ...] | None = None
              ) -> np.ndarray:
    """Each row's bytes across ``parts`` (features, categorical codes; None parts left out): a (rows, bytes)
    uint8 array, each part cast first to its dtype in ``dtypes`` (the training parts', so a split given as
    float64 beside float32 training rows compares by value) and -0.0 read as 0.0. Two rows have the same
    bytes exactly when every part holds the same values."""
    columns = []
    for index, part in enumerate(parts):
        if part is None:
            continue
        array = np.asarray(part)
        if dtypes is not None and dtypes[index] is not None:
            array = array.astype(dtypes[index], copy=False)
        if array.dtype.kind in "fc":
            array = array + 0  # -0.0 + 0 is 0.0: the two zeros are one value
        columns.append(np.ascontiguousarray(array.reshape(len(array), -1)).view(np.uint8).reshape(len(array), -1))
    return np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]


def row_hashes(parts: tuple[np.ndarray | None, ...], dtypes: tuple[np.dtype | None, ...] | None = None
               ) -> np.ndarray:
    """One 64-bit hash per row of :func:`row_bytes`, :data:`_CHUNK_ROWS` rows at a time: the row's bytes as
    8-byte words w_1..w_k (zero-padded), each xored with its position's key and put through splitmix64's
    finaliser f, h = sum_j f(w_j xor key_j) mod 2^64: equal rows hash alike, and two different rows collide
    with a chance of about 2^-64 (f mixes every bit of a word into all of its output; a count off by one
    in ~10^7 tables of 2 million rows). Memory: a chunk's copies, not a second copy of the table."""
    rows = len(parts[0])
    hashes = np.empty(rows, dtype=np.uint64)
    for start in range(0, rows, _CHUNK_ROWS):
        chunk = row_bytes(tuple(None if p is None else p[start:start + _CHUNK_ROWS] for p in parts), dtypes)
        width = -(-chunk.shape[1] // 8) * 8
        words = np.zeros((len(chunk), width), dtype=np.uint8)
        words[:, :chunk.shape[1]] = chunk
        words = words.view(np.uint64) ^ _word_keys(words.shape[1] // 8)  # a key per position: order counts
        words ^= words >> np.uint64(33)  # splitmix64's finaliser on each word (wrapping modulo 2^64) ...
        words *= _MIX_1
        words ^= words >> np.uint64(29)
        words *= _MIX_2
        words ^= words >> np.uint64(32)
        hashes[start:start + len(chunk)] = words.sum(axis=1, dtype=np.uint64)  # ... summed modulo 2^64
    return hashes


def _comparable(parts: tuple[np.ndarray | None, ...]) -> bool:
    """Whether ``parts`` hold rows of numbers (not object arrays: text before encoding) and a first part."""
    return parts[0] is not None and all(p is None or np.asarray(p).dtype.kind in "biuf" for p in parts)


def shared_row_counts(train: tuple[np.ndarray | None, ...], held_outs: dict[str, tuple[np.ndarray | None, ...]]
                      ) -> dict[str, int]:
    """``{split: how many of its rows equal some training row}`` for each held-out split (each a tuple of the
    training's parts, row-aligned); splits of no rows or of parts that are no numbers are left out.

    Rows are compared by their :func:`row_hashes`, the training rows' hashed and sorted once: 0.8 s for 2
    million rows of 50 float32 features, where a Python set of the rows' bytes took 3 s and 1 GB more memory."""
    held_outs = {split: parts for split, parts in held_outs.items() if _comparable(parts) and len(parts[0])}
    if not held_outs or not _comparable(train) or len(train[0]) == 0:
        return {}
    dtypes = tuple(None if p is None else np.asarray(p).dtype for p in train)
    seen = np.sort(row_hashes(train))  # sorted, then searched: np.unique / np.isin took 1.5 s for 1.6M hashes
    counts = {}
    for split, parts in held_outs.items():
        if _row_width(parts) != _row_width(train):  # rows of other widths are other rows
            counts[split] = 0
            continue
        with np.errstate(invalid="ignore"):  # NaN or inf cast to an integer dtype: such rows are left out below
            hashes = row_hashes(parts, dtypes)
        found = seen[np.minimum(np.searchsorted(seen, hashes), len(seen) - 1)] == hashes
        counts[split] = int((found & _kept_by_cast(parts, dtypes)).sum())
    return counts


def _row_width(parts: tuple[np.ndarray | None, ...]) -> tuple[int | None, ...]:
    """Each part's values per row (None for an absent part): rows of other widths never copy each other."""
    return tuple(None if p is None else int(np.prod(np.shape(p)[1:], dtype=np.int64)) for p in parts)


def _kept_by_cast(parts: tuple[np.ndarray | None, ...], dtypes: tuple[np.dtype | None, ...]) -> np.ndarray:
    """Rows whose values survive the cast to the training dtypes as numbers: a float part cast to integer
    training columns loses 2.5 (read as 2) and NaN, and such a row copies no training row. (A float64 part
    cast to float32 columns is rounded as the model reads it: kept.)"""
    kept = np.ones(len(parts[0]), dtype=bool)
    for part, dtype in zip(parts, dtypes, strict=False):
        if part is None or dtype is None or dtype.kind not in "biu" or np.asarray(part).dtype.kind != "f":
            continue
        values = np.asarray(part).reshape(len(part), -1)
        kept &= (np.isfinite(values) & (values == np.round(values))).all(axis=1)
    return kept


def warn_of_shared_rows(train: tuple[np.ndarray | None, ...], held_outs: dict[str, tuple[np.ndarray | None, ...]]
                        ) -> None:
    """One warning per held-out split (``{"val": parts, "test": parts}``) whose rows copy training rows
    (features identical, labels aside) in a share of at least :data:`NOTABLE_SHARE`; nothing is counted where
    nothing would be said (a run rebuilt to evaluate or predict: :func:`~trainlab.notices.evaluating`)."""
    if not training_notices():
        return
    for split, shared in shared_row_counts(train, held_outs).items():
        rows = len(held_outs[split][0])
        if shared and shared >= NOTABLE_SHARE * rows:
            warn_training(
                f"{shared} of the {rows} {split} rows ({shared / rows:.0%}) have features identical to a training "
                f"row: {split} metrics partly score rows the model trained on; if the data holds repeated examples, "
                f"drop the repeats before the split (pandas drop_duplicates) or give {split} rows of other examples")
