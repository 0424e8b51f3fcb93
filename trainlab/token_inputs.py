"""Token ids against features: whether a model embeds token ids, and the one-line refusal when a model and its
inputs are of the two different kinds (a cnn2d on text data's ids, a transformer_encoder on a table's floats) or
an id lies outside the model's vocabulary."""

from __future__ import annotations

import torch

from trainlab.data import Dataset
from trainlab.engine.batching import holds_token_ids, is_ids_and_mask
from trainlab.errors import DataError
from trainlab.models import MODELS, model_name


def vocab_size_of(model: torch.nn.Module) -> int | None:
    """The ids a token-id model embeds (``model.vocab_size``: transformer_encoder, hf_pretrained, also
    inside a LoRA wrapper), or None for a model that declares none."""
    try:
        vocab = getattr(model, "vocab_size", None)
    except Exception:  # noqa: BLE001  (a property of a user's model that fails is no declaration)
        return None
    return vocab if isinstance(vocab, int) and not isinstance(vocab, bool) else None


def takes_token_ids(model: torch.nn.Module) -> bool:
    """A model that declares ``vocab_size`` or embeds ids (an ``nn.Embedding`` somewhere inside)."""
    return vocab_size_of(model) is not None or any(isinstance(m, torch.nn.Embedding) for m in model.modules())


#: the built-in models that embed token ids; every other built-in takes features or images
TEXT_MODELS = frozenset({"transformer_encoder", "hf_pretrained"})


def token_ids_refusal(name: str, x: torch.Tensor) -> DataError:
    """The error for model ``name``, which takes no token ids, given the token ids ``x`` of text data."""
    return DataError(f"model '{name}' cannot take the token ids of text data ({str(x.dtype).removeprefix('torch.')}); "
                     "use a model for text: transformer_encoder, or hf_pretrained for a pretrained one")


def not_token_ids_refusal(name: str, x: torch.Tensor) -> DataError:
    """The error for model ``name``, which embeds token ids, given the features ``x`` (floats: a table, images)."""
    return DataError(f"model '{name}' takes integer token ids, but the data gives "
                     f"{str(x.dtype).removeprefix('torch.')} features shaped {tuple(x.shape[1:])}; token ids "
                     "come from the text sources (data.source: text_tsv or text_csv, which tokenize the texts), "
                     "or from an npz whose x holds integer ids")


def check_built_in_model_fits_inputs(name: str, data: Dataset) -> None:
    """Before a built-in model ``name`` is built: a model of features or images on text data's token ids, or a
    text model on features, is one DataError, the one its forward would get (:func:`token_ids_refusal`,
    :func:`not_token_ids_refusal`). Built first, a cnn2d said its inputs were no images and pointed to mlp,
    a transformer_encoder on a table asked for a vocab_size (user trial)."""
    import trainlab.models.builtins  # noqa: F401  (registers the built-in models, as build_model does)

    x = data.train.x
    if name not in MODELS.names():
        return
    if name not in TEXT_MODELS and data.extras.get("tokenizer") and holds_token_ids(x):
        raise token_ids_refusal(name, x)
    if name in TEXT_MODELS and not holds_token_ids(x):
        raise not_token_ids_refusal(name, x)


def check_token_inputs(model: torch.nn.Module, data: Dataset) -> None:
    """For a model that declares ``vocab_size`` (token ids 0..vocab_size-1): a DataError when the inputs
    are not integers (features of a table or images cast to ids would index arbitrary embedding rows) or
    when an id of any split is outside 0..vocab_size-1 (an IndexError inside the embedding otherwise),
    naming the id, the vocabulary size and the model's ``vocab_advice``."""
    vocab = vocab_size_of(model)
    if vocab is None:
        return
    name = model_name(model)
    x = data.train.x
    if not holds_token_ids(x):
        raise not_token_ids_refusal(name, x)
    advice = getattr(model, "vocab_advice", None) or "give ids below the model's vocabulary size"
    for split_name, split in (("training", data.train), ("validation", data.val), ("test", data.test)):
        if len(split) == 0:
            continue
        ids = split.x[:, 0] if is_ids_and_mask(split.x) else split.x
        largest, smallest = int(ids.max()), int(ids.min())
        if largest >= vocab or smallest < 0:
            bad = largest if largest >= vocab else smallest
            raise DataError(f"the {split_name} data holds token id {bad}, but model '{name}' has a vocabulary of "
                            f"{vocab} ids (0..{vocab - 1}); {advice}")
