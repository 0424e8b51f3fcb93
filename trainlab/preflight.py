"""Checks of a config that need no data: what ``compare`` and ``tune`` run before any training.

The config schema accepts any component ``name`` and extra options; the registries refuse
unknown names and options, and the constructors bad values. :func:`check_components` builds
what is cheap to build (the loss, the optimizer on one 2-D dummy weight with
``regularization.weight_decay`` placed exactly as a run places it) and checks the schedule's options
(:func:`check_schedule_options`: names, types and ranges, never against a stand-in run length),
``strategy.optimizer.groups`` (:func:`~trainlab.optim.routing.check_groups`: each group's optimizer on a
dummy weight), the model's option names, types, layer counts and the values it refuses whatever its input
(:meth:`~trainlab.registry.Registry.check_unbuilt`), ``data.augment``'s options and the data source's option names, types and values,
so a config that every run would refuse fails once, before the first run, with the run's own
error line. The refusals a run
makes from the config alone while it builds its step live here, and the run calls them too:
:func:`check_finetune_param_groups` (fine-tuning's param groups against ``optimizer.lr`` and
``optimizer.groups``) and :func:`check_averaging_fits` (``strategy.weight_averaging`` against an optimizer
that evaluates weights of its own).
:func:`check_data_found` looks up the data files a config names without opening them, and
:func:`check_data_columns` reads a CSV file's header line for the columns the config names: a missing file
or column is refused before the first run too, again with the run's own line.
"""

from __future__ import annotations

from typing import Any

from trainlab.config import Config
from trainlab.data.fingerprint import READ_KEYS
from trainlab.errors import ConfigError, DataError


def check_components(config: Config, before_data: bool = False) -> None:
    """Raise the ConfigError a run of ``config`` would raise while building its components (no data read), and
    for a metric name that no task has (its task's fit is checked once the data gives the task).
    ``before_data=True`` (``trainlab train``, which reads the data and builds every component next): the loss
    is not checked against ``data.task`` (the run's refusal names what the targets hold: fractions where bce
    takes 0/1 labels), and a loss of the user's (``module:attr``) is looked up, not built (its constructor
    runs once, in the run)."""
    import trainlab.data.builtins  # noqa: F401  (registers the built-in data sources)
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models)
    from trainlab.data import DATA_SOURCES, users_source
    from trainlab.data.transforms import augment_options
    from trainlab.finetune import check_finetune_section
    from trainlab.losses import LOSSES, build_loss
    from trainlab.lr_finder import check_lr_searchable
    from trainlab.metrics import get_metric, refuse_listed_twice
    from trainlab.models import MODELS, check_layer_counts
    from trainlab.optim import build_optimizer
    from trainlab.optim.routing import check_groups
    from trainlab.step_builders import optimizer_spec_for

    refuse_listed_twice(config.metrics or [])  # [F1, f1]: one metric (names ignore case), as the run refuses it
    for name in config.metrics or []:  # a name no task has ('acuracy'), before a CSV's missing cell is named
        if name != "loss" and ":" not in name:  # a user's metric is imported by the run (its code policy)
            get_metric(name, config.data.task)
    strategy = config.strategy
    try:
        if before_data and ":" in strategy.loss.name:
            LOSSES.get(strategy.loss.name)  # found and imported; built by the run
        elif strategy.loss.name != "auto":
            loss = build_loss(strategy.loss.spec())
            if not before_data and config.data.task is not None and not hasattr(loss, "output_dims"):
                loss.output_dim(config.data.task, 2 if config.data.task == "binary" else None, 2)  # the config's task
        optimizer = optimizer_spec_for(config)  # as the run builds it: regularization.weight_decay placed, or refused
        if strategy.optimizer.groups:  # each group's keys, selectors, optimizer and options (no model needed)
            check_groups(optimizer, [group.model_dump() for group in strategy.optimizer.groups],
                         strategy.regularization.weight_decay)
        if optimizer.get("lr") == "auto":
            check_lr_searchable(optimizer)  # adadelta_zeiler takes lr 1.0 only: said so, not "lr=0.001"
            optimizer["lr"] = 1e-3  # found at run time by the LR range test
        built = build_optimizer(optimizer, _dummy_weight_group())
        check_schedule_options(strategy.schedule.spec())
    except (ValueError, TypeError, DataError) as exc:
        raise ConfigError(str(exc).strip().splitlines()[0]) from None
    check_finetune_param_groups(config)
    if strategy.finetune is not None:  # unfreeze_after_epochs without freeze, LoRA with freeze, its options
        check_finetune_section(strategy.finetune)
    if strategy.weight_averaging is not None:
        for one in _optimizers_every_run_builds(config, built):
            check_averaging_fits(config, one)
    model = config.model.spec()
    check_layer_counts(model)  # hidden: [4] * 90000 is refused before any run reads its data
    model_name = model.pop("name")
    # names, types and the values the model refuses whatever its input (hidden: 8, dropout: 1.5); the input's
    # shape and output width are the run's: factory(input_shape, output_dim, **options)
    MODELS.check_unbuilt(model_name, model, skip=2)
    source, source_options = config.data.source, config.data.source_kwargs()
    if not users_source(source):  # a built-in source's augment is the images' (a user's may mean anything)
        augment_options(source_options.get("augment"))
    DATA_SOURCES.check_unbuilt(source, source_options)


# a run length no run reaches (float-exact): a built-in schedule built over it meets none of its length rules
# (warmup_steps < total steps, one_cycle's pct_start x total steps > 1, wsd's decay steps >= 1) unless its
# options break them at every length
UNREACHED_RUN_STEPS = 2**53


def check_schedule_options(spec: dict[str, Any]) -> None:
    """Raise the ConfigError a run would raise for ``strategy.schedule``'s options (``spec``), whatever its length.

    The run's step count is known only once its data is counted (``trainlab train``, ``trainlab schedule``:
    :func:`~trainlab.schedule_plan.plan_schedule`), so the checks here are those the config alone decides: the
    name, the option names, their types and ranges. A built-in schedule is built over
    :data:`UNREACHED_RUN_STEPS` steps, where only its option checks can refuse (``warmup_steps: 150`` is
    refused by the 100-step run that has it, with that run's count, and accepted here); a refusal that still
    names the length (``wsd``'s warmup and decay fractions summing past 1) is the run's to word, with its
    real count. A user's ``module:attr`` factory is not called (what it does with the length is its own):
    only its option names, required options and types are checked.
    """
    from trainlab.schedules import SCHEDULES, build_schedule

    options = dict(spec)
    name = options.pop("name")
    if ":" in name:
        factory = SCHEDULES.get(name)
        SCHEDULES._check_options(name, factory, options, skip=2)  # factory(total_steps, steps_per_epoch, **options)
        SCHEDULES._check_required(name, factory, options, skip=2)
        SCHEDULES.check_types(name, options)
        return
    try:
        build_schedule(spec, UNREACHED_RUN_STEPS, 1)
    except ConfigError as exc:
        if str(UNREACHED_RUN_STEPS) not in str(exc):  # an option's own refusal, not a length rule's
            raise


def check_finetune_param_groups(config: Config) -> None:
    """Raise the ConfigError of fine-tuning's param groups (``finetune.layerwise_lr_decay`` or
    ``unfreeze_after_epochs``) that the config alone decides: combined with ``strategy.optimizer.groups``
    (both set the param groups), or without ``strategy.optimizer.lr`` (the head's lr, which the layers
    below it take times ``layerwise_lr_decay``^k). The run calls it as it builds its optimizer
    (:func:`~trainlab.step_builders.build_optimizer_for`); ``lr: auto`` is resolved to a number by then."""
    strategy = config.strategy
    finetune = strategy.finetune
    if finetune is None or not (finetune.layerwise_lr_decay or finetune.unfreeze_after_epochs):
        return
    if strategy.optimizer.groups:
        raise ConfigError("strategy.optimizer.groups cannot be combined with finetune.layerwise_lr_decay / "
                          "unfreeze_after_epochs (both set the param groups); use one of them")
    if strategy.optimizer.lr is None:
        raise ConfigError("strategy.optimizer.lr is required with finetune.layerwise_lr_decay / "
                          "unfreeze_after_epochs (the head's learning rate)")


def check_averaging_fits(config: Config, optimizer: Any) -> None:
    """Raise the ConfigError of ``strategy.weight_averaging`` over an optimizer that evaluates weights of its
    own (schedule-free's ``eval()``: :func:`~trainlab.optim.keeps_evaluation_weights`): evaluation would see
    one average or the other, never both. The run calls it with its own optimizer
    (:func:`~trainlab.step_builders.averaged_step_for`), :func:`check_components` with the ones it builds
    on a dummy weight."""
    from trainlab.optim import keeps_evaluation_weights

    if config.strategy.weight_averaging is not None and keeps_evaluation_weights(optimizer):
        raise ConfigError(f"strategy.weight_averaging cannot be combined with optimizer "
                          f"'{config.strategy.optimizer.name}', which evaluates its own averaged weights; "
                          f"remove one of them")


def _dummy_weight_group() -> list[dict[str, Any]]:
    """One decayed param group of a 2-D weight: optimizers for matrices only (muon_conv) accept it."""
    import torch

    return [{"params": [torch.nn.Parameter(torch.zeros(2, 2))], "group": "decay"}]


def _optimizers_every_run_builds(config: Config, top: Any) -> list[Any]:
    """The optimizers (built on a dummy weight) that every run of ``config`` builds: the top-level one
    ``top``; with ``strategy.optimizer.groups``, each group's instead (a group takes at least one parameter,
    or the run refuses it; whether the top level takes the rest depends on the model). A group on another
    optimizer is built from its name alone: what it evaluates is its class's, not its options'; one that
    does not build so is left to the run, which words its own refusal."""
    from trainlab.optim import build_optimizer

    groups = config.strategy.optimizer.groups
    if not groups:
        return [top]
    top_name = config.strategy.optimizer.name.lower()
    built = []
    for name in dict.fromkeys(group.optimizer or top_name for group in groups):
        if name.lower() == top_name:
            built.append(top)
            continue
        try:
            built.append(build_optimizer({"name": name, "lr": 1e-3}, _dummy_weight_group()))
        except (ConfigError, ValueError, TypeError):
            continue
    return built


# the data keys that name a file or folder every built-in source reads (data.tokenizer_path may instead name
# an installed model package; data.cache_dir is written, not read)
DATA_FILE_KEYS = tuple(key for key in READ_KEYS if key != "tokenizer_path")


def check_data_found(config: Config) -> None:
    """Raise the DataError a run of ``config`` would raise for a data file or folder that is not there,
    reading no data.

    Each path the data section names (:func:`~trainlab.data.fingerprint.named_files`, resolved as a run
    resolves it: :func:`~trainlab.data.paths.resolve_data_paths`) is only looked up. Where one is missing,
    the source's row counter (:func:`~trainlab.data.counting.count_rows`, as ``trainlab tune`` calls it)
    words the refusal: it resolves its paths (:func:`~trainlab.data.paths.resolve`) before it reads a byte.
    Built-in sources only: a ``module:attr`` or plug-in source may take ``path`` for something other than
    a local file (a URL, a table name), which only its own run can judge.
    """
    import trainlab.data.builtins  # noqa: F401  (registers the built-in data sources)
    from trainlab.data import users_source
    from trainlab.data.counting import count_rows
    from trainlab.data.fingerprint import named_files
    from trainlab.data.paths import resolve_data_paths

    data = config.data
    if users_source(data.source):
        return
    named = named_files(resolve_data_paths(data.model_dump()))
    if all(path.exists() for key, path in named.items() if key in DATA_FILE_KEYS):
        return
    count_rows(data)  # raises the source's "data file not found"; found meanwhile, it is counted instead


# the data keys of the csv source that name its columns, or say how its header line is read
DATA_COLUMN_KEYS = ("target", "features", "categorical", "delimiter")


def check_data_columns(config: Config) -> None:
    """Raise the error a run of ``config`` would raise for a column its ``csv`` data section names
    (``data.target``, ``data.features``, ``data.categorical``) that the file's header lacks, reading the
    header line only (:func:`~trainlab.data.csv_table.read_header`). The checks are the source's own
    (:func:`~trainlab.data.files.csv_columns`, then :func:`~trainlab.data.files.check_csv_columns`), so each
    refusal is the run's line: ``CSV file f.csv has no target column 'tgt'; did you mean 'target'? (columns:
    ...)``, or the ConfigError of an empty target, a column listed twice or a target among the features.
    Call it after :func:`check_components` (the options are those the source takes, ``target`` and ``path``
    among them) and :func:`check_data_found` (a missing file is that one's refusal). Other sources: nothing
    is checked.
    """
    import trainlab.data.builtins  # noqa: F401  (registers the built-in data sources)
    from trainlab.data import DATA_SOURCES, source_options
    from trainlab.data.csv_table import read_header
    from trainlab.data.files import check_csv_columns, csv_columns, csv_file
    from trainlab.data.paths import resolve_file

    if ":" in config.data.source or DATA_SOURCES.get(config.data.source) is not csv_file:
        return
    options = source_options(config.data)  # its option names were checked by check_components
    columns = csv_columns(**{key: options[key] for key in DATA_COLUMN_KEYS if key in options})
    file = resolve_file(options["path"], "a CSV file with a header row")
    header, _ = read_header(file, columns.delimiter)
    check_csv_columns(file, header, columns)
