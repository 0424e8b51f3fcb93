"""config_fields wording helpers: counted nouns."""

from __future__ import annotations

import doctest

import pytest

import trainlab.config_fields as config_fields
from trainlab.config_fields import counted


@pytest.mark.parametrize(("n", "noun", "plural", "expected"), [
    (1, "epoch", None, "1 epoch"),
    (2, "epoch", None, "2 epochs"),
    (0, "epoch", None, "0 epochs"),
    (1, "batch", "batches", "1 batch"),
    (3, "batch", "batches", "3 batches"),
    (1, "blank line", None, "1 blank line"),
    (4, "strategy", "strategies", "4 strategies"),
    ("?", "seed", None, "? seeds"),  # a number a record does not hold reads as a plural
])
def test_counted_is_the_number_and_the_noun_singular_only_for_one(n, noun, plural, expected):
    assert counted(n, noun, plural) == expected


def test_counted_docstring_example_holds():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(config_fields.counted, "counted", globs={"counted": counted}):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted == 1
    assert runner.summarize(verbose=False).failed == 0
