"""Array shapes of an ``.npz`` that were read silently wrong or crashed: a (N, 1) ``y`` trained as regression,
channels-last images trained on the wrong axes, a member that is no ``.npy`` (exit 4), and a one-hot ``y``
trained as multi-label. Each is checked through the ``npz`` source, ``trainlab.fit`` (arrays in memory, which
share the task rule) and, for the inputs, ``trainlab predict``."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
import yaml

import trainlab
import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.cli import main
from trainlab.config import DataConfig
from trainlab.data import load_dataset
from trainlab.data import preprocessing as prep
from trainlab.data.dataset import infer_task, is_one_hot, one_label_per_row
from trainlab.data.predict_input import read_for_predict
from trainlab.errors import DataError

N = 60
STRATEGY = {"loss": "auto", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 1}


def features(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def save(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def load(**data):
    return load_dataset(DataConfig(source="npz", **data))


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def warnings_of(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning: ")]


def train_cli(tmp_path, path: str, model: dict | None = None, **data) -> int:
    """``trainlab train`` of a one-epoch config on the npz ``path``; its exit code."""
    config = {"name": "npz", "seed": 0, "data": {"source": "npz", "path": path, **data},
              "model": model or {"name": "mlp", "hidden": [8]}, "strategy": STRATEGY,
              "output": {"progress": "off", "checkpoint": {"every_seconds": None}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    return main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--quiet"])


def splits_of(data) -> list[tuple[list, list]]:
    return [(split.x.tolist(), split.y.tolist()) for split in (data.train, data.val, data.test)]


# ----------------------------------------------------------------------------- 1. y shaped (N, 1)


@pytest.mark.parametrize("y, task", [
    (np.arange(N) % 2, "binary"),
    ((np.arange(N) % 3).astype(np.float64), "multiclass"),  # pandas' 0.0/1.0/2.0
    (np.random.default_rng(1).normal(size=N), "regression"),
])
def test_a_column_of_targets_reads_as_its_values(tmp_path, y, task):
    """sklearn/Keras's y.reshape(-1, 1) of class labels was trained as a regression ('continuous target')."""
    assert infer_task(y.reshape(-1, 1)) == infer_task(y) == task
    column = load(path=save(tmp_path / "col.npz", x=features(), y=y.reshape(-1, 1)))
    flat = load(path=save(tmp_path / "flat.npz", x=features(), y=y))
    assert column.task == flat.task == task
    assert splits_of(column) == splits_of(flat)  # the same rows in each split, the same targets
    assert column.target_dim == 1


def test_a_column_of_targets_with_the_task_given_reads_as_its_values(tmp_path):
    y = (np.arange(N) % 3).reshape(-1, 1)
    data = load(path=save(tmp_path / "col.npz", x=features(), y=y), task="multiclass")
    assert data.task == "multiclass" and data.num_classes == 3 and data.train.y.ndim == 1


def test_config_and_fit_read_a_column_of_targets_alike(tmp_path):
    """trainlab.fit read (N, 1) as (N,) before; the npz source now follows the same rule, and a multilabel task
    on one column is refused alike (one 0/1 column is a binary task)."""
    x, y = features(), (np.arange(N) % 2).reshape(-1, 1)
    result = trainlab.fit(torch.nn.Linear(3, 1), (x, y), STRATEGY, val=(x[:12], y[:12]))
    assert result.summary["loss"] == "bce" and "accuracy" in result.summary["val"]
    assert load(path=save(tmp_path / "col.npz", x=x, y=y)).task == "binary"
    with pytest.raises(DataError, match=r"one label per row is a binary task: set task='binary'"):
        trainlab.fit(torch.nn.Linear(3, 1), (x, y), STRATEGY, task="multilabel")
    with pytest.raises(DataError, match=r"one label per row is a binary task: set data.task: binary"):
        load(path=str(tmp_path / "col.npz"), task="multilabel")


def test_the_loss_auto_of_a_column_of_labels_is_a_classification_loss(tmp_path, capsys):
    """The sweep's npz/y_col.npz: trained with mse as a regression; now bce on binary labels."""
    path = save(tmp_path / "col.npz", x=features(), y=(np.arange(N) % 2).reshape(-1, 1))
    assert train_cli(tmp_path, path) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["loss"] == "bce" and "accuracy" in summary["test"]


# ----------------------------------------------------------------------------- 2. channels-last images


@pytest.mark.parametrize("shape", [(N, 32, 32, 3), (N, 16, 16, 4)])
def test_channels_last_images_are_refused_naming_the_transpose(tmp_path, capsys, shape):
    """Keras's CIFAR (N, 32, 32, 3) trained with 32 'channels'; (N, 28, 28, 1) gave 'images of 28x1 are too
    small' from cnn2d."""
    x = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    path = save(tmp_path / "img.npz", x=x, y=np.arange(N) % 2)
    assert train_cli(tmp_path, path, {"name": "cnn2d", "channels": [4]}) == 3
    line = one_error_line(capsys.readouterr().err)
    n, height, width, channels = shape
    assert f"array 'x' is shaped {shape}: images with their {channels} channel" in line
    assert f"save x.transpose(0, 3, 1, 2), shaped ({n}, {channels}, {height}, {width})" in line
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_one_channel_last_is_warned_of_and_an_mlp_trains_on_it(tmp_path, capsys):
    """Keras's MNIST with expand_dims(x, -1), (N, 28, 28, 1): a model that flattens reads it either way (run
    folders trained on it before must still evaluate), so it is a warning naming the transpose."""
    x = np.random.default_rng(0).random((N, 6, 6, 1)).astype(np.float32)
    path = save(tmp_path / "img.npz", x=x, y=np.arange(N) % 2)
    assert train_cli(tmp_path, path, {"name": "mlp", "hidden": [4]}) == 0
    err = capsys.readouterr().err
    assert "warning: npz file" in err and "save x.transpose(0, 3, 1, 2), shaped" in err
    assert "a conv net would take its 6 rows as channels" in err


def test_a_channels_last_test_split_is_refused_too(tmp_path):
    rng = np.random.default_rng(0)
    path = save(tmp_path / "img.npz", x=rng.random((N, 3, 8, 8)), y=np.arange(N) % 2,
                x_test=rng.random((10, 8, 8, 3)), y_test=np.arange(10) % 2)
    with pytest.raises(DataError, match=r"array 'x_test' is shaped \(10, 8, 8, 3\): .* x_test.transpose\(0, 3, 1, 2\)"):
        load(path=path)


@pytest.mark.parametrize("shape", [(N, 3, 32, 32), (N, 1, 28, 28), (N, 4, 16, 16),
                                   (N, 3, 32, 3),  # channels first and last alike: read channels first
                                   (N, 28, 28), (N, 10, 10, 5)])
def test_images_that_are_not_clearly_channels_last_are_read_as_they_are(tmp_path, shape):
    x = np.random.default_rng(0).random(shape).astype(np.float32)
    data = load(path=save(tmp_path / "img.npz", x=x, y=np.arange(N) % 2))
    assert data.input_shape == shape[1:]


def test_predict_refuses_channels_last_inputs_naming_the_transpose(tmp_path):
    fitted = prep.fit(np.zeros((2, 1, 8, 8), np.float32), task="binary", source="npz")
    np.savez(tmp_path / "new.npz", x=np.zeros((5, 8, 8, 1), np.float32))
    with pytest.raises(DataError) as caught:
        read_for_predict({"source": "npz"}, fitted, tmp_path / "new.npz")
    assert str(caught.value) == (f"npz file {tmp_path / 'new.npz'}: rows are shaped (8, 8, 1) but the run was "
                                 "trained on (1, 8, 8); they are images with their 1 channel last (N, H, W, C), "
                                 "as Keras and PIL store them; trainlab reads images channels first (N, C, H, W): "
                                 "save x.transpose(0, 3, 1, 2), shaped (5, 1, 8, 8)")
    np.savez(tmp_path / "first.npz", x=np.zeros((5, 8, 8, 1), np.float32).transpose(0, 3, 1, 2))
    assert tuple(read_for_predict({"source": "npz"}, fitted, tmp_path / "first.npz").shape) == (5, 1, 8, 8)


def test_trainlab_predict_refuses_channels_last_images_in_one_line(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.random((40, 8, 8, 3)).astype(np.float32)
    path = save(tmp_path / "img.npz", x=images.transpose(0, 3, 1, 2), y=np.arange(40) % 2)
    assert train_cli(tmp_path, path, {"name": "cnn2d", "channels": [4]}) == 0
    np.savez(tmp_path / "new.npz", x=images[:5])
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "new.npz")]) == 3
    line = one_error_line(capsys.readouterr().err)
    assert "rows are shaped (8, 8, 3) but the run was trained on (3, 8, 8)" in line
    assert "save x.transpose(0, 3, 1, 2), shaped (5, 3, 8, 8)" in line
    np.savez(tmp_path / "first.npz", x=images[:5].transpose(0, 3, 1, 2))
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "first.npz")]) == 0


# ----------------------------------------------------------------------------- 3. a member that is no .npy


def raw_member_npz(path, y: np.ndarray | None = None) -> str:
    """An .npz whose x.npy member holds text (zipped by hand), as the sweep's npz/raw_member.npz."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", b"this is not an npy array")
        if y is not None:
            buffer = io.BytesIO()
            np.save(buffer, y)
            archive.writestr("y.npy", buffer.getvalue())
    return str(path)


def test_a_member_that_is_no_npy_array_is_refused_in_one_line(tmp_path, capsys):
    """np.load gives such a member as bytes: 'AttributeError: 'bytes' object has no attribute 'ndim'' (exit 4)."""
    path = raw_member_npz(tmp_path / "raw.npz", np.arange(N) % 2)
    with pytest.raises(DataError) as caught:
        load(path=path)
    assert str(caught.value) == (f"array 'x' in {path} is not a .npy array (its member x.npy holds other bytes); "
                                 "write the archive with np.savez(path, x=..., y=...)")
    assert train_cli(tmp_path, path) == 3
    assert "is not a .npy array" in one_error_line(capsys.readouterr().err)


def test_predict_refuses_a_member_that_is_no_npy_array(tmp_path):
    path = raw_member_npz(tmp_path / "raw.npz")
    fitted = prep.fit(np.zeros((2, 3), np.float32), task="binary", source="npz")
    with pytest.raises(DataError, match=r"^array 'x' in .*raw.npz is not a .npy array .*np.savez\(path, x=rows\)$"):
        read_for_predict({"source": "npz"}, fitted, path)


# ----------------------------------------------------------------------------- 4. one-hot targets


def one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[labels]  # what keras.utils.to_categorical writes


def test_is_one_hot_is_exactly_one_1_per_row():
    assert is_one_hot(one_hot(np.array([0, 2, 1]), 3)) and is_one_hot(np.array([[True, False], [False, True]]))
    assert not is_one_hot(np.array([[1, 1, 0], [0, 1, 0]]))  # several labels in a row
    assert not is_one_hot(np.array([[0, 0, 0], [0, 1, 0]]))  # a row of none
    assert not is_one_hot(np.array([[0.5, 0.5], [0, 1]]))  # probabilities: not 0/1
    assert not is_one_hot(np.array([[1], [1]])) and not is_one_hot(np.zeros((0, 3)))
    # sklearn's type_of_target calls one-hot rows 'multilabel-indicator'; a multi-label y with several 1s stays so
    assert infer_task(one_hot(np.array([0, 1, 2, 1]), 3)) == "multiclass"
    assert infer_task(one_hot(np.array([0, 1, 1, 0]), 2)) == "binary"
    assert infer_task(np.array([[1, 1, 0], [0, 1, 0]])) == "multilabel"
    np.testing.assert_array_equal(one_label_per_row(one_hot(np.array([2, 0, 1]), 3), "multiclass"), [2, 0, 1])
    assert one_label_per_row(one_hot(np.array([2, 0, 1]), 3), "multilabel").shape == (3, 3)


@pytest.mark.parametrize("k, task", [(2, "binary"), (3, "multiclass")])
def test_one_hot_targets_read_as_their_class_indices_with_a_warning(tmp_path, capsys, k, task):
    labels = np.arange(N) % k
    hot = load(path=save(tmp_path / "hot.npz", x=features(), y=one_hot(labels, k)))
    said = warnings_of(capsys.readouterr().err)
    indices = load(path=save(tmp_path / "idx.npz", x=features(), y=labels))
    assert hot.task == indices.task == task and hot.num_classes == k
    assert splits_of(hot) == splits_of(indices)  # exactly y.argmax(1)
    assert len(said) == 1 and f"array 'y' ({N} rows of {k} 0/1 columns): every row holds exactly one 1" in said[0]
    assert said[0].endswith("y.argmax(1) of a " + task + " task (as Keras's categorical_crossentropy reads them); "
                            "for independent 0/1 labels set data.task: multilabel")


def test_one_hot_targets_with_data_task_multiclass_read_as_classes_and_multilabel_keeps_the_columns(tmp_path,
                                                                                                      capsys):
    path = save(tmp_path / "hot.npz", x=features(), y=one_hot(np.arange(N) % 3, 3))
    assert load(path=path, task="multiclass").train.y.ndim == 1
    capsys.readouterr()
    kept = load(path=path, task="multilabel")
    assert kept.task == "multilabel" and tuple(kept.train.y.shape[1:]) == (3,)
    assert not warnings_of(capsys.readouterr().err)
    with pytest.raises(DataError, match=r"^data.task is binary but npz file .* are one-hot over 3 classes .* "
                                        r"set data.task: multiclass$"):
        load(path=path, task="binary")


def test_one_hot_targets_of_many_classes_with_a_rare_one_stay_classes(tmp_path):
    """As indices 0..14 with a rare class, infer_task reads counts (regression); the one-hot width says classes."""
    labels = np.concatenate([np.arange(14).repeat(10), [14]])
    assert infer_task(labels) == "regression"
    data = load(path=save(tmp_path / "hot.npz", x=features(len(labels)), y=one_hot(labels, 15)))
    assert data.task == "multiclass" and data.num_classes == 15


def test_given_splits_of_one_hot_targets_are_read_alike_and_a_mix_is_refused(tmp_path):
    val_labels = np.arange(12) % 3
    arrays = {"x": features(), "y": one_hot(np.arange(N) % 3, 3), "x_val": features(12, 1)}
    data = load(path=save(tmp_path / "hot.npz", **arrays, y_val=one_hot(val_labels, 3)))
    assert data.val.y.tolist() == val_labels.tolist()
    mixed = one_hot(val_labels, 3)
    mixed[4] = [1, 1, 0]
    with pytest.raises(DataError, match=r"'y' is one-hot .* but 'y_val' is not: its row 4 holds \[1.0, 1.0, 0.0\]"):
        load(path=save(tmp_path / "mixed.npz", **arrays, y_val=mixed))


def test_one_hot_targets_with_a_missing_row_follow_nan_policy(tmp_path, capsys):
    y = one_hot(np.arange(N) % 3, 3)
    y[5] = np.nan
    path = save(tmp_path / "hot.npz", x=features(), y=y)
    data = load(path=path, nan_policy="drop")
    assert data.task == "multiclass" and sum(len(s) for s in (data.train, data.val, data.test)) == N - 1
    with pytest.raises(DataError, match=r"non-finite target value \(nan\) at row 5, column 0"):
        load(path=path)


def test_fit_reads_one_hot_targets_as_the_npz_source_does(tmp_path, capsys):
    """trainlab.fit shares the task rule and the label reading: one-hot y (as Keras users pass it) is
    multiclass with a warning, alike for a given val split and an empty test split."""
    x, labels = features(), np.arange(N) % 3
    x_val = x[:12] + 0.5  # rows of their own (copies of training rows are warned of)
    torch.manual_seed(0)
    result = trainlab.fit(torch.nn.Linear(3, 3), (x, one_hot(labels, 3)), STRATEGY,
                          val=(x_val, one_hot(labels[:12], 3)))
    said = warnings_of(capsys.readouterr().err)
    torch.manual_seed(0)  # the same initial weights
    reference = trainlab.fit(torch.nn.Linear(3, 3), (x, labels), STRATEGY, val=(x_val, labels[:12]))
    assert len(said) == 1 and "y.argmax(1) of a multiclass task" in said[0]
    assert result.summary["val"]["accuracy"] == reference.summary["val"]["accuracy"]
    assert load(path=save(tmp_path / "hot.npz", x=x, y=one_hot(labels, 3))).task == "multiclass"
    capsys.readouterr()
    kept = trainlab.fit(torch.nn.Linear(3, 3), (x, one_hot(labels, 3)), STRATEGY, task="multilabel",
                        val=(x_val, one_hot(labels[:12], 3)))
    assert kept.summary["loss"] == "bce" and "hamming_accuracy" in kept.summary["val"]
    assert not warnings_of(capsys.readouterr().err)
    with pytest.raises(DataError, match=r"^task is binary but the training targets .* set task='multiclass'$"):
        trainlab.fit(torch.nn.Linear(3, 1), (x, one_hot(labels, 3)), STRATEGY, task="binary")
