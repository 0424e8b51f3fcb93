"""A reader of trainlab's output that goes away (`trainlab compare ... | head -1`): rich's console made that
SystemExit(1), exit 1 with no word said, and the comparison's report was never written."""

from __future__ import annotations

import pytest

from tests.test_compare import BASE
from trainlab.compare import command
from trainlab.compare.strategies import parse_strategies
from trainlab.console import output_console


class _ClosedPipe:
    """A stream whose reader went away: every write fails with EPIPE."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


def test_a_closed_pipe_is_a_broken_pipe_error_not_rich_s_silent_exit_1():
    with pytest.raises(BrokenPipeError):
        output_console(file=_ClosedPipe()).print("leaderboard")


def test_compare_writes_its_report_before_printing_to_a_reader_that_may_be_gone(tmp_path, monkeypatch):
    def gone(board, console=None):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(command, "print_leaderboard", gone)
    out = tmp_path / "cmp"
    strategies = parse_strategies({"strategies": {"sgd": None}})
    base = {**BASE, "strategy": {**BASE["strategy"], "epochs": 1}}
    with pytest.raises(BrokenPipeError):
        command.compare({"iris": base}, strategies, out, seeds=1, live=False, show_leaderboard=True)
    assert (out / "leaderboard.json").is_file() and (out / "report.html").is_file()
