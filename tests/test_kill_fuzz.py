"""Kill-fuzz: SIGKILL runs at random moments across strategies; every resume ends bit-identical.

For each configuration a reference run goes through uninterrupted. Then the same
config is trained in a real (forked) process that is SIGKILLed at a random moment
after its first checkpoint, resumed, killed again, ..., and finally resumed to the
end. A kill can land anywhere: inside a step, inside a checkpoint write, during the
final evaluation, between model.safetensors and summary.json. The finished run must
equal the reference byte for byte (model.safetensors) and record for record
(metrics.jsonl without wall times, summary epochs/steps/stop reason).

A second fuzz places the kills by optimizer step instead of wall time (a callback that
SIGKILLs its own process right after step k and its checkpoint): reproducible on any
machine, and for the rollback config one kill always lands after a checkpoint written
between a snapshot and the spike that rolls back to it.

The kill times and steps come from ``random.Random(seed)``; the seed is printed and can
be set with ``TRAINLAB_KILL_SEED`` to replay a failure. The processes are forks of the
test process (see :mod:`tests.forked_runs`): no interpreter start-up per kill.
"""

from __future__ import annotations

import copy
import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import trainlab.experiment
from tests.forked_runs import (
    fork_cli,
    has_checkpoint,
    records,
    run_cli,
    run_inline,
    status,
    wait,
    wait_until,
    write_config,
)
from trainlab.callbacks import Callback

BASE: dict[str, Any] = {
    "seed": 5,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [32]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 32,
                 "epochs": 10},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 5, "keep_last": 2, "every_seconds": None,
                                                 "keep_after_finish": "all"}},
    "runtime": {"num_threads": 1},
}


def _variant(**strategy: Any) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    for key, value in strategy.items():
        if key in ("model", "output"):
            config[key] = {**config[key], **value}
        else:
            config["strategy"][key] = value
    return config


# digits: 1149 training rows, 36 steps per epoch at batch 32
CONFIGS: dict[str, dict[str, Any]] = {
    "plain": _variant(),
    "early_stopping_restore_best": _variant(
        epochs=40,
        early_stopping={"monitor": "val_loss", "patience": 2, "min_delta": 0.01, "restore_best": True}),
    # Adam at lr 10 diverges (loss ~1.7e3) several times; each rollback divides the LR by 10
    "rollback_adam": _variant(
        optimizer={"name": "adam", "lr": 10.0}, epochs=4, schedule={"name": "warmup_linear", "warmup_fraction": 0.5},
        divergence={"policy": "rollback", "spike_factor": 20, "window": 10, "lr_factor": 0.1, "max_rollbacks": 4}),
    "grad_accum": _variant(optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9}, batch_size=16,
                           grad_accum_steps=3, epochs=8, output={"checkpoint": {"every_n_steps": 4, "keep_last": 2,
                                                                               "every_seconds": None}}),
    "reduce_on_plateau": _variant(optimizer={"name": "adamw", "lr": 0.02},
                                  schedule={"name": "reduce_on_plateau", "patience": 0, "factor": 0.5}),
    "dropout": _variant(model={"dropout": 0.5}, optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9,
                                                           "nesterov": True}),
}

KILLS_PER_CONFIG = 4


def _seed() -> int:
    seed = int(os.environ.get("TRAINLAB_KILL_SEED", "20261130"))
    print(f"kill-fuzz seed: {seed} (replay with TRAINLAB_KILL_SEED={seed})")
    return seed


def _comparable(folder: Path) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k != "elapsed_s"} for record in records(folder)]


def _summary(folder: Path) -> dict[str, Any]:
    summary = json.loads((folder / "summary.json").read_text())
    return {key: summary[key] for key in ("status", "epochs_run", "steps", "best_epoch", "stopped_early",
                                          "stop_reason", "val", "test")}


def _killed_run(config_path: Path, out: Path, log: Path, rng: random.Random, duration: float) -> list[str]:
    """Train into ``out``, SIGKILLing up to KILLS_PER_CONFIG times; the kills that landed (for the report)."""
    landed: list[str] = []
    args = ["train", str(config_path), "--out", str(out), "--quiet"]
    for attempt in range(KILLS_PER_CONFIG):
        pid = fork_cli(args, log)
        started = time.monotonic()
        code = wait_until(lambda: has_checkpoint(out), pid, timeout=120)
        if code is None:
            delay = rng.uniform(0.0, 0.6 * duration)  # several kills land before the run ends
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            code = wait(pid)
        if code != -signal.SIGKILL:
            assert code == 0, f"attempt {attempt}: exit {code}; log:\n{log.read_text()}"
            break
        landed.append(f"kill {attempt + 1} ({args[0]}) at {time.monotonic() - started:.2f} s, "
                      f"{delay:.2f} s after a checkpoint existed; status then {status(out)}")
        if status(out) == "finished":  # the kill came after the run had finished, as it was exiting
            break
        args = ["resume", str(out), "--quiet"]
    while status(out) != "finished":  # resume until the run is complete
        code = run_cli(["resume", str(out), "--quiet"], log)
        assert code == 0, f"resume exit {code} after {landed}; log:\n{log.read_text()}"
    return landed


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_is_bit_identical_across_strategies(tmp_path):
    rng = random.Random(_seed())
    total_landed = 0
    failures = []
    for name, config in CONFIGS.items():
        folder = tmp_path / name
        folder.mkdir()
        config_path = write_config(folder / "config.yaml", {**config, "name": name})
        log = folder / "stderr.log"
        reference = folder / "reference"
        assert run_inline(["train", str(config_path), "--out", str(reference), "--quiet"]) == 0
        duration = json.loads((reference / "summary.json").read_text())["train_time_s"] + 0.2
        landed = _killed_run(config_path, folder / "killed", log, rng, duration)
        total_landed += len(landed)
        print(f"{name}: reference {duration:.2f} s; " + ("; ".join(landed) or "no kill landed"))
        killed = folder / "killed"
        problems = []
        if (killed / "model.safetensors").read_bytes() != (reference / "model.safetensors").read_bytes():
            problems.append("model.safetensors differs")
        if _comparable(killed) != _comparable(reference):
            problems.append("metrics.jsonl differs")
        if _summary(killed) != _summary(reference):
            problems.append(f"summary differs: {_summary(killed)} != {_summary(reference)}")
        leftovers = [p.name for p in [*killed.glob(".*tmp*"), *(killed / "checkpoint").glob(".*tmp*")]]
        if leftovers:
            problems.append(f"temporary files left behind: {leftovers}")
        if problems:
            failures.append(f"{name} after {landed}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
    assert total_landed >= len(CONFIGS), f"only {total_landed} kills landed; make the runs longer"


def test_the_fuzzed_configurations_do_what_they_are_named_for(tmp_path):
    """The fuzz means something only if early stopping stops and the rollback run rolls back."""
    for name in ("early_stopping_restore_best", "rollback_adam"):
        out = tmp_path / name
        path = write_config(tmp_path / f"{name}.yaml", {**CONFIGS[name], "name": name})
        assert run_inline(["train", str(path), "--out", str(out), "--quiet"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        if name == "early_stopping_restore_best":
            assert summary["stopped_early"] and summary["epochs_run"] < 40
        else:
            rollbacks = [e for e in summary["events"] if e.get("action") == "rollback"]
            assert rollbacks, summary["events"]


class KillAtStep(Callback):
    """SIGKILLs its own process at the end of optimizer step ``at``, after the checkpoint of that step."""

    order = 95  # after the checkpoint saver (90)
    name = "kill_at_step"

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, view, loss) -> None:
        if view.state.step == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    "rollback_adam", "early_stopping_restore_best", "grad_accum"])
def test_sigkill_at_random_steps_then_resume_is_bit_identical(name, tmp_path, monkeypatch):
    """Kills placed by step, not by time: reproducible, and as likely inside a rollback's replay as elsewhere."""
    rng = random.Random(_seed() + len(name))
    config_path = write_config(tmp_path / "config.yaml", {**CONFIGS[name], "name": name})
    reference = tmp_path / "reference"
    assert run_inline(["train", str(config_path), "--out", str(reference), "--quiet"]) == 0
    steps = json.loads((reference / "summary.json").read_text())["steps"]
    kill_steps = rng.sample(range(2, steps), 3)
    every = CONFIGS[name]["output"]["checkpoint"]["every_n_steps"]
    events = json.loads((reference / "summary.json").read_text())["events"]
    # a checkpoint written after a rollback's snapshot, before the spike that rolls back to it, then a kill
    inside = [step for e in events if e.get("action") == "rollback"
              for step in range(e["restored_step"] + 1, e["step"]) if step % every == 0]
    if inside:
        kill_steps[0] = rng.choice(inside)
    kill_steps.sort()
    print(f"{name}: kills at steps {kill_steps} of {steps}")
    _assert_kills_at_steps_resume_identically(config_path, reference, kill_steps, tmp_path, monkeypatch)


def _assert_kills_at_steps_resume_identically(config_path: Path, reference: Path, kill_steps: list[int],
                                              tmp_path: Path, monkeypatch) -> None:
    run_callbacks = trainlab.experiment._run_callbacks
    out, log = tmp_path / "killed", tmp_path / "stderr.log"
    args = ["train", str(config_path), "--out", str(out), "--quiet"]
    for at in kill_steps:
        def with_kill(*a, at=at, **k):
            saver, signals, callbacks = run_callbacks(*a, **k)
            return saver, signals, [*callbacks, KillAtStep(at)]

        monkeypatch.setattr(trainlab.experiment, "_run_callbacks", with_kill)
        code = run_cli(args, log)
        assert code in (-signal.SIGKILL, 0), f"exit {code} before step {at}; log:\n{log.read_text()}"
        args = ["resume", str(out), "--quiet"]
    monkeypatch.undo()
    while status(out) != "finished":
        assert run_cli(["resume", str(out), "--quiet"], log) == 0, log.read_text()
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert _comparable(out) == _comparable(reference)
    assert _summary(out) == _summary(reference)


def test_a_kill_after_a_checkpoint_at_a_mid_epoch_validation_step_resumes_identically(tmp_path, monkeypatch):
    """The checkpoint of a step is written in its step-end hooks, before the mid-epoch validation that
    step owes (eval_every_n_steps): a run killed between the two validates first on resume. Without that
    the resumed run skipped the validation, and here, where it is the one that stops the run early, trained
    on past the step where the uninterrupted run stopped."""
    every = 7
    config = _variant(epochs=20, eval_every_n_steps=every,
                      early_stopping={"monitor": "val_accuracy", "patience": 3, "restore_best": False},
                      output={"checkpoint": {"every_n_steps": every, "keep_last": 2, "every_seconds": None,
                                            "keep_after_finish": "all"}})
    config_path = write_config(tmp_path / "config.yaml", {**config, "name": "eval_every"})
    reference = tmp_path / "reference"
    assert run_inline(["train", str(config_path), "--out", str(reference), "--quiet"]) == 0
    summary = json.loads((reference / "summary.json").read_text())
    validated = [r["step"] for r in records(reference) if r.get("scope") == "step" and "val_accuracy" in r]
    assert summary["stopped_early"] and summary["steps"] in validated, (summary["steps"], validated)
    assert summary["steps"] % 36, "the early stop must come at a mid-epoch validation (36 steps an epoch)"
    # one kill at an earlier validation step, one right after the checkpoint of the step that stops the run
    _assert_kills_at_steps_resume_identically(config_path, reference, [validated[2], summary["steps"]],
                                              tmp_path, monkeypatch)
