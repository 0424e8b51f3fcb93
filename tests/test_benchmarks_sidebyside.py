"""benchmarks.sidebyside: the summary of interleaved chunk timings, checked against NumPy; trainlab's side
built as ``trainlab train`` runs it (the run folder's callbacks in a temporary folder, removed after)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from benchmarks.sidebyside import as_trainlab_train, summarize
from tests.conftest import DIGITS_MLP
from trainlab.callbacks.base import Callback
from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.callbacks.metrics_recorder import MetricsRecorder
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.config import validate


@pytest.mark.parametrize("ratios", [[1.0, 2.0], [1.0, 1.5, 4.0], [0.9, 1.1, 1.0, 1.3, 0.95, 1.2]])
def test_quartiles_are_numpys_linear_percentiles_within_the_observed_ratios(ratios):
    pairs = [(ratio * 2.0, 2.0) for ratio in ratios]  # ours, theirs: the ratio is ours / theirs
    summary = summarize(pairs)
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    assert (summary["q1"], summary["median"], summary["q3"]) == pytest.approx((q1, median, q3))
    assert min(ratios) <= summary["q1"] <= summary["q3"] <= max(ratios)
    assert summary["total"] == pytest.approx(sum(ratios) / len(ratios))


class _CountsSteps(Callback):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, view, loss) -> None:
        self.steps += 1


def test_trainlabs_side_trains_with_the_run_folders_callbacks_in_a_folder_removed_afterwards():
    raw = copy.deepcopy(DIGITS_MLP)
    raw["strategy"]["epochs"] = 1
    counter = _CountsSteps()
    with as_trainlab_train(validate(raw)) as built:
        kinds = {type(callback) for callback in built.trainer.callbacks.callbacks}
        assert {CheckpointSaver, MetricsRecorder, SignalStop} <= kinds, kinds
        recorder = next(cb for cb in built.trainer.callbacks.callbacks if isinstance(cb, MetricsRecorder))
        folder = Path(recorder.run_dir.path)
        built.trainer.add_callbacks([counter])
        built.trainer.fit()
        assert counter.steps == built.trainer.plan.steps_per_epoch > 0
        assert folder.is_dir() and any(folder.iterdir())  # the run folder's callbacks wrote into it
    assert not folder.exists()
