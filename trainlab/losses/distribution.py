"""Likelihood and divergence losses on continuous targets: kl_div, poisson_nll, gaussian_nll."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainlab.errors import DataError
from trainlab.losses import LOSSES
from trainlab.losses.base import Loss, columns, num_dims_mismatch, reduce, refuse_num_dims_mismatch
from trainlab.registry import value_hint


@LOSSES.register("kl_div")
class KLDivLoss(Loss):
    """KL(t || q) = sum_k t_k (log t_k - log q_k) per sample, for target distributions t (N, K).

    ``input="logits"`` (default): log q = log_softmax(pred); ``input="log_probs"``: pred
    already holds log q. ``log_target=True``: the target holds log t (log 0 = -inf).
    A class with t_k = 0 adds 0 whatever q_k (0 log 0 = 0, also where log q_k = -inf),
    with a 0 gradient: scipy's ``rel_entr``, where ``F.kl_div`` with ``log_target`` gives
    exp(-inf) * (-inf - log q) = 0 * -inf = NaN.
    One value per sample (summed over classes), so ``mean`` is PyTorch's ``batchmean``,
    the true mean KL (PyTorch's ``mean`` would also divide by K). Use: distillation,
    soft labels.
    """

    target_kind = "distribution"
    INPUTS = ("logits", "log_probs")

    def __init__(self, input: str = "logits", log_target: bool = False, reduction: str = "mean"):
        super().__init__(reduction)
        if input not in self.INPUTS:
            raise ValueError(f"kl_div input must be one of {', '.join(self.INPUTS)}; got {input!r}{value_hint(input, self.INPUTS)}")
        self.input, self.log_target = input, bool(log_target)
        self.takes_logits = input == "logits"  # log_softmax inside: a model's own softmax would be applied twice

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        super().check(pred, target)
        probs = target.exp() if self.log_target else target
        if probs.numel() and (probs.min() < 0 or not torch.allclose(probs.sum(-1), torch.ones(()).to(probs),
                                                                    atol=1e-3)):
            raise DataError("kl_div expects each target row to be a probability distribution "
                            "(non-negative, summing to 1)" + (" after exp (log_target=True)" if self.log_target else ""))

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        log_q = F.log_softmax(pred, dim=-1) if self.input == "logits" else pred
        # a t_k = 0 term is 0: where t_k = 0, log q_k (and log t_k = -inf) are replaced by 0 before the
        # products, so no 0 * -inf is formed, in the value or in a gradient, and the term is exactly 0
        absent = target == -math.inf if self.log_target else target == 0
        log_q = torch.where(absent, torch.zeros_like(log_q), log_q)
        if self.log_target:
            log_t = torch.where(absent, torch.zeros_like(target), target)
            terms = log_t.exp() * (log_t - log_q)  # 1 * (0 - 0) where t_k = 0
        else:
            terms = torch.xlogy(target, target) - target * log_q
        return reduce(terms.sum(-1), self.reduction, weight)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return F.softmax(output, dim=-1) if self.input == "logits" else output.exp()


@LOSSES.register("poisson_nll")
class PoissonNLLLoss(Loss):
    """Poisson negative log-likelihood of counts y >= 0 with rate lambda.

    ``log_input=True`` (default): pred = log lambda and the loss is exp(pred) - y pred.
    ``log_input=False``: pred = lambda and the loss is pred - y log(pred + eps).
    ``full=True`` adds log(y!) by Stirling, y log y - y + 0.5 log(2 pi y), for y > 1
    (as ``torch.nn.PoissonNLLLoss``). Not >= 0: it is a log-likelihood up to a constant.
    """

    target_kind = "continuous"

    def __init__(self, log_input: bool = True, full: bool = False, eps: float = 1e-8, reduction: str = "mean"):
        super().__init__(reduction)
        if not eps > 0:
            raise ValueError(f"poisson_nll eps must be > 0; got {eps}")
        self.log_input, self.full, self.eps = bool(log_input), bool(full), float(eps)

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        super().check(pred, target)
        if target.numel() and target.min() < 0:
            raise DataError(f"poisson_nll expects counts >= 0; got a target of {float(target.min()):g}")
        if not self.log_input and pred.numel() and pred.min() < 0:
            raise DataError("poisson_nll with log_input=False expects rates >= 0 (or set log_input=True)")

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if self.log_input:
            values = torch.exp(pred) - target * pred
        else:
            values = pred - target * torch.log(pred + self.eps)
        if self.full:
            safe = torch.where(target > 1, target, torch.ones_like(target))
            stirling = safe * torch.log(safe) - safe + 0.5 * torch.log(2 * math.pi * safe)
            values = values + torch.where(target > 1, stirling, torch.zeros_like(target))
        return reduce(values, self.reduction, weight)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return torch.exp(output) if self.log_input else output


@LOSSES.register("gaussian_nll")
class GaussianNLLLoss(Loss):
    """Gaussian negative log-likelihood: 0.5 (log var + (y - mu)^2 / var) [+ 0.5 log(2 pi) if ``full``].

    ``variance="predicted"`` (default, heteroscedastic): the model outputs 2d values per
    sample, the means mu in the first half and s in the second half, and
    var = softplus(s) + min_var (Lakshminarayanan et al. 2017): positive, no overflow,
    and bounded below so a collapsing variance cannot give -inf.
    ``variance="learned"`` (homoscedastic): the model outputs d means and the loss owns
    a parameter log_var (one per target column when ``num_dims = d``; shared when ``num_dims = 1``),
    var = exp(log_var). Another ``num_dims`` is refused (``constants_mismatch``, ``check``, ``forward``).
    ``predict`` returns mu.
    """

    target_kind = "continuous"

    VARIANCES = ("predicted", "learned")

    def __init__(self, variance: str = "predicted", full: bool = False, min_var: float = 1e-6,
                 num_dims: int = 1, reduction: str = "mean"):
        super().__init__(reduction)
        if variance not in self.VARIANCES:
            raise ValueError(f"gaussian_nll variance must be one of {', '.join(self.VARIANCES)}; got {variance!r}"
                             f"{value_hint(variance, self.VARIANCES)}")
        if not min_var >= 0:
            raise ValueError(f"gaussian_nll min_var must be >= 0; got {min_var}")
        if int(num_dims) < 1:
            raise ValueError(f"gaussian_nll num_dims must be >= 1; got {num_dims}")
        self.variance, self.full, self.min_var = variance, bool(full), float(min_var)
        self.num_dims = int(num_dims)
        if variance == "learned":
            self.log_var = torch.nn.Parameter(torch.zeros(int(num_dims)))

    def output_dim(self, task: str, num_classes: int | None, target_dim: int) -> int:
        dim = super().output_dim(task, num_classes, target_dim)
        return 2 * dim if self.variance == "predicted" else dim

    def split(self, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Model output -> (mean, variance)."""
        if self.variance == "learned":
            refuse_num_dims_mismatch(self.name, self.num_dims, pred, "variance")
            return pred, self.log_var.to(pred.dtype).exp().expand_as(pred)
        mean, raw = pred.chunk(2, dim=-1)
        return mean, F.softplus(raw) + self.min_var

    def constants_mismatch(self, pred: torch.Tensor, target: torch.Tensor) -> str | None:
        """A learned variance's ``num_dims`` against the targets' columns (1 or as many as they have)."""
        if self.variance != "learned":
            return None
        return num_dims_mismatch(self.name, self.num_dims, columns(target), "variance")

    def check(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        if self.variance == "predicted" and pred.shape[-1] % 2:
            raise DataError(f"gaussian_nll needs 2 outputs (mean, variance) per target; got shape {tuple(pred.shape)}")
        expected = pred.shape[:-1] + (pred.shape[-1] // 2,) if self.variance == "predicted" else pred.shape
        if expected != target.shape:
            raise DataError(
                f"gaussian_nll: prediction shape {tuple(pred.shape)} does not match target shape "
                f"{tuple(target.shape)}" + (" (it needs a mean and a variance per target column)"
                                             if self.variance == "predicted" else "")
            )
        problem = self.constants_mismatch(pred, target)
        if problem is not None:
            raise DataError(problem)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        mean, var = self.split(pred)
        values = 0.5 * (torch.log(var) + (target - mean).square() / var)
        if self.full:
            values = values + 0.5 * math.log(2 * math.pi)
        return reduce(values, self.reduction, weight)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return self.split(output)[0]
