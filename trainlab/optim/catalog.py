"""Imports every built-in optimizer module so that each registers itself."""

from trainlab.optim import torch_optimizers  # noqa: F401
