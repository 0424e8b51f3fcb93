"""Write the example datasets used by examples/robust_regression_*.yaml and examples/imbalanced_*.yaml.

    python examples/make_example_data.py [OUTPUT_DIR]    (default: examples/data)

outlier_regression.npz: y = x w + b + N(0, 0.5^2) with 8 features; 10% of the
  *training* targets are gross errors (shifted up by U(15, 30), about 30-60 noise
  sigmas, one-sided so they bias a squared-error fit); the test targets are clean.
imbalanced_binary.npz: two Gaussian classes in 8-D, N(0, I) and N(mu, I) with
  ||mu|| = 2, 5% positives in both splits.

multilabel_tags.csv: 1,500 rows of 6 raw-scale numeric features (means up to 1,000),
  a categorical column "shop" (north/south/east/west) and 3 tags (tag_sale, tag_rush,
  tag_gift), each 0/1 from its own logistic model of the standardised features and
  the shop; used by examples/multilabel_tags.yaml.

Each npz file holds float32 x, y (float32 regression / int64 labels), x_test, y_test;
the generators are seeded, so the files are reproducible (each < 200 KB).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

NUM_FEATURES = 8


def outlier_regression(n_train: int = 1000, n_test: int = 500, outlier_fraction: float = 0.1,
                       seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=NUM_FEATURES)
    x = rng.normal(size=(n_train + n_test, NUM_FEATURES))
    y = x @ weights + 1.0 + 0.5 * rng.normal(size=n_train + n_test)
    y_train = y[:n_train].copy()
    gross = rng.random(n_train) < outlier_fraction
    y_train[gross] += rng.uniform(15.0, 30.0, size=int(gross.sum()))
    return {"x": x[:n_train].astype(np.float32), "y": y_train.astype(np.float32),
            "x_test": x[n_train:].astype(np.float32), "y_test": y[n_train:].astype(np.float32)}


def imbalanced_binary(n_train: int = 2000, n_test: int = 1000, positive_fraction: float = 0.05,
                      separation: float = 2.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=NUM_FEATURES)
    mean = separation * direction / np.linalg.norm(direction)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.zeros(n, dtype=np.int64)
        labels[: int(round(positive_fraction * n))] = 1
        labels = rng.permutation(labels)
        return (rng.normal(size=(n, NUM_FEATURES)) + labels[:, None] * mean).astype(np.float32), labels

    x, y = draw(n_train)
    x_test, y_test = draw(n_test)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}


def multilabel_tags(n: int = 1500, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV with raw-scale features, a categorical column and three 0/1 tags."""
    rng = np.random.default_rng(seed)
    scales = np.array([1.0, 10.0, 100.0, 1000.0, 0.01, 5.0])
    z = rng.normal(size=(n, len(scales)))
    shops = np.array(["north", "south", "east", "west"])
    shop = rng.integers(0, len(shops), size=n)
    shop_effect = rng.normal(scale=1.5, size=(len(shops), 3))
    weights = rng.normal(scale=1.5, size=(len(scales), 3))
    logits = z @ weights + shop_effect[shop]
    tags = (rng.random((n, 3)) < 1.0 / (1.0 + np.exp(-logits))).astype(int)
    features = z * scales + scales  # raw scale: means and spreads from 0.01 to 1000
    header = [f"f{i}" for i in range(len(scales))] + ["shop", "tag_sale", "tag_rush", "tag_gift"]
    rows = [[f"{v:.6g}" for v in features[i]] + [str(shops[shop[i]])] + [str(t) for t in tags[i]]
            for i in range(n)]
    return header, rows


def main(out_dir: str | Path = Path(__file__).parent / "data") -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, arrays in (("outlier_regression", outlier_regression()), ("imbalanced_binary", imbalanced_binary())):
        path = out_dir / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        written.append(path)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    write_csv_examples(out_dir)
    return written


def write_csv_examples(out_dir: str | Path) -> list[Path]:
    """Write the CSV examples (multilabel_tags.csv); main() calls it and returns only the .npz files."""
    header, rows = multilabel_tags()
    path = Path(out_dir) / "multilabel_tags.csv"
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return [path]


if __name__ == "__main__":
    main(*sys.argv[1:2])
