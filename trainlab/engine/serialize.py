"""Pickle-free serialisation of nested state (optimizer/scheduler/callback state dicts).

:func:`split_state` turns any tree of dicts, lists, tuples, tensors and JSON
scalars into (a JSON-able tree, a flat ``{key: tensor}`` dict): each tensor is
replaced by ``{"__tensor__": key}``. Tuples become ``{"__tuple__": [...]}`` and
dicts with non-string keys ``{"__items__": [[k, v], ...]}``, so
:func:`join_state` rebuilds exactly the original structure and types.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainlab.errors import ConfigError

SERIALISABLE = "tensors, NumPy arrays, numbers, strings, None, and lists, tuples and dicts of these"


class UnserialisableState(ConfigError, TypeError):
    """A value :func:`split_state` cannot store without pickle (a set, an object), at ``key`` (its path in
    the tree: ``parts.step.optimizer.state.0.tags``). A ConfigError: it comes of the user's own optimizer,
    schedule or callback, whose state may hold only :data:`SERIALISABLE`; a TypeError as it always was."""

    def __init__(self, key: str, value: Any):
        self.key, self.type_name = key, type(value).__name__
        super().__init__(f"cannot save the {self.type_name} at '{key}' in a checkpoint without pickle: saved "
                         f"state may hold only {SERIALISABLE}")


def split_state(obj: Any, prefix: str = "s") -> tuple[Any, dict[str, torch.Tensor]]:
    """``obj`` as (a JSON-able tree, ``{key: tensor}``), keys starting with ``prefix`` (module docstring).
    Walks the tree only: tensors are referenced, not copied. Raises :class:`UnserialisableState` for a value
    none of :data:`SERIALISABLE`."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[key] = node.detach()
            return {"__tensor__": key}
        if isinstance(node, np.ndarray):
            tensors[key] = torch.from_numpy(np.ascontiguousarray(node))
            return {"__ndarray__": key}
        if isinstance(node, np.generic):
            return node.item()
        if isinstance(node, dict):
            if all(isinstance(k, str) for k in node):
                return {k: walk(v, f"{key}.{k}") for k, v in node.items()}
            return {"__items__": [[k, walk(v, f"{key}.{i}")] for i, (k, v) in enumerate(node.items())]}
        if isinstance(node, tuple):
            return {"__tuple__": [walk(v, f"{key}.{i}") for i, v in enumerate(node)]}
        if isinstance(node, list):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(node)]
        if node is None or isinstance(node, bool | int | float | str):
            return node
        raise UnserialisableState(key, node)

    return walk(obj, prefix), tensors


def join_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "__tensor__" in node and len(node) == 1:
                return tensors[node["__tensor__"]]
            if "__ndarray__" in node and len(node) == 1:
                return tensors[node["__ndarray__"]].numpy()
            if "__tuple__" in node and len(node) == 1:
                return tuple(walk(v) for v in node["__tuple__"])
            if "__items__" in node and len(node) == 1:
                return {k: walk(v) for k, v in node["__items__"]}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(tree)
