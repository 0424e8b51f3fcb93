"""The RNG states a run checkpoints depend on the run, not on what its process did before it.

A checkpoint holds the global Python, NumPy and torch RNG states (trainlab.engine.snapshot). Two things
used to change them behind the run's seeding: rich.style draws ``random.getrandbits(24)`` when first
imported, which a lazy import (sklearn.datasets, for the digits) did after the seeding; and mnist1d's
generator seeds the global Python and NumPy RNGs itself, which a run reading the data from the cache skips.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab.engine import checkpoint


def _first_checkpoint_rng(run: Path) -> tuple[dict, bytes]:
    """The RNG states in the run's first step checkpoint: (Python and NumPy as stored, torch's bytes)."""
    folder = min((run / "checkpoint").glob("step-*"))
    _, tree, tensors = checkpoint.load(folder)
    return tree["rng"], tensors["rng.torch"].numpy().tobytes()


def _config(data: dict) -> dict:
    return {
        "name": "rng", "seed": 11, "data": data, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 64,
                     "epochs": 1},
        "output": {"progress": "off", "checkpoint": {"every_n_steps": 3, "keep_last": 100, "every_seconds": None,
                                                     "keep_after_finish": "all"}},
        "runtime": {"num_threads": 1},
    }


_TRAIN_IN_A_FRESH_PROCESS = """
import json, sys
rich_first = sys.argv[3] == "rich-first"
if rich_first:
    import rich.style  # what an earlier run, or the progress bar, leaves imported in a worker
from trainlab.experiment import train
before = {name: name in sys.modules for name in ("rich.style", "sklearn")}
train(json.loads(sys.argv[1]), out=sys.argv[2], quiet=True)
print(json.dumps(before))
"""


@pytest.mark.slow
def test_a_run_checkpoints_the_same_rng_states_whether_or_not_its_process_imported_rich_before(tmp_path):
    """digits loads through sklearn.datasets, which imports rich: after the seeding, in a fresh process."""
    config = json.dumps(_config({"source": "digits"}))
    runs, imported = {}, {}
    for mode in ("fresh", "rich-first"):
        runs[mode] = tmp_path / mode
        done = subprocess.run([sys.executable, "-c", _TRAIN_IN_A_FRESH_PROCESS, config, str(runs[mode]), mode],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        imported[mode] = json.loads(done.stdout.splitlines()[-1])
    # what makes the comparison mean something: rich and sklearn first imported during the fresh run
    assert imported["fresh"] == {"rich.style": False, "sklearn": False}
    assert imported["rich-first"]["rich.style"]
    assert _first_checkpoint_rng(runs["fresh"]) == _first_checkpoint_rng(runs["rich-first"])


def test_a_run_checkpoints_the_same_rng_states_whether_it_generated_mnist1d_or_read_it_from_the_cache(
        tmp_path, monkeypatch):
    from trainlab.data.cache import CACHE_ENV
    from trainlab.experiment import train

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    config = _config({"source": "mnist1d", "num_samples": 200, "seed": 3})
    train(config, out=tmp_path / "generated", quiet=True)
    assert list((tmp_path / "cache").glob("mnist1d-*.npz"))  # the second run reads it
    train(config, out=tmp_path / "cached", quiet=True)
    assert _first_checkpoint_rng(tmp_path / "generated") == _first_checkpoint_rng(tmp_path / "cached")


@pytest.mark.parametrize("seed", [0, 7])
def test_generating_mnist1d_leaves_the_process_rng_states_as_they_were(monkeypatch, seed):
    from trainlab.data.cache import CACHE_ENV
    from trainlab.data.mnist1d_source import mnist1d

    monkeypatch.setenv(CACHE_ENV, "off")  # generated every time
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    python_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    raw = mnist1d(num_samples=100, seed=5)
    assert len(raw.x_train) > 0
    assert random.getstate() == python_state
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]
    assert torch.equal(torch.get_rng_state(), torch_state)
