"""Imports every built-in model module so that each registers itself."""

from trainlab.models import cnn, mlp  # noqa: F401
