"""Warnings of a run's plan: strategy settings that train, but on this data and this length likely not as
meant. A full-batch optimizer on mini-batches, mid-epoch validations without validation rows, an optimizer
step larger than the training set, a fine-tune that never unfreezes, ``min_steps`` stretching a tiny set,
an averaged model that stays mostly its starting weights. Each is one ``warning:`` line
(:func:`trainlab.notices.warn`) naming the setting and its fix; none stops the run.
"""

from __future__ import annotations

from typing import Any

from trainlab.data import Dataset
from trainlab.engine.batching import BatchPlan
from trainlab.engine.weight_averaging import AveragingRule, averaging_updates, start_share
from trainlab.notices import warn
from trainlab.run_checks import input_fixes


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
    the run's steps, a time budget's first plan when ``budgeted``."""
    if accum > 1 and batch_size != "full" and int(batch_size) * accum > plan.n:
        total = f"about {total_steps} in all (the time budget's plan)" if budgeted else f"{total_steps} in all"
        warn(f"an optimizer step of {batch_size} x {accum} (grad_accum_steps) rows exceeds the training set "
             f"({plan.n} rows): {plan.steps_per_epoch} step(s) per epoch, {total}; lower "
             "strategy.grad_accum_steps (or batch_size) for a set this small")


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
    outcome = ("the evaluated and saved model is mostly where averaging began" if kind == "ema" else
               "each update pulls training back towards where averaging began: the model hardly trains")
    warn(f"strategy.weight_averaging {kind} with decay {decay} keeps {share:.1%} of its starting weights "
         f"over the {later} averaging update(s) of this run ({total_steps} steps), so {outcome}; lower the "
         f"decay (about {fitting:.3g}) or set warmup: true")
