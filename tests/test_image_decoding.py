"""``image_folder`` decodes images as a viewer shows them, in training and in ``trainlab predict`` alike:
EXIF orientation applied, transparency composited over white; and its folder listing names broken links,
skips the files Windows leaves, and reads class folder names in Unicode NFC.

References are computed here with NumPy (rotations, the alpha formula), not by the Pillow calls the
decoder makes."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.data import DATA_SOURCES
from trainlab.data.predict_media import read_images
from trainlab.errors import DataError

WHITE = 255


def build(root: Path, **options):
    return DATA_SOURCES.build({"name": "image_folder", "path": str(root), "workers": 0, **options})


def stored(height: int = 4, width: int = 6, seed: int = 0) -> np.ndarray:
    """A random RGB image (H, W, 3): every pixel different, so that any turn or flip shows."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(file: Path, array: np.ndarray, mode: str | None = None, **params) -> None:
    from PIL import Image

    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(file, **params)


def save_oriented(file: Path, array: np.ndarray, orientation: int, **params) -> None:
    """``array`` stored as it is, with the EXIF orientation tag ``orientation``."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    save(file, array, exif=exif.tobytes(), **params)


# the EXIF orientations (TIFF 6.0 / EXIF 2.3) as the picture a viewer shows, from the stored pixels
SHOWN = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: np.rot90(a, 2),
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda a: np.rot90(a, -1),  # turned 90 degrees clockwise (a phone held upright)
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),  # mirrored along the other diagonal
    8: lambda a: np.rot90(a, 1),  # turned 90 degrees counter-clockwise
}


# ----------------------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_exif_orientation_turns_the_image_as_a_viewer_shows_it(tmp_path, orientation):
    array = stored()
    save_oriented(tmp_path / "a" / "x.png", array, orientation)  # PNG: lossless, so pixels compare exactly
    save(tmp_path / "b" / "y.png", SHOWN[orientation](array).copy())  # the same picture, stored upright
    raw = build(tmp_path)
    expected = SHOWN[orientation](array)
    assert raw.x_train.shape[2:] == expected.shape[:2]  # 6x4 for the four turning by 90 degrees
    np.testing.assert_array_equal(raw.x_train[0].transpose(1, 2, 0), expected)
    np.testing.assert_array_equal(raw.x_train[0], raw.x_train[1])


def test_a_phone_jpeg_stored_sideways_is_read_upright_and_sized_upright(tmp_path):
    """A JPEG stored 8x16 (left half white) with tag 6 shows 16x8, top half white; its size is the shown one."""
    array = np.zeros((8, 16, 3), np.uint8)
    array[:, :8] = WHITE
    save_oriented(tmp_path / "a" / "portrait.jpg", array, 6, quality=95)
    save(tmp_path / "b" / "upright.png", np.zeros((16, 8, 3), np.uint8))  # same shown size: no data.size needed
    raw = build(tmp_path)
    image = raw.x_train[0].transpose(1, 2, 0).astype(int)
    assert image.shape == (16, 8, 3)
    assert image[:7].min() > 240 and image[9:].max() < 15  # top white, bottom black (JPEG edges blur)


def test_the_first_images_size_is_its_upright_size(tmp_path):
    """Without data.size every image must have the first one's size: the first, tagged 6, shows 6x4. The
    message names the first image and says which number is the height (Pillow and `file` say W x H)."""
    save_oriented(tmp_path / "a" / "0.png", stored(4, 6), 6)
    save(tmp_path / "b" / "1.png", stored(4, 6, seed=1))  # stored 4x6 upright: another size than 6x4
    with pytest.raises(DataError) as err:
        build(tmp_path)
    assert str(err.value) == (f"image {tmp_path / 'b' / '1.png'} is 4 high x 6 wide but the first image "
                              f"({tmp_path / 'a' / '0.png'}) is 6 high x 4 wide; images differ in size: set "
                              "data.size: [height, width] to resize all images to one (e.g. data.size: [6, 4])")


def test_a_test_image_of_another_size_names_the_first_training_image(tmp_path):
    for split, size in (("train", (4, 6)), ("test", (5, 6))):
        save(tmp_path / split / "a" / "0.png", stored(*size))
    with pytest.raises(DataError, match=r"5 high x 6 wide but the first image \(.*train/a/0\.png\) is 4 high"):
        build(tmp_path)


@pytest.mark.parametrize("pillow_format, kind", [("GIF", "GIF"), ("WEBP", "WebP"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_another_format_named_as_a_jpeg_is_said_to_be_that_format(tmp_path, pillow_format, kind):
    """A GIF saved as .jpg: Pillow's 'cannot identify image file' does not say what it is nor what is read."""
    from PIL import Image

    save(tmp_path / "a" / "x.png", stored())
    (tmp_path / "b").mkdir()
    Image.fromarray(stored()).save(tmp_path / "b" / "fake.jpg", format=pillow_format)
    with pytest.raises(DataError) as err:
        build(tmp_path)
    assert str(err.value) == (f"cannot decode image {tmp_path / 'b' / 'fake.jpg'}: it is a {kind} image, though "
                              "named .jpg; trainlab reads only PNG and JPEG images: convert it to PNG or JPEG, or "
                              "remove it from the folder")
    with pytest.raises(DataError, match=f"it is a {kind} image, though named .jpg"):  # predict decodes alike
        read_images(tmp_path / "b" / "fake.jpg", {"mode": "RGB"}, (3, 4, 6))


def test_an_empty_or_unknown_file_says_so(tmp_path):
    save(tmp_path / "a" / "x.png", stored())
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: the file is empty \(0 bytes\); replace the file"):
        build(tmp_path)
    (tmp_path / "b" / "empty.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"cannot decode image .*empty\.png: cannot identify image file"):
        build(tmp_path)


def test_predict_decodes_as_training_does(tmp_path):
    """One decoder for both: predict's pixels of an oriented, transparent image equal training's."""
    array = stored(4, 6)
    save_oriented(tmp_path / "a" / "x.png", array, 8)
    rgba = np.dstack([stored(6, 4, seed=2), np.full((6, 4), 100, np.uint8)])
    save(tmp_path / "b" / "y.png", rgba, "RGBA")
    raw = build(tmp_path)
    images, names = read_images(tmp_path, {"mode": "RGB"}, (3, 6, 4))
    assert names == [os.path.join("a", "x.png"), os.path.join("b", "y.png")]
    np.testing.assert_array_equal(images, raw.x_train)
    np.testing.assert_array_equal(images[0].transpose(1, 2, 0), SHOWN[8](array))


def test_predict_names_a_missing_path_as_not_found_and_a_file_of_no_image_as_neither(tmp_path):
    with pytest.raises(DataError, match=r"^image file or folder of images not found: .*nope \(predict on an image "
                                        r"run reads a \.png/\.jpg/\.jpeg image or a folder of them\)$"):
        read_images(tmp_path / "nope", {"mode": "RGB"}, (3, 6, 4))
    (tmp_path / "new.csv").write_text("x\n1\n")
    with pytest.raises(DataError) as err:
        read_images(tmp_path / "new.csv", {"mode": "RGB"}, (3, 6, 4))
    assert str(err.value) == (f"predict on an image run reads a .png/.jpg/.jpeg image or a folder of them; "
                              f"{tmp_path / 'new.csv'} is neither: give an image file or the folder holding the images")


def test_predict_reads_one_image_file_as_a_folder_of_one(tmp_path):
    array = stored(4, 6)
    save_oriented(tmp_path / "new" / "r.PNG", array, 3)
    images, names = read_images(tmp_path / "new" / "r.PNG", {"mode": "RGB"}, (3, 4, 6))
    assert names == ["r.PNG"] and images.shape == (1, 3, 4, 6)
    np.testing.assert_array_equal(images[0].transpose(1, 2, 0), SHOWN[3](array))
    folder_images, _ = read_images(tmp_path / "new", {"mode": "RGB"}, (3, 4, 6))
    np.testing.assert_array_equal(images, folder_images)


def test_images_without_exif_decode_as_before(tmp_path):
    array = stored()
    save(tmp_path / "a" / "x.jpg", array, quality=90)
    save(tmp_path / "b" / "y.png", array)
    from PIL import Image

    with Image.open(tmp_path / "a" / "x.jpg") as jpeg:
        as_stored = np.asarray(jpeg.convert("RGB"))
    raw = build(tmp_path)
    np.testing.assert_array_equal(raw.x_train[0].transpose(1, 2, 0), as_stored)
    np.testing.assert_array_equal(raw.x_train[1].transpose(1, 2, 0), array)


# ----------------------------------------------------------------------------- transparency over white


def over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``a * colour + (1 - a) * 255``, ``a`` = alpha / 255, rounded: how a browser shows it on white."""
    a = alpha.astype(np.float64)[..., None] / 255
    return np.rint(a * colour + (1 - a) * WHITE).astype(np.int64)


def test_an_rgba_png_is_composited_over_white_not_its_hidden_colour(tmp_path):
    colour = stored(4, 6)
    alpha = np.array([[0, 255, 128, 64, 200, 0]] * 4, np.uint8)
    rgba = np.dstack([colour, alpha])
    rgba[alpha == 0, :3] = 0  # a logo's transparent area hides black
    save(tmp_path / "a" / "logo.png", rgba, "RGBA")
    save(tmp_path / "b" / "plain.png", colour)
    raw = build(tmp_path)
    got = raw.x_train[0].transpose(1, 2, 0).astype(np.int64)
    expected = over_white(rgba[..., :3], alpha)
    assert (got[alpha == 0] == WHITE).all()  # transparent: white, not the hidden black
    np.testing.assert_array_equal(got[alpha == 255], colour[alpha == 255])
    assert np.abs(got - expected).max() <= 1  # partly transparent: Pillow's integer rounding


def test_gray_alpha_palette_and_colour_key_transparency_are_over_white(tmp_path):
    from PIL import Image

    gray = np.full((4, 6), 90, np.uint8)
    alpha = np.array([[0, 255, 128, 0, 255, 64]] * 4, np.uint8)
    save(tmp_path / "a" / "la.png", np.dstack([gray, alpha]), "LA")
    palette = Image.fromarray(np.array([[0, 1, 2, 0, 1, 2]] * 4, np.uint8), "P")
    palette.putpalette([10, 20, 30, 200, 30, 30, 0, 0, 200] + [0] * 759)
    (tmp_path / "b").mkdir()
    palette.save(tmp_path / "b" / "p.png", transparency=0)  # palette entry 0 transparent
    key = np.zeros((4, 6, 3), np.uint8)
    key[:, 3:] = (40, 50, 60)
    save(tmp_path / "c" / "key.png", key, transparency=(0, 0, 0))  # colour key: black is transparent
    for mode in ("RGB", "L"):
        raw = build(tmp_path, mode=mode)
        la, p, keyed = (raw.x_train[i].transpose(1, 2, 0).astype(np.int64) for i in range(3))
        expected_la = over_white(np.dstack([gray] * 3), alpha)
        shown_p = np.array([[WHITE] * 3, [200, 30, 30], [0, 0, 200]])[np.array([[0, 1, 2, 0, 1, 2]] * 4)]
        shown_key = np.where(key.any(axis=2, keepdims=True), key, WHITE)
        if mode == "L":  # grayscale of the composited RGB: ITU-R 601 luma, as Pillow's convert("L")
            luma = np.array([299, 587, 114])
            expected_la, shown_p, shown_key = ((x * luma).sum(axis=2, keepdims=True) / 1000
                                               for x in (expected_la, shown_p, shown_key))
        assert np.abs(la - expected_la).max() <= 1, mode
        assert np.abs(p - shown_p).max() <= 1, mode
        assert np.abs(keyed - shown_key).max() <= 1, mode


# ----------------------------------------------------------------------------- folder listing


def test_a_broken_link_is_called_a_broken_link(tmp_path):
    save(tmp_path / "a" / "x.png", stored())
    save(tmp_path / "b" / "y.png", stored())
    (tmp_path / "a" / "gone.png").symlink_to(tmp_path / "nowhere" / "gone.png")
    with pytest.raises(DataError) as err:
        build(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert f"contains gone.png, a broken symbolic link (its target {tmp_path / 'nowhere' / 'gone.png'} " \
           "does not exist)" in message
    assert "not a .png" not in message


def test_predict_follows_linked_folders_and_files_as_training_does(tmp_path, capsys):
    """Python 3.11's rglob does not follow a linked folder: its 40 images were left out without a word."""
    elsewhere = tmp_path / "elsewhere"
    save(elsewhere / "green" / "0.png", stored(seed=1))
    save(elsewhere / "green" / "1.png", stored(seed=2))
    save(elsewhere / "red.png", stored(seed=3))
    new = tmp_path / "new"
    save(new / "a.png", stored())
    (new / "linkdir").symlink_to(elsewhere / "green")
    (new / "linkfile.png").symlink_to(elsewhere / "red.png")
    images, names = read_images(new, {"mode": "RGB"}, (3, 4, 6))
    assert names == ["a.png", os.path.join("linkdir", "0.png"), os.path.join("linkdir", "1.png"), "linkfile.png"]
    np.testing.assert_array_equal(images[1].transpose(1, 2, 0), stored(seed=1))
    assert capsys.readouterr().err == ""


def test_predict_refuses_a_broken_link_named_as_an_image_in_one_line(tmp_path):
    save(tmp_path / "a.png", stored())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(DataError) as err:
        read_images(tmp_path, {"mode": "RGB"}, (3, 4, 6))
    assert str(err.value) == (f"{tmp_path / 'sub'} contains gone.png, a broken symbolic link (its target "
                              f"{tmp_path / 'nowhere.png'} does not exist); restore its target or remove the link")


def test_predict_does_not_follow_a_link_loop(tmp_path, capsys):
    save(tmp_path / "sub" / "a.png", stored())
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # sub/up/sub/up/... for ever
    (tmp_path / "notes.lnk").symlink_to(tmp_path / "gone.txt")  # broken, no image name: a skipped file, said
    images, names = read_images(tmp_path, {"mode": "RGB"}, (3, 4, 6))
    assert names == [os.path.join("sub", "a.png")]
    err = capsys.readouterr().err
    assert f"warning: predict does not follow {tmp_path / 'sub' / 'up'}, a symbolic link to {tmp_path}, which " \
           "holds it (a loop)" in err
    assert "predict skips 1 file(s)" in err and "(e.g. notes.lnk)" in err


@pytest.mark.parametrize("name", ["Thumbs.db", "desktop.ini", "THUMBS.DB", "Desktop.ini", "ehthumbs.db"])
def test_the_files_windows_leaves_are_skipped_like_ds_store(tmp_path, capsys, name):
    for folder in ("a", "b"):
        save(tmp_path / folder / "x.png", stored(seed=len(folder)))
    (tmp_path / "a" / name).write_bytes(b"\xd0\xcf\x11\xe0 not an image")
    raw = build(tmp_path)
    assert raw.x_train.shape[0] == 2 and raw.class_names == ["a", "b"]
    assert capsys.readouterr().err == ""


NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")


def test_class_folders_differing_only_by_unicode_normalisation_are_one_class(tmp_path):
    """macOS writes café/ decomposed (NFD); a test split copied from a Mac matches a training split in NFC."""
    assert NFC != NFD
    for split, cafe in (("train", NFC), ("test", NFD)):
        save(tmp_path / split / cafe / "x.png", stored(seed=1))
        save(tmp_path / split / "tea" / "x.png", stored(seed=2))
    raw = build(tmp_path)
    assert raw.class_names == [NFC, "tea"]
    np.testing.assert_array_equal(raw.y_test, [0, 1])


def test_classes_sort_the_same_whichever_normalisation_the_folders_have(tmp_path):
    """NFC sorts café after cafez (é > z), NFD before it (e < z): the classes follow NFC, on every system."""
    orders = []
    for cafe in (NFC, NFD):
        root = tmp_path / ("nfc" if cafe == NFC else "nfd")
        save(root / cafe / "x.png", stored(seed=1))
        save(root / "cafez" / "x.png", stored(seed=2))
        raw = build(root)
        orders.append((raw.class_names, raw.y_train.tolist(), raw.x_train[0].tolist()))
    assert orders[0] == orders[1]
    assert orders[0][0] == ["cafez", NFC]


def test_two_folders_of_one_split_differing_only_by_normalisation_are_refused(tmp_path):
    save(tmp_path / NFC / "x.png", stored(seed=1))
    save(tmp_path / NFD / "y.png", stored(seed=2))
    with pytest.raises(DataError) as err:
        build(tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert f"holds two class folders named '{NFC}' that differ only by Unicode normalisation" in message


# ----------------------------------------------------------------------------- decompression bombs


def grey_png(width: int, height: int, rows: int | None = None) -> bytes:
    """An 8-bit grey PNG declaring width x height pixels (chunk layout and CRC-32 per the PNG spec), holding
    ``rows`` rows of zero pixels (default all ``height``: a whole image), small on disk whatever its size."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = zlib.compress(bytes((width + 1) * (height if rows is None else rows)), 9)  # a row: filter byte 0, pixels
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_images_past_pillows_warning_limit_are_decoded_with_one_warning(tmp_path, monkeypatch, capsys):
    """Pillow warns between MAX_IMAGE_PIXELS and twice that, and refuses beyond; trainlab refused both. Here
    the limit is lowered to 100 pixels, so that small images stand for 89 M and 179 M pixels."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for name, (width, height) in {"a/0.png": (12, 10), "a/1.png": (12, 11), "b/0.png": (5, 5)}.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(grey_png(width, height))
    raw = build(tmp_path, size=[4, 4], mode="L")
    assert raw.x_train.shape == (3, 1, 4, 4)
    assert capsys.readouterr().err == (
        f"warning: 2 images (the largest: {tmp_path / 'a' / '1.png'}, 132 pixels) have more than the 100 pixels "
        "above which Pillow warns of a possible decompression bomb; they are decoded whole (1 to 4 bytes of memory "
        "a pixel, before data.size resizes): downscale them below 100 pixels if not meant to be this large\n")

    (tmp_path / "b" / "1.png").write_bytes(grey_png(15, 15))  # 225 pixels: more than twice the limit
    with pytest.raises(DataError) as error:
        build(tmp_path, size=[4, 4], mode="L")
    assert str(error.value) == (f"image {tmp_path / 'b' / '1.png'} is too large to decode (a decompression bomb?): "
                                "225 pixels, more than the 200 pixels Pillow decodes; downscale it below 200 pixels "
                                "(data.size resizes only after decoding), or remove it from the folder")


def test_the_documented_limits_are_pillows(tmp_path, capsys):
    """docs/data.md names 178,956,970 (refused) and 89,478,485 (warned) pixels; the report's 10000 x 9500 PNG
    (95 M pixels) was refused, and is decoded, with the warning (Pillow fills the rows this file lacks)."""
    from PIL import Image

    docs = (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    assert f"{2 * Image.MAX_IMAGE_PIXELS:,}" in docs and f"{Image.MAX_IMAGE_PIXELS:,}" in docs
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(grey_png(4, 4))
    (tmp_path / "a" / "big.png").write_bytes(grey_png(10000, 9500, rows=1))
    raw = build(tmp_path, size=[4, 4], mode="L")
    assert raw.x_train.shape == (3, 1, 4, 4)
    assert capsys.readouterr().err.startswith(f"warning: image {tmp_path / 'a' / 'big.png'} has 95,000,000 pixels, "
                                              "more than the 89,478,485 pixels above which Pillow warns")


@pytest.mark.parametrize("where", ["a class folder", "the data folder", "a predict folder"])
def test_a_loop_of_symbolic_links_is_a_broken_link_not_exit_5(tmp_path, where):
    """A user trial: a link to itself in a class folder (loop.png -> loop.png) was 'cannot read or write ... Too
    many levels of symbolic links', exit 5 (a disk's failure), not the broken link it is (exit 3); two links to
    each other beside the class folders too."""
    from trainlab.data.predict_media import image_files

    root = tmp_path / "d"
    for name in ("a", "b"):
        for i in range(2):
            save(root / name / f"{i}.png", stored(seed=i))
    folder = root if where == "the data folder" else root / "a"
    if where == "the data folder":
        (folder / "ring").symlink_to("ring2")
        (folder / "ring2").symlink_to("ring")
        said = "contains ring, a broken symbolic link (its target ring2 leads back to a link before it: a loop)"
    else:
        (folder / "loop.png").symlink_to("loop.png")
        said = "contains loop.png, a broken symbolic link (its target loop.png leads back to a link before it: a loop)"
    with pytest.raises(DataError) as caught:
        image_files(folder) if where == "a predict folder" else build(root)
    assert said in str(caught.value)
