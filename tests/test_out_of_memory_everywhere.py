"""Running out of memory is told apart in one place (trainlab.out_of_memory), and every place that asks agrees.

Before, the CLI knew torch's allocator failures (exit 5, the machine's) but the rest knew MemoryError only:
- a comparison counted a run that torch's CPU or CUDA allocator stopped as its strategy's failure (and skipped
  it on the next invocation), where a MemoryError was not run and trained again;
- such a run's run.json said ``failed`` (not resumable as the machine's), where a MemoryError's said ``running``;
- the test forward pass before training called it the inputs' fault: ``error: model ... cannot take inputs
  ...``, exit 3.
Each kind is raised by a stand-in (no memory is really exhausted).

Also: messages name the model as the config names it (``model: mlp`` -> ``'mlp'``, not its class
``Sequential``), and tune's best.json writes a confusion matrix a row a line, as summary.json does.
"""

from __future__ import annotations

import errno
import json
import math

import numpy as np
import optuna
import pytest
import torch
import yaml
from torch import nn

import trainlab.experiment as experiment
import trainlab.run_resume as run_resume
from tests.compare_configs import iris_base
from tests.test_out_of_memory_and_large_records import (
    CPU_MESSAGE,
    CUDA_MESSAGE,
    NUMPY_MESSAGE,
    WINDOWS_MESSAGE,
)
from trainlab import cli
from trainlab.cli import main
from trainlab.compare import compare
from trainlab.compare.machine_failure import (
    OUT_OF_MEMORY,
    is_machine_failure,
    machine_reason,
    out_of_memory_again,
)
from trainlab.compare.run_actions import ERROR_FILE
from trainlab.compare.strategies import parse_strategies
from trainlab.errors import ConfigError, DataError, WriteError
from trainlab.initializers import initialize
from trainlab.models import MODELS, build_model
from trainlab.out_of_memory import is_out_of_memory

MPS_MESSAGE = ("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.00 GB, max allowed: "
               "18.13 GB). Tried to allocate 256.00 MB on private pool.")

# each a factory: an exception raised twice keeps its first traceback, which would tell the next test's phase
KINDS = {
    "MemoryError": MemoryError,
    "numpy MemoryError": lambda: MemoryError(NUMPY_MESSAGE),
    "torch CPU allocator": lambda: RuntimeError(CPU_MESSAGE),
    "torch CPU allocator (Windows)": lambda: RuntimeError(WINDOWS_MESSAGE),
    "torch.OutOfMemoryError (CUDA)": lambda: torch.OutOfMemoryError(CUDA_MESSAGE),
    "CUDA error": lambda: RuntimeError("CUDA error: out of memory"),
    "MPS": lambda: RuntimeError(MPS_MESSAGE),
    "a fork or mmap without memory (ENOMEM)": lambda: OSError(errno.ENOMEM, "Cannot allocate memory"),
}
OTHERS = {  # a failure of the code, which would repeat: none of them is memory running out
    "a forward's bug": lambda: RuntimeError("mat1 and mat2 shapes cannot be multiplied (30x4 and 5x3)"),
    "a ValueError naming memory": lambda: ValueError("out of memory"),
    "a KeyError": lambda: KeyError("x"),
}
BOTH = {**KINDS, **OTHERS}

CONFIG = {"name": "oom", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
          "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 30,
                       "epochs": 2},
          "output": {"progress": "off"}, "runtime": {"num_threads": 1}}


def _with_model(name: str, **model) -> dict:
    return {**CONFIG, "model": {"name": name, **model}}


def _train_cli(tmp_path, monkeypatch, capsys, config: dict) -> tuple[int, str]:
    """``trainlab train`` of ``config`` in ``tmp_path``: (exit code, stderr)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    code = main(["train", "c.yaml", "--out", "run", "--quiet"])
    return code, capsys.readouterr().err


def _register(monkeypatch, name: str, model_class) -> None:
    import trainlab.models.builtins  # noqa: F401  (registers the built-ins now: later it would find ours)

    monkeypatch.setitem(MODELS._entries, name, model_class)


# --------------------------------------------------------------------------- the one recognition

@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_out_of_memory(kind):
    assert is_out_of_memory(KINDS[kind]())


@pytest.mark.parametrize("kind", OTHERS)
def test_other_failures_are_not(kind):
    assert not is_out_of_memory(OTHERS[kind]())


# --------------------------------------------------------------------------- 1. the CLI

@pytest.mark.parametrize("kind", BOTH)
def test_the_cli_exits_5_for_memory_and_4_for_the_rest(tmp_path, monkeypatch, capsys, kind):
    failure = BOTH[kind]()

    def command(args):
        raise failure

    monkeypatch.setitem(cli.COMMANDS, "train", command)
    code, err = _train_cli(tmp_path, monkeypatch, capsys, CONFIG)
    if kind in KINDS:
        assert code == 5 and err.startswith(("error: out of memory", "error: out of GPU memory")), err
    else:
        # raised here, in a file of no library: the CLI names it as a user's code that raised
        assert code == 4 and err.endswith("; rerun with --debug for the traceback)\n"), err


# --------------------------------------------------------------------------- 2. compare

@pytest.mark.parametrize("kind", BOTH)
def test_compare_counts_each_kind_as_the_machines(kind):
    failure = BOTH[kind]()
    assert is_machine_failure(failure) is (kind in KINDS)
    if kind in KINDS:  # compare tells a second time in a row by this start
        said = f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
        assert machine_reason(failure) == f"{OUT_OF_MEMORY} ({said})"


@pytest.mark.parametrize("kind", KINDS)
def test_the_second_time_in_a_row_is_the_configs_for_each_kind(kind):
    failure = KINDS[kind]()
    identity = {"config_hash": "abc", "data_fingerprint": "def"}
    previous = {"reason": machine_reason(failure), **identity, "machine_failure": True}
    again = out_of_memory_again(failure, previous, identity)
    assert again is not None and again.startswith(f"{machine_reason(failure)} again, as in the invocation before")
    assert out_of_memory_again(failure, None, identity) is None  # the first time: the machine's


def _strategies():
    return parse_strategies({"strategies": {"adam": {"strategy.optimizer": {"name": "adam", "lr": 0.01}}}})


def _entry(out) -> dict:
    board = json.loads((out / "leaderboard.json").read_text())
    (entry,) = board["tasks"]["iris"]["strategies"]
    return entry


@pytest.mark.parametrize("kind", ["torch CPU allocator", "torch.OutOfMemoryError (CUDA)"])
def test_a_comparison_run_torch_stopped_is_not_run_then_failed_the_second_time(tmp_path, monkeypatch, kind):
    """It was the strategy's failure at once (and skipped as failed on the next invocation)."""
    asked = []

    def train(config, out=None, **kwargs):
        asked.append(out)
        raise KINDS[kind]()

    monkeypatch.setattr(experiment, "train", train)
    out, base = tmp_path / "cmp", iris_base(epochs=1)
    with pytest.raises(WriteError) as caught:  # the machine's: exit 5, trained again next time
        compare({"iris": base}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)
    assert "rerun the same command once memory is free" in str(caught.value)
    entry = _entry(out)
    assert (entry["runs"], entry["failed"], entry["missing"]) == (0, 0, 1)
    assert entry["not_run"][0]["reason"].startswith(f"{OUT_OF_MEMORY} ({type(KINDS[kind]()).__name__}: ")
    assert json.loads((out / "runs/iris/adam/seed-0" / ERROR_FILE).read_text())["machine_failure"] is True

    compare({"iris": base}, _strategies(), out, seeds=1, jobs=1, live=False, quiet=True)  # no exit 5 now
    entry = _entry(out)
    assert len(asked) == 2 and (entry["runs"], entry["failed"], entry["missing"]) == (0, 1, 0)
    assert "again, as in the invocation before" in entry["failures"][0]["reason"]


# --------------------------------------------------------------------------- 3. a run's status

class _RaisesWhenTraining(nn.Module):
    """A model whose forward with gradients (a training step) raises what ``raised`` (a factory) makes."""

    raised = None

    def __init__(self, input_shape, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_shape[0], output_dim)

    def raises_now(self) -> bool:
        return self.training and torch.is_grad_enabled()

    def forward(self, x):
        if self.raises_now():
            raise type(self).raised()
        return self.linear(x)


@pytest.mark.parametrize("kind", BOTH)
def test_a_run_memory_stopped_stays_running_and_one_the_code_stopped_is_failed(tmp_path, monkeypatch, kind):
    """The machine's (a full disk, memory) leaves run.json "running", which resume continues and compare
    resumes; a torch allocator failure was marked "failed" as a bug would be."""
    monkeypatch.setattr(_RaisesWhenTraining, "raised", staticmethod(BOTH[kind]))
    _register(monkeypatch, "raises_when_training", _RaisesWhenTraining)
    with pytest.raises(type(BOTH[kind]())):
        experiment.train(_with_model("raises_when_training"), out=tmp_path / "run", quiet=True)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == ("running" if kind in KINDS else "failed")
    assert ("error" in info) is (kind not in KINDS)


# --------------------------------------------------------------------------- 4. the test forward pass

class _RaisesWhenTested(_RaisesWhenTraining):
    """A model whose forward without gradients (the check before training) raises what ``raised`` makes."""

    raised = None

    def raises_now(self) -> bool:
        return not torch.is_grad_enabled()


@pytest.mark.parametrize("kind", KINDS)
def test_out_of_memory_in_the_test_forward_pass_is_the_machines_not_the_inputs(tmp_path, monkeypatch, capsys, kind):
    """It was ``error: model '...' cannot take inputs ...``, exit 3, as for a forward that does not fit the data."""
    monkeypatch.setattr(_RaisesWhenTested, "raised", staticmethod(KINDS[kind]))
    _register(monkeypatch, "raises_when_tested", _RaisesWhenTested)
    code, err = _train_cli(tmp_path, monkeypatch, capsys, _with_model("raises_when_tested"))
    assert code == 5, err
    assert err.startswith(("error: out of memory", "error: out of GPU memory")) and "cannot take" not in err
    assert " while testing the model on a first batch: " in err and err.count("\n") == 1


def _mismatched_matmul() -> torch.Tensor:
    return torch.zeros(30, 4) @ torch.zeros(5, 3)  # torch's own RuntimeError, raised in its frame


def test_another_failure_of_the_test_forward_pass_is_still_the_inputs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_RaisesWhenTested, "raised", staticmethod(_mismatched_matmul))
    _register(monkeypatch, "raises_when_tested", _RaisesWhenTested)
    code, err = _train_cli(tmp_path, monkeypatch, capsys, _with_model("raises_when_tested"))
    assert code == 3 and err.startswith("error: model 'raises_when_tested' ") and "cannot take" in err, err
    # the model's own raise statement is its code's error, exit 4, with its place
    monkeypatch.setattr(_RaisesWhenTested, "raised", staticmethod(OTHERS["a forward's bug"]))
    (tmp_path / "own").mkdir()
    code, err = _train_cli(tmp_path / "own", monkeypatch, capsys, _with_model("raises_when_tested"))
    assert code == 4 and err.startswith("error: model 'raises_when_tested' raised RuntimeError: mat1 and mat2 shapes "
                                        "cannot be multiplied (30x4 and 5x3) (at "), err


# --------------------------------------------------------------------------- the model as the config names it

class _VectorAndScalar(nn.Module):
    """Weights of 1 and 0 dimensions only: nothing a penalty acts on, nothing a weight fill reaches."""

    def __init__(self, input_shape, output_dim):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(input_shape[0]))
        self.b = nn.Parameter(torch.zeros(output_dim))

    def forward(self, x):
        return (x * self.w).sum(-1, keepdim=True) + self.b


class _WithRawWeight(nn.Module):
    """A Linear a fill reaches, and a raw 2-D weight it does not."""

    def __init__(self, input_shape, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_shape[0], output_dim)
        self.mix = nn.Parameter(torch.eye(output_dim))

    def forward(self, x):
        return self.linear(x) @ self.mix


def _frozen_mlp(input_shape, output_dim):
    return nn.Sequential(nn.Linear(input_shape[0], output_dim)).requires_grad_(False)


def test_the_penalty_warning_names_the_configured_model(tmp_path, monkeypatch, capsys):
    _register(monkeypatch, "vector_and_scalar", _VectorAndScalar)
    config = _with_model("vector_and_scalar")
    config["strategy"] = {**config["strategy"], "regularization": {"l2": 0.5}}
    code, err = _train_cli(tmp_path, monkeypatch, capsys, config)
    assert code == 0, err
    (line,) = [line for line in err.splitlines() if "regularization" in line]
    assert "but model 'vector_and_scalar' has no trainable weight tensor" in line and "_VectorAndScalar" not in line


def test_nothing_to_train_names_the_configured_model(tmp_path, monkeypatch, capsys):
    _register(monkeypatch, "frozen_mlp", _frozen_mlp)
    code, err = _train_cli(tmp_path, monkeypatch, capsys, _with_model("frozen_mlp"))
    assert (code, err) == (2, "error: model 'frozen_mlp' has nothing to train: all its parameters are frozen "
                              "(requires_grad False)\n")


def test_a_fill_that_reaches_no_weight_names_the_configured_model(tmp_path, monkeypatch, capsys):
    _register(monkeypatch, "vector_and_scalar", _VectorAndScalar)
    config = _with_model("vector_and_scalar")
    config["strategy"] = {**config["strategy"], "init": "zeros"}
    code, err = _train_cli(tmp_path, monkeypatch, capsys, config)
    assert code == 2 and "; model 'vector_and_scalar' has none: remove zeros" in err and "_Vector" not in err, err


def test_a_fill_that_leaves_a_weight_names_the_configured_model(tmp_path, monkeypatch, capsys):
    _register(monkeypatch, "with_raw_weight", _WithRawWeight)
    config = _with_model("with_raw_weight")
    config["strategy"] = {**config["strategy"], "init": "zeros"}
    code, err = _train_cli(tmp_path, monkeypatch, capsys, config)
    assert code == 0, err
    (line,) = [line for line in err.splitlines() if line.startswith("warning: initializer")]
    assert line.endswith("it leaves 'mix' of the model itself in model 'with_raw_weight' as they were")


def test_dirac_on_a_model_without_a_conv_names_the_configured_model(tmp_path, monkeypatch, capsys):
    config = {**CONFIG, "strategy": {**CONFIG["strategy"], "init": "dirac"}}
    code, err = _train_cli(tmp_path, monkeypatch, capsys, config)
    assert (code, err) == (2, "error: initializer 'dirac' needs a model with a Conv1d/Conv2d/Conv3d layer; model "
                              "'mlp' has none: remove dirac from strategy.init\n")


def test_patch_whitening_on_a_model_without_a_conv_names_the_configured_model():
    model = build_model({"name": "mlp", "hidden": [8]}, (4,), 3)
    assert type(model).__name__ == "Sequential"
    with pytest.raises(ConfigError, match=r"^initializer 'patch_whitening' needs a model with a Conv2d layer; "
                                          r"model 'mlp' has none$"):
        initialize(model, "patch_whitening", images=torch.zeros(2, 4))


# --------------------------------------------------------------------------- tune's best.json

CLASSES = 1000


def _best_trial_study(tmp_path) -> optuna.Study:
    """A study of one complete trial whose run folder's summary.json holds a 1000 x 1000 confusion matrix."""
    run = tmp_path / "trials" / "0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({**iris_base(epochs=1), "name": "iris-trial0"}))
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 9, size=(CLASSES, CLASSES)).tolist()
    summary = {"name": "iris-trial0", "status": "finished",
               "val": {"loss": 0.5, "accuracy": 0.25, "confusion_matrix": matrix,
                       "recall_per_class": [None, *rng.random(CLASSES - 1).tolist()]},
               "test": {"loss": float("nan"), "confusion_matrix": matrix}}
    (run / "summary.json").write_text(json.dumps(summary))
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.create_trial(
        params={"strategy.optimizer.lr": 0.1}, value=0.25, user_attrs={"run_dir": str(run)},
        distributions={"strategy.optimizer.lr": optuna.distributions.FloatDistribution(0.01, 0.5)}))
    return study


def test_best_json_writes_a_large_confusion_matrix_a_row_a_line_and_reads_back_equal(tmp_path):
    """It was json.dumps(indent=2): a cell a line, over 2,000,000 lines for a 1000-class best trial."""
    from trainlab.tune.results import write_results

    out = tmp_path / "out"
    out.mkdir()
    best = write_results(_best_trial_study(tmp_path), out, ["strategy.optimizer.lr"], "val_accuracy", 0)
    text = (out / "best.json").read_text()
    assert len(text.splitlines()) < 2 * CLASSES + 100  # val's and test's rows, and the rest
    read = json.loads(text)
    assert read == json.loads(json.dumps(best))  # the stdlib's reading of its own writing of the same content
    summary = json.loads((tmp_path / "trials" / "0" / "summary.json").read_text())
    assert read["val"]["confusion_matrix"] == summary["val"]["confusion_matrix"]
    assert read["val"]["recall_per_class"] == summary["val"]["recall_per_class"]
    assert math.isnan(read["test"]["loss"]) and read["trial"] == 0 and read["value"] == 0.25
    assert text.endswith("}\n")


ALLOCATOR_FAILURE = ("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory: "
                     "you tried to allocate 1536000000 bytes. Error code 12 (Cannot allocate memory)")


def test_torchs_out_of_memory_in_a_users_callback_passes_as_the_machines():
    """A user's callback whose code meets torch's allocator failure is no CallbackError (the user's fault,
    exit 2): it passes as raised, for the CLI's out-of-memory line and compare's machine failure."""
    import trainlab

    class Hungry(trainlab.Callback):
        def on_step_end(self, view, *args):
            raise RuntimeError(ALLOCATOR_FAILURE)

    x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
    with pytest.raises(RuntimeError, match="DefaultCPUAllocator") as raised:
        trainlab.fit(nn.Linear(4, 2), train=(x, y), callbacks=[Hungry()],
                     strategy={"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 8,
                               "epochs": 1})
    assert not isinstance(raised.value, trainlab.errors.TrainlabError)


def test_torchs_out_of_memory_in_a_users_metric_passes_as_the_machines():
    from trainlab import metric_compute

    class Metric:
        @staticmethod
        def fn(inputs):
            raise RuntimeError(ALLOCATOR_FAILURE)

    with pytest.raises(RuntimeError, match="DefaultCPUAllocator"):
        metric_compute._user_metric_value("mine:hungry", Metric(), None)
    with pytest.raises(ConfigError, match="metric 'mine:broken' raised RuntimeError: boom"):
        Metric.fn = staticmethod(lambda inputs: (_ for _ in ()).throw(RuntimeError("boom")))
        metric_compute._user_metric_value("mine:broken", Metric(), None)


def test_cublas_and_cudnn_failing_to_allocate_a_handle_are_out_of_memory():
    for message in ("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
                    "cuDNN error: CUDNN_STATUS_ALLOC_FAILED"):
        assert is_out_of_memory(RuntimeError(message))


def test_torchs_out_of_memory_in_a_users_schedule_at_its_first_step_passes_as_the_machines(tmp_path, monkeypatch):
    """build_schedule calls a user's schedule at step 0 to check it: memory running out there is no fault of
    the schedule's code."""
    from trainlab import schedules

    (tmp_path / "hungry_schedule.py").write_text(
        "def make(total_steps, steps_per_epoch):\n"
        "    def schedule(step):\n"
        f"        raise RuntimeError({ALLOCATOR_FAILURE!r})\n"
        "    return schedule\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="DefaultCPUAllocator"):
        schedules.build_schedule({"name": "hungry_schedule:make"}, 10, 5)


def test_memory_running_out_while_a_checkpoint_is_restored_is_no_mismatched_checkpoint(tmp_path):
    """The checkpoint is fine: the out of memory passes as raised (the CLI's exit 5), not as a DataError saying
    the checkpoint does not match and to start a new run."""
    from types import SimpleNamespace

    def restore(snapshot):
        raise RuntimeError(ALLOCATOR_FAILURE)

    built = SimpleNamespace(config=SimpleNamespace(hash=lambda: "h"), trainer=SimpleNamespace(restore=restore),
                            notes={})
    run = SimpleNamespace(path=tmp_path, checkpoints=tmp_path / "checkpoint")
    found = (tmp_path / "checkpoint" / "step-000000008", {"config_hash": "h"}, {}, {})
    with pytest.raises(RuntimeError, match="DefaultCPUAllocator"):
        run_resume._load_latest(built, run, True, found)
    built.trainer.restore = lambda snapshot: (_ for _ in ()).throw(KeyError("model.weight"))
    with pytest.raises(DataError, match="does not match the model or optimizer"):
        run_resume._load_latest(built, run, True, found)
