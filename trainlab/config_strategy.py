"""``strategy``: everything besides the model that decides how it learns, one validated model per part.

The loss, the optimizer (with per-parameter-group routing), the schedule, initialization,
regularization, early stopping, divergence handling, weight averaging, test-time augmentation and
fine-tuning; :class:`Strategy` gathers them with the batch size and the run's length.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainlab.config_fields import FLOAT32_MAX, INT_LIMIT, Float, Int, Named, Strict, name_only, short_repr
from trainlab.registry import did_you_mean

MAX_LR = FLOAT32_MAX  # torch's fused and foreach steps hold the lr in float32


class LossConfig(Named):
    @model_validator(mode="after")
    def _auto_takes_no_options(self) -> LossConfig:
        if self.name == "auto" and self.model_extra:
            raise ValueError(f"loss 'auto' takes no options (got {', '.join(self.model_extra)}): the advisor picks "
                             "the loss and its options; name the loss to set them (e.g. {name: bce, pos_weight: 3})")
        return self

    @model_validator(mode="after")
    def _training_needs_one_number(self) -> LossConfig:
        # reduction: none gives a loss per sample, for calling the loss from Python; a run's backward needs one
        if (self.model_extra or {}).get("reduction") == "none":
            raise ValueError("reduction 'none' gives one loss per sample, and training needs one number to "
                             "differentiate; use mean (the default) or sum (reduction: none is for calling the "
                             "loss from Python)")
        return self


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
    lr: Float | None = Field(None, gt=0.0, le=MAX_LR)  # None: strategy.optimizer.lr; the schedule scales this base lr
    weight_decay: Float | None = Field(None, ge=0.0)  # applies to every parameter of the group, biases too
    # the group trains for its first train_epochs epochs only, on the strategy's schedule built over them
    # (a linear decay reaches 0 there), then stops: lr 0, requires_grad False (airbench: whitening bias, 3)
    train_epochs: Float | None = Field(None, gt=0.0, le=INT_LIMIT, exclude_if=lambda value: value is None)  # (config hashes)

    def label(self, index: int) -> str:
        """The group's route label: its ``name``, else ``group<index>`` (its place in the list)."""
        return self.name or f"group{index}"


class OptimizerConfig(Named):
    # None: the optimizer's own default (1e-3 for Adam, 1.0 for Prodigy/L-BFGS); "auto": LR range test
    lr: Float | Literal["auto"] | None = None
    # per-parameter-group routing (docs/param_groups.md); left out of dumps when unset (config hashes)
    groups: list[OptimizerGroupConfig] | None = Field(None, exclude_if=lambda value: value is None)

    @field_validator("lr", mode="before")
    @classmethod
    def _number_or_auto(cls, value: Any) -> Any:
        """A word that is not ``auto`` is refused as one, with ``auto`` named (the union said "must be a number").

        ``auto`` is one of the config's fixed words, which are matched as written, letter case included (as
        ``device: cpu`` and ``progress: off``; registered component names are what match in any case):
        ``Auto`` and ``AUTO`` are refused with "did you mean 'auto'?", as a misspelling is."""
        word = value.strip().lower().lstrip("+-") if isinstance(value, str) else None
        if word is not None and value.strip() != "auto" and word not in ("inf", "infinity", "nan") \
                and not any(c.isdigit() for c in word):
            raise ValueError(f"must be a number (e.g. 0.5 or 1e-3) or 'auto' (an LR range test picks it); got "
                             f"{short_repr(value)}{did_you_mean(value.strip(), ['auto'])}")
        return value

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not 0 < value <= MAX_LR:
            raise ValueError(f"must be > 0 and at most {MAX_LR:.3g} (float32's largest); got {value}")
        return value

    @model_validator(mode="after")
    def _groups_have_lrs(self) -> OptimizerConfig:
        if self.groups is not None and not self.groups:
            raise ValueError("groups must list at least one group (or be left out)")
        if self.groups and self.lr == "auto":
            raise ValueError("lr: auto cannot be combined with groups (each group has its own base lr); "
                             "give lr a number")
        # a group's name is its route: its lr in the records (lr/<name>), its train_epochs, its plot line
        labels = [group.label(i) for i, group in enumerate(self.groups or [])]
        for i, label in enumerate(labels):
            if label == "rest":  # the route of the parameters no group selects
                raise ValueError(f"groups[{i}]: the name 'rest' is the top level's route (the parameters no "
                                 "group selects); give the group another name")
            if labels.index(label) != i:
                raise ValueError(f"groups[{i}]: groups[{labels.index(label)}] has the name '{label}' too; give "
                                 "each group a name of its own")
        return self

    def spec(self) -> dict[str, Any]:
        """The top-level optimizer's factory spec (name, lr, options), without ``groups``."""
        return {k: v for k, v in self.model_dump().items() if k != "groups"}


class ScheduleConfig(Named):
    pass


class InitConfig(Named):
    pass


class Regularization(Strict):
    l1: Float = Field(0.0, ge=0.0)  # coefficient of sum |w| added to the loss
    l2: Float = Field(0.0, ge=0.0)  # coefficient of sum w^2 added to the loss
    # decoupled: w <- w - lr * wd * w, not on biases/norms; null: the optimizer's own default (adamw: 0.01), 0: none
    weight_decay: Float | None = Field(None, ge=0.0)


class EarlyStoppingConfig(Strict):
    monitor: str = "val_loss"
    # None or "auto" (Keras's default): the monitor's direction (val_accuracy max, losses min), stored as such
    mode: Literal["min", "max"] | None = None
    patience: Int = Field(10, ge=0)  # validations without improvement before stopping (mid-epoch ones included)
    min_delta: Float = Field(0.0, ge=0.0)
    restore_best: bool = True

    @model_validator(mode="before")
    @classmethod
    def _mode_of_the_monitor(cls, value: Any) -> Any:
        """``mode`` left out, null or ``auto`` (Keras's ``EarlyStopping(mode="auto")``) is the monitor's
        direction (:func:`trainlab.metrics.monitor_mode`), stored as ``min`` or ``max``."""
        if isinstance(value, dict) and value.get("mode") in (None, "auto"):
            from trainlab.metrics import monitor_mode

            monitor = value.get("monitor", "val_loss")
            mode = monitor_mode(monitor) if isinstance(monitor, str) else "min"
            value = {**value, "mode": mode}
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _min_max_or_auto(cls, value: Any) -> Any:
        # a fixed word, matched as written (as lr's 'auto'): 'Max' is refused with "did you mean 'max'?"
        if value not in ("min", "max"):  # 'auto' and None are the monitor's direction by now
            hint = did_you_mean(value, ["min", "max", "auto"]) if isinstance(value, str) else ""
            raise ValueError(f"must be 'min', 'max' or 'auto' (the monitor's direction, as leaving mode out); "
                             f"got {short_repr(value)}{hint}")
        return value


class DivergenceConfig(Strict):
    policy: Literal["stop", "rollback", "off"] = "stop"

    # a spike: loss > median + spike_factor * max(1.4826 * MAD, |starting loss| / 4) of the recent window
    # (callbacks/spike_rule.py); 50 means nothing below median + 12.5 x |starting loss|, or below
    # median + 74 robust sigmas (single-sample losses are heavy-tailed), is a spike; which spikes count (at once,
    # or in a run as long as the data's own spike rate makes unlikely; for a negative loss, a Gaussian NLL's,
    # measured by the excess over the median): callbacks/spike_rule.py
    spike_factor: Float = Field(50.0, gt=0.0)
    window: Int = Field(50, ge=5)  # judged losses in the running median: steps, or the group medians of steps under 32 rows
    lr_factor: Float = Field(0.5, gt=0.0, lt=1.0)  # LR multiplier after each rollback
    max_rollbacks: Int = Field(3, ge=0)

    @field_validator("policy", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML 1.1 reads a bare `off` as false


LOOKAHEAD_EVERY, LOOKAHEAD_DECAY = 5, 0.5 ** (1 / 5)  # Zhang et al. 2019: k = 5, alpha = 1 - decay ** k = 0.5


class WeightAveragingConfig(Strict):
    """Averaged weights for evaluation and the saved model (formulas: trainlab/engine/weight_averaging.py)."""

    kind: Literal["ema", "lookahead"]  # ema: a shadow copy; lookahead: training restarts from the average
    decay: Float = Field(0.999, gt=0.0, lt=1.0)  # per optimizer step; an update uses decay ** every_n_steps (lookahead: 0.5 ** (1/5))
    every_n_steps: Int = Field(1, ge=1)  # optimizer steps between averaging updates (lookahead: 5; airbench: 5)
    start_epochs: Float = Field(0.0, ge=0.0, le=INT_LIMIT)  # averaging begins after this many epochs (airbench: 3)
    decay_power: Float = Field(0.0, ge=0.0)  # airbench: decay x (step / total steps) ** power (3); 0: constant
    warmup: bool = False  # cap the k-th update's decay at (1 + k) / (10 + k) (TensorFlow's EMA num_updates)

    @model_validator(mode="before")
    @classmethod
    def _kind_only(cls, value: Any) -> Any:
        value = {"kind": value} if isinstance(value, str) else value  # `weight_averaging: ema`
        if isinstance(value, dict) and "name" in value and "kind" in value:  # not "unknown key 'name'"
            raise ValueError(f"name ({value['name']!r}) and kind ({value['kind']!r}) are the same key (name is read "
                             "as kind): give one")
        if isinstance(value, dict) and "name" in value and "kind" not in value:
            # `name` picks every other strategy component (loss, optimizer, schedule, init): the same here
            value = {"kind": value["name"], **{key: item for key, item in value.items() if key != "name"}}
        if isinstance(value, dict) and value.get("kind") == "lookahead":
            # training restarts from the average at each update: EMA's 0.999 every step would hold it at its
            # start; Lookahead's paper values (alpha 0.5, k 5) unless given
            value = {"every_n_steps": LOOKAHEAD_EVERY, "decay": LOOKAHEAD_DECAY, **value}
        return value


class Lora(Strict):
    rank: Int = Field(8, ge=1)
    alpha: Float = Field(16.0, gt=0.0)  # the update is scaled by alpha / rank
    dropout: Float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None  # None: every Linear/Conv of the backbone


class Finetune(Strict):
    freeze: bool = False  # freeze the backbone, train the head only (feature extraction)
    unfreeze_after_epochs: Int | None = Field(None, ge=1)  # gradual unfreezing (needs freeze)
    layerwise_lr_decay: Float | None = Field(None, gt=0.0, le=1.0)  # lr x decay^k for the k-th layer below the head
    lora: Lora | None = None  # low-rank adapters through peft (the 'lora' extra)



class TTAConfig(Strict):
    """``strategy.tta``: test-time augmentation at evaluation (trainlab.engine.tta; docs/augmentation.md)."""

    flip: bool = True  # also predict on the left-right mirror and average
    translate: Int = Field(1, ge=0)  # also on the views shifted by -/+ this many pixels (reflect); 0: none
    when: Literal["final", "always"] = "final"  # final: summary val/test and `trainlab eval`; always: every validation


class Strategy(Strict):
    loss: LossConfig
    optimizer: OptimizerConfig
    batch_size: Annotated[int, Field(ge=1)] | Literal["full"] = 32  # "full": batch gradient descent
    epochs: Int | None = Field(None, ge=1)
    max_steps: Int | None = Field(None, ge=1)
    # a step budget: epochs = max(epochs, ceil(min_steps / steps_per_epoch)), so small datasets still
    # get enough optimizer steps (trainlab.engine.step_budget); needs epochs, capped by max_steps
    min_steps: Int | None = Field(None, ge=1)
    # a time budget: the run times its own step first and trains as many steps as fit these seconds, its
    # schedule laid over them; epochs/max_steps cap it (trainlab.time_budget)
    time_budget_s: Float | None = Field(None, gt=0.0)
    # batches of texts of similar length (the HF Trainer's group_by_length): less padding with a model
    # that pads each batch to its longest text (trainlab.engine.batching.length_grouped_order)
    group_by_length: bool = False
    schedule: ScheduleConfig = ScheduleConfig(name="constant")
    regularization: Regularization = Regularization()
    # at most float32's largest, as MAX_LR: the clipping runs on float32 gradients
    clip_grad_norm: Float | None = Field(None, gt=0.0, le=MAX_LR)
    clip_grad_value: Float | None = Field(None, gt=0.0, le=MAX_LR)
    grad_accum_steps: Int = Field(1, ge=1)
    eval_every_n_steps: Int | None = Field(None, ge=1)  # also validate mid-epoch (step records in metrics.jsonl)
    early_stopping: EarlyStoppingConfig | None = None  # true: the defaults ({}); false or null: none
    init: InitConfig | list[InitConfig] | None = None  # one initializer or a list applied in order
    divergence: DivergenceConfig = DivergenceConfig()
    finetune: Finetune | None = None
    tta: TTAConfig | None = None  # true: flip + translate 1 (airbench's tta_level 2), only at the final evaluation
    weight_averaging: WeightAveragingConfig | None = None  # EMA / lookahead weights for evaluation and saving

    _to_named = field_validator("loss", "optimizer", "schedule", "init", mode="before")(
        classmethod(lambda cls, v: [name_only(one) for one in v] if isinstance(v, list) else name_only(v))
    )

    @field_validator("tta", mode="before")
    @classmethod
    def _tta_switch(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return {} if value else None
        if value is not None and not isinstance(value, dict | TTAConfig):
            raise ValueError(f"must be true, false or a mapping with keys flip, translate, when; got {short_repr(value)}")
        return value

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _early_stopping_switch(cls, value: Any) -> Any:
        # `early_stopping: true` is early stopping at its defaults ({}), false (or off, null) none, as tta's switch
        if isinstance(value, bool):
            return {} if value else None
        return value

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, value: Any) -> Any:
        if hasattr(value, "__index__") and not isinstance(value, bool | int):
            value = operator.index(value)  # a NumPy or torch integer (len(x) // 4 of an array): an int, as for seed
        if isinstance(value, bool) or (not isinstance(value, int) and value != "full"):
            # 'full' is one of the config's fixed words, matched as written (as lr's 'auto', early_stopping's
            # mode): 'Full' and 'fulll' are refused, naming it
            hint = did_you_mean(value.strip(), ["full"]) if isinstance(value, str) else ""
            raise ValueError(f"must be a positive int or 'full'; got {value!r}{hint}")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be a positive int or 'full'; got {value}")
        if isinstance(value, int) and value >= INT_LIMIT:  # else larger than any data: silently the full batch
            raise ValueError(f"must be an integer of magnitude below 2**63 (or 'full' for the whole training set); "
                             f"got {short_repr(value)}")
        return value

    @model_validator(mode="after")
    def _some_stop(self) -> Strategy:
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set 'epochs' or 'max_steps' (or both)")
        if self.min_steps is not None and self.epochs is None:  # as the config loads: before any data is read
            raise ValueError(f"min_steps={self.min_steps} stretches epochs on small datasets; set epochs too (with "
                             "max_steps alone the run already has a fixed length)")
        return self

    @model_validator(mode="after")
    def _horizons_need_a_step_schedule(self) -> Strategy:
        timed = [group.label(i) for i, group in enumerate(self.optimizer.groups or [])
                 if group.train_epochs is not None]
        if timed and self.schedule.name == "reduce_on_plateau":
            raise ValueError(f"optimizer.groups '{timed[0]}' has train_epochs, which needs a schedule of the step "
                             "(e.g. warmup_linear, cosine, constant); reduce_on_plateau follows a metric")
        return self
