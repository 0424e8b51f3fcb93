"""What ``image_folder`` does not read is said: folders beside the split folders (a test split named
``holdout/``), images outside any class folder, and folders nested in a class folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.config import DataConfig
from trainlab.data import DATA_SOURCES, load_dataset
from trainlab.errors import DataError

ACCEPTED = ("train/ (or training/), val/ (or valid/, validation/, dev/) and test/ (or testing/), in any case")


def save_image(file: Path, seed: int = 0) -> None:
    from PIL import Image

    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(file)


def tree(root: Path, *folders: str, per_class: int = 3) -> None:
    """``folder/cat`` and ``folder/dog`` with ``per_class`` PNGs each, for each of ``folders``."""
    for f, folder in enumerate(folders):
        for c, name in enumerate(("cat", "dog")):
            for i in range(per_class):
                save_image(root / folder / name / f"{i}.png", seed=100 * f + 10 * c + i)


def build(root: Path, **options):
    return DATA_SOURCES.build({"name": "image_folder", "path": str(root), "workers": 0, **options})


def warnings_of(capsys) -> list[str]:
    lines = capsys.readouterr().err.splitlines()
    assert all(line.startswith("warning: ") for line in lines), lines
    return lines


@pytest.mark.parametrize("other", ["holdout", "eval", "Holdout_set"])
def test_a_test_folder_named_otherwise_is_warned_of_not_silently_skipped(tmp_path, capsys, other):
    """train/ + holdout/: exit 0, nothing on stderr, holdout never read and the test set cut from train."""
    tree(tmp_path, "train", other)
    raw = build(tmp_path)
    assert raw.x_train.shape[0] == 6 and raw.x_test is None  # which folders are read is unchanged
    assert warnings_of(capsys) == [
        f"warning: {tmp_path}: {other}/ beside the split folders are not read; image_folder reads only the split "
        f"folders {ACCEPTED}, each holding <class>/ folders (without a test split, test_fraction of train is held "
        f"out); rename {other}/ to test/ (or val/) to read it as that split"]


def test_images_beside_the_split_folders_are_warned_of(tmp_path, capsys):
    tree(tmp_path, "train", "test")
    for name in ("b.png", "a.JPG"):
        save_image(tmp_path / name)
    (tmp_path / "README.txt").write_text("not an image: no warning")
    raw = build(tmp_path)
    assert (raw.x_train.shape[0], raw.x_test.shape[0]) == (6, 6)
    assert warnings_of(capsys) == [
        f"warning: {tmp_path}: 2 image file(s) (a.JPG, b.png) beside the split folders are not read; image_folder "
        f"reads only the split folders {ACCEPTED}, each holding <class>/ folders"]


@pytest.mark.parametrize("where", ["", "train", "test", "val"])
def test_images_outside_any_class_folder_are_warned_of(tmp_path, capsys, where):
    """Beside the class folders at the top of data.path (no split folders) as in train/, val/ and test/."""
    splits = ("",) if not where else ("train", "val", "test")
    tree(tmp_path, *splits)
    for i in range(5):
        save_image(tmp_path / where / f"stray{i}.png")
    raw = build(tmp_path)
    assert raw.x_train.shape[0] == 6
    assert warnings_of(capsys) == [
        f"warning: 5 image file(s) lie directly in {tmp_path / where if where else tmp_path} (stray0.png, stray1.png, "
        "stray2.png, ...), outside any class folder: they are not read; move each into its class folder"]


def test_a_clean_tree_hidden_entries_and_the_cache_dir_give_no_warning(tmp_path, capsys):
    tree(tmp_path, "train", "Valid", "testing")
    (tmp_path / ".DS_Store").write_text("x")
    save_image(tmp_path / "__MACOSX" / "cat" / "._0.png")
    save_image(tmp_path / ".thumbs" / "0.png")
    config = DataConfig(source="image_folder", path=str(tmp_path), cache_dir=str(tmp_path / "cache"), workers=0)
    for _ in range(2):  # the second run finds the cache folder the first wrote beside train/
        data = load_dataset(config)
        assert (len(data.train), len(data.val), len(data.test)) == (6, 6, 6)
    assert (tmp_path / "cache").is_dir()
    assert capsys.readouterr().err == ""


def test_a_former_runs_cache_folder_is_skipped_with_a_warning_not_refused(tmp_path, capsys):
    """A run with data.cache_dir inside data.path, then one without: the cache folder was a class 'cache'
    holding a .npz that was "not an image"; it is trainlab's own, known by its file names."""
    tree(tmp_path, ".")
    cached = build(tmp_path, cache_dir=str(tmp_path / "cache"))
    [cache_file] = (tmp_path / "cache").iterdir()
    assert capsys.readouterr().err == ""
    data = build(tmp_path)
    assert data.class_names == cached.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(data.x_train, cached.x_train)
    assert capsys.readouterr().err == (f"warning: {tmp_path / 'cache'} holds only trainlab's image cache (a former "
                                       "run's data.cache_dir), no images: it is not read as a class folder (set "
                                       "data.cache_dir to it to reuse the cache, or remove it)\n")
    cache_file.rename(tmp_path / "cat" / cache_file.name)  # a cache_dir that was a class folder: said what it is
    (tmp_path / "cache").rmdir()
    with pytest.raises(DataError) as err:
        build(tmp_path)
    assert str(err.value) == (f"class folder {tmp_path / 'cat'} contains {cache_file.name}, trainlab's image cache "
                              "(a former data.cache_dir here), which is not an image; move it out, and keep cache_dir "
                              "outside the class folders")


def test_predict_skips_a_cache_folder_saying_what_it_is(tmp_path, capsys):
    from trainlab.data.predict_media import read_images

    save_image(tmp_path / "0.png")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "image_folder-026610cd03ad08bb.npz").write_bytes(b"PK")
    images, names = read_images(tmp_path, {"mode": "RGB"}, (3, 4, 4))
    assert names == ["0.png"]
    assert capsys.readouterr().err == (f"warning: predict skips {tmp_path / 'cache'}: it holds only trainlab's image "
                                       "cache (data.cache_dir), no images\n")


def test_warnings_wait_for_a_good_tree(tmp_path, capsys):
    """A tree refused with an error gives that one line only, not warnings before it."""
    tree(tmp_path, "train", "holdout")
    save_image(tmp_path / "stray.png")
    save_image(tmp_path / "test" / "yak" / "0.png")
    with pytest.raises(DataError, match="test class folder .* has no counterpart"):
        build(tmp_path)
    assert capsys.readouterr().err == ""


def test_a_nested_folder_is_called_a_folder(tmp_path):
    """The error said 'contains sub, which is not a .png/.jpg/.jpeg image file': sub is a folder."""
    tree(tmp_path, "train", "test")
    save_image(tmp_path / "train" / "cat" / "sub" / "9.png")
    with pytest.raises(DataError) as err:
        build(tmp_path)
    folder = tmp_path / "train" / "cat"
    assert str(err.value) == (f"class folder {folder} contains the folder sub/; a class folder holds .png/.jpg/.jpeg "
                              f"images and nested folders are not read: move its images up into {folder} or move "
                              "it out")


def test_a_file_that_is_no_image_in_a_class_folder_is_skipped_with_one_warning(tmp_path, capsys):
    """User trial: a notes.txt in a class folder stopped training (exit 3) where predict skips such files with a
    warning and torchvision's ImageFolder and Keras skip them; now training skips them too, saying which."""
    plain, tmp_path = tmp_path / "plain", tmp_path / "with_others"
    for root in (plain, tmp_path):
        tree(root, "train", "test")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("shot in 2019")
    (tmp_path / "test" / "dog" / "9.webp").write_bytes(b"RIFF")
    data = build(tmp_path)
    capsys.readouterr()
    np.testing.assert_array_equal(data.x_train, build(plain).x_train)  # the same images, nothing else read
    assert capsys.readouterr().err == ""
    build(tmp_path)
    notes, webp = Path("train") / "cat" / "notes.txt", Path("test") / "dog" / "9.webp"
    assert capsys.readouterr().err == (f"warning: 2 files in the class folders of {tmp_path} are not .png/.jpg/.jpeg "
                                       f"images and are not read ({notes}, {webp})\n")
    for image in (tmp_path / "train" / "cat").glob("*.png"):
        image.unlink()
    with pytest.raises(DataError) as err:  # a class folder of other files alone: no images, which it names
        build(tmp_path)
    assert str(err.value) == (f"class folder {tmp_path / 'train' / 'cat'} has no images (expected *.png, *.jpg or "
                              "*.jpeg) (it holds 1 other file: notes.txt)")


def test_split_folders_named_otherwise_are_told_the_accepted_names(tmp_path):
    """Kaggle's training_set/ and test_set/ are read as class folders holding folders: the error says how the
    split folders are named."""
    tree(tmp_path, "training_set", "test_set")
    with pytest.raises(DataError) as err:
        build(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"class folder {tmp_path / 'test_set'} contains the folder cat/;")
    assert message.endswith(f"; if test_set/ is a split of class folders, name the split folders {ACCEPTED}")


def test_a_test_folder_without_class_folders_says_its_images_have_no_label(tmp_path):
    tree(tmp_path, "train")
    for i in range(4):
        save_image(tmp_path / "test" / f"{i}.jpg")
    with pytest.raises(DataError) as err:
        build(tmp_path)
    assert str(err.value) == (
        f"no class folders in {tmp_path / 'test'} (expected {tmp_path / 'test'}/<class>/*.png or *.jpg); its 4 "
        "image file(s) (0.jpg, 1.jpg, 2.jpg, ...) lie in no class folder, so they have no label: put each into its "
        "<class>/ folder (a set without labels, such as Kaggle's test/, cannot be scored: move it out of "
        "data.path; trainlab predict reads it)")


def test_a_test_class_folder_differing_in_case_asks_did_you_mean(tmp_path):
    """test/Cat beside training's cat/: the error listed the classes but not the near miss."""
    tree(tmp_path, "train", "test")
    (tmp_path / "test" / "cat").rename(tmp_path / "test" / "Cat")
    with pytest.raises(DataError) as error:
        build(tmp_path)
    assert str(error.value) == (f"test class folder {tmp_path / 'test' / 'Cat'} has no counterpart in the training "
                                "classes (cat, dog); did you mean 'cat'?")


def test_training_class_folders_differing_only_in_case_are_warned_of(tmp_path, capsys):
    """train/Cat beside train/cat silently became a class of its own."""
    tree(tmp_path, "train", "test")
    for i in range(2):
        save_image(tmp_path / "train" / "Cat" / f"{i}.png", seed=50 + i)
    raw = build(tmp_path)
    assert raw.class_names == ["Cat", "cat", "dog"]  # still two classes: the data decides, the warning says it
    assert warnings_of(capsys) == [
        f"warning: {tmp_path / 'train'}: the class folders Cat/ and cat/ differ only in letter case, so they are "
        "two classes; move the images of one into the other if they are one class"]
