"""``transformer_encoder``: a small Transformer encoder classifier over token ids.

Input: ``x`` of shape (N, L), int64 token ids, with 0 reserved for padding.
Model: token embedding + learned position embedding -> dropout -> ``layers`` pre-norm
``nn.TransformerEncoderLayer`` (batch_first, norm_first, GELU) -> final LayerNorm ->
pooling -> linear head. Padding positions are excluded from attention (key padding
mask) and from mean pooling, so appending padding never changes the output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainlab.errors import ConfigError, DataError
from trainlab.models import MODELS, dropout_rate
from trainlab.registry import value_hint

PAD_ID = 0
POOLINGS = ("mean", "cls")


class TokenEmbedding(nn.Module):
    """e(x)_t = E_tok[x_t] + E_pos[t], both N(0, 0.02^2) initialised (BERT/GPT-2 practice)."""

    def __init__(self, vocab_size: int, d_model: int, max_length: int):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model, padding_idx=PAD_ID)
        self.positions = nn.Embedding(max_length, d_model)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)
        with torch.no_grad():
            self.tokens.weight[PAD_ID].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.tokens(ids) + self.positions(positions)


class TextEncoder(nn.Module):
    """Token ids (N, L) -> (N, L, d_model) hidden states and the padding mask (N, L), True at padding."""

    def __init__(self, vocab_size: int, d_model: int, heads: int, layers: int, ff_dim: int, dropout: float,
                 max_length: int):
        super().__init__()
        self.max_length = max_length
        self.embeddings = TokenEmbedding(vocab_size, d_model, max_length)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff_dim, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        # pre-norm layers leave the residual stream unnormalised: the final LayerNorm fixes that
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"transformer_encoder expects int64 token ids shaped (N, L); got {ids.dtype} {tuple(ids.shape)}")
        if ids.shape[1] > self.max_length:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds max_length={self.max_length}")
        padding = ids == PAD_ID
        # a row of only padding would make attention softmax over nothing (NaN): let it see position 0
        attention_padding = padding.clone()
        attention_padding[:, 0] &= ~padding.all(dim=1)
        hidden = self.encoder(self.dropout(self.embeddings(ids)), src_key_padding_mask=attention_padding)
        return hidden, padding


def masked_mean(hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """sum_t keep_t h_t / max(1, sum_t keep_t) over the length axis: (N, L, D), (N, L) -> (N, D)."""
    keep = keep.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


class TransformerClassifier(nn.Module):
    """Token ids (N, L) -> (N, output_dim) scores. Like every token-id model it declares ``vocab_size``
    (ids are 0..vocab_size-1) and ``vocab_advice`` (the fix for larger ids): the run check reads both to
    refuse float features and out-of-range ids before training (trainlab.run_checks)."""

    vocab_advice = ("set model.vocab_size above the largest id (a text source sets it from its vocabulary when "
                    "model.vocab_size is left out)")

    def __init__(self, backbone: TextEncoder, d_model: int, output_dim: int, pooling: str):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.head = nn.Linear(d_model, output_dim)

    @property
    def vocab_size(self) -> int:
        return int(self.backbone.embeddings.tokens.num_embeddings)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden, padding = self.backbone(ids)
        pooled = hidden[:, 0] if self.pooling == "cls" else masked_mean(hidden, ~padding)
        return self.head(pooled)


@MODELS.register("transformer_encoder")
def transformer_encoder(input_shape: tuple[int, ...], output_dim: int, vocab_size: int | None = None,
                        d_model: int = 128, heads: int = 4, layers: int = 2, ff_dim: int | None = None,
                        dropout: float = 0.1, max_length: int | None = None, pooling: str = "mean") -> nn.Module:
    """Transformer encoder classifier over (L,) token-id inputs.

    Args:
        vocab_size: number of token ids including 0 = padding (required; a text data source
            reports it, see the engine's wiring).
        d_model: embedding width; must be divisible by ``heads``.
        layers: number of encoder layers.
        ff_dim: hidden width of each feed-forward block (default 4 * d_model).
        max_length: number of learned positions (default: the input length L).
        pooling: ``"mean"`` (mean over non-padding tokens) or ``"cls"`` (the first token's state;
            the tokenizer must put a [CLS] token first).
    """
    if len(input_shape) != 1:
        raise DataError(f"model 'transformer_encoder' expects token ids shaped (length,); got input_shape="
                        f"{tuple(input_shape)}")  # the data's shape: exit 3, a config that does not fit its data
    if vocab_size is None:
        raise ConfigError("model 'transformer_encoder' needs vocab_size (number of token ids, 0 = padding); "
                          "set model.vocab_size")
    vocab_size, d_model, heads, layers, ff_dim, dropout = _encoder_values(vocab_size, d_model, heads, layers, ff_dim,
                                                                          dropout, pooling)
    max_length = int(input_shape[0]) if max_length is None else int(max_length)
    if max_length < int(input_shape[0]):
        raise ConfigError(f"model 'transformer_encoder': max_length={max_length} is shorter than the inputs "
                          f"(length {input_shape[0]})")
    backbone = TextEncoder(vocab_size, d_model, heads, layers, ff_dim, float(dropout), max_length)
    return TransformerClassifier(backbone, d_model, output_dim, pooling)


def _encoder_values(vocab_size: Any, d_model: Any, heads: Any, layers: Any, ff_dim: Any, dropout: Any,
                    pooling: Any) -> tuple[int | None, int, int, int, int, float]:
    """Refuse what :func:`transformer_encoder` refuses from its options alone, whatever the input length (its
    ``check_values``; a vocab_size left null is the text source's to report); the sizes as ints, ff_dim
    4 * d_model when null, and the dropout rate."""
    d_model, heads, layers = int(d_model), int(heads), int(layers)
    ff_dim = 4 * d_model if ff_dim is None else int(ff_dim)
    if vocab_size is not None and int(vocab_size) < 2:
        raise ConfigError(f"model 'transformer_encoder': vocab_size must be >= 2 (0 is padding); got {vocab_size}")
    if d_model < 1 or heads < 1 or d_model % heads != 0:
        raise ConfigError(f"model 'transformer_encoder': d_model must be a positive multiple of heads; "
                          f"got d_model={d_model}, heads={heads}")
    if layers < 1 or ff_dim < 1:
        raise ConfigError(f"model 'transformer_encoder': layers and ff_dim must be >= 1; got layers={layers}, ff_dim={ff_dim}")
    if pooling not in POOLINGS:
        raise ConfigError(f"model 'transformer_encoder': pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}"
                          f"{value_hint(pooling, POOLINGS)}")
    return (None if vocab_size is None else int(vocab_size)), d_model, heads, layers, ff_dim, \
        dropout_rate("transformer_encoder", dropout)


transformer_encoder.check_values = lambda options: _encoder_values(  # type: ignore[attr-defined]
    *(options[key] for key in ("vocab_size", "d_model", "heads", "layers", "ff_dim", "dropout", "pooling")))
