"""``trainlab.fit``: train your own ``nn.Module`` on your own tensors with a strategy, in a few lines.

>>> import torch, trainlab
>>> x, y = torch.randn(256, 4), torch.randint(0, 3, (256,))
>>> result = trainlab.fit(torch.nn.Linear(4, 3), train=(x, y), val=(x[:64], y[:64]),
...                       strategy={"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
...                                 "batch_size": 32, "epochs": 2})
>>> len(result.history), sorted(result.summary["val"])[:2]
(2, ['accuracy', 'f1'])

The strategy is the ``strategy:`` section of a config (a dict, a path to a YAML
file holding one, whose folder is searched for its ``module:attr`` code as ``train(PATH)``
searches the config's, or a :class:`trainlab.config.Strategy`); ``callbacks`` are
:class:`trainlab.Callback` subclasses, run beside the built-in ones. With ``out``,
the records (metrics.jsonl, summary.json, model.safetensors, strategy.yaml) are
written there; resumable run folders come from config-driven runs (``trainlab train``).

``trainlab.fit`` has no config file, so a check shared with config runs names fit's arguments
(``task=``, ``class_names=``) and what the caller does to the arrays (pass float32 x, standardise y)
instead of the ``data.`` keys that prepare a config run's data (trainlab.run_checks.FIT_FIXES).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainlab.arguments import flag
from trainlab.atomic import write_json, write_jsonl, write_safetensors, write_text
from trainlab.builders import assemble, build_loss_for, prepare_model, run_scope
from trainlab.callbacks.base import Callback, user_callbacks
from trainlab.code_policy import config_folder_trusted
from trainlab.config import Config, Strategy, read_yaml, validate
from trainlab.config_fields import path_argument, short_repr
from trainlab.data.dataset import Dataset
from trainlab.divergence_advice import diverged_at_first_step, divergence_advice
from trainlab.errors import ConfigError, DataError, TrainingError, folder_error
from trainlab.finetune import unfreeze_all
from trainlab.fit_inputs import Arrays, as_split, fit_dataset
from trainlab.lora import merge_lora
from trainlab.losses.base import Loss
from trainlab.losses.task_fit import check_task_fits
from trainlab.models import model_name
from trainlab.notices import warn
from trainlab.records import FIT_MODEL, FIT_RECORDS, metrics_file_records, record_json_text
from trainlab.registry import Registry, strategy_registries
from trainlab.run_checks import refuse_meta_tensors
from trainlab.run_records import LABELS_RECORD, labels_record
from trainlab.run_summary import summarize, warn_if_non_finite
from trainlab.shell_command import command_line
from trainlab.time_budget import assemble_within_budget
from trainlab.user_code import user_module_file


@dataclass
class FitResult:
    """What :func:`fit` returns, as a config run records it (docs/records.md).

    ``history``: the epoch records (one per epoch: ``epoch``, ``step``, ``lr``, ``train_loss``, ``val_*``,
    and what callbacks added); ``summary``: summary.json (``val``/``test`` metrics, ``best_epoch``,
    ``stop_reason``, ...); ``model``: the trained model; ``step_records``: the step records (``"scope":
    "step"``), in order: one per ``strategy.eval_every_n_steps`` validation inside an epoch (``step``,
    fractional ``epoch``, ``lr``, ``val_*``, ``elapsed_s``) and each record a callback gave ``view.log``;
    empty when there are none. With ``out``, metrics.jsonl holds all of them and the event records,
    ordered by step. ``class_names``: the classes in the order the model's outputs index them, as a config
    run's labels.json records them (``load_run(...).class_names``): the names given (``class_names=``), or,
    for class labels that hold no 0 (1..K given ``task=``, or -1/+1), the label values as strings
    (``['1', '2', '3']``: class index 0 is label 1); None when the labels are the class indices 0..K-1
    themselves, and for regression. With ``out``, labels.json records them beside the model, as a config
    run's does.
    """

    history: list[dict[str, Any]]
    summary: dict[str, Any]
    model: torch.nn.Module
    step_records: list[dict[str, Any]] = field(default_factory=list)
    class_names: list[str] | None = None


def _strategy(strategy: dict[str, Any] | str | Path | Strategy) -> dict[str, Any]:
    if isinstance(strategy, Strategy):
        return strategy.model_dump(mode="json")
    if isinstance(strategy, str | Path):
        return _strategy_section(read_yaml(strategy), f"strategy file '{strategy}'", strategy)
    if isinstance(strategy, dict):
        strategy = _strategy_section(strategy, "the strategy dict", None)
        _refuse_component_objects(strategy)
        return dict(strategy)  # NumPy / torch numbers in it: validate() makes them plain
    raise ConfigError(f"strategy must be a dict, a YAML path or a trainlab.config.Strategy; "
                      f"got {type(strategy).__name__}")


def _strategy_folder(strategy: Any) -> Path | None:
    """The folder whose ``module:attr`` code (``loss: "mylosses:MyCE"``, a user metric) fit runs as the user's
    besides the working directory: a strategy YAML file's, as ``train(PATH)`` trusts PATH's folder; None for
    a dict or a Strategy built in Python."""
    return Path(strategy).parent if isinstance(strategy, str | Path) else None


def _strategy_section(raw: dict[str, Any], what: str, path: str | Path | None) -> dict[str, Any]:
    """The strategy of ``raw``: ``raw`` itself, or its ``strategy:`` section when it holds one alone. A whole
    config (``strategy:`` beside ``seed:``, ``metrics:``, ``data:`` ...) is one ConfigError naming the other
    sections and where fit takes each: fit would otherwise drop them without a word."""
    if not isinstance(raw.get("strategy"), Mapping):
        return raw
    others = [str(key) for key in raw if key != "strategy"]
    if not others:
        return dict(raw["strategy"])
    arguments = [f"{key}={short_repr(raw[key])}" for key in ("seed", "metrics", "runtime") if key in raw]
    inputs = [f"{key}: is fit's {argument}" for key, argument in (("data", "train=/val=/test="), ("model", "model="))
              if key in raw]
    unused = [key for key in others if key not in ("seed", "metrics", "runtime", "data", "model")]
    ways = ([f"pass {', '.join(arguments)} to fit"] if arguments else []) + inputs + (
        [f"{', '.join(unused)}: {'has' if len(unused) == 1 else 'have'} no fit argument"] if unused else [])
    whole = f", or run the whole config with `{command_line('trainlab', 'train', path)}`" if path is not None else ""
    raise ConfigError(f"{what} is a whole config (besides strategy: it holds {', '.join(others)}), but fit reads "
                      f"only a strategy: give it the strategy: section alone ({'; '.join(ways)}){whole}")


# why fit builds each component itself, not taking an object
_BUILT = {"loss": "on the run's device", "optimizer": "over the model's parameters",
          "schedule": "around the optimizer it builds", "init": "on the model it is given"}


def _refuse_component_objects(strategy: dict[str, Any]) -> None:
    """One ConfigError for a loss, optimizer, schedule or initializer given as a Python object (an
    ``nn.MSELoss()``, a ``torch.optim.SGD`` built over other parameters, a class): fit builds each from
    the strategy, as a config run does, so it takes a name, a ``{"name": ...}`` dict or a ``module:attr``
    reference (docs/extending.md). Names the registered name or the reference that fits, when one does."""
    for key, registry in strategy_registries().items():
        given = strategy.get(key)
        for value in given if key == "init" and isinstance(given, list) else [given]:
            target = value.get("name") if isinstance(value, Mapping) else value
            if target is None or isinstance(target, str | int | float | Mapping | list):
                continue  # the config's own checks word these
            where = f"strategy.{key}" + (".name" if isinstance(value, Mapping) else "")
            raise ConfigError(f"{where} is {_described(target)}; fit builds the {registry.kind} itself "
                              f"({_BUILT[key]}), so give it as a registered name, a {{'name': ..., **options}} "
                              f"dict or a 'module:attr' string naming your own {registry.kind} class "
                              f"(docs/extending.md){_named_instead(target, registry)}")


def _described(target: Any) -> str:
    if isinstance(target, type):
        return f"the class {target.__name__}"
    if callable(target) and hasattr(target, "__name__") and not isinstance(target, torch.nn.Module):
        return f"the function {target.__name__}"
    return f"an instance of {type(target).__name__}"


def _named_instead(target: Any, registry: Registry) -> str:
    """``", e.g. 'mse'"``: the registered name of the target's class (torch's ``MSELoss`` is ``mse``,
    ``SGD`` is ``sgd``), else how to give the user's own code: a loss that is no ``Loss`` subclass (a
    plain function, a lambda, a ``torch.nn`` loss) is refused as a ``module:attr`` reference too, so it
    is told to be wrapped in one (:func:`_loss_wrapped`); any other class or function by its ``module:attr``
    reference (:func:`_reference_of`); ``""`` for none."""
    factory = target if isinstance(target, type) or inspect.isfunction(target) else type(target)
    plain = factory.__name__.lower()
    for name in registry.names():
        if name.replace("_", "") in (plain, plain.removesuffix("loss"), plain.removesuffix("lr")):
            return f", e.g. '{name}'"
    if registry.kind == "loss" and not (isinstance(factory, type) and issubclass(factory, Loss)):
        return _loss_wrapped(target, factory)
    return _reference_of(factory, registry.kind)


def _importable(qualname: str) -> bool:
    """Whether ``module:qualname`` can name the object: not a lambda, nor defined inside a function
    (``<lambda>``, ``make.<locals>.MyLoss``)."""
    return all(part.isidentifier() for part in qualname.split("."))


def _reference_of(factory: Any, kind: str) -> str:
    """``", e.g. 'mymod:MyThing'"`` for a class or function of the user's own module, how to move one of
    the script (``__main__``) into a module file, how to name a lambda or one defined inside a function
    (no reference can name those), and ``""`` for torch's, trainlab's or Python's own."""
    module, qualname = factory.__module__ or "", factory.__qualname__
    file = f"my_{kind}"
    if module.split(".")[0] in ("torch", "trainlab", "builtins"):
        return ""
    if not _importable(qualname):
        if factory.__name__ == "<lambda>":
            return (f", e.g. write the lambda as a named function, def {file}(...), at the top level of a module "
                    f"file ({file}.py) and give '{file}:{file}'")
        keyword = "class" if isinstance(factory, type) else "def"
        return (f", e.g. move {factory.__name__} ({keyword} inside a function, which no reference can name) to "
                f"the top level of a module file ({file}.py) and give '{file}:{factory.__name__}'")
    if module == "__main__":
        return f", e.g. move {qualname} into a module file ({file}.py) and give '{file}:{qualname}'"
    return f", e.g. '{module}:{qualname}'"


def _loss_wrapped(target: Any, factory: Any) -> str:
    """The fix for a loss given as something other than a trainlab ``Loss`` (docs/extending.md, "A loss"):
    a plain function, a lambda or a ``torch.nn`` loss is refused as a ``module:attr`` reference too, so it
    is wrapped in a ``Loss`` subclass in a module file, named by its ``module:Class`` reference (a function
    ``my_ce``: ``class MyCe(Loss)``); a ``torch.nn.Module`` of the user's own is made a ``Loss`` subclass."""
    contract = "set target_kind and define forward(pred, target, weight=None) returning the batch mean"
    reference = "give 'my_loss:{0}' (docs/extending.md, 'A loss')"
    own_module = isinstance(factory, type) and issubclass(factory, torch.nn.Module) \
        and (factory.__module__ or "").split(".")[0] != "torch"
    if own_module:
        return (f", e.g. make {factory.__name__} a subclass of trainlab.losses.base.Loss ({contract}) at the top "
                f"level of a module file (my_loss.py) and {reference.format(factory.__name__)}")
    if inspect.isfunction(target) and target.__name__.isidentifier():
        subject, wrapper = target.__name__, "".join(part.title() for part in target.__name__.split("_")) or "MyLoss"
        wrapper = wrapper if wrapper != target.__name__ else f"{wrapper}Loss"
    elif inspect.isfunction(target):
        subject, wrapper = "the lambda", "MyLoss"
    elif isinstance(factory, type) and issubclass(factory, torch.nn.Module):  # torch's own, or one in a function
        subject, wrapper = factory.__name__, f"My{factory.__name__}"
    else:  # a callable object (functools.partial, a metric object)
        subject, wrapper = "it", "MyLoss"
    return (f"; a plain function or a torch.nn loss is refused, as a 'module:attr' reference too: wrap {subject} "
            f"in a trainlab.losses.base.Loss subclass in a module file (my_loss.py), class {wrapper}(Loss) whose "
            f"forward computes it ({contract}), and {reference.format(wrapper)}")


def fit(model: torch.nn.Module, train: Arrays | torch.utils.data.Dataset,
        strategy: dict[str, Any] | str | Path | Strategy, val: Arrays | torch.utils.data.Dataset | None = None,
        test: Arrays | torch.utils.data.Dataset | None = None, callbacks: Sequence[Callback] | None = (),
        metrics: list[str] | str | None = None, seed: int = 0, out: str | Path | None = None,
        runtime: dict[str, Any] | None = None, task: str | None = None, class_names: Iterable[str] | None = None,
        overwrite: bool = False) -> FitResult:
    """Train ``model`` on ``train`` with ``strategy``; evaluate on ``val`` each epoch and on val/test at the end.

    ``model`` is trained in place and stays on the run's device (``runtime={"device": ...}``; ``auto``
    is CUDA where present), as the Hugging Face Trainer leaves it: move it with ``.cpu()`` to use it
    with CPU tensors afterwards. ``task`` (``regression``, ``binary``, ``multiclass``, ``multilabel``)
    is ``data.task``: left out, it is inferred from the training targets as for a config run.
    ``class_names`` is ``data.class_names``: one name per class (a list, a tuple, a NumPy array or a
    pandas Index of strings, such as LabelEncoder().classes_; each name once), for labels 0..K-1 (or
    the K sorted values of labels without a 0); it sets K when some classes are missing from ``train``.
    Given without ``task``, the task is classification (binary for up to 2 names, else multiclass; 0/1
    columns stay multilabel), as a config run reads named classes; with ``task='regression'`` it is
    refused. ``metrics``: the metric names to report (a list; one name alone, ``metrics="accuracy"``, is a
    one-item list, and ``"accuracy,f1"`` two names, as in a config; None: the task's defaults; ``[]``: the
    loss only). ``callbacks``: a list (or one Callback;
    None or empty: none). ``out`` must be a new or empty folder (not the working directory), unless
    ``overwrite=True`` lets the records replace those of an earlier ``fit`` there; a folder fit created is
    removed again when fit fails before writing into it. ``finetune.freeze`` freezes the backbone for the run only: afterwards every parameter it
    froze has ``requires_grad`` True again. ``finetune.lora`` trains adapters beside the model's layers and,
    when fit ends, merges them into those layers (W + (alpha / rank) B A: peft's ``merge_and_unload``): the
    module keeps its own layers, ``state_dict`` keys and ``requires_grad`` flags, and ``out``'s weights load
    into a fresh instance of its class. Tensors given are detached (their storage shared, not copied), so
    features computed without ``torch.no_grad()`` train as plain inputs; pandas' nullable number columns
    (``Float64``, ``Int64``) are numbers (a missing value is refused as a non-finite one); sparse tensors,
    scipy.sparse matrices, dicts and generators are refused, naming the dense form to pass. A val or test
    DataFrame beside a training one is read by column name (:mod:`trainlab.fit_columns`). The model's
    outputs index the classes in the order of ``FitResult.class_names`` (labels 1..K or -1/+1 are classes
    0..K-1). A class-label loss with ``task='regression'`` given, or on soft targets (fractional values in
    [0, 1]), is one DataError saying so (:func:`trainlab.losses.task_fit.check_task_fits`).
    """
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module; got {type(model).__name__} (wrap a function in a "
                          "Module whose forward calls it)")
    refuse_meta_tensors(model)  # before is_inference(), which a lazy module's parameter refuses
    if any(parameter.is_inference() for parameter in model.parameters()):  # torch's error came at the first backward
        raise ConfigError(f"model '{model_name(model)}' was built under torch.inference_mode(): its weights are "
                          "inference tensors, which cannot be trained; build it outside that block (under "
                          "torch.no_grad() is fine), or pass a copy: copy.deepcopy(model) made outside it")
    if train is None:
        raise ConfigError("train is None; fit needs training data: (x, y) tensors or arrays, or a torch Dataset "
                          "of (x, y) pairs")
    callbacks = user_callbacks(callbacks)
    overwrite = flag("overwrite", overwrite)  # "false" is a true string: it would replace the records
    out = path_argument(out, "out") if out is not None else None  # ~ expanded: Python passes no shell
    if isinstance(strategy, str | Path):  # a YAML file's path; a dict or Strategy is read as it is
        strategy = path_argument(strategy, "strategy")
    created = _check_out(out, overwrite) if out is not None else []
    try:
        with config_folder_trusted(_strategy_folder(strategy)):
            return _fit(model, train, strategy, val, test, callbacks, metrics, seed, out, runtime, task, class_names)
    except BaseException:
        _remove_empty(created)  # the folder fit created for the records, when it failed before writing them
        raise


def _fit(model: torch.nn.Module, train: Any, strategy: Any, val: Any, test: Any, callbacks: list[Callback],
         metrics: list[str] | str | None, seed: int, out: str | Path | None, runtime: dict[str, Any] | None,
         task: str | None, class_names: Any) -> FitResult:
    given = model  # the user's module (LoRA returns a wrapper around it)
    trainable = {id(parameter): parameter.requires_grad for parameter in given.parameters()}
    splits = [as_split(train, "train"), as_split(val, "val"), as_split(test, "test")]
    with _in_fit_terms():  # the data's errors first; an unknown strategy key pointed to fit's argument
        data = fit_dataset(*splits, task, class_names, _regression_loss(strategy))
        config = validate({"name": "fit", "seed": seed, "data": {"source": "in_memory"},
                           "model": {"name": type(model).__name__}, "strategy": _strategy(strategy),
                           "metrics": _metric_names(metrics), "runtime": runtime or {},
                           "output": {"progress": "off"}})
    with run_scope(config):
        notes: dict[str, Any] = {}
        with _in_fit_terms():
            loss = build_loss_for(config, data, notes)
            check_task_fits(loss, data, task is not None, tuple(splits[0].y.shape))  # y as given, not as (N, d)
            # strategy.init and finetune.lora, as a config run does; init only on a module no fit trained yet
            model = prepare_model(_without_init_if_trained(config, model), data, model)
        # finetune.freeze freezes the user's backbone when the optimizer is built (or at the first step):
        # from there on, whether training ends or a later check of the build refuses the strategy, it is
        # given back trainable (only what the freeze froze: a parameter the user froze stays frozen)
        try:
            with _in_fit_terms():
                built = assemble_within_budget(assemble, config, data, loss, model, notes, quiet=True)
            if built.precision_warning:  # a warning, as train --quiet gives it
                warn(built.precision_warning)
            built.trainer.add_callbacks(callbacks)
            _TRAINED_MODULES.update((given, built.model))  # once training starts, its weights are fit's
            _train(built)
        finally:
            unfreeze_all(model)
            if model is not given:  # finetune.lora: the adapters merged into the user's own layers
                model = merge_lora(model, given, trainable)
        summary = summarize(built)
    warn_if_non_finite(summary)
    state = built.trainer.state
    if out is not None:
        _write_records(Path(out), built.config, state, summary, model, data)
    return FitResult(state.history, summary, model, state.step_records, data.class_names)


def _regression_loss(strategy: Any) -> str | None:
    """The strategy's loss name when it is a registered regression loss (``target_kind`` continuous: mse,
    mae, huber, smooth_l1, ...), which :func:`~trainlab.fit_inputs.fit_dataset` names beside a refusal of
    whole-number targets read as classes; None for any other loss (``auto``, a ``module:attr`` one, which is
    not imported here) and for a strategy that is refused: read before the data are checked, whose errors
    come first (the strategy's own are raised when it is validated after them)."""
    import trainlab.losses.builtins  # noqa: F401  (registers the built-in losses)
    from trainlab.losses import LOSSES

    try:
        spec = _strategy(strategy).get("loss")
    except ConfigError:
        return None
    name = spec.get("name") if isinstance(spec, Mapping) else spec
    if not isinstance(name, str) or name not in LOSSES:
        return None
    return name.lower() if getattr(LOSSES.get(name), "target_kind", None) == "continuous" else None


def _train(built: Any) -> None:
    """Run ``built``'s trainer; a diverged run's TrainingError says what to try, in fit's words."""
    try:
        built.trainer.fit()
    except TrainingError as exc:
        advice = divergence_advice(built.data, standardized_target=False,
                                   clip_grad_norm=built.config.strategy.clip_grad_norm,
                                   auto_lr=built.notes.get("lr_auto"),
                                   first_step=diverged_at_first_step(built.trainer.state.events))
        raise TrainingError(f"{exc}; {advice}") from None


# the modules a fit has trained (once training started: interrupted or failed runs too): a later fit of
# one continues from its weights, so strategy.init is not applied to it again (weak: a module that is
# gone is dropped, and the set holds no model alive)
_TRAINED_MODULES: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def _without_init_if_trained(config: Config, model: torch.nn.Module) -> Config:
    """``config`` for :func:`prepare_model`: as it is, unless ``model`` was trained by an earlier fit and
    ``strategy.init`` is set; then without the init, and one warning says so: a second fit on the same module
    continues from its trained weights (README), which re-initialising would silently throw away."""
    init = config.strategy.init
    if init is None or model not in _TRAINED_MODULES:
        return config
    specs = [one.spec() for one in (init if isinstance(init, list) else [init])]
    given = [spec["name"] if len(spec) == 1 else spec for spec in specs]  # as initialize() takes them
    shown = given[0] if len(given) == 1 else given
    from trainlab.initializers import build_initializers, images_needed

    needed = images_needed(build_initializers(specs))  # patch_whitening reads training inputs: initialize needs them
    # the fit's inputs as given (fit does not normalise them), a random sample as the fit's own init drew one
    images = (f", images=inputs[torch.randperm(len(inputs))[:{needed}]]) (inputs: the training inputs as given to "
              "fit, as a tensor)" if needed else ")")
    warn(f"strategy.init {shown!r} is skipped: this module was trained by an earlier fit and keeps its trained "
         "weights, which this fit continues from; to start from fresh weights, pass a new module, or re-initialise "
         f"this one first with trainlab.initializers.initialize(model, {shown!r}{images} and leave init out of the "
         "strategy")
    return config.model_copy(update={"strategy": config.strategy.model_copy(update={"init": None})})


def _metric_names(metrics: Any) -> list[str] | str | None:
    """fit's ``metrics``: None (the task's defaults), a list or tuple of metric names, or one name as a
    one-item list (Keras users write ``metrics="accuracy"``), names joined by commas as the config's
    ``metrics: accuracy,f1`` (the config's own rule splits them); anything else is one ConfigError naming fit's
    argument, not the config key; a function among them is told to be given by its ``module:function``
    reference (:func:`_metric_reference`)."""
    if metrics is None:
        return None
    if isinstance(metrics, str):
        return metrics  # Config's metrics validator: one name, or "accuracy,f1" split at its commas
    rule = "metrics must be a list of metric names, e.g. metrics=['accuracy', 'f1']"
    if not isinstance(metrics, list | tuple) or not all(isinstance(name, str) for name in metrics):
        functions = [(index, name) for index, name in enumerate(metrics) if callable(name)] \
            if isinstance(metrics, list | tuple) else []
        if functions:
            index, function = functions[0]
            raise ConfigError(f"{rule}; got {_described(function)} at index {index}: a metric of yours is given as "
                              f"a 'module:function' reference (docs/metrics.md): {_metric_reference(function)}")
        raise ConfigError(f"{rule}; got {short_repr(metrics)}")
    return list(metrics)


def _metric_reference(function: Any) -> str:
    """How ``function``, given to fit's ``metrics`` as an object, is named instead: by its ``module:function``
    reference when a module file of the user's defines it; a function of the script is moved into one; anything
    else (a lambda, a library's metric of another signature) is wrapped in a function of one."""
    module, name = getattr(function, "__module__", None) or "", getattr(function, "__qualname__", "")
    own = inspect.isfunction(function) and name.isidentifier()
    if own and module != "__main__" and user_module_file(module) is not None:
        return f"give it as '{module}:{name}'"
    contract = "a metric function takes (predictions, target, num_classes) and returns a number (higher is better)"
    if own and module == "__main__":
        return f"move {name} into a module file next to the script (e.g. my_metric.py) and give 'my_metric:{name}'; " \
               f"{contract}"
    return ("write def my_metric(predictions, target, num_classes) returning a number (higher is better) in a module "
            "file next to the script (e.g. my_metric.py) and give 'my_metric:my_metric'")


# the config keys the shared checks name, as fit's arguments name them
_FIT_TERMS = ((re.compile(r"data\.task: (\w+)"), r"task='\1'"), (re.compile(r"data\.task\b"), "task"),
              (re.compile(r"data\.class_names\b"), "class_names"),
              (re.compile(r"^config key '(seed|metrics)':"), r"fit's \1:"))

# an unknown strategy key's did-you-mean that names a key outside the strategy (the config's other sections)
_ELSEWHERE = re.compile(r"; did you mean '((output|runtime|data|seed|metrics)(?:\.[\w.]+)?)'\?")
# fit's own arguments for the config keys it takes apart from the strategy
_FIT_ARGUMENTS = {"seed": "seed=", "metrics": "metrics=", "runtime": "runtime={...}", "data.task": "task=",
                  "data.class_names": "class_names=", "output.dir": "out="}
# what fit can do instead of a config run's step records of the training loss (output.log_every_n_steps)
_OWN_STEP_RECORDS = ("; in fit, a Callback's on_step_end(view, loss) can log each step's loss, e.g. "
                     "view.log({'my_loss': float(loss)}), into FitResult.step_records")


def _fit_place(found: re.Match[str]) -> str:
    """The did-you-mean ``found`` (a key outside the strategy) in fit's terms: fit's argument for it
    (``seed``: seed=, ``runtime.device``: runtime={'device': ...}), or, for a key fit has no argument for
    (``output.*``: fit shows no progress, writes no checkpoints, records no step losses; ``data.*``: fit trains
    on the arrays given), that it is a config run's, and for step records of the loss a callback's way."""
    place, section = found.group(1), found.group(2)
    if place in _FIT_ARGUMENTS:
        return f"; did you mean fit's {_FIT_ARGUMENTS[place]} argument?"
    if section == "runtime":
        return f"; did you mean fit's runtime={{'{place.removeprefix('runtime.')}': ...}}?"
    if section == "data":
        return (f"; {place} is a config run's data setting, which fit has no argument for: fit trains on the "
                "train=, val= and test= data as given")
    value = "N" if place.endswith("_steps") else "..."
    how = (f"`trainlab train CONFIG --set {place}={value}`" if place != "output" else
           "an output: section of a config, `trainlab train CONFIG`")
    steps = _OWN_STEP_RECORDS if place in ("output", "output.log_every_n_steps") else ""
    return f"; fit takes no output settings: {place} is a config run's ({how}){steps}"


@contextlib.contextmanager
def _in_fit_terms() -> Iterator[None]:
    """Re-raises a :class:`ConfigError` or :class:`DataError` of the checks a config run shares with
    fit with its config keys (``data.task: binary``) named as fit's arguments (``task='binary'``), and an
    unknown strategy key's did-you-mean of a key outside the strategy as fit takes it (:func:`_fit_place`)."""
    try:
        yield
    except (ConfigError, DataError) as exc:
        message = _ELSEWHERE.sub(_fit_place, str(exc))
        for pattern, term in _FIT_TERMS:
            message = pattern.sub(term, message)
        if message == str(exc):
            raise
        raise type(exc)(message) from None


FIT_FILES = (*FIT_RECORDS, FIT_MODEL, LABELS_RECORD)  # what fit(out=...) writes: overwrite=True replaces only these


def _check_out(out: Path, overwrite: bool) -> list[Path]:
    """``out`` as the CLI's ``--out``, checked and created before training: a file, the working directory,
    a folder already holding files (without ``overwrite``), a folder holding anything but an earlier
    fit's records (:data:`FIT_FILES`, and the hidden temporaries of an interrupted write; even with
    ``overwrite``: a run folder or your own files are never written into), or a folder that cannot be
    created is refused. Returns the folders it created, deepest first (:func:`_remove_empty` on failure)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out '{out}' is a file; give a folder for the records")
    if out.resolve() == Path.cwd().resolve():
        raise ConfigError(f"out '{out}' is the working directory; give a folder of its own for the records")
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if present and not overwrite:
        raise ConfigError(f"out '{out}' already holds files; give a new folder, or overwrite=True to replace "
                          "the records of an earlier fit there")
    if others := [name for name in present if name not in FIT_FILES and not name.startswith(".")]:
        kind = "a trainlab run folder" if "run.json" in present else f"files that are not fit records ({others[0]!r})"
        raise ConfigError(f"out '{out}' holds {kind}; overwrite=True replaces only the records of an earlier "
                          f"fit ({', '.join(FIT_FILES)}): give a new folder")
    created: list[Path] = []
    try:
        # one level at a time, top down, as absolute paths: only the folders whose mkdir this call made are
        # its own (a folder that was there, or that another process made meanwhile, is never removed)
        for folder in reversed([out.absolute(), *out.absolute().parents]):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            created.insert(0, folder)
    except OSError as exc:
        _remove_empty(created)
        raise folder_error(f"out '{out}': cannot create the folder", exc) from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (deepest first) while they are empty: what fit created and wrote nothing into."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # holds something (a record written before a later failure), or is gone: keep the rest
            return


def _write_records(out: Path, config: Config, state: Any, summary: dict[str, Any], model: torch.nn.Module,
                   data: Dataset) -> None:
    """``out``'s records (FIT_RECORDS), the model, and for classes that are not the labels 0..K-1 themselves
    ``labels.json`` as a config run writes it: which label each of the model's outputs stands for."""
    from trainlab.yaml_files import yaml_dump

    out.mkdir(parents=True, exist_ok=True)
    if data.class_names is not None:
        write_json(out / LABELS_RECORD, labels_record(data.task, data.class_names))
    else:  # an earlier fit's, overwritten
        (out / LABELS_RECORD).unlink(missing_ok=True)
    write_jsonl(out / "metrics.jsonl", metrics_file_records(state.history, state.events, state.step_records))
    write_text(out / "summary.json", record_json_text(summary))  # matrix rows one a line, as a run's
    write_text(out / "strategy.yaml", yaml_dump({"strategy": config.to_dict()["strategy"]}, sort_keys=False))
    write_safetensors(out / FIT_MODEL, {k: v.contiguous() for k, v in model.state_dict().items()},
                      metadata={"trainlab": json.dumps({"format": "model"})})
