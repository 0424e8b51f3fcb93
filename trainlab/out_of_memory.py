"""Running out of memory: how an exception is told to be that (:func:`is_out_of_memory`), and the one line
that says so (:func:`out_of_memory_line`).

Memory running out is the machine's, as a full disk is, not the config's or the data's: the CLI says it in
one line and exits 5 (trainlab.cli), a comparison lists the run as not run and trains it again
(trainlab.compare.machine_failure), a run's run.json stays ``running`` so that it resumes
(trainlab.experiment), and the test forward pass before training passes it on rather than calling it the
inputs' fault (trainlab.run_checks). All four ask :func:`is_out_of_memory`, so that they agree on what it is:

- a ``MemoryError`` (NumPy's ``Unable to allocate 7.63 MiB ...``, PIL's, Python's own);
- ``torch.OutOfMemoryError`` (CUDA's ``CUDA out of memory. Tried to allocate 2.00 GiB ...``);
- a ``RuntimeError`` in which one of torch's allocators says it failed (:data:`ALLOCATOR_FAILURES`): the CPU
  allocator's ``DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes`` (``not enough
  memory`` on Windows), MPS's and CUDA's ``... out of memory ...``.

torch is not imported here: the CLI loads this module before torch, and an exception raised before torch
was loaded is none of torch's.
"""

from __future__ import annotations

import errno
import re
import sys
import traceback

# torch's allocators say so in a RuntimeError (torch.OutOfMemoryError on CUDA is one too): its CPU allocator
# "DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes" ("not enough memory" on Windows),
# CUDA's and MPS's "... out of memory ... Tried to allocate 2.00 GiB"
ALLOCATOR_FAILURES = ("DefaultCPUAllocator: can't allocate memory", "not enough memory", "you tried to allocate",
                      "out of memory", "STATUS_ALLOC_FAILED")  # the last: cuBLAS's / cuDNN's handle on a full GPU
# the size asked for: torch's "tried to allocate 1536000000 bytes" / "Tried to allocate 2.00 GiB", NumPy's
# "Unable to allocate 7.63 MiB for an array ..." (and "728. TiB")
_ASKED = re.compile(r"(?:tried|unable) to allocate\s+(\d+(?:\.\d*)?)\s*(bytes|[KMGTPE]i?B)\b", re.IGNORECASE)
# what the command was doing, told by the modules on the failure's traceback: the first phase (in this order)
# with a frame in one of its modules says it; augmentation (trainlab.data.augment, .transforms) runs per batch
# in training and evaluation, so it names no phase of its own
_PHASES = (
    # PIL and pandas are called by trainlab.data; a DataLoader worker's failure is raised again in torch.utils.data
    ("reading the data", ("trainlab.data", "torch.utils.data")),
    ("evaluating", ("trainlab.engine.evaluation", "trainlab.engine.tta")),
    ("writing a checkpoint", ("trainlab.callbacks.checkpoint_saver",)),
    ("reading a checkpoint", ("trainlab.engine.checkpoint",)),
    ("finding the learning rate (the LR range test)", ("trainlab.lr_finder", "trainlab.lr_find_run")),
    # the forward pass on a first batch before training (trainlab.run_checks, called by trainlab.time_budget)
    ("testing the model on a first batch", ("trainlab.run_checks",)),
    ("training", ("trainlab.engine", "trainlab.callbacks", "trainlab.time_budget")),
    ("predicting", ("trainlab.inference", "trainlab.loaded_run", "trainlab.predict_command")),
    ("building the model", ("trainlab.models",)),  # a forward pass in a later phase names that phase
    ("preparing the run", ("trainlab.builders",)),
)
_PER_BATCH = ("trainlab.data.augment", "trainlab.data.transforms")
_ADVICE = {  # what to make smaller, by phase
    "reading the data": "the data does not fit in this machine's memory: for images, a smaller data.size (and "
                        "fewer data.workers, which decode side by side); for a table, fewer rows or columns "
                        "(data.features)",
    "evaluating": "evaluation's batches are of a fixed size, not strategy.batch_size: use a smaller model or, for "
                  "large images, a smaller data.size (for long texts, data.max_length)",
    "writing a checkpoint": "a checkpoint copies the model's and the optimizer's state: use a smaller model",
    "reading a checkpoint": "a checkpoint holds the model's and the optimizer's state: resume on a machine with "
                            "more memory",
    "finding the learning rate (the LR range test)": "lower strategy.batch_size or use a smaller model",
    "training": "lower strategy.batch_size or use a smaller model (for large images, a smaller data.size; for long "
                "texts, data.max_length)",
    "predicting": "predict fewer rows at a time (split the input file)",
    "testing the model on a first batch": "its forward pass without gradients on at most 64 rows (fewer where "
                                          "strategy.batch_size is smaller) did not fit, and training needs more: "
                                          "use a smaller model or, for large images, a smaller data.size (for long "
                                          "texts, data.max_length)",
    "building the model": "use a smaller model or, for large images, a smaller data.size (for long texts, "
                          "data.max_length; the model is sized by its inputs)",
    None: "lower strategy.batch_size, use a smaller model, a smaller data.size for large images (data.max_length "
          "for long texts), or fewer data.workers",
}


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that memory ran out: a MemoryError (NumPy's, PIL's, Python's),
    torch.OutOfMemoryError, or a RuntimeError saying that one of torch's allocators failed
    (:data:`ALLOCATOR_FAILURES`), or an OSError of ``ENOMEM`` (a fork or mmap with no memory left: a data
    loader's worker)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    torch = sys.modules.get("torch")  # not imported for this: a failure before torch was loaded is no torch's
    if isinstance(exc, MemoryError | getattr(torch, "OutOfMemoryError", MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(text in str(exc) for text in ALLOCATOR_FAILURES)


def _binary_size(count: int) -> str:
    """``1536000000`` -> ``1.43 GiB``: a byte count as NumPy and torch write sizes."""
    size, unit = float(count), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            break
        size /= 1024
    return f"{count} bytes" if unit == "bytes" else f"{size:.2f} {unit}"


def _asked(exc: BaseException) -> str | None:
    """The size the failed allocation asked for (``1.43 GiB``), as the message of ``exc`` says it; None when it
    says none (PIL's and Python's MemoryError say nothing)."""
    found = _ASKED.search(str(exc))
    if found is None:
        return None
    number, unit = found.groups()
    return _binary_size(int(number)) if unit.lower() == "bytes" else f"{number.rstrip('.')} {unit}"


def _phase(exc: BaseException) -> str | None:
    """What the command was doing when ``exc`` was raised (:data:`_PHASES`), from the modules of its traceback's
    frames; None when none of them tells (a model factory of the user's, a command's own code)."""
    modules = [str(frame.f_globals.get("__name__", "")) for frame, _ in traceback.walk_tb(exc.__traceback__)]
    modules = [name for name in modules if not name.startswith(_PER_BATCH)]
    for phase, prefixes in _PHASES:
        if any(name == prefix or name.startswith(prefix + ".") for name in modules for prefix in prefixes):
            return phase
    return None


def out_of_memory_line(exc: BaseException) -> str | None:
    """The ``error:`` line's text for ``exc`` when memory ran out (:func:`is_out_of_memory`), else None:
    ``out of memory (an allocation of 1.43 GiB failed) while training: lower strategy.batch_size ...``, what was
    asked for where the message says it, the phase where the traceback tells it (:func:`_phase`), and what to
    make smaller for that phase (:data:`_ADVICE`). A MemoryError whose message gives no size is quoted."""
    if not is_out_of_memory(exc):
        return None
    gpu = any(device in str(exc) for device in ("CUDA", "MPS", "GPU")) and not isinstance(exc, MemoryError)
    asked = _asked(exc)
    if asked is not None:
        what = f" (an allocation of {asked} failed)"
    else:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        what = f" (MemoryError: {first})" if first and isinstance(exc, MemoryError) else ""
    phase = _phase(exc)
    advice = _ADVICE.get(phase, _ADVICE[None])
    return f"out of {'GPU ' if gpu else ''}memory{what}{f' while {phase}' if phase else ''}: {advice}"
