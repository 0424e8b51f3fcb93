"""Hyper-parameter search with Optuna over any config key (``trainlab tune``).

Modules: :mod:`arguments` (TuneSettings' checks), :mod:`space` (SPACE.yaml),
:mod:`objective` (one trial = one run folder, pruning callback), :mod:`study` (storage, sampler, pruner, workers),
:mod:`results` (best.yaml, trials.csv, importances), :mod:`report` (HTML),
:mod:`refit` (best vs base over seeds through ``trainlab compare``),
:mod:`leftovers` (checkpoints a killed worker left in finished trial folders),
:mod:`claims` (which trial a worker runs next; dead workers' trials), :mod:`leases`
(whether a journal study's worker lives, on any host), :mod:`recovery` (a dead
worker's trial whose run had ended, recorded as it ended), :mod:`runner` (the
command end to end).
"""

from trainlab.tune.runner import tune
from trainlab.tune.study import TuneSettings

__all__ = ["TuneSettings", "tune"]
