"""A run that ends inside an epoch at the step of a mid-epoch validation (``eval_every_n_steps``) validates there
once: the partial epoch's record takes that validation's val_*, and ``on_validation_end`` fires once for it.

Causes of such an end: ``max_steps``, a callback's ``control.stop``, the time budget moving the step limit
(``end_at_step``), early stopping deciding at that validation. Before, the partial epoch's record evaluated
the same weights a second time and fired ``on_validation_end`` again: early stopping counted one validation
twice (with ``patience: 1`` a run ended by ``max_steps`` was reported as stopped early, its best "not
improved" on by itself), and the validation time was paid twice. (A tuner's pruner decides at epoch ends
only: tests/test_tune_pruning_steps.py.)

References are independent of the loop: the validation schedule worked out by hand, a validation pass's
forward count measured at an earlier validation, the loss recomputed from the final weights, and for resumes
the same run never interrupted (records, summary and model bytes; the pass count of each resumed copy).
"""

from __future__ import annotations

import copy
import hashlib
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from sklearn.datasets import load_iris

import trainlab
from tests.forked_runs import copy_with_only
from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.callbacks.early_stopping import EarlyStopping
from trainlab.engine.checkpoint import MANIFEST, STATE
from trainlab.errors import Interrupted
from trainlab.experiment import train
from trainlab.run_resume import resume

# iris: 150 rows, 5 steps of 32 an epoch; validations every 2 steps: at steps 2, 4, the epoch's end 5, 6, 8
STRATEGY: dict[str, Any] = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                            "epochs": 10, "eval_every_n_steps": 2}
STOP = 8  # inside epoch 2, at a mid-epoch validation
VALIDATIONS = [("step", 2), ("step", 4), ("epoch", 5), ("step", 6), ("step", 8)]  # (scope, step), by hand


def _iris():
    x, y = load_iris(return_X_y=True)
    return (x - x.mean(0)) / x.std(0), y


class CountingLinear(torch.nn.Linear):
    """A linear model that counts its forward passes in eval mode (validation's)."""

    def __init__(self):
        super().__init__(4, 3)
        self.eval_forwards = 0

    def forward(self, x):
        if not self.training:
            self.eval_forwards += 1
        return super().forward(x)


class Validations(trainlab.Callback):
    """Each ``on_validation_end`` as (scope, step); the model's eval forward passes of one mid-epoch validation
    (``per_pass``) and those between the last step's end and the end of training (``after_last_step``)."""

    order = 99  # after every other callback (a stop decided at a validation is decided when this one sees it)

    def __init__(self, model: CountingLinear | None = None):
        self.model, self.seen = model, []
        self.per_pass: int | None = None
        self.after_last_step: int | None = None
        self._at_step_end = 0

    def on_step_end(self, view, loss) -> None:
        self._at_step_end = self.model.eval_forwards if self.model is not None else 0

    def on_validation_end(self, view, record) -> None:
        self.seen.append((record.get("scope", "epoch"), record["step"]))
        if self.model is not None and self.per_pass is None and record.get("scope") == "step":
            self.per_pass = self.model.eval_forwards - self._at_step_end

    def on_train_end(self, view) -> None:
        if self.model is not None:
            self.after_last_step = self.model.eval_forwards - self._at_step_end


class StopAt(trainlab.Callback):
    """The run's own stop at the end of step ``at``."""

    name = "stop_at"

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, view, loss) -> None:
        if view.state.step == self.at:
            view.control.stop(f"user stop at {self.at}")


class EndAt(trainlab.Callback):
    """What the time budget's planner does: move the step limit (``end_at_step``) early in the run."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, view, loss) -> None:
        if view.state.step == 1:
            view.end_at_step(self.at, "time budget")


def _cause(name: str) -> tuple[dict[str, Any], list[trainlab.Callback], str]:
    """(strategy, callbacks, expected stop_reason) ending the run at step STOP."""
    if name == "max_steps":
        return {**STRATEGY, "max_steps": STOP}, [], f"max_steps={STOP} reached"
    if name == "callback_stop":
        return STRATEGY, [StopAt(STOP)], f"user stop at {STOP}"
    if name == "time_budget":
        return STRATEGY, [EndAt(STOP)], f"time budget: ended at step {STOP}"
    assert name == "early_stopping", name  # min_delta 10: only the first validation improves; the 5th is the 4th without
    return ({**STRATEGY, "early_stopping": {"monitor": "val_loss", "patience": 4, "min_delta": 10.0,
                                            "restore_best": False}}, [],
            "early stopping: val_loss did not improve for 4 validations (best")


def _without_time(records):
    return [{k: v for k, v in record.items() if k != "elapsed_s"} for record in records]


@pytest.mark.parametrize("cause", ["max_steps", "callback_stop", "time_budget", "early_stopping"])
def test_a_run_ending_at_a_mid_epoch_validation_validates_there_once(cause):
    x, y = _iris()
    strategy, callbacks, reason = _cause(cause)
    torch.manual_seed(0)
    model = CountingLinear()
    counter = Validations(model)
    result = trainlab.fit(model, (x, y), strategy, val=(x, y), callbacks=[*callbacks, counter])
    assert result.summary["steps"] == STOP and result.summary["stop_reason"].startswith(reason), result.summary
    assert counter.seen == VALIDATIONS  # the partial epoch ended at step 8 fires no second on_validation_end
    assert counter.per_pass and counter.after_last_step == counter.per_pass  # one pass after the last step
    # the records as before: epoch 1, and the partial epoch 2 at step 8 with step 8's validation
    assert [(r["epoch"], r["step"]) for r in result.history] == [(1, 5), (2, STOP)]
    assert set(result.history[1]) == set(result.history[0])
    last_step = next(r for r in result.step_records if r["step"] == STOP)
    val = {k: v for k, v in result.history[1].items() if k.startswith("val_")}
    assert val and val == {k: v for k, v in last_step.items() if k.startswith("val_")}
    # ... which score the weights training ended with (no restore_best here): recomputed independently
    with torch.no_grad():
        model.cpu().eval()
        logits = model(torch.as_tensor(x, dtype=torch.float32))
        loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y)).item()
    assert val["val_loss"] == pytest.approx(loss, rel=1e-5)


def test_every_cause_records_the_same_history_as_max_steps():
    """Only the stop reason differs: each cause ends the same trajectory at the same step with the same records."""
    x, y = _iris()
    histories = {}
    for cause in ("max_steps", "callback_stop", "time_budget", "early_stopping"):
        strategy, callbacks, _ = _cause(cause)
        torch.manual_seed(0)
        result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), strategy, val=(x, y), callbacks=callbacks)
        histories[cause] = (_without_time(result.history), _without_time(result.step_records))
    assert all(history == histories["max_steps"] for history in histories.values())


def test_early_stopping_counts_the_validation_at_a_mid_epoch_end_once():
    """Patience counts validations: 5 passes, the first the best (min_delta 10), leave ``wait`` at 4."""
    x, y = _iris()
    stopping = EarlyStopping(monitor="val_loss", patience=100, min_delta=10.0, restore_best=False)
    torch.manual_seed(0)
    trainlab.fit(torch.nn.Linear(4, 3), (x, y), {**STRATEGY, "max_steps": STOP}, val=(x, y), callbacks=[stopping])
    assert stopping.wait == len(VALIDATIONS) - 1


def test_max_steps_at_an_improving_mid_epoch_validation_is_not_an_early_stop():
    """patience 1: the last validation (step 8) is the best so far; compared with itself it looked like an
    epoch without improvement, and the run ended by max_steps was reported as stopped early."""
    x, y = _iris()
    strategy = {**STRATEGY, "max_steps": STOP, "early_stopping": {"monitor": "val_loss", "patience": 1}}
    torch.manual_seed(0)
    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), strategy, val=(x, y))
    losses = [r["val_loss"] for r in result.step_records if "val_loss" in r]
    assert losses == sorted(losses, reverse=True)  # each validation improves: the best is the last
    assert result.summary["stop_reason"] == f"max_steps={STOP} reached"
    assert result.summary["stopped_early"] is False


# ---------------------------------------------------------------- resumed from each checkpoint

# digits: 1149 training rows, 18 steps of 64 an epoch; validations every 4 steps: 4, 8, 12, 16, the epoch's
# end 18, 20, 24 (inside epoch 2, where every run below ends)
END = 24
CONFIG: dict[str, Any] = {
    "name": "validate-once",
    "seed": 0,
    "data": {"source": "digits"},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 64,
                 "epochs": 4, "eval_every_n_steps": 4},
    "metrics": ["accuracy"],
    "output": {"progress": "off", "checkpoint": {"every_n_steps": 3, "keep_last": 100, "every_seconds": None,
                                                "keep_after_finish": "all"}},
    "runtime": {"num_threads": 1, "device": "cpu"},
}
DIGITS_VALIDATIONS = [("step", 4), ("step", 8), ("step", 12), ("step", 16), ("epoch", 18), ("step", 20),
                      ("step", 24)]


def _ending(cause: str) -> tuple[dict[str, Any], type | None]:
    """The config and the user callback class (built with END) that end the run at step END."""
    config = copy.deepcopy(CONFIG)
    if cause == "max_steps":
        config["strategy"]["max_steps"] = END
    elif cause == "early_stopping":  # only the first validation improves: the 7th (step 24) is the 6th without
        config["strategy"]["early_stopping"] = {"monitor": "val_loss", "patience": 6, "min_delta": 10.0,
                                                "restore_best": True}
    return config, (StopAt if cause == "callback_stop" else None)


def _callbacks(user: type | None, counter: Validations) -> list[trainlab.Callback]:
    return [counter] if user is None else [user(END), counter]


def _outcome(run: Path) -> dict[str, Any]:
    summary = json.loads((run / "summary.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"records": _without_time(records), "model": (run / "model.safetensors").read_bytes(),
            **{k: summary[k] for k in ("steps", "epochs_run", "stopped_early", "stop_reason", "val")}}


@pytest.mark.parametrize("cause", ["max_steps", "callback_stop", "early_stopping"])
def test_resumed_from_each_checkpoint_the_run_ends_as_the_uninterrupted_one_validating_once(cause, tmp_path,
                                                                                            monkeypatch):
    """Every step-end checkpoint (every 3 steps: some before a validation the step owes, one at the epoch's
    last step, the stopping step's) resumed in a copy gives the uninterrupted run's records, summary and model,
    and the resumed copy validates exactly the passes the uninterrupted run made from that step on. The run's
    final checkpoint, written as training ends at the stopping step's name, would replace that step's own:
    that write is left out of the reference run."""
    config, user = _ending(cause)
    counter = Validations()
    monkeypatch.setattr(CheckpointSaver, "on_train_end", lambda self, view: None)
    _, reference = train(copy.deepcopy(config), out=tmp_path / "reference", quiet=True,
                         callbacks=_callbacks(user, counter))
    monkeypatch.undo()
    expected = _outcome(reference)
    assert (expected["steps"], expected["epochs_run"]) == (END, 2), expected["stop_reason"]
    assert counter.seen == DIGITS_VALIDATIONS
    checkpoints = sorted((reference / "checkpoint").glob("step-*"))
    assert [int(c.name.split("-")[1]) for c in checkpoints] == list(range(3, END + 1, 3))
    for kept in checkpoints:
        step = int(kept.name.split("-")[1])
        resumed_counter = Validations()
        copied = copy_with_only(reference, kept, tmp_path / f"from-{step}")
        resume(copied, quiet=True, callbacks=_callbacks(user, resumed_counter))
        assert _outcome(copied) == expected, f"resumed from step {step}"
        assert resumed_counter.seen == [v for v in DIGITS_VALIDATIONS if v[1] >= step], f"resumed from step {step}"


class SigtermAt(trainlab.Callback):
    """SIGTERM to this process as step ``at`` starts (SignalStop turns it into ``interrupted_by`` at its end)."""

    def __init__(self, at: int):
        self.at = at

    def on_step_start(self, view) -> None:
        if view.state.step == self.at - 1:
            signal.raise_signal(signal.SIGTERM)


def _without_mid_epoch_val(checkpoint: Path) -> None:
    """Make ``checkpoint`` one written before ``mid_epoch_val`` existed (the manifest's digest and size follow)."""
    tree = json.loads((checkpoint / STATE).read_text())
    del tree["parts"]["train_state"]["mid_epoch_val"]
    data = json.dumps(tree).encode()
    (checkpoint / STATE).write_bytes(data)
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    manifest["files"][STATE], manifest["sizes"][STATE] = hashlib.sha256(data).hexdigest(), len(data)
    (checkpoint / MANIFEST).write_text(json.dumps(manifest, indent=2))


def test_a_signal_at_the_stopping_validation_resumes_to_the_partial_record_without_validating_again(tmp_path):
    """SIGTERM at step 24, whose validation decides early stopping: the interrupted run validated there and
    saved its checkpoint as training ended. Resumed, the run closes the epoch with the saved validation: no
    pass, no ``on_validation_end`` (the stop's wait counter is not advanced again). A checkpoint from before
    ``mid_epoch_val`` existed still resumes to the same records (it validates the same weights again)."""
    config, _ = _ending("early_stopping")
    _, reference = train(copy.deepcopy(config), out=tmp_path / "reference", quiet=True)
    expected = _outcome(reference)
    with pytest.raises(Interrupted):
        train(copy.deepcopy(config), out=tmp_path / "interrupted", quiet=True, callbacks=[SigtermAt(END)])
    run = tmp_path / "interrupted"
    saved = run / "checkpoint" / f"step-{END:09d}"
    state = json.loads((saved / STATE).read_text())["parts"]["train_state"]
    assert state["mid_epoch_val"]["step"] == END and not state["validation_due"]
    old_format = copy_with_only(run, saved, tmp_path / "old-format")
    _without_mid_epoch_val(old_format / "checkpoint" / saved.name)

    counter = Validations()
    resume(run, quiet=True, callbacks=[counter])
    assert _outcome(run) == expected
    assert counter.seen == []

    resume(old_format, quiet=True)
    assert _outcome(old_format) == expected
