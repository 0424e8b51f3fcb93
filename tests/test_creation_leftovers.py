"""A folder that a train stopped before run.json left (its creation files only), met again with another
config: `train` says what it is and what to do, `--overwrite` replaces it when every file is what trainlab
writes, and never deletes a file a user wrote; `resume` points the same way. (A rerun with the same config
reuses such a folder: tests/test_signals_and_leftovers.py.)"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import LINREG
from trainlab.cli import main
from trainlab.errors import RunDirError
from trainlab.experiment import train
from trainlab.run_folder import RunDir


def _config(path: Path, **strategy) -> Path:
    config = {**LINREG, "output": {"progress": "off"}, "strategy": {**LINREG["strategy"], "epochs": 3, **strategy}}
    path.write_text(yaml.safe_dump(config))
    return path


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _leftover_of_a_full_disk(tmp_path: Path, out: Path, monkeypatch, capsys) -> None:
    """``out`` as a train of another config (lr 0.02) leaves it when run.json cannot be written (ENOSPC)."""
    def full(self, **fields):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path / "run.json"))

    with monkeypatch.context() as patch:
        patch.setattr(RunDir, "write_info", full)
        first = _config(tmp_path / "first.yaml", optimizer={"name": "sgd", "lr": 0.02})
        assert main(["train", str(first), "--out", str(out), "--quiet"]) == 5
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "model.json", "preprocessing.json"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def test_another_configs_leftover_is_named_and_overwrite_replaces_it(tmp_path, monkeypatch, capsys):
    """After a full disk stopped a train before run.json and the config was edited, `train` said "pass
    --overwrite ... or trainlab resume", `--overwrite` said "not a trainlab run folder" and `resume` said
    "rerun that same command": a circle. Now `train` names the files and says --overwrite replaces them,
    `resume` says so too, and `--overwrite` trains the new config there, as into an empty folder."""
    out, config = tmp_path / "run", _config(tmp_path / "config.yaml")
    _leftover_of_a_full_disk(tmp_path, out, monkeypatch, capsys)
    before = _tree(out)

    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 2
    assert _one_error_line(capsys) == (
        f"error: output folder {out} already exists and holds only config.yaml, model.json, preprocessing.json "
        "(no run.json), left by a train that stopped before training started, with another config: pass "
        "--overwrite to replace them, remove those files or choose another --out")
    assert main(["resume", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "stopped before training started" in line and "with another config, pass --overwrite" in line
    assert _tree(out) == before  # neither touched a file

    assert main(["train", str(config), "--out", str(out), "--overwrite", "--quiet"]) == 0
    assert main(["train", str(config), "--out", str(tmp_path / "fresh"), "--quiet"]) == 0  # the reference
    capsys.readouterr()
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "fresh" / "model.safetensors").read_bytes()
    assert (out / "config.yaml").read_bytes() == (tmp_path / "fresh" / "config.yaml").read_bytes()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in (tmp_path / "fresh").iterdir() if not p.name.startswith("."))


def test_the_python_api_names_its_own_argument(tmp_path, monkeypatch, capsys):
    out, config = tmp_path / "run", _config(tmp_path / "config.yaml")
    _leftover_of_a_full_disk(tmp_path, out, monkeypatch, capsys)
    with pytest.raises(RunDirError, match="pass overwrite=True to replace them"):
        train(str(config), out=out, quiet=True)
    summary, folder = train(str(config), out=out, overwrite=True, quiet=True)
    assert folder == out and (out / "run.json").is_file()


@pytest.mark.parametrize("kind", ["hand-written", "trainlab's with a comment added", "a user's model.json"])
def test_creation_files_not_as_trainlab_writes_them_are_never_deleted(kind, tmp_path, monkeypatch, capsys):
    """A folder holding only a config.yaml (or model.json) is as often the user's own file as a leftover:
    --overwrite deletes it only when it is byte for byte what trainlab writes, and every command keeps it."""
    out, config = tmp_path / "run", _config(tmp_path / "config.yaml")
    if kind == "hand-written":  # the review's repro
        out.mkdir()
        (out / "config.yaml").write_text("name: iris\nseed: 1\n")
    elif kind.startswith("trainlab's"):
        _leftover_of_a_full_disk(tmp_path, out, monkeypatch, capsys)
        (out / "config.yaml").write_text("# tried lr 0.02\n" + (out / "config.yaml").read_text())
    else:
        out.mkdir()
        (out / "model.json").write_text('{"layers": [4, 2]}')  # JSON, not in write_json's layout
    names = ", ".join(sorted(p.name for p in out.iterdir()))
    before = _tree(out)

    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 2
    assert _one_error_line(capsys) == (
        f"error: output folder {out} already exists and holds only {names} (no run.json), left by a train that "
        "stopped before training started, with another config (or written by hand): remove those files or choose "
        "another --out")
    assert main(["train", str(config), "--out", str(out), "--overwrite", "--quiet"]) == 2
    assert _one_error_line(capsys) == (
        f"error: refusing to overwrite {out}: it holds only {names} (no run.json), not as trainlab writes them "
        "(edited, or files of yours?); if left by a train that stopped before training started, with another "
        "config, remove those files yourself or choose another --out")
    assert main(["resume", str(out)]) == 2
    assert f"with another config, remove its {names} or choose another --out" in _one_error_line(capsys)
    assert _tree(out) == before


def test_overwrite_of_a_leftover_keeps_the_location_checks(tmp_path, monkeypatch, capsys):
    """A leftover in the working directory is refused as any overwrite of it is."""
    out, config = tmp_path / "run", _config(tmp_path / "config.yaml")
    _leftover_of_a_full_disk(tmp_path, out, monkeypatch, capsys)
    before = _tree(out)
    monkeypatch.chdir(out)
    assert main(["train", str(config), "--out", ".", "--overwrite", "--quiet"]) == 2
    assert "working directory" in _one_error_line(capsys)
    assert _tree(out) == before

