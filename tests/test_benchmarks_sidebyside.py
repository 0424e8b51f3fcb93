"""benchmarks.sidebyside's summary of interleaved chunk timings, checked against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.sidebyside import summarize


@pytest.mark.parametrize("ratios", [[1.0, 2.0], [1.0, 1.5, 4.0], [0.9, 1.1, 1.0, 1.3, 0.95, 1.2]])
def test_quartiles_are_numpys_linear_percentiles_within_the_observed_ratios(ratios):
    pairs = [(ratio * 2.0, 2.0) for ratio in ratios]  # ours, theirs: the ratio is ours / theirs
    summary = summarize(pairs)
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    assert (summary["q1"], summary["median"], summary["q3"]) == pytest.approx((q1, median, q3))
    assert min(ratios) <= summary["q1"] <= summary["q3"] <= max(ratios)
    assert summary["total"] == pytest.approx(sum(ratios) / len(ratios))
