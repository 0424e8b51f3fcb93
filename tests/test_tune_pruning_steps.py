"""What tune's pruning callback reports to Optuna: each epoch record's metric at step = its whole epoch, once.

Mid-epoch validations (``eval_every_n_steps``) reported at their whole epoch collided with that epoch's own
report: Optuna dropped each with a UserWarning, and a one-epoch run could be pruned only on its first
validation. A real Optuna trial is the reference: its stored intermediate values, and no warning raised.
"""

from __future__ import annotations

import warnings

import optuna
import torch
from sklearn.datasets import load_iris

import trainlab
from trainlab.tune.objective import PruningCallback

# iris: 150 rows, 5 steps of 32 an epoch; mid-epoch validations at steps 2, 4, 6, 8, 12 (10 ends epoch 2)
STRATEGY = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 10,
            "eval_every_n_steps": 2, "max_steps": 12}


def _fit(trial: optuna.Trial) -> trainlab.FitResult:
    x, y = load_iris(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna's "the reported value is ignored" warning
        return trainlab.fit(torch.nn.Linear(4, 3), (x, y), STRATEGY, val=(x, y),
                            callbacks=[PruningCallback(trial, "val_loss")])


def test_each_epoch_is_reported_once_at_its_whole_epoch_and_mid_epoch_validations_are_not():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    result = _fit(trial)
    epochs = result.history  # epoch 1 (step 5), 2 (step 10), the partial epoch 3 (step 12)
    assert [(r["epoch"], r["step"]) for r in epochs] == [(1, 5), (2, 10), (3, 12)]
    reported = study.get_trials(deepcopy=False)[0].intermediate_values
    assert reported == {r["epoch"]: r["val_loss"] for r in epochs}
    assert [r["step"] for r in result.step_records] == [2, 4, 6, 8, 12]  # they ran; they are not the pruner's


def test_a_run_ending_inside_its_first_epoch_is_reported_at_epoch_0():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    x, y = load_iris(return_X_y=True)
    torch.manual_seed(0)
    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), {**STRATEGY, "max_steps": 3}, val=(x, y),
                          callbacks=[PruningCallback(trial, "val_loss")])
    assert study.get_trials(deepcopy=False)[0].intermediate_values == {1: result.history[-1]["val_loss"]}


def test_a_trial_running_more_epochs_than_the_best_is_judged_without_optunas_warning():
    """--pruner wilcoxon with trials of different epoch counts: Optuna warned at each epoch past the best
    trial's last one ("WilcoxonPruner finds steps existing in the current trial but does not exist in the best
    trial"), a raw UserWarning with its source line; the trials are compared at the epochs both ran."""
    from types import SimpleNamespace

    from trainlab.tune.study import build_pruner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=build_pruner("wilcoxon"))
    study.add_trial(optuna.create_trial(value=0.9, intermediate_values={1: 0.8, 2: 0.9}))  # the best: 2 epochs
    pruning = PruningCallback(study.ask(), "val_accuracy")
    view = SimpleNamespace(control=SimpleNamespace(stop=lambda reason: None, should_stop=False),
                           state=SimpleNamespace(step=1), total_steps=10)
    pruning.on_train_start(view)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch, value in ((1, 0.5), (2, 0.6), (3, 0.7), (4, 0.7)):
            pruning.on_validation_end(view, {"epoch": epoch, "val_accuracy": value})
    assert [str(w.message) for w in caught] == []
    assert study.trials[1].intermediate_values == {1: 0.5, 2: 0.6, 3: 0.7, 4: 0.7}


class _PruneFrom(optuna.pruners.BasePruner):
    """Prunes whenever asked from epoch ``first`` on."""

    def __init__(self, first: int):
        self.first = first

    def prune(self, study, trial):
        return trial.last_step is not None and trial.last_step >= self.first


def _pruned_at(strategy: dict, first: int = 1) -> tuple[int | None, list]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(pruner=_PruneFrom(first))
    pruning = PruningCallback(study.ask(), "val_loss")
    x, y = load_iris(return_X_y=True)
    torch.manual_seed(0)
    result = trainlab.fit(torch.nn.Linear(4, 3), (x, y), strategy, val=(x, y), callbacks=[pruning])
    return pruning.pruned_at, result.history


def test_the_pruner_is_not_asked_after_the_last_step_or_once_early_stopping_ended_the_run():
    """A pruner that prunes whenever asked (HyperbandPruner at its top rung did) pruned a trial at the
    validation after its last step: a run that had trained every epoch recorded PRUNED, its value lost."""
    plain = {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32}
    assert _pruned_at({**plain, "epochs": 3})[0] == 1  # asked at epoch 1: pruned there
    at, history = _pruned_at({**plain, "epochs": 1})
    assert at is None and len(history) == 1  # the one epoch was the last: nothing to save by pruning
    at, history = _pruned_at({**plain, "epochs": 3, "max_steps": 5})  # max_steps ends it at epoch 1
    assert at is None and len(history) == 1
    # lr 1e-30 leaves the float32 weights as they are: val_loss never improves, patience 1 stops at epoch 2
    stopping = {**plain, "epochs": 5, "optimizer": {"name": "sgd", "lr": 1e-30},
                "early_stopping": {"monitor": "val_loss", "patience": 1}}
    at, history = _pruned_at(stopping, first=2)
    assert at is None and len(history) == 2  # ended by early stopping at epoch 2, not pruned there
    assert _pruned_at({**stopping, "early_stopping": {"monitor": "val_loss", "patience": 3}}, first=2)[0] == 2
