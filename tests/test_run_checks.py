"""trainlab.run_checks: the model check before training turns every data/model mismatch into one DataError."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.data.dataset import Dataset, Split
from trainlab.errors import ConfigError, DataError
from trainlab.losses import build_loss
from trainlab.models import build_model
from trainlab.run_checks import check_loss_fits

CPU = torch.device("cpu")


def _data(x: torch.Tensor, tokenizer: str | None = None) -> Dataset:
    """A 3-class dataset of ``x`` (labels 0, 1, 2 cycling), no val or test rows."""
    y = torch.arange(len(x)) % 3
    empty = Split(x[:0], y[:0])
    extras = {"tokenizer": tokenizer} if tokenizer else {}
    return Dataset(Split(x, y), empty, empty, "multiclass", num_classes=3, extras=extras)


def _check(model: nn.Module, data: Dataset, batch_rows: int | None = None) -> None:
    check_loss_fits(build_loss("cross_entropy"), model, data, CPU, batch_rows=batch_rows)


def _text_model(vocab_size: int = 20) -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": "transformer_encoder", "vocab_size": vocab_size, "d_model": 8, "heads": 2,
                        "layers": 1}, (6,), 3)


class Raises(nn.Module):
    """A model whose forward raises ``error`` (and records the rows it was given)."""

    def __init__(self, error: Exception):
        super().__init__()
        self.layer, self.error, self.rows = nn.Linear(4, 3), error, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows.append(len(x))
        raise self.error


# --------------------------------------------------------------------------- any exception of the forward


@pytest.mark.parametrize("error", [IndexError("Dimension out of range (expected to be in range of [-1, 0])\nmore"),
                                   ValueError("bad inputs"), KeyError("x"), AssertionError("shape")])
def test_any_forward_exception_is_one_data_error_naming_model_shape_and_error(error):
    with pytest.raises(DataError) as caught:
        _check(Raises(error), _data(torch.randn(10, 4)))
    message = str(caught.value)
    first = str(error).splitlines()[0]
    assert message == (f"model 'Raises' cannot take inputs shaped (4,) (float32, a batch of 10 rows): "
                       f"{type(error).__name__}: {first}")


def test_the_probe_batch_is_the_runs_batch_at_most():
    model = Raises(RuntimeError("out of memory"))
    for batch_rows, seen in ((8, 8), (100, 64), (None, 64)):
        with pytest.raises(DataError, match=f"a batch of {seen} rows"):
            _check(model, _data(torch.randn(200, 4)), batch_rows)
        assert model.rows[-1] == seen


def test_a_failing_token_model_reports_its_error_not_the_text_model_advice(monkeypatch):
    """A text model that fails on text data (a max_length of 100,000: out of memory) is no wrong model type."""
    model = _text_model()

    def out_of_memory(ids):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 5e12 bytes.\nmore")

    monkeypatch.setattr(model.backbone, "forward", out_of_memory)
    x = torch.randint(1, 20, (16, 6))
    with pytest.raises(DataError) as caught:
        _check(model, _data(x, tokenizer="word"), batch_rows=16)
    assert str(caught.value) == ("model 'TransformerClassifier' cannot take inputs shaped (6,) (int64, a batch of 16 "
                                 "rows): DefaultCPUAllocator: can't allocate memory: you tried to allocate 5e12 bytes.")


def test_a_tabular_model_on_text_data_keeps_the_text_model_advice():
    model = nn.Sequential(nn.Linear(6, 3))
    with pytest.raises(DataError, match=r"cannot take the token ids of text data \(int64\); use a model for text"):
        _check(model, _data(torch.randint(1, 20, (16, 6)), tokenizer="word"))


# --------------------------------------------------------------------------- token-id models


def test_float_features_into_a_token_model_are_refused():
    with pytest.raises(DataError, match=r"^model 'TransformerClassifier' takes integer token ids, but the data gives "
                                        r"float32 features shaped \(6,\); token ids come from the text sources"):
        _check(_text_model(), _data(torch.randn(10, 6)))


@pytest.mark.parametrize("bad, where", [(20, "training"), (57, "test"), (-1, "validation")])
def test_token_ids_outside_the_vocabulary_are_refused(bad, where):
    x = torch.randint(1, 20, (12, 6))
    data = _data(x)
    split = Split(torch.randint(1, 20, (4, 6)), torch.arange(4) % 3)
    split.x[2, 3] = bad
    data = data.with_splits(**{{"training": "train", "validation": "val", "test": "test"}[where]: split})
    with pytest.raises(DataError, match=rf"^the {where} data holds token id {bad}, but model 'TransformerClassifier' "
                                        r"has a vocabulary of 20 ids \(0..19\); set model.vocab_size above"):
        _check(_text_model(vocab_size=20), data)


def test_ids_inside_the_vocabulary_pass():
    _check(_text_model(vocab_size=20), _data(torch.randint(0, 20, (12, 6))))


def test_hf_pretrained_refuses_float_features_and_foreign_ids(tiny_bert_dir):
    from tests.tiny_bert import WORDS

    model = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 6), 3)
    assert model.vocab_size == len(WORDS)
    with pytest.raises(ValueError, match="hf_pretrained expects integer token ids; got torch.float32"):
        model(torch.rand(2, 2, 6))  # cast with .long() these indexed embedding rows 0 and 1
    with pytest.raises(DataError, match=r"^model 'HFClassifier' takes integer token ids, but the data gives float32"):
        _check(model, _data(torch.rand(10, 2, 6)))
    ids = torch.randint(0, len(WORDS), (10, 6))
    ids[4, 2] = 400  # a word vocabulary's id
    with pytest.raises(DataError, match=rf"token id 400, but model 'HFClassifier' has a vocabulary of {len(WORDS)} "
                                        r"ids .*data.tokenizer: hf and data.tokenizer_path"):
        _check(model, _data(torch.stack([ids, torch.ones_like(ids)], dim=1)))


def test_hf_pretrained_on_word_tokenizer_ids_is_a_config_error(tiny_bert_dir, tmp_path):
    from trainlab.builders import build, run_scope
    from trainlab.config import validate

    rows = "".join(f"{'the cat sat' if i % 2 else 'a dog ran fast'}\t{i % 2}\n" for i in range(12))
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + rows)
    config = validate({"name": "t", "data": {"source": "text_tsv", "train": str(tmp_path / "train.tsv"),
                                             "max_length": 8},
                       "model": {"name": "hf_pretrained", "path": str(tiny_bert_dir)},
                       "strategy": {"loss": "cross_entropy", "optimizer": "adamw", "epochs": 1},
                       "output": {"progress": "off"}})
    with run_scope(config), pytest.raises(ConfigError) as caught:
        build(config, quiet=True)
    assert str(caught.value) == (
        "model hf_pretrained needs the checkpoint's own tokenizer, but data.tokenizer is word (ids numbering the "
        f"training words, which the checkpoint reads as other tokens); set data.tokenizer: hf and "
        f"data.tokenizer_path: {tiny_bert_dir}")
