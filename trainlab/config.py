"""The run config: one validated model per concern, loaded from YAML.

Sections: ``name``, ``seed``, ``data``, ``model``, ``strategy``, ``metrics``,
``output`` and ``runtime``. ``data`` and ``model`` pass their extra keys to the
registered factory, whose signature validates them. Every other section is
strict: an unknown key is an error with a did-you-mean.
"""

from __future__ import annotations

import hashlib
import json
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


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, not a boolean; got {value}")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]  # YAML's yes/no/true are not counts


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
    pass


class LossConfig(_Named):
    pass


class OptimizerConfig(_Named):
    # None: the optimizer's own default (1e-3 for Adam, 1.0 for Prodigy/L-BFGS); "auto": LR range test
    lr: float | Literal["auto"] | None = None

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not value > 0:
            raise ValueError(f"must be > 0; got {value}")
        return value


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
    spike_factor: float = Field(100.0, gt=1.0)  # loss > factor * running median of recent losses is a spike
    window: Int = Field(50, ge=5)  # steps in the running median
    lr_factor: float = Field(0.5, gt=0.0, lt=1.0)  # LR multiplier after each rollback
    max_rollbacks: Int = Field(3, ge=0)


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


class Strategy(_Strict):
    loss: LossConfig
    optimizer: OptimizerConfig
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"] = 32  # "full": batch gradient descent
    epochs: Int | None = Field(None, ge=1)
    max_steps: Int | None = Field(None, ge=1)
    schedule: ScheduleConfig = ScheduleConfig(name="constant")
    regularization: Regularization = Regularization()
    clip_grad_norm: float | None = Field(None, gt=0.0)
    clip_grad_value: float | None = Field(None, gt=0.0)
    grad_accum_steps: Int = Field(1, ge=1)
    early_stopping: EarlyStoppingConfig | None = None
    init: InitConfig | None = None
    divergence: DivergenceConfig = DivergenceConfig()
    finetune: Finetune | None = None

    _to_named = field_validator("loss", "optimizer", "schedule", "init", mode="before")(
        classmethod(lambda cls, v: _name_only(v))
    )

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


class OutputConfig(_Strict):
    dir: str | None = None  # default runs/<name>-<UTC timestamp>
    progress: Literal["auto", "on", "off"] = "auto"  # "auto": a bar on a TTY only
    checkpoint: CheckpointConfig = CheckpointConfig()

    @field_validator("progress", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class RuntimeConfig(_Strict):
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # "auto": CUDA when present
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"  # autocast dtype; "auto" picks bf16 where fast
    num_threads: Int | None = Field(None, ge=1)  # torch intra-op threads; None keeps torch's default
    channels_last: bool = False  # NHWC memory layout for conv nets (faster convolutions on CPU and GPU)


class Config(_Strict):
    name: str = "run"
    seed: Int = 0
    data: DataConfig
    model: ModelConfig
    strategy: Strategy
    metrics: list[str] | None = None  # None: accuracy/precision/recall/f1 or mse/mae/r2 by task
    output: OutputConfig = OutputConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    _to_named = field_validator("model", mode="before")(classmethod(lambda cls, v: _name_only(v)))

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)

    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the resolved config, excluding output paths."""
        payload = self.to_dict()
        payload["output"] = {k: v for k, v in payload["output"].items() if k != "dir"}
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
    got = first.get("input")
    if isinstance(got, dict) or "got" in message:
        return f"config key '{where or 'config'}': {message}"
    shown = repr(got)
    return f"config key '{where or 'config'}': {message}; got {shown if len(shown) < 80 else shown[:77] + '...'}"


# --------------------------------------------------------------------------- loading

def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], YAML-parsed value)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (e.g. strategy.optimizer.lr=0.01); got '{text}'")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if isinstance(child, str):  # "loss: mse" then --set strategy.loss.delta=2
                child = {"name": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: '{part}' is not a section")
            node[part] = child
            node = child
        node[path[-1]] = value
    return raw


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    if raw is None:
        raise ConfigError(f"config {path} is empty; it needs the sections data, model and strategy")
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a YAML mapping of sections; got {type(raw).__name__}")
    return raw


def validate(raw: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, raw)) from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read, override (``--set``) and validate a YAML config."""
    return validate(apply_overrides(read_yaml(path), list(overrides)))


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
