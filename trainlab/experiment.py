"""From a validated Config to a finished run: build every component, train, record.

:func:`build` turns a config into a ready :class:`Trainer` (no files touched, so
a bad config or bad data leaves nothing behind). :func:`train` creates the run
folder and runs it; :func:`resume` continues one from its newest valid
checkpoint; :func:`evaluate_run` reloads ``model.safetensors``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from trainlab import __version__
from trainlab.advisor import advise
from trainlab.atomic import write_safetensors
from trainlab.config import Config, dump_yaml, load_config
from trainlab.data import Dataset, load_dataset
from trainlab.engine import checkpoint
from trainlab.callbacks.base import Callback, CallbackList
from trainlab.callbacks.checkpoint_saver import Checkpointing
from trainlab.callbacks.divergence_guard import DivergenceGuard
from trainlab.callbacks.early_stopping import EarlyStopping
from trainlab.callbacks.unfreeze import FinetuneSchedule
from trainlab.engine.loop import LoopSettings, Trainer
from trainlab.callbacks.lr_adapter import LRScheduleCallback
from trainlab.callbacks.monitor import check_monitor
from trainlab.callbacks.progress import ProgressBar, wants_progress
from trainlab.callbacks.metrics_recorder import MetricsRecorder
from trainlab.callbacks.signal_stop import SignalStop
from trainlab.errors import ConfigError, DataError, Interrupted, RunDirError, TrainingError
from trainlab.finetune import apply_lora, check_finetune_options, freeze_backbone, layerwise_param_groups
from trainlab.initializers import initialize
from trainlab.losses import build_loss
from trainlab.losses.base import Loss
from trainlab.lr_finder import find_lr_for
from trainlab.metrics import default_metrics, validate_metrics
from trainlab.models import build_model, count_parameters
from trainlab.optim import build_optimizer, param_groups, set_train_mode
from trainlab.run_folder import RunDir, default_dir
from trainlab.runtime import environment, resolve_device, resolve_precision, seed_everything
from trainlab.schedules import build_schedule


@dataclass
class Built:
    """Everything a run needs, built from a config."""

    config: Config
    data: Dataset
    model: torch.nn.Module
    loss: Loss
    trainer: Trainer
    metric_names: list[str]
    monitor: str
    mode: str
    notes: dict[str, Any] = field(default_factory=dict)


def gd_mode(batch_size: int, n_train: int) -> str:
    """BGD (full batch), SGD (single sample) or mini-batch, as the tutorials name them."""
    if batch_size >= n_train:
        return "batch gradient descent (full batch)"
    if batch_size == 1:
        return "stochastic gradient descent (single sample)"
    return f"mini-batch gradient descent (batch {batch_size})"


def _check_loss_fits(loss: Loss, model: torch.nn.Module, data: Dataset, device: torch.device) -> None:
    k = min(len(data.train), 64)
    x, y = data.train.x[:k].to(device), data.train.y[:k].to(device)
    if data.eval_transform is not None:
        x = data.eval_transform(x, None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            output = model(x)
    except RuntimeError as exc:
        raise DataError(f"model '{type(model).__name__}' cannot take inputs shaped {tuple(x.shape[1:])}: "
                        f"{str(exc).splitlines()[0]}") from None
    finally:
        model.train(was_training)
    loss.check(output, y)


def build(config: Config, quiet: bool = False) -> Built:
    runtime = config.runtime
    if runtime.num_threads:
        torch.set_num_threads(runtime.num_threads)
    device = resolve_device(runtime.device)
    precision = resolve_precision(runtime.precision, device)
    seed_everything(config.seed)
    data = load_dataset(config.data, config.seed)
    strategy = config.strategy
    notes: dict[str, Any] = {}

    loss_spec = strategy.loss.spec()
    if loss_spec["name"] == "auto":
        advice = advise(data.train.y.numpy(), data.task)
        loss_spec = dict(advice.loss)
        notes["loss_advice"] = {"loss": advice.loss, "reasons": advice.reasons}
    loss = build_loss(loss_spec)
    output_dim = loss.output_dim(data.task, data.num_classes, data.target_dim)
    model_spec = config.model.spec()
    if "vocab_size" in data.extras and model_spec["name"] == "transformer_encoder":
        model_spec.setdefault("vocab_size", data.extras["vocab_size"])
    model = build_model(model_spec, data.input_shape, output_dim)
    if strategy.init is not None:
        initialize(model, strategy.init.spec())
    if hasattr(model, "whiten"):  # airbench: the stem's filters come from the training images
        sample = data.train.x[:5000]
        model.whiten(data.eval_transform(sample, None) if data.eval_transform else sample.float())
    finetune = strategy.finetune
    if finetune is not None:
        lora = finetune.lora.model_dump() if finetune.lora else None
        check_finetune_options(finetune.freeze, finetune.unfreeze_after_epochs, finetune.layerwise_lr_decay, lora)
        if lora:
            model = apply_lora(model, **lora)
    model.to(device)
    loss.to(device)
    _check_loss_fits(loss, model, data, device)

    metric_names = validate_metrics(config.metrics or default_metrics(data.task), data.task)
    n_train = len(data.train)
    batch_size = n_train if strategy.batch_size == "full" else int(strategy.batch_size)
    if batch_size > n_train:
        if not quiet:
            print(f"warning: batch_size {batch_size} is larger than the training set ({n_train} rows); "
                  f"using full batch ({n_train})", file=sys.stderr)
        batch_size = n_train
    notes["gd_mode"] = gd_mode(batch_size, n_train)

    optimizer_spec = strategy.optimizer.spec()
    if optimizer_spec["lr"] == "auto":
        optimizer_spec["lr"] = notes["lr_auto"] = find_lr_for(model, loss, data, optimizer_spec, batch_size,
                                                             device, config.seed)
    if finetune is not None and (finetune.layerwise_lr_decay or finetune.unfreeze_after_epochs):
        if optimizer_spec["lr"] is None:
            raise ConfigError("strategy.optimizer.lr is required with finetune.layerwise_lr_decay / "
                              "unfreeze_after_epochs (the head's learning rate)")
        groups = layerwise_param_groups(model, float(optimizer_spec["lr"]), finetune.layerwise_lr_decay or 1.0,
                                        include_frozen=finetune.unfreeze_after_epochs is not None)
        extra = [p for p in loss.parameters() if p.requires_grad]
        if extra:
            groups.append({"params": extra, "group": "no_decay", "weight_decay": 0.0})
    else:
        if finetune is not None and finetune.freeze:
            freeze_backbone(model)
        groups = param_groups(model, loss.parameters())
    optimizer = build_optimizer(optimizer_spec, groups)
    settings = LoopSettings(
        batch_size=batch_size, epochs=strategy.epochs, max_steps=strategy.max_steps, seed=config.seed,
        grad_accum_steps=strategy.grad_accum_steps, clip_grad_norm=strategy.clip_grad_norm,
        clip_grad_value=strategy.clip_grad_value, l1=strategy.regularization.l1, l2=strategy.regularization.l2,
        weight_decay=strategy.regularization.weight_decay, precision=precision,
        channels_last=runtime.channels_last,
    )
    available = ["train_loss", "val_loss", *(f"val_{m}" for m in metric_names)]
    stopping = strategy.early_stopping
    monitor, mode = (stopping.monitor, stopping.mode) if stopping else ("val_loss", "min")
    check_monitor(monitor, available, "early_stopping")

    trainer = Trainer(model, loss, optimizer, data, settings, metric_names, device=device)
    schedule = build_schedule(strategy.schedule.spec(), trainer.total_steps, trainer.steps_per_epoch)
    trainer.schedule = schedule
    callbacks: list[Callback] = [LRScheduleCallback(schedule)]
    if finetune is not None and finetune.freeze:
        callbacks.append(FinetuneSchedule(finetune.freeze, finetune.unfreeze_after_epochs))
    if hasattr(schedule, "observe"):
        check_monitor(getattr(schedule, "monitor", "val_loss"), available, "schedule reduce_on_plateau")
    if strategy.divergence.policy != "off":
        d = strategy.divergence
        callbacks.append(DivergenceGuard(d.policy, d.spike_factor, d.window, d.lr_factor, d.max_rollbacks,
                                         # read the loss every 10 steps: one sync, not one per step
                                         check_every=10))
    if stopping:
        callbacks.append(EarlyStopping(stopping.monitor, stopping.mode, stopping.patience, stopping.min_delta,
                                       stopping.restore_best))
    trainer.callbacks = CallbackList(callbacks)
    notes.update(device=str(device), precision=precision, parameters=count_parameters(model))
    return Built(config, data, model, loss, trainer, metric_names, monitor, mode, notes)


def _attach_run_callbacks(built: Built, run: RunDir, quiet: bool, user: Sequence[Callback] = ()) -> SignalStop:
    out = built.config.output
    ckpt = out.checkpoint
    checkpointing = Checkpointing(
        run.checkpoints, ckpt.every_n_steps, ckpt.every_n_epochs, ckpt.every_seconds, ckpt.keep_last,
        info={"config_hash": built.config.hash(), "trainlab": __version__},
        monitor=built.monitor, mode=built.mode, warn=lambda m: print(m, file=sys.stderr),
    )
    signals = SignalStop()
    extra: list[Callback] = [checkpointing, MetricsRecorder(run), signals, *user]
    if not quiet and wants_progress(out.progress):
        extra.append(ProgressBar(built.monitor))
    for cb in built.trainer.callbacks.callbacks:
        if isinstance(cb, DivergenceGuard):
            cb.last_checkpoint = lambda: checkpointing.last_saved
    built.trainer.callbacks = CallbackList([*built.trainer.callbacks.callbacks, *extra])
    return signals


def _summary(built: Built, run: RunDir | None) -> dict[str, Any]:
    trainer, state = built.trainer, built.trainer.state
    val = trainer.evaluate(built.data.val)
    test = trainer.evaluate(built.data.test)
    best_epoch = None
    for cb in trainer.callbacks.callbacks:
        if isinstance(cb, EarlyStopping):
            best_epoch = cb.best_epoch
    if best_epoch is None and state.history and built.monitor in state.history[0]:
        values = [r[built.monitor] for r in state.history]
        pick = min if built.mode == "min" else max
        best_epoch = state.history[values.index(pick(values))]["epoch"]
    return {
        "name": built.config.name,
        "status": "finished",
        "seed": built.config.seed,
        "config_hash": built.config.hash(),
        "epochs_run": state.epoch,
        "steps": state.step,
        "best_epoch": best_epoch,
        "stopped_early": state.stopped_early,
        "stop_reason": state.stop_reason,
        "train_time_s": round(state.train_time_s, 6),
        "samples_per_s": round(state.samples_seen / state.train_time_s, 3) if state.train_time_s > 0 else None,
        "val": val,
        "test": test,
        "loss": built.loss.name,
        "optimizer": built.config.strategy.optimizer.name,
        "mode": built.notes["gd_mode"],
        "events": state.events,
        "notes": {k: v for k, v in built.notes.items() if k != "gd_mode"},
        "environment": environment(),
        "trainlab": __version__,
    }


def _run(built: Built, run: RunDir, quiet: bool, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    signals = _attach_run_callbacks(built, run, quiet, callbacks)
    trainer = built.trainer
    try:
        with signals.installed():
            trainer.fit()
    except TrainingError:
        run.write_metrics(trainer.state.history, trainer.state.events)
        summary = {"name": built.config.name, "status": "diverged", "steps": trainer.state.step,
                   "events": trainer.state.events}
        run.write_summary(summary)
        run.write_info(status="diverged")
        raise
    if trainer.control.interrupted_by is not None:
        run.write_info(status="interrupted")
        signum = trainer.control.interrupted_by
        import signal

        raise Interrupted(
            f"{signal.Signals(signum).name} received: stopped at step {trainer.state.step} after writing a "
            f"checkpoint; continue with: trainlab resume {run.path}", signum)
    trainer.model.eval()
    set_train_mode(trainer.optimizer, False)  # schedule-free: report and save the averaged weights x
    summary = _summary(built, run)
    write_safetensors(run.path / "model.safetensors",
                      {k: v for k, v in trainer.model.state_dict().items()},
                      # one metadata key: safetensors writes several in hash-map order, not byte-stable
                      metadata={"trainlab": json.dumps({"format": "model", "config_hash": built.config.hash()})})
    run.write_summary(summary)
    run.write_info(status="finished")
    return summary


def train(config: Config, out: str | Path | None = None, overwrite: bool = False, quiet: bool = False,
          resume_if_exists: bool = False, callbacks: Sequence[Callback] = ()) -> tuple[dict[str, Any], Path]:
    """Train ``config`` into a new run folder; returns (summary, run folder).

    ``callbacks`` are user :class:`trainlab.Callback` instances added to the built-in ones.
    """
    target = Path(out or config.output.dir or default_dir(config.name))
    if resume_if_exists and (target / "run.json").exists():
        return resume(target, quiet=quiet, callbacks=callbacks)
    built = build(config, quiet=quiet)  # everything that can fail on bad input fails here, before any file
    run = RunDir.create(target, overwrite=overwrite)
    try:
        run.write_info(status="running", config_hash=config.hash(), created=time.time())
        run.write_config(dump_yaml(config))
        return _run(built, run, quiet, callbacks), run.path
    finally:
        run.close()


def resume(path: str | Path, quiet: bool = False, callbacks: Sequence[Callback] = ()) -> tuple[dict[str, Any], Path]:
    """Continue a run from its newest checkpoint that verifies."""
    path = Path(path)
    run = RunDir.open_existing(path)
    try:
        config = load_config(path / "config.yaml")
        if run.info().get("status") == "finished":
            raise RunDirError(f"run {path} already finished; start a new run, or evaluate it with "
                              f"'trainlab eval {path}'")
        built = build(config, quiet=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = checkpoint.latest(run.checkpoints)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        if found is not None:
            folder, manifest, tree, tensors = found
            if manifest.get("config_hash") not in (None, config.hash()) and not quiet:
                print(f"warning: {path / 'config.yaml'} changed since {folder.name} was written "
                      f"(config hash {config.hash()} != {manifest['config_hash']}); resuming with it",
                      file=sys.stderr)
            try:
                built.trainer.restore((tree, tensors))
            except (RuntimeError, KeyError, ValueError) as exc:
                lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
                first = " ".join(lines[:2])[:300]
                raise DataError(f"checkpoint {folder} does not match the model or optimizer built from "
                                f"{path / 'config.yaml'}: {first}") from None
            if not quiet:
                print(f"resuming {path} from {folder.name} (epoch {built.trainer.state.epoch}, "
                      f"step {built.trainer.state.step})", file=sys.stderr)
        elif not quiet:
            print(f"warning: no valid checkpoint in {run.checkpoints}; starting {path} from step 0",
                  file=sys.stderr)
        run.write_metrics(built.trainer.state.history, built.trainer.state.events)
        run.write_info(status="running")
        return _run(built, run, quiet, callbacks), path
    finally:
        run.close()


def evaluate_run(path: str | Path, split: str = "test") -> dict[str, Any]:
    """Reload a finished run's ``model.safetensors`` and recompute its metrics on ``split``."""
    path = Path(path)
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise RunDirError(f"{path} is not a trainlab run folder (no config.yaml)")
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise RunDirError(f"{path} has no model.safetensors (the run did not finish; try 'trainlab resume {path}')")
    config = load_config(config_path)
    built = build(config, quiet=True)
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as exc:
        raise DataError(f"cannot read {weights}: {exc}") from None
    try:
        built.model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(f"{weights} does not match the model in {config_path}: "
                        f"{str(exc).strip().splitlines()[0][:300]}") from None
    data_split = {"val": built.data.val, "test": built.data.test, "train": built.data.train}.get(split)
    if data_split is None:
        raise ConfigError(f"--split must be one of train, val, test; got '{split}'")
    return built.trainer.evaluate(data_split)
