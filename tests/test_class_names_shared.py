"""Named classes read one way by a config run and by ``trainlab.fit``: a name given twice is refused by
both (a source's names, ``data.class_names``, fit's ``class_names``), and a given split's label beyond
0/1 training labels of a task that was *given* as binary names the task change the fix needs too."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import trainlab
from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data.labels import read_class_labels
from trainlab.errors import DataError

# a user's data source: the arrays of an .npz file, named by the class names the config gives it
SOURCE = '''
import numpy as np

from trainlab.data import RawData


def arrays(path, class_names=None):
    archive = np.load(path)
    test = {"x_test": archive["x_test"], "y_test": archive["y_test"]} if "x_test" in archive else {}
    return RawData(archive["x"], archive["y"], class_names=class_names, **test)
'''

MODULE = "usersource_class_names"
STRATEGY = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.05}, "epochs": 1}


@pytest.fixture
def user_source(tmp_path, monkeypatch):
    """``source(arrays, **data options)``: a config run's dataset over those arrays, read by the user
    source above (``data.class_names`` is its option)."""
    (tmp_path / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.chdir(tmp_path)  # the working directory's modules are the user's own code
    monkeypatch.syspath_prepend(str(tmp_path))

    def source(arrays: dict[str, np.ndarray], **options):
        np.savez(tmp_path / "arrays.npz", **arrays)
        return load_dataset(DataConfig(source=f"{MODULE}:arrays", path=str(tmp_path / "arrays.npz"),
                                       val_fraction=0.0, test_fraction=0.0, **options))

    yield source
    sys.modules.pop(MODULE, None)


def _blobs(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    return np.random.default_rng(0).normal(size=(n, 2)).astype(np.float32), np.arange(n) % 3


def test_a_class_name_given_twice_is_refused_by_a_config_run_as_by_fit(user_source):
    """fit refused ['a', 'a', 'b'], a config run loaded it as a multiclass task with the duplicate kept
    (predictions named 'a' for two classes); now both refuse it, naming the name and where it came from."""
    x, y = _blobs()
    config_said = ("the class names (data.class_names, or the source's) hold 'a' twice; give each class one "
                   "name, in class-index order")
    with pytest.raises(DataError) as caught:  # data.class_names: [a, a, b]
        user_source({"x": x, "y": y}, class_names=["a", "a", "b"])
    assert str(caught.value) == config_said
    with pytest.raises(DataError) as caught:  # labels 1..3 (the values path) with a name twice
        user_source({"x": x, "y": y + 1}, class_names=["b", "c", "b"], task="multiclass")
    assert str(caught.value) == config_said.replace("'a'", "'b'")
    with pytest.raises(DataError) as caught:
        trainlab.fit(torch.nn.Linear(2, 3), (x, y), STRATEGY, class_names=["a", "a", "b"])
    assert str(caught.value) == ("the class names (class_names) hold 'a' twice; give each class one name, "
                                 "in class-index order")
    assert user_source({"x": x, "y": y}, class_names=["a", "b", "c"]).class_names == ["a", "b", "c"]


def test_a_late_duplicate_among_the_most_names_allowed_is_found():
    """The check is one pass over a set (fit's ran ``name in names[:i]`` per name: 5e9 comparisons at
    100000 names); 100000 distinct names load, the last one repeating an earlier one is named."""
    names = [f"class {i}" for i in range(100_000)]
    y = np.arange(100_000)
    labels, _ = read_class_labels("multiclass", y, names)
    assert labels.num_classes == 100_000
    with pytest.raises(DataError, match="hold 'class 99998' twice"):
        read_class_labels("multiclass", y, [*names[:-1], "class 99998"])


def test_an_unseen_label_of_a_given_binary_task_names_the_task_change_too(user_source):
    """Inferred binary: naming all the classes makes the task multiclass. Given binary (task='binary',
    data.task: binary), names alone keep it binary: the fix says to set the task to multiclass as well,
    and doing so works."""
    labels, _ = read_class_labels("binary", np.arange(30) % 2, None)
    with pytest.raises(DataError) as caught:
        labels.given("test y", np.array([0, 1, 2]), "data.class_names", task_given=True)
    assert str(caught.value).endswith(
        "to keep it, set data.class_names to the names of all the classes (at least 3, for labels 0..2) and "
        "data.task: multiclass (the task given is binary), or add training rows of it")
    with pytest.raises(DataError, match=r"\(at least 3, for labels 0\.\.2, a multiclass task\), or add"):
        labels.given("test y", np.array([0, 1, 2]), "data.class_names")  # inferred: names alone do it

    x, y = _blobs(40)
    seen, unseen = (x[y < 2], y[y < 2]), (x, y)
    with pytest.raises(DataError, match=r"set class_names to the names of all the classes \(at least 3, for "
                                        r"labels 0\.\.2\) and task='multiclass' \(the task given is binary\)"):
        trainlab.fit(torch.nn.Linear(2, 1), seen, {**STRATEGY, "loss": "bce"}, test=unseen, task="binary")
    result = trainlab.fit(torch.nn.Linear(2, 3), seen, STRATEGY, test=unseen, task="multiclass",
                          class_names=list("abc"))
    assert "accuracy" in result.summary["test"]

    arrays = {"x": seen[0], "y": seen[1], "x_test": x, "y_test": y}
    with pytest.raises(DataError, match=r"set data\.class_names to the names of all the classes \(at least 3, "
                                        r"for labels 0\.\.2\) and data\.task: multiclass \(the task given is "
                                        r"binary\)"):
        user_source(arrays, task="binary")
    data = user_source(arrays, task="multiclass", class_names=list("abc"))
    assert data.task == "multiclass" and data.num_classes == 3 and len(data.test) == 40
