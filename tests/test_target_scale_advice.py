"""trainlab.target_scale_advice: targets as data.standardize_target makes them (against scikit-learn's
StandardScaler), and the advised losses' numbers for them beside the raw ones."""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import StandardScaler

from trainlab.advisor import Advice, Alternative
from trainlab.target_scale_advice import off_scale_note, standardised, standardised_numbers


def test_standardised_targets_are_scikit_learns_z_scores_and_a_constant_column_keeps_scale_1():
    rng = np.random.default_rng(0)
    y = np.column_stack([rng.normal(5e6, 2e6, 200), rng.normal(-3, 0.01, 200)])
    np.testing.assert_allclose(standardised(y), StandardScaler().fit_transform(y), rtol=1e-10, atol=1e-12)
    constant = np.column_stack([y[:, 0], np.full(200, 7.0)])
    assert (standardised(constant)[:, 1] == 0).all()  # (7 - 7) / 1, as preprocessing keeps scale 1
    rounded = np.full(200, 0.3)  # its std is 5.6e-17 (rounding), constant by scikit-learn's bound: not 1.0s
    assert np.abs(standardised(rounded)).max() < 1e-12


def _advice(loss: dict, *alternatives: dict) -> Advice:
    return Advice(loss, "regression", [], ["mse"], {}, [Alternative(spec, "") for spec in alternatives])


def test_the_numbers_of_the_standardised_advice_are_said_beside_the_raw_ones():
    raw = _advice({"name": "huber", "delta": 1.35e6}, {"name": "adaptive", "scale": 1e6}, {"name": "log_cosh"})
    scaled = _advice({"name": "huber", "delta": 0.597}, {"name": "adaptive", "scale": 0.44})
    assert standardised_numbers(raw, scaled) == (
        "; standardised, the loss sees z-scores, so huber's delta 0.597 (here 1.35e+06) and adaptive's scale 0.44 "
        "(here 1e+06), as trainlab advise says with --set data.standardize_target=true")
    assert standardised_numbers(_advice({"name": "mse"}), _advice({"name": "mse"})) == ""  # no number to move


def test_targets_of_unit_scale_get_no_note_and_large_ones_one():
    rng = np.random.default_rng(1)
    assert off_scale_note(rng.normal(size=300)) is None
    note = off_scale_note(rng.normal(5e6, 2e6, size=300))
    assert note is not None and note.startswith("the targets are far from unit scale: mean ") and "(large)" in note
