"""Fixes from a sweep of the example recipes on data they were not written for: regression targets an
lr-bounded optimizer cannot reach, a switched data source's leftover options, text predict's input named
data.path, and the speedrun model's refusal of small images without the option that resizes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_predict_inputs_sweep import text_run  # noqa: F401  (a module-scoped fixture: a finished text run)
from trainlab.cli import main
from trainlab.config import load_config
from trainlab.data import Dataset, Split
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.run_checks import warn_if_raw_scale_targets

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _regression(y: torch.Tensor) -> Dataset:
    x = torch.zeros(len(y), 2)
    empty = Split(x[:0], y[:0])
    return Dataset(Split(x, y), empty, empty, "regression")


def _price50() -> torch.Tensor:
    """Targets of the sweep's repro: mean 50, std 18 (customers' price / 2.5), below the > 100 rule."""
    generator = torch.Generator().manual_seed(0)
    return 50 + 18 * torch.randn(512, generator=generator)


# --------------------------------------------------------------------------- 1. targets out of an lr-bounded reach

def test_targets_beyond_lr_x_steps_of_adam_are_warned_with_the_numbers(capsys):
    y = _price50()
    warn_if_raw_scale_targets(_regression(y), build_loss("mse"), False, {"name": "adam", "lr": 0.05}, 480,
                              torch.nn.Linear(2, 1))  # inputs of mean 0: the reach is the bias's, lr x steps
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: the regression targets (mean ") and len(err.splitlines()) == 1
    assert f"mean {float(y.double().mean()):.4g}, std {float(y.double().std()):.4g}" in err
    assert "optimizer 'adam' moves a weight at most about lr per step" in err
    assert "this one-layer model's mean output moves at most 24 (lr x steps x (1 + sum of the inputs' |means|) " \
           "= 0.05 x 480 x 1) from its start" in err
    assert err.endswith("set data.standardize_target: true (metrics and predictions stay in the original units)")


@pytest.mark.parametrize("standardized, optimizer, steps", [
    (True, {"name": "adam", "lr": 0.05}, 480),  # standardised: nothing to reach
    (False, {"name": "adam", "lr": 0.05}, 1200),  # 60 > mean 50: within reach
    (False, {"name": "sgd", "lr": 0.05}, 480),  # sgd's step is the gradient's size: no such bound, only > 100
    (False, {"name": "adam", "lr": "auto"}, 480),  # lr not yet found: no plan to measure against
    (False, None, None),  # a caller without the plan: the scale rule alone
])
def test_targets_within_reach_or_under_unbounded_optimizers_are_not_warned(capsys, standardized, optimizer, steps):
    warn_if_raw_scale_targets(_regression(_price50()), build_loss("mse"), standardized, optimizer, steps,
                              torch.nn.Linear(2, 1))
    assert capsys.readouterr().err == ""


def test_a_mean_out_of_reach_but_small_beside_the_spread_is_not_called_unstandardised(capsys):
    """Targets of mean 0.026, std 0.88 (as good as standardised) under adam at lr 1e-3 for 9 steps were told
    they "are not standardised": missing that mean costs R^2 about 0.026^2 / 0.88^2 = 0.09%."""
    generator = torch.Generator().manual_seed(0)
    y = torch.randn(512, generator=generator)
    y = (y - y.mean()) / y.std() * 0.88 + 0.026
    warn_if_raw_scale_targets(_regression(y), build_loss("mse"), False, {"name": "adam", "lr": 1e-3}, 9,
                              torch.nn.Linear(2, 1))
    assert capsys.readouterr().err == ""
    # the same reach with the mean a third of the spread (R^2 cost 11%): warned
    warn_if_raw_scale_targets(_regression(y + 0.27), build_loss("mse"), False, {"name": "adam", "lr": 1e-3}, 9,
                              torch.nn.Linear(2, 1))
    assert "are not standardised, and optimizer 'adam' moves a weight" in capsys.readouterr().err


def test_a_model_of_more_layers_or_inputs_of_large_means_reach_further_and_are_not_warned(capsys):
    """Hidden units (an MLP) add reach no simple bound gives: no warning; a one-layer model's weights reach
    through its inputs' means: mean 50 is within 0.05 x 480 x (1 + 2 x 1) = 72 for inputs of mean 1."""
    y = _price50()
    mlp = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    warn_if_raw_scale_targets(_regression(y), build_loss("mse"), False, {"name": "adam", "lr": 0.05}, 480, mlp)
    data = _regression(y)
    data.train.x.fill_(1.0)
    warn_if_raw_scale_targets(data, build_loss("mse"), False, {"name": "adam", "lr": 0.05}, 480,
                              torch.nn.Linear(2, 1))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name, options, lr", [
    ("adam", {}, 0.05), ("adamw", {"weight_decay": 0.0}, 0.05), ("nadam", {}, 0.05), ("adamax", {}, 0.05),
    ("adagrad", {}, 0.05), ("lion", {}, 0.01), ("adam_textbook", {}, 0.05), ("schedule_free_adamw", {}, 0.05),
])
def test_the_reach_named_bounds_what_the_optimizer_moves_a_bias(name, options, lr):
    """The warning's premise, against the optimizers themselves: a bias alone, from 0, pulled toward 50 by
    the mse gradient for ``steps`` steps ends no further than about lr x steps (adamax's decaying max of
    |g| lets it pass by 0.15% here) and near it: the bound is tight for a gradient of steady sign. RAdam,
    whose first steps are momentum SGD's, passes it (24 in 200 steps of lr 0.05) and is not in the set."""
    from trainlab.optim import build_optimizer
    from trainlab.run_checks import LR_BOUNDED_STEP

    assert name in LR_BOUNDED_STEP
    steps = 200
    bias = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer({"name": name, "lr": lr, **options}, [{"params": [bias], "group": "no_decay"}])
    for _ in range(steps):
        optimizer.zero_grad()
        ((bias - 50.0) ** 2).mean().backward()
        optimizer.step()
    moved = float(bias.detach()[0])
    assert moved <= lr * steps * 1.01
    assert moved >= (0.1 if name == "adagrad" else 0.5) * lr * steps  # adagrad's steps shrink as 1/sqrt(t)
    assert "radam" not in LR_BOUNDED_STEP


@pytest.mark.parametrize("example", ["linear_regression_gd", "linear_regression_sgd", "robust_regression_huber",
                                     "robust_regression_mse"])
def test_the_examples_regression_targets_are_within_reach(example, capsys, monkeypatch):
    """The project's own regression recipes (linear_regression_gd is the README's quick start) measured
    against their own plan: none is warned (sgd: only the > 100 rule; robust: mean 3 under adam's reach of
    lr 0.05 x its steps)."""
    from trainlab.builders import build

    monkeypatch.chdir(EXAMPLES.parent)
    config = load_config(EXAMPLES / f"{example}.yaml")
    built = build(config, quiet=True)
    capsys.readouterr()
    warn_if_raw_scale_targets(built.data, built.loss, config.data.standardize_target,
                              config.strategy.optimizer.spec(), built.trainer.total_steps, built.model)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- 2. a switched source's leftover options

def test_a_switched_sources_leftover_option_says_how_to_remove_it_on_the_command_line(tmp_path, capsys):
    config = str(EXAMPLES / "linear_regression_gd.yaml")
    code = main(["train", config, "--set", "data.source=diabetes", "--out", str(tmp_path / "x"), "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: data source 'diabetes' has no option 'n' (options: none; shared data keys: ")
    assert lines[0].endswith("); remove it with --set '~data.n'")
    # the hint works: with the key removed the run goes on
    code = main(["train", config, "--set", "data.source=diabetes", "--set", "~data.n", "--set", "strategy.epochs=1",
                 "--out", str(tmp_path / "y"), "--quiet"])
    assert code == 0, capsys.readouterr().err


def test_from_python_the_leftover_option_is_a_key_to_remove_from_data(tmp_path):
    from trainlab.experiment import train

    with pytest.raises(ConfigError) as caught:
        train(load_config(EXAMPLES / "linear_regression_gd.yaml", ["data.source=diabetes"]), out=str(tmp_path / "x"))
    assert str(caught.value).endswith("); remove the key 'n' from data")
    assert "--set" not in str(caught.value)


def test_a_typo_keeps_its_suggestion_without_a_removal_hint(tmp_path, capsys):
    code = main(["train", str(EXAMPLES / "linear_regression_gd.yaml"), "--set", "data.nn=3",
                 "--out", str(tmp_path / "x"), "--quiet"])
    line = capsys.readouterr().err.strip()
    assert code == 2 and "has no option 'nn'; did you mean 'n'?" in line and "remove" not in line


# --------------------------------------------------------------------------- 3. text predict names the input

def test_text_predict_of_a_folder_names_the_input_not_data_path(text_run, tmp_path, capsys):  # noqa: F811
    folder = tmp_path / "texts"
    folder.mkdir()
    assert main(["predict", str(text_run), str(folder)]) == 3
    line = capsys.readouterr().err.strip()
    assert line == f"error: the input '{folder}' is a folder, not a file; expected a text file with a header row"


def test_read_texts_of_a_folder_names_the_input(tmp_path):
    from trainlab.data.predict_media import read_texts

    with pytest.raises(DataError, match=r"^the input '.*' is a folder, not a file"):
        read_texts(tmp_path, "text_tsv", {}, {"tokenizer": "word", "vocab": ["<pad>", "<unk>", "a"], "max_length": 4})


# --------------------------------------------------------------------------- 4. airbench on small images

@pytest.mark.parametrize("name", ["airbench", "airbench_muon"])
def test_airbench_refuses_small_images_naming_the_resize_option(name):
    from trainlab.models import build_model

    with pytest.raises(ConfigError) as caught:
        build_model({"name": name}, (3, 8, 8), 10)
    assert str(caught.value) == (f"model '{name}': images of 8x8 are too small for whiten_kernel=2 and 3 pooling "
                                 "stages of 2 (need >= 9x9: whiten_kernel + 7); use model.whiten_kernel <= 1 (the "
                                 "largest for 8x8), larger images, or resize them (data.size: 32 for an image_folder, "
                                 "the CIFAR size its lrs were tuned on)")
    build_model({"name": name}, (3, 9, 9), 10)  # the size the message names is enough


def test_the_named_option_upscales_8x8_images_to_what_airbench_takes(tmp_path):
    """data.size: 32, as the refusal says, turns an image_folder of 8x8 PNGs into 32x32 inputs."""
    from PIL import Image

    from trainlab.data.images import image_folder
    from trainlab.models import build_model

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    raw = image_folder(str(tmp_path), size=32, workers=0)
    assert tuple(raw.x_train.shape[1:]) == (3, 32, 32)
    build_model({"name": "airbench_muon"}, tuple(raw.x_train.shape[1:]), 2)



def test_a_run_warns_of_targets_out_of_adams_reach(capsys):
    """Through the engine: the builder passes the optimizer and the planned steps (mean 50 > 0.05 x 30 steps)."""
    import trainlab

    y = _price50()[:120].reshape(-1, 1)
    x = torch.randn(120, 3, generator=torch.Generator().manual_seed(1))
    x = x - x.mean(dim=0)  # centred: the one-layer model's reach is its bias's, lr x steps
    for lr, warned in ((0.05, True), (2.0, False)):  # 2.0 x 30 = 60 > 50: within reach
        trainlab.fit(torch.nn.Linear(3, 1), train=(x, y), seed=0, runtime={"device": "cpu"}, task="regression",
                     strategy={"loss": "mse", "optimizer": {"name": "adam", "lr": lr}, "batch_size": 40,
                               "epochs": 10})
        assert ("moves at most 1.5 (lr x steps x" in capsys.readouterr().err) == warned


def test_targets_of_several_columns_are_judged_per_column_and_the_column_is_named(capsys):
    """Averaged over the columns, a large column next to a unit-scale one passed unwarned (mean 75), and two
    columns of opposite sign read as mean 0 with a std that was their gap."""
    generator = torch.Generator().manual_seed(0)
    unit = torch.randn(400, generator=generator)
    large = 150 + torch.randn(400, generator=generator)
    warn_if_raw_scale_targets(_regression(torch.stack([unit, large], dim=1)), build_loss("mse"), False)
    expected = np.array([float(large.double().mean()), float(large.double().std())])
    err = capsys.readouterr().err
    # counted from 1, as a user counts (it said "column 1 of 2", 0-based, of this second column)
    assert (f"the regression targets are large (column 2 of 2: mean {expected[0]:.4g}, std {expected[1]:.4g}) "
            "and not standardised") in err
    named = _regression(torch.stack([unit, large], dim=1))
    named.extras["target_names"] = ["rooms", "price"]  # a CSV's data.target columns
    warn_if_raw_scale_targets(named, build_loss("mse"), False)
    assert "the regression targets are large (column 'price', 2 of 2: mean " in capsys.readouterr().err
    mirrored = 120 + 4 * torch.randn(400, generator=generator)
    warn_if_raw_scale_targets(_regression(torch.stack([mirrored, -mirrored], dim=1)), build_loss("mse"), False)
    err = capsys.readouterr().err
    assert f"(column 1 of 2: mean {float(mirrored.double().mean()):.4g}, std {float(mirrored.double().std()):.4g})" in err
    warn_if_raw_scale_targets(_regression(torch.stack([unit, 2 * unit], dim=1)), build_loss("mse"), False)
    assert capsys.readouterr().err == ""


def test_the_first_step_advice_keeps_the_datas_scale_and_is_for_a_non_finite_loss_only():
    """At step 1 no lr made the loss, but targets of 1e22 may (the advice had dropped them), and non-finite
    weights at step 1 are an lr's (an lr of 1e38 was told 'no learning rate made it')."""
    from trainlab.divergence_advice import diverged_at_first_step, divergence_advice

    huge = _regression(1e22 + 1e21 * torch.randn(200, generator=torch.Generator().manual_seed(0)))
    advice = divergence_advice(huge, standardized_target=False, first_step=True)
    assert advice.startswith("that loss came before any weight had moved, so no learning rate made it") \
        and "for the targets: " in advice, advice
    clipped = divergence_advice(huge, standardized_target=False, clip_grad_norm=1.0, first_step=True)
    assert clipped == advice  # a clipped run's first step: still no lr made it (the clip's advice replaced it)
    assert diverged_at_first_step([{"event": "divergence", "step": 1, "problem": "non-finite loss"}])
    assert not diverged_at_first_step([{"event": "divergence", "step": 1, "problem": "non-finite weights"}])
    assert not diverged_at_first_step([{"event": "divergence", "step": 2, "problem": "non-finite loss"}])
