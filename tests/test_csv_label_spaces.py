"""Spaces around CSV cells are stripped, so ``" cat"`` and ``"cat"`` are one class; where that merges two
spellings of a column, one ``warning:`` line names a pair and the column (as labels that differ only in
case get one), and a column whose spellings stay apart gets none.

The expected classes come from the csv module and ``str.strip``, not from trainlab's reader.
"""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data.csv_table import read_table, space_twins, strings
from trainlab.data.csv_wide import WIDE_COLUMNS

LABELS = [" cat", "cat", "dog ", "dog"]


def write_rows(path, header, rows) -> str:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def labelled_csv(path, labels, repeat: int = 3) -> str:
    """A feature ``a`` and the ``label`` column, ``labels`` repeated so that every split has rows."""
    rows = [[i, label] for i, label in enumerate(labels * repeat)]
    return write_rows(path, ["a", "label"], rows)


def reference_classes(path: str, column: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return sorted({row[column].strip() for row in csv.DictReader(handle)})


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_labels_differing_in_surrounding_spaces_are_one_class_with_one_warning(tmp_path, capsys):
    path = labelled_csv(tmp_path / "pets.csv", LABELS)
    data = load_dataset(DataConfig(source="csv", path=path, target="label"))
    assert data.class_names == reference_classes(path, "label") == ["cat", "dog"]
    warnings = warnings_of(capsys.readouterr().err)
    assert len(warnings) == 1, warnings
    assert warnings[0] == (f"warning: CSV file {path}: the values ' cat' and 'cat' in 'label' differ only in spaces "
                           "around them, which are stripped, so they are read as one class or category, 'cat' "
                           "(1 more such pair in the column); fix the data if they are two")


@pytest.mark.parametrize("labels", [["cat", "dog"], [" cat", " dog"], [" cat", "dog "]])
def test_labels_whose_spellings_stay_apart_get_no_warning(tmp_path, capsys, labels):
    path = labelled_csv(tmp_path / "pets.csv", labels, repeat=5)
    data = load_dataset(DataConfig(source="csv", path=path, target="label"))
    assert data.class_names == reference_classes(path, "label")
    assert warnings_of(capsys.readouterr().err) == []


def test_a_categorical_feature_column_is_warned_of_once(tmp_path, capsys):
    rows = [[i, colour, i % 2] for i, colour in enumerate(["red", " red", "blue"] * 4)]
    path = write_rows(tmp_path / "colours.csv", ["a", "colour", "y"], rows)
    load_dataset(DataConfig(source="csv", path=path, target="y"))
    warnings = warnings_of(capsys.readouterr().err)
    assert len(warnings) == 1 and "the values 'red' and ' red' in 'colour'" in warnings[0], warnings


def test_a_wide_table_keeps_the_spaces_to_tell_and_strips_them_when_read(tmp_path, capsys):
    """Over WIDE_COLUMNS columns the csv module reads the cells: numbers with spaces still parse, and the
    label column warns as a tall file's does."""
    header = [f"x{j}" for j in range(WIDE_COLUMNS)] + ["label"]
    rows = [[f" {i + j} " for j in range(WIDE_COLUMNS)] + [label] for i, label in enumerate(LABELS * 3)]
    path = write_rows(tmp_path / "wide.csv", header, rows)
    table = read_table(tmp_path / "wide.csv")
    assert table.wide and table.cell(0, "label", strip=False) == " cat"
    assert list(strings(table, "label")) == [label.strip() for label in LABELS * 3]
    assert len(warnings_of(capsys.readouterr().err)) == 1
    strings(table, "label")
    assert warnings_of(capsys.readouterr().err) == []  # once per column
    data = load_dataset(DataConfig(source="csv", path=path, target="label", standardize=False, val_fraction=0.0,
                                   test_fraction=0.0))
    np.testing.assert_array_equal(data.train.x.numpy()[:, 1], [i + 1 for i in range(len(rows))])
    assert data.class_names == reference_classes(path, "label")


def _reference_twins(cells: list[str]) -> list[tuple[str, str]]:
    """For each stripped value with two spellings or more: its first spelling and the next other one."""
    pairs = []
    for key in dict.fromkeys(cell.strip() for cell in cells):
        spellings = list(dict.fromkeys(cell for cell in cells if cell.strip() == key))
        if len(spellings) > 1:
            pairs.append((spellings[0], spellings[1]))
    return pairs


def test_space_twins_matches_a_brute_force_reference():
    rng = np.random.default_rng(0)
    spellings = ["".join(parts) for parts in itertools.product(["", " ", "\t"], ["a", "b", "ab"], ["", " "])]
    for _ in range(50):
        cells = list(rng.choice(spellings, size=int(rng.integers(1, 12))))
        assert space_twins(np.array(cells)) == _reference_twins(cells), cells


def test_strings_keep_minus_zero_and_zero_apart_as_written(tmp_path):
    """Reading each distinct cell once (pandas.factorize) took -0.0 for 0.0, equal floats: a category's spelling
    then hung on which came first in the file."""
    path = tmp_path / "t.csv"
    path.write_text("c,y\n0.0,1\n-0.0,0\n1.5,1\n")
    assert strings(read_table(path), "c").tolist() == ["0.0", "-0.0", "1.5"]
