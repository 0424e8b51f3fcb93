"""Inputs for ``trainlab predict`` from image and text runs: an image or a folder of images, a text TSV/CSV.

:func:`read_images` decodes one ``.png``/``.jpg``/``.jpeg`` file, or every one under a folder (recursively,
following linked folders as training does, sorted by relative path, hidden files skipped; :func:`image_files`)
into uint8 (N, C, H, W) in the run's ``data.mode``, resized
(bilinear) to the training images' H x W, by training's own decoder
(:func:`trainlab.data.image_decode.decode_images`: EXIF orientation applied, transparency over white); the
run's evaluation transform (per-channel normalisation) is applied later, by the predictor. :func:`read_texts` reads the text column of a
TSV/CSV (``data.text_column``; a label column is ignored) and encodes it with the run's own
tokenizer: the training vocabulary of ``tokenizer: word`` (recorded in ``model.json``), or the
``tokenizer.json`` of ``tokenizer: hf``, truncated/padded to ``data.max_length`` as in training.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.config_fields import short_repr, shown_name
from trainlab.data.csv_table import check_delimiter
from trainlab.errors import DataError

IMAGE_SOURCES = ("image_folder",)
TEXT_SOURCES = {"text_tsv": ("\t", "sentence"), "text_csv": (",", "text")}  # source -> (delimiter, text column)


def text_encoding(extras: dict[str, Any]) -> dict[str, Any] | None:
    """What :func:`read_texts` needs of a text source's ``extras`` (JSON-serialisable); None for other data."""
    if extras.get("tokenizer") == "word":
        return {"tokenizer": "word", "vocab": list(extras["vocab"]), "max_length": int(extras["max_length"])}
    if extras.get("tokenizer") == "hf":
        return {"tokenizer": "hf", "tokenizer_path": extras["tokenizer_path"], "max_length": int(extras["max_length"])}
    return None


def read_images(path: str | os.PathLike[str], options: dict[str, Any],
                input_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """(uint8 images (N, C, H, W), their names): the images under the folder ``path`` (named by their paths
    relative to it, :func:`image_files`), or the one image file ``path`` (named by its file name).

    Raises:
        DataError: ``path`` is missing, a file that is not a ``.png``/``.jpg``/``.jpeg`` image, or a folder
            holding none (or a broken link named as one); an image cannot be decoded; the run's model does not
            take images.
    """
    from trainlab.data.image_decode import MODES, decode_images
    from trainlab.data.images import IMAGE_EXTENSIONS, is_image_name

    root = Path(path)
    if not root.exists():
        raise DataError(f"image file or folder of images not found: {root} (predict on an image run reads a "
                        f"{'/'.join(IMAGE_EXTENSIONS)} image or a folder of them)")
    if root.is_dir():
        files = image_files(root)
        names = [str(f.relative_to(root)) for f in files]
    elif is_image_name(root.name):  # a folder of one: the user's first try is one image
        files, names = [root], [root.name]
    else:
        raise DataError(f"predict on an image run reads a {'/'.join(IMAGE_EXTENSIONS)} image or a folder of them; "
                        f"{root} is neither: give an image file or the folder holding the images")
    mode = options.get("mode") or "RGB"  # null: image_folder's default
    if len(input_shape) != 3 or input_shape[0] != MODES.get(mode):
        raise DataError(f"the run's model takes inputs shaped {tuple(input_shape)}, not {MODES.get(mode)}-channel "
                        "images; predict reads image folders for image_folder runs")
    size = (int(input_shape[1]), int(input_shape[2]))
    return decode_images(files, size, mode, resize=True, workers=0), names


def image_files(root: Path) -> list[Path]:
    """The ``.png``/``.jpg``/``.jpeg`` images under ``root``, sorted by relative path, found as training finds
    a class folder's: symbolic links to folders followed (a link back into its own parents, a loop, is
    skipped with a warning), hidden entries skipped, trainlab's image cache folders (``data.cache_dir``)
    skipped with a warning, other files skipped with one warning; a broken link named as an image is refused.
    """
    from trainlab.data.images import IMAGE_EXTENSIONS
    from trainlab.notices import warn

    visible: list[Path] = []
    _walk(root, frozenset({os.path.realpath(root)}), visible)
    visible.sort()
    files = [path for path in visible if path.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise DataError(f"no {'/'.join(IMAGE_EXTENSIONS)} images under {root}")
    if len(files) < len(visible):  # a README beside the images, or a .webp predict cannot read: said, not silent
        other = next(path for path in visible if path.suffix.lower() not in IMAGE_EXTENSIONS)
        warn(f"predict skips {len(visible) - len(files)} file(s) under {root} that are not "
             f"{'/'.join(IMAGE_EXTENSIONS)} images (e.g. {other.relative_to(root)}); no row is written for them")
    return files


def _walk(folder: Path, parents: frozenset[str], found: list[Path]) -> None:
    """Add the visible files under ``folder`` to ``found``; ``parents``: the real paths of ``folder`` and the
    folders above it, so that a link to one of them (a loop) is not followed."""
    from trainlab.data.images import (
        broken_link_error,
        is_broken_link,
        is_cache_folder,
        is_hidden,
        is_image_name,
    )
    from trainlab.notices import warn

    try:
        with os.scandir(folder) as listing:
            entries = [entry for entry in listing if not is_hidden(entry.name)]
    except OSError as exc:  # a subfolder predict may not read: its images would be left out unsaid
        raise DataError(f"cannot read the folder {folder}: {exc.strerror or exc}; make it readable or move it "
                        "out") from None
    for entry in entries:
        path = Path(entry.path)
        if is_broken_link(entry):  # gone, or a loop of links (is_dir() raises ELOOP for it)
            if is_image_name(entry.name):
                raise broken_link_error(folder, path)
            found.append(path)  # a broken link named otherwise: a skipped file, said
            continue
        if entry.is_dir():  # follows a link, as training follows a linked class folder
            real = os.path.realpath(path)
            if real in parents:
                warn(f"predict does not follow {path}, a symbolic link to {real}, which holds it (a loop)")
            elif is_cache_folder(path):
                warn(f"predict skips {path}: it holds only trainlab's image cache (data.cache_dir), no images")
            else:
                _walk(path, parents | {real}, found)
        elif entry.is_file() or entry.is_symlink():
            found.append(path)


def check_text_header(path: Path, text_column: str, delimiter: str, quoted: bool | None = None) -> None:
    """Refuse a file whose header lacks the run's text column, saying what predict needs.

    The training reader's own message ends "set data.text_column", which predict cannot take (the run
    fixes it); a header read with the wrong delimiter (a CSV given to a TSV run) comes back as one
    column, so the likely delimiter is named. An unreadable or empty file is left to the reader.
    """
    from trainlab.data.table_diagnosis import DELIMITER_NAMES
    from trainlab.data.text import header_hint

    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            line = handle.readline()
    except (OSError, UnicodeDecodeError):
        return
    line = line.rstrip("\r\n")
    if not line.strip():
        return
    quoting = csv.QUOTE_MINIMAL if (delimiter != "\t" if quoted is None else quoted) else csv.QUOTE_NONE
    try:
        columns = [c.strip() for c in next(csv.reader([line], delimiter=delimiter, quoting=quoting))]
    except csv.Error:
        return
    if text_column in columns:
        return
    from trainlab.registry import closest_choice

    name = DELIMITER_NAMES.get(delimiter, repr(delimiter))
    hint = header_hint(line, delimiter)
    close = closest_choice(text_column, columns)  # 'Review' for 'review': the run fixes the name, the file is renamed
    rename = f"; rename its column {close!r} to '{text_column}'" if close else ""
    raise DataError(f"text file {path}: the input needs a column named '{text_column}' (this run's data.text_column), "
                    f"{name}-separated; got columns: {', '.join(repr(c) for c in columns)}"
                    + (f"{hint}: save it {name}-separated" if "separated" in hint else hint or rename))  # run's delimiter


def read_texts(file: str | os.PathLike[str], source: str, options: dict[str, Any],
               encoding: dict[str, Any]) -> np.ndarray:
    """The token ids of the texts of ``file``, encoded as the run's training texts were."""
    from trainlab.data.paths import resolve_file
    from trainlab.data.table_diagnosis import DELIMITER_NAMES
    from trainlab.data.text import read_table

    delimiter = check_delimiter(options.get("delimiter", TEXT_SOURCES[source][0]))
    path = resolve_file(file, "a text file with a header row", what="the input")  # predict's, not data.path
    text_column = text_column_of(source, options)
    quoted = source == "text_csv"
    if path.suffix.lower() == ".npz":  # a zip by its first bytes: "unzip it first" would not help
        name = DELIMITER_NAMES.get(delimiter, repr(delimiter))
        raise DataError(f"{path.name}: a run trained on data source '{source}' predicts from a {name}-separated "
                        f"text file with a header row and a column named '{text_column}' (this run's "
                        "data.text_column), one text per row, not from an .npz")
    check_text_header(path, text_column, delimiter, quoted)
    # a header without rows: no texts, as a CSV run's header-only file gives no rows (docs/predict.md)
    table = read_table(path, text_column, options.get("label_column", "label"), delimiter, quoted, predict=True)
    if not table.texts:
        return no_texts(encoding)
    return encode_texts(table.texts, encoding)


def no_texts(encoding: dict[str, Any]) -> np.ndarray:
    """The token ids of no text: (0, L) for ``tokenizer: word``, (0, 2, L) ``[ids, mask]`` for ``hf``."""
    length = int(encoding["max_length"])
    return np.zeros((0, length) if encoding["tokenizer"] == "word" else (0, 2, length), dtype=np.int64)


def encode_texts(texts: Any, encoding: dict[str, Any]) -> np.ndarray:
    """Token ids of ``texts`` (strings; a pandas Series of them), encoded as the run's training texts were.

    No texts give :func:`no_texts`. A text that is not valid Unicode (a lone surrogate, what reading bytes
    with ``errors="surrogateescape"`` leaves) is refused naming its index; texts longer than the run's
    ``max_length`` are cut to it, with one warning saying how many.
    """
    from trainlab.data.tokenizers import WordTokenizer, _hf_encode, _hf_tokenizer, warn_cut

    texts = [texts] if isinstance(texts, str) else list(texts)
    found = next(((i, t) for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if found is not None:
        position, bad = found
        missing = bad is None or (isinstance(bad, float) and math.isnan(bad))
        raise _not_a_string(position, bad, (": a missing text (pandas reads an empty cell as NaN); fill it, e.g. "
                                           "with .fillna('') for an empty text, as trainlab predict reads an empty "
                                           "cell") if missing else "")
    if not texts:
        return no_texts(encoding)
    _refuse_surrogates(texts)
    if encoding["tokenizer"] == "word":
        tokens = WordTokenizer(tuple(encoding["vocab"])).encode(texts, encoding["max_length"])
    else:
        tokens = _hf_encode(_hf_tokenizer(encoding["tokenizer_path"], encoding["max_length"]), texts)
    warn_cut({"": (tokens.cut, len(texts))}, encoding["max_length"], predict=True)
    return tokens.ids


def _refuse_surrogates(texts: list[str]) -> None:
    """One DataError naming the first text holding a lone surrogate (UTF-8 cannot encode it, and the hf
    tokenizer refuses it with a TypeError); checked over all texts at once, one by one only on failure."""
    try:
        "".join(texts).encode("utf-8")
        return
    except UnicodeEncodeError:
        pass
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(f"a text run's predict takes valid Unicode text; element {index} {short_repr(text)} "
                            f"is not: it holds the lone surrogate {text[exc.start]!r} at character {exc.start} "
                            "(what decoding bytes with errors='surrogateescape' leaves); decode the bytes with "
                            "their real encoding (e.g. b.decode('latin-1'))") from None


def are_texts(x: Any) -> bool:
    """A list or tuple of strings, or a 1-D NumPy array of them (an empty one of dtype str included): what a
    text run predicts from Python (a lone string is a file's path)."""
    if isinstance(x, np.ndarray):  # an empty array of dtype str is no texts; an empty object array is no rows
        return x.ndim == 1 and (x.dtype.kind == "U" or (
            len(x) > 0 and x.dtype == object and all(isinstance(t, str) for t in x)))
    return isinstance(x, list | tuple) and len(x) > 0 and all(isinstance(t, str) for t in x)


def refuse_non_texts(x: Any) -> None:
    """Refuse what a text run's ``predict`` cannot take though it holds text: a lone string (one text is
    ``[text]``), an array of bytes (dtype ``S``: decode it), or a list/array mixing strings with other values
    (named with its index). Token ids (numbers) and the inputs :func:`are_texts` accepts pass."""
    if isinstance(x, str):
        raise DataError(f"a text run's predict takes a list of strings, one per text; got one str "
                        f"{short_repr(x)}: pass [{short_repr(x)}]")
    if isinstance(x, np.ndarray) and x.dtype.kind == "U" and x.ndim != 1:
        raise DataError(f"a text run's predict takes a 1-D array of strings, one per text; got one shaped "
                        f"{tuple(x.shape)}")
    if isinstance(x, np.ndarray) and x.dtype.kind == "S":  # bytes: no token ids, and no text until decoded
        example = f" such as {short_repr(x.reshape(-1)[0].item())}" if x.size else ""
        raise DataError(f"a text run's predict takes strings; got an array of bytes (dtype {x.dtype}){example}: "
                        "decode the bytes to str first (np.char.decode(x, 'utf-8'), or [b.decode('utf-8') for b "
                        "in x])")
    listed = isinstance(x, list | tuple) or (isinstance(x, np.ndarray) and x.dtype == object and x.ndim == 1)
    items = list(x) if listed else []
    # with a string among them, anything else is the odd one out; without, None and bytes are still no
    # token ids (numbers), so those are named too
    textual = any(isinstance(t, str) for t in items)
    index, bad = next(((i, t) for i, t in enumerate(items)
                       if (textual and not isinstance(t, str)) or t is None or isinstance(t, bytes | bytearray)),
                      (None, None))
    if index is not None:
        raise _not_a_string(index, bad, ": decode it first (b.decode('utf-8'))" if isinstance(bad, bytes | bytearray)
                           else "")


def _not_a_string(index: int, bad: Any, fix: str = "") -> DataError:
    """``a text run's predict takes strings; element 1 is int64 3, not a string`` and ``fix``."""
    shown = bad.item() if isinstance(bad, np.generic) else bad  # 3, not np.int64(3)
    return DataError(f"a text run's predict takes strings; element {index} is {type(bad).__name__} "
                     f"{short_repr(shown)}, not a string{fix}")


def text_cells(x: Any, source: str, options: dict[str, Any]) -> Any:
    """The texts of ``x``: strings as they are; a Series; a DataFrame's text column (data.text_column)."""
    import pandas as pd

    if isinstance(x, pd.DataFrame):
        column = text_column_of(source, options)
        if column not in x.columns:
            from trainlab.registry import did_you_mean

            raise DataError(f"the DataFrame needs the text column '{column}' (this run's data.text_column); "
                            f"got columns: {', '.join(map(shown_name, x.columns))}"
                            f"{did_you_mean(column, [str(name) for name in x.columns])}")
        return x[column].tolist()
    return x.tolist() if isinstance(x, pd.Series | np.ndarray) else x  # np.str_ elements as plain str


def text_column_of(source: str, options: dict[str, Any]) -> str:
    """The run's text column: ``data.text_column``, else the source's default (sentence / text)."""
    return options.get("text_column") or TEXT_SOURCES[source][1]
