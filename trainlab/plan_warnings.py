"""Warnings of a run's plan: strategy settings that train, but on this data and this length likely not as
meant. A full-batch optimizer on mini-batches, mid-epoch validations without validation rows, an optimizer
step larger than the training set, gradient accumulation on a full batch, an L1/L2 penalty on a model
without a weight tensor of 2+ dimensions, a fine-tune that never unfreezes, ``min_steps`` stretching a tiny
set or a time budget cutting it, an averaged model that stays mostly its starting weights, and settings that provably do nothing over the
run's length (:func:`warn_if_idle`: a max_steps the epochs end the run before, class weights that cancel at
batch_size 1, a step schedule that never decays, a patience no run this long exhausts). Each is one
``warning:`` line (:func:`trainlab.notices.warn`) naming the setting and its fix; none stops the run.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from trainlab.config_fields import counted
from trainlab.data import Dataset
from trainlab.engine.batching import BatchPlan
from trainlab.engine.weight_averaging import AveragingRule, averaging_updates, start_share
from trainlab.losses.base import Loss
from trainlab.losses.penalties import penalised_parameters
from trainlab.models import MODELS, model_name
from trainlab.notices import warn, warn_training
from trainlab.optim.decay_split import weight_ids
from trainlab.run_checks import input_fixes
from trainlab.schedules import SCHEDULES

if TYPE_CHECKING:
    from trainlab.config import Strategy


def warn_if_full_batch_method_on_mini_batches(spec: dict[str, Any], batch_size: int, n_train: int,
                                               accum: int = 1) -> None:
    """One warning for L-BFGS (or any optimizer that re-evaluates a closure) on mini-batches: its line
    search and curvature pairs assume one loss every step, and a new batch each step breaks both. A step
    takes ``accum`` micro-batches of ``batch_size`` rows (the closure evaluates them together), so it is
    warned of when ``batch_size x accum < n_train``: at or above, every step sees every training row."""
    rows = batch_size * accum
    if (spec["name"] == "lbfgs" or spec.get("requires_closure")) and rows < n_train:
        shown = f"batch_size {batch_size}" if accum == 1 else f"batch_size {batch_size} x grad_accum_steps {accum} = {rows}"
        warn(f"optimizer '{spec['name']}' is a full-batch method (its line search and curvature pairs assume the "
             f"same loss each step), but {shown} < {n_train} training rows makes each step's loss "
             "another batch's: set strategy.batch_size: full")


def warn_if_nothing_validated(every: int | None, data: Dataset) -> None:
    """One warning when ``strategy.eval_every_n_steps`` asks for mid-epoch validations but ``data`` has no
    validation rows: the setting does nothing, which the user would otherwise find out from step records
    without a val_* value. Worded for the data's origin (:func:`input_fixes`: fit's ``val=``, a config's keys)."""
    if every and not len(data.val):
        warn(f"strategy.eval_every_n_steps={every} asks for a validation every {every} steps, but "
             f"{input_fixes(data).no_val}")


def warn_if_step_exceeds_data(batch_size: int | str, accum: int, plan: BatchPlan, total_steps: int,
                              budgeted: bool = False) -> None:
    """One warning when an accumulated optimizer step (``batch_size`` x ``accum`` rows) is larger than the
    training set: the speedrun recipe's 250 x 8 rows on 600 images makes one step per epoch. ``total_steps``:
    the run's steps, a time budget's first plan when ``budgeted``. ``batch_size: full`` with ``accum`` > 1
    is :func:`warn_if_accumulating_full_batch`'s."""
    if accum > 1 and batch_size == "full":
        warn_if_accumulating_full_batch(accum, plan)
        return
    if accum > 1 and int(batch_size) * accum > plan.n:
        total = f"about {total_steps} in all (the time budget's plan)" if budgeted else f"{total_steps} in all"
        warn(f"an optimizer step of {batch_size} x {accum} (grad_accum_steps) rows exceeds the training set "
             f"({plan.n} rows): {plan.steps_per_epoch} step(s) per epoch, {total}; lower "
             "strategy.grad_accum_steps (or batch_size) for a set this small")


def warn_if_accumulating_full_batch(accum: int, plan: BatchPlan) -> None:
    """One warning for ``batch_size: full`` with ``grad_accum_steps`` > 1: the one micro-batch of an epoch is
    the whole training set, so every optimizer step takes that one micro-batch alone (ceil(1 / accum) = 1
    step per epoch) and nothing is accumulated: the run trains exactly as without the setting."""
    if accum <= 1:
        return
    warn(f"strategy.grad_accum_steps={accum} does nothing with strategy.batch_size: full: each optimizer step "
         f"already takes the whole training set ({plan.n} rows) as its one micro-batch, "
         f"{counted(plan.steps_per_epoch, 'step')} per epoch, so nothing is accumulated; remove "
         "strategy.grad_accum_steps")


MAX_PARAMETERS_NAMED = 4  # of a model's parameters shown in a warning (a user's module may hold hundreds)


def warn_if_nothing_penalised(l1: float, l2: float, model: torch.nn.Module) -> None:
    """One warning when ``strategy.regularization.l1``/``l2`` > 0 but ``model`` has no trainable weight tensor
    of 2+ dimensions: the penalties act on those alone (trainlab.losses.penalties.penalised_parameters, not on
    biases, norm weights or scalars), so the objective adds none, no ``train_penalty`` is recorded, and the run
    trains exactly as without the setting. Checked once the optimizer is built, which freezes a fine-tune's
    backbone (``finetune.freeze``): a weight frozen then is never penalised."""
    if not (l1 or l2) or penalised_parameters(model):
        return
    setting = " and ".join(f"{name}={value}" for name, value in (("l1", l1), ("l2", l2)) if value)
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if weight_ids(model):  # weights there are (not norm gains or biases), all frozen
        why = "its weight tensors of 2+ dimensions are frozen (requires_grad False)"
    else:
        shown = [f"'{name}' of shape {tuple(p.shape)}" for name, p in trainable[:MAX_PARAMETERS_NAMED]]
        hidden = len(trainable) - MAX_PARAMETERS_NAMED
        why = f"its parameters are {', '.join(shown)}{f' and {hidden} more' if hidden > 0 else ''}"
    verb, pronoun = ("penalise", "them") if l1 and l2 else ("penalises", "it")
    warn(f"strategy.regularization.{setting} {verb} only weight tensors of 2+ dimensions (not biases or norm "
         f"weights), but model '{model_name(model)}' has no trainable weight tensor of 2+ dimensions for "
         f"{pronoun} to act on ({why}): no penalty is added and the run trains as without {pronoun}; "
         f"remove {pronoun}")


def warn_if_never_unfrozen(unfreeze_after_epochs: int | None, plan: BatchPlan, total_steps: int) -> None:
    """One warning when ``finetune.unfreeze_after_epochs`` is not below the epochs the run trains (counted
    on its steps: ``max_steps`` may cut it, ``min_steps`` stretch it): the backbone never unfreezes, and
    the run is the frozen one whatever the setting says."""
    if unfreeze_after_epochs is None:
        return
    epochs = -(-total_steps // plan.steps_per_epoch)
    if unfreeze_after_epochs >= epochs:
        fix = (f"set it below {epochs} to train the backbone, or remove it" if epochs > 1 else
               "train more epochs to unfreeze the backbone, or remove it")
        warn(f"strategy.finetune.unfreeze_after_epochs={unfreeze_after_epochs}, but the run trains {epochs} "
             f"epoch(s) ({total_steps} steps): the backbone never unfreezes, as with freeze alone; {fix}")


# more passes than this over a tiny training set is warned of (28 sentences: 600 epochs for 600 steps)
STRETCH_WARNING_EPOCHS = 50


def warn_if_finetuning_random_weights(finetune: Any, built_in: str) -> None:
    """One warning where ``strategy.finetune`` freezes the backbone for the whole run (``freeze`` without
    ``unfreeze_after_epochs``, or ``lora``'s adapters over frozen layers) of the registered model named
    ``built_in`` other than ``hf_pretrained``: a config run builds it with random weights (no checkpoint is
    loaded), so what trains learns on random features. Not for ``module:attr`` models (the user's code may
    load weights: no registered name) nor :func:`trainlab.fit`'s model (the user's own: not built here)."""
    if finetune is None or not (finetune.lora is not None
                                or (finetune.freeze and finetune.unfreeze_after_epochs is None)):
        return  # an unfreeze_after_epochs trains the whole model later: a head warmed up first, no harm
    if built_in == "hf_pretrained" or built_in not in MODELS:
        return
    what = ("strategy.finetune.lora trains low-rank adapters on" if finetune.lora is not None
            else "strategy.finetune.freeze trains only the head of")
    warn_training(f"{what} model '{built_in}', whose frozen weights a config run builds at random (only "
                  "hf_pretrained loads pretrained ones): it learns on random features; leave strategy.finetune "
                  "out to train the whole model, or fine-tune a pretrained one (hf_pretrained, a module:attr model "
                  "that loads its weights, or your own model given to trainlab.fit)")


def warn_if_stretched(min_steps: int | None, plan: BatchPlan, total_steps: int) -> None:
    """One warning when ``strategy.min_steps`` makes more than :data:`STRETCH_WARNING_EPOCHS` passes over
    the training set (counted on the steps the run takes: ``max_steps`` may cut it)."""
    passes = -(-total_steps // plan.steps_per_epoch)
    if passes > STRETCH_WARNING_EPOCHS:
        warn(f"strategy.min_steps={min_steps} makes {passes} passes over {plan.n} training rows, which a set "
             "this small overfits long before; lower strategy.min_steps (null keeps strategy.epochs) or add "
             "early stopping")


STALE_AVERAGE_SHARE = 0.2  # an average still this much its starting point at the end is warned of
FEW_AVERAGING_UPDATES = 1  # this many averaging updates after the first copy, or fewer, is (almost) no averaging


def _fewer_steps_between(rule: AveragingRule, total_steps: int, due_steps: int) -> str:
    """The fix for a plan with fewer than ``due_steps`` due steps: a lower start_epochs (when above 0), and
    every_n_steps while at least ``due_steps`` steps follow ``start_step`` (any ``n`` consecutive steps hold
    one multiple of ``n``, so every_n_steps <= (T - start_step) // k leaves k due steps or more); a run
    too short for either is told so."""
    fewest = (total_steps - rule.start_step) // due_steps
    if rule.start_step > 0:
        return f"lower start_epochs, or every_n_steps to {fewest} or less" if fewest >= 1 else "lower start_epochs"
    if fewest >= 1:
        return f"lower every_n_steps to {fewest} or less"
    return f"{total_steps} step(s) are too few to average: train longer, or remove weight_averaging"


def warn_if_stale(rule: AveragingRule, total_steps: int, kind: str, decay: float) -> None:
    """One warning when the averaged model that is evaluated and saved will not be an average of this run.

    - averaging never starts (no due step after ``start_step``): the raw weights are evaluated;
    - it averages (almost) never: the first due step copies the weights and at most
      :data:`FEW_AVERAGING_UPDATES` updates follow, so the saved model is mostly that copy whatever the
      decay; the fix is more due steps (a lower start_epochs or every_n_steps), named with the numbers;
    - the start (the copy) keeps more than :data:`STALE_AVERAGE_SHARE` of the weight over many updates:
      the decay is too close to 1 for the run's length; the fix is a lower decay (the one that keeps 5%).
    """
    updates = averaging_updates(rule, total_steps)
    every = rule.every_n_steps
    when = f"every {every} step(s) after step {rule.start_step} (start_epochs)"
    if updates == 0:
        warn(f"strategy.weight_averaging is due {when}, but the run has {total_steps} steps: nothing is averaged "
             f"and the raw weights are evaluated; {_fewer_steps_between(rule, total_steps, 1)}")
        return
    first = (rule.start_step // every + 1) * every  # the first due step, which copies the weights
    later = updates - 1
    share = start_share(rule, total_steps, stop_below=STALE_AVERAGE_SHARE)
    fix = _fewer_steps_between(rule, total_steps, FEW_AVERAGING_UPDATES + 2)  # the copy and 2 updates or more
    if later == 0:
        kept = "the final weights" if first == total_steps else f"the weights of step {first} (not the final ones)"
        warn(f"strategy.weight_averaging {kind} is due {when}: in this run's {total_steps} step(s) only step {first} "
             f"is due, which copies the weights, and no averaging update follows, so the evaluated and saved model "
             f"is {kept} whatever the decay; {fix}")
        return
    if share <= STALE_AVERAGE_SHARE:
        return
    if later <= FEW_AVERAGING_UPDATES:
        warn(f"strategy.weight_averaging {kind} is due {when}: in this run's {total_steps} step(s) it copies the "
             f"weights at step {first} and averages {later} time(s) after, keeping {share:.1%} of that copy; too "
             f"few updates to average, whatever the decay; {fix}")
        return
    steps = later * every  # the optimizer steps the later updates span
    fitting = 0.05 ** (1 / max(steps, 1))  # keeps 5% of the start
    held = "mostly" if share > 0.5 else "partly"  # 24% is no majority: "mostly" overstated it
    outcome = (f"the evaluated and saved model is {held} where averaging began" if kind == "ema" else
               "each update pulls training back towards where averaging began: the model hardly trains")
    warn(f"strategy.weight_averaging {kind} with decay {decay} keeps {share:.1%} of its starting weights "
         f"over the {later} averaging update(s) of this run ({total_steps} steps), so {outcome}; lower the "
         f"decay (about {fitting:.3g}) or set warmup: true")


# --------------------------------------------------------------------------- settings idle over the run


def warn_if_idle(strategy: Strategy, loss: Loss, data: Dataset, plan: BatchPlan, total_steps: int) -> None:
    """The warnings of settings that cannot act in this run (``total_steps``: its whole length, after
    ``min_steps`` and ``max_steps``; a time budget only shortens it, so what cannot act in the whole length
    cannot act in the budgeted one either): a ``max_steps`` the epochs end the run before, class weights that
    cancel, a step or multistep schedule whose decays lie beyond the last epoch, an early stopping or
    reduce_on_plateau patience longer than the run's validations."""
    warn_if_max_steps_unreached(strategy.epochs, strategy.max_steps, strategy.min_steps, plan, total_steps)
    warn_if_class_weights_cancel(loss, plan)
    schedule = strategy.schedule.spec()
    warn_if_decay_never_reached(schedule, plan, total_steps)
    every = strategy.eval_every_n_steps if len(data.val) else None  # no validation rows: none mid-epoch
    stopping = strategy.early_stopping
    if stopping is not None and _recorded(stopping.monitor, data):
        warn_if_never_stops_early(stopping.patience, stopping.monitor, stopping.restore_best, plan, total_steps,
                                  every)
    if str(schedule["name"]).lower() == "reduce_on_plateau":
        options = {**SCHEDULES.defaults("reduce_on_plateau"), **schedule}
        if _recorded(options["monitor"], data):
            warn_if_never_reduced(options["patience"], options["monitor"], plan, total_steps, every)


def warn_if_min_steps_cut(min_steps: int | None, budget_s: float, steps: int, length: int) -> None:
    """One warning when the budget plans fewer steps than ``strategy.min_steps``: the step floor stretches
    the epochs, and a time budget only shortens a run, so the floor is not met. Not where the run's own
    ``length`` (``max_steps`` below the floor) is what ends it first: a larger budget would change nothing."""
    if min_steps is not None and steps < min(min_steps, length):
        warn(f"strategy.min_steps={min_steps} will not be reached: strategy.time_budget_s={budget_s:g} "
             f"pays for about {steps} steps on this machine, and a time budget only shortens a run; "
             "raise the budget, or remove one of the two")


def warn_if_max_steps_unreached(epochs: int | None, max_steps: int | None, min_steps: int | None, plan: BatchPlan,
                                total_steps: int) -> None:
    """One warning when both ``strategy.epochs`` and ``strategy.max_steps`` are given and the epochs (stretched
    by ``min_steps``, whose own note says so) end the run before step ``max_steps``: the run stops at whichever
    limit comes first (as Lightning's max_epochs/max_steps), so max_steps does nothing. A Hugging Face Trainer
    user expects otherwise (its max_steps overrides num_train_epochs): epochs=2, max_steps=100 at 8 steps an
    epoch trains 16 steps, not 100."""
    if epochs is None or max_steps is None or total_steps >= max_steps:
        return
    ran = -(-total_steps // plan.steps_per_epoch)
    stretched = f" (stretched to {ran} by strategy.min_steps={min_steps})" if min_steps is not None and ran != epochs \
        else ""
    # min_steps needs epochs: the run reaches max_steps once min_steps stretches the epochs past it
    fix = "leave strategy.epochs out" if min_steps is None else f"raise strategy.min_steps to {max_steps}"
    warn(f"strategy.max_steps={max_steps} is never reached: strategy.epochs={epochs}{stretched} of "
         f"{counted(plan.steps_per_epoch, 'step')} each end the run at step {total_steps}, and the first limit "
         f"reached ends it (the Hugging Face Trainer's max_steps would override the epochs); to train {max_steps} "
         f"steps, {fix}, else remove max_steps")


def _recorded(monitor: Any, data: Dataset) -> bool:
    """Whether the run records ``monitor`` at all: without validation rows only ``train_loss`` is, and any
    other monitor is refused (trainlab.builders: "... monitors 'val_loss', but the run has no validation
    split"), so a warning on its patience would only precede that error with advice that cannot apply."""
    return len(data.val) > 0 or monitor == "train_loss"


def warn_if_class_weights_cancel(loss: Loss, plan: BatchPlan) -> None:
    """One warning when class weights cancel: a loss whose batch mean divides by the summed class weights of
    the batch's labels (``cross_entropy``, ``nll``: sum_i w_(y_i) l_i / sum_i w_(y_i), as PyTorch; its
    ``mean_denominator`` is not None) trains on steps of one row, batch_size 1 without grad_accum_steps.
    One row's mean is w_y l / w_y = l: each step is the unweighted one, and the run trains exactly as without
    the weights (with label_smoothing they only reweigh its smoothing term). An accumulated step weights its
    micro-batches by their summed class weights (docs/losses.md), so grad_accum_steps keeps them; ``bce``'s
    ``pos_weight`` and ``focal``'s ``alpha`` scale terms of a mean over rows and act at any batch size. A
    ``multitask`` loss's sub-losses are checked too."""
    if plan.batch_size != 1 or plan.accum != 1:
        return
    for name, module in loss.named_modules():
        weights = getattr(module, "class_weights", None)
        if not isinstance(module, Loss) or not isinstance(weights, torch.Tensor) or module.reduction != "mean":
            continue
        if module.mean_denominator(torch.zeros(1, dtype=torch.long, device=weights.device)) is None:
            continue  # a mean over rows: the weights scale each row's term and act on one row too
        key = "strategy.loss" + (f".losses.{name.rsplit('.', 1)[-1]}" if name else "")
        smoothing = " (with label_smoothing they only reweigh its smoothing term)" \
            if getattr(module, "label_smoothing", 0.0) else ""
        shown = [round(float(w), 6) for w in weights.tolist()]
        warn(f"{key}.class_weights {shown} cancel at batch_size 1: {module.name}'s mean divides the weighted "
             f"loss by the batch's summed class weights, and one row's w*loss/w is its loss, so every step trains "
             f"as without them{smoothing}; use batch_size 2 or more, or keep 1 and set strategy.grad_accum_steps "
             "to 2 or more (an accumulated step weights its rows' losses by their class weights)")


def warn_if_decay_never_reached(spec: dict[str, Any], plan: BatchPlan, total_steps: int) -> None:
    """One warning for a ``step`` or ``multistep`` schedule whose decays lie beyond the run. Both count epochs:
    step t (0-based) is in epoch e = t // steps_per_epoch; ``step`` decays at every multiple of ``step_size``,
    ``multistep`` at each milestone m <= e (trainlab.schedules). The last step is in epoch E - 1, E =
    ceil(total_steps / steps_per_epoch), so a ``step_size`` >= E never decays, nor does a milestone >= E."""
    name = str(spec.get("name", "")).lower()
    if name not in ("step", "multistep"):
        return
    options = {**SCHEDULES.defaults(name), **spec}
    epochs = -(-total_steps // plan.steps_per_epoch)
    run = f"the run trains {counted(epochs, 'epoch')} ({counted(total_steps, 'step')})"
    if name == "step":
        size = options.get("step_size")
        if _whole(size) and size >= epochs:
            warn(f"strategy.schedule step decays the LR after every step_size={size} epochs, but {run}: the LR "
                 f"never decays; set step_size below {epochs}, or use a schedule laid over the run's length (cosine)")
        return
    milestones = options.get("milestones")
    if not isinstance(milestones, list | tuple) or not all(_whole(m) for m in milestones):
        return  # the schedule refuses these itself
    beyond = [m for m in milestones if m >= epochs]
    if not beyond:
        return
    if len(beyond) == len(milestones):
        warn(f"strategy.schedule multistep decays the LR after the epochs of its milestones {list(milestones)}, but "
             f"{run}: no milestone is reached and the LR never decays; set milestones below {epochs}")
        return
    warn(f"strategy.schedule multistep's milestones {beyond} (epochs) are never reached: {run}, so the LR decays "
         f"{counted(len(milestones) - len(beyond), 'time')}, not {len(milestones)}; set them below {epochs}, or "
         "remove them")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def run_validations(total_steps: int, steps_per_epoch: int, every: int | None) -> int:
    """How many validations a run of ``total_steps`` makes (trainlab.engine.loop): one at every epoch's end
    (step k x steps_per_epoch) and at the last step (a partial epoch's record, when ``max_steps`` ends one),
    and with ``every`` (``eval_every_n_steps``) one after every multiple of it that is no epoch end: the
    distinct steps of {multiples of steps_per_epoch} | {multiples of every} | {total_steps} up to it."""
    partial = total_steps % steps_per_epoch != 0
    ends = total_steps // steps_per_epoch + partial
    if not every:
        return ends
    both = total_steps // math.lcm(steps_per_epoch, every) + (partial and total_steps % every == 0)
    return ends + total_steps // every - both


def _validations(monitor: str, plan: BatchPlan, total_steps: int, every: int | None) -> tuple[int, str]:
    """(the validations ``monitor`` is read in, how they are said). A mid-epoch validation records val_*
    only: a ``train_loss`` monitor is read at the epoch records alone."""
    mid = every if monitor.startswith("val_") else None
    count = run_validations(total_steps, plan.steps_per_epoch, mid)
    epochs = -(-total_steps // plan.steps_per_epoch)
    said = f"once per epoch, {counted(epochs, 'epoch')}" if count == epochs else \
        f"at the end of each of {counted(epochs, 'epoch')} and every {mid} steps (eval_every_n_steps)"
    return count, f"the run reads {monitor} in {counted(count, 'validation')} ({said})"


def warn_if_never_stops_early(patience: int, monitor: str, restore_best: bool, plan: BatchPlan, total_steps: int,
                              every: int | None) -> None:
    """One warning when ``strategy.early_stopping`` cannot cut the run short. It stops on a validation that did
    not improve once ``patience`` of them followed the best (trainlab.callbacks.early_stopping; at least one,
    as the stop is decided on a validation that did not improve), and the first finite value is the best so
    far, so it stops at validation max(patience, 1) + 1 at the earliest. The run's last validation is at its
    last step, after which nothing trains: a stop there ends the run where it ends anyway. With
    max(patience, 1) + 1 >= the run's validations, every step trains (only a monitor NaN from its first value
    on, which never improves, stops one validation sooner). The fix names the largest patience that stops
    before the last validation: the run's validations - 2 (1 or more: patience 0 waits as 1 does). With
    ``restore_best`` it still puts the best validation's weights back at the end, which the warning says."""
    count, said = _validations(monitor, plan, total_steps, every)
    waits = max(patience, 1)
    earliest = waits + 1  # the first validation is the best so far; `waits` bad ones follow it
    if earliest < count:
        return
    kept = "; restore_best still keeps the best validation's weights" if restore_best else ""
    largest = count - 2
    fix = (f"set patience to {largest} or less, or train longer" if largest >= 1 else
           f"train longer: patience={patience} needs {waits + 2} validations"
           + ("" if waits == 1 else ", patience: 1 needs 3"))
    warn(f"strategy.early_stopping.patience={patience} stops after {counted(waits, 'validation')} without "
         f"improvement, and the first validation is the best so far, so at validation {earliest} at the earliest, "
         f"but {said}, the last at its final step: it can never stop the run early{kept}; {fix}")


def warn_if_never_reduced(patience: Any, monitor: Any, plan: BatchPlan, total_steps: int, every: int | None) -> None:
    """One warning when ``reduce_on_plateau`` cannot lower the LR of any step. It lowers it once more than
    ``patience`` validations in a row did not improve (trainlab.schedules.ReduceOnPlateau, torch's rule), and
    the first finite value is the best so far, so the bad ones count from the 2nd validation on: the LR drops
    at validation patience + 2 at the earliest, whatever the threshold (patience 0: at the 2nd). The run's
    last validation is at its last step, after which no step trains: with patience + 2 >= the run's
    validations, every step keeps the base LR (only a monitor NaN from its first value on, which never
    improves, lowers it one validation sooner). The fix names the largest patience that lowers it for a step:
    the run's validations - 3 (``patience: 0`` for 3 validations; fewer: none does)."""
    if not _whole(patience) or not isinstance(monitor, str):
        return  # the schedule refuses these itself
    count, said = _validations(monitor, plan, total_steps, every)
    earliest = patience + 2  # the first validation is the best so far; patience + 1 bad ones follow it
    if earliest < count:
        return
    largest = count - 3
    fix = (f"set patience to {largest} or less, or train longer" if largest > 0 else
           "set patience: 0, or train longer" if largest == 0 else
           f"train longer: patience={patience} needs {patience + 3} validations"
           + ("" if patience == 0 else ", patience: 0 needs 3"))
    warn(f"strategy.schedule reduce_on_plateau lowers the LR after more than patience={patience} validations "
         f"without improvement, and the first validation is the best so far, so at validation {earliest} at the "
         f"earliest, but {said}, the last at its final step: the LR never changes for a step; {fix}")
