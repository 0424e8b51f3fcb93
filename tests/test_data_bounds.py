"""Bounded reads (IDX sizes, gzip bombs, PNG bombs, device files), the generated-data cache, resolved paths."""

from __future__ import annotations

import gzip
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from trainlab.config import DataConfig
from trainlab.data import cache as data_cache
from trainlab.data import load_dataset
from trainlab.data.idx import read_idx
from trainlab.data.paths import resolve_data_paths, resolve_file
from trainlab.errors import DataError


def idx_header(dims: tuple[int, ...]) -> bytes:
    """IDX header from the format description: 0, 0, dtype 0x08, ndim, big-endian uint32 dims."""
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message and len(message) < 400, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# ----------------------------------------------------------------------------- IDX


def test_idx_dims_overflowing_int64_refused(tmp_path):
    file = tmp_path / "images-idx3-ubyte"
    file.write_bytes(idx_header((2**32 - 1,) * 3) + b"\x00" * 8)
    with pytest.raises(DataError) as error:
        read_idx(file, 3)
    one_line(error, "is truncated", f"expected {4 + 4 * 3 + (2**32 - 1) ** 3} bytes", "got 24")


def test_idx_dims_beyond_file_size_refused_without_reading(tmp_path):
    file = tmp_path / "labels-idx1-ubyte"
    file.write_bytes(idx_header((10**9,)) + bytes(100))
    with pytest.raises(DataError) as error:
        read_idx(file, 1)
    one_line(error, "is truncated", "expected 1000000008 bytes", "got 108")


def test_gzip_bomb_refused_after_the_claimed_size(tmp_path):
    file = tmp_path / "labels-idx1-ubyte.gz"
    file.write_bytes(gzip.compress(idx_header((16,)) + bytes(50_000_000), compresslevel=1))
    assert file.stat().st_size < 500_000  # ~220 KB holding 50 MB
    start = time.perf_counter()
    with pytest.raises(DataError) as error:
        read_idx(file, 1)
    assert time.perf_counter() - start < 5  # stopped at byte 25, not after 50 MB
    one_line(error, "is longer than its header says", "expected 24 bytes")


def test_gzip_claiming_more_than_deflate_can_hold(tmp_path):
    file = tmp_path / "images-idx3-ubyte.gz"
    file.write_bytes(gzip.compress(idx_header((60000, 1000, 1000))))  # 60 GB claimed by ~40 bytes
    with pytest.raises(DataError) as error:
        read_idx(file, 3)
    one_line(error, "is truncated", "gzip stream cannot hold that")


def test_valid_idx_still_reads(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    plain, packed = tmp_path / "a-idx3-ubyte", tmp_path / "b-idx3-ubyte.gz"
    plain.write_bytes(idx_header(array.shape) + array.tobytes())
    packed.write_bytes(gzip.compress(idx_header(array.shape) + array.tobytes()))
    np.testing.assert_array_equal(read_idx(plain, 3), array)
    np.testing.assert_array_equal(read_idx(packed, 3), array)


# ----------------------------------------------------------------------------- images and device files


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height grey pixels (chunk layout and CRC-32 per the PNG spec)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


def test_png_decompression_bomb_is_one_line(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(png_claiming(30_000, 30_000))  # 9e8 pixels
    with pytest.raises(DataError) as error:
        load_dataset(DataConfig(source="image_folder", path=str(tmp_path), workers=0), seed=0)
    one_line(error, "x.png is too large to decode", "decompression bomb")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_file_refused():
    with pytest.raises(DataError) as error:
        resolve_file("/dev/zero", "a CSV file")
    one_line(error, "'/dev/zero' is not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_refused(tmp_path):
    pipe = tmp_path / "data.csv"
    os.mkfifo(pipe)
    with pytest.raises(DataError) as error:
        load_dataset(DataConfig(source="csv", path=str(pipe), target="y"), seed=0)
    one_line(error, "is not a regular file")


# ----------------------------------------------------------------------------- the generated-data cache


@pytest.fixture
def cache_folder(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(data_cache.CACHE_ENV, str(folder))
    return folder


def test_cache_generates_once_and_reads_back(cache_folder):
    calls = []

    def generate():
        calls.append(1)
        return {"x": np.arange(6.0).reshape(2, 3), "y": np.array([1, 0])}

    first = data_cache.cached("demo", {"n": 2}, generate)
    second = data_cache.cached("demo", {"n": 2}, generate)
    assert len(calls) == 1
    for key in ("x", "y"):
        np.testing.assert_array_equal(first[key], second[key])
    [entry] = list(cache_folder.iterdir())
    with np.load(entry, allow_pickle=False) as archive:  # pickle-free
        assert sorted(archive.files) == ["x", "y"]
    data_cache.cached("demo", {"n": 3}, generate)  # another key, another entry
    assert len(calls) == 2 and len(list(cache_folder.iterdir())) == 2


def test_corrupt_cache_entry_is_regenerated(cache_folder):
    generate = lambda: {"x": np.ones(4)}  # noqa: E731
    data_cache.cached("demo", {"n": 4}, generate)
    entry = data_cache.entry_path("demo", {"n": 4})
    entry.write_bytes(b"not an npz")
    np.testing.assert_array_equal(data_cache.cached("demo", {"n": 4}, generate)["x"], np.ones(4))
    with np.load(entry, allow_pickle=False) as archive:
        np.testing.assert_array_equal(archive["x"], np.ones(4))


def test_cache_off_and_unwritable(tmp_path, monkeypatch):
    monkeypatch.setenv(data_cache.CACHE_ENV, "off")
    assert data_cache.entry_path("demo", {}) is None
    assert data_cache.cached("demo", {}, lambda: {"x": np.zeros(1)})["x"].shape == (1,)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(data_cache.CACHE_ENV, str(blocker / "cache"))
    assert data_cache.cached("demo", {}, lambda: {"x": np.zeros(2)})["x"].shape == (2,)


def test_mnist1d_from_cache_equals_the_generator(cache_folder):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = 200, 3
    reference = make_dataset(args)
    config = DataConfig(source="mnist1d", num_samples=200, seed=3, val_fraction=0.0)
    for _ in range(2):  # generated, then read from the cache
        data = load_dataset(config, seed=0)
        np.testing.assert_allclose(data.train.x.numpy(), np.asarray(reference["x"], dtype=np.float32))
        np.testing.assert_array_equal(data.test.y.numpy(), reference["y_test"])
    assert len(list(cache_folder.glob("mnist1d-*.npz"))) == 1


# ----------------------------------------------------------------------------- resolved paths


def test_resolve_data_paths(tmp_path, monkeypatch):
    data_dir, cwd = tmp_path / "datasets", tmp_path / "work"
    (data_dir / "mnist").mkdir(parents=True)
    cwd.mkdir()
    (cwd / "train.csv").write_text("a,y\n1,2\n")
    (cwd / "mnist").mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)

    got = resolve_data_paths({"source": "idx", "path": "mnist", "flatten": True}, data_dir)
    assert got == {"source": "idx", "path": str(data_dir / "mnist"), "flatten": True}  # --data-dir first
    assert resolve_data_paths({"source": "csv", "path": "train.csv"})["path"] == str(cwd / "train.csv")
    assert resolve_data_paths({"source": "csv", "path": "/abs/x.csv"})["path"] == "/abs/x.csv"
    assert resolve_data_paths({"source": "csv", "path": "missing.csv"})["path"] == "missing.csv"
    text = resolve_data_paths({"source": "text_tsv", "path": "mnist", "train": "train.tsv"}, data_dir)
    assert text["train"] == "train.tsv" and text["path"] == str(data_dir / "mnist")  # train is relative to path
    cache = resolve_data_paths({"source": "image_folder", "path": "mnist", "cache_dir": ".cache"})
    assert cache["cache_dir"] == str(cwd / ".cache")
