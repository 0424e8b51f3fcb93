"""A CSV of more than WIDE_COLUMNS columns read as pandas and NumPy read it, each column parsed once; and
channel statistics of large images counted in bounded memory, equal to NumPy's float64 mean and std."""

from __future__ import annotations

import csv
import tracemalloc
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import trainlab.data.files as files
from trainlab.data.csv_table import read_table, strings
from trainlab.data.csv_wide import WIDE_COLUMNS
from trainlab.data.files import csv_file
from trainlab.data.transforms import STATS_CHUNK_VALUES, channel_stats

ROWS = 40
COLOURS = ["red", "green", "blue"]


def _write_wide_csv(path, rng):
    """WIDE_COLUMNS + 4 columns: numbers written with 4 decimals (some with spaces, some missing as '' or
    'NA'), a shuffled row id, a text column of three colours, and a text label. Returns the header and the
    numbers as written, NaN where missing, (ROWS, WIDE_COLUMNS)."""
    values = np.round(rng.normal(size=(ROWS, WIDE_COLUMNS)), 4)
    missing = rng.random(values.shape) < 0.01
    spaced = rng.random(values.shape) < 0.01
    row_id = rng.permutation(ROWS) + 500
    header = [f"f{j}" for j in range(WIDE_COLUMNS // 2)] + ["row_id", "colour"] \
        + [f"g{j}" for j in range(WIDE_COLUMNS - WIDE_COLUMNS // 2)] + ["label"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(ROWS):
            cells = [("" if j % 2 else "NA") if missing[i, j] else f" {v:.4f} " if spaced[i, j] else f"{v:.4f}"
                     for j, v in enumerate(values[i])]
            half = WIDE_COLUMNS // 2
            writer.writerow([*cells[:half], row_id[i], COLOURS[i % 3], *cells[half:], ["yes", "no"][i % 2]])
    return header, np.where(missing, np.nan, values), row_id


def test_a_wide_csv_reads_as_pandas_and_numpy_read_it(tmp_path, capsys):
    path = tmp_path / "wide.csv"
    header, written, row_id = _write_wide_csv(path, np.random.default_rng(0))
    data = csv_file(str(path), target="label")

    reference = pd.read_csv(path, skipinitialspace=True)  # '', 'NA' missing by pandas' defaults
    numeric = [name for name in reference.columns if name != "label" and reference[name].dtype.kind in "fi"]
    assert data.feature_names == numeric  # the file's order, text columns left out
    np.testing.assert_array_equal(data.x_train, reference[numeric].to_numpy(dtype=np.float64))
    expected = np.insert(written, WIDE_COLUMNS // 2, row_id, axis=1)  # the numbers as written, row id among them
    np.testing.assert_array_equal(data.x_train, expected)
    assert data.categorical_names == ["colour"]
    np.testing.assert_array_equal(data.x_categorical[:, 0], [COLOURS[i % 3] for i in range(ROWS)])
    assert data.class_names == ["no", "yes"]
    np.testing.assert_array_equal(data.y_train, [1 - i % 2 for i in range(ROWS)])
    err = capsys.readouterr().err
    assert f"column 'row_id' holds {ROWS} consecutive whole numbers, each once (a row number" in err
    assert err.count("consecutive whole numbers") == 1


def test_a_wide_csv_parses_each_column_once(tmp_path, monkeypatch):
    """numeric_block parses the feature columns once; numbers() reads only the columns it could not parse
    as numbers, and the target. The id-column check read every numeric column again with numbers()."""
    path = tmp_path / "wide.csv"
    _write_wide_csv(path, np.random.default_rng(1))
    blocks, unparsed, singles = [], [], Counter()
    numeric_block, numbers = files.numeric_block, files.numbers

    def counting_block(table, names):
        block, not_numbers = numeric_block(table, names)
        blocks.append(list(names))
        unparsed.extend(not_numbers)
        return block, not_numbers

    def counting_numbers(table, name):
        singles[name] += 1
        return numbers(table, name)

    monkeypatch.setattr(files, "numeric_block", counting_block)
    monkeypatch.setattr(files, "numbers", counting_numbers)
    csv_file(str(path), target="label")
    assert len(blocks) == 1 and len(blocks[0]) == WIDE_COLUMNS + 2  # every feature column, in one block
    assert unparsed == ["colour"]
    assert singles == Counter({"colour": 1, "label": 1})


def test_a_wide_csv_keeps_the_text_of_its_text_columns_only(tmp_path):
    """Parsed as read: the numbers in one float64 array, text kept for the columns holding some, among them
    one whose first text is below rows of missing cells (read from the file again), as pandas reads it."""
    path = tmp_path / "wide.csv"
    header, _, _ = _write_wide_csv(path, np.random.default_rng(2))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[:2, "colour"] = ["", "NA", " "]  # missing cells first: the column is found to be text at row 3
    frame.to_csv(path, index=False)
    table = read_table(path)
    assert table.wide and table.frame.values.dtype == np.float64 and table.frame.values.shape == (ROWS, len(header))
    assert sorted(table.frame.text) == [header.index("colour"), header.index("label")]
    written = frame["colour"].to_numpy(dtype=str)
    np.testing.assert_array_equal(table.frame.text[header.index("colour")], written)
    np.testing.assert_array_equal(strings(table, "colour"), np.where(np.isin(np.char.strip(written), ["", "NA"]), "",
                                                                    np.char.strip(written)))
    assert table.cell(5, "f3", strip=False) == frame["f3"][5]  # a number's text, read again for a message
    np.testing.assert_array_equal(strings(table, "f3"), frame["f3"].str.strip().replace("NA", ""))


SPECIAL = {"flag": ["True", "False", "", "true", "FALSE"], "spaced_flag": [" True", "False", "True", "False", "True"],
           "separated": ["1", "1_000", "2", "3", "4"], "fullwidth": ["1", "\uff11\uff12", "2", "3", "4"],
           "nan_spelled": ["1", "-nan", "2", "3", "4"], "nan_cased": ["1", "nAn", "2", "3", "4"],
           "plain": ["1", " 2 ", "NA", "4e2", "-inf"]}


@pytest.mark.parametrize("width", [len(SPECIAL), WIDE_COLUMNS + 1])
def test_a_wide_csv_reads_booleans_separators_and_other_digits_as_pandas_reads_a_narrow_one(tmp_path, width):
    """The wide reader parsed cells with float(), which reads 1_000 and fullwidth digits as numbers, and read
    True/False as text; pandas' C parser (a narrow file) reads the first two as text, the last as booleans."""
    from trainlab.data.csv_table import is_bool_column, numbers

    header = [*SPECIAL, *[f"pad{j}" for j in range(width - len(SPECIAL))]]
    path = tmp_path / "table.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(5):
            writer.writerow([*(cells[i] for cells in SPECIAL.values()), *["0.5"] * (width - len(SPECIAL))])
    table = read_table(path)
    assert table.wide == (width > WIDE_COLUMNS)
    flag, bad = numbers(table, "flag")
    np.testing.assert_array_equal(flag, [1.0, 0.0, np.nan, 1.0, 0.0])
    assert bad is None and is_bool_column(table, "flag")
    assert not is_bool_column(table, "spaced_flag") and numbers(table, "spaced_flag")[1] is not None
    for name in ("separated", "fullwidth", "nan_spelled", "nan_cased"):  # (-nan: no missing-value marker)
        assert not is_bool_column(table, name)
        assert list(numbers(table, name)[1]) == [1], name  # row 1's cell is not a number, as pandas says
    reference = pd.to_numeric(pd.Series(SPECIAL["plain"]).str.strip().replace("NA", np.nan), errors="raise")
    np.testing.assert_array_equal(numbers(table, "plain")[0], reference.to_numpy(dtype=np.float64))


def test_reading_a_wide_csv_allocates_a_small_multiple_of_its_numbers(tmp_path):
    """At most 5x the float64 features at the peak (the numbers as read, their copy as features, the float32
    range check); the array of every cell's text, its stripped copy and the list of rows took 15x."""
    path = tmp_path / "wide.csv"
    _write_wide_csv(path, np.random.default_rng(3))
    rng = np.random.default_rng(4)
    with open(path, "a", newline="") as handle:  # 400 rows more: 10^6 cells
        csv.writer(handle).writerows([[f"{v:.4f}" for v in rng.normal(size=WIDE_COLUMNS // 2)]
                                      + [i, "red"] + [f"{v:.4f}" for v in rng.normal(size=WIDE_COLUMNS - WIDE_COLUMNS // 2)]
                                      + ["yes"] for i in range(ROWS + 500, ROWS + 900)])
    csv_file(str(path), target="label")  # imports and first-call caches outside the measurement
    tracemalloc.start()
    try:
        data = csv_file(str(path), target="label")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * data.x_train.nbytes, f"{peak / data.x_train.nbytes:.1f}x"


def test_the_id_check_ignores_columns_of_infinities_and_missing_cells(tmp_path, capsys):
    """A column of inf only spans inf - inf = NaN: not consecutive, and no RuntimeWarning; NaN likewise."""
    path = tmp_path / "inf.csv"
    rows = [[i, "inf", "" if i == 3 else i, i % 2] for i in range(30)]
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([["id", "infinite", "gap", "y"], *rows])
    with np.errstate(all="raise"):
        csv_file(str(path), target="y")
    err = capsys.readouterr().err
    assert "column 'id' holds 30 consecutive" in err
    assert "'infinite'" not in err and "'gap'" not in err


# ----------------------------------------------------------------------------- channel statistics


def _numpy_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scaled = x.astype(np.float64) / 255.0
    axes = (0, *range(2, x.ndim)) if x.ndim == 4 else None
    return np.atleast_1d(scaled.mean(axis=axes)), np.atleast_1d(scaled.std(axis=axes))


@pytest.mark.parametrize("shape", [(5, 3, 7, 11), (3, 1, 13, 9), (4, 50), (2, 6, 9)])
@pytest.mark.parametrize("chunk_values", [1, 10, 77, 160, 1000, STATS_CHUNK_VALUES])
def test_channel_stats_match_numpy_whatever_the_chunks(shape, chunk_values):
    """Chunks of 10 or 77 values end inside an image's channel (77 = one 7x11 channel); 160 or 1000 span several
    images, ending between them or not."""
    x = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    mean, std = channel_stats(x, chunk_values=chunk_values)
    expected_mean, expected_std = _numpy_stats(x)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(std, expected_std, rtol=1e-10)


def test_channel_stats_of_a_strided_view_match_numpy():
    """Images kept (N, H, W, C) and seen channels-first: not C-contiguous, copied a chunk at a time."""
    hwc = np.random.default_rng(3).integers(0, 256, (4, 9, 8, 3), dtype=np.uint8)
    x = hwc.transpose(0, 3, 1, 2)
    mean, std = channel_stats(x, chunk_values=50)
    expected_mean, expected_std = _numpy_stats(x)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(std, expected_std, rtol=1e-10)


def test_channel_stats_of_large_images_allocate_a_bounded_amount():
    """Two 2000x1500 RGB images (18 MB): counted a bounded number of values at a time, the extra memory is at
    most 9 bytes per chunk value (np.bincount's int64 cast, a uint8 copy of a strided channel), 36 MiB,
    whatever the images' size; counted two images at a time, the int64 cast alone was 46 MiB."""
    x = np.random.default_rng(4).integers(0, 256, (2, 3, 2000, 1500), dtype=np.uint8)
    tracemalloc.start()
    try:
        mean, std = channel_stats(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 9 * STATS_CHUNK_VALUES + 2**20, f"{peak / 2**20:.1f} MiB"
    expected_mean, expected_std = _numpy_stats(x)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
    np.testing.assert_allclose(std, expected_std, rtol=1e-10)


def test_channel_stats_refuses_a_chunk_of_no_values():
    with pytest.raises(ValueError, match="chunk_values must be at least 1; got 0"):
        channel_stats(np.zeros((2, 3), dtype=np.uint8), chunk_values=0)
