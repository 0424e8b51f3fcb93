"""Reading a NumPy ``.npz`` archive that may be someone else's: pickles refused, each array's declared
size checked from its ``.npy`` header before anything is decompressed. No torch: the report reads a
run's ``predictions.npz`` with it."""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from trainlab.errors import DataError

NPY_MAGIC = b"\x93NUMPY"  # a single-array .npy file
ZIP_MAGIC = b"PK"  # every zip (and so every .npz) starts with a "PK" record


def array_bytes_limit() -> int:
    """The most bytes one array of an .npz may declare: half this machine's physical memory. A
    decompression bomb (2 MB of deflated zeros declaring a 2 GiB array) is refused from its .npy header,
    before anything is decompressed, instead of filling memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # not a POSIX system: a bound of its own
        return 16 * 2**30


def _declared_arrays(file: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Each member's (shape, dtype) as its .npy header declares them, reading nothing past the headers.

    Raises DataError for an object (pickled) array, or one declaring more than :func:`array_bytes_limit`
    bytes; zip and header errors (ValueError) are the caller's. A member that is no .npy, or of another
    .npy version (3.0: structured dtypes with non-Latin-1 field names), is left out: np.load reads it.
    """
    declared: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    limit = array_bytes_limit()
    with zipfile.ZipFile(file) as archive:
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            with archive.open(info) as member:
                if member.read(len(NPY_MAGIC)) != NPY_MAGIC:
                    continue  # not an array: np.load gives such a member as bytes, which callers refuse
                version = tuple(member.read(2))
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    continue
            if dtype.hasobject:
                raise DataError(f"npz file {file}: array '{name}' is an object (pickled) array, which trainlab "
                                "refuses to load (unpickling can run code); save numeric arrays")
            size = math.prod(shape) * dtype.itemsize
            if size > limit:
                raise DataError(f"npz file {file}: array '{name}' declares shape {tuple(shape)} of {dtype}, "
                                f"{size / 2**30:,.1f} GiB once decompressed, more than the {limit / 2**30:,.1f} GiB "
                                "(half this machine's memory) trainlab reads into memory; split the rows into "
                                "several files")
            declared[name] = (tuple(shape), dtype)
    return declared


def open_npz(file: Path, x: str = "x", y: str | None = "y", only: str | None = None) -> dict[str, np.ndarray]:
    """Every array of the archive (with ``only``: that array, or the archive's one array when it holds
    no such name, as predict reads its inputs); each way an archive can be unusable is its own one-line
    DataError. Each member's .npy header is checked first (:func:`_declared_arrays`): an array declaring
    more than :func:`array_bytes_limit` bytes is refused before anything is decompressed.

    ``x`` and ``y`` (None: inputs only, as predict reads) name the arrays the caller wants, in the hint
    for a single-array .npy file.
    """
    try:
        with open(file, "rb") as handle:
            head = handle.read(len(NPY_MAGIC))
    except OSError as exc:
        raise DataError(f"cannot read npz file {file}: {exc.strerror or exc}") from None
    if not head:
        raise DataError(f"npz file {file} is empty (0 bytes)")
    if head.startswith(NPY_MAGIC):
        holding, written = (f"'{x}' and '{y}'", f"{x}=..., {y}=...") if y else (f"'{x}'", f"{x}=...")
        raise DataError(f"{file} is a single-array .npy file; the npz source reads an .npz archive holding "
                        f"{holding} (write it with np.savez(path, {written}))")
    if not head.startswith(ZIP_MAGIC):
        raise DataError(f"{file} is not an .npz archive (a zip of .npy arrays); it starts with {head!r}")
    arrays: dict[str, np.ndarray] = {}
    member = ""
    try:
        _declared_arrays(file)
        with np.load(file, allow_pickle=False) as archive:
            wanted = archive.files
            if only is not None:
                wanted = [only] if only in archive.files else archive.files if len(archive.files) == 1 else []
            for member in wanted:
                arrays[member] = archive[member]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"npz file {file}: array '{member}' is an object (pickled) array, which trainlab "
                            "refuses to load (unpickling can run code); save numeric arrays") from None
        raise DataError(f"cannot read npz file {file}: {exc} (truncated or corrupt?)") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DataError(f"cannot read npz file {file}: {exc} (truncated or corrupt?)") from None
    except MemoryError:
        raise DataError(f"npz file {file}: array '{member}' does not fit in this machine's memory") from None
    return arrays
