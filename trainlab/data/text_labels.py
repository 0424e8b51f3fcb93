"""The label column of the text sources (``text_tsv``, ``text_csv``): which cells mean "no label" (refused
or dropped by ``data.nan_policy``), and every file's labels as class indices or regression values, by the
rule of :mod:`trainlab.data.text`'s docstring (decided on the training file).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainlab.config_fields import short_repr
from trainlab.data.csv_rows import MISSING
from trainlab.data.labels import warn_case_twins
from trainlab.data.table_diagnosis import not_a_number, parsed_number
from trainlab.errors import DataError
from trainlab.notices import warn

if TYPE_CHECKING:
    from trainlab.data.text import TextTable


def missing_markers(train: TextTable) -> frozenset[str]:
    """The label cells that mean "no label": an empty cell always; ``NA``, ``null``, ``None`` ... (the
    ``csv`` source's markers) only where every other training label is a number, since among names
    they may be a class (LUIS's ``None`` intent, a "not applicable" ``NA``)."""
    return frozenset(MISSING) if _numeric_labels(train) else frozenset({""})


def _numeric_labels(train: TextTable) -> bool:
    """Every training label that is not a missing-value marker is a number (``inf`` and ``1e999`` count:
    a non-finite label in a column of numbers is a bad value, not a class name)."""
    others = [label for label in train.labels or [] if label not in MISSING]
    return bool(others) and all(parsed_number(label) is not None for label in others)


def drop_missing_rows(tables: dict[str, TextTable], files: dict[str, Path], policy: str) -> dict[str, TextTable]:
    """Rows whose label is missing (:func:`missing_markers`), or, where the training labels are numbers, a
    non-finite number (``inf``), and rows whose text is empty (blank: a model would read ``[CLS] [SEP]``):
    refused with their file and line (``data.nan_policy: error``), or dropped with a warning (``drop``), as
    the ``csv`` source treats a missing cell or a NaN/Inf target."""
    markers = missing_markers(tables["train"])
    numeric = _numeric_labels(tables["train"])

    def unusable_label(label: str) -> bool:
        return label in markers or (numeric and finite_number(label) is None and parsed_number(label) is not None)

    out = {}
    for name, table in tables.items():
        labels = table.labels or [""] * len(table.texts)
        has_labels = table.labels is not None
        missing = [i for i, (text, label) in enumerate(zip(table.texts, labels, strict=True))
                   if not text.strip() or (has_labels and unusable_label(label))]
        if not missing:
            out[name] = table
            continue
        if policy != "drop":
            row = missing[0]
            if not table.texts[row].strip():
                what = f"the text is empty ({short_repr(table.texts[row])})"
            else:
                kind = "is missing" if labels[row] in markers else "is not a finite number"
                what = f"the label {kind} ({short_repr(labels[row])})"
            raise DataError(f"{name} file {files[name]} line {table.lines[row]}: {what}; fix the data or set "
                            "data.nan_policy: drop")
        dropped = set(missing)
        kept = table.take([i for i in range(len(table.texts)) if i not in dropped])
        if not kept.texts:
            raise DataError(f"{name} file {files[name]} has no row with a text and a label: every cell of its label "
                            "column is empty, a missing-value marker (NA, null, ...) or not finite (inf), or every "
                            "text is empty; check data.label_column and data.text_column")
        warn(f"data.nan_policy: drop dropped {len(missing)} of {len(table.texts)} rows of {files[name]} "
             "(an empty text, or a missing or non-finite label)")
        out[name] = kept
    return out


@dataclass(frozen=True)
class EncodedLabels:
    """Every file's labels as the model takes them: class indices (int64) or regression values (float32)."""

    by_file: dict[str, np.ndarray]
    class_names: list[str] | None
    task: str


def finite_number(text: str) -> float | None:
    """The label as a finite float, or None (not a number, or ``inf``/``nan``)."""
    value = parsed_number(text)
    return value if value is not None and math.isfinite(value) else None


def _classes_text(classes: Sequence[object]) -> str:
    """``"(classes: negative, neutral, positive)"``, the first 20 of ``classes`` and ``...`` for more."""
    return f"(classes: {', '.join(map(str, classes[:20]))}{', ...' if len(classes) > 20 else ''})"


def encode_labels(tables: dict[str, TextTable], files: dict[str, Path], task: str | None = None) -> EncodedLabels:
    """The labels of every file, read by the rule of :mod:`trainlab.data.text`'s docstring (decided on ``train``)."""
    train = tables["train"].labels or []
    parsed = [parsed_number(v) for v in train]
    numbers = [v if v is not None and math.isfinite(v) else None for v in parsed]  # finite_number's, parsed once
    numeric = all(v is not None for v in numbers)
    # text among numbers, as the csv source refuses it: a label that is no number at all, where others are finite
    text_row = next((row for row, value in enumerate(parsed) if value is None), None)
    if task != "regression" and text_row is not None and any(v is not None for v in numbers):
        names_count = sum(value is None for value in parsed)
        if names_count > len(parsed) - names_count:  # mostly names: the number is the odd one out, name it
            row = next(row for row, value in enumerate(parsed) if value is not None)
            raise DataError(f"train file {files['train']} line {tables['train'].lines[row]}, target "
                            f"'{tables['train'].label_column}': {short_repr(train[row])} is a number while "
                            f"{names_count} of the {len(parsed)} targets are names (such as "
                            f"{short_repr(train[text_row])}): labels are either all numbers or all names")
        raise not_a_number(f"train file {files['train']} line {tables['train'].lines[text_row]}, target "
                           f"'{tables['train'].label_column}'", train[text_row], "target")
    whole = numeric and all(float(v).is_integer() for v in numbers)  # type: ignore[arg-type]

    def as_numbers(name: str, classes: list[int] | None = None) -> list[float]:
        """``name``'s labels as numbers; one that is not is refused naming the training ``classes`` when they
        are classes (a test file of names beside a training file of 0/1/2)."""
        values = tables[name].labels or []
        out = [finite_number(v) for v in values]
        for row, value in enumerate(out):
            if value is None:
                known = "" if classes is None else f" {_classes_text(classes)}"
                raise DataError(f"{name} file {files[name]} line {tables[name].lines[row]}: label {short_repr(values[row])} "
                                f"is not a number while the training labels are{known}")
        return out  # type: ignore[return-value]

    if task == "regression" or (task is None and numeric and not whole):
        if not numeric:
            row = numbers.index(None)
            raise DataError(f"data.task is regression but train file {files['train']} line "
                            f"{tables['train'].lines[row]} has the label {short_repr(train[row])}, not a number")
        labels = {name: np.asarray(as_numbers(name), dtype=np.float32) for name in tables}
        return EncodedLabels(labels, None, "regression")
    if whole:
        values = sorted({int(v) for v in numbers})  # type: ignore[arg-type]
        names = None if values == list(range(len(values))) else [str(v) for v in values]
        keys = {name: [int(v) if v.is_integer() else v for v in as_numbers(name, values)]  # 2.5: unknown
                for name in tables}
    else:
        names = sorted(set(train))
        warn_case_twins(names, f"train file {files['train']}", tables["train"].label_column)
        keys = {name: tables[name].labels or [] for name in tables}
    classes = names or [str(v) for v in range(len(values))]
    index = {key: i for i, key in enumerate(values if whole else names)}  # type: ignore[union-attr]
    labels = {}
    for name, column in keys.items():
        unknown = [row for row, key in enumerate(column) if key not in index]
        if unknown:
            row = unknown[0]
            raise DataError(f"{name} file {files[name]} line {tables[name].lines[row]}: label "
                            f"{short_repr((tables[name].labels or [])[row])} does not occur in "
                            f"{_where_absent(tables['train'], column[row], whole)} "
                            f"{_classes_text(classes)}")
        labels[name] = np.asarray([index[key] for key in column], dtype=np.int64)
    if task == "binary" and len(classes) > 2:
        raise DataError(f"data.task is binary but the training labels hold {len(classes)} classes "
                        f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}); set data.task: multiclass")
    return EncodedLabels(labels, names, task or ("binary" if len(classes) <= 2 else "multiclass"))


def _where_absent(train: TextTable, key: object, whole: bool) -> str:
    """Where a val/test class ``key`` is missing from: the rows a max_rows draw kept, when the training file
    has it (more rows would bring it in), else the training file (no setting of max_rows would)."""
    if train.drawn_from is None:
        return "the training file"
    in_file: set[object] | frozenset[str] = train.file_labels
    if whole:  # the keys of whole-number classes are ints (2.0 is class 2)
        in_file = {int(v) if v.is_integer() else v for v in map(finite_number, train.file_labels) if v is not None}
    if key in in_file:
        return (f"the {len(train.texts)} training rows data.max_rows drew from {train.drawn_from} (the training "
                "file has it: raise max_rows or leave it out)")
    return "the training file"
