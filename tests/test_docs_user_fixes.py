"""Three defects a user found reading the docs (docs/extending.md, docs/metrics.md):

1. A custom optimizer keeping a NumPy array in its state checkpointed fine, but the run could never be resumed
   (torch's ``Optimizer.load_state_dict`` rebuilds it as ``np.ndarray(generator)``), and the resume blamed "the
   model or optimizer". Now the array (and a string, which torch turns into ``'<generator object ...>'``) is
   refused after the first step, naming the state key and the parameter's index; a resume that fails in the
   optimizer's part says so.
2. Early stopping on ``val_f1_per_class`` said "monitor a scalar record" and called the confusion matrix "one
   value per class"; it now names the numbers that stand in, in ``--target``'s words (reduce_on_plateau too).
3. ``strategy.loss: badext:MSE`` (``MSE = torch.nn.MSELoss``) or ``torch.nn:MSELoss`` was first answered "pass
   --allow-code", which cannot make it work; the one line now says to wrap it, with or without the opt-in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from trainlab.cli import main
from trainlab.code_policy import code_policy
from trainlab.engine import step as step_module
from trainlab.engine.objective import Objective
from trainlab.engine.optimizer_state import OptimizerStateMismatch
from trainlab.engine.serialize import join_state, split_state
from trainlab.engine.state import TrainState
from trainlab.engine.step import StandardStep
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.metric_hints import not_a_number_hint
from trainlab.user_code import import_reference

MODULE = "dufix_code"
USER_CODE = '''import numpy as np
import torch
from torch import nn


class NumpyStateSGD(torch.optim.Optimizer):
    """SGD keeping a NumPy array in each parameter's state (docs/extending.md forbids it)."""

    def __init__(self, param_groups, lr):
        super().__init__(param_groups, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.state[p]["hist"] = np.zeros(3)
                    p.add_(p.grad, alpha=-group["lr"])


MSE = torch.nn.MSELoss
MSE_INSTANCE = torch.nn.MSELoss()


class OwnModule(nn.Module):
    def forward(self, pred, target):
        return ((pred - target) ** 2).mean()
'''

IRIS = {"name": "dufix", "seed": 0, "data": {"source": "iris"}, "model": {"name": "linear"},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 16,
                     "epochs": 3},
        "metrics": ["accuracy", "f1_per_class", "confusion_matrix"],
        "output": {"progress": "off"}, "runtime": {"num_threads": 1}}
REGRESSION = {"name": "dufix_reg", "seed": 0, "data": {"source": "diabetes", "standardize_target": True},
              "model": {"name": "linear"},
              "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 2},
              "output": {"progress": "off"}, "runtime": {"num_threads": 1}}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The user's module in the working directory; forgotten after (the next test writes its own)."""
    (tmp_path / f"{MODULE}.py").write_text(USER_CODE)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in [name for name in sys.modules if name.startswith(MODULE)]:
        sys.modules.pop(name, None)


def _train(folder: Path, config: dict, capsys, *flags: str) -> tuple[int, str, Path]:
    """``trainlab [flags] train`` of ``config`` into folder/run: (exit code, stderr, run folder)."""
    (folder / "c.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    code = main([*flags, "train", str(folder / "c.yaml"), "--out", str(folder / "run"), "--quiet"])
    return code, capsys.readouterr().err, folder / "run"


def _one_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.removeprefix("error: ").rstrip("\n")


# --------------------------------------------------------------------------- 1. an optimizer's state


def _sgd_holding(value) -> torch.optim.SGD:
    """A torch SGD with momentum whose second parameter's state also holds ``value`` at 'extra'."""
    params = [nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    sum((p ** 2).sum() for p in params).backward()
    optimizer.step()
    optimizer.state[params[1]]["extra"] = value
    return optimizer


def test_torch_cannot_load_a_numpy_array_or_a_string_back_from_an_optimizer_state():
    """The reason for the rule, read from torch itself: an array fails the load, a string comes back as another
    string without a word, a tensor loads. (Should torch change, this fails, and the rule can be relaxed.)"""
    for value, expected_type in [(torch.zeros(3), torch.Tensor), ("adam", str)]:
        saved = _sgd_holding(value).state_dict()
        fresh = torch.optim.SGD([nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))], lr=0.1, momentum=0.9)
        fresh.load_state_dict(saved)
        loaded = fresh.state_dict()["state"][1]["extra"]
        assert isinstance(loaded, expected_type)
        if isinstance(value, str):
            assert loaded != value and loaded.startswith("<generator object")
    fresh = torch.optim.SGD([nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))], lr=0.1, momentum=0.9)
    with pytest.raises(TypeError):
        fresh.load_state_dict(_sgd_holding(np.zeros(3)).state_dict())


class _KeepsInSecondParameter(torch.optim.SGD):
    """SGD that puts ``value`` into its second parameter's state, under 'hist' (in a list: 'hist.1')."""

    value: object = None

    def step(self, closure=None):
        out = super().step(closure)
        self.state[self.param_groups[0]["params"][1]]["hist"] = [torch.zeros(1), self.value]
        return out


def _step_with(optimizer_class, value) -> tuple[StandardStep, list]:
    model = nn.Linear(3, 2)
    optimizer_class.value = value
    step = StandardStep(model, optimizer_class(model.parameters(), lr=0.1), Objective(build_loss("cross_entropy")))
    return step, [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))]


@pytest.mark.parametrize(("value", "what", "fix"), [
    (np.zeros(3), "a NumPy array", "keep a torch tensor there instead: torch.from_numpy(array)"),
    ("warm", "a string", "keep it in the optimizer's param groups or as an attribute of the optimizer instead"),
])
def test_an_optimizer_keeping_what_torch_cannot_load_back_is_refused_after_the_first_step(value, what, fix):
    """The run checkpointed it (safetensors + JSON can hold both), then could never resume, or resumed with the
    string replaced: refused at the first step, as a set is, naming the key and the parameter's index."""
    step, batches = _step_with(_KeepsInSecondParameter, value)
    with pytest.raises(ConfigError) as caught:
        step.train_step(batches, TrainState())
    assert str(caught.value) == (
        f"optimizer {__name__}._KeepsInSecondParameter keeps {what} in its state ('hist.1' of parameter 1), which a "
        "checkpoint stores but torch's Optimizer.load_state_dict cannot load back: the run could never be resumed; "
        f"{fix}; an optimizer's state may hold only tensors, numbers, None, and lists, tuples and dicts of these")


class _LoadsItsOwnState(_KeepsInSecondParameter):
    """Its own load_state_dict (not torch's): what it keeps is its own business."""

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)


def test_an_optimizer_with_a_load_state_dict_of_its_own_may_keep_an_array():
    step, batches = _step_with(_LoadsItsOwnState, np.zeros(3))
    step.train_step(batches, TrainState())  # not refused
    step, batches = _step_with(_KeepsInSecondParameter, 0.5)  # and a number is no array
    step.train_step(batches, TrainState())


def test_the_set_refusal_no_longer_lists_arrays_or_strings_as_allowed():
    class KeepsASet(torch.optim.SGD):
        def step(self, closure=None):
            out = super().step(closure)
            self.state[self.param_groups[0]["params"][0]]["tags"] = {"a"}
            return out

    step, batches = _step_with(KeepsASet, None)
    with pytest.raises(ConfigError) as caught:
        step.train_step(batches, TrainState())
    assert str(caught.value).endswith("an optimizer's state may hold only tensors, numbers, None, and lists, tuples "
                                      "and dicts of these (a set as a sorted list, say)")


def test_a_run_whose_optimizer_keeps_an_array_fails_at_its_first_step_in_one_line(project, capsys):
    """The user's repro: it trained, checkpointed, and ``resume`` failed with exit 3 blaming the model."""
    config = {**IRIS, "strategy": {**IRIS["strategy"], "optimizer": {"name": f"{MODULE}:NumpyStateSGD", "lr": 0.1}}}
    code, err, run = _train(project, config, capsys)
    assert code == 2
    message = _one_line(err)
    assert message.startswith(f"optimizer {MODULE}.NumpyStateSGD keeps a NumPy array in its state ('hist' of "
                              "parameter 0), which a checkpoint stores but torch's Optimizer.load_state_dict cannot "
                              "load back"), message
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "failed" and not any((run / "checkpoint").glob("step-*"))


def test_resuming_a_checkpoint_whose_optimizer_state_holds_an_array_names_the_optimizer_and_why(
        project, capsys, monkeypatch):
    """A run from before the refusal: its checkpoints hold the array; the resume said "does not match the model or
    optimizer (TypeError: expected a sequence of integers or a single integer, got '<generator object ...')"."""
    from tests.resume_from_checkpoints import train_keeping_checkpoints

    monkeypatch.setattr(step_module, "check_checkpointable", lambda optimizer: None)  # the trainlab of before
    config = {**IRIS, "strategy": {**IRIS["strategy"], "optimizer": {"name": f"{MODULE}:NumpyStateSGD", "lr": 0.1}}}
    full, checkpoints = train_keeping_checkpoints(config, project, every_n_steps=4)
    monkeypatch.undo()
    monkeypatch.chdir(project)
    info = json.loads((full / "run.json").read_text())
    (full / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    capsys.readouterr()
    assert main(["--allow-code", "resume", str(full), "--quiet"]) == 3
    message = _one_line(capsys.readouterr().err)
    newest = max(checkpoints.items())[1]
    assert message == (f"checkpoint {newest} does not match the optimizer built from {full / 'config.yaml'} "
                       "(TypeError: the checkpoint's optimizer state holds a NumPy array ('hist' of parameter 0), "
                       "which torch's Optimizer.load_state_dict cannot load back; keep a torch tensor there instead: "
                       "torch.from_numpy(array)); start a new run instead")


def test_an_optimizer_state_torch_refuses_is_an_optimizer_mismatch_carrying_torchs_error():
    """StandardStep's load wraps what the optimizer's part raises; the model's part is left as raised."""
    model = nn.Linear(3, 2)
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=0.1), Objective(build_loss("cross_entropy")))
    tree, tensors = split_state(step.state_dict(), "step")
    state = join_state(tree, tensors)
    state["optimizer"]["param_groups"].append(dict(state["optimizer"]["param_groups"][0]))
    with pytest.raises(OptimizerStateMismatch) as caught:
        step.load_state_dict(state)
    assert isinstance(caught.value.reason, ValueError)
    assert "different number of parameter groups" in str(caught.value.reason)
    state = join_state(tree, tensors)
    state["model"] = {"weight": torch.zeros(5, 5)}
    with pytest.raises(RuntimeError, match="size mismatch"):  # the model's: "model or optimizer" as before
        step.load_state_dict(state)


def test_resume_says_optimizer_only_for_the_optimizers_part(tmp_path):
    from trainlab import run_resume

    run = SimpleNamespace(path=tmp_path, checkpoints=tmp_path / "checkpoint")
    found = (tmp_path / "checkpoint" / "step-000000008", {"config_hash": "h"}, {}, {})

    def loaded(exc):
        def restore(snapshot):
            raise exc
        built = SimpleNamespace(config=SimpleNamespace(hash=lambda: "h"), trainer=SimpleNamespace(restore=restore),
                                notes={})
        with pytest.raises(DataError) as caught:
            run_resume._load_latest(built, run, True, found)
        return str(caught.value)

    said = loaded(OptimizerStateMismatch(KeyError("momentum")))
    assert said.startswith(f"checkpoint {found[0]} does not match the optimizer built from ")
    assert "(KeyError: 'momentum'); start a new run instead" in said
    assert "does not match the model or optimizer built from" in loaded(KeyError("model.weight"))


# --------------------------------------------------------------------------- 2. a list is no monitor


@pytest.mark.parametrize(("monitor", "words"), [
    ("val_f1_per_class",
     "; f1_per_class is a list (one value per class), not a number; use a number: f1_macro, f1_weighted or f1_micro "
     "(add one to the run's metrics to record it); no key picks one class's value out of the list: a "
     "module:function metric can return it (docs/extending.md, 'A metric')"),
    ("val_confusion_matrix",
     "; confusion_matrix is a K x K matrix of counts (rows: true class, columns: predicted class), not a number; "
     "use a number: accuracy (recorded as 'val_accuracy'), balanced_accuracy or matthews_corrcoef; a "
     "module:function metric can return a number made from it (docs/extending.md, 'A metric')"),
])
@pytest.mark.parametrize("owner", ["early_stopping", "schedule reduce_on_plateau"])
def test_monitoring_a_list_metric_names_the_numbers_that_stand_in(tmp_path, capsys, monitor, words, owner):
    """It said "a list (one value per class), not a number; monitor a scalar record" (the confusion matrix too);
    reduce_on_plateau said "which is not recorded" of a metric the config lists, after a patience warning."""
    strategy = dict(IRIS["strategy"])
    if owner == "early_stopping":
        strategy["early_stopping"] = {"monitor": monitor}
    else:
        strategy["schedule"] = {"name": "reduce_on_plateau", "monitor": monitor}
    code, err, run = _train(tmp_path, {**IRIS, "strategy": strategy}, capsys)
    assert code == 2
    assert _one_line(err) == (f"{owner} cannot monitor '{monitor}'{words} "
                              "(available: train_loss, val_loss, val_accuracy)")
    if monitor == "val_confusion_matrix":
        assert "one value per class" not in err
    assert not run.exists()


def test_the_monitors_words_are_the_target_s(tmp_path, capsys):
    """One wording: ``--target`` says the same of the same record."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(IRIS))
    capsys.readouterr()
    assert main(["train", str(tmp_path / "c.yaml"), "--target", "val_confusion_matrix=0.5", "--out",
                 str(tmp_path / "t"), "--quiet"]) == 2
    target = _one_line(capsys.readouterr().err)
    hint = not_a_number_hint("val_confusion_matrix", ["train_loss", "val_loss", "val_accuracy"])
    assert hint.startswith("; confusion_matrix is a K x K matrix of counts") and hint in target


def test_a_multilabel_confusion_matrix_is_one_2x2_per_label():
    hint = not_a_number_hint("val_confusion_matrix", ["val_loss", "val_subset_accuracy", "val_hamming_accuracy"])
    assert hint.startswith("; confusion_matrix is one 2 x 2 matrix of counts per label ([[tn, fp], [fn, tp]]), not "
                           "a number; use a number: hamming_accuracy (recorded as 'val_hamming_accuracy')")


# --------------------------------------------------------------------------- 3. a torch.nn loss


WRAP = ("wrap it in a trainlab.losses.base.Loss subclass that sets target_kind and defines forward(pred, target, "
        "weight=None); see docs/extending.md")


@pytest.mark.parametrize(("reference", "what", "own"), [
    (f"{MODULE}:MSE", "torch's MSELoss", "use trainlab's own (loss: mse), or "),
    ("torch.nn:MSELoss", "torch's MSELoss", "use trainlab's own (loss: mse), or "),
    (f"{MODULE}:MSE_INSTANCE", "an instance of torch's MSELoss", "use trainlab's own (loss: mse), or "),
    (f"{MODULE}:OwnModule", "OwnModule", ""),
])
@pytest.mark.parametrize("opt_in", [[], ["--allow-code"]])
def test_a_torch_nn_loss_is_refused_by_one_line_saying_to_wrap_it_with_or_without_the_opt_in(
        project, capsys, reference, what, own, opt_in):
    """It said "which is outside your own code; pass --allow-code to run it", and with the opt-in "built a MSELoss,
    not a trainlab.losses.base.Loss"."""
    config = {**REGRESSION, "strategy": {**REGRESSION["strategy"], "loss": reference}}
    code, err, run = _train(project, config, capsys, *opt_in)
    assert code == 2
    assert _one_line(err) == (f"loss '{reference}' is {what}, an nn.Module but not a trainlab.losses.base.Loss: "
                              f"{own}{WRAP}")
    assert not run.exists()


def test_naming_torch_nn_for_a_loss_builds_nothing_and_imports_nothing_without_the_opt_in(monkeypatch):
    """The refusal reads the already-imported module's namespace: no class is built (MSELoss.__init__ never
    runs), and a module not yet imported stays so (the opt-in's refusal, as before)."""
    built = []
    monkeypatch.setattr(torch.nn.MSELoss, "__init__", lambda self, *a, **k: built.append(self))
    with code_policy(allow=False), pytest.raises(ConfigError, match="^loss 'torch.nn:MSELoss' is torch's MSELoss"):
        import_reference("torch.nn:MSELoss", "loss")
    assert built == []
    assert "tabnanny" not in sys.modules  # a standard-library module nothing here imports
    with code_policy(allow=False), pytest.raises(ConfigError, match="which is outside your own code; "):
        import_reference("tabnanny:check", "loss")
    assert "tabnanny" not in sys.modules


def test_the_torch_module_refusal_is_the_losses_alone(monkeypatch):
    """A model or optimizer named from torch is still the opt-in's to allow (torch.nn:Linear is a model)."""
    with code_policy(allow=False), pytest.raises(ConfigError, match="^config references 'torch.nn:Linear', which is "
                                                                    "outside your own code"):
        import_reference("torch.nn:Linear", "model")
    with code_policy(allow=True):
        assert import_reference("torch.nn:Linear", "model") is torch.nn.Linear
