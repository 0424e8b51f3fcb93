"""Run folders: --overwrite deletes only provable run folders and swaps the new run in only when it has
something to keep; the lock is atomic; leftovers of killed processes are cleaned, live ones never."""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import LINREG
from trainlab.cli import main
from trainlab.errors import RunDirError
from trainlab.run_folder import RunDir, RunLock, clean_stale_temporaries
from trainlab.run_layout import is_run_folder
from trainlab.run_staging import staging_name


def _config(tmp_path: Path, **strategy) -> Path:
    config = {**LINREG, "output": {"progress": "off"},
              "strategy": {**LINREG["strategy"], "epochs": 2, **strategy}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _fake_run(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text('{"format": 1, "status": "finished"}')
    (folder / "model.safetensors").write_bytes(b"old weights")
    return folder


# --------------------------------------------------------------------------- what --overwrite may delete

def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    before = _tree(thesis)
    code = main(["train", str(_config(tmp_path)), "--out", str(thesis), "--overwrite", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a trainlab run folder" in err
    assert _tree(thesis) == before


def test_overwrite_refuses_the_working_directory_even_with_a_run_json(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path)
    (tmp_path / "run.json").write_text('{"format": 1}')  # planted: still the cwd holding the config
    before = _tree(tmp_path)
    code = main(["train", str(config), "--out", ".", "--overwrite", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "working directory" in err and err.count("\n") == 1
    assert _tree(tmp_path) == before


def test_overwrite_refuses_a_parent_of_the_cwd(tmp_path, monkeypatch):
    _fake_run(tmp_path / "run")
    inner = tmp_path / "run" / "checkpoint"
    inner.mkdir()
    monkeypatch.chdir(inner)
    with pytest.raises(RunDirError, match="working directory or one of its parents"):
        RunDir.create(tmp_path / "run", overwrite=True)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == b"old weights"


def test_overwrite_refuses_a_folder_holding_a_protected_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _fake_run(tmp_path / "run")
    (run / "config.yaml").write_text("name: x\n")  # the config the new run reads lives in the old run
    with pytest.raises(RunDirError, match="which this run reads"):
        RunDir.create(run, overwrite=True, protect=[run / "config.yaml"])
    assert (run / "config.yaml").read_text() == "name: x\n"


def test_overwrite_refuses_a_run_folder_holding_foreign_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _fake_run(tmp_path / "run")
    (run / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunDirError, match="data.csv, which trainlab did not write"):
        RunDir.create(run, overwrite=True)
    assert (run / "data.csv").is_file()


@pytest.mark.parametrize("planted", ["null", "[1, 2]", '{"format": 99}', "not json", "dir"])
def test_a_run_json_that_is_not_ours_does_not_prove_a_run_folder(tmp_path, planted):
    folder = tmp_path / "x"
    folder.mkdir()
    if planted == "dir":
        (folder / "run.json").mkdir()
    else:
        (folder / "run.json").write_text(planted)
    assert not is_run_folder(folder)


# --------------------------------------------------------------------------- staging and the swap

def test_overwrite_stages_beside_and_commit_swaps_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    final = _fake_run(tmp_path / "run")
    run = RunDir.create(final, overwrite=True)
    assert run.staged and run.path == staging_name(final) and run.final_path == final
    assert (final / "model.safetensors").read_bytes() == b"old weights"  # untouched until the commit
    with pytest.raises(RunDirError, match="in use"):
        RunDir.open_existing(final)  # the old run stays locked while it is being replaced
    run.write_info(status="running")
    (run.path / "model.safetensors").write_bytes(b"new weights")
    assert run.commit_overwrite() == final and run.path == final and not run.staged
    assert (final / "model.safetensors").read_bytes() == b"new weights"
    assert not staging_name(final).exists()
    run.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and not (final / ".lock").exists()


def test_a_staged_run_with_nothing_to_keep_is_discarded_on_close(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    final = _fake_run(tmp_path / "run")
    before = _tree(final)
    run = RunDir.create(final, overwrite=True)
    run.write_info(status="running")
    run.close()
    assert _tree(final) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_overwriting_a_finished_run_with_a_diverging_one_keeps_the_old_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    before = _tree(out)
    bad = _config(tmp_path, optimizer={"name": "sgd", "lr": 1e12}, epochs=50)
    code = main(["train", str(bad), "--out", str(out), "--overwrite", "--quiet"])
    assert code == 4, capsys.readouterr().err
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "run"]


def test_overwriting_a_run_with_a_good_one_replaces_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    old_model = (out / "model.safetensors").read_bytes()
    config = _config(tmp_path, optimizer={"name": "sgd", "lr": 0.02})
    assert main(["train", str(config), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert (out / "summary.json").is_file() and (out / "model.safetensors").read_bytes() != old_model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "run"]


# --------------------------------------------------------------------------- the lock

def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _race(folder: str, start, attempted, results) -> None:
    lock = RunLock(Path(folder))
    start.wait()
    try:
        lock.acquire()
        won = True
    except RunDirError:
        won = False
    attempted.wait()  # hold the lock until both have tried
    results.put(won)
    lock.release()


@pytest.mark.slow
def test_processes_racing_for_a_stale_lock_exactly_one_wins(tmp_path):
    """Four racers per try make the old read-unlink-create scheme fail in about 1 try of 6."""
    context, racers_per_try = multiprocessing.get_context("fork"), 4
    dead = _dead_pid()
    for attempt in range(30):
        folder = tmp_path / f"r{attempt}"
        folder.mkdir()
        (folder / ".lock").write_text(str(dead))  # left by a killed run
        # barriers with a timeout, and no racer outliving the test: a racer that died left the others at a
        # barrier for ever, and multiprocessing joins its live children as the pytest-xdist worker exits (a hang)
        start, attempted = context.Barrier(racers_per_try, timeout=60), context.Barrier(racers_per_try, timeout=60)
        results = context.Queue()
        racers = [context.Process(target=_race, args=(str(folder), start, attempted, results), daemon=True)
                  for _ in range(racers_per_try)]
        for racer in racers:
            racer.start()
        try:
            outcomes = [results.get(timeout=60) for _ in racers]
        finally:
            for racer in racers:
                racer.join(timeout=30)
                if racer.is_alive():
                    racer.kill()
                    racer.join()
        assert sum(outcomes) == 1, f"attempt {attempt}: {outcomes}"


def test_lock_that_is_a_directory_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    (out / ".lock").mkdir(parents=True)
    code = main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is a folder, not a lock file" in err


# --------------------------------------------------------------------------- leftovers

def test_clean_stale_temporaries_removes_dead_ones_only(tmp_path):
    run, dead, live = tmp_path / "run", _dead_pid(), os.getpid()
    (run / "checkpoint").mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stale = [run / "checkpoint" / f".step-000000010.tmp-{dead}", run / "checkpoint" / f".best.old-{dead}",
                 run / ".model.safetensors.k2j4h_x9.tmp"]
        kept = [run / "checkpoint" / f".step-000000020.tmp-{sleeper.pid}",
                run / "checkpoint" / f".step-000000030.tmp-{live}", run / "checkpoint" / "step-000000005",
                run / "model.safetensors", run / "metrics.jsonl"]
        for path in stale[:2] + kept[:3]:
            path.mkdir()
            (path / "tensors.safetensors").write_bytes(b"x")
        for path in stale[2:] + kept[3:]:
            path.write_bytes(b"x")
        # a run's end re-saves its last step: killed between the swap's two renames, only the set-aside
        # copy of step 40 is left (and the new copy, not yet renamed): the copy is put back, not removed
        for path in (run / "checkpoint" / f".step-000000040.old-{dead}", run / "checkpoint" / f".step-000000005.old-{dead}"):
            path.mkdir()
            (path / "tensors.safetensors").write_bytes(path.name.encode())
        stale.append(run / "checkpoint" / f".step-000000005.old-{dead}")  # step 5 is there: removed
        removed = clean_stale_temporaries(run)
        assert sorted(removed) == sorted(stale)
        assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
        assert (run / "checkpoint" / "step-000000040" / "tensors.safetensors").read_bytes() == \
            f".step-000000040.old-{dead}".encode()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_folder_left_by_a_run_killed_before_run_json_is_reused(tmp_path, monkeypatch):
    """Killed between taking the lock and writing run.json: only ``.lock`` and temporaries remain."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(str(_dead_pid()))
    (out / ".run.json.k2j4h_x9.tmp").write_text("{")
    (out / "labels.json").write_text("{")  # written before run.json
    (out / "config.yaml").write_text("half")
    code = main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"])
    assert code == 0 and is_run_folder(out)
    assert not (out / ".run.json.k2j4h_x9.tmp").exists() and not (out / "labels.json").exists()


def test_creation_files_without_a_lock_are_not_taken_for_a_killed_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("the user's own")
    code = main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (out / "config.yaml").read_text() == "the user's own"


def test_a_folder_with_a_lock_and_a_foreign_file_is_still_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(str(_dead_pid()))
    (out / "notes.txt").write_text("mine")
    code = main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"])
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"


def test_resume_cleans_leftovers_of_a_killed_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = _fake_run(tmp_path / "run")
    leftover = out / "checkpoint" / f".step-000000003.tmp-{_dead_pid()}"
    leftover.mkdir(parents=True)
    RunDir.open_existing(out).close()
    assert not leftover.exists()


@pytest.mark.parametrize("code, exit_code", [(errno.EROFS, 5), (errno.ENOSPC, 5), (errno.EACCES, 5),
                                             (errno.ENOTDIR, 2), (errno.ENAMETOOLONG, 2)])
def test_an_output_folder_the_disk_refuses_exits_5_and_a_bad_path_exits_2(tmp_path, monkeypatch, capsys, code,
                                                                          exit_code):
    def refuse(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(LINREG))
    assert main(["train", str(config), "--out", str(tmp_path / "new" / "run")]) == exit_code
    assert capsys.readouterr().err == (f"error: cannot create output folder {tmp_path / 'new' / 'run'}: "
                                       f"{os.strerror(code)}\n")


def test_resume_adopts_an_overwrite_killed_after_its_first_checkpoint_and_a_new_overwrite_replaces_it(tmp_path):
    """A `train --overwrite` SIGKILLed mid-run leaves its staging folder; resume continues it there."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**LINREG, "strategy": {**LINREG["strategy"], "epochs": 20},
                                      "output": {"progress": "off", "checkpoint": {"every_n_steps": 5}}}))
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    old_model = (out / "model.safetensors").read_bytes()
    # what a killed overwrite leaves: a complete copy of a run stopped at a checkpoint, under a dead pid's name
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stranded = out.parent / f".run.new-{dead}"
    second = tmp_path / "second"
    assert main(["train", str(config), "--out", str(second), "--set", "seed=7", "--quiet",
                 "--set", "strategy.max_steps=7"]) == 0
    shutil.copytree(second, stranded)
    (stranded / "model.safetensors").unlink()  # stopped before finishing: checkpoints only
    (stranded / "summary.json").unlink()
    info = json.loads((stranded / "run.json").read_text())
    (stranded / "run.json").write_text(json.dumps({**info, "status": "running"}))
    assert RunDir(stranded).has_something_to_keep()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert not stranded.exists() and (out / "model.safetensors").read_bytes() != old_model
    assert json.loads((out / "summary.json").read_text())["seed"] == 7  # the overwrite's run, finished
    # a second stranded attempt, then a new --overwrite: the attempt goes, the new run replaces the folder
    shutil.copytree(second, stranded)
    assert main(["train", str(config), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert not stranded.exists() and json.loads((out / "summary.json").read_text())["seed"] == LINREG.get("seed", 0)


def test_a_replaced_run_left_by_a_kill_during_its_deletion_is_removed_not_adopted(tmp_path, capsys):
    """commit_overwrite swaps the folders, so the replaced run carries the staging name until deleted:
    a kill then must not make resume bring the old run back and delete the finished new one."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**LINREG, "strategy": {**LINREG["strategy"], "epochs": 20},
                                      "output": {"progress": "off", "checkpoint": {"every_n_steps": 5}}}))
    old, out = tmp_path / "old", tmp_path / "run"
    assert main(["train", str(config), "--out", str(old), "--quiet"]) == 0
    assert main(["train", str(config), "--out", str(out), "--set", "seed=7", "--quiet"]) == 0  # created later
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    aside = out.parent / f".run.new-{dead}"
    shutil.copytree(old, aside)  # the state a kill between the swap and the deletion leaves
    assert main(["resume", str(out), "--quiet"]) == 0  # the new run is finished: nothing to resume
    assert "already finished" in capsys.readouterr().err
    assert not aside.exists() and json.loads((out / "summary.json").read_text())["seed"] == 7
    shutil.copytree(old, aside)
    (aside / "run.json").unlink()  # the deletion got as far as run.json: checkpoints remain
    assert main(["resume", str(out), "--quiet"]) == 0
    assert not aside.exists() and json.loads((out / "summary.json").read_text())["seed"] == 7
    shutil.copytree(old, aside)
    (aside / "run.json").write_text("{")  # a damaged record is not proof of anything: kept
    assert main(["resume", str(out), "--quiet"]) == 0
    assert aside.exists()


def test_record_files_are_read_bounded_and_damaged_bytes_do_not_stop_the_readers(tmp_path):
    from trainlab.compare.run_record import read_metrics_lines
    from trainlab.records import read_record_text
    from trainlab.report.sources import read_metrics

    with pytest.raises(ValueError, match="is not a regular file"):
        read_record_text(Path("/dev/zero"))  # not read without end
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="is a symbolic link"):
        read_record_text(tmp_path / "zero")  # a record is never read through a link
    (tmp_path / "big").write_bytes(b"x" * 2049)
    with pytest.raises(ValueError, match="larger than"):
        read_record_text(tmp_path / "big", limit=2048)
    good = '{"epoch": 1, "val_loss": 0.5}\n'
    (tmp_path / "metrics.jsonl").write_bytes(good.encode() + b'{"epoch": 2, "val_loss": \xff\xfe}\n' + good.encode())
    assert [r["epoch"] for r in read_metrics_lines(tmp_path, "the test").records] == [1, 1]  # the damaged line skipped like a torn one
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl")[0]] == [1, 1]
    (tmp_path / "metrics.jsonl").unlink()
    (tmp_path / "metrics.jsonl").symlink_to("/dev/zero")
    assert read_metrics_lines(tmp_path, "the test").records == []


def test_leftovers_named_by_a_reused_pid_are_stale_and_this_processs_own_are_not(tmp_path):
    """A container's trainlab is pid 1 every time: what the killed pid 1 left is named by the live pid of
    the rerun. A leftover last changed before the process now holding its pid started is stale."""
    from trainlab.run_leftovers import dead_siblings, is_stale_temporary
    from trainlab.run_lock import process_started_at, writer_gone

    own = os.getpid()
    started = process_started_at(own)
    assert started is not None and started <= time.time()
    final = tmp_path / "run"
    final.mkdir()
    ours, earlier = tmp_path / f".run.new-{own}", tmp_path / "checkpoint" / f".step-000000010.tmp-{own}"
    ours.mkdir()
    earlier.parent.mkdir()
    earlier.mkdir()
    assert not is_stale_temporary(ours) and not list(dead_siblings(final))  # this process's own, just made
    os.utime(earlier, (started - 3600, started - 3600))  # left by the pid's earlier holder
    assert is_stale_temporary(earlier) and writer_gone(own, started - 3600) and not writer_gone(own, time.time())
    os.utime(ours, (started - 3600, started - 3600))
    assert [entry for _, entry in dead_siblings(final)] == [ours]


def test_a_zombie_is_no_live_process():
    """A killed tune worker its parent has not reaped yet answers signal 0: it must still count as dead,
    or the surviving worker waits for its trial forever."""
    from trainlab.run_lock import pid_alive, writer_gone

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 30
    while time.time() < deadline:
        with open(f"/proc/{child.pid}/stat") as handle:
            if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    try:
        os.kill(child.pid, 0)  # signal 0 still reaches it
        assert not pid_alive(child.pid) and writer_gone(child.pid, time.time())
    finally:
        child.wait()
    assert pid_alive(os.getpid())


def test_resume_remakes_the_records_predict_reads_and_the_finished_run_vouches_for_them(tmp_path):
    """A model.json damaged while the run was stopped is written again by resume (from the data the run
    trains on), so the finished run is predictable; run.json then records each record's SHA-256."""
    import hashlib

    import numpy as np

    import trainlab

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**LINREG, "strategy": {**LINREG["strategy"], "epochs": 20},
                                      "output": {"progress": "off", "checkpoint": {"every_n_steps": 5}}}))
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--quiet"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["records_sha256"] == {name: hashlib.sha256((run / name).read_bytes()).hexdigest()
                                      for name in ("model.json", "preprocessing.json")}
    for name in ("model.safetensors", "summary.json"):
        (run / name).unlink()
    (run / "run.json").write_text(json.dumps({key: value for key, value in info.items()
                                              if key not in ("model_sha256", "records_sha256")} | {"status": "interrupted"}))
    (run / "model.json").write_text('{"format": 1, "task": ')  # torn while stopped
    assert main(["resume", str(run), "--quiet"]) == 0
    assert trainlab.load_run(run).predict(np.zeros((2, 1), np.float32)).shape == (2,)


@pytest.mark.parametrize("linked", ["checkpoint", "metrics.jsonl"])
def test_resume_refuses_a_run_folder_whose_records_are_links_before_writing_or_deleting(
        tmp_path, monkeypatch, capsys, linked):
    """A sent folder whose checkpoint/ links to another run's: resume pruned (deleted) that run's checkpoints."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "running"}))
    victim = tmp_path / "other-run" / linked
    victim.parent.mkdir()
    shutil.move(out / linked, victim)
    if linked == "checkpoint":
        (victim / "step-000000001").mkdir()
        (victim / "step-000000001" / "data").write_text("precious")
    (out / linked).symlink_to(victim)
    before = _tree(victim.parent)
    code = main(["resume", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"its {linked} is a symbolic link" in err
    assert _tree(victim.parent) == before and not (out / ".lock").exists()


def test_an_existing_run_folder_is_refused_in_the_words_of_the_caller(tmp_path, monkeypatch, capsys):
    """From Python the refusal named the command line's --overwrite and 'trainlab resume'."""
    from trainlab.errors import RunDirError
    from trainlab.experiment import train

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"]) == 0
    assert main(["train", str(_config(tmp_path)), "--out", str(out), "--quiet"]) == 2
    assert "pass --overwrite to replace it, or 'trainlab resume" in capsys.readouterr().err
    with pytest.raises(RunDirError) as refused:
        train(str(_config(tmp_path)), out=out, quiet=True)
    assert "pass overwrite=True to replace it, or resume_if_exists=True to continue it" in str(refused.value)


def test_a_lock_whose_file_cannot_be_removed_is_still_released_without_an_error_of_its_own(tmp_path, monkeypatch):
    """A run folder made unwritable mid-run: the unlink of .lock failed inside the finally that releases it, so
    the error line named .lock instead of the results file that could not be written, and the fd stayed open."""
    lock = RunLock(tmp_path)
    lock.acquire()
    fd = lock._fd

    def refused(self, *args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted", str(self))

    monkeypatch.setattr(Path, "unlink", refused)
    lock.release()  # no exception of its own
    assert not lock.held
    with pytest.raises(OSError):
        os.fstat(fd)  # closed
    monkeypatch.undo()
    again = RunLock(tmp_path)  # the file left behind is no lock: flock is
    again.acquire()
    again.release()
    assert not (tmp_path / ".lock").exists()


# --------------------------------------------------------------------------- resuming a finished run

def test_resuming_a_finished_run_is_a_no_op_exit_0_and_leaves_the_folder_byte_identical(tmp_path, capsys):
    """A preemptible job that always re-submits `train ... --resume` must not fail once the run is done."""
    config, out = _config(tmp_path), tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    before, stored = _tree(out), json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    line = f"run {out} already finished (test mse {stored['test']['mse']:.6g}); nothing to resume"  # not the loss
    for argv in (["train", str(config), "--out", str(out), "--resume"], ["resume", str(out)],
                 ["resume", str(out), "--quiet"]):  # the line is the whole result: said under --quiet too
        assert main(argv) == 0
        assert capsys.readouterr() == ("", line + "\n")
        assert _tree(out) == before
    assert main(["train", str(config), "--out", str(out), "--resume", "--set", "seed=3"]) == 2  # another config
    assert "holds a finished run of another config" in capsys.readouterr().err and _tree(out) == before


def test_the_python_api_returns_a_finished_runs_summary_on_resume(tmp_path, capsys):
    from trainlab.experiment import train
    from trainlab.run_resume import resume

    config, out = _config(tmp_path), tmp_path / "run"
    first, _ = train(str(config), out=out, quiet=True)
    before = _tree(out)
    for summary, path in (train(str(config), out=out, quiet=True, resume_if_exists=True), resume(out, quiet=True)):
        assert path == out and _tree(out) == before
        line = summary["notes"].pop("nothing_to_resume")
        assert line.endswith("; nothing to resume") and summary == json.loads(json.dumps(first))


def test_a_finished_run_whose_summary_is_damaged_is_refused_on_resume(tmp_path, capsys):
    config, out = _config(tmp_path), tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    (out / "summary.json").write_text("{")
    capsys.readouterr()
    assert main(["resume", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: run {out} already finished, but its {out / 'summary.json'} cannot be read")
    assert err.count("\n") == 1 and (out / "summary.json").read_text() == "{"
