"""Tabular data: task inference, the CSV dialect, multi-label targets, train-split preprocessing, predict input.

References are independent of trainlab: scikit-learn's StandardScaler / OneHotEncoder /
type_of_target, Python's csv module, and NumPy formulas written here.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.multiclass import type_of_target

from trainlab.config import DATA_TASKS, DataConfig
from trainlab.data import MAX_CLASSES, TASKS, load_dataset
from trainlab.data import preprocessing as prep
from trainlab.data.dataset import (
    MAX_INFERRED_CLASSES,
    SURE_CLASSES,
    infer_task,
    is_count_target,
    numbered_from_one,
    split_indices,
)
from trainlab.data.predict_input import read_for_predict
from trainlab.errors import ConfigError, DataError


def write_csv(path, header, rows, delimiter=",", bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def load(**data):
    return load_dataset(DataConfig(**data), seed=0)


# ----------------------------------------------------------------------------- task inference


def test_task_names_agree():
    assert tuple(TASKS) == DATA_TASKS == ("regression", "binary", "multiclass", "multilabel")


@pytest.mark.parametrize("y, sklearn_kind, task", [
    (np.array([0, 1, 1, 0]), "binary", "binary"),
    (np.array([0.0, 1.0, 1.0, 0.0]), "binary", "binary"),  # pandas writes 0.0/1.0
    (np.array([0, 2, 1, 2]), "multiclass", "multiclass"),
    (np.array([0.0, 2.0, 1.0]), "multiclass", "multiclass"),
    (np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1]]), "multilabel-indicator", "multilabel"),
    (np.array([0.5, 1.5, 2.25]), "continuous", "regression"),
])
def test_infer_task_agrees_with_sklearn_type_of_target(y, sklearn_kind, task):
    assert type_of_target(y) == sklearn_kind
    assert infer_task(y) == task


def test_counts_are_regression_not_classes():
    counts = np.random.default_rng(0).poisson(6.0, size=500)  # ~18 distinct values, gaps at the top
    assert len(np.unique(counts)) > 10
    assert infer_task(counts) == "regression" and is_count_target(counts)
    gaps = np.array([0, 1, 3])  # not 0..K-1
    assert infer_task(gaps) == "regression"
    many = np.arange(MAX_INFERRED_CLASSES + 1)  # 0..20: 21 classes would be too many to guess
    assert infer_task(many) == "regression"
    assert infer_task(np.arange(MAX_INFERRED_CLASSES)) == "multiclass"  # balanced: every class once
    rare = np.concatenate([np.repeat(np.arange(SURE_CLASSES + 2), 20), [SURE_CLASSES + 2]])  # one rare class
    assert infer_task(rare) == "regression"
    assert infer_task(np.concatenate([np.zeros(200, int), np.arange(SURE_CLASSES)])) == "multiclass"
    assert not is_count_target(np.array([0.5, 2.0]))


def test_csv_integer_float_and_string_labels(tmp_path):
    ints = load(source="csv", path=write_csv(tmp_path / "i.csv", ["a", "y"], [[i, i % 3] for i in range(30)]),
                target="y")
    assert ints.task == "multiclass" and ints.num_classes == 3 and ints.train.y.dtype == torch.int64
    floats = load(source="csv", path=write_csv(tmp_path / "f.csv", ["a", "y"], [[i, f"{i % 2}.0"] for i in range(30)]),
                  target="y")
    assert floats.task == "binary" and set(floats.train.y.tolist()) <= {0, 1}
    names = ["dog", "cat", "bird"]
    rows = [[i, names[i % 3]] for i in range(30)]
    strings = load(source="csv", path=write_csv(tmp_path / "s.csv", ["a", "y"], rows), target="y",
                   val_fraction=0.0, test_fraction=0.0, standardize=False)
    assert strings.class_names == ["bird", "cat", "dog"] and strings.preprocessing["class_names"] == strings.class_names
    for x, label in zip(strings.train.x[:, 0].tolist(), strings.train.y.tolist(), strict=True):
        assert strings.class_names[label] == names[int(x) % 3]


def test_labels_numbered_from_one_with_the_task_set_are_classes_named_by_their_values(tmp_path):
    """UCI wine writes its classes 1, 2, 3: inferred as a regression target (and not as counts); with
    data.task: multiclass they are 3 classes (as sklearn's LabelEncoder reads them), none empty."""
    rows = [[i, 1 + i % 3] for i in range(60)]
    path = write_csv(tmp_path / "w.csv", ["a", "class"], rows)
    inferred = load(source="csv", path=path, target="class")
    assert inferred.task == "regression" and "target_kind" not in inferred.extras
    assert numbered_from_one(np.array([1, 2, 3, 3])) and not numbered_from_one(np.array([0, 1, 2]))
    assert not numbered_from_one(np.array([1, 3])) and not numbered_from_one(np.arange(1, MAX_INFERRED_CLASSES + 2))
    # 11..20 values: labels when every one holds 1/(5K) of the rows, as infer_task reads 0..K-1 (months 1..12)
    assert numbered_from_one(np.arange(1, SURE_CLASSES + 2)) and numbered_from_one(np.tile(np.arange(1, 13), 5))
    assert not numbered_from_one(np.r_[np.tile(np.arange(1, 12), 20), np.arange(1, 13)])  # 12 once in 232 rows
    data = load(source="csv", path=path, target="class", task="multiclass", val_fraction=0.0, test_fraction=0.0,
                standardize=False)
    assert data.num_classes == 3 and data.class_names == ["1", "2", "3"]
    for x, label in zip(data.train.x[:, 0].tolist(), data.train.y.tolist(), strict=True):
        assert data.class_names[label] == str(1 + int(x) % 3)
    # with gaps: 1, 2, 5 -> 3 classes; given test labels are mapped alike, an unseen one is refused
    x = np.arange(30, dtype=np.float32).reshape(30, 1)
    y = np.array([1, 2, 5] * 10)
    np.savez(tmp_path / "g.npz", x=x, y=y, x_test=x[:4], y_test=np.array([5, 1, 2, 2]))
    gaps = load(source="npz", path=str(tmp_path / "g.npz"), task="multiclass")
    assert gaps.class_names == ["1", "2", "5"] and gaps.test.y.tolist() == [2, 0, 1, 1]
    np.savez(tmp_path / "u.npz", x=x, y=y, x_test=x[:2], y_test=np.array([5, 0]))
    with pytest.raises(DataError, match=r"test data label 0 at row 1 \(counting from 0\) is not a class of the "
                                        r"training data \(classes: 1, 2, 5\)"):
        load(source="npz", path=str(tmp_path / "u.npz"), task="multiclass")
    with pytest.raises(DataError, match=r"data.task is binary but the training labels hold 3 values \(1, 2, 3\); "
                                        "set data.task: multiclass"):
        load(source="csv", path=path, target="class", task="binary")
    # labels holding 0 are the indices 0..K-1 as before (no names)
    plain = load(source="csv", path=write_csv(tmp_path / "p.csv", ["a", "y"], [[i, i % 3] for i in range(30)]),
                 target="y", task="multiclass")
    assert plain.class_names is None and plain.num_classes == 3


def test_true_false_labels_keep_their_names_and_case_twins_are_warned_of(tmp_path, capsys):
    rows = [[i, "True" if i % 3 else "False"] for i in range(30)]
    flags = load(source="csv", path=write_csv(tmp_path / "b.csv", ["a", "y"], rows), target="y",
                 val_fraction=0.0, test_fraction=0.0, standardize=False)
    assert flags.task == "binary" and flags.class_names == ["False", "True"]
    assert flags.train.y.tolist() == [1 if i % 3 else 0 for i in range(30)]
    missing = write_csv(tmp_path / "m.csv", ["a", "y"], [[i, "True" if i % 2 else ""] for i in range(10)])
    with pytest.raises(DataError, match=r"missing target value \(nan\) at line 2, column 'y' of .*m.csv \(the cell is empty or a "
                                        r"missing-value marker: NA, .*None.* are read as missing\); fix .*nan_policy: drop"):
        load(source="csv", path=missing, target="y")
    capsys.readouterr()
    twins = [[i, ["benign", "Benign ", "malignant"][i % 3]] for i in range(30)]
    data = load(source="csv", path=write_csv(tmp_path / "t.csv", ["a", "y"], twins), target="y")
    assert data.class_names == ["Benign", "benign", "malignant"]
    assert ("the class labels 'Benign' and 'benign' in 'y' differ only in case, so they are two classes"
            in capsys.readouterr().err)


@pytest.mark.parametrize("labels", [["cat", "dog"], ["True", "False"]])
def test_a_missing_csv_class_label_follows_the_nan_policy(tmp_path, capsys, labels):
    """nan_policy: drop dropped missing numbers but refused a missing class name or True/False."""
    from trainlab.data.counting import count_splits

    rows = [[i, labels[i % 2]] for i in range(40)]
    rows[4][1] = ""  # file line 6
    path = write_csv(tmp_path / "m.csv", ["x1", "y"], rows)
    with pytest.raises(DataError, match=r"^training data has a missing target value \(nan\) at line 6, column 'y' of "
                                        r".*m.csv \(the cell is empty or a missing-value marker: NA, N/A, n/a, NaN, nan, "
                                        r"null, NULL, None, <NA>, #N/A are read as missing\); fix the data or set "
                                        r"data.nan_policy: drop$"):
        load(source="csv", path=path, target="y")
    config = DataConfig(source="csv", path=path, target="y", nan_policy="drop", val_fraction=0.0, test_fraction=0.0)
    data = load_dataset(config)
    assert "dropped 1 of 40 rows" in capsys.readouterr().err
    assert data.class_names == sorted(labels) and len(data.train) == 39
    expected = [sorted(labels).index(labels[i % 2]) for i in range(40) if i != 4]
    assert data.train.y.tolist() == expected and data.train.y.dtype == torch.int64
    sizes = count_splits(config)
    assert (sizes.train, sizes.val, sizes.test) == (39, 0, 0)


def test_a_missing_value_marker_with_spaces_around_it_is_missing_in_every_kind_of_column(tmp_path, capsys):
    """Spaces around a cell are stripped, but ' NA ' was read as written: a class 'NA' in the label column, a
    category 'NA', and in a numeric column 'not a number (if NA marks a missing value, replace it with NA)'."""
    from trainlab.data.counting import count_splits

    rows = [[i, ["red", "blue"][i % 3 == 0], ["cat", "dog"][i % 2]] for i in range(40)]
    rows[3][0], rows[7][1], rows[11][2], rows[15][1] = " NA ", " N/A", "NA  ", "NA"
    path = write_csv(tmp_path / "m.csv", ["x1", "colour", "y"], rows)
    with pytest.raises(DataError, match=r"^training data has a missing feature value \(nan\) at line 5, column 'x1' "):
        load(source="csv", path=path, target="y")
    config = DataConfig(source="csv", path=path, target="y", nan_policy="drop", val_fraction=0.0, test_fraction=0.0)
    data = load_dataset(config)
    assert "dropped 4 of 40 rows" in capsys.readouterr().err
    assert data.class_names == ["cat", "dog"] and len(data.train) == 36
    assert data.preprocessing["categories"] == [["blue", "red"]]
    assert count_splits(config).train == 36


def test_binary_on_three_named_classes_names_them_not_a_label_2(tmp_path):
    """iris' species with task: binary said 'label 2 at line 102 ... out of range [0, 2)'; the file has no 2."""
    rows = [[i, ["setosa", "versicolor", "virginica"][i % 3]] for i in range(30)]
    path = write_csv(tmp_path / "iris.csv", ["a", "species"], rows)
    with pytest.raises(DataError, match=r"^data.task is binary but the training labels hold 3 classes \(setosa, "
                                        r"versicolor, virginica\); set data.task: multiclass$"):
        load(source="csv", path=path, target="species", task="binary")
    with pytest.raises(DataError, match=r"^data.task is binary but the training labels hold 10 classes \(0, 1, 2, "
                                        r"3, 4, ...\); set data.task: multiclass$"):
        load(source="digits", task="binary")
    assert load(source="csv", path=path, target="species").num_classes == 3


def test_a_single_class_is_refused(tmp_path):
    named = write_csv(tmp_path / "one.csv", ["a", "y"], [[i, "yes"] for i in range(20)])
    with pytest.raises(DataError, match=r"the training targets hold one class \('yes' in all 20 rows\); a "
                                        "classifier needs rows of at least two classes"):
        load(source="csv", path=named, target="y")
    ones = write_csv(tmp_path / "ones.csv", ["a", "y"], [[i, 1] for i in range(20)])
    with pytest.raises(DataError, match=r"one class \('1' in all 20 rows\)"):
        load(source="csv", path=ones, target="y", task="binary")


def test_csv_counts_flagged_for_the_advisor(tmp_path):
    counts = np.random.default_rng(1).poisson(6.0, size=200)
    data = load(source="csv", path=write_csv(tmp_path / "c.csv", ["a", "n"], [[i, c] for i, c in enumerate(counts)]),
                target="n")
    assert data.task == "regression" and data.extras["target_kind"] == "count" and data.num_classes is None


def test_absurd_label_refused_before_allocating(tmp_path):
    rows = [[i, i % 3] for i in range(20)] + [[99, 1_000_000_000]]
    with pytest.raises(DataError) as error:
        load(source="csv", path=write_csv(tmp_path / "t.csv", ["a", "y"], rows), target="y", task="multiclass")
    assert "would make 1000000001 classes" in str(error.value) and f"at most {MAX_CLASSES}" in str(error.value)
    assert "line 22" in str(error.value)


# ----------------------------------------------------------------------------- multi-label


def test_multilabel_csv(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(40, 3))
    rows = [[float(i), *row] for i, row in enumerate(labels)]
    data = load(source="csv", path=write_csv(tmp_path / "m.csv", ["a", "t1", "t2", "t3"], rows),
                target=["t1", "t2", "t3"], task="multilabel", standardize=False)
    assert data.task == "multilabel" and data.num_classes == 3 and data.class_names == ["t1", "t2", "t3"]
    assert data.train.y.dtype == torch.float32 and data.train.y.shape[1] == 3
    n = len(data.train) + len(data.val) + len(data.test)
    assert n == 40
    for split in (data.train, data.val, data.test):  # each row keeps its own labels through the split
        for x, y in zip(split.x[:, 0].tolist(), split.y.tolist(), strict=True):
            assert y == labels[int(x)].tolist()


@pytest.mark.parametrize("cycle, kind", [(2, "binary"), (3, "multiclass")])
def test_task_multilabel_on_one_target_column_names_the_single_label_task(tmp_path, cycle, kind):
    # examples/multilabel_tags.yaml with data.target set to one of its columns: task multilabel stays set
    rows = [[float(i), i % cycle] for i in range(30)]
    path = write_csv(tmp_path / "one.csv", ["a", "tag"], rows)
    with pytest.raises(DataError) as caught:
        load(source="csv", path=path, target="tag", task="multilabel")
    assert str(caught.value) == (
        "training data targets of a multilabel task must be one 0/1 column per label, shaped (N, L); got shape "
        f"(30,); one label per row is a {kind} task: set data.task: {kind} (or leave it out to infer it), or give "
        "one target column per label")
    assert load(source="csv", path=path, target="tag", task=kind).task == kind  # the fix it names works


def test_after_rows_are_dropped_a_bad_label_is_named_by_its_file_line(tmp_path):
    """nan_policy: drop renumbered the rows: 'label 2.0 at row 3, column 1 (counting from 0)' for file line 6."""
    rows = [[float(i), i % 2, (i + 1) % 2] for i in range(20)]
    rows[2][2] = ""  # line 4: dropped
    rows[4][2] = 2  # line 6: not 0/1
    path = write_csv(tmp_path / "m.csv", ["a", "t1", "t2"], rows)
    with pytest.raises(DataError, match=rf"^training data label 2 at line 6, column 't2' of {re.escape(path)} must "
                                        "be 0 or 1"):
        load(source="csv", path=path, target=["t1", "t2"], task="multilabel", nan_policy="drop")
    y = np.array([r[1:] for r in rows], dtype=object)
    y[2, 1] = np.nan
    np.savez(tmp_path / "m.npz", x=np.arange(20.0)[:, None], y=y.astype(np.float64))  # no file lines: source rows
    with pytest.raises(DataError, match=r"^training data label 2 at row 4, column 1 \(counting from 0 in the "
                                        r"source's arrays, before data.nan_policy dropped rows\) must be 0 or 1"):
        load(source="npz", path=str(tmp_path / "m.npz"), task="multilabel", nan_policy="drop")


def test_multilabel_npz_inferred(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(50, 4)).astype(np.float64)
    np.savez(tmp_path / "m.npz", x=rng.standard_normal((50, 3)), y=y)
    data = load(source="npz", path=str(tmp_path / "m.npz"))
    assert data.task == "multilabel" and data.num_classes == 4 and tuple(data.train.y.shape[1:]) == (4,)


def test_split_indices_multilabel_does_not_stratify():
    labels = np.random.default_rng(0).integers(0, 2, size=(30, 3))
    keep, held = split_indices(30, 0.2, 0, labels)
    assert len(held) == 6 and sorted(np.concatenate([keep, held]).tolist()) == list(range(30))


# ----------------------------------------------------------------------------- stratified splits


def _split_digest(y: np.ndarray, seeds=(0,)) -> str:
    """SHA-256 of the (train, val, test) indices load_dataset draws with the default fractions: test with
    split_seed, then val with split_seed + 1 from the rows left."""
    import hashlib

    digest = hashlib.sha256()
    for seed in seeds:
        keep, test = split_indices(len(y), 0.2, seed, y)
        kept, val = split_indices(len(keep), 0.2, seed + 1, y[keep])
        for part in (keep[kept], keep[val], test):
            digest.update(np.asarray(part, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


# computed before the split learned to follow the fractions for small classes: the documented accuracy
# figures of these sets were measured on exactly these splits
PINNED_SPLITS = {
    "load_digits": ("92a707994fd2dc2f", "aa831a9e792b2926"),
    "load_iris": ("3b3de28e00370f4c", "bf3c09382b73a879"),
    "load_wine": ("4665fd19d654a9dd", "7a5dee83993ff8df"),
    "load_breast_cancer": ("ba1968b07993c401", "8c3ebce45ec490be"),
}


@pytest.mark.parametrize("loader", sorted(PINNED_SPLITS))
def test_the_stratified_split_of_the_sklearn_sets_is_pinned(loader):
    from sklearn import datasets

    y = np.asarray(getattr(datasets, loader)().target)
    assert (_split_digest(y), _split_digest(y, seeds=(0, 1, 7))) == PINNED_SPLITS[loader]


def _legacy_split_indices(n, fraction, seed, labels):
    """split_indices as it was before small classes followed the fractions (per-class rounding, at least
    one row of every class of two or more), kept as the reference for large classes."""
    rng = np.random.default_rng(seed)
    held = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_out = int(round(len(members) * fraction))
        if len(members) > 1:
            n_out = min(max(n_out, 1), len(members) - 1)
        held.append(members[:n_out])
    held_out = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(n), held_out), held_out


@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.2, 0.25, 0.3])
def test_classes_of_dozens_of_rows_split_as_before(fraction):
    rng = np.random.default_rng(5)
    for trial in range(40):
        sizes = rng.integers(50, 400, size=int(rng.integers(2, 12)))
        if trial % 2:  # beside a rare class of 2-5 rows, which keeps its one held-out row (no row lost)
            sizes = np.append(rng.integers(200, 400, size=int(rng.integers(3, 12))), rng.integers(2, 6))
        labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
        for seed in (0, trial):
            new, old = split_indices(len(labels), fraction, seed, labels), \
                _legacy_split_indices(len(labels), fraction, seed, labels)
            np.testing.assert_array_equal(new[0], old[0])
            np.testing.assert_array_equal(new[1], old[1])


@pytest.mark.parametrize("per_class, classes, fraction, held", [
    (2, 50, 0.2, 20), (3, 30, 0.1, 9), (7, 10, 0.2, 14), (12, 3, 0.2, 7), (3, 15, 0.2, 9),  # were 50, 30, 10, 6, 15
    (1, 4, 0.6, 0),  # one row per class: each stays in training (a row held out was the class's only one)
])
def test_small_classes_hold_out_the_fraction_of_the_rows(per_class, classes, fraction, held):
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(classes), per_class))
    totals = set()
    for seed in range(10):
        keep, out = split_indices(len(labels), fraction, seed, labels)
        assert sorted(np.concatenate([keep, out]).tolist()) == list(range(len(labels)))
        assert set(labels[keep].tolist()) == set(range(classes))  # every class keeps a training row
        totals.add(len(out))
    assert totals == {held}


def test_a_split_missing_small_classes_warns_once_naming_them(tmp_path, capsys):
    from trainlab.data.counting import count_splits

    rows = [[i, f"class{c:02d}"] for i, c in enumerate(np.repeat(np.arange(15), 3))]  # 15 classes of 3 rows
    config = DataConfig(source="csv", path=write_csv(tmp_path / "small.csv", ["x", "y"], rows), target="y")
    data = load_dataset(config)
    assert (len(data.train), len(data.val), len(data.test)) == (29, 7, 9)  # was 15, 15, 15
    sizes = count_splits(config)
    assert (sizes.train, sizes.val, sizes.test) == (29, 7, 9)
    err = capsys.readouterr().err.splitlines()
    test_line = [line for line in err if "the test split holds no row of 6 of the 15 classes (class" in line]
    val_line = [line for line in err if "the val split holds no row of 8 of the 15 classes" in line]
    assert len(test_line) == 1 and len(val_line) == 1, err
    assert "too few rows for test_fraction" in test_line[0] and test_line[0].endswith("add rows of those classes")
    load(source="digits")
    assert "holds no row" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- the CSV dialect


def test_bom_quotes_and_semicolons_match_the_csv_module(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[f"{v:.4f}", f"{w:.3f}", "note; with, separators", i % 2] for i, (v, w) in
            enumerate(rng.standard_normal((25, 2)))]
    path = write_csv(tmp_path / "d.csv", ["x1", "x2", "note", "label"], rows, delimiter=";", bom=True)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reference = list(csv.reader(handle, delimiter=";"))
    assert reference[0][0] == "x1"
    expected = np.array([[float(r[0]), float(r[1])] for r in reference[1:]], dtype=np.float32)
    data = load(source="csv", path=path, target="label", features=["x1", "x2"], delimiter=";",
                val_fraction=0.0, test_fraction=0.0, standardize=False)
    np.testing.assert_array_equal(data.train.x.numpy(), expected)
    np.testing.assert_array_equal(data.train.y.numpy(), [int(r[3]) for r in reference[1:]])


@pytest.mark.parametrize("head", ['"height\n(cm)",weight,y\n', '\n\n"height\n(cm)",weight,y\n\n'],
                         ids=["wrapped-header", "blank-lines-around-it"])
def test_a_header_name_wrapped_over_two_lines_keeps_every_data_row(tmp_path, head):
    """pandas counts the quoted header as one row: skipping its two file lines dropped the first data row."""
    path = tmp_path / "wrapped.csv"
    path.write_text(head + "".join(f"{150 + i},{50 + i},{i % 2}\n" for i in range(10)))
    with open(path, newline="") as handle:
        reference = [row for row in csv.reader(handle) if row][1:]
    data = load(source="csv", path=str(path), target="y", val_fraction=0.0, test_fraction=0.0, standardize=False)
    assert len(reference) == 10
    np.testing.assert_array_equal(data.train.x.numpy(), [[float(r[0]), float(r[1])] for r in reference])


def test_an_unclosed_quote_is_named_by_its_file_line_not_pandas_row(tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text('\na,b,y\n1,2,0\n3,4,1\n5,"6,0\n7,8,1\n')  # pandas: "EOF inside string starting at row 3"
    with pytest.raises(DataError, match=r"quote.csv line 5: a quote \(\"\) opens a field there and is never "
                                        r"closed"):
        load(source="csv", path=str(path), target="y")


def test_an_integer_past_int64_is_read_as_a_number(tmp_path):
    """pandas keeps 10**20 (and -2**63 - 1) in an object column of Python ints, which had no ``.str``: training
    and predict stopped with AttributeError, exit 4."""
    rows = [[10**20 if i == 0 else -(2**63) - 1 if i == 1 else i, i * 0.5, i % 2] for i in range(12)]
    path = write_csv(tmp_path / "big.csv", ["id", "x", "y"], rows)
    data = load(source="csv", path=path, target="y", val_fraction=0.0, test_fraction=0.0, standardize=False)
    np.testing.assert_allclose(data.train.x.numpy()[:, 0], [float(r[0]) for r in rows], rtol=1e-7)
    mixed = write_csv(tmp_path / "mixed.csv", ["id", "x", "y"], [[10**20 if i == 0 else "abc" if i == 1 else i,
                                                                   i * 0.5, i % 2] for i in range(12)])
    with pytest.raises(DataError, match="abc") as caught:
        load(source="csv", path=mixed, target="y", features=["id", "x"], val_fraction=0.0, test_fraction=0.0)
    assert "100000000000000000000" not in str(caught.value)


def test_a_tiny_classification_set_warns_of_its_empty_splits(tmp_path, capsys):
    data = load(source="csv", path=write_csv(tmp_path / "o.csv", ["a", "y"], [[1, "cat"], [2, "dog"]]), target="y")
    assert len(data.train) == 2 and len(data.val) == 0 and len(data.test) == 0
    err = capsys.readouterr().err
    assert "the test split is empty" in err and "the val split is empty" in err


def test_sixty_thousand_columns_is_linear(tmp_path):
    import time

    width = 60_000
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(width)) + ",y\n"
                    + "".join(",".join(["1.5"] * width) + f",{r % 2}\n" for r in range(4)))
    start = time.perf_counter()
    data = load(source="csv", path=str(path), target="y", val_fraction=0.0, test_fraction=0.0)
    assert time.perf_counter() - start < 20  # the quadratic header checks took 124 s
    assert tuple(data.train.x.shape) == (4, width)


FLOAT32_RANGE = "beyond float32's range (about ±3.4e38)"


@pytest.mark.parametrize("width", [2, 2001])  # the pandas path, and the wide path (csv module, strings)
def test_a_csv_number_beyond_float32_is_refused_naming_its_cell_without_a_warning(tmp_path, width):
    header = [f"c{i}" for i in range(width)] + ["y"]
    rows = [[str(r + i) for i in range(width)] + [str(r % 2)] for r in range(10)]
    rows[1][1] = "1e308"  # a float64, but 2.9e269 times float32's largest
    path = write_csv(tmp_path / "d.csv", header, rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "overflow encountered in cast" would be one
        with pytest.raises(DataError) as info:
            load(source="csv", path=path, target="y")
    assert str(info.value) == (f"CSV file {path} line 3, column 'c1': 1e+308 is {FLOAT32_RANGE}, in which the "
                               "model computes; rescale the column (e.g. a larger unit or a log scale)")
    rows[1][1] = "inf"  # an infinite cell is the NaN policy's, as before
    write_csv(tmp_path / "d.csv", header, rows)
    with pytest.raises(DataError, match=r"non-finite feature value \(inf\) at line 3, column 'c1' of [^(]*; fix.*nan_policy: drop"):
        load(source="csv", path=path, target="y")


def test_a_csv_target_beyond_float32_is_refused_naming_its_cell(tmp_path):
    path = write_csv(tmp_path / "d.csv", ["a", "y"], [[i, 0.5 * i] for i in range(8)] + [[8, -3e38], [9, -4e38]])
    with pytest.raises(DataError, match=rf"^training data targets at line 11, column 'y' of {re.escape(path)}: "
                                        rf"-4e\+38 is {re.escape(FLOAT32_RANGE)}.*rescale"):
        load(source="csv", path=path, target="y", nan_policy="drop")  # refused whatever the NaN policy


@pytest.mark.parametrize("features, target, message", [
    (["x1", "y"], "y", "data.features lists the target column 'y', which would give the model its own answer"),
    (["x1", "x2"], ["x2", "y"], "data.features lists the target column 'x2'"),
    (["x1", "x1"], "y", "data.features lists the column 'x1' twice; list each column once"),
    (["x1"], ["y", "y"], "data.target lists the column 'y' twice"),
])
def test_csv_features_that_repeat_a_column_or_hold_the_target_are_refused(tmp_path, features, target, message):
    rng = np.random.default_rng(0)  # random 0/1 labels: with the target among the inputs, test accuracy was 1.0
    path = write_csv(tmp_path / "leak.csv", ["x1", "x2", "y"],
                     [[f"{v:.3f}", f"{w:.3f}", int(c)] for v, w, c in zip(
                         rng.random(40), rng.random(40), rng.integers(0, 2, 40), strict=True)])
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        load(source="csv", path=path, target=target, features=features)
    assert load(source="csv", path=path, target="y", features=["x1"]).input_shape == (1,)


def test_an_npz_value_beyond_float32_is_refused_in_training_and_predict(tmp_path):
    x = np.arange(80, dtype=np.float64).reshape(40, 2)
    y = np.arange(40) % 2
    x[7, 1] = 1e39
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(DataError, match=rf"^training data features at row 7, column 1 \(counting from 0\): "
                                        rf"1e\+39 is {re.escape(FLOAT32_RANGE)}"):
        load(source="npz", path=str(tmp_path / "d.npz"))
    x[7, 1] = 3e38  # within range: trains
    np.savez(tmp_path / "d.npz", x=x, y=y)
    config = DataConfig(source="npz", path=str(tmp_path / "d.npz"))
    data = load_dataset(config, seed=0)
    x[2, 0] = -1e300
    np.savez(tmp_path / "new.npz", x=x[:4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=rf"new.npz: row 2, column 0 \(counting from 0\): -1e\+300 is "
                                            rf"{re.escape(FLOAT32_RANGE)}"):
            read_for_predict(config, data.preprocessing, str(tmp_path / "new.npz"))


def test_a_predict_csv_or_frame_number_beyond_float32_names_its_cell(tmp_path):
    import pandas as pd

    path = write_csv(tmp_path / "t.csv", ["alpha", "beta", "y"], [[i, i * 2, i % 2] for i in range(20)])
    config = DataConfig(source="csv", path=path, target="y")
    data = load_dataset(config, seed=0)
    new = write_csv(tmp_path / "new.csv", ["alpha", "beta"], [[1, 2], [3, "-2e40"]])
    with pytest.raises(DataError, match=rf"^CSV file {re.escape(new)} line 3, column 'beta': -2e\+40 is beyond"):
        read_for_predict(config, data.preprocessing, new)
    frame = pd.DataFrame({"alpha": [1.0, 2.0], "beta": [1.0, 5e38]})
    with pytest.raises(DataError, match=r"^the DataFrame, row index 1, column 'beta': 5e\+38 is beyond"):
        read_for_predict(config, data.preprocessing, frame)


# ----------------------------------------------------------------------------- preprocessing


def test_standardize_matches_sklearn_on_given_splits(tmp_path):
    rng = np.random.default_rng(0)
    x, xv, xt = (rng.normal(5.0, 3.0, size=(n, 4)) for n in (60, 20, 20))
    x[:, 2] = 7.0  # constant in training
    xv[:, 2], xt[:, 2] = 9.0, -3.0  # ... but not elsewhere: must stay bounded
    y, yv, yt = (rng.normal(size=len(a)) for a in (x, xv, xt))
    np.savez(tmp_path / "d.npz", x=x, y=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    data = load(source="npz", path=str(tmp_path / "d.npz"), standardize=True)
    scaler = StandardScaler().fit(x)  # keeps scale 1 for a zero-variance column, too
    for split, raw in ((data.train, x), (data.val, xv), (data.test, xt)):
        np.testing.assert_allclose(split.x.numpy(), scaler.transform(raw), rtol=1e-5, atol=1e-5)
    assert data.preprocessing["constant_columns"] == [2]
    assert abs(data.test.x[:, 2]).max() == pytest.approx(10.0)


def test_digits_val_test_features_stay_bounded():
    data = load(source="digits")
    for split in (data.train, data.val, data.test):
        assert float(split.x.abs().max()) < 100  # 1/(0 + 1e-8) gave 1e8 on columns constant in training


def test_npz_not_standardised_by_default(tmp_path):
    x = np.random.default_rng(0).normal(50.0, 10.0, size=(30, 2))
    np.savez(tmp_path / "d.npz", x=x, y=x[:, 0] * 2)
    data = load(source="npz", path=str(tmp_path / "d.npz"))
    assert float(data.train.x.mean()) > 10 and not data.preprocessing["standardize"]


def categorical_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    colours, cities = ["red", "green", "blue"], ["Oslo", "Lima", "Pune", "Kyiv"]
    return [[f"{rng.normal(100, 20):.3f}", colours[rng.integers(3)], f"{rng.normal(0, 0.01):.5f}",
             cities[rng.integers(4)], f"{rng.normal():.4f}"] for _ in range(n)]


def test_categorical_one_hot_matches_sklearn(tmp_path):
    rows = categorical_rows(60)
    header = ["size", "colour", "tiny", "city", "y"]
    data = load(source="csv", path=write_csv(tmp_path / "c.csv", header, rows), target="y",
                val_fraction=0.0, test_fraction=0.0)  # every row is a training row
    numeric = np.array([[float(r[0]), float(r[2])] for r in rows])
    cats = np.array([[r[1], r[3]] for r in rows])
    expected = np.hstack([StandardScaler().fit_transform(numeric),
                          OneHotEncoder(sparse_output=False).fit_transform(cats)])
    np.testing.assert_allclose(data.train.x.numpy(), expected, rtol=1e-5, atol=1e-5)
    fitted = data.preprocessing
    assert fitted["categorical_columns"] == ["colour", "city"]  # detected: no numbers in them
    assert fitted["categories"] == [["blue", "green", "red"], ["Kyiv", "Lima", "Oslo", "Pune"]]
    assert prep.output_features(fitted)[:3] == ["size", "tiny", "colour=blue"]
    assert json.loads(json.dumps(fitted)) == fitted


def test_categories_fitted_on_the_training_split_only(tmp_path, capsys):
    rows = categorical_rows(80)
    rows[3][1] = "purple"  # one rare colour; wherever it lands outside training it must encode as zeros
    header = ["size", "colour", "tiny", "city", "y"]
    data = load(source="csv", path=write_csv(tmp_path / "c.csv", header, rows), target="y",
                categorical=["colour", "city"])
    fitted = data.preprocessing
    colours = fitted["categories"][0]
    if "purple" not in colours:  # it was held out: an all-zero colour block and a warning
        assert "not seen in training" in capsys.readouterr().err
    blocks = [data.val.x[:, 2:2 + len(colours)], data.test.x[:, 2:2 + len(colours)]]
    assert all(float(b.sum(axis=1).max()) <= 1.0 for b in blocks)


def test_the_unseen_categories_warning_counts_them_and_says_e_g_when_it_shows_some(capsys):
    fitted = prep.fit(np.zeros((4, 0), np.float32), task="regression", categorical_columns=["store"],
                      categorical_train=np.array([["1"], ["2"], ["3"], ["4"]]))
    new = np.array([["1x"], ["2x"], ["3x"], ["4x"], ["4x"], ["2"]])  # ('1.0' is category '1': the same number)
    prep.apply(fitted, np.zeros((6, 0), np.float32), new, what="new.csv")  # listed 3 values, '4x' silently dropped
    assert capsys.readouterr().err == ("warning: new.csv: 5 row(s) have categories of 'store' not seen in training "
                                       "(4 values, e.g. '1x', '2x', '3x'); they are encoded as all zeros\n")
    prep.apply(fitted, np.zeros((2, 0), np.float32), np.array([["1"], ["x\ny"]]), what="new.csv")
    assert capsys.readouterr().err == ("warning: new.csv: 1 row(s) have categories of 'store' not seen in training "
                                       "(1 value: 'x\\ny'); they are encoded as all zeros\n")


def test_an_unseen_category_that_is_a_training_one_in_another_case_is_named_so(capsys):
    """'A' where training saw 'a' was one more unseen value, encoded as zeros; training warns of such case pairs."""
    fitted = prep.fit(np.zeros((4, 0), np.float32), task="regression", categorical_columns=["store"],
                      categorical_train=np.array([["a"], ["b"], ["B"], ["c"]]))
    prep.apply(fitted, np.zeros((3, 0), np.float32), np.array([["d"], ["b"], ["A"]]), what="new.csv")
    assert capsys.readouterr().err == ("warning: new.csv: 2 row(s) have categories of 'store' not seen in training "
                                       "(2 values: 'A', 'd'); they are encoded as all zeros; 'A' is the training "
                                       "category 'a' in another letter case (categories match exactly): write it as "
                                       "in training\n")
    prep.apply(fitted, np.zeros((1, 0), np.float32), np.array([["e"]]), what="new.csv")  # no case twin: no more
    assert capsys.readouterr().err.endswith("(1 value: 'e'); they are encoded as all zeros\n")


def test_a_column_constant_in_training_that_varies_in_new_rows_is_warned_of(capsys):
    """A column that held 7 in every training row got scale 1 and weights never trained on it; new rows
    with 9 there moved the predictions, unsaid (the unseen categories beside it were warned of)."""
    x = np.column_stack([np.arange(6.0), np.full(6, 7.0), np.full(6, 1.7e9)])
    fitted = prep.fit(x, task="regression", standardize=True, numeric_columns=["size", "const_col", "t"])
    assert fitted["constant_columns"] == [1, 2] and fitted["format"] == 2
    prep.warn_constant_changed(fitted, x[:3] + [[5.0, 0.0, 0.0]], "new.csv")  # the constants as trained: nothing
    assert capsys.readouterr().err == ""
    new = np.array([[1.0, 9.0, 1.7e9], [2.0, 7.0, 1.7e9 * (1 + 1e-12)], [3.0, 9.0, 1.7e9 + 1000], [4.0, -1.5, np.nan]])
    prep.warn_constant_changed(fitted, new, "new.csv")
    assert capsys.readouterr().err == (
        "warning: new.csv: 3 row(s) have a value of 'const_col' other than 7, its value in every training row "
        "(here: -1.5, 9); the model never saw it vary, so the change moves their predictions through weights "
        "never trained on it\n"
        "warning: new.csv: 1 row(s) have a value of 't' other than 1700000000, its value in every training row "
        "(here: 1700001000); the model never saw it vary, so the change moves their predictions through weights "
        "never trained on it\n")
    assert prep.apply(fitted, new, what="new.csv")[:, 1].tolist() == [2.0, 0.0, 2.0, -8.5]  # (x - 7) / 1, as sklearn
    assert capsys.readouterr().err == ""  # apply (training's splits too) says nothing of it: predict's rows only
    prep.warn_constant_changed(fitted, new[:, :2], "new.csv")  # another width: apply's error alone, no warning
    assert capsys.readouterr().err == ""
    # a run from before format 2 counted columns of std <= 1e-6 |mean| (Unix times) constant: they varied
    prep.warn_constant_changed({**fitted, "format": 1}, new, "new.csv")
    assert capsys.readouterr().err == ""


def test_predict_warns_of_a_constant_column_that_varies_and_training_splits_do_not(tmp_path, capsys):
    from trainlab.cli import main

    rng = np.random.default_rng(0)
    rows = [[f"{v:.3f}", "7", str(int(v > 0))] for v in rng.normal(size=60)]
    data = write_csv(tmp_path / "d.csv", ["a", "const", "y"], rows)
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"name": "c", "data": {"source": "csv", "path": data, "target": "y"},
                                  "model": {"name": "linear"}, "output": {"progress": "off"},
                                  "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                               "batch_size": 16, "epochs": 1}}))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "const" not in capsys.readouterr().err
    new = tmp_path / "new.csv"
    new.write_text("a,const\n0.5,7\n0.1,8\n")
    assert main(["predict", str(tmp_path / "run"), str(new), "-o", str(tmp_path / "p.csv")]) == 0
    assert "warning: " + str(new) + ": 1 row(s) have a value of 'const' other than 7" in capsys.readouterr().err


def test_target_standardisation_and_inverse(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.normal(300.0, 40.0, size=50)
    rows = [[f"{v:.3f}", f"{t:.4f}"] for v, t in zip(rng.normal(size=50), y, strict=True)]
    data = load(source="csv", path=write_csv(tmp_path / "r.csv", ["a", "y"], rows), target="y",
                val_fraction=0.0, test_fraction=0.0, standardize_target=True)
    written = np.array([float(r[1]) for r in rows])
    standardised = data.train.y.numpy()[:, 0]
    np.testing.assert_allclose(standardised, (written - written.mean()) / written.std(), rtol=1e-4, atol=1e-5)
    back = prep.inverse_target(data.preprocessing, data.train.y)
    assert isinstance(back, torch.Tensor) and back.shape == data.train.y.shape
    np.testing.assert_allclose(back.numpy()[:, 0], written, rtol=1e-5)
    np.testing.assert_allclose(prep.inverse_target(data.preprocessing, standardised), written, rtol=1e-5)
    plain = {"target": None}
    assert prep.inverse_target(plain, data.train.y) is data.train.y


def test_split_seed_is_independent_of_seed(tmp_path):
    rows = [[i, i % 2] for i in range(100)]
    path = write_csv(tmp_path / "s.csv", ["a", "y"], rows)

    def test_rows(seed, split_seed):
        data = load_dataset(DataConfig(source="csv", path=path, target="y", standardize=False,
                                       split_seed=split_seed), seed=seed)
        return sorted(data.test.x[:, 0].tolist())

    assert test_rows(0, 0) == test_rows(1, 0) == test_rows(7, 0)
    assert test_rows(0, 0) != test_rows(0, 1)


# ----------------------------------------------------------------------------- predict input


def test_read_for_predict_applies_the_runs_preprocessing(tmp_path, capsys):
    rows = categorical_rows(60)
    header = ["size", "colour", "tiny", "city", "y"]
    train_path = write_csv(tmp_path / "train.csv", header, rows)
    config = DataConfig(source="csv", path=train_path, target="y", val_fraction=0.0, test_fraction=0.0)
    data = load_dataset(config, seed=0)
    fitted = json.loads(json.dumps(data.preprocessing))  # as stored in the run folder
    new = [[r[3], r[0], r[2], r[1]] for r in rows[:5]]  # other column order, no target column
    new.append(["Atlantis", "120.0", "0.0", "red"])
    predict_path = write_csv(tmp_path / "new.csv", ["city", "size", "tiny", "colour"], new)
    x = read_for_predict(config, fitted, predict_path)
    np.testing.assert_allclose(x[:5].numpy(), data.train.x[:5].numpy(), rtol=1e-6, atol=1e-6)
    city_block = x[5, 2 + len(fitted["categories"][0]):]
    assert float(city_block.abs().sum()) == 0.0 and "'Atlantis'" in capsys.readouterr().err
    expected_size = (120.0 - fitted["mean"][0]) / fitted["scale"][0]
    assert float(x[5, 0]) == pytest.approx(expected_size, rel=1e-5)


def test_read_for_predict_of_a_csv_run_says_an_npz_is_not_its_format(tmp_path):
    """An .npz given to a CSV run's predict was told to "unzip it first" (an .npz is a zip archive)."""
    path = write_csv(tmp_path / "t.csv", ["alpha", "beta", "y"], [[i, i * 2, i % 2] for i in range(20)])
    config = DataConfig(source="csv", path=path, target="y")
    data = load_dataset(config, seed=0)
    np.savez(tmp_path / "new.npz", x=np.zeros((3, 2), np.float32))
    with pytest.raises(DataError) as caught:
        read_for_predict(config, data.preprocessing, tmp_path / "new.npz")
    assert str(caught.value) == (f"{tmp_path / 'new.npz'} is an NPZ file; for a run on the 'csv' source predict "
                                 "reads a CSV file with the training feature columns (alpha, beta), or from Python "
                                 "a pandas DataFrame of them")


def test_read_for_predict_names_a_missing_column(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["alpha", "beta", "y"], [[i, i * 2, i % 2] for i in range(20)])
    config = DataConfig(source="csv", path=path, target="y")
    data = load_dataset(config, seed=0)
    bad = write_csv(tmp_path / "new.csv", ["alpha", "betta"], [[1, 2]])
    with pytest.raises(DataError, match="no feature column 'beta'; did you mean"):
        read_for_predict(config, data.preprocessing, bad)


def test_read_for_predict_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(40, 3))
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 3).astype(np.int64))
    config = DataConfig(source="npz", path=str(tmp_path / "d.npz"), standardize=True, val_fraction=0.0,
                        test_fraction=0.0)
    data = load_dataset(config, seed=0)
    np.savez(tmp_path / "new.npz", x=x[:4])
    got = read_for_predict(config, data.preprocessing, str(tmp_path / "new.npz"))
    np.testing.assert_allclose(got.numpy(), StandardScaler().fit(x).transform(x[:4]), rtol=1e-5, atol=1e-6)
    (tmp_path / "new.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match=r"new.csv is a CSV file; for a run on the 'npz' source predict reads an "
                                        r"\.npz holding the inputs as array 'x' \(np.savez\(path, x=rows\)\)$"):
        read_for_predict(config, data.preprocessing, str(tmp_path / "new.csv"))
    np.save(tmp_path / "one.npy", x[:4])
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")  # an .npy under an .npz name: no talk of 'y'
    with pytest.raises(DataError, match=r"single-array .npy file; .* holding 'x' \(write it with np.savez\(path, "
                                        r"x=\.\.\.\)\)$"):
        read_for_predict(config, data.preprocessing, str(tmp_path / "one.npz"))


def test_multilabel_example_csv_is_reproducible(tmp_path):
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("make_example_data", root / "examples" / "make_example_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    [fresh] = module.write_csv_examples(tmp_path)
    assert fresh.read_text() == (root / "examples" / "data" / fresh.name).read_text()
    data = load(source="csv", path=str(fresh), target=["tag_sale", "tag_rush", "tag_gift"])
    assert data.task == "multilabel" and data.preprocessing["categorical_columns"] == ["shop"]
    assert data.input_shape == (6 + 4,)


def test_listed_categorical_codes_keep_their_text(tmp_path):
    rows = [[f"{i}.5", code, i % 2] for i, code in enumerate(["007", "7", "010", "007"] * 5)]
    data = load(source="csv", path=write_csv(tmp_path / "z.csv", ["a", "zip", "y"], rows), target="y",
                categorical=["zip"], val_fraction=0.0, test_fraction=0.0)
    assert data.preprocessing["categories"] == [["007", "010", "7"]]
    expected = OneHotEncoder(sparse_output=False).fit_transform(np.array([[r[1]] for r in rows]))
    np.testing.assert_array_equal(data.train.x[:, 1:].numpy(), expected)


def test_minus_one_one_labels_with_the_task_set_are_two_named_classes_and_a_stray_minus_one_is_refused(tmp_path):
    rows = [[i, -1 if i % 2 else 1] for i in range(20)]
    data = load(source="csv", path=write_csv(tmp_path / "pm.csv", ["a", "y"], rows), target="y", task="binary",
                val_fraction=0.0, test_fraction=0.0, standardize=False)
    assert data.class_names == ["-1", "1"] and data.train.y.tolist() == [1, 0] * 10
    stray = write_csv(tmp_path / "stray.csv", ["a", "y"], [[i, i % 3] for i in range(9)] + [[9, -1]])
    with pytest.raises(DataError, match="is negative; class labels are 0, 1, ..., K-1 .*-1 often marks unlabeled rows"):
        load(source="csv", path=stray, target="y", task="multiclass")


def test_minus_one_one_labels_are_inferred_binary_and_counts_need_a_zero(tmp_path):
    from trainlab.data.dataset import infer_task, is_count_target

    assert infer_task(np.array([-1, 1, 1, -1])) == "binary"
    data = load(source="csv", path=write_csv(tmp_path / "pm.csv", ["a", "y"], [[i, 1 - 2 * (i % 2)] for i in range(20)]),
                target="y", val_fraction=0.0, test_fraction=0.0, standardize=False)
    assert data.task == "binary" and data.class_names == ["-1", "1"]
    assert is_count_target(np.array([0, 1, 3, 7, 2, 0, 12]))
    assert not is_count_target(np.array([25, 151, 346, 75, 141]))  # diabetes scores: no 0, not counts


def test_a_header_name_holding_a_newline_is_escaped_so_the_error_stays_one_line(tmp_path):
    path = tmp_path / "nl.csv"
    path.write_text('"a\nb",c\n1,0\n2,1\n')  # a quoted header cell spanning two lines
    with pytest.raises(DataError) as caught:
        load(source="csv", path=str(path), target="y")
    message = str(caught.value)
    assert "\n" not in message and "(columns: 'a\\nb', c)" in message


def test_a_csv_header_read_with_the_wrong_delimiter_names_the_one_it_uses(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b;y\n1;2;0\n3;4;1\n")
    with pytest.raises(DataError, match=r"has no target column 'y' \(columns: a;b;y\); the header looks "
                                        r"semicolon-separated: set data.delimiter: ';'"):
        load(source="csv", path=str(semi), target="y")
    tabbed = tmp_path / "tab.csv"
    tabbed.write_text("a\tb\ty\n1\t2\t0\n3\t4\t1\n")
    with pytest.raises(DataError, match=r"the header looks tab-separated: set data.delimiter: '\\t'"):
        load(source="csv", path=str(tabbed), target="y")


def test_a_semicolon_export_with_decimal_commas_read_as_commas_names_the_delimiter_and_the_decimal_comma(tmp_path):
    # pandas' df.to_csv(sep=";", decimal=","): each decimal comma splits a row read with ',' into more fields
    # than the one-column header, so the ragged row is found before any column is looked up
    import pandas as pd

    frame = pd.DataFrame({"id": [842302, 842517, 84300903], "radius": [17.99, 20.57, 19.69],
                          "texture": [10.38, 17.77, 21.25], "y": [1, 0, 1]})
    path = tmp_path / "semi.csv"
    frame.to_csv(path, sep=";", decimal=",", index=False)
    with pytest.raises(DataError) as caught:
        load(source="csv", path=str(path), target="y")
    assert str(caught.value) == (
        f"CSV file {path} line 2 has 3 fields; the header has 1; the header looks semicolon-separated: set "
        "data.delimiter: ';', and write its numbers with a decimal point ('17,99' has a decimal comma: 17.99)")
    # with the delimiter set, the decimal comma itself is named
    with pytest.raises(DataError, match=r"line 2, column 'radius': '17,99' is a number written with a decimal comma"):
        load(source="csv", path=str(path), target="y", delimiter=";")
    # a row that only holds a grouping-like 1,234 gets the delimiter hint alone
    grouped = tmp_path / "grouped.csv"
    grouped.write_text("a;b;y\n1,234;2;0\n3;4;1\n")
    with pytest.raises(DataError) as caught:
        load(source="csv", path=str(grouped), target="y")
    assert str(caught.value).endswith("line 2 has 2 fields; the header has 1; the header looks semicolon-separated: "
                                      "set data.delimiter: ';'")
    # where the delimiter is not the reader's to set (predict: the run fixes it), the file is to be saved anew
    from trainlab.data.csv_table import read_table

    with pytest.raises(DataError) as caught:
        read_table(path, ",", delimiter_settable=False)
    assert str(caught.value).endswith("the header has 1; the header looks semicolon-separated: save it "
                                      "comma-separated, and write its numbers with a decimal point ('17,99' has a "
                                      "decimal comma: 17.99)")


@pytest.mark.parametrize("column, cells, fragment", [
    ("price", ["864,237", "1,200", "950"], "line 2, target 'price': '864,237' is a number written with thousands "
                                           "separators, which would make the column text (one class per value)"),
    ("area", ["1 234", "2 000", "75"], "line 2, column 'area': '1 234' is a number written with thousands "
                                       "separators, which would make the column text (one category per value); "
                                       "write its numbers without them (e.g. 1234)"),
])
def test_numbers_with_thousands_separators_are_refused_naming_the_cell(tmp_path, column, cells, fragment):
    # a target of many values (a price per row); a feature whatever it holds
    rows = [[i, cells[i % 3] if i < 3 or column != "price" else f"{1000 + i:,}", f"{i * 1.5:.1f}"] for i in range(30)]
    last = "extra" if column == "price" else "price"  # the target: 'price', in the middle or last column
    path = write_csv(tmp_path / "t.csv", ["x", column, last], rows)
    with pytest.raises(DataError, match="thousands separators") as caught:
        load(source="csv", path=path, target="price")
    assert fragment in str(caught.value)


@pytest.mark.parametrize("cells, plain", [(["1\u00a0234", "2\u00a0500", "7"], "1234"),  # French exports
                                          (["1,00,000", "12,34,567", "5"], "100000"),  # Indian grouping
                                          (["1.234.567,5", "2.000.000", "3"], "1234567.5")])  # decimal comma
def test_other_groupings_are_refused_with_the_plain_number(tmp_path, cells, plain):
    rows = [[i, cells[i % 3], i % 2] for i in range(30)]
    with pytest.raises(DataError, match=rf"write its numbers without them \(e.g. {re.escape(plain)}\), or list "
                                        r"the column in data.categorical if it is text$"):
        load(source="csv", path=write_csv(tmp_path / "g.csv", ["x", "amount", "y"], rows), target="y")


@pytest.mark.parametrize("cells, example, plain", [
    (["0,125", "1,250", "2,500"], "0,125", "0.125"),  # 0,125 can only be a decimal comma: 1,250 is 1.25 then
    (["12,5", "-3,75", "7"], "12,5", "12.5"),
    (["1.234,5", "2,25", "1e3"], "1.234,5", "1234.5"),  # dot-grouped with a decimal comma
])
def test_decimal_commas_are_refused_naming_the_cell_not_taken_for_grouping(tmp_path, cells, example, plain):
    rows = [[i, cells[i % 3], i % 2] for i in range(30)]
    with pytest.raises(DataError) as caught:
        load(source="csv", path=write_csv(tmp_path / "d.csv", ["x", "w", "y"], rows), target="y")
    assert str(caught.value).endswith(
        f"line 2, column 'w': '{example}' is a number written with a decimal comma, which would make the column "
        f"text (one category per value); write its numbers with a decimal point (e.g. {plain}), or list the "
        "column in data.categorical if it is text")
    target = [[i, cells[i] if i < 3 else f"{i},5"] for i in range(30)]  # a value per row: no classes
    with pytest.raises(DataError, match=r"target .w.: .* decimal comma.* \(one class per value\)"):
        load(source="csv", path=write_csv(tmp_path / "t.csv", ["x", "w"], target), target="w")


def test_grades_with_a_decimal_comma_are_class_names_when_few_and_a_listed_column_stays_text(tmp_path):
    rows = [[i, ["10,12", "4,6", "8,9"][i % 3], ["1,3", "2,0", "1,7"][i % 3]] for i in range(30)]
    data = load(source="csv", path=write_csv(tmp_path / "g.csv", ["x", "range", "grade"], rows), target="grade",
                categorical=["range"], task="multiclass")
    assert data.class_names == ["1,3", "1,7", "2,0"] and data.preprocessing["categorical_columns"] == ["range"]


def test_amounts_and_percentages_are_refused_as_numbers_written_with_a_sign(tmp_path, capsys):
    """'$1,200.50' and '12%' read as text: a target became one class per amount (438 classes of 442 rows; a
    percentage 76 classes), a feature a one-hot of its values, without a word. A few levels stay classes."""
    amounts = [[i, f"${1000 + 7.25 * i:,.2f}", f"{i % 40}%"] for i in range(60)]
    path = write_csv(tmp_path / "m.csv", ["x", "price", "discount"], amounts)
    with pytest.raises(DataError) as caught:
        load(source="csv", path=path, target="price", features=["x"])
    assert str(caught.value).endswith(
        "line 2, target 'price': '$1,000.00' is a number written with a currency sign, which would make the column "
        "text (one class per value); write its numbers as plain numbers, without the sign (e.g. 1000.00)")
    with pytest.raises(DataError, match=r"line 2, column 'price': '\$1,000.00' is a number written with a currency "
                                        r"sign, .* or list the column in data.categorical if it is text$"):
        load(source="csv", path=path, target="x", features=["price"])
    with pytest.raises(DataError, match=r"line 2, target 'discount': '0%' is a number written with a percent sign, "
                                        r"which would make the column text \(one class per value\); write its "
                                        r"numbers as plain numbers, without the sign \(e.g. 0\)$"):
        load(source="csv", path=path, target="discount", features=["x"])
    levels = [[i, ["9.99 €", "19.99 €", "-€3"][i % 3]] for i in range(30)]  # three price levels: classes
    data = load(source="csv", path=write_csv(tmp_path / "l.csv", ["x", "tier"], levels), target="tier")
    assert data.class_names == ["-€3", "19.99 €", "9.99 €"]
    # data.task decides: 12 levels read as classes where multiclass is given, numbers asked for under regression
    twelve = write_csv(tmp_path / "t.csv", ["x", "tier"], [[i, f"${5 * (1 + i % 12)}"] for i in range(240)])
    assert load(source="csv", path=twelve, target="tier", task="multiclass").num_classes == 12
    from trainlab.data.counting import count_splits

    # schedule, --target and tune count the rows as the source reads them
    sizes = count_splits(DataConfig(source="csv", path=twelve, target="tier", task="multiclass"))
    assert sizes.train + sizes.val + sizes.test == 240
    with pytest.raises(DataError, match=r"target 'tier': '\$5' is a number written with a currency sign"):
        load(source="csv", path=twelve, target="tier")
    with pytest.raises(DataError, match=r"target 'tier': '9.99 €' is a number written with a currency sign"):
        load(source="csv", path=write_csv(tmp_path / "l.csv", ["x", "tier"], levels), target="tier", task="regression")
    # a feature of a few levels (0%/100% flags) stays categories, said once
    flags = [[i, ["0%", "100%"][i % 2], i % 2] for i in range(30)]
    data = load(source="csv", path=write_csv(tmp_path / "f.csv", ["x", "done", "y"], flags), target="y")
    assert data.preprocessing["categorical_columns"] == ["done"]
    assert "column 'done': '0%' is a number written with a percent sign, so the column is read as 2 categories; " \
           "to read its values as numbers, write them as plain numbers, without the sign (e.g. 0)" in capsys.readouterr().err
    mixed = [[i, ["0", "5%", "10%"][i % 3], i % 2] for i in range(30)]  # a plain 0 among them: no categories
    with pytest.raises(DataError, match=r"column 'disc': '5%' is a number written with a percent sign"):
        load(source="csv", path=write_csv(tmp_path / "m.csv", ["x", "disc", "y"], mixed), target="y")
    assert "is read as" not in capsys.readouterr().err  # (a warning that the refusal then contradicted)


def test_several_targets_are_checked_for_separators_too(tmp_path):
    two = [[i, f"{i}.5", ["1,200", "2,400", "300"][i % 3]] for i in range(30)]
    with pytest.raises(DataError, match="target 'b': '1,200' is a number written with thousands separators"):
        load(source="csv", path=write_csv(tmp_path / "t.csv", ["x", "a", "b"], two), target=["a", "b"])


def test_a_text_column_left_out_of_a_given_categorical_list_says_to_add_it(tmp_path):
    rows = [[i, ["red", "blue"][i % 2], ["s", "m"][i % 2], i % 2] for i in range(20)]
    path = write_csv(tmp_path / "c.csv", ["a", "colour", "size", "y"], rows)
    with pytest.raises(DataError, match=rf"^CSV file {re.escape(path)} line 2, column 'colour': 'red' is not a number; "
                                        r"the column is read as numbers because data.categorical does not list it: "
                                        r"add 'colour' to data.categorical if it is text$"):
        load(source="csv", path=path, target="y", categorical=["size"])
    data = load(source="csv", path=path, target="y", categorical=["size", "colour"])
    assert data.preprocessing["categorical_columns"] == ["colour", "size"]


def test_a_text_column_of_other_words_stays_categorical(tmp_path):
    rows = [[i, ["red", "1,5 kg", "blue"][i % 3], i % 2] for i in range(30)]  # "1,5 kg": not a number
    data = load(source="csv", path=write_csv(tmp_path / "c.csv", ["x", "colour", "y"], rows), target="y")
    assert data.preprocessing["categorical_columns"] == ["colour"]


def test_default_feature_columns_that_look_like_ids_are_warned_of(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 60
    order = rng.permutation(n) + 1000  # a shuffled row id
    rows = [[int(order[i]), f"2021-03-{i % 28 + 1:02d}T{i:02d}", ["a", "b"][i % 2], float(rng.normal()), i % 2]
            for i in range(n)]
    path = write_csv(tmp_path / "ids.csv", ["id", "when", "kind", "x", "y"], rows)
    load(source="csv", path=path, target="y")
    err = capsys.readouterr().err
    assert "column 'id' holds 60 consecutive whole numbers, each once (a row number, an id or a year?)" in err
    assert "text column 'when' has 60 distinct values in 60 rows" in err
    assert "'kind'" not in err and "'x'" not in err  # two categories; real numbers
    load(source="csv", path=path, target="y", features=["kind", "x"])  # chosen columns: nothing to say
    assert "warning" not in capsys.readouterr().err
    big_ids = write_csv(tmp_path / "big.csv", ["id", "name", "y"],  # ids past float32's 2^24; missing names
                        [[20_000_001 + i, f"n{i}" if i < 20 else "", i % 2] for i in range(40)])
    load(source="csv", path=big_ids, target="y", nan_policy="drop")
    err = capsys.readouterr().err
    assert "column 'id' holds 40 consecutive whole numbers" in err
    assert "text column 'name'" not in err  # 20 names in 40 rows: not more than half (missing cells: no value)
    small = write_csv(tmp_path / "small.csv", ["id", "y"], [[i, i % 2] for i in range(10)])
    load(source="csv", path=small, target="y")  # too few rows to call anything an id
    assert "row number" not in capsys.readouterr().err


def test_predict_on_a_semicolon_export_says_save_it_comma_separated(tmp_path):
    """predict reads with the run's data.delimiter, which it cannot change: a ragged semicolon file is told
    to be saved comma-separated, not to "set data.delimiter"."""
    from trainlab.data.predict_input import _csv_rows

    path = tmp_path / "new.csv"
    path.write_text("a;b\n1,5;2,25\n")
    with pytest.raises(DataError) as caught:
        _csv_rows(path, {"delimiter": ","}, {"numeric_columns": ["a", "b"]})
    message = str(caught.value)
    assert "save it comma-separated" in message and "set data.delimiter" not in message


def test_a_csv_column_of_unix_times_is_standardised_from_its_float64_values_as_sklearn_does(tmp_path):
    """CSV columns were cast to float32 before standardising: 101 distinct Unix times (1.7e9 + 0..100 s, steps
    of 128 in float32) became 2 values, and the column was then called constant (std <= 1e-6 |mean|)."""
    rng = np.random.default_rng(0)
    times = 1_700_000_000 + rng.integers(0, 101, size=300)
    small = rng.normal(size=300)
    path = write_csv(tmp_path / "t.csv", ["unix_time", "small", "y"],
                     [[int(t), f"{s:.6f}", int(t % 2)] for t, s in zip(times, small, strict=True)])
    data = load(source="csv", path=path, target="y", val_fraction=0.0, test_fraction=0.0, standardize=True)
    raw = np.column_stack([times, np.round(small, 6)]).astype(np.float64)
    reference = StandardScaler().fit(raw)
    assert data.preprocessing["constant_columns"] == []
    np.testing.assert_allclose(data.preprocessing["scale"], reference.scale_, rtol=1e-9)
    train = data.train.x.numpy()
    # the rows in the same order on both sides: sorted by the small column (distinct values)
    expected = reference.transform(raw)[np.argsort(raw[:, 1])]
    np.testing.assert_allclose(train[np.argsort(train[:, 1])], expected, rtol=1e-5, atol=1e-5)
    assert len(np.unique(train[:, 0])) == len(np.unique(times))
    # predict reads the same file's rows as training did (float64 until standardised): no train/predict skew
    config = DataConfig(source="csv", path=path, target="y", val_fraction=0.0, test_fraction=0.0, standardize=True)
    np.testing.assert_allclose(read_for_predict(config, data.preprocessing, path).numpy(), reference.transform(raw),
                               rtol=1e-5, atol=1e-5)


def test_the_constant_column_rule_is_sklearns_float64_bound(tmp_path):
    """std 29 around 1.7e9 was called constant (scale 1); StandardScaler scales it by 29."""
    rng = np.random.default_rng(1)
    x = np.column_stack([1.7e9 + rng.normal(0, 29, 200), np.full(200, 0.1), np.full(200, 1e12 / 3), rng.normal(size=200)])
    fitted = prep.fit(x, task="regression", standardize=True)
    reference = StandardScaler().fit(x)
    np.testing.assert_allclose(fitted["scale"], reference.scale_, rtol=1e-12)
    assert fitted["constant_columns"] == [1, 2]  # 0.1 and 1e12/3 repeated: their mean's rounding only


def test_regression_metrics_of_a_large_offset_target_are_computed_in_float64(tmp_path):
    """A target of 1e8 + small steps: inverse-standardised in float32 the outputs were multiples of 8 (mse 8.0)."""
    import trainlab
    from trainlab.config import load_config
    from trainlab.experiment import train

    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 2))
    y = 1e8 + x @ np.array([3.0, -2.0]) + rng.normal(0, 0.01, 400)
    path = write_csv(tmp_path / "r.csv", ["a", "b", "y"], [[f"{a:.6f}", f"{b:.6f}", f"{t:.4f}"] for (a, b), t in zip(x, y, strict=True)])
    config_path = tmp_path / "c.yaml"
    config_path.write_text(
        f"seed: 0\ndata: {{source: csv, path: {path}, target: y, standardize_target: true}}\n"
        "model: {name: linear}\nstrategy: {loss: mse, optimizer: {name: adam, lr: 0.05}, batch_size: full, epochs: 300}\n"
        "metrics: [mse, mae]\noutput: {progress: off}\n")
    summary, out = train(load_config(config_path), out=tmp_path / "run", quiet=True)
    loaded = trainlab.load_run(out)
    test_rows = loaded.read(path)
    predicted = loaded.predict(test_rows)
    assert predicted.dtype == np.float64
    assert np.mean(np.abs(predicted - y)) < 0.5  # in float32 these were multiples of 8 away
    assert summary["test"]["mse"] < 0.25 and summary["test"]["mae"] < 0.5


def test_the_digits_figure_in_the_docs_is_what_standardising_gives():
    """docs/data.md said standardised digits stay within ±20; val reaches 85.9 (pixel 48 is non-zero in 2
    training rows). Reference: scikit-learn's StandardScaler fitted on the same training rows, found in
    load_digits by their pixels (whole numbers 0..16, recovered from the standardised values)."""
    from sklearn.datasets import load_digits

    data = load_dataset(DataConfig(source="digits"), seed=0)
    mean, scale = (np.asarray(data.preprocessing[key]) for key in ("mean", "scale"))
    pixels, _ = load_digits(return_X_y=True)
    row_of = {tuple(row): i for i, row in enumerate(pixels.astype(int))}

    def rows(split) -> np.ndarray:
        return pixels[[row_of[tuple(r)] for r in np.rint(split.x.numpy() * scale + mean).astype(int)]]

    scaler = StandardScaler().fit(rows(data.train))
    largest = {name: float(np.abs(scaler.transform(rows(split))).max())
               for name, split in (("val", data.val), ("test", data.test))}
    for name, split in (("val", data.val), ("test", data.test)):
        assert float(split.x.abs().max()) == pytest.approx(largest[name], rel=1e-5)
    docs = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    said = " ".join(docs.split())
    assert f"{largest['val']:.1f} in val, {largest['test']:.1f} in test" in said
    assert f"below {math.ceil(max(largest.values()))} in magnitude" in said


def test_a_target_column_of_words_among_several_says_to_write_its_labels_as_0_and_1(tmp_path):
    """Multi-label tags written yes/no: "'no' is not a number while other targets are numeric", where no
    target was numeric; the line says how several target columns are read and what to write."""
    rows = [[i, "yes" if i % 2 else "no", "no" if i % 3 else "yes"] for i in range(30)]
    path = write_csv(tmp_path / "tags.csv", ["a", "red", "blue"], rows)
    with pytest.raises(DataError) as refused:
        load(source="csv", path=path, target=["red", "blue"])
    assert str(refused.value) == (
        f"CSV file {path}, target 'red' holds words ('no', 'yes'), and the 2 target columns data.target names are "
        "read as numbers: 0/1 labels, one column per label (multilabel), or values (regression); write its labels "
        "as 0 and 1 (e.g. 'no' -> 0, 'yes' -> 1)")
    mixed = write_csv(tmp_path / "mixed.csv", ["a", "red", "blue"], [[i, i % 2, "x" if i == 5 else int(i % 3 > 0)]
                                                                       for i in range(30)])
    with pytest.raises(DataError, match="'x' is not a number while other targets are numeric"):
        load(source="csv", path=mixed, target=["red", "blue"])  # one stray word among numbers: named as before


def test_a_feature_column_missing_in_every_row_is_told_to_be_left_out(tmp_path):
    """An empty column was told "fix the data or set data.nan_policy: drop", which then dropped every row."""
    rows = [[i, "", i % 2] for i in range(30)]
    path = write_csv(tmp_path / "e.csv", ["x", "notes", "y"], rows)
    with pytest.raises(DataError) as caught:
        load(source="csv", path=path, target="y")
    assert str(caught.value).endswith(", and so is that column in every other row: leave the column out (a CSV's: "
                                      "choose the feature columns with data.features), as data.nan_policy: drop "
                                      "would drop every row")
    assert load(source="csv", path=path, target="y", features=["x"]).train.x.shape[1] == 1
    first_gap = [["" if i == 0 else i, "", i, i % 2] for i in range(30)]  # a lone gap in 'a' comes first
    with pytest.raises(DataError, match=r"line 2, column 'notes' .*, and so is that column in every other row"):
        load(source="csv", path=write_csv(tmp_path / "g.csv", ["a", "notes", "b", "y"], first_gap), target="y")
    rows[3][1] = "2.5"  # one value: the cell is what to fix
    with pytest.raises(DataError, match=r"line 2, column 'notes' .*; fix the data or set data.nan_policy: drop$"):
        load(source="csv", path=write_csv(tmp_path / "f.csv", ["x", "notes", "y"], rows), target="y")


def test_an_unnamed_feature_column_is_refused_and_class_labels_are_said_as_written(tmp_path, capsys):
    """A header 'a,,b,y' made a feature named '' (in preprocessing.json, and predict's header); a class a split
    lacks was named '1.0' for the 1 the file holds."""
    rows = [[i, i % 3, i * 2, int(i == 0)] for i in range(40)]
    path = write_csv(tmp_path / "u.csv", ["a", "", "b", "y"], rows)
    with pytest.raises(DataError) as caught:
        load(source="csv", path=path, target="y")
    assert str(caught.value).endswith("column 2 of the header has no name (columns: a, , b, y); name it, or choose "
                                      "the feature columns with data.features")
    load(source="csv", path=path, target="y", features=["a", "b"], task="binary")
    assert "holds no row of 1 of the 2 classes (1):" in capsys.readouterr().err


def test_rows_of_delimiters_alone_are_named_as_such(tmp_path):
    """Spreadsheet exports end in ',,,' lines: each was "a missing feature value at line 5, column 'a'", as if
    one cell were missing; data.nan_policy: drop drops them as it drops any row with a missing value."""
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(20)) + ",,\n,,\n , ,\n")
    with pytest.raises(DataError) as caught:
        load(source="csv", path=str(path), target="y")
    assert str(caught.value).endswith("line 22 holds no value (only delimiters or missing-value markers), and so do 2 "
                                      "more rows: delete such rows (spreadsheet exports leave them below the data)")
    data = load(source="csv", path=str(path), target="y", nan_policy="drop", val_fraction=0.0, test_fraction=0.0)
    assert len(data.train) == 20
