"""trainlab.loaded_run: the predictor a run folder loads as (its CLI and file paths: tests/test_inference.py)."""

from __future__ import annotations

import torch

import trainlab
import trainlab.inference
import trainlab.loaded_run
from trainlab.loaded_run import LoadedRun
from trainlab.out_of_memory import out_of_memory_line

CPU_MESSAGE = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried "
               "to allocate 1536000000 bytes. Error code 12 (Cannot allocate memory)")


class _RunsOutOfMemory(torch.nn.Module):
    """A model whose forward fails as torch's CPU allocator does."""

    def forward(self, x):
        raise RuntimeError(CPU_MESSAGE)


def test_the_package_names_the_predictor_and_the_loader_from_their_modules():
    assert trainlab.LoadedRun is LoadedRun and LoadedRun.__module__ == "trainlab.loaded_run"
    assert trainlab.load_run is trainlab.inference.load_run
    assert not hasattr(trainlab.loaded_run, "load_run")  # loading a folder is trainlab.inference's alone


def test_memory_running_out_in_a_loaded_runs_forward_pass_says_predicting(tmp_path):
    """The phase of an out-of-memory line is told by the modules on its traceback: the forward pass of
    ``run.predict`` (no trainlab.predict_command frame: the Python API) is predicting, with its advice."""
    run = LoadedRun(path=tmp_path, config=None, model=_RunsOutOfMemory(), loss=None, task="regression",
                    class_names=None, preprocessing={})
    try:
        run.predict([[1.0, 2.0]])
    except RuntimeError as exc:
        line = out_of_memory_line(exc)
    else:
        raise AssertionError("the forward pass did not run")
    assert line == ("out of memory (an allocation of 1.43 GiB failed) while predicting: predict fewer rows at a "
                    "time (split the input file)")
