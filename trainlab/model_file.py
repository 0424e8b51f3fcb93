"""A finished run's trained state: ``model.safetensors``, ``loss.safetensors``, and the SHA-256 digests
that vouch for them.

``model.safetensors`` is the model's ``state_dict`` alone (plain keys: any loader of a state_dict
reads it). A loss with learned state of its own -- parameters (``gaussian_nll`` with ``variance:
learned``, ``adaptive`` with ``learn_alpha``/``learn_scale``, ``multitask`` with ``learn_weights``)
or persistent buffers other than the config's numbers -- has it saved beside the model as
``loss.safetensors`` (:func:`loss_state`), as the run's final evaluation used it (what
``summary.json`` reports), so ``eval`` recomputes the summary's loss instead of the loss of its
initial parameters. A loss without learned state writes no file.

Checkpoints carry a manifest of digests (:mod:`trainlab.engine.checkpoint`); the final files are
vouched for by ``run.json``'s ``model_sha256`` and ``loss_sha256``, the hex SHA-256 of each file's
bytes, written after the files (run.json is the last record a run writes). :func:`read_model` and
:func:`read_loss_state` hash the bytes they load and refuse a file whose digest differs, so a flipped
byte in a float does not silently change what ``eval``, ``predict`` and ``report`` say. Runs written
before a digest existed load unchecked, and so does a run folder whose run.json is gone (with a warning
naming the file); a run written before ``loss.safetensors`` existed evaluates its loss with the loss's initial parameters, as it did
then (:func:`load_loss_state` says so once when the loss has learned parameters).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from trainlab.atomic import tensors_to_bytes, write_bytes
from trainlab.bounded_read import NotRegularFileError, regular_file_info
from trainlab.code_policy import resume_command_words
from trainlab.errors import DataError, RunDirError
from trainlab.lost_record import damaged_run_json_advice, lost_run_json, train_again
from trainlab.notices import warn
from trainlab.records import read_record_object, read_record_text
from trainlab.run_layout import RUN_FILES
from trainlab.run_lock import holder
from trainlab.shell_command import quoted_command

MODEL_FILE = "model.safetensors"
DIGEST_KEY = "model_sha256"  # in run.json
LOSS_FILE = "loss.safetensors"
LOSS_DIGEST_KEY = "loss_sha256"  # in run.json, when the run wrote LOSS_FILE


def write_model(path: str | os.PathLike[str], weights: dict[str, torch.Tensor],
                metadata: dict[str, str] | None = None) -> str:
    """Write ``weights`` atomically as safetensors at ``path``; returns the hex SHA-256 of the bytes written."""
    data = tensors_to_bytes(weights, metadata)
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def recorded_digest(run: Path, key: str = DIGEST_KEY, file: str = MODEL_FILE) -> str | None:
    """``key`` (``model_sha256``, the digest of ``file``) from ``run/run.json``; None when the run predates it
    (no run.json, or no such key).

    Raises:
        DataError: run.json is there but damaged, or its ``key`` is not a hex digest: a check that cannot
            be made is not skipped.
    """
    path = run / "run.json"
    if not path.exists():
        return None
    try:
        info = json.loads(read_record_text(path))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path} to check {file}: {exc}") from None
    except RecursionError:
        raise DataError(f"cannot read {path} to check {file}: its JSON is nested too deeply") from None
    if not isinstance(info, dict) or key not in info:
        if not isinstance(info, dict):
            raise DataError(f"cannot read {path} to check {file}: not a JSON object")
        return None
    digest = info[key]
    if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
        raise DataError(f"{path}: {key} is {digest!r}, not a SHA-256 hex digest")
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
    (it restarts from its last checkpoint, often step 0), so it is told to train again differently; a
    failed one (its training raised) would fail again until its cause is fixed, so run.json's ``error``
    is quoted before the advice to resume."""
    owner = holder(run)
    if owner is not None:
        return f"the run is still training ({owner} holds its lock): wait for it to finish"
    status, reason = recorded_status(run)
    if status == "diverged":
        return (f"the run diverged: {reason or 'a non-finite or exploding loss'}; resuming would diverge "
                "again: train it again with a lower learning rate ('trainlab lr-find'), gradient clipping "
                "(strategy.clip_grad_norm) or strategy.divergence.policy: rollback")
    if status == "finished":  # resume refuses a finished run: pointing there would send the user in a circle
        kept = sorted(path.name for path in (run / "checkpoint").glob("*") if (path / "manifest.json").is_file()) \
            if (run / "checkpoint").is_dir() else []
        ways = (["--checkpoint last (the newest step checkpoint's weights)"] if any(k.startswith("step-") for k in kept)
                else []) + (["--checkpoint best (the best evaluation's)"] if "best" in kept else [])
        checkpoints = (f"; its checkpoints still hold weights ({', '.join(kept[-3:])}): eval and predict take "
                       f"{' or '.join(ways)}") if ways else ""
        return (f"the run finished, but the file was moved or deleted since: restore it, or train the run again "
                f"with {quoted_command('trainlab', 'train', run / 'config.yaml', '--out', run, '--overwrite')}; "
                f"a comparison's run: delete its folder and run the comparison again{checkpoints}")
    if status == "failed":
        error = (read_record_object(run / "run.json") or {}).get("error")
        return (f"the run failed: {error or 'its training raised'}; fix the cause, then resume it with "
                f"{quoted_command(*resume_command_words(run))}")
    if lost_run_json(run, RUN_FILES):  # resume refuses such a folder: say what works instead
        return f"the run did not finish, and its run.json is missing, so it cannot be resumed; {train_again(run)}"
    if (run / "run.json").is_file() and read_record_object(run / "run.json") is None:  # resume refuses it too
        return f"the run did not finish, and its run.json cannot be read: {damaged_run_json_advice(run)}"
    return f"the run did not finish; try {quoted_command(*resume_command_words(run))}"


def _file_digest(path: Path) -> str:
    """SHA-256 of the file, read in 1 MiB blocks (a fine-tuned transformer is hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _read_checked(path: Path, run: Path, key: str, what: str) -> dict[str, torch.Tensor]:
    """The tensors of the safetensors file ``path`` (on the CPU), checked against run.json's ``key``.

    The file is hashed in blocks, then loaded by safetensors (memory-mapped): its bytes are never all
    in memory twice. The caller has seen that ``path`` exists.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        regular_file_info(path, follow_links=False)  # before opening: a FIFO would block, /dev/zero never end
    except (OSError, NotRegularFileError) as exc:
        raise DataError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    expected = recorded_digest(run, key, path.name)
    if expected is None and not os.path.lexists(run / "run.json"):  # a run folder that lost its record
        warn(f"{run / 'run.json'} is missing: {path} is loaded without the check of its SHA-256 that run.json "
             "records, so a damaged file would go unnoticed")
    try:
        if expected is not None and _file_digest(path) != expected:
            raise DataError(f"{path} is not {what} this run saved: its SHA-256 differs from {key} in "
                            f"{run / 'run.json'} (the file was changed or damaged after training); restore it or "
                            f"train the run again (if you replaced it on purpose, delete {key} from run.json)")
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise DataError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def read_model(run: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``run/model.safetensors`` (on the CPU), checked against run.json's digest.

    Raises:
        RunDirError: no model file: the run diverged, or did not finish (:func:`why_no_model`).
        DataError: the file is not a regular file, cannot be read, is not safetensors, or its SHA-256 is
            not the recorded one (or run.json cannot be read to check it).
    """
    path = run / MODEL_FILE
    if not os.path.lexists(path):
        raise RunDirError(f"{run} has no {MODEL_FILE} ({why_no_model(run)})")
    return _read_checked(path, run, DIGEST_KEY, "the model")


def _counted(names: list[str], what: str, detail: str = "") -> str:
    """``"6 tensors missing from the file (first '0.weight')"``: how many ``names`` there are, and the first."""
    return f"{len(names)} tensor{'s' if len(names) > 1 else ''} {what} (first '{names[0]}'{detail})"


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(size) for size in tensor.shape) or "a scalar"


def weights_mismatch(expected: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> str:
    """What keeps ``saved`` (a file's tensors) from loading into a model whose ``state_dict()`` is ``expected``,
    for each kind of misfit the first tensor and how many: ``"6 tensors missing from the file (first
    '0.weight'); 2 tensors in the file that the model has not (first 'weight')"``, ``"1 tensor of another
    shape (first '4.weight': 1x64 in the file, 3x64 in the model)"``; "" when the names and shapes all
    agree (the model refused the file for a reason of its own)."""
    missing = [name for name in expected if name not in saved]
    unexpected = [name for name in saved if name not in expected]
    misshaped = [name for name in expected if name in saved and saved[name].shape != expected[name].shape]
    problems = []
    if missing:
        problems.append(_counted(missing, "missing from the file"))
    if unexpected:
        problems.append(_counted(unexpected, "in the file that the model has not"))
    if misshaped:
        first = misshaped[0]
        problems.append(_counted(misshaped, "of another shape",
                                 f": {_shape(saved[first])} in the file, {_shape(expected[first])} in the model"))
    return "; ".join(problems)


# the file matched run.json's digest (read_model), so the model built now is what changed: the code that builds it
# or the data that sizes it (a class the run never saw: its output layer one wider), unless both files were replaced
BUILT_ANEW = ("the model built for the run now is not the one that wrote the file: its code (a module of yours, or "
              "another trainlab version) or the data that sizes it (its classes, its features) changed since the run "
              "trained, or the file was replaced; restore them as they were then, or train the run again")


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], run: Path, architecture: Path) -> None:
    """``model.load_state_dict(state)`` (``state``: :func:`read_model` of ``run``), ``model`` built from the
    file ``architecture`` (``model.json`` where the loader rebuilt it from that record, else ``config.yaml``).

    Raises:
        DataError: weights that do not fit the model: one line naming both files, the first missing,
            unexpected and mis-shaped tensor (both shapes) and how many of each (:func:`weights_mismatch`).
    """
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        found = weights_mismatch(model.state_dict(), state)
        if not found:  # the module's own check: torch's causes follow its "Error(s) in loading ..." line
            causes = [line.strip() for line in str(exc).strip().splitlines()[1:] if line.strip()]
            found = "; ".join(causes or [str(exc).strip()])[:300]
        raise DataError(f"{run / MODEL_FILE} does not fit the model built from {architecture}: {found}; {BUILT_ANEW}"
                        ) from None


# --------------------------------------------------------------------------- the loss's own state

def loss_state(loss: torch.nn.Module) -> dict[str, torch.Tensor]:
    """:func:`trainlab.losses.base.learned_state` of ``loss`` as contiguous CPU copies: what
    :func:`write_loss_state` saves; empty for a loss without learned state (most losses: no file is written)."""
    from trainlab.losses.base import learned_state

    return {name: value.to("cpu").contiguous() for name, value in learned_state(loss).items()}


def write_loss_state(path: str | os.PathLike[str], state: dict[str, torch.Tensor], loss_name: str,
                     config_hash: str) -> str:
    """Write ``state`` (:func:`loss_state`) atomically as safetensors at ``path``; returns its hex SHA-256."""
    # one metadata key: safetensors writes several in hash-map order, not byte-stable
    return write_model(path, state, metadata={"trainlab": json.dumps(
        {"format": "loss", "loss": loss_name, "config_hash": config_hash})})


def read_loss_state(run: Path) -> dict[str, torch.Tensor] | None:
    """The tensors of ``run/loss.safetensors``, checked against run.json's ``loss_sha256``; None when the
    run wrote none (a loss without state, or a run older than the file).

    Raises:
        DataError: run.json vouches for a loss file that is gone; the file cannot be read, is not
            safetensors, or its SHA-256 is not the recorded one.
    """
    path = run / LOSS_FILE
    if not os.path.lexists(path):
        if recorded_digest(run, LOSS_DIGEST_KEY, LOSS_FILE) is not None:
            raise DataError(f"{path} is missing, though {run / 'run.json'} records it (the learned state of the "
                            "run's loss); restore it or train the run again")
        return None
    return _read_checked(path, run, LOSS_DIGEST_KEY, "the loss state")


def load_loss_state(loss: torch.nn.Module, state: dict[str, torch.Tensor] | None, run: Path, config_path: Path,
                    warn: Callable[[str], None] | None = None) -> None:
    """``loss.load_state_dict(state)`` (``state``: :func:`read_loss_state` of ``run``), ``loss`` built from
    ``config_path``, as :func:`load_weights` is for the model.

    ``state`` None (no ``loss.safetensors``): ``loss`` keeps what it was built with: right for a loss
    without state, the initial parameters for a run older than the file whose loss learned some;
    ``warn`` (when given: :func:`trainlab.notices.warn`) then gets one warning's message saying its loss values are of those initial parameters.

    Raises:
        DataError: the saved state does not fit the loss ``config_path`` builds (other names or shapes).
    """
    if state is None:
        if warn is not None and any(True for _ in loss.parameters()):
            warn(f"{run} has no {LOSS_FILE}, the learned state of its loss (runs of older trainlab "
                 f"versions have none): the loss is computed with the initial parameters of "
                 f"'{getattr(loss, 'name', '?')}', so it differs from summary.json's; the other metrics are unaffected")
        return
    from trainlab.losses.base import learned_names

    expected = learned_names(loss)
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    problems = ([f"it lacks {', '.join(missing[:3])}"] if missing else []) + \
        ([f"it has {', '.join(extra[:3])}, which the loss has not"] if extra else [])
    if not problems:
        try:
            loss.load_state_dict(state, strict=False)  # strict=False: the config's numbers are not saved
        except RuntimeError as exc:  # a shape mismatch: its line is the last of torch's message
            problems.append(str(exc).strip().splitlines()[-1].strip()[:300])
    if problems:
        raise DataError(f"{run / LOSS_FILE} does not match the loss in {config_path}: {'; '.join(problems)}")
