"""Whether two configs train the same run, and if not, where they first differ.

A config's hash (:meth:`Config.hash`) holds everything but where a run is recorded; two configs whose
:func:`outcome_dict` agree train runs whose metrics agree (``runtime.num_threads`` aside, which moves
the last bits of float reductions only), though their hashes differ. ``trainlab tune`` compares a
study's base config by it; ``trainlab compare`` a run's :func:`run_identity_hash` (recorded in its
run.json as ``run_identity``, of the config as asked for) with the one asked for now.
"""

from __future__ import annotations

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


def change_from_stored(folder: Path, config: Config) -> str | None:
    """The first key where the run in ``folder`` (its stored config.yaml) and ``config`` differ in what
    decides the outcome, the data paths resolved on both sides, for a "config changed" line; None where it
    cannot tell (the stored config unreadable, or differing only in what ``lr: auto`` / ``loss: auto``
    resolved to)."""
    try:
        stored = run_identity(load_config(Path(folder) / "config.yaml", follow_links=False))
    except (ConfigError, DataError, OSError):
        return None
    asked = run_identity(config)
    asked["data"] = {**asked["data"], **resolve_data_paths(config.data.model_dump(mode="json"))}
    return first_difference(stored, asked)
