"""strategy.min_steps: epochs = max(epochs, ceil(min_steps / steps_per_epoch)), capped by max_steps."""

from __future__ import annotations

import math

import pytest

from trainlab.builders import build, fit_config, run_scope
from trainlab.config import validate
from trainlab.engine.step_budget import epochs_for_step_budget
from trainlab.errors import ConfigError


@pytest.mark.parametrize("epochs, min_steps, per_epoch", [(2, 600, 45), (2, 600, 338), (2, 600, 300), (2, 600, 299),
                                                          (1, 1, 1), (3, 10, 4), (5, None, 7)])
def test_epochs_follow_the_budget(epochs, min_steps, per_epoch):
    expected = epochs if min_steps is None else max(epochs, math.ceil(min_steps / per_epoch))
    got = epochs_for_step_budget(epochs, min_steps, per_epoch)
    assert got == expected
    if min_steps is not None:
        assert got * per_epoch >= min_steps  # the budget is met ...
        assert got == epochs or (got - 1) * per_epoch < min_steps  # ... by the fewest epochs that meet it


def test_the_underfit_review_case_gets_more_epochs():
    """1,600 reviews, val 10% -> 1,440 rows, batch 32 -> 45 steps per epoch: 2 epochs were 90 steps."""
    assert epochs_for_step_budget(2, 600, math.ceil(1440 / 32)) == 14  # 630 steps
    assert epochs_for_step_budget(2, 600, math.ceil(10800 / 32)) == 2  # SST-2's 12,000-row subset: unchanged


def test_budget_errors():
    with pytest.raises(ConfigError, match="set strategy.epochs too"):
        epochs_for_step_budget(None, 100, 10)


def _config(**strategy):
    return validate({
        "name": "budget", "seed": 0, "data": {"source": "synthetic_linear", "n": 100, "n_val": 20, "n_test": 20},
        "model": {"name": "linear"},
        "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 16, **strategy},
        "output": {"progress": "off"},
    })


def test_a_tiny_dataset_trains_the_budgeted_steps():
    """100 rows at batch 16: 7 steps per epoch; 2 epochs would be 14 steps, min_steps 40 gives 6 epochs = 42."""
    built = fit_config(_config(epochs=2, min_steps=40))
    state = built.trainer.state
    assert built.trainer.plan.steps_per_epoch == 7
    assert (state.epoch, state.step) == (6, 42)
    assert built.notes["epochs_for_min_steps"] == 6
    capped = fit_config(_config(epochs=2, min_steps=40, max_steps=10))  # max_steps still ends the run
    assert capped.trainer.state.step == 10
    plain = fit_config(_config(epochs=2))
    assert plain.trainer.state.step == 14 and "epochs_for_min_steps" not in plain.notes


def test_a_stretch_to_many_passes_over_a_tiny_set_is_warned_of(capsys):
    """100 rows at batch 16: 7 steps per epoch; 400 steps need ceil(400 / 7) = 58 epochs."""
    config = _config(epochs=2, min_steps=400)
    with run_scope(config):
        build(config, quiet=True)
    assert "warning: strategy.min_steps=400 makes 58 passes over 100 training rows" in capsys.readouterr().err
    config = _config(epochs=2, min_steps=40)  # 6 epochs: no warning
    with run_scope(config):
        build(config, quiet=True)
    assert "warning" not in capsys.readouterr().err


def test_an_accumulated_step_larger_than_the_training_set_is_warned_of(capsys):
    """The speedrun's 250 x 8 rows per step on 100 rows: one optimizer step per epoch."""
    config = _config(epochs=2, batch_size=50, grad_accum_steps=8)
    with run_scope(config):
        build(config, quiet=True)
    assert "an optimizer step of 50 x 8 (grad_accum_steps) rows exceeds the training set (100 rows): 1 step(s) " \
           "per epoch, 2 in all" in capsys.readouterr().err
    config = _config(epochs=2, batch_size=10, grad_accum_steps=2)
    with run_scope(config):
        build(config, quiet=True)
    assert "warning" not in capsys.readouterr().err


def test_the_oversized_step_warning_counts_a_time_budgets_planned_steps(capsys):
    """With strategy.time_budget_s the run trains the steps its budget plans, not the config's 100,000 epochs."""
    config = _config(epochs=100_000, batch_size=50, grad_accum_steps=8, time_budget_s=3.0)
    with run_scope(config):
        built = build(config, quiet=True, time_budget="calibrate")
    planned = built.notes["time_budget"]["planned_steps"]
    assert planned < 100_000
    assert f"1 step(s) per epoch, about {planned} in all (the time budget's plan)" in capsys.readouterr().err


def test_min_steps_config_errors():
    # as the config loads, before any data is read (a text trial: the data's warnings came first)
    with pytest.raises(ConfigError, match=r"config key 'strategy': min_steps=20 stretches epochs on small datasets; "
                                          r"set epochs too"):
        _config(max_steps=30, min_steps=20)
    with pytest.raises(ConfigError, match="strategy.min_steps"):
        _config(epochs=1, min_steps=0)


def test_the_mode_names_the_rows_of_one_optimizer_step():
    from trainlab.builders import gd_mode

    assert gd_mode(32, 1000) == "mini-batch gradient descent (batch 32)"
    assert gd_mode(250, 49_000, accum=8) == ("mini-batch gradient descent (batch 2000: 8 accumulated "
                                             "micro-batches of 250)")
    assert gd_mode(100, 400, accum=4).startswith("batch gradient descent")
    assert gd_mode(1, 50).startswith("stochastic gradient descent")
