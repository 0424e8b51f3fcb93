"""Imports every built-in loss module so that each registers itself."""

from trainlab.losses import classification, regression  # noqa: F401
