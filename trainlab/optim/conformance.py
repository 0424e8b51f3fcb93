"""The optimizer zoo: every optimizer on one full-batch least-squares problem.

The tutorial's data, ``y = 2 x + 1 + noise`` at 100 points in [0, 9], fitted by
``nn.Linear(1, 1)`` with the mean squared error. Each entry of :data:`ZOO`
gives an optimizer, its settings, a step count and the tolerance within which
it must reach the least-squares solution (slope ~1.967, intercept ~1.208):
``max(|slope - slope*|, |intercept - intercept*|) <= tolerance``. The tolerance
is loose where an optimizer only reaches a neighbourhood with a constant LR
(sign-based steps oscillate at ~lr; Adadelta's step ratio RMS[dx]/RMS[g]
stops shrinking at ~2e-2 here). ``muon`` and ``muon_conv`` are not in the zoo:
orthogonalising a 1x1 weight gives its sign, a step of fixed size that cannot
settle (and ``muon_conv`` refuses the 1-D bias).

``python -m trainlab.optim.conformance`` prints the table in docs/optimizers.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from trainlab.optim import build_optimizer, param_groups, requires_closure, set_train_mode


class ZooEntry(NamedTuple):
    optimizer: str  # registry name
    kwargs: dict[str, Any]  # including lr
    steps: int  # optimizer steps (L-BFGS: each step runs up to max_iter iterations)
    tolerance: float  # max abs error of slope and intercept


ZOO: dict[str, ZooEntry] = {
    "sgd": ZooEntry("sgd", {"lr": 0.03}, 700, 1e-4),
    "momentum": ZooEntry("momentum", {"lr": 0.01}, 400, 1e-4),
    "nesterov": ZooEntry("nesterov", {"lr": 0.01}, 400, 1e-4),
    "momentum_textbook": ZooEntry("momentum_textbook", {"lr": 0.01}, 400, 1e-4),
    "rmsprop": ZooEntry("rmsprop", {"lr": 0.01}, 1500, 1e-2),
    "adagrad": ZooEntry("adagrad", {"lr": 1.0}, 800, 1e-4),
    "adadelta": ZooEntry("adadelta", {"lr": 1.0}, 2000, 5e-2),
    "adadelta_zeiler": ZooEntry("adadelta_zeiler", {"lr": 1.0}, 2000, 5e-2),
    "adam": ZooEntry("adam", {"lr": 0.1}, 600, 1e-3),
    "adamw": ZooEntry("adamw", {"lr": 0.1, "weight_decay": 0.0}, 600, 1e-3),  # decay would move the optimum
    "adam_textbook": ZooEntry("adam_textbook", {"lr": 0.1}, 600, 1e-3),
    "adam_textbook (no bias correction)": ZooEntry("adam_textbook", {"lr": 0.1, "bias_correction": False}, 600, 1e-3),
    "nadam": ZooEntry("nadam", {"lr": 0.1}, 800, 1e-3),
    "radam": ZooEntry("radam", {"lr": 0.05}, 2000, 1e-4),
    "adamax": ZooEntry("adamax", {"lr": 0.2}, 1000, 1e-3),
    "adafactor": ZooEntry("adafactor", {"lr": 0.03}, 1000, 1e-3),
    "lion": ZooEntry("lion", {"lr": 0.002, "betas": (0.95, 0.98)}, 2000, 1e-2),
    # phi's lower bound 1 lets the 1-element weight and bias change sign (see Lamb's docstring)
    "lamb": ZooEntry("lamb", {"lr": 0.002, "weight_decay": 0.0, "norm_bounds": (1.0, None)}, 2000, 1e-2),
    "schedule_free_adamw": ZooEntry("schedule_free_adamw", {"lr": 1.0}, 500, 1e-4),
    "prodigy": ZooEntry("prodigy", {"lr": 1.0}, 300, 1e-4),
    "lbfgs": ZooEntry("lbfgs", {"lr": 1.0}, 5, 1e-5),
}


def zoo_data() -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's data: x (100, 1) on [0, 9], y = 2 x + 1 + N(0, 1), NumPy seed 0."""
    np.random.seed(0)
    x = np.linspace(0, 9, 100).reshape(-1, 1)
    y = 2 * x + 1 + np.random.normal(size=(100, 1))
    return x, y


def fit(entry: ZooEntry, seed: int = 0) -> tuple[float, float]:
    """Train ``nn.Linear(1, 1)`` (float64, torch seed ``seed``) full batch; returns (slope, intercept)."""
    x, y = zoo_data()
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(seed)
    model = torch.nn.Linear(1, 1).double()
    optimizer = build_optimizer({"name": entry.optimizer, **entry.kwargs}, param_groups(model))

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        return loss

    for _ in range(entry.steps):
        if requires_closure(optimizer):
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
    set_train_mode(optimizer, False)  # schedule-free: evaluate the averaged weights
    return model.weight.item(), model.bias.item()


def render_markdown() -> str:
    """The zoo as a Markdown table, with the error each entry reaches and the reference solution."""
    x, y = zoo_data()
    design = np.hstack([x, np.ones_like(x)])
    (slope, intercept), *_ = np.linalg.lstsq(design, y.ravel(), rcond=None)
    lines = [f"Least squares (np.linalg.lstsq): slope {slope:.4f}, intercept {intercept:.4f}.", "",
             "| optimizer | settings | steps | tolerance | reached error |", "|---|---|---:|---:|---:|"]
    for label, entry in ZOO.items():
        w, b = fit(entry)
        error = max(abs(w - slope), abs(b - intercept))
        settings = ", ".join(f"{k}={v}" for k, v in entry.kwargs.items())
        lines.append(f"| {label} | {settings} | {entry.steps} | {entry.tolerance:g} | {error:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown())
