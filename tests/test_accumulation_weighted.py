"""Gradient accumulation with a weighted mean: a step of k micro-batches follows the loss of its rows as one batch.

PyTorch's class-weighted cross-entropy divides the summed loss by the summed class weights of the labels, not
by the row count, so micro-batch means weighted by their rows (n_i / N) are not the mean of the step's rows;
``Loss.mean_denominator`` gives each micro-batch's divisor d_i and the step weights its mean by d_i / sum_j d_j.
The reference is an independent plain-torch loop: one SGD step per group of b * k rows, on the torch loss of
the concatenated group (F.cross_entropy / F.nll_loss with ``weight=``).
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainlab
from trainlab.engine.objective import Objective
from trainlab.engine.state import TrainState
from trainlab.engine.step import StandardStep
from trainlab.losses import build_loss

N, D, K = 29, 5, 3  # 29 rows as micro-batches of 4, 3 per step: steps of 12, 12 and 5 rows (4 + 1)
BATCH, ACCUM, LR, SEED, EPOCHS = 4, 3, 0.5, 1, 2
WEIGHTS = [0.2, 1.0, 3.0]


def _data():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(N, D, generator=generator), torch.randint(0, K, (N,), generator=generator)


def _model(log_probabilities: bool) -> nn.Module:
    torch.manual_seed(2)
    linear = nn.Linear(D, K)
    return nn.Sequential(linear, nn.LogSoftmax(dim=1)) if log_probabilities else linear


def _reference(model: nn.Module, x, y, loss_fn, denominator=len, summed: bool = False) -> list[float]:
    """Plain torch: epoch order randperm(n) seeded seed * 1_000_003 + epoch (docs), one SGD step per b * k rows
    with the loss of those rows as one batch; returns each epoch's loss as one batch of its rows would give
    it: sum_s loss_s * d_s / sum_s d_s, d_s what step s's mean divides by (``denominator`` of its labels: the
    row count, or torch's summed class weights of the labels). ``summed``: loss_fn sums over the rows, and a
    step's loss is recorded per row (loss_s / n_s, airbench's ``loss.item() / batch_size``)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    epoch_losses = []
    for epoch in range(EPOCHS):
        order = torch.randperm(N, generator=torch.Generator().manual_seed(SEED * 1_000_003 + epoch))
        total = weight = 0.0
        for start in range(0, N, BATCH * ACCUM):
            rows = order[start:start + BATCH * ACCUM]
            optimizer.zero_grad()
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) / (len(rows) if summed else 1) * float(denominator(y[rows]))
            weight += float(denominator(y[rows]))
        epoch_losses.append(total / weight)
    return epoch_losses


def _torch_denominator(torch_kwargs: dict):
    """What torch's mean divides by: the summed class weights of the labels (ignored labels left out)."""
    def denominator(labels: torch.Tensor) -> float:
        kept = labels[labels != torch_kwargs.get("ignore_index", -100)]
        weights = torch_kwargs.get("weight")
        return float(len(kept) if weights is None else weights[kept].sum())
    return denominator


def _trainlab(model: nn.Module, x, y, loss: dict, accum: int = ACCUM):
    strategy = {"loss": loss, "optimizer": {"name": "sgd", "lr": LR}, "batch_size": BATCH,
                "grad_accum_steps": accum, "epochs": EPOCHS}
    return trainlab.fit(model, train=(x, y), strategy=strategy, seed=SEED, runtime={"device": "cpu"}, metrics=[],
                        task="multiclass")


def _max_rel(model: nn.Module, reference: nn.Module) -> float:
    worst = 0.0
    for name, want in reference.state_dict().items():
        got = model.state_dict()[name].double()
        worst = max(worst, float((got - want.double()).abs().max() / want.double().abs().max()))
    return worst


CASES = {
    "cross_entropy class_weights": ({"name": "cross_entropy", "class_weights": WEIGHTS}, False,
                                    dict(weight=torch.tensor(WEIGHTS))),
    "cross_entropy class_weights label_smoothing": (
        {"name": "cross_entropy", "class_weights": WEIGHTS, "label_smoothing": 0.15}, False,
        dict(weight=torch.tensor(WEIGHTS), label_smoothing=0.15)),
    "cross_entropy ignore_index 0": ({"name": "cross_entropy", "ignore_index": 0}, False, dict(ignore_index=0)),
    "nll class_weights": ({"name": "nll", "class_weights": WEIGHTS}, True, dict(weight=torch.tensor(WEIGHTS))),
    # a sum over the step's rows: each micro-batch's sum counts whole (weighted by n_i / N, the update was 1/k)
    "cross_entropy reduction sum": ({"name": "cross_entropy", "reduction": "sum"}, False, dict(reduction="sum")),
    "nll class_weights reduction sum": ({"name": "nll", "class_weights": WEIGHTS, "reduction": "sum"}, True,
                                        dict(weight=torch.tensor(WEIGHTS), reduction="sum")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_accumulated_steps_with_a_weighted_mean_train_as_one_batch_of_their_rows(case):
    """b = 4, k = 3 over 29 rows (a short last step of 4 + 1 rows), 2 epochs: the weights match plain torch's
    one step per 12 rows on the weighted loss of those rows, and train_loss is the epoch's row-weighted mean
    of those one-batch losses. Row shares n_i / N (before the fix) were off by ~1 relative."""
    spec, log_probabilities, torch_kwargs = CASES[case]
    x, y = _data()
    torch_loss = F.nll_loss if log_probabilities else F.cross_entropy
    reference = _model(log_probabilities)
    mean = torch_kwargs.get("reduction", "mean") == "mean"  # a summed loss's epoch mean is over rows
    want_losses = _reference(reference, x, y, lambda out, target: torch_loss(out, target, **torch_kwargs),
                             _torch_denominator(torch_kwargs) if mean else len, summed=not mean)
    model = _model(log_probabilities)
    result = _trainlab(model, x, y, spec)
    assert _max_rel(model, reference) < 2e-6
    got_losses = [record["train_loss"] for record in result.history]
    torch.testing.assert_close(torch.tensor(got_losses, dtype=torch.float64),
                               torch.tensor(want_losses, dtype=torch.float64), rtol=2e-6, atol=0.0)


def test_a_summed_loss_with_a_penalty_counts_each_sum_whole_and_the_penalty_once_per_step():
    """reduction: sum, l2 = 0.05, b = 4, k = 3: each step follows sum-loss(step's rows) + l2 * sum w^2 (the
    weight matrix only: biases are not penalised), as plain torch's one step per 12 rows does."""
    x, y = _data()
    reference = _model(False)
    l2 = 0.05
    _reference(reference, x, y, lambda out, target: F.cross_entropy(out, target, reduction="sum")
               + l2 * reference.weight.pow(2).sum())
    model = _model(False)
    strategy = {"loss": {"name": "cross_entropy", "reduction": "sum"}, "optimizer": {"name": "sgd", "lr": LR},
                "batch_size": BATCH, "grad_accum_steps": ACCUM, "epochs": EPOCHS, "regularization": {"l2": l2}}
    trainlab.fit(model, train=(x, y), strategy=strategy, seed=SEED, runtime={"device": "cpu"}, metrics=[],
                 task="multiclass")
    assert _max_rel(model, reference) < 2e-6


@pytest.mark.parametrize("batch_size", ["full", 8, 5])
def test_a_class_weighted_train_loss_is_the_epochs_weighted_mean_at_any_batch_size(batch_size):
    """With the weights kept still (lr 1e-12) and val = train, the epoch's train_loss is torch's weighted
    cross-entropy of all its rows, as val_loss is, at every batch size: steps averaged by their row counts
    gave 10% more at batch 8 than in one batch (a user's digits run)."""
    x, y = _data()
    weights = [20.0, 1.0, 1.0]
    model = _model(False)
    with torch.no_grad():
        want = float(F.cross_entropy(model(x), y, weight=torch.tensor(weights)))
    strategy = {"loss": {"name": "cross_entropy", "class_weights": weights}, "optimizer": {"name": "sgd", "lr": 1e-12},
                "batch_size": batch_size, "epochs": 1}
    result = trainlab.fit(model, train=(x, y), val=(x, y), strategy=strategy, seed=SEED, runtime={"device": "cpu"},
                          metrics=[], task="multiclass")
    assert result.history[0]["train_loss"] == pytest.approx(want, rel=1e-6)
    assert result.history[0]["val_loss"] == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("batch_size,accum", [("full", 1), (4, 1), (4, 2), (3, 1)])
def test_a_summed_loss_is_recorded_per_row_at_any_batch_size_in_train_val_and_test(batch_size, accum):
    """reduction: sum, weights kept still (lr 1e-12), val = test = train: train_loss, val_loss and test_loss are
    each torch's summed cross-entropy of all the rows divided by their count, whatever the batch size
    (airbench's ``loss.item() / batch_size``). Before, train_loss was sum_i n_i S_i / sum_i n_i (4.94 for
    steps of 4, 4 and 2 rows where the per-row mean is 1.33) and val_loss the split's whole sum."""
    x, y = _data()
    model = _model(False)
    with torch.no_grad():
        want = float(F.cross_entropy(model(x), y, reduction="sum")) / N
    strategy = {"loss": {"name": "cross_entropy", "reduction": "sum"}, "optimizer": {"name": "sgd", "lr": 1e-12},
                "batch_size": batch_size, "grad_accum_steps": accum, "epochs": 1}
    result = trainlab.fit(model, train=(x, y), val=(x, y), test=(x, y), strategy=strategy, seed=SEED,
                          runtime={"device": "cpu"}, metrics=[], task="multiclass")
    assert result.history[0]["train_loss"] == pytest.approx(want, rel=1e-6)
    assert result.history[0]["val_loss"] == pytest.approx(want, rel=1e-6)
    assert result.summary["test"]["loss"] == pytest.approx(want, rel=1e-6)


def test_unweighted_accumulation_keeps_row_shares_with_no_tensor_work():
    """Without class weights the mean is over rows: ``mean_denominator`` is None (the step's row shares
    n_i / N, no tensor op, no device sync) and the weights match plain torch's one step per 12 rows."""
    x, y = _data()
    for spec in ({"name": "cross_entropy"}, {"name": "cross_entropy", "label_smoothing": 0.15}):
        loss = build_loss(spec)
        assert loss.mean_denominator(y) is None
        step = StandardStep(_model(False), torch.optim.SGD(_model(False).parameters(), lr=LR), Objective(loss))
        assert step._shares([(x[:4], y[:4]), (x[4:6], y[4:6])]) == [4 / 6, 2 / 6]  # plain floats: no tensor op
        reference = _model(False)
        loss_fn = functools.partial(F.cross_entropy, label_smoothing=spec.get("label_smoothing", 0.0))
        _reference(reference, x, y, loss_fn)
        model = _model(False)
        _trainlab(model, x, y, spec)
        assert _max_rel(model, reference) < 2e-6
    assert build_loss("mse").mean_denominator(torch.zeros(4, 2)) is None


def test_accumulation_with_class_weights_reports_the_loss_of_the_step_rows():
    """The step's reported loss is the weighted loss of its rows as one batch (what a batch of N reports)."""
    x, y = _data()
    loss = build_loss({"name": "cross_entropy", "class_weights": WEIGHTS})
    model = _model(False)
    step = StandardStep(model, torch.optim.SGD(model.parameters(), lr=0.0), Objective(loss))
    output = step.train_step([(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:9], y[8:9])], TrainState())
    with torch.no_grad():
        want = F.cross_entropy(model(x[:9]), y[:9], weight=torch.tensor(WEIGHTS))
    torch.testing.assert_close(output.loss, want, rtol=1e-6, atol=0.0)
    assert output.samples == 9


@pytest.mark.parametrize("spec", [{"name": "cross_entropy", "class_weights": WEIGHTS, "label_smoothing": 0.1},
                                  {"name": "nll", "class_weights": WEIGHTS}, {"name": "mse"}, {"name": "bce"}])
def test_mean_denominator_is_what_the_weighted_mean_divides_by(spec):
    """With per-sample weights: loss(mean) * mean_denominator == loss(sum) (times the elements per row for an
    element-wise loss: a factor common to every batch). bce's pos_weight is not normalised (as in torch)."""
    generator = torch.Generator().manual_seed(3)
    weight = torch.rand(6, generator=generator)
    if spec["name"] in ("cross_entropy", "nll"):
        pred = torch.randn(6, K, generator=generator).log_softmax(1)
        target, per_row = torch.randint(0, K, (6,), generator=generator), 1
    elif spec["name"] == "bce":
        pred, target, per_row = torch.randn(6, 1, generator=generator), torch.tensor([0, 1, 1, 0, 1, 0]), 1
    else:
        pred, target, per_row = torch.randn(6, 2, generator=generator), torch.randn(6, 2, generator=generator), 2
    mean_loss = build_loss(spec)
    sum_loss = build_loss({**spec, "reduction": "sum"})
    denominator = mean_loss.mean_denominator(target, weight)
    torch.testing.assert_close(mean_loss(pred, target, weight) * denominator * per_row,
                               sum_loss(pred, target, weight), rtol=1e-6, atol=1e-7)
    if spec["name"] == "bce":
        weighted = build_loss({"name": "bce", "pos_weight": 4.0})
        assert weighted.mean_denominator(target) is None  # pos_weight scales terms; the mean is over rows


def test_an_epoch_sum_from_a_checkpoint_written_before_weights_were_kept_reads_its_rows():
    """Such a checkpoint holds the folded sum of rows * loss, pending losses and their row counts ("sizes"):
    the folded weight is the epoch's rows less the pending ones, so the epoch mean comes out as before."""
    from trainlab.engine.state import EpochSum

    tally = EpochSum(torch.device("cpu"))
    tally.load_state_dict({"total": torch.tensor(10.0, dtype=torch.float64), "sizes": [2, 3],
                           "pending": torch.tensor([1.0, 2.0])}, rows_so_far=15)
    assert tally.mean() == pytest.approx((10.0 + 2 * 1.0 + 3 * 2.0) / 15)
    tally.add(torch.tensor(4.0), torch.tensor(5.0, dtype=torch.float64))  # a class-weighted step: d = 5
    assert tally.mean() == pytest.approx((18.0 + 20.0) / 20)
    again = EpochSum(torch.device("cpu"))
    again.load_state_dict(tally.state_dict())
    assert again.mean() == tally.mean() and again.value() == tally.value()


def test_a_step_record_covering_the_epoch_has_the_epoch_records_class_weighted_train_loss(tmp_path):
    """log_every_n_steps equal to the epoch's steps: the step record covers the same steps as the epoch record
    (whose weighting the tests above check against torch) and is weighted as it is; it weighed the steps by
    their rows after the epoch record no longer did (2.554122 vs 2.554449 on a reviewer's digits run)."""
    import json

    from trainlab.config import validate
    from trainlab.experiment import train

    raw = {"name": "w", "seed": 0, "data": {"source": "digits"}, "model": {"name": "mlp", "hidden": [8]},
           "strategy": {"loss": {"name": "cross_entropy", "class_weights": [20.0] + [1.0] * 9}, "batch_size": 200,
                        "epochs": 1, "optimizer": {"name": "sgd", "lr": 1e-12}},
           "output": {"progress": "off", "log_every_n_steps": 6, "checkpoint": {"every_seconds": None}},
           "runtime": {"num_threads": 1}}
    _, run = train(validate(raw), out=tmp_path / "run", quiet=True)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("scope") == "step"]
    epoch = next(r for r in records if "epoch" in r and r.get("scope") != "step" and "train_loss" in r)
    assert [r["step"] for r in steps] == [epoch["step"]] == [6]
    assert steps[0]["train_loss"] == pytest.approx(epoch["train_loss"], rel=1e-9)


def test_a_summed_loss_checkpoint_of_before_the_per_row_records_is_refused_not_mixed():
    """Review: a reduction: sum run checkpointed before its losses were recorded per row, resumed, mixed the two
    scales in its epoch sums and in early stopping's best (every resumed val_loss beat the old split sum); its
    step's state holds no 'summed_loss_per_row', and loading it is refused. A mean loss's state is as before."""
    from trainlab.errors import RunDirError

    x, y = _data()
    summed = StandardStep(_model(False), torch.optim.SGD(_model(False).parameters(), lr=LR),
                          Objective(build_loss({"name": "cross_entropy", "reduction": "sum"})))
    state = summed.state_dict()
    assert state["summed_loss_per_row"] is True
    summed.load_state_dict(state)  # its own: loads
    with pytest.raises(RunDirError, match="recorded its reduction: sum loss as sums"):
        summed.load_state_dict({k: v for k, v in state.items() if k != "summed_loss_per_row"})
    mean = StandardStep(_model(False), torch.optim.SGD(_model(False).parameters(), lr=LR),
                        Objective(build_loss("cross_entropy")))
    assert "summed_loss_per_row" not in mean.state_dict()
    mean.load_state_dict(mean.state_dict())
