"""Data loading speed: MNIST IDX reading, CIFAR-10 JPEG decoding cold vs warm cache, and the training batch path.

Reads the real files of a data directory (``--data-dir``, default ``../shared/datasets``; see its
README), in samples per second:

* **MNIST IDX** (``mnist/``, four gzipped IDX files, 70,000 images): trainlab's ``idx`` source
  (gunzip, header checks, array), and ``load_dataset`` on it (the source plus the val split and
  the normalisation statistics), each the median of ``--repeats`` reads. IDX has no cache.
* **CIFAR-10 JPEG** (``cifar10-jpg/``, two gzipped tars of class folders, 60,000 images): the
  tars are extracted into ``--images`` (default ``/tmp/cifar10-jpg``, where examples/README.md
  puts them; timed: ``tarfile`` with the ``data`` filter, as ``tar -xzf`` would) unless that
  folder already holds all the images (then reused: extracting and deleting 60,000 files takes
  minutes on a slow disk), then trainlab's ``image_folder`` source reads it ``--repeats`` times in
  alternation: **cold** (a new, empty ``cache_dir``: scan, decode with ``--workers`` processes,
  write the ``.npz``) and **warm** (the same ``cache_dir``: scan, stat every file for the cache
  key, read the ``.npz``). Once more without a cache and with the decoding in this process
  (``workers: 0``). ``--per-class N`` extracts only the first N images per class and split (a
  subset: when the full decode would be too slow; the result says so).
* **Batch path** (what the Trainer does each step): ``TensorBatches.fetch`` (index the uint8
  split, then the training transform seeded by step) on the warm CIFAR dataset, batch 128 and 512,
  with the standard augmentation (4-pixel reflect-pad random crop, horizontal flip, normalise) and
  with normalisation only; and on MNIST (normalise), batch 64 and 512. Median of chunks of about
  ``--chunk`` seconds of fetches.

Writes ``benchmarks/results/data_loading.json``: ``"throughput"`` (label -> samples/s, median) and
``"ratios"``, each a ratio of times (below 1 is faster): ``"cifar warm/cold"`` (cache hit / cold
decode with cache write; the warm speed-up is its inverse), ``"cifar cold/no-cache workers 0"``
and ``"cifar fetch augment/plain b128"`` (the augmentation's share of a batch fetch).

    python benchmarks/data_loading.py [--data-dir ../shared/datasets] [--images /tmp/cifar10-jpg]
                                      [--repeats 2] [--workers 2] [--per-class N] [--threads 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # evidence: beside this script
from evidence import write_result  # noqa: E402

import trainlab.data.builtins  # noqa: E402,F401  (registers the built-in sources)
from trainlab.config import DataConfig  # noqa: E402
from trainlab.data import load_dataset  # noqa: E402
from trainlab.data.dataset import Dataset  # noqa: E402
from trainlab.data.idx import idx  # noqa: E402
from trainlab.data.images import image_folder  # noqa: E402
from trainlab.engine.batching import BatchPlan, TensorBatches  # noqa: E402

# ../shared/datasets from the project root, as in the examples
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
CIFAR_FILES = 60_000  # cifar10-jpg: 50,000 train + 10,000 test
# where the tars are extracted and kept between runs: the folder examples/README.md extracts into
DEFAULT_IMAGES = Path(tempfile.gettempdir()) / "cifar10-jpg"
CIFAR_STATS = {"mean": [0.491, 0.481, 0.443], "std": [0.246, 0.244, 0.262]}  # cifar10-jpg/README.md


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _stats(seconds: list[float], samples: int) -> dict[str, Any]:
    q1, median, q3 = np.percentile(seconds, [25, 50, 75])
    return {"samples": samples, "runs": len(seconds), "seconds": seconds, "seconds_median": float(median),
            "seconds_q1": float(q1), "seconds_q3": float(q3), "samples_per_s": samples / float(median)}


# ----------------------------------------------------------------------------- MNIST IDX


def mnist(folder: Path, repeats: int) -> dict[str, dict[str, Any]]:
    """The ``idx`` source and ``load_dataset`` on it, ``repeats`` times each in alternation."""
    config = DataConfig(source="idx", path=str(folder), flatten=True, val_fraction=0.1)
    source_s, dataset_s, samples = [], [], 0
    for _ in range(repeats):
        seconds, raw = timed(lambda: idx(str(folder), flatten=True))
        source_s.append(seconds)
        samples = len(raw.x_train) + len(raw.x_test)
        seconds, _ = timed(lambda: load_dataset(config))
        dataset_s.append(seconds)
    return {"mnist idx source": _stats(source_s, samples), "mnist idx load_dataset": _stats(dataset_s, samples)}


# ----------------------------------------------------------------------------- CIFAR JPEG


def extract(archives: list[Path], into: Path, per_class: int | None) -> int:
    """Extract the tars' class folders into ``into`` (only the first ``per_class`` images per folder); files written."""
    written = 0
    for archive in archives:
        kept: dict[str, int] = {}
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.isfile():
                    folder = str(Path(member.name).parent)
                    if per_class is not None and kept.get(folder, 0) >= per_class:
                        continue
                    kept[folder] = kept.get(folder, 0) + 1
                    written += 1
                tar.extract(member, into, filter="data")
    return written


def image_count(folder: Path) -> int:
    """Files in ``folder``'s ``<split>/<class>/`` folders (0 when there are none)."""
    return sum(1 for split in ("train", "test") if (folder / split).is_dir()
               for classes in (folder / split).iterdir() if classes.is_dir() for _ in classes.iterdir())


def images_folder(archives: list[Path], folder: Path, per_class: int | None) -> tuple[Path, dict[str, Any] | None]:
    """The extracted class folders, reused when complete, else extracted (timed): (folder, the extraction's row)."""
    if per_class is not None:
        folder = folder.with_name(f"{folder.name}-{per_class}-per-class")
    expected = CIFAR_FILES if per_class is None else 10 * min(per_class, 5000) + 10 * min(per_class, 1000)
    if image_count(folder) == expected:
        return folder, None
    seconds, files = timed(lambda: extract(archives, folder, per_class))
    return folder, _stats([seconds], files)


def cifar(folder: Path, images: Path, scratch: Path, repeats: int, workers: int,
          per_class: int | None) -> dict[str, Any]:
    """Extract (unless done before), then cold (empty cache) and warm (cache hit) reads in alternation, and one
    in-process decode without a cache."""
    images, extraction = images_folder([folder / "train.tar.gz", folder / "test.tar.gz"], images, per_class)
    rows: dict[str, dict[str, Any]] = {} if extraction is None else {"cifar extract tar.gz": extraction}
    cold_s, warm_s = [], []
    for repeat in range(repeats):
        read = partial(image_folder, str(images), workers=workers, cache_dir=str(scratch / f"cache-{repeat}"))
        seconds, raw = timed(read)  # a new, empty cache folder: cold
        cold_s.append(seconds)
        seconds, again = timed(read)  # the same folder: warm
        warm_s.append(seconds)
        if not np.array_equal(raw.x_train, again.x_train):
            raise RuntimeError("the warm cache returned other pixels than the cold decode")
        if repeat < repeats - 1:
            shutil.rmtree(scratch / f"cache-{repeat}")
    samples = len(raw.x_train) + len(raw.x_test)
    rows[f"cifar jpeg cold (decode {workers} workers + cache write)"] = _stats(cold_s, samples)
    rows["cifar jpeg warm (cache hit)"] = _stats(warm_s, samples)
    seconds, _ = timed(lambda: image_folder(str(images), workers=0))
    rows["cifar jpeg no cache, decode in-process"] = _stats([seconds], samples)
    return {"rows": rows, "cache": scratch / f"cache-{repeats - 1}", "images": images, "files": samples,
            "extracted": extraction is not None}


# ----------------------------------------------------------------------------- the batch path


def fetch_rate(data: Dataset, batch_size: int, augment: bool, chunk_s: float, chunks: int) -> dict[str, Any]:
    """Samples/s of ``TensorBatches.fetch`` over epoch 0's batches, median of ``chunks`` chunks of ~``chunk_s``."""
    transform = data.train_transform if augment else data.eval_transform
    batches = TensorBatches(data.train, transform, seed=0, device=torch.device("cpu"))
    indices = [index[0] for _, index in BatchPlan(len(data.train), batch_size, seed=0).steps(0)]
    indices = [index for index in indices if len(index) == batch_size]
    step = 0

    def fetch(count: int) -> float:
        nonlocal step
        started = time.perf_counter()
        for _ in range(count):
            batches.fetch(indices[step % len(indices)], step)
            step += 1
        return time.perf_counter() - started

    first = fetch(3) / 3  # warm-up, and the chunk size
    per_chunk = max(1, round(chunk_s / max(first, 1e-6)))
    seconds = [fetch(per_chunk) / per_chunk for _ in range(chunks)]
    return {**_stats(seconds, batch_size), "fetches_per_chunk": per_chunk}


def image_dataset(images: Path, cache: Path, workers: int) -> Dataset:
    config = DataConfig(source="image_folder", path=str(images), workers=workers, cache_dir=str(cache),
                        val_fraction=0.02, augment=True, **CIFAR_STATS)
    return load_dataset(config)


# ----------------------------------------------------------------------------- the benchmark


def run(data_dir: Path = DEFAULT_DATA_DIR, repeats: int = 2, workers: int = 2, per_class: int | None = None,
        images: Path = DEFAULT_IMAGES, chunk_s: float = 0.3, chunks: int = 5, write: bool = True) -> dict[str, Any]:
    """Every measurement; prints samples/s and writes results/data_loading.json."""
    data_dir = Path(data_dir).expanduser().resolve()
    for needed in (data_dir / "mnist", data_dir / "cifar10-jpg" / "train.tar.gz"):
        if not needed.exists():
            raise SystemExit(f"data_loading: {needed} is missing; pass --data-dir (the folder of "
                             "../shared/datasets/README.md)")
    print(f"torch threads {torch.get_num_threads()}; decode workers {workers}; data {data_dir}", flush=True)
    rows: dict[str, dict[str, Any]] = {}
    rows.update(mnist(data_dir / "mnist", repeats))
    with tempfile.TemporaryDirectory(prefix="trainlab-bench-data-") as scratch:
        loaded = cifar(data_dir / "cifar10-jpg", Path(images), Path(scratch), repeats, workers, per_class)
        rows.update(loaded["rows"])
        seconds, dataset = timed(lambda: image_dataset(loaded["images"], loaded["cache"], workers))
        rows["cifar load_dataset (warm cache, split, statistics)"] = _stats([seconds], loaded["files"])
        fetches: dict[str, dict[str, Any]] = {}
        for batch_size in (128, 512):
            for augment in (True, False):
                label = f"cifar fetch {'augment' if augment else 'plain'} b{batch_size}"
                fetches[label] = fetch_rate(dataset, batch_size, augment, chunk_s, chunks)
    mnist_data = load_dataset(DataConfig(source="idx", path=str(data_dir / "mnist"), flatten=True, val_fraction=0.1))
    for batch_size in (64, 512):
        fetches[f"mnist fetch plain b{batch_size}"] = fetch_rate(mnist_data, batch_size, False, chunk_s, chunks)
    rows.update(fetches)
    for label, row in rows.items():
        spread = (f" (q {row['samples'] / row['seconds_q3']:,.0f} / {row['samples'] / row['seconds_q1']:,.0f})"
                  if row["runs"] > 1 else "")
        print(f"  {label:<52} {row['samples_per_s']:>12,.0f} samples/s{spread}")
    cold = next(v for k, v in rows.items() if k.startswith("cifar jpeg cold"))
    warm = rows["cifar jpeg warm (cache hit)"]
    ratios = {
        "cifar warm/cold": warm["seconds_median"] / cold["seconds_median"],
        "cifar cold/no-cache workers 0": cold["seconds_median"] /
                                         rows["cifar jpeg no cache, decode in-process"]["seconds_median"],
        "cifar fetch augment/plain b128": fetches["cifar fetch augment b128"]["seconds_median"] /
                                          fetches["cifar fetch plain b128"]["seconds_median"],
    }
    for label, value in ratios.items():
        print(f"  {label:<52} {value:.3f} (time ratio)")
    print(f"  warm cache speed-up over a cold decode: {1 / ratios['cifar warm/cold']:.1f}x")
    details = {
        "data_dir": str(data_dir), "decode_workers": workers, "images": str(loaded["images"]),
        "extracted_in_this_run": loaded["extracted"],
        "cifar_subset": (f"first {per_class} images per class folder and split ({loaded['files']} files)"
                         if per_class else f"all {loaded['files']} files"),
        "method": "wall time of trainlab's sources (idx, image_folder) and load_dataset, median of alternating "
                  "repeats (cold: new empty cache_dir; warm: the same cache_dir right after); batch path: "
                  "TensorBatches.fetch over epoch 0's full batches, median of chunks; samples/s = samples / "
                  "median seconds; ratios are ratios of median times",
        "throughput": {label: round(row["samples_per_s"], 1) for label, row in rows.items()},
        "rows": rows,
    }
    if write:
        path = write_result("data_loading", ratios, details)
        print(f"wrote {path}")
    return {"ratios": ratios, **details}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="the folder holding mnist/ and cifar10-jpg/ (default: ../shared/datasets)")
    parser.add_argument("--repeats", type=int, default=2, help="cold/warm pairs and MNIST reads")
    parser.add_argument("--workers", type=int, default=2, help="image_folder decoding processes (its default: 2)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="extract only the first N images per class and split (a subset for slow machines)")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES,
                        help="where the tars are extracted, and reused from when complete (default /tmp/cifar10-jpg)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/data_loading.json alone")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    run(args.data_dir, args.repeats, args.workers, args.per_class, args.images, write=not args.no_write)


if __name__ == "__main__":
    main()
