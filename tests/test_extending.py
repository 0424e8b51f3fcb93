"""docs/extending.md's model factory, data source and loss, run as written: a config in their folder trains from
another working directory without PYTHONPATH, and predict names the source's classes."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from trainlab.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"


def _examples() -> dict[str, str]:
    """The ```python blocks of docs/extending.md, keyed by the file named in their first line."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    return {block.splitlines()[0].removeprefix("# ").strip(): block for block in blocks}


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    for name, code in _examples().items():
        (folder / name).write_text(code)
    config = {"name": "moons", "seed": 0, "data": {"source": "mydata:two_moons", "n": 300},
              "model": {"name": "mymodels:make_net", "hidden": 16},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.03}, "batch_size": 32,
                           "epochs": 15},
              "output": {"progress": "off"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    yield folder
    for module in ("mymodels", "mydata"):
        sys.modules.pop(module, None)



def _main_importing(module: str, argv: list[str]) -> int:
    """``main(argv)`` of a command that imports the user's ``module``, forgotten after (the next test writes its own)."""
    try:
        return main(argv)
    finally:
        sys.modules.pop(module, None)

def test_doc_examples_exist():
    assert set(_examples()) == {"mymodels.py", "mydata.py", "mylosses.py", "myschedules.py", "myoptim.py",
                                "myinits.py", "mymetrics.py", "mycallbacks.py"}


def test_the_doc_loss_trains_and_a_torch_loss_is_refused_in_one_line(project, tmp_path, capsys):
    namespace: dict = {}
    exec(_examples()["mylosses.py"], namespace)  # noqa: S102 - the doc's own example
    pred, target = torch.randn(16, 2), torch.randn(16, 2)
    reference = np.mean((pred.numpy() - target.numpy()) ** 4)  # the formula, in NumPy
    assert float(namespace["MeanQuartic"]()(pred, target)) == pytest.approx(float(reference), rel=1e-6)
    config = {"name": "quartic", "seed": 0, "data": {"source": "diabetes"}, "model": {"name": "linear"},
              "strategy": {"loss": "mylosses:MeanQuartic", "optimizer": {"name": "adam", "lr": 0.01},
                           "batch_size": 32, "epochs": 2},
              "output": {"progress": "off"}}
    (project / "quartic.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(project / "quartic.yaml"), "--out", str(tmp_path / "q"), "--quiet"]) == 0
    assert json.loads((tmp_path / "q" / "summary.json").read_text())["loss"] == "mylosses:MeanQuartic"
    (project / "torchloss.py").write_text("import torch\n\n\ndef MSE():\n    return torch.nn.MSELoss()\n")
    config["strategy"]["loss"] = "torchloss:MSE"
    (project / "torchloss.yaml").write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["train", str(project / "torchloss.yaml"), "--out", str(tmp_path / "t"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: loss 'torchloss:MSE' built a MSELoss, not a trainlab.losses.base.Loss")
    assert err.count("\n") == 1
    for module in ("mylosses", "torchloss"):
        sys.modules.pop(module, None)


def test_config_folder_modules_train_from_another_directory(project, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert not any(Path(p or ".").resolve() == project for p in sys.path)
    out = tmp_path / "run"
    assert main(["train", str(project / "config.yaml"), "--out", str(out), "--quiet"]) == 0
    assert not any(Path(p or ".").resolve() == project for p in sys.path)  # only for the command
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.8
    # the run folder's config names user code: predict needs the opt-in, then names the classes
    np.savez(tmp_path / "new.npz", x=np.array([[0.0, 1.0], [1.0, -0.5]]))  # a source without named columns: npz
    capsys.readouterr()
    assert main(["predict", str(out), str(tmp_path / "new.npz")]) == 2
    assert "imports no code without the opt-in, not even your own modules" in capsys.readouterr().err
    monkeypatch.chdir(project)
    assert main(["--allow-code", "predict", str(out), str(tmp_path / "new.npz")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "prediction" and set(printed[1:]) <= {"upper", "lower"} and len(printed) == 3


def test_a_missing_module_says_where_it_looked(project, tmp_path, capsys):
    (project / "mymodels.py").unlink()
    assert main(["train", str(project / "config.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    cwd = Path.cwd().resolve()  # the folders searched, by name: the working directory, then the config's
    assert f"no module 'mymodels' in {cwd} (the working directory), {project.resolve()} or the installed packages" \
        in err and "no config file's folder" not in err  # the CLI's config is read from its file


def test_a_misspelt_module_or_factory_gets_where_it_looked_and_a_did_you_mean_with_the_opt_in_too(project, tmp_path,
                                                                                                     capsys):
    """User trial: with --allow-code (the resume hint's own wrapper) a misspelt module gave the bare
    "ModuleNotFoundError: No module named 'mymodel'", which without it named the folders searched; a misspelt
    factory named no close attribute."""
    config = str(project / "config.yaml")
    for flags in ([], ["--allow-code"]):
        argv = [*flags, "train", config, "--set", "model.name=mymodel:make_net", "--out", str(tmp_path / "a"), "--quiet"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "ModuleNotFoundError" not in err, err
        assert f"no module 'mymodel' in {Path.cwd().resolve()} (the working directory), {project.resolve()} or the " \
               "installed packages; did you mean 'mymodels'?" in err, err
        argv = [*flags, "train", config, "--set", "model.name=mymodels:make_nett", "--out", str(tmp_path / "b"), "--quiet"]
        assert _main_importing("mymodels", argv) == 2
        assert capsys.readouterr().err == ("error: module 'mymodels' has no attribute 'make_nett' (from model "
                                           "'mymodels:make_nett'); did you mean 'make_net'?\n")


def test_a_factory_that_returns_no_module_is_a_config_error_naming_it(project, tmp_path, capsys):
    """It was 'error: TypeError: ... (rerun with --debug for the traceback)', exit 4: the unexpected-error path."""
    (project / "badmods.py").write_text("def returns_none(input_shape, output_dim, hidden=16):\n    return None\n")
    argv = ["train", str(project / "config.yaml"), "--set", "model.name=badmods:returns_none",
            "--out", str(tmp_path / "run"), "--quiet"]
    assert _main_importing("badmods", argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "model factory 'badmods:returns_none' returned NoneType (None), not a torch.nn.Module" in err
    assert "TypeError" not in err and "--debug" not in err


def test_early_stopping_watches_a_user_metric(project, tmp_path):
    """``monitor: val_<module>:<attr>`` was 'cannot import module 'val_mymetrics''; it watches the metric,
    in its direction (a user metric is maximised)."""
    (project / "mymetrics.py").write_text("def agree(predictions, target, num_classes):\n"
                                          "    return float((predictions == target).float().mean())\n")
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["metrics"] = ["mymetrics:agree"]
    config["strategy"]["early_stopping"] = {"monitor": "val_mymetrics:agree", "patience": 2}
    (project / "es.yaml").write_text(yaml.safe_dump(config))
    assert _main_importing("mymetrics", ["train", str(project / "es.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["strategy"]["early_stopping"]["mode"] == "max"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 0.0 <= summary["val"]["mymetrics:agree"] <= 1.0


def test_the_doc_schedule_trains_and_is_the_lr_multiplier(project, tmp_path):
    namespace: dict = {}
    exec(_examples()["myschedules.py"], namespace)  # noqa: S102 - the doc's own example
    series = [namespace["warmup_linear"](8, 4, warmup=4)(step) for step in range(8)]
    assert series == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 0.75, 0.5, 0.25])
    config = yaml.safe_load((project / "config.yaml").read_text())
    config["strategy"]["schedule"] = {"name": "myschedules:warmup_linear", "warmup": 4}
    config["strategy"]["epochs"] = 2
    (project / "sched.yaml").write_text(yaml.safe_dump(config))
    assert _main_importing("myschedules", ["train", str(project / "sched.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(record.get("lr") for record in records)


@pytest.mark.parametrize(("code", "says"), [
    ("def plain(pred, target):\n    return ((pred - target) ** 2).mean()\n",
     "error: loss 'badloss:plain' is a plain function, not a Loss: wrap it in a trainlab.losses.base.Loss subclass"),
    ("from trainlab.losses.base import Loss\n\n\nclass plain(Loss):\n    def forward(self, pred, target, weight=None):\n"
     "        return ((pred - target) ** 2).mean()\n",
     "error: loss 'badloss:plain' (plain) does not set target_kind: set the class attribute to one of 'continuous', "),
    # a misspelt kind trained as regression (the base class's placeholder "continuous" was all that was read)
    ("from trainlab.losses.base import Loss\n\n\nclass plain(Loss):\n    target_kind = 'class_indx'\n\n"
     "    def forward(self, pred, target, weight=None):\n        return ((pred - target) ** 2).mean()\n",
     "error: loss 'badloss:plain' (plain) sets target_kind 'class_indx', which is no target kind (did you mean "
     "'class_index'?): set the class attribute to one of 'continuous', "),
])
def test_a_loss_the_doc_refuses_is_refused_in_one_line(project, tmp_path, capsys, code, says):
    """A plain function said "needs 'pred', 'target' (not set)"; a Loss without target_kind trained as regression."""
    (project / "badloss.py").write_text(code)
    argv = ["train", str(project / "config.yaml"), "--set", "strategy.loss=badloss:plain",
            "--out", str(tmp_path / "run"), "--quiet"]
    assert _main_importing("badloss", argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(says) and err.count("\n") == 1


ROW_LOSS = ("import torch\nfrom trainlab.losses.base import Loss\n\n\nclass rows(Loss):\n"
            "    target_kind = 'class_index'\n\n    def forward(self, pred, target, weight=None):\n"
            "        return torch.nn.functional.cross_entropy(pred, target, reduction='none')\n\n\n"
            "class raises(Loss):\n    target_kind = 'class_index'\n\n    def forward(self, pred, target, weight=None):\n"
            "        raise RuntimeError('oops in loss')\n\n\n"
            "class as_float(Loss):\n    target_kind = 'class_index'\n\n    def forward(self, pred, target, weight=None):\n"
            "        return torch.nn.functional.cross_entropy(pred, target).item()\n\n\n"
            "class anew(Loss):\n    target_kind = 'class_index'\n\n    def forward(self, pred, target, weight=None):\n"
            "        return torch.tensor(torch.nn.functional.cross_entropy(pred, target).item())\n\n\n"
            "class Cut(torch.nn.Module):\n    def __init__(self, input_shape, output_dim):\n        super().__init__()\n"
            "        self.layer = torch.nn.Linear(input_shape[0], output_dim)\n\n"
            "    def forward(self, x):\n        return self.layer(x).detach()\n\n\n"
            "class zero_on_one(Loss):\n    target_kind = 'class_index'\n\n    def forward(self, pred, target, weight=None):\n"
            "        return pred.new_zeros(())\n\n\n"
            "class Flat(Cut):\n    def forward(self, x):\n        return self.layer(x)[:, 0]\n\n\n"
            "class NanNet(Cut):\n    def forward(self, x):\n        return self.layer(x) * float('nan')\n\n\n"
            "class nan(Loss):\n    target_kind = 'class_index'\n\n    def forward(self, pred, target, weight=None):\n"
            "        return torch.nn.functional.cross_entropy(pred, target) * float('nan')\n")


@pytest.mark.parametrize("overrides", [[], ["strategy.grad_accum_steps=2"], ["strategy.optimizer={name: lbfgs}"]],
                         ids=["plain", "accumulated", "closure"])
def test_a_loss_returning_its_rows_is_refused_naming_the_loss_and_its_contract(project, tmp_path, capsys, overrides):
    """torch's 'grad can be implicitly created only for scalar outputs' named neither the loss nor the fix."""
    (project / "badloss.py").write_text(ROW_LOSS)
    argv = ["train", str(project / "config.yaml"), "--set", "strategy.loss=badloss:rows", "--out", str(tmp_path / "r"),
            "--quiet", *[word for item in overrides for word in ("--set", item)]]
    assert _main_importing("badloss", argv) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # L-BFGS on mini-batches is warned of first
    assert re.fullmatch(r"error: loss 'badloss:rows' returned a tensor of shape \(\d+,\), not one number: its "
                        r"forward must reduce the per-row values to one number, .*docs/extending.md\)", error), error


@pytest.mark.parametrize("overrides", [[], ["strategy.grad_accum_steps=2"]], ids=["plain", "accumulated"])
def test_a_loss_returning_a_python_float_is_refused_naming_the_loss_and_its_contract(project, tmp_path, capsys,
                                                                                    overrides):
    """.item() of the loss: "AttributeError: 'float' object has no attribute 'ndim'", exit 4, no fix named."""
    (project / "badloss.py").write_text(ROW_LOSS)
    argv = ["train", str(project / "config.yaml"), "--set", "strategy.loss=badloss:as_float", "--out",
            str(tmp_path / "r"), "--quiet", *[word for item in overrides for word in ("--set", item)]]
    assert _main_importing("badloss", argv) == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert re.fullmatch(r"error: loss 'badloss:as_float' returned a float \([0-9.]+\), not a tensor: its forward "
                        r"must return the loss as a 0-d tensor that keeps its graph \(no float\(\) or .item\(\) of "
                        r"it\), so that backward\(\) reaches the model \(docs/extending.md\)", error), error


@pytest.mark.parametrize("overrides", [[], ["strategy.grad_accum_steps=2"]], ids=["plain", "accumulated"])
def test_a_loss_or_model_that_cuts_the_graph_is_named(project, tmp_path, capsys, overrides):
    """torch.tensor(loss.item()) was torch's 'element 0 of tensors does not require grad and does not have a
    grad_fn', exit 4, naming neither the loss nor the fix; a model's .detach() the same."""
    (project / "badloss.py").write_text(ROW_LOSS)
    sets = [word for item in overrides for word in ("--set", item)]
    for index, (culprit, said) in enumerate([
        ("strategy.loss=badloss:anew",
         "error: loss 'badloss:anew' returned a tensor with no graph back to the model's outputs (requires_grad is "
         "False: made anew, as torch.tensor(value.item()) does, or .detach()ed): its forward must compute the loss "
         "from its inputs with torch operations, so that backward() reaches the model (docs/extending.md)"),
        ("model={name: badloss:Cut}",
         "error: the model's outputs carry no gradient (requires_grad is False) although it has trainable "
         "parameters: its forward cut the graph (a .detach(), .numpy() or torch.no_grad() in it?), so backward() "
         "cannot reach its weights")]):
        argv = ["train", str(project / "config.yaml"), "--set", culprit, "--out", str(tmp_path / f"r{index}"),
                "--quiet", *sets]
        assert _main_importing("badloss", argv) == 2
        assert capsys.readouterr().err.splitlines() == [said]


FIRST_STEP = ("error: training diverged at step 1: non-finite loss (nan); no checkpoint was written yet; that loss "
              "came before any weight had moved, so no learning rate made it: the model's first outputs or the loss "
              "did (an initialisation, inputs or targets too large for float32, a division by 0 or a log of 0 in a "
              "loss or model of your own): check them on one batch of the data")


@pytest.mark.parametrize(("overrides", "code", "says"), [
    (["strategy.loss=badloss:nan"], 4, FIRST_STEP),
    (["model={name: badloss:NanNet}"], 4, FIRST_STEP),
    (["model={name: badloss:Flat}"], 3,
     "error: model 'badloss:Flat' returns shape (N,); for 2 classes (upper, lower, read as indices 0..1) loss 'cross_entropy' takes "
     "(N, 2), one score per class (drop a final .squeeze(), give the last layer one output per class)"),
], ids=["nan-loss", "nan-model", "flat-model"])
def test_a_first_step_that_can_only_fail_names_the_users_code_not_the_lr(project, tmp_path, capsys, overrides,
                                                                         code, says):
    """A loss NaN on finite outputs was 'training diverged at step 1 ... try a lower learning rate' (no weight had
    moved); a (N,) classifier output was 'expects (N, 32) outputs' (32: the batch size, not the classes)."""
    (project / "badloss.py").write_text(ROW_LOSS)
    argv = ["train", str(project / "config.yaml"), "--out", str(tmp_path / "r"), "--quiet",
            *[word for item in overrides for word in ("--set", item)]]
    assert _main_importing("badloss", argv) == code
    assert capsys.readouterr().err.splitlines() == [says]


def test_a_loss_made_anew_is_refused_even_where_a_penalty_carries_a_graph(project, tmp_path, capsys):
    """torch.tensor(loss.item()) beside an l2 penalty trained on the penalty alone, without a word."""
    (project / "badloss.py").write_text(ROW_LOSS)
    argv = ["train", str(project / "config.yaml"), "--set", "strategy.loss=badloss:anew", "--set",
            "strategy.regularization.l2=0.01", "--out", str(tmp_path / "r"), "--quiet"]
    assert _main_importing("badloss", argv) == 2
    assert "returned a tensor with no graph back to the model's outputs" in capsys.readouterr().err


def test_a_loss_without_a_graph_trains_where_the_penalty_carries_one(project, tmp_path, capsys):
    """backward() takes the total: a data loss of 0 made anew (pred.new_zeros(())) with an l2 penalty still trains
    the penalised weights (as before the graph check, which looked at the data loss alone)."""
    (project / "badloss.py").write_text(ROW_LOSS)
    argv = ["train", str(project / "config.yaml"), "--set", "strategy.loss=badloss:zero_on_one", "--set",
            "strategy.regularization.l2=0.0001", "--set", "strategy.epochs=1", "--out", str(tmp_path / "r"), "--quiet"]
    assert _main_importing("badloss", argv) == 0, capsys.readouterr().err


def test_a_loss_that_raises_while_training_is_named_by_its_file_and_line(project, tmp_path, capsys, monkeypatch):
    (project / "badloss.py").write_text(ROW_LOSS)
    monkeypatch.chdir(project)
    argv = ["train", "config.yaml", "--set", "strategy.loss=badloss:raises", "--out", str(tmp_path / "r"), "--quiet"]
    assert _main_importing("badloss", argv) == 4
    line = 1 + ROW_LOSS.splitlines().index("        raise RuntimeError('oops in loss')")
    assert capsys.readouterr().err == (f"error: RuntimeError: oops in loss (at badloss.py:{line}; rerun with --debug "
                                       "for the traceback)\n")


def test_a_loss_factory_missing_its_options_is_told_which_not_called_a_plain_function(project, tmp_path, capsys):
    (project / "lossfactory.py").write_text("from trainlab.losses.regression import MSELoss\n\n\n"
                                            "def make(alpha, beta):\n    return MSELoss()\n")
    argv = ["train", str(project / "config.yaml"), "--set", "strategy.loss=lossfactory:make",
            "--out", str(tmp_path / "run"), "--quiet"]
    assert _main_importing("lossfactory", argv) == 2
    err = capsys.readouterr().err
    assert "'alpha'" in err and "plain function" not in err, err
