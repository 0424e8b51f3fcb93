"""The line ``strategy.min_steps`` prints says how long the run is, also when ``strategy.max_steps`` ends it first."""

from __future__ import annotations

import pytest

from trainlab.builders import fit_config
from trainlab.config import validate


def _config(**strategy):
    """100 rows at batch 16: 7 steps per epoch; 2 epochs are 14 steps, min_steps 40 stretches them to 6 (42)."""
    return validate({
        "name": "note", "seed": 0, "data": {"source": "synthetic_linear", "n": 100, "n_val": 20, "n_test": 20},
        "model": {"name": "linear"},
        "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 16, "epochs": 2,
                     "min_steps": 40, **strategy},
        "output": {"progress": "off"},
    })


@pytest.mark.parametrize("max_steps, steps, note", [
    (None, 42, "strategy.min_steps=40: 6 epochs of 7 steps (strategy.epochs=2 would give 14)"),
    (42, 42, "strategy.min_steps=40: 6 epochs of 7 steps (strategy.epochs=2 would give 14)"),
    (30, 30, "strategy.min_steps=40: 6 epochs of 7 steps, ended at step 30 by strategy.max_steps (strategy.epochs=2 "
             "would give 14)"),
    (14, 14, "strategy.min_steps=40 adds no steps: strategy.max_steps=14 ends the run before strategy.epochs=2 "
             "(14 steps) do"),
    (5, 5, "strategy.min_steps=40 adds no steps: strategy.max_steps=5 ends the run before strategy.epochs=2 "
           "(14 steps) do")])
def test_the_min_steps_note_gives_the_length_the_run_trains(capsys, max_steps, steps, note):
    """With max_steps 5 the note said '6 epochs of 7 steps' (42) for a run of 5 steps."""
    built = fit_config(_config(max_steps=max_steps), quiet=False)
    assert built.trainer.state.step == steps  # the reference: the steps the run took
    lines = [line for line in capsys.readouterr().err.splitlines() if "min_steps" in line]
    assert lines == [note]
