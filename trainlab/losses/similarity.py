"""Similarity and metric-learning losses.

What pred and target mean (see also :mod:`trainlab.losses.base`):

- ``cosine_similarity`` (continuous): pred (N, D) and target (N, D) vectors; 1 - cos(pred, target).
- ``cosine_embedding``, ``contrastive`` (target_kind ``"pair"``): each row of pred packs a
  pair of embeddings ``[x1 | x2]``, shape (N, 2 * embedding_dim) or (N, 2, embedding_dim);
  the target is the pair label, **1 = similar, 0 or -1 = dissimilar**. The data is a
  binary task and the model outputs 2 * embedding_dim values.
- ``triplet`` (target_kind ``"embedding"``): rows pack ``[anchor | positive | negative]``,
  (N, 3 * embedding_dim); the target is ignored.
- ``nt_xent`` (target_kind ``"embedding"``): rows pack two augmented views ``[v1 | v2]``
  of the same example, (N, 2 * embedding_dim); the other 2N - 2 embeddings in the batch
  are the negatives; the target is ignored.

Norms are computed as sqrt(max(sum x^2, eps^2)) = max(||x||, eps): exact above eps,
and a zero vector gives a finite value and a zero (not NaN) gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainlab.losses import LOSSES
from trainlab.losses.base import Loss, reduce, split_views


def safe_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """max(||x||_2, eps) over the last dim, with a finite gradient at x = 0."""
    return x.square().sum(-1).clamp_min(eps * eps).sqrt()


def cosine(x1: torch.Tensor, x2: torch.Tensor, eps: float) -> torch.Tensor:
    """x1 . x2 / (max(||x1||, eps) max(||x2||, eps)) over the last dim."""
    return (x1 * x2).sum(-1) / (safe_norm(x1, eps) * safe_norm(x2, eps))


def _check_eps(name: str, eps: float) -> float:
    if not eps > 0:
        raise ValueError(f"{name} eps must be > 0; got {eps}")
    return float(eps)


def _check_embedding_dim(name: str, embedding_dim: int) -> int:
    if int(embedding_dim) < 1:
        raise ValueError(f"{name} embedding_dim must be >= 1; got {embedding_dim}")
    return int(embedding_dim)


@LOSSES.register("cosine_similarity")
class CosineSimilarityLoss(Loss):
    """1 - cos(pred, target) per sample (0 when they point the same way, 2 when opposite)."""

    target_kind = "continuous"

    def __init__(self, eps: float = 1e-8, reduction: str = "mean"):
        super().__init__(reduction)
        self.eps = _check_eps("cosine_similarity", eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        return reduce(1.0 - cosine(pred, target, self.eps), self.reduction, weight)


@LOSSES.register("cosine_embedding")
class CosineEmbeddingLoss(Loss):
    """Cosine embedding loss on pairs: 1 - cos(x1, x2) if similar, max(0, cos(x1, x2) - margin) if not.

    ``margin`` in [-1, 1). ``predict`` calls a pair similar when cos > (1 + margin) / 2,
    midway between the two targets. As ``torch.nn.CosineEmbeddingLoss`` with labels 1 / -1.
    """

    target_kind = "pair"
    num_views = 2

    def __init__(self, embedding_dim: int = 32, margin: float = 0.0, eps: float = 1e-8, reduction: str = "mean"):
        super().__init__(reduction)
        if not -1.0 <= margin < 1.0:
            raise ValueError(f"cosine_embedding margin must be in [-1, 1); got {margin}")
        self.embedding_dim = _check_embedding_dim("cosine_embedding", embedding_dim)
        self.margin, self.eps = float(margin), _check_eps("cosine_embedding", eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        x1, x2 = split_views(pred, 2, self.name)
        cos = cosine(x1, x2, self.eps)
        values = torch.where(target > 0, 1.0 - cos, F.relu(cos - self.margin))
        return reduce(values, self.reduction, weight)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        x1, x2 = split_views(output, 2, self.name)
        return (cosine(x1, x2, self.eps) > 0.5 * (1.0 + self.margin)).long()


@LOSSES.register("contrastive")
class ContrastiveLoss(Loss):
    """Contrastive loss (Hadsell, Chopra & LeCun, CVPR 2006) with d = ||x1 - x2||_2:

        y * d^2 / 2 + (1 - y) * max(0, margin - d)^2 / 2,   y = 1 similar, 0 (or -1) dissimilar.

    Note the paper writes Y = 0 for similar pairs; trainlab uses 1 = similar for every
    pair loss. ``predict`` calls a pair similar when d < margin / 2.
    """

    target_kind = "pair"
    num_views = 2

    def __init__(self, embedding_dim: int = 32, margin: float = 1.0, eps: float = 1e-8, reduction: str = "mean"):
        super().__init__(reduction)
        if not margin > 0:
            raise ValueError(f"contrastive margin must be > 0; got {margin}")
        self.embedding_dim = _check_embedding_dim("contrastive", embedding_dim)
        self.margin, self.eps = float(margin), _check_eps("contrastive", eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        x1, x2 = split_views(pred, 2, self.name)
        difference = x1 - x2
        squared = difference.square().sum(-1)  # the similar term needs no sqrt: smooth at d = 0
        distance = safe_norm(difference, self.eps)
        values = torch.where(target > 0, 0.5 * squared, 0.5 * F.relu(self.margin - distance).square())
        return reduce(values, self.reduction, weight)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        x1, x2 = split_views(output, 2, self.name)
        return (safe_norm(x1 - x2, self.eps) < 0.5 * self.margin).long()


@LOSSES.register("triplet")
class TripletLoss(Loss):
    """Triplet margin loss (Schroff et al., FaceNet 2015): max(0, d(a, p) - d(a, n) + margin), d Euclidean.

    ``swap=True`` uses min(d(a, n), d(p, n)) as the negative distance (Balntas et al. 2016).
    """

    target_kind = "embedding"
    num_views = 3

    def __init__(self, embedding_dim: int = 32, margin: float = 1.0, swap: bool = False, eps: float = 1e-8,
                 reduction: str = "mean"):
        super().__init__(reduction)
        if not margin > 0:
            raise ValueError(f"triplet margin must be > 0; got {margin}")
        self.embedding_dim = _check_embedding_dim("triplet", embedding_dim)
        self.margin, self.swap, self.eps = float(margin), bool(swap), _check_eps("triplet", eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None, weight: torch.Tensor | None = None):
        anchor, positive, negative = split_views(pred, 3, self.name)
        positive_distance = safe_norm(anchor - positive, self.eps)
        negative_distance = safe_norm(anchor - negative, self.eps)
        if self.swap:
            negative_distance = torch.minimum(negative_distance, safe_norm(positive - negative, self.eps))
        values = F.relu(positive_distance - negative_distance + self.margin)
        return reduce(values, self.reduction, weight)


@LOSSES.register("nt_xent")
class NTXentLoss(Loss):
    """NT-Xent / InfoNCE (Chen et al., SimCLR 2020) over a batch of N pairs of views.

    The 2N embeddings are L2-normalised; with s_ij = cos(z_i, z_j) / temperature and
    j(i) the other view of example i,

        l_i = -log( exp(s_{i j(i)}) / sum_{k != i} exp(s_ik) )

    and each sample's value is (l_i + l_{i+N}) / 2, so the mean is SimCLR's
    1/(2N) sum over all 2N anchors. Computed as a cross-entropy over the masked
    similarity matrix (log-sum-exp stable). Needs batches of N >= 2 to have negatives: at N = 1
    each anchor's only candidate is its other view, so the loss is 0 with no gradient
    (``one_row_batch_problem``: a run refuses ``batch_size: 1`` and warns of an epoch's last batch of 1 row).
    """

    target_kind = "embedding"
    num_views = 2
    one_row_batch_problem = ("a batch of 1 row holds no negatives (the other 2N - 2 embeddings of the batch), "
                             "so its loss is 0 with no gradient")

    def __init__(self, embedding_dim: int = 32, temperature: float = 0.5, eps: float = 1e-8,
                 reduction: str = "mean"):
        super().__init__(reduction)
        if not temperature > 0:
            raise ValueError(f"nt_xent temperature must be > 0; got {temperature}")
        self.embedding_dim = _check_embedding_dim("nt_xent", embedding_dim)
        self.temperature, self.eps = float(temperature), _check_eps("nt_xent", eps)

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None, weight: torch.Tensor | None = None):
        view1, view2 = split_views(pred, 2, self.name)
        n = len(view1)
        embeddings = torch.cat([view1, view2])
        embeddings = embeddings / safe_norm(embeddings, self.eps).unsqueeze(-1)
        logits = embeddings @ embeddings.T / self.temperature
        self_pairs = torch.eye(2 * n, dtype=torch.bool, device=pred.device)
        logits = logits.masked_fill(self_pairs, float("-inf"))
        other_view = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(pred.device)
        per_anchor = F.cross_entropy(logits, other_view, reduction="none")
        values = 0.5 * (per_anchor[:n] + per_anchor[n:])
        return reduce(values, self.reduction, weight)
