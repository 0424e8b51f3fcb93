"""Where the parts meet: weight decay's one home, restore-best with schedule-free, lr: auto resolved,
L-BFGS with clipping, the Python API with a user callback, runs scoped to themselves."""

from __future__ import annotations

import copy
import json
import random
import re

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import trainlab
from tests.conftest import DIGITS_MLP, LINREG, least_squares
from trainlab.builders import fit_config, run_scope
from trainlab.cli import main
from trainlab.config import validate
from trainlab.errors import ConfigError

SLOPE, INTERCEPT = least_squares()


def _linreg(optimizer: dict, epochs: int, regularization: dict | None = None) -> dict:
    config = copy.deepcopy(LINREG)
    config["strategy"].update(optimizer=optimizer, epochs=epochs)
    if regularization:
        config["strategy"]["regularization"] = regularization
    return config


@pytest.mark.parametrize("optimizer,where", [
    ({"name": "schedule_free_adamw", "lr": 0.5}, "own"),
    ({"name": "schedule_free_adamw", "lr": 0.5}, "regularization"),
    ({"name": "prodigy"}, "own"),
    ({"name": "prodigy"}, "regularization"),
])
def test_decoupled_decay_optimizers_reach_least_squares_with_weight_decay(optimizer, where):
    """Schedule-free decays z with its own step size, Prodigy by lr * d: the loop must not decay on top."""
    wd = 0.1
    spec = {**optimizer, "weight_decay": wd} if where == "own" else optimizer
    config = _linreg(spec, 2000, {"weight_decay": wd} if where == "regularization" else None)
    slope = float(fit_config(validate(config)).model.weight.detach())
    assert abs(slope - SLOPE) < 0.1


def test_regularization_weight_decay_is_the_optimizers_own_decay():
    own = fit_config(validate(_linreg({"name": "adamw", "lr": 0.05, "weight_decay": 0.3}, 300)))
    mapped = fit_config(validate(_linreg({"name": "adamw", "lr": 0.05}, 300, {"weight_decay": 0.3})))
    for a, b in zip(own.model.parameters(), mapped.model.parameters(), strict=True):
        assert torch.equal(a, b)
    group = next(g for g in mapped.step.optimizer.param_groups if g.get("group") == "decay")
    assert group["weight_decay"] == 0.3


@pytest.mark.parametrize("optimizer,message", [
    ({"name": "adamw", "lr": 0.01, "weight_decay": 0.01}, "weight decay is set twice"),
    ({"name": "adam", "lr": 0.01}, "L2 term in the gradient"),
    ({"name": "momentum", "lr": 0.01}, "no home in optimizer 'momentum'"),
])
def test_weight_decay_that_would_double_or_change_meaning_is_refused(write_config, capsys, optimizer, message):
    config = write_config(_linreg(optimizer, 5, {"weight_decay": 0.01}))
    assert main(["train", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_restore_best_with_schedule_free_reports_the_best_epochs_val_loss(write_config, tmp_path):
    config = write_config(DIGITS_MLP, strategy__epochs=12,
                          strategy__optimizer={"name": "schedule_free_adamw", "lr": 0.05},
                          strategy__early_stopping={"monitor": "val_loss", "patience": 3, "restore_best": True})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = min((r for r in records if "val_loss" in r), key=lambda r: r["val_loss"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["val"]["loss"] == pytest.approx(best["val_loss"], abs=1e-6)


def test_lr_auto_is_resolved_in_the_stored_config_and_eval_does_not_rerun_the_finder(write_config, tmp_path,
                                                                                       monkeypatch, capsys):
    config = write_config(DIGITS_MLP, strategy__optimizer={"name": "sgd", "lr": "auto"}, strategy__epochs=1)
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    stored = yaml.safe_load((out / "config.yaml").read_text())
    lr = stored["strategy"]["optimizer"]["lr"]
    assert isinstance(lr, float) and lr > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes"]["lr_auto"] == lr

    import trainlab.step_builders

    def no_finder(*args, **kwargs):
        raise AssertionError("the LR range test ran again")

    monkeypatch.setattr(trainlab.step_builders, "range_test_step", no_finder)
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_lbfgs_runs_clipping_inside_its_closure():
    exact = fit_config(validate(_linreg({"name": "lbfgs", "lr": 1.0}, 20)))
    assert float(exact.model.weight.detach()) == pytest.approx(SLOPE, abs=1e-3)
    config = _linreg({"name": "lbfgs", "lr": 1.0}, 20)
    config["strategy"]["clip_grad_norm"] = 1e-9
    clipped = fit_config(validate(config))
    assert abs(float(clipped.model.weight.detach()) - SLOPE) > 0.1


def test_lbfgs_with_fp16_loss_scaling_is_refused():
    with pytest.raises(ConfigError, match="fp16"):
        config = _linreg({"name": "lbfgs", "lr": 1.0}, 2)
        config["runtime"] = {"precision": "fp16", "device": "cpu"}
        fit_config(validate(config))


class StepLosses(trainlab.Callback):
    """A user callback: sees every step's loss and every epoch's record."""

    def __init__(self):
        self.losses: list[float] = []
        self.records: list[dict] = []

    def on_step_end(self, view, loss):
        self.losses.append(float(loss))

    def on_epoch_end(self, view, record):
        self.records.append(record)


class TwoLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(2, 16)
        self.out = torch.nn.Linear(16, 2)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def test_fit_trains_a_custom_module_on_tensors_with_a_user_callback(tmp_path):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 2, generator=generator)
    y = (x[:, 0] * x[:, 1] > 0).long()  # XOR-like: needs the hidden layer
    callback = StepLosses()
    result = trainlab.fit(TwoLayer(), train=(x[:300], y[:300]), val=(x[300:350], y[300:350]),
                          test=(x[350:], y[350:]), callbacks=[callback], out=tmp_path / "fit",
                          strategy={"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.02},
                                    "batch_size": 30, "epochs": 30})
    assert len(callback.losses) == 30 * 10  # every step's loss
    assert len(callback.records) == len(result.history) == 30
    assert callback.losses[-1] < callback.losses[0]
    assert result.summary["test"]["accuracy"] > 0.85
    assert (tmp_path / "fit" / "model.safetensors").is_file()
    assert len((tmp_path / "fit" / "metrics.jsonl").read_text().splitlines()) == 30
    from trainlab.errors import RunDirError

    with pytest.raises(RunDirError, match=r"holds the records of trainlab.fit, whose model is your own module"):
        trainlab.load_run(tmp_path / "fit")
    reloaded = TwoLayer()
    reloaded.load_state_dict(load_file(tmp_path / "fit" / "model.safetensors"))  # what the message says to do
    torch.testing.assert_close(reloaded(x[350:]), result.model.cpu()(x[350:]))
    # the CLI: plot draws the records; eval and report say what the folder is
    from trainlab.cli import main

    assert main(["plot", str(tmp_path / "fit"), "--metric", "val_accuracy", "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", str(tmp_path / "fit")]) == 2
    assert main(["report", str(tmp_path / "fit"), "-o", str(tmp_path / "r.html")]) == 2
    # resume was told "a 'trainlab train' into it stopped before training started: rerun that same command"
    from trainlab.run_resume import resume

    with pytest.raises(RunDirError, match=r"^cannot resume .*: it holds the records of trainlab.fit, whose model "
                                          r"is your own module, which no config rebuilds; to train from its weights, "
                                          r"load its weights into it with model.load_state_dict\(.*\), then call "
                                          r"trainlab.fit with it: a new run \(.*\), with no strategy init"):
        resume(tmp_path / "fit")


def test_fit_applies_the_strategys_init_and_lora_to_the_users_module():
    """strategy.init and strategy.finetune.lora act on a module given to fit as on one a config builds."""
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    y = (x[:, 0] > 0).long()
    seen = {}

    class FirstWeights(trainlab.Callback):
        def on_train_start(self, view):
            seen["hidden"] = view.model.get_submodule("hidden").weight.detach().to("cpu", copy=True)  # the run may be on a GPU

    base = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 16, "epochs": 1}
    trainlab.fit(TwoLayer(), train=(x, y), strategy={**base, "init": "zeros"}, callbacks=[FirstWeights()])
    assert torch.count_nonzero(seen["hidden"]) == 0  # zeros before the first step
    model = TwoLayer()
    torch.nn.init.constant_(model.hidden.weight, 0.5)
    trainlab.fit(model, train=(x, y), strategy={**base, "init": {"name": "orthogonal"}}, callbacks=[FirstWeights()])
    w = seen["hidden"]  # (16, 2): orthonormal columns
    torch.testing.assert_close(w.T @ w, torch.eye(2), atol=1e-5, rtol=0)
    class Trainable(trainlab.Callback):
        def on_train_start(self, view):
            seen["trainable"] = {name for name, p in view.model.named_parameters() if p.requires_grad}

    model = TwoLayer()
    keys = set(model.state_dict())
    lora = trainlab.fit(model, train=(x, y), callbacks=[Trainable()], strategy={
        **base, "finetune": {"lora": {"rank": 2, "target_modules": ["hidden"]}}})
    trainable = seen["trainable"]  # while training: the adapters and the head
    assert trainable and all("lora_" in name or "out" in name for name in trainable)
    assert not any(name.endswith("hidden.base_layer.weight") for name in trainable)
    # afterwards the user's module again: the adapters merged into its layer, every parameter trainable, so a
    # second LoRA fit of it works (it failed on peft's own layer names) and a plain fit trains all of it
    assert lora.model is model and type(model.hidden) is torch.nn.Linear and set(model.state_dict()) == keys
    assert all(p.requires_grad for p in model.parameters())
    trainlab.fit(model, train=(x, y), strategy={**base, "finetune": {"lora": {"rank": 2, "target_modules": ["hidden"]}}})
    assert type(model.hidden) is torch.nn.Linear


@pytest.mark.parametrize("unfreeze_after_epochs", [None, 1])
def test_fit_with_freeze_gives_the_users_backbone_back_trainable(unfreeze_after_epochs):
    """finetune.freeze froze the user's backbone for good (requires_grad False after fit), though a model
    given to fit must find every parameter as it was; one the user froze stays frozen."""
    torch.manual_seed(0)
    model = TwoLayer()
    model.hidden.bias.requires_grad_(False)  # frozen by the user: not fit's to give back
    before = model.hidden.weight.detach().clone()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    finetune = {"freeze": True, "unfreeze_after_epochs": unfreeze_after_epochs}
    trainlab.fit(model, train=(x, (x[:, 0] > 0).long()), strategy={
        "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16, "epochs": 2,
        "finetune": {k: v for k, v in finetune.items() if v is not None}})
    assert {name: p.requires_grad for name, p in model.named_parameters()} == {
        "hidden.weight": True, "hidden.bias": False, "out.weight": True, "out.bias": True}
    assert torch.equal(model.hidden.weight.cpu(), before) == (unfreeze_after_epochs is None)  # frozen while it trained


class Pair(torch.nn.Module):
    """A model whose forward returns a tuple (as Lightning users' often do)."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 3)

    def forward(self, x):
        return self.layer(x), x


class Dicts(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"x": torch.zeros(2), "y": i % 2}


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter([(torch.zeros(2), 0)])


def test_fit_refuses_bad_inputs_in_one_line_and_reads_labels_as_a_config_run_does(tmp_path):
    from trainlab.errors import DataError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 2)).astype(np.float32)
    y = np.arange(90) % 3
    base = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 30, "epochs": 1}

    def net(outputs=3):
        return torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, outputs))

    cases = [
        (DataError, "train y must hold numbers; got dtype <U1 (class names: encode them as 0..K-1",
         lambda: trainlab.fit(net(), train=(x, np.array(list("abc"))[y]), strategy=base)),
        (DataError, "the model outputs 2 scores per row but the data has 3 classes (labels 0..2)",
         lambda: trainlab.fit(net(2), train=(x[np.argsort(y)], np.sort(y)), strategy=base)),
        (DataError, "val y label 2 at row 2 (counting from 0) is out of range [0, 2) (binary labels are 0 and 1)",
         lambda: trainlab.fit(net(2), train=(x[y < 2], y[y < 2]), val=(x, y), strategy=base)),
        # the sweep's cases: more outputs than classes, a tuple output, val rows of another width, fractional
        # val labels, a Dataset of dicts, an IterableDataset, a loss the task does not suit
        (DataError, "the model outputs 5 scores per row but the data has 3 classes (labels 0..2); give its last "
                    "layer 3 outputs", lambda: trainlab.fit(net(5), train=(x, y), strategy=base)),
        # labels that are not 0..K-1 are named as written, with the indices the outputs stand for
        (DataError, "the model outputs 2 scores per row but the data has 3 classes (10, 20, 30, read as indices 0..2)",
         lambda: trainlab.fit(net(2), train=(x, 10 * y + 10), strategy=base, task="multiclass")),
        (DataError, "returned a tuple; its forward(x) must return one tensor shaped (N, outputs)",
         lambda: trainlab.fit(Pair(), train=(x, y), strategy=base)),
        (DataError, "val x rows are shaped (1,) but train x rows (2,)",
         lambda: trainlab.fit(net(), train=(x, y), val=(x[:, :1], y), strategy=base)),
        (DataError, "val y labels must be integer class indices for a multiclass task; got 0.5",
         lambda: trainlab.fit(net(), train=(x, y), val=(x, y + 0.5), strategy=base)),
        (DataError, "train dataset items must be (x, y) pairs; item 0 is a dict with keys x, y",
         lambda: trainlab.fit(net(), train=Dicts(), strategy=base)),
        (DataError, "train is an IterableDataset; fit takes a map-style Dataset",
         lambda: trainlab.fit(net(), train=Stream(), strategy=base)),
        (DataError, "mse is a regression loss but the data is a multiclass classification task",
         lambda: trainlab.fit(net(), train=(x, y), strategy={**base, "loss": "mse"})),
        (ConfigError, "model 'Linear' has nothing to train: all its parameters are frozen (requires_grad False)",
         lambda: trainlab.fit(torch.nn.Linear(2, 3).requires_grad_(False), train=(x, y), strategy=base)),
        (ConfigError, "each epoch ends on a batch of 1 row (89 training rows at batch_size 4), which the model's "
                      "BatchNorm cannot normalise in training",
         lambda: trainlab.fit(torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3)),
                              train=(x[:89], y[:89]), strategy={**base, "batch_size": 4})),
        (ConfigError, "early_stopping monitors 'val_loss', but the run has no validation split to record it",
         lambda: trainlab.fit(net(), train=(x, y), strategy={**base, "early_stopping": {"monitor": "val_loss"}})),
        (ConfigError, "schedule reduce_on_plateau monitors 'val_loss', but the run has no validation split",
         lambda: trainlab.fit(net(), train=(x, y), strategy={**base, "schedule": "reduce_on_plateau"})),
        (ConfigError, "model must be a torch.nn.Module; got function",
         lambda: trainlab.fit(lambda v: v, train=(x, y), strategy=base)),
        (DataError, "train x has a non-finite value at row 4, column 1 (counting from 0)",
         lambda: trainlab.fit(net(), train=(np.where(np.arange(180).reshape(90, 2) == 9, np.nan, x), y),
                              strategy=base)),
        (DataError, "train x at row 4, column 1 (counting from 0): 1e+39 is beyond float32's range (about ±3.4e38)",
         lambda: trainlab.fit(net(), train=(np.where(np.arange(180).reshape(90, 2) == 9, 1e39, x.astype(float)), y),
                              strategy=base)),
        (DataError, "the training targets hold one class ('5' in all 90 rows); a classifier needs rows",
         lambda: trainlab.fit(net(), train=(x, np.full(90, 5)), strategy=base, task="multiclass")),
        (ConfigError, "task must be one of regression, binary, multiclass, multilabel",
         lambda: trainlab.fit(net(), train=(x, y), strategy=base, task="classes")),
        (ConfigError, "(or left out to infer it); got 'multiclas'; did you mean 'multiclass'?",
         lambda: trainlab.fit(net(), train=(x, y), strategy=base, task="multiclas")),
    ]
    for error, message, call in cases:
        with pytest.raises(error, match=re.escape(message)):
            call()
    # labels numbered from 1 with the task given: 3 classes named by their values; (N, 1) labels are rows
    named = trainlab.fit(net(), train=(x, (y + 1)[:, None]), val=(x, y + 1), strategy=base, task="multiclass")
    assert named.summary["val"]["accuracy"] >= 0.0 and len(named.history) == 1
    # Keras' binary labels: a float (N, 1) column of 0/1 with bce is a binary task, not a regression
    binary = trainlab.fit(net(1), train=(x, (y % 2).astype(np.float32)[:, None]), val=(x, (y % 2)[:, None]),
                          strategy={**base, "loss": "bce"}, callbacks=trainlab.Callback())
    assert "accuracy" in binary.summary["val"] and "mse" not in binary.summary["val"]
    with pytest.raises(ConfigError, match="is a file"):
        (tmp_path / "file").write_text("")
        trainlab.fit(net(), train=(x, y), strategy=base, out=tmp_path / "file")
    trainlab.fit(net(), train=(x, y), strategy=base, out=tmp_path / "records")
    with pytest.raises(ConfigError, match="already holds files; give a new folder, or overwrite=True"):
        trainlab.fit(net(), train=(x, y), strategy=base, out=tmp_path / "records")
    trainlab.fit(net(), train=(x, y), strategy=base, out=tmp_path / "records", overwrite=True)
    with pytest.raises(ConfigError, match="is the working directory"):
        trainlab.fit(net(), train=(x, y), strategy=base, out=".")


def test_fit_class_names_set_the_class_count_and_its_hints_name_fits_arguments():
    from trainlab.errors import DataError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    y = np.arange(60) % 3  # classes 3 and 4 have no training rows
    base = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 30, "epochs": 1}
    five = trainlab.fit(torch.nn.Linear(2, 5), train=(x, y), val=(x[:5], np.array([4, 3, 0, 1, 2])),
                        strategy=base, class_names=list("abcde"))
    assert five.model.cpu()(torch.zeros(1, 2)).shape == (1, 5) and "accuracy" in five.summary["val"]
    cases = [
        (DataError, "give its last layer 3 outputs (or, when classes are missing from the training labels, name "
                    "them all in class_names)", dict(model=torch.nn.Linear(2, 5))),
        (DataError, "the training labels go up to 2 but 2 class names are given (class_names)",
         dict(class_names=["a", "b"])),
        (ConfigError, "class_names must be a list of strings, one per class; got 'abc'", dict(class_names="abc")),
        # labels 1/2 read as a regression target: the hint names fit's task argument, not data.task
        (DataError, "or set task='multiclass' (or binary) if the targets are class labels",
         dict(train=(x, (y % 2 + 1).astype(np.float32)))),
    ]
    for error, message, changed in cases:
        args = {"model": torch.nn.Linear(2, 3), "train": (x, y), "strategy": base, **changed}
        with pytest.raises(error) as raised:
            trainlab.fit(**args)
        assert message in str(raised.value) and "data." not in str(raised.value), str(raised.value)


class _Items(torch.utils.data.Dataset):
    """A map-style dataset whose items ``make(i)`` returns."""

    def __init__(self, make, n=12):
        self.make, self.n = make, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.make(i)


class _NoLen(torch.utils.data.Dataset):
    def __getitem__(self, i):
        return torch.zeros(2), 0


class _Stop(trainlab.Callback):
    def __init__(self):
        self.started = False

    def on_train_start(self, view):
        self.started = True


def test_fit_refuses_odd_datasets_arrays_callbacks_and_folders_before_training(tmp_path):
    """What an exploratory sweep of the API found raising raw NumPy/torch/Python errors, or writing into a
    finished run folder: each is now one trainlab error, raised before any training."""
    from trainlab.errors import DataError, RunDirError

    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(60, 2)), dtype=torch.float32)
    y = torch.arange(60) % 2
    base = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 30, "epochs": 1}
    (tmp_path / "file").write_text("")
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "run.json").write_text("{}")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    cases = [
        (DataError, "train x of item 1 is shaped (3,) but item 0's (2,)",
         dict(train=_Items(lambda i: (torch.zeros(2 + i % 2), i % 2)))),
        (DataError, "train y of item 0 is a str", dict(train=_Items(lambda i: (torch.zeros(2), "cat")))),
        (DataError, "train y of item 0 is a NoneType", dict(train=_Items(lambda i: (torch.zeros(2), None)))),
        (DataError, "train dataset has no len()", dict(train=_NoLen())),
        (DataError, "train x does not make one array (rows of different lengths?)",
         dict(train=([[1.0, 2.0], [3.0], [5.0, 6.0]], [0, 1, 0]))),
        (DataError, "train x is a single number", dict(train=(3.0, 1.0))),
        (DataError, f"train y label {2**63 - 1} at row 5 (counting from 0) would make",
         dict(train=(x, torch.where(torch.arange(60) == 5, 2**63 - 1, y)), task="multiclass")),
        (ConfigError, "callbacks must be trainlab.Callback instances", dict(callbacks=[lambda view: None])),
        (ConfigError, "callback name '_Stop' is used twice", dict(callbacks=[_Stop(), _Stop()])),
        (RunDirError, f"out '{tmp_path / 'file' / 'sub'}': cannot create the folder",
         dict(out=tmp_path / "file" / "sub")),
        (ConfigError, "holds a trainlab run folder; overwrite=True replaces only the records of an earlier fit",
         dict(out=run_folder, overwrite=True)),
        (ConfigError, "holds files that are not fit records ('keep.txt')", dict(out=mine, overwrite=True)),
    ]
    for error, message, given in cases:
        watcher = _Stop()
        arguments = {"train": (x, y), "strategy": base, "callbacks": [watcher], **given}
        with pytest.raises(error, match=re.escape(message)):
            trainlab.fit(torch.nn.Linear(2, 2), **arguments)
        assert not watcher.started, message
    assert sorted(p.name for p in run_folder.iterdir()) == ["run.json"] and (mine / "keep.txt").read_text() == "mine"
    # bf16 and fp16 labels are read as the numbers they hold
    for dtype in (torch.bfloat16, torch.float16):
        result = trainlab.fit(torch.nn.Linear(2, 2), train=(x, y.to(dtype)), val=(x, y), strategy=base)
        assert "accuracy" in result.summary["val"]
    # loss: auto picks bce for binary labels; a model with two outputs is told what auto chose
    with pytest.raises(DataError, match=re.escape("(loss: auto chose 'bce' for these binary targets, which takes 1")):
        trainlab.fit(torch.nn.Linear(2, 2), train=(x, y), strategy={**base, "loss": "auto"})


def test_config_runs_take_a_path_or_a_dict_and_one_override_string(tmp_path):
    from trainlab.config import load_config
    from trainlab.experiment import train

    path = tmp_path / "linreg.yaml"
    short = {**LINREG, "strategy": {**LINREG["strategy"], "epochs": 20}}
    path.write_text(yaml.safe_dump(short))
    assert load_config(path, "strategy.epochs=3").strategy.epochs == 3  # one string: one override, not its letters
    summary, run_dir = train(path, out=tmp_path / "a", quiet=True)
    assert summary["status"] == "finished" and (run_dir / "model.safetensors").exists()
    summary, _ = train(copy.deepcopy(short), out=tmp_path / "b", quiet=True)
    assert summary["status"] == "finished"
    with pytest.raises(ConfigError, match="config must be a trainlab Config, a YAML path or a dict; got int"):
        train(3, out=tmp_path / "c")
    for device, message in (("gpu", "device is 'gpu', not a device (valid: 'auto', 'cpu'"),
                            ("cuda", "device is 'cuda' but no CUDA device is available")):
        if device == "cuda" and torch.cuda.is_available():
            continue
        with pytest.raises(ConfigError, match=re.escape(message)):
            trainlab.load_run(run_dir, device=device)
    assert trainlab.load_run(run_dir, device="auto").model is not None


def test_runs_are_scoped_threads_and_rngs_come_back():
    threads = torch.get_num_threads()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    config = validate({**DIGITS_MLP, "runtime": {"num_threads": 2 if threads != 2 else 1}})
    with run_scope(config):
        assert torch.get_num_threads() == config.runtime.num_threads
    assert torch.get_num_threads() == threads
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def test_two_runs_in_one_process_equal_two_fresh_ones():
    config = validate({**DIGITS_MLP, "strategy": {**DIGITS_MLP["strategy"], "epochs": 1}})
    first = fit_config(config)
    torch.rand(17)  # the caller's RNG use in between must not matter
    second = fit_config(config)
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_early_stopping_takes_the_monitors_direction_when_mode_is_not_given():
    """val_accuracy rising must not look like 'no improvement' (the old default mode was min for any monitor)."""
    from trainlab.config_strategy import EarlyStoppingConfig

    assert EarlyStoppingConfig(monitor="val_accuracy").mode == "max"
    assert EarlyStoppingConfig(monitor="val_r2").mode == "max"
    assert EarlyStoppingConfig().mode == "min" and EarlyStoppingConfig(monitor="val_mae").mode == "min"
    assert EarlyStoppingConfig(monitor="val_accuracy", mode="min").mode == "min"  # given: kept
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    result = trainlab.fit(torch.nn.Linear(2, 2), train=(x, y), val=(x, y),
                          strategy={"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05},
                                    "batch_size": 120, "epochs": 30,
                                    "early_stopping": {"monitor": "val_accuracy", "patience": 3}})
    accuracies = [r["val_accuracy"] for r in result.history]
    assert result.summary["val"]["accuracy"] == max(accuracies)  # restore_best kept the best, not the first


def test_fit_takes_pandas_frames_without_torchs_read_only_array_warning():
    import warnings

    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    labels = pd.Series((frame["a"] > 0).astype(int))
    assert not frame.to_numpy().flags.writeable or not np.asarray(labels).flags.writeable  # pandas' own views
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "NumPy array is not writable" UserWarning would fail here
        result = trainlab.fit(torch.nn.Linear(3, 2), train=(frame, labels),
                              strategy={"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05},
                                        "batch_size": 16, "epochs": 5})
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fit_names_class_names_when_the_validation_labels_hold_a_class_training_lacks():
    """Classes are inferred from the training labels (0..8 here): a validation label 9 is a class training
    lacks, and the error names fit's own argument that keeps it, class_names."""
    from trainlab.errors import DataError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(36, 4)).astype(np.float32)
    y = np.arange(36) % 9
    with pytest.raises(DataError, match=r"training data has no row of class 9.*set class_names"):
        trainlab.fit(torch.nn.Linear(4, 10), (x, y), {"optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1},
                     val=(x[:4], np.array([0, 1, 9, 2])))
