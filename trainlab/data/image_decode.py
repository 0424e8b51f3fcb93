"""Decoding one image file as a viewer shows it, into uint8 pixels; training (``image_folder``,
:mod:`trainlab.data.images`) and ``trainlab predict`` (:mod:`trainlab.data.predict_media`) both decode
through here, so a model sees the same pixels in both.

Contract of :func:`decode_images`: every file as uint8 (N, C, H, W) in ``mode`` (:data:`MODES`: ``RGB`` or
``L``), read only by Pillow's PNG and JPEG decoders (:data:`PIL_FORMATS`), turned upright by its EXIF
orientation (phone photos store the pixels sideways), with transparent pixels composited over white, a 16-bit
image scaled to 8 bits, and resized bilinearly to (H, W) when ``resize`` (else every image must be that
size, upright: another is refused naming both images, as ``H high x W wide``). Any failure, a decompression
bomb included (more than ``2 * Image.MAX_IMAGE_PIXELS``, ~179 M pixels, as Pillow refuses; from ~89 M, where
Pillow only warns, an image is decoded, with one warning), is a one-line DataError naming the file, and the
format it is when its first bytes tell (a GIF named ``.jpg``: :data:`MAGIC_NUMBERS`). Above
:data:`POOL_MIN_FILES` files the work runs in a pool of worker processes (Pillow holds the GIL, so threads
do not help), in chunks written straight into one preallocated array.

A change to the pixels decoded here must bump :data:`trainlab.data.images.CACHE_VERSION`, which keys the
cache of decoded arrays.
"""

from __future__ import annotations

import math
import multiprocessing
import re
import signal
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.errors import DataError
from trainlab.notices import warn
from trainlab.signal_mask import release_stop_signals, stop_signals_held

PIL_FORMATS = ("JPEG", "PNG")  # the only decoders tried: faster to identify, and nothing unexpected is parsed
MODES = {"RGB": 3, "L": 1}  # Pillow mode -> channels
POOL_MIN_FILES = 512  # below this a worker pool costs more than it saves
ORIENTATION_TAG = 0x0112  # EXIF: how the stored pixels turn for display; 1 (or absent) is as stored
# the keys of Pillow's Image.info that its getexif() reads an orientation from: EXIF (JPEG's APP1, PNG's eXIf, an
# ImageMagick PNG text chunk) and XMP
ORIENTATION_SOURCES = frozenset({"exif", "Raw profile type exif", "xmp", "XML:com.adobe.xmp"})
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # the four that turn the image by 90 degrees: displayed W x H is stored H x W
UNDECODABLE_FIX = "replace the file with a whole image, or remove it from the folder"
# other image formats by their first bytes (offset, bytes), named when Pillow's PNG and JPEG decoders refuse a
# file: a GIF or WebP saved under a .jpg name, a phone's HEIC renamed
MAGIC_NUMBERS = (
    ("GIF", ((0, b"GIF87a"),)), ("GIF", ((0, b"GIF89a"),)), ("BMP", ((0, b"BM"),)),
    ("WebP", ((0, b"RIFF"), (8, b"WEBP"))), ("TIFF", ((0, b"II*\x00"),)), ("TIFF", ((0, b"MM\x00*"),)),
    ("HEIC", ((4, b"ftypheic"),)), ("HEIC", ((4, b"ftypheix"),)), ("HEIF", ((4, b"ftypmif1"),)),
    ("AVIF", ((4, b"ftypavif"),)),
)


def _too_large(file: Path, exc: Exception) -> str:
    """The message refusing an image of more than ``2 * Image.MAX_IMAGE_PIXELS`` pixels (Pillow's
    DecompressionBombError ``exc``): its pixels, the limit, and the fix."""
    from PIL import Image

    counted = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(counted.group(1)):,} pixels, " if counted else ""
    limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    return (f"image {file} is too large to decode (a decompression bomb?): {pixels}more than the {limit:,} pixels "
            f"Pillow decodes; downscale it below {limit:,} pixels (data.size resizes only after decoding), or "
            "remove it from the folder")


@contextmanager
def _opened(file: Path) -> Iterator[tuple[Any, int]]:
    """``Image.open`` and the image's EXIF orientation (:func:`_orientation`), with every failure, a
    decompression bomb included, as one-line DataError.

    Pillow refuses images over ``2 * Image.MAX_IMAGE_PIXELS`` (~179 M pixels) with DecompressionBombError,
    refused here before the pixels are decoded (:func:`_too_large`); its DecompressionBombWarning for
    images between 1x and 2x (~89 M) is silenced here, and said once per decoding, by :func:`decode_images`.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file, formats=PIL_FORMATS)
            try:
                orientation = _orientation(image)
            except BaseException:
                image.close()
                raise
    except Image.DecompressionBombError as exc:
        raise DataError(_too_large(file, exc)) from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow: UnidentifiedImageError, truncated files
        raise DataError(_undecodable(file, exc)) from None
    with image:
        yield image, orientation


def _undecodable(file: Path, exc: Exception) -> str:
    """The message for a file Pillow's PNG and JPEG decoders refuse: what the file is when its first bytes
    tell (:data:`MAGIC_NUMBERS`; an empty file), else Pillow's reason."""
    try:
        with open(file, "rb") as handle:
            head = handle.read(16)
    except OSError:
        head = None
    if head == b"":
        return f"cannot decode image {file}: the file is empty (0 bytes); {UNDECODABLE_FIX}"
    kind = next((name for name, marks in MAGIC_NUMBERS
                 if head and all(head[at:at + len(mark)] == mark for at, mark in marks)), None)
    if kind is None:
        return f"cannot decode image {file}: {exc}; {UNDECODABLE_FIX}"
    return (f"cannot decode image {file}: it is a {kind} image, though named {file.suffix or 'without a suffix'}; "
            f"trainlab reads only PNG and JPEG images: convert it to PNG or JPEG, or remove it from the folder")


def _size_text(height: int, width: int) -> str:
    """``12 high x 20 wide``: sizes in messages, unambiguous (Pillow and ``file`` say width x height)."""
    return f"{height} high x {width} wide"


def _decode(file: Path, size: tuple[int, int], mode: str, resize: bool,
            first: Path | None = None) -> tuple[np.ndarray, int]:
    """One image as uint8 (H, W, C) in ``mode``, as a viewer shows it (:func:`_upright`, :func:`_on_white`),
    resized bilinearly to ``size`` = (H, W) when ``resize``, else refused unless that size (``first``: the
    image whose size it is, named in the message), and the pixels the file stores (W x H, before resizing).
    Training and ``trainlab predict`` both decode through here."""
    from PIL import Image

    with _opened(file) as (image, orientation):
        stored = image.size[0] * image.size[1]
        shown = _shown_size(image, orientation)  # (W, H) upright
        if shown != (size[1], size[0]) and not resize:
            which = f"the first image ({first})" if first is not None else "the first image"
            raise DataError(f"image {file} is {_size_text(shown[1], shown[0])} but {which} is "
                            f"{_size_text(*size)}; images differ in size: set data.size: [height, width] to "
                            f"resize all images to one (e.g. data.size: [{size[0]}, {size[1]}])")
        try:
            image = _upright(image, orientation)
            image = _on_white(_eight_bit(image))
            image = image.convert(mode) if image.mode != mode else image
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
        except (OSError, SyntaxError, ValueError) as exc:  # Pillow: truncated or corrupt pixel data
            raise DataError(_undecodable(file, exc)) from None
    return pixels.reshape(size[0], size[1], -1), stored


def _orientation(image: Any) -> int:
    """The image's EXIF orientation (1..8), from the EXIF block or XMP that Pillow found in the file's header
    (a JPEG's pixels are not decoded for it); 1 when it has neither, as CIFAR's and ImageNet's JPEGs, at no
    cost: EXIF is parsed only where it is present."""
    if ORIENTATION_SOURCES.isdisjoint(image.info):
        return 1
    value = image.getexif().get(ORIENTATION_TAG, 1)  # EXIF that Pillow cannot parse: none, shown as stored
    return value if isinstance(value, int) and 1 <= value <= 8 else 1  # a malformed tag: as stored, as viewers do


def _shown_size(image: Any, orientation: int) -> tuple[int, int]:
    """(W, H) of ``image`` as displayed: stored W and H swapped by an orientation that turns it 90 degrees."""
    width, height = image.size
    return (height, width) if orientation in SWAPPING_ORIENTATIONS else (width, height)


def _upright(image: Any, orientation: int) -> Any:
    """The image turned as its EXIF orientation says (a phone's portrait photo is stored landscape, tag 6),
    as viewers and browsers show it: Pillow's ``exif_transpose``, only when the tag says to turn (it
    copies the image even when nothing turns)."""
    if orientation == 1:
        return image
    from PIL import ImageOps

    return ImageOps.exif_transpose(image)


def _on_white(image: Any) -> Any:
    """An image with transparency (RGBA, LA, PA, or a palette or colour key with a transparent entry) as a
    browser shows it on a white page: ``out = a * colour + (1 - a) * 255`` per channel (``a`` = alpha /
    255), in RGB. Converting alone would keep the colour hidden under transparent pixels (often black).
    Other images are returned as they are."""
    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in image.info:
        return image
    from PIL import Image

    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _eight_bit(image: Any) -> Any:
    """A 16-bit grayscale PNG (Pillow mode ``I;16``, or ``I`` in older Pillow) as 8-bit ``L``: ``round(v / 257)``,
    so 0..65535 maps onto 0..255 (Pillow's ``convert`` would clip every value above 255 to 255).
    Other modes are returned as they are (8-bit, palette, RGBA, CMYK: ``convert`` handles them)."""
    from PIL import Image

    if not (image.mode == "I" or image.mode.startswith("I;16")):
        return image
    values = np.asarray(image).astype(np.int64).clip(0, 65535)
    return Image.fromarray(((values + 128) // 257).astype(np.uint8))  # 2-D uint8: mode L


def first_size(file: Path) -> tuple[int, int]:
    """(H, W) of ``file`` as displayed: the size every image must have when ``data.size`` is not set."""
    with _opened(file) as (image, orientation):
        width, height = _shown_size(image, orientation)
        return height, width


def _decode_chunk(files: list[Path], size: tuple[int, int], mode: str, resize: bool,
                  first: Path | None = None) -> tuple[np.ndarray, list[tuple[Path, int]]]:
    """Images (n, C, H, W), and the (file, pixels) of those larger than Pillow's ``MAX_IMAGE_PIXELS`` (for
    :func:`_warn_large`); run in a worker process."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    out = np.empty((len(files), MODES[mode], *size), dtype=np.uint8)
    large = []
    for i, file in enumerate(files):
        pixels, stored = _decode(file, size, mode, resize, first)
        out[i] = pixels.transpose(2, 0, 1)
        if limit is not None and stored > limit:
            large.append((file, stored))
    return out, large


def _warn_large(large: list[tuple[Path, int]]) -> None:
    """One warning for the images decoded although larger than Pillow's ``MAX_IMAGE_PIXELS`` (~89 M pixels,
    where it warns of a possible decompression bomb; twice that is refused, :func:`_too_large`): each is
    decoded whole, in 1 to 4 bytes a pixel, whatever ``data.size``."""
    if not large:
        return
    from PIL import Image

    file, pixels = max(large, key=lambda item: item[1])
    limit = Image.MAX_IMAGE_PIXELS or 0
    if len(large) == 1:
        which, they, them = f"image {file} has {pixels:,} pixels, more than", "it is", "it"
    else:
        which, they, them = (f"{len(large)} images (the largest: {file}, {pixels:,} pixels) have more than",
                             "they are", "them")
    warn(f"{which} the {limit:,} pixels above which Pillow warns of a possible decompression bomb; {they} decoded "
         f"whole (1 to 4 bytes of memory a pixel, before data.size resizes): downscale {them} below {limit:,} "
         "pixels if not meant to be this large")


def _quiet_worker() -> None:
    """A decoding worker dies at once and silently on Ctrl-C or SIGTERM: forked, it inherited the CLI's
    handlers (SIGTERM as Ctrl-C), and a signal sent to the whole process group (Ctrl-C, systemd, Docker,
    Slurm) made every worker print a KeyboardInterrupt traceback. The parent says it once."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    release_stop_signals()  # held while the parent forked this worker (trainlab.signal_mask)


def decode_images(files: Sequence[Path], size: tuple[int, int], mode: str, resize: bool,
                  workers: int, first: Path | None = None) -> np.ndarray:
    """All ``files`` as uint8 (N, C, H, W), decoded by ``workers`` processes (in-process when <= 1).

    Without ``resize`` every image must be ``size`` = (H, W); ``first``, the image whose size that is
    (:func:`first_size`), is named when one is not."""
    out = np.empty((len(files), MODES[mode], *size), dtype=np.uint8)
    if workers <= 1 or len(files) < POOL_MIN_FILES:
        out[:], large = _decode_chunk(list(files), size, mode, resize, first)
        _warn_large(large)
        return out
    chunk = max(256, math.ceil(len(files) / (4 * workers)))  # ~4 chunks per worker balance the load
    starts = range(0, len(files), chunk)
    # fork: workers start instantly and need not re-import torch; they only run Pillow and numpy
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_quiet_worker) as pool:
        try:
            with stop_signals_held():  # map submits every chunk, which forks the workers
                parts = pool.map(_decode_chunk, [list(files[s:s + chunk]) for s in starts],
                                 [size] * len(starts), [mode] * len(starts), [resize] * len(starts),
                                 [first] * len(starts))
            large = []
            for start, (part, part_large) in zip(starts, parts, strict=True):
                out[start:start + len(part)] = part
                large += part_large
        except BaseException:  # Ctrl-C or SIGTERM of the parent alone: no queued chunk starts after it
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    _warn_large(large)
    return out
