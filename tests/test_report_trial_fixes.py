"""Defects a user trial found in ``trainlab report``, and leaderboard.json's ``notes``.

The generalisation-gap chart drew diverged runs (their last epoch before they went bad) that leaderboard.json's
``convergence.gap_loss`` leaves out, and counted them as "runs without a train evaluation"; a run that diverged
before its first record read "No metric records (metrics.jsonl is empty or missing)" and its subtitle set the
divergence step beside a larger step count ("training diverged at step 5 ...; – epochs, 9 steps"); runs of
different tasks had their cross-entropy and MSE gaps on one axis (see test_report_runs_mixed.py); a comparison
killed before its leaderboard.json was "not a run folder ... nor a comparison folder".
"""

from __future__ import annotations

import html as html_module
import json
import os
import re
from pathlib import Path

import pytest
from report_fixtures import SEVEN, fake_comparison

from trainlab.cli import main
from trainlab.report import write_report

REASON = "training diverged at step 5: non-finite loss (nan)"


def figures_of(html: str) -> list[dict]:
    blocks = re.findall(r'<script type="application/json" id="figure-\d+-json">(.*?)</script>', html, re.S)
    return [json.loads(b.replace("<\\/", "</")) for b in blocks]


def gap_figure(html: str) -> dict:
    found = [f for f in figures_of(html) if f["layout"]["title"]["text"].startswith("generalisation gap in loss")]
    assert len(found) == 1, [f["layout"]["title"]["text"] for f in figures_of(html)]
    return found[0]


def text_of(html: str) -> str:
    """The page's words: tags, scripts and styles out, spaces collapsed."""
    body = re.sub(r"<(script|style).*?</\1>", "", html, flags=re.S)
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def diverge(run: Path, step: int = 5, stopped: int = 9, keep_records: bool = True) -> None:
    """Rewrite ``run`` as trainlab train leaves a run the divergence guard stopped (trainlab.experiment: a summary
    of name, status, steps, events, reason; run.json ``diverged``): the loss went bad at ``step``, the guard read
    it at ``stopped``. ``keep_records``: its earlier records stay (else metrics.jsonl holds only the event)."""
    event = {"event": "divergence", "step": step, "epoch": 1, "batch": step - 1, "value": float("nan"),
             "problem": "non-finite loss", "policy": "stop", "action": "stop"}
    records = (run / "metrics.jsonl").read_text().splitlines() if keep_records else []
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in [*records, json.dumps(event)]))
    summary = {"name": "digits-mlp", "status": "diverged", "steps": stopped, "events": [event],
               "reason": REASON.replace("step 5", f"step {step}")}
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "run.json").write_text(json.dumps({"format": 1, "trainlab": "0.1.0", "status": "diverged"}))
    (run / "predictions.npz").unlink(missing_ok=True)


def evaluate_train(run: Path) -> None:
    """Give a finished run's summary the ``train`` block ``output.evaluate_train`` writes (the final weights'
    loss on the training split)."""
    summary = json.loads((run / "summary.json").read_text())
    summary["train"] = {"loss": summary["val"]["loss"] - 0.1, "accuracy": 0.99, "f1": 0.98}
    (run / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def comparison(tmp_path) -> Path:
    """adam (2 finished seeds) and sgd (2 seeds, both diverged after their first epochs), as cmpr2's s06."""
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=3)
    for seed in (0, 1):
        diverge(root / f"runs/digits/sgd/seed-{seed}", step=100, stopped=100)
    return root


# --------------------------------------------------------------------------- 1. the gap chart's runs


def test_runs_that_did_not_finish_are_left_out_of_the_gap_chart_and_named_above_it(comparison, tmp_path):
    for seed in (0, 1):
        evaluate_train(comparison / f"runs/digits/adam/seed-{seed}")
    html = write_report([comparison], tmp_path / "r.html").read_text()
    figure = gap_figure(html)
    assert [trace["name"] for trace in figure["data"]] == ["adam"]  # no box of sgd's last epochs
    assert figure["data"][0]["y"] == [pytest.approx(0.1), pytest.approx(0.1)]  # the summaries' train block
    # every finished run has a train evaluation: the diverged ones are not counted as runs without one
    assert figure["layout"]["title"]["text"] == "generalisation gap in loss (above 0: validation loss is higher)"
    assert ("Left out of the loss gap below: 2 runs that did not finish (sgd: 2 diverged), as trainlab compare "
            "leaves them out of its gap_loss: a run that did not finish has no final weights.") in text_of(html)


def test_the_running_train_loss_note_counts_only_finished_runs(comparison, tmp_path):
    figure = gap_figure(write_report([comparison], tmp_path / "r.html").read_text())
    assert [trace["name"] for trace in figure["data"]] == ["adam"]
    assert figure["layout"]["title"]["text"] == (  # broken into lines of at most 95 characters (figures.style)
        "generalisation gap in loss (above 0: validation loss is higher); 2 of 2 runs without a train<br>"
        "evaluation (output.evaluate_train): the last epoch's running train loss")


def test_a_comparison_whose_runs_all_finished_names_none_left_out(tmp_path):
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=3)
    html = write_report([root], tmp_path / "r.html").read_text()
    assert {trace["name"] for trace in gap_figure(html)["data"]} == {"sgd", "adam"}
    assert "Left out of the loss gap" not in html


def test_a_run_folder_that_diverged_is_left_out_of_the_run_folders_gap_chart(comparison, tmp_path):
    runs = [comparison / "runs/digits/adam/seed-0", comparison / "runs/digits/sgd/seed-0"]
    html = write_report(runs, tmp_path / "r.html").read_text()
    assert [trace["name"] for trace in gap_figure(html)["data"]] == ["adam/seed-0"]
    assert "Left out of the loss gap below: 1 run that did not finish (sgd/seed-0: diverged)" in text_of(html)


# --------------------------------------------------------------------------- 2. a run that diverged at once


def test_a_run_that_diverged_before_its_first_record_says_so_and_where_it_was_found(comparison, tmp_path):
    run = comparison / "runs/digits/sgd/seed-0"
    diverge(run, step=5, stopped=9, keep_records=False)  # as the trial's diab/s1/seed-0
    text = text_of(write_report([run], tmp_path / "r.html").read_text())
    assert "No metric records" not in text and "metrics.jsonl is empty" not in text
    assert ("No epoch or step record to plot: the run diverged at step 5 (found at step 9, where training "
            "stopped), before its first metric record was written; its records hold only events (see the events "
            "below).") in text
    # the subtitle: the stop reason's step 5, and step 9 said as where the guard found it, not as "9 steps"
    assert (f"status diverged; {REASON}; found at step 9, where training stopped (the divergence guard reads the "
            "losses every few steps); no epoch completed. Folder:") in text
    assert "– epochs" not in text and "9 steps" not in text


def test_a_diverged_run_found_at_its_own_step_says_where_it_stopped_and_its_epochs(comparison, tmp_path):
    run = comparison / "runs/digits/sgd/seed-1"  # 3 epoch records, then the divergence at step 140
    diverge(run, step=140, stopped=140)
    text = text_of(write_report([run], tmp_path / "r.html").read_text())
    assert f"status diverged; {REASON.replace('step 5', 'step 140')}; training stopped at step 140; 3 epochs " \
           "completed. Folder:" in text
    assert "No epoch or step record" not in text  # its records are drawn
    # beside another run, its row gives those 3 epochs and its records' time, not "–" (its summary has steps only)
    from tests.test_report_runs_mixed import results_rows

    rows = results_rows(write_report([run, comparison / "runs/digits/adam/seed-0"], tmp_path / "two.html").read_text())
    diverged = rows["seed-1"]  # labelled by what tells the folders apart
    assert diverged["status"] == "diverged" and diverged["epochs"] == "3" and diverged["train time (s)"] != "–"


def test_a_run_without_records_or_events_still_says_its_metrics_file_is_empty(tmp_path):
    root = fake_comparison(tmp_path / "cmp", {"adam": SEVEN["adam"]}, seeds=2, target=None, epochs=2)
    run = root / "runs/digits/adam/seed-0"
    (run / "metrics.jsonl").write_text("")
    text = text_of(write_report([run], tmp_path / "r.html").read_text())
    assert "No metric records (metrics.jsonl is empty or missing)." in text


# --------------------------------------------------------------------------- 4. an unfinished comparison


def report_error(capsys, folder: Path, tmp_path: Path) -> str:
    out = tmp_path / "r.html"
    assert main(["report", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not out.exists()
    return err.removeprefix("error: ").rstrip("\n")


@pytest.mark.parametrize("written", ["runs", "record only"])
def test_a_comparison_killed_before_its_leaderboard_is_named_unfinished(comparison, tmp_path, capsys, written):
    (comparison / "leaderboard.json").unlink()
    if written == "record only":  # killed before its first run folder: only what compare writes first
        for run in list(comparison.glob("runs/*/*/*")):
            for item in run.iterdir():
                item.unlink()
            run.rmdir()
        (comparison / ".comparison.json").write_text(json.dumps({"strategies_file": "/s.yaml", "base_configs": {}}))
    assert report_error(capsys, comparison, tmp_path) == (
        f"{comparison} is an unfinished comparison (no leaderboard.json yet): rerun the same trainlab compare "
        f"command to finish it, or report its run folders: trainlab report {comparison}/runs/*/*/*")


def test_a_comparison_still_running_names_its_process(comparison, tmp_path, capsys):
    (comparison / "leaderboard.json").unlink()
    (comparison / ".lock").write_text(str(os.getpid()))  # a live process holds the comparison's lock
    assert report_error(capsys, comparison, tmp_path) == (
        f"{comparison} is a comparison still running (process {os.getpid()} holds {comparison / '.lock'}; no "
        f"leaderboard.json yet): wait for it to finish, or report the run folders it has written: trainlab report "
        f"{comparison}/runs/*/*/*")


def test_the_run_folders_the_unfinished_message_names_are_reported(comparison, tmp_path):
    (comparison / "leaderboard.json").unlink()
    write_report(sorted(comparison.glob("runs/*/*/*")), tmp_path / "r.html")  # what the message says to run


def test_a_folder_of_other_files_is_still_neither_kind(tmp_path, capsys):
    folder = tmp_path / "other"
    (folder / "runs/notes").mkdir(parents=True)  # a runs/ folder without run folders is no comparison's
    assert report_error(capsys, folder, tmp_path) == (
        f"{folder} is not a run folder (no run.json or config.yaml) nor a comparison folder (no leaderboard.json)")


# --------------------------------------------------------------------------- 5. leaderboard.json's notes


def set_notes(root: Path, notes) -> None:
    board = json.loads((root / "leaderboard.json").read_text())
    board["notes"] = notes
    (root / "leaderboard.json").write_text(json.dumps(board))


NOTES = ["--metric test_loss compares strategies training different losses (huber, mse), whose values are on "
         "different scales: rank them by a metric they share", "a <b>planted</b> & escaped note"]


def test_the_notes_are_shown_escaped_above_the_leaderboard_table(tmp_path):
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=2,
                           tasks=("digits", "wine"))
    set_notes(root, NOTES)
    html = write_report([root], tmp_path / "r.html").read_text()
    shown = [html.index(f'<p class="caveat">Note: {html_module.escape(note)}</p>') for note in NOTES]
    assert "<b>planted</b>" not in html
    assert shown[0] < shown[1] < html.index("<table>")  # above every leaderboard table, once
    assert html.count('<p class="caveat">') == 2


@pytest.mark.parametrize("notes", ["absent", None, []])
def test_no_notes_show_nothing(tmp_path, notes):
    root = fake_comparison(tmp_path / "cmp", {"adam": SEVEN["adam"]}, seeds=2, target=None, epochs=2)
    if notes != "absent":
        set_notes(root, notes)
    assert '<p class="caveat">' not in write_report([root], tmp_path / "r.html").read_text()


def test_notes_of_another_shape_are_a_leaderboard_not_as_compare_writes_it(tmp_path, capsys):
    root = fake_comparison(tmp_path / "cmp", {"adam": SEVEN["adam"]}, seeds=2, target=None, epochs=2)
    set_notes(root, {"metric": "a mapping"})
    assert main(["report", str(root), "-o", str(tmp_path / "r.html")]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root / 'leaderboard.json'} is not a leaderboard as 'trainlab compare' writes it")
    assert "'notes' must be a list of strings" in err and err.count("\n") == 1


def test_docs_describe_the_notes_and_the_unfinished_comparison():
    docs = " ".join((Path(__file__).resolve().parents[1] / "docs/report.md").read_text().split())
    assert "each of leaderboard.json's `notes`" in docs and "is an unfinished comparison (no leaderboard.json yet)" in docs
    assert "Runs that did not finish (diverged, failed, stopped) are left out" in docs
    assert "found at step 9, where training stopped" in docs and "one chart per results table and per loss" in docs


def test_the_reports_leaderboard_prints_the_std_with_the_means_decimals_and_styles_every_verdict(tmp_path):
    """The report wrote '2985 ± 1e+02' for a std of 99.507 (its own 2-significant-digit format), where the
    printed table gives '2985 ± 100'; the verdicts 'all runs failed' and 'not run' had no style of their own."""
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=2)
    board = json.loads((root / "leaderboard.json").read_text())
    metric = board["metric"]
    first, second = next(iter(board["tasks"].values()))["strategies"][:2]
    first["metrics"][metric].update(mean=2985.3, std=99.507)
    second["vs_best"]["verdict"] = "all runs failed"
    (root / "leaderboard.json").write_text(json.dumps(board))
    html = write_report([root], tmp_path / "r.html").read_text()
    assert "2985 ± 100<" in html and "1e+02" not in html
    assert '<span class="verdict-all-runs-failed">all runs failed</span>' in html
    assert ".verdict-all-runs-failed {" in html


@pytest.mark.parametrize("command", ["report", "plot"])
def test_a_damaged_summary_json_is_one_error_line_saying_what_to_do(tmp_path, capsys, command):
    """A summary.json cut off (a full disk) named the JSON error alone; the line now says what to do."""
    root = fake_comparison(tmp_path / "cmp", {"adam": SEVEN["adam"]}, seeds=2, target=None, epochs=2)
    run = next(root.glob("runs/*/adam/seed-0"))
    (run / "summary.json").write_text('{"name": "tri')
    out = tmp_path / ("r.html" if command == "report" else "r.png")
    assert main([command, str(run), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot read {run / 'summary.json'}: ") and err.count("\n") == 1
    assert err.rstrip().endswith("the file was damaged or changed: restore it from a copy, or leave that folder out")


def test_the_reports_std_of_values_equal_but_for_round_off_is_0_as_in_the_printed_table(tmp_path):
    """Review: a leaderboard.json of before the tied-value statistics holds a round-off std (1.4e-16); the
    printed table shows 0, the report showed '0.9444 ± 1.4e-16'."""
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=2)
    board = json.loads((root / "leaderboard.json").read_text())
    metric = board["metric"]
    first = next(iter(board["tasks"].values()))["strategies"][0]
    first["metrics"][metric].update(mean=0.9444, std=1.4e-16, min=0.9444, max=0.9444)
    (root / "leaderboard.json").write_text(json.dumps(board))
    html = write_report([root], tmp_path / "r.html").read_text()
    assert "0.9444 ± 0<" in html and "e-16" not in html


# --------------------------------------------------------------------------- session 55's browser trial


def test_a_comparison_none_of_whose_runs_finished_says_why_its_gap_section_has_no_chart(comparison, tmp_path):
    """Every run diverged (an interrupted comparison's runs alike): the 'generalisation gap' heading was followed
    directly by the next heading."""
    for seed in (0, 1):
        diverge(comparison / f"runs/digits/adam/seed-{seed}", step=50, stopped=50)
    html = write_report([comparison], tmp_path / "r.html").read_text()
    assert not [f for f in figures_of(html) if f["layout"]["title"]["text"].startswith("generalisation gap in loss")]
    assert ("generalisation gap No loss gap to draw: no finished run has one; left out: 4 runs that did not finish "
            "(adam: 2 diverged; sgd: 2 diverged), as trainlab compare leaves them out of its gap_loss") in text_of(html)


def test_one_value_in_every_seed_keeps_a_fractions_axis_within_its_range():
    """One seed, every strategy at 0.9722: plotly spanned 0.47-1.47 on an axis titled '(fraction)'."""
    from trainlab.report.figures import leaderboard_chart

    entries = [{"name": name, "metrics": {"test_accuracy": {"mean": 0.9722, "values": [0.9722], "ci95": None}}}
               for name in ("adam", "sgd")]
    figure = leaderboard_chart(entries, "test_accuracy", {"adam": "#1f77b4", "sgd": "#ff7f0e"}).to_plotly_json()
    assert figure["layout"]["yaxis"]["range"] == [pytest.approx(0.9222), pytest.approx(1.01)]
    entries[1]["metrics"]["test_accuracy"] = {"mean": 0.9, "values": [0.9], "ci95": None}
    figure = leaderboard_chart(entries, "test_accuracy", {"adam": "#1f77b4", "sgd": "#ff7f0e"}).to_plotly_json()
    assert "range" not in figure["layout"]["yaxis"]  # values that differ: plotly's own range


def test_a_title_holding_a_word_longer_than_a_line_is_broken_within_it():
    """A 193-character strategy name in the confusion matrix's title was one unbroken line, cut off at both
    ends of the chart, hiding the part that tells two names apart."""
    import plotly.graph_objects as go

    from trainlab.report.figures import TITLE_LINE, style

    title = "confusion matrix on the test split: " + "adam_variant_alpha_" * 10 + "lr=0.001"
    lines = style(go.Figure(), title).layout.title.text.split("<br>")
    assert len(lines) == 3 and all(len(line) <= TITLE_LINE for line in lines) and "".join(lines) == title


def test_strategies_training_different_losses_are_told_apart_above_the_loss_charts(tmp_path):
    """huber beside mse shared the learning curves' and the loss gap's axis without a word (a huber curve far
    below the others read as better); a comparison of one loss gets no such line."""
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=2, target=None, epochs=3)

    def name_loss(strategy: str, loss: str) -> None:
        for run in root.glob(f"runs/digits/{strategy}/seed-*"):
            summary = json.loads((run / "summary.json").read_text())
            (run / "summary.json").write_text(json.dumps({**summary, "loss": loss}))

    name_loss("sgd", "cross_entropy")
    name_loss("adam", "cross_entropy")
    # a diverged first seed's summary names no loss, and its config may say 'auto': read from the next seed
    diverge(root / "runs/digits/adam/seed-0", step=50, stopped=50)
    config = root / "runs/digits/adam/seed-0/config.yaml"
    config.write_text(config.read_text().replace("cross_entropy", "auto"))
    same = text_of(write_report([root], tmp_path / "same.html").read_text())
    assert "train different losses" not in same
    name_loss("adam", "huber")
    text = text_of(write_report([root], tmp_path / "r.html").read_text())
    line = ("The strategies train different losses (huber: adam; cross_entropy: sgd): each one's train_loss and "
            "val_loss, and its loss gap, are on its own loss's scale, to be compared only within one loss; "
            "test_accuracy ranks them all.")
    assert text.count(line) == 2
    assert f"learning curves {line}" in text and f"generalisation gap {line}" in text
