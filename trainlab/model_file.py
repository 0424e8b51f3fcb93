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
from trainlab.bounded_read import NotRegularFileError, regular_file_info
from trainlab.errors import DataError, RunDirError
from trainlab.records import read_record_object, read_record_text

MODEL_FILE = "model.safetensors"
DIGEST_KEY = "model_sha256"  # in run.json


def write_model(path: str | os.PathLike[str], weights: dict[str, torch.Tensor],
                metadata: dict[str, str] | None = None) -> str:
    """Write ``weights`` atomically as safetensors at ``path``; returns the hex SHA-256 of the bytes written."""
    data = tensors_to_bytes(weights, metadata)
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def recorded_digest(run: Path) -> str | None:
    """``model_sha256`` from ``run/run.json``; None when the run predates it (no run.json, or no such key).

    Raises:
        DataError: run.json is there but damaged, or its ``model_sha256`` is not a hex digest: a check
            that cannot be made is not skipped.
    """
    path = run / "run.json"
    if not path.exists():
        return None
    try:
        info = json.loads(read_record_text(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} to check {MODEL_FILE}: {exc}") from None
    except RecursionError:
        raise DataError(f"cannot read {path} to check {MODEL_FILE}: its JSON is nested too deeply") from None
    if not isinstance(info, dict) or DIGEST_KEY not in info:
        if not isinstance(info, dict):
            raise DataError(f"cannot read {path} to check {MODEL_FILE}: not a JSON object")
        return None
    digest = info[DIGEST_KEY]
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise DataError(f"{path}: {DIGEST_KEY} is {digest!r}, not a SHA-256 hex digest")
    return digest


def recorded_status(run: Path) -> tuple[str | None, str | None]:
    """(run.json's ``status``, summary.json's ``reason``); None for what is missing or unreadable."""
    found: list[str | None] = []
    for name, key in (("run.json", "status"), ("summary.json", "reason")):
        value = (read_record_object(run / name) or {}).get(key)
        found.append(value if isinstance(value, str) and value else None)
    return found[0], found[1]


def why_no_model(run: Path) -> str:
    """Why ``run`` has no model file, and what to do: a diverged run would diverge again on resume
    (it restarts from its last checkpoint, often step 0), so it is told to train again differently."""
    status, reason = recorded_status(run)
    if status == "diverged":
        return (f"the run diverged: {reason or 'a non-finite or exploding loss'}; resuming would diverge "
                "again: train it again with a lower learning rate ('trainlab lr-find'), gradient clipping "
                "(strategy.clip_grad_norm) or strategy.divergence.policy: rollback")
    return f"the run did not finish; try 'trainlab resume {run}'"


def _file_digest(path: Path) -> str:
    """SHA-256 of the file, read in 1 MiB blocks (a fine-tuned transformer is hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_model(run: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``run/model.safetensors`` (on the CPU), checked against run.json's digest.

    The file is hashed in blocks, then loaded by safetensors (memory-mapped): its bytes are never all
    in memory twice.

    Raises:
        RunDirError: no model file: the run diverged, or did not finish (:func:`why_no_model`).
        DataError: the file is not a regular file, cannot be read, is not safetensors, or its SHA-256 is
            not the recorded one (or run.json cannot be read to check it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = run / MODEL_FILE
    try:
        regular_file_info(path, follow_links=False)  # before opening: a FIFO would block, /dev/zero never end
    except FileNotFoundError:
        raise RunDirError(f"{run} has no {MODEL_FILE} ({why_no_model(run)})") from None
    except (OSError, NotRegularFileError) as exc:
        raise DataError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    expected = recorded_digest(run)
    try:
        if expected is not None and _file_digest(path) != expected:
            raise DataError(f"{path} is not the model this run saved: its SHA-256 differs from {DIGEST_KEY} in "
                            f"{run / 'run.json'} (the file was changed or damaged after training); restore it or "
                            f"train the run again (if you replaced the weights on purpose, delete {DIGEST_KEY} from "
                            "run.json)")
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise DataError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], run: Path, config_path: Path) -> None:
    """``model.load_state_dict(state)`` (``state``: :func:`read_model` of ``run``); weights of another
    shape than the model ``config_path`` builds are one DataError naming both files."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"{run / MODEL_FILE} does not match the model in {config_path}: "
                        f"{str(exc).strip().splitlines()[0][:300]}") from None
