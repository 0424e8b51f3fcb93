"""How a record (tune's trials and best.json, compare's leaderboard.json) names a folder: absolute, readable
from any working directory."""

from __future__ import annotations

import os
from pathlib import Path


def absolute_path(path: Path) -> str:
    """``path`` made absolute with ``.`` and ``..`` folded away, links kept as named (:func:`os.path.abspath`):
    ``--out ../tune_k9`` run in ``/tmp/x/tune`` gives ``/tmp/x/tune_k9/trials/3``, not
    ``/tmp/x/tune/../tune_k9/trials/3``. Where folding a ``..`` that follows a link names another place than
    the path does (the kernel reads ``link/..`` as the link target's parent), the path with its links
    resolved (:func:`os.path.realpath`, which reads a part that does not exist yet as written) instead."""
    folded = os.path.abspath(path)
    found = os.path.realpath(path)
    return folded if os.path.realpath(folded) == found else found
