"""The training step as its own object: ``step.train_step(batches, state) -> StepOutput``.

The Trainer sequences events and calls a :class:`Step`; it knows nothing of
models, optimizers or losses. A Step owns those, and everything between "here
are this step's micro-batches" and "the parameters were updated": autocast and
the fp16 loss scaler, gradient accumulation, clipping, the optimizer step. It
returns the step's named losses (detached; ``"loss"`` is the one the divergence
guard and the progress display watch) and how many samples it consumed.

A Step must provide (see :class:`Step`): ``train_step``, ``set_mode`` (train or
eval weights; schedule-free optimizers switch weights here), ``predict`` (a
forward pass for evaluation), ``lr``/``set_lr_factor`` (the one place LRs are
written; optionally ``route_lrs``, each routed group's LR, for the records' ``lr/<group>``),
``weights``/``load_weights`` (what early stopping keeps), and
``state_dict``/``load_state_dict`` (everything needed for a bit-identical
resume, tensors anywhere in the tree). A GAN step (two models, two optimizers,
``n_critic`` critic updates per generator update) or a multi-task step (named
heads, a loss per head) is a new Step class; the Trainer does not change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn

from trainlab.engine.clipping import clip_grad_norm, global_norm
from trainlab.engine.objective import Objective, backpropagatable, refuse_unreduced
from trainlab.engine.optimizer_state import (
    UNLOADABLE,
    OptimizerStateMismatch,
    check_checkpointable,
    check_group_options,
    in_parameter_layouts,
    loads_with_torch,
    state_owners,
    unloadable_state,
)
from trainlab.engine.snapshot import detached_copy
from trainlab.engine.state import TrainState
from trainlab.errors import RunDirError
from trainlab.losses.base import learned_state, sums_over_rows
from trainlab.optim import keeps_evaluation_weights, requires_closure, set_train_mode
from trainlab.out_of_memory import is_out_of_memory

Batch = tuple[torch.Tensor, torch.Tensor]
_NO_AUTOCAST = contextlib.nullcontext()  # reusable; fp32 steps skip building a context each time
_TORCH_ZERO_GRAD = torch.optim.Optimizer.zero_grad


def clear_grads(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.zero_grad(set_to_none=True)``: every parameter's ``.grad`` becomes None.

    For an optimizer that keeps torch's own ``zero_grad``, the same assignments written out: that method
    adds a profiler scope and a foreach-grouping set-up around them (~10 us a step for an MLP's six
    tensors on a CPU, against ~1.5 us). An optimizer that overrides ``zero_grad`` gets its own called.
    """
    if type(optimizer).zero_grad is not _TORCH_ZERO_GRAD:
        optimizer.zero_grad(set_to_none=True)
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None


class StepOutput(NamedTuple):
    """What one optimizer step reports: named detached losses (means over its samples), the sample count,
    and ``weight``: what the data loss's mean divided by where that is not the sample count (a class-weighted
    cross-entropy's summed weights of the labels, ``Loss.mean_denominator``), for the epoch's mean; None
    (the default) weighs the step by its samples."""

    losses: dict[str, torch.Tensor]
    samples: int
    weight: torch.Tensor | None = None

    @property
    def loss(self) -> torch.Tensor:
        return self.losses["loss"]


class Step(Protocol):
    """The contract the Trainer relies on (a Protocol: implement these, subclassing is optional)."""

    model: nn.Module | None  # the model evaluation and fine-tuning callbacks act on (None: several)
    device: torch.device

    def train_step(self, batches: list[Batch], state: TrainState) -> StepOutput: ...

    def set_mode(self, training: bool) -> None: ...

    def predict(self, x: torch.Tensor) -> torch.Tensor: ...

    def lr(self) -> float:
        """The records' ``lr``: the LR of the param group that takes the strategy's own base LR
        (``strategy.optimizer.lr`` times the schedule's factor): the head's with layer-wise LR decay, else
        the first group's (:func:`recorded_group`)."""

    # optional: ``eval_switch_changes_state() -> bool`` (default True: the Trainer copies the step's state
    # before the eval switch of an interrupted run's end, so that its checkpoint is the train-mode state)
    # optional: ``route_lrs() -> dict[str, float]``, ``{group label: LR}`` of routed param groups
    # (records add ``lr/<label>``); a Step without it records ``lr`` alone
    # optional: ``loss_weights()`` / ``load_loss_weights(weights)``, the state of a loss that learns (kept with
    # the weights by early stopping's restore_best); a Step without them has none

    def set_lr_factor(self, factor: float, routes: Mapping[str, float | None] | None = None) -> None:
        """Every param group's LR becomes its base LR times ``factor`` (schedules, rollbacks); a routed group
        named in ``routes`` takes its own factor, and None stops it (:class:`LRGroups`)."""

    def weights(self) -> dict[str, torch.Tensor]: ...

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None: ...

    def parameters_changed(self) -> None:
        """Called after parameters were frozen or unfrozen (optional: a Step without it is not told)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def loss_weights_of(step: Step) -> dict[str, torch.Tensor]:
    """``step.loss_weights()`` (the optional part of the contract); empty for a Step without it."""
    loss_weights = getattr(step, "loss_weights", None)
    return loss_weights() if loss_weights is not None else {}


def routed_lrs(step: Step) -> dict[str, float]:
    """``step.route_lrs()`` (the optional part of the contract); empty for a Step without it."""
    route_lrs = getattr(step, "route_lrs", None)
    return route_lrs() if route_lrs is not None else {}


def lr_columns(step: Step) -> dict[str, float]:
    """A record's LR columns: ``lr`` (``step.lr()``: the strategy's own LR, the head's with layer-wise LR
    decay, else the first param group's) and, when the optimizer routes groups
    (``strategy.optimizer.groups``), ``lr/<label>`` for each, the unselected parameters' as ``lr/rest``."""
    return {"lr": step.lr(), **{f"lr/{route}": lr for route, lr in routed_lrs(step).items()}}


@dataclass(frozen=True)
class StepOptions:
    """How :class:`StandardStep` runs, resolved from the strategy."""

    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 adds a loss scaler)
    clip_grad_norm: float | None = None  # max global L2 norm of the gradients
    clip_grad_value: float | None = None  # max |g| per element
    channels_last: bool = False  # 4-d inputs and conv weights in NHWC layout
    grad_norm_every: int | None = None  # measure the gradient norm every that many steps (step records)
    compile: bool = False  # forward passes through torch.compile(model) (Inductor)


def recorded_group(groups: list[dict[str, Any]]) -> int:
    """The index of the param group whose LR the records' ``lr`` shows: the one that takes the strategy's
    own base LR. Layer-wise groups (:func:`trainlab.finetune.layerwise_param_groups`: each carries ``layer``
    and ``lr_scale``, decay^k for the k-th layer below the head) come lowest layer first, so the first is
    the lowest layer's (BERT's unused pooler: lr x decay^(L + 2) for L encoder layers, 256x below the head
    for MiniLM's 6 at decay 0.5); the first group whose ``lr_scale`` is 1, the head's (the top layer's), is
    taken. Otherwise the first group: the others differ from it in weight decay only, or are routed groups,
    each recorded as ``lr/<label>`` besides."""
    for index, group in enumerate(groups):
        if "layer" in group and group.get("lr_scale") == 1.0:
            return index
    return 0


class LRGroups:
    """Writes ``lr = base_lr * factor`` into param groups; the base LRs are read once, at construction.

    A param group routed as ``route`` (``group["route"]``, trainlab.optim.routing) that ``routes`` names
    takes ``routes[route]`` instead of ``factor``; ``routes[route] = None`` stops the route: lr 0 and its
    parameters' ``requires_grad`` False, gradient dropped (given back when a later call, after a rollback
    to an earlier step, names a factor again).
    """

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        self.optimizers = optimizers
        self.base = [[float(group["lr"]) for group in opt.param_groups] for opt in optimizers]
        self._recorded = recorded_group(optimizers[0].param_groups)  # the group current() reads
        self._written: tuple[Any, dict[str, Any]] | None = None
        self._stopped: list[torch.Tensor] = []  # the parameters this object set requires_grad False

    def set_factor(self, factor: float, routes: Mapping[str, float | None] | None = None) -> bool:
        """Write the LRs; True when parameters were stopped or started (the caller re-reads them)."""
        # constant stretches cost one comparison; load_state_dict replaces the group dicts (and their
        # LRs), hence the identity check on a group dict
        key = factor if not routes else (factor, tuple(sorted(routes.items())))
        if self._written is not None and self._written[0] == key and \
                self._written[1] is self.optimizers[0].param_groups[0]:
            return False
        stopped: list[torch.Tensor] = []
        for opt, bases in zip(self.optimizers, self.base, strict=True):
            for group, base in zip(opt.param_groups, bases, strict=True):
                route_factor = routes.get(group.get("route"), factor) if routes else factor
                group["lr"] = 0.0 if route_factor is None else base * route_factor
                if route_factor is None:
                    stopped += group["params"]
        self._written = (key, self.optimizers[0].param_groups[0])
        return self._stop(stopped)

    def _stop(self, stopped: list[torch.Tensor]) -> bool:
        if [id(p) for p in stopped] == [id(p) for p in self._stopped]:
            return False
        for p in self._stopped:
            p.requires_grad_(True)
        for p in stopped:
            p.requires_grad_(False)
            p.grad = None
        self._stopped = stopped
        return True

    def current(self) -> float:
        """The records' ``lr``: the LR of the first optimizer's group :func:`recorded_group` picks."""
        return float(self.optimizers[0].param_groups[self._recorded]["lr"])

    def by_route(self) -> dict[str, float]:
        """``{route: LR}`` of the routed param groups (``strategy.optimizer.groups``; a route's first group),
        in the optimizer's order; empty when no group is routed."""
        lrs: dict[str, float] = {}
        for opt in self.optimizers:
            for group in opt.param_groups:
                route = group.get("route")
                if route is not None and route not in lrs:
                    lrs[route] = float(group["lr"])
        return lrs


class StandardStep:
    """One model, one optimizer, one objective: forward, loss (+ penalties), backward, clip, step.

    With ``len(batches) > 1`` the gradients of the micro-batches accumulate: micro-batch i's objective
    (a mean over its n_i rows) is weighted by n_i / N, N the step's rows, so the step follows the mean
    loss over all N rows, as one batch of N would, also when an epoch's last micro-batch is shorter
    (weights of 1 / k instead over-weighted its rows; for equal micro-batches n_i / N is exactly 1 / k).
    A loss whose mean divides by something other than the row count (``Loss.mean_denominator``: d_i, the
    summed class weights of cross-entropy's labels, as PyTorch's weighted mean) gets d_i / sum_j d_j instead,
    read from the targets before any backward pass: sum_i (S_i / d_i) * d_i / D = S / D, the mean of one
    batch of N (a micro-batch that keeps no row, every label ``ignore_index``, has d_i at the dtype's smallest
    normal number and a mean of 0: it adds nothing; ``trainlab.losses.base.zero_floored``). The
    step's reported losses are these weighted sums too: the loss of the N rows as one batch. A loss with
    ``reduction: sum`` sums over all N rows as one batch does: each micro-batch's sum has weight 1 (its
    reported loss is that sum over N, a mean per row: :meth:`_per_row`).
    Penalties, computed once per micro-batch, get weights that sum to 1. Optimizers that need a closure (L-BFGS)
    get one that runs the same objective, penalties and clipping on the step's rows.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, objective: Objective,
                 options: StepOptions = StepOptions(), device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.optimizer, self.objective, self.options = optimizer, objective, options
        objective.loss.to(self.device)
        # every step ends by clearing the gradients; the first must not add ones the caller left (a probe's
        # backward in a notebook, an earlier hand-written loop), as the HF Trainer's model.zero_grad() first
        model.zero_grad(set_to_none=True)  # frozen parameters too (a schedule may unfreeze them)
        clear_grads(optimizer)  # and the optimizer's others (a loss that learns)
        self._memory_format = torch.channels_last if options.channels_last else None
        if self._memory_format is not None:
            self.model.to(memory_format=self._memory_format)  # 4-d weights only; others stay as they are
        # what the forward passes call: the compiled module shares the model's parameters and buffers, and
        # self.model stays the module itself (its state_dict keys, train/eval, the objective's penalties)
        self._module = torch.compile(self.model) if options.compile else self.model
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
        self.scaler = torch.amp.GradScaler(self.device.type) if options.precision == "fp16" else None
        self._closure = requires_closure(optimizer)
        self._lrs = LRGroups([optimizer])
        self._training: bool | None = None
        self._clipping = options.clip_grad_norm is not None or options.clip_grad_value is not None
        # the common step, kept as lean as a hand-written loop: fp32, no scaler, clipping, penalties,
        # layout change or gradient-norm records
        self._plain = (options.precision == "fp32" and not self._clipping and not objective.penalised
                       and self._memory_format is None and not options.grad_norm_every and not self._closure)
        # the plain step's (pred, target) -> loss: a trainlab Loss may offer a leaner callable
        unweighted = getattr(objective.loss, "unweighted", None)
        self._plain_loss = unweighted() if unweighted is not None else objective.loss
        # d_i of an accumulated step's micro-batches (None: row shares); a loss without it averages over rows
        # (a summed loss divides by nothing: its micro-batches add whole, its epoch mean is over rows)
        self._summed = sums_over_rows(objective.loss)
        self._mean_denominator = None if self._summed else getattr(objective.loss, "mean_denominator", None)
        self.last_grad_norm: torch.Tensor | None = None  # global L2 norm before clipping, when measured
        # the optimizers (a routed one's inner ones) whose state check_checkpointable has not yet seen
        self._unchecked = state_owners(optimizer)

    # ------------------------------------------------------------------ forward

    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.options.precision
        if precision == "fp32":
            return _NO_AUTOCAST
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._memory_format is not None and x.ndim == 4:
            x = x.contiguous(memory_format=self._memory_format)
        with self._autocast():
            output = self._module(x)
        return output.float() if output.dtype in (torch.float16, torch.bfloat16) else output

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self._forward(x)

    # ------------------------------------------------------------------ one step

    def train_step(self, batches: list[Batch], state: TrainState) -> StepOutput:
        """One optimizer step over ``batches`` (the class docstring); after the first step that made an
        optimizer's state, that state is checked once for what a checkpoint cannot store
        (:func:`check_checkpointable`)."""
        if self._plain and len(batches) == 1:
            x, y = batches[0]
            logits = self._module(x)
            loss = self._plain_loss(logits, y)
            if not backpropagatable(loss):  # the objective checks it on every other path
                refuse_unreduced(loss, self.objective.loss, logits)
            loss.backward()
            self.optimizer.step()
            clear_grads(self.optimizer)
            output = StepOutput({"loss": self._per_row(loss.detach(), len(y))}, len(y), self._denominator(y))
        else:
            output = self._closure_step(batches) if self._closure else self._accumulated_step(batches, state)
        if self._unchecked:
            self._check_new_state()
        return output

    def _check_new_state(self) -> None:
        """:func:`check_checkpointable` for each optimizer whose state is no longer empty, once: a step may make
        none (an fp16 step whose gradients overflowed, the scaler skipping ``optimizer.step()``), and a flag set
        after the first step left a later step's state unchecked until the first checkpoint."""
        for optimizer in [inner for inner in self._unchecked if inner.state]:
            check_checkpointable(optimizer)
            self._unchecked.remove(optimizer)

    def _accumulated_step(self, batches: list[Batch], state: TrainState) -> StepOutput:
        """The step of every case but the plain one and a closure's: weighted micro-batches, the fp16 scaler,
        the gradient-norm record, clipping."""
        optimizer = self.optimizer
        denominators = self._denominators(batches)
        shares = self._shares(batches, denominators)
        totals: dict[str, torch.Tensor] = {}
        samples = 0
        summed = shares is not None and self._summed
        for index, (x, y) in enumerate(batches):
            terms = self.objective(self._forward(x), y, self.model)
            share = None if shares is None else shares[index]
            if summed:  # a sum over the step's rows: each micro-batch's sum whole, the penalties' shares
                weights = {name: 1.0 if name == "loss" else share for name in terms.parts}
                objective = sum(value * weights[name] for name, value in terms.parts.items())
            else:
                weights = dict.fromkeys(terms.parts, share)
                objective = terms.total if share is None else terms.total * share
            (objective if self.scaler is None else self.scaler.scale(objective)).backward()
            for name, value in terms.parts.items():
                part = value.detach() if weights[name] is None else value.detach() * weights[name]
                totals[name] = part if name not in totals else totals[name] + part
            samples += len(y)
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)  # clipping sees the true gradients
        every = self.options.grad_norm_every
        if every and (state.step + 1) % every == 0 and self.options.clip_grad_norm is None:
            self.last_grad_norm = global_norm(
                [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None])
        if self._clipping:
            self._clip()
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)  # skips the update when the scaled gradients overflowed
            self.scaler.update()
        clear_grads(optimizer)
        totals["loss"] = self._per_row(totals["loss"], samples)
        return StepOutput(totals, samples, None if denominators is None else sum(denominators))

    def _denominator(self, y: torch.Tensor) -> torch.Tensor | None:
        """d of the rows ``y``, what the loss's mean divides by (``Loss.mean_denominator``, detached), or None
        where that is the row count (no tensor work)."""
        if self._mean_denominator is None:
            return None
        with torch.no_grad():
            return self._mean_denominator(y)

    def _denominators(self, batches: list[Batch]) -> list[torch.Tensor] | None:
        """:meth:`_denominator` of each micro-batch (None where the loss's mean is over rows)."""
        first = self._denominator(batches[0][1])
        if first is None:
            return None
        return [first] + [self._denominator(y) for _, y in batches[1:]]

    def _shares(self, batches: list[Batch], denominators: list[torch.Tensor] | None = None
                ) -> list[float | torch.Tensor] | None:
        """Each micro-batch's weight in the step's mean (None for a single batch): d_i / sum_j d_j of the
        loss's ``denominators`` (:meth:`_denominators`, read from the targets, no device sync), else the row
        shares n_i / N, which need no tensor work."""
        if len(batches) == 1:
            return None
        if denominators is not None:
            whole = sum(denominators)
            return [part / whole for part in denominators]
        rows = sum(len(y) for _, y in batches)
        return [len(y) / rows for _, y in batches]

    def _closure_step(self, batches: list[Batch]) -> StepOutput:
        # one evaluation over all of the step's rows: for equal micro-batches, the accumulated mean
        x = torch.cat([b[0] for b in batches]) if len(batches) > 1 else batches[0][0]
        y = torch.cat([b[1] for b in batches]) if len(batches) > 1 else batches[0][1]
        first: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            clear_grads(self.optimizer)
            terms = self.objective(self._forward(x), y, self.model)
            terms.total.backward()
            if self._clipping:
                self._clip()
            if not first:  # the loss before the step, as for every other optimizer
                first.update({name: value.detach() for name, value in terms.parts.items()})
            return terms.total

        self.optimizer.step(closure)
        clear_grads(self.optimizer)
        first["loss"] = self._per_row(first["loss"], len(y))
        return StepOutput(first, len(y), self._denominator(y))

    def _per_row(self, loss: torch.Tensor, rows: int) -> torch.Tensor:
        """The step's data loss as StepOutput reports it, a mean over its rows: a ``reduction: sum`` loss's
        sum divided by the rows (``airbench``'s ``loss.item() / batch_size``), so that the epoch's
        ``train_loss`` (sum_i S_i / sum_i n_i) and the step records do not change with the batch size."""
        return loss / rows if self._summed else loss

    def _clip(self) -> None:
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        if self.options.clip_grad_norm is not None:
            self.last_grad_norm = clip_grad_norm(params, self.options.clip_grad_norm)
        if self.options.clip_grad_value is not None:
            torch.nn.utils.clip_grad_value_(params, self.options.clip_grad_value)

    # ------------------------------------------------------------------ modes, LR, weights, state

    def eval_switch_changes_state(self) -> bool:
        """Whether :meth:`set_mode` to eval rewrites state in place that the train switch rebuilds only to
        rounding (a schedule-free optimizer's y -> x): the Trainer keeps a copy for an interrupt checkpoint."""
        return keeps_evaluation_weights(self.optimizer)

    def set_mode(self, training: bool) -> None:
        """Train or eval mode for the model, and for schedule-free optimizers their y / x weights."""
        if self._training is training:
            return
        self._training = training
        set_train_mode(self.optimizer, training)
        self.model.train(training)

    def lr(self) -> float:
        return self._lrs.current()

    def route_lrs(self) -> dict[str, float]:
        return self._lrs.by_route()

    def set_lr_factor(self, factor: float, routes: Mapping[str, float | None] | None = None) -> None:
        if self._lrs.set_factor(factor, routes):
            self.parameters_changed()

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(weights)

    def loss_weights(self) -> dict[str, torch.Tensor]:
        """A copy of the loss's learned state (:func:`trainlab.losses.base.learned_state`: a learned variance,
        alpha...; empty for most losses): what goes with :meth:`weights` where a loss learns (early
        stopping's restore_best keeps both)."""
        return learned_state(self.objective.loss)

    def load_loss_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.objective.loss.load_state_dict(weights, strict=False)  # the config's numbers are not in it

    def parameters_changed(self) -> None:
        self.objective.parameters_changed(self.model)

    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.model.state_dict(),
            "loss": self.objective.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "training": self._training,
        }
        if self._summed:  # its losses recorded per row (_per_row): a checkpoint of before recorded sums
            state["summed_loss_per_row"] = True
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The state of :meth:`state_dict`. A ``reduction: sum`` loss's checkpoint written before its losses were
        recorded per row (trainlab before 2026-12-06: the epoch sums of step sums, early stopping's best of a
        split's sum) is refused (RunDirError), before anything is loaded: resumed, the run's records and its
        best would mix the two scales."""
        if self._summed and not state.get("summed_loss_per_row"):
            raise RunDirError("this run's checkpoint was written by a trainlab that recorded its reduction: sum loss "
                              "as sums (each step's, a split's), and this one records it per row (the sum over the "
                              "rows divided by their count): resumed, its records and early stopping's best would "
                              "mix the two scales; finish it with the trainlab it started with, or train it again "
                              "(trainlab train CONFIG --out RUN --overwrite)")
        # module.load_state_dict copies into the parameters; optimizer.load_state_dict aliases same-device
        # tensors, and a snapshot may be reused: its state is cloned
        self.model.load_state_dict(state["model"])
        if state["loss"]:
            self.objective.loss.load_state_dict(state["loss"])
        self._load_optimizer(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self._training = state.get("training")
        if self._training is not None:
            self.model.train(self._training)
        self.parameters_changed()

    def _load_optimizer(self, saved: dict[str, Any]) -> None:
        """Load the optimizer's part of a checkpoint; :class:`OptimizerStateMismatch` for one the optimizer as
        built cannot take (torch's refusal, another optimizer's groups, a value torch cannot load back), so
        that a resume names the optimizer. The machine's out of memory passes as raised."""
        built = [set(group) for group in self.optimizer.param_groups]  # the options each group holds as built
        try:
            unloadable = unloadable_state(saved) if loads_with_torch(self.optimizer) else None
            if unloadable is not None:  # a checkpoint of a run from before check_checkpointable refused it
                raise TypeError(f"the checkpoint's optimizer state holds {unloadable.what} ('{unloadable.key}' of "
                                f"parameter {unloadable.parameter}), which torch's Optimizer.load_state_dict "
                                f"cannot load back; {UNLOADABLE[unloadable.what]}")
            self.optimizer.load_state_dict(detached_copy(saved))
            check_group_options(self.optimizer, built)
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
            if is_out_of_memory(exc):
                raise
            raise OptimizerStateMismatch(exc) from exc
        in_parameter_layouts(self.optimizer)
