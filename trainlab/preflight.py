"""Checks of a config that need no data: what ``compare`` and ``tune`` run before any training.

The config schema accepts any component ``name`` and extra options; the registries refuse
unknown names and options, and the constructors bad values. :func:`check_components` builds
what is cheap to build (the loss, the optimizer on one 2-D dummy weight with
``regularization.weight_decay`` placed exactly as a run places it, the schedule) and checks
the model's option names and layer counts and the data source's option names, so a config that
every run would refuse fails once, before the first run, with the run's own error line.
"""

from __future__ import annotations

from trainlab.config import Config
from trainlab.errors import ConfigError, DataError


def check_components(config: Config) -> None:
    """Raise the ConfigError a run of ``config`` would raise while building its components (no data read)."""
    import torch

    import trainlab.data.builtins  # noqa: F401  (registers the built-in data sources)
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)
    from trainlab.data import DATA_SOURCES
    from trainlab.losses import build_loss
    from trainlab.models import MODELS, check_layer_counts
    from trainlab.optim import build_optimizer
    from trainlab.schedules import build_schedule
    from trainlab.step_builders import optimizer_spec_for

    strategy = config.strategy
    try:
        if strategy.loss.name != "auto":
            loss = build_loss(strategy.loss.spec())
            if config.data.task is not None and not hasattr(loss, "output_dims"):  # a task the config fixes
                loss.output_dim(config.data.task, 2 if config.data.task == "binary" else None, 2)  # must fit it
        optimizer = optimizer_spec_for(config)  # as the run builds it: regularization.weight_decay placed, or refused
        if optimizer.get("lr") == "auto":
            optimizer["lr"] = 1e-3  # found at run time by the LR range test
        weight = torch.nn.Parameter(torch.zeros(2, 2))  # 2-D: optimizers for matrices only (muon_conv) accept it
        build_optimizer(optimizer, [{"params": [weight], "group": "decay"}])
        build_schedule(strategy.schedule.spec(), 100, 10)
    except (ValueError, TypeError, DataError) as exc:
        raise ConfigError(str(exc).strip().splitlines()[0]) from None
    model = config.model.spec()
    check_layer_counts(model)  # hidden: [4] * 90000 is refused before any run reads its data
    model_name = model.pop("name")
    MODELS._check_options(model_name, MODELS.get(model_name), model, skip=2)  # factory(input_shape, output_dim)
    source = config.data.source
    DATA_SOURCES._check_options(source, DATA_SOURCES.get(source), config.data.source_kwargs(), skip=0)
    DATA_SOURCES._check_required(source, DATA_SOURCES.get(source), config.data.source_kwargs(), skip=0)
