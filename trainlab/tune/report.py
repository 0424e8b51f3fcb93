"""``DIR/report.html``: the tune section, one self-contained page (plotly.js inline once, no network).

Sections: the best trial and its config keys; optimisation history; parallel
coordinates; the metric against each searched key; the intermediate values
(metric per epoch) of every trial with the pruned ones marked; importances;
the refit leaderboard (best vs base over seeds) when ``--refit-seeds`` ran; the
trials table. Figures come from ``optuna.visualization`` (plotly figures).
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Callable
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from trainlab.atomic import write_text
from trainlab.tune.results import numbers_line, trial_rows
from trainlab.tune.study import TuneSettings


def pruned_curves_figure(study: optuna.Study, metric: str) -> go.Figure:
    """Metric per epoch of every trial: complete ones grey, pruned ones red and ending at their pruning epoch."""
    figure = go.Figure()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        steps = sorted(trial.intermediate_values)
        if not steps:
            continue
        pruned = trial.state == TrialState.PRUNED
        figure.add_trace(go.Scatter(
            x=steps, y=[trial.intermediate_values[s] for s in steps], mode="lines+markers",
            name=f"trial {trial.number}{' (pruned)' if pruned else ''}",
            line={"color": "#d62728" if pruned else "#9a9a9a", "width": 1.5 if pruned else 1},
            marker={"size": 4}, opacity=0.9 if pruned else 0.6))
    figure.update_layout(title="Intermediate values (pruned trials in red)", xaxis_title="epoch",
                         yaxis_title=metric, showlegend=False)
    return figure


def _figures(study: optuna.Study, metric: str) -> list[tuple[str, Callable[[], go.Figure]]]:
    from optuna import visualization as vis

    return [
        ("Optimisation history", lambda: vis.plot_optimization_history(study, target_name=metric)),
        ("Parallel coordinates", lambda: vis.plot_parallel_coordinate(study, target_name=metric)),
        ("Metric against each searched key", lambda: vis.plot_slice(study, target_name=metric)),
        ("Intermediate values", lambda: pruned_curves_figure(study, metric)),
    ]


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values()) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def tune_section(study: optuna.Study, settings: TuneSettings, best: dict[str, Any], include_plotlyjs: bool) -> str:
    """The tune section's HTML; ``include_plotlyjs`` inlines plotly.js in the first figure."""
    parts = [f"<h2>Tuning: study {html.escape(study.study_name)}</h2>"]
    counts = ", ".join(f"{n} {s.lower()}" for s, n in best["counts"].items() if n)
    parts.append(f"<p>{html.escape(counts)}; metric {html.escape(settings.metric)} "
                 f"({html.escape(best['direction'])}); pruner {html.escape(settings.pruner)}.</p>")
    if "trial" in best:
        parts.append(f"<h3>Best trial {best['trial']}: {html.escape(settings.metric)} = {best['value']:.6g}</h3>")
        parts.append(_table([{"key": k, "value": v} for k, v in best["params"].items()]))
        if best.get("test"):
            parts.append("<p>test: " + html.escape(numbers_line(best["test"])) + "</p>")
    plotly_js: bool | str = "inline" if include_plotlyjs else False
    for title, make in _figures(study, settings.metric):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                figure = make()
            except (ValueError, RuntimeError, KeyError) as exc:  # e.g. no complete trial yet
                parts.append(f"<h3>{title}</h3><p>not available: {html.escape(str(exc))}</p>")
                continue
        parts.append(f"<h3>{title}</h3>")
        parts.append(figure.to_html(full_html=False, include_plotlyjs=plotly_js is not False))
        plotly_js = False
    parts.append("<h3>Key importances (fANOVA)</h3>")
    if "importances" in best:
        parts.append(_table([{"key": k, "importance": v} for k, v in best["importances"].items()]))
    else:
        parts.append(f"<p>{html.escape(best.get('note', 'not computed'))}</p>")
    if best.get("refit"):
        refit = best["refit"]
        parts.append(f"<h3>Refit over seeds: tuned vs base ({html.escape(refit['metric'])}, "
                     f"trainlab compare in {html.escape(refit['dir'])})</h3>")
        parts.append(_table(refit["rows"]))
    parts.append("<h3>Trials</h3>")
    parts.append(_table(trial_rows(study, _searched_keys(study))))
    return "\n".join(parts)


def _searched_keys(study: optuna.Study) -> list[str]:
    keys: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False):
        keys.update(dict.fromkeys(trial.params))
    return list(keys)


STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
         "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px 6px}"
         "th{background:#f3f3f3}")


def write_report(study: optuna.Study, settings: TuneSettings, best: dict[str, Any]) -> None:
    """``settings.out / report.html``: a whole page holding only the tune section."""
    body = tune_section(study, settings, best, include_plotlyjs=True)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>trainlab tune: "
            f"{html.escape(study.study_name)}</title><style>{STYLE}</style></head><body>{body}</body></html>")
    write_text(settings.out / "report.html", page)
