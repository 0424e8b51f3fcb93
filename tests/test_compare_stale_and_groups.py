"""Three faults of a comparison's bookkeeping, each seen through the files it writes.

- A changed run that failed, or that the machine stopped, before its overwrite replaced the earlier run
  (an overwrite keeps the old run until the new one has a checkpoint or results) was reported with the old
  config's results: ``runs 1, failed 0, missing 0``, exit 0 (compare.run_record.load_run trusted any
  finished summary.json in the folder).
- A stop signal that the last run of one code-policy group took as it finished (the bases in two folders,
  each with its own module of one name) did not stop the next group: its runs started after the signal.
- A MemoryError was the machine's every time, so a config that always runs out of memory was never
  counted failed: not run, exit 5 and retrained on every invocation, its strategy ranked on the seeds that
  fit. The second invocation in a row that runs it out of memory fails it.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

import trainlab.experiment as experiment
from tests.child_env import skip_where_compare_spawns
from tests.compare_configs import iris_base
from trainlab.compare import compare, compare_files
from trainlab.compare.run_actions import ERROR_FILE
from trainlab.compare.strategies import parse_strategies
from trainlab.errors import Interrupted, WriteError

BASE = iris_base(epochs=2)
NO_SPACE = "No space left on device"


def _strategies(lr: float = 0.01, batch_size: int = 16):
    return parse_strategies({"strategies": {"adam": {"strategy.optimizer": {"name": "adam", "lr": lr},
                                                     "strategy.batch_size": batch_size}}})


def _entry(out: Path, task: str = "iris", name: str = "adam") -> dict:
    """The strategy's entry in the leaderboard.json the comparison wrote."""
    board = json.loads((out / "leaderboard.json").read_text())
    (entry,) = [e for e in board["tasks"][task]["strategies"] if e["name"] == name]
    return entry


def _train_raising(monkeypatch, exc: BaseException) -> list[str]:
    """Every run's training raises ``exc`` (before it writes anything: its folder keeps what it held);
    returns the folders it was asked to train."""
    asked: list[str] = []

    def train(config, out=None, **kwargs):
        asked.append(str(out))
        raise exc

    monkeypatch.setattr(experiment, "train", train)
    return asked


def _recorded_lr(run: Path) -> float:
    return yaml.safe_load((run / "config.yaml").read_text())["strategy"]["optimizer"]["lr"]


# --------------------------------------------------------------------------- a changed run's old results


def test_a_changed_run_the_machine_stopped_is_not_run_not_the_old_configs_result(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    compare({"iris": BASE}, _strategies(lr=0.01), out, seeds=1, jobs=1, live=False, quiet=True)
    assert _entry(out)["runs"] == 1
    run = out / "runs/iris/adam/seed-0"
    _train_raising(monkeypatch, OSError(errno.ENOSPC, NO_SPACE, str(run / "metrics.jsonl")))
    with pytest.raises(WriteError) as caught:  # exit 5: the same command trains it
        compare({"iris": BASE}, _strategies(lr=0.5), out, seeds=1, jobs=1, live=False, quiet=True)
    assert str(caught.value).startswith("1 run of 1 could not run for the machine's reasons (iris/adam/seed-0: ")
    # the folder still holds the lr 0.01 run (the overwrite never got going), which is not lr 0.5's result
    assert _recorded_lr(run) == 0.01 and json.loads((run / "summary.json").read_text())["status"] == "finished"
    entry = _entry(out)
    assert (entry["runs"], entry["failed"], entry["missing"]) == (0, 0, 1)
    assert entry["not_run"] == [{"seed": 0, "reason": f"cannot write ({run / 'metrics.jsonl'}): {NO_SPACE}"}]
    assert entry["metrics"]["test_accuracy"]["values"] == []


def test_a_changed_run_that_failed_is_failed_not_the_old_configs_result(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    compare({"iris": BASE}, _strategies(lr=0.01), out, seeds=1, jobs=1, live=False, quiet=True)
    _train_raising(monkeypatch, ValueError("the user's schedule raised"))
    compare({"iris": BASE}, _strategies(lr=0.5), out, seeds=1, jobs=1, live=False, quiet=True)
    entry = _entry(out)
    assert (entry["runs"], entry["failed"], entry["missing"]) == (0, 1, 0)
    # raised by _train_raising's stand-in, in this file: the user's code to the reason, which names its place
    assert [failure["seed"] for failure in entry["failures"]] == [0]
    assert entry["failures"][0]["reason"].startswith("ValueError: the user's schedule raised (at ")


def test_a_run_whose_data_changed_and_then_failed_is_failed_not_the_old_datas_result(tmp_path, monkeypatch):
    table = tmp_path / "table.csv"
    table.write_text("a,b,y\n" + "".join(f"{i},{(i * 7) % 5},{i % 2}\n" for i in range(40)))
    base = {**BASE, "data": {"source": "csv", "path": str(table), "target": "y"}}
    out = tmp_path / "cmp"
    compare({"iris": base}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)
    assert _entry(out)["runs"] == 1
    table.write_text(table.read_text() + "40,3,0\n41,2,1\n")  # other data: the run is trained again
    _train_raising(monkeypatch, ValueError("cannot parse row 41"))
    compare({"iris": base}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)
    entry = _entry(out)
    assert (entry["runs"], entry["failed"], entry["missing"]) == (0, 1, 0)


def test_an_unchanged_finished_run_is_still_read_as_finished(tmp_path, monkeypatch):
    """The other side of the test: the run the folder holds is the plan's, and is neither trained nor lost."""
    out = tmp_path / "cmp"
    compare({"iris": BASE}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)
    asked = _train_raising(monkeypatch, AssertionError("a finished run was trained again"))
    compare({"iris": BASE}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)
    summary = json.loads((out / "runs/iris/adam/seed-0/summary.json").read_text())
    entry = _entry(out)
    assert asked == [] and (entry["runs"], entry["failed"], entry["missing"]) == (1, 0, 0)
    assert entry["metrics"]["test_accuracy"]["values"] == [summary["test"]["accuracy"]]


# --------------------------------------------------------------------------- a stop signal across groups

NET = '''
import torch.nn as nn


def make_net(input_shape, output_dim, hidden):
    (features,) = input_shape
    return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, output_dim))
'''


@pytest.fixture
def two_folders(tmp_path, monkeypatch):
    """extA/ and extB/, each with base.yaml and its own grpnet.py (one module name, two files: the comparison
    runs each folder's task as a group of its own, under its code policy); and the strategies file."""
    bases = []
    for name in ("extA", "extB"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "grpnet.py").write_text(NET)
        config = {**BASE, "name": f"net-{name}", "model": {"name": "grpnet:make_net", "hidden": 4}}
        (folder / "base.yaml").write_text(yaml.safe_dump(config))
        bases.append(folder / "base.yaml")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"strategies": {"adam": None}}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINLAB_ALLOW_CODE", raising=False)
    before = set(sys.modules)
    yield bases, tmp_path / "s.yaml"
    for module in set(sys.modules) - before:
        if module.split("__trainlab_")[0] == "grpnet":
            sys.modules.pop(module, None)


def _signal_as_first_run_finishes(monkeypatch, signum: int) -> None:
    """The first run to finish sends ``signum`` to its own process (this one with --jobs 1, its worker's with
    --jobs 2) as its final evaluation starts: the run's own handler takes it and lets it complete."""
    real, sent = experiment.summarize, []

    def summarize(built):
        if not sent:
            sent.append(signum)
            os.kill(os.getpid(), signum)
            time.sleep(0.1)
        return real(built)

    monkeypatch.setattr(experiment, "summarize", summarize)


@pytest.mark.parametrize(("jobs", "signum"), [(1, signal.SIGINT), (2, signal.SIGTERM)], ids=["jobs1", "jobs2"])
def test_a_signal_as_the_first_groups_last_run_finishes_starts_no_run_of_the_next_group(two_folders, jobs, signum,
                                                                                         monkeypatch, capfd):
    if jobs > 1:
        skip_where_compare_spawns("this test's monkeypatched experiment.summarize")
    bases, strategies = two_folders
    _signal_as_first_run_finishes(monkeypatch, signum)
    out = Path("cmp")
    with pytest.raises(Interrupted) as caught:
        compare_files(bases, strategies, out=out, seeds=1, jobs=jobs, live=False, quiet=True)
    assert json.loads((out / "runs/base/adam/seed-0/run.json").read_text())["status"] == "finished"
    assert not (out / "runs/base-2").exists(), "a run of the next group started after the signal"
    assert caught.value.exit_code == 128 + signum
    assert str(caught.value) == ("interrupted: 1 run was finishing and completed; run the same command again to "
                                 "finish the comparison")
    assert "received while finishing" not in capfd.readouterr().err


def test_a_signal_as_the_last_groups_last_run_finishes_completes_with_one_warning(two_folders, monkeypatch, capfd):
    """The next group holding nothing to run (its run finished in an earlier invocation): nothing is left to
    stop, so the comparison completes (exit 0) with one warning, said once, after the last group."""
    bases, strategies = two_folders
    out = Path("cmp")
    compare_files(bases, strategies, out=out, seeds=1, jobs=1, live=False, quiet=True)
    first = out / "runs/base/adam/seed-0"
    for file in sorted(first.rglob("*"), reverse=True):  # the first group's run, to train again
        file.rmdir() if file.is_dir() else file.unlink()
    capfd.readouterr()
    _signal_as_first_run_finishes(monkeypatch, signal.SIGINT)
    board = compare_files(bases, strategies, out=out, seeds=1, jobs=1, live=False, quiet=True)
    assert [board["tasks"][task]["strategies"][0]["runs"] for task in ("base", "base-2")] == [1, 1]
    warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: SIGINT received while finishing; the comparison's runs are complete"]


# --------------------------------------------------------------------------- out of memory twice


def test_out_of_memory_is_not_run_once_then_failed_with_advice(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    run = out / "runs/iris/adam/seed-0"
    asked = _train_raising(monkeypatch, MemoryError("CPU: tried to allocate 64 GiB"))
    with pytest.raises(WriteError) as caught:  # the first time: the machine's (exit 5), trained again next time
        compare({"iris": BASE}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)
    assert "rerun the same command once memory is free" in str(caught.value)
    entry = _entry(out)
    assert (entry["runs"], entry["failed"], entry["missing"]) == (0, 0, 1)
    assert json.loads((run / ERROR_FILE).read_text())["machine_failure"] is True

    compare({"iris": BASE}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)  # no exit 5 now
    assert len(asked) == 2
    entry = _entry(out)
    assert (entry["runs"], entry["failed"], entry["missing"]) == (0, 1, 0) and entry["not_run"] == []
    (failure,) = entry["failures"]
    assert failure["reason"].startswith("out of memory (MemoryError: CPU: tried to allocate 64 GiB) again, as in the "
                                        "invocation before")
    assert "make strategy.batch_size or the model smaller" in failure["reason"]
    assert json.loads((run / ERROR_FILE).read_text())["machine_failure"] is False

    compare({"iris": BASE}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)  # skipped as failed
    assert len(asked) == 2 and _entry(out)["failed"] == 1


def test_out_of_memory_again_with_a_smaller_batch_is_the_machine_s_once_more(tmp_path, monkeypatch):
    """Another config (the advice taken) is another run: its first MemoryError is not run, not failed."""
    out = tmp_path / "cmp"
    _train_raising(monkeypatch, MemoryError())
    for batch_size in (16, 8):
        with pytest.raises(WriteError):
            compare({"iris": BASE}, _strategies(batch_size=batch_size), out, seeds=1, jobs=1, live=False, quiet=True)
        entry = _entry(out)
        assert (entry["runs"], entry["failed"], entry["missing"]) == (0, 0, 1)


def test_a_disk_full_then_out_of_memory_is_not_run(tmp_path, monkeypatch):
    """Only a MemoryError after a MemoryError is the config's: after a full disk it is the machine's once."""
    out = tmp_path / "cmp"
    _train_raising(monkeypatch, OSError(errno.ENOSPC, NO_SPACE, str(tmp_path / "x")))
    with pytest.raises(WriteError):
        compare({"iris": BASE}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)
    _train_raising(monkeypatch, MemoryError())
    with pytest.raises(WriteError):
        compare({"iris": BASE}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)
    assert _entry(out)["missing"] == 1
