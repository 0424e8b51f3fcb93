"""A damaged cache file never stops a run: image_folder's ``data.cache_dir`` and the generated-dataset cache
(MNIST-1D) read their files by one rule (:func:`trainlab.data.cache.read_entry`). A file cut short, with a byte
changed, a member missing, or arrays of another shape or dtype is one warning naming it; the data is made
again and the file rewritten, so the next run reads it. And a new image cache deletes the file it replaces.

The reference for the decoded pixels is Pillow itself (``np.asarray(Image.open(file))``), not trainlab.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.cli import main
from trainlab.data import DATA_SOURCES, cache
from trainlab.data import images as images_module
from trainlab.errors import ConfigError

CLASSES = ("cat", "dog")


def image_tree(root: Path) -> dict[str, list[Path]]:
    """train/ and test/ with 3 RGB PNGs of 4 x 5 per class; the files of each split, in the order read
    (class folders sorted, then file names)."""
    from PIL import Image

    files: dict[str, list[Path]] = {"train": [], "test": []}
    rng = np.random.default_rng(0)
    for split in files:
        for name in CLASSES:
            for i in range(3):
                file = root / split / name / f"{i}.png"
                file.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)).save(file)
                files[split].append(file)
    return files


def pillow_pixels(files: list[Path]) -> np.ndarray:
    """The reference: each file as Pillow decodes it, (N, C, H, W) uint8."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(file).convert("RGB")).transpose(2, 0, 1) for file in files])


def build(root: Path, cache_dir: Path, **options):
    return DATA_SOURCES.build({"name": "image_folder", "path": str(root), "cache_dir": str(cache_dir),
                               "workers": 0, **options})


def cut_short(file: Path) -> str:
    file.write_bytes(file.read_bytes()[:file.stat().st_size // 2])
    return "File is not a zip file"


def byte_changed(file: Path) -> str:
    data = bytearray(file.read_bytes())
    data[200] ^= 0xFF  # inside the first member's array bytes: its CRC-32 no longer matches
    file.write_bytes(bytes(data))
    return "Bad CRC-32 for file 'train.npy'"


def member_missing(file: Path) -> str:
    with np.load(file) as archive:
        kept = {name: archive[name] for name in archive.files if name != "test"}
    np.savez(file, **kept)
    return "test is not a file in the archive"


def wrong_shape(file: Path) -> str:
    with np.load(file) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["train"] = arrays["train"][:, :, :2]  # 2 rows of pixels where the images have 4
    np.savez(file, **arrays)
    return "its train images are uint8 (6, 3, 2, 5); expected uint8 (6, 3, 4, 5)"


def wrong_dtype(file: Path) -> str:
    with np.load(file) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["test"] = arrays["test"].astype(np.float32)
    np.savez(file, **arrays)
    return "its test images are float32 (6, 3, 4, 5); expected uint8 (6, 3, 4, 5)"


def emptied(file: Path) -> str:
    file.write_bytes(b"")
    return "No data left in file"


@pytest.mark.parametrize("damage", [cut_short, byte_changed, member_missing, wrong_shape, wrong_dtype, emptied])
def test_a_damaged_image_cache_is_one_warning_decoded_again_and_rewritten(tmp_path, capsys, monkeypatch, damage):
    files = image_tree(tmp_path / "imgs")
    folder = tmp_path / "cache"
    build(tmp_path / "imgs", folder)
    written, = folder.glob("*.npz")
    capsys.readouterr()
    why = damage(written)

    raw = build(tmp_path / "imgs", folder)

    assert capsys.readouterr().err == (f"warning: cache file {written} is damaged ({why}), so it is not used: the "
                                       "images are decoded again, and the file is rewritten\n")
    np.testing.assert_array_equal(raw.x_train, pillow_pixels(files["train"]))
    np.testing.assert_array_equal(raw.x_test, pillow_pixels(files["test"]))
    assert [p.name for p in folder.iterdir()] == [written.name]  # rewritten in place, no temporary left

    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache was rewritten")

    monkeypatch.setattr(images_module, "decode_images", refuse)
    again = build(tmp_path / "imgs", folder)  # the next run reads the rewritten file, silently
    assert capsys.readouterr().err == ""
    np.testing.assert_array_equal(again.x_train, raw.x_train)
    np.testing.assert_array_equal(again.x_test, raw.x_test)


def test_a_cut_cache_file_does_not_stop_trainlab_train(tmp_path, write_config, capsys):
    """The report's case: `truncate -s 6000` on the cache file, then every run died with exit 2 on BadZipFile."""
    image_tree(tmp_path / "imgs")
    config = write_config({"name": "img", "seed": 0,
                           "data": {"source": "image_folder", "path": str(tmp_path / "imgs"), "workers": 0,
                                    "cache_dir": str(tmp_path / "cache"), "val_fraction": 0.2},
                           "model": {"name": "linear"},
                           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                        "batch_size": 4, "epochs": 1},
                           "output": {"progress": "off"}})
    assert main(["train", str(config), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    written, = (tmp_path / "cache").glob("*.npz")
    with open(written, "r+b") as handle:
        handle.truncate(600)
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    warning, = [line for line in capsys.readouterr().err.splitlines() if "cache file" in line]
    assert warning.startswith(f"warning: cache file {written} is damaged (File is not a zip file)")
    assert main(["train", str(config), "--out", str(tmp_path / "c"), "--quiet"]) == 0
    assert "cache file" not in capsys.readouterr().err  # rewritten by run b


def test_a_damaged_generated_dataset_entry_is_one_warning_generated_again_and_rewritten(tmp_path, monkeypatch,
                                                                                       capsys):
    """The MNIST-1D cache (:func:`trainlab.data.cache.cached`) by the same rule, and its ``check``."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    made = []

    def generate() -> dict[str, np.ndarray]:
        made.append(1)
        return {"x": np.arange(12.0).reshape(4, 3), "y": np.array([0, 1, 0, 1])}

    first = cache.cached("toy", {"n": 4}, generate)
    file, = tmp_path.glob("toy-*.npz")
    byte_changed(file)
    again = cache.cached("toy", {"n": 4}, generate)
    assert capsys.readouterr().err.startswith(f"warning: cache file {file} is damaged (Bad CRC-32 for file ")
    assert len(made) == 2 and all(np.array_equal(first[k], again[k]) for k in first)
    assert cache.cached("toy", {"n": 4}, generate)["y"].tolist() == [0, 1, 0, 1]
    assert len(made) == 2 and capsys.readouterr().err == ""  # read back from the rewritten entry

    def rows_agree(arrays: dict[str, np.ndarray]) -> str | None:
        return None if len(arrays["x"]) == len(arrays["y"]) else "x and y differ in rows"

    np.savez(file, x=np.zeros((3, 3)), y=np.zeros(4))
    cache.cached("toy", {"n": 4}, generate, check=rows_agree)
    assert capsys.readouterr().err == (f"warning: cache file {file} is damaged (x and y differ in rows), so it is "
                                       "not used: the toy data set is generated again, and the file is rewritten\n")
    assert len(made) == 3


def test_a_missing_cache_file_is_silent(tmp_path, capsys):
    assert cache.read_entry(tmp_path / "none.npz", None, None, "made again") is None
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- files replaced, and kept


def test_a_new_image_cache_deletes_only_the_file_it_replaces(tmp_path):
    """A changed image is a new key; the file of the images as they were is deleted. Files of another folder,
    another data.size, or written before the source was recorded, are kept."""
    image_tree(tmp_path / "imgs")
    image_tree(tmp_path / "other")
    folder = tmp_path / "cache"
    build(tmp_path / "imgs", folder)
    mine, = folder.glob("*.npz")
    build(tmp_path / "other", folder)
    build(tmp_path / "imgs", folder, size=2)
    kept = set(folder.glob("*.npz")) - {mine}
    legacy = folder / "image_folder-0123456789abcdef.npz"  # an earlier version's file: no source recorded
    np.savez(legacy, train=np.zeros((1, 3, 4, 5), np.uint8))

    from PIL import Image

    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(tmp_path / "imgs" / "train" / "cat" / "9.png")
    raw = build(tmp_path / "imgs", folder)

    assert len(raw.x_train) == 7
    files = set(folder.glob("*.npz"))
    new = files - kept - {legacy}
    assert len(kept) == 2 and kept | {legacy} <= files and len(new) == 1 and mine not in files


# ----------------------------------------------------------------------------- a cache_dir that is a file


def test_a_cache_dir_that_is_a_file_says_so(tmp_path):
    image_tree(tmp_path / "imgs")
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError) as error:
        build(tmp_path / "imgs", tmp_path / "afile")
    assert str(error.value) == (f"data.cache_dir {tmp_path / 'afile'} is a file, not a folder; set cache_dir to a "
                                "folder (it is made when missing), or remove cache_dir")
    with pytest.raises(ConfigError) as error:
        build(tmp_path / "imgs", tmp_path / "afile" / "sub")
    assert str(error.value).startswith(f"data.cache_dir {tmp_path / 'afile' / 'sub'} lies under "
                                       f"{tmp_path / 'afile'}, which is a file, not a folder")


def test_the_npz_members_the_damage_helpers_write_are_what_numpy_reads(tmp_path):
    """The helpers above damage what they say: a zip member removed is gone, a byte changed fails its CRC."""
    file = tmp_path / "a.npz"
    np.savez(file, train=np.zeros((6, 3, 4, 5), np.uint8), test=np.ones((6, 3, 4, 5), np.uint8))
    member_missing(file)
    assert zipfile.ZipFile(file).namelist() == ["train.npy"]
    np.savez(file, train=np.zeros((6, 3, 4, 5), np.uint8), test=np.ones((6, 3, 4, 5), np.uint8))
    byte_changed(file)
    with pytest.raises(zipfile.BadZipFile, match="Bad CRC-32 for file 'train.npy'"):
        zipfile.ZipFile(io.BytesIO(file.read_bytes())).read("train.npy")


def test_an_mnist1d_entry_missing_a_member_is_generated_again(tmp_path, monkeypatch, capsys):
    """The mnist1d source's check: a hand-edited entry without y_test failed with a KeyError in the source."""
    from trainlab.data.mnist1d_source import _key, mnist1d

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    first = mnist1d(num_samples=100, seed=3)
    file = cache.entry_path("mnist1d", _key(100, 3))
    with np.load(file) as entry:
        kept = {k: entry[k] for k in ("x", "y", "x_test")}
    np.savez(file, **kept)
    again = mnist1d(num_samples=100, seed=3)
    assert capsys.readouterr().err.startswith(f"warning: cache file {file} is damaged (no y_test in it)")
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_test, again.y_test)


def test_a_cache_file_of_other_bytes_is_named_no_npz_not_a_pickle_to_load(tmp_path, capsys):
    """Text in the cache file: numpy can only read it as a pickle, and its advice to load it with
    allow_pickle is not repeated (the cache is pickle-free)."""
    from trainlab.data.cache import read_entry

    file = tmp_path / "entry.npz"
    file.write_text("garbage")
    assert read_entry(file, None, None, "it is made again") is None
    err = capsys.readouterr().err
    assert err == (f"warning: cache file {file} is damaged (not an .npz archive), so it is not used: it is made "
                   "again, and the file is rewritten\n")
