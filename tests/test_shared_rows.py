"""Held-out rows that copy training rows: counted against a brute-force reference, warned of in a notable share."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data.shared_rows import shared_row_counts


def _brute_force_shared(train: list[np.ndarray], held: list[np.ndarray]) -> int:
    """Rows of ``held`` equal to a training row, by Python tuples of every part's values."""
    def key(parts, i):
        return tuple(tuple(np.asarray(p[i]).ravel().tolist()) for p in parts)

    seen = {key(train, i) for i in range(len(train[0]))}
    return sum(key(held, i) in seen for i in range(len(held[0])))


def _count(train: tuple, held: tuple) -> int | None:
    return shared_row_counts(train, {"test": held}).get("test")


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8])
def test_shared_rows_are_counted_as_whole_rows_across_every_part(dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(300, 2, 2)).astype(dtype)  # few values: many rows repeat by chance
    codes = rng.integers(0, 2, size=(300, 1))
    train, held = [x[:200], codes[:200]], [x[200:], codes[200:]]
    expected = _brute_force_shared(train, held)
    assert 0 < expected < 100
    assert _count(tuple(train), tuple(held)) == expected
    # the categorical part decides too: the same features with other codes are other rows
    assert _count((x[:200], None), (x[200:], None)) == _brute_force_shared([x[:200]], [x[200:]]) >= expected
    assert _count((x[:0], None), (x[200:], None)) is None  # no training rows: nothing counted


def test_rows_compare_by_value_across_dtypes_and_zero_signs_and_text_is_left_out():
    """A test split given as float64 beside float32 training rows matched none of its copies."""
    x = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    assert _count((x,), (x[:10].astype(np.float64),)) == 10
    assert _count((np.zeros((2, 2), np.float32),), (-np.zeros((3, 2), np.float32),)) == 3
    assert _count((x,), (-x,)) == 0 and _count((x,), (x[:, ::-1].copy(),)) == 0  # other rows: no hash alike
    whole = np.array([[2, 7]], np.int64)
    assert _count((whole,), (np.array([[2.5, 7.0], [np.nan, 7.0], [2.0, 7.0]]),)) == 1  # 2.5 is not 2
    assert _count((x[:, :2],), (np.c_[x[:5, :2], np.zeros(5)],)) == 0  # a wider row padded with zeros
    assert _count((x,), (np.array([["a", "b", "c"]], dtype=object),)) is None
    assert _count((x,), (None,)) is None


def _said(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "identical to a training row" in r.getMessage()]


def test_a_table_of_repeated_rows_is_warned_of_per_held_out_split_and_a_table_without_is_not(tmp_path, caplog):
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "y": rng.integers(0, 2, 200)})
    table.to_csv(tmp_path / "once.csv", index=False)
    pd.concat([table] * 3).to_csv(tmp_path / "thrice.csv", index=False)
    caplog.set_level(logging.WARNING, logger="trainlab")
    load_dataset(DataConfig(source="csv", path=str(tmp_path / "once.csv"), target="y"))
    load_dataset(DataConfig(source="iris"))  # one repeated row of 150: chance, not how the file was made
    assert _said(caplog) == []
    data = load_dataset(DataConfig(source="csv", path=str(tmp_path / "thrice.csv"), target="y"))
    counts = [re.match(r"(\d+) of the (\d+) (\w+) rows", line).groups() for line in _said(caplog)]
    assert [(int(total), split) for _, total, split in counts] == [(len(data.val), "val"), (len(data.test), "test")]
    # each row is one of 3 copies: a held-out row has one in training unless both others were held out too
    assert all(0.6 * int(total) < int(shared) <= int(total) for shared, total, _ in counts)
    assert "drop the repeats before the split (pandas drop_duplicates)" in _said(caplog)[0]


def test_fit_given_a_val_split_cut_from_its_training_rows_is_told_so(caplog):
    import torch

    import trainlab

    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    caplog.set_level(logging.WARNING, logger="trainlab")
    trainlab.fit(torch.nn.Linear(3, 2), train=(x, y), val=(x[:30], y[:30]), test=(x[:20] + 5, y[:20]),
                 strategy={"loss": "cross_entropy", "optimizer": "adam", "batch_size": 50, "epochs": 1}, metrics=[])
    assert [line.split(":")[0] for line in _said(caplog)] == ["30 of the 30 val rows (100%) have features identical "
                                                              "to a training row"]
