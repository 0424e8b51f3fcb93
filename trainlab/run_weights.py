"""Which weights of a run to load: its final ``model.safetensors`` (and ``loss.safetensors``), or one of its
checkpoints (``--checkpoint best``, ``last``, ``step-000000120``), as the run's own evaluation used them.

:func:`read_trained_state` reads them (:class:`TrainedState`), :func:`load_trained_state` loads them into a
model and loss built from the run's records; :func:`checkpoint_folder` resolves a checkpoint's name and
:func:`checkpoint_state` reads its weights (a mid-epoch checkpoint of an averaged run: the averaged ones);
:func:`checkpoint_of_run` and :func:`checkpoint_given_as_run` tell a checkpoint folder given where a run folder
goes, with the commands that use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainlab.errors import ConfigError, DataError
from trainlab.shell_command import quoted_command

LAST = "last"  # --checkpoint last: the newest step-* checkpoint (Lightning's ckpt_path="last")
CHECKPOINTS_LISTED = 11  # names a bad --checkpoint's error lists (best/ and the ten newest; keep_last: all keeps more)
CHECKPOINT_CHOICES = ("best (the best evaluation by the monitored metric), last (the newest step-* checkpoint) or a "
                      "checkpoint folder's name (step-000000120, or its step number 120)")


@dataclass(frozen=True)
class TrainedState:
    """The state a run's model and loss are loaded with: ``model.safetensors`` and ``loss.safetensors`` (checked
    against run.json's digests), or one checkpoint's (``checkpoint/<name>/``, checked against its manifest).

    Attributes:
        model: the model's ``state_dict``, as the run's evaluation used it.
        loss: the loss's learned state (a learned variance, alpha...); None when there is none to load.
        source: the file or checkpoint folder it was read from (what errors name).
        checkpoint: the checkpoint folder's name (``best``, ``step-000000120``); None for ``model.safetensors``.
        step: the optimizer step the checkpoint was written at (None for ``model.safetensors``).
    """

    model: dict[str, torch.Tensor]
    loss: dict[str, torch.Tensor] | None
    source: Path
    checkpoint: str | None = None
    step: int | None = None


def read_trained_state(run: Path, checkpoint: str | None = None) -> TrainedState:
    """The weights to load for run folder ``run``: its final ``model.safetensors`` (and ``loss.safetensors``),
    or with ``checkpoint`` those of :func:`checkpoint_folder` ``(run, checkpoint)`` (:func:`checkpoint_state`).

    Raises:
        ConfigError: ``checkpoint`` names no checkpoint of the run (the line lists those it has).
        RunDirError, DataError: as :func:`trainlab.model_file.read_model`; a checkpoint that does not verify.
    """
    from trainlab.model_file import MODEL_FILE, read_loss_state, read_model

    if checkpoint is not None:
        return checkpoint_state(checkpoint_folder(run, checkpoint))
    return TrainedState(read_model(run), read_loss_state(run), run / MODEL_FILE)


def load_trained_state(model: torch.nn.Module, loss: Any, trained: TrainedState, run: Path, architecture: Path,
                       config_path: Path, warn: Callable[[str], None] | None = None) -> None:
    """Load ``trained`` into ``model``, built from the file ``architecture`` (``model.json`` or ``config.yaml``),
    and into ``loss``, built from ``config_path``; ``warn`` as :func:`trainlab.model_file.load_loss_state`
    takes it (said of a run older than ``loss.safetensors``).

    Raises:
        DataError: weights that do not fit the model (one line naming the file or checkpoint, and the first
            missing, unexpected and mis-shaped tensors: :func:`trainlab.model_file.weights_mismatch`).
    """
    from trainlab.model_file import BUILT_ANEW, load_loss_state, load_weights, weights_mismatch

    if trained.checkpoint is None:
        load_weights(model, trained.model, run, architecture)
        load_loss_state(loss, trained.loss, run, config_path, warn=warn)
        return
    try:
        model.load_state_dict(trained.model)
    except RuntimeError as exc:
        found = weights_mismatch(model.state_dict(), trained.model) or str(exc).strip().splitlines()[-1][:300]
        raise DataError(f"checkpoint {trained.source} does not fit the model built from {architecture}: {found}; "
                        f"{BUILT_ANEW.replace('the file', 'the checkpoint')}") from None
    if isinstance(loss, torch.nn.Module) and trained.loss:
        from trainlab.losses.base import learned_names

        learned = learned_names(loss)  # the config's numbers (class weights...) are rebuilt, not loaded
        loss.load_state_dict({k: v for k, v in trained.loss.items() if k in learned}, strict=False)


def checkpoint_folder(run: Path, name: str) -> Path:
    """The folder of checkpoint ``name`` in ``run/checkpoint/``: ``best`` (``best/``, the best evaluation by
    the monitored metric, written with ``output.checkpoint.every_n_epochs``), ``last`` (the newest ``step-*``),
    a folder's name (``step-000000120``) or its step number (``120``, ``step-120``).

    Raises:
        ConfigError: no such checkpoint: one line listing those the run keeps (did-you-mean where one is close).
    """
    from trainlab.engine import checkpoint as checkpoints

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"checkpoint must be the name of one of the run's checkpoints, {CHECKPOINT_CHOICES}; "
                          f"got {name!r}")
    root = run / "checkpoint"
    steps = checkpoints.step_folders(root)
    kept = [*([checkpoints.BEST] if (root / checkpoints.BEST).is_dir() else []), *(p.name for p in steps)]
    wanted = name.strip()
    if wanted == LAST and steps:
        _warn_if_last_is_behind(run, steps[0])
        return steps[0]
    number = wanted.removeprefix("step-")
    if number.isdigit():  # 120 and step-120 name step-000000120, as the docs write step-N
        wanted = checkpoints.folder_name(int(number))
    if wanted in kept:
        if wanted == checkpoints.BEST:
            _warn_if_best_is_stale(run, root / wanted)
        return root / wanted
    if not kept and not (run / "model.safetensors").is_file():  # it ended before a checkpoint and has no model
        raise ConfigError(f"run {run} keeps no checkpoints, so there is no checkpoint '{name}': it ended before "
                          "writing one and has no model.safetensors either (a diverged or stopped run); leave the "
                          "checkpoint out for why")
    if not kept:
        raise ConfigError(f"run {run} keeps no checkpoints, so there is no checkpoint '{name}' (a finished run keeps "
                          "best/ and its newest step-* with output.checkpoint.keep_after_finish: last, the default, "
                          "none with none; best/ is written only with output.checkpoint.every_n_epochs); leave the "
                          "checkpoint out to use its final model.safetensors")
    listed = ", ".join(kept[:CHECKPOINTS_LISTED]) + (f", ... ({len(kept)} in all)" if len(kept) > CHECKPOINTS_LISTED
                                                      else "")
    why = (" (best/ is written only with output.checkpoint.every_n_epochs)" if wanted == checkpoints.BEST else "")
    from trainlab.registry import did_you_mean

    raise ConfigError(f"run {run} has no checkpoint '{name}'{why}; its checkpoints: {listed}"
                      f"{'' if not steps else f' ({LAST}: {steps[0].name})'}{did_you_mean(name, [*kept, LAST])}")


def _warn_if_last_is_behind(run: Path, newest: Path) -> None:
    """One warning when the newest ``step-*`` of a finished run is not the step it ended at: its later
    checkpoints were not written (a full disk: summary.json's ``checkpoint_failed`` events), so ``last`` is not
    "the weights training ended with" (docs); those are model.safetensors."""
    from trainlab.engine.checkpoint import folder_step
    from trainlab.notices import warn
    from trainlab.records import read_record_object

    summary = read_record_object(run / "summary.json") or {}
    ended, step = summary.get("steps"), folder_step(newest)
    if summary.get("status") != "finished" or not isinstance(ended, int) or isinstance(ended, bool) or ended <= step:
        return
    failed = _failed_checkpoint_events(summary, best=False)
    why = ("its later checkpoints were not written (summary.json: checkpoint_failed)" if failed
           else "its later checkpoints are not kept")
    warn(f"checkpoint 'last' of {run} is {newest.name}, {ended - step} step(s) before the run ended at step {ended}: "
         f"{why}; the weights training ended with are model.safetensors (leave the checkpoint out)")


def _failed_checkpoint_events(summary: dict, best: bool) -> list[dict]:
    """summary.json's ``checkpoint_failed`` events of ``best/`` (``best``) or of step checkpoints; none where its
    ``events`` is no list (a damaged summary)."""
    events = summary.get("events")
    return [event for event in events if isinstance(event, dict) and event.get("event") == "checkpoint_failed"
            and (event.get("checkpoint") == "best") == best] if isinstance(events, list) else []


def _warn_if_best_is_stale(run: Path, best: Path) -> None:
    """One warning when the run could not write a ``best/`` better than the one it holds (a full disk:
    summary.json's ``checkpoint_failed`` events of ``"checkpoint": "best"``, each keeping the best value it
    lost and its step): ``best`` is then not the run's best evaluation, which the docs call it. An event
    without its value (an earlier trainlab's) counts where it came after the step ``best/`` holds."""
    from trainlab.callbacks.monitor import is_improvement
    from trainlab.metrics import monitor_mode
    from trainlab.notices import warn
    from trainlab.records import is_finite_number, read_record_object

    manifest = read_record_object(best / "manifest.json") or {}
    held = manifest.get("step")
    if not isinstance(held, int) or isinstance(held, bool):
        return
    lost = []
    for event in _failed_checkpoint_events(read_record_object(run / "summary.json") or {}, best=True):
        monitor, value = event.get("monitor"), event.get("best_value")
        kept = manifest.get(monitor) if isinstance(monitor, str) else None
        if is_finite_number(value) and is_finite_number(kept):
            mode = event.get("mode") if event.get("mode") in ("min", "max") else monitor_mode(monitor)
            if is_improvement(float(value), float(kept), mode):
                lost.append((event.get("best_step"), event))
        elif isinstance(event.get("last_step"), int) and event["last_step"] > held:
            lost.append((event["last_step"], event))
    if lost:
        step, event = lost[-1]
        warn(f"checkpoint 'best' of {run} holds step {held}, not the run's best evaluation: a better one at step "
             f"{step} was not written ({event.get('error')}; summary.json: checkpoint_failed); the weights "
             "training ended with are model.safetensors (leave the checkpoint out)")


def checkpoint_state(folder: Path) -> TrainedState:
    """The model's and the loss's state in checkpoint ``folder`` as the run's evaluation at that step used them.

    A checkpoint holds the step's state as training left it (``parts.step.*`` of its tensors): ``best/`` and an
    epoch's checkpoint are written after a validation, in evaluation mode, so its ``model`` is what was
    evaluated; a checkpoint of a mid-epoch step (``every_n_steps``, ``every_seconds``, a signal) is in training
    mode, where a run with ``strategy.weight_averaging`` holds the raw weights in ``model`` and the averaged ones
    its evaluation uses in ``weight_averaging.shadow``: those replace the floating-point entries
    (:func:`trainlab.engine.weight_averaging.averaged_entries`; integer buffers stay the live ones), as
    ``AveragedStep.set_mode(training=False)`` swaps them in.

    Raises:
        DataError: the checkpoint does not verify (:func:`trainlab.engine.checkpoint.load`), holds no single
            model's weights (a custom step's), or is a schedule-free optimizer's training point, whose
            evaluation weights x it does not hold.
    """
    from trainlab.engine import checkpoint as checkpoints
    from trainlab.engine.serialize import join_state

    try:
        manifest, tree, tensors = checkpoints.load(folder)
    except checkpoints.CheckpointError as exc:
        raise DataError(f"checkpoint {folder} cannot be used: {exc}") from None
    step_state = join_state(tree.get("parts", {}).get("step"), tensors)
    model = step_state.get("model") if isinstance(step_state, dict) else None
    if not isinstance(model, dict) or not all(isinstance(v, torch.Tensor) for v in model.values()):
        raise DataError(f"checkpoint {folder} holds no model weights under parts.step.model (its step is not "
                        "trainlab's single-model step); load its tensors.safetensors yourself")
    if _schedule_free_training_point(step_state.get("optimizer")):
        raise DataError(f"checkpoint {folder} was written mid-epoch, while the schedule-free optimizer held its "
                        "training point y in the weights, not the averaged x its evaluations use; use best or an "
                        "epoch's checkpoint (written after a validation), or the run's model.safetensors")
    averaging = step_state.get("weight_averaging")
    shadow = averaging.get("shadow") if isinstance(averaging, dict) else None
    if isinstance(shadow, dict):  # in evaluation mode the model holds them already: the same values
        model = {**model, **{name: value for name, value in shadow.items() if name in model}}
    loss = step_state.get("loss")
    return TrainedState(model, loss if isinstance(loss, dict) and loss else None, folder, folder.name,
                        manifest.get("step"))


def _schedule_free_training_point(optimizer_state: Any) -> bool:
    """Whether an optimizer's state (a routed one's inner states too) has a param group in schedule-free
    training mode (``train_mode: True``: the parameters hold y, not the evaluation weights x)."""
    if isinstance(optimizer_state, dict):
        groups = optimizer_state.get("param_groups")
        if isinstance(groups, list) and any(isinstance(g, dict) and g.get("train_mode") is True for g in groups):
            return True
        return any(_schedule_free_training_point(value) for value in optimizer_state.values())
    if isinstance(optimizer_state, list | tuple):
        return any(_schedule_free_training_point(value) for value in optimizer_state)
    return False


def checkpoint_of_run(path: Path) -> tuple[Path, str | None] | None:
    """(run folder, checkpoint name) when ``path`` is a checkpoint folder of a run (``RUN/checkpoint/best``),
    (run folder, None) when it is a run's ``checkpoint/`` folder itself; else None."""
    from trainlab.engine import checkpoint as checkpoints

    if path.name == "checkpoint" and (path.parent / "config.yaml").is_file():
        return path.parent, None
    if path.parent.name == "checkpoint" and (path.parent.parent / "config.yaml").is_file() \
            and (path / checkpoints.MANIFEST).is_file():
        return path.parent.parent, path.name
    return None


def checkpoint_given_as_run(path: Path, run: Path, name: str | None) -> str:
    """The error for a checkpoint folder (or a run's ``checkpoint/``) given where a run folder goes: what it
    is, and the commands that use it."""
    from trainlab.engine import checkpoint as checkpoints

    what = (f"the checkpoint folder of run {run}" if name is None else
            f"checkpoint '{name}' of run {run}" + (" (its best evaluation)" if name == checkpoints.BEST else ""))
    whose = "the checkpoint's name"
    if name is None:  # which checkpoints there are: best/ first, then the step folders, newest first
        kept = [*([checkpoints.BEST] if (path / checkpoints.BEST).is_dir() else []),
                *(folder.name for folder in checkpoints.step_folders(path))]
        name = kept[0] if kept else checkpoints.BEST
        whose = f"a checkpoint's name ({', '.join(kept[:5]) or 'it holds none'})"
    return (f"{path} is {what}, not a run folder: give the run folder and {whose}, "
            f"{quoted_command('trainlab', 'eval', run, '--checkpoint', name)} or "
            f"{quoted_command('trainlab', 'predict', run, 'INPUT', '--checkpoint', name)} "
            f"(Python: trainlab.load_run({str(run)!r}, checkpoint={name!r}))")
