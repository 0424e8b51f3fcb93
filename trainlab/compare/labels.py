"""Short labels for long strategy names, distinct as the names are, for tables and charts.

A strategy's name is its folder's, up to 195 characters (:func:`~trainlab.compare.strategies.check_run_names`);
a chart's axis or legend, or a terminal column, shows at most ``width`` of them. A longer name keeps its
start and its end around a middle ellipsis (grid points differ at their end: ``...,lr=0.01``), and where
two names would still read alike, the part where they differ is shown in the middle too::

    >>> labels = short_labels(["sgd", "adam_" + "x" * 60 + "_v1", "adam_" + "x" * 60 + "_v2"], width=20)
    >>> labels["sgd"], labels["adam_" + "x" * 60 + "_v1"]
    ('sgd', 'adam_xxxxx…xxxxxx_v1')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

ELLIPSIS = "…"  # one character: it costs the label one of its ``width``
TABLE_WIDTH = 40  # a terminal table's strategy column, and a chart legend's entry
AXIS_WIDTH = 28  # a chart's category axis, whose labels are rotated under a plot of ~400 px


def _cut(name: str, width: int) -> str:
    """``name`` itself when it fits ``width``; else its start and end around :data:`ELLIPSIS`."""
    if len(name) <= width:
        return name
    head = width // 2
    tail = width - 1 - head
    return name[:head] + ELLIPSIS + (name[-tail:] if tail else "")


def _cut_around(name: str, start: int, width: int) -> str:
    """``name`` in ``width`` characters showing its first and last quarter and, between them, the part from
    around ``start`` (where it differs from names that :func:`_cut` makes read alike)."""
    if len(name) <= width:
        return name
    head = tail = max(1, width // 4)
    middle = max(1, width - head - tail - 2)
    begin = min(max(start - middle // 3, head), len(name) - tail - middle)
    left = name[:head] + ("" if begin == head else ELLIPSIS)
    right = ("" if begin + middle == len(name) - tail else ELLIPSIS) + name[len(name) - tail:]
    return left + name[begin:begin + middle] + right


def _common_prefix(names: Sequence[str]) -> int:
    """How many leading characters every one of ``names`` shares."""
    shortest = min(len(name) for name in names)
    return next((i for i in range(shortest) if len({name[i] for name in names}) > 1), shortest)


def short_labels(names: Sequence[str], width: int = TABLE_WIDTH) -> dict[str, str]:
    """A label of at most ``width`` characters (at least 8) per name, distinct where the names are.

    A name that fits is its own label; a longer one is cut to its start and end around :data:`ELLIPSIS`;
    names cut alike show, in the middle, the part from where they first differ; any still alike (they differ
    in several places far apart) get ``~2``, ``~3`` on their end. Show the full names beside them (a table,
    a chart's hover text): a label tells names apart, it does not replace them.
    """
    width = max(8, width)
    unique = list(dict.fromkeys(names))
    labels = {name: _cut(name, width) for name in unique}
    for label, count in Counter(labels.values()).items():
        alike = [name for name in unique if labels[name] == label]
        if count > 1 and any(len(name) > width for name in alike):
            start = _common_prefix(alike)
            for name in alike:
                labels[name] = _cut_around(name, start, width)
    for label, count in Counter(labels.values()).items():
        if count > 1:
            alike = [name for name in unique if labels[name] == label]
            for number, name in enumerate(alike[1:], start=2):
                mark = f"~{number}"
                labels[name] = label[:width - len(mark)] + mark
    return labels
