"""Where and how a run executes: seeding, device and precision resolution, hardware facts."""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import random
import shutil
from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np
import torch

from trainlab.errors import ConfigError
from trainlab.notices import warn

# Modules that draw from a global RNG when first imported: rich.style takes random.getrandbits(24) for its style
# ids. They arrive lazily (sklearn.datasets imports rich, as the progress bar does), so imported after the seeding
# their draw consumes the run's seeded Python RNG, and the rng.python a checkpoint holds would depend on what the
# process imported before the run (compare's workers run one run after another), not on the run.
DRAW_WHEN_IMPORTED = ("rich.style",)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) RNGs, after importing :data:`DRAW_WHEN_IMPORTED` (their
    draw comes before the seeding, so the seeded states are the same in every process)."""
    for module in DRAW_WHEN_IMPORTED:
        importlib.import_module(module)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def process_rng_states(cuda: bool | None = None) -> tuple[Any, ...]:
    """(python, numpy, torch CPU, CUDA or None) RNG states of the process; ``cuda`` None: CUDA's when it is
    already initialised, True: also when it is not yet (a run about to start it)."""
    with_cuda = torch.cuda.is_initialized() if cuda is None else cuda and torch.cuda.is_available()
    return (random.getstate(), np.random.get_state(), torch.get_rng_state(),
            torch.cuda.get_rng_state_all() if with_cuda else None)


def set_process_rng_states(states: tuple[Any, ...]) -> None:
    """Put back what :func:`process_rng_states` returned."""
    python_rng, numpy_rng, torch_rng, cuda_rng = states
    random.setstate(python_rng)
    np.random.set_state(numpy_rng)
    torch.set_rng_state(torch_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state_all(cuda_rng)


@contextlib.contextmanager
def rng_states_kept() -> Iterator[None]:
    """The process's RNG states (:func:`process_rng_states`) as they were before the block, after it: for
    third-party code that reseeds or draws from the global RNGs as a side effect."""
    states = process_rng_states()
    try:
        yield
    finally:
        set_process_rng_states(states)


# cuBLAS's deterministic workspace (NVIDIA's cuBLAS docs, "Results reproducibility"): ":16:8" also works, slower
CUBLAS_WORKSPACE_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_WORKSPACE = ":4096:8"


# torch's RuntimeError for an op without a deterministic kernel: "<op> does not have a deterministic ..."
NO_DETERMINISTIC_KERNEL = " does not have a deterministic implementation"


def op_without_deterministic_kernel(exc: BaseException) -> str | None:
    """The op named by torch's error for an op with no deterministic kernel (raised under
    ``torch.use_deterministic_algorithms(True)``), or None for any other exception."""
    op, found, _ = str(exc).partition(NO_DETERMINISTIC_KERNEL)
    return op.strip().splitlines()[-1] if found and op.strip() and isinstance(exc, RuntimeError) else None


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """``runtime.deterministic``: with ``enabled``, deterministic kernels for the block, the previous settings
    after it; without, nothing is touched.

    Inside the block ``torch.use_deterministic_algorithms(True)`` (an op with no deterministic kernel
    raises instead of running: torch's RuntimeError becomes one ConfigError naming the op and this
    setting), ``torch.backends.cudnn.deterministic = True``, ``torch.backends.cudnn.benchmark =
    False`` (benchmarking may pick another convolution kernel per run), and :data:`CUBLAS_WORKSPACE_ENV` is
    :data:`CUBLAS_WORKSPACE` where the environment does not set it already. cuBLAS reads that variable when the
    process first uses CUDA: set here it takes effect when the block comes before that first use (the CLI runs
    one run per process); a process that used CUDA before needs it set in its environment at start. Afterwards
    the deterministic-algorithms mode (and its warn_only), both cuDNN flags and the variable are as they were
    (the variable removed again if it was set here)."""
    if not enabled:
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    set_workspace = CUBLAS_WORKSPACE_ENV not in os.environ
    if set_workspace:
        os.environ[CUBLAS_WORKSPACE_ENV] = CUBLAS_WORKSPACE
        if torch.cuda.is_initialized():  # cuBLAS may have read the variable already: matmuls not pinned, no error
            warn(f"runtime.deterministic: this process used CUDA before the run, so {CUBLAS_WORKSPACE_ENV} set now "
                 f"may not reach cuBLAS and its matmuls may differ between runs; set {CUBLAS_WORKSPACE_ENV}="
                 f"{CUBLAS_WORKSPACE} in the environment before the process starts")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    except RuntimeError as exc:
        op = op_without_deterministic_kernel(exc)
        if op is None:  # another failure
            raise
        raise ConfigError(f"runtime.deterministic is true, but {op} has no deterministic implementation on this "
                          "device; set runtime.deterministic: false to run it (results may then differ slightly "
                          "between runs; a run folder stopped by this resumes once its config.yaml says so)") from exc
    finally:
        mode, warn_only, cudnn_deterministic, cudnn_benchmark = previous
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_deterministic
        torch.backends.cudnn.benchmark = cudnn_benchmark
        if set_workspace:
            os.environ.pop(CUBLAS_WORKSPACE_ENV, None)


def resolve_device(name: str, setting: str = "runtime.device") -> torch.device:
    """``auto``: CUDA when present, else CPU; a device this machine lacks, or no device name, is a
    ConfigError naming ``setting``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{setting} is {name!r}, not a device (valid: 'auto', 'cpu', 'cuda', 'cuda:1', "
                          "'mps')") from None
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if device.type in available and not available[device.type]():
        what = "CUDA device" if device.type == "cuda" else "Apple MPS device (or this torch has no MPS support)"
        raise ConfigError(f"{setting} is '{name}' but no {what} is available (use 'auto' or 'cpu')")
    return device


def to_device_async(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``; a CPU tensor goes to a GPU through pinned memory without blocking:
    ``.to("cuda")`` of a pageable tensor synchronises the stream (waits for every queued kernel), which would
    stall the host where it should queue the next kernels ahead (crop offsets and flip masks drawn on the CPU
    per batch, an epoch's data order). The caching host allocator keeps the pinned block until the copy ran."""
    if device.type != "cuda" or tensor.device.type != "cpu":  # pinning is for CPU tensors only
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def cores() -> int:
    """The CPU cores this process may run on (its affinity, where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_worker(jobs: int) -> int:
    """torch threads for each of ``jobs`` worker processes on this machine: the cores shared out, at least 1
    (every worker at torch's default of all cores oversubscribes them: 6x slower trials on 2 cores)."""
    return max(1, cores() // jobs)


@cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_has_flag(*names: str) -> bool:
    """Whether /proc/cpuinfo lists any of these CPU flags (False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return any(name in flags for name in names)


@cache
def cpu_has_native_bf16() -> bool:
    """True on CPUs with avx512_bf16 / amx_bf16 (e.g. Zen 4, Sapphire Rapids): bf16 matmuls beat fp32."""
    return _cpu_has_flag("avx512_bf16", "amx_bf16")


def check_compile_toolchain(device: torch.device) -> None:
    """``runtime.compile`` on a CPU needs a C++ compiler: Inductor writes C++ kernels and builds them."""
    if device.type == "cpu" and not any(shutil.which(name) for name in ("g++", "c++", "clang++")):
        raise ConfigError("runtime.compile: true needs a C++ compiler on a CPU (torch.compile builds C++ "
                          "kernels) and none of g++, c++, clang++ is on PATH; install one (apt-get install g++) "
                          "or set runtime.compile: false")


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto``: bf16 where the hardware runs it natively (a CUDA GPU of compute capability 8.0 or later: on
    older ones torch emulates bf16, and they get fp16; CPUs with avx512_bf16/amx_bf16), else fp32."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported(including_emulation=False) else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def emulated_precision_warning(precision: str, device: torch.device) -> str | None:
    """The warning's message (:func:`trainlab.notices.warn`) when ``precision`` runs slowly on this CPU: bf16
    without avx512_bf16/amx_bf16 (emulated: an airbench step ~20x slower on a 2-core EPYC), and fp16 on every
    CPU: torch 2.13's CPU backward of fp16 convolutions is emulated even with avx512_fp16 and AMX (a conv
    block's step 120x slower than fp32 on a Xeon that has both, where bf16 ran 2x faster)."""
    if device.type != "cpu" or precision == "fp32":
        return None
    if precision == "bf16" and cpu_has_native_bf16():
        return None
    auto = f"runtime.precision: auto picks {resolve_precision('auto', device)} here"
    if precision == "fp16":
        return (f"runtime.precision=fp16 on a CPU ({cpu_model()}): torch trains fp16 emulated on CPUs, often "
                f"many times slower than fp32 ({auto})")
    return (f"runtime.precision={precision} on a CPU without native {precision} ({cpu_model()}): "
            f"it is emulated, often many times slower than fp32 ({auto})")


def environment() -> dict[str, object]:
    """Facts recorded in every summary and benchmark."""
    facts: dict[str, object] = {
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "native_bf16": cpu_has_native_bf16(),
        "cores": os.cpu_count(),
    }
    try:
        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
    except RuntimeError:  # a process forked after its parent used CUDA cannot query it (and runs on the CPU)
        pass
    return facts
