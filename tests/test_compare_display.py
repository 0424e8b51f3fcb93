"""compare's live panel shows run names, statuses and reasons as written: its failed runs read
'[red]failed[/red]' (the markup was wrapped in plain Text), and a name or reason with brackets is no markup."""

from __future__ import annotations

import io

from rich.console import Console

from trainlab.compare.display import LiveDisplay, Tally


class _Plan:
    label = "iris/[odd]/seed-0"


def test_the_live_panel_shows_a_failed_run_in_red_without_markup_text():
    tally = Tally.__new__(Tally)
    display = LiveDisplay.__new__(LiveDisplay)
    display.tally, display.jobs, display.recent, display.live = tally, 2, [], None
    display.finished(_Plan(), {"status": "failed", "reason": "worker died: [killed]", "seconds": 1.0})
    line = display.recent[0]
    assert line.plain == "  iris/[odd]/seed-0: failed: worker died: [killed] (1.0 s)"
    red = [line.plain[span.start:span.end] for span in line.spans if span.style == "red"]
    assert red == ["failed"]
    out = io.StringIO()
    Console(file=out, width=200).print(line)
    assert "[red]" not in out.getvalue() and "[odd]" in out.getvalue() and "[killed]" in out.getvalue()


def test_a_finished_runs_line_tells_its_whole_time_from_its_training_time():
    """User trial: the line's "(0.6 s)" (the whole run: data, building, evaluating, saving) beside the
    leaderboard's "train s" of 0.04 read as two figures for one thing."""
    from trainlab.compare.display import time_text

    finished = {"status": "finished", "seconds": 0.61, "summary": {"train_time_s": 0.0412}}
    assert time_text(finished) == "0.6 s, 0.041 s of it training"
    assert time_text({**finished, "seconds": 95.0, "summary": {"train_time_s": 81.26}}) == \
        "95.0 s, 81.3 s of it training"
    assert time_text({"status": "failed", "seconds": 1.0, "reason": "x"}) == "1.0 s"
    # resumed: its train_time_s counts the earlier invocation's training ("2.5 s, 6.0 s of it training")
    assert time_text({**finished, "seconds": 2.5, "summary": {"train_time_s": 6.0}}) == \
        "2.5 s here, resumed: 6.0 s of training in all"
    assert time_text({"status": "finished", "seconds": 2.0, "summary": {}}) == "2.0 s"
