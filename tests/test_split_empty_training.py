"""A random split (regression, multi-label) that leaves no training row: a regression CSV of 1 or 2 rows at
the default fractions, or 3 rows at ``val_fraction: 0.99``. One ``error:`` line (exit 3) names the rows
read, what test and val took at which fractions, and a fix that works; no warning about an empty val
split comes before it, as if the run went on.

The expected counts are the split rule written out here: a random split holds out
``max(1, round(n * fraction))`` of the ``n`` rows left to it, test first, then val.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from trainlab.cli import main
from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.errors import DataError

TARGETS = [1.5, -0.25, 3.0, 0.75]


def regression_csv(path, rows: int) -> str:
    """A 3-feature regression CSV of ``rows`` rows whose targets differ."""
    lines = ["a,b,c,y"] + [f"{i},{2 * i + 1},{i * i},{TARGETS[i]}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def held_out(n: int, fraction: float) -> int:
    """Rows a random split holds out of ``n`` (the documented rule, docs/data.md 'Splits')."""
    return 0 if fraction <= 0 else max(1, int(round(n * fraction)))


def split_counts(rows: int, test_fraction: float, val_fraction: float) -> tuple[int, int, int]:
    """(test, val, train) rows: test first, then val of what test left, each at most the rows left."""
    test = min(held_out(rows, test_fraction), rows)
    val = min(held_out(rows - test, val_fraction), rows - test)
    return test, val, rows - test - val


def load(path: str, **options):
    return load_dataset(DataConfig(source="csv", path=path, target="y", **options))


@pytest.mark.parametrize("rows, test_fraction, val_fraction", [(1, 0.2, 0.2), (2, 0.2, 0.2), (3, 0.2, 0.99)])
def test_a_split_that_takes_every_row_names_the_rows_and_what_each_split_took(tmp_path, capsys, rows,
                                                                               test_fraction, val_fraction):
    test, val, train = split_counts(rows, test_fraction, val_fraction)
    assert train == 0  # the cases are those the rule leaves no training row
    with pytest.raises(DataError) as caught:
        load(regression_csv(tmp_path / "r.csv", rows), test_fraction=test_fraction, val_fraction=val_fraction)
    message = str(caught.value)
    took = [f"{count} went to {split} (data.{split}_fraction {fraction:g})"
            for split, count, fraction in (("test", test, test_fraction), ("val", val, val_fraction)) if count]
    assert message.startswith(f"training data is empty after splitting off val/test: of the {rows} "
                              f"row{'s' if rows > 1 else ''} read, {' and '.join(took)}, "), message
    assert "data.test_fraction and data.val_fraction" in message and "add rows" in message
    assert capsys.readouterr().err == ""  # no "the val split is empty" warning ahead of the error


def test_the_fix_each_error_names_trains(tmp_path):
    """The fix of 4 rows (lower the fractions) and of 2 rows (set them to 0) each leave training rows."""
    four = regression_csv(tmp_path / "four.csv", 4)
    with pytest.raises(DataError, match=r"; lower data\.test_fraction and data\.val_fraction \(0 holds no split "
                                        r"out\), or add rows$"):
        load(four, val_fraction=0.99)
    assert split_counts(4, 0.2, 0.99)[2] == 0 and split_counts(4, 0.2, 0.3)[2] == 2
    assert len(load(four, val_fraction=0.3).train) == 2
    two = regression_csv(tmp_path / "two.csv", 2)
    with pytest.raises(DataError, match=r"; add rows, or set data\.test_fraction and data\.val_fraction to 0 "
                                        r"\(training on all 2 rows, with no test or val metrics\)$"):
        load(two)
    data = load(two, test_fraction=0.0, val_fraction=0.0)
    assert (len(data.train), len(data.val), len(data.test)) == (2, 0, 0)


def test_rows_dropped_for_nan_are_counted_apart(tmp_path):
    path = tmp_path / "nan.csv"
    path.write_text("a,b,c,y\n1,2,3,\n4,5,6,0.5\n7,8,9,\n")
    with pytest.raises(DataError) as caught:
        load(str(path), nan_policy="drop")
    assert "of the 1 row left after data.nan_policy: drop dropped 2, 1 went to test (data.test_fraction 0.2)" \
        in str(caught.value)


def test_a_stratified_split_keeps_a_row_and_warns_of_its_empty_splits(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text("a,y\n1,cat\n2,dog\n")
    data = load(str(path))
    assert (len(data.train), len(data.val), len(data.test)) == (2, 0, 0)
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["warning", "warning"]
    assert "the test split is empty" in err[0] and "the val split is empty" in err[1]


def test_the_cli_says_one_error_line_and_no_warning_for_a_one_row_csv(tmp_path, capsys):
    config = {"name": "one-row", "seed": 0,
              "data": {"source": "csv", "path": regression_csv(tmp_path / "r1.csv", 1), "target": "y"},
              "model": {"name": "linear"},
              "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 4, "epochs": 1},
              "output": {"progress": "off"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["train", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1, err
    assert err[0] == ("error: training data is empty after splitting off val/test: of the 1 row read, 1 went to "
                      "test (data.test_fraction 0.2), as a random split holds out round(rows * fraction) of them, "
                      "at least one; add rows, or set data.test_fraction and data.val_fraction to 0 (training on "
                      "the 1 row, with no test or val metrics)")
    assert np.isclose(0.2, DataConfig(source="csv").test_fraction)  # the default the line names
