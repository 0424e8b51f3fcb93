"""``--jobs N`` starts no more worker processes than there is work for: compare's forking pool starts all of
its workers at once (``--jobs 100000`` for 2 runs forked 525 processes and took 12 GB in 25 s before it was
killed), and a tune worker past ``--trials`` would only start, import torch and find nothing to run."""

from __future__ import annotations

import multiprocessing
import sys
from types import SimpleNamespace

import pytest

from trainlab.compare import compare

BASE = {"name": "iris", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                     "epochs": 1},
        "metrics": ["accuracy"], "runtime": {"num_threads": 1}, "output": {"progress": "off"}}


def test_compare_starts_no_more_workers_than_runs(tmp_path, monkeypatch):
    import trainlab.compare.pool as pool

    asked: list[int] = []
    real = pool.ProcessPoolExecutor

    def recording(*args, **kwargs):
        asked.append(kwargs["max_workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(pool, "ProcessPoolExecutor", recording)
    board = compare({"iris": BASE}, {"a": None, "b": {"strategy.optimizer.lr": 0.02}}, out=tmp_path / "out",
                    seeds=1, jobs=64, quiet=True, live=False)
    assert asked == [2]  # two runs: two workers, not 64
    rows = board["tasks"]["iris"]["strategies"]
    assert sorted(row["runs"] for row in rows) == [1, 1]  # both trained


class _SpawnContext:
    """multiprocessing's spawn context, recording the names of the workers made instead of starting them."""

    def __init__(self, made: list[str]) -> None:
        self.made = made

    def RawValue(self, typecode: str, value: int):  # noqa: N802 (multiprocessing's name)
        return SimpleNamespace(value=value)

    def Process(self, **kwargs):  # noqa: N802
        self.made.append(kwargs["name"])
        return SimpleNamespace(**kwargs)


def _recording(monkeypatch) -> list[str]:
    from trainlab.tune import workers

    made: list[str] = []
    monkeypatch.setattr(multiprocessing, "get_context", lambda method: _SpawnContext(made))
    monkeypatch.setattr(workers, "_run_pool", lambda settings, processes, stop, said=None: None)
    return made


def test_tune_starts_no_more_workers_than_trials(monkeypatch):
    from trainlab.tune import workers

    made = _recording(monkeypatch)
    monkeypatch.setattr(workers, "trials_left", lambda settings: settings.trials)  # a new study
    workers.run_workers(SimpleNamespace(jobs=6, trials=2, timeout_s=None), None, {})
    assert made == ["tune-worker-0", "tune-worker-1"]
    made.clear()
    workers.run_workers(SimpleNamespace(jobs=3, trials=40, timeout_s=None), None, {})
    assert made == ["tune-worker-0", "tune-worker-1", "tune-worker-2"]


def test_a_resumed_study_starts_workers_for_its_trials_left_only(tmp_path, monkeypatch):
    """A study with 2 of its 3 trials done, continued with --jobs 4: one worker, not four."""
    import dataclasses

    from tests.test_tune import settings
    from trainlab.tune import tune, workers

    space = {"strategy.optimizer.lr": {"low": 1.0e-3, "high": 0.1, "log": True}}
    tune(dataclasses.replace(settings(tmp_path, 2, space=space), pruner="none"))
    resumed = dataclasses.replace(settings(tmp_path, 3, space=space), pruner="none", jobs=4)
    assert workers.trials_left(resumed) == 1
    made = _recording(monkeypatch)
    workers.run_workers(resumed, None, {})
    assert made == ["tune-worker-0"]


def test_a_main_script_read_from_stdin_is_refused_before_any_worker_starts(monkeypatch):
    """`python - < script.py` with tune(jobs=2): each spawned worker failed to import '<stdin>' with a stdlib
    traceback of its own, then "tune workers exited with codes [1, 1]"."""
    from trainlab.errors import ConfigError
    from trainlab.tune.workers import refuse_unimportable_main

    monkeypatch.setitem(sys.modules, "__main__", SimpleNamespace(__file__="<stdin>"))
    with pytest.raises(ConfigError, match=r"tune\(jobs=2\) starts worker processes that import your main script, "
                                          r"and '<stdin>' is no file they can import"):
        refuse_unimportable_main(2)
    monkeypatch.setitem(sys.modules, "__main__", SimpleNamespace())  # a notebook: nothing to import
    refuse_unimportable_main(2)
