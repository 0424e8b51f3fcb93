"""``--jobs N`` starts no more worker processes than there is work for: compare's forking pool starts all of
its workers at once (``--jobs 100000`` for 2 runs forked 525 processes and took 12 GB in 25 s before it was
killed), and a tune worker past ``--trials`` would only start, import torch and find nothing to run."""

from __future__ import annotations

import multiprocessing
from types import SimpleNamespace

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


def test_tune_starts_no_more_workers_than_trials(monkeypatch):
    from trainlab.tune import workers

    made: list[str] = []

    class Context:  # multiprocessing's spawn context, recording the workers made instead of starting them
        def Event(self):  # noqa: N802 (multiprocessing's name)
            return SimpleNamespace()

        def Process(self, **kwargs):  # noqa: N802
            made.append(kwargs["name"])
            return SimpleNamespace(**kwargs)

    monkeypatch.setattr(multiprocessing, "get_context", lambda method: Context())
    monkeypatch.setattr(workers, "_run_pool", lambda settings, processes, stop: None)
    workers.run_workers(SimpleNamespace(jobs=6, trials=2, timeout_s=None), None, {})
    assert made == ["tune-worker-0", "tune-worker-1"]
    made.clear()
    workers.run_workers(SimpleNamespace(jobs=3, trials=40, timeout_s=None), None, {})
    assert made == ["tune-worker-0", "tune-worker-1", "tune-worker-2"]
