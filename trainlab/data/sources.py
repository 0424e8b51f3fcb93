"""Imports every built-in source module so that each registers itself."""

from trainlab.data import files, mnist1d_source, sklearn_sets, synthetic  # noqa: F401
