"""What the errors about the user's own code say (a file an installed package shadows, a ``__main__:`` reference,
a metric given as a function, text features, a callback named like a built-in one), fit's strategy YAML
searching its own folder, and docs/extending.md's optimizer, initializer, metric and callback examples run as
written and checked against NumPy and scikit-learn."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import balanced_accuracy_score

import trainlab
from trainlab.cli import main
from trainlab.data.npz_file import npz
from trainlab.errors import ConfigError, DataError

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
SITE_PACKAGES = Path(yaml.__file__).resolve().parent  # pyyaml: an installed package trainlab imports anyway


def _config(model: str = "mlp", source: str = "iris") -> dict:
    return {"name": "msg", "seed": 0, "data": {"source": source}, "model": {"name": model},
            "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                         "epochs": 1},
            "output": {"progress": "off"}, "runtime": {"num_threads": 1}}


def _one_error_line(argv: list[str], capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# --------------------------------------------------------------------------- an installed package wins


@pytest.fixture
def shadowed(tmp_path, monkeypatch):
    """clash/yaml.py beside clash/c.yaml, whose model is 'yaml:make_net'; the working directory above clash/."""
    folder = tmp_path / "clash"
    folder.mkdir()
    (folder / "yaml.py").write_text("def make_net(input_shape, output_dim):\n    raise AssertionError('never run')\n")
    (folder / "c.yaml").write_text(yaml.safe_dump(_config(model="yaml:make_net")))
    monkeypatch.chdir(tmp_path)
    return folder


def test_a_file_an_installed_package_shadows_is_named_in_the_refusal(shadowed, tmp_path, capsys):
    err = _one_error_line(["train", "clash/c.yaml", "--out", str(tmp_path / "r"), "--quiet"], capsys)
    assert err == (f"error: config references 'yaml:make_net', but module 'yaml' is the installed package "
                   f"({SITE_PACKAGES}), not clash/yaml.py next to the config: an installed package of the same "
                   "name wins; rename your file\n")


def test_a_file_an_installed_package_shadows_is_named_with_allow_code(shadowed, tmp_path, capsys):
    err = _one_error_line(["train", "clash/c.yaml", "--out", str(tmp_path / "r"), "--quiet", "--allow-code"], capsys)
    assert err.startswith("error: module 'yaml' has no attribute 'make_net' (from model 'yaml:make_net'): it is the "
                          f"installed package ({SITE_PACKAGES}), not clash/yaml.py next to the config")
    assert err.endswith("an installed package of the same name wins; rename your file\n")


def test_a_standard_library_package_and_a_file_in_the_working_directory_are_named(tmp_path, monkeypatch, capsys):
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "__init__.py").write_text("")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config(source="json:rows")))
    monkeypatch.chdir(tmp_path)
    err = _one_error_line(["train", "c.yaml", "--out", str(tmp_path / "r"), "--quiet"], capsys)
    assert "module 'json' is the standard library's module (" in err
    assert err.endswith("), not json/ in the working directory: a standard-library module of the same name wins; "
                        "rename your package folder\n")


def test_a_missing_attribute_of_the_users_own_module_says_nothing_of_shadowing(tmp_path, monkeypatch, capsys):
    (tmp_path / "ownmodels_ucm.py").write_text("X = 1\n")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config(model="ownmodels_ucm:make_net")))
    monkeypatch.chdir(tmp_path)
    try:
        err = _one_error_line(["train", "c.yaml", "--out", str(tmp_path / "r"), "--quiet"], capsys)
    finally:
        sys.modules.pop("ownmodels_ucm", None)
    assert err == ("error: module 'ownmodels_ucm' has no attribute 'make_net' (from model "
                   "'ownmodels_ucm:make_net')\n")


# --------------------------------------------------------------------------- fit's strategy file


def _signs(n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


QUARTIC = '''from trainlab.losses.base import Loss, reduce


class FourthPower(Loss):
    target_kind = "continuous"

    def forward(self, pred, target, weight=None):
        return reduce((pred - target) ** 4, self.reduction, weight)
'''


def test_fit_of_a_strategy_file_imports_the_modules_beside_it(tmp_path, monkeypatch):
    folder, elsewhere = tmp_path / "sdir", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "sdlosses_ucm.py").write_text(QUARTIC)
    (folder / "strat.yaml").write_text(yaml.safe_dump({"loss": "sdlosses_ucm:FourthPower", "optimizer": "adam",
                                                       "batch_size": 16, "epochs": 2}))
    monkeypatch.chdir(elsewhere)
    x, y = _signs()
    target = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32)).reshape(-1, 1)
    try:
        result = trainlab.fit(torch.nn.Linear(4, 1), (x, target), str(folder / "strat.yaml"), val=(x, target),
                              runtime={"num_threads": 1})
    finally:
        sys.modules.pop("sdlosses_ucm", None)
    with torch.no_grad():
        pred = result.model.cpu()(torch.from_numpy(x)).numpy().astype(np.float64)
    assert result.summary["loss"] == "sdlosses_ucm:FourthPower"
    assert result.summary["val"]["loss"] == pytest.approx(np.mean((pred - target) ** 4), rel=1e-4)  # NumPy's


def test_fit_of_a_strategy_file_in_the_working_directory_does_not_say_no_folder_was_searched(tmp_path, monkeypatch):
    (tmp_path / "strat.yaml").write_text(yaml.safe_dump({"loss": "nomodule_ucm:MyCE", "optimizer": "adam",
                                                         "epochs": 1}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as raised:
        trainlab.fit(torch.nn.Linear(4, 2), _signs(), "strat.yaml", runtime={"num_threads": 1})
    assert str(raised.value) == (f"cannot import module 'nomodule_ucm' for loss 'nomodule_ucm:MyCE': no module "
                                 f"'nomodule_ucm' in {tmp_path.resolve()} (the working directory) or the installed "
                                 "packages")


# --------------------------------------------------------------------------- fit's references and objects


def test_a_main_module_reference_says_a_script_cannot_be_imported_by_name():
    strategy = {"loss": "__main__:MainCE", "optimizer": "adam", "epochs": 1}
    with pytest.raises(ConfigError) as raised:
        trainlab.fit(torch.nn.Linear(4, 2), _signs(), strategy, runtime={"num_threads": 1})
    message = str(raised.value)
    assert message.startswith("loss reference '__main__:MainCE' names the __main__ module (the script run as a "
                              "program), which cannot be imported by name; put MainCE in a module file next to the "
                              "script (e.g. my_loss.py) and reference it as 'my_loss:MainCE'")
    assert "private" not in message and "no class or function object in its place either" in message


def test_a_metric_given_as_a_function_is_told_to_be_a_module_function_reference():
    with pytest.raises(ConfigError) as raised:
        trainlab.fit(torch.nn.Linear(4, 2), _signs(), {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1},
                     metrics=["accuracy", lambda p, t, k: 1.0])
    assert str(raised.value) == (
        "metrics must be a list of metric names, e.g. metrics=['accuracy', 'f1']; got the function <lambda> at index "
        "1: a metric of yours is given as a 'module:function' reference (docs/metrics.md): write def "
        "my_metric(predictions, target, num_classes) returning a number (higher is better) in a module file next "
        "to the script (e.g. my_metric.py) and give 'my_metric:my_metric'")


# --------------------------------------------------------------------------- features that are no numbers


FEATURES = '''import numpy as np

from trainlab.data import RawData

Y = np.arange(40) % 2


def text_features():
    return RawData(np.array([["red", 1.0], ["blue", 2.0]] * 20, dtype=object), Y)


def object_numbers():
    return RawData(np.ones((40, 2)).astype(object), Y)


def text_labels():
    return RawData(np.ones((40, 2), dtype=np.float32), np.where(Y == 1, "yes", "no"))
'''


@pytest.mark.parametrize(("source", "says"), [
    ("text_features", "features have dtype object; trainlab needs real numbers: encode text or categorical columns "
                      "as numbers (integer codes or one-hot columns), or save the table as a CSV file for the csv "
                      "source, which one-hot encodes its text columns (docs/data.md, 'CSV files', categorical)"),
    ("object_numbers", "features have dtype object; trainlab needs real numbers: the values are numbers held as "
                       "Python objects: convert them with x.astype(np.float32)"),
    ("text_labels", "targets have dtype <U3; trainlab needs real numbers: encode class names as integers 0..K-1"),
])
def test_a_source_of_text_features_is_told_to_encode_them_and_text_labels_their_class_names(source, says, tmp_path,
                                                                                         capsys):
    (tmp_path / "features_ucm.py").write_text(FEATURES)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_config(source=f"features_ucm:{source}")))
    capsys.readouterr()
    try:
        assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "r"), "--quiet"]) == 3
    finally:
        sys.modules.pop("features_ucm", None)
    assert capsys.readouterr().err == f"error: training data {says}\n"


def test_an_npz_of_text_features_is_told_to_encode_them_and_text_labels_their_class_names(tmp_path):
    np.savez(tmp_path / "text_x.npz", x=np.array([["red", "1"], ["blue", "2"]] * 10), y=np.arange(20) % 2)
    np.savez(tmp_path / "text_y.npz", x=np.ones((20, 2), np.float32), y=np.array(["a", "b"] * 10))
    with pytest.raises(DataError, match=r"array 'x' has dtype <U4; trainlab reads numbers; encode text or "
                                        r"categorical columns as numbers") as raised:
        npz(str(tmp_path / "text_x.npz"))
    assert "class names" not in str(raised.value)
    with pytest.raises(DataError, match=r"array 'y' has dtype <U1; trainlab reads numbers; encode class names as "
                                        r"integers 0\.\.K-1$"):
        npz(str(tmp_path / "text_y.npz"))


# --------------------------------------------------------------------------- a callback named like a built-in


class _Named(trainlab.Callback):
    def __init__(self, name: str):
        self.name = name


def test_a_callback_named_like_a_built_in_one_is_told_the_name_is_reserved():
    x, y = _signs()
    strategy = {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1, "early_stopping": True}
    with pytest.raises(ConfigError) as raised:
        trainlab.fit(torch.nn.Linear(4, 2), (x, y), strategy, val=(x, y), callbacks=[_Named("early_stopping")])
    message = str(raised.value)
    assert message.startswith("callback name 'early_stopping' is used twice (callbacks: ")
    assert "it is the built-in callback EarlyStopping's, and the built-in callbacks' names are reserved (" in message
    reserved = re.search(r"are reserved \(([^)]*)\)", message).group(1).split(", ")
    assert {"checkpointing", "divergence", "early_stopping", "lr_schedule", "recorder", "signals"} <= set(reserved)
    with pytest.raises(ConfigError) as raised:  # two of the user's own: no word of reserved names
        trainlab.fit(torch.nn.Linear(4, 2), (x, y), strategy, val=(x, y), callbacks=[_Named("mine"), _Named("mine")])
    assert "reserved" not in str(raised.value) and "give each instance its own" in str(raised.value)


# --------------------------------------------------------------------------- docs/extending.md's new examples


def _example(name: str) -> dict:
    """The namespace of docs/extending.md's ```python block whose first line names the file ``name``."""
    blocks = {block.splitlines()[0].removeprefix("# ").strip(): block
              for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)}
    namespace: dict = {}
    exec(blocks[name], namespace)  # noqa: S102 - the doc's own example
    return namespace


def test_the_doc_optimizer_takes_the_sign_of_its_momentum_step_by_step():
    signum = _example("myoptim.py")["Signum"]
    start, lr, beta = np.array([0.5, -1.0, 2.0]), 0.1, 0.5
    w = torch.tensor(start, requires_grad=True)
    optimizer = signum([{"params": [w]}], lr=lr, beta=beta)
    expected, momentum = start.copy(), np.zeros(3)
    for _ in range(3):  # the loss sum((w - 1)^3): a gradient that changes sign along the way
        optimizer.zero_grad()
        ((w - 1) ** 3).sum().backward()
        optimizer.step()
        momentum = beta * momentum + (1 - beta) * 3 * (expected - 1) ** 2
        expected = expected - lr * np.sign(momentum)
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=0, atol=1e-12)
    state = optimizer.state_dict()["state"][0]
    assert set(state) == {"momentum"} and isinstance(state["momentum"], torch.Tensor)  # pickle-free


def test_the_doc_initializer_draws_with_std_gain_over_root_fan_in():
    fill = _example("myinits.py")["scaled_normal"](gain=2.0)
    torch.manual_seed(0)
    weight = torch.empty(512, 16, 3, 3)
    with torch.no_grad():
        fill(weight)
    assert weight.std().item() == pytest.approx(2.0 / np.sqrt(16 * 9), rel=0.02)
    assert abs(weight.mean().item()) < 0.01


def test_the_doc_metric_is_sklearns_balanced_accuracy():
    balanced = _example("mymetrics.py")["balanced_accuracy"]
    rng = np.random.default_rng(1)
    target, predictions = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    assert balanced(torch.from_numpy(predictions), torch.from_numpy(target), 3) == pytest.approx(
        balanced_accuracy_score(target, predictions), rel=1e-6)


def test_the_doc_callback_stops_fit_once_val_accuracy_is_reached():
    stop_at = _example("mycallbacks.py")["StopAtAccuracy"]
    x, y = _signs(200)
    torch.manual_seed(0)
    result = trainlab.fit(torch.nn.Linear(4, 2), (x, y), {"loss": "cross_entropy", "optimizer": {"name": "adam",
                          "lr": 0.05}, "batch_size": 20, "epochs": 30}, val=(x, y), callbacks=[stop_at(0.9)],
                          runtime={"num_threads": 1})
    accuracies = [record["val_accuracy"] for record in result.history]
    assert len(accuracies) < 30 and accuracies[-1] >= 0.9 and all(a < 0.9 for a in accuracies[:-1])
    assert result.summary["stop_reason"] == "val_accuracy reached 0.9"
