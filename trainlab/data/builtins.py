"""Imports every built-in source module so that each registers itself."""

from trainlab.data import (  # noqa: F401
    cifar,
    files,
    idx,
    images,
    mnist1d_source,
    npz_file,
    sklearn_sets,
    synthetic,
    text,
)
