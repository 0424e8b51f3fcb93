"""``data.positive_class`` (which binary class is class 1), the warnings of a run that scores or weighs the
majority as class 1, and ``predict --threshold``, as an imbalanced-data user met them: labels ``fraud``/``ok``
sort ``fraud`` first, so f1 0.99 was the majority's and ``pos_weight: 30`` weighed the majority up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trainlab.cli import main
from trainlab.config import DataConfig, validate
from trainlab.data import load_dataset
from trainlab.errors import ConfigError
from trainlab.experiment import train
from trainlab.inference import load_run


def _fraud_csv(path: Path, n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two features; ``fraud`` (about 10% of rows) where x1 + x2 is large."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    label = np.where(x[:, 0] + x[:, 1] > 1.8, "fraud", "ok")
    table = pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "label": label})
    table.to_csv(path, index=False)
    return table


def _data(path: Path, **options) -> DataConfig:
    return DataConfig(source="csv", path=str(path), target="label", **options)


def test_positive_class_makes_the_named_class_one_in_every_split(tmp_path):
    table = _fraud_csv(tmp_path / "fraud.csv")
    plain = load_dataset(_data(tmp_path / "fraud.csv"))
    chosen = load_dataset(_data(tmp_path / "fraud.csv", positive_class="fraud"))
    assert plain.class_names == ["fraud", "ok"] and chosen.class_names == ["ok", "fraud"]
    for split in ("train", "val", "test"):  # the same rows, each label swapped
        before, after = getattr(plain, split), getattr(chosen, split)
        assert np.array_equal(before.x.numpy(), after.x.numpy())
        assert np.array_equal(after.y.numpy(), 1 - before.y.numpy())
    # class 1 is fraud: as many rows as the file holds (the three splits together)
    ones = sum(int((getattr(chosen, split).y == 1).sum()) for split in ("train", "val", "test"))
    assert ones == int((table["label"] == "fraud").sum()) > 0
    # naming the class that is class 1 already changes nothing
    same = load_dataset(_data(tmp_path / "fraud.csv", positive_class="ok"))
    assert same.class_names == ["fraud", "ok"] and np.array_equal(same.train.y.numpy(), plain.train.y.numpy())


@pytest.mark.parametrize(("labels", "written", "first"), [
    (("yes", "no"), "yes", "no"), (("yes", "no"), "no", "yes"), (("True", "False"), "true", "False")])
def test_an_unquoted_yes_or_true_names_the_class_it_spells(tmp_path, labels, written, first):
    """A review: YAML reads positive_class: yes as True, which no class name equalled (labels yes/no, or a CSV
    of booleans read as True/False)."""
    rng = np.random.default_rng(2)
    pd.DataFrame({"a": rng.normal(size=60), "label": [labels[0]] * 20 + [labels[1]] * 40}).to_csv(
        tmp_path / "yn.csv", index=False)
    dataset = load_dataset(_data(tmp_path / "yn.csv", positive_class=yaml.safe_load(written)))
    assert dataset.class_names[0] == first


def test_positive_class_of_unnamed_labels_and_refusals(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 2))
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "label": (x[:, 0] > 0).astype(int)}).to_csv(tmp_path / "01.csv",
                                                                                          index=False)
    zero = load_dataset(_data(tmp_path / "01.csv", positive_class=0))
    plain = load_dataset(_data(tmp_path / "01.csv"))
    assert zero.class_names == ["1", "0"] and np.array_equal(zero.train.y.numpy(), 1 - plain.train.y.numpy())

    _fraud_csv(tmp_path / "fraud.csv")
    with pytest.raises(ConfigError, match=r"data.positive_class 'frud' is not a class of this data \(its classes: "
                                          r"'fraud', 'ok'\); did you mean 'fraud'\?"):
        load_dataset(_data(tmp_path / "fraud.csv", positive_class="frud"))
    for bad in (2.5, ["fraud"]):  # one line naming what it takes (it said "Input should be a valid boolean")
        with pytest.raises(ConfigError, match=r"data.positive_class names one class \(a class name, or 0 or 1 for "
                                              r"unnamed labels\); got"):
            validate({"name": "p", "data": {"source": "csv", "path": "f.csv", "target": "label",
                                            "positive_class": bad},
                      "model": {"name": "linear"}, "strategy": {"loss": "bce", "optimizer": {"name": "sgd", "lr": 0.1},
                                                                "epochs": 1}})
    three = pd.DataFrame({"a": rng.normal(size=90), "label": ["x", "y", "z"] * 30})
    three.to_csv(tmp_path / "three.csv", index=False)
    with pytest.raises(ConfigError, match="chooses class 1 of a binary task, but this data is multiclass"):
        load_dataset(_data(tmp_path / "three.csv", positive_class="x"))


def _run(tmp_path: Path, name: str, data: dict, loss: object = "bce", metrics: list[str] | None = None,
         epochs: int = 12) -> Path:
    raw = {"name": name, "seed": 0, "data": data, "model": {"name": "mlp", "hidden": [16]},
           "strategy": {"loss": loss, "optimizer": {"name": "adam", "lr": 0.02}, "batch_size": 32, "epochs": epochs},
           "output": {"progress": "off", "checkpoint": {"every_seconds": None}}}
    if metrics is not None:
        raw["metrics"] = metrics
    out = tmp_path / f"run-{name}"
    train(validate(raw), out=out, quiet=True)
    return out


def test_a_run_warns_when_class_one_is_the_majority_it_scores_or_weighs(tmp_path, capsys):
    _fraud_csv(tmp_path / "fraud.csv")
    data = {"source": "csv", "path": str(tmp_path / "fraud.csv"), "target": "label"}
    _run(tmp_path, "scored", data, metrics=["accuracy", "f1", "roc_auc"], epochs=1)
    err = capsys.readouterr().err
    assert "warning: f1 is of class 1 ('ok'), " in err and "set data.positive_class: fraud to make it class 1" in err
    _run(tmp_path, "weighed", data, loss={"name": "bce", "pos_weight": 30.0}, metrics=["accuracy"], epochs=1)
    err = capsys.readouterr().err
    assert "not of the rare class" not in err  # accuracy treats both classes alike
    y = load_dataset(_data(tmp_path / "fraud.csv")).train.y.numpy()
    balancing = (y == 0).sum() / (y == 1).sum()  # n_neg / n_pos, with ok as class 1: below 1
    assert "strategy.loss.pos_weight 30 weighs class 1 ('ok')" in err and f"pos_weight {balancing:.4g} " in err
    # the majority chosen as class 1 on purpose: its f1 is what the user asked for
    _run(tmp_path, "chosen_ok", {**data, "positive_class": "ok"}, metrics=["f1"], epochs=1)
    assert "not of the rare class" not in capsys.readouterr().err
    # the rare class as class 1: nothing to warn of
    _run(tmp_path, "chosen", {**data, "positive_class": "fraud"}, loss={"name": "bce", "pos_weight": 8.0},
         metrics=["f1"], epochs=1)
    err = capsys.readouterr().err
    assert "not of the rare class" not in err and "deepens the imbalance" not in err


def test_predict_threshold_decides_by_probability_and_is_refused_where_it_cannot_apply(tmp_path, capsys):
    _fraud_csv(tmp_path / "fraud.csv")
    run_dir = _run(tmp_path, "fraud", {"source": "csv", "path": str(tmp_path / "fraud.csv"), "target": "label",
                                      "positive_class": "fraud"})
    new = _fraud_csv(tmp_path / "new.csv", n=300, seed=5).drop(columns="label")
    run = load_run(run_dir)
    p_fraud = run.predict_proba(run.preprocess(new))[:, 1]
    for threshold in (0.1, 0.5, 0.9, np.float32(0.3)):  # a NumPy float, as precision_recall_curve gives
        decided = run.predict(run.preprocess(new), threshold=threshold)
        assert np.array_equal(decided, (p_fraud >= threshold).astype(np.int64))
    low = tmp_path / "low.csv"
    assert main(["predict", str(run_dir), str(tmp_path / "new.csv"), "--threshold", "0.1", "-o", str(low)]) == 0
    written = pd.read_csv(low)["prediction"]
    assert list(written) == ["fraud" if p >= 0.1 else "ok" for p in p_fraud]
    assert (written == "fraud").sum() > (np.asarray(p_fraud) > 0.5).sum()  # a lower threshold catches more
    capsys.readouterr()
    assert main(["predict", str(run_dir), str(tmp_path / "new.csv"), "--threshold", "1.5"]) == 2
    assert capsys.readouterr().err.strip().endswith("strictly between 0 and 1; got 1.5")

    pd.DataFrame({"a": np.arange(90.0), "label": ["x", "y", "z"] * 30}).to_csv(tmp_path / "three.csv", index=False)
    three = _run(tmp_path, "three", {"source": "csv", "path": str(tmp_path / "three.csv"), "target": "label"},
                 loss="cross_entropy", epochs=1)
    assert main(["predict", str(three), str(tmp_path / "three.csv"), "--threshold", "0.3"]) == 2
    assert "applies to binary and multi-label runs; this run is multiclass" in capsys.readouterr().err
    hinge = _run(tmp_path, "hinge", {"source": "csv", "path": str(tmp_path / "fraud.csv"), "target": "label"},
                 loss="hinge", metrics=["accuracy"], epochs=1)
    assert main(["predict", str(hinge), str(tmp_path / "new.csv"), "--threshold", "0.3"]) == 2
    assert "loss 'hinge' gives none (it decides by the sign of the output)" in capsys.readouterr().err
    assert main(["predict", str(hinge), str(tmp_path / "new.csv"), "--proba"]) == 2  # the run's loss: exit 2, not 3
    assert "loss 'hinge' gives no class probabilities; predict without --proba" in capsys.readouterr().err


def test_config_records_positive_class(tmp_path):
    _fraud_csv(tmp_path / "fraud.csv")
    run_dir = _run(tmp_path, "rec", {"source": "csv", "path": str(tmp_path / "fraud.csv"), "target": "label",
                                    "positive_class": "fraud"}, epochs=1)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["positive_class"] == "fraud"
    assert load_run(run_dir).names() == ["ok", "fraud"]


def test_tune_refuses_to_search_the_positive_class():
    """A review: a study searching it ranked f1 of 'ok' (the majority) against f1 of 'fraud' and picked 'ok'."""
    from trainlab.tune.space import parse_space
    from trainlab.tune.space_review import refuse_positive_class_choice

    space = parse_space({"data.positive_class": {"choices": ["ok", "fraud"]},
                         "strategy.optimizer.lr": {"low": 1e-3, "high": 1e-1, "log": True}})
    with pytest.raises(ConfigError, match="space key 'data.positive_class' chooses which class the metrics call "
                                          "positive, so --metric val_f1 would rank a figure of one class"):
        refuse_positive_class_choice(space, "val_f1")
    refuse_positive_class_choice(space, "val_accuracy")  # both classes' figure: a search like any other
    sections = [{"source": "csv", "path": "f.csv", "target": "label", "positive_class": "fraud"},
                {"source": "csv", "path": "f.csv", "target": "label"}]
    with pytest.raises(ConfigError, match="space key 'data' sets data.positive_class unlike in its choices"):
        refuse_positive_class_choice(parse_space({"data": {"choices": sections}}), "val_recall")
    refuse_positive_class_choice(parse_space({"data": {"choices": [sections[0], {**sections[0], "path": "g.csv"}]}}),
                                 "val_f1")


def test_compare_refuses_to_rank_f1_of_strategies_with_other_positive_classes(tmp_path, capsys):
    _fraud_csv(tmp_path / "fraud.csv")
    base = {"name": "fraud", "seed": 0, "data": {"source": "csv", "path": str(tmp_path / "fraud.csv"), "target": "label"},
            "model": {"name": "mlp", "hidden": [8]},
            "strategy": {"loss": "bce", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 64, "epochs": 1}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"strategies": {"plain": None,
                                                                    "pos": {"data.positive_class": "fraud"}}}))
    args = ["compare", str(tmp_path / "base.yaml"), "--strategies", str(tmp_path / "s.yaml"), "--seeds", "1",
            "--jobs", "1", "--out", str(tmp_path / "cmp")]
    assert main([*args, "--metric", "test_f1"]) == 2
    assert capsys.readouterr().err.startswith("error: strategies 'plain' and 'pos' set data.positive_class to the "
                                              "default and 'fraud': --metric test_f1 would rank a figure of one "
                                              "class")
    assert not (tmp_path / "cmp").exists()  # before any run
    assert main([*args, "--metric", "test_accuracy", "--quiet"]) == 0  # both classes' figure: ranked


def test_the_threshold_recipe_of_docs_predict_runs_and_keeps_its_recall(tmp_path):
    """docs/predict.md's Python recipe for a threshold chosen on the run's own validation split, executed as
    written (the run folder's path put in): the threshold it picks keeps val recall >= 0.8 (sklearn's
    recall_score, an independent count), and it is no higher than needed."""
    import re
    from pathlib import Path

    from sklearn.metrics import recall_score

    _fraud_csv(tmp_path / "fraud.csv", n=1200)
    run_dir = _run(tmp_path, "churn", {"source": "csv", "path": str(tmp_path / "fraud.csv"), "target": "label",
                                      "positive_class": "fraud"})
    doc = (Path(__file__).resolve().parents[1] / "docs" / "predict.md").read_text()
    snippet = re.search(r"so its rows go to\n`predict_proba` as they are:\n\n```python\n(.*?)```", doc, re.S).group(1)
    scope: dict = {}
    exec(snippet.replace("runs/churn", str(run_dir)), scope)
    y, p, chosen = scope["val"].y.numpy(), scope["p"], scope["P"]
    assert recall_score(y, p >= chosen) >= 0.8
    higher = np.unique(p[p > chosen])
    assert not len(higher) or recall_score(y, p >= higher[0]) < 0.8  # the next threshold up loses the recall
