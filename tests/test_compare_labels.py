"""trainlab.compare.labels: long strategy names shortened for tables and charts, distinct where the names are."""

from __future__ import annotations

import pytest

from trainlab.compare.labels import ELLIPSIS, short_labels

STEM = "adam_with_a_very_long_descriptive_name_" * 4


def test_a_name_that_fits_is_its_own_label_and_a_long_one_keeps_its_start_and_end():
    labels = short_labels(["sgd", STEM + "lr=0.01"], width=30)
    assert labels["sgd"] == "sgd"
    label = labels[STEM + "lr=0.01"]
    assert len(label) == 30 and label.startswith("adam_with_a_ve") and label.endswith("lr=0.01")
    assert label.count(ELLIPSIS) == 1


@pytest.mark.parametrize("names", [
    [STEM + "lr=0.001", STEM + "lr=0.002"],  # differ at the end
    [STEM[:150], STEM[:190]],  # one the other's start
    ["x" * 60 + "A" + "y" * 60, "x" * 60 + "B" + "y" * 60],  # differ only in the middle
    ["x" * 30 + "A" + "y" * 50 + "C" + "z" * 30, "x" * 30 + "A" + "y" * 50 + "D" + "z" * 30,
     "x" * 30 + "B" + "y" * 50 + "C" + "z" * 30],  # in two places far apart
])
@pytest.mark.parametrize("width", [24, 40])
def test_names_cut_alike_get_distinct_labels_within_the_width(names, width):
    labels = short_labels(names, width=width)
    assert len(set(labels.values())) == len(names)
    assert all(len(label) <= width for label in labels.values())


def test_names_alike_in_the_middle_show_where_they_differ():
    one, two = "x" * 60 + "A" + "y" * 60, "x" * 60 + "B" + "y" * 60
    labels = short_labels([one, two], width=40)
    assert "A" in labels[one] and "B" in labels[two]


def test_the_modules_examples_hold():
    import doctest

    import trainlab.compare.labels as labels

    result = doctest.testmod(labels)
    assert result.failed == 0 and result.attempted > 0
