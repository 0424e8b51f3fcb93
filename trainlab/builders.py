"""From a validated Config to a ready Trainer: a short sequence of named builders.

:func:`build` runs them in order: :func:`build_data`, :func:`build_loss_for`,
:func:`build_model_for`, the optimizer and step (trainlab.step_builders: weight decay placed,
``lr: auto`` resolved with the LR range test), :func:`build_callbacks`,
and returns a :class:`Built` holding the pieces and the *resolved* config (what
``config.yaml`` records: ``lr: auto`` becomes the number it resolved to). Nothing
touches files or global state beyond the run: the thread count and the seeding
happen inside :func:`run_scope`, which restores them when the run is done, so
several runs can follow one another in one process.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from trainlab.advisor import advise
from trainlab.callbacks.base import Callback
from trainlab.callbacks.divergence_guard import DivergenceGuard
from trainlab.callbacks.early_stopping import EarlyStopping
from trainlab.callbacks.lr_adapter import GroupHorizon, LRAdapter
from trainlab.callbacks.monitor import check_monitor
from trainlab.callbacks.step_logger import StepLogger
from trainlab.callbacks.unfreeze import UnfreezeSchedule
from trainlab.code_policy import config_folder_trusted
from trainlab.config import Config, DataConfig
from trainlab.data import Dataset, load_dataset, users_source
from trainlab.data.paths import resolve_data_paths
from trainlab.data.positive_class import warn_if_positive_is_majority
from trainlab.data.preprocessing import inverse_target
from trainlab.engine.batching import BatchPlan, TensorBatches, token_lengths
from trainlab.engine.evaluation import Evaluator
from trainlab.engine.loop import Limits, Trainer, Validation
from trainlab.engine.step import StandardStep
from trainlab.engine.step_budget import epochs_for_step_budget
from trainlab.engine.tta import TestTimeAugmentation, build_tta
from trainlab.engine.weight_averaging import AveragedStep
from trainlab.errors import ConfigError
from trainlab.finetune import check_finetune_section
from trainlab.group_horizons import check_something_trains, group_horizons
from trainlab.initializers import apply_initializers, build_initializers, images_needed
from trainlab.lora import apply_lora
from trainlab.losses import build_loss
from trainlab.losses.base import Loss
from trainlab.losses.quadratic_zone import warn_if_all_quadratic
from trainlab.losses.task_fit import check_task_fits
from trainlab.metrics import default_metrics, is_scalar, top_k_warning, validate_metrics
from trainlab.models import build_model, count_parameters
from trainlab.notices import evaluating, held_back, note, warn
from trainlab.plan_warnings import (
    warn_if_finetuning_random_weights,
    warn_if_full_batch_method_on_mini_batches,
    warn_if_idle,
    warn_if_never_unfrozen,
    warn_if_nothing_validated,
    warn_if_step_exceeds_data,
    warn_if_stretched,
)
from trainlab.run_checks import (
    check_batch_norm_remainder,
    check_loss_fits,
    outlier_remedy,
    refuse_meta_tensors,
    warn_if_raw_scale_targets,
)
from trainlab.runtime import (
    check_compile_toolchain,
    deterministic_algorithms,
    emulated_precision_warning,
    process_rng_states,
    resolve_device,
    resolve_precision,
    seed_everything,
    set_process_rng_states,
)
from trainlab.schedules import build_schedule
from trainlab.step_builders import averaged_step_for, build_step, optimizer_spec_for, resolve_auto_lr
from trainlab.time_budget import BudgetPlan, assemble_within_budget, budgeted
from trainlab.token_inputs import check_built_in_model_fits_inputs


@dataclass
class Built:
    """Everything a run needs, built from a config; ``config`` is the resolved one."""

    config: Config
    data: Dataset
    loss: Loss
    step: StandardStep | AveragedStep
    trainer: Trainer
    evaluator: Evaluator
    metric_names: list[str]
    monitor: str
    mode: str
    notes: dict[str, Any] = field(default_factory=dict)
    # runtime.precision emulated on this device: the warning's message, warned by assemble unless quiet (a
    # training build with quiet, train --quiet and resume, warns it itself; an evaluation's build does not)
    precision_warning: str | None = None

    @property
    def model(self) -> torch.nn.Module:
        return self.step.model


@contextlib.contextmanager
def run_scope(config: Config) -> Iterator[None]:
    """Threads, seeds and ``runtime.deterministic`` (trainlab.runtime.deterministic_algorithms: its
    CUBLAS_WORKSPACE_CONFIG takes effect only where the process first uses CUDA inside the scope) for one run;
    the process's thread count, RNG states and deterministic settings come back afterwards. Inside, gradients
    are on and inference mode is off whatever the caller's (a notebook's ``torch.inference_mode()`` around
    ``fit``): the weights and data moved to the run's device (or to channels_last) are made there, and an
    inference tensor cannot be saved for backward; evaluation and predict turn gradients off themselves."""
    threads = torch.get_num_threads()
    rng_states = process_rng_states()
    if config.runtime.num_threads:
        torch.set_num_threads(config.runtime.num_threads)
    seed_everything(config.seed)
    try:
        with deterministic_algorithms(config.runtime.deterministic), torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        torch.set_num_threads(threads)
        set_process_rng_states(rng_states)


def gd_mode(batch_size: int, n_train: int, accum: int = 1) -> str:
    """BGD (full batch), SGD (single sample) or mini-batch, as the tutorials name them, per optimizer step."""
    rows = batch_size * accum  # the rows behind one optimizer step
    if rows >= n_train:
        return "batch gradient descent (full batch)"
    if rows == 1:
        return "stochastic gradient descent (single sample)"
    if accum > 1:
        return f"mini-batch gradient descent (batch {rows}: {accum} accumulated micro-batches of {batch_size})"
    return f"mini-batch gradient descent (batch {batch_size})"


def build_data(config: Config) -> Dataset:
    """The Dataset a run of ``config`` trains on; a ``module:attr`` source of a config read by
    ``load_config(PATH)`` is imported from PATH's folder too, as ``trainlab train PATH`` imports it."""
    with config_folder_trusted(config.source_folder):
        return load_dataset(config.data, config.seed)


def build_loss_for(config: Config, data: Dataset, notes: dict[str, Any]) -> Loss:
    spec = config.strategy.loss.spec()
    if spec["name"] == "auto":
        x = data.train.x.numpy() if data.train.x.ndim == 2 and data.train.x.is_floating_point() else None
        # the data's extras as they are, as `trainlab advise` passes them: z-scored counts (standardize_target)
        # are no counts to advise's one rule (advisor.counts_as_given), so both say the same
        advice = advise(data.train.y.numpy(), data.task, data.extras, x=x, num_classes=data.num_classes)
        spec = dict(advice.loss)
        notes["loss_advice"] = {"loss": advice.loss, "reasons": advice.reasons}
    return build_loss(spec)


def build_model_for(config: Config, data: Dataset, loss: Loss) -> torch.nn.Module:
    """The config's model for this data and loss; ``transformer_encoder`` gets a text source's vocab_size.
    ``hf_pretrained`` on word-tokenizer ids is a ConfigError: the word vocabulary numbers the training set's
    words, ids that mean other tokens (or none) in the checkpoint's embedding table; so is
    ``transformer_encoder`` on ``tokenizer: hf`` rows (ids and attention mask)."""
    output_dim = loss.output_dim(data.task, data.num_classes, data.target_dim)
    spec = config.model.spec()
    check_built_in_model_fits_inputs(str(spec["name"]).lower(), data)  # token ids vs features, before shape rules
    if str(spec["name"]).lower() == "hf_pretrained" and data.extras.get("tokenizer") == "word":
        checkpoint = spec.get("package") or spec.get("path") or "the checkpoint"
        raise ConfigError(f"model hf_pretrained needs the checkpoint's own tokenizer, but data.tokenizer is word "
                          f"(ids numbering the training words, which the checkpoint reads as other tokens); set "
                          f"data.tokenizer: hf and data.tokenizer_path: {checkpoint}")
    if str(spec["name"]).lower() == "transformer_encoder" and data.extras.get("tokenizer") == "hf":
        raise ConfigError(f"model transformer_encoder takes tokenizer: word's token ids, but tokenizer: hf gives each "
                          f"row its ids and attention mask, shaped {tuple(data.input_shape)}; set data.tokenizer: "
                          "word, or use model hf_pretrained with the tokenizer's own model")
    if "vocab_size" in data.extras and spec["name"] == "transformer_encoder":
        spec.setdefault("vocab_size", data.extras["vocab_size"])
    return prepare_model(config, data, build_model(spec, data.input_shape, output_dim))


def prepare_model(config: Config, data: Dataset, model: torch.nn.Module) -> torch.nn.Module:
    """``strategy.init`` (the initializer chain, in order), then ``strategy.finetune``'s checks and LoRA,
    applied to ``model``: one trainlab built, or the user's own given to :func:`trainlab.fit`. Returns
    the model to train (LoRA wraps the targeted layers in place)."""
    if config.strategy.init is not None:
        init = config.strategy.init
        chain = build_initializers([one.spec() for one in (init if isinstance(init, list) else [init])])
        needed = images_needed(chain)
        apply_initializers(chain, model, training_sample(data, needed, config.seed) if needed else None)
    finetune = config.strategy.finetune
    if finetune is not None:
        lora = check_finetune_section(finetune)
        if lora:
            model = apply_lora(model, **lora)
    return model


def training_sample(data: Dataset, n: int, seed: int) -> torch.Tensor:
    """``n`` training inputs drawn without replacement, as the model sees them at evaluation (normalised).

    The rows are ``torch.randperm(len(train), generator seeded with seed)[:n]``: a random sample, since
    a training split may come sorted by class (image folders read class by class).
    """
    rows = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))[:n]
    sample = data.train.x[rows]
    return data.eval_transform(sample, None) if data.eval_transform is not None else sample.float()


def batch_size_for(config: Config, n_train: int, quiet: bool) -> int:
    size = config.strategy.batch_size
    batch_size = n_train if size == "full" else int(size)
    if batch_size > n_train:
        if not quiet:
            warn(f"batch_size {batch_size} is larger than the training set ({n_train} rows); "
                 f"using full batch ({n_train})")
        batch_size = n_train
    return batch_size


def build_callbacks(config: Config, schedule: Any, available: list[str], plan: BatchPlan,
                    horizons: tuple[GroupHorizon, ...] = (), device: torch.device | None = None,
                    outlier_loss: str | None = None) -> list[Callback]:
    """The strategy's callbacks: LR schedule (with the groups' horizons), fine-tuning freeze, divergence
    guard (``outlier_loss``: :func:`~trainlab.run_checks.outlier_remedy`, for its advice), early stopping,
    step records (their sums on ``device``, the losses' device; None: the CPU)."""
    strategy = config.strategy
    callbacks: list[Callback] = [LRAdapter(schedule, horizons=horizons, name=strategy.schedule.name)]
    if config.output.log_every_n_steps:
        callbacks.append(StepLogger(config.output.log_every_n_steps, plan.micro_batches, device))
    if hasattr(schedule, "observe"):
        plateau = getattr(schedule, "monitor", "val_loss")
        if available == ["train_loss"] and plateau != "train_loss":
            raise ConfigError(f"schedule reduce_on_plateau monitors '{plateau}', but {NO_VALIDATION}")
        check_monitor(plateau, available, "schedule reduce_on_plateau", loss=strategy.loss.name)
    if strategy.finetune is not None and strategy.finetune.freeze:
        callbacks.append(UnfreezeSchedule(strategy.finetune.freeze, strategy.finetune.unfreeze_after_epochs))
    divergence = strategy.divergence
    if divergence.policy != "off":
        # the rows of a full step: steps of fewer than 32 rows are judged by the median of consecutive ones
        callbacks.append(DivergenceGuard(divergence.policy, divergence.spike_factor, divergence.window,
                                         divergence.lr_factor, divergence.max_rollbacks,
                                         rows_per_step=min(plan.batch_size * plan.accum, plan.n),
                                         outlier_loss=outlier_loss, micro_batches_per_step=plan.accum))
    stopping = strategy.early_stopping
    if stopping:
        callbacks.append(EarlyStopping(stopping.monitor, stopping.mode, stopping.patience, stopping.min_delta,
                                       stopping.restore_best))
    return callbacks


NO_VALIDATION = ("the run has no validation split to record it: set data.val_fraction > 0 (trainlab.fit: pass "
                 "val=), or monitor train_loss")


def monitored(config: Config, metric_names: list[str], has_val: bool = True) -> tuple[str, str, list[str]]:
    """(monitor, mode, available records) for early stopping and checkpoint-best. Without validation
    data only ``train_loss`` is recorded: early stopping on a ``val_`` record is refused. reduce_on_plateau's
    monitor, list-valued or not recorded (:func:`~trainlab.callbacks.monitor.check_monitor`), is refused here too, before the plan's
    warnings (which would read its patience against the run's length first)."""
    available = ["train_loss", "val_loss", *(f"val_{m}" for m in metric_names if is_scalar(m))]
    stopping = config.strategy.early_stopping
    monitor, mode = (stopping.monitor, stopping.mode) if stopping else ("val_loss", "min")
    if not has_val:
        available = ["train_loss"]
        if stopping is None:
            return monitor, mode, available  # nothing to check: no val_ record exists to watch
        if monitor != "train_loss":
            raise ConfigError(f"early_stopping monitors '{monitor}', but {NO_VALIDATION}")
    schedule = config.strategy.schedule.spec()
    plateau = schedule.get("monitor", "val_loss")
    if has_val and str(schedule["name"]).lower() == "reduce_on_plateau" and isinstance(plateau, str):
        # here, before the plan's warnings read its patience against the run's length (one line, not a warning
        # on validations it never reads and then this error); build_callbacks checks the no-validation case
        check_monitor(plateau, available, "schedule reduce_on_plateau", loss=config.strategy.loss.name)
    check_monitor(monitor, available, "early_stopping", loss=config.strategy.loss.name)
    return monitor, mode, available


def build(config: Config, quiet: bool = False, time_budget: str | None = None, training: bool = True) -> Built:
    """Build every component of ``config``'s run (call inside :func:`run_scope`). ``time_budget`` (for
    ``strategy.time_budget_s``, trainlab.time_budget): ``"calibrate"``, a new run times its step first;
    ``"resume"``, a run about to load a checkpoint gets the planner without timing; None (evaluation, the
    LR finder), no planner. ``training=False`` (a trained run rebuilt to evaluate or predict): the warnings
    on how the strategy would train (trainlab.plan_warnings, the loss and target checks), which its training
    gave, are held back, and so are the data's warnings on training alone (an augmentation's:
    :func:`~trainlab.notices.warn_training`); the data's own warnings are still given. Every ``module:attr`` component of a
    config read by ``load_config(PATH)`` is imported from PATH's folder too, as ``trainlab train PATH`` does."""
    with config_folder_trusted(config.source_folder), evaluating() if not training else contextlib.nullcontext():
        return _build(config, quiet, time_budget, training)


def _build(config: Config, quiet: bool, time_budget: str | None, training: bool) -> Built:
    data = build_data(config)
    notes: dict[str, Any] = {}
    loss = build_loss_for(config, data, notes)
    check_task_fits(loss, data, config.data.task is not None)  # soft targets, data.task given: said as such
    model = build_model_for(config, data, loss)
    warn_if_finetuning_random_weights(config.strategy.finetune, str(config.model.name).lower())
    if time_budget is not None:
        return assemble_within_budget(assemble, config, data, loss, model, notes, quiet,
                                      calibrate=time_budget == "calibrate")
    with held_back() if not training else contextlib.nullcontext():
        return assemble(config, data, loss, model, notes, quiet)


def limits_for(config: Config, steps_per_epoch: int) -> Limits:
    """The run's length: ``strategy.epochs`` stretched by ``strategy.min_steps``, capped by ``max_steps``."""
    epochs = epochs_for_step_budget(config.strategy.epochs, config.strategy.min_steps, steps_per_epoch)
    return Limits(epochs, config.strategy.max_steps)


def min_steps_note(config: Config, limits: Limits, steps_per_epoch: int) -> str:
    """The line that says what ``strategy.min_steps`` made of the run: the epochs it stretched ``epochs`` to,
    and, where ``strategy.max_steps`` ends the run before them, the step it ends at (or that it ends the run
    before ``epochs`` do, so min_steps adds nothing)."""
    strategy = config.strategy
    by_epochs = strategy.epochs * steps_per_epoch
    stretched = limits.epochs * steps_per_epoch
    head = f"strategy.min_steps={strategy.min_steps}"
    if strategy.max_steps is not None and strategy.max_steps <= by_epochs:
        return (f"{head} adds no steps: strategy.max_steps={strategy.max_steps} ends the run before "
                f"strategy.epochs={strategy.epochs} ({by_epochs} steps) do")
    plan = f"{limits.epochs} epochs of {steps_per_epoch} steps"
    if strategy.max_steps is not None and strategy.max_steps < stretched:
        plan += f", ended at step {strategy.max_steps} by strategy.max_steps"
    return f"{head}: {plan} (strategy.epochs={strategy.epochs} would give {by_epochs})"


def train_lengths(config: Config, data: Dataset) -> torch.Tensor | None:
    """The training rows' text lengths when ``strategy.group_by_length`` is on, else None."""
    if not config.strategy.group_by_length:
        return None
    try:
        return token_lengths(data.train.x, int(data.extras.get("pad_id", 0)))
    except ValueError as exc:
        raise ConfigError(f"strategy.group_by_length groups texts by length, but data source "
                          f"'{config.data.source}' gives no token inputs ({exc}); turn group_by_length off, or "
                          "use a text source (text_tsv, text_csv)") from None


def runtime_for(config: Config, quiet: bool) -> tuple[torch.device, str, str | None]:
    """(device, precision, the emulated-precision warning or None) of ``config.runtime``: the warning said
    unless ``quiet``, a compile checked for its toolchain."""
    device = resolve_device(config.runtime.device)
    precision = resolve_precision(config.runtime.precision, device)
    warning = emulated_precision_warning(precision, device)
    if warning and not quiet:
        warn(warning)
    if config.runtime.compile:
        check_compile_toolchain(device)
    return device, precision, warning


def run_metrics(config: Config, data: Dataset, loss: Loss) -> list[str]:
    """The run's metric names (the config's, else the task's defaults), validated; a top-k accuracy that
    covers every class is warned about, also under quiet (compare's and tune's runs: each_once says it once)."""
    names = validate_metrics(config.metrics or default_metrics(data.task, loss), data.task, loss=loss)
    message = top_k_warning(names, data.task, data.num_classes)
    if message:
        warn(message)
    return names


def auto_choice_lines(notes: dict[str, Any]) -> list[str]:
    """The console lines, as a run starts, that say what ``loss: auto`` and ``lr: auto`` chose (``notes``:
    the build's ``loss_advice``, ``lr_auto``, ``lr_auto_s``), e.g. ``loss: auto -> bce (pos_weight=8.697;
    'trainlab advise' says why)`` and ``lr: auto -> 0.0123 (LR range test, 0.31 s)``; [] for neither.
    summary.json, config.yaml and run.json record the same choices."""
    lines = []
    if "loss_advice" in notes:
        spec = notes["loss_advice"]["loss"]
        options = ", ".join(f"{key}={value}" for key, value in spec.items() if key != "name")
        lines.append(f"loss: auto -> {spec['name']} ({f'{options}; ' if options else ''}'trainlab advise' says why)")
    if "lr_auto" in notes:
        seconds = f", {notes['lr_auto_s']:.2f} s" if "lr_auto_s" in notes else ""
        lines.append(f"lr: auto -> {notes['lr_auto']:.4g} (LR range test{seconds})")
    return lines


def assemble(config: Config, data: Dataset, loss: Loss, model: torch.nn.Module, notes: dict[str, Any],
             quiet: bool = False, budget: BudgetPlan | None = None) -> Built:
    """The step, evaluator and Trainer of ``config``'s strategy around a given dataset, loss and model;
    with ``budget`` (trainlab.time_budget), fitted to it as it runs."""
    device, precision, warning = runtime_for(config, quiet)
    refuse_meta_tensors(model)
    model = model.to(device)
    loss.to(device)
    batch_size = batch_size_for(config, len(data.train), quiet)
    check_loss_fits(loss, model, data, device, chosen_by_auto="loss_advice" in notes, batch_rows=batch_size,
                    precision=precision)
    metric_names = run_metrics(config, data, loss)
    monitor, mode, available = monitored(config, metric_names, has_val=len(data.val) > 0)
    warn_if_nothing_validated(config.strategy.eval_every_n_steps, data)
    warn_if_positive_is_majority(data, metric_names, getattr(loss, "pos_weight", None), config.data)

    notes["gd_mode"] = gd_mode(batch_size, len(data.train), config.strategy.grad_accum_steps)
    plan = BatchPlan(len(data.train), batch_size, config.seed, config.strategy.grad_accum_steps,
                     lengths=train_lengths(config, data))
    limits = limits_for(config, plan.steps_per_epoch)
    total_steps = limits.total_steps(plan.steps_per_epoch)
    # a time budget's calibration trains no more steps than the run (trainlab.time_budget.time_steps)
    check_batch_norm_remainder(model, data, device, plan, total_steps)
    spec = optimizer_spec_for(config)
    warn_if_full_batch_method_on_mini_batches(spec, batch_size, len(data.train), config.strategy.grad_accum_steps)
    batches = TensorBatches(data.train, data.train_transform, config.seed, device)
    if spec["lr"] == "auto":
        started = time.perf_counter()
        spec["lr"] = notes["lr_auto"] = resolve_auto_lr(config, model, loss, spec, batches, plan, device, precision)
        notes["lr_auto_s"] = time.perf_counter() - started  # a time budget counts it (trainlab.time_budget)
        config = resolved_lr(config, spec["lr"])
    # after lr: auto resolves, as the warning measures the targets against lr x steps (LR_BOUNDED_STEP)
    warn_if_raw_scale_targets(data, loss, config.data.standardize_target,
                              None if config.strategy.optimizer.groups else spec, total_steps, model)
    warn_if_all_quadratic(loss, data, config.data.standardize_target)  # a huber delta beyond every target
    if "loss_advice" in notes:  # loss: auto, as the advisor chose it (config.yaml records the resolved config)
        config = resolved_loss(config, notes["loss_advice"]["loss"])
    if not quiet:
        for line in auto_choice_lines(notes):
            note(line)
    step = build_step(config, model, loss, spec, device, precision)
    # a budgeted run's first plan (it re-plans as it runs); the config's whole length otherwise
    planned_steps = total_steps if budget is None or budget.steps is None else min(budget.steps, total_steps)

    warn_if_step_exceeds_data(config.strategy.batch_size, config.strategy.grad_accum_steps, plan, planned_steps,
                              budgeted=planned_steps != total_steps)
    if config.strategy.finetune is not None:
        warn_if_never_unfrozen(config.strategy.finetune.unfreeze_after_epochs, plan, total_steps)
    horizons = group_horizons(config, plan.steps_per_epoch)
    check_something_trains(horizons, step.optimizer, total_steps)
    if limits.epochs != config.strategy.epochs:
        notes["epochs_for_min_steps"] = limits.epochs
        if not quiet:
            note(min_steps_note(config, limits, plan.steps_per_epoch))
        warn_if_stretched(config.strategy.min_steps, plan, total_steps)
    warn_if_idle(config.strategy, loss, data, plan, total_steps)  # settings that cannot act over this length
    # a budgeted run's averaging decay (decay_power) runs over its first plan, not the config's whole length
    step = averaged_step_for(config, step, plan, planned_steps, notes)
    schedule = build_schedule(config.strategy.schedule.spec(), total_steps, plan.steps_per_epoch)
    budget_callbacks: list[Callback] = []
    if budget is not None:
        schedule, planner = budgeted(schedule, total_steps, budget)
        budget_callbacks.append(planner)
    evaluator, validator = build_evaluators(config, data, step, loss, metric_names)
    validation = Validation(lambda: validator.evaluate(data.val), config.strategy.eval_every_n_steps)
    trainer = Trainer(step, batches, plan, limits,
                      [*budget_callbacks, *build_callbacks(config, schedule, available, plan, horizons, device,
                                                           outlier_loss=outlier_remedy(data.task, loss))], validation)
    notes.update(device=str(device), precision=precision, parameters=count_parameters(model))
    return Built(config, data, loss, step, trainer, evaluator, metric_names, monitor, mode, notes, warning)


def build_evaluators(config: Config, data: Dataset, step: StandardStep, loss: Loss,
                     metric_names: list[str]) -> tuple[Evaluator, Evaluator]:
    """(final evaluator, per-validation evaluator): both with ``strategy.tta`` when ``when: always``,
    else the per-validation one without it (one forward pass per batch during training)."""
    tta_config = config.strategy.tta
    source_options = config.data.source_kwargs()
    tta = build_tta(TestTimeAugmentation(**tta_config.model_dump()) if tta_config else None, data.input_shape,
                    flattened=source_options.get("flatten") is True)
    if tta is not None and tta.flip and not users_source(config.data.source) \
            and (unmirrored := _never_mirrored(source_options.get("augment"))):
        # digits, text in images: a mirror view the model never trained on cost 18 points on digits, unsaid (a
        # source of the user's own may augment in its own transforms, under any option name or none)
        default = "" if "flip" in tta_config.model_fields_set else ", its default"
        warn(f"strategy.tta averages in the left-right mirror view (tta.flip: true{default}) but "
             f"{unmirrored}: the model never saw mirrored images; set strategy.tta.flip: false where a mirror "
             "changes what an image shows (digits, text)")

    def evaluator(with_tta: bool) -> Evaluator:
        return Evaluator(step, loss, metric_names, data.num_classes, data.task, data.eval_transform,
                         original_units=original_units(data), tta=tta if with_tta else None)

    final = evaluator(with_tta=True)
    return final, (final if tta is None or tta.when == "always" else evaluator(with_tta=False))


def _never_mirrored(augment: Any) -> str | None:
    """Why training showed a built-in source's model no mirrored image (``data.augment``: true is ``hflip:
    true``, a mapping's ``hflip`` defaults to true), or None where it did. No augmentation counts as much as ``hflip: false``: a
    mirror view on MNIST trained without any (``trainlab.fit`` never augments) cost 9 to 12 points, unsaid."""
    if augment is True:
        return None
    if isinstance(augment, dict):
        return "data.augment.hflip is false" if augment.get("hflip", True) is False else None
    return "training had no augmentation"


def original_units(data: Dataset) -> Any:
    """The inverse of the data's target standardisation, or None when targets were not standardised."""
    fitted = data.preprocessing or {}
    if data.task != "regression" or not fitted.get("target"):
        return None
    return lambda y: inverse_target(fitted, y)


def with_data_paths_resolved(config: Config, data_dir: str | None = None) -> Config:
    """``config`` whose relative data paths are absolute, so its run folder works from any directory."""
    data = DataConfig.model_validate(resolve_data_paths(config.data.model_dump(), data_dir))
    return config.model_copy(update={"data": data})


def resolved_loss(config: Config, spec: dict[str, Any]) -> Config:
    """``config`` with ``strategy.loss`` set to the spec ``loss: auto`` resolved to."""
    loss = type(config.strategy.loss).model_validate(spec)
    return config.model_copy(update={"strategy": config.strategy.model_copy(update={"loss": loss})})


def resolved_lr(config: Config, lr: float) -> Config:
    """``config`` with ``strategy.optimizer.lr`` set to the number ``lr: auto`` resolved to."""
    optimizer = config.strategy.optimizer.model_copy(update={"lr": float(lr)})
    return config.model_copy(update={"strategy": config.strategy.model_copy(update={"optimizer": optimizer})})


def fit_config(config: Config, quiet: bool = True) -> Built:
    """Build and train ``config`` in memory (no run folder); returns the trained pieces."""
    with run_scope(config):
        built = build(config, quiet=quiet)
        built.trainer.fit()
    return built
