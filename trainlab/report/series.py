"""Numbers a report plots, computed from run records: curves, seed bands, gaps, profiles, config diffs.

Pure functions over plain lists and dicts (no plotting), each tested against NumPy written in
the tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainlab.records import is_epoch_record, is_finite_number

# Keys that differ between runs of one strategy by design, or only say where files go.
CONFIG_KEYS_NOT_COMPARED = ("name", "seed", "output.")


class _Absent:
    """A key's value in a config that does not have the key, told apart from a key holding None (YAML null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()



def curve(records: Sequence[Mapping[str, Any]], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """The (x, value) points of ``key`` in file order, from records holding both finite numbers.

    A repeated x (a record rewritten after a resume) keeps its last value.
    """
    points: dict[float, float] = {}
    for record in records:
        if is_finite_number(record.get(key)) and is_finite_number(record.get(x)):
            points.pop(float(record[x]), None)
            points[float(record[x])] = float(record[key])
    return list(points), list(points.values())


def is_window_mean(key: str) -> bool:
    """Whether ``key`` is a mean over a window of steps that differs by record kind: ``train_loss`` (and the
    other ``train_`` keys) of a step record is the mean since the last step record, of an epoch record the
    mean over the whole epoch. A validation (``val_*``) or the ``lr`` is a value at its step, the same in
    either kind."""
    return key.startswith("train_")


def curve_records(records: Sequence[Mapping[str, Any]], key: str, x: str = "step") -> list[Mapping[str, Any]]:
    """The records of one run a curve of ``key`` against ``x`` is drawn from.

    For a window mean (:func:`is_window_mean`) one kind only: the step records (every record that is not an
    epoch record, :func:`~trainlab.records.is_epoch_record`: ``"scope": "step"``, or a ``step`` without an
    ``epoch`` as older runs wrote them) where any of them holds ``key`` and ``x`` as finite numbers, else the
    epoch records; mixed in one line, each
    epoch's mean would stand out from the short windows around it as a false spike at the epoch's end. Any
    other key: every record (an epoch's closing validation is in its epoch record only).
    """
    if not is_window_mean(key):
        return list(records)
    steps = [record for record in records if not is_epoch_record(record)]
    if any(is_finite_number(record.get(key)) and is_finite_number(record.get(x)) for record in steps):
        return steps
    return [record for record in records if is_epoch_record(record)]


def decimate(count: int, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` evenly spaced points of ``count``, always keeping the first and last."""
    if count <= max_points:
        return np.arange(count)
    return np.unique(np.round(np.linspace(0, count - 1, max_points)).astype(int))


@dataclass
class SeedBand:
    """A metric over seeds, aligned by step: mean, min and max at each x, and how many seeds had it."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: np.ndarray


def seed_band(runs: Sequence[Sequence[Mapping[str, Any]]], key: str, axis: str = "step",
              max_points: int = 300) -> SeedBand | None:
    """Mean and min-max band of ``key`` over runs (one record list per seed), aligned at equal steps.

    ``axis="step"``: x is the step. ``axis="elapsed_s"``: x is the mean over seeds of the wall-clock
    time at which each seed logged that step (seeds share the steps, not the clock). Each run's points come
    from :func:`curve_records` (a window mean from one kind of record: its step records where they hold
    ``key`` and the axis, else its epoch records), so the mean never mixes them either. At most
    ``max_points`` x values are kept (evenly spaced, first and last included). None when no run has
    ``key``.
    """
    by_step: dict[float, list[float]] = {}
    clock: dict[float, list[float]] = {}
    for records in runs:
        drawn = curve_records(records, key, axis)
        steps, values = curve(drawn, key, "step")
        elapsed = dict(zip(*curve(drawn, "elapsed_s", "step"), strict=True)) if axis == "elapsed_s" else {}
        for step, value in zip(steps, values, strict=True):
            if axis == "elapsed_s":
                if step not in elapsed:
                    continue
                clock.setdefault(step, []).append(elapsed[step])
            by_step.setdefault(step, []).append(value)
    if not by_step:
        return None
    steps = sorted(by_step)
    keep = decimate(len(steps), max_points)
    steps = [steps[i] for i in keep]
    groups = [np.asarray(by_step[s]) for s in steps]
    x = np.asarray([np.mean(clock[s]) for s in steps] if axis == "elapsed_s" else steps, dtype=float)
    return SeedBand(x, np.array([g.mean() for g in groups]), np.array([g.min() for g in groups]),
                    np.array([g.max() for g in groups]), np.array([len(g) for g in groups]))


def loss_gap(records: Sequence[Mapping[str, Any]]) -> float | None:
    """Generalisation gap in loss: val_loss - train_loss of the last epoch record that holds both as finite
    numbers (a mid-epoch validation's step record has another train_loss: the steps since the last record)."""
    for record in reversed(records):
        if not is_epoch_record(record):
            continue
        if is_finite_number(record.get("val_loss")) and is_finite_number(record.get("train_loss")):
            return float(record["val_loss"]) - float(record["train_loss"])
    return None


def final_loss_gap(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> tuple[float | None, bool]:
    """(gap, from_summary): the generalisation gap in loss of the weights a run ended with, summary.json's
    ``val.loss - train.loss`` (both evaluated in eval mode, the training split without augmentation), where
    the summary has a ``train`` block (None where either loss is not a finite number); else
    :func:`loss_gap` of ``records`` and False: that ``train_loss`` is a running mean over an epoch in train
    mode (dropout on, weights moving), not a gap of one model (``output.evaluate_train: false``, older runs)."""
    train, val = summary.get("train"), summary.get("val")
    if not isinstance(train, Mapping):
        return loss_gap(records), False
    losses = [train.get("loss"), val.get("loss") if isinstance(val, Mapping) else None]
    if not all(is_finite_number(loss) for loss in losses):
        return None, True
    return float(losses[1]) - float(losses[0]), True


def restored_monitor(config: Mapping[str, Any], summary: Mapping[str, Any]) -> str | None:
    """The monitored value (``val_loss``) whose best epoch's model a finished run evaluated, or None where it
    evaluated the model as training ended.

    Early stopping with ``restore_best`` (its default) puts the best epoch's weights back when training ends
    (trainlab.callbacks.early_stopping), so summary.json's val and test metrics are that epoch's model's;
    nothing is restored without early stopping (``strategy.early_stopping`` null or false), with
    ``restore_best: false``, or where no epoch was best (summary ``best_epoch`` null: every value NaN).
    Without early stopping ``best_epoch`` is still recorded, but the final model is the one evaluated.
    """
    strategy = config.get("strategy")
    stopping = strategy.get("early_stopping") if isinstance(strategy, Mapping) else None
    if stopping is True:  # a config written by hand: early stopping at its defaults
        stopping = {}
    if not isinstance(stopping, Mapping) or stopping.get("restore_best", True) is not True:
        return None
    if summary.get("status") != "finished" or summary.get("best_epoch") is None:
        return None
    return str(stopping.get("monitor") or "val_loss")


def performance_profile(times: Mapping[str, Mapping[str, float | None]], taus: Sequence[float]
                        ) -> dict[str, list[float]]:
    """Dolan-More performance profile: rho_s(tau) = |{tasks t : r_ts <= tau}| / |tasks|.

    ``times[task][strategy]`` is the time to target (None or inf: never reached);
    r_ts = time_ts / min_s time_ts. A task no strategy solved counts against every strategy.
    """
    strategies = sorted({s for per_task in times.values() for s in per_task})
    ratios: dict[str, list[float]] = {s: [] for s in strategies}
    for per_task in times.values():
        reached = [t for t in per_task.values() if t is not None and math.isfinite(t)]
        best = min(reached) if reached else None
        for strategy in strategies:
            t = per_task.get(strategy)
            ok = best is not None and t is not None and math.isfinite(t)
            ratios[strategy].append(t / best if ok and best > 0 else (1.0 if ok else math.inf))
    n_tasks = max(len(times), 1)
    return {s: [sum(r <= tau for r in ratios[s]) / n_tasks for tau in taus] for s in strategies}


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _compared(key: str) -> bool:
    return not any(key == skip or (skip.endswith(".") and key.startswith(skip)) for skip in CONFIG_KEYS_NOT_COMPARED)


def config_diff(configs: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(base, differences): base is every flattened key all configs share with one value; each config's
    differences are its other keys, :data:`ABSENT` where the config lacks the key (None only where it holds
    null). A parent key that one config holds as null (or ``{}``) and another as a mapping whose keys are
    listed (``strategy.weight_averaging: null`` against ``{kind: ema, ...}``) is left out: its listed keys,
    ABSENT in the first config, already say it sets nothing there. Names, seeds and output settings are
    not compared.
    """
    flats = {name: {k: v for k, v in flatten(c).items() if _compared(k)} for name, c in configs.items()}
    keys = sorted({k for flat in flats.values() for k in flat})
    base: dict[str, Any] = {}
    differing: list[str] = []
    for key in keys:
        values = [flat.get(key, ABSENT) for flat in flats.values()]
        if all(v is not ABSENT for v in values) and all(v == values[0] for v in values):
            base[key] = values[0]
        else:
            differing.append(key)
    shown = [key for key in differing if not _covered_by_children(key, differing, flats.values())]
    return base, {name: {k: flat.get(k, ABSENT) for k in shown} for name, flat in flats.items()}


def _covered_by_children(key: str, differing: Sequence[str], flats: Any) -> bool:
    """Whether ``key`` has listed child keys and every config holding ``key`` itself holds nothing there
    (null or an empty mapping): then its row would only repeat what the children's rows show."""
    has_children = any(other.startswith(key + ".") for other in differing)
    return has_children and all(flat[key] is None or flat[key] == {} for flat in flats if key in flat)
