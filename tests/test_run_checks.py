"""trainlab.run_checks: the model check before training turns every data/model mismatch into one DataError."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainlab.data.dataset import Dataset, Split
from trainlab.errors import ConfigError, DataError, TrainingError
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
def test_a_models_own_raise_is_its_codes_error_naming_the_place_and_the_batch(error):
    """A user's model that raised RuntimeError('boom on purpose') on some seeds was told "cannot take inputs shaped
    (13,)" with the data's exit 3, though the same rows trained on every other seed."""
    with pytest.raises(TrainingError) as caught:
        _check(Raises(error), _data(torch.randn(10, 4)))
    first = str(error).splitlines()[0]
    line = Raises.forward.__code__.co_firstlineno + 2  # its raise statement
    assert str(caught.value) == (f"model 'Raises' raised {type(error).__name__}: {first} (at tests/test_run_checks.py:"
                                 f"{line}) in its forward, on a batch of 10 training rows shaped (4,) (float32)")
    assert caught.value.exit_code == 4


def test_a_library_error_on_the_inputs_is_one_data_error_naming_model_shape_and_error():
    with pytest.raises(DataError) as caught:
        _check(nn.Linear(5, 3), _data(torch.randn(10, 4)))
    assert str(caught.value) == ("model 'Linear' cannot take inputs shaped (4,) (float32, a batch of 10 rows): mat1 and "
                                 "mat2 shapes cannot be multiplied (10x4 and 5x3)")


def test_the_probe_batch_is_the_runs_batch_at_most():
    model = Raises(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))  # (out of memory is re-raised)
    for batch_rows, seen in ((8, 8), (100, 64), (None, 64)):
        with pytest.raises(TrainingError, match=f"a batch of {seen} training rows"):
            _check(model, _data(torch.randn(200, 4)), batch_rows)
        assert model.rows[-1] == seen


def test_a_failing_token_model_reports_its_error_not_the_text_model_advice(monkeypatch):
    """A text model that fails on text data (its own error, e.g. a position past its max_length) is no wrong
    model type. (Out of memory is the machine's, raised as it is: tests/test_out_of_memory_everywhere.py.)"""
    model = _text_model()

    def fails(ids):  # torch's own error of a tensor op (a user's raise statement is its code's: above)
        return ids.new_zeros(len(ids), 600) + ids.new_zeros(len(ids), 512)

    monkeypatch.setattr(model.backbone, "forward", fails)
    x = torch.randint(1, 20, (16, 6))
    with pytest.raises(DataError) as caught:
        _check(model, _data(x, tokenizer="word"), batch_rows=16)
    assert str(caught.value) == ("model 'transformer_encoder' cannot take inputs shaped (6,) (int64, a batch of 16 "
                                 "rows): The size of tensor a (600) must match the size of tensor b (512) at "
                                 "non-singleton dimension 1")


def test_a_tabular_model_on_text_data_keeps_the_text_model_advice():
    model = nn.Sequential(nn.Linear(6, 3))
    with pytest.raises(DataError, match=r"cannot take the token ids of text data \(int64\); use a model for text"):
        _check(model, _data(torch.randint(1, 20, (16, 6)), tokenizer="word"))


def _regression(y: torch.Tensor, extras: dict | None = None) -> Dataset:
    x = torch.zeros(len(y), 2)
    empty = Split(x[:0], y[:0])
    return Dataset(Split(x, y), empty, empty, "regression", extras=extras or {})


def test_the_fixes_are_worded_for_the_datasets_origin(capsys):
    """A config run is told its data keys; trainlab.fit's data (FIT_FIXES) what its caller does to the arrays,
    since fit has no data.standardize or data.standardize_target to set."""
    from trainlab.run_checks import CONFIG_FIXES, FIT_FIXES, FIXES_KEY, warn_if_raw_scale_targets

    integers = torch.randint(0, 9, (10, 4))
    for extras, fixes in (({}, CONFIG_FIXES), ({FIXES_KEY: FIT_FIXES}, FIT_FIXES)):
        data = _data(integers)
        data.extras.update(extras)
        with pytest.raises(DataError) as raised:
            _check(nn.Linear(4, 3), data)
        assert str(raised.value).endswith(f"integer inputs are kept as they are, for token-id models; "
                                          f"{fixes.integer_features}")
        one_dimensional = _data(torch.randn(10))
        one_dimensional.extras.update(extras)
        with pytest.raises(DataError) as raised:
            _check(nn.Linear(1, 3), one_dimensional)
        assert str(raised.value).endswith(f"; {fixes.one_feature}")
        warn_if_raw_scale_targets(_regression(torch.linspace(900, 1100, 20), extras), build_loss("mse"), False)
        assert capsys.readouterr().err.rstrip().endswith(fixes.raw_targets)
    assert "data.standardize: true" in CONFIG_FIXES.integer_features
    assert "data.standardize_target: true" in CONFIG_FIXES.raw_targets
    assert not any("data." in fix for fix in vars(FIT_FIXES).values())


# --------------------------------------------------------------------------- token-id models


def test_float_features_into_a_token_model_are_refused():
    with pytest.raises(DataError, match=r"^model 'transformer_encoder' takes integer token ids, but the data gives "
                                        r"float32 features shaped \(6,\); token ids come from the text sources"):
        _check(_text_model(), _data(torch.randn(10, 6)))


@pytest.mark.parametrize("bad, where", [(20, "training"), (57, "test"), (-1, "validation")])
def test_token_ids_outside_the_vocabulary_are_refused(bad, where):
    x = torch.randint(1, 20, (12, 6))
    data = _data(x)
    split = Split(torch.randint(1, 20, (4, 6)), torch.arange(4) % 3)
    split.x[2, 3] = bad
    data = data.with_splits(**{{"training": "train", "validation": "val", "test": "test"}[where]: split})
    with pytest.raises(DataError, match=rf"^the {where} data holds token id {bad}, but model 'transformer_encoder' "
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
    with pytest.raises(DataError, match=r"^model 'hf_pretrained' takes integer token ids, but the data gives float32"):
        _check(model, _data(torch.rand(10, 2, 6)))
    ids = torch.randint(0, len(WORDS), (10, 6))
    ids[4, 2] = 400  # a word vocabulary's id
    with pytest.raises(DataError, match=rf"token id 400, but model 'hf_pretrained' has a vocabulary of {len(WORDS)} "
                                        r"ids .*data.tokenizer: hf and data.tokenizer_path"):
        _check(model, _data(torch.stack([ids, torch.ones_like(ids)], dim=1)))


@pytest.mark.parametrize("tokenizer, model, message", [
    ("word", "hf_pretrained", "model hf_pretrained needs the checkpoint's own tokenizer, but data.tokenizer is word "
     "(ids numbering the training words, which the checkpoint reads as other tokens); set data.tokenizer: hf and "
     "data.tokenizer_path: {checkpoint}"),
    ("hf", "transformer_encoder", "model transformer_encoder takes tokenizer: word's token ids, but tokenizer: hf "
     "gives each row its ids and attention mask, shaped (2, 8); set data.tokenizer: word, or use model "
     "hf_pretrained with the tokenizer's own model")])
def test_a_text_model_on_the_other_tokenizers_rows_is_a_config_error(tiny_bert_dir, tmp_path, tokenizer, model,
                                                                      message):
    from trainlab.builders import build, run_scope
    from trainlab.config import validate

    rows = "".join(f"{'the cat sat' if i % 2 else 'a dog ran fast'}\t{i % 2}\n" for i in range(12))
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + rows)
    data = {"source": "text_tsv", "train": str(tmp_path / "train.tsv"), "max_length": 8, "tokenizer": tokenizer}
    if tokenizer == "hf":
        data["tokenizer_path"] = str(tiny_bert_dir)
    spec = {"name": model, "path": str(tiny_bert_dir)} if model == "hf_pretrained" else {"name": model}
    config = validate({"name": "t", "data": data, "model": spec,
                       "strategy": {"loss": "cross_entropy", "optimizer": "adamw", "epochs": 1},
                       "output": {"progress": "off"}})
    with run_scope(config), pytest.raises(ConfigError) as caught:
        build(config, quiet=True)
    assert str(caught.value) == message.format(checkpoint=tiny_bert_dir)


# --------------------------------------------------------------------------- a 1-row batch under BatchNorm

def _features_norm() -> nn.Module:
    """BatchNorm over (N, C) features: one row is one value per channel, which torch cannot train on."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3))


class _SignalNorm(nn.Module):
    """BatchNorm over (N, C, L) signals: one row still has L values per channel."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.norm, self.head = nn.Conv1d(1, 4, 3, padding=1), nn.BatchNorm1d(4), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x[:, None, :]))).mean(dim=1))


def _fit_89_rows(model: nn.Module, **strategy):
    """89 rows of 2 (or 8) features: at batch_size 4, 23 steps an epoch, the last of them on 1 row."""
    import trainlab

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(89, 8 if isinstance(model, _SignalNorm) else 2, generator=generator)
    settings = {"loss": "cross_entropy", "optimizer": {"name": "sgd", "lr": 0.05}, "batch_size": 4, "epochs": 1,
                "divergence": {"policy": "off"}, **strategy}
    return trainlab.fit(model, train=(x, torch.arange(89) % 3), strategy=settings)


def test_torch_cannot_train_batch_norm_on_one_value_per_channel_but_can_on_one_row_of_positions():
    """The fact the check guards, straight from torch (the reference for the cases below)."""
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        _features_norm().train()(torch.randn(1, 2))
    assert _SignalNorm().train()(torch.randn(1, 8)).shape == (1, 3)


@pytest.mark.parametrize("limits", [{}, {"max_steps": 23}, {"max_steps": 40, "epochs": 2}])
def test_a_one_row_last_batch_the_run_reaches_is_refused(limits):
    with pytest.raises(ConfigError, match=r"^each epoch ends on a batch of 1 row \(89 training rows at batch_size "
                                          r"4\), which the model's BatchNorm cannot normalise in training \(one "
                                          r"value per channel\); training reaches it at step 23 \(of \d+\); use "
                                          r"batch_size 5 or 3$"):
        _fit_89_rows(_features_norm(), **limits)


@pytest.mark.parametrize("max_steps", [5, 22])
def test_a_one_row_last_batch_the_run_never_reaches_is_accepted(max_steps):
    """max_steps ends the run before the epoch's 23rd step, the only one on 1 row: it trains (it was refused)."""
    result = _fit_89_rows(_features_norm(), max_steps=max_steps)
    assert result.history[-1]["step"] == max_steps


def test_a_time_budgets_calibration_stays_within_the_run_and_never_reaches_the_one_row_batch():
    """A budgeted run of 22 steps: its calibration (warm-up + timed steps) trains at most those 22 steps, so
    the 1-row batch of step 23 is never reached (calibrating one step past the run let torch's ValueError
    escape as exit 1)."""
    result = _fit_89_rows(_features_norm(), max_steps=22, time_budget_s=60)
    assert result.history[-1]["step"] == 22


def test_a_one_row_batch_with_positions_to_normalise_over_is_trained():
    """A conv net's BatchNorm sees L values per channel in one row: the epoch's last batch trains (it was refused)."""
    result = _fit_89_rows(_SignalNorm())
    assert result.history[-1]["step"] == 23


def test_batch_size_one_under_batch_norm_is_refused_up_front():
    """Every batch is 1 row: torch's ValueError escaped at the first step (exit 1); now a ConfigError."""
    with pytest.raises(ConfigError, match=r"^batch_size 1 trains on batches of 1 row, which the model's BatchNorm "
                                          r"cannot normalise in training \(one value per channel\); use batch_size "
                                          r"2 or more$"):
        _fit_89_rows(_features_norm(), batch_size=1)
    assert _fit_89_rows(_SignalNorm(), batch_size=1, max_steps=3).history[-1]["step"] == 3


def test_the_suggested_batch_sizes_leave_no_one_row_batch():
    from trainlab.run_checks import _sizes_without_one_row

    assert _sizes_without_one_row(89, 4) == [5, 3]
    assert _sizes_without_one_row(31, 3) == [4]  # 31 % 2 == 1: no smaller size fits
    for n, size in ((31, 3), (89, 4), (1001, 10), (13, 12)):
        assert all(n % s != 1 and 2 <= s <= n for s in _sizes_without_one_row(n, size))


def test_the_one_row_probe_moves_no_statistics_and_keeps_every_mode():
    from trainlab.run_checks import one_row_stops_batch_norm

    model = _features_norm()
    model[3].eval()  # a mixed set of modes, to be given back as they were
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert one_row_stops_batch_norm(model, torch.randn(1, 2))
    assert [m.training for m in model.modules()] == [True, True, True, True, False]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model[1].eval()  # a BatchNorm in eval mode normalises one row with its running statistics
    assert not one_row_stops_batch_norm(model, torch.randn(1, 2), training_only=True)
    assert one_row_stops_batch_norm(model, torch.randn(1, 2))


def test_the_divergence_advice_names_a_far_feature_by_its_column_name(tmp_path):
    """A config run's advice names the CSV column (after preprocessing: numeric columns, then one-hot ones)."""
    import numpy as np

    from trainlab.config import DataConfig
    from trainlab.data import load_dataset
    from trainlab.divergence_advice import divergence_advice

    rng = np.random.default_rng(0)
    rows = ["small,big,city,y"] + [f"{rng.normal():.4f},{50 + 30 * rng.normal():.4f},{'ab'[i % 2]},{rng.normal():.4f}"
                                   for i in range(60)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset(DataConfig(source="csv", path=str(tmp_path / "t.csv"), target="y", standardize=False,
                                   categorical=["city"]))
    advice = divergence_advice(data, standardized_target=False)
    assert "the features are far from unit scale (column big: mean 5" in advice, advice
    assert "data.standardize: true" in advice and "for the targets" not in advice
    # a run that clipped already was offered strategy.clip_grad_norm as if it had none (the speedrun's 10)
    clipped = divergence_advice(data, standardized_target=False, clip_grad_norm=10.0)
    assert clipped.startswith("try a lower learning rate ('trainlab lr-find') or a strategy.clip_grad_norm smaller "
                              "than the 10 this run clipped at; the features")
    from dataclasses import replace

    from trainlab.run_checks import FIT_FIXES, FIXES_KEY

    fit_data = replace(data, extras={**data.extras, FIXES_KEY: FIT_FIXES})  # fit's words: no "clip at 1.0" beside 0.5
    assert divergence_advice(fit_data, standardized_target=False, clip_grad_norm=0.5).startswith(
        "try a lower learning rate (lr: 'auto' in the strategy runs an LR range test) or a clip_grad_norm smaller "
        "than the 0.5 this run clipped at")


def _outcome(function) -> bool:
    from trainlab.exception_origin import raised_by_own_statement

    try:
        function()
    except Exception as exc:  # noqa: BLE001
        return raised_by_own_statement(exc)
    raise AssertionError("did not raise")


def test_a_raise_statement_is_read_from_the_bytecode_not_the_lines_text():
    """A review: 'raised = x @ w' on the user's line (torch's shape error) read as a raise statement by its text,
    'if bad: raise ValueError(...)' on one line did not, and code typed in (<ipython-input-...>) was never the
    user's; a re-wording of torch's error ('raise ValueError(...) from error') is judged by its cause."""
    def shape_error_on_a_line_named_raised():
        raised = torch.zeros(2, 3) @ torch.zeros(4, 5)
        return raised

    def one_line_check():
        if True: raise ValueError("expected 4 features")  # noqa: E701

    def reworded():
        try:
            torch.zeros(2, 3) @ torch.zeros(4, 5)
        except RuntimeError as error:
            raise ValueError("bad shape") from error

    def its_own_cause():  # a chain that loops: followed once, no RecursionError
        try:
            raise RuntimeError("x")
        except RuntimeError as error:
            raise error from error

    namespace: dict = {}
    exec(compile("def cell():\n    raise RuntimeError('typed in a notebook')", "<ipython-input-3-abc>", "exec"), namespace)
    exec(compile("def made():\n    raise RuntimeError('generated')", "<string>", "exec"), namespace)  # a library's
    assert [_outcome(f) for f in (shape_error_on_a_line_named_raised, one_line_check, reworded, namespace["cell"],
                                  its_own_cause, namespace["made"])] == [False, True, False, True, True, False]
