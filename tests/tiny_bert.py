"""A randomly initialised 2-layer BERT (hidden 16) with a WordPiece tokenizer of ``WORDS``, for text tests."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"the a cat dog sat on mat ran fast slow good bad".split()]


def save_tiny_bert(folder: Path) -> Path:
    """Write the model (seed 0) and its tokenizer to ``folder``; needs transformers."""
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    transformers.BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder
