"""What a report says, section by section, for a comparison folder or for run folders.

:func:`comparison_page` follows the issue's list: leaderboard (table and CI chart), learning
curves on a step and a wall-clock axis, time to target, the LR followed, the generalisation gap,
the best strategy's confusion matrix or residuals and each strategy's config as a diff against the
task's shared base (all per task: tasks have their own base configs), then the performance profile
(several tasks) and the environment. A page of plain run folders (:mod:`trainlab.report.runs_page`) is
built from the same sections.
"""

from __future__ import annotations

import html
import json
import math
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from trainlab.compare.leaderboard_output import spread_text
from trainlab.config_fields import counted
from trainlab.report import figures
from trainlab.report.page import Markup, Page, wrapped
from trainlab.report.predictions import Predictions, load_predictions
from trainlab.report.series import ABSENT, config_diff, final_loss_gap, performance_profile, restored_monitor
from trainlab.report.sources import Comparison, RunRecords

PROFILE_TAUS = [float(t) for t in np.round(np.logspace(0, 1, 41), 4)]  # tau from 1 to 10
NO_RECORDS = "No metric records (metrics.jsonl is empty or missing)."
MAX_PREDICTION_FIGURES = 4  # run-folder reports: confusion/residual figures for at most this many runs
# the verdicts trainlab compare writes (compare/leaderboard.py), each with a CSS class of the page; any other
# value in a leaderboard.json (a hand edit, a planted file) gets the neutral class, never its own text
VERDICT_CLASSES = {verdict: "verdict-" + verdict.replace(" ", "-")
                   for verdict in ("best", "better", "worse", "worse on every seed", "better on every seed",
                                   "indistinguishable", "too few seeds", "all runs failed", "not run")}


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers to ``digits`` significant figures; None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


# --------------------------------------------------------------------------- shared pieces

def curve_keys(groups: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
               metric: str | Sequence[str] | None) -> list[str]:
    """train_loss, val_loss and the validation form of ``metric`` (several: of each, as run folders of
    different tasks have them), else the first other val_ key, present."""
    present = {k for runs in groups.values() for records in runs for r in records for k in r}
    wanted = ["train_loss", "val_loss"]
    for one in [metric] if isinstance(metric, str) else list(metric or []):
        name = one.split("_", 1)[1] if one.split("_", 1)[0] in ("test", "val", "train") else one
        if f"val_{name}" in present and f"val_{name}" not in wanted:
            wanted.append(f"val_{name}")
    if len(wanted) == 2:
        others = sorted(k for k in present if k.startswith("val_") and k != "val_loss"
                        and any(isinstance(r.get(k), (int, float)) for runs in groups.values()
                                for records in runs for r in records))
        wanted += others[:1]
    return [k for k in wanted if k in present]


def add_curves(page: Page, groups: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]],
               metric: str | Sequence[str] | None, palette: Mapping[str, str],
               events: Sequence[Mapping[str, Any]] = (), empty: str = NO_RECORDS) -> None:
    """The learning curves of ``groups`` (name -> one record list per run) on the step axis and, where the
    records have ``elapsed_s``, on the wall-clock axis; ``empty`` (:func:`no_curves_text`) in their place
    where no record holds a key to plot."""
    keys = curve_keys(groups, metric)
    if not keys:
        page.paragraph(empty)
        return
    page.figure(figures.curves_figure(groups, keys, "step", palette, events))
    has_clock = any("elapsed_s" in r for runs in groups.values() for records in runs for r in records)
    if has_clock:
        page.figure(figures.curves_figure(groups, keys, "elapsed_s", palette))
    else:
        page.paragraph("No wall-clock times in the records (elapsed_s), so no wall-clock axis.")


def no_curves_text(runs: Sequence[RunRecords], see: str = "the events below") -> str:
    """Why ``runs`` have no learning curve, saying what their records hold: no record at all; only events, where
    every run diverged before its first epoch or step record (the step it diverged at, and where it was found:
    :func:`divergence_text`); or records without a loss or validation value. ``see``: where the page shows the
    events (a comparison's page: the failures under the leaderboard)."""
    if any(run.records for run in runs):
        return "The metric records hold no train_loss, val_loss or other val_ value to plot."
    if not any(run.events for run in runs):
        return NO_RECORDS
    diverged = [divergence_text(run) for run in runs if run.divergence_step is not None]
    if len(diverged) == len(runs) == 1:
        return (f"No epoch or step record to plot: the run diverged at {diverged[0]}, before its first metric "
                f"record was written; its records hold only events (see {see}).")
    if len(diverged) == len(runs):
        return (f"No epoch or step record to plot: every run diverged before its first metric record was written ({'; '.join(diverged)}); "
                f"their records hold only events (see {see}).")
    return f"No epoch or step record to plot: the records hold only events (see {see})."


def divergence_text(run: RunRecords) -> str:
    """``step 5`` for a run that diverged at step 5 (:attr:`~trainlab.report.sources.RunRecords.divergence_step`),
    ``step 5 (found at step 9, where training stopped)`` where its ``steps`` are more (:func:`found_text`)."""
    found = found_text(run)
    return f"step {run.divergence_step}" + (f" ({found})" if found else "")


def found_text(run: RunRecords) -> str | None:
    """``found at step 9, where training stopped`` for a run that diverged at an earlier step than its
    ``steps``: the divergence guard reads the losses every few steps (``check_every``), so the steps up to that
    read ran before it found the bad one; None where the two agree, or for a run that did not diverge."""
    step = run.divergence_step
    _, stopped, _, _ = run.progress()
    if step is None or not isinstance(stopped, int) or stopped <= step:
        return None
    return f"found at step {stopped}, where training stopped"


def add_lr(page: Page, groups: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]], palette: Mapping[str, str]) -> None:
    if any("lr" in r for runs in groups.values() for records in runs for r in records):
        page.figure(figures.lr_figure(groups, palette))
    else:
        page.paragraph("The records hold no learning rate (lr).")


def add_gap(page: Page, groups: Mapping[str, Sequence[RunRecords]], metric: str | None,
            palette: Mapping[str, str]) -> None:
    """Val loss - train loss of the final weights, and val vs test of the chosen metric, per seed."""
    add_loss_gap(page, groups, palette)
    add_split_gap(page, groups, metric, palette)


def add_loss_gap(page: Page, groups: Mapping[str, Sequence[RunRecords]], palette: Mapping[str, str],
                 category: str = "strategy", of: str = "") -> None:
    """Each finished run's val loss - train loss of its final weights (:func:`~trainlab.report.series.final_loss_gap`),
    per group (``category``: the x-axis title; ``of``: words after "in loss" in the title, e.g. which runs where
    a page has one chart per task). Only finished runs are drawn, as leaderboard.json's ``convergence.gap_loss``
    holds only theirs: a diverged, failed or stopped run has no final weights (its last epoch record is of
    weights before it went bad), and a line above the chart names the runs left out (:func:`_left_out_text`).
    The title counts the finished runs whose gap is their last epoch record's, with a running train loss (no
    ``train`` block in summary.json: ``output.evaluate_train: false``, older runs). No chart where no finished
    run has a gap: then only the line naming the runs left out, if any (the section was empty after an
    interrupted comparison)."""
    finished = {name: [run for run in runs if run.status == "finished"] for name, runs in groups.items()}
    gaps = {name: [final_loss_gap(run.summary, run.records) for run in runs] for name, runs in finished.items() if runs}
    loss = {name: [gap for gap, _ in pairs] for name, pairs in gaps.items()}
    left_out = {name: unfinished for name, runs in groups.items()
                if (unfinished := [run for run in runs if run.status != "finished"])}
    drawn = any(v is not None for values in loss.values() for v in values)
    if left_out:
        page.paragraph(_left_out_text(left_out, category, drawn))
    if not drawn:
        return
    running = sum(gap is not None and not from_summary for pairs in gaps.values() for gap, from_summary in pairs)
    total = sum(len(pairs) for pairs in gaps.values())
    title = f"generalisation gap in loss{of} (above 0: validation loss is higher)"
    if running:  # the epoch's running train loss: dropout on and weights moving, so it reads too low
        title += (f"; {running} of {total} runs without a train evaluation (output.evaluate_train): the last "
                  "epoch's running train loss")  # of the finished runs drawn: the others are named above it
    y_title = "val loss - train loss (final weights)" if not running else "val loss - train loss"
    page.figure(figures.box_by_group(loss, palette, y_title, title, category=category))


def _left_out_text(left_out: Mapping[str, Sequence[RunRecords]], category: str, drawn: bool = True) -> str:
    """The line above the loss-gap chart naming the runs that did not finish, with how each ended: by strategy
    and status count (``s06: 3 diverged``) on a comparison's page, by run (``seed-0: diverged``) on a page of
    run folders."""
    if category == "run":
        named = "; ".join(f"{name}: {run.status}" for name, runs in left_out.items() for run in runs)
    else:
        named = "; ".join(f"{name}: " + ", ".join(f"{n} {status}" for status, n in
                                                  Counter(run.status for run in runs).items())
                          for name, runs in left_out.items())
    count = sum(len(runs) for runs in left_out.values())
    opening = "Left out of the loss gap below" if drawn else "No loss gap to draw: no finished run has one; left out"
    return (f"{opening}: {counted(count, 'run')} that did not finish ({named}), as trainlab compare leaves them out "
            "of its gap_loss: a run that did not finish has no final weights.")


def add_split_gap(page: Page, groups: Mapping[str, Sequence[RunRecords]], metric: str | None,
                  palette: Mapping[str, str], category: str = "strategy") -> None:
    """Validation minus test value of ``metric`` (summary.json) per run, per group; nothing for the loss."""
    name = metric.split("_", 1)[1] if metric and "_" in metric else metric
    if not name or name == "loss":
        return
    split_gap, shown = {}, []
    for strategy, runs in groups.items():
        values = []
        for run in runs:
            val, test = run.split_metric(f"val_{name}"), run.split_metric(f"test_{name}")
            values.append(val - test if val is not None and test is not None else None)
            if values[-1] is not None:
                shown.append(run)
        split_gap[strategy] = values
    if shown:
        page.figure(figures.box_by_group(split_gap, palette, f"val_{name} - test_{name}",
                                         f"validation vs test {name} ({evaluated_model_text(shown)})",
                                         category=category))


def evaluated_model_text(runs: Sequence[RunRecords]) -> str:
    """Which model the ``runs`` evaluated on val and test (:func:`~trainlab.report.series.restored_monitor`),
    for the validation-vs-test chart: the best epoch chosen on validation (early stopping's restore_best)
    makes the validation value the best of many, so the gap means something else than for the model at the
    end of training."""
    monitors = [restored_monitor(run.config, run.summary) for run in runs]
    chosen = sorted({m for m in monitors if m})
    if not chosen:
        return "the model at the end of training: no epoch was chosen on validation"
    if None not in monitors:  # every run restored its best epoch, by one monitor or several
        wheres = {"on validation" if m.startswith("val_") else "on the training data" for m in chosen}
        where = wheres.pop() if len(wheres) == 1 else "on validation or on the training data"
        return f"early stopping restored the epoch of the best {' or '.join(chosen)}: chosen {where}"
    restored = sum(m is not None for m in monitors)
    others = "the other is" if len(monitors) - restored == 1 else "the others are"
    return (f"early stopping restored the epoch of the best {' or '.join(chosen)} in {restored} of "
            f"{len(monitors)} runs, {others} the model at the end of training")


def add_predictions(page: Page, run: RunRecords, label: str) -> None:
    predictions = load_predictions(run.path)
    if not isinstance(predictions, Predictions):
        page.paragraph(f"Confusion matrix / residuals unavailable for {label}: {predictions.reason}.")
        return
    if predictions.task == "classification":
        page.figure(figures.confusion_figure(predictions, f"confusion matrix on the test split: {label}"))
    elif predictions.task == "multilabel":
        page.figure(figures.label_confusion_figure(predictions, f"confusion matrix per label on the test split: {label}"))
    else:
        page.figure(figures.residual_figure(predictions, f"residuals on the test split: {label}"))


def _git_commit(source: Path | None = None) -> str | None:
    """The commit of the trainlab checkout the report is written from: ``source`` (default: the folder that
    holds the ``trainlab`` package) must be the top of its own git work tree. An installed package sits in
    site-packages, which may lie inside some other repository (a project with its ``.venv`` in it): git
    would answer with that repository's commit, so a folder that is not its work tree's top gives None."""
    source = Path(__file__).resolve().parents[2] if source is None else source
    try:
        done = subprocess.run(["git", "-C", str(source), "rev-parse", "--show-toplevel", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split("\n")
    if done.returncode != 0 or len(lines) < 2 or not lines[1].strip():
        return None
    top = Path(lines[0].strip())
    try:
        own = top.resolve() == source.resolve()
    except OSError:
        return None
    return lines[1].strip() if own else None


def add_environment(page: Page, runs: Sequence[RunRecords], extra: Mapping[str, Any] | None = None) -> None:
    """Hardware and versions recorded in the runs' summaries; differing values are all listed."""
    facts: dict[str, list[str]] = {}
    for run in runs:
        environment = dict(run.summary.get("environment") or {})
        environment.setdefault("trainlab", run.summary.get("trainlab") or run.info.get("trainlab"))
        for key, value in environment.items():
            if value is not None:
                seen = facts.setdefault(key, [])
                if str(value) not in seen:
                    seen.append(str(value))
    for key, value in (extra or {}).items():
        if value is not None:
            facts.setdefault(key, [str(value)])
    if not any(key in facts for key in ("git_commit", "commit", "git")):
        commit = _git_commit()
        facts["git commit (trainlab source at report time)"] = [commit or "not a git checkout"]
    if not facts:
        page.paragraph("The runs recorded no environment (summary.json missing).")
        return
    page.table(["fact", "value (all runs)"], [[key, " | ".join(values)] for key, values in facts.items()])


def _config_value(value: Any) -> str:
    """A config value as JSON (``null`` only where the config holds null); "(not set)" where it lacks the key."""
    return "(not set)" if value is ABSENT else json.dumps(value, ensure_ascii=False)


def _unreached(entry: Mapping[str, Any], values: list[float | None]) -> str:
    """Why seeds of a leaderboard ``entry`` have no time (``values``, one per ``entry["seeds"]``) to its target,
    as the box chart writes it under the strategy: ``2 missed, 4 failed, 1 not run`` (a run that crashed never
    had the chance to miss it); "" where every seed has one."""
    failed = {failure["seed"] for failure in entry.get("failures") or []}
    not_run = {missing["seed"] for missing in entry.get("not_run") or []}
    seeds = entry.get("seeds") or [None] * len(values)
    kinds = ["failed" if seed in failed else "not run" if seed in not_run else "missed"
             for seed, value in zip(seeds, values, strict=False) if value is None]
    return ", ".join(f"{kinds.count(kind)} {kind}" for kind in ("missed", "failed", "not run") if kind in kinds)


def add_config_diff(page: Page, configs: Mapping[str, Mapping[str, Any]], what: str) -> None:
    base, differences = config_diff(configs)
    keys = sorted({k for diff in differences.values() for k in diff})
    if keys and len(configs) > 1:
        page.paragraph(f"Keys where the {what} differ (every other key is in the shared base below; "
                       "names, seeds and output settings are not compared).")
        rows = [[Markup(f"<code>{html.escape(k)}</code>"),
                 *(_config_value(differences[n].get(k, ABSENT)) for n in configs)] for k in keys]
        page.table(["config key", *(wrapped(name) for name in configs)], rows)
    elif len(configs) > 1:
        page.paragraph(f"All {what} share one config (apart from names, seeds and output settings).")
    lines = [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in base.items()]
    page.preformatted("\n".join(lines) or "(empty)", summary=f"shared base config ({len(lines)} keys)")


def add_events(page: Page, runs: Mapping[str, RunRecords]) -> None:
    rows = []
    for label, run in runs.items():
        for event in run.events:
            details = {k: v for k, v in event.items() if k not in ("event", "step", "epoch")}
            rows.append([label, fmt(event.get("step")), fmt(event.get("epoch")), event.get("event"),
                         json.dumps(details, ensure_ascii=False)[:300]])
        if run.stop_reason or run.status != "finished":
            epochs, steps, _, _ = run.progress()
            rows.append([label, fmt(steps), fmt(epochs), f"end: {run.status}", run.stop_reason or ""])
    if rows:
        page.table(["run", "step", "epoch", "event", "details"], rows)
    else:
        page.paragraph("No events were recorded.")


# --------------------------------------------------------------------------- comparison

def leaderboard_table(page: Page, entries: Sequence[Mapping[str, Any]], metric: str, has_target: bool) -> None:
    """leaderboard.json's ranked ``entries`` of one task as the page's table (the tune report's refit too)."""
    header = ["rank", "strategy", f"{metric} mean ± std", "95% CI", "median", "n (failed)",
              "vs best", "P(improvement)", "train time (s, mean)"]
    if has_target:
        header.append("time to target (s, median; reached)")
    rows, classes = [], []
    for entry in entries:
        stats = (entry.get("metrics") or {}).get(metric) or {}
        vs = entry.get("vs_best") or {}
        verdict = str(vs.get("verdict") or "–")
        if vs.get("p_holm") is not None and verdict in ("indistinguishable", "worse", "better", "worse on every seed",
                                                        "better on every seed"):
            verdict_text = f"{verdict} (p_holm = {fmt(vs['p_holm'], 3)}, {vs.get('test') or '?'})"
        else:
            verdict_text = verdict
        css = VERDICT_CLASSES.get(verdict, "verdict-other")
        time_stats = (entry.get("metrics") or {}).get("train_time_s") or {}
        row = [fmt(entry.get("rank")), wrapped(str(entry.get("name"))),
               f"{fmt(stats.get('mean'))} ± {fmt(None) if stats.get('std') is None else spread_text(stats)}",
               _interval_text(stats),
               fmt(stats.get("median")),
               f"{_value_count(stats)} ({entry.get('failed', 0)}"
               + (f"; {entry['missing']} not run)" if entry.get("missing") else ")"),
               Markup(f'<span class="{css}">{html.escape(verdict_text)}</span>'), fmt(vs.get("prob_improvement"), 3),
               fmt(time_stats.get("mean"))]
        if has_target:
            ttt = entry.get("time_to_target_s") or {}
            row.append(f"{fmt(ttt.get('median'))} ({ttt.get('reached', '–')}/{len(ttt.get('values') or [])})")
        rows.append(row)
        classes.append("best" if (entry.get("vs_best") or {}).get("verdict") == "best" else "")
    page.table(header, rows, classes, numeric={0, 4, 7, 8})


def figures_table(page: Page, entries: Sequence[Mapping[str, Any]]) -> None:
    """Every figure leaderboard.json holds per strategy beside the ranking metric, as mean [95% CI] over its
    seeds: each ``test_`` metric, the training time, the optimizer updates (``steps``: batch 1 takes the rows
    per epoch in updates, a full batch one) and, for convergence, the epoch of the best validation value
    (its median). The leaderboard's own table shows the ranking metric alone; these were in the JSON only."""
    keys = list(dict.fromkeys(key for entry in entries for key in entry.get("metrics") or {}
                              if key.startswith("test_")))
    keys += [key for key in ("train_time_s", "steps")
             if any(key in (entry.get("metrics") or {}) for entry in entries)]
    convergence = [entry.get("convergence") or {} for entry in entries]
    val_metric = next((c.get("val_metric") for c in convergence if c.get("best_val_epoch")), None)
    if not keys:
        return
    names = {"train_time_s": "train time (s)", "steps": "optimizer updates (steps)"}
    header = ["strategy", *(names.get(key, key) for key in keys)]
    if val_metric:
        header.append(f"epoch of best {val_metric} (median)")
    rows = []
    for entry, converged in zip(entries, convergence, strict=True):
        row = [wrapped(str(entry.get("name")))]
        for key in keys:
            stats = (entry.get("metrics") or {}).get(key) or {}
            interval = _interval_text(stats, method=False)
            row.append(fmt(stats.get("mean")) + ("" if interval == "–" else f" {interval}"))
        if val_metric:
            row.append(fmt((converged.get("best_val_epoch") or {}).get("median")))
        rows.append(row)
    page.paragraph("Every recorded figure per strategy, mean over its seeds [95% CI] (the order of the leaderboard "
                   "above). Optimizer updates differ where the batch size does: compare strategies on accuracy per "
                   "time or per update as well as per epoch.")
    page.table(header, rows, numeric=set(range(1, len(header))))


def _value_count(stats: Mapping[str, Any]) -> str:
    """The n of a metric's statistics: its ``n``, else the number of its ``values`` (a leaderboard.json
    written without ``n``); never the strategy's ``runs``, which an older compare counted with the finished
    runs whose metric was NaN and so behind no statistic."""
    n = stats.get("n")
    if isinstance(n, int) and not isinstance(n, bool):
        return str(n)
    return str(len([v for v in stats.get("values") or [] if v is not None]))


def _interval_text(stats: Mapping[str, Any], method: bool = True) -> str:
    """The table's 95% CI cell: ``[lo, hi] t`` (its ``ci_method``, with ``method``); an en dash where there is
    no interval (fewer than two finished seeds), with no method named for it."""
    ci = stats.get("ci95")
    if not ci or None in ci:
        return "–"
    named = (stats.get("ci_method") or "") if method else ""
    return f"[{fmt(ci[0])}, {fmt(ci[1])}] {named}".rstrip()


def _failures_note(page: Page, entries: Sequence[Mapping[str, Any]]) -> None:
    """Under the leaderboard, why each failed run failed (leaderboard.json's ``failures``: a divergence, an
    error), by strategy and seed, then why each run that did not run was not (its ``not_run``: a folder another
    process held, a machine that stopped it); nothing where every run finished."""
    for key, noun, said in (("failures", "run", "failed"), ("not_run", "seed", "did not run")):
        rows = [[wrapped(str(entry.get("name"))), fmt(item.get("seed")), wrapped(str(item.get("reason")), "reason")]
                for entry in entries for item in entry.get(key) or [] if isinstance(item, Mapping)]
        if not rows:
            continue
        why = ("(a strategy with failed seeds ranks below those without; a run that finished with a ranking metric "
               "that is not a finite number counts as failed, its training time still in the mean)"
               if key == "failures" else
               f"(rerun the same trainlab compare command to train {'it' if len(rows) == 1 else 'them'})")
        page.paragraph(f"{counted(len(rows), noun)} {said} and {'is' if len(rows) == 1 else 'are'} left out of the "
                       f"statistics above {why}. Why:")
        page.table(["strategy", "seed", "reason"], rows, numeric={1})


# The measures trainlab compare's own profile can be on (compare/leaderboard.py task_profile writes its
# ``measure`` as "median <key>...": time to target with --target, training time without): the record key,
# how the page names it, and the ratio the x-axis names.
PROFILE_MEASURES = {
    "time_to_target_s": ("median wall-clock time to target (time_to_target_s) per task, a missed target "
                         "counting as never", "median time to target / best strategy's"),
    "train_time_s": ("median training time (train_time_s) per task, not the ranking metric: without --target "
                     "compare profiles training time", "median training time / best strategy's"),
}
MAX_MEASURE_CHARS = 120  # a measure compare never writes is shown as written, up to this long


class Profile(NamedTuple):
    """A performance profile as drawn: ``curves[strategy][i]`` is the fraction of tasks whose ratio to the
    best strategy is at most ``taus[i]``; ``measured_on`` says what the ratio is of (the page's sentence),
    ``ratio`` the same as the x-axis title names it ("median training time / best strategy's")."""

    curves: dict[str, list[float]]
    taus: list[float]
    measured_on: str
    ratio: str


def _compare_measure(measure: Any) -> tuple[str, str]:
    """(measured_on, ratio) for the ``measure`` of compare's profile: a known key by its name, any other
    text verbatim (a later compare, a hand edit), never a measure the profile is not on."""
    if not isinstance(measure, str) or not measure.strip():
        return ("a measure leaderboard.json does not name (its profile has no 'measure')",
                "unnamed measure / best strategy's")
    for key, (measured_on, ratio) in PROFILE_MEASURES.items():
        if key in measure.split():
            return measured_on, ratio
    shown = measure.strip()[:MAX_MEASURE_CHARS]
    return shown, f"{shown} / best strategy's"


def _profile(comparison: Comparison, direction: str) -> Profile:
    """The leaderboard's own profile (on its ``measure``), else one from the median times to target, else one
    on the mean ranking metric (its reciprocal when higher is better, so a lower ratio is better)."""
    given = comparison.leaderboard.get("profile")
    if isinstance(given, dict):
        taus = given.get("taus") or given.get("tau")
        curves = given.get("strategies") or given.get("rho") or given.get("fractions")
        if isinstance(taus, list) and isinstance(curves, dict) and all(
                isinstance(v, list) and len(v) == len(taus) for v in curves.values()):
            measured_on, ratio = _compare_measure(given.get("measure"))
            return Profile({k: [float(x) for x in v] for k, v in curves.items()}, [float(t) for t in taus],
                           f"{measured_on} (the profile trainlab compare wrote)", ratio)
    if comparison.leaderboard.get("target"):
        times = {task: {e["name"]: (e.get("time_to_target_s") or {}).get("median") for e in comparison.strategies(task)}
                 for task in comparison.tasks}
        measured_on, ratio = PROFILE_MEASURES["time_to_target_s"]
        return Profile(performance_profile(times, PROFILE_TAUS), PROFILE_TAUS, measured_on, ratio)
    metric = comparison.leaderboard.get("metric")
    costs: dict[str, dict[str, float | None]] = {}
    for task in comparison.tasks:
        costs[task] = {}
        for entry in comparison.strategies(task):
            mean = ((entry.get("metrics") or {}).get(metric) or {}).get("mean")
            if mean is None or mean <= 0:
                costs[task][entry["name"]] = None
            else:  # a cost where lower is better: the metric itself (min) or its reciprocal (max)
                costs[task][entry["name"]] = mean if direction == "min" else 1.0 / mean
    ratio = f"mean {metric} / best strategy's" if direction == "min" else f"best strategy's mean {metric} / this one's"
    return Profile(performance_profile(costs, PROFILE_TAUS), PROFILE_TAUS,
                   f"mean {metric} per task (no --target was set and leaderboard.json holds no profile)", ratio)


def _best_predictions(page: Page, entries: Sequence[Mapping[str, Any]], runs: Mapping[str, list[RunRecords]],
                      metric: str) -> None:
    """The predictions of the best strategy's first finished seed: the entries' rank 1 (they come ranked). None
    ranked (``rank`` null in leaderboard.json): no strategy has a run that counts, so there is no best."""
    best = entries[0]["name"] if entries and entries[0].get("rank") is not None else None
    candidates = [r for r in runs.get(best, []) if r.status == "finished"] if best else []
    if candidates:
        add_predictions(page, candidates[0], f"{best}, seed {candidates[0].seed}")
    elif best is None and entries:
        page.paragraph(f"No strategy has a run that counts for {metric} (every seed failed): there is no best "
                       "strategy to predict with.")
    else:
        page.paragraph("No finished run of the best strategy to predict with.")


def board_notes(board: Mapping[str, Any]) -> list[str]:
    """leaderboard.json's top-level ``notes``: the caveats trainlab compare writes about the whole comparison
    (``--metric test_loss`` ranking strategies that train different losses, whose values are on different
    scales); [] where the key is absent, null or an empty list. A value of another shape (not a list of
    strings: a hand edit) is a TypeError, which :func:`~trainlab.report.write_report` reports as a leaderboard
    that is not as compare writes it."""
    notes = board.get("notes")
    if notes is None:
        return []
    if not isinstance(notes, list) or not all(isinstance(note, str) for note in notes):
        raise TypeError(f"'notes' must be a list of strings, not {type(notes).__name__} {str(notes)[:60]!r}")
    return [note for note in notes if note.strip()]


def _task_sections(page: Page, comparison: Comparison, task: str, palette: Mapping[str, str],
                   prefix: str) -> None:
    """One task's sections: leaderboard, learning curves, time to target, LR, generalisation gap, the best
    strategy's predictions and the strategies' configs (each task has its own base config)."""
    board = comparison.leaderboard
    metric = str(board.get("metric") or "test_loss")
    target = board.get("target")
    entries = comparison.strategies(task)
    runs = comparison.runs.get(task, {})
    order = [e["name"] for e in entries] + [s for s in runs if s not in {e["name"] for e in entries}]
    groups = {name: runs[name] for name in order if name in runs}
    records = {name: [run.records for run in seeds] for name, seeds in groups.items()}

    page.heading(f"{prefix}leaderboard")
    if entries:
        leaderboard_table(page, entries, metric, bool(target))
        _failures_note(page, entries)
        page.figure(figures.leaderboard_chart(entries, metric, palette))
        figures_table(page, entries)
    else:
        page.paragraph(f"leaderboard.json has no entries for task {task}.")
    losses = losses_note(groups, metric)
    page.heading(f"{prefix}learning curves")
    if losses:
        page.paragraph(losses)
    add_curves(page, records, metric, palette,
               empty=no_curves_text([run for seeds in groups.values() for run in seeds], "the failures above"))
    if target:
        page.heading(f"{prefix}time to target ({target_text(target)})")
        ttt = {e["name"]: list((e.get("time_to_target_s") or {}).get("values") or []) for e in entries}
        page.figure(figures.box_by_group(ttt, palette, "wall-clock time to target (s)",
                                         "time to target per seed (a miss counts as never, AlgoPerf)",
                                         note_missing={e["name"]: _unreached(e, ttt[e["name"]]) for e in entries}))
        steps = {e["name"]: list((e.get("steps_to_target") or {}).get("values") or []) for e in entries}
        if any(v is not None for values in steps.values() for v in values):
            page.figure(figures.box_by_group(steps, palette, "steps to target (optimizer updates)",
                                             "steps to target per seed",
                                             note_missing={e["name"]: _unreached(e, steps[e["name"]])
                                                           for e in entries}))
    page.heading(f"{prefix}learning rate followed")
    add_lr(page, records, palette)
    page.heading(f"{prefix}generalisation gap")
    if losses:
        page.paragraph(losses)
    add_gap(page, groups, metric, palette)
    page.heading(f"{prefix}predictions of the best strategy")
    _best_predictions(page, entries, runs, metric)
    # each task's own configs: tasks have their own base configs (data, loss, epochs, and the lr a
    # strategy inherits), so one strategy's config from another task would be wrong here
    page.heading(f"{prefix}strategy configs (diff against the shared base)")
    if groups:
        add_config_diff(page, {name: seeds[0].config for name, seeds in groups.items()}, "strategies")
    else:
        page.paragraph(f"No run of task {task} to read configs from.")


def losses_note(groups: Mapping[str, Sequence[RunRecords]], metric: str | None, what: str = "strategies"
                ) -> str | None:
    """Where the strategies (``what``: the runs of a run-folder report, ``metric`` None) train different losses
    (huber beside mse, label smoothing beside plain cross-entropy reads as one name: only names that differ
    count), the line that says their loss curves and loss gaps are on
    scales of their own, not to be read across (a huber curve far below the mse ones read as better); None
    where they share one. Each strategy's loss is its first finished run's (:attr:`RunRecords.loss`, from its
    summary; a diverged run's summary names none, and its config may say ``auto``); a strategy with no finished
    run is left out."""
    by_loss: dict[str, list[str]] = {}
    for name, runs in groups.items():
        loss = next((run.loss for run in runs if run.status == "finished"), None)
        if loss is not None:
            by_loss.setdefault(loss, []).append(name)
    if len(by_loss) < 2:
        return None
    listed = "; ".join(f"{loss}: {', '.join(names)}" for loss, names in by_loss.items())
    ranked = f"; {metric} ranks them all" if metric else ""
    return (f"The {what} train different losses ({listed}): each one's train_loss and val_loss, and its loss "
            f"gap, are on its own loss's scale, to be compared only within one loss{ranked}.")


def target_text(target: Any) -> str:
    """``val_accuracy reaching 0.9``: leaderboard.json's ``target``; ``none`` without one."""
    return f"{target['metric']} reaching {target['value']}" if isinstance(target, dict) else "none"


def comparison_page(comparison: Comparison) -> Page:
    """The page of a comparison folder: leaderboard.json's ``notes`` first (:func:`board_notes`), each task's
    sections (:func:`_task_sections`), the performance profile (several tasks) and the environment."""
    board = comparison.leaderboard
    metric = str(board.get("metric") or "test_loss")
    direction = str(board.get("direction") or ("min" if metric.endswith("loss") else "max"))
    page = Page(f"trainlab comparison: {comparison.path.resolve().name}", template="plotly_white")
    names = list(dict.fromkeys([e["name"] for t in comparison.tasks for e in comparison.strategies(t)]
                               + [s for runs in comparison.runs.values() for s in runs]))
    palette = figures.colours(names)
    several = len(comparison.tasks) > 1
    for note in board_notes(board):  # above every leaderboard table: they are about the whole comparison
        page.paragraph(f"Note: {note}", css="caveat")
    for task in comparison.tasks:
        _task_sections(page, comparison, task, palette, f"{task}: " if several else "")
    if several:
        page.heading("performance profile over tasks")
        profile = _profile(comparison, direction)
        page.paragraph(f"Measured on: {profile.measured_on}. tau, per task: {profile.ratio}.")
        page.figure(figures.profile_figure(profile.curves, profile.taus, palette, profile.ratio))
    page.heading("environment")
    all_runs = [run for task in comparison.tasks for seeds in comparison.runs.get(task, {}).values() for run in seeds]
    add_environment(page, all_runs, {k: board.get(k) for k in ("git_commit", "environment") if k in board})
    page.subtitle = (f"{counted(len(comparison.tasks), 'task')}, {counted(len(names), 'strategy', 'strategies')}, "
                     f"{counted(board.get('seeds', '?'), 'seed')}; ranked by {metric} ({direction}); target: "
                     f"{target_text(board.get('target'))}. Folder: {comparison.path.resolve()}")
    return page
