"""Plotly figures of a report. Each builder returns a ``plotly.graph_objects.Figure``.

Conventions shared by every figure: one colour per strategy (or run) across the whole report
(:func:`colours`), and one short label (:func:`labels`: a name of up to 195 characters shortened alike
in every figure, distinct where the names are, the full name in the hover text), axis titles with units,
the legend in the margin below the plot so it never covers data, and no fixed width (the page sizes
charts to the window). Every name from the user's data (a strategy, run, class, target column, metric or
param group) goes into a figure through :func:`as_written`, so Plotly shows it as written.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from trainlab.compare.labels import AXIS_WIDTH, TABLE_WIDTH, short_labels
from trainlab.compare.metric_keys import metric_range
from trainlab.report.predictions import Predictions, confusion_matrix
from trainlab.report.series import decimate, seed_band

AXIS_TITLES = {"step": "step (optimizer updates)", "elapsed_s": "wall-clock time (s)"}
MAX_RESIDUAL_POINTS = 3000  # per figure, shared by its panels
TITLE_LINE = 95  # characters of a chart title's line: ~670 px at 16 px, inside a chart of 760 px (report/page.py)
MAX_CONFUSION_TEXT = 20  # above this many classes the cells carry no numbers (colour and hover only)
MAX_PANELS = 16  # multi-label / multi-output figures: one panel per label or output, at most this many
LABEL_COLUMNS = 4  # multi-label matrices per row
# what Plotly would read as other than the character itself, and the entity it shows as the character
PLOTLY_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "&#36;", "%": "&#37;"}
PLOTLY_SPECIAL = re.compile(r"[&<>$]|%(?=\{)")


def as_written(text: object) -> str:
    """``text`` (a name from the user's data) as Plotly shows it literally, in a legend, a tick, a title or
    a hover label alike.

    Plotly reads every text as pseudo-HTML (``<b>``, ``<br>``, ``<a href>``, entities such as ``&amp;``),
    a hovertemplate's ``%{...}`` as a field of the point, and a text with two ``$`` as MathJax where the
    page has it. Each ``&``, ``<``, ``>``, ``$``, and ``%`` before ``{``, becomes an entity, which Plotly
    turns back into that one character after those steps (text between tags is decoded once): ``<b>x</b>``
    -> ``&lt;b&gt;x&lt;/b&gt;``, ``a%{y}`` -> ``a&#37;{y}``, ``&amp;`` -> ``&amp;amp;``.
    """
    return PLOTLY_SPECIAL.sub(lambda special: PLOTLY_ENTITIES[special[0]], str(text))


def colours(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per name, in the given order (Plotly's ten, then Dark24)."""
    palette = [*qualitative.Plotly, *qualitative.Dark24]
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def labels(palette: Mapping[str, str], width: int = TABLE_WIDTH) -> dict[str, str]:
    """A label of at most ``width`` characters per name ``palette`` colours (the report's strategies or runs,
    in its order), the same in every figure, distinct where the names are
    (:func:`~trainlab.compare.labels.short_labels`): a legend entry (``TABLE_WIDTH``) or a category on an
    axis (``AXIS_WIDTH``, rotated under the plot). A name the palette lacks is its own label."""
    return short_labels(list(palette), width)


def _axis_height(height: int, categories: Sequence[str]) -> int:
    """``height`` plus room for rotated category labels longer than a short name (~7 px a character), so
    that long labels take the margin, not the plotting area."""
    longest = max((len(label) for label in categories), default=0)
    return height + 7 * max(0, longest - 10)


def _rgba(hex_colour: str, alpha: float) -> str:
    value = hex_colour.lstrip("#")
    r, g, b = (int(value[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def style(figure: go.Figure, title: str, height: int = 420) -> go.Figure:
    """Title top-left (``title`` shown as written: it may hold a strategy's name), broken at spaces (and within
    a longer word) into lines of at most :data:`TITLE_LINE` characters (a chart is at least 760 px wide: trainlab.report.page), the top
    margin grown by a line's height for each; legend below the plotting area. A report's page draws every
    figure on plotly_white (:attr:`trainlab.report.page.Page.template`)."""
    # a word longer than a line (a strategy name of 193 characters) is broken too: whole, it was cut off
    lines = textwrap.wrap(title, TITLE_LINE, break_long_words=True, break_on_hyphens=False) or [title]
    figure.update_layout(
        title={"text": "<br>".join(as_written(line) for line in lines), "x": 0.0, "xanchor": "left",
               "font": {"size": 16}},
        height=height, font={"size": 13},
        margin={"l": 70, "r": 20, "t": 60 + 20 * (len(lines) - 1), "b": 40},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0.0, "xanchor": "left"},
        hovermode="closest",
    )
    return figure


def leaderboard_chart(entries: Sequence[Mapping[str, Any]], metric: str, palette: Mapping[str, str]) -> go.Figure:
    """Mean of ``metric`` per strategy with its 95% CI as error bars, and each seed as a dot; strategies by
    their axis label (:func:`labels`), the full name in the hover text; a strategy none of whose seeds
    finished is a column reading "no finished run". The title names the interval's method, or says that
    there is no interval (fewer than two finished seeds each)."""
    figure = go.Figure()
    axis = labels(palette, AXIS_WIDTH)
    for entry in entries:
        name = entry["name"]
        label = as_written(axis.get(name, name))
        stats = (entry.get("metrics") or {}).get(metric) or {}
        mean, ci = stats.get("mean"), stats.get("ci95")
        values = [v for v in stats.get("values") or [] if v is not None]
        error = None
        if mean is not None and ci and None not in ci:
            error = {"type": "data", "symmetric": False, "array": [ci[1] - mean], "arrayminus": [mean - ci[0]],
                     "thickness": 2, "width": 8}
        figure.add_trace(go.Scatter(x=[label], y=[mean], error_y=error, mode="markers", name=label,
                                    marker={"size": 12, "color": palette[name], "symbol": "diamond"},
                                    hovertemplate=f"{as_written(name)}<br>mean %{{y:.4g}}<br>95% CI {_interval(ci)}"
                                                  "<extra></extra>"))
        if mean is None and not values:  # every seed failed: a column that says so, not an empty one
            figure.add_annotation(x=label, y=0.5, yref="paper", text="no finished run", showarrow=False,
                                  textangle=-90, font={"color": "#777777", "size": 12})
        if values:
            figure.add_trace(go.Box(x=[label] * len(values), y=values, name=label, boxpoints="all", jitter=0.3,
                                    pointpos=-1.6, fillcolor="rgba(0,0,0,0)", line={"width": 0},
                                    marker={"color": palette[name], "size": 6, "opacity": 0.55},
                                    showlegend=False, hoverinfo="y"))
    blocks = [(e.get("metrics") or {}).get(metric) or {} for e in entries]
    methods = [b.get("ci_method") or "method not given" for b in blocks if b.get("ci95") and None not in b["ci95"]]
    # one clipped interval names the clipping in the title (the others, inside the range, are plain t)
    method = next((m for m in methods if "clipped" in m), methods[0] if methods else None)
    interval = f"with 95% CI ({method})" if method else "(no 95% CI: fewer than 2 finished seeds)"
    figure.update_yaxes(title_text=as_written(_metric_title(metric)))
    one_value = _one_value_range(blocks, metric)
    if one_value is not None:
        figure.update_yaxes(range=one_value)
    figure.update_xaxes(title_text="strategy (ranked, best first)", type="category")
    shown = [axis.get(e["name"], e["name"]) for e in entries]
    style(figure, f"{metric}: mean {interval}, dots are seeds", _axis_height(420, shown))
    figure.update_layout(showlegend=False)
    return figure


def _one_value_range(blocks: Sequence[Mapping[str, Any]], metric: str) -> list[float] | None:
    """The y range of a leaderboard chart whose every mean and seed is one value (plotly then spans +-0.5
    around it: a fraction of 0.97 drawn on 0.47-1.47): the value +-0.05, within the metric's range
    (:func:`~trainlab.compare.metric_keys.metric_range`) and a margin of 0.01; None when the values differ."""
    values = [float(v) for b in blocks for v in [b.get("mean"), *(b.get("values") or []), *(b.get("ci95") or [])]
              if isinstance(v, int | float)]
    if not values or max(values) - min(values) > 1e-12 * max(1.0, abs(values[0])):
        return None
    low, high = values[0] - 0.05, values[0] + 0.05
    bounds = metric_range(metric)
    if bounds is not None:
        low, high = max(low, bounds[0] - 0.01), min(high, bounds[1] + 0.01)
    return [low, high]


def _interval(ci: Sequence[float | None] | None) -> str:
    if not ci or None in ci:
        return "not given"
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def curves_figure(groups: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], keys: Sequence[str], axis: str,
                  palette: Mapping[str, str], events: Sequence[Mapping[str, Any]] = ()) -> go.Figure:
    """One panel per key; per group (strategy) the mean over seeds as a line and the min-max band.

    ``axis`` is "step" or "elapsed_s". ``events`` (single runs) are marked as dotted vertical lines.
    """
    figure = make_subplots(rows=1, cols=len(keys), subplot_titles=[as_written(key) for key in keys],
                           horizontal_spacing=0.07)
    legend = labels(palette)
    for column, key in enumerate(keys, start=1):
        for name, runs in groups.items():
            band = seed_band(runs, key, axis)
            if band is None:
                continue
            colour = palette[name]
            if len(runs) > 1:
                figure.add_trace(go.Scatter(x=band.x, y=band.high, mode="lines", line={"width": 0},
                                            legendgroup=name, showlegend=False, hoverinfo="skip"), 1, column)
                figure.add_trace(go.Scatter(x=band.x, y=band.low, mode="lines", line={"width": 0}, fill="tonexty",
                                            fillcolor=_rgba(colour, 0.18), legendgroup=name, showlegend=False,
                                            hoverinfo="skip"), 1, column)
            figure.add_trace(go.Scatter(x=band.x, y=band.mean, mode="lines+markers" if len(band.x) <= 30 else "lines",
                                        marker={"size": 5}, name=as_written(legend.get(name, name)),
                                        legendgroup=name, line={"color": colour, "width": 2}, showlegend=column == 1,
                                        hovertemplate=f"{as_written(name)}<br>%{{x:.4g}}: %{{y:.4g}}"
                                                      f"<extra>{as_written(key)}</extra>"),
                             1, column)
        figure.update_xaxes(title_text=AXIS_TITLES[axis], row=1, col=column)
        figure.update_yaxes(title_text=as_written(_metric_title(key)), row=1, col=column)
    if axis == "step":
        for event in events:
            if isinstance(event.get("step"), (int, float)):
                for column in range(1, len(keys) + 1):
                    figure.add_vline(x=event["step"], line={"dash": "dot", "color": "#c0392b", "width": 1},
                                     row=1, col=column)
    several = any(len(runs) > 1 for runs in groups.values())
    figure.update_layout(showlegend=len(groups) > 1)
    marked = axis == "step" and any(isinstance(e.get("step"), (int, float)) for e in events)
    style(figure, f"learning curves by {'step' if axis == 'step' else 'wall-clock time'}"
                  + (" (line: mean over seeds, band: min-max)" if several else "")
                  + (" (dotted red lines: events, see the events table)" if marked else ""), 440)
    return figure


def _metric_title(key: str) -> str:
    """The record key with its unit: seconds, a fraction, target units, or the loss's own scale.

    A metric is a fraction when :func:`trainlab.compare.metric_keys.metric_range` (the one table of what
    values a metric takes, averaging suffixes such as ``_macro`` and ``top_<k>_`` understood) gives it
    [0, 1]; r2 (at most 1, unbounded below) and matthews_corrcoef ([-1, 1]) are not fractions and get no unit.
    """
    split, _, rest = key.partition("_")
    name = rest if split in ("train", "val", "test") and rest else key
    if key.endswith("_per_s"):  # a rate (samples_per_s): its name already says per second
        return key
    if key.endswith("_s"):
        return f"{key} (s)"
    if metric_range(f"val_{name}") == (0.0, 1.0):
        return f"{key} (fraction)"
    if name in ("mae", "rmse"):
        return f"{key} (target units)"
    if name == "mse":
        return f"{key} (target units²)"
    if name == "loss":
        return f"{key} (mean per sample)"
    return key


ROUTE_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def lr_figure(groups: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], palette: Mapping[str, str]) -> go.Figure:
    """The learning rate each group actually followed, mean over seeds: the ``lr`` of its records, or
    where they have them (``strategy.optimizer.groups``) each param group's ``lr/<label>``, one line
    per label in the group's colour (dashes tell the labels apart; named ``<group> · <label>``)."""
    figure = go.Figure()
    lows, highs = [], []
    legend = labels(palette)
    for name, runs in groups.items():
        routes = list(dict.fromkeys(k for records in runs for r in records for k in r if k.startswith("lr/")))
        for index, key in enumerate(routes or ["lr"]):
            band = seed_band(runs, key, "step", max_points=600)
            if band is None:
                continue
            positive = band.mean[band.mean > 0]
            if positive.size:
                lows.append(positive.min())
                highs.append(positive.max())
            shown = legend.get(name, name)
            label = f"{shown} · {key.removeprefix('lr/')}" if routes else shown
            figure.add_trace(go.Scatter(x=band.x, y=band.mean, mode="lines", name=as_written(label), legendgroup=name,
                                        hovertemplate=f"{as_written(name)}<br>%{{x:.4g}}: %{{y:.4g}}"
                                                      f"<extra>{as_written(key)}</extra>",
                                        line={"color": palette[name], "width": 2, "shape": "hv",
                                              "dash": ROUTE_DASHES[index % len(ROUTE_DASHES)]}))
    log = bool(lows) and max(highs) / min(lows) > 50
    figure.update_xaxes(title_text=AXIS_TITLES["step"])
    figure.update_yaxes(title_text="learning rate" + (" (log scale)" if log else ""), type="log" if log else "linear",
                        exponentformat="e", rangemode="normal" if log else "tozero")
    figure.update_layout(showlegend=len(figure.data) > 1)
    return style(figure, "learning rate followed (from the records)", 400)


def box_by_group(values: Mapping[str, Sequence[float | None]], palette: Mapping[str, str], y_title: str,
                 title: str, note_missing: Mapping[str, str] | None = None,
                 category: str = "strategy") -> go.Figure:
    """A box with every point per group, each group by its axis label (:func:`labels`); None values are
    left out, and ``note_missing`` gives, per group, the words written under its label for them (``2 missed,
    4 failed``; "" for none). ``category``: what a group is, the x-axis title (``run`` in a report of run
    folders)."""
    figure = go.Figure()
    axis = labels(palette, AXIS_WIDTH)
    categories = []
    for name, raw in values.items():
        present = [float(v) for v in raw if v is not None and math.isfinite(v)]
        shown = as_written(axis.get(name, name))
        note = (note_missing or {}).get(name)
        label = f"{shown}<br>({as_written(note)})" if note else shown
        categories.append(label)
        if present:
            figure.add_trace(go.Box(x=[label] * len(present), y=present, name=shown, boxpoints="all", jitter=0.3,
                                    pointpos=0, marker={"color": palette[name], "size": 7},
                                    line={"color": palette[name]}, showlegend=False))
        else:  # nothing to draw, but the group keeps its place on the axis with its "missed" label
            figure.add_trace(go.Scatter(x=[label], y=[None], mode="markers", name=shown, showlegend=False))
    figure.update_xaxes(title_text=category, type="category", categoryorder="array", categoryarray=categories)
    figure.update_yaxes(title_text=as_written(y_title))
    return style(figure, title, _axis_height(400, [axis.get(name, name) for name in values]))


def profile_figure(profile: Mapping[str, Sequence[float]], taus: Sequence[float],
                   palette: Mapping[str, str], ratio: str) -> go.Figure:
    """Performance profiles: per strategy, the fraction of tasks whose ratio to the best strategy is within
    tau. ``ratio`` names what that ratio is of ("median training time / best strategy's"), for the x-axis:
    the profile may be on time to target, training time or a metric, and the axis says which."""
    figure = go.Figure()
    legend = labels(palette)
    for name in [*[n for n in palette if n in profile], *[n for n in profile if n not in palette]]:
        fractions = profile[name]
        figure.add_trace(go.Scatter(x=list(taus), y=list(fractions), mode="lines", name=as_written(legend.get(name, name)),
                                    line={"color": palette.get(name, "#333"), "width": 2, "shape": "hv"}))
    figure.update_xaxes(title_text=as_written(f"tau: {ratio} (log scale)"), type="log")
    figure.update_yaxes(title_text="fraction of tasks within tau", range=[-0.02, 1.02])
    return style(figure, "performance profile over tasks (Dolan-More; higher and further left is better)", 400)


def row_share(counts: np.ndarray) -> np.ndarray:
    """Each count over its row's total (0 for an empty row): the colour of a confusion matrix."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)


def confusion_figure(predictions: Predictions, title: str) -> go.Figure:
    """Counts of true class (rows) by predicted class (columns); colour is the row share (recall)."""
    counts = confusion_matrix(predictions)
    names = [as_written(name) for name in predictions.names or []]
    share = row_share(counts)
    show_text = len(names) <= MAX_CONFUSION_TEXT
    figure = go.Figure(go.Heatmap(
        z=share, x=names, y=names, colorscale="Blues", zmin=0, zmax=1, customdata=counts,
        text=counts if show_text else None, texttemplate="%{text}" if show_text else None,
        colorbar={"title": {"text": "share of<br>true class"}},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata} samples (%{z:.1%} of row)<extra></extra>",
    ))
    figure.update_xaxes(title_text="predicted class", type="category", side="bottom")
    figure.update_yaxes(title_text="true class", type="category", autorange="reversed")
    size = min(720, 260 + 28 * len(names))
    return style(figure, title, size)


def label_confusion_figure(predictions: Predictions, title: str) -> go.Figure:
    """Multi-label: one 2x2 matrix per label, ``[[TN, FP], [FN, TP]]``, true (rows) by predicted
    (columns) absent/present; colour is the row share, as in :func:`confusion_figure`."""
    every = confusion_matrix(predictions)
    counts = every[:MAX_PANELS]
    names = [as_written(name) for name in (predictions.names or [str(i) for i in range(len(every))])[:len(counts)]]
    columns = min(len(counts), LABEL_COLUMNS)
    rows = math.ceil(len(counts) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=names, horizontal_spacing=0.08,
                           vertical_spacing=0.5 / rows)
    ticks = ["absent", "present"]
    for index, (name, matrix) in enumerate(zip(names, counts, strict=True)):
        row, column = index // columns + 1, index % columns + 1
        share = row_share(matrix)
        text = [[f"TN {matrix[0, 0]}", f"FP {matrix[0, 1]}"], [f"FN {matrix[1, 0]}", f"TP {matrix[1, 1]}"]]
        figure.add_trace(go.Heatmap(
            z=share, x=ticks, y=ticks, customdata=matrix, text=text, texttemplate="%{text}", coloraxis="coloraxis",
            name=name,
            hovertemplate=f"{name}<br>true %{{y}}<br>predicted %{{x}}<br>%{{customdata}} samples "
                          "(%{z:.1%} of row)<extra></extra>"), row, column)
        figure.update_xaxes(title_text="predicted", type="category", row=row, col=column)
        figure.update_yaxes(title_text="true", type="category", autorange="reversed", row=row, col=column)
    shown = "" if len(counts) == len(every) else f" (first {len(counts)} of {len(every)} labels)"
    style(figure, title + shown, 120 + 260 * rows)
    figure.update_layout(coloraxis={"colorscale": "Blues", "cmin": 0, "cmax": 1,
                                    "colorbar": {"title": {"text": "share of<br>true row"}}})
    return figure


def residual_figure(predictions: Predictions, title: str) -> go.Figure:
    """Residual (true - predicted) against the prediction, in the target's units: one panel per output
    (named by its target column), at most MAX_RESIDUAL_POINTS points over all panels."""
    predicted = np.asarray(predictions.y_pred, dtype=float).reshape(len(predictions.y_pred), -1)
    residual = np.asarray(predictions.y_true, dtype=float).reshape(predicted.shape) - predicted
    names = [as_written(name) for name in predictions.names or [f"output {i}" for i in range(predicted.shape[1])]]
    panels = min(predicted.shape[1], MAX_PANELS)
    keep = decimate(len(predicted), max(1, MAX_RESIDUAL_POINTS // panels))
    several = predicted.shape[1] > 1
    figure = make_subplots(rows=panels, cols=1, subplot_titles=names[:panels] if several else None,
                           vertical_spacing=0.35 / panels)
    for index in range(panels):
        unit = f"units of {names[index]}" if several else "target units"
        figure.add_trace(go.Scatter(x=predicted[keep, index], y=residual[keep, index], mode="markers",
                                    name=names[index], marker={"size": 5, "opacity": 0.6, "color": "#1f77b4"}),
                         index + 1, 1)
        figure.add_hline(y=0, line={"color": "#555", "dash": "dash", "width": 1}, row=index + 1, col=1)
        figure.update_xaxes(title_text=f"predicted {names[index] if several else 'value'} ({unit})",
                            row=index + 1, col=1)
        figure.update_yaxes(title_text=f"residual: true - predicted ({unit})", row=index + 1, col=1)
    shown = "" if panels == predicted.shape[1] else f" (first {panels} of {predicted.shape[1]} outputs)"
    style(figure, title + shown, 60 + 360 * panels)
    figure.update_layout(showlegend=False)
    return figure


def metric_bars(values: Mapping[str, float | None], metric: str, palette: Mapping[str, str]) -> go.Figure:
    """One bar per run (no seeds to average): a run-folder report's stand-in for the leaderboard chart."""
    names = list(values)
    axis = labels(palette, AXIS_WIDTH)
    shown = [axis.get(n, n) for n in names]
    figure = go.Figure(go.Bar(x=[as_written(label) for label in shown], y=[values[n] for n in names],
                              marker={"color": [palette[n] for n in names]}, customdata=[as_written(n) for n in names],
                              hovertemplate="%{customdata}<br>%{y:.4g}<extra></extra>"))
    figure.update_xaxes(title_text="run", type="category")
    figure.update_yaxes(title_text=as_written(_metric_title(metric)))
    style(figure, f"{metric} by run", _axis_height(380, shown))
    figure.update_layout(showlegend=False)
    return figure
