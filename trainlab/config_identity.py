"""Whether two configs train the same run, and if not, where they first differ.

A config's hash (:meth:`Config.hash`) holds everything but where a run is recorded; two configs whose
:func:`outcome_dict` agree train runs whose metrics agree (``runtime.num_threads`` aside, which moves
the last bits of float reductions only), though their hashes differ. ``trainlab tune`` compares a
study's base config by it; ``trainlab compare`` a run's :func:`run_identity_hash` (recorded in its
run.json as ``run_identity``, of the config as asked for) with the one asked for now.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.config import Config, json_digest, load_config
from trainlab.data.paths import resolve_data_paths
from trainlab.errors import ConfigError, DataError
from trainlab.yaml_files import flow_yaml

_ABSENT = object()
RUN_IDENTITY = "run_identity"  # run.json's key: run_identity_hash of the config as asked for


def outcome_dict(config: Config) -> dict[str, Any]:
    """:meth:`Config.results_dict` without the run's name, its output section (checkpoint cadence, kept
    checkpoints, progress display) and ``runtime.num_threads``."""
    payload = config.results_dict()
    del payload["name"], payload["output"], payload["runtime"]["num_threads"]
    return payload


def run_identity(config: Config) -> dict[str, Any]:
    """:func:`outcome_dict` with ``output.log_every_n_steps``: what a comparison ranks and reports of a run
    (its metrics, and the step records its curves draw)."""
    return {**outcome_dict(config), "output": {"log_every_n_steps": config.output.log_every_n_steps}}


def run_identity_hash(config: Config) -> str:
    """:func:`~trainlab.config.json_digest` of :func:`run_identity`."""
    return json_digest(run_identity(config))


def first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """The first dotted key where two JSON trees differ, as ``"key: was X, now Y"``; None when equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            found = first_difference(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{where}.{key}".lstrip("."))
            if found:
                return found
        return None
    if old == new:
        return None
    shown = ["absent" if value is _ABSENT else flow_yaml(value) for value in (old, new)]
    return f"{where}: was {shown[0]}, now {shown[1]}"


def _as_resolved(asked: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """``asked`` with its ``lr: auto`` and ``loss: auto`` taken as what the stored run resolved them to
    (its config.yaml holds the resolved values), so that they are never named as the difference."""
    strategy, was = asked.get("strategy"), stored.get("strategy")
    if not isinstance(strategy, dict) or not isinstance(was, dict):
        return asked
    strategy = dict(strategy)
    if (strategy.get("loss") or {}).get("name") == "auto" and "loss" in was:
        strategy["loss"] = was["loss"]
    optimizer, was_optimizer = strategy.get("optimizer") or {}, was.get("optimizer") or {}
    if optimizer.get("lr") == "auto" and "lr" in was_optimizer:
        strategy["optimizer"] = {**optimizer, "lr": was_optimizer["lr"]}
    return {**asked, "strategy": strategy}


def change_from_stored(folder: Path, config: Config,
                       covered: Callable[[Config], dict[str, Any]] = run_identity) -> str | None:
    """The first key where the run in ``folder`` (its stored config.yaml) and ``config`` differ in what
    ``covered`` holds of a config, the data paths resolved on both sides, for a "config changed" line; None
    where it cannot tell (the stored config unreadable, or differing only in what ``lr: auto`` / ``loss: auto``
    resolved to: :func:`_as_resolved`).

    ``covered``: :func:`run_identity` (what decides the outcome; ``trainlab compare``'s test), or
    :meth:`Config.results_dict` (what the config hash covers, ``runtime.num_threads`` among it;
    ``train --resume``'s test)."""
    try:
        stored = covered(load_config(Path(folder) / "config.yaml", follow_links=False))
    except (ConfigError, DataError, OSError):
        return None
    asked = covered(config)
    # the paths resolved, over the keys ``covered`` holds (a key added later, at its default, stays left out)
    resolved = resolve_data_paths(config.data.model_dump(mode="json"))
    asked["data"] = {**asked["data"], **{key: value for key, value in resolved.items() if key in asked["data"]}}
    return first_difference(stored, _as_resolved(asked, stored))
