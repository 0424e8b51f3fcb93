"""Imports every built-in loss module so that each registers itself."""

from trainlab.losses import (  # noqa: F401
    adaptive,
    classification,
    composite,
    distribution,
    regression,
    similarity,
)
