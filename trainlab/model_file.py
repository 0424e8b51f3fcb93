"""A finished run's ``model.safetensors`` and the SHA-256 digest that vouches for it.

Checkpoints carry a manifest of digests (:mod:`trainlab.engine.checkpoint`); the final model is
vouched for by ``run.json``'s ``model_sha256``, the hex SHA-256 of the file's bytes, written after
the model file (run.json is the last record a run writes). :func:`read_model` hashes the bytes it
loads and refuses a file whose digest differs, so a flipped byte in a float does not silently change
what ``eval``, ``predict`` and ``report`` say. Runs written before the digest existed, and
``trainlab.fit`` records (no run.json), load unchecked.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from trainlab.atomic import tensors_to_bytes, write_bytes
from trainlab.bounded_read import NotRegularFileError, read_regular_file
from trainlab.errors import DataError, RunDirError
from trainlab.records import read_record_text

MODEL_FILE = "model.safetensors"
DIGEST_KEY = "model_sha256"  # in run.json


def write_model(path: str | os.PathLike[str], weights: dict[str, torch.Tensor],
                metadata: dict[str, str] | None = None) -> str:
    """Write ``weights`` atomically as safetensors at ``path``; returns the hex SHA-256 of the bytes written."""
    data = tensors_to_bytes(weights, metadata)
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def recorded_digest(run: Path) -> str | None:
    """``model_sha256`` from ``run/run.json``; None when the run (or its run.json) predates it or is unreadable
    (a damaged run.json is reported by whatever reads the run's status)."""
    try:
        info = json.loads(read_record_text(run / "run.json"))
    except (OSError, ValueError):
        return None
    digest = info.get(DIGEST_KEY) if isinstance(info, dict) else None
    return digest if isinstance(digest, str) else None


def read_model(run: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``run/model.safetensors`` (on the CPU), checked against run.json's digest.

    Raises:
        RunDirError: no model file (the run did not finish).
        DataError: the file cannot be read, is not safetensors, or its SHA-256 is not the recorded one.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = run / MODEL_FILE
    try:
        data = read_regular_file(path)
    except FileNotFoundError:
        raise RunDirError(f"{run} has no {MODEL_FILE} (the run did not finish; try 'trainlab resume {run}')") from None
    except NotRegularFileError:
        raise DataError(f"{path} is not a regular file") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    expected = recorded_digest(run)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise DataError(f"{path} is not the model this run saved: its SHA-256 differs from {DIGEST_KEY} in "
                        f"{run / 'run.json'} (the file was changed or damaged after training); restore it or "
                        f"train the run again (if you replaced the weights on purpose, delete {DIGEST_KEY} from run.json)")
    try:
        return load(data)
    except SafetensorError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
