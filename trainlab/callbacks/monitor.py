"""Reading a monitored value out of an epoch record, with explicit direction."""

from __future__ import annotations

import math
from typing import Any

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.metrics import unrecorded_hint


def check_monitor(monitor: str, available: list[str], owner: str) -> None:
    if monitor not in available:
        raise ConfigError(
            f"{owner} monitors {short_repr(monitor)}, which is not recorded{unrecorded_hint(str(monitor), available)} "
            f"(available: {', '.join(available)})"
        )


def is_improvement(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """min: value < best - min_delta; max: value > best + min_delta. NaN never improves."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def read(record: dict[str, Any], monitor: str) -> float:
    return float(record[monitor])
