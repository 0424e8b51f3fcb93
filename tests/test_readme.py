"""Claims of README.md checked against what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from trainlab.config import DataConfig
from trainlab.data import load_dataset

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_default_split_shares_the_readme_states_are_the_ones_made():
    """README said 'default 0.2 each', read as 20% validation; val_fraction is taken from what the test split
    leaves, so the defaults give 16% validation."""
    row = next(line for line in README.read_text().splitlines() if line.startswith("| `data.val_fraction`"))
    shares = re.search(r"(\d+)% train, (\d+)% validation, (\d+)% test", row)
    assert shares, f"README's split row does not state the shares: {row}"
    data = load_dataset(DataConfig(source="iris"), 0)  # 150 rows, no split of its own
    made = [len(data.train.y), len(data.val.y), len(data.test.y)]
    assert [int(share) * 150 // 100 for share in shares.groups()] == made == [96, 24, 30]
