"""Capture and restore of everything a run needs to continue bit-identically.

A :class:`Snapshot` is ``(tree, tensors)``: a JSON-able tree and a flat
``{key: tensor}`` dict (see :mod:`trainlab.engine.serialize`), exactly what a
checkpoint stores (``state.json`` + ``tensors.safetensors``). It holds the
caller's named parts (the step, the callbacks, the loop's counters...) and the
process RNGs (python, numpy, torch CPU and, on CUDA, the device's).

The documented way to change one before restoring it is
:meth:`Snapshot.with_train_state` (the divergence guard's rollback uses it);
nothing else edits a snapshot's internals.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainlab.engine.serialize import join_state, split_state


@dataclass(frozen=True)
class Snapshot:
    tree: dict[str, Any]
    tensors: dict[str, torch.Tensor]

    def clone(self) -> Snapshot:
        """A deep copy: later training steps cannot change it."""
        return Snapshot(copy.deepcopy(self.tree), {k: v.detach().clone() for k, v in self.tensors.items()})

    @property
    def step(self) -> int:
        return int(self.tree["parts"]["train_state"]["step"])

    def train_state(self) -> dict[str, Any]:
        """A copy of the loop's counters as captured (``TrainState.state_dict()``)."""
        return copy.deepcopy(self.tree["parts"]["train_state"])

    def with_train_state(self, **updates: Any) -> Snapshot:
        """The same snapshot with some ``TrainState`` fields replaced (tensors shared, tree copied)."""
        tree = copy.deepcopy(self.tree)
        tree["parts"]["train_state"].update(updates)
        return Snapshot(tree, self.tensors)


def detached_copy(tree: Any) -> Any:
    """``tree`` with its dicts, lists and tuples rebuilt and every tensor (and NumPy array) copied, detached:
    in-place changes of the originals (a training step, a schedule-free optimizer's eval switch) do not reach
    it. Other values are shared: the numbers, strings and None of a state dict cannot change in place."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, np.ndarray):
        return tree.copy()
    if isinstance(tree, dict):
        return {key: detached_copy(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [detached_copy(value) for value in tree]
    if isinstance(tree, tuple):
        return tuple(detached_copy(value) for value in tree)
    return tree


def capture(parts: dict[str, Any], device: torch.device | None = None) -> Snapshot:
    """Snapshot ``parts`` (any tree of dicts, lists, tensors, JSON scalars) plus the RNG states.

    Tensors are referenced, not copied: call :meth:`Snapshot.clone` to keep one while training goes on.
    """
    tree, tensors = split_state(parts, "parts")
    np_state = np.random.get_state(legacy=True)
    rng_tree = {"python": random.getstate(), "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
    rng_json, _ = split_state(rng_tree, "rng")
    tensors["rng.torch"] = torch.get_rng_state()
    if device is not None and device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return Snapshot({"parts": tree, "rng": rng_json}, tensors)


def restore(snapshot: Snapshot, device: torch.device | None = None) -> dict[str, Any]:
    """Set the RNGs from ``snapshot`` and return its parts (tensors are the snapshot's: copy before mutating)."""
    rng = join_state(snapshot.tree["rng"], {})
    python_state = rng["python"]
    random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
    kind, keys, *rest = rng["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(snapshot.tensors["rng.torch"].clone())
    if "rng.cuda" in snapshot.tensors and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(snapshot.tensors["rng.cuda"].clone(), device)
    return join_state(snapshot.tree["parts"], snapshot.tensors)
