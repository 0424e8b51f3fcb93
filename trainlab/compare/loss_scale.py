"""Whether ranking by ``test_loss``/``val_loss`` compares numbers of one scale.

``test_loss`` and ``val_loss`` are each run's own training loss: the strategy's ``strategy.loss``
evaluated on the split. Strategies whose loss sections differ (bce vs focal with gamma 5, label
smoothing, class weights, huber vs mse; reduction sum vs mean only with class or row weights: a sum is
recorded per row) record it on different scales, so the
smaller-scale loss "wins" a ranking or reaches a target first whatever the models predict: focal's
(1 - p)^gamma factor shrinks every term, bce 0.157 vs focal 0.003 says nothing about which model is
better (their log_loss, one formula for both, can say the opposite).

:func:`differing_losses` is the comparison itself (pure: loss specs in, groups out), for compare's
strategies and for any other set of configs (a tuning space); :func:`loss_scale_warning` is compare's
one warning (its message, for :func:`trainlab.notices.warn`), :func:`searched_loss_warning` tune's.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from trainlab.metrics import REGRESSION_DEFAULT

# the options with which a loss's mean divides by the summed weights of the rows' classes (PyTorch's weighted
# cross-entropy: Loss.mean_denominator), where a sum's per-row record divides by the rows: reduction decides
# the scale (bce's pos_weight and focal's alpha are not normalised: their mean is the sum per row)
WEIGHT_OPTIONS = ("class_weights", "weight")

# the target kinds (trainlab.losses.base) whose runs record class probabilities, hence log_loss
PROBABILITY_KINDS = ("binary", "class_index")
MAX_NAMED = 3  # strategies named per loss in the warning; the rest are counted


def is_training_loss(key: str | None) -> bool:
    """``test_loss``, ``val_loss`` (``train_loss``): the run's own loss on a split. ``test_log_loss`` is not:
    it is one formula (the negative log-likelihood of the predicted probabilities) for every loss."""
    if not key:
        return False
    split, _, name = key.partition("_")
    return split in ("train", "val", "test") and name == "loss"


def canonical(value: Any) -> Any:
    """A hashable form in which equal settings are equal: 5 and 5.0, lists and tuples, key order."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(canonical(v) for v in value)
    return repr(value)


def loss_identity(spec: str | Mapping[str, Any]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``(name, options)`` of a loss spec with the options its factory would take by default left out,
    so that ``{name: focal}`` and ``{name: focal, gamma: 2}`` (focal's default) are one loss."""
    raw = {"name": spec} if isinstance(spec, str) else dict(spec)
    from trainlab.losses import registered_loss

    name = str(raw.pop("name", "")).lower()
    factory = registered_loss(name)
    defaults: dict[str, Any] = {}
    if factory is not None:
        try:
            parameters = inspect.signature(factory).parameters.values()
        except (TypeError, ValueError):  # a builtin or C factory: compare the options as written
            parameters = []
        defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    options = {k: v for k, v in raw.items() if not (k in defaults and canonical(v) == canonical(defaults[k]))}
    if not any(options.get(key) is not None for key in WEIGHT_OPTIONS):
        # sum and mean are recorded on one scale (a sum per row: StandardStep._per_row, the Evaluator), where
        # no weights make the mean divide by their sum instead of the rows
        options.pop("reduction", None)
    return name, tuple(sorted((str(k), canonical(v)) for k, v in options.items()))


def loss_label(spec: str | Mapping[str, Any]) -> str:
    """A loss spec as a short text: ``bce``, ``focal(gamma=5)``, ``cross_entropy(label_smoothing=0.1)``."""
    raw = {"name": spec} if isinstance(spec, str) else dict(spec)
    name, options = loss_identity(raw)
    shown = {k: raw[k] for k, _ in options if k in raw}
    return name + (f"({', '.join(f'{k}={_short(v)}' for k, v in shown.items())})" if shown else "")


def _short(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return str(int(value))
    return str(value).replace(" ", "")


def differing_losses(specs: Mapping[str, str | Mapping[str, Any]]) -> dict[str, list[str]]:
    """The owners (strategy names, trials) of each distinct loss, ``{loss label: [owners]}`` in first-seen
    order, when ``specs`` (owner -> loss spec, as ``config.strategy.loss.spec()`` gives it) holds more than
    one loss; ``{}`` when every owner trains the same loss (options left at their defaults count as
    unset: :func:`loss_identity`), so that their ``*_loss`` values are on one scale."""
    groups: dict[tuple[str, tuple[tuple[str, Any], ...]], list[str]] = {}
    labels: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = {}
    for owner, spec in specs.items():
        identity = loss_identity(spec)
        groups.setdefault(identity, []).append(owner)
        labels.setdefault(identity, loss_label(spec))
    if len(groups) < 2:
        return {}
    return {labels[identity]: owners for identity, owners in groups.items()}


def _target_kinds(specs: Sequence[str | Mapping[str, Any]]) -> set[str | None]:
    from trainlab.losses import registered_loss

    kinds: set[str | None] = set()
    for spec in specs:
        factory = registered_loss(loss_identity(spec)[0])
        kinds.add(getattr(factory, "target_kind", None))
    return kinds


def suggestion(specs: Sequence[str | Mapping[str, Any]], metrics: Sequence[str] | None,
               owner: str = "strategy") -> tuple[list[str], str]:
    """What to rank (or target) by instead, as metric names without their split and why: ``log_loss`` where
    every loss gives class probabilities, ``mse``/``mae`` (those of them recorded) where every loss is a
    regression loss, else a task metric; the why says what to add to the config's metrics where the runs
    record none of them. ``metrics``: the metrics every config lists (None: the task's defaults, which leave
    log_loss out). ``owner``: what trains each loss, in the words of the why (strategy, trial)."""
    kinds = _target_kinds(specs)
    recorded = set(REGRESSION_DEFAULT) if metrics is None else set(metrics)
    if kinds <= set(PROBABILITY_KINDS):
        add = "" if "log_loss" in recorded else "; add log_loss to the config's metrics"
        return ["log_loss"], f"one formula for every {owner}: the negative log-likelihood of its probabilities{add}"
    if kinds == {"continuous"}:
        names = [name for name in ("mse", "mae") if name in recorded]
        add = "" if names else "; add mse to the config's metrics"
        return names or ["mse"], f"one formula for every {owner}{add}"
    return ["accuracy", "mse"], f"a task metric every {owner} records the same way"


def _owners(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")


def loss_scale_warning(configs: Mapping[tuple[str, str], Any], metric: str | None,
                       target_metric: str | None) -> str | None:
    """The warning's message for a comparison that ranks by (``metric``) or targets (``target_metric``) the
    training loss where the strategies of a task train different losses, else None.

    ``configs`` by ``(task, strategy)``, validated (``trainlab.compare.strategies.validate_strategies``):
    the loss sections compared are the ones the runs will train, after each strategy's overrides. The
    first task whose losses differ is named (and how many others do). A warning, not a refusal: ranking
    by the loss is right where its scale is what the user means (one loss, several optimizers)."""
    flags = [(flag, key) for flag, key in (("--metric", metric), ("--target", target_metric)) if is_training_loss(key)]
    if not flags:
        return None
    tasks = list(dict.fromkeys(task for task, _ in configs))
    differing = {}
    for task in tasks:
        own = {strategy: config for (t, strategy), config in configs.items() if t == task}
        groups = differing_losses({strategy: config.strategy.loss.spec() for strategy, config in own.items()})
        if groups:
            differing[task] = (groups, own)
    if not differing:
        return None
    task, (groups, own) = next(iter(differing.items()))
    specs = [config.strategy.loss.spec() for config in own.values()]
    # what every strategy records: a config without a metrics list records its task's defaults (log_loss is
    # none of them; mse and mae are a regression's, and only a regression's are asked about)
    metrics = sorted(set.intersection(*(set(REGRESSION_DEFAULT if config.metrics is None else config.metrics)
                                        for config in own.values())))
    keys = " and ".join(f"{flag} {key}" for flag, key in flags)
    where = f"task '{task}'" + (f" (and {len(differing) - 1} more tasks)" if len(differing) > 1 else "")
    losses = "; ".join(f"{label} in {_owners(owners)}" for label, owners in groups.items())
    names, why = suggestion(specs, metrics)
    instead = " / ".join(f"{flag} " + " or ".join(f"{key.partition('_')[0]}_{name}" for name in names)
                         for flag, key in flags)
    return (f"{keys} {'is' if len(flags) == 1 else 'are'} each strategy's own training loss, and the "
            f"strategies of {where} train different losses ({losses}): their values are on different scales, "
            f"so a lower one need not mean a better model; compare by {instead} ({why})")


def searched_loss_warning(metric: str, specs: Mapping[str, str | Mapping[str, Any]], metrics: Sequence[str] | None,
                          searched: Sequence[str]) -> str | None:
    """The warning's message for a tuning study whose ``metric`` is the training loss (``val_loss``) while its
    space searches the loss section (``searched``: those keys), so that its trials train different losses;
    None when ``metric`` is no training loss or every point trains one loss.

    ``specs``: each point of the space that sets the loss differently (the base config, each searched key
    at each of its extremes), named -> the loss spec it trains (``config.strategy.loss.spec()``).
    ``metrics``: the base config's ``metrics`` list (None: the task's defaults). The study still runs: a
    loss option that leaves the scale alone (and the user's choice) is not refused."""
    if not is_training_loss(metric):
        return None
    groups = differing_losses(specs)
    if not groups:
        return None
    names, why = suggestion(list(specs.values()), metrics, owner="trial")
    split = metric.partition("_")[0]
    return (f"--metric {metric} is each trial's own training loss, and the space searches "
            f"{', '.join(searched)}, so its trials train different losses ({'; '.join(groups)}): their values "
            f"are on different scales, so a lower one need not mean a better model; tune by --metric "
            f"{' or '.join(f'{split}_{name}' for name in names)} ({why})")
