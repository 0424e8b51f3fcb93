"""What a fine-tuned ``hf_pretrained`` run needs from outside its folder, and what it says when that changed.

One tiny run (tests/tiny_bert.py's 2-layer BERT, copied to a folder of its own) is trained once; each test
changes that checkpoint folder and puts it back (files copied with their times, so the run's fingerprint of
the tokenizer folder matches again). The reference outputs are computed without trainlab: transformers'
BertModel with the run's weights, then mean pooling and the head written out in torch.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil

import numpy as np
import pytest
import torch
import yaml

from tests.tiny_bert import WORDS
from trainlab.errors import ConfigError, DataError

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

HAS_PEFT = importlib.util.find_spec("peft") is not None
READS = ("its config.json and tokenizer are read to rebuild the model; the weights come from the run's "
         "model.safetensors")


def _write_texts(path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = ["sentence\tlabel"]
    for i in range(rows):
        words = rng.choice(WORDS[5:], size=int(rng.integers(2, 7)))
        lines.append(" ".join(words) + f"\t{['pos', 'neg', 'mid'][i % 3]}")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_bert_dir):
    """(run folder, checkpoint folder, data folder): a 2-step run fine-tuned from its own checkpoint copy."""
    from trainlab.cli import main

    root = tmp_path_factory.mktemp("portability")
    checkpoint = shutil.copytree(tiny_bert_dir, root / "checkpoint")
    data = root / "data"
    data.mkdir()
    _write_texts(data / "train.tsv", 24, 0)
    _write_texts(data / "new.tsv", 6, 1)
    config = {
        "name": "portable", "seed": 0,
        "data": {"source": "text_tsv", "path": str(data), "train": "train.tsv", "val_fraction": 0.25,
                 "tokenizer": "hf", "tokenizer_path": str(checkpoint), "max_length": 8},
        "model": {"name": "hf_pretrained", "path": str(checkpoint), "dropout": 0.0},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adamw", "lr": 0.05}, "batch_size": 8,
                     "epochs": 1, "max_steps": 2},
        "output": {"progress": "off"},
        "runtime": {"num_threads": 1},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    run = root / "run"
    assert main(["train", str(root / "config.yaml"), "--out", str(run), "--quiet"]) == 0
    return run, checkpoint, data


@pytest.fixture
def checkpoint_kept(trained, tmp_path):
    """The trained run's checkpoint folder, put back as it was (same files, sizes and times) after the test."""
    _, checkpoint, _ = trained
    kept = shutil.copytree(checkpoint, tmp_path / "kept")  # copy2: modification times kept
    yield checkpoint
    shutil.rmtree(checkpoint, ignore_errors=True)
    shutil.copytree(kept, checkpoint)


def _predict(run, data, out, capsys) -> tuple[int, str]:
    from trainlab.cli import main

    capsys.readouterr()
    code = main(["predict", str(run), str(data / "new.tsv"), "--proba", "-o", str(out)])
    err = capsys.readouterr().err
    return code, err.removesuffix(f"wrote {out}\n")  # the line that says where the CSV went


def _reference_probabilities(run, checkpoint, texts: list[str]) -> np.ndarray:
    """softmax(head(masked_mean(BertModel(ids)))) with the run's weights, tokenized by transformers' BERT
    tokenizer from the checkpoint's vocab.txt (not trainlab's tokenizer code)."""
    import transformers
    from safetensors.torch import load_file

    state = load_file(str(run / "model.safetensors"))
    config = transformers.BertConfig.from_json_file(str(checkpoint / "config.json"))
    bert = transformers.BertModel(config).eval()
    bert.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")})
    tokenizer = transformers.BertTokenizerFast(str(checkpoint / "vocab.txt"))
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=8, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        logits = pooled @ state["head.weight"].T + state["head.bias"]
    return torch.softmax(logits, dim=1).numpy()


def _texts(data) -> list[str]:
    return [line.split("\t")[0] for line in (data / "new.tsv").read_text().splitlines()[1:]]


# --------------------------------------------------------------------------- 1. a changed tokenizer is said

def test_predict_warns_once_when_the_tokenizer_changed_and_not_for_the_training_data(trained, checkpoint_kept,
                                                                                     tmp_path, capsys):
    run, checkpoint, data = trained
    code, err = _predict(run, data, tmp_path / "before.csv", capsys)
    assert (code, err) == (0, "")
    train = data / "train.tsv"  # predict reads no training file: its change is not predict's news
    saved = train.read_bytes()
    train.write_bytes(saved + b"cat\tpos\n")
    try:
        code, err = _predict(run, data, tmp_path / "train_changed.csv", capsys)
    finally:
        train.write_bytes(saved)
    assert (code, err) == (0, "")
    tokenizer = json.loads((checkpoint / "tokenizer.json").read_text())
    tokenizer["normalizer"]["lowercase"] = not tokenizer["normalizer"]["lowercase"]
    (checkpoint / "tokenizer.json").write_text(json.dumps(tokenizer))
    code, err = _predict(run, data, tmp_path / "after.csv", capsys)
    assert code == 0
    assert err == (f"warning: the tokenizer files of {run} changed since it was trained (files under {checkpoint}, "
                   "data.tokenizer_path: a file there was changed, added or removed); predicting with its tokenizer "
                   "as it is now (a text may get other token ids than in training)\n")


def test_load_run_warns_of_a_changed_tokenizer(trained, checkpoint_kept, caplog):
    import trainlab

    run, checkpoint, _ = trained
    with caplog.at_level(logging.WARNING, logger="trainlab"):
        trainlab.load_run(run)
    assert caplog.messages == []
    (checkpoint / "special_tokens_map.json").write_text("{}")  # a file added to the tokenizer's folder
    with caplog.at_level(logging.WARNING, logger="trainlab"):
        trainlab.load_run(run)
    assert len(caplog.messages) == 1 and caplog.messages[0].startswith(f"the tokenizer files of {run} changed")


def test_tokenizer_changes_reads_only_the_tokenizers_digest(tmp_path):
    """data_changes names every input; tokenizer_changes the tokenizer's alone, and "" for a fingerprint of
    the one-digest form, which cannot tell them apart."""
    from trainlab.data.fingerprint import data_changes, data_fingerprint, tokenizer_changes

    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("{}")
    (tmp_path / "train.tsv").write_text("a\tb\n")
    data = {"source": "text_tsv", "path": str(tmp_path), "train": "train.tsv", "tokenizer_path": str(tmp_path / "tok")}
    info = {"data_fingerprint": data_fingerprint(data)}
    (tmp_path / "train.tsv").write_text("a\tb\nc\td\n")
    assert data_changes(info, data) == str(tmp_path / "train.tsv")
    assert tokenizer_changes(info, data) == ""
    (tmp_path / "tok" / "tokenizer.json").write_text('{"x": 1}')
    assert tokenizer_changes(info, data) == f"files under {tmp_path / 'tok'}"
    assert tokenizer_changes({"data_fingerprint": "0123456789abcdef"}, data) == ""
    assert tokenizer_changes(info, {**data, "tokenizer_path": None}) == ""


# --------------------------------------------------------------------------- 2. the base checkpoint

def test_a_gone_checkpoint_is_one_line_naming_it(trained, checkpoint_kept, tmp_path, capsys):
    import trainlab

    run, checkpoint, data = trained
    shutil.move(checkpoint, tmp_path / "moved")
    line = (f"run {run} was fine-tuned from the checkpoint at {checkpoint} (model.path), which is gone: put it "
            f"back there ({READS})")
    code, err = _predict(run, data, tmp_path / "x.csv", capsys)
    assert (code, err) == (3, f"error: {line}\n")
    with pytest.raises(DataError) as caught:
        trainlab.load_run(run)
    assert str(caught.value) == line


def test_eval_of_a_run_whose_checkpoint_is_gone_says_what_predict_says(trained, checkpoint_kept, tmp_path, capsys):
    """eval warned that the data files changed (the checkpoint folder is data.tokenizer_path too), then said
    "data file not found" of the tokenizer, naming neither the checkpoint nor model.path."""
    from trainlab.cli import main
    from trainlab.run_evaluation import evaluate_run

    run, checkpoint, _ = trained
    shutil.move(checkpoint, tmp_path / "moved")
    line = (f"run {run} was fine-tuned from the checkpoint at {checkpoint} (model.path), which is gone: put it "
            f"back there ({READS})")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 3
    assert capsys.readouterr().err == f"error: {line}\n"
    with pytest.raises(DataError) as caught:
        evaluate_run(run)
    assert str(caught.value) == line


def test_a_run_needs_only_config_json_and_the_tokenizer(trained, checkpoint_kept, tmp_path, capsys):
    """The checkpoint's weights are not read: the run's model.safetensors holds them all. Predictions with
    config.json and tokenizer.json alone equal the reference computed from the run's weights."""
    run, checkpoint, data = trained
    for file in checkpoint.iterdir():
        if file.name not in ("config.json", "tokenizer.json"):
            file.unlink()
    code, err = _predict(run, data, tmp_path / "out.csv", capsys)
    assert code == 0
    assert err.startswith(f"warning: the tokenizer files of {run} changed") and err.count("\n") == 1  # files removed
    import pandas as pd

    table = pd.read_csv(tmp_path / "out.csv")
    names = json.loads((run / "labels.json").read_text())["class_names"]
    expected = _reference_probabilities(run, tmp_path / "kept", _texts(data))  # checkpoint_kept put it there
    np.testing.assert_allclose(table[names].to_numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kept_files, missing", [(("tokenizer.json",), "config.json"),
                                                 (("config.json",), "tokenizer.json")])
def test_an_incomplete_checkpoint_names_the_missing_file(trained, checkpoint_kept, tmp_path, capsys, kept_files,
                                                        missing):
    run, checkpoint, data = trained
    for file in checkpoint.iterdir():
        if file.name not in kept_files:
            file.unlink()
    keys = "model.path" if missing == "config.json" else "model.path, data.tokenizer_path"
    code, err = _predict(run, data, tmp_path / "x.csv", capsys)
    assert code == 3
    assert err == (f"error: run {run} was fine-tuned from the checkpoint at {checkpoint} ({keys}), which is "
                   f"incomplete now (no {missing} there): put its files back there ({READS})\n")


def test_gone_checkpoint_of_a_package_and_of_a_relative_path(tmp_path, monkeypatch):
    from trainlab.models.hf import gone_checkpoint

    assert gone_checkpoint("runs/a", {"package": "no_such_model_package_xyz"}) == (
        "run runs/a was fine-tuned from the checkpoint of package 'no_such_model_package_xyz' (model.package), which "
        f"is not installed: pip install no-such-model-package-xyz ({READS})")
    monkeypatch.chdir(tmp_path)
    assert gone_checkpoint("runs/a", {"path": "minilm"}) == (
        f"run runs/a was fine-tuned from the checkpoint at {tmp_path / 'minilm'} (model.path), which is not there: "
        "'minilm' is relative to the working directory; run from the folder the run was trained in, or put the "
        f"checkpoint there ({READS})")
    (tmp_path / "minilm").mkdir()
    (tmp_path / "minilm" / "config.json").write_text("{}")
    assert gone_checkpoint("runs/a", {"path": "minilm"}) is None


def test_missing_weights_name_no_pickle_unless_there_is_one(tiny_bert_dir, tmp_path):
    from trainlab.models import build_model

    shutil.copy(tiny_bert_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(DataError) as caught:
        build_model({"name": "hf_pretrained", "path": str(tmp_path)}, (2, 8), 3)
    assert "pytorch_model.bin" not in str(caught.value)
    assert str(caught.value).startswith(f"model 'hf_pretrained': cannot load the weights of {tmp_path} (")
    assert str(caught.value).endswith("it needs model.safetensors (or sharded model-*.safetensors with "
                                      "model.safetensors.index.json) beside config.json")


def test_a_missing_checkpoint_folder_says_it_does_not_exist(tmp_path):
    from trainlab.models import build_model

    with pytest.raises(ConfigError) as caught:
        build_model({"name": "hf_pretrained", "path": str(tmp_path / "nowhere")}, (2, 8), 3)
    assert str(caught.value) == (f"model 'hf_pretrained': the checkpoint folder '{tmp_path / 'nowhere'}' (model.path) "
                                 "does not exist (expected a saved transformers checkpoint: config.json, "
                                 "model.safetensors, tokenizer files)")


# --------------------------------------------------------------------------- 4. messages

def test_a_length_beyond_the_checkpoints_positions_names_data_max_length(tiny_bert_dir):
    from trainlab.models import build_model

    with pytest.raises(ConfigError) as caught:
        build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 40), 3)
    assert str(caught.value) == ("data.max_length must be <= 32 (the checkpoint's max_position_embeddings, model "
                                 "'hf_pretrained'); got 40")


def _save_classification_checkpoint(folder, layers: int = 2) -> None:
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=layers,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                                     num_labels=5)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)


def test_a_classification_checkpoint_loads_with_one_warning_and_no_load_report(tmp_path, capfd):
    import transformers

    from trainlab.models import build_model

    _save_classification_checkpoint(tmp_path)
    before = transformers.utils.logging.get_verbosity()
    capfd.readouterr()
    model = build_model({"name": "hf_pretrained", "path": str(tmp_path)}, (2, 8), 3)
    err = capfd.readouterr().err
    assert err == (f"warning: model 'hf_pretrained': the checkpoint at {tmp_path} holds a task head of its own "
                   "(classifier.*), which is not used: trainlab puts its own linear head on the encoder\n")
    assert transformers.utils.logging.get_verbosity() == before  # transformers' logging as it was
    assert model.head.out_features == 3
    saved = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path))
    torch.testing.assert_close(model.backbone.embeddings.word_embeddings.weight,
                               saved.bert.embeddings.word_embeddings.weight)  # the encoder's weights were read


def test_weights_the_checkpoint_lacks_are_said_to_start_random(tmp_path, capfd):
    from trainlab.models import build_model

    _save_classification_checkpoint(tmp_path, layers=1)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    capfd.readouterr()
    build_model({"name": "hf_pretrained", "path": str(tmp_path)}, (2, 8), 3)
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 2 and "LOAD REPORT" not in "".join(lines) and "\x1b" not in "".join(lines)
    assert lines[1].startswith(f"warning: model 'hf_pretrained': the checkpoint at {tmp_path} holds no weights for "
                               "16 of the encoder's tensors (encoder.layer.1.")
    assert lines[1].endswith(", ...): they start random")


@pytest.mark.skipif(not HAS_PEFT, reason="peft is not installed")
def test_a_misspelt_lora_target_beside_a_valid_one_gets_did_you_mean(tiny_bert_dir):
    from trainlab.lora import apply_lora
    from trainlab.models import build_model

    model = build_model({"name": "hf_pretrained", "path": str(tiny_bert_dir)}, (2, 8), 3)
    with pytest.raises(ConfigError) as caught:
        apply_lora(model, rank=2, target_modules=["query", "qeury"])
    assert str(caught.value) == ("strategy.finetune.lora.target_modules: 'qeury' matched no supported layer (no module "
                                 "is named so or ends in '.qeury'); the backbone's Linear/Conv layers end in: dense, "
                                 "key, query, value; did you mean 'query'?")
