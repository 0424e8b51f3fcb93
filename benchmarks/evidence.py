"""What every benchmark result records, and where it goes: ``benchmarks/results/<name>.json``.

A result file holds the machine (CPU model, the instruction-set flags that change speed, cores,
torch's thread count), the versions (python, torch, trainlab, and any contender's), the git commit
the code was at (with ``dirty`` when the tree had uncommitted changes), when it ran, the benchmark's
own settings and measurements, and a top-level ``"ratios"`` object mapping a label such as
``"trainlab/raw b64"`` to its median ratio (time of trainlab / time of the reference: below 1 is
faster).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import trainlab
from trainlab.runtime import cpu_model, environment

# TRAINLAB_BENCH_RESULTS moves them elsewhere (benchmarks/gpu/check.sh writes to the device tool's $OUT)
RESULTS = Path(os.environ.get("TRAINLAB_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")
# flags that decide which kernels run: native bf16 (avx512_bf16, amx_bf16), avx512, avx2, fma
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> dict[str, bool]:
    """Which of :data:`SPEED_FLAGS` the CPU reports in /proc/cpuinfo (all False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        flags = []
    return {flag: flag in flags for flag in SPEED_FLAGS}


def git_commit() -> dict[str, Any]:
    """The commit of the checkout the benchmark ran from, and whether its code had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    given = os.environ.get("TRAINLAB_GIT_COMMIT")  # benchmarks/gpu/check.sh: the copy there may hold a stale .git
    if given:
        return {"commit": given.removesuffix("-dirty"), "dirty": given.endswith("-dirty")}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        # the result files themselves do not make the code dirty
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 ":(exclude)benchmarks/results"], cwd=root,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status.strip())}


def machine(**contenders: str) -> dict[str, Any]:
    """The facts every result file starts with; ``contenders`` adds versions, e.g. ``lightning="2.6.6"``."""
    gpu = {"gpu": environment()["gpu"], "cuda": torch.version.cuda} if "gpu" in environment() else {}
    return {
        "cpu": cpu_model(),
        **gpu,
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "trainlab": trainlab.__version__, **contenders},
        "git": git_commit(),
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_result(name: str, ratios: dict[str, float], details: dict[str, Any],
                 contenders: dict[str, str] | None = None, folder: Path = RESULTS) -> Path:
    """Write ``folder/<name>.json``: the machine, ``"ratios"`` (label -> median ratio) and ``details``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    record = {"benchmark": name, **machine(**(contenders or {})),
              "ratios": {label: round(value, 4) for label, value in ratios.items()}, **details}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
