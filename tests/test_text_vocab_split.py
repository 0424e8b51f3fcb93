"""``tokenizer: word`` fits its vocabulary on the training split only: the rows load_dataset holds out of the
training file as val/test are encoded as unseen texts are. The warning of texts cut at ``max_length`` counts
each split's own rows.

Reference: the vocabulary is recomputed here from the file with Python's ``re``, ``str.lower`` and
``collections.Counter`` (most frequent first, ties alphabetical, as the docs state), over the rows that the
dataset's training split holds. Which rows those are is read back from the split itself: every row carries a
word of its own (``row17``) as its first token, so a training row decodes to its row word.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import trainlab.data.builtins  # noqa: F401  (registers the sources)
from trainlab.config import DataConfig
from trainlab.data import load_dataset

POOL = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]


def write_rows(file: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` rows ``row<i> <words from POOL, skewed>`` with labels 0/1; the texts, in file order."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        picks = rng.choice(len(POOL), size=int(rng.integers(1, 6)), p=np.arange(len(POOL), 0, -1) / 36)
        texts.append(" ".join([f"row{i}", *(POOL[k] for k in picks)]) + ("!" if i % 3 == 0 else ""))
    file.write_text("sentence\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)), encoding="utf-8")
    return texts


def reference_vocab(texts: list[str], vocab_size: int) -> list[str]:
    counts = Counter(word for text in texts for word in re.findall(r"\w+|[^\w\s]", text.lower()))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:vocab_size - 2]
    return ["<pad>", "<unk>", *(word for word, _ in ranked)]


def row_numbers(ids: np.ndarray, vocab: list[str]) -> list[int | None]:
    """Each row's number, read from its first token (None where that token is <unk>: a row word unseen)."""
    return [int(vocab[i][3:]) if i != 1 else None for i in ids[:, 0]]


@pytest.mark.parametrize("val_fraction, test_fraction", [(0.2, 0.2), (0.1, 0.25), (0.0, 0.3)])
def test_the_vocabulary_is_the_training_splits_words(tmp_path, val_fraction, test_fraction):
    texts = write_rows(tmp_path / "train.tsv", 60)
    data = load_dataset(DataConfig(source="text_tsv", train=str(tmp_path / "train.tsv"), max_length=8,
                                   val_fraction=val_fraction, test_fraction=test_fraction), seed=0)
    vocab = data.extras["vocab"]

    training_rows = row_numbers(data.train.x.numpy(), vocab)
    assert None not in training_rows and len(set(training_rows)) == len(data.train)
    assert vocab == reference_vocab([texts[i] for i in training_rows], 20000)
    assert data.extras["vocab_size"] == len(vocab)
    for split in (data.val, data.test):  # held out: their own row word was never seen in training
        assert len(split) == 0 or set(row_numbers(split.x.numpy(), vocab)) == {None}
    assert len(data.train) + len(data.val) + len(data.test) == 60


def test_the_reported_case_common_words_and_one_word_per_row(tmp_path):
    """50 rows ``common uniq<i>``: the vocabulary held all 50 uniq words (53), and the held-out rows decoded
    whole, as if seen in training."""
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "".join(f"common uniq{i}\t{i % 2}\n" for i in range(50)))
    data = load_dataset(DataConfig(source="text_tsv", train=str(tmp_path / "train.tsv"), max_length=4), seed=0)
    vocab = data.extras["vocab"]
    assert len(vocab) == 3 + len(data.train) == 35  # <pad>, <unk>, common, one uniq word per training row
    for split in (data.val, data.test):
        np.testing.assert_array_equal(split.x.numpy(), [[vocab.index("common"), 1, 0, 0]] * len(split))


def test_a_given_val_file_is_encoded_with_the_training_splits_vocabulary(tmp_path):
    """A val file given and a test split held out of train: the test rows' words are not in the vocabulary."""
    texts = write_rows(tmp_path / "train.tsv", 40)
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nalpha row3 unseen\t0\nbeta\t1\n")
    data = load_dataset(DataConfig(source="text_tsv", train=str(tmp_path / "train.tsv"), val=str(tmp_path / "dev.tsv"),
                                   max_length=4, test_fraction=0.25), seed=0)
    vocab = data.extras["vocab"]
    training_rows = row_numbers(data.train.x.numpy(), vocab)
    assert vocab == reference_vocab([texts[i] for i in training_rows], 20000)
    assert len(data.test) == 10 and set(row_numbers(data.test.x.numpy(), vocab)) == {None}
    row3 = vocab.index("row3") if "row3" in vocab else 1  # row 3 may have been held out as test
    np.testing.assert_array_equal(data.val.x.numpy(), [[vocab.index("alpha"), row3, 1, 0],
                                                       [vocab.index("beta"), 0, 0, 0]])


def test_the_cut_warning_counts_each_splits_own_rows(tmp_path, capsys):
    """It said '<cut> of <file rows> training' although the training split held fewer rows."""
    texts = write_rows(tmp_path / "train.tsv", 50)
    max_length = 3
    data = load_dataset(DataConfig(source="text_tsv", train=str(tmp_path / "train.tsv"), max_length=max_length,
                                   val_fraction=0.1, test_fraction=0.2), seed=0)
    vocab = data.extras["vocab"]
    longer = {i for i, text in enumerate(texts) if len(re.findall(r"\w+|[^\w\s]", text)) > max_length}
    training_rows = row_numbers(data.train.x.numpy(), vocab)
    cut_train = len(longer & set(training_rows))
    cut_held = len(longer) - cut_train
    warning, = [line for line in capsys.readouterr().err.splitlines() if "texts cut" in line]
    counted = dict((name, (int(cut), int(total))) for cut, total, name in
                   re.findall(r"(\d+) of (\d+) (training|validation|test)", warning))
    assert counted["training"] == (cut_train, len(data.train)) and len(data.train) == 36
    assert sum(counted.get(name, (0, 0))[0] for name in ("validation", "test")) == cut_held
    assert counted.get("validation", (0, len(data.val)))[1] == len(data.val) == 4
    assert counted.get("test", (0, len(data.test)))[1] == len(data.test) == 10


def test_an_hf_tokenizer_encodes_an_empty_split_in_the_layout_of_the_others(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, processors

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "alpha": 4}
    tokenizer = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                             special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    (tmp_path / "tok").mkdir()
    tokenizer.save(str(tmp_path / "tok" / "tokenizer.json"))
    write_rows(tmp_path / "train.tsv", 20)
    data = load_dataset(DataConfig(source="text_tsv", train=str(tmp_path / "train.tsv"), tokenizer="hf",
                                   tokenizer_path=str(tmp_path / "tok"), max_length=5, val_fraction=0.0), seed=0)
    assert tuple(data.val.x.shape) == (0, 2, 5) and tuple(data.train.x.shape) == (16, 2, 5)
    assert data.train.x[:, 0, 0].tolist() == [2] * 16 and "vocab" not in data.extras
