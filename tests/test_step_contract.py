"""The Step contract: a Step with two models and two optimizers runs through the unchanged Trainer
and resumes bit-identically; the Trainer itself holds no model or optimizer."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from trainlab.callbacks.checkpoint_saver import CheckpointSaver
from trainlab.data.dataset import Split
from trainlab.engine import checkpoint
from trainlab.engine.batching import BatchPlan, TensorBatches
from trainlab.engine.loop import Limits, Trainer
from trainlab.engine.snapshot import Snapshot
from trainlab.engine.step import LRGroups, Step, StepOutput


class TwoOptimizerStep(Step):
    """A toy adversarial step: a critic trained ``n_critic`` times per generator update (WGAN's shape)."""

    def __init__(self, seed: int, n_critic: int = 2):
        torch.manual_seed(seed)
        self.generator, self.critic = nn.Linear(4, 4), nn.Linear(4, 1)
        self.model = None  # several models: no single one for fine-tuning callbacks
        self.device = torch.device("cpu")
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=1e-2)
        self.opt_c = torch.optim.SGD(self.critic.parameters(), lr=5e-2, momentum=0.9)
        self.lrs = LRGroups([self.opt_g, self.opt_c])
        self.n_critic = n_critic

    def train_step(self, batches, state) -> StepOutput:
        (x, _), = batches
        noise = torch.randn(len(x), 4)  # the process RNG: resume must restore it
        for _ in range(self.n_critic):
            self.opt_c.zero_grad()
            critic_loss = self.critic(self.generator(noise).detach()).mean() - self.critic(x).mean()
            critic_loss.backward()
            self.opt_c.step()
        self.opt_g.zero_grad()
        generator_loss = -self.critic(self.generator(noise)).mean()
        generator_loss.backward()
        self.opt_g.step()
        return StepOutput({"loss": generator_loss.detach(), "critic": critic_loss.detach()}, len(x))

    def set_mode(self, training: bool) -> None:
        self.generator.train(training)
        self.critic.train(training)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def lr(self) -> float:
        return self.lrs.current()

    def set_lr_factor(self, factor: float) -> None:
        self.lrs.set_factor(factor)

    def weights(self) -> dict[str, torch.Tensor]:
        return {f"g.{k}": v.clone() for k, v in self.generator.state_dict().items()} | {
            f"c.{k}": v.clone() for k, v in self.critic.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.generator.load_state_dict({k[2:]: v for k, v in weights.items() if k.startswith("g.")})
        self.critic.load_state_dict({k[2:]: v for k, v in weights.items() if k.startswith("c.")})

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(), "critic": self.critic.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_c": self.opt_c.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_c.load_state_dict(state["opt_c"])


def _trainer(root, seed: int = 0, every_n_steps: int | None = None) -> Trainer:
    data = Split(torch.randn(96, 4, generator=torch.Generator().manual_seed(1)) + 2.0, torch.zeros(96))
    step = TwoOptimizerStep(seed)
    plan = BatchPlan(len(data), batch_size=16, seed=seed)
    callbacks = []
    if every_n_steps:
        callbacks.append(CheckpointSaver(root, every_n_steps, None, None, keep_last=100))
    return Trainer(step, TensorBatches(data, None, seed, torch.device("cpu")), plan, Limits(epochs=4), callbacks)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return trainer.step.weights()


def test_the_trainer_knows_no_model_or_optimizer():
    parameters = inspect.signature(Trainer.__init__).parameters
    assert len(parameters) - 1 <= 6
    source = inspect.getsource(Trainer)
    assert "optimizer" not in source and ".model" not in source


def test_a_two_optimizer_step_trains_through_the_trainer_and_records_both_losses(tmp_path):
    torch.manual_seed(0)
    trainer = _trainer(tmp_path)
    state = trainer.fit()
    assert state.finished and state.step == 4 * 6 and state.epoch == 4
    assert {"train_loss", "train_critic"} <= set(state.history[-1])
    assert len(state.history) == 4


def test_a_two_optimizer_step_resumes_bit_identically_from_every_checkpoint(tmp_path):
    torch.manual_seed(0)
    reference = _trainer(tmp_path / "ref")
    reference.fit()
    expected = _weights(reference)
    expected_losses = [r["train_loss"] for r in reference.state.history]

    torch.manual_seed(0)
    saving = _trainer(tmp_path / "ckpt", every_n_steps=5)
    saving.fit()
    folders = checkpoint.step_folders(tmp_path / "ckpt")
    assert len(folders) >= 4
    for folder in folders:
        _, tree, tensors = checkpoint.load(folder)
        torch.manual_seed(123)  # a different process RNG: the checkpoint must restore it
        resumed = _trainer(tmp_path / "unused", seed=0)
        resumed.restore(Snapshot(tree, tensors))
        resumed.fit()
        got = _weights(resumed)
        assert all(torch.equal(got[k], expected[k]) for k in expected), folder.name
        assert [r["train_loss"] for r in resumed.state.history] == expected_losses
