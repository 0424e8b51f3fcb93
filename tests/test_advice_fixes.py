"""The advice features as a user test met them: ``trainlab advise`` and ``loss: auto`` on z-scored counts,
``lr: auto`` on learnable imbalanced data, the multi-target huber note under ``standardize_target``, the
time budget the "leaves no time to train" error proposes, and ``lr: auto`` with an optimizer of fixed lr."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from sklearn.datasets import make_classification

from trainlab.config import Config

MLP_RUN = {"model": {"name": "mlp", "hidden": [16]},
           "strategy": {"loss": "auto", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 64, "epochs": 10},
           "runtime": {"num_threads": 1, "device": "cpu"}, "output": {"progress": "off"}}


def _config(path, **data) -> dict:
    return {**MLP_RUN, "data": {"source": "npz", "path": str(path), **data}}


def _poisson_counts(path) -> np.ndarray:
    """Counts whose rate depends on the features: whole numbers >= 0 with a 0 and many values."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 5)).astype(np.float32)
    y = rng.poisson(np.exp(1.5 + 0.8 * x[:, 0] + 0.3 * x[:, 1])).astype(np.float32)
    np.savez(path, x=x, y=y)
    return y


def _imbalanced(path) -> None:
    x, y = make_classification(1500, 8, n_informative=5, weights=[.92, .08], random_state=3)
    np.savez(path, x=x.astype(np.float32), y=y)


# --------------------------------------------------------------------------- 1. counts under standardize_target


def _advised_by_cli(config_path, capsys, *sets: str) -> str:
    from trainlab.cli import main

    capsys.readouterr()
    args = ["advise", str(config_path)]
    for value in sets:
        args += ["--set", value]
    assert main(args) == 0
    out = capsys.readouterr().out
    return next(line for line in out.splitlines() if line.startswith("loss:")).split()[1]


def _advised_by_loss_auto(raw: dict) -> str:
    from trainlab.builders import build_data, build_loss_for

    config = Config.model_validate(raw)
    notes: dict = {}
    build_loss_for(config, build_data(config), notes)
    return notes["loss_advice"]["loss"]["name"]


@pytest.mark.parametrize("standardize_target", [True, False])
def test_advise_and_loss_auto_agree_on_counts_with_and_without_standardize_target(tmp_path, capsys,
                                                                                  standardize_target):
    """advise said poisson_nll from the z-scores (mean -4e-9, variance 1.0) where loss: auto chose another loss:
    both now ask one rule, and z-scored counts (negative values, whole numbers no more) get no count loss."""
    from trainlab.builders import build_data

    counts = _poisson_counts(tmp_path / "counts.npz")
    assert counts.min() == 0 and len(np.unique(counts)) > 30  # counts as the loader marks them
    raw = _config(tmp_path / "counts.npz", standardize_target=standardize_target)
    path = tmp_path / "counts.yaml"
    path.write_text(yaml.safe_dump(raw))
    cli = _advised_by_cli(path, capsys)
    auto = _advised_by_loss_auto(raw)
    assert cli == auto
    data = build_data(Config.model_validate(raw))
    seen = data.train.y.numpy().astype(np.float64)
    assert data.extras.get("target_kind") == "count"
    if standardize_target:  # what the loss sees: z-scores, no counts
        assert abs(seen.mean()) < 1e-5 and abs(seen.std() - 1) < 1e-3 and seen.min() < 0
        assert cli != "poisson_nll"
    else:
        assert cli == "poisson_nll"


def test_marked_counts_that_are_z_scores_say_why_they_get_no_poisson_nll():
    from trainlab.advisor import advise, counts_as_given

    counts = np.random.default_rng(1).poisson(4.0, 2000).astype(np.float64)
    z = (counts - counts.mean()) / counts.std()
    marked = {"target_kind": "count"}
    assert counts_as_given(counts, marked) and not counts_as_given(z, marked)
    advice = advise(z, "regression", marked)
    assert advice.loss["name"] != "poisson_nll"
    assert "the data marks the target as counts" in advice.reasons[0]
    assert "data.standardize_target: false" in advice.reasons[0]
    assert f"from {z.min():.3g} to {z.max():.3g}" in advice.reasons[0]


# --------------------------------------------------------------------------- 2. lr: auto on imbalanced data


def test_lr_auto_finds_an_lr_on_learnable_imbalanced_data_the_100_step_sweep_shows_no_descent_on(tmp_path):
    """make_classification 92/8, bce pos_weight 10.7: 100 steps showed no descent (trend p = 0.025) and
    lr: auto failed with exit 4 where `lr-find --steps 300` suggested 0.111 and lr 0.01 trains fine."""
    from trainlab.builders import build, run_scope
    from trainlab.lr_find_run import lr_find_config
    from trainlab.lr_finder import NoDescentError

    _imbalanced(tmp_path / "imb.npz")
    raw = _config(tmp_path / "imb.npz")
    with pytest.raises(NoDescentError, match=r"--steps 300"):  # the 100-step sweep alone: no descent
        lr_find_config(Config.model_validate(raw), num_steps=100)
    raw["strategy"] = {**raw["strategy"], "optimizer": {"name": "adam", "lr": "auto"}}
    config = Config.model_validate(raw)
    with run_scope(config):
        built = build(config, quiet=True)
    assert built.notes["loss_advice"]["loss"] == {"name": "bce", "pos_weight": pytest.approx(10.7, abs=0.2)}
    assert 1e-3 < built.notes["lr_auto"] < 1.0
    assert built.config.strategy.optimizer.lr == built.notes["lr_auto"]


def test_longer_sweep_steps_are_three_times_capped_at_twenty_passes_over_the_data():
    from trainlab.lr_finder import longer_sweep_steps

    for steps_per_epoch in (1, 2, 5, 8, 15, 100):
        expected = max(100, min(300, 20 * steps_per_epoch))
        assert longer_sweep_steps(100, steps_per_epoch) == expected


def test_lr_auto_reruns_once_then_names_lr_find_with_more_steps_and_a_fixed_lr(tmp_path, monkeypatch):
    """Scripted flat sweeps (noise around 0.69): the 100-step one, then one of 300, then one line that names
    `trainlab lr-find CONFIG --steps 900` and a fixed lr as the way out of lr: auto."""
    import trainlab.step_builders
    from trainlab.builders import build, run_scope
    from trainlab.errors import TrainingError

    swept: list[int] = []

    def flat_sweep(step, batches, start_lr=1e-7, end_lr=10.0, num_steps=100, **_):
        swept.append(num_steps)
        lrs = list(np.geomspace(start_lr, end_lr, num_steps))
        return lrs, list(0.69 + np.random.default_rng(num_steps).normal(0, 0.03, num_steps))

    monkeypatch.setattr(trainlab.step_builders, "range_test_step", flat_sweep)
    config = _imbalanced_config(tmp_path, "adam")
    with run_scope(config), pytest.raises(TrainingError) as caught:
        build(config, quiet=True)
    assert swept == [100, 300]  # 960 training rows at batch 64: 15 steps an epoch, 300 steps are 20 passes
    message = str(caught.value)
    assert "\n" not in message and "after sweeping 100 and then 300 steps" in message
    assert "trainlab lr-find CONFIG --steps 900" in message and "fixed strategy.optimizer.lr" in message


def test_the_no_descent_message_of_lr_find_names_a_longer_sweep():
    from trainlab.lr_finder import NoDescentError, suggest_lr

    rng = np.random.default_rng(0)
    lrs = np.logspace(-7, 1, 100)
    flat = 0.69 + rng.normal(0, 0.03, 100)
    with pytest.raises(NoDescentError, match=r"sweep more steps \(trainlab lr-find CONFIG --steps 300\)"):
        suggest_lr(lrs, flat)


# --------------------------------------------------------------------------- 3. multi-target huber note


def _two_columns_one_with_outliers() -> np.ndarray:
    rng = np.random.default_rng(0)
    wide = rng.normal(0, 1, 2000)
    wide[rng.choice(2000, 100, replace=False)] += rng.choice([-60.0, 60.0], 100)  # 5% gross outliers
    return np.column_stack([wide, rng.normal(0, 1, 2000)])


def _robust_sigma(column: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(column - np.median(column))))


def test_z_scored_targets_whose_robust_scales_still_differ_are_not_told_to_standardize():
    """With standardize_target on, advise still said "with data.standardize_target: true each target is in
    units of its own std" while the robust sigmas differed: the outliers inflate the wide column's sd."""
    from trainlab.advisor import advise
    from trainlab.losses import build_loss

    y = _two_columns_one_with_outliers()
    z = (y - y.mean(0)) / y.std(0)  # what data.standardize_target hands the loss
    sigmas = [_robust_sigma(z[:, j]) for j in range(2)]
    assert max(sigmas) / min(sigmas) > 3  # the sd of the outlier column is ~13x its robust sigma
    advice = advise(z, "regression")
    assert advice.loss["name"] == "huber"
    assert advice.evidence["robust_sigma"] == pytest.approx(sigmas, rel=1e-3)
    note = [r for r in advice.reasons if "robust sigmas differ" in r]
    assert len(note) == 1
    assert f"{max(sigmas) / min(sigmas):.1f}x" in note[0] and "z-scored already" in note[0]
    assert "with data.standardize_target: true" not in note[0]
    narrowest = float(note[0].split("the narrowest robust sigma = ")[1].split()[0])
    assert narrowest == pytest.approx(1.345 * min(sigmas), rel=5e-3)  # 3 significant digits
    adaptive = next(a.loss for a in advice.alternatives if a.loss["name"] == "adaptive")
    assert adaptive["num_dims"] == 2 and "num_dims: 2" in note[0]
    build_loss(adaptive)  # a spec the loss registry takes

    raw_units = advise(y * np.array([1.0, 20.0]), "regression")  # in their own units: standardize is the fix
    raw_note = [r for r in raw_units.reasons if "robust sigmas differ" in r]
    assert len(raw_note) == 1 and "with data.standardize_target: true" in raw_note[0]


# --------------------------------------------------------------------------- 4. the time budget proposed


def test_the_proposed_time_budget_fits_ten_steps_when_the_next_calibration_takes_longer():
    """The calibration took 3.0 s: 'raise time_budget_s to at least 3'; with 3 it took 3.3 s: 'at least 4'."""
    from trainlab.time_budget import MIN_USEFUL_STEPS, StepTiming, least_useful_budget_s, steps_within_budget

    first = StepTiming(step_s=0.0005, validation_s=0.0009, calibration_s=2.96, timed_steps=50)
    proposed = least_useful_budget_s(first)
    assert proposed == math.ceil(1.5 * (2.96 + 10 * 0.0005 + 0.0009))  # 5
    again = StepTiming(step_s=0.0005, validation_s=0.0009, calibration_s=3.3, timed_steps=50)
    assert steps_within_budget(proposed, again, steps_per_epoch=15, cap_steps=150) >= MIN_USEFUL_STEPS


# --------------------------------------------------------------------------- 5. lr: auto with a fixed lr


def test_lr_auto_with_an_optimizer_whose_lr_is_fixed_is_refused_before_the_range_test(tmp_path, monkeypatch):
    """adadelta_zeiler failed with "set lr to 1.0 ... Received: lr=1e-07", the sweep's start shown as the user's."""
    import trainlab.step_builders
    from trainlab.builders import build, run_scope
    from trainlab.errors import ConfigError

    def no_sweep(*args, **kwargs):
        raise AssertionError("the range test ran")

    monkeypatch.setattr(trainlab.step_builders, "range_test_step", no_sweep)
    config = _imbalanced_config(tmp_path, "adadelta_zeiler")
    with run_scope(config), pytest.raises(ConfigError) as caught:
        build(config, quiet=True)
    message = str(caught.value)
    assert "lr: auto cannot be used with optimizer 'adadelta_zeiler'" in message
    assert "no learning rate" in message and "1e-07" not in message and "\n" not in message


@pytest.mark.parametrize("name", ["adam", "prodigy", "lbfgs", "sgd"])
def test_optimizers_whose_lr_scales_the_step_may_search_it(name):
    from trainlab.lr_finder import check_lr_searchable

    check_lr_searchable({"name": name, "lr": "auto"})


def test_a_compare_or_schedule_preflight_names_the_fixed_lr_not_a_stand_in(tmp_path):
    """The preflight (schedule, compare, tune) put lr 1e-3 in place of lr: auto and reported adadelta_zeiler's
    "Received: lr=0.001", an lr the user never set."""
    from trainlab.config import validate
    from trainlab.errors import ConfigError
    from trainlab.preflight import check_components

    config = validate({"name": "z", "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
                       "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adadelta_zeiler", "lr": "auto"},
                                    "batch_size": 16, "epochs": 1}})
    with pytest.raises(ConfigError, match="lr: auto cannot be used with optimizer 'adadelta_zeiler'") as caught:
        check_components(config)
    assert "0.001" not in str(caught.value)


def test_the_proposed_steps_of_a_long_sweep_stay_within_what_lr_find_takes():
    """Review: 3x a long sweep's steps was proposed beyond --steps' limit, whose command is then refused."""
    import numpy as np

    from trainlab.lr_finder import MAX_LR_FIND_STEPS, NoDescentError, suggest_lr

    rng = np.random.default_rng(0)
    n = 40_000
    lrs = np.geomspace(1e-7, 10, n)
    with pytest.raises(NoDescentError, match=f"--steps {MAX_LR_FIND_STEPS}\\b"):
        suggest_lr(lrs, 1.0 + 0.01 * rng.normal(size=n), skip_start=n // 10)


def _imbalanced_config(tmp_path, optimizer: str) -> Config:
    """The imbalanced data's config with ``optimizer`` at lr: auto."""
    _imbalanced(tmp_path / "imb.npz")
    raw = _config(tmp_path / "imb.npz")
    raw["strategy"] = {**raw["strategy"], "optimizer": {"name": optimizer, "lr": "auto"}}
    return Config.model_validate(raw)


def test_lr_find_judges_no_reach_by_its_placeholder_start_lr(tmp_path, capsys):
    """An advisor trial: lr-find of an lr: auto regression (labels 1..5, mean 2.9) warned "mean output moves at
    most 8e-05 (lr x steps ... = 1e-07 x 800 x 1)": the sweep's start lr read as the run's; train said nothing."""
    from trainlab.lr_find_run import lr_find_config

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4)).astype(np.float32)
    y = np.clip(np.round(2.9 + x @ np.array([0.6, -0.4, 0.3, 0.2])), 1, 5).astype(np.float32)
    np.savez(tmp_path / "ordinal.npz", x=x, y=y)
    raw = {"name": "o", "seed": 0, "data": {"source": "npz", "path": str(tmp_path / "ordinal.npz"), "task": "regression"},
           "model": {"name": "linear"}, "runtime": {"num_threads": 1},
           "strategy": {"loss": "mse", "optimizer": {"name": "adam", "lr": "auto"}, "batch_size": 32, "epochs": 20},
           "output": {"progress": "off"}}
    capsys.readouterr()
    lr_find_config(Config.model_validate(raw), num_steps=100)
    assert "mean output moves at most" not in capsys.readouterr().err
