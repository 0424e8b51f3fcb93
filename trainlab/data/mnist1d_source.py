"""``mnist1d``: MNIST-1D (Greydanus 2020), generated offline by the mnist1d package."""

from __future__ import annotations

import numpy as np

from trainlab.data import DATA_SOURCES, RawData
from trainlab.data.cache import cached
from trainlab.errors import ConfigError
from trainlab.runtime import rng_states_kept

MAX_SAMPLES = 1_000_000  # the generator makes ~1,500 signals a second in Python (this bound: ~11 min)


def _key(num_samples: int, seed: int) -> dict[str, object]:
    """What shapes the generated arrays: our arguments, the package's default args and its version."""
    from importlib.metadata import version

    from mnist1d.data import get_dataset_args

    defaults = {k: v for k, v in vars(get_dataset_args()).items() if k != "url"}
    return {**defaults, "num_samples": num_samples, "seed": seed, "mnist1d": version("mnist1d")}


def _generate(num_samples: int, seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    # make_dataset seeds the global Python and NumPy RNGs with args.seed and draws from them: the run's seeded
    # states would depend on whether this process generated the data or read it from the cache
    with rng_states_kept():
        data = make_dataset(args)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


def _entry_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """Why a cache entry is not what :func:`_generate` makes (a member missing, signals and labels of other
    row counts, signals not rows of one length), or None: such an entry is generated again."""
    missing = [k for k in ("x", "y", "x_test", "y_test") if k not in arrays]
    if missing:
        return f"no {', '.join(missing)} in it"
    for signals, labels in (("x", "y"), ("x_test", "y_test")):
        if arrays[signals].ndim != 2 or arrays[labels].shape != (len(arrays[signals]),):
            return f"{signals} shaped {arrays[signals].shape} with {labels} shaped {arrays[labels].shape}"
    return None


@DATA_SOURCES.register("mnist1d")
def mnist1d(num_samples: int = 5000, seed: int = 42, channels_first: bool = False) -> RawData:
    """4,000 train / 1,000 test length-40 signals of 10 classes (the package's default split).

    ``channels_first`` shapes x as (N, 1, 40) for ``cnn1d``; otherwise (N, 40).
    """
    # make_dataset fails obscurely ("need at least one array to stack") below one sample per class
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 10 <= num_samples <= MAX_SAMPLES:
        raise ConfigError(f"data.num_samples must be an integer from 10 (one per class) to {MAX_SAMPLES:,}; "
                          f"got {num_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"data.seed must be an integer; got {seed!r}")
    data = cached("mnist1d", _key(num_samples, seed), lambda: _generate(num_samples, seed), check=_entry_problem)
    x, x_test = (np.asarray(data[k], dtype=np.float32) for k in ("x", "x_test"))
    if channels_first:
        x, x_test = x[:, None, :], x_test[:, None, :]
    return RawData(
        x, np.asarray(data["y"], dtype=np.int64), x_test=x_test,
        y_test=np.asarray(data["y_test"], dtype=np.int64), task="multiclass",
        class_names=[str(i) for i in range(10)],
    )
