"""What an IDX folder's errors tell a user to do: a test split holding a class the training labels lack
(the classes are inferred from the training labels), and a folder without the t10k files.

The IDX bytes are written here from the format description (LeCun): 0, 0, dtype 0x08, ndim, big-endian
uint32 dimensions, then the values.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data.labels import read_class_labels
from trainlab.errors import DataError


def write_idx(file: Path, array: np.ndarray) -> None:
    file.write_bytes(bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
                     + array.astype(np.uint8).tobytes())


def mnist_folder(folder: Path, train_labels: np.ndarray, test_labels: np.ndarray | None) -> Path:
    """A folder of MNIST-named IDX files of 4x4 images; no t10k files when ``test_labels`` is None."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (len(train_labels), 4, 4)))
    write_idx(folder / "train-labels-idx1-ubyte", train_labels)
    if test_labels is not None:
        write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (len(test_labels), 4, 4)))
        write_idx(folder / "t10k-labels-idx1-ubyte", test_labels)
    return folder


def test_a_test_class_the_training_labels_lack_is_named_as_such_and_class_names_declares_it(tmp_path, capsys):
    # an MNIST subset whose training part has no 9s: the classes are 0..8, the test file holds a 9
    train, test = np.arange(90) % 9, np.array([0, 3, 9, 1, 9])
    folder = mnist_folder(tmp_path / "gap", train, test)
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(source="idx", path=str(folder)))
    assert str(caught.value) == (
        "test data label 9 at row 2 (counting from 0) is out of range [0, 9): the classes are inferred from the "
        "training labels, which go up to 8, so the training data has no row of class 9; to keep it, set "
        "data.class_names to the names of all the classes (at least 10, for labels 0..9), or add training rows of it")
    # the fix it names: ten names make ten classes, the test 9s are class 9, which has no training rows
    data = load_dataset(DataConfig(source="idx", path=str(folder), class_names=[str(i) for i in range(10)]))
    assert data.num_classes == 10 and data.test.y.tolist() == test.tolist()
    assert "class 9 ('9') of the 10 named classes" in capsys.readouterr().err


def test_without_a_class_option_the_label_beyond_training_says_to_add_rows():
    # a source (or trainlab.fit) that takes no class names: the fix is the data's
    labels, _ = read_class_labels("multiclass", np.arange(30) % 3, None)
    with pytest.raises(DataError) as caught:
        labels.given("val y", np.array([0, 5, 2]))
    assert str(caught.value) == (
        "val y label 5 at row 1 (counting from 0) is out of range [0, 3): the classes are inferred from the training "
        "labels, which go up to 2, so the training data has no row of class 5; add training rows of it, or drop "
        "such rows")
    with pytest.raises(DataError, match=r"^val y labels must be integer class indices for a multiclass task; got 5.5"):
        labels.given("val y", np.array([0, 5.5, 7]))  # a fractional label keeps its own error
    with pytest.raises(DataError) as caught:
        read_class_labels("binary", np.arange(30) % 2, None)[0].given("val y", np.array([2]))
    assert str(caught.value) == (
        "val y label 2 at row 0 (counting from 0) is out of range [0, 2) (binary labels are 0 and 1): the classes "
        "are inferred from the training labels, which go up to 1, so the training data has no row of class 2; add "
        "training rows of it, or drop such rows")


def test_a_folder_without_the_test_files_names_both_ways_on(tmp_path):
    folder = mnist_folder(tmp_path / "train_only", np.arange(40) % 4, None)
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(source="idx", path=str(folder)))
    message = str(caught.value)
    assert message.startswith(f"no test images file in {folder} (tried ")
    assert message.endswith("IDX files there: train-images-idx3-ubyte, train-labels-idx1-ubyte; set data.test_images "
                            "to its file name (or data.test_images=null with data.test_labels=null to split a test "
                            "set off train)")
    data = load_dataset(DataConfig(source="idx", path=str(folder), test_images=None, test_labels=None))
    assert len(data.train) + len(data.val) + len(data.test) == 40 and len(data.test) > 0


def test_a_gzipped_file_named_without_gz_says_so(tmp_path):
    """It said 'has magic number 0x1f8b0800; expected 0x00000803', which names no fix."""
    import gzip

    folder = mnist_folder(tmp_path / "mnist", np.array([0, 1, 0, 1]), np.array([0, 1]))
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(gzip.compress(images.read_bytes()))
    with pytest.raises(DataError) as error:
        load_dataset(DataConfig(source="idx", path=str(folder)), seed=0)
    assert str(error.value) == (f"IDX file {images} is gzip-compressed (it starts with 0x1f8b, gzip's magic number) "
                                "but its name does not end in .gz; rename it to train-images-idx3-ubyte.gz (read as "
                                f"gzip), or decompress it: mv {images} {images}.gz && gunzip {images}.gz")
    images.rename(folder / "train-images-idx3-ubyte.gz")  # the fix it names: read as gzip
    assert len(load_dataset(DataConfig(source="idx", path=str(folder), val_fraction=0.0), seed=0).train) == 4


def test_a_gz_name_on_a_file_that_is_not_gzip_says_so(tmp_path):
    folder = mnist_folder(tmp_path / "mnist", np.array([0, 1, 0, 1]), np.array([0, 1]))
    labels = folder / "t10k-labels-idx1-ubyte"
    labels.rename(folder / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError) as error:
        load_dataset(DataConfig(source="idx", path=str(folder)), seed=0)
    assert str(error.value) == (f"IDX file {labels}.gz is named .gz but is not gzip-compressed (it starts with "
                                "0x0000, not gzip's 0x1f8b); rename it to t10k-labels-idx1-ubyte")


def test_an_empty_idx_file_is_named_and_one_test_name_null_is_a_config_error(tmp_path):
    """A user trial: files whose headers count 0 items gave 'training data is empty (0 rows)', naming no file;
    test_images: null alone was a data error (exit 3) showing Python's None."""
    from trainlab.errors import ConfigError

    folder = mnist_folder(tmp_path / "zero", np.zeros(0, np.uint8), np.array([0, 1]))
    with pytest.raises(DataError) as caught:
        load_dataset(DataConfig(source="idx", path=str(folder)))
    assert str(caught.value) == (f"IDX train split: {folder / 'train-images-idx3-ubyte'} holds no images (its header "
                                 "counts 0); the train split needs at least one image and its label")
    folder = mnist_folder(tmp_path / "ok", np.arange(20) % 2, np.array([0, 1]))
    with pytest.raises(ConfigError) as caught:
        load_dataset(DataConfig(source="idx", path=str(folder), test_images=None))
    assert str(caught.value) == ("set both data.test_images and data.test_labels, or both to null; got "
                                 "test_images=null, test_labels='t10k-labels-idx1-ubyte'")
