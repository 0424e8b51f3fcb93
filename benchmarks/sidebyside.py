"""Timing two training loops side by side: trainlab's and a reference loop, in alternating chunks.

Used by overhead.py (vs a hand-written loop) and vs_tutorial.py (vs the tutorials' DataLoader loops).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from trainlab.callbacks.base import Callback


class Interleave(Callback):
    """Every ``chunk`` trainlab steps, run ``chunk`` raw-loop steps, timing both sides.

    Both loops share the process, the data and the moment: a chunk of trainlab steps (with every
    callback it fires) is timed, then the same number of raw steps right after it, so a drift of the
    machine's speed hits both sides alike. The partial chunk that contains an epoch's end (and its
    validation) is dropped.
    """

    order = 99
    name = "interleave"

    def __init__(self, chunk: int, raw_steps: Callable[[int], None]):
        self.chunk, self.raw_steps = chunk, raw_steps
        self.pairs: list[tuple[float, float]] = []  # (trainlab seconds, raw seconds) per chunk

    def on_epoch_start(self, trainer) -> None:
        self.count, self.resumed = 0, time.perf_counter()

    def on_step_end(self, trainer, loss) -> None:
        self.count += 1
        if self.count < self.chunk:
            return
        ours = time.perf_counter() - self.resumed
        started = time.perf_counter()
        self.raw_steps(self.chunk)
        self.pairs.append((ours, time.perf_counter() - started))
        self.count, self.resumed = 0, time.perf_counter()


def summarize(pairs: list[tuple[float, float]]) -> dict[str, float]:
    """Median and quartiles of the per-chunk ratio trainlab / reference, and the ratio of total times."""
    ratios = sorted(ours / theirs for ours, theirs in pairs)
    low, median, high = statistics.quantiles(ratios, n=4)
    return {"median": statistics.median(ratios), "q1": low, "q3": high, "chunks": len(ratios),
            "total": sum(p[0] for p in pairs) / sum(p[1] for p in pairs),
            "ours_s": statistics.median(p[0] for p in pairs), "theirs_s": statistics.median(p[1] for p in pairs)}
