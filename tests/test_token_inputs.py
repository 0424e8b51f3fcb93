"""Token ids against features, before a built-in model is built: each mismatch is the one line its forward
would get (tests/test_model_messages.py has the forward's side), and what fits passes."""

from __future__ import annotations

import pytest
import torch

from trainlab.data.dataset import Dataset, Split
from trainlab.errors import DataError
from trainlab.token_inputs import TEXT_MODELS, check_built_in_model_fits_inputs

FEATURE_MODELS = ["linear", "mlp", "cnn1d", "cnn2d", "resnet", "airbench", "airbench_muon", "cifar_tutorial_cnn"]


def _data(x: torch.Tensor, tokenizer: str | None = None) -> Dataset:
    y = torch.arange(len(x)) % 2
    empty = Split(x[:0], y[:0])
    return Dataset(Split(x, y), empty, empty, "binary", num_classes=2,
                   extras={"tokenizer": tokenizer} if tokenizer else {})


@pytest.mark.parametrize("name", FEATURE_MODELS)
def test_a_model_of_features_or_images_on_token_ids_is_refused_naming_the_text_models(name):
    with pytest.raises(DataError) as raised:
        check_built_in_model_fits_inputs(name, _data(torch.randint(2, 50, (8, 12)), tokenizer="word"))
    assert str(raised.value) == (f"model '{name}' cannot take the token ids of text data (int64); use a model for "
                                 "text: transformer_encoder, or hf_pretrained for a pretrained one")
    check_built_in_model_fits_inputs(name, _data(torch.randn(8, 12)))  # features: its own shape rules decide


@pytest.mark.parametrize("name", sorted(TEXT_MODELS))
def test_a_text_model_on_features_is_refused_and_on_ids_passes(name):
    with pytest.raises(DataError) as raised:
        check_built_in_model_fits_inputs(name, _data(torch.randn(8, 64)))
    assert str(raised.value).startswith(f"model '{name}' takes integer token ids, but the data gives float32 "
                                        "features shaped (64,)")
    check_built_in_model_fits_inputs(name, _data(torch.randint(2, 50, (8, 12)), tokenizer="word"))
    check_built_in_model_fits_inputs(name, _data(torch.randint(2, 50, (8, 12))))  # an npz of ids: no tokenizer


def test_a_users_own_model_is_left_to_its_forward():
    """A ``module:attr`` factory may take anything: the probe of its forward decides (run_checks)."""
    check_built_in_model_fits_inputs("mynets:make", _data(torch.randint(2, 50, (8, 12)), tokenizer="word"))
    check_built_in_model_fits_inputs("mynets:make", _data(torch.randn(8, 12)))
