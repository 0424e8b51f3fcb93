"""trainlab: choose, run, compare and tune training strategies on PyTorch."""

__version__ = "0.1.0"
