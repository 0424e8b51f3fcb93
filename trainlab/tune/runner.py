"""``trainlab tune`` end to end: check, tidy what killed workers left, run the workers, write the results,
refit, report."""

from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from trainlab.code_policy import config_folder_trusted
from trainlab.compare.metric_keys import against_own_direction
from trainlab.config import validate
from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError, TrainingError
from trainlab.notices import each_once, note, warn
from trainlab.sigterm import runs_complete
from trainlab.tune.arguments import named
from trainlab.tune.base_point import base_outside
from trainlab.tune.claims import remove_ended_leases
from trainlab.tune.leftovers import tidy_trial_folders
from trainlab.tune.results import format_best, write_best, write_results
from trainlab.tune.space import SearchSpace, apply_values
from trainlab.tune.space_review import incomparable_key_warnings, integer_range_warnings, one_choice_warnings
from trainlab.tune.storage_messages import storage_failures_said
from trainlab.tune.study import (
    TuneSettings,
    continue_advice,
    default_direction,
    optuna_verbosity,
    prepare,
    study_for,
)
from trainlab.tune.workers import exit_if_rerunning_the_script, interrupt_once, run_workers
from trainlab.yaml_files import flow_yaml


def tune(settings: TuneSettings) -> dict[str, Any]:
    """Run the study to its total and write DIR's results; returns best.json's content.

    Everything that can be refused (settings, base config, space, storage) is
    refused before the first trial. The results are written even when a worker
    stops the study with an error, then the error is raised. A study that ends
    without a complete trial (all pruned, failed or cut by ``--timeout``) has no
    best.yaml and raises :class:`TrainingError` once its results are written. The --storage database's
    connection lost meanwhile is a :class:`~trainlab.tune.storage_messages.StorageLostError` (exit 5) naming the
    database, its password masked, and the driver's own line. Otherwise the summary
    (:func:`~trainlab.tune.results.format_best`, and :func:`timeout_line` when ``--timeout`` ended the
    study short of its total) is printed on stderr, ``quiet`` or not: it is the command's result.
    Optuna's log level is WARNING meanwhile and the caller's again when ``tune`` returns or raises.
    A study that has its total already (the same command run again) runs nothing and starts no worker: one
    line says so (:func:`nothing_left_line`), then its results are written and summed up as ever.
    """
    if not isinstance(settings, TuneSettings):  # tune("base.yaml", ...) raised an AttributeError
        raise ConfigError(f"tune takes one TuneSettings(base=..., space=..., trials=...); got {short_repr(settings)} "
                          f"({type(settings).__name__})")
    exit_if_rerunning_the_script(settings)  # an unguarded call, run again by a --jobs worker importing the script
    # the base config's folder is the user's, as for train(PATH); spawned workers take the policy in force;
    # the --storage database failing (its connection lost) is one line naming it, not Optuna's wrapper's
    with config_folder_trusted(Path(settings.base).parent), optuna_verbosity(), \
            storage_failures_said(settings.storage):
        return _tune(settings)


def _tune(settings: TuneSettings) -> dict[str, Any]:
    if settings.refit_seeds:
        from trainlab.tune.refit import check_available

        check_available()
    space, base_raw = prepare(settings)
    nothing_left = nothing_left_line(settings)
    _say_before(settings, space, base_raw, nothing_left)
    from trainlab.tune.report import write_report

    # --jobs: a signal after the one that stops the study is recorded, not raised: the results are written
    # once the workers have recorded the trials it cut short, in full
    with interrupt_once(settings):
        try:
            if nothing_left is None:
                with each_once():  # the trials read the same data: each warning once
                    run_workers(settings, space, base_raw)
        except BaseException:  # stopped by an error or an interrupt: the results so far, never hiding why
            with contextlib.suppress(Exception):  # no further claim removes the ones of the trials cut short
                remove_ended_leases(study_for(settings), settings)
            with contextlib.suppress(Exception):  # e.g. the study folder deleted meanwhile
                study = study_for(settings)
                best = _write_results(settings, space)
                write_report(study, settings, best)
            raise
    best = _write_results(settings, space)
    if settings.refit_seeds and "trial" in best:
        from trainlab.tune.refit import refit

        best["refit"] = refit(settings, best)
        write_best(settings.out, best)
    runs_complete("the study", "tune")  # only the report is left: a Ctrl-C now is said, and it is written
    write_report(study_for(settings), settings, best)
    stopped = timeout_line(settings, best)
    if "trial" not in best:
        counts = ", ".join(f"{n} {state.lower()}" for state, n in best["counts"].items() if n) or "no trials"
        raise TrainingError(f"no trial of study '{best['study']}' completed ({counts}), so there is no best.yaml; "
                            f"{settings.out / 'trials.csv'} says why each ended" + (f"; {stopped}" if stopped else ""))
    # the summary is the command's result: printed under --quiet too (which hides progress and notes)
    print(format_best(best) + (f"\n{stopped}" if stopped else ""), file=sys.stderr)
    return best


def nothing_left_line(settings: TuneSettings) -> str | None:
    """``study NAME already has its 6 trials (5 complete, 1 pruned, 0 failed): nothing to run; its results
    are in DIR`` when the study's COMPLETE + PRUNED trials reach ``--trials`` and none runs: no worker would
    claim a trial (failed ones do not count: docs/tune.md, "Totals"). None otherwise, a RUNNING trial
    included (the workers wait for it, or find its worker dead and run another in its place)."""
    states = [trial.state for trial in study_for(settings).get_trials(deepcopy=False)]
    complete, pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    if complete + pruned < settings.trials or TrialState.RUNNING in states:
        return None
    has = (f"its {settings.trials} trials" if complete + pruned == settings.trials else
           f"{complete + pruned} trials, more than the {settings.trials} {named('trials')} asks for")
    return (f"study {settings.name} already has {has} ({complete} complete, {pruned} pruned, "
            f"{states.count(TrialState.FAIL)} failed): nothing to run; its results are in {settings.out}")


def _say_before(settings: TuneSettings, space: SearchSpace, base_raw: dict[str, Any],
                nothing_left: str | None = None) -> None:
    """The notes (not under --quiet) and warnings (always) before the first trial; for a study with nothing
    left to run, ``nothing_left`` instead of what would be said of its trials."""
    tidied = tidy_trial_folders(settings.out / "trials")
    if tidied and not settings.quiet:
        note(f"note: deleted the checkpoints that a killed worker left in finished trial folders "
             f"{', '.join(p.name for p in tidied)} (as their keep_after_finish says)")
    if nothing_left is not None:
        if not settings.quiet:
            note(nothing_left)
        return
    outside = base_outside(space, base_raw)
    if outside and not settings.quiet:
        note(f"note: the base config is no point of the space ({outside}), so it is not trial 0: the best "
             "trial may score below it")
    message = loss_scale_warning(settings, space, base_raw)
    for warning in [message, direction_warning(settings), *incomparable_key_warnings(space, settings.metric),
                    *integer_range_warnings(space, base_raw), *one_choice_warnings(space)]:
        if warning:  # a warning, so also under --quiet (as compare's)
            warn(warning)


def timeout_line(settings: TuneSettings, best: dict[str, Any]) -> str | None:
    """The line saying that ``--timeout`` ended the study short of ``--trials`` (the workers return early for
    no other reason: an interrupt or an error is raised), with how to continue; None otherwise."""
    finished = best["counts"].get("COMPLETE", 0) + best["counts"].get("PRUNED", 0)
    if settings.timeout_s is None or finished >= settings.trials:
        return None
    return (f"--timeout {settings.timeout_s:g} s passed: no further trial was started, and the study has "
            f"{finished} of its {settings.trials} trials; {continue_advice(settings)}")


def direction_warning(settings: TuneSettings) -> str | None:
    """The warning's message when ``--direction`` is the opposite of the metric's own (``default_direction``):
    ``--metric val_loss --direction max`` calls the trial of the worst loss the best, a likely slip; None
    otherwise. A warning, not a refusal: maximising a loss can be meant (a probe of instability)."""
    own = default_direction(settings.metric)
    if settings.direction == own:
        return None
    return against_own_direction(settings.metric, own, "{chosen} on {metric}", settings.direction, "trial")


def loss_scale_warning(settings: TuneSettings, space: SearchSpace, base_raw: dict[str, Any]) -> str | None:
    """The warning's message (:func:`trainlab.compare.loss_scale.searched_loss_warning`) when ``--metric`` is
    the training loss (``val_loss``) and the space's keys under ``strategy.loss`` make trials train
    different losses, on different scales (bce vs focal, a focal gamma range, label smoothing); else None.
    The losses compared: the base config's and, for each such key at each of its extremes (with the
    conditions that switch it on), the one that point trains."""
    from trainlab.compare.loss_scale import is_training_loss, searched_loss_warning

    searched = [p for p in space.params if p.key == "strategy.loss" or p.key.startswith("strategy.loss.")]
    if not searched or not is_training_loss(settings.metric):
        return None
    base = validate(copy.deepcopy(base_raw))
    specs: dict[str, Any] = {"base": base.strategy.loss.spec()}
    for param in searched:
        for value in param.extremes():
            point = space.point({param.key: value})
            if point is None:
                continue
            with contextlib.suppress(ConfigError):  # check_space passed these; a refusal leaves the point out
                specs[", ".join(f"{k}={flow_yaml(v)}" for k, v in point.items())] = \
                    validate(apply_values(base_raw, point)).strategy.loss.spec()
    return searched_loss_warning(settings.metric, specs, base.metrics, [p.key for p in searched])


def _write_results(settings: TuneSettings, space: SearchSpace) -> dict[str, Any]:
    return write_results(study_for(settings), settings.out, space.keys(), settings.metric, settings.seed,
                         decode=space.decode)
