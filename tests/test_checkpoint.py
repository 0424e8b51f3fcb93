"""Checkpoints: pickle-free round trip, corruption fallback, malicious pickle refused, failed writes."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import DIGITS_MLP
from trainlab.cli import main
from trainlab.engine import checkpoint
from trainlab.engine.serialize import join_state, split_state


def test_split_and_join_state_restores_types_exactly():
    state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4)}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0], "nesterov": False,
                               "name": None}]}
    tree, tensors = split_state(state)
    json.dumps(tree)  # JSON-able
    back = join_state(json.loads(json.dumps(tree)), tensors)
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert list(back["state"]) == [0]
    assert torch.equal(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])


def _train_with_checkpoints(write_config, tmp_path: Path) -> Path:
    config = write_config(DIGITS_MLP, strategy__epochs=3,
                          output={"progress": "off", "checkpoint": {"every_n_epochs": 1, "keep_last": 3,
                                                                   "every_seconds": None,
                                                                   "keep_after_finish": "all"}})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    return out


def test_keep_last_and_best_are_kept(write_config, tmp_path):
    out = _train_with_checkpoints(write_config, tmp_path)
    folders = [p.name for p in checkpoint.step_folders(out / "checkpoint")]
    assert len(folders) == 3 and folders == sorted(folders, reverse=True)
    manifest, tree, tensors = checkpoint.load(out / "checkpoint" / "best")
    assert manifest["format"] == checkpoint.FORMAT_VERSION and "val_loss" in manifest


@pytest.mark.parametrize("damage", ["truncate_tensors", "flip_state_byte", "delete_manifest", "garbage_manifest"])
def test_corrupted_newest_checkpoint_falls_back_to_previous(write_config, tmp_path, damage, capsys):
    out = _train_with_checkpoints(write_config, tmp_path)
    newest, previous = checkpoint.step_folders(out / "checkpoint")[:2]
    if damage == "truncate_tensors":
        data = (newest / checkpoint.TENSORS).read_bytes()
        (newest / checkpoint.TENSORS).write_bytes(data[: len(data) // 2])
    elif damage == "flip_state_byte":
        data = bytearray((newest / checkpoint.STATE).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (newest / checkpoint.STATE).write_bytes(bytes(data))
    elif damage == "delete_manifest":
        (newest / checkpoint.MANIFEST).unlink()
    else:
        (newest / checkpoint.MANIFEST).write_text("{not json")
    capsys.readouterr()
    folder, manifest, _, _ = checkpoint.latest(out / "checkpoint")
    assert capsys.readouterr().err.startswith(f"warning: skipping checkpoint {newest.name}")  # trainlab.notices
    assert folder == previous
    # and resume uses it: mark the run unfinished, resume, finish
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    assert main(["resume", str(out), "--quiet"]) == 0


def _flip_a_state_byte(folder: Path) -> None:
    data = bytearray((folder / checkpoint.STATE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / checkpoint.STATE).write_bytes(bytes(data))


def test_a_resume_sets_damaged_checkpoints_aside_so_that_its_new_ones_are_kept(tmp_path, capsys):
    """Damaged checkpoints of later steps than the resumed one stayed step folders: prune kept them as the
    newest and deleted each new checkpoint as it was written, so a resume interrupted again started over."""
    root = tmp_path / "checkpoint"
    previous, newest = _two_checkpoints(root)
    for folder in (previous, newest):
        _flip_a_state_byte(folder)
    assert checkpoint.latest(root, set_aside=True) is None
    err = capsys.readouterr().err
    assert f"set aside as damaged-{newest.name}" in err and f"set aside as damaged-{previous.name}" in err
    assert checkpoint.step_folders(root) == []
    assert sorted(p.name for p in root.iterdir()) == [f"damaged-{previous.name}", f"damaged-{newest.name}"]
    tree = {"train_state": {"epoch": 0, "step": 5}}
    fresh = checkpoint.save(root, checkpoint.folder_name(5), tree, {"model.w": torch.zeros(2)}, {"step": 5})
    checkpoint.prune(root, keep_last=1)
    assert checkpoint.step_folders(root) == [fresh] and checkpoint.latest(root)[0] == fresh
    assert (root / f"damaged-{newest.name}").is_dir()  # kept for a look, never deleted by prune
    # the same damage again (a later resume): the name is taken, so a suffix
    again = checkpoint.save(root, checkpoint.folder_name(20), tree, {"model.w": torch.zeros(2)}, {"step": 20})
    _flip_a_state_byte(again)
    assert checkpoint.latest(root, set_aside=True)[0] == fresh
    assert (root / f"damaged-{newest.name}-2").is_dir()


def test_a_checkpoint_that_may_be_whole_is_skipped_but_never_set_aside(tmp_path, capsys, monkeypatch):
    """Another trainlab version's format, a read error: skipped as before, left where it is."""
    previous, newest = _two_checkpoints(tmp_path)
    manifest = json.loads((newest / checkpoint.MANIFEST).read_text())
    (newest / checkpoint.MANIFEST).write_text(json.dumps({**manifest, "format": checkpoint.FORMAT_VERSION + 1}))
    assert checkpoint.latest(tmp_path, set_aside=True)[0] == previous
    assert "set aside" not in capsys.readouterr().err and newest.is_dir()
    (newest / checkpoint.MANIFEST).write_text(json.dumps(manifest))
    real_open = open

    def failing_open(path, *args, **kwargs):
        if str(path).endswith(checkpoint.TENSORS) and newest.name in str(path):
            raise OSError(5, "Input/output error")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    assert checkpoint.latest(tmp_path, set_aside=True)[0] == previous
    assert "Input/output error" in capsys.readouterr().err
    assert checkpoint.step_folders(tmp_path) == [newest, previous]


def test_a_check_without_set_aside_leaves_a_damaged_checkpoint_where_it_is(tmp_path, capsys):
    previous, newest = _two_checkpoints(tmp_path)
    _flip_a_state_byte(newest)
    assert checkpoint.latest(tmp_path)[0] == previous
    assert checkpoint.step_folders(tmp_path) == [newest, previous]


def test_a_resume_from_step_0_after_every_checkpoint_was_damaged_keeps_its_new_checkpoints(write_config, tmp_path,
                                                                                           capsys):
    out = _train_with_checkpoints(write_config, tmp_path)
    damaged = checkpoint.step_folders(out / "checkpoint")
    for folder in damaged:
        _flip_a_state_byte(folder)
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    capsys.readouterr()
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "starting" in capsys.readouterr().err
    fresh = checkpoint.step_folders(out / "checkpoint")
    assert [p.name for p in fresh] == [p.name for p in damaged]  # the same steps, written anew
    assert all(checkpoint.load(p) for p in fresh)
    assert all((out / "checkpoint" / f"damaged-{p.name}").is_dir() for p in damaged)


@pytest.mark.parametrize("damage", ["removed", "damaged"])
def test_a_resume_that_finds_no_checkpoint_says_it_starts_over_even_with_quiet(write_config, tmp_path, capsys,
                                                                              damage):
    """None there is "no checkpoint" (a user trial read "no valid checkpoint" of a run killed before its
    first as a damaged one); "no valid checkpoint" where each one there was skipped as damaged."""
    out = _train_with_checkpoints(write_config, tmp_path)
    for folder in (out / "checkpoint").iterdir():
        if damage == "removed":
            shutil.rmtree(folder)
        else:
            (folder / "manifest.json").write_text("{")
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    capsys.readouterr()
    assert main(["resume", str(out), "--quiet"]) == 0
    what = "no checkpoint" if damage == "removed" else "no valid checkpoint"
    assert f"warning: {what} in {out / 'checkpoint'}; starting {out} from step 0" in capsys.readouterr().err


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


def test_malicious_pickle_under_checkpoint_names_is_refused(write_config, tmp_path, capsys):
    out = _train_with_checkpoints(write_config, tmp_path)
    marker = tmp_path / "pwned"
    _Exploit.marker = marker
    payload = pickle.dumps(_Exploit())
    newest = checkpoint.step_folders(out / "checkpoint")[0]
    # an attacker replaces the tensors file with a pickle and fixes up the manifest hash
    (newest / checkpoint.TENSORS).write_bytes(payload)
    manifest = json.loads((newest / checkpoint.MANIFEST).read_text())
    import hashlib

    manifest["files"][checkpoint.TENSORS] = hashlib.sha256(payload).hexdigest()
    manifest["sizes"][checkpoint.TENSORS] = len(payload)
    (newest / checkpoint.MANIFEST).write_text(json.dumps(manifest))
    (newest / "model.pt").write_bytes(payload)  # a stray pickle file is never read either
    with pytest.raises(checkpoint.CheckpointError, match="not a valid safetensors"):
        checkpoint.load(newest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder, *_ = checkpoint.latest(out / "checkpoint")
    assert folder != newest
    assert not marker.exists()


def test_failed_write_keeps_previous_checkpoint_and_training_goes_on(write_config, tmp_path, monkeypatch, capsys):
    config = write_config(DIGITS_MLP, strategy__epochs=3,
                          output={"progress": "off", "checkpoint": {"every_n_epochs": 1, "every_seconds": None}})
    out = tmp_path / "run"
    real_write = checkpoint._write_file
    calls = {"n": 0}

    def disk_full_after_first_checkpoint(path, data):
        if path.name == checkpoint.TENSORS:
            calls["n"] += 1
        if calls["n"] >= 3:  # first checkpoint (+ best) succeed, then the disk is "full"
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(checkpoint, "_write_file", disk_full_after_first_checkpoint)
    code = main(["train", str(config), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0  # training finished; the model and summary were written
    assert "No space left on device" in err and "training continues" in err
    folders = checkpoint.step_folders(out / "checkpoint")
    assert len(folders) == 1
    checkpoint.load(folders[0])  # the earlier checkpoint is intact
    assert not list((out / "checkpoint").glob(".*tmp*"))
    summary = json.loads((out / "summary.json").read_text())
    failed = [e for e in summary["events"] if e["event"] == "checkpoint_failed" and "checkpoint" not in e]
    assert len(failed) == 1 and failed[0]["failures"] >= 2 and failed[0]["last_step"] > failed[0]["step"]
    # every later save failed too: counted, not repeated (best/, tried first at an improvement, has its own line)
    assert err.count("warning: checkpoint at step") == 1 and err.count("not written") <= 2


def test_read_only_folder_is_a_clear_error(write_config, tmp_path, capsys):
    if os.geteuid() == 0:
        # root ignores permissions; simulate with a file where the run folder's parent should be
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        out = blocker / "run"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        out = locked / "run"
    config = write_config(DIGITS_MLP, strategy__epochs=1)
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot create output folder")
    shutil.rmtree(tmp_path / "locked", ignore_errors=True)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs: a real 'No space left on device' (skipped where mounting is not allowed)."""
    import subprocess

    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], capture_output=True)


def test_a_full_disk_never_corrupts_a_checkpoint(write_config, tiny_disk, capsys):
    config = write_config(DIGITS_MLP, model={"name": "mlp", "hidden": [384]}, strategy__epochs=4,
                          output={"progress": "off", "checkpoint": {"every_n_epochs": 1, "keep_last": 3,
                                                                   "every_seconds": None}})
    out = tiny_disk / "run"
    code = main(["train", str(config), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert "No space left on device" in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 0 or (code == 5 and len(lines) == 1 and "cannot write" in lines[0])
    folders = checkpoint.step_folders(out / "checkpoint")
    assert folders, "the first checkpoint fits and must survive"
    for folder in folders:
        checkpoint.load(folder)  # every checkpoint left on disk verifies
    assert not list((out / "checkpoint").glob(".*tmp*"))  # no half-written leftovers


# --------------------------------------------------------------------------- malformed and hostile checkpoints

def _two_checkpoints(root: Path) -> tuple[Path, Path]:
    """Two valid checkpoints written by checkpoint.save (no training): (previous, newest)."""
    tree = {"train_state": {"epoch": 1, "step": 10}, "epoch_samples": 0,
            "optimizer": {"state": {"__items__": [[0, {"exp_avg": {"__tensor__": "optimizer.0"}}]]}},
            "rng": {"numpy": ["MT19937", [1, 2]]}, "python_rng": {"__tuple__": [3, [1, 2], None]}}
    tensors = {"model.w": torch.arange(4.0), "optimizer.0": torch.ones(4)}
    previous = checkpoint.save(root, checkpoint.folder_name(10), tree, tensors, {"step": 10, "epoch": 1})
    newest = checkpoint.save(root, checkpoint.folder_name(20), tree, tensors, {"step": 20, "epoch": 2})
    return previous, newest


def _rewrite_state(folder: Path, data: bytes) -> None:
    """Replace state.json and fix the manifest's hash and size, as an attacker (or a bug) would."""
    import hashlib

    (folder / checkpoint.STATE).write_bytes(data)
    manifest = json.loads((folder / checkpoint.MANIFEST).read_text())
    manifest["files"][checkpoint.STATE] = hashlib.sha256(data).hexdigest()
    manifest["sizes"][checkpoint.STATE] = len(data)
    (folder / checkpoint.MANIFEST).write_text(json.dumps(manifest))


MANIFEST_DAMAGE = {
    "null": "null",
    "list": "[1, 2]",
    "files-as-list": json.dumps({"format": 1, "files": ["tensors.safetensors", "state.json"]}),
    "files-null": json.dumps({"format": 1, "files": None}),
    "format-true": json.dumps({"format": True, "files": {}}),
    "format-string": json.dumps({"format": "1", "files": {}}),
    "digest-not-hex": None,  # built from the real manifest below
    "sizes-negative": None,
    "step-string": None,
    "deep-nesting": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("damage", list(MANIFEST_DAMAGE))
def test_a_malformed_manifest_is_skipped_for_the_previous_checkpoint(tmp_path, damage, capsys):
    previous, newest = _two_checkpoints(tmp_path)
    text = MANIFEST_DAMAGE[damage]
    if text is None:
        manifest = json.loads((newest / checkpoint.MANIFEST).read_text())
        if damage == "digest-not-hex":
            manifest["files"][checkpoint.STATE] = ["not", "a", "digest"]
        elif damage == "sizes-negative":
            manifest["sizes"][checkpoint.STATE] = -1
        else:
            manifest["step"] = "20"
        text = json.dumps(manifest)
    (newest / checkpoint.MANIFEST).write_text(text)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(newest)
    found = checkpoint.latest(tmp_path)
    assert found[0] == previous and "warning: skipping checkpoint" in capsys.readouterr().err


STATE_DAMAGE = {
    "null": b"null",
    "list": b"[1, 2]",
    "train-state-wrong-type": json.dumps({"train_state": 5, "optimizer": {}}).encode(),
    "parts-train-state-wrong-type": json.dumps({"parts": {"train_state": "x"}, "rng": {}}).encode(),
    "parts-not-an-object": json.dumps({"parts": [1], "rng": {}}).encode(),
    "epoch-samples-bool": json.dumps({"epoch_samples": True}).encode(),
    "tensor-not-stored": json.dumps({"optimizer": {"x": {"__tensor__": "optimizer.missing"}}}).encode(),
    "tensor-ref-not-string": json.dumps({"optimizer": {"x": {"__tensor__": [1]}}}).encode(),
    "tuple-not-list": json.dumps({"python_rng": {"__tuple__": 3}}).encode(),
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep-but-parseable": ("{\"optimizer\": " + "[" * 500 + "]" * 500 + "}").encode(),
}


@pytest.mark.parametrize("damage", list(STATE_DAMAGE))
def test_a_state_json_of_the_wrong_shape_is_skipped_even_when_its_hash_matches(tmp_path, damage, capsys):
    previous, newest = _two_checkpoints(tmp_path)
    _rewrite_state(newest, STATE_DAMAGE[damage])
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(newest)
    assert checkpoint.latest(tmp_path)[0] == previous
    assert "warning: skipping checkpoint" in capsys.readouterr().err


def test_the_engines_own_validator_rejects_a_checkpoint(tmp_path):
    previous, newest = _two_checkpoints(tmp_path)

    def needs_step_20_or_less(tree):
        if tree["train_state"]["step"] > 5:
            raise ValueError("step beyond the data")

    with pytest.raises(checkpoint.CheckpointError, match="step beyond the data"):
        checkpoint.load(newest, validate=needs_step_20_or_less)


@pytest.mark.parametrize("planted", ["dev-zero", "fifo", "huge-sparse"])
def test_a_planted_state_file_is_never_read_unbounded(tmp_path, planted, capsys):
    previous, newest = _two_checkpoints(tmp_path)
    target = newest / checkpoint.STATE
    target.unlink()
    if planted == "dev-zero":
        target.symlink_to("/dev/zero")
    elif planted == "fifo":
        os.mkfifo(target)  # opening it would block forever
    else:
        with open(target, "wb") as handle:
            handle.truncate(1 << 40)  # 1 TiB, sparse
    assert checkpoint.latest(tmp_path)[0] == previous
    assert "warning: skipping checkpoint" in capsys.readouterr().err


def test_a_manifest_without_sizes_still_loads(tmp_path):
    """Checkpoints written before sizes were recorded stay readable."""
    _, newest = _two_checkpoints(tmp_path)
    manifest = json.loads((newest / checkpoint.MANIFEST).read_text())
    del manifest["sizes"]
    (newest / checkpoint.MANIFEST).write_text(json.dumps(manifest))
    assert checkpoint.load(newest)[0]["step"] == 20


def test_resume_falls_back_when_the_newest_state_has_wrong_types(write_config, tmp_path, capsys):
    out = _train_with_checkpoints(write_config, tmp_path)
    newest, previous = checkpoint.step_folders(out / "checkpoint")[:2]
    tree = json.loads((newest / checkpoint.STATE).read_text())
    parts = tree.get("parts", tree)
    assert isinstance(parts["train_state"], dict)
    parts["train_state"] = [1, 2]  # was a TypeError inside the engine, exit 1
    _rewrite_state(newest, json.dumps(tree).encode())
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    assert main(["resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert "skipping checkpoint" in err and f"from {previous.name}" in err
