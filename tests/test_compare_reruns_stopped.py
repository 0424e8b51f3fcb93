"""Reruns of a comparison stopped midway. One stopped after it retrained runs left the earlier invocation's
leaderboard.json in place, and ``trainlab report`` showed its numbers beside the new runs' configs, exit 0: the
folder is now marked while its leaderboard is stale, and report refuses it as unfinished. A retraining of a
changed config killed in its staging folder is resumed by the next rerun, and a staging folder of a config
that is no longer asked for is not resumed in place of the run's own."""

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


def _killed_after_a_checkpoint(argv: list[str], checkpoints: str, seed: Path) -> None:
    """Run ``trainlab argv`` in a process and SIGKILL it a little after a folder matching ``checkpoints`` (a glob
    under ``seed``, the strategy's folder) appears."""
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen([sys.executable, "-m", "trainlab", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(seed.glob(checkpoints)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more steps
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(seed.glob(checkpoints)), "no checkpoint before the deadline"


LONG = {**BASE, "data": {"source": "digits"}, "strategy": {**BASE["strategy"], "epochs": 120, "batch_size": 64},
        "output": {"progress": "off", "checkpoint": {"every_n_steps": 40}}}  # ~2,700 steps


def _files_for(tmp_path: Path, base: dict, strategies: dict) -> list[str]:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "strategies.yaml").write_text(yaml.safe_dump({"strategies": strategies}))
    return ["compare", str(tmp_path / "base.yaml"), "--strategies", str(tmp_path / "strategies.yaml"), "--seeds", "1",
            "--jobs", "1", "--out", str(tmp_path / "out"), "--quiet"]


def test_a_retraining_killed_after_a_checkpoint_is_resumed_by_the_rerun_not_started_again(tmp_path, capsys):
    """A strategy edited and its rerun killed: the retraining, staged beside the old run as .seed-K.new-<pid> with
    step checkpoints, was deleted by the next rerun and started again from step 0 ("config changed ...: running
    it again"), so a comparison stopped more often than one run takes never finished. The edit is between two
    schedules of the user's own module: the resumed run is judged the user's by its own config, not the old
    run's (it was warned "cannot resume ... pass --allow-code", and trained from scratch)."""
    import json

    (tmp_path / "mysched.py").write_text("def const(total_steps, steps_per_epoch):\n    return lambda step: 1.0\n\n\n"
                                         "def half(total_steps, steps_per_epoch):\n    return lambda step: 0.5\n")
    short = {**LONG, "strategy": {**LONG["strategy"], "epochs": 1}}
    argv = _files_for(tmp_path, short, {"plain": {"strategy.schedule": {"name": "mysched:const"}}})
    assert main(argv) == 0  # the earlier run: 1 epoch
    seed = tmp_path / "out" / "runs" / "base" / "plain"
    first_hash = json.loads((seed / "seed-0" / "run.json").read_text())["config_hash"]
    argv = _files_for(tmp_path, LONG, {"plain": {"strategy.schedule": {"name": "mysched:half"}}})  # edited
    _killed_after_a_checkpoint(argv, ".seed-0.new-*/checkpoint/step-*", seed)
    staged = list(seed.glob(".seed-0.new-*"))
    assert len(staged) == 1 and json.loads((seed / "seed-0" / "run.json").read_text())["status"] == "finished"
    capsys.readouterr()
    assert main(argv) == 0
    said = capsys.readouterr()
    said = said.out + said.err
    assert "resuming base/plain/seed-0 from the checkpoint of its run of the changed config" in said, said
    assert f"(it was in {staged[0].name})" in said and "running base/plain/seed-0 again" not in said
    assert "cannot resume" not in said and not list(seed.glob(".seed-0.new-*"))
    summary = json.loads((seed / "seed-0" / "summary.json").read_text())
    assert summary["epochs_run"] == 120 and summary["config_hash"] != first_hash


def test_a_staged_run_of_a_config_tried_and_dropped_is_not_resumed_in_place_of_the_runs_own(tmp_path, capsys):
    """Config B interrupted, C tried and killed in its staging folder, B put back: the rerun resumed C's staged
    run in B's place (resume adopts the newest staging folder), trained C to the end under B's name, then
    called the run "not run" for the machine's reasons (exit 5), and B's checkpoint was gone."""
    import json

    argv = _files_for(tmp_path, LONG, {"plain": None})  # B: adam lr 0.01
    seed = tmp_path / "out" / "runs" / "base" / "plain"
    _killed_after_a_checkpoint(argv, "seed-0/checkpoint/step-*", seed)
    assert json.loads((seed / "seed-0" / "run.json").read_text())["status"] == "running"
    b_hash = json.loads((seed / "seed-0" / "run.json").read_text())["config_hash"]
    tried = _files_for(tmp_path, LONG, {"plain": {"strategy.optimizer.lr": 0.03}})  # C
    _killed_after_a_checkpoint(tried, ".seed-0.new-*/checkpoint/step-*", seed)
    assert len(list(seed.glob(".seed-0.new-*"))) == 1
    argv = _files_for(tmp_path, LONG, {"plain": None})  # B again
    capsys.readouterr()
    assert main(argv) == 0
    said = capsys.readouterr()
    said = said.out + said.err
    assert "resuming base/plain/seed-0 (status running)" in said and "continuing the new run" not in said, said
    assert not list(seed.glob(".seed-0.new-*"))
    summary = json.loads((seed / "seed-0" / "summary.json").read_text())
    assert summary["config_hash"] == b_hash and summary["epochs_run"] == 120


def test_an_adopt_whose_staging_folder_is_gone_trains_the_run_rather_than_resuming_the_old_one(tmp_path):
    """The staging folder run_action found may be gone when the worker gets to it (removed by hand, another
    process): resuming the folder then returned the old config's finished run as the new one's."""
    from trainlab.compare.runner import _train_or_resume
    from trainlab.config import validate
    from trainlab.experiment import train

    old = {**BASE, "strategy": {**BASE["strategy"], "epochs": 1}}
    train(validate(old), out=tmp_path / "seed-0", quiet=True)
    new = {**BASE, "strategy": {**BASE["strategy"], "epochs": 2}}
    summary = _train_or_resume(tmp_path / "seed-0", new, "adopt")
    assert summary["epochs_run"] == 2


def test_a_staged_run_that_finished_before_its_swap_is_taken_as_it_is_and_said_so(tmp_path):
    """A retraining killed between finishing and its swap was announced as 'resuming ... from the checkpoint'."""
    from trainlab.compare.run_actions import plan_runs, run_action
    from trainlab.compare.strategies import NamedStrategy
    from trainlab.config import validate
    from trainlab.experiment import train
    from trainlab.run_staging import staging_name

    out = tmp_path / "out"
    new = {**BASE, "strategy": {**BASE["strategy"], "epochs": 2}}
    [plan] = plan_runs({"base": new}, [NamedStrategy("plain", {})], [0], out)
    old = {**plan.raw, "strategy": {**plan.raw["strategy"], "epochs": 1}}
    train(validate(old), out=plan.path, quiet=True)  # the earlier comparison's run
    train(validate(plan.raw), out=staging_name(plan.path, 2**22 + 7), quiet=True)  # a dead process's, finished
    assert run_action(plan) == ("adopt", "taking base/plain/seed-0's finished run of the changed config from its "
                                         "staging folder")
