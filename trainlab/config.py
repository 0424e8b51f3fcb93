"""The run config: one validated model per concern, loaded from YAML.

Sections: ``name``, ``seed``, ``data``, ``model``, ``strategy``, ``metrics``,
``output`` and ``runtime``. ``data`` and ``model`` pass their extra keys to the
registered factory, whose signature validates them. Every other section is
strict: an unknown key is an error with a did-you-mean. A validation error is one ConfigError line
(:mod:`trainlab.config_errors` words it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from trainlab.config_errors import location, one_line
from trainlab.config_fields import (
    MAX_MODEL_SIZE,
    MAX_NAME_CHARS,
    MAX_THREADS,
    Float,
    Int,
    Named,
    Strict,
    layer_count_problem,
    name_only,
    path_argument,
    short_repr,
)
from trainlab.config_overrides import apply_overrides, override_reading
from trainlab.config_strategy import Strategy
from trainlab.errors import ConfigError
from trainlab.option_types import plain_numbers
from trainlab.registry import declare_section_keys, did_you_mean
from trainlab.yaml_files import check_tree, load_yaml_file, yaml_dump

DATA_TASKS = ("regression", "binary", "multiclass", "multilabel")  # = trainlab.data.dataset.TASKS


class DataConfig(BaseModel):
    """``data``: the source (its extra keys go to the source) plus how every source is split and scaled."""

    model_config = ConfigDict(extra="allow", frozen=True)
    source: str
    # one of DATA_TASKS; None: inferred from the targets (trainlab.data.dataset.infer_task states the rule)
    task: str | None = None
    val_fraction: Float = Field(0.2, ge=0.0, lt=1.0)  # used when the source has no val split
    test_fraction: Float = Field(0.2, ge=0.0, lt=1.0)  # used when the source has no test split
    # seeds the train/val/test split; independent of `seed`, so runs over several seeds share one split
    split_seed: Int = Field(0, ge=0)
    nan_policy: Literal["error", "drop"] = "error"
    # z-score tabular features with the training split's mean/std; None: the source's default
    # (on for csv and the scikit-learn sets, off for npz and the rest)
    standardize: bool | None = None
    standardize_target: bool = False  # z-score regression targets; metrics stay in original units
    # binary: the class that is class 1, the positive class of precision/recall/f1 and pos_weight (the
    # rare one, say); None: the second in sorted order (trainlab.data.positive_class)
    # StrictBool: YAML's yes/no/true/on, matched to the class it spells (1.0 stays a number, not True)
    positive_class: StrictBool | str | Int | None = None

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str | None) -> str | None:
        if value is not None and value not in DATA_TASKS:
            raise ValueError(f"data.task must be one of {', '.join(DATA_TASKS)} (or left out to infer it); "
                             f"got {short_repr(value)}{did_you_mean(value, list(DATA_TASKS))}")
        return value

    @field_validator("positive_class", mode="before")
    @classmethod
    def _one_class(cls, value: Any) -> Any:
        # a name, a whole number (unnamed labels) or a YAML boolean word; else one line saying so, not the
        # union's first arm ("Input should be a valid boolean")
        whole = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
        if value is None or isinstance(value, bool | str) or whole:
            return value
        raise ValueError(f"data.positive_class names one class (a class name, or 0 or 1 for unnamed labels); got "
                         f"{short_repr(value)}")

    @model_validator(mode="after")
    def _no_name_key(self) -> DataConfig:
        # the source is looked up as {"name": source, **options}: a data.name would replace the source
        if "name" in (self.model_extra or {}):
            name = self.model_extra["name"]
            raise ValueError(f"data.name ({name!r}) is not a data option: the data section names its source "
                             f"with data.source (here {self.source!r}); for that set, write source: {name}")
        return self

    def source_kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# a data key no source takes is reported by the source's signature: let it suggest these keys too
declare_section_keys("data source", "data", DataConfig.model_fields)


class ModelConfig(Named):
    @model_validator(mode="after")
    def _bounded_sizes(self) -> ModelConfig:
        for key, value in (self.model_extra or {}).items():
            sizes = value if isinstance(value, list) else [value]
            for size in sizes:
                # a whole-number float too: an int option reads 5000000.0 as 5000000 (trainlab.option_types)
                whole = isinstance(size, int) and not isinstance(size, bool) or isinstance(size, float) \
                    and size.is_integer()
                if whole and abs(size) > MAX_MODEL_SIZE:
                    raise ValueError(f"option '{key}' holds {size}, beyond the sizes trainlab builds "
                                     f"(at most {MAX_MODEL_SIZE:,} per layer); got {short_repr(value)}")
        # the depth too, here as the config loads: hidden: [4] * 90000 is refused before any data is read
        problem = layer_count_problem(self.name, self.model_extra or {})
        if problem is not None:
            raise ValueError(problem)
        return self


# (section, key) -> default of keys added after runs were recorded: at their default they are left out of
# the hash, so a config that does not use them keeps the hash it had before they existed
ADDED_OPTIONAL_KEYS = {("strategy", "tta"): None, ("strategy", "weight_averaging"): None,
                       ("strategy", "min_steps"): None, ("strategy", "group_by_length"): False,
                       ("strategy", "time_budget_s"): None,
                       ("runtime", "compile"): False, ("runtime", "deterministic"): False,
                       ("data", "positive_class"): None}


class CheckpointConfig(Strict):
    # default: every 30 s of training and at the end (a SIGKILL loses at most 30 s of work);
    # every_n_steps: 1 loses at most the last step, at the cost of a checkpoint written and fsynced every step
    # (and metrics.jsonl rewritten with it when that step added a record: log_every_n_steps: 1)
    every_n_steps: Int | None = Field(None, ge=1)
    every_n_epochs: Int | None = Field(None, ge=1)
    every_seconds: Float | None = Field(30.0, gt=0.0)
    keep_last: Int = Field(2, ge=1)  # the best checkpoint is kept besides these
    # once the run finished: "last" keeps best/ and the newest checkpoint (a fine-tune's checkpoints
    # are several times the model), "all" keeps what keep_last kept, "none" deletes every checkpoint
    keep_after_finish: Literal["none", "last", "all"] = "last"

    @field_validator("keep_after_finish", mode="before")
    @classmethod
    def _yaml_none(cls, value: Any) -> Any:
        # YAML's false/off/no read as the boolean: keep nothing; null (an empty value, `--set ...=`) is the
        # default, as everywhere else in the config (it used to mean "none" and deleted every checkpoint)
        if value is None:
            return cls.model_fields["keep_after_finish"].default
        return "none" if value is False else value


LOGGERS = ("tensorboard", "csv")  # trainlab.callbacks.loggers.LOGGERS builds each


class OutputConfig(Strict):
    dir: str | None = None  # default runs/<name>-<UTC timestamp>
    progress: Literal["auto", "on", "off"] = "auto"  # "auto": a bar on a TTY, a log line every N s elsewhere
    log_every_seconds: Float = Field(30.0, gt=0.0)  # the plain progress line's cadence when not on a TTY
    log_every_n_steps: Int | None = Field(None, ge=1)  # step records: train loss, LR, grad norm, samples/s
    checkpoint: CheckpointConfig = CheckpointConfig()
    loggers: list[str] = []  # records also go to: tensorboard (<run>/tensorboard/), csv (<run>/metrics.csv)
    # summary.json's "train" block: the final weights evaluated on the training split as val/test are (eval mode,
    # no augmentation), the train side of the overfitting gap; false skips that pass (a large training set)
    evaluate_train: bool = True

    @field_validator("dir")
    @classmethod
    def _folder_path(cls, value: str | None) -> str | None:
        # "" was read as "no dir" (runs/<name>-<timestamp>) and " " made a folder named by a space; "~/x" made
        # ./~/x: expanded here as a shell and every CLI tool would
        if value is None:
            return None
        if not value.strip():
            raise ValueError(f"must be a folder path, or left out for runs/<name>-<UTC timestamp>; got {value!r}")
        expanded = os.path.expanduser(value)
        if expanded.startswith("~"):
            raise ValueError(f"cannot expand {short_repr(value)}: no such user (write the folder's full path)")
        return expanded

    @field_validator("progress", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("loggers", mode="before")
    @classmethod
    def _known_loggers(cls, value: Any) -> Any:
        if isinstance(value, str):  # loggers: tensorboard
            value = [value]
        if not isinstance(value, list):
            raise ValueError(f"must be a list of logger names ({', '.join(LOGGERS)})")
        for name in value:
            if name == "mlflow":
                raise ValueError("the mlflow logger is not available (its package brings about 23 others: "
                                 "docs/loggers.md); use tensorboard or csv")
            if name not in LOGGERS:
                raise ValueError(f"unknown logger {short_repr(name)}{did_you_mean(str(name), list(LOGGERS))} "
                                 f"(valid: {', '.join(LOGGERS)})")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a logger twice; got {short_repr(value)}")
        return value


class RuntimeConfig(Strict):
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # "auto": CUDA when present
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"  # autocast dtype; "auto" picks bf16 where fast
    num_threads: Int | None = Field(None, ge=1, le=MAX_THREADS)  # torch intra-op threads; None keeps torch's default
    channels_last: bool = False  # NHWC memory layout for conv nets (faster convolutions on CPU and GPU)
    compile: bool = False  # torch.compile the model's forward passes (the first steps compile; C++ compiler on CPU)
    # deterministic kernels (trainlab.runtime.deterministic_algorithms): a GPU run repeats to the bit, as a resumed
    # one must (cuDNN's convolution backward and some cuBLAS paths do not otherwise); a CPU run does either way
    deterministic: bool = False


class Config(Strict):
    name: str = "run"  # a folder name: runs/<name>-<UTC timestamp>
    seed: Int = Field(0, ge=0, lt=2**63)
    data: DataConfig
    model: ModelConfig
    strategy: Strategy
    metrics: list[str] | None = None  # None: accuracy/precision/recall/f1 or mse/mae/r2 by task; []: the loss only
    output: OutputConfig = OutputConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    # the folder load_config read the file from (None: built in Python, or a run folder's config.yaml): its
    # module:attr code is the user's as trainlab.experiment.train(PATH) trusts it; not a field, so neither
    # in to_dict (config.yaml) nor in the hash; == (pydantic's) tells configs of two folders apart: the same
    # module:attr names may be other code there
    _folder: Path | None = PrivateAttr(None)

    _to_named = field_validator("model", mode="before")(classmethod(lambda cls, v: name_only(v)))

    @property
    def source_folder(self) -> Path | None:
        """The (resolved) folder of the YAML file :func:`load_config` read; None for a config built in Python
        (:func:`validate`) and for a run folder's config.yaml read with ``follow_links=False``. ``train`` of
        this config trusts that folder's ``module:attr`` code as ``train(PATH)`` does (docs/security.md)."""
        return self._folder

    @field_validator("metrics", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        # ``metrics: accuracy`` (or --set metrics=accuracy) is the list of that one name, as fit(metrics=...);
        # ``--set metrics=accuracy,f1`` (no metric name holds a comma) the list of those names
        if isinstance(value, str):  # a trailing comma (accuracy,) adds no name
            names = [name.strip() for name in value.split(",") if name.strip()] if "," in value else [value]
            return names or [value]
        return value

    @field_validator("metrics")
    @classmethod
    def _empty_is_loss_only(cls, value: list[str] | None) -> list[str] | None:
        # an empty list asks for no metrics besides the loss (Keras's metrics=[]), not for the defaults
        if value is not None:
            twice = next((name for index, name in enumerate(value) if name in value[:index]), None)
            if twice is not None:  # one column of the records, computed twice
                raise ValueError(f"lists the metric {short_repr(twice)} twice; got {short_repr(value)}")
        return ["loss"] if value == [] else value

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        rule = (f"must be a folder name of 1 to {MAX_NAME_CHARS} characters without '/', '\\', NUL or "
                "control characters, and not '.' or '..'")
        if (not value or len(value) > MAX_NAME_CHARS or value in {".", ".."}
                or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value)):
            shown = short_repr(value) if len(value) <= MAX_NAME_CHARS else f"{len(value)} characters"
            raise ValueError(f"{rule}; got {shown}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)

    def hash(self) -> str:
        """:func:`json_digest` of :meth:`results_dict`."""
        return json_digest(self.results_dict())

    def results_dict(self) -> dict[str, Any]:
        """The resolved config as JSON data without what does not change a run's results (output paths,
        loggers, the train-split evaluation, what is kept after finishing) and without keys added later that
        sit at their default (:data:`ADDED_OPTIONAL_KEYS`), so that it stays the same across trainlab versions."""
        payload = self.to_dict()
        # where and how a run is recorded does not change its results: output paths, loggers, the summary's
        # train-split evaluation and what is kept after finishing stay out of the hash (so adding them kept
        # old hashes)
        output = {k: v for k, v in payload["output"].items() if k not in ("dir", "loggers", "evaluate_train")}
        output["checkpoint"] = {k: v for k, v in output["checkpoint"].items() if k != "keep_after_finish"}
        payload["output"] = output
        for (section, key), default in ADDED_OPTIONAL_KEYS.items():
            if key in payload[section] and payload[section][key] == default:
                payload[section].pop(key)
        regularization = payload["strategy"]["regularization"]
        if regularization.get("weight_decay") is None:  # unset keeps the hash it had as the old default 0.0
            regularization["weight_decay"] = 0.0
        elif regularization["weight_decay"] == 0:  # decay off: another run than unset, so another hash
            regularization["weight_decay"] = "off"
        return payload


def json_digest(payload: Any) -> str:
    """SHA-256 (first 16 hex digits) of ``payload`` as JSON with sorted keys: a config's identity in records."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- loading

def read_yaml(path: str | Path, follow_links: bool = True) -> dict[str, Any]:
    """A run config file's mapping of sections (:func:`load_yaml_file`; a link refused unless ``follow_links``)."""
    raw = load_yaml_file(path, follow_links=follow_links)
    if raw is None:
        raise ConfigError(f"config {path} is empty; it needs the sections data, model and strategy")
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a YAML mapping of sections; got {type(raw).__name__}")
    return raw


def validate(raw: dict[str, Any], overrides: Sequence[str] = ()) -> Config:
    """``raw`` as a :class:`Config`; the first problem is one ConfigError line. ``overrides``: the ``--set``
    texts applied to ``raw``; when the bad key is one of them, the line also says how YAML read its value
    (:func:`override_reading`)."""
    return _validated(Config, raw, overrides)


class DataAndSeed(BaseModel):
    """What ``trainlab advise`` reads of a config of a ``data`` section alone: ``seed`` and ``data``, validated as
    :class:`Config` validates them; :class:`Config`'s other sections may be there (not read, so not checked),
    any other top-level key is refused as :class:`Config` refuses it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: Int = Config.model_fields["seed"]
    data: DataConfig
    name: Any = None
    model: Any = None
    strategy: Any = None
    metrics: Any = None
    output: Any = None
    runtime: Any = None


def validate_data_and_seed(raw: dict[str, Any], overrides: Sequence[str] = ()) -> DataAndSeed:
    """``raw``'s ``seed`` and ``data`` as :class:`DataAndSeed`; errors as :func:`validate`'s."""
    return _validated(DataAndSeed, raw, overrides)


def _validated(model: type[Any], raw: dict[str, Any], overrides: Sequence[str]) -> Any:
    check_tree(raw)
    raw = plain_numbers(raw)  # a config dict built in Python: NumPy / torch numbers as the plain ones YAML holds
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = location(first["loc"], raw)
        # a validator's own refusal (an unknown logger in a list) took the value's kind: how YAML read it is no clue
        # nor for a missing key (quoting the mapping that lacks it is no fix), an unknown one (the key is wrong) or
        # a section given no mapping (its one-word form is a registered name, checked only when it is built)
        refused = ("value_error", "assertion_error", "missing", "extra_forbidden", "model_type")
        wants_number = first["type"].startswith(("int_", "float_"))  # pydantic's int_type, float_parsing, ...
        choices = first.get("ctx", {}).get("expected") if first["type"] == "literal_error" else None
        reading = "" if first["type"] in refused else override_reading(
            where, overrides, wants_number, choices, fits=lambda key, value: _fits_at(model, raw, key, value))
        raise ConfigError(one_line(exc, raw, Config) + reading) from None
    except RecursionError:
        raise ConfigError("config is nested too deeply to validate") from None


def _fits_at(model: type[Any], raw: dict[str, Any], key: str, value: Any) -> bool:
    """Whether ``raw`` with dotted ``key`` set to ``value`` validates as ``model`` at that key: no error at
    ``key`` or under it (errors elsewhere in ``raw`` are not this value's). ``raw`` is left as it is (the
    sections on the key's path are copied); a path through a value that is no mapping: False."""
    path = key.split(".")
    changed = dict(raw)
    node = changed
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            return False
        node[part] = node = dict(child)
    node[path[-1]] = value
    try:
        model.model_validate(changed)
    except ValidationError as exc:
        places = (location(error["loc"], changed) for error in exc.errors())
        return not any(place == key or place.startswith(key + ".") for place in places)
    except (RecursionError, TypeError, ValueError):
        return False
    return True


def load_config(path: str | Path, overrides: str | list[str] | tuple[str, ...] = (), follow_links: bool = True) -> Config:
    """Read, override (``--set``: ``"key=value"`` strings, or one such string) and validate a YAML config.
    The config remembers the file's folder (:attr:`Config.source_folder`), which ``train(config)`` trusts for
    ``module:attr`` code as ``train(path)`` does. ``follow_links=False`` for a run folder's config.yaml: a
    symbolic link there is refused and no folder is remembered (someone else's code: docs/security.md), and
    it is read as its run read it (:func:`_as_written`)."""
    from trainlab.arguments import overrides as override_texts

    texts = list(override_texts("overrides", overrides))  # a dict or a number: one ConfigError saying what is valid
    raw = read_yaml(path, follow_links)
    config = validate(apply_overrides(raw if follow_links else _as_written(raw, path), texts), texts)
    if follow_links:  # the user's own file: its folder is remembered (Config.source_folder); a run folder's is not
        config._folder = Path(path).parent.resolve()
    return config


def as_config(config: Config | str | Path | dict[str, Any]) -> Config:
    """A :class:`Config` as it is, a YAML path read (:func:`load_config`; a leading ``~`` expanded), a dict
    validated."""
    if isinstance(config, Config):
        return config
    if isinstance(config, str | Path):
        return load_config(path_argument(config, "config"))
    if isinstance(config, dict):
        return validate(config)
    raise ConfigError(f"config must be a trainlab Config, a YAML path or a dict; got {type(config).__name__}")


# the first line of every config a run writes since ``regularization.weight_decay`` took null for unset: a run
# folder's config.yaml without it was written when 0.0 meant unset (:func:`load_config` reads it so)
WRITTEN_MARK = "# trainlab run config 2 (regularization.weight_decay: null is the optimizer's default, 0 is none)"


def dump_yaml(config: Config) -> str:
    """The config as a run folder's config.yaml: :data:`WRITTEN_MARK`, then the resolved config."""
    return f"{WRITTEN_MARK}\n{yaml_dump(config.to_dict(), sort_keys=False)}"


def _as_written(raw: Any, path: str | Path) -> Any:
    """A run folder's config as its run read it: ``regularization.weight_decay: 0.0`` in a config.yaml written
    before :data:`WRITTEN_MARK` was the default, unset (the optimizer's own decay, adamw's 0.01), not 0."""
    regularization = (raw.get("strategy") or {}).get("regularization") if isinstance(raw, dict) else None
    if not isinstance(regularization, dict) or regularization.get("weight_decay") != 0:
        return raw
    with open(path, encoding="utf-8", errors="replace") as file:
        if file.readline().rstrip("\r\n") == WRITTEN_MARK:
            return raw
    regularization["weight_decay"] = None
    return raw
