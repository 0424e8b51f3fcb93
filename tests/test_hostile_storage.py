"""A run folder under hostile storage: a full disk during an overwrite, the folder deleted while the run
trains, paths a shell would split, and the runs of a comparison that wait side by side.

- ``train --overwrite`` keeps the old run until the new one has something to keep (its results, or a step
  checkpoint to resume from; ``best/`` alone is none): stopped by a signal while a full disk holds up its
  results or its checkpoint, the old run is untouched, as the message says.
- ``rm -rf`` of the run folder while it trains (after a checkpoint, which makes the folder again): the
  records the run started with come back from memory, or the run ends in an error, never "saved" for a
  folder that eval and resume refuse.
- Every ``trainlab resume PATH`` hint pastes back into a shell as the same path.
- The warnings of a full disk name the run folder (or the file) they are about.

A full disk is a write that raises ENOSPC (mounting a small tmpfs needs root); real processes are forks of
the test process (tests/forked_runs.py).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shlex
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

import trainlab.atomic
import trainlab.engine.checkpoint
import trainlab.experiment
from tests.forked_runs import fork_cli, run_inline, status, wait, wait_until, write_config
from trainlab import Callback
from trainlab.errors import WriteError
from trainlab.run_folder import RunDir
from trainlab.shell_command import quoted_command

CONFIG = {
    "name": "hostile",
    "seed": 5,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 64,
                 "epochs": 3},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_epochs": 1, "keep_last": 2, "every_seconds": None}},
    "runtime": {"num_threads": 1},
}
AWKWARD = "my runs/ünï ☃ 'q' $HOME/r 1"  # a space, a quote, a shell variable, non-ASCII


def _enospc(path: Path | str | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([str(path)] if path else []))


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the lock aside) by relative path: its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _errors(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A config and a finished run of it (the run an overwrite must not lose; the imports forks share)."""
    root = tmp_path_factory.mktemp("hostile")
    config = write_config(root / "config.yaml", CONFIG)
    out = root / "finished"
    assert run_inline(["train", str(config), "--out", str(out), "--quiet"]) == 0
    return config, out


def _copy_of(run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run, out, ignore=shutil.ignore_patterns(".lock"))
    return out


def _step_checkpoints_fail(monkeypatch) -> None:
    """Every ``step-*`` checkpoint fails with a full disk; ``best/`` is written (the tmpfs of the report:
    room for one checkpoint, taken by ``best/``)."""
    real = trainlab.engine.checkpoint.save

    def save(root, name, *args):
        if name != trainlab.engine.checkpoint.BEST:
            raise _enospc(Path(root) / name)
        return real(root, name, *args)

    monkeypatch.setattr(trainlab.engine.checkpoint, "save", save)


def _staging(out: Path, pid: int) -> Path:
    return out.parent / f".{out.name}.new-{pid}"


# --------------------------------------------------------------------------- 1. --overwrite on a full disk

def test_an_overwrite_stopped_while_its_results_wait_for_disk_space_leaves_the_old_run_untouched(
        finished, tmp_path, monkeypatch):
    """The report: best/ written, every step checkpoint and the results refused by a full disk, SIGTERM
    during the wait. The message said the old run was untouched, and close() swapped in the new run
    (best/ counted as something to keep): no model, no summary, config.yaml of the new config."""
    config, reference = finished
    out = _copy_of(reference, tmp_path)
    before = _tree(out)
    _step_checkpoints_fail(monkeypatch)

    def full(self, summary):
        raise _enospc(self.path / "summary.json")

    monkeypatch.setattr(RunDir, "write_summary", full)
    log = tmp_path / "stderr.log"
    pid = fork_cli(["train", str(config), "--set", "strategy.epochs=2", "--out", str(out), "--overwrite"], log)
    monkeypatch.undo()
    assert wait_until(lambda: log.exists() and "retrying for up to" in log.read_text(), pid, timeout=120) is None, \
        log.read_text()
    assert (_staging(out, pid) / "checkpoint" / "best").is_dir()  # the state of the report: best/ alone
    os.kill(pid, signal.SIGTERM)
    code = wait(pid, timeout=60)
    errors = _errors(log)
    assert code == 143 and "Traceback" not in log.read_text() and len(errors) == 1, log.read_text()
    assert errors[0].startswith("error: SIGTERM received while waiting for disk space to write the run's results: "
                                "stopped at step 36, before the first checkpoint"), errors[0]
    assert errors[0].endswith(f"the run in {out.resolve()} is untouched (train with --overwrite again to replace "
                              "it)"), errors[0]
    assert _tree(out) == before and status(out) == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "stderr.log"]  # no staging folder left


def test_an_overwrite_whose_checkpoint_at_the_signal_fails_leaves_the_old_run_untouched(finished, tmp_path,
                                                                                       monkeypatch):
    """One SIGTERM mid-run: the checkpoint written at the signal failed (a full disk), best/ was there. It
    said "stopped ... after writing a checkpoint; continue with: trainlab resume" and swapped in a run that
    resume could only start over, the old one deleted."""
    from trainlab.engine.loop import Trainer

    config, reference = finished
    out = _copy_of(reference, tmp_path)
    before = _tree(out)
    _step_checkpoints_fail(monkeypatch)
    real_end_epoch = Trainer.end_epoch

    def end_epoch(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs here
        return real_end_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "end_epoch", end_epoch)
    log = tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(config), "--set", "seed=6", "--out", str(out), "--overwrite"], log))
    monkeypatch.undo()
    errors = _errors(log)
    assert code == 143 and "Traceback" not in log.read_text() and len(errors) == 1, log.read_text()
    assert "after writing a checkpoint" not in errors[0] and "trainlab resume" not in errors[0], errors[0]
    assert errors[0].endswith(f"before the first checkpoint; the run in {out.resolve()} is untouched (train with "
                              "--overwrite again to replace it)"), errors[0]
    assert _tree(out) == before and status(out) == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "stderr.log"]


def test_something_to_keep_is_the_run_s_results_or_a_step_checkpoint(tmp_path):
    """What makes an overwrite replace the old run (and resume adopt a killed one): best/ is not a resume
    point, a damaged checkpoint set aside is none, and a model whose run.json was never finished is none."""
    run = RunDir(tmp_path / "run")
    (run.checkpoints / "best").mkdir(parents=True)
    (run.checkpoints / "damaged-step-000000010").mkdir()
    (run.checkpoints / ".step-000000020.tmp-1").mkdir()
    (run.path / "model.safetensors").write_bytes(b"weights")
    (run.path / "run.json").write_text('{"format": 1, "status": "running"}')
    assert not run.has_something_to_keep()
    (run.path / "run.json").write_text('{"format": 1, "status": "finished"}')
    assert run.has_something_to_keep()
    (run.path / "run.json").write_text('{"format": 1, "status": "interrupted"}')
    (run.checkpoints / "step-000000030").mkdir()
    assert run.has_something_to_keep()


# --------------------------------------------------------------------------- 3. the folder deleted while training

class _DeleteTheFolder(Callback):
    """``rm -rf`` of the run folder at the end of epoch ``at`` (after that epoch's checkpoint)."""

    order = 95  # after the checkpoint saver (90): a checkpoint exists, the next one makes the folder again

    def __init__(self, folder: Path, at: int, hook: str = "epoch"):
        self.folder, self.at, self.hook = folder, at, hook

    def on_epoch_end(self, view, record) -> None:
        if self.hook == "epoch" and view.state.epoch == self.at:
            shutil.rmtree(self.folder)

    def on_train_end(self, view) -> None:
        if self.hook == "end":
            shutil.rmtree(self.folder)


def test_a_run_folder_deleted_while_training_gets_its_records_back(finished, tmp_path, capsys):
    """It ended "saved to", exit 0, with a folder of checkpoint, metrics, model, run.json (no config_hash)
    and summary only, which eval, predict and resume refused (no config.yaml). The records of an
    uninterrupted run of the same config are the reference."""
    from trainlab.experiment import train
    from trainlab.run_evaluation import evaluate_run

    config, reference = finished
    out = tmp_path / "run"
    summary, folder = train(str(config), out=out, quiet=True, callbacks=[_DeleteTheFolder(out, 1)])
    err = capsys.readouterr().err
    assert folder == out and summary["status"] == "finished"
    assert f"warning: {out} lost " in err and "config.yaml" in err and "run.json" in err, err
    for name in ("config.yaml", "labels.json", "model.json"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    info, expected = json.loads((out / "run.json").read_text()), json.loads((reference / "run.json").read_text())
    for key in ("status", "config_hash", "resolved_config_hash", "data_fingerprint", "records_sha256"):
        assert info.get(key) == expected.get(key), key
    assert evaluate_run(out)["accuracy"] == pytest.approx(summary["test"]["accuracy"], abs=1e-12)
    assert run_inline(["resume", str(out), "--quiet"]) == 0  # a finished run: nothing to resume, no refusal
    assert "already finished" in capsys.readouterr().err


def test_a_run_folder_deleted_for_good_while_training_is_an_error_not_saved(finished, tmp_path):
    """Deleted after the last checkpoint: nothing makes the folder again, and the run says so (exit 5)."""
    from trainlab.experiment import train

    config, _ = finished
    out = tmp_path / "run"
    with pytest.raises(WriteError) as raised:
        train(str(config), out=out, quiet=True, callbacks=[_DeleteTheFolder(out, 0, hook="end")])
    assert raised.value.exit_code == 5 and not out.exists()
    assert str(raised.value) == (f"run folder {out} was removed while the run trained; its results were not "
                                 "written: train again")


# --------------------------------------------------------------------------- 7. hints that paste into a shell

def test_a_quoted_command_pastes_back_as_the_same_words():
    awkward = f"/tmp/x/{AWKWARD}"
    for path in (awkward, "runs/plain-1", "/tmp/a\"b"):
        line = quoted_command("trainlab", "resume", path)
        words = shlex.split(line[1:-1] if line.startswith("'trainlab") else line)
        assert words == ["trainlab", "resume", path], line
    assert quoted_command("trainlab", "resume", "runs/plain-1") == "'trainlab resume runs/plain-1'"


def test_the_resume_hint_of_an_interrupted_run_pastes_into_a_shell(finished, tmp_path, monkeypatch):
    """``continue with: trainlab resume /tmp/x/my runs/...`` pasted gave "unrecognized arguments"."""
    from trainlab.engine.loop import Trainer

    config, reference = finished
    out = tmp_path / AWKWARD
    out.parent.mkdir(parents=True)
    real_end_epoch = Trainer.end_epoch

    def end_epoch(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        return real_end_epoch(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "end_epoch", end_epoch)
    log = tmp_path / "stderr.log"
    code = wait(fork_cli(["train", str(config), "--out", str(out)], log))
    monkeypatch.undo()
    errors = _errors(log)
    assert code == 143 and len(errors) == 1 and "after writing a checkpoint; continue with: " in errors[0], \
        log.read_text()
    words = shlex.split(errors[0].split("continue with: ", 1)[1])
    assert words == ["trainlab", "resume", str(out.resolve())]
    assert run_inline([*words[1:], "--quiet"]) == 0
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()


def test_the_resume_hint_of_an_occupied_output_folder_pastes_into_a_shell(finished, tmp_path, capsys):
    config, reference = finished
    out = tmp_path / AWKWARD
    shutil.copytree(reference, out, ignore=shutil.ignore_patterns(".lock"))
    assert run_inline(["train", str(config), "--out", str(out)]) == 2
    error, = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    hint = error.split("pass --overwrite to replace it, or ", 1)[1].removesuffix(" to continue it")
    assert shlex.split(hint) == ["trainlab", "resume", str(out)], error


# --------------------------------------------------------------------------- 8. warnings that say which run

def test_the_warnings_of_a_full_disk_name_the_run_folder(finished, tmp_path, monkeypatch, capsys):
    """Inside compare (runs side by side) "checkpoint at step 36 not written" and "cannot write the run's
    results ... retrying" named no run, while best/'s warning beside them did. The metrics and results
    writes fail as a real full disk fails them: inside the atomic write (its temporary file)."""
    from trainlab.experiment import train

    config, _ = finished
    out = tmp_path / "run"
    _step_checkpoints_fail(monkeypatch)
    real_mkstemp, refused = tempfile.mkstemp, []

    def mkstemp(*args, prefix="", **kwargs):
        if prefix.startswith(".metrics.jsonl.") and not refused or prefix.startswith(".summary.json.") and \
                len(refused) == 1:
            refused.append(prefix)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_mkstemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(trainlab.atomic.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(trainlab.experiment.time, "sleep", lambda seconds: None)  # the retry's pause
    summary, _ = train(str(config), out=out, quiet=True)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert summary["status"] == "finished" and len(refused) == 2, (refused, warnings)
    checkpoint_line, = [line for line in warnings if "not written" in line and "checkpoint at step" in line]
    assert checkpoint_line.startswith(f"warning: checkpoint at step 18 of {out} not written: No space left on "
                                      "device (no earlier checkpoint)"), checkpoint_line
    metrics_line, = [line for line in warnings if "metrics.jsonl" in line]
    assert metrics_line.startswith(f"warning: {out / 'metrics.jsonl'} not written: No space left on device"), \
        metrics_line
    results_line, = [line for line in warnings if "retrying" in line]
    assert results_line.startswith(f"warning: cannot write the run's results in {out} (No space left on "
                                   "device); retrying for up to 300 s"), results_line
