"""The run folder's modules after trainlab/experiment.py was split: training (trainlab.experiment), resuming
(trainlab.run_resume) and evaluating (trainlab.run_evaluation) a run folder.

- Every Python call trainlab names to the user, in a message, a docstring or docs/*.md
  (``trainlab.run_resume.resume('RUN', callbacks=[...])``, ``trainlab.run_evaluation.evaluate_run(...)``), is
  one that exists: resolved by importing it, not by reading trainlab's own list of names.
- ``train(..., resume_if_exists=True)`` continues through :func:`trainlab.run_resume.resume`, the name that a
  test patching resume must patch.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest

import trainlab.run_resume as run_resume
from tests.conftest import DIGITS_MLP
from trainlab.experiment import train

ROOT = Path(__file__).resolve().parents[1]
NAMED_CALL = re.compile(r"\btrainlab((?:\.[A-Za-z_]\w*)+)\(")  # trainlab.run_resume.resume( ...


def _resolve(dotted: str) -> object:
    """The object ``trainlab<dotted>`` names: the longest importable module prefix, then attributes."""
    parts = dotted.lstrip(".").split(".")
    for split in range(len(parts), -1, -1):
        try:
            obj = importlib.import_module(".".join(["trainlab", *parts[:split]]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)  # AttributeError: the name is stale
        return obj
    raise ModuleNotFoundError(dotted)


def _named_calls() -> dict[str, list[str]]:
    """Each ``trainlab.X.Y(`` in trainlab's source and docs/*.md, with the files that name it."""
    files = [*sorted((ROOT / "trainlab").rglob("*.py")), *sorted((ROOT / "docs").glob("*.md"))]
    named: dict[str, list[str]] = {}
    for file in files:
        for match in NAMED_CALL.finditer(file.read_text(encoding="utf-8")):
            named.setdefault(match.group(1), []).append(str(file.relative_to(ROOT)))
    return named


def test_the_scan_finds_the_calls_the_messages_name():
    named = _named_calls()
    assert ".run_resume.resume" in named and ".run_evaluation.evaluate_run" in named, sorted(named)


def test_every_python_call_trainlab_names_exists():
    stale = {}
    for dotted, files in _named_calls().items():
        try:
            if not callable(_resolve(dotted)):
                stale[dotted] = files
        except (ImportError, AttributeError):
            stale[dotted] = files
    assert stale == {}


def test_train_resume_if_exists_continues_through_run_resume(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "running"}))
    calls = []

    def resume(path, quiet=False, callbacks=(), config=None):
        calls.append((Path(path), quiet, list(callbacks), config.name))
        return {"status": "resumed"}, Path(path)

    monkeypatch.setattr(run_resume, "resume", resume)
    summary, path = train({**DIGITS_MLP, "name": "wired"}, out=run, quiet=True, resume_if_exists=True)
    assert (summary, path) == ({"status": "resumed"}, run)
    assert calls == [(run, True, [], "wired")]


@pytest.mark.parametrize("name", ["resume", "evaluate_run"])
def test_the_moved_functions_are_reached_from_experiment_with_a_deprecation_warning(name):
    """The README named ``trainlab.experiment.resume``: code written from it still runs, told where the function
    lives now; the module holds no copy (a test patching ``trainlab.experiment.<name>`` would patch nothing)."""
    experiment = importlib.import_module("trainlab.experiment")
    assert name not in vars(experiment)
    moved = importlib.import_module({"resume": "trainlab.run_resume", "evaluate_run": "trainlab.run_evaluation"}[name])
    with pytest.warns(DeprecationWarning, match=f"moved to {moved.__name__}.{name}"):
        assert getattr(experiment, name) is getattr(moved, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        experiment.nothing_here  # noqa: B018
