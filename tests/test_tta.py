"""Test-time augmentation: the Evaluator's outputs against airbench's infer() formula written out in NumPy.

airbench94_muon.py, tta_level 2 with pad 1:
    mirror(x) = 0.5 * f(x) + 0.5 * f(flip(x))
    tta(x)    = 0.5 * mirror(x) + 0.5 * mean(mirror(P[:, :, 0:H, 0:W]), mirror(P[:, :, 2:H+2, 2:W+2]))
with P the reflect-padded batch; trainlab generalises the pad to r (views at offsets 0 and 2r).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from trainlab.config import validate
from trainlab.data.dataset import Split
from trainlab.data.transforms import Normalize
from trainlab.engine.evaluation import Evaluator
from trainlab.engine.objective import Objective
from trainlab.engine.step import StandardStep
from trainlab.engine.tta import TestTimeAugmentation, build_tta
from trainlab.errors import ConfigError
from trainlab.losses import build_loss

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def _model() -> nn.Module:
    torch.manual_seed(0)
    # not mirror-symmetric, not translation-invariant: every view gives other logits
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 7 * 6, 5))


def _images(n: int = 11) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (n, 3, 7, 6), dtype=np.uint8)


def reference_logits(model: nn.Module, images: np.ndarray, flip: bool, r: int) -> np.ndarray:
    """airbench's infer() by hand: views built in NumPy, the model only evaluates them."""
    normalized = (images / 255.0 - np.array(MEAN).reshape(1, 3, 1, 1)) / np.array(STD).reshape(1, 3, 1, 1)

    def f(views: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(views)).float()).double().numpy()

    def mirror(views: np.ndarray) -> np.ndarray:
        return 0.5 * f(views) + 0.5 * f(views[..., ::-1]) if flip else f(views)

    if r == 0:
        return mirror(normalized)
    height, width = images.shape[-2:]
    padded = np.pad(normalized, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    first = padded[:, :, 0:height, 0:width]
    second = padded[:, :, 2 * r:2 * r + height, 2 * r:2 * r + width]
    return 0.5 * mirror(normalized) + 0.5 * (mirror(first) + mirror(second)) / 2


def _evaluator(model: nn.Module, tta: TestTimeAugmentation | None) -> Evaluator:
    loss = build_loss("cross_entropy")
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=0.1), Objective(loss))
    return Evaluator(step, loss, ["accuracy"], 5, "multiclass", Normalize(MEAN, STD), batch_size=4, tta=tta)


@pytest.mark.parametrize("flip, translate", [(True, 0), (True, 1), (False, 1), (True, 2)])
def test_evaluator_outputs_are_airbench_tta(flip, translate):
    model, images = _model(), _images()
    labels = torch.from_numpy(np.random.default_rng(2).integers(0, 5, len(images)))
    evaluator = _evaluator(model, TestTimeAugmentation(flip=flip, translate=translate))
    split = Split(torch.from_numpy(images), labels)
    expected = reference_logits(model, images, flip, translate)
    np.testing.assert_allclose(evaluator.outputs(split).numpy(), expected, rtol=1e-5, atol=1e-5)
    # the loss and metrics are computed on the averaged logits
    shifted = expected - expected.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    result = evaluator.evaluate(split)
    assert result["loss"] == pytest.approx(-log_softmax[np.arange(len(images)), labels.numpy()].mean(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(float((expected.argmax(1) == labels.numpy()).mean()))
    # and they differ from a single view
    plain = _evaluator(model, None).outputs(split).numpy()
    assert np.abs(plain - expected).max() > 1e-3


def test_views_and_description():
    assert TestTimeAugmentation(flip=True, translate=0).views == 2
    assert TestTimeAugmentation(flip=True, translate=1).views == 6
    assert TestTimeAugmentation(flip=False, translate=2).views == 3
    assert TestTimeAugmentation().describe() == {"flip": True, "translate": 1, "when": "final", "views": 6}
    assert build_tta(TestTimeAugmentation(flip=False, translate=0), (3, 8, 8)) is None  # one view: off
    assert build_tta(None, (10,)) is None


@pytest.mark.parametrize("options, shape, fragment", [
    (TestTimeAugmentation(), (64,), "strategy.tta needs image inputs shaped (C, H, W); got inputs shaped (64,)"),
    (TestTimeAugmentation(), (28, 28), "got inputs shaped (28, 28)"),
    (TestTimeAugmentation(translate=4), (3, 4, 9), "strategy.tta.translate=4 must be smaller than the image size"),
])
def test_tta_on_data_it_cannot_apply_to_is_one_config_error_line(options, shape, fragment):
    with pytest.raises(ConfigError) as err:
        build_tta(options, shape)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_tta_on_non_images_names_data_flatten_only_where_the_source_flattened_images():
    # tabular rows (30 features) or a 1-D signal were never images: "data.flatten: false" is no fix there
    with pytest.raises(ConfigError) as tabular:
        build_tta(TestTimeAugmentation(), (30,))
    assert str(tabular.value).endswith("(remove strategy.tta)")
    with pytest.raises(ConfigError) as flattened:
        build_tta(TestTimeAugmentation(), (784,), flattened=True)
    assert "(remove strategy.tta; or keep the images' shape: data.flatten: false)" in str(flattened.value)


BASE = {"data": {"source": "digits"}, "model": "mlp",
        "strategy": {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1}}


@pytest.mark.parametrize("value, fragment", [
    ({"when": "sometimes"}, "strategy.tta.when"),
    ({"translate": -1}, "strategy.tta.translate"),
    ({"rotate": 1}, "unknown config key 'strategy.tta.rotate' (valid: flip, translate, when)"),
    ("yes", "must be true, false or a mapping with keys flip, translate, when; got 'yes'"),
])
def test_bad_tta_config_is_one_config_error_line(value, fragment):
    raw = copy.deepcopy(BASE)
    raw["strategy"]["tta"] = value
    with pytest.raises(ConfigError) as err:
        validate(raw)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_tta_config_forms_and_hash():
    raw = copy.deepcopy(BASE)
    plain = validate(raw)
    assert plain.strategy.tta is None
    raw["strategy"]["tta"] = True
    on = validate(raw).strategy.tta
    assert (on.flip, on.translate, on.when) == (True, 1, "final")
    raw["strategy"]["tta"] = {"translate": 0, "when": "always"}
    assert validate(raw).strategy.tta.model_dump() == {"flip": True, "translate": 0, "when": "always"}
    assert validate(raw).hash() != plain.hash()
    # unset, the new key leaves the hash of configs written before it existed unchanged: 975cbb0b7158430a is
    # BASE's hash on main before strategy.tta was added (a key added later without this care changes it too)
    assert plain.hash() == "975cbb0b7158430a"


# ----------------------------------------------------------------------------- whole runs


def _image_folder(root) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 3)):
        for name in ("cat", "dog", "emu"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def _run_config(root, when: str) -> dict:
    return {"name": f"tta-{when}", "seed": 0,
            "data": {"source": "image_folder", "path": str(root / "images"), "workers": 0, "val_fraction": 0.25,
                     "augment": {"crop_padding": 1, "hflip": "alternating"}},
            "model": {"name": "cnn2d", "channels": [4], "hidden": 8},
            "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 6,
                         "epochs": 2, "tta": {"flip": True, "translate": 1, "when": when}},
            "output": {"progress": "off"}, "runtime": {"num_threads": 1}}


def _last_epoch_record(run) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "epoch" in r and "event" not in r and r.get("scope") != "step"][-1]


def test_runs_record_tta_and_eval_applies_it(tmp_path):
    from trainlab.config import validate as to_config
    from trainlab.experiment import train
    from trainlab.run_evaluation import evaluate_run

    _image_folder(tmp_path / "images")
    summary, run = train(to_config(_run_config(tmp_path, "final")), out=tmp_path / "final", quiet=True)
    assert summary["evaluation"] == {"tta": {"flip": True, "translate": 1, "when": "final", "views": 6}}
    last = _last_epoch_record(run)
    # when: final: the epoch records validate with one view, the summary with six
    assert last["val_loss"] != pytest.approx(summary["val"]["loss"], rel=1e-9)
    assert evaluate_run(run, "test") == summary["test"]  # trainlab eval applies the run's TTA

    summary, run = train(to_config(_run_config(tmp_path, "always")), out=tmp_path / "always", quiet=True)
    last = _last_epoch_record(run)
    assert last["val_loss"] == pytest.approx(summary["val"]["loss"], rel=1e-9)  # every validation uses TTA
    assert summary["evaluation"]["tta"]["when"] == "always"

    raw = _run_config(tmp_path, "final")
    del raw["strategy"]["tta"]
    summary, _ = train(to_config(raw), out=tmp_path / "plain", quiet=True)
    assert summary["evaluation"] == {"tta": None}


@pytest.mark.parametrize("hflip, flip, warned", [
    (False, True, "data.augment.hflip is false"), (False, False, None), ("alternating", True, None), (True, True, None),
    ("no augment", True, "training had no augmentation"), ("no augment", False, None),
    ("augment: true", True, None), ("hflip left out", True, None)])
def test_a_mirror_view_on_images_trained_without_flips_is_warned_of(tmp_path, capsys, hflip, flip, warned):
    """tta: true on digits trained with hflip: false averaged in a mirror view the model never saw (18 points
    lower than the per-epoch records), without a word; trained with no augmentation at all (9 points on MNIST),
    it still went unsaid."""
    from trainlab.config import validate as to_config
    from trainlab.experiment import train

    _image_folder(tmp_path / "images")
    raw = _run_config(tmp_path, "final")
    if hflip == "no augment":
        del raw["data"]["augment"]
    elif hflip == "augment: true":
        raw["data"]["augment"] = True
    elif hflip == "hflip left out":
        raw["data"]["augment"].pop("hflip", None)
    else:
        raw["data"]["augment"]["hflip"] = hflip
    left_at_default = flip is True and hflip == "no augment"  # the message says "its default" only then
    if left_at_default:
        raw["strategy"]["tta"].pop("flip", None)
    else:
        raw["strategy"]["tta"]["flip"] = flip
    raw["strategy"]["epochs"] = 1
    train(to_config(raw), out=tmp_path / "run", quiet=True)
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if "the model never saw mirrored images" in line]
    default = ", its default" if left_at_default else ""
    assert said == ([] if warned is None else [
        f"warning: strategy.tta averages in the left-right mirror view (tta.flip: true{default}) but "
        f"{warned}: the model never saw mirrored images; set strategy.tta.flip: false where a mirror changes what "
        "an image shows (digits, text)"]), err


def test_a_source_of_the_users_own_is_not_told_it_had_no_augmentation(tmp_path, capsys):
    """A module:attr source may augment in its own transforms under any option name or none: "training had no
    augmentation" would be a guess (preflight leaves such a source's augment alone too)."""
    import sys

    import yaml

    from trainlab.cli import main

    (tmp_path / "myimages.py").write_text(
        "import numpy as np\nfrom trainlab.data import RawData\n\n\ndef blocks(n=48):\n"
        "    rng = np.random.default_rng(0)\n    y = np.arange(n) % 2\n"
        "    x = rng.normal(size=(n, 1, 8, 8)).astype(np.float32) + y[:, None, None, None]\n"
        "    return RawData(x, y)\n")
    config = {"name": "own", "seed": 0, "data": {"source": "myimages:blocks"}, "model": {"name": "cnn2d", "channels": [4]},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                           "epochs": 1, "tta": True},
              "output": {"progress": "off"}, "runtime": {"num_threads": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    try:
        assert main(["train", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    finally:
        sys.modules.pop("myimages", None)
    err = capsys.readouterr().err
    assert "never saw mirrored images" not in err, err
