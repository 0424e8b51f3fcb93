"""Writes and reads that fail for the disk's or the permissions' sake, each reported as what failed.

No test here needs root or a mount: a full disk (ENOSPC) or a folder without write or read permission
(EACCES) is simulated by making the one failing call raise the OSError the kernel would give.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.conftest import DIGITS_MLP
from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.cli import main
from trainlab.engine import checkpoint

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ----------------------------------------------------------------------------- best/ failing alone


def _view(step: int) -> SimpleNamespace:
    """The part of a TrainerView the saver uses: a state, a guard that passes, a capture of one tensor."""
    state = SimpleNamespace(step=step, epoch=step // 10, batch_in_epoch=0, finished=False, events=[])
    captured = SimpleNamespace(tree={"step": step}, tensors={"w": torch.full((2,), float(step))})
    return SimpleNamespace(state=state, prepare_save=lambda: True, capture=lambda: captured,
                           control=SimpleNamespace(interrupted_by=None))


def _best_fails(times: int, monkeypatch) -> list[str]:
    """checkpoint.save raises ENOSPC for best/ the first ``times`` times; returns the names it wrote."""
    real_save, written, failures = checkpoint.save, [], {"left": times}

    def save(root, name, tree, tensors, info):
        if name == checkpoint.BEST and failures["left"] > 0:
            failures["left"] -= 1
            raise ENOSPC
        written.append(name)
        return real_save(root, name, tree, tensors, info)

    monkeypatch.setattr(checkpoint, "save", save)
    return written


def test_a_best_that_fails_alone_keeps_the_step_checkpoint_and_its_bookkeeping(tmp_path, monkeypatch):
    root = tmp_path / "checkpoint"
    warnings: list[str] = []
    notes: list[str] = []
    saver = CheckpointSaver(root, None, 1, None, keep_last=1, monitor="val_loss", mode="min", warn=warnings.append,
                            note=notes.append)
    checkpoint.save(root, checkpoint.folder_name(20), {"step": 20}, {"w": torch.zeros(2)}, {"step": 20})
    written = _best_fails(1, monkeypatch)

    view = _view(37)
    path = saver.save(view, {"val_loss": 0.5})
    step_37 = root / "step-000000037"
    assert path == step_37 and written == ["step-000000037"]
    checkpoint.load(step_37)  # written whole
    assert saver.last_saved == str(step_37)  # a later failure names it as the checkpoint kept
    assert [p.name for p in checkpoint.step_folders(root)] == ["step-000000037"]  # keep_last=1 pruned step 20
    assert saver.best is None  # best/ holds nothing: any later evaluation is better
    assert not (root / checkpoint.BEST).exists()
    assert len(warnings) == 1 and f"{root / checkpoint.BEST}/ " in warnings[0]
    assert "not written: No space left on device" in warnings[0] and "val_loss 0.5" in warnings[0]
    assert "checkpoint at step 37 not written" not in warnings[0]
    event, = view.state.events
    assert event["event"] == "checkpoint_failed" and event["checkpoint"] == "best" and event["step"] == 37

    # the same save again is "nothing new" only because step 37 counted as saved
    assert saver.save(_view(37)) is None

    # a later, worse value than the failed one but the first best/ written: it is written
    later = _view(40)
    assert saver.save(later, {"val_loss": 0.7}) == root / "step-000000040"
    assert saver.best == 0.7
    manifest, *_ = checkpoint.load(root / checkpoint.BEST)
    assert manifest["step"] == 40 and manifest["val_loss"] == 0.7
    assert len(warnings) == 1 and notes == [f"note: {root / checkpoint.BEST}/ written again from step 40, after 1 failed"]
    assert later.state.events == []


def test_a_best_failing_at_every_improvement_warns_once_while_step_checkpoints_are_written(tmp_path,
                                                                                           monkeypatch):
    root = tmp_path / "checkpoint"
    warnings: list[str] = []
    saver = CheckpointSaver(root, None, 1, None, keep_last=2, warn=warnings.append)
    _best_fails(10, monkeypatch)
    views = [_view(step) for step in (10, 20, 30)]
    for view, loss in zip(views, (0.9, 0.8, 0.7), strict=True):
        assert saver.save(view, {"val_loss": loss}) == root / checkpoint.folder_name(view.state.step)
    assert len(warnings) == 1  # counted, not repeated; and no "written again" note between them
    event, = views[0].state.events
    assert event["failures"] == 3 and event["last_step"] == 30
    assert [p.name for p in checkpoint.step_folders(root)] == ["step-000000030", "step-000000020"]


def test_best_is_written_first_and_a_failed_step_checkpoint_after_it_is_reported_as_before(tmp_path, monkeypatch):
    root = tmp_path / "checkpoint"
    warnings: list[str] = []
    saver = CheckpointSaver(root, None, 1, None, keep_last=2, warn=warnings.append)
    names: list[str] = []
    real_save = checkpoint.save

    def step_full(root, name, *args):
        names.append(name)
        if name != checkpoint.BEST:
            raise ENOSPC
        return real_save(root, name, *args)

    monkeypatch.setattr(checkpoint, "save", step_full)
    assert saver.save(_view(37), {"val_loss": 0.5}) is None
    assert names == [checkpoint.BEST, "step-000000037"] and saver.best == 0.5 and saver.last_saved is None
    assert (root / checkpoint.BEST).is_dir()  # best/ stays: it holds the best evaluation
    assert warnings == ["checkpoint at step 37 not written: No space left on device (no earlier "
                        "checkpoint); training continues (further failures for the same reason are counted, "
                        "not repeated)"]


def test_the_runs_end_failing_to_save_its_last_step_again_names_that_steps_checkpoint_as_kept(tmp_path, monkeypatch):
    """The end of a run saves its last step once more (finished); on a full disk the warning said "previous
    checkpoint .../step-000000540 kept" of the very step that failed, and "training continues" as the run ended."""
    root = tmp_path / "checkpoint"
    warnings: list[str] = []
    saver = CheckpointSaver(root, None, 1, None, keep_last=2, warn=warnings.append)
    assert saver.save(_view(40)) == root / "step-000000040"
    monkeypatch.setattr(checkpoint, "save", lambda *args: (_ for _ in ()).throw(ENOSPC))
    end = _view(40)
    end.state.finished = True
    assert saver.save(end) is None
    assert warnings == [f"checkpoint at step 40 not written: No space left on device (the checkpoint written at this "
                        f"step before, {root / 'step-000000040'}, kept); the run ends as it would (further failures "
                        "for the same reason are counted, not repeated)"]
    monkeypatch.undo()
    warnings.clear()  # a signal's stop saves the step it reached: no training follows either
    saver = CheckpointSaver(root, None, 1, None, keep_last=2, warn=warnings.append)
    assert saver.save(_view(40)) == root / "step-000000040"
    monkeypatch.setattr(checkpoint, "save", lambda *args: (_ for _ in ()).throw(ENOSPC))
    stopped = _view(45)
    stopped.control.interrupted_by = "SIGTERM"
    assert saver.save(stopped) is None
    assert warnings == [f"checkpoint at step 45 not written: No space left on device (previous checkpoint "
                        f"{root / 'step-000000040'} kept); the run ends as it would (further failures for the same "
                        "reason are counted, not repeated)"]


def test_a_step_checkpoint_after_a_failed_best_holds_the_best_value_the_run_goes_on_with(tmp_path, monkeypatch):
    """Resume from it continues as the uninterrupted run: the previous best (None), not the one best/ lacks."""
    root = tmp_path / "checkpoint"
    saver = CheckpointSaver(root, None, 1, None, keep_last=2, warn=lambda line: None)
    real_save = checkpoint.save

    def best_full(root, name, *args):
        if name == checkpoint.BEST:
            raise ENOSPC
        return real_save(root, name, *args)

    monkeypatch.setattr(checkpoint, "save", best_full)
    view = _view(37)
    view.capture = lambda: SimpleNamespace(tree={"saver": saver.state_dict()}, tensors={"w": torch.zeros(2)})
    path = saver.save(view, {"val_loss": 0.5})
    assert path is not None and saver.best is None
    _manifest, tree, _tensors = checkpoint.load(path)
    assert tree["saver"] == {"best": None}


def test_train_with_best_unwritable_finishes_with_every_step_checkpoint(write_config, tmp_path, monkeypatch,
                                                                       capsys):
    config = write_config(DIGITS_MLP, strategy__epochs=3,
                          output={"progress": "off", "checkpoint": {"every_n_epochs": 1, "every_seconds": None,
                                                                   "keep_last": 2, "keep_after_finish": "all"}})
    out = tmp_path / "run"
    _best_fails(1000, monkeypatch)
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("not written") == 1 and f"{out / 'checkpoint' / 'best'}/ (the best evaluation" in err
    assert "checkpoint at step" not in err
    # keep_last=2 pruned as each step checkpoint was written, though best/ failed every time
    assert [p.name for p in checkpoint.step_folders(out / "checkpoint")] == ["step-000000108", "step-000000072"]
    summary = json.loads((out / "summary.json").read_text())
    failed, = [e for e in summary["events"] if e["event"] == "checkpoint_failed"]
    assert failed["checkpoint"] == "best" and failed["failures"] == 3


# ----------------------------------------------------------------------------- deleting checkpoints


def _not_writable(folder: Path, monkeypatch) -> None:
    """``folder`` as if its mode were 0o555 (root bypasses the bits): no entry directly in it can be
    removed, renamed or created, while the files inside its subfolders still can be deleted."""
    folder = folder.resolve()

    def parent(path, dir_fd=None) -> Path:
        where = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) if dir_fd is not None else Path(os.getcwd())
        return (where / os.fsdecode(path)).parent.resolve()

    def guarded(real):
        def call(path, *args, dir_fd=None, **kwargs):
            if parent(path, dir_fd) == folder:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
            return real(path, *args, **({"dir_fd": dir_fd} if dir_fd is not None else {}), **kwargs)
        return call

    for name in ("rmdir", "unlink", "rename", "replace"):
        monkeypatch.setattr(os, name, guarded(getattr(os, name)))


def _checkpoints(root: Path, steps: list[int]) -> None:
    for step in steps:
        checkpoint.save(root, checkpoint.folder_name(step), {"step": step}, {"w": torch.zeros(2)}, {"step": step})
    checkpoint.save(root, checkpoint.BEST, {"step": steps[0]}, {"w": torch.zeros(2)}, {"step": steps[0]})


def test_prune_after_finish_in_a_read_only_folder_leaves_every_checkpoint_whole(tmp_path, monkeypatch):
    root = tmp_path / "checkpoint"
    _checkpoints(root, [444, 555, 666])
    _not_writable(root, monkeypatch)
    kept = checkpoint.prune_after_finish(root, "last")
    monkeypatch.undo()
    assert [p.name for p in kept] == ["step-000000666", "step-000000555", "step-000000444", "best"]
    for folder in kept:
        checkpoint.load(folder)  # each one listed as kept still verifies: none was emptied
    assert sorted(os.listdir(root / "step-000000555")) == sorted([checkpoint.MANIFEST, checkpoint.STATE,
                                                                  checkpoint.TENSORS])


def test_keep_last_pruning_in_a_read_only_folder_leaves_every_checkpoint_whole(tmp_path, monkeypatch):
    root = tmp_path / "checkpoint"
    _checkpoints(root, [1, 2, 3])
    _not_writable(root, monkeypatch)
    checkpoint.prune(root, 1)
    monkeypatch.undo()
    assert [checkpoint.load(p)[0]["step"] for p in checkpoint.step_folders(root)] == [3, 2, 1]


def test_a_deletion_stopped_after_the_rename_leaves_no_checkpoint_and_is_finished_later(tmp_path, monkeypatch):
    root = tmp_path / "checkpoint"
    _checkpoints(root, [1, 2])
    monkeypatch.setattr(shutil, "rmtree", lambda *args, **kwargs: None)  # killed right after the rename
    assert checkpoint.remove(root / "step-000000001")
    monkeypatch.undo()
    leftover, = [p for p in root.iterdir() if checkpoint.DELETING in p.name]
    assert leftover.name.startswith(".step-000000001.") and not (root / "step-000000001").exists()
    assert [p.name for p in checkpoint.step_folders(root)] == ["step-000000002"]  # never taken as a checkpoint
    assert [p.name for p in checkpoint.prune_after_finish(root, "last")] == ["step-000000002", "best"]
    assert sorted(p.name for p in root.iterdir()) == ["best", "step-000000002"]


# ----------------------------------------------------------------------------- data.cache_dir


def _images(root: Path) -> None:
    from PIL import Image

    for c, name in enumerate(("cat", "dog")):
        for i in range(6):
            (root / name).mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(10 * c + i).integers(0, 256, (4, 4, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")


def _savez_fails(monkeypatch, error: int) -> None:
    """np.savez writes a few bytes, then fails as the disk (ENOSPC: write() names no file) or the
    permissions (EACCES, naming the file being opened) would."""
    def savez(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike):
            file = open(file, "wb")  # noqa: SIM115 (as savez opens a path)
        file.write(b"PK\x03\x04")
        file.flush()
        if error == errno.ENOSPC:
            raise OSError(error, os.strerror(error))
        raise PermissionError(error, os.strerror(error), str(getattr(file, "name", file)))

    monkeypatch.setattr(np, "savez", savez)


def _image_config(write_config, tmp_path: Path, cache: Path) -> Path:
    _images(tmp_path / "imgs")
    return write_config({"name": "img", "seed": 0,
                         "data": {"source": "image_folder", "path": str(tmp_path / "imgs"), "workers": 0,
                                  "cache_dir": str(cache), "val_fraction": 0.2},
                         "model": {"name": "linear"},
                         "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
                                      "batch_size": 4, "epochs": 1},
                         "output": {"progress": "off"}})


@pytest.mark.parametrize("error, reason, fix", [
    (errno.ENOSPC, "No space left on device", "free space there, or remove data.cache_dir"),
    (errno.EACCES, "Permission denied", "make the folder writable, or point data.cache_dir elsewhere")])
def test_a_cache_that_cannot_be_written_is_one_warning_and_the_run_trains(write_config, tmp_path, monkeypatch,
                                                                         capsys, error, reason, fix):
    cache = tmp_path / "cache"
    config = _image_config(write_config, tmp_path, cache)
    _savez_fails(monkeypatch, error)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    monkeypatch.undo()
    err = capsys.readouterr().err
    warning, = [line for line in err.splitlines() if "data.cache_dir" in line]
    file, = (word for word in warning.split() if word.endswith(".npz"))
    assert Path(file).parent == cache and Path(file).name.startswith("image_folder-")  # the cache, no temporary
    assert f"not written: {reason} ({fix}); training goes on without it" in warning
    assert "free space" not in warning or error == errno.ENOSPC
    assert os.listdir(cache) == []  # nothing torn left behind for a later run to trust
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert main(["train", str(config), "--out", str(tmp_path / "run2"), "--quiet"]) == 0  # room again: cached
    assert [p.name for p in cache.iterdir()] == [Path(file).name]


def test_a_cache_dir_that_cannot_be_made_is_one_warning_and_the_run_trains(write_config, tmp_path, monkeypatch,
                                                                          capsys):
    cache = tmp_path / "ro" / "cache"
    config = _image_config(write_config, tmp_path, cache)
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == cache:
            raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    warning, = [line for line in capsys.readouterr().err.splitlines() if "data.cache_dir" in line]
    assert warning.startswith(f"warning: data.cache_dir: image cache {cache}/image_folder-")
    assert "not written: Read-only file system" in warning and not cache.exists()


def test_write_npz_names_the_file_not_its_temporary(tmp_path, monkeypatch):
    from trainlab.data.cache import write_npz

    _savez_fails(monkeypatch, errno.ENOSPC)
    with pytest.raises(OSError) as failed:
        write_npz(tmp_path / "entry.npz", {"x": np.zeros(3)})
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(tmp_path / "entry.npz")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- report: what cannot be read


def _deny_reading(monkeypatch, *targets: Path) -> None:
    """Each target as if its mode were 000 (root bypasses the bits): a folder can be neither listed nor
    looked into (stat, open of anything in it: EACCES), a file cannot be opened."""
    import builtins

    targets = tuple(t.resolve() for t in targets)

    def denied(path, *, inside_only: bool) -> bool:
        if isinstance(path, int):
            return False
        path = Path(os.fsdecode(path)).absolute()
        return any(t in path.parents or (path == t and not inside_only) for t in targets)

    def guard(real, inside_only: bool):
        def call(path, *args, **kwargs):
            if denied(path, inside_only=inside_only):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
            return real(path, *args, **kwargs)
        return call

    # looking a path up needs search permission on its folder; opening and listing need read permission on it
    real_stat, real_lstat = os.stat, os.lstat
    monkeypatch.setattr(os, "stat", guard(real_stat, inside_only=True))
    monkeypatch.setattr(os, "lstat", guard(real_lstat, inside_only=True))
    monkeypatch.setattr(os, "scandir", guard(os.scandir, inside_only=False))
    monkeypatch.setattr(os, "open", guard(os.open, inside_only=False))
    monkeypatch.setattr(builtins, "open", guard(builtins.open, inside_only=False))


def _report(paths: list[Path], out: Path, capsys) -> tuple[int, str]:
    code = main(["report", *map(str, paths), "-o", str(out)])
    return code, capsys.readouterr().err


def _fake_run(folder: Path) -> Path:
    from report_fixtures import fake_run

    fake_run(folder, optimizer="sgd", lr=0.1, seed=0, quality=0.8, rng=np.random.default_rng(0), epochs=3)
    return folder


def test_report_of_a_run_folder_that_cannot_be_read_is_a_data_error_naming_the_folder(tmp_path, monkeypatch,
                                                                                      capsys):
    run = _fake_run(tmp_path / "r1u")
    _deny_reading(monkeypatch, run)
    code, err = _report([run], tmp_path / "r.html", capsys)
    monkeypatch.undo()
    assert code == 3, err  # was 5: an OSError naming r1u/leaderboard.json, as if a write had failed
    assert err == f"error: cannot read the folder {run}: Permission denied; make it readable to this user, or " \
                  "leave it out\n"
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("record", ["run.json", "config.yaml", "metrics.jsonl", "summary.json"])
def test_report_of_a_record_that_cannot_be_read_is_a_data_error_naming_it(tmp_path, monkeypatch, capsys, record):
    run = _fake_run(tmp_path / "run")
    _deny_reading(monkeypatch, run / record)
    code, err = _report([run], tmp_path / "r.html", capsys)
    monkeypatch.undo()
    assert code == 3, err  # config.yaml was 2, a config error, for a file of the run that may not be read
    assert err.startswith(f"error: cannot read the file {run / record}: Permission denied") and err.count("\n") == 1


@pytest.mark.parametrize("where", ["leaderboard.json", "runs", "runs/digits", "runs/digits/adam/seed-1"])
def test_report_of_a_comparison_with_a_part_that_cannot_be_read_is_a_data_error_naming_it(tmp_path, monkeypatch,
                                                                                          capsys, where):
    from report_fixtures import fake_comparison

    root = fake_comparison(tmp_path / "cmp", {"adam": ("adam", 0.01, 0.8), "sgd": ("sgd", 0.1, 0.7)}, seeds=2,
                           epochs=3)
    _deny_reading(monkeypatch, root / where)
    code, err = _report([root], tmp_path / "r.html", capsys)
    monkeypatch.undo()
    # a runs/ folder that could not be listed was a report of no runs (exit 0), one below it exit 5
    assert code == 3, err
    kind = "file" if where.endswith(".json") else "folder"
    assert err.startswith(f"error: cannot read the {kind} {root / where}: Permission denied") and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_eval_or_predict_of_a_run_folder_that_cannot_be_read_is_a_data_error_naming_it(tmp_path, monkeypatch,
                                                                                          capsys, command):
    from trainlab.cli import main

    run = _fake_run(tmp_path / "r1u")
    _deny_reading(monkeypatch, run)
    args = [command, str(run)] + ([str(tmp_path / "rows.csv")] if command == "predict" else [])
    code = main(args)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 3, err  # was 5: config.yaml's lookup raised PermissionError, read as a failed write
    assert err == f"error: cannot read the folder {run}: Permission denied; make it readable to this user, or " \
                  "leave it out\n"
