"""What a report of plain run folders says (``trainlab report RUN [RUN ...]``): results (a table per set of
metrics the runs report), learning curves, the LR followed, the generalisation gap (several runs), predictions,
events, config and environment. The sections shared with a comparison's page are in :mod:`trainlab.report.sections`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from trainlab.config_fields import MAX_CONFIG_BYTES, counted
from trainlab.records import read_record_text
from trainlab.report import figures
from trainlab.report.page import Page
from trainlab.report.sections import (
    MAX_PREDICTION_FIGURES,
    add_config_diff,
    add_curves,
    add_environment,
    add_events,
    add_loss_gap,
    add_lr,
    add_predictions,
    add_split_gap,
    fmt,
    found_text,
    losses_note,
    no_curves_text,
)
from trainlab.report.sources import STOPPED, RunRecords, run_labels


def _config_text(path: Path) -> str:
    """A run's config.yaml as written, read as load_run read it (bounded, never through a link)."""
    if not path.is_file():
        return "(no config.yaml)"
    try:
        return read_record_text(path, MAX_CONFIG_BYTES)
    except (OSError, ValueError) as exc:
        return f"(config.yaml cannot be shown: {exc})"


def run_metrics(run: RunRecords) -> list[str]:
    """The metrics ``run`` reports, without their split prefix: its summary.json's validation and test keys
    (``loss`` aside, which every run has), in order; a run without them (still running, killed), its
    config's ``metrics``."""
    val, test = run.summary.get("val") or {}, run.summary.get("test") or {}
    names = [key for key in dict.fromkeys([*val, *test]) if key != "loss"]
    return names or [m for m in run.config.get("metrics") or [] if isinstance(m, str)]


def metric_groups(runs: Mapping[str, RunRecords]) -> dict[tuple[str, ...], dict[str, RunRecords]]:
    """The runs (by label) grouped by the metrics they report (:func:`run_metrics`): runs of one task share
    them, runs of different tasks (a classifier beside a regressor) do not."""
    groups: dict[tuple[str, ...], dict[str, RunRecords]] = {}
    for label, run in runs.items():
        groups.setdefault(tuple(run_metrics(run)), {})[label] = run
    return groups


def loss_gap_groups(runs: Mapping[str, RunRecords]) -> dict[str, dict[str, RunRecords]]:
    """The runs (by label) split into one loss-gap chart each, keyed by the words the chart's title adds: as the
    results tables split them (:func:`metric_groups`: runs of different tasks), and by the loss they trained
    (:attr:`~trainlab.report.sources.RunRecords.loss`), since a cross-entropy gap and a (standardised) MSE gap are not on one scale. One
    group, keyed ``""``, where all runs share both."""
    keys = {label: (tuple(run_metrics(run)), run.loss) for label, run in runs.items()}
    several_metrics = len({metrics for metrics, _ in keys.values()}) > 1
    several_losses = len({loss for _, loss in keys.values()}) > 1
    groups: dict[str, dict[str, RunRecords]] = {}
    for label, (metrics, loss) in keys.items():
        words = ([f"reporting {', '.join(metrics) or 'no metric but the loss'}"] if several_metrics else []) + (
            [f"trained on {loss}"] if several_losses else [])
        groups.setdefault(f" of the runs {', '.join(words)}" if words else "", {})[label] = runs[label]
    return groups


def _progress_text(run: RunRecords) -> str:
    """``N epochs, N steps, N s training``: summary.json's, else counted from the records (and said so). A
    diverged run's summary has only its ``steps``, where it stopped, which can be past the step its stop reason
    names (the divergence guard reads the losses every few steps): said as where it was found
    (:func:`found_text`), with the epochs its records completed."""
    epochs, steps, seconds, from_records = run.progress()
    if run.divergence_step is not None:
        done = epochs  # a diverged run's summary has its steps only: the epochs its records completed
        completed = f"{counted(done, 'epoch')} completed" if done is not None else "no epoch completed"
        found = found_text(run)
        found = (f"{found} (the divergence guard reads the losses every few steps)" if found
                 else f"training stopped at step {run.divergence_step}")
        return f"{found}; {completed}"
    return (f"{fmt(epochs)} epochs, {fmt(steps)} steps, {fmt(seconds)} s training"
            + (" (from its records: no summary.json)" if from_records else ""))


def _single_results(page: Page, run: RunRecords) -> None:
    """One run: its validation and test value of every metric, and its final weights' value on the training
    split where summary.json has it (``output.evaluate_train``), or why there are none."""
    val, test = run.summary.get("val") or {}, run.summary.get("test") or {}
    columns = {"validation": val, "test": test}
    if isinstance(run.summary.get("train"), dict):
        columns = {"train (final weights)": run.summary["train"], **columns}
    keys = list(dict.fromkeys([*val, *test]))
    if keys:
        page.table(["metric", *columns], [[k, *(fmt(split.get(k)) for split in columns.values())] for k in keys],
                   numeric=set(range(1, len(columns) + 1)))
        return
    if run.status == "diverged":
        ended = f"the run diverged: {run.stop_reason or 'a non-finite or exploding loss'}"
    elif run.status == STOPPED:
        ended = "the run stopped before it finished: its writer is gone"
    else:
        ended = "the run did not finish"
    page.paragraph(f"No summary.json metrics ({ended}).")


def _results_table(page: Page, runs: Mapping[str, RunRecords], metrics: Sequence[str]) -> None:
    """One row per run: status, the validation and test value of each of ``metrics``, test loss, epochs, time."""
    columns = [f"{split}_{name}" for name in metrics for split in ("val", "test")] + ["test_loss"]
    rows = []
    for label, run in runs.items():
        epochs, _, seconds, _ = run.progress()
        rows.append([label, run.status, *(fmt(run.split_metric(column)) for column in columns), fmt(epochs),
                     fmt(seconds)])
    page.table(["run", "status", *columns, "epochs", "train time (s)"], rows,
               numeric=set(range(2, len(columns) + 4)))


def _several_results(page: Page, groups: Mapping[tuple[str, ...], Mapping[str, RunRecords]],
                     palette: Mapping[str, str]) -> list[str]:
    """Several runs: a table per group of runs reporting the same metrics (one table when all do), then a bar
    chart of each group's first metric over the runs that report it. Returns the charted ``test_`` keys."""
    for metrics, runs in groups.items():
        if len(groups) > 1:
            what = ", ".join(metrics) if metrics else "no metric but the loss"
            page.paragraph(f"{counted(len(runs), 'run')} reporting {what}:")
        _results_table(page, runs, metrics)
    charted = list(dict.fromkeys(f"test_{metrics[0]}" if metrics else "test_loss" for metrics in groups))
    for shown in charted:
        name = shown.removeprefix("test_")
        values = {label: run.split_metric(shown) for runs in groups.values() for label, run in runs.items()
                  if name == "loss" or name in run_metrics(run)}
        if any(v is not None for v in values.values()):
            page.figure(figures.metric_bars(values, shown, palette))
    return charted


def runs_page(runs: Sequence[RunRecords]) -> Page:
    labels = run_labels(list(runs))
    by_label = dict(zip(labels, runs, strict=True))
    palette = figures.colours(labels)
    single = len(runs) == 1
    first = runs[0]
    page = Page(f"trainlab run: {first.name}" if single else f"trainlab runs: {len(runs)} run folders",
                template="plotly_white")
    if single:
        page.subtitle = (f"status {first.status}; {first.stop_reason or 'no stop reason'}; {_progress_text(first)}. "
                         f"Folder: {first.path.resolve()}")
    else:
        page.subtitle = "Folders: " + ", ".join(str(r.path.resolve()) for r in runs)

    page.heading("results")
    if single:
        _single_results(page, first)
        metrics = [f"test_{name}" for name in run_metrics(first)[:1]]
    else:
        metrics = _several_results(page, metric_groups(by_label), palette)
    curves = {label: [run.records] for label, run in by_label.items()}
    page.heading("learning curves")
    losses = None if single else losses_note({label: [run] for label, run in by_label.items()}, None, "runs")
    if losses:
        page.paragraph(losses)
    add_curves(page, curves, metrics, palette, events=first.events if single else (), empty=no_curves_text(runs))
    page.heading("learning rate followed")
    add_lr(page, curves, palette)
    if not single:
        page.heading("generalisation gap")
        for of, having in loss_gap_groups(by_label).items():  # one axis per loss scale, as the tables split
            add_loss_gap(page, {label: [run] for label, run in having.items()}, palette, category="run", of=of)
        for shown in metrics:
            name = shown.removeprefix("test_")
            having = {label: [run] for label, run in by_label.items() if name in run_metrics(run)}
            add_split_gap(page, having, shown, palette, category="run")
    page.heading("confusion matrix or residuals")
    for label, run in list(by_label.items())[:MAX_PREDICTION_FIGURES]:
        add_predictions(page, run, label)
    if len(runs) > MAX_PREDICTION_FIGURES:
        page.paragraph(f"Predictions shown for the first {MAX_PREDICTION_FIGURES} runs only.")
    page.heading("events")
    add_events(page, by_label)
    page.heading("config")
    if single:
        page.preformatted(_config_text(first.path / "config.yaml"))
    else:
        add_config_diff(page, {label: run.config for label, run in by_label.items()}, "runs")
    page.heading("environment")
    add_environment(page, runs)
    return page
