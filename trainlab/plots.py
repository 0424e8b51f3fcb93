"""Figures for schedules, LR range tests and training curves, written atomically.

Each plot has a builder that returns a matplotlib :class:`~matplotlib.figure.Figure`
(``schedule_figure``, ``lr_finder_figure``, ``curves_figure``; tests and reports
can read the plotted data back from it) and a ``plot_*`` function that saves it.
Figures are drawn with the Agg canvas directly, without pyplot, so plotting
never touches global backend state and works headless. Files are written to a
temporary file in the target directory and moved into place with
``os.replace``, so a reader never sees a half-written image.

Artists carry a ``gid`` naming their role: ``"lr"``, ``"epoch_boundary"``,
``"loss"``, ``"smoothed"``, ``"suggestion"`` and ``"curve:<strategy>"``.

A string the user chose (a run folder's name, a metric, a param group, a title) is drawn as written
(:func:`plain_text`): never as mathtext (``lr_$1_$2`` is a name, not math), legend entries starting with
``_`` included (:func:`literal_legend`). A character no font of the figure has is drawn as matplotlib's
placeholder and said in one ``warning:`` line (:func:`save_figure`), not in matplotlib's own warnings.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from matplotlib import font_manager
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.text import Text

from trainlab.atomic import check_output_place, named_after, write_output_bytes
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn
from trainlab.registry import did_you_mean
from trainlab.schedules import Schedule, schedule_series

MAX_EPOCH_LINES = 100  # beyond this many epochs, draw every k-th boundary so the lines stay faint
MAX_SCHEDULE_POINTS = 4096  # beyond this many steps, plot this many evenly spaced steps (a 10^18-step run too)
FORMATS = ("png", "pdf", "svg")
LEGEND_INSIDE_MAX = 4  # more curves than this and the legend moves outside the axes
# fonts shipped with matplotlib that map Unicode code points to their own glyphs (not the TeX-encoded cm*
# fonts, nor LastResort, whose every glyph is a placeholder), tried in order for a character the figure's
# font lacks: DejaVu Sans has the widest cover, STIXGeneral adds letterlike and technical symbols
BUNDLED_FALLBACK_FONTS = ("DejaVu Sans", "STIXGeneral")
# matplotlib's warning for a character no font of a text has (Agg, PDF, SVG alike): "Glyph 26085 (...)
# missing from font(s) DejaVu Sans."
MISSING_GLYPH = re.compile(r"Glyph (\d+) .*missing from font(?:\(s\) (.+?)\.?$)?")


def _new_figure() -> Figure:
    figure = Figure(figsize=(7.0, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # attach the Agg canvas: no pyplot, no global backend switch
    return figure


@cache
def _fallback_families() -> tuple[str, ...]:
    """The :data:`BUNDLED_FALLBACK_FONTS` matplotlib's font manager has (a distribution may leave STIX out:
    naming a family it lacks would log a findfont warning)."""
    known = {font.name for font in font_manager.fontManager.ttflist}
    return tuple(family for family in BUNDLED_FALLBACK_FONTS if family in known)


def plain_text(text: Text) -> Text:
    """``text`` drawn as its string is written: without mathtext (``$1_$2``, ``$\\foo{`` and ``$5 to $6``
    are names, not math: matplotlib parses a string with an even number of ``$`` as math, and fails or
    draws italics), without TeX (an rc file's ``text.usetex``), and with the bundled fonts that have them
    (:data:`BUNDLED_FALLBACK_FONTS`) as fallbacks for characters its font lacks. Returns ``text``."""
    text.set_parse_math(False)
    text.set_usetex(False)
    text.set_fontfamily([*text.get_fontfamily(), *_fallback_families()])
    return text


def literal_legend(axes: Axes, entries: Sequence[tuple[Artist, str]], **options: Any) -> Legend:
    """A legend of ``entries`` (artist, label) in that order, each label as written (:func:`plain_text`).

    The labels are put on the legend's texts after it is made: matplotlib leaves a label starting with
    ``_`` out of a legend (hidden artists are named so), and a run folder may well be named ``_baseline``.
    """
    legend = axes.legend([artist for artist, _ in entries], ["entry"] * len(entries), **options)
    for text, (_, label) in zip(legend.get_texts(), entries, strict=True):
        plain_text(text).set_text(label)
    return legend


def check_plot_path(path: str | os.PathLike[str]) -> str:
    """The plot format of ``path`` (its suffix: png, pdf or svg), or a :class:`ConfigError` naming them; a path
    that is a folder or lies under a file is one too (:func:`~trainlab.atomic.check_output_place`)."""
    file_format = Path(path).suffix.lower().lstrip(".")
    if file_format not in FORMATS:
        raise ConfigError(f"plot path '{path}' must end in one of {', '.join('.' + f for f in FORMATS)}")
    check_output_place(path)
    return file_format


def save_figure(figure: Figure, path: str | os.PathLike[str], *, follow_link: bool = True) -> Path:
    """Write ``figure`` to ``path``: atomically for a new or regular file (the link's target for a symlink),
    through the file for a device, FIFO or ``/dev/stdout`` (:func:`trainlab.atomic.write_output_bytes`).
    ``follow_link``: the user named ``path``; False for a default name, where a symlink, FIFO or device is
    refused rather than followed.

    The format comes from the suffix (png, pdf or svg). Parent directories are created.
    """
    target = Path(path)
    file_format = check_plot_path(target)
    try:
        rendered = _render(figure, file_format)
    except OSError as exc:  # one that names no file (ENOSPC where a backend spools to disk): name the plot's
        raise named_after(exc, target) from None
    write_output_bytes(target, rendered, follow_link=follow_link)
    return target


def _render(figure: Figure, file_format: str) -> bytes:
    """``figure`` in ``file_format``. Characters no font of their text has (a run folder named ``日本``;
    matplotlib draws a placeholder for each) are said in one ``warning:`` line instead of matplotlib's
    warning per character and draw; any other warning is passed on as it came."""
    rendered = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=MISSING_GLYPH.pattern, category=UserWarning)
        figure.savefig(rendered, format=file_format)
    missing: dict[str, None] = {}
    fonts: dict[str, None] = {}
    for caught_warning in caught:
        glyph = MISSING_GLYPH.match(str(caught_warning.message))
        if glyph and issubclass(caught_warning.category, UserWarning):
            missing[chr(int(glyph[1]))] = None
            fonts.update(dict.fromkeys((glyph[2] or "").split(", ")))
        else:
            warnings.warn_explicit(caught_warning.message, caught_warning.category, caught_warning.filename,
                                   caught_warning.lineno, source=caught_warning.source)
    if missing:
        named = ", ".join(sorted(font for font in fonts if font)) or "matplotlib's font"
        warn(f"the plot's fonts ({named}) have no glyph for {' '.join(missing)} in its names or labels: drawn as "
             "placeholders; a font that has them, named first in matplotlib's font.family (matplotlibrc), draws them")
    return rendered.getvalue()


# --------------------------------------------------------------------------- schedule

def schedule_figure(schedule: Schedule, total_steps: int, base_lr: float, steps_per_epoch: int | None = None,
                    title: str | None = None, group_lrs: Mapping[str, float] | None = None,
                    horizons: Mapping[str, tuple[int, Schedule]] | None = None) -> Figure:
    """LR ``base_lr * schedule(t)`` against step t in [0, total_steps); faint lines where epochs start.

    ``group_lrs`` (name -> base lr of each ``strategy.optimizer.groups`` entry): one line per group,
    ``lr_g * schedule(t)`` (gid ``lr:<name>``), plus the base lr's for parameters no group selects
    (gid ``lr``, dashed); a log axis when the lrs span more than 100x (Muon 0.24 next to SGD 1340).
    A group in ``horizons`` (name -> (T_g, its own schedule): ``train_epochs``) is drawn as
    ``lr_g * own(t)`` for t < T_g and 0 after.

    Up to :data:`MAX_SCHEDULE_POINTS` steps every step is plotted; beyond, that many evenly spaced
    steps including the first and the last (``t_i = i * (T - 1) // (N - 1)``, exact integers), so time
    and memory do not grow with the number of steps.
    """
    if not (isinstance(base_lr, numbers.Real) and base_lr > 0 and math.isfinite(base_lr)):
        raise ValueError(f"base_lr must be a finite number > 0; got {base_lr!r}")
    if steps_per_epoch is not None and not (isinstance(steps_per_epoch, numbers.Integral) and steps_per_epoch >= 1):
        raise ValueError(f"steps_per_epoch must be an integer >= 1 or None; got {steps_per_epoch!r}")
    if total_steps <= MAX_SCHEDULE_POINTS:
        steps: Sequence[int] = range(total_steps)
        lrs = [base_lr * factor for factor in schedule_series(schedule, total_steps)]
    else:
        last = total_steps - 1
        steps = [i * last // (MAX_SCHEDULE_POINTS - 1) for i in range(MAX_SCHEDULE_POINTS)]
        lrs = [base_lr * float(schedule(step)) for step in steps]
    figure = _new_figure()
    axes = figure.add_subplot()
    if steps_per_epoch is not None:
        # first steps of epochs 2, 3, ...: (T - 1) // spe of them, every stride-th drawn (integer arithmetic)
        count = max(0, (total_steps - 1) // steps_per_epoch)
        stride = max(1, -(-count // MAX_EPOCH_LINES))
        for step in (k * stride * steps_per_epoch for k in range(1, count // stride + 1)):
            axes.axvline(step, color="0.5", alpha=0.25, linewidth=0.6, gid="epoch_boundary")
    axes.set_xlim(0, max(total_steps - 1, 1))
    axes.set_xlabel("step")
    axes.set_ylabel("learning rate")
    if group_lrs:
        entries = []
        for index, (name, lr) in enumerate(group_lrs.items()):
            label, ys = f"{name} (lr {lr:g})", [value / base_lr * lr for value in lrs]
            if horizons and name in horizons:
                own_steps, own = horizons[name]
                label = f"{name} (lr {lr:g}, its first {own_steps} steps)"
                ys = [lr * float(own(step)) if step < own_steps else 0.0 for step in steps]
            (line,) = axes.plot(list(steps), ys, color=f"C{index + 1}", linewidth=1.5, gid=f"lr:{name}", label=label)
            entries.append((line, label))
        (line,) = axes.plot(list(steps), lrs, color="0.4", linewidth=1.0, linestyle="--", gid="lr",
                            label=f"parameters no group selects (lr {base_lr:g})")
        entries.append((line, line.get_label()))
        every = [*group_lrs.values(), base_lr]
        if max(every) > 100 * min(every):
            axes.set_yscale("log")
        else:
            axes.set_ylim(bottom=0)
        literal_legend(axes, entries, loc="best", fontsize="small")
    else:
        axes.plot(list(steps), lrs, color="C0", linewidth=1.5, gid="lr", label="lr")
        axes.set_ylim(bottom=0)
        axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    plain_text(axes.set_title(title if title is not None else f"LR schedule (base lr {base_lr:g}, {total_steps} steps)"))
    axes.grid(True, axis="y", alpha=0.3)
    return figure


def plot_schedule(schedule: Schedule, total_steps: int, base_lr: float, path: str | os.PathLike[str],
                  steps_per_epoch: int | None = None, title: str | None = None,
                  group_lrs: Mapping[str, float] | None = None,
                  horizons: Mapping[str, tuple[int, Schedule]] | None = None) -> Path:
    """Save :func:`schedule_figure` to ``path``; returns the path."""
    return save_figure(schedule_figure(schedule, total_steps, base_lr, steps_per_epoch, title, group_lrs, horizons),
                       path)


# --------------------------------------------------------------------------- LR range test

def smoothed_losses(losses: Sequence[float], smoothing: float = 0.98, warmup: int | None = None) -> list[float]:
    """The losses as :func:`trainlab.lr_finder.suggest_lr` sees them: smoothed, with ``warmup`` first points
    (None: a tenth of them) as the warm-up, up to (not including) the first divergence."""
    from trainlab.lr_finder import (  # torch-heavy: imported when needed
        smoothed_until_divergence,
        warmup_steps,
    )

    return smoothed_until_divergence(losses, smoothing, warmup_steps(len(losses)) if warmup is None else warmup)


def _lr_finder_ylim(raw: Sequence[float], smoothed: Sequence[float]) -> tuple[float, float]:
    """The loss axis of :func:`lr_finder_figure`: from the lowest raw or smoothed loss (the raw ones dip below
    the lagging EMA) to the highest raw loss of the steps the smoothed curve covers, capped at the top of
    the curves' range (the smoothed maximum or the first raw loss) plus that range again, so that a raw
    spike shows as far as it fits while the diverging steps that ended the sweep cannot squash the curves."""
    covered = raw[:len(smoothed)] or smoothed
    low = min(min(raw, default=smoothed[0]), min(smoothed))
    top = max(max(smoothed), covered[0])
    high = max(top, min(max(covered), top + (top - low)))
    margin = 0.05 * (high - low) or 0.1 * abs(high) or 1.0
    return low - margin, high + margin


def lr_finder_figure(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None,
                     smoothing: float = 0.98, warmup: int | None = None) -> Figure:
    """Loss against LR on a log axis: the raw losses faint, the smoothed loss the suggestion is decided
    on (:func:`smoothed_losses`, gid ``"smoothed"``) bold; the suggested LR as a dashed line and a dot
    on the smoothed curve.

    Non-finite losses (the divergence that ended the sweep) are left out of the raw line.
    """
    if len(lrs) != len(losses) or len(lrs) == 0:
        raise ValueError(f"lrs and losses must be non-empty and of equal length; got {len(lrs)} and {len(losses)}")
    if any(not (lr > 0) for lr in lrs):
        raise ValueError("every lr must be > 0 to plot on a log axis")
    points = [(float(lr), float(loss)) for lr, loss in zip(lrs, losses, strict=True) if math.isfinite(loss)]
    smoothed = list(zip([float(lr) for lr in lrs], smoothed_losses(losses, smoothing, warmup), strict=False))
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot([lr for lr, _ in points], [loss for _, loss in points], color="C0", alpha=0.35, linewidth=1.0,
              gid="loss", label="loss")
    axes.plot([lr for lr, _ in smoothed], [value for _, value in smoothed], color="C0", linewidth=2.0,
              gid="smoothed", label=f"smoothed loss (EMA {smoothing:g})")
    axes.set_xscale("log")
    if smoothed:
        axes.set_ylim(*_lr_finder_ylim([loss for _, loss in points], [value for _, value in smoothed]))
    if suggestion is not None:
        if not (suggestion > 0 and math.isfinite(suggestion)):
            raise ValueError(f"suggestion must be a finite lr > 0 or None; got {suggestion!r}")
        axes.axvline(suggestion, color="C3", linestyle="--", linewidth=1.0, gid="suggestion",
                     label=f"suggested lr = {suggestion:.2e}")
        curve = smoothed or points
        if curve:  # mark the curve at the point nearest the suggestion (in log lr)
            lr_at, loss_at = min(curve, key=lambda point: abs(math.log(point[0] / suggestion)))
            axes.plot([lr_at], [loss_at], "o", color="C3", gid="suggestion_point")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss")
    axes.set_title("LR range test")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="best")
    return figure


def plot_lr_finder(lrs: Sequence[float], losses: Sequence[float], suggestion: float | None,
                   path: str | os.PathLike[str], warmup: int | None = None) -> Path:
    """Save :func:`lr_finder_figure` to ``path``; returns the path."""
    return save_figure(lr_finder_figure(lrs, losses, suggestion, warmup=warmup), path)


# --------------------------------------------------------------------------- training curves

def is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def missing_metric(histories: Mapping[str, Sequence[Mapping[str, Any]]], metric: str) -> list[str]:
    """The histories none of whose records has ``metric``: :func:`curves_figure` draws no line for them."""
    return [name for name, records in histories.items() if not any(r.get(metric) is not None for r in records)]


def curves_figure(histories: Mapping[str, Sequence[Mapping[str, Any]]], metric: str) -> Figure:
    """One line per strategy of ``metric`` against ``epoch``, from records like ``{"epoch": 1, "val_loss": 0.3}``.

    Records without the metric (or with ``None``) are skipped. Raises :class:`ConfigError` listing the
    available keys when no record of any strategy has the metric.
    """
    series: dict[str, tuple[list[float], list[float]]] = {}
    available: set[str] = set()
    nulls: list[str] = []  # the strategies whose records hold the metric as null (non-finite) only
    for strategy, records in histories.items():
        epochs, values = [], []
        if null_in_every_record(records, metric):
            nulls.append(strategy)
        for record in records:
            available.update(k for k, v in record.items() if is_number(v))
            if record.get(metric) is not None:
                if not is_number(record[metric]):
                    shown = ", ".join(sorted(k for k, v in record.items() if is_number(v) and k != "epoch"))
                    raise ConfigError(f"metric '{metric}' is not one number per epoch (it holds a "
                                      f"{type(record[metric]).__name__}); plot one of: {shown}")
                if "epoch" not in record:
                    raise ValueError(f"history '{strategy}' has a record without 'epoch': {dict(record)}")
                epochs.append(float(record["epoch"]))
                values.append(float(record[metric]))
        if epochs:
            series[strategy] = (epochs, values)
    if not series and nulls:  # recorded, as null: not "is in no history", which hid the key from the list
        raise DataError(f"metric '{metric}' is recorded but not a finite number (null) in every epoch of "
                        f"{', '.join(nulls)}: training went non-finite (summary.json's non_finite says where); "
                        "nothing to draw")
    if not series:
        keys = sorted(available - {"epoch"})
        raise ConfigError(f"metric '{metric}' is in no history; available: {', '.join(keys) or 'none'}"
                          f"{did_you_mean(metric, keys)}")
    figure = _new_figure()
    axes = figure.add_subplot()
    entries = []
    for strategy, (epochs, values) in series.items():
        (line,) = axes.plot(epochs, values, marker="o" if len(epochs) <= 30 else None, markersize=3, label=strategy,
                            gid=f"curve:{strategy}")
        entries.append((line, strategy))
    axes.set_xlabel("epoch")
    plain_text(axes.set_ylabel(metric))
    plain_text(axes.set_title(f"{metric} by epoch"))
    axes.grid(True, alpha=0.3)
    if len(series) > LEGEND_INSIDE_MAX:  # many runs: the legend goes beside the axes, never over a curve
        figure.set_size_inches(9.5, 4.5)
        literal_legend(axes, entries, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    else:
        literal_legend(axes, entries, loc="best")
    return figure


def plot_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]], metric: str,
                path: str | os.PathLike[str], *, follow_link: bool = True) -> Path:
    """Save :func:`curves_figure` to ``path`` (:func:`save_figure`); returns the path."""
    return save_figure(curves_figure(histories, metric), path, follow_link=follow_link)


def null_in_every_record(records: Sequence[Mapping[str, Any]], metric: str) -> bool:
    """Whether ``records`` hold ``metric``, as null (a non-finite value) in every one."""
    return any(metric in record for record in records) and all(record.get(metric) is None for record in records)
