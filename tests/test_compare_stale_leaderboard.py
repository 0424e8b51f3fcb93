"""A rerun of a comparison stopped after it retrained runs left the earlier invocation's leaderboard.json in
place, and ``trainlab report`` showed its numbers beside the new runs' configs, exit 0: the folder is now
marked while its leaderboard is stale, and report refuses it as unfinished."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from tests.test_compare import BASE
from trainlab.cli import main
from trainlab.compare import command
from trainlab.compare.folder_identity import RETRAINING_MARKER


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of the runs and every hidden file of ``folder``: (size, mtime in ns)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and (p.name.startswith(".") or "runs" in p.parts)}


def _compare(tmp_path: Path, lr: float) -> int:
    base_file, strategies_file = tmp_path / "base.yaml", tmp_path / "strategies.yaml"
    base_file.write_text(yaml.safe_dump({**BASE, "strategy": {**BASE["strategy"], "epochs": 1}}))
    strategies_file.write_text(yaml.safe_dump({"strategies": {"plain": None,
                                                              "fast": {"strategy.optimizer.lr": lr}}}))
    return main(["compare", str(base_file), "--strategies", str(strategies_file), "--seeds", "2", "--jobs", "1",
                 "--out", str(tmp_path / "out"), "--quiet"])


def test_a_rerun_stopped_after_retraining_leaves_a_folder_report_refuses_until_it_finishes(tmp_path, capsys,
                                                                                        monkeypatch):
    out = tmp_path / "out"
    assert _compare(tmp_path, 0.05) == 0
    assert not (out / RETRAINING_MARKER).exists()
    before = _files(out)
    assert _compare(tmp_path, 0.05) == 0  # nothing to train: every run as it was, no marker made (nor removed)
    assert _files(out) == before and not (out / RETRAINING_MARKER).exists()
    capsys.readouterr()

    def stopped(*args, **kwargs):  # Ctrl-C once the changed strategy's runs are trained, before the leaderboard
        raise KeyboardInterrupt

    monkeypatch.setattr(command, "build_leaderboard", stopped)
    assert _compare(tmp_path, 0.2) == 130
    assert (out / RETRAINING_MARKER).is_file() and (out / "leaderboard.json").is_file()  # the earlier one, stale
    capsys.readouterr()
    assert main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {out} is an unfinished comparison (its leaderboard.json is from an earlier trainlab "
                   "compare, and runs were trained since): rerun the same trainlab compare command to finish it, "
                   f"or report its run folders: trainlab report {out}/runs/*/*/*\n")
    assert not (tmp_path / "r.html").exists()

    monkeypatch.undo()
    assert _compare(tmp_path, 0.2) == 0  # finished: the new leaderboard, the marker gone, the report written
    assert not (out / RETRAINING_MARKER).exists()
    assert main(["report", str(out), "-o", str(tmp_path / "r.html")]) == 0
    assert os.path.getsize(tmp_path / "r.html") > 0


def test_a_retraining_killed_after_a_checkpoint_is_resumed_by_the_rerun_not_started_again(tmp_path, capsys):
    """A strategy edited and its rerun killed: the retraining, staged beside the old run as .seed-K.new-<pid> with
    step checkpoints, was deleted by the next rerun and started again from step 0 ("config changed ...: running
    it again"), so a comparison stopped more often than one run takes never finished."""
    import json
    import signal
    import subprocess
    import sys
    import time

    base = {**BASE, "data": {"source": "digits"}, "strategy": {**BASE["strategy"], "epochs": 120, "batch_size": 64},
            "output": {"progress": "off", "checkpoint": {"every_n_steps": 40}}}
    base_file, strategies_file, out = tmp_path / "base.yaml", tmp_path / "strategies.yaml", tmp_path / "out"
    base_file.write_text(yaml.safe_dump({**base, "strategy": {**base["strategy"], "epochs": 1}}))
    strategies_file.write_text(yaml.safe_dump({"strategies": {"plain": None}}))
    argv = ["compare", str(base_file), "--strategies", str(strategies_file), "--seeds", "1", "--jobs", "1",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0  # the earlier run: 1 epoch
    first_hash = json.loads((out / "runs" / "base" / "plain" / "seed-0" / "run.json").read_text())["config_hash"]
    base_file.write_text(yaml.safe_dump(base))  # edited: 120 epochs (~2,700 steps), retrained from scratch
    seed = out / "runs" / "base" / "plain"
    process = subprocess.Popen([sys.executable, "-m", "trainlab", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(seed.glob(".seed-0.new-*/checkpoint/step-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more steps
    process.send_signal(signal.SIGKILL)
    process.wait()
    staged = list(seed.glob(".seed-0.new-*"))
    assert len(staged) == 1 and json.loads((seed / "seed-0" / "run.json").read_text())["status"] == "finished"
    reached = max(int(p.name.split("-")[1]) for p in staged[0].glob("checkpoint/step-*"))
    assert reached >= 40
    capsys.readouterr()
    assert main(argv) == 0
    said = capsys.readouterr()
    said = said.out + said.err
    assert "resuming base/plain/seed-0 from the checkpoint of its run of the changed config" in said, said
    assert f"(it was in {staged[0].name})" in said and "running base/plain/seed-0 again" not in said
    assert not list(seed.glob(".seed-0.new-*"))
    summary = json.loads((seed / "seed-0" / "summary.json").read_text())
    assert summary["epochs_run"] == 120 and summary["config_hash"] != first_hash
