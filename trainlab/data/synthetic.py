"""``synthetic_linear``: the tutorials' y = 2x + 1 + noise regression task."""

from __future__ import annotations

import numpy as np

from trainlab.data import DATA_SOURCES, RawData
from trainlab.errors import ConfigError

MAX_ROWS = 100_000_000  # 1.6 GB of float64 x and y: a count beyond is a typo, not a tutorial


def _count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_ROWS:
        raise ConfigError(f"data.{name} must be an integer from {minimum} to {MAX_ROWS:,}; got {value!r}")


@DATA_SOURCES.register("synthetic_linear")
def synthetic_linear(n: int = 100, seed: int = 0, n_val: int | None = None, n_test: int | None = None) -> RawData:
    """Train on exactly the tutorial's points; val/test are fresh draws of the same process.

    Train: ``np.random.seed(seed); x = np.linspace(0, 9, n).reshape(-1, 1);
    y = 2 * x + 1 + np.random.normal(size=(n, 1))``. Val and test draw x ~ U(0, 9)
    and fresh noise from a separate generator, so the training data is untouched.
    """
    _count("n", n, 2)
    for name, value in (("n_val", n_val), ("n_test", n_test)):
        if value is not None:
            _count(name, value, 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"data.seed must be an integer; got {seed!r}")
    np.random.seed(seed)
    x = np.linspace(0, 9, n).reshape(-1, 1)
    y = 2 * x + 1 + np.random.normal(size=(n, 1))
    fresh = np.random.default_rng(seed + 1)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        xs = fresh.uniform(0, 9, size=(count, 1))
        return xs, 2 * xs + 1 + fresh.normal(size=(count, 1))

    x_val, y_val = draw(n_val or n)
    x_test, y_test = draw(n_test or n)
    return RawData(x, y, x_val, y_val, x_test, y_test, task="regression")
