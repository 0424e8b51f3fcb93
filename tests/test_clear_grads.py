"""clear_grads: the step's ``zero_grad(set_to_none=True)``, written out for torch's own zero_grad."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.engine.objective import Objective
from trainlab.engine.step import StandardStep, clear_grads
from trainlab.losses import build_loss


def _with_grads(model: nn.Module) -> None:
    model(torch.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_every_grad_of_every_group_becomes_none():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    optimizer = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.5}],
                                lr=0.1)
    _with_grads(model)
    frozen = nn.Parameter(torch.ones(2))  # not in the optimizer: not its to clear
    frozen.grad = torch.ones(2)
    clear_grads(optimizer)
    assert [p.grad for p in model.parameters()] == [None] * 4
    assert frozen.grad is not None


def test_an_optimizer_with_its_own_zero_grad_gets_it_called():
    calls = []

    class Counting(torch.optim.SGD):
        def zero_grad(self, set_to_none: bool = True) -> None:
            calls.append(set_to_none)
            super().zero_grad(set_to_none=set_to_none)

    model = nn.Linear(3, 2)
    optimizer = Counting(model.parameters(), lr=0.1)
    _with_grads(model)
    clear_grads(optimizer)
    assert calls == [True]
    assert model.weight.grad is None


def test_the_plain_step_leaves_no_gradient_and_trains_as_written_out():
    torch.manual_seed(0)
    model, twin = nn.Linear(3, 2), nn.Linear(3, 2)
    twin.load_state_dict(model.state_dict())
    step = StandardStep(model, torch.optim.Adam(model.parameters(), lr=0.1),
                        Objective(build_loss("cross_entropy")))
    reference = torch.optim.Adam(twin.parameters(), lr=0.1)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    for _ in range(3):
        step.train_step([(x, y)], state=None)
        assert all(p.grad is None for p in model.parameters())
        nn.functional.cross_entropy(twin(x), y).backward()
        reference.step()
        reference.zero_grad()
    for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
