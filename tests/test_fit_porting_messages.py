"""What trainlab.fit says to code ported from a plain PyTorch loop, and that following it works: a loss given
as a function (wrap it in a Loss subclass: a 'module:function' reference is refused too), a lambda or a
function defined inside a function (no reference can name them), x of several inputs (one tensor, split in
forward), reduce_on_plateau without validation data (its error alone, no warning on its patience before it;
the patience named is the largest that lowers the LR, checked against the LRs the run then trains with), and
parameters the user froze before fit (never in the optimizer, also while fine-tuning freezes and unfreezes the
backbone, and frozen as they were after a fit that failed)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import yaml

import trainlab
from tests.conftest import DIGITS_MLP
from trainlab.cli import main
from trainlab.errors import ConfigError, DataError

BASE = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 16, "epochs": 2}
# the modules the tests write beside a strategy file: imported by name, so dropped again after each test
OWN_MODULES = ("my_loss", "my_schedule", "spyopt_fpm")


@pytest.fixture(autouse=True)
def _forget_own_modules():
    for name in OWN_MODULES:
        sys.modules.pop(name, None)
    yield
    for name in OWN_MODULES:
        sys.modules.pop(name, None)


def _signs(n: int = 96, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).normal(size=(n, features)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _fit_refused(strategy: dict, error: type[Exception] = ConfigError, **kwargs) -> str:
    with pytest.raises(error) as raised:
        trainlab.fit(torch.nn.Linear(4, 2), _signs(), strategy, runtime={"num_threads": 1}, **kwargs)
    return str(raised.value)


def _suggestion(message: str) -> str:
    """The part of a component-object refusal after the general rule: the fix for this object."""
    return message.split("(docs/extending.md)", 1)[1]


def my_ce(pred, target):
    return torch.nn.functional.cross_entropy(pred, target)


# --------------------------------------------------------------------------- a loss given as a function

WRAPPED_CE = '''import torch

from trainlab.losses.base import Loss


class MyCe(Loss):
    target_kind = "class_index"

    def forward(self, pred, target, weight=None):
        return torch.nn.functional.cross_entropy(pred, target)
'''


def test_a_loss_function_is_told_to_wrap_it_in_a_loss_subclass_not_to_give_its_reference(tmp_path):
    """The hint was "e.g. 'tests.test_fit_porting_messages:my_ce'", which fit then refused as a plain function."""
    message = _fit_refused({**BASE, "loss": my_ce})
    assert message.startswith("strategy.loss is the function my_ce; fit builds the loss itself")
    assert _suggestion(message) == (
        "; a plain function or a torch.nn loss is refused, as a 'module:attr' reference too: wrap my_ce in a "
        "trainlab.losses.base.Loss subclass in a module file (my_loss.py), class MyCe(Loss) whose forward computes "
        "it (set target_kind and define forward(pred, target, weight=None) returning the batch mean), and give "
        "'my_loss:MyCe' (docs/extending.md, 'A loss')")
    assert f"{__name__}:my_ce" not in message
    # why: the function's own reference is refused in turn
    assert "is a plain function, not a Loss" in _fit_refused({**BASE, "loss": f"{__name__}:my_ce"})
    # the advice as written trains, and its loss is the cross-entropy (NumPy's)
    (tmp_path / "my_loss.py").write_text(WRAPPED_CE)
    (tmp_path / "strategy.yaml").write_text(yaml.safe_dump({**BASE, "loss": "my_loss:MyCe"}))
    x, y = _signs()
    result = trainlab.fit(torch.nn.Linear(4, 2), (x, y), str(tmp_path / "strategy.yaml"), val=(x, y),
                          runtime={"num_threads": 1})
    with torch.no_grad():
        logits = result.model.cpu()(torch.from_numpy(x)).double().numpy()
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    assert result.summary["val"]["loss"] == pytest.approx(-log_softmax[np.arange(len(y)), y].mean(), rel=1e-5)


@pytest.mark.parametrize(("loss", "subject", "wrapper"), [
    (lambda pred, target: torch.nn.functional.cross_entropy(pred, target), "the lambda", "MyLoss"),
    (torch.nn.SoftMarginLoss(), "SoftMarginLoss", "MySoftMarginLoss"),  # a torch loss trainlab has no name for
], ids=["lambda", "torch-loss"])
def test_a_lambda_or_a_torch_loss_is_told_to_be_wrapped_never_named_by_lambda(loss, subject, wrapper):
    suggestion = _suggestion(_fit_refused({**BASE, "loss": loss}))
    assert f"wrap {subject} in a trainlab.losses.base.Loss subclass" in suggestion
    assert f"give 'my_loss:{wrapper}'" in suggestion and "<lambda>" not in suggestion


def test_a_module_of_the_users_that_is_no_loss_subclass_is_told_to_subclass_loss():
    class PlainCE(torch.nn.Module):
        def forward(self, pred, target):
            return torch.nn.functional.cross_entropy(pred, target)

    suggestion = _suggestion(_fit_refused({**BASE, "loss": PlainCE()}))
    assert suggestion.startswith(", e.g. make PlainCE a subclass of trainlab.losses.base.Loss")
    assert "give 'my_loss:PlainCE'" in suggestion and "<locals>" not in suggestion


# --------------------------------------------------------------------------- functions no reference can name

HALF_LR = '''def my_schedule(total_steps, steps_per_epoch):
    return lambda step: 0.5
'''


def test_a_schedule_lambda_is_told_to_be_a_named_def_and_that_trains(tmp_path):
    suggestion = _suggestion(_fit_refused({**BASE, "schedule": lambda total_steps, steps_per_epoch: (lambda s: 0.5)}))
    assert suggestion == (", e.g. write the lambda as a named function, def my_schedule(...), at the top level of "
                          "a module file (my_schedule.py) and give 'my_schedule:my_schedule'")
    (tmp_path / "my_schedule.py").write_text(HALF_LR)
    (tmp_path / "strategy.yaml").write_text(yaml.safe_dump({**BASE, "schedule": "my_schedule:my_schedule"}))
    result = trainlab.fit(torch.nn.Linear(4, 2), _signs(), str(tmp_path / "strategy.yaml"),
                          runtime={"num_threads": 1})
    assert [record["lr"] for record in result.history] == [pytest.approx(0.05)] * 2  # 0.1 x 0.5


def test_a_function_defined_inside_a_function_is_told_to_move_to_the_top_level():
    def halving(total_steps, steps_per_epoch):
        return lambda step: 0.5

    suggestion = _suggestion(_fit_refused({**BASE, "schedule": {"name": halving}}))
    assert suggestion == (", e.g. move halving (def inside a function, which no reference can name) to the top "
                          "level of a module file (my_schedule.py) and give 'my_schedule:halving'")
    assert "<locals>" not in suggestion


def test_a_metric_function_keeps_its_move_into_a_module_file_hint_and_names_no_lambda():
    def nested(predictions, target, num_classes):
        return 1.0

    for metric in (lambda p, t, k: 1.0, nested):
        message = _fit_refused({**BASE, "epochs": 1}, metrics=["accuracy", metric])
        fix = message.split("(docs/metrics.md): ", 1)[1]
        assert fix.startswith("write def my_metric(predictions, target, num_classes)") and "<" not in fix
    my_metric = nested
    my_metric.__module__, my_metric.__qualname__ = "__main__", "balanced"  # a function of the script
    message = _fit_refused({**BASE, "epochs": 1}, metrics=[my_metric])
    assert "move balanced into a module file next to the script (e.g. my_metric.py) and give " \
           "'my_metric:balanced'" in message


# --------------------------------------------------------------------------- x of several inputs

class TwoInputs(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.first, self.second = torch.nn.Linear(4, 2), torch.nn.Linear(3, 2)

    def forward(self, a, b):
        return self.first(a) + self.second(b)


def _two_inputs(n: int = 50) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, 4, generator=generator), torch.randn(n, 3, generator=generator)
    return a, b, (a[:, 0] + b[:, 0] > 0).long()


@pytest.mark.parametrize("container", [tuple, list])
def test_x_of_several_inputs_is_told_to_concatenate_them_and_the_advice_trains(container):
    """((x1, x2), y) was read as one x of 2 rows: "train: x has 2 rows but y has 50"."""
    a, b, y = _two_inputs()
    with pytest.raises(DataError) as raised:
        trainlab.fit(TwoInputs(), (container([a, b]), y), BASE, runtime={"num_threads": 1})
    assert str(raised.value) == (
        f"train x is a {container.__name__} of 2 tensors shaped (50, 4), (50, 3) (a model with several inputs?); "
        "fit takes x as ONE tensor or array, and the model's forward gets one batch tensor: pass "
        "torch.cat([x1, x2], dim=1) as x and split it in forward, x1, x2 = x.split([4, 3], dim=1) (or wrap the "
        "model in a Module whose forward does that split and calls it)")

    class Split(torch.nn.Module):  # the advice: one tensor, split in forward
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(*x.split([4, 3], dim=1))

    two = TwoInputs()
    result = trainlab.fit(Split(two), (torch.cat([a, b], dim=1), y), BASE, runtime={"num_threads": 1})
    assert len(result.history) == 2 and not torch.equal(two.second.weight.cpu(), TwoInputs().second.weight)


def test_several_inputs_as_val_or_of_unequal_rows_say_so():
    a, b, y = _two_inputs()
    with pytest.raises(DataError, match=r"^val x is a tuple of 2 tensors shaped \(50, 4\), \(50, 3\)"):
        trainlab.fit(torch.nn.Linear(7, 2), (torch.cat([a, b], 1), y), BASE, val=((a, b), y))
    with pytest.raises(DataError) as raised:
        trainlab.fit(torch.nn.Linear(7, 2), ((a, b[:49]), y), BASE)
    assert str(raised.value).endswith("; every input needs one row per target (y has 50 rows; x2 has 49)")
    with pytest.raises(DataError, match=r"^train x is a list of 1 tensor shaped \(50, 4\); fit takes x as ONE "
                                        r"tensor or array, not inside a list: pass the tensor itself$"):
        trainlab.fit(torch.nn.Linear(4, 2), ([a], y), BASE)


def test_rows_given_as_a_list_still_train():
    """A list of N rows (arrays or lists) is x itself, not N inputs."""
    x, y = _signs(40)
    for rows in (list(x), [list(map(float, row)) for row in x]):
        assert len(trainlab.fit(torch.nn.Linear(4, 2), (rows, y), BASE, runtime={"num_threads": 1}).history) == 2


def test_a_dataset_of_several_inputs_says_the_same():
    a, b, y = _two_inputs()

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return (a[i], b[i]), y[i]

    with pytest.raises(DataError) as raised:
        trainlab.fit(TwoInputs(), Pairs(), BASE)
    assert str(raised.value) == (
        "train x of item 0 is a tuple of 2 tensors shaped (4,), (3,) (a model with several inputs?); fit takes each "
        "item's x as ONE tensor or array, and the model's forward gets one batch tensor: pass torch.cat([x1, x2]) "
        "as the item's x from __getitem__ and split it in forward, x1, x2 = x.split([4, 3], dim=1) (or wrap the "
        "model in a Module whose forward does that split and calls it)")


# --------------------------------------------------------------------------- reduce_on_plateau's patience

PLATEAU = {**BASE, "schedule": {"name": "reduce_on_plateau"}}


def _plateau_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "reduce_on_plateau" in line]


def test_reduce_on_plateau_without_validation_data_is_its_error_alone(capsys):
    """A warning on its patience ("... lower patience below 1") came before the error that it reads nothing."""
    capsys.readouterr()
    message = _fit_refused(PLATEAU)
    assert message.startswith("schedule reduce_on_plateau monitors 'val_loss', but the run has no validation split")
    assert _plateau_lines(capsys) == []


def test_reduce_on_plateau_without_a_val_fraction_is_one_error_line_from_the_cli(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP, data__val_fraction=0, strategy__schedule={"name": "reduce_on_plateau"},
                          runtime={"num_threads": 1})
    capsys.readouterr()
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    lines = _plateau_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("error: schedule reduce_on_plateau monitors 'val_loss', but the "
                                                   "run has no validation split"), lines


def _lrs(epochs: int, patience: int) -> list[float]:
    """The distinct LRs a run of ``epochs`` epochs (one validation each) trains its steps with: a still
    optimizer (lr 1e-12) keeps the validation loss flat, so only the first validation improves."""
    seen: list[float] = []

    class Lrs(trainlab.Callback):
        def on_step_start(self, view, *args):
            seen.append(view.lr)

    x, y = _signs(48)
    strategy = {**BASE, "optimizer": {"name": "sgd", "lr": 1e-12}, "epochs": epochs,
                "schedule": {"name": "reduce_on_plateau", "patience": patience}}
    trainlab.fit(torch.nn.Linear(4, 2), (x, y), strategy, val=(x, y), runtime={"num_threads": 1}, callbacks=[Lrs()])
    return sorted(set(seen), reverse=True)


@pytest.mark.parametrize(("epochs", "fix", "largest"), [
    (5, "the first validation is the best so far, so at validation 12 at the earliest", 2),
    (3, "the first validation is the best so far, so at validation 12 at the earliest", 0),
    (2, "the first validation is the best so far, so at validation 12 at the earliest", None),
])
def test_a_patience_that_never_reduces_names_the_largest_that_does(capsys, epochs, fix, largest):
    """"lower patience below 1" for 2 validations: patience 0 lowers the LR at the 2nd, the last, which trains no
    step. The patience named is checked: it lowers the LR of a step, one more does not."""
    capsys.readouterr()
    assert len(_lrs(epochs, patience=10)) == 1
    lines = _plateau_lines(capsys)
    advice = {2: "set patience to 2 or less, or train longer", 0: "set patience: 0, or train longer",
              None: "train longer: patience=10 needs 13 validations, patience: 0 needs 3"}[largest]
    assert len(lines) == 1 and lines[0].startswith("warning:") and fix in lines[0], lines
    assert lines[0].endswith(advice), lines
    if largest is None:
        assert len(_lrs(epochs, patience=0)) == 1  # not even patience 0 lowers it
        return
    assert len(_lrs(epochs, patience=largest)) == 2
    assert len(_lrs(epochs, patience=largest + 1)) == 1


# --------------------------------------------------------------------------- parameters the user froze

SPY = '''import torch

SEEN = []


def spy_adamw(param_groups, lr, **options):
    SEEN.append([list(group["params"]) for group in param_groups])
    return torch.optim.AdamW(param_groups, lr=lr, **options)
'''


class PartlyFrozen(torch.nn.Module):
    """A backbone (a, bn, b) whose first weight and BatchNorm pair the user froze, and a head."""

    def __init__(self):
        super().__init__()
        self.a, self.bn, self.b = torch.nn.Linear(4, 7), torch.nn.BatchNorm1d(7), torch.nn.Linear(7, 5)
        self.head = torch.nn.Linear(5, 2)
        for parameter in (self.a.weight, self.bn.weight, self.bn.bias):
            parameter.requires_grad_(False)

    def forward(self, x):
        return self.head(torch.relu(self.b(torch.relu(self.bn(self.a(x))))))

    def user_frozen(self) -> list[torch.nn.Parameter]:
        return [self.a.weight, self.bn.weight, self.bn.bias]


def _spy_strategy(tmp_path, finetune: dict) -> str:
    (tmp_path / "spyopt_fpm.py").write_text(SPY)
    strategy = {**BASE, "optimizer": {"name": "spyopt_fpm:spy_adamw", "lr": 0.01, "weight_decay": 0.5},
                "epochs": 3, "finetune": finetune}
    (tmp_path / "strategy.yaml").write_text(yaml.safe_dump(strategy))
    return str(tmp_path / "strategy.yaml")


@pytest.mark.parametrize("finetune", [
    {"freeze": True, "unfreeze_after_epochs": 1},
    {"freeze": True, "unfreeze_after_epochs": 1, "layerwise_lr_decay": 0.5},
], ids=["unfreeze", "unfreeze-layerwise"])
def test_user_frozen_parameters_never_enter_the_optimizer_while_finetuning(tmp_path, finetune):
    """layerwise_param_groups(include_frozen=True) put every frozen parameter in the optimizer, the user's too."""
    strategy = _spy_strategy(tmp_path, finetune)
    torch.manual_seed(0)
    model = PartlyFrozen()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    frozen_ids = {id(p) for p in model.user_frozen()}
    trainable_ids = {id(p) for p in model.parameters() if p.requires_grad}
    for _ in range(2):  # a second fit on the same module builds its optimizer over the same parameters
        trainlab.fit(model, _signs(), strategy, runtime={"num_threads": 1})
        held = [id(p) for group in sys.modules["spyopt_fpm"].SEEN[-1] for p in group]
        assert not frozen_ids & set(held) and set(held) == trainable_ids
        assert [p.requires_grad for p in model.user_frozen()] == [False] * 3
        assert all(p.requires_grad for p in model.parameters() if id(p) in trainable_ids)  # given back
    after = dict(model.named_parameters())
    for name in ("a.weight", "bn.weight", "bn.bias"):
        assert torch.equal(after[name].detach().cpu(), before[name]), name  # bit-identical
    for name in ("b.weight", "head.weight"):  # the backbone trained once unfrozen, the head throughout
        assert not torch.equal(after[name].detach().cpu(), before[name]), name


def test_a_fit_refused_after_freezing_the_backbone_gives_it_back_trainable():
    """finetune.freeze froze the backbone when the optimizer was built; a check after it (reduce_on_plateau
    without validation data) left the user's module frozen for good."""
    model = PartlyFrozen()
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    with pytest.raises(ConfigError, match="no validation split"):
        trainlab.fit(model, _signs(), {**PLATEAU, "finetune": {"freeze": True}}, runtime={"num_threads": 1})
    assert [name for name, p in model.named_parameters() if p.requires_grad] == trainable
