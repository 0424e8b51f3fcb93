"""trainlab's warnings go through one function (trainlab.notices.warn) onto the "trainlab" logger, whose own
handler writes ``warning: <message>`` on the current stderr: a Python user can silence, capture or forward
them as any library's logging, and the CLI's lines stay as they were."""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import trainlab
from trainlab.cli import main
from trainlab.notices import held_back, warn

STRATEGY = {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 16, "epochs": 1}
# the raw-scale check's warning for fit (trainlab.run_checks.warn_if_raw_scale_targets, FIT_FIXES), written out
LARGE_TARGETS = ("warning: the regression targets are large (mean 2.824e+06, std 2.367e+06) and not standardised, "
                 "so the model must learn outputs of that size; standardise y yourself before fit, per column "
                 "((y - y.mean(0)) / y.std(0)), and map the predictions back (pred * std + mean); metrics are then "
                 "in standardised units\n")


def _fit_with_large_targets(**strategy) -> None:
    """A fit whose one warning is :data:`LARGE_TARGETS` (a regression on the scale of 1e6)."""
    rng = np.random.RandomState(0)
    x = rng.randn(64, 3).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], dtype=np.float32) * 1e6 + 3e6).astype(np.float32)
    trainlab.fit(torch.nn.Linear(3, 1), train=(x, y), strategy={**STRATEGY, **strategy})


class Collect(logging.Handler):
    """A user's handler: keeps the records it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def trainlab_logger():
    """The "trainlab" logger, its level, handlers and propagate restored after the test."""
    logger = logging.getLogger("trainlab")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield logger
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate


def test_by_default_a_fit_warning_is_exactly_one_warning_line_on_stderr(capsys):
    _fit_with_large_targets()
    captured = capsys.readouterr()
    assert captured.err == LARGE_TARGETS and captured.out == ""


def test_a_fit_warning_is_silenced_by_the_loggers_level(trainlab_logger, capsys):
    trainlab_logger.setLevel(logging.ERROR)
    _fit_with_large_targets()
    assert capsys.readouterr().err == ""


def test_a_handler_added_to_the_trainlab_logger_captures_each_warning_as_a_record(trainlab_logger, capsys):
    collect = Collect()
    trainlab_logger.addHandler(collect)
    _fit_with_large_targets()
    (record,) = collect.records
    assert record.name == "trainlab" and record.levelno == logging.WARNING
    assert "warning: " + record.getMessage() + "\n" == LARGE_TARGETS  # the message, without the prefix
    assert capsys.readouterr().err == LARGE_TARGETS  # trainlab's own line stays beside the user's handler


def test_a_time_budgets_probe_build_warns_nothing_of_its_own(trainlab_logger, capsys):
    """strategy.time_budget_s builds the run twice (a timed probe, then the run): each warning once, to a
    user's handler too (the probe's are held back, not only kept off stderr)."""
    collect = Collect()
    trainlab_logger.addHandler(collect)
    _fit_with_large_targets(time_budget_s=5)
    assert ["warning: " + r.getMessage() + "\n" for r in collect.records] == [LARGE_TARGETS]
    assert capsys.readouterr().err == LARGE_TARGETS


def test_propagate_hands_the_warnings_to_the_applications_handlers(trainlab_logger, capsys):
    root = logging.getLogger()
    collect = Collect()  # the application's own handler, as logging.basicConfig() adds one
    root.addHandler(collect)
    trainlab_logger.propagate = True
    try:
        _fit_with_large_targets()
    finally:
        root.removeHandler(collect)
    assert [(r.name, r.levelname, "warning: " + r.getMessage() + "\n") for r in collect.records] == [
        ("trainlab", "WARNING", LARGE_TARGETS)]


def test_caplog_captures_each_warning_once(trainlab_logger, caplog):
    """pytest 9 attaches caplog's handler to non-propagating loggers too; an older one to the root logger
    alone, which the warnings reach once propagate is set."""
    if caplog.handler not in trainlab_logger.handlers:
        trainlab_logger.propagate = True
    with caplog.at_level(logging.WARNING):
        _fit_with_large_targets()
    assert [(r.name, r.levelname, "warning: " + r.getMessage() + "\n") for r in caplog.records] == [
        ("trainlab", "WARNING", LARGE_TARGETS)]


def test_fit_warns_of_an_emulated_precision_once_as_train_quiet_does(monkeypatch, capsys):
    import trainlab.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(runtime, "_cpu_has_flag", lambda *names: False)
    x = np.random.RandomState(0).randn(32, 3).astype(np.float32)
    trainlab.fit(torch.nn.Linear(3, 1), train=(x, x[:, 0]), strategy=STRATEGY,
                 runtime={"precision": "bf16", "device": "cpu"})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: runtime.precision=bf16 on a CPU without native bf16")


def test_the_root_loggers_handlers_get_nothing_by_default_so_no_warning_is_printed_twice(trainlab_logger, capsys):
    root = logging.getLogger()
    collect = Collect()  # as logging.basicConfig() adds a stream handler to the root logger
    root.addHandler(collect)
    try:
        warn("one line")
    finally:
        root.removeHandler(collect)
    assert collect.records == [] and capsys.readouterr().err == "warning: one line\n"


def test_the_line_goes_to_the_stderr_of_the_moment_it_is_warned():
    """Not the stderr the handler was made with (trainlab's import, long before): a redirection sees it."""
    redirected = io.StringIO()
    with contextlib.redirect_stderr(redirected):
        warn("cannot write x (No space left on device); retrying")
    assert redirected.getvalue() == "warning: cannot write x (No space left on device); retrying\n"


def test_held_back_holds_the_warnings_back_and_hands_them_over(capsys):
    with held_back() as held:
        warn("read ahead")
        with held_back() as inner:
            warn("nested")
        warn("after the nested one")
    assert capsys.readouterr().err == ""
    assert held == ["read ahead", "after the nested one"] and inner == ["nested"]
    warn("then said")
    assert capsys.readouterr().err == "warning: then said\n"


def _config(tmp_path: Path, name: str, data: dict, strategy: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "seed": 0, "data": data, "model": {"name": "linear"},
        "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "epochs": 1, **strategy},
        "metrics": ["mse"], "output": {"progress": "off"}}))
    return path


def test_the_clis_warning_lines_are_as_before_and_mid_epoch_validation_without_a_val_split_is_one(tmp_path, capsys):
    too_large = _config(tmp_path, "too-large", {"source": "synthetic_linear", "n": 100}, {"batch_size": 100000})
    assert main(["train", str(too_large), "--out", str(tmp_path / "a")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == ["warning: batch_size 100000 is larger than the training set (100 rows); using full batch (100)"]

    rows = ["a,y"] + [f"{i / 40:.3f},{(i % 7) / 7:.3f}" for i in range(40)]
    (tmp_path / "small.csv").write_text("\n".join(rows) + "\n")
    no_val = _config(tmp_path, "no-val", {"source": "csv", "path": str(tmp_path / "small.csv"), "target": "y",
                                          "val_fraction": 0.0}, {"batch_size": 8, "eval_every_n_steps": 2})
    assert main(["train", str(no_val), "--out", str(tmp_path / "b"), "--quiet"]) == 0  # a warning: --quiet shows it
    # (y is a sawtooth of a: the final model is no better than the mean, which is said too: trivial_outcome)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line and "R²" not in line]
    assert warnings == ["warning: strategy.eval_every_n_steps=2 asks for a validation every 2 steps, but the run has "
                        "no validation split: nothing is validated (its step records hold no val_* values); set "
                        "data.val_fraction > 0 (or give the source a val split)"]


def test_eval_and_predict_hold_back_the_strategys_training_warnings_but_say_the_datas(tmp_path, capsys):
    """A trained run rebuilt to evaluate or predict: its training warned of how the strategy would train
    (here a validation every 2 steps without a validation split); eval and predict do not say it again. A
    warning about the data itself (changed since the run trained) is still said."""
    rows = ["a,y"] + [f"{i / 40:.3f},{(i % 7) / 7:.3f}" for i in range(40)]
    (tmp_path / "small.csv").write_text("\n".join(rows) + "\n")
    no_val = _config(tmp_path, "no-val", {"source": "csv", "path": str(tmp_path / "small.csv"), "target": "y",
                                          "val_fraction": 0.0}, {"batch_size": 8, "eval_every_n_steps": 2})
    run = tmp_path / "run"
    assert main(["train", str(no_val), "--out", str(run)]) == 0
    assert "eval_every_n_steps=2" in capsys.readouterr().err
    (tmp_path / "inputs.csv").write_text("a\n0.5\n0.25\n")
    assert main(["eval", str(run)]) == 0
    assert main(["predict", str(run), str(tmp_path / "inputs.csv"), "-o", str(tmp_path / "p.csv")]) == 0
    assert "warning" not in capsys.readouterr().err
    (tmp_path / "small.csv").write_text("\n".join(rows[:-1]) + "\n")  # one row fewer than the run trained on
    assert main(["eval", str(run)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "changed since it was trained" in warnings[0], warnings


@pytest.mark.slow
def test_a_warning_in_a_compare_worker_process_reaches_stderr(tmp_path, capsys):
    """compare --jobs 2 trains in worker processes (forked on a CPU machine): their warnings reach the
    command's stderr as the same runs' warnings do when they train in the compare process itself."""
    rows = ["x,y"] + [f"{i / 19:.3f},{1e6 * (1 + 2 * i / 19) + 3e4 * np.sin(i):.6g}" for i in range(20)]
    (tmp_path / "big.csv").write_text("\n".join(rows) + "\n")
    base = _config(tmp_path, "big", {"source": "csv", "path": str(tmp_path / "big.csv"), "target": "y"},
                   {"batch_size": "full"})
    (tmp_path / "strategies.yaml").write_text(yaml.safe_dump({"strategies": {"mse": {},
                                                                             "huber": {"strategy.loss": "huber"}}}))
    argv = ["compare", str(base), "--strategies", str(tmp_path / "strategies.yaml"), "--seeds", "1",
            "--metric", "test_mse"]
    assert main([*argv, "--jobs", "1", "--out", str(tmp_path / "in-process")]) == 0
    in_process = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    done = subprocess.run([sys.executable, "-m", "trainlab", *argv, "--jobs", "2", "--out", str(tmp_path / "workers")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    in_workers = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    # both runs warn alike: said once in the compare process (notices.each_once), once by the two workers
    # together (notices.shared_once)
    assert len(in_process) == 1 and "the regression targets are large" in in_process[0]
    assert in_workers == in_process, done.stderr


def _warn_in_a_pool_worker(folder: str, messages: list[str]) -> None:
    from trainlab.notices import each_once_from_now

    each_once_from_now(folder)
    for message in messages:
        warn(message)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_workers_of_one_pool_say_each_warning_once_together_and_not_what_the_parent_said(capfd, method):
    """notices.shared_once: worker processes that share its folder say a warning once among them, whichever
    comes first, and none says what the parent said inside each_once before it started them."""
    import multiprocessing

    from trainlab.notices import each_once, shared_once

    context = multiprocessing.get_context(method)
    with each_once():
        warn("said by the parent")
        with shared_once() as folder:
            for messages in (["shared", "said by the parent", "first's own"], ["shared", "second's own"]):
                worker = context.Process(target=_warn_in_a_pool_worker, args=(folder, messages))
                worker.start()
                worker.join()
                assert worker.exitcode == 0
    lines = capfd.readouterr().err.splitlines()
    assert lines == ["warning: said by the parent", "warning: shared", "warning: first's own",
                     "warning: second's own"], lines


def test_a_warning_in_a_spawned_process_reaches_stderr(tmp_path):
    """A spawned worker (compare on a CUDA machine, tune --jobs) is a fresh interpreter: importing trainlab
    gives it the handler, which writes to its stderr, the parent's."""
    script = tmp_path / "spawned.py"
    script.write_text("import multiprocessing\n"
                      "from trainlab.notices import warn\n"
                      "if __name__ == '__main__':\n"
                      "    worker = multiprocessing.get_context('spawn').Process(target=warn, args=('from a worker',))\n"
                      "    worker.start()\n"
                      "    worker.join()\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "warning: from a worker\n", done.stderr


def test_each_once_gives_each_warning_text_once_inside_and_everything_again_after(capsys):
    from trainlab.notices import each_once

    with each_once():
        warn("the same")
        warn("another")
        with each_once():  # nested: the outer's record
            warn("the same")
        warn("the same")
    warn("the same")  # outside: said again
    assert capsys.readouterr().err == "warning: the same\nwarning: another\nwarning: the same\n"
