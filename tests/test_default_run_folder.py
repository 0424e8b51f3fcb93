"""The default run folder (``runs/<name>-<UTC second>``) of runs started in the same second, and
``train --resume --overwrite``.

Runs started in the same second each claim a folder of their own (the name, ``-2``, ``-3``, ...: an
exclusive mkdir each, RunDir.create_at_free_name); an explicit ``--out`` that exists is refused as before.
The clock is frozen so that the runs collide every time, not only when the scheduler makes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from tests.child_env import iris_on_file, with_repo_first
from trainlab import run_folder
from trainlab.cli import main
from trainlab.errors import ConfigError, RunDirError
from trainlab.experiment import train
from trainlab.run_folder import RunDir, default_dir

FROZEN = datetime(2026, 12, 6, 1, 19, 29, tzinfo=UTC)
STAMPED = "iris-mlp-20261206T011929Z"  # default_dir's name at FROZEN

IRIS = {
    "name": "iris-mlp",
    "seed": 0,
    "data": {"source": "iris"},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                 "epochs": 2},
    "metrics": ["accuracy"],
    "runtime": {"num_threads": 1},
    "output": {"progress": "off"},
}


class _FrozenClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return FROZEN.astimezone(tz) if tz is not None else FROZEN.replace(tzinfo=None)


# A CLI run in its own process with default_dir's clock frozen at FROZEN; argv follows on its command line.
FROZEN_CLI = f"""
import sys
from datetime import UTC, datetime
from trainlab import run_folder

class Frozen(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime({FROZEN.year}, {FROZEN.month}, {FROZEN.day}, {FROZEN.hour}, {FROZEN.minute},
                        {FROZEN.second}, tzinfo=UTC)

run_folder.datetime = Frozen
from trainlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def frozen_clock(monkeypatch):
    monkeypatch.setattr(run_folder, "datetime", _FrozenClock)
    assert default_dir("iris-mlp") == Path("runs") / STAMPED


def _lr(folder: Path) -> float:
    return yaml.safe_load((folder / "config.yaml").read_text())["strategy"]["optimizer"]["lr"]


@pytest.mark.slow
def test_parallel_cli_runs_in_one_second_each_get_their_own_folder(tmp_path):
    """The user's loop: ``trainlab train iris.yaml --set strategy.optimizer.lr=$lr --quiet &`` for three rates,
    all in the same second (frozen): every one exits 0, into a folder of its own holding its own lr."""
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(iris_on_file(IRIS)))
    rates = [0.001, 0.01, 0.1]
    env = {**os.environ, "PYTHONPATH": with_repo_first(Path(__file__).resolve().parents[1])}
    jobs = [subprocess.Popen([sys.executable, "-c", FROZEN_CLI, "train", "iris.yaml", "--quiet",
                              "--set", f"strategy.optimizer.lr={lr}"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for lr in rates]
    results = [(job.wait(timeout=600), job.stderr.read()) for job in jobs]
    for job in jobs:
        job.stdout.close()
        job.stderr.close()
    assert [rc for rc, _ in results] == [0, 0, 0], [err for _, err in results]
    folders = sorted((tmp_path / "runs").iterdir())
    assert [f.name for f in folders] == [STAMPED, f"{STAMPED}-2", f"{STAMPED}-3"]
    assert sorted(_lr(f) for f in folders) == rates  # each its own config, none lost or doubled
    for folder in folders:
        info = yaml.safe_load((folder / "run.json").read_text())  # JSON is YAML
        assert info["status"] == "finished"
        assert not (folder / ".lock").exists()


def test_claims_racing_for_one_name_each_win_a_different_folder(tmp_path):
    """Sixteen threads released together to claim the same name: sixteen folders, name, -2 ... -16, each
    locked by its claimer, none shared."""
    path = tmp_path / "runs" / STAMPED
    count = 16
    start = threading.Barrier(count)
    claimed: list[RunDir] = []
    failures: list[BaseException] = []

    def claim() -> None:
        start.wait()
        try:
            claimed.append(RunDir.create_at_free_name(path))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=claim) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        names = sorted((run.path.name for run in claimed), key=lambda name: (len(name), name))
        assert names == [STAMPED] + [f"{STAMPED}-{n}" for n in range(2, count + 1)]
        assert all(run.lock.held for run in claimed)
    finally:
        for run in claimed:
            run.close()


def test_a_taken_name_is_never_reused_whatever_it_holds(tmp_path):
    """A file, an empty folder, a dangling link: each name is passed over, not used, emptied or replaced."""
    path = tmp_path / STAMPED
    path.mkdir()  # empty: RunDir.create would use it
    (tmp_path / f"{STAMPED}-2").write_text("mine")
    (tmp_path / f"{STAMPED}-3").symlink_to(tmp_path / "nowhere")
    run = RunDir.create_at_free_name(path)
    try:
        assert run.path == tmp_path / f"{STAMPED}-4"
    finally:
        run.close()
    assert list(path.iterdir()) == [] and (tmp_path / f"{STAMPED}-2").read_text() == "mine"
    assert os.readlink(tmp_path / f"{STAMPED}-3") == str(tmp_path / "nowhere")


def test_python_train_without_out_takes_the_next_free_name(tmp_path, monkeypatch, frozen_clock):
    """trainlab's train with neither out nor output.dir, twice in one (frozen) second: two runs; the second,
    another config's, with resume_if_exists too, does not resume or refuse the first's folder."""
    monkeypatch.chdir(tmp_path)
    first = train(IRIS, quiet=True)[1]
    other = {**IRIS, "strategy": {**IRIS["strategy"], "optimizer": {"name": "adam", "lr": 0.1}}}
    second = train(other, quiet=True, resume_if_exists=True)[1]
    assert (first, second) == (Path("runs") / STAMPED, Path("runs") / f"{STAMPED}-2")
    assert (_lr(first), _lr(second)) == (0.01, 0.1)


def test_an_existing_out_named_on_the_command_line_is_still_refused(tmp_path, monkeypatch, capsys):
    """``--out`` names the folder: one that holds a run is refused as before (overwrite or resume it), no
    suffix chosen."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(IRIS))
    assert main(["train", "iris.yaml", "--out", "r6", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", "iris.yaml", "--out", "r6", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: output folder r6 already exists; pass --overwrite") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris.yaml", "r6"]


def test_python_train_into_an_existing_out_is_still_refused(tmp_path):
    out = tmp_path / "run"
    train(IRIS, out=out, quiet=True)
    with pytest.raises(RunDirError, match="already exists; pass overwrite=True"):
        train(IRIS, out=out, quiet=True)


def test_train_resume_with_overwrite_is_refused_before_the_config_is_read(tmp_path, monkeypatch, capsys):
    """The config file does not exist: the line is still the flags' (nothing was read), one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        main(["train", "missing.yaml", "--out", "r6", "--resume", "--overwrite", "--set", "strategy.epochs=30"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --overwrite and --resume contradict each other: --overwrite replaces the run "
                          "in --out with a new one, --resume continues it; pass one of them")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_train_resume_with_overwrite_on_a_finished_run_changes_nothing(tmp_path, monkeypatch, capsys):
    """Before: "already finished; nothing to resume", exit 0, --overwrite ignored. Now exit 2, the run as it was."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(IRIS))
    assert main(["train", "iris.yaml", "--out", "r6", "--quiet"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "r6").iterdir() if p.is_file()}
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["train", "iris.yaml", "--out", "r6", "--resume", "--overwrite", "--quiet"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.startswith("error: --overwrite and --resume contradict each other")
    assert {p.name: p.read_bytes() for p in (tmp_path / "r6").iterdir() if p.is_file()} == before


def test_python_train_refuses_overwrite_with_resume_if_exists(tmp_path):
    with pytest.raises(ConfigError, match=r"^overwrite=True and resume_if_exists=True contradict each other"):
        train(tmp_path / "missing.yaml", out=tmp_path / "r6", overwrite=True, resume_if_exists=True)
    assert list(tmp_path.iterdir()) == []
