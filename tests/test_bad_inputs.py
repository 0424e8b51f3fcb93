"""The bad-input catalog (tests/bad_inputs/*.yaml) run through the CLI.

Each case writes its config and data files into a temp folder, runs
``trainlab.cli.main(argv)`` in-process and checks the user-facing contract:

- the exit code (2 config/usage, 3 data, 0 for the cases that must still work);
- a failure prints exactly one stderr line starting ``error:``, it is the last
  stderr line, and it holds every expected fragment;
- no ``Traceback`` anywhere;
- a failure leaves no run behind: a fresh ``--out`` folder is not created, and no
  ``summary.json`` / ``model.safetensors`` appears.

Cases marked ``subprocess: true`` also run as a real ``python -m trainlab.cli``
process, where the whole of stderr must be that one line.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.child_env import with_repo_first
from trainlab.cli import main

HERE = Path(__file__).parent
CATALOG = sorted((HERE / "bad_inputs").glob("*.yaml"))  # cases.yaml, then one file per topic
CASES: list[dict[str, Any]] = [case for file in CATALOG for case in yaml.safe_load(file.read_text())["cases"]]
REPO = HERE.parent
DELETE = "DELETE"

BASES: dict[str, dict[str, Any]] = {
    "linreg": {  # the README's reference config, cut to 2 epochs
        "name": "linreg-gd",
        "seed": 0,
        "data": {"source": "synthetic_linear", "n": 100},
        "model": {"name": "linear"},
        "strategy": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": "full", "epochs": 2},
        "metrics": ["mse", "mae", "r2"],
        "output": {"progress": "off"},
    },
    "digits": {
        "name": "digits-mlp",
        "seed": 0,
        "data": {"source": "digits"},
        "model": {"name": "mlp", "hidden": [32]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003}, "batch_size": 256,
                     "epochs": 2},
        "metrics": ["accuracy"],
        "output": {"progress": "off"},
    },
    "classify": {  # data set by the case
        "name": "classify",
        "seed": 0,
        "data": {"source": "npz"},
        "model": {"name": "linear"},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1}, "batch_size": "full",
                     "epochs": 2},
        "metrics": ["accuracy"],
        "output": {"progress": "off"},
    },
}
DEFAULT_ARGV = ["train", "{config}", "--out", "{out}", "--quiet"]


# --------------------------------------------------------------------------- building a case

def fill(value: Any, places: dict[str, str]) -> Any:
    """Replace {tmp}/{out}/{config}/{run} in every string of ``value``."""
    if isinstance(value, str):
        for key, path in places.items():
            value = value.replace("{" + key + "}", path)
        return value
    if isinstance(value, list):
        return [fill(v, places) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, places) for k, v in value.items()}
    return value


def apply_set(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {"name": node[part]} if isinstance(node.get(part), str) else {}
            node = node[part]
        if value == DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return config


def make_array(spec: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    if "objects" in spec:
        return np.array([{"row": i} for i in range(spec["objects"])], dtype=object)
    if "shape" in spec:
        array = rng.standard_normal(spec["shape"])
    elif "cycle" in spec:
        array = np.arange(spec["n"]) % spec["cycle"]
    else:
        values = np.asarray(spec["values_cycle"])
        array = values[np.arange(spec["n"]) % len(values)]
    array = array.astype(spec.get("dtype", array.dtype))
    for row, col in spec.get("nan", []):
        array[row, col] = np.nan
    for row in spec.get("inf", []):
        array[row] = np.inf
    for row, value in spec.get("put", {}).items():
        array[int(row)] = value
    return array


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, spec: dict[str, Any], rng: np.random.Generator) -> None:
    """Four valid 8x8 MNIST-style IDX files, then the case's damage (truncate/swap/remove)."""
    folder.mkdir(parents=True)
    suffix = ".gz" if spec.get("gzip") else ""
    for prefix, n in (("train", spec["n_train"]), ("t10k", spec["n_test"])):
        images = rng.integers(0, 256, size=(n, 8, 8))
        labels = np.arange(n) % 3
        for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            blob = idx_bytes(array)
            (folder / (name + suffix)).write_bytes(gzip.compress(blob) if suffix else blob)
    if "truncate" in spec:
        target = folder / spec["truncate"]
        blob = target.read_bytes()
        target.write_bytes(blob[: len(blob) // 2])
    if "swap" in spec:
        first, second = (folder / n for n in spec["swap"])
        a, b = first.read_bytes(), second.read_bytes()
        first.write_bytes(b)
        second.write_bytes(a)
    if "remove" in spec:
        (folder / spec["remove"]).unlink()


def make_file(tmp: Path, spec: dict[str, Any], rng: np.random.Generator) -> None:
    path = tmp / spec["name"]
    path.parent.mkdir(parents=True, exist_ok=True)  # names may hold folders: imgs/cat/a.png
    if "text" in spec:
        path.write_text(spec["text"])
    elif "bytes_hex" in spec:  # optionally followed by pad_zeros zero bytes, and gzip-compressed
        blob = bytes.fromhex(spec["bytes_hex"]) + bytes(spec.get("pad_zeros", 0))
        path.write_bytes(gzip.compress(blob, compresslevel=1) if spec.get("gzip") else blob)
    elif "npz" in spec:
        with open(path, "wb") as handle:
            np.savez(handle, **{name: make_array(a, rng) for name, a in spec["npz"].items()})
    elif "npy" in spec:
        with open(path, "wb") as handle:
            np.save(handle, make_array(spec["npy"], rng))
    elif "idx" in spec:
        write_idx_folder(path, spec["idx"], rng)
    else:
        raise AssertionError(f"file spec {spec} has no content")
    if "truncate" in spec and path.is_file():
        blob = path.read_bytes()
        path.write_bytes(blob[: int(len(blob) * spec["truncate"])])


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits itself on usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_setup(case: dict[str, Any], base: dict[str, Any], places: dict[str, str], capsys) -> None:
    for step in fill(case.get("setup", []), places):
        if "mkdir" in step:
            Path(step["mkdir"]).mkdir(parents=True)
        elif "write" in step:
            Path(step["write"]).parent.mkdir(parents=True, exist_ok=True)
            Path(step["write"]).write_text(step["text"])
        elif "remove" in step:
            Path(step["remove"]).unlink()
        elif "train" in step:
            config_path = Path(places["tmp"]) / "setup-config.yaml"
            config_path.write_text(yaml.safe_dump(apply_set(base, step["train"].get("set", {}))))
            code, out, err = run_cli(["train", str(config_path), "--out", places["run"], "--quiet"], capsys)
            assert code == 0, f"setup run failed: {err}"
        elif "yaml_set" in step:
            file = Path(step["yaml_set"]["file"])
            file.write_text(yaml.safe_dump(apply_set(yaml.safe_load(file.read_text()), step["yaml_set"]["set"])))
        elif "json_set" in step:
            file = Path(step["json_set"]["file"])
            file.write_text(json.dumps({**json.loads(file.read_text()), **step["json_set"]["set"]}))
        else:
            raise AssertionError(f"unknown setup step {step}")


def prepare(case: dict[str, Any], tmp_path: Path, capsys) -> tuple[list[str], Path, bool]:
    """Write the case's files and config, run its setup; return (argv, out folder, out existed)."""
    places = {"tmp": str(tmp_path), "out": str(tmp_path / "out"), "config": str(tmp_path / "config.yaml"),
              "run": str(tmp_path / "run")}
    base = BASES[case.get("base", "linreg")]
    rng = np.random.default_rng(0)
    for spec in case.get("files", []):
        make_file(tmp_path, spec, rng)
    if "config_text" in case:
        Path(places["config"]).write_text(case["config_text"])
    else:
        config = apply_set(base, fill(case.get("set", {}), places))
        Path(places["config"]).write_text(yaml.safe_dump(config, sort_keys=False))
    run_setup(case, base, places, capsys)
    out = Path(places["out"])
    return fill(case.get("argv", DEFAULT_ARGV), places), out, out.exists()


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = tmp_path; TRAINLAB_DATA_DIR unset, and restored after (--data-dir writes os.environ)."""
    monkeypatch.setenv("TRAINLAB_DATA_DIR", "")
    monkeypatch.delenv("TRAINLAB_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fragments(case: dict[str, Any]) -> list[str]:
    value = case.get("error", [])
    return [value] if isinstance(value, str) else list(value)


# --------------------------------------------------------------------------- the catalog itself

def test_catalog_is_well_formed():
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 35
    for case in CASES:
        assert case["exit"] in (0, 2, 3), case["id"]
        assert (case["exit"] == 0) == (not fragments(case)), f"{case['id']}: error fragments iff it fails"
        assert case.get("base", "linreg") in BASES, case["id"]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_input(case: dict[str, Any], clean_env: Path, capsys):
    argv, out, out_existed = prepare(case, clean_env, capsys)
    code, stdout, stderr = run_cli(argv, capsys)
    shown = f"argv={argv}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    for path in fill(case.get("must_not_exist", []), {"tmp": str(clean_env)}):
        assert not Path(path).exists(), f"{path} was created (planted code ran?)\n{shown}"

    assert "Traceback" not in stdout + stderr, shown
    assert code == case["exit"], shown
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    if case["exit"] == 0:
        assert not error_lines, shown
        if "warning" in case:
            assert case["warning"] in stderr, shown
        if "--out" in argv:
            assert (out / "summary.json").is_file() and (out / "model.safetensors").is_file(), shown
        return

    assert len(error_lines) == 1, shown
    assert stderr.rstrip("\n").splitlines()[-1] == error_lines[0], shown
    message = error_lines[0].replace(str(clean_env), "{tmp}")  # so that no fragment matches the temp path
    for fragment in fragments(case):
        assert fragment in message, f"missing {fragment!r}\n{shown}"
    assert "saved to" not in stdout, shown
    if "--out" in argv:
        if not out_existed:
            assert not out.exists(), f"a failed run created {out}\n{shown}"
        assert not (out / "summary.json").exists() and not (out / "model.safetensors").exists(), shown


SUBPROCESS_CASES = [case for case in CASES if case.get("subprocess")]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[case["id"] for case in SUBPROCESS_CASES])
def test_bad_input_end_to_end(case: dict[str, Any], clean_env: Path, capsys):
    """A real process: the exit status, and stderr is exactly the one error line."""
    argv, out, _ = prepare(case, clean_env, capsys)
    env = {k: v for k, v in os.environ.items() if k != "TRAINLAB_DATA_DIR"}
    env["PYTHONPATH"] = with_repo_first(REPO)
    result = subprocess.run([sys.executable, "-m", "trainlab.cli", *argv], capture_output=True, text=True,
                            cwd=clean_env, env=env, timeout=120)
    shown = f"argv={argv}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == case["exit"], shown
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), shown
    for fragment in fragments(case):
        assert fragment in lines[0].replace(str(clean_env), "{tmp}"), f"missing {fragment!r}\n{shown}"
    assert not out.exists(), shown
