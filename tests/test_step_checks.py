"""The Step checks (trainlab.engine.step_checks) the Trainer runs when built and on its first step."""

from __future__ import annotations

import pytest
import torch

from tests.test_step_contract import TwoOptimizerStep
from trainlab.data.dataset import Split
from trainlab.engine.batching import BatchPlan, TensorBatches
from trainlab.engine.loop import Limits, Trainer
from trainlab.engine.step import StepOutput


def test_a_step_missing_part_of_the_contract_is_named_when_the_trainer_is_built():
    """A Step without lr() failed as an AttributeError eight frames deep after its first epoch."""
    from trainlab.errors import ConfigError

    class TrainsOnly:
        model = None

        def train_step(self, batches, state):
            raise AssertionError("never reached")

    data = Split(torch.randn(32, 4), torch.zeros(32))
    with pytest.raises(ConfigError) as caught:
        Trainer(TrainsOnly(), TensorBatches(data, None, 0, torch.device("cpu")), BatchPlan(32, batch_size=16, seed=0),
                Limits(epochs=1))
    assert str(caught.value) == ("step TrainsOnly lacks set_mode, predict, lr, set_lr_factor, weights, load_weights, "
                                 "state_dict, load_state_dict, device of the Step contract "
                                 "(trainlab.engine.step.Step; docs/engine.md)")


@pytest.mark.parametrize("returned, message", [
    (lambda loss, n: (loss.detach(), n), "returned a tuple; expected StepOutput(losses={'loss': loss.detach(), ...}"),
    (lambda loss, n: StepOutput({"total": loss.detach()}, n), "returned losses without 'loss' (['total'])"),
    (lambda loss, n: StepOutput({"loss": float(loss.detach())}, n), "returned losses['loss'] as float: each loss is a one"),
    (lambda loss, n: StepOutput({"loss": loss}, n), "returned losses['loss'] that requires grad: return loss.detach"),
    (lambda loss, n: StepOutput({"loss": loss.detach()}, 0), "returned samples=0; the step's row count")])
def test_what_a_step_returns_is_checked_on_the_first_step_in_one_line(returned, message):
    """Each of these was a bare AttributeError or KeyError inside the loop, or (a loss that requires grad) kept
    every step's graph in the epoch's sums without a word."""
    from trainlab.errors import ConfigError

    class Returns(TwoOptimizerStep):
        def train_step(self, batches, state):
            (x, _), = batches
            loss = self.critic(x).mean()
            self.opt_c.zero_grad()
            loss.backward()
            self.opt_c.step()
            return returned(loss, len(x))

    data = Split(torch.randn(32, 4), torch.zeros(32))
    trainer = Trainer(Returns(0), TensorBatches(data, None, 0, torch.device("cpu")),
                      BatchPlan(32, batch_size=16, seed=0), Limits(epochs=1))
    with pytest.raises(ConfigError) as caught:
        trainer.fit()
    assert str(caught.value).startswith("Returns.train_step " + message) and "\n" not in str(caught.value)
