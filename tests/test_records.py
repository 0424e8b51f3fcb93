"""records: which metrics.jsonl lines are epoch records."""

from __future__ import annotations

import pytest

from trainlab.records import is_epoch_record


@pytest.mark.parametrize(("record", "expected"), [
    ({"epoch": 1, "step": 10, "val_loss": 0.5}, True),  # an epoch record
    ({"scope": "step", "step": 5, "epoch": 0.5, "train_loss": 0.7}, False),  # a step record: fractional epoch
    ({"event": "rollback", "step": 8, "epoch": 1}, False),  # an event record
    ({"step": 3, "train_loss": 0.9}, False),  # no epoch
    ({"scope": "epoch", "epoch": 2}, True),  # any scope but "step"
])
def test_is_epoch_record_has_epoch_and_is_no_step_or_event_record(record, expected):
    assert is_epoch_record(record) is expected
