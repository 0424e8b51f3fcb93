"""strategy.group_by_length: the epoch order grouped by text length, against the HF Trainer's rule in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainlab.builders import build, run_scope
from trainlab.config import validate
from trainlab.engine.batching import (
    BatchPlan,
    epoch_permutation,
    length_grouped_order,
    mega_batch_rows,
    token_lengths,
)
from trainlab.errors import ConfigError


def reference_grouped(order: np.ndarray, lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """transformers' get_length_grouped_indices on a given permutation, without its longest-first swap."""
    mult = min(len(order) // (batch_size * 4), 50) or 1
    size = mult * batch_size
    out = []
    for start in range(0, len(order), size):
        mega = list(order[start:start + size])
        out.extend(sorted(mega, key=lambda i: lengths[i], reverse=True))  # sorted() is stable
    return np.array(out)


@pytest.mark.parametrize("n,batch", [(1000, 8), (37, 4), (5000, 32), (3, 16)])
def test_grouped_order_matches_the_reference(n, batch):
    rng = np.random.default_rng(n)
    lengths = rng.integers(1, 65, size=n)
    order = epoch_permutation(n, seed=3, epoch=1)
    grouped = length_grouped_order(order, torch.from_numpy(lengths), batch)
    np.testing.assert_array_equal(grouped.numpy(), reference_grouped(order.numpy(), lengths, batch))
    assert sorted(grouped.tolist()) == list(range(n))  # every row once


def test_grouping_cuts_the_padding():
    rng = np.random.default_rng(0)
    lengths = torch.from_numpy(rng.integers(2, 60, size=2000))
    plain = BatchPlan(2000, 32, seed=0)
    grouped = BatchPlan(2000, 32, seed=0, lengths=lengths)

    def padded_tokens(plan: BatchPlan) -> int:
        return sum(int(lengths[i].max()) * len(i) for _, (i,) in plan.steps(0))

    assert padded_tokens(grouped) < 0.7 * padded_tokens(plain)
    assert torch.equal(grouped.order(2), grouped.order(2))  # a pure function of (seed, epoch): resumable
    assert not torch.equal(grouped.order(1), grouped.order(2))
    assert torch.equal(plain.order(1), epoch_permutation(2000, 0, 1))  # without lengths: unchanged


def test_token_lengths_reads_the_attention_mask():
    x = torch.zeros(3, 2, 6, dtype=torch.long)
    for row, n in enumerate([6, 2, 4]):
        x[row, 0, :n], x[row, 1, :n] = 7, 1
    assert token_lengths(x).tolist() == [6, 2, 4]
    with pytest.raises(ValueError, match=r"^token inputs are \(N, L\) integer ids or \(N, 2, L\) ids and attention "
                                         r"mask; got float32 inputs shaped \(5, 4\)$"):
        token_lengths(torch.zeros(5, 4))
    with pytest.raises(ValueError, match=r"got int64 inputs shaped \(5, 3, 8, 8\)"):
        token_lengths(torch.zeros(5, 3, 8, 8, dtype=torch.long))


def test_token_lengths_counts_the_word_ids_that_are_not_padding():
    """tokenizer: word rows (N, L), right-padded with 0 (an unknown word is 1, and counts)."""
    x = torch.tensor([[5, 1, 9, 0, 0], [3, 0, 0, 0, 0], [4, 4, 4, 4, 4]])
    assert token_lengths(x).tolist() == [3, 1, 5]
    assert token_lengths(x + 1, pad_id=1).tolist() == [3, 1, 5]  # a tokenizer padding with 1


def test_group_by_length_groups_word_tokenizer_texts(tmp_path):
    """text_tsv with the default word tokenizer (the README's text source) trains in length-grouped batches."""
    rng = np.random.default_rng(0)
    words = "the cat dog sat ran on a mat fast slow".split()
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 20, size=64)]
    rows = "".join(f"{text}\t{i % 2}\n" for i, text in enumerate(texts))
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + rows)
    config = validate({"name": "g", "data": {"source": "text_tsv", "train": str(tmp_path / "train.tsv"),
                                             "max_length": 24, "val_fraction": 0.0, "test_fraction": 0.0},
                       "model": {"name": "transformer_encoder", "d_model": 8, "heads": 2, "layers": 1},
                       "strategy": {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1, "batch_size": 4,
                                    "group_by_length": True},
                       "output": {"progress": "off"}})
    with run_scope(config):
        built = build(config, quiet=True)
    plan, x = built.trainer.plan, built.data.train.x
    lengths = (x != 0).sum(dim=1)
    torch.testing.assert_close(plan.lengths, lengths)
    order = plan.order(0)
    size = mega_batch_rows(len(x), 4)
    assert size < len(x)  # several mega-batches
    for start in range(0, len(x), size):  # each mega-batch longest first: consecutive batches of like length
        chunk = lengths[order[start:start + size]]
        assert torch.equal(chunk, chunk.sort(descending=True).values)
    assert sorted(order.tolist()) == list(range(len(x)))


def test_group_by_length_on_tabular_data_is_a_config_error():
    config = validate({"name": "g", "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
                       "strategy": {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1,
                                    "group_by_length": True},
                       "output": {"progress": "off"}})
    with run_scope(config), pytest.raises(ConfigError) as caught:
        build(config, quiet=True)
    assert str(caught.value) == (
        "strategy.group_by_length groups texts by length, but data source 'iris' gives no token inputs (token "
        "inputs are (N, L) integer ids or (N, 2, L) ids and attention mask; got float32 inputs shaped (96, 4)); "
        "turn group_by_length off, or use a text source (text_tsv, text_csv)")


def test_group_by_length_off_keeps_the_config_hash():
    raw = {"name": "g", "data": {"source": "iris"}, "model": {"name": "mlp"},
           "strategy": {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1}}
    on = {**raw, "strategy": {**raw["strategy"], "group_by_length": True}}
    off = {**raw, "strategy": {**raw["strategy"], "group_by_length": False}}
    assert validate(off).hash() == validate(raw).hash() != validate(on).hash()
