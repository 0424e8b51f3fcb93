"""A run records what its data files were (run.json ``data_fingerprint``): compare reuses a finished run,
and a recorded failure, only on the same files; resume warns when they changed under it."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from tests.test_compare import BASE
from trainlab.compare import compare
from trainlab.compare.strategies import parse_strategies
from trainlab.config import validate
from trainlab.data.fingerprint import _legacy_digest, data_changes, data_fingerprint
from trainlab.experiment import train
from trainlab.run_evaluation import evaluate_run
from trainlab.run_resume import resume


def _table(path: Path, rows: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    path.write_text("a,b,c,y\n" + "".join(f"{a:.4f},{b:.4f},{c:.4f},{t}\n" for (a, b, c), t in zip(x, y, strict=True)))
    return path


def test_the_fingerprint_follows_sizes_times_and_the_files_of_a_folder(tmp_path: Path):
    table = _table(tmp_path / "t.csv")
    csv = {"source": "csv", "path": str(table), "target": "y"}
    first = data_fingerprint(csv)
    assert first is not None and first == data_fingerprint(csv)
    stat = table.stat()
    os.utime(table, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # touched: counted as changed
    assert data_fingerprint(csv) != first
    # moved with its times (mv): the same files, so the same fingerprint
    touched = data_fingerprint(csv)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(table), moved / "t.csv")
    assert data_fingerprint({**csv, "path": str(moved / "t.csv")}) == touched

    root = tmp_path / "images"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        (root / label / "0.png").write_bytes(b"x" * 10)
    folder = {"source": "image_folder", "path": str(root), "cache_dir": str(root / ".cache")}
    before = data_fingerprint(folder)
    (root / ".cache").mkdir()
    (root / ".cache" / "decoded.npz").write_bytes(b"cache")  # the run's own cache inside the folder
    assert data_fingerprint(folder) == before
    (root / "dog" / "1.png").write_bytes(b"y" * 10)
    assert data_fingerprint(folder) != before
    # a class folder that is a link (as image_folder follows it): a file changed behind it is a change
    (tmp_path / "real" / "bird").mkdir(parents=True)
    (tmp_path / "real" / "bird" / "0.png").write_bytes(b"b")
    (root / "bird").symlink_to(tmp_path / "real" / "bird")
    (root / "loop").symlink_to(root)  # a link back up the tree is walked once
    linked = data_fingerprint(folder)
    (tmp_path / "real" / "bird" / "0.png").write_bytes(b"bb")
    assert data_fingerprint(folder) != linked
    # train/val/test under path; a missing one appearing later is a change
    split = {"source": "image_folder", "path": str(root), "train": "dog", "test": "missing"}
    absent = data_fingerprint(split)
    (root / "missing").mkdir()
    (root / "missing" / "a.png").write_bytes(b"z")
    assert data_fingerprint(split) != absent
    assert data_fingerprint({"source": "iris"}) is None  # a built-in set: the config fixes it


CSV_BASE = {**BASE, "name": "table", "data": {"source": "csv", "target": "y"}}
ONE = parse_strategies({"strategies": {"adam": None}})


def test_compare_runs_again_when_the_data_files_changed_and_retries_a_failure_on_new_data(tmp_path: Path, capsys):
    table = _table(tmp_path / "t.csv")
    base = {**CSV_BASE, "data": {**CSV_BASE["data"], "path": str(table)}}
    out = tmp_path / "out"
    compare({"table": base}, ONE, out, seeds=1, jobs=1, live=False, quiet=True)
    summary = out / "runs" / "table" / "adam" / "seed-0" / "summary.json"
    written = summary.stat().st_mtime_ns
    assert json.loads((summary.parent / "run.json").read_text())["data_fingerprint"] == data_fingerprint(base["data"])
    compare({"table": base}, ONE, out, seeds=1, jobs=1, live=False, quiet=True)
    assert summary.stat().st_mtime_ns == written  # same config, same files: reused

    _table(table, rows=80, seed=1)  # rewritten in place: same path, same config
    capsys.readouterr()
    compare({"table": base}, ONE, out, seeds=1, jobs=1, live=False, quiet=True)
    assert "data files changed since table/adam/seed-0 ran" in capsys.readouterr().out
    assert summary.stat().st_mtime_ns != written

    # a failure (the target column mixes numbers and text; a missing column is refused before any run) is
    # recorded with the data it failed on ...
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,y\n" + "1,2,3,0\n" * 19 + "1,2,3,x\n")
    failing = {**base, "data": {**base["data"], "path": str(bad)}}
    board = compare({"table": failing}, ONE, tmp_path / "failing", seeds=1, jobs=1, live=False, quiet=True)
    assert board["tasks"]["table"]["strategies"][0]["failed"] == 1
    again = compare({"table": failing}, ONE, tmp_path / "failing", seeds=1, jobs=1, live=False, quiet=True)
    assert again["tasks"]["table"]["strategies"][0]["failed"] == 1  # same files: skipped as failed
    # ... and tried again once the file is fixed
    _table(bad)
    fixed = compare({"table": failing}, ONE, tmp_path / "failing", seeds=1, jobs=1, live=False, quiet=True)
    entry = fixed["tasks"]["table"]["strategies"][0]
    assert entry["failed"] == 0 and entry["runs"] == 1


def test_runs_and_comparisons_written_inside_their_data_folder_leave_its_fingerprint_alone(tmp_path: Path):
    """data.path: . with the outputs beside the data (the default runs/ under the working folder): the runs'
    own folders are not data, so a finished comparison is reused, not run again; a text run's data.path only
    locates its files, so other files there are no data of it either."""
    data = tmp_path / "project"
    data.mkdir()
    words = ("good", "fine", "great", "bad", "poor", "awful")
    (data / "train.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{words[i % 6]} {words[(i * 5) % 6]} day\t{int(i % 6 < 3)}\n" for i in range(40)))
    base = {**CSV_BASE, "data": {"source": "text_tsv", "path": str(data), "train": "train.tsv", "max_length": 8},
            "model": {"name": "transformer_encoder", "d_model": 8, "heads": 2, "layers": 1},
            "strategy": {**CSV_BASE["strategy"], "epochs": 1}}
    before = data_fingerprint(base["data"])
    out = data / "cmp"
    compare({"table": base}, ONE, out, seeds=1, jobs=1, live=False, quiet=True)
    summary = out / "runs" / "table" / "adam" / "seed-0" / "summary.json"
    written = summary.stat().st_mtime_ns
    train(validate(base), data / "runs" / "single", quiet=True)
    assert data_fingerprint(base["data"]) == before
    (data / "notes.txt").write_text("a file the run does not read")
    assert data_fingerprint(base["data"]) == before
    # a run recorded before per-file digests holds one digest over data.path's whole folder: still reused
    info_path = summary.parent / "run.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "data_fingerprint": _legacy_digest(base["data"])}))
    compare({"table": base}, ONE, out, seeds=1, jobs=1, live=False, quiet=True)
    assert summary.stat().st_mtime_ns == written  # reused


def test_a_data_folder_counts_every_file_but_trainlabs_own_output_folders(tmp_path: Path):
    root = tmp_path / "images"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "0.png").write_bytes(b"x")
    folder = {"source": "image_folder", "path": str(root)}
    before = data_fingerprint(folder)
    (root / "runs" / "one").mkdir(parents=True)  # a run folder written beside the images
    for name in ("config.yaml", "run.json"):
        (root / "runs" / "one" / name).write_text("{}")
    assert data_fingerprint(folder) == before
    (root / "notes").mkdir()
    (root / "notes" / "new.txt").write_text("a file that is data, as far as a fingerprint knows")
    assert data_fingerprint(folder) != before
    with_notes = data_fingerprint(folder)
    (root / "notes" / "run.json").write_text("{}")  # a data folder's own run.json (no config.yaml beside it)
    assert data_fingerprint(folder) != with_notes
    assert data_changes({"data_fingerprint": before}, folder) == f"files under {root}"


def _text_split(folder: Path) -> dict[str, str]:
    folder.mkdir()
    for name in ("train.tsv", "test.tsv"):
        (folder / name).write_text("sentence\tlabel\ngood day\t1\nbad day\t0\n")
    return {"source": "text_tsv", "path": str(folder), "train": "train.tsv", "test": "test.tsv"}


def test_a_change_names_only_the_file_that_changed_and_not_the_locating_folder(tmp_path: Path):
    data = _text_split(tmp_path / "data")
    info = {"data_fingerprint": data_fingerprint(data), "created": 0.0}
    (tmp_path / "data" / "test_unseen.csv").write_text("review,topic\n")  # beside the files, not read
    assert data_fingerprint(data) == info["data_fingerprint"] and data_changes(info, data) == ""
    (tmp_path / "data" / "test.tsv").write_text("sentence\tlabel\nfine day\t1\n")
    assert data_changes(info, data) == str(tmp_path / "data" / "test.tsv")
    assert data_changes({}, data) == ""  # a run recorded before fingerprints: nothing to compare


def test_a_fingerprint_recorded_before_per_file_digests_is_still_compared(tmp_path: Path):
    data = _text_split(tmp_path / "data")
    legacy = _legacy_digest(data)
    assert "=" not in legacy and legacy != data_fingerprint(data)
    created = time.time()
    info = {"data_fingerprint": legacy, "created": created}
    assert data_changes(info, data) == ""
    unseen = tmp_path / "data" / "test_unseen.csv"
    unseen.write_text("review,topic\n")
    os.utime(unseen, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # added after the run began
    assert data_changes(info, data) == ""  # in a folder that only locates the files: not read, no change
    assert data_changes({"data_fingerprint": legacy}, data) != ""  # without the run's start, it cannot tell
    stat = (tmp_path / "data" / "train.tsv").stat()
    os.utime(tmp_path / "data" / "train.tsv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    # one digest of all the files cannot tell which changed: each is named
    assert data_changes(info, data) == f"{tmp_path / 'data' / 'train.tsv'}, {tmp_path / 'data' / 'test.tsv'}"


def test_resume_warns_when_the_data_files_changed_under_the_run(tmp_path: Path, capsys):
    table = _table(tmp_path / "t.csv")
    config = validate({**CSV_BASE, "data": {**CSV_BASE["data"], "path": str(table)}})
    _, folder = train(config, out=tmp_path / "run", quiet=True)
    info = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**info, "status": "running"}))  # as a killed run leaves it
    resume(folder, quiet=True)
    assert "changed since the run started" not in capsys.readouterr().err
    (folder / "run.json").write_text(json.dumps({**info, "status": "running"}))
    _table(table, rows=70, seed=2)
    resume(folder, quiet=True)
    err = capsys.readouterr().err
    assert f"warning: the data files of {folder} changed since the run started" in err and str(table) in err


def test_eval_warns_when_the_data_files_changed_since_training(tmp_path: Path, capsys):
    table = _table(tmp_path / "t.csv")
    config = validate({**CSV_BASE, "data": {**CSV_BASE["data"], "path": str(table)}})
    _, folder = train(config, out=tmp_path / "run", quiet=True)
    capsys.readouterr()
    evaluate_run(folder, "test")
    assert "warning" not in capsys.readouterr().err
    lines = table.read_text().splitlines()
    table.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # the same rows, reordered
    evaluate_run(folder, "test")
    err = capsys.readouterr().err
    assert (f"warning: the data files of {folder} changed since it was trained ({table}); evaluating "
            "on them as they are now (the test split may hold other rows)") in err


def test_only_the_text_sources_data_path_locates_and_drops_out(tmp_path):
    """A source that may read its folder's every file (idx scans it, a plug-in may) keeps data.path as an
    input when it names train/test files; text_tsv/text_csv read only the files they name."""
    from trainlab.data.fingerprint import fingerprinted_files

    (tmp_path / "train.tsv").write_text("sentence\tlabel\nok\t1\n")
    for source, kept in (("text_tsv", False), ("text_csv", False), ("idx", True), ("mypkg.data:load", True)):
        files = fingerprinted_files({"source": source, "path": str(tmp_path), "train": "train.tsv"})
        assert ("path" in files) is kept, source
        assert files["train"] == tmp_path / "train.tsv"


def test_eval_of_data_that_gained_a_class_says_so_not_that_the_weights_are_another_runs(tmp_path: Path, capsys):
    """A label added to the data since training made the model built for it one output wider: eval said the
    run's own model.safetensors was "not this run's model: restore the run's own model.safetensors"."""
    import pytest

    from trainlab.errors import DataError

    table = _table(tmp_path / "t.csv")
    header, *rows = table.read_text().splitlines()
    lines = [header, *(row[:row.rindex(",") + 1] + ("red", "green", "blue")[i % 3] for i, row in enumerate(rows))]
    table.write_text("\n".join(lines) + "\n")
    config = validate({**CSV_BASE, "data": {**CSV_BASE["data"], "path": str(table)}})
    _, folder = train(config, out=tmp_path / "run", quiet=True)
    table.write_text("\n".join([*lines, *(line[:line.rindex(",")] + ",maybe" for line in lines[-5:])]) + "\n")
    with pytest.raises(DataError) as info:
        evaluate_run(folder, "test")
    assert str(info.value) == (
        f"the data of run {folder} has changed since it trained: it now holds 1 class the run never trained on "
        f"('maybe'), where the run's model scores the 3 classes of {folder / 'labels.json'} ('blue', 'green', 'red'); "
        "evaluate "
        "it on data of those classes, or train a new run on the data as it is now")
