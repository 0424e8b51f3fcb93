"""LR range test: sweep and suggestion against NumPy transcriptions, exact restoration, and a real sweep."""

from __future__ import annotations

import contextlib
import copy
import doctest

import numpy as np
import pytest
import torch
from torch import nn

import trainlab.lr_finder as lr_finder_module
from trainlab.errors import DataError, TrainingError
from trainlab.lr_finder import (
    MIN_SWEEP_STEPS,
    NoDescentError,
    SmoothedLoss,
    lr_sweep,
    run_lr_range_test,
    suggest_lr,
    warmup_steps,
)

# --------------------------------------------------------------------------- pure logic


def numpy_smoothed(losses: np.ndarray, beta: float) -> np.ndarray:
    """s_i = sum_j (1 - beta) beta^(i - j) l_j / (1 - beta^(i + 1)), written as a matrix product."""
    n = len(losses)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    weights = np.where(j <= i, (1 - beta) * beta ** (i - j).astype(float), 0.0)
    return weights @ losses / (1 - beta ** (np.arange(n) + 1.0))


def numpy_suggestion(lrs: np.ndarray, losses: np.ndarray, beta: float) -> float:
    smoothed = numpy_smoothed(losses, beta)
    skip = len(lrs) // 10  # the warm-up: neither a minimum nor divergence before it
    running_min = np.minimum.accumulate(smoothed[skip:])
    over = np.nonzero(smoothed[skip + 1:] > 4 * running_min[:-1])[0]
    end = skip + over[0] + 1 if len(over) else len(smoothed)  # first point above 4x the minimum so far
    s, x = smoothed[:end], np.log(lrs[:end])
    slope = np.empty(end)  # central differences on the (uniform) log-lr grid, one-sided at the ends
    slope[1:-1] = (s[2:] - s[:-2]) / (x[2:] - x[:-2])
    slope[0], slope[-1] = (s[1] - s[0]) / (x[1] - x[0]), (s[-1] - s[-2]) / (x[-1] - x[-2])
    lowest = skip + int(np.argmin(s[skip:]))
    first = max(skip, int(np.nonzero(lrs >= lrs[lowest] / 1e3)[0][0]))  # at most three decades below the minimum
    steepest = float(lrs[first + int(np.argmin(slope[first:lowest]))])  # not lr_lowest: the loss rose after it
    return min(steepest, numpy_ceiling(lrs[:end], losses[:end], skip, len(lrs)))


def numpy_ceiling(lrs: np.ndarray, losses: np.ndarray, skip: int, planned: int) -> float:
    """The largest lr at most a tenth of where the centred mean (half-width planned // 20, cut at the ends) of
    the raw losses starts to rise: its last point from its minimum on within 20% of its fall above it."""
    h = max(2, planned // 20)
    sums = np.convolve(losses, np.ones(2 * h + 1), mode="full")[h:h + len(losses)]  # sum over i-h..i+h
    counts = np.convolve(np.ones(len(losses)), np.ones(2 * h + 1), mode="full")[h:h + len(losses)]
    centred = sums / counts
    lowest = skip + int(np.argmin(centred[skip:]))
    limit = centred[lowest] + 0.2 * (centred[skip] - centred[lowest])
    rise = lowest
    while rise + 1 < len(centred) and centred[rise + 1] <= limit:
        rise += 1
    below = lrs[lrs <= lrs[rise] / 10 * (1 + 1e-9)]
    return float(below[-1]) if len(below) else float(lrs[0])


def test_lr_sweep_is_geometric_with_exact_ends():
    lrs = lr_sweep(1e-7, 10.0, 100)
    np.testing.assert_allclose(lrs, np.geomspace(1e-7, 10.0, 100), rtol=1e-12)
    assert lrs[0] == 1e-7 and lrs[-1] == 10.0
    ratios = np.array(lrs[1:]) / np.array(lrs[:-1])
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-10)


@pytest.mark.parametrize(("args", "match"), [((1e-3, 1e-4, 10), "start_lr < end_lr"), ((0.0, 1.0, 10), "start_lr"),
                                             ((1e-4, 1.0, 1), "num_steps"), ((1e-4, 1.0, 2.5), "num_steps")])
def test_lr_sweep_rejects_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        lr_sweep(*args)


def test_smoothed_loss_is_the_bias_corrected_ema():
    losses = np.random.default_rng(0).random(50) + 1.0
    tracker = SmoothedLoss(0.9)
    np.testing.assert_allclose([tracker.update(loss) for loss in losses], numpy_smoothed(losses, 0.9), rtol=1e-12)
    assert SmoothedLoss(0.98).update(3.0) == pytest.approx(3.0)  # bias correction: the first value is the loss


def test_smoothed_loss_flags_divergence_at_four_times_the_minimum_and_on_nan():
    tracker = SmoothedLoss(0.0)  # no smoothing: s_i = l_i
    for loss in (1.0, 0.5, 1.9):
        tracker.update(loss)
    assert not tracker.diverged
    tracker.update(2.01)  # > 4 * 0.5
    assert tracker.diverged
    warmed = SmoothedLoss(0.0, warmup=2)  # 0.1 and 0.2 are warm-up: the minimum starts at 0.5
    for loss in (0.1, 0.2, 0.5, 1.9):
        warmed.update(loss)
    assert not warmed.diverged and warmed.minimum == 0.5
    warmed.update(2.01)
    assert warmed.diverged
    nan_tracker = SmoothedLoss()
    nan_tracker.update(float("nan"))
    assert nan_tracker.diverged


def test_suggestion_is_the_steepest_point_of_a_known_curve():
    lrs = np.geomspace(1e-6, 1.0, 61)  # 10 points per decade
    losses = 2.0 - np.tanh(np.log10(lrs) + 3.0)  # steepest in log lr at lr = 1e-3
    assert suggest_lr(lrs, losses, smoothing=0.0) == pytest.approx(1e-3, rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_suggestion_matches_numpy_transcription_on_noisy_sweeps(seed):
    rng = np.random.default_rng(seed)
    lrs = np.geomspace(1e-7, 10.0, 100)
    log_lr = np.log10(lrs)
    curve = 2.0 - np.tanh(log_lr + 2.5) + np.where(log_lr > -0.5, 40 * (log_lr + 0.5) ** 2, 0.0)  # then divergence
    losses = curve * (1 + 0.03 * rng.standard_normal(100))
    expected = numpy_suggestion(lrs, losses, 0.98)
    assert suggest_lr(lrs, losses) == expected
    assert 1e-4 < expected < 1e-1


def test_points_after_divergence_are_not_candidates():
    lrs = np.geomspace(1e-5, 1.0, 50)
    losses = np.linspace(1.0, 0.9, 50)  # a gentle slope ...
    losses[30] = 10.0  # ... a spike that counts as divergence (no smoothing) ...
    losses[31:] = np.linspace(9.0, 0.0, 19)  # ... then a steep "descent" that must be ignored
    suggestion = suggest_lr(lrs, losses, smoothing=0.0)
    assert suggestion < lrs[30]
    losses_with_nan = np.linspace(1.0, 0.9, 50)
    losses_with_nan[20:] = np.nan
    assert suggest_lr(lrs, losses_with_nan, smoothing=0.0) < lrs[20]


def test_points_past_the_minimum_are_not_candidates():
    lrs = np.geomspace(1e-5, 1.0, 50)
    # descend to a minimum of 0.8, rise to 3.0 (< 4 * 0.8, not yet divergence), then a steep "recovery"
    losses = np.concatenate([np.linspace(1.0, 0.8, 30), np.linspace(1.0, 3.0, 10), np.linspace(2.5, 1.0, 10)])
    suggestion = suggest_lr(lrs, losses, smoothing=0.0)
    assert lrs[5] <= suggestion <= lrs[29]


def test_suggest_lr_errors():
    lrs = np.geomspace(1e-5, 1.0, 30)
    with pytest.raises(ValueError, match="equal length"):
        suggest_lr(lrs, np.ones(29))
    with pytest.raises(ValueError, match="strictly increasing"):
        suggest_lr(lrs[::-1], np.ones(30))
    with pytest.raises(TrainingError, match=r"has 5 usable step.* need 6 .*\(trainlab lr-find --start-lr, --steps\)"):
        suggest_lr(lrs, np.array([1.0] * 5 + [np.nan] * 25))
    with pytest.raises(TrainingError, match="never fell during the LR range test: it was lowest at its first "
                                            r"counted step \(lr 3.29e-05\); .*\(trainlab lr-find --start-lr, --end-lr, --steps\)"):
        suggest_lr(lrs, np.linspace(1.0, 3.0, 30), smoothing=0.0)  # rising from the start


@pytest.mark.parametrize("steps", [2, 3, 5, 10, 29])
def test_a_sweep_too_short_for_the_noise_test_gets_no_suggestion(steps):
    """3 steps suggested the end lr (10) and 5 steps one that diverged (0.1): their warm-up (a tenth) is under
    the 3 points the noise test needs, so it never ran. Losses of a clean descent: still no suggestion."""
    lrs = lr_sweep(1e-7, 10.0, steps)
    losses = np.linspace(2.0, 1.0, steps)
    with pytest.raises(TrainingError, match=f"of {steps} steps skips {steps // 10} warm-up step.*at least "
                                            f"{MIN_SWEEP_STEPS} steps \\(trainlab lr-find --steps\\)"):
        suggest_lr(lrs, losses)
    assert warmup_steps(MIN_SWEEP_STEPS) == 3 and warmup_steps(MIN_SWEEP_STEPS - 1) == 2


def test_the_lr_at_the_minimum_and_the_sweeps_last_lr_are_never_suggested():
    """The loss of step i is taken before lr_i's update: the lr at the smoothed minimum is the end lr, whose
    effect no loss shows, or the one after which the loss rose. Both were suggested when the steepest fall (a
    one-sided difference at the end of the kept points) led into the minimum. The steepest candidate is now
    the one before them (lrs[-2], lrs[-3]: asserted before the ceiling came), and the ceiling puts the
    suggestion a decade below the raw minimum (here where the loss starts to rise): the largest swept lr
    at most a tenth of it."""
    lrs = np.array(lr_sweep(1e-4, 1.0, 40))
    falling = np.concatenate([np.full(4, 2.0), np.linspace(2.0, 1.0, 35), [0.0]])  # lowest at the end lr
    assert suggest_lr(lrs, falling, smoothing=0.0) == lrs[lrs <= lrs[-1] / 10][-1] < lrs[-2]
    rising = falling.copy()
    rising[-2:] = [0.0, 3.0]  # lr[-2]'s update sent the loss up (> 4x its minimum: the sweep ends there)
    assert suggest_lr(lrs, rising, smoothing=0.0) == lrs[lrs <= lrs[-2] / 10][-1] < lrs[-3]


def test_a_lucky_first_batch_is_neither_the_minimum_nor_a_divergence():
    # losses near 1 with one lucky batch of 0.1 first: 1.0 > 4 x 0.1 must not end the sweep
    lrs = np.geomspace(1e-7, 10.0, 100)
    log_lr = np.log10(lrs)
    losses = 1.0 - 0.7 * (np.tanh(log_lr + 2.0) + 1) / 2 + np.where(log_lr > -0.5, 20 * (log_lr + 0.5) ** 2, 0.0)
    losses = losses * (1 + 0.2 * np.random.default_rng(1).standard_normal(100))
    losses[0] = 0.1
    tracker = SmoothedLoss(warmup=10)
    assert not any(tracker.diverged for _ in [tracker.update(v) for v in losses[:60]])
    eager = SmoothedLoss(warmup=0)  # without the warm-up the sweep would end within 5 steps
    assert any(eager.update(v) is not None and eager.diverged for v in losses[:5])
    suggestion = suggest_lr(lrs, losses)
    assert suggestion == numpy_suggestion(lrs, losses, 0.98)
    assert 1e-4 < suggestion < 0.3  # in the descent (centred on 1e-2, smoothed with a lag), before the rise


@pytest.mark.parametrize("seed", range(4))
def test_on_a_very_noisy_sweep_the_suggestion_stays_within_three_decades_of_the_minimum(seed):
    # batch-of-2 noise (+-60%) on a descent centred on 1e-2: early wiggles must not win
    lrs = np.geomspace(1e-7, 10.0, 100)
    log_lr = np.log10(lrs)
    curve = 2.0 - np.tanh(log_lr + 2.0) + np.where(log_lr > -0.5, 40 * (log_lr + 0.5) ** 2, 0.0)
    losses = np.abs(curve * (1 + 0.6 * np.random.default_rng(seed).standard_normal(100)))
    suggestion = suggest_lr(lrs, losses)
    assert suggestion == numpy_suggestion(lrs, losses, 0.98)
    assert suggestion > 1e-5


def test_docstring_examples_run():
    result = doctest.testmod(lr_finder_module)
    assert result.attempted >= 1 and result.failed == 0


# --------------------------------------------------------------------------- running the test on a model

def blobs(seed: int, n: int = 512, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four overlapping Gaussian classes in 10-D (so the best loss is not 0 and large LRs diverge)."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(4, 10, generator=generator) * 0.7
    y = torch.randint(0, 4, (n,), generator=generator)
    return (centers[y] + torch.randn(n, 10, generator=generator)) * scale, y


def batches_of(x: torch.Tensor, y: torch.Tensor, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return [(x[order[i:i + size]], y[order[i:i + size]]) for i in range(0, len(x), size)]


def mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 4))


@pytest.mark.parametrize(("optimizer_name", "make"), [
    ("sgd", lambda params, lr: torch.optim.SGD(params, lr=lr)),
    ("adam", lambda params, lr: torch.optim.Adam(params, lr=lr)),
])
def test_suggestion_is_within_10x_of_the_best_lr_of_a_sweep(optimizer_name, make):
    x, y = blobs(0)
    batches, loss_fn = batches_of(x, y), nn.CrossEntropyLoss()
    model = mlp(0)
    lrs, losses = run_lr_range_test(model, loss_fn, make(model.parameters(), 1e-3), batches,
                                    start_lr=1e-5, end_lr=10.0, num_steps=100)
    suggestion = suggest_lr(lrs, losses)
    grid = np.geomspace(1e-4, 10.0, 11)  # half-decade steps
    final_losses = []
    for lr in grid:  # the reference: 100 steps at each fixed lr from the same init, same batches
        candidate = mlp(0)
        optimizer = make(candidate.parameters(), float(lr))
        for step in range(100):
            xb, yb = batches[step % len(batches)]
            optimizer.zero_grad()
            loss_fn(candidate(xb), yb).backward()
            optimizer.step()
        with torch.no_grad():
            final = float(loss_fn(candidate(x), y))
        final_losses.append(final if np.isfinite(final) else np.inf)
    best = grid[int(np.argmin(final_losses))]
    assert 1e-4 < best < 10.0, "the reference sweep must have an interior optimum"
    assert best / 10 <= suggestion <= best * 10, (optimizer_name, suggestion, best)


class Noisy(nn.Module):
    """BatchNorm (buffers), Dropout (RNG) and a frozen layer, to check what restoration covers."""

    def __init__(self):
        super().__init__()
        self.frozen = nn.Linear(10, 10)
        self.frozen.requires_grad_(False)
        self.body = nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))

    def forward(self, x):
        return self.body(self.frozen(x))


def snapshot(model: nn.Module, optimizer: torch.optim.Optimizer):
    return (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()),
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            [m.training for m in model.modules()], torch.get_rng_state().clone())


def assert_same_tree(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_tree(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for left, right in zip(a, b, strict=True):
            assert_same_tree(left, right)
    else:
        assert a == b


def prepared(seed: int = 0):
    """A model and Adam (two param groups) that already trained a little: state, grads and eval mode set."""
    torch.manual_seed(seed)
    model = Noisy()
    optimizer = torch.optim.Adam([{"params": model.body[0].parameters(), "lr": 1e-3},
                                  {"params": model.body[4].parameters(), "lr": 5e-4}], lr=1e-3)
    x, y = blobs(seed, n=64)
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    return model, optimizer, batches_of(*blobs(seed + 1, n=96))


def test_model_and_optimizer_are_restored_exactly():
    model, optimizer, batches = prepared()
    before = snapshot(model, optimizer)
    seen_lrs = []

    def loss_fn(output, target):
        seen_lrs.append([group["lr"] for group in optimizer.param_groups])
        return nn.functional.cross_entropy(output, target)

    lrs, losses = run_lr_range_test(model, loss_fn, optimizer, batches, start_lr=1e-6, end_lr=100.0, num_steps=40)
    assert 10 <= len(lrs) == len(losses)
    assert lrs == lr_sweep(1e-6, 100.0, 40)[:len(lrs)]
    np.testing.assert_allclose(seen_lrs, [[lr, lr / 2] for lr in lrs], rtol=1e-12)  # group ratios kept
    after = snapshot(model, optimizer)  # weights, BatchNorm buffers, Adam moments, grads, modes, RNG
    for left, right in zip(before, after, strict=True):
        assert_same_tree(left, right)


def test_what_the_optimizer_trains_outside_the_model_is_restored_and_a_group_at_lr_0_stays_at_0():
    """A learnable loss temperature in the optimizer but not the model: its value comes back (only the model's
    state_dict was saved: 1.0 -> 1.35). Group 0 at LR 0 (frozen by its LR): it stays at 0 and the other
    groups keep their ratios to the first positive one (every group was swept at ratio 1)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    temperature = nn.Parameter(torch.ones(()))
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.0},
                                 {"params": model[1].parameters(), "lr": 0.01},
                                 {"params": [temperature], "lr": 0.03}], lr=0.01)
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    batches = [(x[i:i + 8], (x[i:i + 8, 0] > 0).long()) for i in range(0, 64, 8)]
    seen = []

    def loss_fn(output, target):
        seen.append([group["lr"] for group in optimizer.param_groups])
        return nn.functional.cross_entropy(output * temperature, target)

    lrs, _ = run_lr_range_test(model, loss_fn, optimizer, batches, start_lr=1e-4, end_lr=1.0, num_steps=30)
    np.testing.assert_allclose(seen, [[0.0, lr, 3 * lr] for lr in lrs], rtol=1e-12)
    assert float(temperature.detach()) == 1.0
    assert [group["lr"] for group in optimizer.param_groups] == [0.0, 0.01, 0.03]


def test_weights_change_during_the_sweep_but_not_after():
    model, optimizer, batches = prepared()
    start = model.body[0].weight.detach().clone()
    during = []

    def loss_fn(output, target):
        during.append(model.body[0].weight.detach().clone())
        return nn.functional.cross_entropy(output, target)

    run_lr_range_test(model, loss_fn, optimizer, batches, start_lr=1e-3, end_lr=1.0, num_steps=8)
    assert not torch.equal(during[-1], start)
    assert torch.equal(model.body[0].weight, start)


def test_restored_even_when_the_loss_raises():
    model, optimizer, batches = prepared()
    before = snapshot(model, optimizer)
    calls = []

    def failing(output, target):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("boom")
        return nn.functional.cross_entropy(output, target)

    with pytest.raises(RuntimeError, match="boom"):
        run_lr_range_test(model, failing, optimizer, batches, start_lr=1e-3, end_lr=1.0, num_steps=20)
    for left, right in zip(before, snapshot(model, optimizer), strict=True):
        assert_same_tree(left, right)


def test_stops_at_a_non_finite_loss_without_stepping_on_it():
    model = mlp(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def loss_fn(output, target):
        calls.append(1)
        loss = nn.functional.cross_entropy(output, target)
        return loss * float("nan") if len(calls) == 7 else loss

    lrs, losses = run_lr_range_test(model, loss_fn, optimizer, batches_of(*blobs(0)), num_steps=50)
    assert len(lrs) == 7 and np.isnan(losses[-1]) and np.all(np.isfinite(losses[:-1]))


def test_stops_early_when_the_loss_diverges():
    model = mlp(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = blobs(0, scale=30.0)  # large inputs: SGD blows up well before lr = 1e3
    lrs, losses = run_lr_range_test(model, nn.CrossEntropyLoss(), optimizer, batches_of(x, y),
                                    start_lr=1e-5, end_lr=1e3, num_steps=100)
    assert len(lrs) < 100
    tracker = SmoothedLoss()
    for loss in losses[:-1]:
        tracker.update(loss)
        assert not tracker.diverged  # it stopped at the first divergent point, not before
    tracker.update(losses[-1])
    assert tracker.diverged


def test_batches_are_cycled_and_exhaustion_is_handled():
    model = mlp(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = batches_of(*blobs(0, n=96))  # 3 batches
    lrs, _ = run_lr_range_test(model, nn.CrossEntropyLoss(), optimizer, batches, start_lr=1e-6, end_lr=1e-4,
                               num_steps=10)
    assert len(lrs) == 10  # the list was iterated again after 3 batches
    one_shot = iter(batches)  # a generator cannot be restarted: the sweep ends when it runs out
    lrs, _ = run_lr_range_test(model, nn.CrossEntropyLoss(), optimizer, one_shot, start_lr=1e-6, end_lr=1e-4,
                               num_steps=10)
    assert len(lrs) == 3
    with pytest.raises(DataError, match="no batches"):
        run_lr_range_test(model, nn.CrossEntropyLoss(), optimizer, [], num_steps=10)


def test_closure_optimizers_run_and_restore():
    model = mlp(0)
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=2)
    before = copy.deepcopy(model.state_dict())
    lrs, losses = run_lr_range_test(model, nn.CrossEntropyLoss(), optimizer, batches_of(*blobs(0)),
                                    start_lr=1e-4, end_lr=1e-1, num_steps=6)
    assert len(lrs) == 6 and np.all(np.isfinite(losses))
    first_x, first_y = batches_of(*blobs(0))[0]
    with torch.no_grad():  # the recorded loss is the closure's first evaluation, at the starting weights
        assert losses[0] == pytest.approx(float(nn.functional.cross_entropy(model(first_x), first_y)), rel=1e-6)
    assert_same_tree(before, model.state_dict())
    assert optimizer.state_dict()["state"] == {}


# --------------------------------------------------------------------------- wiring into experiments

def blob_dataset():
    from trainlab.data.dataset import Dataset, Split

    x, y = blobs(0, n=256)
    return Dataset(train=Split(x, y), val=Split(x[:32], y[:32]), test=Split(x[:32], y[:32]), task="multiclass",
                   num_classes=4)


def test_engine_batches_follow_the_epoch_order():
    from trainlab.engine.batching import BatchPlan, TensorBatches, epoch_permutation

    data = blob_dataset()
    batches = TensorBatches(data.train, None, seed=3, device=torch.device("cpu")).forever(BatchPlan(256, 100, seed=3))
    first, second, third, fourth = (next(batches) for _ in range(4))
    order0, order1 = epoch_permutation(256, 3, 0), epoch_permutation(256, 3, 1)
    assert torch.equal(first[0], data.train.x[order0[:100]]) and torch.equal(third[1], data.train.y[order0[200:]])
    assert len(third[0]) == 56 and torch.equal(fourth[0], data.train.x[order1[:100]])  # then the next epoch
    assert torch.equal(second[1], data.train.y[order0[100:200]])


def test_range_test_through_the_runs_step_restores_it_and_matches_a_plain_range_test():
    """Same model, SGD, no penalties or clipping: the step-driven sweep equals the plain one."""
    from trainlab.engine.batching import BatchPlan, TensorBatches
    from trainlab.engine.objective import Objective
    from trainlab.engine.step import StandardStep
    from trainlab.losses import build_loss
    from trainlab.lr_finder import range_test_step

    data, loss = blob_dataset(), build_loss("cross_entropy")
    model = mlp(0)
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=1e-5), Objective(loss))
    before = copy.deepcopy(model.state_dict())
    batches = TensorBatches(data.train, None, 0, torch.device("cpu"))
    lrs, losses = range_test_step(step, batches.forever(BatchPlan(256, 32, seed=0)), start_lr=1e-5, end_lr=10.0,
                                  num_steps=60)
    assert_same_tree(before, model.state_dict())
    assert step.lr() == pytest.approx(1e-5)
    manual_model = mlp(0)
    manual_lrs, manual_losses = run_lr_range_test(
        manual_model, loss, torch.optim.SGD(manual_model.parameters(), lr=1e-5),
        batches.forever(BatchPlan(256, 32, seed=0)), start_lr=1e-5, end_lr=10.0, num_steps=60)
    assert lrs == manual_lrs
    np.testing.assert_allclose(losses, manual_losses, rtol=1e-5)


def test_the_sweeps_lrs_are_the_configured_lr_not_the_first_param_groups():
    """layerwise_lr_decay puts the lowest layer first, at lr x decay^K: the sweep's lrs (and so the
    suggestion) must be values of the configured lr (the head's), every group keeping its ratio to it;
    read off the first group, the head then trained decay^K below the lr the sweep had found."""
    from trainlab.engine.batching import BatchPlan, TensorBatches
    from trainlab.engine.objective import Objective
    from trainlab.engine.step import StandardStep
    from trainlab.losses import build_loss
    from trainlab.lr_finder import range_test_step

    data, model = blob_dataset(), mlp(0)
    lower, head = list(model.parameters())[:-2], list(model.parameters())[-2:]
    optimizer = torch.optim.SGD([{"params": lower, "lr": 1e-5 * 0.25}, {"params": head, "lr": 1e-5}], lr=1e-5)
    step = StandardStep(model, optimizer, Objective(build_loss("cross_entropy")))
    seen: list[tuple[float, float]] = []
    train_step = step.train_step

    def recording(batches, state):
        seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[1]["lr"]))
        return train_step(batches, state)

    step.train_step = recording
    batches = TensorBatches(data.train, None, 0, torch.device("cpu"))
    lrs, _ = range_test_step(step, batches.forever(BatchPlan(256, 32, seed=0)), start_lr=1e-5, end_lr=1.0,
                             num_steps=30, reference_lr=1e-5)
    assert len(seen) == len(lrs)
    for lr, (first, second) in zip(lrs, seen, strict=False):
        assert second == pytest.approx(lr) and first == pytest.approx(lr * 0.25)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([2.5e-6, 1e-5])  # restored


def test_lr_find_config_builds_the_run_and_plots(tmp_path):
    from trainlab.config import Config
    from trainlab.lr_find_run import lr_find_config

    config = Config.model_validate({
        "name": "lr-find", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp"},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": "auto"}, "batch_size": 16,
                     "epochs": 1},
        "runtime": {"device": "cpu"}})
    suggestion, lrs, losses = lr_find_config(config, plot=str(tmp_path / "lr.png"), num_steps=40)
    assert suggestion in lrs and len(lrs) == len(losses) >= 20
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a sweep that diverges at once: no suggestion, but the plot that shows why is written
    with pytest.raises(TrainingError, match=r"usable step.*\(the curve: .*none.png\)$"):
        lr_find_config(config, plot=str(tmp_path / "none.png"), start_lr=1e4, end_lr=1e8, num_steps=40)
    assert (tmp_path / "none.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lr_find_of_a_config_with_weight_averaging_sweeps_as_lr_auto_does():
    """lr-find ran its sweep through the run's averaged step: lookahead pulled the weights back every few
    steps and the curve suggested 8.3 (or showed no descent) where lr: auto, which sweeps without averaging,
    found 0.24. Now the same sweep with and without weight averaging."""
    from trainlab.config import Config
    from trainlab.lr_find_run import lr_find_config

    raw = {"name": "lr-find", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp"},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
                        "batch_size": 16, "epochs": 1},
           "runtime": {"device": "cpu"}}
    plain = lr_find_config(Config.model_validate(raw), num_steps=40)
    averaged = {**raw, "strategy": {**raw["strategy"], "weight_averaging": {"kind": "lookahead", "decay": 0.999,
                                                                          "every_n_steps": 1}}}
    assert lr_find_config(Config.model_validate(averaged), num_steps=40) == plain


def test_a_fall_within_the_noise_is_no_descent_and_a_real_one_above_the_same_noise_is():
    """Batch losses of sd 0.03 around a flat 0.69 (labels unrelated to the inputs): the smoothed minimum's
    wiggle was taken for descent (a 'suggested' 1.6e-6); the same noise over a real fall gives an lr."""
    rng = np.random.default_rng(0)
    lrs = np.logspace(-7, 1, 100)
    noise = rng.normal(0, 0.03, 100)
    flat = np.where(lrs < 0.5, 0.69, 0.69 * (1 + 10 * (lrs - 0.5))) + noise
    with pytest.raises(TrainingError, match=r"the loss shows no descent during the LR range test .* within its "
                                            r"batch-to-batch noise: trend p = "):
        suggest_lr(lrs, flat)
    descent = 0.69 - 0.25 / (1 + np.exp(-3 * (np.log10(lrs) + 3)))  # falls by 0.25 around lr 1e-3
    descent = np.where(lrs < 0.5, descent, 10.0) + noise
    assert 1e-5 < suggest_lr(lrs, descent) < 1e-2


FREEZE_THEN_UNFREEZE = {
    "name": "lr-find-frozen", "seed": 0, "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [8]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adamw", "lr": "auto"}, "batch_size": 16,
                 "epochs": 3, "finetune": {"freeze": True, "unfreeze_after_epochs": 1}},
    "runtime": {"device": "cpu"}, "output": {"progress": "off"}}


def _sweep_recorder(seen: list[int]):
    """A range test that records how many weights are trainable while it runs (and sweeps nothing)."""
    def range_test_step(step, batches, start_lr=1e-7, end_lr=10.0, num_steps=100, **_):
        seen.append(sum(p.numel() for p in step.model.parameters() if p.requires_grad))
        return [start_lr, end_lr], [1.0, 1.0]
    return range_test_step


FREEZINGS = [{"unfreeze_after_epochs": 1}, {}, {"layerwise_lr_decay": 0.5},
             {"layerwise_lr_decay": 0.5, "unfreeze_after_epochs": 1}]


def _trainable_names(model: nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _names_the_first_step_trains(raw: dict) -> set[str]:
    """The reference: the parameters one step of the config's own run changes (lr 0.01, not auto)."""
    from trainlab.builders import build, run_scope
    from trainlab.config import Config

    raw = copy.deepcopy(raw)
    raw["strategy"].update(epochs=None, max_steps=1)
    raw["strategy"]["optimizer"]["lr"] = 0.01
    config = Config.model_validate(raw)
    with run_scope(config):
        built = build(config, quiet=True)
        before = {name: p.detach().clone() for name, p in built.model.named_parameters()}
        built.trainer.fit()
    assert built.trainer.state.step == 1
    return {name for name, p in built.model.named_parameters() if not torch.equal(p, before[name])}


@pytest.mark.parametrize("freezing", FREEZINGS)
def test_lr_find_sweeps_what_the_runs_first_step_trains(monkeypatch, freezing):
    """freeze + layerwise_lr_decay (no unfreeze_after_epochs) swept all 67 weights of the mlp for an lr
    only its head (27) trains at: the optimizer build leaves that backbone to the UnfreezeSchedule."""
    import trainlab.lr_find_run
    from trainlab.config import Config

    raw = copy.deepcopy(FREEZE_THEN_UNFREEZE)
    raw["strategy"]["finetune"] = {"freeze": True, **freezing}
    swept: list[set[str]] = []
    models: list[nn.Module] = []

    def range_test_step(step, batches, start_lr=1e-7, end_lr=10.0, num_steps=100, **_):
        swept.append(_trainable_names(step.model))
        models.append(step.model)
        return [start_lr, end_lr], [1.0, 1.0]

    monkeypatch.setattr(trainlab.lr_find_run, "range_test_step", range_test_step)
    monkeypatch.setattr(trainlab.lr_find_run, "suggest_lr", lambda lrs, losses, skip_start, **_: 0.02)
    assert trainlab.lr_find_run.lr_find_config(Config.model_validate(raw))[0] == 0.02
    first_step = _names_the_first_step_trains(raw)
    assert first_step == {"2.weight", "2.bias"}  # the mlp's last Linear, its head
    assert swept == [first_step]
    # given back as the build left it: frozen by the optimizer (freeze alone), else trainable until the
    # UnfreezeSchedule's first step
    assert _trainable_names(models[0]) == (first_step if freezing == {} else {"0.weight", "0.bias", *first_step})


@pytest.mark.parametrize("freezing", FREEZINGS)
def test_lr_auto_sweeps_only_the_head_while_the_first_epochs_freeze_the_backbone(monkeypatch, freezing):
    """freeze + unfreeze_after_epochs: the first epochs train the head, so the search must (it swept the
    whole model: MiniLM's head then trained at an lr ~150x below a head-only sweep's); so too with
    layerwise_lr_decay, whose optimizer build leaves the freezing to the first step."""
    import trainlab.step_builders
    from trainlab.builders import build, run_scope
    from trainlab.config import Config
    from trainlab.finetune import split_backbone_head

    seen: list[int] = []
    monkeypatch.setattr(trainlab.step_builders, "range_test_step", _sweep_recorder(seen))
    monkeypatch.setattr(trainlab.step_builders, "suggest_lr", lambda lrs, losses, skip_start: 0.02)
    raw = copy.deepcopy(FREEZE_THEN_UNFREEZE)
    raw["strategy"]["finetune"] = {"freeze": True, **freezing}
    config = Config.model_validate(raw)
    with run_scope(config):
        built = build(config, quiet=True)
    backbone, head = split_backbone_head(built.model)
    assert seen == [sum(p.numel() for p in head)]  # 8 x 3 weights + 3 biases
    assert built.notes["lr_auto"] == built.config.strategy.optimizer.lr == 0.02
    # the backbone is frozen after the sweep as the run's own plan has it: by the optimizer (freeze alone)
    # or by the unfreeze callback at the first step (trainable until then, as before the sweep)
    assert all(p.requires_grad == (freezing != {}) for p in backbone)


def test_lr_find_sweeps_only_the_head_while_the_first_epochs_freeze_the_backbone(monkeypatch):
    import trainlab.lr_find_run
    from trainlab.config import Config

    seen: list[int] = []
    monkeypatch.setattr(trainlab.lr_find_run, "range_test_step", _sweep_recorder(seen))
    monkeypatch.setattr(trainlab.lr_find_run, "suggest_lr", lambda lrs, losses, skip_start, **_: 0.02)
    assert trainlab.lr_find_run.lr_find_config(Config.model_validate(FREEZE_THEN_UNFREEZE))[0] == 0.02
    assert seen == [8 * 3 + 3]


# --------------------------------------------------------------------------- the modes the run trains in

def frozen_norm_model(freeze: bool) -> nn.Module:
    """A backbone with a BatchNorm (moved off its initial statistics) under a linear head; with ``freeze``,
    the backbone frozen as ``strategy.finetune.freeze`` freezes it."""
    from trainlab.finetune import freeze_backbone

    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU()), nn.Linear(16, 4))
    with torch.no_grad():
        model(blobs(5, n=64)[0])  # running_mean/var now hold one batch's statistics (not the 0/1 defaults)
    if freeze:
        freeze_backbone(model)
    return model


def norm_recorder(norm: nn.Module) -> list[tuple[bool, dict[str, torch.Tensor]]]:
    """(train mode, the buffers after the forward) of each forward pass of ``norm``."""
    seen: list[tuple[bool, dict[str, torch.Tensor]]] = []
    norm.register_forward_hook(lambda module, inputs, output: seen.append(
        (module.training, {name: value.clone() for name, value in module.named_buffers()})))
    return seen


def sweep_plain(model: nn.Module) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    run_lr_range_test(model, nn.CrossEntropyLoss(), optimizer, batches_of(*blobs(0, n=128)), start_lr=1e-4,
                      end_lr=1.0, num_steps=30)


def sweep_through_step(model: nn.Module) -> None:
    from trainlab.engine.objective import Objective
    from trainlab.engine.step import StandardStep
    from trainlab.losses import build_loss
    from trainlab.lr_finder import range_test_step

    step = StandardStep(model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3),
                        Objective(build_loss("cross_entropy")))
    batches = iter(batches_of(*blobs(0, n=128)) * 10)
    range_test_step(step, batches, start_lr=1e-4, end_lr=1.0, num_steps=30, reference_lr=1e-3)


@pytest.mark.parametrize("sweep", [sweep_plain, sweep_through_step])
def test_the_sweep_keeps_a_frozen_backbones_batch_norm_statistics(sweep):
    """finetune.freeze trains the head with the backbone's BatchNorm in eval mode (the UnfreezeSchedule
    callback): the sweep ran it in train mode, so every step moved its running statistics."""
    model = frozen_norm_model(freeze=True)
    norm = model[0][1]
    before = {name: value.clone() for name, value in norm.named_buffers()}
    model.eval()  # a mode of the caller's, given back after the sweep
    seen = norm_recorder(norm)
    sweep(model)
    assert len(seen) >= 20
    for training, buffers in seen:
        assert not training
        assert_same_tree(before, buffers)  # running_mean, running_var, num_batches_tracked: all unchanged
    assert not any(module.training for module in model.modules())


@pytest.mark.parametrize("sweep", [sweep_plain, sweep_through_step])
def test_the_sweep_trains_a_batch_norm_the_run_trains(sweep):
    """Without finetune.freeze the run trains the BatchNorm (and its statistics) in train mode: so does the
    sweep, and the same layers frozen by the model itself (not by finetune) change nothing."""
    model = frozen_norm_model(freeze=False)
    norm = model[0][1]
    seen = norm_recorder(norm)
    sweep(model)
    assert all(training for training, _ in seen)
    assert not torch.equal(seen[0][1]["running_mean"], seen[-1][1]["running_mean"])
    frozen_by_design = frozen_norm_model(freeze=False)
    frozen_by_design[0].requires_grad_(False)
    seen = norm_recorder(frozen_by_design[0][1])
    sweep(frozen_by_design)
    assert all(training for training, _ in seen)


BN_FREEZE = {
    "name": "lr-find-bn", "seed": 0, "model": {"name": "cnn1d", "channels": [4], "batch_norm": True},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": 16,
                 "epochs": 2, "finetune": {"freeze": True}},
    "runtime": {"device": "cpu"}, "output": {"progress": "off"}}


@pytest.mark.parametrize("finetune", [{"freeze": True}, {"freeze": True, "unfreeze_after_epochs": 1}, None])
def test_lr_find_sweeps_in_the_modes_of_the_runs_first_step(tmp_path, monkeypatch, finetune):
    """The reference: the modules' train/eval modes at the first step of the run ``trainlab train`` makes
    of the same config; ``trainlab lr-find`` must sweep in those (and the BN statistics it froze stay)."""
    import trainlab.experiment
    import trainlab.lr_find_run
    from trainlab.callbacks.base import Callback
    from trainlab.config import Config

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2, 8)).astype("float32")
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0, :4].sum(1) > 0).astype("int64"))
    raw = copy.deepcopy(BN_FREEZE)
    raw["data"] = {"source": "npz", "path": str(tmp_path / "d.npz")}
    raw["strategy"]["finetune"] = finetune
    config = Config.model_validate(raw)

    def modes(model: nn.Module) -> dict[str, bool]:
        return {name: module.training for name, module in model.named_modules()}

    class FirstStep(Callback):
        def __init__(self):
            self.modes: dict[str, bool] | None = None

        def on_step_end(self, view, loss) -> None:
            if self.modes is None:
                self.modes = modes(view.model)

    first = FirstStep()
    trainlab.experiment.train(config, out=tmp_path / "run", quiet=True, callbacks=[first])
    during: list[dict[str, bool]] = []
    statistics: list[torch.Tensor] = []
    real = trainlab.lr_find_run.range_test_step

    def spy(step, batches, **options):
        def record(module, inputs, output) -> None:
            during.append(modes(step.model))
            statistics.append(module.running_mean.clone())

        next(m for m in step.model.modules() if isinstance(m, nn.BatchNorm1d)).register_forward_hook(record)
        return real(step, batches, **options)

    monkeypatch.setattr(trainlab.lr_find_run, "range_test_step", spy)
    with contextlib.suppress(TrainingError):  # 30 steps of a toy set may show no descent: the modes are the point
        trainlab.lr_find_run.lr_find_config(config, num_steps=30)
    assert first.modes is not None and len(during) >= 10
    assert all(seen == first.modes for seen in during)
    frozen = finetune is not None
    assert first.modes["0.1"] is not frozen  # the BatchNorm: eval mode while finetune freezes the backbone
    assert all(torch.equal(s, statistics[0]) for s in statistics) is frozen


# --------------------------------------------------------------------------- a 1-row batch under BatchNorm

def one_row_plan_sweep(model: nn.Module, n: int = 89, batch_size: int = 4, width: int = 2) -> list[int]:
    """A 60-step sweep through the run's step over ``n`` rows at ``batch_size`` (89 at 4: the epoch's 23rd
    batch is 1 row); returns the rows of every batch the step trained on."""
    from trainlab.data.dataset import Split
    from trainlab.engine.batching import BatchPlan, TensorBatches
    from trainlab.engine.objective import Objective
    from trainlab.engine.step import StandardStep
    from trainlab.losses import build_loss
    from trainlab.lr_finder import range_test_step

    generator = torch.Generator().manual_seed(0)
    split = Split(torch.randn(n, width, generator=generator), torch.arange(n) % 3)
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=1e-4), Objective(build_loss("cross_entropy")))
    rows: list[int] = []
    train_step = step.train_step

    def recording(batches, state):
        rows.append(sum(len(x) for x, _ in batches))
        return train_step(batches, state)

    step.train_step = recording
    batches = TensorBatches(split, None, 0, torch.device("cpu")).forever(BatchPlan(n, batch_size, seed=0))
    lrs, _ = range_test_step(step, batches, start_lr=1e-4, end_lr=1e-2, num_steps=60)
    assert len(lrs) == 60
    return rows


def test_the_sweep_skips_a_one_row_batch_batch_norm_cannot_train_on():
    """max_steps may end a run before its epoch's 1-row batch (accepted, as it never trains on it), but the
    sweep runs on through the epochs: torch's ValueError escaped from lr: auto and lr-find."""
    torch.manual_seed(0)
    features = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    rows = one_row_plan_sweep(features)
    assert len(rows) == 60 and min(rows) == 4  # steps 23 and 46 of the plan were skipped for the next batch


def test_the_sweep_trains_a_one_row_batch_batch_norm_can_normalise():
    """In eval mode (a frozen backbone's) or over positions (a conv net's), BatchNorm takes one row: kept."""
    torch.manual_seed(0)
    frozen = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))
    from trainlab.finetune import freeze_backbone

    freeze_backbone(frozen)
    assert one_row_plan_sweep(frozen).count(1) == 2
    signal = nn.Sequential(nn.Unflatten(1, (1, 8)), nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.Flatten(),
                           nn.Linear(32, 3))
    assert one_row_plan_sweep(signal, width=8).count(1) == 2


def test_a_sweep_of_one_row_batches_under_batch_norm_is_one_data_error():
    torch.manual_seed(0)
    features = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    with pytest.raises(DataError, match=r"^the LR range test's batches hold 1 row each, which the model's BatchNorm "
                                        r"cannot normalise in training \(one value per channel\); use a batch size "
                                        r"of 2 or more$"):
        one_row_plan_sweep(features, n=10, batch_size=1)


def test_a_flat_sweep_whose_minimum_is_at_its_start_is_said_flat_and_a_rising_one_to_start_lower():
    """A user's unstandardised 1e5-scale prices: the loss flat at ~1.95e6 over 17 decades, lowest just after the
    warm-up; the advice was "start the sweep lower", which cannot help. A flat sweep (no trend either way) now
    says so and points to the targets; a loss rising from the start still says to start lower."""
    rng = np.random.default_rng(0)
    n, skip = 100, 10
    lrs = lr_sweep(1e-7, 10.0, n)
    flat = 1.95e6 * (1 + 0.001 * rng.normal(size=n))
    flat[skip + 1:skip + 3] = 1.9e6  # the minimum 2 steps after the warm-up, by chance
    with pytest.raises(NoDescentError) as caught:
        suggest_lr(lrs, flat, skip_start=skip)
    assert str(caught.value).startswith("the loss stays flat through the LR range test")
    assert "standardised, for regression: data.standardize_target" in str(caught.value)
    assert "start the sweep lower" not in str(caught.value)
    rising = 1.0 + np.linspace(0, 1.5, n) + 0.01 * rng.normal(size=n)
    rising[skip + 1:skip + 3] = 0.99
    with pytest.raises(NoDescentError, match="start the sweep lower"):
        suggest_lr(lrs, rising, skip_start=skip)
    # a sweep the divergence rule cut short (19 of 100 steps, wine at lr 0.5..1000): too few losses for the
    # trend test, said "flat"; it rose, so: start lower
    cut = 1.0 + 0.01 * rng.normal(size=19)
    cut[skip + 1:skip + 3] = 0.95
    with pytest.raises(NoDescentError, match="the loss stays flat"):  # the same losses, the sweep's whole length
        suggest_lr(lr_sweep(0.5, 1000.0, 19), cut, skip_start=skip, num_steps=19)
    with pytest.raises(NoDescentError, match="start the sweep lower"):
        suggest_lr(lr_sweep(0.5, 1000.0, 100)[:len(cut)], cut, skip_start=skip, num_steps=100)


def test_a_sweep_over_many_decades_is_spaced_in_log_space_without_overflow():
    """1e-300..1e300: end / start overflowed to inf, and the sweep ran at lr inf after a NumPy warning."""
    assert lr_sweep(1e-300, 1e300, 3) == [1e-300, pytest.approx(1.0), 1e300]
    np.testing.assert_allclose(lr_sweep(1e-4, 1e-1, 4), [1e-4, 1e-3, 1e-2, 1e-1], rtol=1e-12)
