"""``DIR/report.html``: one self-contained page (trainlab.report.page: plotly.js inline once, no network).

Sections: the best trial and its config keys; optimisation history; parallel
coordinates; the metric against each searched key; the intermediate values
(metric per epoch) of every trial with the pruned ones marked; importances;
the refit leaderboard (best vs base over seeds, or the base alone when it is the
best trial) when ``--refit-seeds`` ran; the trials table. Figures come from
``optuna.visualization`` (plotly figures).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import TrialState

from trainlab.atomic import write_text
from trainlab.report.page import Page
from trainlab.report.sections import fmt
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
        ("Optimisation history", lambda: whole_trial_ticks(vis.plot_optimization_history(study, target_name=metric))),
        ("Parallel coordinates", lambda: readable_axes(vis.plot_parallel_coordinate(study, target_name=metric),
                                                       _searched_keys(study))),
        ("Metric against each searched key", lambda: vis.plot_slice(study, target_name=metric)),
        ("Intermediate values", lambda: pruned_curves_figure(study, metric)),
    ]


def whole_trial_ticks(figure: go.Figure) -> go.Figure:
    """Optuna's history plots trial numbers on a linear x-axis, which plotly ticks at 0.5 steps for a few trials
    (trial 1.5): a tick per trial up to 20 trials; past that plotly's own spacing (5, 10: whole numbers)."""
    trials = max((len(trace.x or ()) for trace in figure.data), default=0)
    if trials <= 20:
        figure.update_xaxes(dtick=1)
    return figure


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest ending of at least two parts that no other key ends with:
    ``strategy.optimizer.lr`` -> ``optimizer.lr``, beside ``strategy.optimizer.name`` -> ``optimizer.name``."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for count in range(min(2, len(parts)), len(parts) + 1):
            ending = ".".join(parts[-count:])
            if not any(other != key and (other == ending or other.endswith("." + ending)) for other in keys):
                break
        short[key] = ending
    return short


def readable_axes(figure: go.Figure, keys: list[str]) -> go.Figure:
    """Optuna's parallel coordinates cut an axis label past 19 characters to its first 17 and '...', so
    ``strategy.optimizer.lr`` and ``strategy.optimizer.name`` both read ``strategy.optimize...``. Its axes after
    the objective are the searched ``keys`` in sorted order (Optuna 4-5); when each label is its key or that
    cut, each becomes the key's :func:`short_keys` ending. A figure laid out otherwise is left as it is."""
    labels = list(figure.layout.xaxis.ticktext or [])
    ordered = sorted(keys)
    if len(labels) != len(ordered) + 1 or not all(
            label == key or (str(label).endswith("...") and key.startswith(str(label)[:-3]))
            for label, key in zip(labels[1:], ordered, strict=True)):
        return figure
    short = short_keys(ordered)
    figure.update_xaxes(ticktext=[labels[0], *(short[key] for key in ordered)])
    return figure


@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's own log lines off (its plots log "There are no complete trials." where the page says so)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _table(page: Page, rows: list[dict[str, Any]]) -> None:
    if not rows:
        page.paragraph("none")
        return
    page.table([str(k) for k in rows[0]], [[_cell(v) for v in row.values()] for row in rows])


TARGET_COLUMNS = ("time_to_target_median_s", "target_reached")  # leaderboard.csv's, for a comparison with --target


def refit_rows(refit: dict[str, Any]) -> list[dict[str, Any]]:
    """The refit leaderboard's rows for the page: without the target columns when the comparison had no
    target (``refit["target"]`` unset, as :func:`trainlab.tune.refit.refit` runs it), where they would say
    0 reached and nothing else."""
    rows = refit.get("rows") or []
    if refit.get("target"):
        return rows
    return [{key: value for key, value in row.items() if key not in TARGET_COLUMNS} for row in rows]


def _refit_leaderboard(page: Page, refit: dict[str, Any]) -> None:
    """The refit comparison's leaderboard as compare's report shows it (its leaderboard.json), and a line when
    the base config ranks above the tuned one (the tuned values did not hold up over the seeds); where that
    file cannot be read, the rows best.json keeps (leaderboard.csv's columns)."""
    from trainlab.errors import DataError
    from trainlab.report.sections import leaderboard_table
    from trainlab.report.sources import Comparison, read_leaderboard

    try:  # the refit is one task's comparison (tune's base config)
        comparison = Comparison(Path(refit["dir"]), read_leaderboard(Path(refit["dir"])))
        entries = [entry for task in comparison.tasks[:1] for entry in comparison.strategies(task)]
        if entries:  # builds every row before it adds the table: a damaged entry adds nothing
            leaderboard_table(page, entries, refit["metric"], has_target=False)
    except (DataError, AttributeError, TypeError, KeyError):  # no board, a damaged one, or one of other shapes
        entries = []
    if not entries:
        rows = refit_rows(refit)
        if rows:
            page.table(list(rows[0]), [[fmt(v) for v in row.values()] for row in rows])
        else:
            page.paragraph("none")
        return
    ranks = {entry.get("name"): entry.get("rank") for entry in entries}
    if isinstance(ranks.get("base"), int) and isinstance(ranks.get("tuned"), int) and ranks["base"] < ranks["tuned"]:
        page.paragraph(f"The base config ranks above the tuned one on {refit['metric']} over these seeds: the best "
                       "trial's values did not hold up on the test split (see the verdict: within the noise, or worse).")


def tune_page(study: optuna.Study, settings: TuneSettings, best: dict[str, Any]) -> Page:
    """The report's :class:`~trainlab.report.page.Page` (plotly.js inline once, compressed, as compare's)."""
    page = Page(f"trainlab tune: study {study.study_name}")
    counts = ", ".join(f"{n} {s.lower()}" for s, n in best["counts"].items() if n)
    page.subtitle = f"{counts}; metric {settings.metric} ({best['direction']}); pruner {settings.pruner}."
    if "trial" in best:
        page.heading(f"Best trial {best['trial']}: {settings.metric} = {best['value']:.6g}")
        _table(page, [{"key": k, "value": v} for k, v in best["params"].items()])
        if best.get("test"):
            page.paragraph("test: " + numbers_line(best["test"]))
    for title, make in _figures(study, settings.metric):
        page.heading(title)
        with warnings.catch_warnings(), _optuna_quiet():
            warnings.simplefilter("ignore")
            try:
                figure = make()
            except (ValueError, RuntimeError, KeyError) as exc:  # e.g. no complete trial yet
                page.paragraph(f"not available: {exc}")
                continue
        if figure.layout.height is None:  # the page's charts take the figure's height (optuna sets none)
            figure.update_layout(height=460)
        page.figure(figure)
    page.heading("Key importances (fANOVA)")
    if "importances" in best:
        _table(page, [{"key": k, "importance": v} for k, v in best["importances"].items()])
        for key, why in (best.get("left_out") or {}).items():
            page.paragraph(f"{key} left out: {why}")
    else:
        page.paragraph(best.get("note", "not computed"))
    if best.get("refit"):
        refit = best["refit"]
        arms = "the best trial is the base config, trained alone" if refit.get("best_is_base") else "tuned vs base"
        page.heading(f"Refit over seeds: {arms} ({refit['metric']}, trainlab compare in {refit['dir']})")
        _refit_leaderboard(page, refit)
    page.heading("Trials")
    _table(page, trial_rows(study, _searched_keys(study), settings.out))
    return page


def _searched_keys(study: optuna.Study) -> list[str]:
    keys: dict[str, None] = {}
    for trial in study.get_trials(deepcopy=False):
        keys.update(dict.fromkeys(trial.params))
    return list(keys)


def write_report(study: optuna.Study, settings: TuneSettings, best: dict[str, Any]) -> None:
    """``settings.out / report.html``: :func:`tune_page`, rendered."""
    write_text(settings.out / "report.html", tune_page(study, settings, best).render())
