"""The class-label messages of :mod:`trainlab.data.labels`: a given split's label the binary training labels
lack gets the same explanation and fix as a multiclass one, and the messages about class names name the
option the caller has (a config run's ``data.class_names`` or the source's names; ``trainlab.fit``'s
``class_names``)."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
import torch

import trainlab
from trainlab.data.labels import read_class_labels
from trainlab.errors import DataError


def test_a_binary_training_set_and_a_test_label_beyond_it_get_the_fix_a_multiclass_one_gets(capsys):
    """0/1 training labels and a test label 2: the same explanation and fix as for multiclass (name all the
    classes, which makes the task multiclass, or add training rows), and the fix named works (fit: class_names)."""
    labels, _ = read_class_labels("binary", np.arange(30) % 2, None)
    with pytest.raises(DataError) as caught:
        labels.given("test y", np.array([0, 1, 3, 2]), "class_names")
    assert str(caught.value) == (
        "test y label 3 at row 2 (counting from 0) is out of range [0, 2) (binary labels are 0 and 1): the classes "
        "are inferred from the training labels, which go up to 1, so the training data has no row of class 3; to "
        "keep it, set class_names to the names of all the classes (at least 4, for labels 0..3, a multiclass task), "
        "or add training rows of it")
    x, y = np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) % 3
    strategy = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "epochs": 1}
    with pytest.raises(DataError, match=r"set class_names to the names of all the classes \(at least 3, for labels "
                                        r"0\.\.2, a multiclass task\)"):
        trainlab.fit(torch.nn.Linear(2, 2), (x[y < 2], y[y < 2]), strategy, test=(x, y))
    result = trainlab.fit(torch.nn.Linear(2, 3), (x[y < 2], y[y < 2]), strategy, test=(x, y), class_names=list("abc"))
    assert "accuracy" in result.summary["test"]
    assert "class 2 ('c') of the 3 named classes" in capsys.readouterr().err


def test_the_class_names_messages_name_the_option_the_caller_gives():
    """A config run's names come from data.class_names or the source; trainlab.fit's from its class_names."""
    y = np.arange(30) % 3
    for names_key, said in ((None, "(data.class_names, or the source's)"), ("class_names", "(class_names)")):
        given = {} if names_key is None else {"names_key": names_key}
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            read_class_labels("multiclass", y, list("abcd"), **given)  # class 3 has no training rows
        assert f"class 3 ('d') of the 4 named classes {said} has no training rows" in err.getvalue()
        with pytest.raises(DataError, match=re.escape(f"but 2 class names are given {said}:")):
            read_class_labels("multiclass", y, list("ab"), **given)
        with pytest.raises(DataError, match=re.escape(f"but 2 class names are given {said}; give one name per")):
            read_class_labels("multiclass", y + 1, list("ab"), **given)  # labels 1..3: three values
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            read_class_labels("multiclass", y + 1, list("abcd"), **given)  # 1..3 as indices into 4 names
        assert f"into the 4 class names {said}, so class 0 ('a') has no training rows" in err.getvalue()



def test_a_given_split_of_label_columns_gets_the_one_label_per_row_error_not_a_type_error():
    """Rows of two labels as the validation labels of a multiclass set, one beyond the training ones: the
    beyond-training check looked at rows as labels and raised a bare TypeError (exit 4 from the CLI). ((N, 1)
    columns, the Keras habit, are read as their one label per row.)"""
    labels, _ = read_class_labels("multiclass", np.arange(30) % 3, None)
    with pytest.raises(DataError, match="one label per row"):
        labels.given("val y", np.array([[0, 1], [1, 2], [2, 0], [3, 1]]))
