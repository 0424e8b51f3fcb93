"""The routed parameter groups that train for their first epochs only (``strategy.optimizer.groups[i].train_epochs``).

:func:`group_horizons` turns each such group into a :class:`~trainlab.callbacks.lr_adapter.GroupHorizon`
(its steps and its own schedule over them) for the LR adapter; :func:`check_something_trains` refuses a
run in which every parameter would stop before the end (docs/param_groups.md).
"""

from __future__ import annotations

import math
from typing import Any

from trainlab.callbacks.lr_adapter import GroupHorizon
from trainlab.config import Config
from trainlab.errors import ConfigError
from trainlab.schedules import build_schedule


def group_horizons(config: Config, steps_per_epoch: int) -> tuple[GroupHorizon, ...]:
    """One :class:`GroupHorizon` per ``strategy.optimizer.groups`` entry with ``train_epochs``: its first
    ``ceil(train_epochs * steps_per_epoch)`` steps, on ``strategy.schedule`` built over them (names and
    the schedule's kind are checked by the config)."""
    horizons = []
    for i, group in enumerate(config.strategy.optimizer.groups or []):
        if group.train_epochs is None:
            continue
        label = group.label(i)
        steps = math.ceil(group.train_epochs * steps_per_epoch)
        try:
            schedule = build_schedule(config.strategy.schedule.spec(), steps, steps_per_epoch)
        except ConfigError as exc:
            raise ConfigError(f"strategy.optimizer.groups[{i}] ('{label}') train_epochs={group.train_epochs:g} is "
                              f"{steps} steps, over which its schedule is built: {exc}") from None
        horizons.append(GroupHorizon(label, steps, schedule))
    return tuple(horizons)


def check_something_trains(horizons: tuple[GroupHorizon, ...], optimizer: Any, total_steps: int) -> None:
    """ConfigError when every routed param group stops (``train_epochs``) before the run's last step."""
    if not horizons:
        return
    routes = {group.get("route") for group in optimizer.param_groups if group["params"]}
    last = max(h.steps for h in horizons)
    if routes <= {h.route for h in horizons} and last < total_steps:
        raise ConfigError(f"strategy.optimizer.groups: every trainable parameter is in a group with train_epochs, "
                          f"and the last of them stops at step {last} of the run's {total_steps}: nothing would "
                          "train after it; leave train_epochs out of one group or shorten the run "
                          "(strategy.epochs / max_steps)")
