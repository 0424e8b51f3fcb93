"""The user's own code failing inside a run: a schedule giving a negative or NaN LR multiplier, a factory, metric or
schedule that raises, an optimizer factory returning something else, an optimizer keeping state a checkpoint
cannot store. Each is one ``error:`` line naming the component, what it did and where (the user's file:line),
exit 2; a run that fails mid-training is recorded as ``failed`` in run.json and resumes from its last checkpoint."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch import nn

from trainlab.callbacks.base import Callback, TrainerView
from trainlab.callbacks.lr_adapter import GroupHorizon, LRAdapter
from trainlab.cli import main
from trainlab.engine.objective import Objective
from trainlab.engine.state import TrainState
from trainlab.engine.step import StandardStep
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.registry import Registry
from trainlab.schedules import CONTRACT

# --------------------------------------------------------------------------- the user's code, as files

USER_CODE = '''import torch


def negative(total_steps, steps_per_epoch):
    return lambda step: -1.0


def nan_after_5(total_steps, steps_per_epoch):
    return lambda step: float("nan") if step > 5 else 1.0


def raises_after_5(total_steps, steps_per_epoch):
    def schedule(step):
        if step > 5:
            raise KeyError("late boom")
        return 1.0
    return schedule


def model_runtime(input_shape, output_dim):
    raise RuntimeError("boom in my model factory")


def model_key(input_shape, output_dim):
    return {}["missing"]


def model_value(input_shape, output_dim):
    raise ValueError("my model says no")


def source_attribute(n=10):
    data = None
    return data.x


def metric_boom(predictions, target, num_classes):
    raise ZeroDivisionError("metric boom")


def not_an_optimizer(param_groups, lr):
    return object()


class SetState(torch.optim.SGD):
    """Keeps a set in its state from its step number ``from_step`` on (with ``momentum``, a momentum buffer
    from the first step)."""

    def __init__(self, params, lr, from_step=1, momentum=0.0):
        super().__init__(params, lr=lr, momentum=momentum)
        self.from_step, self.steps = from_step, 0

    def step(self, closure=None):
        out = super().step(closure)
        self.steps += 1
        if self.steps >= self.from_step:
            self.state[self.param_groups[0]["params"][0]]["tags"] = {"a", "b"}
        return out


def set_state(param_groups, lr, from_step=1, momentum=0.0):
    return SetState(param_groups, lr=lr, from_step=from_step, momentum=momentum)


class FailsInTraining(torch.nn.Module):
    """A bug that shows from the third training forward pass on."""

    def __init__(self, input_shape, output_dim):
        super().__init__()
        self.linear = torch.nn.Linear(input_shape[0], output_dim)
        self.calls = 0

    def forward(self, x):
        self.calls += self.training and torch.is_grad_enabled()
        if self.calls > 2:
            raise RuntimeError("my forward's bug")
        return self.linear(x)
'''
MODULE = "ucf_code"


def _line_of(text: str) -> int:
    """The line of ``MODULE``'s file holding ``text`` (1-based), for the file:line the errors name."""
    return next(i for i, line in enumerate(USER_CODE.splitlines(), 1) if text in line)


# iris: 4 steps of 30 rows an epoch
CONFIG = {"name": "ucf", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
          "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 30,
                       "epochs": 4},
          "output": {"progress": "off"}, "runtime": {"num_threads": 1}}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The user's module next to the working directory's configs; forgotten after (the next test writes its own)."""
    (tmp_path / f"{MODULE}.py").write_text(USER_CODE)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop(MODULE, None)


def _train(project: Path, capsys, **changes) -> tuple[int, str, Path]:
    """``trainlab train`` of CONFIG with ``changes`` (section -> value, ``strategy__x`` for strategy.x) into
    project/run: (exit code, stderr, run folder)."""
    config = json.loads(json.dumps(CONFIG))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    (project / "c.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    code = main(["train", "c.yaml", "--out", "run", "--quiet"])
    sys.modules.pop(MODULE, None)
    return code, capsys.readouterr().err, project / "run"


def _one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


def _run_json(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


# --------------------------------------------------------------------------- 1. the schedule's factor


def _adapter_factors(adapter: LRAdapter, steps: range) -> list[float]:
    """Run ``adapter.on_step_start`` for ``steps`` against a step recording the factors written."""
    written: list[float] = []
    step = SimpleNamespace(set_lr_factor=lambda factor, routes=None: written.append(factor))
    state = SimpleNamespace(step=0, lr_scale=1.0)
    view = TrainerView(SimpleNamespace(step=step, state=state))
    for index in steps:
        state.step = index
        adapter.on_step_start(view)
    return written


@pytest.mark.parametrize(("schedule", "says"), [
    (lambda step: -1.0, "gave -1.0 at step 0"),
    (lambda step: float("nan") if step > 5 else 1.0, "gave nan at step 6"),
    (lambda step: math.inf, "gave inf at step 0"),
    (lambda step: "1.0" if step == 3 else 0.5, "gave '1.0' at step 3"),
])
def test_a_schedule_factor_that_is_not_a_finite_number_at_least_0_is_refused_at_its_step(schedule, says):
    """A negative factor made the optimizer ascend the loss and the run exit 0; NaN was reported as a divergence
    with the advice to lower the learning rate."""
    with pytest.raises(ConfigError) as caught:
        _adapter_factors(LRAdapter(schedule), range(10))
    message = str(caught.value)
    assert message.startswith(f"the schedule (strategy.schedule) {says}; an LR multiplier must be a finite "
                              "number >= 0") and message.endswith(CONTRACT), message


def test_a_routed_groups_schedule_is_checked_too_and_0_is_a_factor():
    horizon = GroupHorizon("whitening", 3, lambda step: 1.0 - step / 2)  # 1, 0.5, 0 (-0.5 at step 3 never runs)
    assert _adapter_factors(LRAdapter(lambda step: 0.0, horizons=(horizon,)), range(6)) == [0.0] * 6
    horizon = GroupHorizon("whitening", 6, lambda step: 1.0 - step / 2)
    with pytest.raises(ConfigError, match=r"^the schedule of parameter group 'whitening' \(strategy.schedule over "
                                          r"its train_epochs\) gave -0.5 at step 3; "):
        _adapter_factors(LRAdapter(lambda step: 1.0, horizons=(horizon,)), range(6))


def test_a_named_schedule_is_said_of_by_its_name_a_routed_groups_too():
    horizon = GroupHorizon("whitening", 6, lambda step: 1.0 - step / 2)
    with pytest.raises(ConfigError, match=r"^schedule 'mysched:f' \(strategy.schedule\) gave -1.0 at step 0; "):
        _adapter_factors(LRAdapter(lambda step: -1.0, name="mysched:f"), range(2))
    with pytest.raises(ConfigError, match=r"^schedule 'mysched:f' of parameter group 'whitening' \(strategy.schedule "
                                          r"over its train_epochs\) gave -0.5 at step 3; "):
        _adapter_factors(LRAdapter(lambda step: 1.0, horizons=(horizon,), name="mysched:f"), range(6))


def test_a_schedule_raising_mid_run_is_named_with_the_users_line():
    def schedule(step):
        if step == 2:
            raise KeyError("late boom")
        return 1.0

    with pytest.raises(ConfigError) as caught:
        _adapter_factors(LRAdapter(schedule), range(4))
    here = Path(__file__).resolve().relative_to(Path.cwd().resolve()) if Path(__file__).resolve().is_relative_to(
        Path.cwd().resolve()) else Path(__file__).resolve()
    line = schedule.__code__.co_firstlineno + 2
    assert str(caught.value).startswith(f"the schedule (strategy.schedule) raised KeyError: 'late boom' at step 2 "
                                        f"(at {here}:{line}); {CONTRACT}")


@pytest.mark.parametrize(("schedule", "says"), [
    ("negative", "gave -1.0 at step 0"),
    ("nan_after_5", "gave nan at step 6"),
    ("raises_after_5", f"raised KeyError: 'late boom' at step 6 (at {MODULE}.py:{_line_of('late boom')})"),
])
def test_a_run_whose_schedule_breaks_the_contract_fails_in_one_line_and_records_it(project, capsys, schedule, says):
    code, err, run = _train(project, capsys, strategy__schedule=f"{MODULE}:{schedule}")
    assert code == 2
    message = _one_line(err)
    # the config's schedule is named (it was "the schedule (strategy.schedule)")
    assert message.startswith(f"schedule '{MODULE}:{schedule}' (strategy.schedule) {says}; "), message
    info = _run_json(run)
    assert info["status"] == "failed" and info["error"] == message


# --------------------------------------------------------------------------- 2. factories and metrics that raise


# how a model factory is called, said after one fails: a class whose first parameters are its own options got the
# input shape and the output count there (a user trial: "dropout probability ... but got 3", 3 the classes)
MODEL_CONTRACT = ("; a model factory is called as factory(input_shape, output_dim, **options): its first two "
                  "parameters get the input shape (a tuple, e.g. (13,)) and the number of outputs, the config's "
                  "model options the rest")


@pytest.mark.parametrize(("section", "value", "says"), [
    ("model", {"name": f"{MODULE}:model_runtime"},
     f"model factory '{MODULE}:model_runtime' raised RuntimeError: boom in my model factory "
     f"(at {MODULE}.py:{_line_of('boom in my model factory')}){MODEL_CONTRACT}"),
    ("model", {"name": f"{MODULE}:model_key"},
     f"model factory '{MODULE}:model_key' raised KeyError: 'missing' (at {MODULE}.py:{_line_of('missing')})"
     f"{MODEL_CONTRACT}"),
    ("model", {"name": f"{MODULE}:model_value"},
     f"model factory '{MODULE}:model_value' raised ValueError: my model says no "
     f"(at {MODULE}.py:{_line_of('my model says no')}){MODEL_CONTRACT}"),
    ("data", {"source": f"{MODULE}:source_attribute"},
     f"data source factory '{MODULE}:source_attribute' raised AttributeError: 'NoneType' object has no attribute "
     f"'x' (at {MODULE}.py:{_line_of('return data.x')})"),
])
def test_a_user_factory_that_raises_is_one_config_error_naming_it_and_the_users_line(project, capsys, section,
                                                                                     value, says):
    """A RuntimeError, KeyError or AttributeError was "error: RuntimeError: boom (rerun with --debug ...)", exit 4,
    naming no component."""
    code, err, run = _train(project, capsys, **{section: value})
    assert (code, _one_line(err)) == (2, says)
    assert not run.exists()  # refused before the run folder is made


def test_a_built_in_factory_failing_in_torch_is_no_config_error_and_a_rejected_value_keeps_its_form():
    """A built-in factory's failure other than rejecting a value (ValueError, TypeError) is trainlab's bug or
    torch's (out of memory), not the config's: it passes as raised (the CLI's one line, exit 4)."""
    registry: Registry = Registry("model")

    @registry.register("negative_width")
    def negative_width(width: int = -3) -> nn.Module:
        return nn.Linear(2, width)  # torch: "Trying to create tensor with negative dimension -3: [-3, 2]"

    @registry.register("rejects")
    def rejects(width: int = 0) -> nn.Module:
        raise ValueError(f"width must be >= 1; got {width}\nsecond line")

    @registry.register("reads_a_file")
    def reads_a_file() -> nn.Module:
        raise FileNotFoundError(2, "No such file or directory", "weights.pt")

    @registry.register("data_error")
    def data_error() -> nn.Module:
        raise DataError("the weights file is damaged")

    with pytest.raises(RuntimeError, match="^Trying to create tensor with negative dimension -3") as caught:
        registry.build("negative_width")
    assert not isinstance(caught.value, ConfigError)
    with pytest.raises(ConfigError, match=r"^model 'rejects': width must be >= 1; got 0$"):
        registry.build("rejects")
    with pytest.raises(FileNotFoundError):  # the machine's: the CLI names the file (exit 5)
        registry.build("reads_a_file")
    with pytest.raises(DataError, match="^the weights file is damaged$"):  # trainlab's own errors pass as raised
        registry.build("data_error")


@pytest.mark.parametrize("failure, code, line", [
    (AttributeError("'NoneType' object has no attribute 'weight'"), 4,
     "error: AttributeError: 'NoneType' object has no attribute 'weight' (rerun with --debug for the traceback)"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), 5,  # the machine's, as a full disk
     "error: out of GPU memory (an allocation of 2.00 GiB failed) while building the model: use a smaller model or, "
     "for large images, a smaller data.size (for long texts, data.max_length; the model is sized by its inputs)"),
])
def test_a_built_in_model_failing_otherwise_than_on_a_value_is_the_clis_generic_error_not_a_config_one(
        project, capsys, monkeypatch, failure, code, line):
    """Any exception of a built-in factory was a config error (exit 2, blaming the config): a bug in trainlab's
    own factory (the CLI's one line for what is no user's fault, exit 4), torch running out of memory (the
    machine's: the CLI's out-of-memory line, exit 5)."""
    from trainlab.models import MODELS

    def broken(input_shape, output_dim, **options):
        raise failure

    monkeypatch.setitem(MODELS._entries, "broken", broken)
    got, err, _ = _train(project, capsys, model={"name": "broken"})
    # raised in this test file, which the CLI's generic line names as a user's code ("at FILE:LINE; ")
    assert (got, re.sub(r"\(at [^;]+; ", "(", err)) == (code, line + "\n")


def test_a_registrys_contract_follows_a_user_factorys_failure_and_not_a_built_in_ones(project, monkeypatch):
    """The schedule registry's contract (trainlab.schedules.CONTRACT) was added by build_schedule's own except
    clause, which lost the user's file:line; any registry given a contract now says it after the place."""
    monkeypatch.syspath_prepend(str(project))
    registry: Registry = Registry("widget", contract="a widget factory is called as factory(input_shape, output_dim)")

    @registry.register("built_in")
    def built_in(input_shape, output_dim):
        raise RuntimeError("torch says no")

    with pytest.raises(ConfigError) as caught:
        registry.build(f"{MODULE}:model_runtime", (4,), 3)
    assert str(caught.value) == (f"widget factory '{MODULE}:model_runtime' raised RuntimeError: boom in my model "
                                 f"factory (at {MODULE}.py:{_line_of('boom in my model factory')}); a widget factory "
                                 "is called as factory(input_shape, output_dim)")
    with pytest.raises(RuntimeError, match="^torch says no$"):  # a built-in's: not the config's, no contract
        registry.build("built_in", (4,), 3)


def test_a_user_schedule_factory_that_raises_names_its_line_and_the_schedule_contract(project, capsys):
    """build_schedule worded it without the place (``raised KeyError: 'missing'; a schedule factory is ...``)."""
    code, err, run = _train(project, capsys, strategy__schedule=f"{MODULE}:model_key")  # {}["missing"]
    assert code == 2
    assert _one_line(err) == (f"schedule factory '{MODULE}:model_key' raised KeyError: 'missing' (at {MODULE}.py:"
                              f"{_line_of('missing')}); {CONTRACT}")
    assert not run.exists()  # refused before the run folder is made


def test_a_user_metric_that_raises_is_one_config_error_naming_it(project, capsys):
    """It was "error: ZeroDivisionError: metric boom (rerun with --debug ...)", exit 4, the metric not named."""
    code, err, run = _train(project, capsys, metrics=["accuracy", f"{MODULE}:metric_boom"])
    assert code == 2
    message = _one_line(err)
    assert message.startswith(f"metric '{MODULE}:metric_boom' raised ZeroDivisionError: metric boom (at {MODULE}.py:"
                              f"{_line_of('metric boom')}); a metric 'module:function' is called as "
                              "function(predictions, target, num_classes)"), message
    assert _run_json(run)["status"] == "failed"  # it fails at the first validation, in the run


# --------------------------------------------------------------------------- 3. an optimizer factory's result


def test_an_optimizer_factory_returning_something_else_is_one_config_error(project, capsys):
    """It was "error: TypeError: optimizer ... must build a torch.optim.Optimizer (rerun with --debug ...)", exit 4."""
    code, err, _ = _train(project, capsys, strategy__optimizer={"name": f"{MODULE}:not_an_optimizer", "lr": 0.1})
    assert code == 2
    message = _one_line(err)
    assert message.startswith(f"optimizer factory '{MODULE}:not_an_optimizer' returned object (<object object at ")
    assert message.endswith("not a torch.optim.Optimizer; an optimizer factory is called as factory(param_groups, "
                            "lr, **options) and returns a torch.optim.Optimizer (docs/optimizers.md)"), message


# --------------------------------------------------------------------------- 4. optimizer state, failed runs


class _SetState(torch.optim.SGD):
    def step(self, closure=None):
        out = super().step(closure)
        self.state[self.param_groups[0]["params"][0]]["tags"] = {"a"}
        return out


@pytest.mark.parametrize("micro_batches", [1, 2])  # the plain step, and the accumulated one
def test_optimizer_state_a_checkpoint_cannot_store_is_refused_after_the_first_step(micro_batches):
    model = nn.Linear(3, 2)
    step = StandardStep(model, _SetState(model.parameters(), lr=0.1), Objective(build_loss("cross_entropy")))
    batches = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))] * micro_batches
    with pytest.raises(ConfigError) as caught:
        step.train_step(batches, TrainState())
    assert str(caught.value) == (
        f"optimizer {__name__}._SetState keeps a set in its state (at 'optimizer.state.0.tags'), which a checkpoint "
        "cannot store without pickle; an optimizer's state may hold only tensors, numbers, None, and lists, tuples "
        "and dicts of these (a set as a sorted list, say)")


class _LateState(torch.optim.SGD):
    """Makes no state for its first two steps (as when fp16's scaler skips them), then keeps a set."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        if self.steps <= 2:
            return None
        out = super().step(closure)
        self.state[self.param_groups[0]["params"][0]]["tags"] = {"a"}
        return out


@pytest.mark.parametrize("routed", [False, True])
def test_optimizer_state_made_after_stateless_first_steps_is_refused_at_the_step_that_made_it(routed):
    """The check ran once, after the first step, even when that step made no state (an fp16 step the scaler
    skipped): a set made later went unnoticed until the first checkpoint. Routed: each inner optimizer is
    checked once its own state is made, a stateless one (plain SGD) never holding the others' check back."""
    from trainlab.optim.routing import RoutedOptimizer

    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    late = _LateState(model[1].parameters(), lr=0.1)
    optimizer = RoutedOptimizer([torch.optim.SGD(model[0].parameters(), lr=0.1), late]) if routed else late
    step = StandardStep(model, optimizer, Objective(build_loss("cross_entropy")))
    batches = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))]
    step.train_step(batches, TrainState())
    step.train_step(batches, TrainState())
    assert not optimizer.state
    with pytest.raises(ConfigError, match=f"^optimizer {__name__}._LateState keeps a set in its state"):
        step.train_step(batches, TrainState())
    assert late.steps == 3


def test_split_state_refuses_what_needs_pickle_as_a_config_error_carrying_the_key():
    from trainlab.engine.serialize import UnserialisableState, split_state

    with pytest.raises(UnserialisableState) as caught:
        split_state({"optimizer": {"state": {0: {"tags": {1, 2}}}}}, "parts")
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, TypeError)
    # (a dict of int keys is stored as its items: "0" is the first item's index)
    assert caught.value.key == "parts.optimizer.state.0.tags" and caught.value.type_name == "set"
    assert str(caught.value).startswith("cannot save the set at 'parts.optimizer.state.0.tags' in a checkpoint "
                                        "without pickle: saved state may hold only tensors")


def test_a_run_whose_optimizer_keeps_a_set_fails_at_its_first_step_and_is_recorded_failed(project, capsys):
    """It failed at the first checkpoint, after the whole epoch, with a TypeError (exit 4), run.json left running."""
    code, err, run = _train(project, capsys, strategy__optimizer={"name": f"{MODULE}:set_state", "lr": 0.1})
    assert code == 2
    message = _one_line(err)
    assert message.startswith(f"optimizer {MODULE}.SetState keeps a set in its state (at 'optimizer.state.0.tags')")
    info = _run_json(run)
    assert info["status"] == "failed" and info["error"] == message
    assert not any((run / "checkpoint").glob("step-*"))


def test_a_set_appearing_later_is_refused_at_the_checkpoint_that_meets_it(project, capsys):
    """The state is checked once, when a step first made it (a momentum buffer at step 1); a set added to it
    later is the checkpoint's to refuse."""
    code, err, run = _train(project, capsys, strategy__optimizer={"name": f"{MODULE}:set_state", "lr": 0.1,
                                                                  "from_step": 2, "momentum": 0.9},
                            output={"progress": "off", "checkpoint": {"every_n_steps": 2}})
    assert code == 2
    assert _one_line(err).startswith("cannot save the set at 'parts.step.optimizer.state.0.tags' in a checkpoint "
                                     "without pickle: saved state may hold only tensors")
    assert _run_json(run)["status"] == "failed"


def test_a_run_failing_mid_training_is_recorded_failed_and_resumes_from_its_last_checkpoint(project, capsys):
    """An unexpected exception left run.json saying "running"; resuming a failed run continues from its last
    checkpoint, once the user's code is mended."""
    code, err, run = _train(project, capsys, strategy__schedule=f"{MODULE}:raises_after_5",
                            output={"progress": "off", "checkpoint": {"every_n_steps": 2}})
    assert code == 2
    info = _run_json(run)
    assert info["status"] == "failed" and info["error"].startswith(f"schedule '{MODULE}:raises_after_5' (strategy.schedule) "
                                                               "raised KeyError")
    assert sorted(p.name for p in (run / "checkpoint").glob("step-*"))[-1] == "step-000000006"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in metrics if "train_loss" in record] == [1]  # the epoch done so far
    (project / f"{MODULE}.py").write_text(USER_CODE.replace('raise KeyError("late boom")', "return 0.5"))
    shutil.rmtree(project / "__pycache__", ignore_errors=True)
    capsys.readouterr()
    code = main(["resume", "run", "--allow-code"])
    sys.modules.pop(MODULE, None)
    assert code == 0, capsys.readouterr().err
    assert "resuming run from step-000000006 (step 6: 1 epoch done and 2 batches into the next)" in \
        capsys.readouterr().err
    info = _run_json(run)
    assert info["status"] == "finished" and info["error"] is None


_BUG_LINE = 1 + USER_CODE.splitlines().index('            raise RuntimeError("my forward\'s bug")')


def test_a_bug_in_the_users_model_is_recorded_failed(project, capsys):
    code, err, run = _train(project, capsys, model={"name": f"{MODULE}:FailsInTraining"})
    assert code == 4 and err == (f"error: RuntimeError: my forward's bug (at {MODULE}.py:{_BUG_LINE}; rerun with "
                                 "--debug for the traceback)\n")
    assert _run_json(run)["status"] == "failed"
    assert _run_json(run)["error"] == f"RuntimeError: my forward's bug (at {MODULE}.py:{_BUG_LINE})"


def test_a_failed_runs_missing_model_is_explained_by_its_recorded_error(project, capsys):
    """eval and predict said "the run did not finish; try 'trainlab resume run'", which would fail the same way."""
    code, err, run = _train(project, capsys, model={"name": f"{MODULE}:FailsInTraining"})
    assert code == 4
    code = main(["eval", "run"])
    sys.modules.pop(MODULE, None)
    assert _one_line(capsys.readouterr().err) == (
        f"run has no model.safetensors (the run failed: RuntimeError: my forward's bug (at {MODULE}.py:{_BUG_LINE}); "
        "fix the cause, then resume it with 'trainlab --allow-code resume run')")  # the run's config names the user's module: the opt-in
    assert code == 2


class _MachineFails(Callback):
    """Raises the machine's ``error`` at step 6, after the checkpoint of step 4."""

    def __init__(self, error: BaseException):
        self.error = error

    def on_step_end(self, view, loss):
        if view.state.step == 6:
            raise self.error


@pytest.mark.parametrize("error", [OSError(5, "Input/output error", "run/metrics.jsonl"), MemoryError()])
def test_a_run_stopped_by_the_machines_oserror_or_memoryerror_is_left_running_to_be_resumed(project, error):
    """A transient I/O failure (or a MemoryError) mid-training made run.json "failed", and compare then skipped
    the run instead of resuming it: it stays "running", as before failed runs were recorded, and resumes."""
    from trainlab.config import validate
    from trainlab.experiment import train
    from trainlab.run_resume import resume

    config = json.loads(json.dumps(CONFIG))
    config["output"]["checkpoint"] = {"every_n_steps": 4}
    with pytest.raises(type(error)):
        train(validate(config), out=project / "run", quiet=True, callbacks=[_MachineFails(error)])
    info = _run_json(project / "run")
    assert info["status"] == "running" and info.get("error") is None
    resume(project / "run", quiet=True)
    assert _run_json(project / "run")["status"] == "finished"


def test_a_comparisons_run_failed_in_the_users_code_names_the_place_that_raised(tmp_path):
    """A comparison's failure reason was ``RuntimeError: my forward's bug``, where the CLI's line and run.json name
    the user's file:line too."""
    from tests.conftest import LINREG
    from trainlab.compare.runner import _raised_outcome

    try:
        raise RuntimeError("my forward's bug")
    except RuntimeError as exc:
        line = exc.__traceback__.tb_lineno
        outcome = _raised_outcome(tmp_path, LINREG, exc, None)
    assert outcome["status"] == "failed"
    assert re.fullmatch(rf"RuntimeError: my forward's bug \(at (\S*/)?{Path(__file__).name}:{line}\)",
                        outcome["reason"]), outcome
