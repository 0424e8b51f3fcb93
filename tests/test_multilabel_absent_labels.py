"""Multi-label labels that the training rows never set, or a val/test split never sets, are warned of by name
(a user trial: a tag 0 in every training row trained without a word, scoring f1 0 inside f1_macro)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainlab.config import DataConfig
from trainlab.data import load_dataset


def _tags(path, n: int = 300) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    table = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    table["urgent"] = 0  # never set
    table["billing"] = (x[:, 0] > 0).astype(int)
    table["refund"] = 0
    table.loc[:1, "refund"] = 1  # 2 rows: the split is not stratified on labels, so val or test lacks it
    table.to_csv(path, index=False)


def test_a_label_no_training_row_sets_is_named_and_a_split_without_one_too(tmp_path, capsys):
    _tags(tmp_path / "tags.csv")
    data = load_dataset(DataConfig(source="csv", path=str(tmp_path / "tags.csv"),
                                   target=["urgent", "billing", "refund"], task="multilabel"))
    err = capsys.readouterr().err
    ones = {split: getattr(data, split).y.numpy().sum(axis=0) for split in ("train", "val", "test")}
    assert ones["train"][0] == 0 and ones["train"][2] > 0  # the premise: refund in training...
    assert 0 in (ones["val"][2], ones["test"][2])  # ... and not in val or test
    assert ("warning: 1 label of 3 (urgent) is 1 in no training row: the model cannot learn to predict it (f1 0, "
            "which lowers f1_macro; roc_auc and average_precision leave such labels out)") in err
    for split in ("val", "test"):  # refund: set in training, maybe not in this split
        said = f"warning: the {split} split holds no row where 1 label (refund) is 1"
        assert (said in err) == (ones[split][2] == 0)
    assert "billing" not in err  # set in every split


def test_the_advisor_names_a_never_positive_label():
    from trainlab.advisor import advise

    y = np.zeros((40, 3))
    y[::2, 1] = 1
    y[::5, 2] = 1
    advice = advise(y, "multilabel", class_names=["urgent", "billing", "refund"])
    assert "labels ['urgent'] are never positive in the targets (pos_weight 1)" in advice.reasons
