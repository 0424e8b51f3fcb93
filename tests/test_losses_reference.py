"""Every loss against an independent NumPy transcription of its formula and, where PyTorch has
the same loss and trainlab computes it by its own formula, against PyTorch's; gradients by
gradcheck. All in float64. (Losses that call the same ``F.*`` function as the PyTorch loss,
e.g. mse, huber, bce, cross_entropy, are checked against NumPy only: comparing ``F.x`` with
``F.x`` could not fail.)"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainlab.losses import LOSSES, build_loss

N = 7




# --------------------------------------------------------------------------- inputs


def inputs(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "regression":
        return rng.normal(size=(N, 3)), rng.normal(size=(N, 3))
    if kind == "binary":
        return 3 * rng.normal(size=(N, 1)), rng.integers(0, 2, N)
    if kind == "saturated":  # logits where 1 - sigmoid(z) is 0 in float64: the log-sum-exp form is needed
        return np.array([[800.0], [-800.0], [60.0], [-60.0], [1e4], [-1e4], [0.0]]), np.array([0, 1, 1, 0, 1, 0, 1])
    if kind == "signed":
        return 3 * rng.normal(size=(N, 1)), rng.choice([-1, 1], N)
    if kind == "multilabel":
        return 3 * rng.normal(size=(N, 4)), rng.integers(0, 2, (N, 4))
    if kind == "prob":
        return rng.uniform(0.01, 0.99, size=(N, 1)), rng.integers(0, 2, N)
    if kind == "classes":
        return 2 * rng.normal(size=(N, 5)), rng.integers(0, 5, N)
    if kind == "logprobs":
        logits = 2 * rng.normal(size=(N, 5))
        return logits - np.log(np.exp(logits).sum(1, keepdims=True)), rng.integers(0, 5, N)
    if kind == "distribution":
        raw = np.exp(rng.normal(size=(N, 5)))
        target = raw / raw.sum(1, keepdims=True)
        target[0, 2] = 0.0  # 0 log 0 = 0
        return 2 * rng.normal(size=(N, 5)), target / target.sum(1, keepdims=True)
    if kind == "counts":
        return 0.5 * rng.normal(size=(N, 2)), rng.poisson(3.0, size=(N, 2)).astype(float)
    if kind == "rates":
        return rng.uniform(0.1, 4.0, size=(N, 2)), rng.poisson(3.0, size=(N, 2)).astype(float)
    if kind == "gaussian":
        return rng.normal(size=(N, 4)), rng.normal(size=(N, 2))
    if kind == "vectors":
        return rng.normal(size=(N, 6)), rng.normal(size=(N, 6))
    if kind == "pairs":
        return rng.normal(size=(N, 8)), rng.integers(0, 2, N)
    if kind == "triplets":
        return rng.normal(size=(N, 12)), np.zeros(N, dtype=np.int64)
    if kind == "views":
        return rng.normal(size=(N, 8)), np.zeros(N, dtype=np.int64)
    raise AssertionError(kind)


def as_tensors(pred: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    pred_t = torch.tensor(pred, dtype=torch.float64)
    target_t = torch.tensor(target, dtype=torch.float64 if target.dtype.kind == "f" else torch.int64)
    return pred_t, target_t


# --------------------------------------------------------------------------- NumPy references


def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_log_softmax(z):
    shifted = z - z.max(1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(1, keepdims=True))


def np_huber(p, t, delta=1.0):
    r = np.abs(p - t)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))


def np_smooth_l1(p, t, beta=1.0):
    r = np.abs(p - t)
    return np.where(r < beta, 0.5 * r**2 / beta, r - 0.5 * beta)


def np_quantile(p, t, tau=0.5):
    u = t - p
    return np.where(u >= 0, tau * u, (tau - 1) * u)


def np_bce(z, y, pos_weight=None):
    """-[p y log s(z) + (1 - y) log(1 - s(z))], with log s(z) = -log(1 + e^-z) (finite for |z| large)."""
    z = z.reshape(y.shape)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight)
    log_p, log_not_p = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)
    return -(pw * y * log_p + (1 - y) * log_not_p)


def np_bce_prob(p, y, eps=1e-7):
    p = np.clip(p.reshape(y.shape), eps, 1 - eps)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def np_hinge(z, y, margin=1.0, power=1):
    t = np.where(y > 0, 1.0, -1.0)
    return np.maximum(0.0, margin - t * z.reshape(-1)) ** power


def np_cross_entropy(z, y, class_weights=None, label_smoothing=0.0):
    logp = np_log_softmax(z)
    k = z.shape[1]
    w = np.ones(k) if class_weights is None else np.asarray(class_weights)
    nll = -w[y] * logp[np.arange(len(y)), y]
    smooth = -(w[None, :] * logp).sum(1) / k
    return (1 - label_smoothing) * nll + label_smoothing * smooth


def np_nll(logp, y, class_weights=None):
    w = np.ones(logp.shape[1]) if class_weights is None else np.asarray(class_weights)
    return -w[y] * logp[np.arange(len(y)), y]


def np_focal(z, y, gamma=2.0, alpha=None):
    if z.shape[1] == 1 or y.ndim == 2:  # sigmoid per sample (binary) or per label (multi-label)
        p = np_sigmoid(z.reshape(y.shape))
        p_t = np.where(y == 1, p, 1 - p)
        a_t = 1.0 if alpha is None else np.where(y == 1, alpha, 1 - alpha)
    else:
        p_t = np.exp(np_log_softmax(z))[np.arange(len(y)), y]
        a_t = 1.0 if alpha is None else np.asarray(alpha)[y]
    return -a_t * (1 - p_t) ** gamma * np.log(p_t)


def np_multiclass_hinge(z, y, variant="crammer_singer", margin=1.0):
    out = []
    for scores, label in zip(z, y, strict=True):
        terms = [max(0.0, margin + scores[j] - scores[label]) for j in range(len(scores)) if j != label]
        out.append(max(terms) if variant == "crammer_singer" else sum(terms))
    return np.array(out)


def np_kl(z, t):
    logq = np_log_softmax(z)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t > 0, t * (np.log(t) - logq), 0.0)
    return terms.sum(1)


def np_poisson(z, y, log_input=True, full=False, eps=1e-8):
    values = np.exp(z) - y * z if log_input else z - y * np.log(z + eps)
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            stirling = y * np.log(y) - y + 0.5 * np.log(2 * np.pi * y)
        values = values + np.where(y > 1, stirling, 0.0)
    return values


def np_gaussian(pred, y, full=False, min_var=1e-6):
    d = pred.shape[1] // 2
    mu, s = pred[:, :d], pred[:, d:]
    var = np.log1p(np.exp(s)) + min_var
    values = 0.5 * (np.log(var) + (y - mu) ** 2 / var)
    return values + (0.5 * np.log(2 * np.pi) if full else 0.0)


def np_cos(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def np_cosine_embedding(pred, y, margin=0.0):
    a, b = np.split(pred, 2, axis=1)
    c = np_cos(a, b)
    return np.where(y == 1, 1 - c, np.maximum(0.0, c - margin))


def np_contrastive(pred, y, margin=1.0):
    a, b = np.split(pred, 2, axis=1)
    d = np.linalg.norm(a - b, axis=1)
    return y * 0.5 * d**2 + (1 - y) * 0.5 * np.maximum(0.0, margin - d) ** 2


def np_triplet(pred, _y, margin=1.0, swap=False):
    a, p, n = np.split(pred, 3, axis=1)
    d_ap, d_an = np.linalg.norm(a - p, axis=1), np.linalg.norm(a - n, axis=1)
    if swap:
        d_an = np.minimum(d_an, np.linalg.norm(p - n, axis=1))
    return np.maximum(0.0, d_ap - d_an + margin)


def np_nt_xent(pred, _y, temperature=0.5):
    v1, v2 = np.split(pred, 2, axis=1)
    z = np.concatenate([v1, v2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    losses = np.zeros(n2)
    for i in range(n2):
        positive = (i + n) % n2
        sims = np.array([z[i] @ z[k] / temperature for k in range(n2)])
        denominator = sum(np.exp(sims[k]) for k in range(n2) if k != i)
        losses[i] = -np.log(np.exp(sims[positive]) / denominator)
    return 0.5 * (losses[:n] + losses[n:])


# --------------------------------------------------------------------------- torch references


def torch_cosine_embedding(pred, y, margin=0.0):
    a, b = pred.chunk(2, dim=1)
    return F.cosine_embedding_loss(a, b, torch.where(y > 0, 1, -1), margin=margin, reduction="none")


@dataclass
class Case:
    name: str
    kwargs: dict[str, Any]
    kind: str
    numpy: Callable[..., np.ndarray]
    torch_ref: Callable[..., torch.Tensor] | None = None
    torch_atol: float = 1e-6
    ids: str = field(default="")

    def __post_init__(self):
        self.ids = self.name + ("-" + "-".join(f"{k}={v}" for k, v in self.kwargs.items()) if self.kwargs else "")


CASES = [
    # mse, mae, huber, smooth_l1, bce, cross_entropy and nll call the F.* function of the same
    # name: NumPy is their only reference
    Case("mse", {}, "regression", lambda p, t: (p - t) ** 2),
    Case("mae", {}, "regression", lambda p, t: np.abs(p - t)),
    Case("huber", {"delta": 0.7}, "regression", lambda p, t: np_huber(p, t, 0.7)),
    Case("smooth_l1", {"beta": 0.5}, "regression", lambda p, t: np_smooth_l1(p, t, 0.5)),
    Case("smooth_l1", {"beta": 0.0}, "regression", lambda p, t: np.abs(p - t)),
    Case("log_cosh", {}, "regression", lambda p, t: np.log(np.cosh(p - t))),
    Case("quantile", {"tau": 0.9}, "regression", lambda p, t: np_quantile(p, t, 0.9)),
    Case("quantile", {"tau": 0.2}, "regression", lambda p, t: np_quantile(p, t, 0.2)),
    Case("bce", {}, "binary", np_bce),
    Case("bce", {}, "saturated", np_bce),
    Case("bce", {"pos_weight": 4.0}, "binary", lambda z, y: np_bce(z, y, 4.0)),
    Case("bce", {"pos_weight": [1.0, 2.0, 3.0, 0.5]}, "multilabel", lambda z, y: np_bce(z, y, [1.0, 2.0, 3.0, 0.5])),
    Case("bce", {"pos_weight": [0.1, 1 / 3, 7.3, 0.7]}, "multilabel",
         lambda z, y: np_bce(z, y, [0.1, 1 / 3, 7.3, 0.7])),
    Case("bce_prob", {}, "prob", np_bce_prob,
         lambda p, y: F.binary_cross_entropy(p.reshape(-1), y.double(), reduction="none")),
    Case("hinge", {}, "binary", np_hinge),
    Case("hinge", {"margin": 2.0}, "signed", lambda z, y: np_hinge(z, y, 2.0)),
    Case("squared_hinge", {}, "binary", lambda z, y: np_hinge(z, y, power=2)),
    Case("squared_hinge", {}, "signed", lambda z, y: np_hinge(z, y, power=2)),
    Case("cross_entropy", {}, "classes", np_cross_entropy),
    Case("cross_entropy", {"class_weights": [0.1, 2.0, 1 / 3, 1.5, 3.0], "label_smoothing": 0.1}, "classes",
         lambda z, y: np_cross_entropy(z, y, [0.1, 2.0, 1 / 3, 1.5, 3.0], 0.1)),
    Case("nll", {"class_weights": [0.1, 2.0, 1 / 3, 1.5, 3.0]}, "logprobs",
         lambda z, y: np_nll(z, y, [0.1, 2.0, 1 / 3, 1.5, 3.0])),
    Case("focal", {}, "binary", np_focal),
    Case("focal", {"gamma": 0.5, "alpha": 0.3}, "binary", lambda z, y: np_focal(z, y, 0.5, 0.3)),
    Case("focal", {"gamma": 0.0}, "binary", lambda z, y: np_focal(z, y, 0.0),
         lambda z, y: F.binary_cross_entropy_with_logits(z.reshape(-1), y.double(), reduction="none")),
    Case("focal", {"gamma": 2.0}, "classes", np_focal),
    Case("focal", {"gamma": 1.5, "alpha": [0.1, 2.0, 1 / 3, 1.5, 3.0]}, "classes",
         lambda z, y: np_focal(z, y, 1.5, [0.1, 2.0, 1 / 3, 1.5, 3.0])),
    Case("focal", {"gamma": 2.0, "alpha": 0.25}, "multilabel", lambda z, y: np_focal(z, y, 2.0, 0.25)),
    Case("focal", {"gamma": 1.0, "alpha": [0.1, 0.25, 0.5, 0.9]}, "multilabel",
         lambda z, y: np_focal(z, y, 1.0, np.array([0.1, 0.25, 0.5, 0.9]))),
    Case("focal", {"gamma": 0.0}, "classes", lambda z, y: np_focal(z, y, 0.0),
         lambda z, y: F.cross_entropy(z, y, reduction="none")),
    Case("multiclass_hinge", {}, "classes", np_multiclass_hinge),
    Case("multiclass_hinge", {"variant": "weston_watkins", "margin": 0.5}, "classes",
         lambda z, y: np_multiclass_hinge(z, y, "weston_watkins", 0.5),
         lambda z, y: 5 * F.multi_margin_loss(z, y, margin=0.5, reduction="none")),
    Case("kl_div", {}, "distribution", np_kl,
         lambda z, t: F.kl_div(F.log_softmax(z, 1), t, reduction="none").sum(1)),
    Case("poisson_nll", {}, "counts", np_poisson,
         lambda z, y: F.poisson_nll_loss(z, y, reduction="none")),
    Case("poisson_nll", {"full": True}, "counts", lambda z, y: np_poisson(z, y, full=True),
         lambda z, y: F.poisson_nll_loss(z, y, full=True, reduction="none")),
    Case("poisson_nll", {"log_input": False}, "rates", lambda z, y: np_poisson(z, y, log_input=False),
         lambda z, y: F.poisson_nll_loss(z, y, log_input=False, reduction="none")),
    Case("gaussian_nll", {"full": True}, "gaussian", lambda p, y: np_gaussian(p, y, full=True),
         lambda p, y: F.gaussian_nll_loss(p[:, :2], y, F.softplus(p[:, 2:]) + 1e-6, full=True, reduction="none")),
    Case("cosine_similarity", {}, "vectors", lambda p, t: 1 - np_cos(p, t),
         lambda p, t: 1 - F.cosine_similarity(p, t, dim=1)),
    Case("cosine_embedding", {"embedding_dim": 4}, "pairs", np_cosine_embedding, torch_cosine_embedding),
    Case("cosine_embedding", {"embedding_dim": 4, "margin": -0.3}, "pairs",
         lambda p, y: np_cosine_embedding(p, y, -0.3), lambda p, y: torch_cosine_embedding(p, y, -0.3)),
    Case("contrastive", {"embedding_dim": 4, "margin": 3.0}, "pairs", lambda p, y: np_contrastive(p, y, 3.0)),
    # torch.pairwise_distance adds eps = 1e-6 to the difference: agreement to ~1e-5 only
    Case("triplet", {"embedding_dim": 4}, "triplets", np_triplet,
         lambda p, y: F.triplet_margin_loss(*p.chunk(3, 1), reduction="none"), torch_atol=1e-5),
    Case("triplet", {"embedding_dim": 4, "margin": 0.5, "swap": True}, "triplets",
         lambda p, y: np_triplet(p, y, 0.5, True),
         lambda p, y: F.triplet_margin_loss(*p.chunk(3, 1), margin=0.5, swap=True, reduction="none"),
         torch_atol=1e-5),
    Case("nt_xent", {"embedding_dim": 4}, "views", np_nt_xent),
    Case("nt_xent", {"embedding_dim": 4, "temperature": 0.1}, "views", lambda p, y: np_nt_xent(p, y, 0.1)),
]


def build(case: Case, reduction: str = "none"):
    return build_loss({"name": case.name, **case.kwargs, "reduction": reduction}).double()


@pytest.mark.parametrize("case", CASES, ids=[c.ids for c in CASES])
def test_matches_numpy_formula(case: Case):
    rng = np.random.default_rng(0)
    pred, target = inputs(case.kind, rng)
    expected = case.numpy(pred, target)
    got = build(case)(*as_tensors(pred, target))
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.torch_ref], ids=[c.ids for c in CASES if c.torch_ref])
def test_matches_pytorch(case: Case):
    rng = np.random.default_rng(1)
    pred, target = inputs(case.kind, rng)
    pred_t, target_t = as_tensors(pred, target)
    expected = case.torch_ref(pred_t, target_t)
    got = build(case)(pred_t, target_t)
    torch.testing.assert_close(got, expected.reshape(got.shape), rtol=0, atol=case.torch_atol)


@pytest.mark.parametrize("case", CASES, ids=[c.ids for c in CASES])
def test_reductions_and_sample_weights(case: Case):
    rng = np.random.default_rng(2)
    pred_t, target_t = as_tensors(*inputs(case.kind, rng))
    weight = torch.tensor(rng.uniform(0.1, 2.0, N), dtype=torch.float64)
    values = build(case)(pred_t, target_t)
    torch.testing.assert_close(build(case, "sum")(pred_t, target_t), values.sum())
    torch.testing.assert_close(build(case, "none")(pred_t, target_t, weight),
                               values * weight.reshape((N,) + (1,) * (values.ndim - 1)))
    broadcast = weight.reshape((N,) + (1,) * (values.ndim - 1)).expand_as(values)
    if case.name not in ("cross_entropy", "nll"):  # their mean divides by the class weights, tested below
        torch.testing.assert_close(build(case, "mean")(pred_t, target_t), values.mean())
        torch.testing.assert_close(build(case, "mean")(pred_t, target_t, weight),
                                   (values * broadcast).sum() / broadcast.sum())


@pytest.mark.parametrize("case", CASES, ids=[c.ids for c in CASES])
def test_gradcheck(case: Case):
    rng = np.random.default_rng(3)
    pred, target = inputs(case.kind, rng)
    pred_t, target_t = as_tensors(pred, target)
    loss = build(case, "sum")
    pred_t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: loss(p, target_t), (pred_t,), eps=1e-6, atol=1e-5)


def test_every_registered_loss_is_covered():
    import trainlab.losses.builtins  # noqa: F401

    elsewhere = {"adaptive", "multitask"}  # tests/test_losses_adaptive.py, tests/test_losses_composite.py
    assert set(LOSSES.names()) == {c.name for c in CASES} | elsewhere


# --------------------------------------------------------------------------- class weights, ignore_index


@pytest.mark.parametrize("name, smoothing", [("cross_entropy", 0.0), ("cross_entropy", 0.2), ("nll", 0.0)])
def test_weighted_mean_and_ignore_index_match_pytorch(name: str, smoothing: float):
    rng = np.random.default_rng(4)
    logits = torch.tensor(2 * rng.normal(size=(12, 4)))
    inputs_t = logits if name == "cross_entropy" else F.log_softmax(logits, 1)
    target = torch.tensor(rng.integers(0, 4, 12))
    target[[1, 5]] = -1
    class_weights = [0.5, 2.0, 1.0, 3.0]
    kwargs = {"class_weights": class_weights, "ignore_index": -1}
    if name == "cross_entropy":
        kwargs["label_smoothing"] = smoothing
    loss = build_loss({"name": name, **kwargs}).double()
    loss.check(inputs_t, target)  # ignore_index labels are accepted
    reference = F.cross_entropy if name == "cross_entropy" else F.nll_loss
    ref_kwargs = {"label_smoothing": smoothing} if name == "cross_entropy" else {}
    cw = torch.tensor(class_weights, dtype=torch.float64)
    torch.testing.assert_close(loss(inputs_t, target),
                               reference(inputs_t, target, weight=cw, ignore_index=-1, **ref_kwargs),
                               rtol=0, atol=1e-12)
    # with sample weights s: sum_i s_i l_i / sum_{i kept} s_i w_{y_i}
    s = torch.tensor(rng.uniform(0.5, 2.0, 12))
    values = reference(inputs_t, target, weight=cw, ignore_index=-1, reduction="none", **ref_kwargs)
    kept = target != -1
    expected = (s * values).sum() / (s[kept] * cw[target[kept]]).sum()
    torch.testing.assert_close(loss(inputs_t, target, s), expected, rtol=0, atol=1e-12)


def test_kl_div_mean_is_batchmean():
    rng = np.random.default_rng(5)
    z, t = as_tensors(*inputs("distribution", rng))
    torch.testing.assert_close(build_loss("kl_div").double()(z, t),
                               F.kl_div(F.log_softmax(z, 1), t, reduction="batchmean"), rtol=0, atol=1e-12)
    log_t = torch.log(t.clamp_min(1e-300))
    torch.testing.assert_close(build_loss({"name": "kl_div", "log_target": True}).double()(z, log_t),
                               F.kl_div(F.log_softmax(z, 1), log_t, reduction="batchmean", log_target=True),
                               rtol=0, atol=1e-9)


def test_gaussian_nll_learned_variance():
    rng = np.random.default_rng(6)
    mu, y = torch.tensor(rng.normal(size=(N, 2))), torch.tensor(rng.normal(size=(N, 2)))
    loss = build_loss({"name": "gaussian_nll", "variance": "learned", "num_dims": 2}).double()
    with torch.no_grad():
        loss.log_var.copy_(torch.tensor([math.log(0.5), math.log(2.0)], dtype=torch.float64))
    var = torch.tensor([0.5, 2.0], dtype=torch.float64).expand(N, 2)
    torch.testing.assert_close(loss(mu, y), F.gaussian_nll_loss(mu, y, var), rtol=0, atol=1e-12)
    assert loss.output_dim("regression", None, 2) == 2
    assert build_loss("gaussian_nll").output_dim("regression", None, 2) == 4
    # the learned variance converges to the residual variance (its maximum-likelihood value)
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.05)
    for _ in range(400):
        optimizer.zero_grad()
        loss(mu, y).backward()
        optimizer.step()
    torch.testing.assert_close(loss.log_var.exp(), ((y - mu) ** 2).mean(0), rtol=1e-3, atol=1e-4)


# --------------------------------------------------------------------------- clamps, precision, dtypes


@pytest.mark.parametrize("eps", [1e-7, 1e-3])
def test_bce_prob_clamps_saturated_probabilities(eps: float):
    """p outside [eps, 1 - eps] (a saturated sigmoid) is clamped: every term is finite, at most -log(eps)."""
    p = torch.tensor([0.0, 0.0, 1.0, 1.0, 1e-12, 1 - 1e-12, 0.5], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 0, 0, 1, 1, 0, 1])
    got = build_loss({"name": "bce_prob", "eps": eps, "reduction": "none"}).double()(p, y)
    expected = [-math.log(eps), -math.log1p(-eps), -math.log1p(-(1 - eps)), -math.log(1 - eps),
                -math.log(eps), -math.log1p(-(1 - eps)), math.log(2.0)]
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-12)
    assert got.max().item() == pytest.approx(-math.log(eps), rel=1e-6)  # the bound the docstring states
    got.sum().backward()
    assert torch.isfinite(p.grad).all()
    assert torch.all(p.grad[:6] == 0) and p.grad[6] == pytest.approx(-2.0)  # clamped: no gradient; d/dp -log p


@pytest.mark.parametrize("r", [1e-8, 1e-4, 1e-2, 1.0, 30.0, 1e4])
def test_log_cosh_is_exact_in_float32(r: float):
    """Relative error of a few float32 ulps at every scale, against 50-digit mpmath."""
    mpmath.mp.dps = 50
    for residual in (r, -r):
        x = torch.tensor([residual], dtype=torch.float32)
        got = build_loss({"name": "log_cosh", "reduction": "none"})(x, torch.zeros(1))
        exact = mpmath.log(mpmath.cosh(mpmath.mpf(float(x))))  # at the float32 value actually passed
        assert abs(float(got) - float(exact)) / float(exact) < 4 * torch.finfo(torch.float32).eps, residual
    x = torch.tensor([1e-5, 0.5, 1.0, 1.5, 200.0], requires_grad=True)
    build_loss("log_cosh")(x, torch.zeros(5)).backward()
    torch.testing.assert_close(x.grad * 5, torch.tanh(x.detach()), rtol=1e-6, atol=0)  # d/dr log cosh r = tanh r


WEIGHTED = [
    ({"name": "bce", "pos_weight": [0.1, 1 / 3, 7.3, 0.7]}, "multilabel", "pos_weight",
     lambda z, y: np_bce(z, y, [0.1, 1 / 3, 7.3, 0.7])),
    ({"name": "bce", "pos_weight": 1 / 3}, "binary", "pos_weight", lambda z, y: np_bce(z, y, 1 / 3)),
    ({"name": "cross_entropy", "class_weights": [0.1, 2.0, 1 / 3, 1.5, 3.0]}, "classes", "class_weights",
     lambda z, y: np_cross_entropy(z, y, [0.1, 2.0, 1 / 3, 1.5, 3.0])),
    ({"name": "focal", "alpha": 0.1}, "binary", "alpha", lambda z, y: np_focal(z, y, 2.0, 0.1)),
    ({"name": "focal", "alpha": [0.1, 2.0, 1 / 3, 1.5, 3.0]}, "classes", "alpha",
     lambda z, y: np_focal(z, y, 2.0, [0.1, 2.0, 1 / 3, 1.5, 3.0])),
]


@pytest.mark.parametrize("spec, kind, buffer, reference", WEIGHTED, ids=[w[2] + "-" + w[1] for w in WEIGHTED])
def test_weights_follow_the_module_dtype(spec, kind, buffer, reference):
    """A float64 run uses the config numbers in float64, not float32 values widened (0.1 differs at 1e-9)."""
    loss = build_loss({**spec, "reduction": "none"})
    assert getattr(loss, buffer).dtype == torch.float32
    expected64 = torch.tensor(spec[buffer], dtype=torch.float64)
    for move in (lambda m: m.double(), lambda m: m.to(torch.float64), lambda m: m.float().to(dtype=torch.float64)):
        moved = move(build_loss({**spec, "reduction": "none"}))
        assert getattr(moved, buffer).dtype == torch.float64
        assert torch.equal(getattr(moved, buffer), expected64)
    assert torch.equal(getattr(loss.double().float(), buffer), expected64.float())
    pred, target = inputs(kind, np.random.default_rng(7))
    got = build_loss({**spec, "reduction": "none"}).double()(*as_tensors(pred, target))
    np.testing.assert_allclose(got.detach().numpy(), reference(pred, target), rtol=1e-14, atol=0)


@pytest.mark.parametrize("spec", [
    {"name": "cross_entropy"},
    {"name": "cross_entropy", "label_smoothing": 0.2},
    {"name": "cross_entropy", "reduction": "sum"},
    {"name": "cross_entropy", "class_weights": [0.5, 2.0, 1.0]},  # weighted: stays the module
    {"name": "mse"},
])
def test_unweighted_callable_matches_the_formula(spec):
    """The training step's ``unweighted()`` callable gives the loss of the formula, written out in NumPy."""
    rng = np.random.default_rng(3)
    loss = build_loss(spec)
    if spec["name"] == "mse":
        pred, target = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
        expected = ((pred - target) ** 2).mean()
    else:
        pred, target = rng.normal(size=(6, 3)) * 3, rng.integers(0, 3, 6)
        values = np_cross_entropy(pred, target, spec.get("class_weights"), spec.get("label_smoothing", 0.0))
        weights = np.asarray(spec.get("class_weights", [1.0, 1.0, 1.0]))[target]
        expected = values.sum() if spec.get("reduction") == "sum" else values.sum() / weights.sum()
    fast = loss.unweighted()
    assert (fast is loss) == ("class_weights" in spec or spec["name"] == "mse")
    got = fast(torch.tensor(pred), torch.tensor(target))
    np.testing.assert_allclose(float(got), expected, rtol=1e-12)
