"""Write the example datasets used by examples/robust_regression_*.yaml and examples/imbalanced_*.yaml.

    python examples/make_example_data.py [OUTPUT_DIR]    (default: examples/data)

outlier_regression.npz: y = x w + b + N(0, 0.5^2) with 8 features; 10% of the
  *training* targets are gross errors (shifted up by U(15, 30), about 30-60 noise
  sigmas, one-sided so they bias a squared-error fit); the test targets are clean.
imbalanced_binary.npz: two Gaussian classes in 8-D, N(0, I) and N(mu, I) with
  ||mu|| = 2, 5% positives in both splits.

Each file holds float32 x, y (float32 regression / int64 labels), x_test, y_test;
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


def main(out_dir: str | Path = Path(__file__).parent / "data") -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, arrays in (("outlier_regression", outlier_regression()), ("imbalanced_binary", imbalanced_binary())):
        path = out_dir / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        written.append(path)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")
    return written


if __name__ == "__main__":
    main(*sys.argv[1:2])
