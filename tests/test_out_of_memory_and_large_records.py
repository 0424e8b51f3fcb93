"""Running out of memory, and the records of a run with many classes.

- Out of memory was ``error: MemoryError:  (rerun with --debug for the traceback)``, exit 4 ("training failed"),
  also when it happened while reading the data; torch's allocator failure was its raw ``[enforce fail at
  alloc_cpu.cpp:127] ...`` line. It is one line saying what was asked for (where the message tells it), what the
  command was doing (where its traceback tells it) and what to make smaller, exit 5: the machine's, as compare
  counts it (a run memory stopped is not run, and trained again).
- A 1000-class confusion matrix made summary.json 2,004,056 lines (indent=2 put each cell on its own line) and
  the terminal summary one 6 MB line: each list of numbers is one line of summary.json, and the terminal shows
  a matrix of more than 20 x 20 by its shape.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
import torch
import yaml

from trainlab import cli
from trainlab.cli import main
from trainlab.compare.machine_failure import OUT_OF_MEMORY, is_machine_failure
from trainlab.data import DATA_SOURCES
from trainlab.models import MODELS
from trainlab.records import record_json, record_json_text

CPU_MESSAGE = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
               "to allocate 1536000000 bytes. Error code 12 (Cannot allocate memory)")
WINDOWS_MESSAGE = ("[enforce fail at C:\\actions-runner\\_work\\pytorch\\c10\\core\\impl\\alloc_cpu.cpp:72] data. "
                   "DefaultCPUAllocator: not enough memory: you tried to allocate 1536000000 bytes.")
CUDA_MESSAGE = ("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which "
                "1.06 GiB is free. Of the allocated memory 75.92 GiB is allocated by PyTorch")
NUMPY_MESSAGE = "Unable to allocate 7.63 MiB for an array with shape (1000000,) and data type float64"

ANY_PHASE = ("lower strategy.batch_size, use a smaller model, a smaller data.size for large images (data.max_length "
             "for long texts), or fewer "
             "data.workers")
TRAINING = ("lower strategy.batch_size or use a smaller model (for large images, a smaller data.size; for long "
            "texts, data.max_length)")

# iris: 4 steps of 30 rows an epoch
CONFIG = {"name": "oom", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
          "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": 30,
                       "epochs": 2},
          "output": {"progress": "off"}, "runtime": {"num_threads": 1}}


def _numpy_memory_error() -> MemoryError:
    """NumPy's own MemoryError (numpy._core._exceptions._ArrayMemoryError), with its message, without allocating."""
    try:
        np.empty((2**50,), dtype=np.float64)  # 8 PiB: refused at once, nothing allocated
    except MemoryError as exc:
        return exc
    raise AssertionError("NumPy allocated 8 PiB")


def _train(tmp_path, monkeypatch, capsys, *extra: str, config: dict | None = None) -> tuple[int, str]:
    """``trainlab train`` of ``config`` (CONFIG) in ``tmp_path``: (exit code, stderr)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config or CONFIG))
    capsys.readouterr()
    code = main([*extra, "train", "c.yaml", "--out", "run", "--quiet"])
    return code, capsys.readouterr().err


def _command_raising(monkeypatch, failure: BaseException) -> None:
    """``trainlab train`` raises ``failure`` from this file (no phase of trainlab's on its traceback)."""
    def command(args):
        raise failure

    monkeypatch.setitem(cli.COMMANDS, "train", command)


# --------------------------------------------------------------------------- out of memory: the one line

@pytest.mark.parametrize("failure, line", [
    (MemoryError(), f"error: out of memory: {ANY_PHASE}"),
    (MemoryError(NUMPY_MESSAGE), f"error: out of memory (an allocation of 7.63 MiB failed): {ANY_PHASE}"),
    (_numpy_memory_error(), f"error: out of memory (an allocation of 8.00 PiB failed): {ANY_PHASE}"),
    (MemoryError("the cache is full"), f"error: out of memory (MemoryError: the cache is full): {ANY_PHASE}"),
    (RuntimeError(CPU_MESSAGE), f"error: out of memory (an allocation of 1.43 GiB failed): {ANY_PHASE}"),
    (RuntimeError(WINDOWS_MESSAGE), f"error: out of memory (an allocation of 1.43 GiB failed): {ANY_PHASE}"),
    (torch.OutOfMemoryError(CUDA_MESSAGE), f"error: out of GPU memory (an allocation of 2.00 GiB failed): {ANY_PHASE}"),
    (RuntimeError("CUDA error: out of memory"), f"error: out of GPU memory: {ANY_PHASE}"),
])
def test_each_kind_of_out_of_memory_is_one_line_saying_so_and_exit_5(tmp_path, monkeypatch, capsys, failure, line):
    """It was "error: MemoryError:  (rerun with --debug for the traceback)" or torch's raw allocator line, exit 4."""
    _command_raising(monkeypatch, failure)
    code, err = _train(tmp_path, monkeypatch, capsys)
    assert (code, err) == (5, line + "\n")


def test_with_debug_out_of_memory_is_the_traceback_and_the_same_exit_code(tmp_path, monkeypatch, capsys):
    _command_raising(monkeypatch, RuntimeError(CPU_MESSAGE))
    code, err = _train(tmp_path, monkeypatch, capsys, "--debug")
    assert code == 5 and err.startswith("Traceback") and err.rstrip().endswith(f"RuntimeError: {CPU_MESSAGE}")


@pytest.mark.parametrize("failure", [RuntimeError("my forward's bug"), ValueError("you tried this")])
def test_another_failure_keeps_the_generic_line_and_exit_4(tmp_path, monkeypatch, capsys, failure):
    _command_raising(monkeypatch, failure)
    code, err = _train(tmp_path, monkeypatch, capsys)
    # the place of _command_raising's `raise failure` (3 lines below its def), the user's code to the CLI
    where = f"{os.path.basename(__file__)}:{_command_raising.__code__.co_firstlineno + 3}"
    assert code == 4 and re.fullmatch(rf"error: {type(failure).__name__}: {failure} \(at (\S*/)?{re.escape(where)}; "
                                      r"rerun with --debug for the traceback\)\n", err), err


# --------------------------------------------------------------------------- out of memory: what it was doing

class _RunsOutWhenTraining(torch.nn.Module):
    """A model whose forward with gradients (a training step) runs out of memory as torch's CPU allocator does."""

    def __init__(self, input_shape, output_dim):
        super().__init__()
        self.linear = torch.nn.Linear(input_shape[0], output_dim)

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            raise RuntimeError(CPU_MESSAGE)
        return self.linear(x)


def test_out_of_memory_while_reading_the_data_says_so(tmp_path, monkeypatch, capsys):
    """The tester's hugefull.yaml: a MemoryError with no message in PIL's decoding, before training."""
    import trainlab.data.builtins  # noqa: F401  (registers iris now: registering it later would find ours)

    def iris(**options):
        raise MemoryError()

    monkeypatch.setitem(DATA_SOURCES._entries, "iris", iris)
    code, err = _train(tmp_path, monkeypatch, capsys)
    assert code == 5
    assert err == ("error: out of memory while reading the data: the data does not fit in this machine's memory: "
                   "for images, a smaller data.size (and fewer data.workers, which decode side by side); for a "
                   "table, fewer rows or columns (data.features)\n")


def test_out_of_memory_while_building_the_model_says_so(tmp_path, monkeypatch, capsys):
    """The tester's hugefull.yaml with more memory: cnn2d's forward that sizes its head ran out (1.43 GiB)."""
    def huge(input_shape, output_dim):
        raise RuntimeError(CPU_MESSAGE)

    monkeypatch.setitem(MODELS._entries, "huge", huge)
    code, err = _train(tmp_path, monkeypatch, capsys, config={**CONFIG, "model": {"name": "huge"}})
    assert (code, err) == (5, "error: out of memory (an allocation of 1.43 GiB failed) while building the model: use "
                              "a smaller model or, for large images, a smaller data.size (for long texts, "
                              "data.max_length; the model is sized by its inputs)\n")


def test_out_of_memory_in_a_training_step_says_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(MODELS._entries, "runs_out", _RunsOutWhenTraining)
    code, err = _train(tmp_path, monkeypatch, capsys, config={**CONFIG, "model": {"name": "runs_out"}})
    assert (code, err) == (5, f"error: out of memory (an allocation of 1.43 GiB failed) while training: {TRAINING}\n")


def test_out_of_gpu_memory_while_evaluating_says_evaluating(tmp_path, monkeypatch, capsys):
    import trainlab.engine.evaluation as evaluation

    def metric_values(names, inputs):
        raise torch.OutOfMemoryError(CUDA_MESSAGE)

    monkeypatch.setattr(evaluation, "metric_values", metric_values)
    code, err = _train(tmp_path, monkeypatch, capsys)
    assert (code, err) == (5, "error: out of GPU memory (an allocation of 2.00 GiB failed) while evaluating: "
                              "evaluation's batches are of a fixed size, not strategy.batch_size: use a smaller "
                              "model or, for large images, a smaller data.size (for long texts, data.max_length)\n")


# --------------------------------------------------------------------------- out of memory: compare agrees

@pytest.mark.parametrize("failure", [MemoryError(), MemoryError(NUMPY_MESSAGE), _numpy_memory_error()])
def test_compare_counts_a_memory_error_as_the_machines_as_the_cli_does(failure):
    """Both say the machine's: compare lists the run as not run (exit 5), the CLI exits 5; compare's reason
    and the CLI's line start alike (compare tells a second time in a row by that start)."""
    assert is_machine_failure(failure)
    assert cli.out_of_memory_line(failure).startswith(OUT_OF_MEMORY)


@pytest.mark.parametrize("failure", [RuntimeError(CPU_MESSAGE), torch.OutOfMemoryError(CUDA_MESSAGE)])
def test_compare_counts_torchs_out_of_memory_as_the_machines(failure):
    """It counted torch's allocator failures (RuntimeError, torch.OutOfMemoryError) as the strategy's: both
    now ask trainlab.out_of_memory."""
    assert cli.out_of_memory_line(failure) is not None
    assert is_machine_failure(failure)


# --------------------------------------------------------------------------- summary.json of many classes

def _summary_of(classes: int) -> dict:
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 5, size=(classes, classes)).tolist()
    per_class = [None if i == 3 else float(v) for i, v in enumerate(rng.random(classes))]
    return {"name": "k", "status": "finished", "val": {"loss": 6.08, "confusion_matrix": matrix,
                                                       "f1_per_class": per_class},
            "test": {"loss": float("nan"), "confusion_matrix": matrix}, "events": [{"event": "x", "step": 1}],
            "notes": {"empty": {}, "none": [], "names": ["a", "b"]}, "non_finite": ["test.loss=nan"]}


def test_summary_json_holds_each_row_of_a_matrix_on_one_line_and_reads_back_equal():
    """1000 classes: 2,004,056 lines with indent=2; now about a line a row of each matrix."""
    summary = _summary_of(1000)
    text = record_json_text(summary)
    assert json.loads(text) == json.loads(json.dumps(summary))  # the stdlib's reading of its own writing
    assert math.isnan(json.loads(text)["test"]["loss"])
    assert text.endswith("}\n") and len(text.splitlines()) < 2 * 1000 + 40
    rows = [line.strip().rstrip(",") for line in text.splitlines() if line.strip().startswith("[")]
    assert json.loads(rows[0]) == summary["val"]["confusion_matrix"][0]


def test_a_summary_without_lists_of_numbers_is_written_as_indent_2_writes_it():
    """The readable layout stays: objects, lists of strings and of objects one item a line."""
    summary = _summary_of(3)
    for split in ("val", "test"):
        summary[split] = {key: value for key, value in summary[split].items() if not isinstance(value, list)}
    assert record_json(summary) == json.dumps(summary, indent=2)


def test_a_record_key_json_cannot_hold_is_refused_as_json_refuses_it():
    with pytest.raises(TypeError, match="keys must be str, int, float, bool or None"):
        record_json({(1, 2): 3})
    keys = {2: [1, 2], 2.5: 1, True: "t", None: {"x": [0.5]}}  # json.dumps writes each as a string
    assert json.loads(record_json(keys)) == json.loads(json.dumps(keys)) == {"2": [1, 2], "2.5": 1, "true": "t",
                                                                           "null": {"x": [0.5]}}


# --------------------------------------------------------------------------- a run of many classes

CLASSES = 25  # more than 20: its 25 x 25 matrix is not printed


@pytest.fixture
def many_classes(tmp_path, monkeypatch):
    """A CSV of 25 classes (12 rows each) and a config scoring its confusion matrix; the working directory."""
    rng = np.random.default_rng(0)
    lines = ["a,b,label"] + [f"{rng.normal():.4f},{rng.normal() + k:.4f},class_{k:02d}"
                             for k in range(CLASSES) for _ in range(12)]
    (tmp_path / "k.csv").write_text("\n".join(lines) + "\n")
    config = {**CONFIG, "name": "k", "data": {"source": "csv", "path": "k.csv", "target": "label"},
              "metrics": ["accuracy", "f1", "confusion_matrix", "recall_per_class"]}
    (tmp_path / "k.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_runs_summary_json_reads_back_as_its_summary_in_few_lines(many_classes):
    from trainlab.experiment import train

    summary, path = train(many_classes / "k.yaml", out=many_classes / "run", quiet=True)
    text = (path / "summary.json").read_text()
    assert json.loads(text) == summary
    assert len(summary["val"]["confusion_matrix"]) == CLASSES
    assert len(text.splitlines()) < 2 * CLASSES + 120  # val's and test's rows, and the rest of the summary


def test_fits_summary_json_writes_matrix_rows_on_one_line(tmp_path):
    from trainlab import fit

    x = torch.randn(200, 3)
    y = torch.arange(200) % CLASSES
    result = fit(torch.nn.Linear(3, CLASSES), (x, y), {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1},
                                                       "batch_size": 50, "epochs": 1},
                 val=(x, y), test=(x, y), metrics=["accuracy", "confusion_matrix"], out=tmp_path / "fit", task="multiclass")
    text = (tmp_path / "fit" / "summary.json").read_text()
    assert json.loads(text) == json.loads(json.dumps(result.summary))
    assert len(text.splitlines()) < 2 * CLASSES + 120


def test_train_and_eval_print_a_large_matrix_by_its_shape_and_where_it_is(many_classes, capsys):
    """The 1000-class run printed each matrix whole: one 3 MB line each for val and test."""
    capsys.readouterr()
    assert main(["train", "k.yaml", "--out", "run", "--quiet"]) == 0
    out = capsys.readouterr().out
    shown = {}
    for line in out.splitlines():
        key, _, value = line.strip().partition(" ")
        shown.setdefault(key, []).append(value.strip())
    assert shown["confusion_matrix"] == [f"{CLASSES} x {CLASSES}, in summary.json"] * 2  # val's and test's
    recalls = [json.loads(value) for value in shown["recall_per_class"]]  # 25 numbers: printed, named
    assert [len(table) for table in recalls] == [CLASSES, CLASSES] and "class_24" in recalls[0]
    assert max(len(line) for line in out.splitlines()) < 2000
    assert main(["eval", "run", "--split", "train"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "confusion_matrix" in x)
    assert line.split(None, 1)[1] == (f"{CLASSES} x {CLASSES}, not printed: in Python, "
                                      "trainlab.run_evaluation.evaluate_run('run', 'train') returns it")


def test_a_small_matrix_is_still_printed_whole(tmp_path, monkeypatch, capsys):
    code, _ = _train(tmp_path, monkeypatch, capsys, config={**CONFIG, "metrics": ["confusion_matrix"]})
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert main(["eval", "run", "--split", "val"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "confusion_matrix" in x)
    assert json.loads(line.split(None, 1)[1]) == summary["val"]["confusion_matrix"]


@pytest.mark.parametrize("value, shown", [
    ([[0] * 21] * 21, "21 x 21, in summary.json"),
    ([[[1, 0], [0, 1]]] * 101, "101 x 2 x 2, in summary.json"),  # multi-label: one 2 x 2 matrix per label
    ([0.5] * 401, "401 values, in summary.json"),
    ([[1, 2]] + [[0] * 30] * 20, "602 values, in summary.json"),  # ragged: counted, not shaped
    ([[0] * 20] * 20, None),  # 20 x 20 (400 numbers) is printed
    ([[[1, 0], [0, 1]]] * 100, None),
    (0.5, None),
])
def test_abbreviated_metric_gives_the_shape_of_a_list_of_more_than_400_numbers(value, shown):
    from trainlab.run_summary import abbreviated_metric

    assert abbreviated_metric(value) == shown
