"""The LR schedule a config will train with, worked out without its model or its data's contents.

:func:`plan_schedule` needs only the number of training rows (from
:func:`trainlab.data.counting.count_splits`, which reads no pixels and tokenizes nothing) and
the strategy:

1. ``batch_size`` (``full`` = every training row; larger than the training set = full batch),
2. :class:`~trainlab.engine.batching.BatchPlan`: ``steps_per_epoch = ceil(ceil(n / batch_size) / grad_accum_steps)``,
3. :class:`~trainlab.engine.loop.Limits`: ``total_steps = epochs * steps_per_epoch``, capped by ``max_steps``,
   where ``strategy.min_steps`` stretches ``epochs`` first
   (:func:`~trainlab.engine.step_budget.epochs_for_step_budget`, as the run does),
4. the schedule of ``strategy.schedule`` over those steps (the one the run's LR adapter follows),
5. the base LR: ``strategy.optimizer.lr``, or the optimizer's own default when it is unset (what
   the optimizer's first parameter group starts at). With ``finetune.layerwise_lr_decay`` it is the
   head's LR (a model's lower layers run at ``lr * decay^k``).

``lr: auto`` is decided by the LR range test on the model and data at train time; here it has no
value, and ``base_lr`` is None: the caller plots the schedule's multiplier instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainlab.builders import batch_size_for, limits_for
from trainlab.config import Config
from trainlab.engine.batching import BatchPlan
from trainlab.errors import ConfigError
from trainlab.group_horizons import group_horizons
from trainlab.optim import default_lr
from trainlab.schedules import Schedule, build_schedule
from trainlab.step_builders import optimizer_spec_for


@dataclass(frozen=True)
class SchedulePlan:
    schedule: Schedule  # step -> LR multiplier
    total_steps: int
    steps_per_epoch: int
    batch_size: int
    base_lr: float | None  # None: ``lr: auto``, known only after the LR range test
    # strategy.optimizer.groups: each group's base lr by name (its own lr, else base_lr); the schedule
    # multiplies every one of them alike. None without groups.
    group_lrs: dict[str, float] | None = None
    # groups with train_epochs: name -> (their steps T_g, their own schedule over them); 0 after T_g
    horizons: dict[str, tuple[int, Schedule]] | None = None


def base_lr(config: Config) -> float | None:
    """The LR the schedule multiplies: ``strategy.optimizer.lr``, or the optimizer factory's default ``lr``
    when it is unset; None for ``lr: auto``.

    Read from the factory's signature rather than by building the optimizer: the first
    ``torch.optim.Optimizer`` built in a process imports torch's compiler stack (seconds). Every
    registered optimizer puts this LR in its first parameter group (tests/test_schedule_count.py).
    """
    spec = optimizer_spec_for(config)
    lr = spec.get("lr")
    if lr == "auto":
        return None
    if lr is not None:
        return float(lr)
    default = default_lr(spec["name"])
    if default is None:
        raise ConfigError(f"optimizer '{spec['name']}' has no default learning rate; "
                          "set strategy.optimizer.lr (or lr: auto for the LR range test)")
    return default


def group_base_lr(config: Config, index: int) -> float | None:
    """The base lr of ``strategy.optimizer.groups[index]`` as the optimizer routing builds it
    (:func:`trainlab.optim.routing.build_routed_optimizer`): the group's own ``lr``, else the top level's, else the
    default of the group's optimizer (its own or the top level's); None for ``lr: auto`` or no default (which
    the build refuses)."""
    optimizer = config.strategy.optimizer
    group = optimizer.groups[index]
    if group.lr is not None:
        return float(group.lr)
    if optimizer.lr is not None:
        return None if optimizer.lr == "auto" else float(optimizer.lr)
    return default_lr(group.optimizer or optimizer.name)


def plan_schedule(config: Config, n_train: int) -> SchedulePlan:
    """Steps and LR schedule of ``config``'s run over ``n_train`` training rows."""
    batch_size = batch_size_for(config, n_train, quiet=True)
    plan = BatchPlan(n_train, batch_size, config.seed, config.strategy.grad_accum_steps)
    total = limits_for(config, plan.steps_per_epoch).total_steps(plan.steps_per_epoch)
    schedule = build_schedule(config.strategy.schedule.spec(), total, plan.steps_per_epoch)
    lr = base_lr(config)
    groups = config.strategy.optimizer.groups
    group_lrs: dict[str, float] | None = None
    if groups and lr is not None:  # names are unique (the config refuses twins)
        group_lrs = {group.label(i): own for i, group in enumerate(groups)
                     if (own := group_base_lr(config, i)) is not None}
    horizons = {h.route: (h.steps, h.schedule) for h in group_horizons(config, plan.steps_per_epoch)}
    return SchedulePlan(schedule, total, plan.steps_per_epoch, batch_size, lr, group_lrs, horizons or None)
