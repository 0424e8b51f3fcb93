"""Imports every built-in optimizer module so that each registers itself."""

from trainlab.optim import (  # noqa: F401
    lamb,
    lion,
    muon,
    muon_conv,
    prodigy,
    schedule_free,
    textbook,
    torch_optimizers,
)
