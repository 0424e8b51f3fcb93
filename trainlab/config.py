"""The run config: one validated model per concern, loaded from YAML.

Sections: ``name``, ``seed``, ``data``, ``model``, ``strategy``, ``metrics``,
``output`` and ``runtime``. ``data`` and ``model`` pass their extra keys to the
registered factory, whose signature validates them. Every other section is
strict: an unknown key is an error with a did-you-mean.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import reprlib
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from trainlab.errors import ConfigError
from trainlab.registry import did_you_mean

INT_LIMIT = 2**63  # every count fits a signed 64-bit integer (torch, numpy)


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, not a boolean; got {value}")
    if isinstance(value, int) and abs(value) >= INT_LIMIT:
        raise ValueError(f"must be an integer below 2**63; got {_short(value)}")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]  # YAML's yes/no/true are not counts

# A config is a few hundred values; these bounds turn hostile or mistyped files into one line
# before anything big is built (YAML alias bombs, absurd layer sizes, thread counts).
MAX_CONFIG_BYTES = 1 << 20  # 1 MiB of YAML
MAX_CONFIG_NODES = 100_000  # values in the config with every alias expanded
MAX_CONFIG_DEPTH = 64  # nesting of mappings and lists
MAX_MODEL_SIZE = 1_000_000  # any integer model option (a layer width, a channel count)
MAX_THREADS = 1024
MAX_NAME_CHARS = 200  # the folder runs/<name>-<timestamp> must fit NAME_MAX (255 bytes)

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple, _REPR.maxset = 2, 4, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def _short(value: Any) -> str:
    """A repr of at most ~80 characters, whatever ``value`` holds (bounded depth and breadth)."""
    shown = _REPR.repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Named(BaseModel):
    """A component: ``name`` plus keyword arguments for its factory."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    def spec(self) -> dict[str, Any]:
        return self.model_dump()


def _name_only(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


DATA_TASKS = ("regression", "binary", "multiclass", "multilabel")  # = trainlab.data.dataset.TASKS


class DataConfig(BaseModel):
    """``data``: the source (its extra keys go to the source) plus how every source is split and scaled."""

    model_config = ConfigDict(extra="allow", frozen=True)
    source: str
    # one of DATA_TASKS; None: inferred from the targets (trainlab.data.dataset.infer_task states the rule)
    task: str | None = None
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)  # used when the source has no val split
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)  # used when the source has no test split
    # seeds the train/val/test split; independent of `seed`, so runs over several seeds share one split
    split_seed: Int = Field(0, ge=0)
    nan_policy: Literal["error", "drop"] = "error"
    # z-score tabular features with the training split's mean/std; None: the source's default
    # (on for csv and the scikit-learn sets, off for npz and the rest)
    standardize: bool | None = None
    standardize_target: bool = False  # z-score regression targets; metrics stay in original units

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str | None) -> str | None:
        if value is not None and value not in DATA_TASKS:
            raise ValueError(f"data.task must be one of {', '.join(DATA_TASKS)} (or left out to infer it); "
                             f"got {value!r}")
        return value

    def source_kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelConfig(_Named):
    @model_validator(mode="after")
    def _bounded_sizes(self) -> ModelConfig:
        for key, value in (self.model_extra or {}).items():
            sizes = value if isinstance(value, list) else [value]
            for size in sizes:
                if isinstance(size, int) and not isinstance(size, bool) and abs(size) > MAX_MODEL_SIZE:
                    raise ValueError(f"option '{key}' holds {size}, beyond the sizes trainlab builds "
                                     f"(at most {MAX_MODEL_SIZE:,} per layer); got {_short(value)}")
        return self


class LossConfig(_Named):
    pass


class OptimizerGroupConfig(BaseModel):
    """One entry of ``strategy.optimizer.groups`` (trainlab.optim.routing): a selector plus overrides.

    The selector fields given must all hold; the first group that selects a parameter takes it.
    Extra keys are options of the group's optimizer (momentum, betas, ns_steps, ...).
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str | None = None  # a label (in param_groups' "route"); default group<i>
    select: str | None = None  # preset: conv_filters, linear_weights, norm_weights, norm_biases, biases, head
    match: str | None = None  # fnmatch glob on the parameter's name, e.g. "*norm*.bias", "head.*"
    regex: str | None = None  # re.search on the parameter's name
    ndim: Int | None = Field(None, ge=0)  # the tensor's number of dimensions equals this
    ndim_at_least: Int | None = Field(None, ge=0)
    optimizer: str | None = None  # None: strategy.optimizer.name (and its options)
    lr: float | None = Field(None, gt=0.0)  # None: strategy.optimizer.lr; the schedule scales this base lr
    weight_decay: float | None = Field(None, ge=0.0)  # applies to every parameter of the group, biases too


class OptimizerConfig(_Named):
    # None: the optimizer's own default (1e-3 for Adam, 1.0 for Prodigy/L-BFGS); "auto": LR range test
    lr: float | Literal["auto"] | None = None
    # per-parameter-group routing (docs/param_groups.md); left out of dumps when unset (config hashes)
    groups: list[OptimizerGroupConfig] | None = Field(None, exclude_if=lambda value: value is None)

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not value > 0:
            raise ValueError(f"must be > 0; got {value}")
        return value

    @model_validator(mode="after")
    def _groups_have_lrs(self) -> OptimizerConfig:
        if self.groups is not None and not self.groups:
            raise ValueError("groups must list at least one group (or be left out)")
        if self.groups and self.lr == "auto":
            raise ValueError("lr: auto cannot be combined with groups (each group has its own base lr); "
                             "give lr a number")
        return self

    def spec(self) -> dict[str, Any]:
        """The top-level optimizer's factory spec (name, lr, options), without ``groups``."""
        return {k: v for k, v in self.model_dump().items() if k != "groups"}


class ScheduleConfig(_Named):
    pass


class InitConfig(_Named):
    pass


class Regularization(_Strict):
    l1: float = Field(0.0, ge=0.0)  # coefficient of sum |w| added to the loss
    l2: float = Field(0.0, ge=0.0)  # coefficient of sum w^2 added to the loss
    weight_decay: float = Field(0.0, ge=0.0)  # decoupled: w <- w - lr * wd * w, not on biases/norms


class EarlyStoppingConfig(_Strict):
    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: Int = Field(10, ge=0)  # epochs without improvement before stopping
    min_delta: float = Field(0.0, ge=0.0)
    restore_best: bool = True


class DivergenceConfig(_Strict):
    policy: Literal["stop", "rollback", "off"] = "stop"

    # a spike: loss > median + spike_factor * max(1.4826 * MAD, starting loss / 4) of the recent window
    # (callbacks/divergence_guard.py); 50 means nothing below median + 12.5 x the starting loss, or below
    # median + 74 robust sigmas (single-sample losses are heavy-tailed), is a spike
    spike_factor: float = Field(50.0, gt=0.0)
    window: Int = Field(50, ge=5)  # steps in the running median
    lr_factor: float = Field(0.5, gt=0.0, lt=1.0)  # LR multiplier after each rollback
    max_rollbacks: Int = Field(3, ge=0)

    @field_validator("policy", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


class WeightAveragingConfig(_Strict):
    """Averaged weights for evaluation and the saved model (formulas: trainlab/engine/weight_averaging.py)."""

    kind: Literal["ema", "lookahead"]  # ema: a shadow copy; lookahead: training restarts from the average
    decay: float = Field(0.999, gt=0.0, lt=1.0)  # per optimizer step; an update uses decay ** every_n_steps
    every_n_steps: Int = Field(1, ge=1)  # optimizer steps between averaging updates (airbench: 5)
    start_epochs: float = Field(0.0, ge=0.0)  # averaging begins after this many epochs (airbench: 3)
    decay_power: float = Field(0.0, ge=0.0)  # airbench: decay x (step / total steps) ** power (3); 0: constant
    warmup: bool = False  # cap the k-th update's decay at (1 + k) / (10 + k) (TensorFlow's EMA num_updates)

    @model_validator(mode="before")
    @classmethod
    def _kind_only(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value  # `weight_averaging: ema`


class Lora(_Strict):
    rank: Int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0.0)  # the update is scaled by alpha / rank
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None  # None: every Linear/Conv of the backbone


class Finetune(_Strict):
    freeze: bool = False  # freeze the backbone, train the head only (feature extraction)
    unfreeze_after_epochs: Int | None = Field(None, ge=1)  # gradual unfreezing (needs freeze)
    layerwise_lr_decay: float | None = Field(None, gt=0.0, le=1.0)  # lr x decay^k for the k-th layer below the head
    lora: Lora | None = None  # low-rank adapters through peft (the 'lora' extra)


# (section, key) -> default of keys added after runs were recorded: at their default they are left out of
# the hash, so a config that does not use them keeps the hash it had before they existed
ADDED_OPTIONAL_KEYS = {("strategy", "tta"): None, ("strategy", "weight_averaging"): None,
                       ("strategy", "min_steps"): None, ("strategy", "group_by_length"): False}


class TTAConfig(_Strict):
    """``strategy.tta``: test-time augmentation at evaluation (trainlab.engine.tta; docs/augmentation.md)."""

    flip: bool = True  # also predict on the left-right mirror and average
    translate: Int = Field(1, ge=0)  # also on the views shifted by -/+ this many pixels (reflect); 0: none
    when: Literal["final", "always"] = "final"  # final: summary val/test and `trainlab eval`; always: every validation


class Strategy(_Strict):
    loss: LossConfig
    optimizer: OptimizerConfig
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"] = 32  # "full": batch gradient descent
    epochs: Int | None = Field(None, ge=1)
    max_steps: Int | None = Field(None, ge=1)
    # a step budget: epochs = max(epochs, ceil(min_steps / steps_per_epoch)), so small datasets still
    # get enough optimizer steps (trainlab.engine.step_budget); needs epochs, capped by max_steps
    min_steps: Int | None = Field(None, ge=1)
    # batches of texts of similar length (the HF Trainer's group_by_length): less padding with a model
    # that pads each batch to its longest text (trainlab.engine.batching.length_grouped_order)
    group_by_length: bool = False
    schedule: ScheduleConfig = ScheduleConfig(name="constant")
    regularization: Regularization = Regularization()
    clip_grad_norm: float | None = Field(None, gt=0.0)
    clip_grad_value: float | None = Field(None, gt=0.0)
    grad_accum_steps: Int = Field(1, ge=1)
    eval_every_n_steps: Int | None = Field(None, ge=1)  # also validate mid-epoch (step records in metrics.jsonl)
    early_stopping: EarlyStoppingConfig | None = None
    init: InitConfig | list[InitConfig] | None = None  # one initializer or a list applied in order
    divergence: DivergenceConfig = DivergenceConfig()
    finetune: Finetune | None = None
    tta: TTAConfig | None = None  # true: flip + translate 1 (airbench's tta_level 2), only at the final evaluation
    weight_averaging: WeightAveragingConfig | None = None  # EMA / lookahead weights for evaluation and saving

    _to_named = field_validator("loss", "optimizer", "schedule", "init", mode="before")(
        classmethod(lambda cls, v: [_name_only(one) for one in v] if isinstance(v, list) else _name_only(v))
    )

    @field_validator("tta", mode="before")
    @classmethod
    def _tta_switch(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {} if value else None
        if value is not None and not isinstance(value, dict | TTAConfig):
            raise ValueError(f"must be true, false or a mapping with keys flip, translate, when; got {_short(value)}")
        return value

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if isinstance(value, bool) or (not isinstance(value, int) and value != "full"):
            raise ValueError(f"must be a positive int or 'full'; got {value!r}")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be a positive int or 'full'; got {value}")
        return value

    @model_validator(mode="after")
    def _some_stop(self) -> Strategy:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set 'epochs' or 'max_steps' (or both)")
        return self


class CheckpointConfig(_Strict):
    # default: every 30 s of training and at the end (a SIGKILL loses at most 30 s of work);
    # every_n_steps: 1 loses at most the last step, at the cost of one fsynced write per step
    every_n_steps: Int | None = Field(None, ge=1)
    every_n_epochs: Int | None = Field(None, ge=1)
    every_seconds: float | None = Field(30.0, gt=0.0)
    keep_last: Int = Field(2, ge=1)  # the best checkpoint is kept besides these
    # once the run finished: "last" keeps best/ and the newest checkpoint (a fine-tune's checkpoints
    # are several times the model), "all" keeps what keep_last kept, "none" deletes every checkpoint
    keep_after_finish: Literal["none", "last", "all"] = "last"

    @field_validator("keep_after_finish", mode="before")
    @classmethod
    def _yaml_none(cls, value: Any) -> Any:
        return "none" if value is None or value is False else value


LOGGERS = ("tensorboard", "csv")  # trainlab.callbacks.loggers.LOGGERS builds each


class OutputConfig(_Strict):
    dir: str | None = None  # default runs/<name>-<UTC timestamp>
    progress: Literal["auto", "on", "off"] = "auto"  # "auto": a bar on a TTY, a log line every N s elsewhere
    log_every_seconds: float = Field(30.0, gt=0.0)  # the plain progress line's cadence when not on a TTY
    log_every_n_steps: Int | None = Field(None, ge=1)  # step records: train loss, LR, grad norm, samples/s
    checkpoint: CheckpointConfig = CheckpointConfig()
    loggers: list[str] = []  # records also go to: tensorboard (<run>/tensorboard/), csv (<run>/metrics.csv)

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
                raise ValueError("the mlflow logger is not available (see docs/loggers.md); use tensorboard or csv")
            if name not in LOGGERS:
                raise ValueError(f"unknown logger {_short(name)}{did_you_mean(str(name), list(LOGGERS))} "
                                 f"(valid: {', '.join(LOGGERS)})")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a logger twice; got {_short(value)}")
        return value


class RuntimeConfig(_Strict):
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # "auto": CUDA when present
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"  # autocast dtype; "auto" picks bf16 where fast
    num_threads: Int | None = Field(None, ge=1, le=MAX_THREADS)  # torch intra-op threads; None keeps torch's default
    channels_last: bool = False  # NHWC memory layout for conv nets (faster convolutions on CPU and GPU)


class Config(_Strict):
    name: str = "run"  # a folder name: runs/<name>-<UTC timestamp>
    seed: Int = Field(0, ge=0, lt=2**63)
    data: DataConfig
    model: ModelConfig
    strategy: Strategy
    metrics: list[str] | None = None  # None: accuracy/precision/recall/f1 or mse/mae/r2 by task
    output: OutputConfig = OutputConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    _to_named = field_validator("model", mode="before")(classmethod(lambda cls, v: _name_only(v)))

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        rule = (f"must be a folder name of 1 to {MAX_NAME_CHARS} characters without '/', '\\', NUL or "
                "control characters, and not '.' or '..'")
        if (not value or len(value) > MAX_NAME_CHARS or value in {".", ".."}
                or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in value)):
            shown = _short(value) if len(value) <= MAX_NAME_CHARS else f"{len(value)} characters"
            raise ValueError(f"{rule}; got {shown}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)

    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the resolved config, excluding output paths."""
        payload = self.to_dict()
        # where and how a run is recorded does not change its results: output paths, loggers and
        # what is kept after finishing stay out of the hash (so adding them kept old hashes)
        output = {k: v for k, v in payload["output"].items() if k not in ("dir", "loggers")}
        output["checkpoint"] = {k: v for k, v in output["checkpoint"].items() if k != "keep_after_finish"}
        payload["output"] = output
        for (section, key), default in ADDED_OPTIONAL_KEYS.items():
            if key in payload[section] and payload[section][key] == default:
                payload[section].pop(key)
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------- errors

def _location(loc: tuple[Any, ...]) -> str:
    # pydantic puts union-branch names ("int", "literal['full']") into locs; drop them
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in {"int", "float", "str"}))]
    return ".".join(parts)


def _fields_at(model: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _one_line(error: ValidationError, raw: dict[str, Any]) -> str:
    first = error.errors()[0]
    where = _location(first["loc"])
    if first["type"] == "extra_forbidden":
        path = where.split(".")
        valid = _fields_at(Config, path[:-1])
        hint = did_you_mean(path[-1], valid)
        return f"unknown config key '{where}'{hint} (valid: {', '.join(valid)})"
    if first["type"] == "missing":
        return f"config key '{where}' is required"
    message = first["msg"].removeprefix("Value error, ")
    if len(message) > 300:
        message = message[:297] + "..."
    got = first.get("input")
    if isinstance(got, dict) or "got" in message:
        return f"config key '{where or 'config'}': {message}"
    return f"config key '{where or 'config'}': {message}; got {_short(got)}"


# --------------------------------------------------------------------------- loading

class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: SafeLoader's own error says so
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{str(key)[:60]}' (first at line {first})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 -- a SafeLoader subclass


def check_tree(raw: Any, origin: str = "config", where: str = "") -> None:
    """Refuse before validation what would blow up later: alias bombs, deep nesting, non-finite floats.

    The size counts every value with YAML aliases expanded (a shared list counts once per use), memoised
    per object, so a billion-laughs file is measured in time linear in its text, not in its expansion.
    """
    sizes: dict[int, int] = {}

    def size(node: Any, path: str, depth: int) -> int:
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{origin} is nested deeper than {MAX_CONFIG_DEPTH} levels at '{path}'")
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"config key '{path or 'config'}': must be a finite number; got {node}")
        if not isinstance(node, dict | list):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = MAX_CONFIG_NODES + 1  # a cycle (a self-referencing alias) is unbounded
        items = node.items() if isinstance(node, dict) else enumerate(node)
        total = 1
        for key, child in items:
            total += size(child, f"{path}.{key}" if path else str(key), depth + 1)
            if total > MAX_CONFIG_NODES:
                break
        sizes[id(node)] = total
        if total > MAX_CONFIG_NODES:
            raise ConfigError(f"{origin} expands to more than {MAX_CONFIG_NODES:,} values at '{path or 'config'}' "
                              "(YAML aliases repeated many times?); a config is a few hundred values")
        return total

    size(raw, where, 0)


def _unshare(node: Any) -> Any:
    """A copy in which no two places share a dict or list (a YAML alias), so --set changes one place."""
    if isinstance(node, dict):
        return {key: _unshare(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_unshare(value) for value in node]
    return node


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], YAML-parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. strategy.optimizer.lr=0.01); got '{text}'")
    try:
        parsed = _yaml_load(value) if value.strip() else None
    except (yaml.YAMLError, RecursionError):
        parsed = value
    check_tree(parsed, f"--set {key.strip()}", key.strip())
    return key.strip().split("."), parsed


def set_dotted(raw: dict[str, Any], path: list[str], value: Any, label: str) -> None:
    """``raw[a][b][c] = value`` for ``path`` [a, b, c], creating sections; ``label`` names it in errors."""
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if isinstance(child, str):  # "loss: mse" then --set strategy.loss.delta=2
            child = {"name": child}
        if child is None:
            child = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{label}: '{part}' is not a section")
        node[part] = child
        node = child
    node[path[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        set_dotted(raw, path, value, f"--set {text}")
    return raw


def _read_bounded(path: Path) -> str:
    """The file's text, refusing non-regular files (/dev/zero, FIFOs) and files over MAX_CONFIG_BYTES."""
    try:
        info = os.stat(path)  # before opening: opening a FIFO would block
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "Is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"config file {path} is not a regular file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; a config is a few "
                          "hundred lines")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    text = _read_bounded(path)
    try:
        raw = _yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"config {path} is nested too deeply to read") from None
    if raw is None:
        raise ConfigError(f"config {path} is empty; it needs the sections data, model and strategy")
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a YAML mapping of sections; got {type(raw).__name__}")
    check_tree(raw, f"config {path}")
    return _unshare(raw)


def validate(raw: dict[str, Any]) -> Config:
    check_tree(raw)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, raw)) from None
    except RecursionError:
        raise ConfigError("config is nested too deeply to validate") from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override (``--set``) and validate a YAML config."""
    return validate(apply_overrides(read_yaml(path), list(overrides)))


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
