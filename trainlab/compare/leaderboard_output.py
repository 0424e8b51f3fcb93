"""A comparison's leaderboard as people and programs read it: ``leaderboard.csv`` (one row per strategy),
the files written (:func:`write_leaderboard`), and the printed tables (:func:`print_leaderboard`), with the
number formats the report shares (:func:`format_std`, :func:`spread_text`). The leaderboard itself is
built from the run folders by :mod:`trainlab.compare.leaderboard`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import trainlab.compare.stats as stats
from trainlab.atomic import write_json, write_text
from trainlab.compare.labels import short_labels
from trainlab.compare.leaderboard import CONVERGENCE_FIGURES, convergence_metric_note, target_example
from trainlab.config_fields import counted

# each convergence figure's statistics, as the ranking metric's (its n, mean, std and t interval)
CONVERGENCE_STATISTICS = ("n", "mean", "std", "ci95_low", "ci95_high")
CONVERGENCE_COLUMNS = ["convergence_val_metric", *(f"{figure}_{statistic}" for figure in CONVERGENCE_FIGURES
                                                   for statistic in CONVERGENCE_STATISTICS)]
CSV_COLUMNS = ["task", "rank", "strategy", "runs", "failed", "mean", "std", "median", "ci95_low", "ci95_high",
               "iqm", "test", "p", "p_holm", "verdict", "prob_improvement", "time_to_target_median_s",
               "target_reached", "train_time_s_mean", "failures", *CONVERGENCE_COLUMNS]


def convergence_cells(convergence: dict[str, Any]) -> list[Any]:
    """leaderboard.csv's :data:`CONVERGENCE_COLUMNS` of one strategy's ``convergence`` block: its validation
    key, then each figure's n, mean, std and 95% interval (empty where the block lacks them)."""
    cells: list[Any] = [convergence.get("val_metric")]
    for figure in CONVERGENCE_FIGURES:
        block = convergence.get(figure) or {}
        ci = block.get("ci95") or [None, None]
        cells += [block.get("n"), block.get("mean"), block.get("std"), ci[0], ci[1]]
    return cells


def to_csv(board: dict[str, Any]) -> str:
    """One row per task x strategy; the ranking metric's statistics in the mean..iqm columns, ``runs`` the
    number of values behind them; ``failures`` each failed seed and why (``seed 1: diverged: ...``, ``;``
    between seeds), a finished run counted as failed for a non-finite metric among them; then the
    convergence figures' statistics (:func:`convergence_cells`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    metric = board["metric"]
    for task, table in board["tasks"].items():
        for entry in table["strategies"]:
            block = entry["metrics"].get(metric, {})
            ci = block.get("ci95") or [None, None]
            vs = entry["vs_best"]
            writer.writerow([task, entry["rank"], entry["name"], entry["runs"], entry["failed"], block.get("mean"),
                             block.get("std"), block.get("median"), ci[0], ci[1], block.get("iqm"), vs["test"],
                             vs["p"], vs["p_holm"], vs["verdict"], vs["prob_improvement"],
                             entry["time_to_target_s"]["median"], entry["time_to_target_s"]["reached"],
                             entry["metrics"].get("train_time_s", {}).get("mean"), failure_text(entry),
                             *convergence_cells(entry.get("convergence") or {})])
    return buffer.getvalue()


def failure_text(entry: dict[str, Any]) -> str:
    """leaderboard.csv's ``failures`` cell: ``seed 1: <reason>; seed 2: <reason>``, empty where none failed."""
    return "; ".join(f"seed {f.get('seed')}: {f.get('reason')}" for f in entry.get("failures") or [])


def write_leaderboard(board: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``out/leaderboard.json`` and ``.csv``, written atomically (``out`` made if no run made it)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_json(out / "leaderboard.json", board)
    csv_path = write_text(out / "leaderboard.csv", to_csv(board))
    return json_path, csv_path


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


MAX_STD_DECIMALS = 6  # a std needing more decimals than this to show 2 significant digits is shown as .2g


def format_std(std: float | None, mean: float | None, digits: int = 4) -> str:
    """``std`` as printed beside ``mean`` shown to ``digits`` significant figures (``_fmt``): with as many
    decimals as that mean has, or more where it needs them for 2 significant digits (``2985 ± 100`` for a std
    of 99.507, ``0.9712 ± 0.0043``, ``2985 ± 0.31``), never in e-notation beside a plain mean: ``2985 ± 1e+02``
    hides the std's digits the mean shows. Beside a mean in e-notation (``1.234e+04``), or a std too small
    for :data:`MAX_STD_DECIMALS`, 2 significant digits (``.2g``); ``-`` for None."""
    if std is None:
        return "-"
    if std == 0:
        return "0"
    shown = _fmt(mean, digits)
    if mean is None or "e" in shown or not math.isfinite(std):
        return _fmt(std, 2)
    decimals = len(shown.partition(".")[2])
    if std > 0:
        decimals = max(decimals, 1 - math.floor(math.log10(std)))  # 2 significant digits
    if decimals > MAX_STD_DECIMALS:
        return _fmt(std, 2)
    return f"{std:.{decimals}f}"


def spread_text(block: dict[str, Any]) -> str:
    """The std of a metric ``block`` as the table and the report show it (:func:`format_std`; ``-`` for none):
    0 when the runs agree to float precision.

    Equal values give a rounding-noise std (0.9444 ± 1.4e-16), which reads as a real spread (the statistics
    give such values std 0: :func:`~trainlab.compare.stats.tied_value`; a leaderboard.json of an earlier
    version may hold the noise).
    """
    std, mean = block.get("std"), block.get("mean")
    if std is not None and mean is not None:
        equal = block.get("min") is not None and block.get("min") == block.get("max")
        if equal or abs(std) <= stats.TIE * abs(mean):
            return "0"
    return format_std(std, mean)


def ci_method_text(entries: list[dict[str, Any]], metric: str) -> str | None:
    """How the table's intervals of ``metric`` were made, in leaderboard.json's words (its ``ci_method``):
    ``t``, or ``t, clipped to [0, 1]`` where an interval reached past the metric's range and was clipped;
    None where no entry has an interval (one seed each: nothing was computed, so no method is named)."""
    blocks = [e["metrics"].get(metric, {}) for e in entries]
    methods = list(dict.fromkeys(b.get("ci_method") or "t" for b in blocks if b.get("ci95")))
    clipped = [m for m in methods if m != "t"]
    return clipped[0] if clipped else "t" if methods else None


def table_title(task: str, board: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """The printed table's title: the task, the metric and its direction, the seeds (``1 seed``), and the
    interval's method where one was computed (``[95% CI: t]``)."""
    metric, seeds = board["metric"], board["seeds"]
    method = ci_method_text(entries, metric)
    interval = f" [95% CI: {method}]" if method else ""
    return (f"{task}: ranked by {metric} ({board['direction']}), {counted(seeds, 'seed')}, "
            f"mean ± std{interval}")


def target_text(ttt: dict[str, Any]) -> str:
    """The table's time-to-target cell: the median time and how many runs reached the target, ``1.2 s (3/3)``;
    ``not reached (0/3)`` where no run did, ``most missed (1/3)`` where the median run missed it (a miss
    counts as infinite time, so the median is infinite)."""
    reached = f"({ttt['reached']}/{len(ttt['values'])})"
    if ttt["median"] is not None:
        return f"{_fmt(ttt['median'], 3)} s {reached}"
    return f"{'not reached' if not ttt['reached'] else 'most missed'} {reached}"


def count_text(entry: dict[str, Any], block: dict[str, Any]) -> str:
    """The table's counts after a mean: `` n=2, 2 failed, 1 not run``, where n is the number of values behind
    the statistics of ``block``, ``failed`` the strategy's failed seeds (a finished run counted as failed for a
    non-finite metric among them) and ``not run`` its missing ones (the machine stopped them)."""
    n = block.get("n", len(block.get("values") or []))
    return (f" n={n}" + (f", {entry['failed']} failed" if entry.get("failed") else "")
            + (f", {entry['missing']} not run" if entry.get("missing") else ""))


def _table_row(entry: dict[str, Any], metric: str, label: str, target: dict[str, Any] | None) -> list[str]:
    """One strategy's row of the printed table; ``label`` is rich markup already escaped."""
    block = entry["metrics"].get(metric, {})
    ci = block.get("ci95")
    vs = entry["vs_best"]
    verdict = vs["verdict"]
    if vs["p_holm"] is not None:
        verdict += f" p={vs['p_holm']:.2g}"
    style = {"best": "bold green", "worse": "red", "better": "bold yellow", "worse on every seed": "magenta",
             "better on every seed": "yellow"}.get(vs["verdict"], "")
    rank = "-" if entry["rank"] is None else str(entry["rank"])  # no run that counts: no rank (the CSV: empty)
    row = [rank, label,
           f"{_fmt(block.get('mean'))} ± {spread_text(block)}{count_text(entry, block)}",
           f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "-",
           f"[{style}]{verdict}[/{style}]" if style else verdict,
           _fmt(vs["prob_improvement"], 2),
           _fmt(entry["metrics"].get("train_time_s", {}).get("mean"), 3)]
    if target:
        row.insert(5, target_text(entry["time_to_target_s"]))
    return row


# the printed table has no room for them: one line says where they are
CONVERGENCE_WHERE = ("convergence per strategy (best_val_epoch, val_curve_mean, gap_loss, gap_val_test: n, mean, "
                     "std, 95% CI): in leaderboard.csv and under 'convergence' in leaderboard.json")


def footer_lines(entries: list[dict[str, Any]], metric: str) -> list[str]:
    """The lines under a task's table: per strategy, each failed or not-run seed with its reason and the
    strategy's own convergence note; then the convergence note of ``metric`` once
    (:func:`convergence_metric_note`: every strategy's block repeats it)."""
    shared = convergence_metric_note(metric)
    lines = []
    for entry in entries:
        for kind, items in (("failed", entry["failures"]), ("not run", entry.get("not_run") or [])):
            lines += [f"  {kind}: {entry['name']} seed {item['seed']}: {item['reason']}" for item in items]
        note = (entry.get("convergence") or {}).get("note") or ""
        if shared:
            note = note.removeprefix(shared).removeprefix("; ")
        if note:
            lines.append(f"  note: {entry['name']}: {note}")
    return [*lines, f"  note: {shared}"] if shared else lines


def print_leaderboard(board: dict[str, Any], console: Any = None) -> None:
    """A rich table per task, ranked by the metric, then the board's ``notes`` (``note: ...``, one line each).
    Names, reasons and notes are shown as written, never read as rich markup (a strategy named ``lr[/x]``
    would otherwise raise, ``[bold]a`` print as ``a``)."""
    from rich.markup import escape
    from rich.table import Table

    from trainlab.console import output_console

    if console is None:
        console = output_console()
        if not console.is_terminal:  # a log or a pipe: wide enough that no column is cut
            console = output_console(width=200)
    metric, target = board["metric"], board["target"]
    # long names (up to 195 characters) shortened alike in every table, distinct where the names are
    labels = short_labels([e["name"] for table_data in board["tasks"].values() for e in table_data["strategies"]])
    for task, table_data in board["tasks"].items():
        table = Table(title=escape(table_title(task, board, table_data["strategies"])))
        columns = ["rank", "strategy", metric, "95% CI", "vs best (Holm p)", "P(beats best)", "train s"]
        if target:
            columns.insert(5, f"time to {target['metric']}={target['value']:g} (reached)")
        for column in columns:
            table.add_column(escape(column), justify="left" if column in ("strategy", "vs best (Holm p)") else "right",
                             overflow="fold")  # wrapped, never cut to an ellipsis that makes two labels alike
        for entry in table_data["strategies"]:
            table.add_row(*_table_row(entry, metric, escape(labels[entry["name"]]), target))
        console.print(table)
        for line in footer_lines(table_data["strategies"], metric):
            console.print(line, markup=False, highlight=False)
    for note in board.get("notes") or []:  # a caveat on the whole ranking (losses of different scales)
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)  # one line, as its warning
    if board["tasks"]:
        console.print(CONVERGENCE_WHERE, markup=False, highlight=False)
    if board.get("profile"):
        for line in profile_lines(board, labels):
            console.print(line, markup=False, highlight=False)


def profile_lines(board: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """The printed profile: a heading, each strategy's geometric mean ratio (``labels``: the names as the tables
    show them). With ``--target`` it is of the time to reach the target. Without, the heading says plainly that
    it ranks training time alone, whatever the ranking metric (a fast strategy that learned nothing is 1 there;
    where ``--metric`` is ``train_time_s`` itself, that it is the ranking metric), and a last line says how to
    rank the time to a quality instead. Strategies are listed from the fastest (ratio 1) up, those without a
    ratio last."""
    profile, target = board["profile"], board["target"]
    tasks = counted(len(profile["tasks"]), "task")
    if target:
        lines = [f"performance profile over {tasks} (median time to {target['metric']}={target['value']:g}): "
                 "geometric mean of time ratios to the fastest to reach it"]
    else:
        alone = "on training time, the ranking metric" if board["metric"] == "train_time_s" else \
            f"on training time alone, whatever {board['metric']}"
        lines = [f"performance profile over {tasks} {alone} (no --target given): geometric mean of median "
                 "train_time_s ratios to the fastest"]
    # no ratio: a task where the strategy missed the target, or, without one, where none of its runs finished
    missing = "inf (a target missed)" if target else "inf (no run finished on a task)"
    ratios = sorted(profile["geomean_ratio"].items(), key=lambda item: (item[1] is None, item[1] or 0.0))
    for name, ratio in ratios:
        lines.append(f"  {labels.get(name, name):<24} {_fmt(ratio, 3) if ratio is not None else missing}")
    if not target:
        lines.append(f"  to rank the time each strategy takes to reach a quality: --target {target_example(board['metric'])}")
    return lines
