"""Self-contained HTML reports of a comparison folder or of run folders (``trainlab report``).

``write_report([DIR], out)`` for a ``trainlab compare`` folder (``DIR/leaderboard.json`` and
``DIR/runs/<task>/<strategy>/seed-<k>/``), or ``write_report([RUN, ...], out)`` for run folders.
The file opens offline: no request of any kind leaves the page (see :mod:`trainlab.report.page`).

Modules: ``sources`` reads folders, ``series`` computes what is plotted, ``predictions`` gets test
predictions, ``figures`` draws plotly figures, ``sections`` decides what the report says, and
``page`` writes the HTML.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from trainlab.atomic import check_output_path, write_output_text
from trainlab.config_fields import path_argument, short_repr
from trainlab.errors import ConfigError, DataError
from trainlab.report.sources import CURVES, LEADERBOARD, Comparison, classify


def write_report(paths: Sequence[str | Path] | str | Path, out: str | Path, *,
                 warn_damaged_metrics: bool = True, follow_link: bool = True) -> Path:
    """Write the report of ``paths`` (one comparison folder, or run folders) to ``out``; returns ``out``.

    A damaged metrics.jsonl line is left out of the curves with one ``warning:`` line on stderr, unless
    ``warn_damaged_metrics`` is False (``trainlab compare``, which has warned as it read the same runs).
    ``follow_link``: the user named ``out`` (``-o``, or this argument); False for a default name
    (``trainlab report`` without ``-o``, compare's ``report.html``), where a symlink, FIFO or device is
    refused rather than followed (:func:`trainlab.atomic.write_output_bytes`).

    Raises :class:`ConfigError` when a path is neither kind, ``out`` is not an .html file name or
    :func:`~trainlab.atomic.check_output_path` refuses it, and :class:`DataError` when a folder or record
    cannot be read (permission denied) or is damaged, e.g. a comparison's leaderboard.json of valid JSON but
    another shape (edited): the page building's AttributeError/TypeError/KeyError, as one line.
    """
    from trainlab.report.runs_page import runs_page
    from trainlab.report.sections import comparison_page

    if isinstance(paths, str | os.PathLike):  # one folder given as it is, not as a one-item list
        paths = [paths]
    if isinstance(paths, bytes | dict) or not hasattr(paths, "__iter__"):
        raise ConfigError(f"write_report's paths must be a path or a list of paths; got {short_repr(paths)}")
    paths = [path_argument(p, "write_report's paths") for p in paths]
    out = path_argument(out, "write_report's out")
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"report output '{out}' must end in .html")
    check_output_path(out, follow_link=follow_link)  # before reading the runs
    source = classify([Path(p) for p in paths], CURVES if warn_damaged_metrics else None)
    if isinstance(source, Comparison):
        try:
            page = comparison_page(source)
        except (AttributeError, TypeError, KeyError) as exc:  # valid JSON, but not what compare writes
            raise DataError(f"{source.path / LEADERBOARD} is not a leaderboard as 'trainlab compare' writes it "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
                            "run the same 'trainlab compare' command again to rewrite it") from None
    else:
        page = runs_page(source)
    write_output_text(out, page.render(), follow_link=follow_link)  # through a link, a FIFO or /dev/stdout as to a file
    return out


__all__ = ["write_report"]
