"""trainlab predict's -o, eval/predict with --allow-code, and their flags, as a new user met them: a device,
FIFO or symlink at -o (written through or followed, never replaced), the run's own module before a
same-named one in the working directory, abbreviated flags and a --data-dir that is no folder, weights
of another model, and numbers written with thousands separators."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from tests.test_inference import _classification_csv, _reference_inputs, csv_runs
from trainlab.atomic import names_descriptor
from trainlab.cli import main
from trainlab.model_file import weights_mismatch

AS_ROOT = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                             reason="mknod of a character device needs root")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """tests/test_inference.py's CSV runs (pets: mlp classification; houses: linear regression)."""
    return csv_runs(tmp_path_factory.mktemp("outputs"))


def _one_error_line(err: str) -> str:
    """The one line of ``err`` besides warnings (eval warns that a training file put back is another file)."""
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def expected_csv(runs, tmp_path_factory) -> str:
    """The predictions of new_pets.csv as predict writes them to a new regular file."""
    out = tmp_path_factory.mktemp("regular") / "preds.csv"
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("prediction\n") and len(text.splitlines()) == 51  # a header and the 50 new rows
    return text


# --------------------------------------------------------------------------- 1. -o: devices, FIFOs, symlinks

def _let_the_reader_go(fifo: Path, reader: threading.Thread) -> None:
    """Ends ``reader``'s wait in opening ``fifo`` where nothing opened it for writing, without ever blocking:
    a non-blocking open for writing succeeds only while a reader has it open (or waits to), else ENXIO. (A
    blocking open here, made after a finished reader had read but not yet stored its bytes, hung CI.)"""
    deadline = time.monotonic() + 30
    while reader.is_alive() and time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # ENXIO: the reader has not reached its open yet, or is gone
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=0.05)


def _through_fifo(fifo: Path, write) -> bytes:
    """What a reader of the FIFO ``fifo`` gets while ``write()`` writes to it."""
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    try:
        write()
    finally:
        _let_the_reader_go(fifo, reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, not a regular file renamed over it
    assert len(got) == 1, "the FIFO's reader got nothing"
    return got[0]


def test_predict_writes_through_a_fifo_to_its_reader(runs, expected_csv, tmp_path):
    codes: list[int] = []
    piped = _through_fifo(tmp_path / "preds.fifo", lambda: codes.append(main(
        ["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(tmp_path / "preds.fifo")])))
    assert codes == [0] and piped == expected_csv.encode()


@AS_ROOT
def test_predict_to_a_null_device_keeps_the_device(runs, tmp_path):
    null = tmp_path / "mynull"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(null)]) == 0
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)


@AS_ROOT
def test_predict_to_a_full_device_is_one_error_line_and_exit_5(runs, tmp_path, capsys):
    full = tmp_path / "myfull"
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full's: every write fails with ENOSPC
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(full)]) == 5
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"error: cannot write ({full}): No space left on device"
    assert stat.S_ISCHR(os.lstat(full).st_mode) and sorted(os.listdir(tmp_path)) == ["myfull"]  # no temporary left


def test_predict_through_a_symlink_writes_its_target_and_keeps_the_link(runs, expected_csv, tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "preds.csv"
    target.write_text("old\n")
    link = tmp_path / "lpreds.csv"
    link.symlink_to(Path("real") / "preds.csv")
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(link)]) == 0
    assert link.is_symlink() and target.read_text() == expected_csv
    assert sorted(os.listdir(tmp_path / "real")) == ["preds.csv"]  # no temporary left beside the target


def test_predict_through_a_dangling_link_never_creates_its_targets_folders(runs, tmp_path, capsys):
    """A link into folders that do not exist could make any folder anywhere (``-> /etc/cron.d/x``): refused."""
    dangling = tmp_path / "later.csv"
    dangling.symlink_to(Path("made") / "deeper" / "p.csv")
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(dangling)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {dangling} is a symbolic link to {tmp_path / 'made' / 'deeper' / 'p.csv'}")
    assert "does not exist" in line
    assert sorted(os.listdir(tmp_path)) == ["later.csv"] and dangling.is_symlink()


def test_writing_through_a_link_keeps_the_targets_permission_bits(runs, expected_csv, tmp_path):
    """A private (0600) file written through a link, or replaced by name, stays private: the atomic rename
    would otherwise leave a new file of the umask's mode (0644) in its place."""
    target = tmp_path / "private.csv"
    target.write_text("old\n")
    target.chmod(0o600)
    link = tmp_path / "link.csv"
    link.symlink_to(target.name)
    for out in (link, target):
        assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(out)]) == 0
        assert target.read_text() == expected_csv and stat.S_IMODE(os.stat(target).st_mode) == 0o600
    page = tmp_path / "page.html"
    page.write_text("old")
    page.chmod(0o640)
    assert main(["report", str(runs["classify"]), "-o", str(page)]) == 0
    assert page.read_text() != "old" and stat.S_IMODE(os.stat(page).st_mode) == 0o640


def test_predict_to_a_regular_file_still_replaces_it_atomically(runs, expected_csv, tmp_path):
    out = tmp_path / "preds.csv"
    out.write_text("old\n")
    before = os.stat(out).st_ino
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(out)]) == 0
    assert out.read_text() == expected_csv
    assert os.stat(out).st_ino != before  # a new file renamed over the old one, not the old one rewritten
    assert os.listdir(tmp_path) == ["preds.csv"]


def test_predict_to_a_link_to_stdout_reaches_the_redirected_descriptor(runs, expected_csv, tmp_path, capfd):
    """A link to /proc/self/fd/1 (what /dev/stdout is; a link of our own, so that a regression replaces it and
    not /dev/stdout) while pytest's capfd makes descriptor 1 a regular temporary file, as ``> file`` does: a
    rename over the name the link resolves to would leave the descriptor's file empty."""
    stdout = tmp_path / "stdout"
    stdout.symlink_to("/proc/self/fd/1")
    capfd.readouterr()
    assert main(["predict", str(runs["classify"]), str(runs["tmp"] / "new_pets.csv"), "-o", str(stdout)]) == 0
    captured = capfd.readouterr()
    assert captured.out == expected_csv and captured.err == f"wrote {stdout}\n"
    assert stdout.is_symlink()


def test_names_descriptor_follows_links_into_proc_fd(tmp_path):
    assert names_descriptor("/dev/stdout") and names_descriptor("/dev/fd/1") and names_descriptor("/proc/self/fd/2")
    (tmp_path / "plain.csv").write_text("")
    (tmp_path / "to_stderr").symlink_to("/dev/stderr")
    (tmp_path / "to_plain").symlink_to("plain.csv")
    assert names_descriptor(tmp_path / "to_stderr")
    assert not names_descriptor(tmp_path / "plain.csv") and not names_descriptor(tmp_path / "to_plain")
    assert not names_descriptor(tmp_path / "absent.csv")


# --------------------------------------------------------------------------- 2. --allow-code: the run's own module

NET = '''
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, input_shape, output_dim, hidden: int = 16):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(input_shape[0], hidden), nn.{activation}(), nn.Linear(hidden, output_dim))

    def forward(self, x):
        return self.f(x)
'''
PLANTED = "\nfrom pathlib import Path\n\nPath({marker!r}).write_text('imported')\n"


@pytest.fixture
def sent_run(tmp_path, monkeypatch):
    """A run of ``outnets:Net`` (Tanh) trained from code/ with the config beside it, then a folder
    elsewhere/ (the working directory) holding another outnets.py (ReLU) that leaves a marker when imported."""
    code, work, elsewhere = tmp_path / "code", tmp_path / "work", tmp_path / "elsewhere"
    for folder in (code, work, elsewhere):
        folder.mkdir()
    (code / "outnets.py").write_text(NET.format(activation="Tanh"))
    marker = tmp_path / "planted-was-imported"
    (elsewhere / "outnets.py").write_text(NET.format(activation="ReLU") + PLANTED.format(marker=str(marker)))
    _classification_csv(tmp_path / "pets.csv", 120, 0)
    config = {"name": "code", "seed": 0, "model": {"name": "outnets:Net"},
              "data": {"source": "csv", "path": str(tmp_path / "pets.csv"), "target": "species"},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                           "epochs": 3},
              "metrics": ["accuracy"], "runtime": {"num_threads": 1}, "output": {"progress": "off"}}
    (code / "code.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.delenv("TRAINLAB_ALLOW_CODE", raising=False)
    monkeypatch.chdir(work)
    before = set(sys.modules)
    assert main(["train", str(code / "code.yaml"), "--out", str(work / "runs" / "code"), "--quiet"]) == 0
    for name in set(sys.modules) - before:  # as a fresh `trainlab` process: nothing of the training imported
        if name.split(".")[0].split("__trainlab_")[0] == "outnets":
            sys.modules.pop(name, None)
    sent = elsewhere / "sent"
    shutil.copytree(work / "runs" / "code", sent)
    monkeypatch.chdir(elsewhere)
    yield {"run": sent, "marker": marker, "tmp": tmp_path}
    for name in set(sys.modules) - before:
        if name.split(".")[0].split("__trainlab_")[0] == "outnets":
            sys.modules.pop(name, None)


def test_cli_eval_with_allow_code_builds_the_runs_own_module(sent_run, capsys):
    summary = json.loads((sent_run["run"] / "summary.json").read_text())
    capsys.readouterr()
    assert main(["--allow-code", "eval", "sent"]) == 0
    out = capsys.readouterr().out
    assert not sent_run["marker"].exists(), "the working directory's outnets.py was imported"
    shown = dict(line.split() for line in out.splitlines()[1:])
    assert float(shown["accuracy"]) == pytest.approx(summary["test"]["accuracy"], abs=5e-6)
    assert float(shown["loss"]) == pytest.approx(summary["test"]["loss"], rel=1e-5)


def test_cli_predict_with_allow_code_builds_the_runs_own_module(sent_run, capsys):
    import trainlab

    rows = _classification_csv(sent_run["tmp"] / "rows.csv", 30, 5).drop(columns="species")
    rows.to_csv(sent_run["tmp"] / "rows.csv", index=False)
    capsys.readouterr()
    code = main(["--allow-code", "predict", "sent", str(sent_run["tmp"] / "rows.csv"), "--proba"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert not sent_run["marker"].exists(), "the working directory's outnets.py was imported"
    loaded = trainlab.load_run("sent", allow_code=True)  # load_run looks in the run's folders first
    assert isinstance(loaded.model.f[1], torch.nn.Tanh)
    x = _reference_inputs(sent_run["run"], rows)  # the model's inputs, computed from preprocessing.json
    with torch.no_grad():
        proba = torch.softmax(loaded.model(torch.from_numpy(x)).double(), dim=1).numpy()
    printed = pd.read_csv(io.StringIO(out))
    assert np.allclose(printed[loaded.class_names].to_numpy(), proba, atol=1e-6)
    assert list(printed["prediction"]) == [loaded.class_names[i] for i in proba.argmax(axis=1)]


# --------------------------------------------------------------------------- 3. flags spelled whole; --data-dir

@pytest.mark.parametrize(("argv", "whole"), [(["--data", "new.csv"], "--data-dir"), (["--spl", "val"], "--split"),
                                           (["--allow"], "--allow-code")])
def test_an_abbreviated_flag_is_not_taken_for_the_whole_one(runs, capsys, argv, whole):
    """Refused, with the whole flag as a hint: taken for it, `--data new.csv` scored the run's own split."""
    with pytest.raises(SystemExit) as caught:  # argparse's exit: trainlab's `main` returns its code
        main(["eval", str(runs["classify"]), *argv])
    assert caught.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == (f"error: unrecognized arguments: {' '.join(argv)}; did you mean '{whole}'? "
                    "(see 'trainlab eval --help')")


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_data_dir_that_is_no_folder_is_one_error_line(runs, tmp_path, capsys, command):
    new_rows = str(runs["tmp"] / "new_pets.csv")
    tail = [new_rows] if command == "predict" else []
    for folder, what in ((tmp_path / "nope", "does not exist"), (Path(new_rows), "is not a folder")):
        assert main([command, str(runs["classify"]), *tail, "--data-dir", str(folder)]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: --data-dir {folder} {what}: it names the folder relative data paths")
        assert ("trainlab predict" in line) == (command == "eval")  # eval points to predict for new rows


# --------------------------------------------------------------------------- 4. weights of another model

def _tampered(run: Path, into: Path, weights: dict[str, torch.Tensor]) -> Path:
    """A copy of ``run`` holding ``weights`` as model.safetensors, run.json's digest made to vouch for them."""
    shutil.copytree(run, into)
    save_file(weights, str(into / "model.safetensors"))
    info = json.loads((into / "run.json").read_text())
    info["model_sha256"] = hashlib.sha256((into / "model.safetensors").read_bytes()).hexdigest()
    (into / "run.json").write_text(json.dumps(info))
    return into


@pytest.fixture
def training_data(runs):
    """The pets run's training file put back (the same rows: eval needs it), removed again after the test."""
    _classification_csv(runs["tmp"] / "pets.csv", 300, 0)
    yield
    (runs["tmp"] / "pets.csv").unlink()


def test_weights_of_another_model_name_the_first_tensors_that_do_not_fit(runs, training_data, tmp_path, capsys):
    own = load_file(str(runs["classify"] / "model.safetensors"))
    other = load_file(str(runs["regress"] / "model.safetensors"))
    assert not set(own) & set(other)  # the premise: an mlp's keys ('0.weight', ...), a linear model's ('weight')
    swapped = _tampered(runs["classify"], tmp_path / "swapped", other)
    for argv, architecture in ((["predict", str(swapped), str(runs["tmp"] / "new_pets.csv")], "model.json"),
                               (["eval", str(swapped)], "config.yaml")):  # predict rebuilds from model.json
        assert main(argv) == 3
        line = _one_error_line(capsys.readouterr().err)
        assert line.startswith(f"error: {swapped / 'model.safetensors'} does not fit the model built from "
                               f"{swapped / architecture}: ")
        assert (f"{len(own)} tensors missing from the file (first '0.weight'); "  # the model's first, as it lists them
                f"{len(other)} tensors in the file that the model has not (first '{sorted(other)[0]}')") in line
        assert "Error(s) in loading" not in line

    last = sorted(own)[-1]  # the output layer's weight: one class fewer
    narrower = {**own, last: own[last][:-1].clone()}
    shrunk = _tampered(runs["classify"], tmp_path / "shrunk", narrower)
    assert main(["eval", str(shrunk)]) == 3
    line = _one_error_line(capsys.readouterr().err)
    rows, cols = own[last].shape
    assert f"1 tensor of another shape (first '{last}': {rows - 1}x{cols} in the file, {rows}x{cols} in the model)" \
        in line and "missing" not in line


def test_weights_mismatch_counts_each_kind_of_misfit():
    model = {"a": torch.zeros(2, 3), "b": torch.zeros(3), "c": torch.zeros(())}
    assert weights_mismatch(model, dict(model)) == ""
    saved = {"a": torch.zeros(3, 2), "c": torch.zeros(1), "z": torch.zeros(1), "y": torch.zeros(1)}
    assert weights_mismatch(model, saved) == (
        "1 tensor missing from the file (first 'b'); 2 tensors in the file that the model has not (first 'z'); "
        "2 tensors of another shape (first 'a': 3x2 in the file, 2x3 in the model)")


# --------------------------------------------------------------------------- 5. thousands separators

def test_predict_says_thousands_separators_in_trainings_words(runs, tmp_path, capsys):
    new = tmp_path / "grouped.csv"
    new.write_text('weight,height,colour\n27.5,"1,250",red\n31.0,480,blue\n')
    assert main(["predict", str(runs["classify"]), str(new)]) == 3
    line = _one_error_line(capsys.readouterr().err)
    assert line == (f"error: CSV file {new} line 2, column 'height': '1,250' is a number written with thousands "
                    "separators; write its numbers without them (e.g. 1250)")

    table = _classification_csv(tmp_path / "train.csv", 60, 3)  # training refuses the same column in the same words
    table["height"] = [f"{int(h):,}" if h >= 1000 else f"{h:.0f}" for h in table["height"] * 3]
    table.to_csv(tmp_path / "train.csv", index=False)
    config = {"name": "grouped", "seed": 0,
              "data": {"source": "csv", "path": str(tmp_path / "train.csv"), "target": "species"},
              "model": {"name": "mlp", "hidden": [4]},
              "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32,
                           "epochs": 1}, "output": {"progress": "off"}}
    (tmp_path / "grouped.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "grouped.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 3
    training = _one_error_line(capsys.readouterr().err)
    example = training.split("'height': '")[1].split("'")[0]
    assert f"'{example}' is a number written with thousands separators, which would make the column text" in training
    assert f"write its numbers without them (e.g. {example.replace(',', '')})" in training


def test_predict_says_a_decimal_comma_and_still_names_plain_text(runs, tmp_path, capsys):
    new = tmp_path / "decimal.csv"
    new.write_text('weight,height,colour\n"27,5",480,red\n')
    assert main(["predict", str(runs["classify"]), str(new)]) == 3
    assert _one_error_line(capsys.readouterr().err).endswith(
        "column 'weight': '27,5' is a number written with a decimal comma; write its numbers with a decimal point "
        "(e.g. 27.5)")
    new.write_text("weight,height,colour\nheavy,480,red\n")
    assert main(["predict", str(runs["classify"]), str(new)]) == 3
    assert _one_error_line(capsys.readouterr().err).endswith("column 'weight': 'heavy' is not a number")
    new.write_text("weight,height,colour\n?,480,red\n")  # UCI's missing marker: named as maybe one, as training does
    assert main(["predict", str(runs["classify"]), str(new)]) == 3
    assert _one_error_line(capsys.readouterr().err).endswith(
        "column 'weight': '?' is not a number (if '?' marks a missing value: predict needs every feature, so write "
        "the value there)")


# --------------------------------------------------------------------------- plot -o and report -o alike

def test_plot_and_report_write_through_a_symlink_and_a_fifo_as_predict_does(runs, tmp_path):
    run = str(runs["classify"])
    (tmp_path / "real").mkdir()
    for name, argv in (("curves.png", ["plot", run, "-o"]), ("page.html", ["report", run, "-o"])):
        target = tmp_path / "real" / name
        target.write_bytes(b"old")
        link = tmp_path / f"link-{name}"
        link.symlink_to(Path("real") / name)
        assert main([*argv, str(link)]) == 0
        assert link.is_symlink() and target.read_bytes() != b"old"  # the link's target written, the link kept
        written = target.read_bytes()
        assert written.startswith(b"\x89PNG") if name.endswith(".png") else b"<html" in written[:200].lower()
        piped = _through_fifo(tmp_path / f"fifo-{name}", lambda argv=argv, name=name: main(
            [*argv, str(tmp_path / f"fifo-{name}")]))
        assert piped[:8] == written[:8]
    assert sorted(os.listdir(tmp_path / "real")) == ["curves.png", "page.html"]  # no temporary left beside


@pytest.mark.parametrize("command, name", [("plot", "curves.png"), ("report", "report.html")])
def test_a_default_output_name_that_is_a_symlink_is_refused(runs, tmp_path, monkeypatch, capsys, command, name):
    """A folder cloned with ``curves.png -> ../.bashrc`` must not have ``trainlab plot RUN`` overwrite the
    target: without -o the link is refused (exit 2, one line); -o naming the same link writes through it."""
    monkeypatch.chdir(tmp_path)
    victim = tmp_path / "bashrc"
    victim.write_text("export PATH\n")
    (tmp_path / name).symlink_to(victim.name)
    assert main([command, str(runs["classify"])]) == 2
    assert _one_error_line(capsys.readouterr().err) == (f"error: {name} is a symbolic link (to bashrc): give -o "
                                                        f"{name} to write through it, or remove it")
    assert victim.read_text() == "export PATH\n" and (tmp_path / name).is_symlink()
    assert sorted(os.listdir(tmp_path)) == sorted(["bashrc", name])
    assert main([command, str(runs["classify"]), "-o", name]) == 0  # named by the user: followed
    assert victim.read_bytes() != b"export PATH\n" and (tmp_path / name).is_symlink()


def test_a_default_output_name_that_is_a_fifo_is_refused(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    codes: list[int] = []
    piped = _through_fifo(tmp_path / "curves.png", lambda: codes.append(main(["plot", str(runs["classify"])])))
    assert codes == [2] and piped == b""  # nothing written into the pipe
    assert _one_error_line(capsys.readouterr().err) == ("error: curves.png is a named pipe (FIFO), not a regular "
                                                        "file: give -o curves.png to write into it, or remove it")


def test_a_link_into_a_run_folder_is_refused(runs, tmp_path, capsys):
    """``-o x.html`` where x.html leads to a run's run.json (or any file of a run folder) would replace the
    run's records: refused for report, plot and predict (another run's folder), the records untouched."""
    run = runs["classify"]
    record = (run / "run.json").read_bytes()
    for name, argv in (("x.html", ["report", str(run)]), ("x.png", ["plot", str(run)]),
                       ("x.csv", ["predict", str(runs["regress"]), str(runs["new_houses"])])):
        link = tmp_path / name
        link.symlink_to(run / "run.json")
        assert main([*argv, "-o", str(link)]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert line == (f"error: {link} is a symbolic link to {(run / 'run.json').resolve()}, inside the run folder "
                        f"{run.resolve()}, whose records must not be replaced; give a file outside it")
        assert (run / "run.json").read_bytes() == record and link.is_symlink()
    deeper = tmp_path / "deep.png"  # a subfolder of a run folder (one holding run.json and config.yaml)
    (run / "extra").mkdir(exist_ok=True)
    deeper.symlink_to(run / "extra" / "c.png")
    assert main(["plot", str(run), "-o", str(deeper)]) == 2
    assert "inside the run folder" in _one_error_line(capsys.readouterr().err)
    assert os.listdir(run / "extra") == []
    (run / "extra").rmdir()  # the module's runs are shared


def test_compare_leaves_a_report_html_that_is_a_symlink_and_says_how_to_write_it(tmp_path, capsys):
    """compare has no -o for its report: the warning points to 'trainlab report OUT -o FILE', not to -o."""
    from trainlab.compare.command import write_report_if_available

    victim = tmp_path / "bashrc"
    victim.write_text("export PATH\n")
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "report.html").symlink_to(victim)
    assert write_report_if_available({}, out) is None
    err = capsys.readouterr().err
    assert err == (f"warning: {out / 'report.html'} not written: it is a symbolic link or not a regular file (a "
                   f"copied folder's?); remove it and run the comparison again, or write the report elsewhere: "
                   f"trainlab report {out} -o FILE\n")
    assert victim.read_text() == "export PATH\n"


def test_proba_of_a_regression_run_is_refused_before_its_input_is_read(runs, tmp_path, capsys):
    """The rows were read first (their data warnings printed, a missing file told instead) and only then the
    flag refused."""
    assert main(["predict", str(runs["regress"]), str(tmp_path / "absent.csv"), "--proba"]) == 2
    assert capsys.readouterr().err == "error: --proba applies to classification runs; this run is a regression\n"
