"""Damaged run folders under a comparison: a finished run whose summary.json or run.json was damaged is
refused in one ``error:`` line (exit 3) with every file left as it was, never trained again; a damaged line
of metrics.jsonl is named (file and line) where compare and ``train --target`` read the curves."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.test_compare import BASE
from trainlab.cli import main

RUN = Path("runs/base/plain/seed-0")  # the one run of the comparison, under --out
LABEL = "base/plain/seed-0"


def _args(folder: Path, *flags: str) -> list[str]:
    """The comparison's command: 1 seed unless ``flags`` give ``--seeds`` (a flag given twice is refused)."""
    seeds = [] if "--seeds" in flags else ["--seeds", "1"]
    return ["compare", str(folder / "base.yaml"), "--strategies", str(folder / "s.yaml"), *seeds,
            "--jobs", "1", "--out", str(folder / "out"), *flags]


def finished_comparison(parent: Path) -> Path:
    """A comparison of one run (iris, 4 epochs), finished in ``parent / "finished"``: base.yaml, s.yaml and out/."""
    folder = parent / "finished"
    folder.mkdir()
    (folder / "base.yaml").write_text(yaml.safe_dump(BASE))
    (folder / "s.yaml").write_text("strategies:\n  plain:\n")
    assert main(_args(folder)) == 0
    return folder


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """:func:`finished_comparison`, once for the module."""
    return finished_comparison(tmp_path_factory.mktemp("damaged"))


@pytest.fixture
def comparison(finished: Path, tmp_path: Path) -> Path:
    """A copy of :func:`finished` to damage."""
    return Path(shutil.copytree(finished, tmp_path / "cmp", symlinks=True))


def _files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


SUMMARY_DAMAGE = {  # how summary.json is damaged -> what the error says of it
    "truncated": (_truncated, "is not valid JSON ("),
    "not JSON": (lambda p: p.write_text("binary garbage\x00\x01"), "is not valid JSON ("),
    "a list": (lambda p: p.write_text("[1, 2]"), "holds an array, not a JSON object"),
    "diverged": (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "status": "diverged"})),
                 "has status 'diverged', not 'finished' as run.json says"),
    "no test": (lambda p: p.write_text(json.dumps({k: v for k, v in json.loads(p.read_text()).items() if k != "test"})),
                "has no 'test' metrics"),
    "steps a string": (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "steps": "24"})),
                       "has 'steps' as a string, not a number"),
    "missing": (lambda p: p.unlink(), "is missing"),
}


@pytest.mark.parametrize("damage", list(SUMMARY_DAMAGE))
def test_a_finished_run_with_a_damaged_summary_is_refused_and_nothing_is_rewritten(comparison: Path, capsys,
                                                                                   damage: str):
    """It used to be resumed, which refused a finished run, so compare trained it again from scratch over it."""
    summary = comparison / "out" / RUN / "summary.json"
    spoil, said = SUMMARY_DAMAGE[damage]
    spoil(summary)
    before = _files(comparison / "out")
    capsys.readouterr()
    assert main(_args(comparison)) == 3
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {summary} of the finished run {LABEL} {said}"), line
    assert line.endswith(f"restore the file from a copy, or delete the folder {comparison / 'out' / RUN} to train "
                         "that run again")
    assert _files(comparison / "out") == before  # the model, checkpoints and records: not one byte changed


def test_once_the_summary_is_restored_the_finished_run_is_skipped_untouched(comparison: Path, capsys):
    summary = comparison / "out" / RUN / "summary.json"
    kept = summary.read_bytes()
    _truncated(summary)
    assert main(_args(comparison)) == 3
    summary.write_bytes(kept)
    before = _files(comparison / "out" / "runs")
    capsys.readouterr()
    assert main(_args(comparison)) == 0
    assert "1 of 1 runs already done in their folders: skipped" in capsys.readouterr().out
    assert _files(comparison / "out" / "runs") == before


@pytest.mark.parametrize("text, said", [('{"format": 1, "status": "fini', "cannot be read as a JSON object (damaged"),
                                        ("[]", "cannot be read as a JSON object (damaged"),
                                        (None, "has status 'done', which no run records")])
def test_a_damaged_run_json_is_refused_and_nothing_is_rewritten(comparison: Path, capsys, text, said):
    """A torn run.json was taken for a new run (the overwrite was refused and the run listed as failed); an
    unknown status was resumed, training a finished run's last epochs again."""
    info = comparison / "out" / RUN / "run.json"
    info.write_text(text if text is not None else json.dumps({**json.loads(info.read_text()), "status": "done"}))
    before = _files(comparison / "out")
    capsys.readouterr()
    assert main(_args(comparison)) == 3
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {info} {said}"), line
    assert _files(comparison / "out") == before


def test_a_damaged_summary_of_a_run_whose_config_changed_is_trained_again_as_asked(comparison: Path):
    """A changed config retrains the run anyway (said so): the damage of the old summary does not matter."""
    from trainlab.compare.run_actions import plan_runs, run_action
    from trainlab.compare.strategies import parse_strategies

    _truncated(comparison / "out" / RUN / "summary.json")
    strategies = parse_strategies({"strategies": {"plain": None}})
    base = yaml.safe_load((comparison / "base.yaml").read_text())
    [same] = plan_runs({"base": base}, strategies, [0], comparison / "out")
    assert run_action(same)[0] == "damaged"
    [other] = plan_runs({"base": {**base, "strategy": {**base["strategy"], "epochs": 3}}}, strategies, [0],
                        comparison / "out")
    action, note = run_action(other)
    assert action == "changed" and note.startswith("config changed")


# --------------------------------------------------------------------------- metrics.jsonl


def test_parse_metrics_names_each_damaged_line_and_keeps_the_rest():
    from trainlab.records import damaged_lines_warning, parse_metrics

    lines = ['{"epoch": 1, "step": 5, "val_loss": 0.5}', '{"epoch": 2, "st', "", "[1, 2]",
             '{"event": "divergence", "step": 11}', '{"epoch": 3, "step": 15, "val_loss": 0.25}']
    parsed = parse_metrics("\n".join(lines) + "\n")
    assert [r["epoch"] for r in parsed.records] == [1, 3] and parsed.events == [{"event": "divergence", "step": 11}]
    assert parsed.damaged == (2, 4) and not parsed.cut_off  # line 3 is blank: no record, no damage
    assert parse_metrics("\n".join(lines)).records == parsed.records  # the newline at the end changes nothing
    assert damaged_lines_warning("m.jsonl", parsed, "the figures") == (
        "m.jsonl: lines 2, 4 are not JSON records (the file was damaged after trainlab wrote it); "
        "left out of the figures")
    torn = parse_metrics(lines[0] + "\n" + lines[5][:20])  # the file ends inside its last line
    assert torn.damaged == (2,) and torn.cut_off and [r["epoch"] for r in torn.records] == [1]
    assert damaged_lines_warning("m.jsonl", torn, "x") == (
        "m.jsonl: line 2 is not a JSON record (the file ends inside its last line: it was cut off); "
        "left out of x")
    whole = parse_metrics(lines[0] + "\n" + lines[5])  # no final newline, but every line whole
    assert whole.damaged == () and not whole.cut_off and damaged_lines_warning("m.jsonl", whole, "x") is None
    many = parse_metrics("x\n" * 7)
    assert "lines 1, 2, 3, 4, 5 and 2 more are not JSON records" in damaged_lines_warning("m", many, "x")


def test_compare_names_a_damaged_metrics_line_and_the_board_keeps_the_rest(comparison: Path, capsys):
    """A damaged line in the middle of a finished run's metrics.jsonl was dropped without a word, changing
    time to target and the convergence figures."""
    metrics = comparison / "out" / RUN / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    assert len(lines) == 4  # one epoch record per epoch
    kept = [json.loads(line) for i, line in enumerate(lines) if i != 1]
    best = max(kept, key=lambda r: r["val_accuracy"])["val_accuracy"]
    lines[1] = lines[1][:30] + "\x00" + lines[1][31:]  # a damaged byte in the second epoch's record
    metrics.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(_args(comparison, "--target", f"val_accuracy={best}")) == 0
    out, err = capsys.readouterr()
    assert (f"warning: {metrics}: line 2 is not a JSON record (the file was damaged after trainlab wrote it); left "
            f"out of the time to target and convergence figures of {LABEL}\n") in err
    assert "the report's curves" not in err and err.count(f"warning: {metrics}") == 1
    board = json.loads((comparison / "out" / "leaderboard.json").read_text())
    [entry] = board["tasks"]["base"]["strategies"]
    first = next(r for r in kept if r["val_accuracy"] >= best)  # the first kept record at the target
    assert entry["time_to_target_s"]["values"] == [first["elapsed_s"]]
    assert entry["steps_to_target"]["values"] == [first["step"]]
    assert entry["convergence"]["best_val_epoch"]["values"] == [first["epoch"]]
    assert "metrics.jsonl of seed 0 has damaged lines" in entry["convergence"]["note"]
    assert "note: plain: metrics.jsonl of seed 0 has damaged lines" in out


def test_train_target_line_says_when_metrics_jsonl_is_cut_off(tmp_path: Path, capsys):
    from trainlab.compare.run_record import time_to_target_line

    records = [{"epoch": 1, "step": 5, "val_loss": 0.5, "elapsed_s": 1.0},
               {"epoch": 2, "step": 10, "val_loss": 0.2, "elapsed_s": 2.0}]
    text = "".join(json.dumps(r) + "\n" for r in records)
    (tmp_path / "metrics.jsonl").write_text(text[:-12])  # cut off inside the second record
    target = {"metric": "val_loss", "value": 0.3, "direction": "min"}
    assert time_to_target_line(tmp_path, target) == "val_loss <= 0.3 was not reached (best 0.5)"
    assert capsys.readouterr().err == (f"warning: {tmp_path / 'metrics.jsonl'}: line 2 is not a JSON record (the file "
                                       "ends inside its last line: it was cut off); left out of the time to target\n")
    (tmp_path / "metrics.jsonl").write_text(text)
    assert time_to_target_line(tmp_path, target).startswith("time to val_loss <= 0.3: 2.00 s of training (step 10)")
    assert capsys.readouterr().err == ""


def test_every_damaged_folder_is_counted_in_the_one_line_and_no_run_starts(comparison: Path, capsys):
    runs = comparison / "out" / RUN.parent
    shutil.copytree(runs / "seed-0", runs / "seed-1", symlinks=True)
    for seed in (0, 1):
        (runs / f"seed-{seed}" / "run.json").write_text("{")
    (runs / "seed-2").mkdir()  # a run not begun: it would be trained, but nothing starts while a folder is in doubt
    before = _files(comparison / "out")
    capsys.readouterr()
    assert main(_args(comparison, "--seeds", "3")) == 3
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {runs / 'seed-0' / 'run.json'} cannot be read") and line.endswith(
        "to train that run again (1 more run folder is damaged too)"), line
    assert _files(comparison / "out") == before and list((runs / "seed-2").iterdir()) == []
