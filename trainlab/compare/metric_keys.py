"""A comparison's metric keys: ``test_accuracy`` names ``summary["test"]["accuracy"]``, ``val_loss``
names ``summary["val"]["loss"]``, and a top-level summary number such as ``train_time_s`` is itself.
Loss-like names and convergence counts (:func:`direction_of`) are minimised, all others maximised; ``--target`` is
``val_<metric>=<number>`` (:func:`parse_target`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError

MINIMISED = ("loss", "mse", "mae", "rmse", "mape", "error", "perplexity", "time", "_s")
# convergence counts: steps or epochs spent to get somewhere (steps, best_epoch, epochs_run, best_val_epoch,
# steps_to_target); fewer is better. A rate of them (steps_per_s, samples_per_epoch) is not a count
COUNTS = ("step", "steps", "epoch", "epochs")
# the values a metric can take (an averaging suffix aside: f1_macro is an f1; top_3_accuracy an accuracy):
# a --target outside them can never be reached, or (on the side the metric moves away from) is met at once
RANGES = {"accuracy": (0.0, 1.0), "balanced_accuracy": (0.0, 1.0), "subset_accuracy": (0.0, 1.0),
          "hamming_accuracy": (0.0, 1.0), "precision": (0.0, 1.0), "recall": (0.0, 1.0), "f1": (0.0, 1.0),
          "roc_auc": (0.0, 1.0), "average_precision": (0.0, 1.0), "matthews_corrcoef": (-1.0, 1.0),
          "r2": (-math.inf, 1.0), "mse": (0.0, math.inf), "rmse": (0.0, math.inf), "mae": (0.0, math.inf),
          "log_loss": (0.0, math.inf),
          # the summary's own numbers (trainlab.records.SUMMARY_NUMBERS): times, rates and counts
          "train_time_s": (0.0, math.inf), "samples_per_s": (0.0, math.inf), "epochs_run": (0.0, math.inf),
          "steps": (0.0, math.inf), "best_epoch": (0.0, math.inf)}
# the losses that are >= 0 for every output and target they accept: squared, absolute, huber-type, pinball and
# margin losses, and cross-entropies of probabilities the loss makes itself (bce, cross_entropy, focal) or is
# given (bce_prob). Not here, as they can be negative: the likelihoods of densities and rates (gaussian_nll,
# poisson_nll, adaptive with a learned alpha or scale), nll and kl_div (of log-probabilities the model gives,
# which nothing normalises), multitask (sums of any of them), loss: auto (chosen from the data) and a user's
# module:attr loss. A val_loss / train_loss --target below 0 with one of these can never be reached.
NON_NEGATIVE_LOSSES = frozenset({
    "mse", "mae", "huber", "smooth_l1", "log_cosh", "quantile",
    "bce", "bce_prob", "cross_entropy", "focal", "hinge", "squared_hinge", "multiclass_hinge",
    "cosine_similarity", "cosine_embedding", "contrastive", "triplet", "nt_xent",
})
_AVERAGING = re.compile(r"_(?:macro|micro|weighted|samples|binary)$")
_TOP_K = re.compile(r"^top_\d+_accuracy$")


def metric_range(metric: str) -> tuple[float, float] | None:
    """The (low, high) values ``metric`` (``val_f1_macro``, ``val_top_3_accuracy``, ``train_time_s``) can take,
    or None if unknown. A summary number (no ``test_``/``val_`` prefix) named ``*_s`` (a time) or ``*_per_s``
    (a rate) is at least 0 too. Case is ignored, as metric names are (``test_F1`` is an f1)."""
    metric = metric.lower()
    if not metric.startswith(("val_", "test_")) and metric.endswith("_s"):
        return (0.0, math.inf)
    name = _AVERAGING.sub("", metric.removeprefix("val_").removeprefix("test_"))
    return RANGES.get("accuracy" if _TOP_K.match(name) else name)


def direction_of(metric: str) -> str:
    """``min`` for loss-like names (loss, mse, mae, rmse, error, time, ``*_s``) and for convergence counts
    (a ``step``/``steps``/``epoch``/``epochs`` word: ``steps``, ``best_epoch``, ``epochs_run``,
    ``best_val_epoch``, ``steps_to_target``; fewer steps to the same place is faster convergence), else ``max``;
    a rate (``samples_per_s``, ``samples_per_epoch``) ``max``; a user metric (``<split>_<module>:<attr>``) ``max``,
    whatever its name: higher is better (docs/extending.md), as early stopping and tune take it.
    ``--direction`` overrides the rule."""
    name = metric.lower()
    words = name.split("_")
    if ":" in name or name.endswith("per_s"):  # a user metric; throughput: samples_per_s, steps_per_s
        return "max"
    if any(word in COUNTS and words[i - 1:i] != ["per"] for i, word in enumerate(words)):  # not samples_per_epoch
        return "min"
    return "min" if any(name.endswith(token) or token in words for token in MINIMISED) else "max"


def direction_warning(metric: str, direction: str | None) -> str | None:
    """The warning's message when ``--direction`` is the opposite of the metric's own (:func:`direction_of`):
    ``--metric test_loss --direction max`` ranks the strategy of the worst loss first, a likely slip; None
    otherwise. A warning, not a refusal: a maximised loss can be meant. (tune says the same of its trials.)"""
    own = direction_of(metric)
    if direction is None or direction == own or ":" in metric:  # a user metric's direction is the user's to say
        return None
    return against_own_direction(metric, own, "{chosen} ranks the {worst} {metric} first", direction, "strategy")


def against_own_direction(metric: str, own: str, does: str, chosen: str, best: str) -> str:
    """The words of a ``--direction`` (``chosen``) opposite to ``metric``'s ``own`` (compare's ``min``/``max``,
    tune's ``minimize``/``maximize``), compare's and tune's: ``--direction <does>, of which lower is better: the
    best <best> will be the one of the highest <metric>; leave --direction out (<own>) unless that is meant``,
    ``does`` a template of ``{chosen}``, ``{worst}`` (``highest`` where lower is better) and ``{metric}``."""
    better, worst = ("lower", "highest") if own in ("min", "minimize") else ("higher", "lowest")
    return (f"--direction {does.format(chosen=chosen, worst=worst, metric=metric)}, of which {better} is better: "
            f"the best {best} will be the one of the {worst} {metric}; leave --direction out ({own}) unless that is "
            "meant")


def stand_in(wanted: str, recorded: list[str]) -> str | None:
    """What to pass instead of ``wanted`` (``test_accuracy``, the default --metric) that the runs do not record:
    the first of ``recorded`` on ``wanted``'s split (``test_``) that moves as ``wanted`` does (:func:`direction_of`:
    ``test_r2`` on a regression), so the ranking's direction stays; else the first of that split other than its
    loss; None when the loss is all the split records (compare's test_accuracy, tune's val_accuracy)."""
    split = wanted.partition("_")[0] + "_"
    others = [key for key in recorded if key.startswith(split) and key != f"{split}loss"]
    alike = [key for key in others if direction_of(key) == direction_of(wanted)]
    return (alike or others or [None])[0]


def read_metric(summary: dict[str, Any] | None, key: str) -> float | None:
    """``test_accuracy`` -> ``summary["test"]["accuracy"]``; ``train_time_s`` -> ``summary["train_time_s"]``."""
    if not summary:
        return None
    value = summary.get(key)
    if value is None:
        split, _, name = key.partition("_")
        section = summary.get(split)
        value = section.get(name) if isinstance(section, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def unread_metric_reason(summary: dict[str, Any] | None, key: str) -> str:
    """Why :func:`read_metric` gives None for ``key`` of a finished run's ``summary``, for its failure line:
    ``test_mse is nan (not a finite number)`` where the summary's ``non_finite`` names the value it wrote as
    null (``test.mse=nan``), ``test_mse is null (not a finite number)`` where it does not say which,
    ``summary.json records no test_mse`` where the key is absent, else ``test_mse is not a number``."""
    summary = summary or {}
    split, _, name = key.partition("_")
    section = summary.get(split)
    if key in summary:
        value, path = summary[key], key
    elif isinstance(section, dict) and name in section:
        value, path = section[name], f"{split}.{name}"
    else:
        return f"summary.json records no {key}"
    if isinstance(value, float):  # inf or nan: a summary built in Python, before JSON made it null
        return f"{key} is {value} (not a finite number)"
    if value is None:
        written = [str(item) for item in summary.get("non_finite") or [] if str(item).startswith(f"{path}=")]
        shown = written[0].partition("=")[2] if written else "null"
        return f"{key} is {shown} (not a finite number)"
    return f"{key} is not a number ({short_repr(value)})"


COMPARISONS = re.compile(r"<=|>=|==|!=|=>|=<|<|>")  # what a target written as a condition holds


def _refuse_comparison(text: str) -> None:
    """One ConfigError for a --target written as a condition (``val_accuracy>=0.9``): its ``=`` already means
    "first reached", in the direction the metric improves (:func:`direction_of`); the key read up to the
    ``=`` would be ``val_accuracy>``, refused as a metric that is not recorded."""
    found = COMPARISONS.search(text)
    if found:
        key = text[:found.start()].strip() or "val_<metric>"
        raise ConfigError(f"--target expects val_<metric>=<number>, not a comparison ('{found.group()}' in '{text}'): "
                          f"'=' means first reached, as {key} improves (rises for accuracy, falls for losses); "
                          f"write e.g. {key}={text[found.end():].strip() or '0.9'}")


def refuse_negative_loss_target(text: str, target: dict[str, Any] | None, losses: Iterable[str]) -> None:
    """One ConfigError for a ``val_loss`` / ``train_loss`` ``target`` (:func:`parse_target` of ``text``) below 0
    when every run's loss (``losses``: their names) is one of :data:`NON_NEGATIVE_LOSSES`: no run's loss falls
    below 0, so the target is never reached. Where one loss can be negative (or none is known yet, e.g.
    ``loss: auto`` before the data is read) it is left: that run may reach it."""
    names = sorted({name.lower() for name in losses})
    if (target is None or target["value"] >= 0 or target["metric"].partition("_")[2] != "loss" or not names
            or any(name not in NON_NEGATIVE_LOSSES for name in names)):
        return
    key, _, value = text.partition("=")
    key = key.strip()
    raise ConfigError(f"--target {key}={value.strip()} can never be reached: {key} is >= 0, as loss {names[0]} is "
                      f"never negative; give a target >= 0 (e.g. {key}=0.1)")


def parse_target(text: str | None, loss: str | None = None) -> dict[str, Any] | None:
    """``val_accuracy=0.9`` -> ``{"metric": "val_accuracy", "value": 0.9, "direction": "max"}``.

    Checks the form, the metric's range (:func:`metric_range`) and, given ``loss`` (the run's loss name),
    that a loss target is not below 0 for a loss that never is (:data:`NON_NEGATIVE_LOSSES`); whether the
    runs record the metric is checked by ``trainlab.compare.precheck.check_recorded`` once the configs are known.
    """
    if text is None:  # an empty text is refused below: "--target ''" is no target the user meant to leave out
        return None
    _refuse_comparison(text)
    key, sep, value = text.partition("=")
    key = key.strip()
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not key.startswith("val_") or not math.isfinite(number):
        split, _, name = key.partition("_")
        # a target is watched as training runs, on the validation split: test_ and train_ values come at the end
        hint = (f"; did you mean val_{name}={value.strip()}? (a target is watched on the validation split as the run "
                "trains)" if sep and split in ("test", "train") and name and math.isfinite(number) else "")
        raise ConfigError(f"--target expects val_<metric>=<number> (e.g. val_accuracy=0.9 or val_loss=0.3); "
                          f"got '{text}'{hint}")
    bounds = metric_range(key)
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        low, high = bounds
        shown = f"<= {high:g}" if low == -math.inf else f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        # past the end the metric moves away from: any value meets it (a max metric's target below its range)
        met_by_any = number < low if direction_of(key) == "max" else number > high
        why = "is met by any value (a target says when training is good enough)" if met_by_any \
            else "can never be reached"
        raise ConfigError(f"--target {key}={value.strip()} {why}: {key} is {shown}")
    target = {"metric": key, "value": number, "direction": direction_of(key)}
    refuse_negative_loss_target(text, target, [loss] if loss is not None else [])
    return target
