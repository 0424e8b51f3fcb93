"""Losses at the edges of their inputs: a batch whose labels are all ``ignore_index``, target probabilities of 0
given as log 0 = -inf, a ``num_dims`` that does not fit the targets, nt_xent on batches of 1 row, and the hinge
margin's error. References are written out in NumPy / scipy (``rel_entr``) or are plain-torch training loops;
the runs go through the CLI (one ``error:`` line, exit 2 or 3) or ``trainlab.fit``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from scipy.special import log_softmax, rel_entr, softmax
from torch import nn

import trainlab
from trainlab.cli import main
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss

# --------------------------------------------------------------------------- helpers


def _run(tmp_path: Path, config: dict, name: str = "run") -> int:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(["train", str(path), "--out", str(tmp_path / name), "--quiet"])


def _lines(capsys, prefix: str) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith(prefix)]


def _regression_npz(path: Path, columns: int, rows: int = 41, log_targets: bool = False) -> Path:
    """``rows`` training rows (and 10 of val and test) of 3 float32 features; ``columns`` float32 targets, or
    with ``log_targets`` log-probability rows over 3 classes whose first row holds a 0 (log 0 = -inf)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for suffix, count in (("", rows), ("_val", 10), ("_test", 10)):
        x = rng.normal(size=(count, 3)).astype(np.float32)
        if log_targets:
            t = softmax(rng.normal(size=(count, 3)), axis=1)
            t[0] = [0.0, 0.25, 0.75]
            with np.errstate(divide="ignore"):
                y = np.log(t).astype(np.float32)
        else:
            y = (x @ rng.normal(size=(3, columns))).astype(np.float32)
        arrays[f"x{suffix}"], arrays[f"y{suffix}"] = x, y
    np.savez(path, **arrays)
    return path


def _npz_config(npz: Path, loss: dict, batch_size: int = 8) -> dict:
    return {"name": "t", "seed": 0, "data": {"source": "npz", "path": str(npz), "task": "regression"},
            "model": {"name": "linear"},
            "strategy": {"loss": loss, "optimizer": {"name": "sgd", "lr": 0.01}, "batch_size": batch_size,
                         "epochs": 1},
            "runtime": {"num_threads": 1, "device": "cpu"}, "output": {"progress": "off"}}


# --------------------------------------------------------------------------- 1. all labels ignored

K = 3


def np_kept_mean(z: np.ndarray, y: np.ndarray, ignore: int, class_weights=None, smoothing: float = 0.0,
                 sample_weights=None, log_probs: bool = False) -> float:
    """sum_i s_i l_i / sum_{i kept} s_i w_{y_i}, 0 when nothing is kept; l_i = 0 for an ignored label, else
    (1 - e) w_y (-lp_y) + (e / K) sum_k w_k (-lp_k), lp the log-probabilities (log_softmax of z, or z)."""
    lp = z if log_probs else log_softmax(z, axis=1)
    w = np.ones(z.shape[1]) if class_weights is None else np.asarray(class_weights, dtype=np.float64)
    s = np.ones(len(y)) if sample_weights is None else np.asarray(sample_weights, dtype=np.float64)
    kept = y != ignore
    safe_y = np.where(kept, y, 0)
    per_row = (1 - smoothing) * w[safe_y] * -lp[np.arange(len(y)), safe_y] \
        + smoothing / z.shape[1] * (-lp * w).sum(1)
    numerator = (s * np.where(kept, per_row, 0.0)).sum()
    denominator = (s * np.where(kept, w[safe_y], 0.0)).sum()
    return numerator / denominator if denominator > 0 else 0.0


IGNORED_CASES = [
    ({"name": "cross_entropy", "ignore_index": 0}, False),
    ({"name": "cross_entropy", "ignore_index": 0, "label_smoothing": 0.2}, False),
    ({"name": "cross_entropy", "ignore_index": 0, "class_weights": [0.5, 2.0, 3.0]}, False),
    ({"name": "cross_entropy", "ignore_index": 2, "class_weights": [0.5, 2.0, 3.0], "label_smoothing": 0.1}, False),
    ({"name": "nll", "ignore_index": 0}, True),
    ({"name": "nll", "ignore_index": 1, "class_weights": [0.5, 2.0, 3.0]}, True),
]


@pytest.mark.parametrize("sample_weights", [None, [0.5, 2.0, 1.0, 1.5]])
@pytest.mark.parametrize("spec, log_probs", IGNORED_CASES, ids=[str(spec) for spec, _ in IGNORED_CASES])
def test_the_mean_over_kept_labels_is_zero_when_nothing_is_kept(spec, log_probs, sample_weights):
    """sum(kept w_i l_i) / sum(kept w_i), and 0 with a 0 gradient for a batch whose labels are all ignore_index
    (torch's mean is 0 / 0 = NaN there); the gradient of a mixed batch is the reference's, by central
    differences. The step's lean callable (``unweighted()``) follows the same formula."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, K)) * 2
    if log_probs:
        z = log_softmax(z, axis=1)
    ignore = spec["ignore_index"]
    other = (ignore + 1) % K
    s = None if sample_weights is None else torch.tensor(sample_weights, dtype=torch.float64)
    loss = build_loss(spec).double()
    for labels in ([ignore] * 4, [ignore, other, ignore, (ignore + 2) % K]):
        y = np.array(labels)

        def reference(logits: np.ndarray, y=y) -> float:
            return np_kept_mean(logits, y, ignore, spec.get("class_weights"), spec.get("label_smoothing", 0.0),
                                sample_weights, log_probs)

        want = reference(z)
        pred = torch.tensor(z, requires_grad=True)
        got = loss(pred, torch.tensor(y), s) if s is not None else loss(pred, torch.tensor(y))
        got.backward()
        assert float(got.detach()) == pytest.approx(want, rel=1e-12, abs=1e-15)
        if len(set(labels)) == 1:
            assert float(got.detach()) == 0.0 and torch.equal(pred.grad, torch.zeros_like(pred.grad))
            if s is None:
                assert float(loss.unweighted()(torch.tensor(z), torch.tensor(y))) == 0.0
        else:
            step = 1e-6
            numeric = np.zeros_like(z)
            for index in np.ndindex(z.shape):
                up, down = z.copy(), z.copy()
                up[index] += step
                down[index] -= step
                numeric[index] = (reference(up) - reference(down)) / (2 * step)
            np.testing.assert_allclose(pred.grad.numpy(), numeric, rtol=1e-6, atol=1e-8)


N_ROWS, FEATURES, LR, SEED, EPOCHS = 20, 4, 0.5, 0, 2
IGNORED_WEIGHTS = [0.5, 2.0, 3.0]


def _ignored_data() -> tuple[torch.Tensor, torch.Tensor]:
    """20 rows, 14 of them labelled 0 (the ignored class): batches of 2 and steps of 4 rows with nothing kept."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(N_ROWS, FEATURES, generator=generator)
    y = torch.tensor([0] * 14 + [1, 2, 1, 2, 1, 2])[torch.randperm(N_ROWS, generator=generator)]
    return x, y


def _ignored_model(log_probs: bool) -> nn.Module:
    torch.manual_seed(3)
    linear = nn.Linear(FEATURES, K)
    return nn.Sequential(linear, nn.LogSoftmax(dim=1)) if log_probs else linear


def _reference_skipping_empty_steps(model, x, y, rows_per_step, loss_fn, class_weights):
    """Plain torch SGD, epoch order randperm seeded seed * 1_000_003 + epoch, one step per ``rows_per_step``
    rows; a step whose rows are all ignored is skipped (it has no gradient) and left out of the epoch's loss,
    which is sum_s loss_s d_s / sum_s d_s, d_s the summed class weights of the step's kept labels."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    weights = torch.ones(K) if class_weights is None else torch.tensor(class_weights)
    epoch_losses, empty_steps = [], 0
    for epoch in range(EPOCHS):
        order = torch.randperm(N_ROWS, generator=torch.Generator().manual_seed(SEED * 1_000_003 + epoch))
        total = weight = 0.0
        for start in range(0, N_ROWS, rows_per_step):
            labels = y[order[start:start + rows_per_step]]
            kept = labels[labels != 0]
            if len(kept) == 0:
                empty_steps += 1
                continue
            rows = order[start:start + rows_per_step]
            optimizer.zero_grad()
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * float(weights[kept].sum())
            weight += float(weights[kept].sum())
        epoch_losses.append(total / weight)
    return epoch_losses, empty_steps


@pytest.mark.parametrize("accum", [1, 2])
@pytest.mark.parametrize("name, class_weights", [("cross_entropy", None), ("cross_entropy", IGNORED_WEIGHTS),
                                                 ("nll", None), ("nll", IGNORED_WEIGHTS)])
def test_a_batch_with_every_label_ignored_trains_nothing_and_weighs_nothing(name, class_weights, accum):
    """ignore_index 0 at batch_size 2 (grad_accum_steps 1 or 2) on labels mostly 0: steps with nothing kept
    change no weight and add nothing to train_loss, so the run matches plain torch that skips them (before:
    NaN from the first such step, "training diverged")."""
    x, y = _ignored_data()
    log_probs = name == "nll"
    torch_fn = F.nll_loss if log_probs else F.cross_entropy
    weight = None if class_weights is None else torch.tensor(class_weights)
    reference = _ignored_model(log_probs)
    want, empty_steps = _reference_skipping_empty_steps(
        reference, x, y, 2 * accum, lambda out, target: torch_fn(out, target, weight=weight, ignore_index=0),
        class_weights)
    assert empty_steps >= 2  # the case under test happens
    model = _ignored_model(log_probs)
    loss = {"name": name, "ignore_index": 0, **({"class_weights": class_weights} if class_weights else {})}
    strategy = {"loss": loss, "optimizer": {"name": "sgd", "lr": LR}, "batch_size": 2, "grad_accum_steps": accum,
                "epochs": EPOCHS}
    result = trainlab.fit(model, train=(x, y), strategy=strategy, seed=SEED, runtime={"device": "cpu"},
                          metrics=[], task="multiclass")
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=2e-6, atol=1e-7)
    torch.testing.assert_close(torch.tensor([r["train_loss"] for r in result.history], dtype=torch.float64),
                               torch.tensor(want, dtype=torch.float64), rtol=2e-6, atol=0.0)


# --------------------------------------------------------------------------- 2. kl_div with zero probabilities


def _distributions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    z = rng.normal(size=(5, 4)) * 2
    t = rng.dirichlet(np.ones(4), 5)
    t[0] = [0.0, 1.0, 0.0, 0.0]
    t[1] = [0.5, 0.5, 0.0, 0.0]
    return z, t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_kl_div_with_log_targets_of_minus_infinity_is_scipys_rel_entr(reduction):
    """log_target: true with log 0 = -inf: KL per row is sum_k rel_entr(t_k, q_k) (0 log 0 = 0), finite, and
    its gradient in the logits is (softmax(z) - t) per row (/ N for the mean); exp(-inf) * -inf was NaN."""
    z, t = _distributions()
    with np.errstate(divide="ignore"):
        log_t = np.log(t)
    per_row = rel_entr(t, softmax(z, axis=1)).sum(1)
    want = {"mean": per_row.mean(), "sum": per_row.sum(), "none": per_row}[reduction]
    pred = torch.tensor(z, requires_grad=True)
    got = build_loss({"name": "kl_div", "log_target": True, "reduction": reduction}).double()(pred, torch.tensor(log_t))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12)
    got.sum().backward()
    scale = 1 / len(z) if reduction == "mean" else 1.0
    np.testing.assert_allclose(pred.grad.numpy(), (softmax(z, axis=1) - t) * scale, rtol=1e-9, atol=1e-12)


def test_kl_div_on_log_probabilities_of_minus_infinity_where_the_target_is_zero_adds_nothing():
    """input: log_probs, q_k = 0 (log q_k = -inf) where t_k = 0: rel_entr(0, 0) = 0, so the row's KL is finite
    and the gradient in log q is -t / N (0 at those classes), with t given as t and as log t."""
    z, t = _distributions()
    log_q = log_softmax(z, axis=1)
    log_q[0, [0, 2]] = -np.inf  # where t[0] is 0
    with np.errstate(divide="ignore"):
        log_t = np.log(t)
    want = rel_entr(t, np.exp(log_q)).sum(1).mean()
    for log_target, target in ((False, t), (True, log_t)):
        pred = torch.tensor(log_q, requires_grad=True)
        got = build_loss({"name": "kl_div", "input": "log_probs", "log_target": log_target}).double()(
            pred, torch.tensor(target))
        assert float(got.detach()) == pytest.approx(want, rel=1e-12)
        got.backward()
        np.testing.assert_allclose(pred.grad.numpy(), -t / len(t), rtol=1e-12, atol=0)


def test_a_run_refuses_log_targets_of_minus_infinity_as_the_kl_div_docs_say(tmp_path, capsys):
    """The data check refuses non-finite targets before the loss sees them (docs/components.md, kl_div's
    log_target row: give such rows as t with log_target: false)."""
    npz = _regression_npz(tmp_path / "soft.npz", 3, log_targets=True)
    code = _run(tmp_path, _npz_config(npz, {"name": "kl_div", "log_target": True}))
    lines = _lines(capsys, "error:")
    assert code == 3 and len(lines) == 1 and "non-finite target value (-inf)" in lines[0]
    docs = (Path(__file__).resolve().parents[1] / "docs" / "components.md").read_text()
    assert "a run's data refuses non-finite targets (exit 3): give such rows as t with `log_target: false`" in docs


# --------------------------------------------------------------------------- 3, 4. num_dims against the targets


@pytest.mark.parametrize("columns, loss, message", [
    (1, {"name": "gaussian_nll", "variance": "learned", "num_dims": 3},
     "error: strategy.loss: gaussian_nll: num_dims is 3 but the targets have 1 column; set num_dims to 1 (one "
     "variance shared by every column)"),
    (2, {"name": "adaptive", "num_dims": 3},
     "error: strategy.loss: adaptive: num_dims is 3 but the targets have 2 columns; set num_dims to 1 (one alpha "
     "and scale shared by every column) or 2 (one per column)"),
    (1, {"name": "adaptive", "num_dims": 2, "learn_alpha": True},  # broadcast to (N, 2) before: no error at all
     "error: strategy.loss: adaptive: num_dims is 2 but the targets have 1 column; set num_dims to 1 (one alpha "
     "and scale shared by every column)"),
])
def test_a_num_dims_that_does_not_fit_the_target_columns_is_one_config_error(tmp_path, capsys, columns, loss,
                                                                             message):
    npz = _regression_npz(tmp_path / "reg.npz", columns)
    code = _run(tmp_path, _npz_config(npz, loss))
    assert code == 2
    assert _lines(capsys, "error:") == [message]


@pytest.mark.parametrize("spec, shared", [({"name": "adaptive", "num_dims": 2}, "alpha and scale"),
                                          ({"name": "gaussian_nll", "variance": "learned", "num_dims": 2}, "variance")])
def test_the_loss_itself_refuses_predictions_whose_columns_are_not_num_dims(spec, shared):
    """In Python too: (6, 1) predictions and targets with num_dims 2 are a DataError from check and forward
    (adaptive broadcast them to (6, 2), counting every residual twice; gaussian_nll failed in torch's words);
    (6, 2) trains, and num_dims 1 is shared by any number of columns."""
    pred, target = torch.zeros(6, 1), torch.ones(6, 1)
    loss = build_loss(spec)
    with pytest.raises(DataError, match=f"num_dims is 2 but the targets have 1 column; set num_dims to 1 \\(one "
                                        f"{shared} shared by every column\\)$"):
        loss.check(pred, target)
    with pytest.raises(DataError, match=r"num_dims is 2 but the predictions \(6, 1\) have 1 column"):
        loss(pred, target)
    assert loss.constants_mismatch(torch.zeros(6, 2), torch.ones(6, 2)) is None
    assert torch.isfinite(loss(torch.zeros(6, 2), torch.ones(6, 2)))
    one = build_loss({**spec, "num_dims": 1})
    assert one.constants_mismatch(torch.zeros(6, 3), torch.ones(6, 3)) is None
    one.check(torch.zeros(6, 3), torch.ones(6, 3))


def test_adaptive_with_one_alpha_and_scale_per_column_is_the_per_column_formula():
    """num_dims 2 on (6, 2): column j uses its own alpha_j, c_j (Barron's rho written out), the mean over all."""
    loss = build_loss({"name": "adaptive", "num_dims": 2}).double()
    alpha, scale = np.array([1.0, 0.5]), np.array([1.0, 2.0])
    loss.fixed_alpha.copy_(torch.tensor(alpha))
    loss.fixed_scale.copy_(torch.tensor(scale))
    rng = np.random.default_rng(6)
    pred, target = rng.normal(size=(6, 2)) * 3, rng.normal(size=(6, 2))
    z = ((pred - target) / scale) ** 2
    b = np.abs(alpha - 2)
    want = (b / alpha * ((z / b + 1) ** (alpha / 2) - 1)).mean()
    assert float(loss(torch.tensor(pred), torch.tensor(target))) == pytest.approx(want, rel=1e-12)


# --------------------------------------------------------------------------- 5. nt_xent on 1-row batches


def test_nt_xent_at_batch_size_1_is_refused_before_training(tmp_path, capsys):
    """A 1-row batch has no negatives: every step's loss is 0 with no gradient, so the run trained on nothing."""
    npz = _regression_npz(tmp_path / "reg.npz", 1)
    code = _run(tmp_path, _npz_config(npz, {"name": "nt_xent", "embedding_dim": 3}, batch_size=1))
    assert code == 2
    assert _lines(capsys, "error:") == [
        "error: strategy.batch_size is 1, and for loss 'nt_xent' a batch of 1 row holds no negatives (the other "
        "2N - 2 embeddings of the batch), so its loss is 0 with no gradient: every step would train on a constant "
        "0; use batch_size 2 or more"]


def test_nt_xent_warns_once_of_an_epochs_last_batch_of_1_row(tmp_path, capsys):
    """41 rows at batch_size 4 end each epoch on 1 row: one warning over 2 epochs, naming the nearest batch sizes
    that leave none (the run trains); at batch_size 6 (a last batch of 5 rows) nothing is said."""
    npz = _regression_npz(tmp_path / "reg.npz", 1)
    config = _npz_config(npz, {"name": "nt_xent", "embedding_dim": 3}, batch_size=4)
    config["strategy"]["epochs"] = 2
    assert _run(tmp_path, config) == 0
    assert _lines(capsys, "warning:") == [
        "warning: each epoch ends on a batch of 1 row (41 training rows at batch_size 4), and for loss 'nt_xent' a "
        "batch of 1 row holds no negatives (the other 2N - 2 embeddings of the batch), so its loss is 0 with no "
        "gradient: that step trains nothing, and its 0 counts in train_loss; batch_size 6 or 3 leaves no such batch"]
    config["strategy"]["batch_size"] = 6
    assert _run(tmp_path, config, "six") == 0
    assert _lines(capsys, "warning:") == []


def test_nt_xent_of_one_pair_is_zero_with_no_gradient():
    """What the refusal rests on: softmax over the one candidate (the other view) is 1, so the loss is 0."""
    pred = torch.randn(1, 6, requires_grad=True)
    loss = build_loss({"name": "nt_xent", "embedding_dim": 3})
    value = loss(pred, torch.zeros(1))
    value.backward()
    assert float(value.detach()) == 0.0 and torch.count_nonzero(pred.grad) == 0
    assert loss.one_row_batch_problem is not None and build_loss("mse").one_row_batch_problem is None


# --------------------------------------------------------------------------- 6. the hinge margin's error


@pytest.mark.parametrize("name, margin", [("hinge", 0), ("squared_hinge", -1)])
def test_the_hinge_margin_error_names_the_loss_as_the_config_does(name, margin):
    with pytest.raises(ConfigError) as caught:
        build_loss({"name": name, "margin": margin})
    assert str(caught.value) == f"loss '{name}': {name} margin must be > 0; got {margin}"
