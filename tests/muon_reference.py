"""airbench94_muon's Muon written out in NumPy (float64): the reference for muon_conv and routed groups."""

from __future__ import annotations

import numpy as np


def newton_schulz5(matrix: np.ndarray, steps: int, eps: float = 1e-7) -> np.ndarray:
    """Quintic Newton-Schulz, coefficients (3.4445, -4.7750, 2.0315), iterating on the wide orientation."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = matrix / (np.linalg.norm(matrix) + eps)
    tall = matrix.shape[0] > matrix.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class NumpyMuon:
    """buf = m buf + g; u = g + m buf (nesterov) or buf; W *= sqrt(out)/||W|| (normalize);
    W *= 1 - lr wd; W -= lr reshape(NS(reshape(u, (out, -1))))."""

    def __init__(self, momentum: float, nesterov: bool, ns_steps: int, normalize_weights: bool,
                 weight_decay: float = 0.0):
        self.momentum, self.nesterov, self.ns_steps = momentum, nesterov, ns_steps
        self.normalize_weights, self.weight_decay = normalize_weights, weight_decay
        self.buffers: dict[int, np.ndarray] = {}

    def step(self, key: int, weight: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
        buffer = self.momentum * self.buffers.get(key, np.zeros_like(grad)) + grad
        self.buffers[key] = buffer
        direction = grad + self.momentum * buffer if self.nesterov else buffer
        if self.normalize_weights:
            weight = weight * np.sqrt(weight.shape[0]) / np.linalg.norm(weight)
        weight = weight * (1.0 - lr * self.weight_decay)
        update = newton_schulz5(direction.reshape(len(direction), -1), self.ns_steps).reshape(weight.shape)
        return weight - lr * update
