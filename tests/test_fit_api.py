"""trainlab.fit as a Keras or torch user calls it: what a sweep of the Python API found (callbacks=None,
mid-epoch validations left out of the result and the records, class names in the shapes sklearn gives
them, fixes that named config keys fit has no way to set, component objects, the code opt-in, 1-D x, an
empty records folder left by a failure, and the arguments Keras habits pass)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import trainlab
from trainlab.errors import ConfigError, DataError
from trainlab.losses.base import Loss, reduce

BASE = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05}, "batch_size": 30, "epochs": 2}


def _blobs(n: int = 90, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 rows of 2 features around one centre per class, labels 0..classes-1 cycling."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(scale=3.0, size=(classes, 2))
    return (centres[y] + rng.normal(size=(n, 2))).astype(np.float32), y


def _linear(inputs: int = 2, outputs: int = 3, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(inputs, outputs)


def test_callbacks_none_means_no_callbacks_as_in_keras():
    x, y = _blobs()
    result = trainlab.fit(_linear(), (x, y), BASE, callbacks=None)  # was: 'NoneType' object is not iterable
    reference = trainlab.fit(_linear(), (x, y), BASE)
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in reference.history]


class _Validations(trainlab.Callback):
    """Every validation record the loop hands to ``on_validation_end`` (mid-epoch ones too)."""

    def __init__(self):
        self.records = []

    def on_validation_end(self, view, record):
        self.records.append(dict(record))


def test_mid_epoch_validations_are_returned_and_written_ordered_by_step(tmp_path):
    """eval_every_n_steps validated every 2 steps, but FitResult and metrics.jsonl held epoch records only."""
    x, y = _blobs()  # 90 rows at batch_size 30: 3 steps an epoch
    seen = _Validations()
    result = trainlab.fit(_linear(), (x, y), {**BASE, "eval_every_n_steps": 2}, val=(x[:30], y[:30]),
                          out=tmp_path / "fit", callbacks=[seen])
    # step 2 (epoch 1) and step 4 (epoch 2) are inside an epoch; steps 3 and 6 end one (the epoch record)
    assert [r["step"] for r in result.step_records] == [2, 4]
    assert all(r["scope"] == "step" and "val_loss" in r and "val_accuracy" in r for r in result.step_records)
    assert result.step_records == [r for r in seen.records if r.get("scope") == "step"]
    lines = [json.loads(line) for line in (tmp_path / "fit" / "metrics.jsonl").read_text().splitlines()]
    # docs/records.md: ordered by step, a step record before the epoch record of the same step
    assert [(r["step"], r.get("scope", "epoch")) for r in lines] == [(2, "step"), (3, "epoch"), (4, "step"),
                                                                     (6, "epoch")]
    assert [r for r in lines if r.get("scope") == "step"] == json.loads(json.dumps(result.step_records))
    plain = trainlab.fit(_linear(), (x, y), BASE, val=(x[:30], y[:30]))
    assert plain.step_records == []


def test_metrics_file_records_order_steps_epochs_events_and_null_non_finite_values():
    from trainlab.records import metrics_file_records

    history = [{"epoch": 1, "step": 3, "train_loss": float("nan")}]
    events = [{"event": "divergence", "step": 3}]
    steps = [{"scope": "step", "step": 3, "val_loss": float("inf")}, {"scope": "step", "step": 1}]
    assert metrics_file_records(history, events, steps) == [
        {"scope": "step", "step": 1}, {"scope": "step", "step": 3, "val_loss": None},
        {"epoch": 1, "step": 3, "train_loss": None}, {"event": "divergence", "step": 3}]


def test_class_names_without_task_make_a_classification_task_as_a_config_run_does():
    """Labels 1..K with K names were inferred as regression (cross_entropy refused), though fit's docstring
    promised them; K names for labels 1..K read as LabelEncoder reads them: the same run as labels 0..K-1."""
    x, y = _blobs()
    names = ["cat", "dog", "owl"]
    from_one = trainlab.fit(_linear(), (x, y + 1), BASE, val=(x, y + 1), class_names=names)
    from_zero = trainlab.fit(_linear(), (x, y), BASE, val=(x, y), class_names=names)
    assert [r["train_loss"] for r in from_one.history] == [r["train_loss"] for r in from_zero.history]
    assert from_one.summary["val"] == from_zero.summary["val"] and "accuracy" in from_one.summary["val"]
    # two names: a binary task (bce, one logit), as a config run names two classes; labels 1/2 as 0/1
    binary = {**BASE, "loss": "bce"}
    two = trainlab.fit(_linear(outputs=1), (x, y % 2 + 1), binary, val=(x, y % 2 + 1), class_names=["no", "yes"])
    zero_one = trainlab.fit(_linear(outputs=1), (x, y % 2), binary, val=(x, y % 2), task="binary")
    assert two.summary["val"] == zero_one.summary["val"] and "accuracy" in two.summary["val"]
    with pytest.raises(ConfigError, match=re.escape("class_names name classes, but task='regression' has none")):
        trainlab.fit(_linear(outputs=1), (x, x[:, 0]), {**BASE, "loss": "mse"}, task="regression", class_names=["a"])
    with pytest.raises(ConfigError, match=re.escape("class_names name classes, but the training targets hold 0.5, "
                                                    "which is no class label")):
        trainlab.fit(_linear(outputs=1), (x, y + 0.5), {**BASE, "loss": "mse"}, class_names=["a"])


def test_labels_without_a_0_are_classes_as_the_readme_says():
    """The README said 1..K labels train as classes; only -1/+1 does by itself: 1..K is inferred as regression
    whatever the loss (the rule reads y alone), refused with the fix; task= makes them classes named 1..K."""
    x, y = _blobs()
    with pytest.raises(DataError, match=re.escape("cross_entropy is a single-label classification loss but the "
                                                  "data is a regression task")) as refused:
        trainlab.fit(_linear(), (x, y + 1), BASE)
    assert "set task='multiclass'" in str(refused.value)
    assert trainlab.fit(_linear(), (x, y + 1), BASE, task="multiclass").class_names == ["1", "2", "3"]
    signs = np.where(y % 2 == 0, -1, 1)
    assert trainlab.fit(_linear(outputs=1), (x, signs), {**BASE, "loss": "bce"}).class_names == ["-1", "1"]


FROM_ARRAYS = """
import numpy as np

from trainlab.data import RawData


def arrays(path, class_names=None):
    archive = np.load(path)
    return RawData(archive["x"], archive["y"], class_names=class_names)
"""


@pytest.mark.parametrize(("labels", "names"), [
    ("from one", ["cat", "dog", "owl"]), ("from zero", ["cat", "dog", "owl"]), ("from one", ["no", "yes"]),
    ("from zero", ["no", "yes"]), ("from zero", ["cat", "dog", "owl", "emu"])])
def test_class_names_without_task_make_the_task_and_classes_a_config_run_makes(tmp_path, monkeypatch, labels,
                                                                               names):
    """fit's class_names and a config run's data.class_names (a user source over the same arrays) give the
    same task, classes and training targets (the rule is the data layer's named_classes_task)."""
    import sys

    from trainlab import api
    from trainlab.config import DataConfig
    from trainlab.data import load_dataset

    x, y = _blobs(classes=min(len(names), 3))
    y = y + 1 if labels == "from one" else y
    built, read = [], api.fit_dataset

    def spied(*args):  # the Dataset fit trains on
        built.append(read(*args))
        return built[-1]

    monkeypatch.setattr(api, "fit_dataset", spied)
    trainlab.fit(_linear(outputs=1 if len(names) == 2 else len(names)), (x, y),
                 {**BASE, "epochs": 1, "loss": "bce" if len(names) == 2 else "cross_entropy"}, class_names=names)
    (tmp_path / "fromarrays_fit.py").write_text(FROM_ARRAYS)
    np.savez(tmp_path / "arrays.npz", x=x, y=y)
    monkeypatch.chdir(tmp_path)  # the working directory's modules are the user's own code
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        config = load_dataset(DataConfig(source="fromarrays_fit:arrays", path=str(tmp_path / "arrays.npz"),
                                         class_names=names, val_fraction=0.0, test_fraction=0.0))
    finally:
        sys.modules.pop("fromarrays_fit", None)
    fit = built[0]
    assert (fit.task, fit.num_classes, fit.class_names) == (config.task, config.num_classes, config.class_names)
    assert fit.task == ("binary" if len(names) == 2 else "multiclass") and config.class_names == names
    assert torch.equal(fit.train.y, config.train.y)


def test_class_names_take_arrays_an_index_and_tuples_and_refuse_a_name_twice():
    pandas = pytest.importorskip("pandas")
    x, y = _blobs()
    encoder_classes = np.array(["cat", "dog", "owl"])  # what LabelEncoder().fit(...).classes_ holds
    reference = trainlab.fit(_linear(), (x, y), BASE, class_names=["cat", "dog", "owl"])
    for given in (encoder_classes, pandas.Index(encoder_classes), tuple(encoder_classes), iter(encoder_classes)):
        result = trainlab.fit(_linear(), (x, y), BASE, class_names=given)
        assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in reference.history]
    with pytest.raises(DataError, match=re.escape("the class names (class_names) hold 'cat' twice; give each class "
                                                  "one name")):  # read_class_labels', as for a config run
        trainlab.fit(_linear(), (x, y), BASE, class_names=["cat", "dog", "cat"])
    cases = [({"cat", "dog", "owl"}, "(a set has no order: give the names in class-index order)"),
             (np.array([0, 1, 2]), "class_names must be a list of strings, one per class; got array([0, 1, 2])")]
    for given, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            trainlab.fit(_linear(), (x, y), BASE, class_names=given)


def test_fixes_for_integer_inputs_and_raw_targets_name_what_a_fit_caller_does(capsys):
    """fit said "set data.standardize: true" and "set data.standardize_target: true", keys fit does not have."""
    x, y = _blobs()
    with pytest.raises(DataError) as raised:
        trainlab.fit(_linear(), ((x * 10).astype(np.int64), y), BASE)
    assert "to read them as numbers pass float32 x" in str(raised.value) and "data." not in str(raised.value)
    capsys.readouterr()
    targets = 1000.0 + 200.0 * x[:, 0]
    trainlab.fit(_linear(outputs=1), (x, targets), {**BASE, "loss": "mse", "epochs": 1})
    err = capsys.readouterr().err
    assert "the regression targets are large" in err and "standardise y yourself before fit" in err
    # a DataFrame y names the column as its columns do (it said "column 2 of 3" for column 'b')
    import pandas as pd

    frame = pd.DataFrame({"a": x[:, 0], "b": 1000.0 + 200.0 * x[:, 1], "c": x[:, 0] - x[:, 1]})
    trainlab.fit(_linear(outputs=3), (x, frame), {**BASE, "loss": "mse", "epochs": 1})
    assert "the regression targets are large (column 'b', 2 of 3: " in capsys.readouterr().err
    assert "data.standardize_target" not in err
    # following it: standardised targets train without the warning
    trainlab.fit(_linear(outputs=1), (x, (targets - targets.mean()) / targets.std()), {**BASE, "loss": "mse",
                                                                                      "epochs": 1})
    assert "regression targets" not in capsys.readouterr().err


def test_one_dimensional_x_is_told_to_reshape():
    x, y = _blobs()
    with pytest.raises(DataError) as raised:
        trainlab.fit(_linear(inputs=1), (x[:, 0], y), BASE)
    assert str(raised.value).endswith("; 1-D x: pass x.reshape(-1, 1) for one feature"), str(raised.value)
    assert len(trainlab.fit(_linear(inputs=1), (x[:, 0].reshape(-1, 1), y), BASE).history) == 2  # the fix works
    with pytest.raises(DataError) as raised:  # a 2-D x that fails is not told so
        trainlab.fit(_linear(inputs=3), (x, y), BASE)
    assert "1-D x" not in str(raised.value)


class UserQuartic(Loss):
    """mean((pred - target)^4): a loss of the user's own module (this one, tests.test_fit_api)."""

    target_kind = "continuous"

    def forward(self, pred, target, weight=None):
        return reduce((pred - target) ** 4, self.reduction, weight)


def test_component_objects_are_told_the_name_or_reference_fit_takes():
    x, y = _blobs()
    cases = [
        ({"loss": torch.nn.MSELoss()}, "strategy.loss is an instance of MSELoss; fit builds the loss itself", ", e.g. 'mse'"),
        ({"loss": torch.nn.CrossEntropyLoss}, "strategy.loss is the class CrossEntropyLoss;", ", e.g. 'cross_entropy'"),
        ({"optimizer": torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)},
         "strategy.optimizer is an instance of SGD; fit builds the optimizer itself (over the model's parameters)",
         ", e.g. 'sgd'"),
        ({"optimizer": {"name": torch.optim.Adam, "lr": 0.1}}, "strategy.optimizer.name is the class Adam",
         ", e.g. 'adam'"),
        ({"loss": UserQuartic()}, "strategy.loss is an instance of UserQuartic",
         f", e.g. '{UserQuartic.__module__}:UserQuartic'"),
    ]
    for changed, start, suggestion in cases:
        with pytest.raises(ConfigError) as raised:
            trainlab.fit(_linear(), (x, y), {**BASE, **changed})
        message = str(raised.value)
        assert message.startswith(start) and message.endswith(suggestion), message
        assert "a registered name, a {'name': ..., **options} dict or a 'module:attr' string" in message
    # the suggested reference is one fit takes: the user's Loss subclass trains
    regression = {**BASE, "loss": f"{UserQuartic.__module__}:UserQuartic"}
    assert len(trainlab.fit(_linear(outputs=1), (x, x[:, 0]), regression, task="regression").history) == 2


def test_a_failed_fit_leaves_no_records_folder_it_created(tmp_path):
    """fit created out (and its parents) before the data checks, and a failure left them empty."""
    x, y = _blobs()
    out = tmp_path / "new" / "records"
    with pytest.raises(DataError, match="x has 90 rows but y has 89"):
        trainlab.fit(_linear(), (x, y[:-1]), BASE, out=out)
    assert not (tmp_path / "new").exists()

    class Boom(trainlab.Callback):
        def on_step_end(self, view, loss):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainlab.fit(_linear(), (x, y), BASE, out=out, callbacks=[Boom()])
    assert not (tmp_path / "new").exists()
    given = tmp_path / "given"
    given.mkdir()  # a folder the caller made is theirs: it stays
    with pytest.raises(DataError):
        trainlab.fit(_linear(), (x, y[:-1]), BASE, out=given)
    assert given.is_dir()
    trainlab.fit(_linear(), (x, y), BASE, out=out)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "model.safetensors", "strategy.yaml",
                                                     "summary.json"]


def test_a_failed_fit_never_removes_a_folder_that_was_there_before(tmp_path, monkeypatch):
    """out='a/../E/new' with E made by the caller and a missing: a list of the path's missing levels took E
    for missing (its spelling a/../E does not exist yet) and removed it with the folders fit made."""
    x, y = _blobs()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "E").mkdir()
    with pytest.raises(DataError):
        trainlab.fit(_linear(), (x, y[:-1]), BASE, out="a/../E/new")
    assert (tmp_path / "E").is_dir() and not (tmp_path / "E" / "new").exists() and not (tmp_path / "a").exists()


class _Items(torch.utils.data.Dataset):
    """A map-style dataset over a list of items, as they are."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _Short(torch.utils.data.Dataset):
    """len() says 20, but only 10 items exist."""

    def __len__(self):
        return 20

    def __getitem__(self, i):
        return torch.zeros(2), [0, 1][i % 2] if i < 10 else [][i]


def test_keras_and_torch_habits_are_told_what_fit_takes():
    x, y = _blobs()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)))
    cases = [
        (dict(train=(x, y, np.ones(90))), "train is a tuple of 3 items; give (x, y) (fit takes no sample weights)"),
        (dict(val=(x,)), "val is a tuple of 1 item; give (x, y)"),
        (dict(val=0.2), "val is the number 0.2; fit takes val data as (x, y) arrays or a Dataset, not a fraction; "
                        "to hold out a fraction, split first, e.g. x_train, x_val, y_train, y_val = "
                        "sklearn.model_selection.train_test_split(x, y, test_size=0.2)"),
        (dict(train=loader), "train is a DataLoader; pass loader.dataset"),
        (dict(val=loader), "val is a DataLoader; pass loader.dataset"),
        (dict(train=_Short()), "train dataset: item 10 raised IndexError (list index out of range), though its "
                               "len() is 20; __len__ must count the items __getitem__ gives"),
        (dict(train=torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y), torch.tensor(y))),
         "train dataset items must be (x, y) pairs; item 0 is a tuple of 3 items"),
        (dict(train=_Items([("some text", 0)] * 4)), "x of item 0 is a str; each must be a tensor, an array or a number "
                                             "(encode text or categories as numbers first)"),
        (dict(train=_Items([([1.0, 2.0], "cat")] * 4)), "(encode class names as 0..K-1)"),
    ]
    for changed, message in cases:
        with pytest.raises(DataError, match=re.escape(message)):
            trainlab.fit(_linear(), **{"train": (x, y), "strategy": BASE, **changed})
    # the fix each names works
    assert len(trainlab.fit(_linear(), loader.dataset, BASE).history) == 2


def test_empty_metrics_list_records_the_loss_only_as_in_keras():
    """metrics=[] (Keras: no metrics besides the loss) gave the task's default metrics."""
    x, y = _blobs()
    result = trainlab.fit(_linear(), (x, y), BASE, val=(x[:30], y[:30]), metrics=[])
    assert sorted(k for k in result.history[-1] if k.startswith("val_")) == ["val_loss"]
    assert sorted(k for k in result.summary["val"]) == ["loss"]
    defaults = trainlab.fit(_linear(), (x, y), BASE, val=(x[:30], y[:30]))
    assert "val_accuracy" in defaults.history[-1]


def test_a_diverged_fit_says_what_to_try_in_fits_words():
    """The config run's advice names 'trainlab lr-find' and strategy.clip_grad_norm; fit's names its own."""
    from trainlab.errors import TrainingError

    x, _ = _blobs(200)
    targets = (x * 1000).sum(axis=1, keepdims=True).astype(np.float32)  # std ~1700: far from unit scale
    with pytest.raises(TrainingError) as raised:
        trainlab.fit(_linear(outputs=1), (x * 10, targets), {**BASE, "loss": "mse",
                                                             "optimizer": {"name": "sgd", "lr": 0.5}})
    message = str(raised.value)
    assert message.startswith("training diverged at step")
    assert ("; try a lower learning rate (lr: 'auto' in the strategy runs an LR range test) or gradient clipping "
            "(clip_grad_norm: 1.0 in the strategy); for the targets: standardise y yourself before fit") in message
    assert "trainlab lr-find" not in message and "strategy.clip_grad_norm" not in message
    x, y = _blobs()
    with pytest.raises(TrainingError) as raised:  # classification: no word of targets
        trainlab.fit(_linear(), (x * 1e15, y), {**BASE, "optimizer": {"name": "sgd", "lr": 1e30}})
    assert "for the targets" not in str(raised.value)


def test_a_diverged_fit_names_the_cause_in_the_data_it_sees():
    """Targets near unit scale (std ~2) get no advice to standardise them; a feature far from it (mean 5,
    std 3, unstandardised) is named instead, by its column."""
    from trainlab.errors import TrainingError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)).astype(np.float32)
    x[:, 2] = 5 + 3 * x[:, 2]
    y = (x @ np.array([1.0, -0.5, 0.3]) - 1.2 + rng.normal(size=500)).astype(np.float32)
    strategy = {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": "full", "epochs": 200}
    with pytest.raises(TrainingError) as raised:
        trainlab.fit(torch.nn.Linear(3, 1), (x, y), strategy)
    message = str(raised.value)
    assert "for the targets" not in message
    assert "; the features are far from unit scale (column 2, counting from 0: mean 5" in message
    assert message.endswith("standardise x yourself before fit, per column ((x - x.mean(0)) / x.std(0) with the "
                            "training rows' mean and std), and the rows you predict on alike")
    x[:, 2] = (x[:, 2] - x[:, 2].mean()) / x[:, 2].std()
    with pytest.raises(TrainingError) as raised:  # unit-scale data: the lr advice alone
        trainlab.fit(torch.nn.Linear(3, 1), (x, y), {**strategy, "optimizer": {"name": "sgd", "lr": 10.0}})
    assert str(raised.value).endswith("or gradient clipping (clip_grad_norm: 1.0 in the strategy)")


def test_fit_out_records_which_label_each_output_stands_for_as_a_config_run_does(tmp_path):
    """Labels 10..100: the model's output k is label class_names[k]; the weights alone could not say which."""
    import json

    x, y = _blobs(100, classes=10)
    labels = (y + 1) * 10
    result = trainlab.fit(_linear(outputs=10), (x, labels), BASE, out=tmp_path / "gaps", task="multiclass")
    assert result.class_names == [str(v) for v in range(10, 101, 10)]
    assert json.loads((tmp_path / "gaps/labels.json").read_text()) == {"task": "multiclass",
                                                                     "class_names": result.class_names}
    # overwritten by a fit whose labels are the indices 0..K-1: no names, and no stale labels.json
    result = trainlab.fit(_linear(outputs=10), (x, y), BASE, out=tmp_path / "gaps", overwrite=True)
    assert result.class_names is None and not (tmp_path / "gaps/labels.json").exists()


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_an_empty_split_given_to_fit_is_one_data_error_naming_it(split):
    """An empty val was taken without a word: nothing validated, and early stopping then asked to 'pass val='."""
    from trainlab.errors import DataError

    x, y = _blobs()
    splits = {"train": (x, y), "val": (x, y), "test": (x, y), split: (x[:0], y[:0])}
    with pytest.raises(DataError) as raised:
        trainlab.fit(_linear(), splits["train"], BASE, val=splits["val"], test=splits["test"])
    expected = "train is empty (0 rows)" if split == "train" else f"{split} is empty (0 rows): pass rows, or leave {split}= out"
    assert str(raised.value) == expected


def test_a_few_stray_labels_among_class_indices_are_named_under_a_class_index_loss():
    """One -1 (or a typed 7, or 2.5) among labels 0..2 makes the targets a regression by the inference rule;
    cross_entropy was refused with the rule's whole text, never naming the value that broke it."""
    x, y = _blobs()
    cases = [(-1, "labels 0..2 and 2 rows of -1; fix or drop those rows (-1 often marks unlabeled ones)"),
             (7, "labels 0..2 and 2 rows of 7; fix or drop those rows, or set task='multiclass' to read every "
                 "whole number as a class"),
             (2.5, "labels 0..2 and 2 rows of 2.5; fix or drop those rows"),
             (-3, "labels 0..2 and 2 rows of -3; fix or drop those rows"),  # -1's meaning for -1 alone
             (1234567, "labels 0..2 and 2 rows of 1234567; fix or drop those rows")]  # as written, not 1.23457e+06
    for stray, said in cases:
        labels = y.astype(np.float64)
        labels[[5, 40]] = stray
        with pytest.raises(DataError) as caught:
            trainlab.fit(_linear(), (x, labels), BASE)
        assert str(caught.value) == ("cross_entropy trains on class labels 0..K-1, but the targets are read as a "
                                     f"regression: {said}")
    # no typos: more than 5% of the rows past 0..2 (9 of 90 at 7), or counts whose tail thins out (Poisson(3):
    # a 9 past 0..6, whose 5 and 6 are rare too) keep the inference rule's explanation
    many = y.astype(np.float64)
    many[:9] = 7
    counts = np.random.default_rng(3).poisson(3, 90).astype(np.float64)
    assert 9 in counts and 7 not in counts and 8 not in counts  # 0..6 and a 9: a gap, as a typed 7 makes
    for target in (many, counts):
        with pytest.raises(DataError, match="cross_entropy is a single-label classification loss but the data is a "
                                            "regression task"):
            trainlab.fit(_linear(outputs=12), (x, target), BASE)


def test_a_model_on_the_meta_device_is_told_to_be_materialised():
    """torch's 'Cannot copy out of meta tensor; no data!' (NotImplementedError) escaped from the device move."""
    x, y = _blobs()
    with pytest.raises(ConfigError, match=r"^the model's weight is on the meta device \(a shape without values\); "
                                          r"materialise the model first: model.to_empty\(device='cpu'\)"):
        trainlab.fit(torch.nn.Linear(2, 3, device="meta"), (x, y), BASE)


def test_a_lazy_module_is_told_to_take_its_shape_first_and_then_trains():
    """nn.LazyLinear's uninitialised weight escaped as torch's ValueError from fit's first check of the weights."""
    x, y = _blobs()
    model = torch.nn.Sequential(torch.nn.LazyLinear(3))
    with pytest.raises(ConfigError, match=r"^the model's 0.weight is not initialised yet \(LazyLinear: a lazy module "
                                          r"takes its shape from its first input\); run one batch through the model"):
        trainlab.fit(model, (x, y), BASE)
    with torch.no_grad():
        model(torch.as_tensor(x[:2], dtype=torch.float32))
    assert trainlab.fit(model, (x, y), BASE).history


def test_fit_and_evaluate_run_errors_name_their_own_arguments():
    """fit(seed='1') was told of "config key 'seed'"; evaluate_run(split='tst') of '--split'."""
    x, y = _blobs()
    with pytest.raises(ConfigError, match=r"^fit's seed: must be an integer in decimal digits"):
        trainlab.fit(_linear(), (x, y), BASE, seed="1")
    from trainlab.run_evaluation import evaluate_run

    with pytest.raises(ConfigError, match=r"^split must be one of train, val, test \(eval's --split\); got 'tst'"):
        evaluate_run(__file__, split="tst")


def test_gradients_the_caller_left_on_the_model_are_not_part_of_the_first_step():
    """One full-batch SGD step on MSE moves w by -lr * 2/N X^T r (r = Xw + b - y) whatever .grad held before."""
    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    model = torch.nn.Linear(3, 1)
    w0, b0 = model.weight.detach().numpy().copy(), model.bias.detach().numpy().copy()
    torch.nn.functional.mse_loss(model(x), 100 * y).backward()  # a notebook's probe, left on .grad
    trainlab.fit(model, train=(x, y), strategy={"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1},
                                                "batch_size": "full", "max_steps": 1, "epochs": 1},
                 seed=0, task="regression", metrics=[])
    xn, yn = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    residual = xn @ w0.T + b0 - yn
    np.testing.assert_allclose(model.weight.detach().numpy(), w0 - 0.1 * 2 / 16 * residual.T @ xn, atol=1e-6)
    np.testing.assert_allclose(model.bias.detach().numpy(), b0 - 0.1 * 2 / 16 * residual.sum(0), atol=1e-6)
