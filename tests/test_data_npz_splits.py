"""Which arrays of an .npz the ``npz`` source reads as its splits: trainlab's ``x``/``x_val``/``x_test``,
Keras's ``x_train``/``x_val``/``x_test`` (``mnist.npz``), and a warning for split-like arrays left unread."""

from __future__ import annotations

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.config import DataConfig
from trainlab.data import DATA_SOURCES, load_dataset
from trainlab.errors import DataError


def keras_arrays(seed: int = 0, val: bool = False, x: str = "x", y: str = "y") -> dict[str, np.ndarray]:
    """Keras's mnist.npz layout with small float rows: 40 train, 12 test (and 8 val)."""
    rng = np.random.default_rng(seed)
    sizes = {"train": 40, "test": 12, **({"val": 8} if val else {})}
    arrays = {}
    for split, n in sizes.items():
        arrays[f"{x}_{split}"] = rng.normal(size=(n, 3)).astype(np.float32)
        arrays[f"{y}_{split}"] = np.arange(n) % 2
    return arrays


def save(tmp_path, **arrays) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def assert_read_as(raw, arrays: dict[str, np.ndarray], names: dict[str, tuple[str, str] | None]) -> None:
    """Each split of ``raw`` is exactly the saved arrays ``names`` gives (None: no such split)."""
    for split, pair in names.items():
        got_x, got_y = getattr(raw, f"x_{split}"), getattr(raw, f"y_{split}")
        if pair is None:
            assert got_x is None and got_y is None, split
        else:
            np.testing.assert_array_equal(got_x, arrays[pair[0]])
            np.testing.assert_array_equal(got_y, arrays[pair[1]])


def test_keras_layout_is_read_with_the_default_names(tmp_path, capsys):
    """The default data.x: x named no array of mnist.npz's layout: 'has no array x' and no hint."""
    arrays = keras_arrays(val=True)
    raw = DATA_SOURCES.build({"name": "npz", "path": save(tmp_path, **arrays)})
    assert_read_as(raw, arrays, {"train": ("x_train", "y_train"), "val": ("x_val", "y_val"),
                                 "test": ("x_test", "y_test")})
    assert capsys.readouterr().err == ""


def test_keras_layout_named_by_hand_reads_its_test_split(tmp_path, capsys):
    """data.x: x_train made the source look for x_train_test: the given x_test was silently dropped and a
    test set cut out of x_train instead."""
    arrays = keras_arrays()
    path = save(tmp_path, **arrays)
    raw = DATA_SOURCES.build({"name": "npz", "path": path, "x": "x_train", "y": "y_train"})
    assert_read_as(raw, arrays, {"train": ("x_train", "y_train"), "val": None, "test": ("x_test", "y_test")})
    data = load_dataset(DataConfig(source="npz", path=path, x="x_train", y="y_train", val_fraction=0.25))
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 12)
    np.testing.assert_array_equal(data.test.x.numpy(), arrays["x_test"])
    assert capsys.readouterr().err == ""


def test_scikit_learn_capital_x_is_read(tmp_path):
    arrays = {("X" + k[1:] if k.startswith("x") else k): v for k, v in keras_arrays().items()}
    raw = DATA_SOURCES.build({"name": "npz", "path": save(tmp_path, **arrays)})
    assert_read_as(raw, arrays, {"train": ("X_train", "y_train"), "val": None, "test": ("X_test", "y_test")})


def test_keras_layout_with_other_stems(tmp_path):
    arrays = keras_arrays(x="images", y="labels", val=True)
    raw = DATA_SOURCES.build({"name": "npz", "path": save(tmp_path, **arrays), "x": "images", "y": "labels"})
    assert_read_as(raw, arrays, {"train": ("images_train", "labels_train"), "val": ("images_val", "labels_val"),
                                 "test": ("images_test", "labels_test")})


def test_trainlab_layout_is_read_as_before(tmp_path, capsys):
    rng = np.random.default_rng(1)
    arrays = {"x": rng.normal(size=(20, 2)), "y": np.arange(20) % 2, "x_test": rng.normal(size=(5, 2)),
              "y_test": np.arange(5) % 2, "x_val": rng.normal(size=(4, 2)), "y_val": np.arange(4) % 2}
    raw = DATA_SOURCES.build({"name": "npz", "path": save(tmp_path, **arrays)})
    assert_read_as(raw, arrays, {"train": ("x", "y"), "val": ("x_val", "y_val"), "test": ("x_test", "y_test")})
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("unread, layout", [
    (("x_valid", "y_valid"), {"x": 20, "y": 20}),  # an alias no layout reads
    (("test_x", "test_y"), {"x": 20, "y": 20}),  # the split as a prefix
    (("x_test", "y_test"), {"features": 20, "labels": 20}),  # data.x names other arrays than the test split's
    (("x_train", "y_train"), {"x": 20, "y": 20}),  # both layouts in one archive: x wins
])
def test_split_like_arrays_left_unread_are_warned_of(tmp_path, capsys, unread, layout):
    """A given test (or val) split that goes unread is said, never silently replaced by rows cut from train."""
    rng = np.random.default_rng(2)
    arrays = {name: rng.normal(size=(n, 2)) if i == 0 else np.arange(n) % 2 for i, (name, n) in enumerate(layout.items())}
    arrays |= {unread[0]: rng.normal(size=(6, 2)), unread[1]: np.arange(6) % 2}
    x, y = list(layout)
    raw = DATA_SOURCES.build({"name": "npz", "path": save(tmp_path, **arrays), "x": x, "y": y})
    assert_read_as(raw, arrays, {"train": (x, y), "val": None, "test": None})
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: npz file "), err
    assert f"array(s) {', '.join(sorted(unread))} look like a split but are not read" in err
    assert f"{x}/{y} (train), {x}_val/{y}_val (val), {x}_test/{y}_test (test)" in err


def test_missing_arrays_say_how_to_name_them(tmp_path):
    path = save(tmp_path, images=np.zeros((4, 2)), labels=np.arange(4) % 2)
    with pytest.raises(DataError) as err:
        DATA_SOURCES.build({"name": "npz", "path": path})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"npz file {path} has no array 'x' (arrays: images, labels); set data.x and data.y")
    path = save(tmp_path, **keras_arrays())
    with pytest.raises(DataError) as err:  # data.x set by hand, data.y left at y
        DATA_SOURCES.build({"name": "npz", "path": path, "x": "x_train"})
    assert str(err.value).endswith("has no array 'y' (arrays: x_test, x_train, y_test, y_train); set data.y: "
                                   "y_train (Keras's x_train/y_train/x_test/y_test layout)")


def test_keras_layout_missing_half_of_a_split_is_refused(tmp_path):
    arrays = keras_arrays()
    del arrays["y_test"]
    with pytest.raises(DataError, match="has 'x_test' but no 'y_test'; store both or neither"):
        DATA_SOURCES.build({"name": "npz", "path": save(tmp_path, **arrays)})


def test_an_archive_in_trainlabs_layout_with_train_in_its_names_keeps_its_own_splits(tmp_path):
    """data.x: x_train with x_train_val/x_train_test in the archive: trainlab's own layout (<x>_test), as
    before Keras's was read; an x_test beside them is not the test split."""
    rng = np.random.default_rng(3)
    arrays = {"x_train": rng.normal(size=(30, 2)), "y_train": np.arange(30) % 2,
              "x_train_test": rng.normal(size=(7, 2)), "y_train_test": np.arange(7) % 2,
              "x_test": rng.normal(size=(5, 2)), "y_test": np.arange(5) % 2}
    raw = DATA_SOURCES.build({"name": "npz", "path": save(tmp_path, **arrays), "x": "x_train", "y": "y_train"})
    assert_read_as(raw, arrays, {"train": ("x_train", "y_train"), "val": None,
                                 "test": ("x_train_test", "y_train_test")})


def test_train_with_target_says_each_data_warning_once(tmp_path, capsys, monkeypatch):
    """--target reads the data ahead of the run (its splits counted, its task read for the metric keys):
    that read says nothing, the run's own loading says each warning once (it printed twice)."""
    import yaml

    from trainlab.cli import main

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 3)).astype(np.float32), y=np.arange(60) % 2,
             x_valid=rng.normal(size=(5, 3)), y_valid=np.arange(5) % 2)
    config = {"name": "once", "data": {"source": "npz", "path": str(tmp_path / "d.npz"), "val_fraction": 0.2},
              "model": {"name": "mlp", "hidden": [4]}, "output": {"progress": "off"},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 1,
                           "batch_size": 16}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    for target in ("val_accuracy=0.5", "val_loss=0.5"):
        assert main(["train", "c.yaml", "--out", "run", "--overwrite", "--quiet", "--target", target]) == 0
        assert capsys.readouterr().err.count("x_valid") == 1, target
