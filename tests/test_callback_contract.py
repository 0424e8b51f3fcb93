"""User callbacks as a Keras or Lightning user expects them (a user tester's findings).

- ``view.log`` from a user's callback always makes a step record of the current step (``"scope": "step"``
  and ``step`` filled in), so it is never read as an epoch record nor written out of step order; the keys
  trainlab owns are refused at that call, naming the key.
- A hook whose signature cannot take what the loop passes is refused before any file is written, naming
  the class, the hook, where it is defined and the parameters it must take.
- A callback that raises is one line naming the callback, the hook, the step and the user's file:line, in
  the error and in run.json; one failing in ``on_train_end`` after the last step leaves the run's results
  written (the built-in ``on_train_end`` hooks run).
- A stop asked in ``on_step_start`` records the LR the last step ran with (NumPy's cosine as reference).
- An interrupted run given user callbacks says how to resume it with them, from Python.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_iris

import trainlab
from trainlab.callbacks.callback_list import CallbackList
from trainlab.callbacks.monitor import check_monitor
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.errors import ConfigError, Interrupted
from trainlab.experiment import _resume_hint, train
from trainlab.records import is_epoch_record
from trainlab.run_resume import resume

HERE = Path(__file__).resolve().relative_to(Path.cwd().resolve()) if Path(__file__).resolve().is_relative_to(
    Path.cwd().resolve()) else Path(__file__).resolve()

CONFIG = {
    "name": "contract",
    "seed": 0,
    "data": {"source": "iris"},
    "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05}, "batch_size": 16,
                 "epochs": 2},
    "runtime": {"num_threads": 1},
    "output": {"progress": "off", "log_every_n_steps": 2, "checkpoint": {"every_n_steps": 5, "keep_last": 3}},
}
STRATEGY = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 16, "epochs": 3}


def _iris():
    x, y = load_iris(return_X_y=True)
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32), y


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _run_json(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


# --------------------------------------------------------------------------- view.log


class Logs(trainlab.Callback):
    """Logs ``record`` (a fresh copy each time) at the end of step ``at``."""

    def __init__(self, at: int, record: dict):
        self.at, self.record = at, record

    def on_step_end(self, view, loss):
        if view.state.step == self.at:
            view.log(dict(self.record))


def test_a_logged_record_is_a_step_record_of_its_step_in_step_order(tmp_path):
    """``{"bar": 2.0}`` was metrics.jsonl's first line, ahead of the step-2 record, with no scope."""
    train(CONFIG, out=tmp_path / "run", quiet=True, callbacks=[Logs(6, {"bar": 2.0})])
    lines = _lines(tmp_path / "run")
    (logged,) = [r for r in lines if "bar" in r]
    assert logged == {"scope": "step", "step": 6, "bar": 2.0}
    steps = [r["step"] for r in lines]
    assert steps == sorted(steps) and steps[0] == 2  # ordered by step: step 2's record first
    epochs = [(r["epoch"], r["step"]) for r in lines if is_epoch_record(r)]
    assert epochs == [(1, 6), (2, 12)]  # iris's training split: 6 batches of 16


def test_a_logged_record_stating_the_current_step_and_scope_is_taken():
    """What trainlab fills in anyway (the pattern ``{"scope": "step", "step": view.state.step, ...}``)."""
    x, y = _iris()

    class Stated(trainlab.Callback):
        def on_step_end(self, view, loss):
            if view.state.step == 4:
                view.log({"scope": "step", "step": view.state.step, "my_loss": loss})

    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), {**STRATEGY, "epochs": 1}, callbacks=[Stated()])
    assert result.step_records == [{"scope": "step", "step": 4, "my_loss": pytest.approx(result.step_records[0]
                                                                                          ["my_loss"])}]
    assert type(result.step_records[0]["my_loss"]) is float


@pytest.mark.parametrize(("record", "key"), [
    ({"epoch": 0.5, "step": 4, "my_loss": 1.0}, "'epoch'"),  # was listed among the epoch records
    ({"my_loss": 1.0, "event": "mine"}, "'event'"),
    ({"lr": 0.1}, "'lr'"),
    ({"lr/head": 0.1}, "'lr/head'"),
    ({"train_loss": 0.3}, "'train_loss'"),
    ({"scope": "epoch", "x": 1}, "'scope'"),
])
def test_trainlabs_own_keys_are_refused_at_the_call_naming_the_key(record, key):
    x, y = _iris()
    with pytest.raises(ConfigError) as raised:
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, callbacks=[Logs(4, record)])
    message = str(raised.value)
    assert message.startswith(f"callback 'Logs' (on_step_end) logged a record with the key {key}, which is "
                              "trainlab's own"), message
    assert "\n" not in message


def test_a_logged_step_other_than_the_current_one_is_refused():
    x, y = _iris()
    with pytest.raises(ConfigError, match=r"^callback 'Logs' \(on_step_end\) logged a record with 'step': 2 at "
                                          r"step 7; view.log records at the current step"):
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, callbacks=[Logs(7, {"step": 2, "old": 1})])


def test_what_view_log_cannot_write_is_said_of_the_hook_that_logged_it():
    x, y = _iris()
    with pytest.raises(ConfigError, match=r"^callback 'Logs' \(on_step_end\) at step 4: record key 'bad' holds a "
                                          r"set, put there by the record given to view.log"):
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, callbacks=[Logs(4, {"bad": {1, 2}})])


def test_a_logged_record_that_is_no_dict_is_refused():
    class LogsAList(trainlab.Callback):
        def on_step_end(self, view, loss):
            view.log([1.0])

    x, y = _iris()
    with pytest.raises(ConfigError, match=r"^callback 'LogsAList' \(on_step_end\) gave view.log \[1.0\] \(a list\); "
                                          r"a record is a dict of values"):
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, callbacks=[LogsAList()])


# --------------------------------------------------------------------------- hook signatures


class OneArgument(trainlab.Callback):
    def on_epoch_end(self, view):  # Keras' on_epoch_end(epoch, logs) half-remembered
        pass


class Flexible(trainlab.Callback):
    def on_epoch_end(self, view, *args):
        pass

    def on_step_end(self, *args, **kwargs):
        pass

    def on_log(self, view, logs=None):
        pass

    def on_train_end(self, view, extra=1):
        pass


def test_a_hook_that_cannot_take_the_loops_arguments_is_refused_before_any_file(tmp_path):
    """It trained an epoch, then a bare TypeError escaped and the folder was left failed with a checkpoint."""
    with pytest.raises(ConfigError) as raised:
        train(CONFIG, out=tmp_path / "run", quiet=True, callbacks=[OneArgument()])
    line = OneArgument.on_epoch_end.__code__.co_firstlineno
    assert str(raised.value) == (f"callback OneArgument's on_epoch_end(self, view) (at {HERE}:{line}) cannot take the "
                                 "arguments trainlab calls it with: define it as on_epoch_end(self, view, record) "
                                 "(*args and **kwargs are accepted)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("source", "hook"), [
    ("def on_step_end(self, view, loss, extra): pass", "on_step_end(self, view, loss, extra)"),
    ("def on_step_start(self, view, *, flag): pass", "on_step_start(self, view, *, flag)"),
    ("def on_train_start(self): pass", "on_train_start(self)"),
    ("@staticmethod\ndef on_validation_end(record): pass", "on_validation_end(record)"),
])
def test_each_hook_is_checked_against_the_base_classs_parameters(source, hook):
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102 -- the hook under test, defined in <string>
    method = next(value for name, value in namespace.items() if name.startswith("on_"))
    kind = type("Bad", (trainlab.Callback,), {hook.split("(")[0]: method})
    with pytest.raises(ConfigError, match=rf"^callback Bad's {re.escape(hook)} \(at <string>:\d\) cannot take the "
                                          r"arguments trainlab calls it with: define it as "):
        CallbackList([kind()])


def test_a_hook_that_is_no_method_is_refused():
    kind = type("NotAMethod", (trainlab.Callback,), {"on_log": 3})
    with pytest.raises(ConfigError, match=r"^callback NotAMethod's on_log is 3 \(a int\), not a method; define "
                                          r"it as def on_log\(self, view, record\)$"):
        CallbackList([kind()])


def test_hooks_taking_the_arguments_with_defaults_or_star_args_are_accepted():
    x, y = _iris()
    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), {**STRATEGY, "epochs": 1}, callbacks=[Flexible()])
    assert [r["epoch"] for r in result.history] == [1]


# --------------------------------------------------------------------------- a callback that raises


class Boom(trainlab.Callback):
    def __init__(self, hook: str, at: int = 5):
        self.hook, self.at = hook, at

    def on_step_end(self, view, loss):
        if self.hook == "on_step_end" and view.state.step == self.at:
            raise ValueError("my callback failed")

    def on_train_end(self, view):
        if self.hook == "on_train_end":
            raise RuntimeError("boom at end")


def _raise_line(function) -> int:
    """The line of ``function``'s ``raise``."""
    code = function.__code__
    lines = Path(code.co_filename).read_text().splitlines()
    return next(n for n in range(code.co_firstlineno, len(lines) + 1) if lines[n - 1].strip().startswith("raise "))


def test_a_raising_callback_is_named_with_its_hook_step_and_line_in_the_error_and_run_json(tmp_path):
    with pytest.raises(ConfigError) as raised:
        train(CONFIG, out=tmp_path / "run", quiet=True, callbacks=[Boom("on_step_end")])
    expected = (f"callback 'Boom' (on_step_end) raised ValueError: my callback failed at step 5 "
                f"(at {HERE}:{_raise_line(Boom.on_step_end)})")
    assert str(raised.value) == expected
    assert isinstance(raised.value.__cause__, ValueError)  # the user's traceback stays chained
    info = _run_json(tmp_path / "run")
    assert (info["status"], info["error"]) == ("failed", expected)


def test_a_callback_failing_in_on_train_end_leaves_the_runs_results_written(tmp_path):
    """The built-in checkpointing's on_train_end did not run: the finished run was failed, with no model."""
    run = tmp_path / "run"
    with pytest.raises(ConfigError) as raised:
        train(CONFIG, out=run, quiet=True, callbacks=[Boom("on_train_end")])
    assert str(raised.value) == (
        f"callback 'Boom' (on_train_end) raised RuntimeError: boom at end at step 12 "
        f"(at {HERE}:{_raise_line(Boom.on_train_end)}), after the run had finished: its results were written "
        f"to {run} (run.json says finished)")
    assert _run_json(run)["status"] == "finished" and "error" not in _run_json(run)
    assert (run / "model.safetensors").is_file() and (run / "summary.json").is_file()
    assert (run / "checkpoint" / "step-000000012").is_dir()  # the checkpoint saver's last one
    assert [r["epoch"] for r in _lines(run) if is_epoch_record(r)] == [1, 2]


def test_a_callback_failing_in_on_train_start_still_gets_every_on_train_end(tmp_path):
    """on_train_end runs "always, in a finally block" (callbacks/base.py): also when an on_train_start raised,
    so what another callback started (a progress bar, an opened logger) is ended. Before, the start hooks
    were fired outside the try and no on_train_end ran."""
    ended = []

    class Starts(trainlab.Callback):
        def on_train_start(self, view):
            raise ValueError("cannot start")

    class Ends(trainlab.Callback):
        def on_train_end(self, view):
            ended.append(view.state.step)

    with pytest.raises(ConfigError, match=r"^callback 'Starts' \(on_train_start\) raised ValueError: cannot start"):
        train(CONFIG, out=tmp_path / "run", quiet=True, callbacks=[Starts(), Ends()])
    assert ended == [0]
    assert _run_json(tmp_path / "run")["status"] == "failed"


def test_a_failing_on_train_end_after_training_failed_is_warned_of_and_the_first_failure_raised(tmp_path, capsys):
    class Both(Boom):
        def on_train_end(self, view):
            raise RuntimeError("boom at end too")

    with pytest.raises(ConfigError, match=r"^callback 'Both' \(on_step_end\) raised ValueError: my callback failed"):
        train(CONFIG, out=tmp_path / "run", quiet=True, callbacks=[Both("on_step_end")])
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(
        "warning: callback 'Both' (on_train_end) raised RuntimeError: boom at end too at step 5"), warnings
    assert warnings[0].endswith("after training had failed (the error below)")


def test_trainlab_fit_names_the_raising_callback_too():
    x, y = _iris()
    with pytest.raises(ConfigError, match=r"^callback 'Boom' \(on_step_end\) raised ValueError: my callback "
                                          r"failed at step 3 \(at "):
        trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, callbacks=[Boom("on_step_end", at=3)])


# --------------------------------------------------------------------------- the LR of a stop before a step


class StopBefore(trainlab.Callback):
    """Stops in on_step_start once ``at`` steps are done (the LR adapter, order 10, has written the next LR)."""

    def __init__(self, at: int):
        self.at = at

    def on_step_start(self, view):
        if view.state.step == self.at:
            view.control.stop("stop before a step")


@pytest.mark.parametrize("at", [3, 12, 13])  # mid-epoch 1, at epoch 2's end, mid-epoch 2
def test_a_stop_before_a_step_records_the_lr_the_last_step_ran_with(at):
    """It recorded the schedule's LR of the step never taken (cosine: 0.08967 where the last ran at 0.09330)."""
    x, y = _iris()
    steps_per_epoch, epochs, lr = math.ceil(len(x) / 16), 3, 0.1
    total = steps_per_epoch * epochs
    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), {**STRATEGY, "epochs": epochs, "schedule": "cosine",
                                                          "optimizer": {"name": "sgd", "lr": lr}},
                          val=(x, y), callbacks=[StopBefore(at)])
    last = result.history[-1]
    assert last["step"] == at
    # step t (0-based) runs at lr * (1 + cos(pi t / T)) / 2: the last one taken is t = at - 1
    assert last["lr"] == pytest.approx(lr * (1 + np.cos(np.pi * (at - 1) / total)) / 2, rel=1e-12)
    assert last["lr"] != pytest.approx(lr * (1 + np.cos(np.pi * at / total)) / 2, rel=1e-6)


# --------------------------------------------------------------------------- the resume hint


class InterruptAt(trainlab.Callback):
    """SIGINTs the process at the end of step ``at`` (SignalStop's handler stops the run at the next step)."""

    def __init__(self, at: int | None = None):
        self.at, self.steps = at, 0

    def on_step_end(self, view, loss):
        self.steps += 1
        if view.state.step == self.at:
            os.kill(os.getpid(), signal.SIGINT)

    def state_dict(self):
        return {"steps": self.steps}

    def load_state_dict(self, state):
        self.steps = state["steps"]


def test_an_interrupted_run_with_user_callbacks_says_to_resume_it_from_python_with_them(tmp_path):
    """It said "continue with: trainlab resume DIR", which resumes without the user's callbacks."""
    run = tmp_path / "run"
    with pytest.raises(Interrupted) as raised:
        train(CONFIG, out=run, quiet=True, callbacks=[InterruptAt(6)])
    where = str(run.resolve())
    assert str(raised.value).endswith(
        f"; continue with: trainlab.run_resume.resume({where!r}, callbacks=[...]) in Python, with the same callbacks "
        f"(InterruptAt), which get their saved state back (trainlab resume {where} would run without them)")
    resumed = InterruptAt()
    summary, _ = resume(where, quiet=True, callbacks=[resumed])  # the call the hint names does it
    assert summary["steps"] == 12 and resumed.steps == 12


def test_the_resume_hint_of_a_run_without_user_callbacks_is_the_cli_command(tmp_path):
    assert _resume_hint(tmp_path / "my run", [SignalStop()]) == f"trainlab resume '{tmp_path / 'my run'}'"


# ----------------------------------------------------------------------------- monitoring what a callback adds

def test_monitoring_a_value_a_callback_adds_points_to_a_module_function_metric():
    """``val_custom`` (README's ``record["val_auc"] = auc``) was refused listing the available keys alone."""
    with pytest.raises(ConfigError) as raised:
        check_monitor("val_custom", ["train_loss", "val_loss", "val_accuracy"], "early_stopping", "cross_entropy")
    assert str(raised.value) == (
        "early_stopping monitors 'val_custom', which is not recorded; a value a callback adds to the records "
        "(record['val_custom'] = ...) cannot be monitored, as the monitor is checked before training: compute it "
        "in a metric, a module:function listed in metrics (docs/extending.md, 'A metric'), recorded as "
        "val_<module>:<function>, which can be (available: train_loss, val_loss, val_accuracy)")


def test_a_typo_of_a_recorded_key_keeps_its_did_you_mean_alone():
    with pytest.raises(ConfigError, match=r"did you mean 'val_accuracy'\? \(available"):
        check_monitor("val_acuracy", ["train_loss", "val_loss", "val_accuracy"], "early_stopping", "cross_entropy")


@pytest.mark.parametrize(("attribute", "value"), [("order", "late"), ("order", None), ("train_end_order", "1"),
                                                  ("train_end_order", math.nan), ("order", True)])
def test_an_order_that_is_no_number_is_refused_naming_the_callback(attribute, value):
    """Sorting by it raised a bare TypeError (or sorted NaN anywhere) naming no callback."""

    class Late(trainlab.Callback):
        def on_train_end(self, view): ...

    callback = Late()
    setattr(callback, attribute, value)
    with pytest.raises(ConfigError, match=rf"^callback 'Late': {attribute} must be a number \(lower runs first"):
        CallbackList([callback])
