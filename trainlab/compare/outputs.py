"""What a comparison writes and says once its runs are done: leaderboard.json / .csv, report.html (when the
report module is installed), the files named, and the errors for runs left undone or none finished; and
whether a leaderboard.json is one compare wrote (:func:`is_comparison_record`, which tells an earlier
comparison's ``--out`` from a user's folder before any run)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from trainlab.atomic import is_written_in_place
from trainlab.bounded_read import read_regular_file
from trainlab.code_policy import CodePolicy, is_own_run, trusting_runs
from trainlab.compare.busy_run import busy_error
from trainlab.compare.folder_identity import clear_retraining
from trainlab.compare.leaderboard_output import write_leaderboard
from trainlab.compare.machine_failure import not_run_error
from trainlab.compare.precheck import check_metric_found
from trainlab.compare.run_actions import RunPlan
from trainlab.errors import WriteError, cannot
from trainlab.notices import warn
from trainlab.shell_command import command_line

# fields of every leaderboard.json compare has written (compare.leaderboard.build_leaderboard)
RECORD_FIELDS = {"metric": str, "direction": str, "seed_list": list, "methods": dict, "tasks": dict}


MAX_RECORD_BYTES = 256 * 2**20  # far above any leaderboard's; a larger file of that name is not one


def is_comparison_record(path: Path) -> bool:
    """``path`` is a leaderboard.json as compare writes it: a regular file (not a link: compare replaces its
    own atomically) holding a JSON object with every :data:`RECORD_FIELDS` field of its type. A user's file of
    that name is not, and makes no folder an earlier comparison's (:func:`~trainlab.compare.command.compare` refuses to replace it)."""
    try:
        record = json.loads(read_regular_file(path, MAX_RECORD_BYTES, follow_links=False))
    except (OSError, ValueError, RecursionError):  # missing, a link, a folder, too large, not JSON
        return False
    return isinstance(record, dict) and all(isinstance(record.get(field), kind) for field, kind in RECORD_FIELDS.items())


RERUN = "rerun the same command once the disk is writable (finished runs are not trained again)"


def write_compare_leaderboard(board: dict[str, Any], out: Path) -> None:
    """:func:`~trainlab.compare.leaderboard_output.write_leaderboard`, an OSError as a WriteError (exit 5) whose advice
    is the comparison's own: the runs are written, and rerunning the same command writes the leaderboard. Once it
    is written, the folder's mark of a stale leaderboard goes (:func:`~trainlab.compare.folder_identity.clear_retraining`)."""
    try:
        write_leaderboard(board, out)
        clear_retraining(out)
    except OSError as exc:
        raise WriteError(f"{cannot(exc)}; the runs are written: {RERUN}") from None


def say_written(board: dict[str, Any], out: Path, report: Path | None, metric: str, show: bool) -> None:
    """Name the files written (``show``), then raise what the comparison left undone: runs the machine stopped
    or another process held (:func:`~trainlab.compare.command.compare`'s docstring), else a ``metric`` no run recorded."""
    if report is not None and show:
        print(f"report: {report}")
    if show:
        print(f"leaderboard: {out / 'leaderboard.json'}, {out / 'leaderboard.csv'}")
    stopped = not_run_error(board, out) or busy_error(board, out)
    if stopped is not None:
        raise stopped
    check_metric_found(board, metric)


def own_runs(plans: list[RunPlan]) -> list[Path]:
    """The planned run folders whose config.yaml names no ``module:attr`` code beyond what the plan's
    config (the user's base with the strategy) names; a folder whose config cannot be read is left out."""
    return [plan.path for plan in plans if is_own_run(plan.path, plan.raw)]


def write_report_if_available(groups: Mapping[CodePolicy | None, list[RunPlan]], out: Path) -> Path | None:
    """``DIR/report.html`` through trainlab.report when that module is installed. ``groups``: the plans by
    the code policy they ran under (:func:`~trainlab.compare.command._by_policy`; None: the one in force), which the report reads
    their run folders under too. A report the disk refuses is a WriteError (exit 5) naming the file; any other
    failure of it is a warning, since the leaderboard is written."""
    try:
        from trainlab.report import write_report
    except ImportError:
        return None
    report = out / "report.html"
    if report.is_symlink() or is_written_in_place(report):  # compare has no -o to write through it
        warn(f"{report} not written: it is a symbolic link or not a regular file (a copied folder's?); remove "
             f"it and run the comparison again, or write the report elsewhere: {command_line('trainlab', 'report', str(out), '-o', 'FILE')}")
        return None
    try:
        with ExitStack() as trusted:  # their module:attr models are the user's own: no --allow-code
            for policy, plans in groups.items():
                trusted.enter_context(trusting_runs(own_runs(plans), policy))
            # its runs' damaged metrics lines were named as the leaderboard read them (compare.run_record)
            # a default name: a symlink there (a copied folder's) is refused, not followed (atomic.write_output_bytes)
            return write_report([out], out / "report.html", warn_damaged_metrics=False, follow_link=False)
    except (OSError, WriteError) as exc:  # the disk's: exit 5, as a run or the leaderboard that cannot be written
        raise _report_not_written(exc, report, out) from None
    except Exception as exc:  # noqa: BLE001 - the leaderboard is written; a report failure must not hide it
        warn(f"report.html not written: {type(exc).__name__}: {exc}")
        return None


def _report_not_written(exc: OSError | WriteError, report: Path, out: Path) -> WriteError:
    """The comparison's line for a ``report`` the disk refused: ``cannot write (<file>): <reason>`` (never an
    OSError's ``[Errno 28]`` repr), that the leaderboard and runs are written, and what to do."""
    if isinstance(exc, OSError):
        what = cannot(exc) if exc.filename else f"cannot write ({report}): {exc.strerror or exc}"
    else:
        what = str(exc).split("; ")[0]
    return WriteError(f"{what}; the leaderboard ({out / 'leaderboard.json'}) and the runs are written: {RERUN}, "
                      f"or write the report elsewhere: {command_line('trainlab', 'report', str(out), '-o', 'FILE')}")
