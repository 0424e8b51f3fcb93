"""Using what a run keeps: a checkpoint's weights (``load_run(RUN, checkpoint="best")``, ``trainlab predict RUN
INPUT --checkpoint best``), and raw rows (``run.preprocess``, the warning for rows that look raw).

References are independent of the code under test: the checkpoint's tensors read with ``safetensors.numpy``
and pushed through a NumPy MLP, the validation losses the run itself recorded while training (metrics.jsonl,
the checkpoint's manifest), the standardisation written out from preprocessing.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from safetensors.numpy import load_file

import trainlab
import trainlab.experiment
import trainlab.run_evaluation
from trainlab.cli import main
from trainlab.config import load_config, validate
from trainlab.data import load_dataset
from trainlab.errors import ConfigError, DataError
from trainlab.predict_command import predict_command

MODEL = "parts.step.model."  # where a checkpoint's tensors hold the model's state_dict
SHADOW = "parts.step.weight_averaging.shadow."  # and the averaged weights of strategy.weight_averaging


def _train(out: Path, data: dict, strategy: dict, checkpoint: dict, loss: str = "cross_entropy") -> Path:
    raw = {"name": out.name, "seed": 0, "data": data, "model": {"name": "mlp", "hidden": [16]},
           "strategy": {"loss": loss, "batch_size": 64, **strategy},
           "output": {"progress": "off", "checkpoint": {"every_seconds": None, **checkpoint}},
           "runtime": {"num_threads": 1}}
    trainlab.experiment.train(validate(raw), out=out, quiet=True)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three finished digits runs: ``stopped`` (early stopping without restore_best: best/ is not its
    model.safetensors), ``averaged`` (EMA weights, a checkpoint and a validation every 7 steps, so step-7's
    checkpoint is a mid-epoch one, in training mode), ``schedule_free``; and a breast_cancer run, ``cancer``."""
    tmp = tmp_path_factory.mktemp("checkpoint_use")
    digits = {"source": "digits"}
    return {
        "stopped": _train(tmp / "stopped", digits,
                          {"optimizer": {"name": "sgd", "lr": 0.9}, "epochs": 12,
                           "early_stopping": {"monitor": "val_loss", "patience": 2, "restore_best": False}},
                          {"every_n_epochs": 1}),
        "averaged": _train(tmp / "averaged", digits,
                           {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 2, "eval_every_n_steps": 7,
                            "weight_averaging": {"kind": "ema", "decay": 0.8}},
                           {"every_n_steps": 7, "every_n_epochs": 1, "keep_last": 100, "keep_after_finish": "all"}),
        "schedule_free": _train(tmp / "schedule_free", digits,
                                {"optimizer": {"name": "schedule_free_adamw", "lr": 0.01}, "epochs": 1},
                                {"every_n_steps": 7, "every_n_epochs": 1, "keep_last": 100,
                                 "keep_after_finish": "all"}),
        "cancer": _train(tmp / "cancer", {"source": "breast_cancer"},
                         {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 8}, {}, loss="bce"),
    }


def _mlp_logits(tensors: dict[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    """The run's ``mlp`` (Linear, ReLU, Linear) written out in NumPy, float64."""
    hidden = np.maximum(x @ tensors[f"{prefix}0.weight"].T + tensors[f"{prefix}0.bias"], 0.0)
    return hidden @ tensors[f"{prefix}2.weight"].T + tensors[f"{prefix}2.bias"]


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _val_split(run: Path) -> tuple[np.ndarray, np.ndarray]:
    config = load_config(run / "config.yaml")
    split = load_dataset(config.data, seed=config.seed).val
    return split.x.numpy().astype(np.float64), split.y.numpy()


def _recorded_val_loss(run: Path, step: int) -> float:
    """The val_loss the run's own validation at ``step`` wrote to metrics.jsonl."""
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("step") == step and "val_loss" in record:
            return float(record["val_loss"])
    raise AssertionError(f"no validation at step {step}")


# --------------------------------------------------------------------------- a checkpoint's weights

def test_best_checkpoint_loads_the_weights_of_the_best_evaluation(runs):
    run = runs["stopped"]
    best = run / "checkpoint" / "best"
    manifest = json.loads((best / "manifest.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert manifest["step"] < summary["steps"]  # stopped later than its best: model.safetensors is not best/'s
    tensors = load_file(str(best / "tensors.safetensors"))
    x, y = _val_split(run)

    loaded = trainlab.load_run(run, checkpoint="best")
    assert loaded.checkpoint == "best"
    np.testing.assert_allclose(loaded.predict_proba(x), _softmax(_mlp_logits(tensors, MODEL, x)), atol=1e-5)
    # the weights the run's validation at that step scored: its recorded val_loss, recomputed
    assert _cross_entropy(loaded.outputs(x).double().numpy(), y) == pytest.approx(manifest["val_loss"], rel=1e-5)
    final = trainlab.load_run(run)
    assert _cross_entropy(final.outputs(x).double().numpy(), y) > manifest["val_loss"] + 1e-4


def test_last_and_step_names_load_the_newest_step_checkpoint(runs):
    run = runs["stopped"]
    (newest,) = [p for p in (run / "checkpoint").iterdir() if p.name.startswith("step-")]
    tensors = load_file(str(newest / "tensors.safetensors"))
    x, _ = _val_split(run)
    step = int(newest.name.removeprefix("step-"))
    for name in ("last", newest.name, str(step), f"step-{step}"):  # step-N as docs/predict.md writes it
        loaded = trainlab.load_run(run, checkpoint=name)
        assert loaded.checkpoint == newest.name
        np.testing.assert_allclose(loaded.predict_proba(x[:20]), _softmax(_mlp_logits(tensors, MODEL, x[:20])),
                                   atol=1e-5)


def test_last_warns_when_the_newest_checkpoint_is_not_the_step_the_run_ended_at(runs, tmp_path, caplog):
    """A full disk failed the later checkpoints (checkpoint_failed in summary.json): 'last' was an early step's
    weights, loaded without a word (a trial's step 5 of 222: accuracy 0.21 where the run ended at 0.37)."""
    import shutil

    run = shutil.copytree(runs["averaged"], tmp_path / "run")
    steps = sorted((p for p in (run / "checkpoint").iterdir() if p.name.startswith("step-")), key=lambda p: p.name)
    summary = json.loads((run / "summary.json").read_text())
    assert int(steps[-1].name.removeprefix("step-")) == summary["steps"]  # the premise: last is the end
    with caplog.at_level("WARNING", logger="trainlab"):
        trainlab.load_run(run, checkpoint="last")
    assert not [r for r in caplog.records if "checkpoint 'last'" in r.getMessage()]  # the end: nothing to say
    shutil.rmtree(steps[-1])  # as if its write had failed
    summary["events"] = [*summary.get("events", []), {"event": "checkpoint_failed", "step": summary["steps"]}]
    (run / "summary.json").write_text(json.dumps(summary))
    behind = summary["steps"] - int(steps[-2].name.removeprefix("step-"))
    with caplog.at_level("WARNING", logger="trainlab"):
        assert trainlab.load_run(run, checkpoint="last").checkpoint == steps[-2].name
    said = [r.getMessage() for r in caplog.records if "checkpoint 'last'" in r.getMessage()]
    assert said == [f"checkpoint 'last' of {run} is {steps[-2].name}, {behind} step(s) before the run ended at step "
                    f"{summary['steps']}: its later checkpoints were not written (summary.json: checkpoint_failed); "
                    "the weights training ended with are model.safetensors (leave the checkpoint out)"]


def test_best_warns_when_a_better_best_was_not_written(runs, tmp_path, caplog):
    """A full disk failed best/'s later writes: 'best' scored step 72's weights (accuracy 0.88) where the run's
    best evaluation, at a later step, was 0.955, without a word ('last' said so in the same case)."""
    import shutil

    run = shutil.copytree(runs["averaged"], tmp_path / "run")
    held = json.loads((run / "checkpoint" / "best" / "manifest.json").read_text())["step"]
    summary = json.loads((run / "summary.json").read_text())
    with caplog.at_level("WARNING", logger="trainlab"):
        trainlab.load_run(run, checkpoint="best")
    assert not [r for r in caplog.records if "checkpoint 'best'" in r.getMessage()]
    kept = json.loads((run / "checkpoint" / "best" / "manifest.json").read_text())["val_loss"]
    failed = {"event": "checkpoint_failed", "step": held - 5, "error": "No space left on device", "failures": 2,
              "last_step": held - 3, "checkpoint": "best", "monitor": "val_loss", "mode": "min"}
    for value, step, warned in ((kept + 0.1, held - 3, False),  # worse than best/'s, written after it failed
                                (kept - 0.1, held - 5, True),  # better: lost, though best/ was written later
                                (None, held - 3, False), (None, held + 5, True)):  # an earlier trainlab's: steps
        event = {**failed, "best_value": value, "best_step": held - 5, "last_step": step}
        (run / "summary.json").write_text(json.dumps({**summary, "events": [event]}))
        caplog.clear()
        with caplog.at_level("WARNING", logger="trainlab"):
            assert trainlab.load_run(run, checkpoint="best").checkpoint == "best"
        said = [r.getMessage() for r in caplog.records if "checkpoint 'best'" in r.getMessage()]
        assert said == ([f"checkpoint 'best' of {run} holds step {held}, not the run's best evaluation: a better one "
                         f"at step {held - 5 if value else held + 5} was not written (No space left on device; "
                         "summary.json: checkpoint_failed); the weights training ended with are model.safetensors "
                         "(leave the checkpoint out)"] if warned else []), (value, step)
    (run / "summary.json").write_text(json.dumps({**summary, "events": 5}))  # damaged: nothing to read, no crash
    trainlab.load_run(run, checkpoint="best")
    trainlab.load_run(run, checkpoint="last")


@pytest.mark.parametrize("averaging", [None, {"kind": "ema", "decay": 0.8}], ids=["plain", "ema"])
def test_the_last_checkpoint_of_a_run_restore_best_ended_holds_the_weights_training_ended_with(tmp_path, averaging):
    """Early stopping's restore_best puts the best weights back at the run's end: model.safetensors and the
    summary are the best validation's, but the step checkpoint written as training ended holds that step's
    weights (with EMA: the model and the shadow it evaluated, alike), so ``last`` scores what the run's last
    validation recorded. It held the restored weights (with EMA: the best model beside the last shadow)."""
    strategy = {"optimizer": {"name": "sgd", "lr": 0.9}, "epochs": 12,
                "early_stopping": {"monitor": "val_loss", "patience": 2}}
    if averaging is not None:
        strategy["weight_averaging"] = averaging
    run = _train(tmp_path / "restored", {"source": "digits"}, strategy, {"every_n_epochs": 1})
    summary = json.loads((run / "summary.json").read_text())
    (newest,) = [p for p in (run / "checkpoint").iterdir() if p.name.startswith("step-")]
    step = int(newest.name.removeprefix("step-"))
    assert step == summary["steps"] and summary["stopped_early"] and summary["best_epoch"] < summary["epochs_run"]
    tensors = load_file(str(newest / "tensors.safetensors"))
    x, y = _val_split(run)
    last = _recorded_val_loss(run, step)
    assert _cross_entropy(_mlp_logits(tensors, MODEL, x), y) == pytest.approx(last, rel=1e-5)
    if averaging is not None:
        assert _cross_entropy(_mlp_logits(tensors, SHADOW, x), y) == pytest.approx(last, rel=1e-5)
    evaluate = trainlab.run_evaluation.evaluate_run
    assert evaluate(run, "val", checkpoint="last")["loss"] == pytest.approx(last, rel=1e-5)
    assert evaluate(run, "val")["loss"] == pytest.approx(summary["val"]["loss"], rel=1e-5)
    assert summary["val"]["loss"] < last - 1e-4  # the restored best, not the last weights


def test_a_mid_epoch_checkpoint_of_an_averaged_run_loads_the_averaged_weights(runs):
    """step-7 was written mid-epoch, in training mode: its ``model`` holds the raw weights and the EMA its
    validation at step 7 scored sits in ``weight_averaging.shadow``."""
    run = runs["averaged"]
    folder = run / "checkpoint" / "step-000000007"
    assert json.loads((folder / "state.json").read_text())["parts"]["step"]["training"] is True
    tensors = load_file(str(folder / "tensors.safetensors"))
    x, y = _val_split(run)
    averaged, raw = _mlp_logits(tensors, SHADOW, x), _mlp_logits(tensors, MODEL, x)
    recorded = _recorded_val_loss(run, 7)
    assert _cross_entropy(averaged, y) == pytest.approx(recorded, rel=1e-5)
    assert abs(_cross_entropy(raw, y) - recorded) > 1e-3  # the raw weights are not what was evaluated

    loaded = trainlab.load_run(run, checkpoint="step-000000007")
    np.testing.assert_allclose(loaded.outputs(x).double().numpy(), averaged, atol=1e-4)


def test_a_mid_epoch_checkpoint_of_a_schedule_free_run_is_refused(runs):
    run = runs["schedule_free"]
    with pytest.raises(DataError, match=r"step-000000007 was written mid-epoch.*schedule-free.*use best"):
        trainlab.load_run(run, checkpoint="step-000000007")
    trainlab.load_run(run, checkpoint="best")  # written after a validation: the evaluated weights x


def test_a_name_of_no_checkpoint_lists_those_there(runs):
    with pytest.raises(ConfigError) as caught:
        trainlab.load_run(runs["stopped"], checkpoint="bset")
    message = str(caught.value)
    assert "has no checkpoint 'bset'" in message and "its checkpoints: best, step-" in message
    assert message.endswith("did you mean 'best'?") and "\n" not in message
    with pytest.raises(ConfigError, match=r"no checkpoint 'best' \(best/ is written only with "
                                          r"output\.checkpoint\.every_n_epochs\); its checkpoints: step-"):
        trainlab.load_run(runs["cancer"], checkpoint="best")
    empty = runs["cancer"].parent / "cancer-no-checkpoints"
    empty.mkdir()
    for record in runs["cancer"].iterdir():
        if record.is_file():
            (empty / record.name).write_bytes(record.read_bytes())
    with pytest.raises(ConfigError, match=r"keeps no checkpoints.*leave the checkpoint out"):
        trainlab.load_run(empty, checkpoint="last")


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_checkpoint_folder_given_as_the_run_folder_says_how_to_use_it(runs, tmp_path, capsys, command):
    run = runs["stopped"]
    rows = tmp_path / "rows.npz"
    np.savez(rows, x=np.zeros((2, 64)))
    for given, name in ((run / "checkpoint" / "best", "best"), (run / "checkpoint", "best")):
        words = [command, str(given)] + ([str(rows)] if command == "predict" else [])
        assert main(words) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith(f"error: {given} is ")
        assert f"'trainlab eval {run} --checkpoint {name}'" in err
        assert f"'trainlab predict {run} INPUT --checkpoint {name}'" in err
        assert f"trainlab.load_run('{run}', checkpoint='{name}')" in err


def test_predict_command_predicts_with_the_checkpoint(runs, tmp_path):
    from sklearn.datasets import load_digits

    run = runs["stopped"]
    raw = load_digits().data[:30].astype(np.float64)
    np.savez(tmp_path / "rows.npz", x=raw)
    fitted = json.loads((run / "preprocessing.json").read_text())
    x = (raw - np.asarray(fitted["mean"])) / np.asarray(fitted["scale"])
    tensors = load_file(str(run / "checkpoint" / "best" / "tensors.safetensors"))
    expected = _softmax(_mlp_logits(tensors, MODEL, x))
    text = predict_command(str(run), str(tmp_path / "rows.npz"), proba=True, checkpoint="best")
    table = pd.read_csv(pd.io.common.StringIO(text))
    np.testing.assert_allclose(table[[str(k) for k in range(10)]].to_numpy(), expected, atol=1e-5)
    assert table["prediction"].astype(str).tolist() == [str(k) for k in expected.argmax(axis=1)]


# --------------------------------------------------------------------------- raw rows

def _cancer_rows() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return x.astype(np.float64), y


def test_preprocess_standardises_raw_rows_as_the_training_split_was(runs):
    run = trainlab.load_run(runs["cancer"])
    x, y = _cancer_rows()
    fitted = json.loads((runs["cancer"] / "preprocessing.json").read_text())
    standardised = (x - np.asarray(fitted["mean"])) / np.asarray(fitted["scale"])
    np.testing.assert_allclose(run.preprocess(x).numpy(), standardised, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run.preprocess(x[0]).numpy(), standardised[:1], rtol=1e-6, atol=1e-6)
    tensors = load_file(str(runs["cancer"] / "model.safetensors"))
    expected = 1.0 / (1.0 + np.exp(-_mlp_logits(tensors, "", standardised).reshape(-1)))
    np.testing.assert_allclose(run.predict_proba(run.preprocess(x))[:, 1], expected, atol=1e-5)
    assert (run.predict(run.preprocess(x)) == y).mean() > 0.9


def test_raw_rows_given_as_model_inputs_are_warned_of(runs, capsys):
    run = trainlab.load_run(runs["cancer"])
    x, _ = _cancer_rows()
    run.predict(x)
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: predict: feature 'worst area' (and ") and err.count("\n") == 0
    assert "run.predict(run.preprocess(x))" in err
    run.predict(run.preprocess(x))
    run.predict_proba(run.preprocess(x[:1]))
    assert capsys.readouterr().err == ""


def test_a_file_of_rows_is_preprocessed_by_the_run_and_not_taken_for_raw_rows(runs, tmp_path, capsys):
    """Rows far outside the training data (30 times its values: 'worst area' ~55 standard deviations out once
    standardised) read from a file were preprocessed by the run itself: no warning that they look raw, nor that
    they look standardised already (they are in other units: not the size of standardised values)."""
    x, _ = _cancer_rows()
    np.savez(tmp_path / "far.npz", x=x[:40] * 30)
    run = trainlab.load_run(runs["cancer"])
    assert float(run.preprocess(x[:40] * 30).mean(dim=0).abs().max()) > 10
    table = run.predict_file(tmp_path / "far.npz", proba=True)
    assert len(table) == 40 and capsys.readouterr().err == ""


def test_rows_standardised_twice_are_warned_of_once(runs, tmp_path, capsys):
    """predict_file, trainlab predict and run.preprocess take raw rows: rows that run.preprocess returned,
    saved and given again, were standardised a second time without a word. One warning now: the lower median
    feature's distance (here most of breast_cancer's 30 features lie beyond 3 deviations), the farthest
    feature, and the fix; and predict of what read made of them does not add "these look raw"."""
    x, _ = _cancer_rows()
    run = trainlab.load_run(runs["cancer"])
    fitted = json.loads((runs["cancer"] / "preprocessing.json").read_text())
    once = run.preprocess(x[:50]).numpy()
    np.savez(tmp_path / "once.npz", x=once)
    capsys.readouterr()
    run.predict_file(tmp_path / "once.npz")
    err = capsys.readouterr().err.strip()
    twice = (once - np.asarray(fitted["mean"])) / np.asarray(fitted["scale"])
    squares = np.sort((twice ** 2).mean(axis=0))  # the reference: the 15th smallest of the 30 mean squares
    column = int(np.abs(twice.mean(axis=0)).argmax())
    name = fitted["numeric_columns"][column]
    assert err.count("\n") == 0 and err.startswith(
        f"warning: {tmp_path / 'once.npz'}: these rows look standardised already: their values have the size of "
        f"standardised ones, and standardised as the training rows were they lie {np.sqrt(squares[14]):.3g} "
        f"training standard deviations out (the median feature; '{name}' averages {once[:, column].mean():.4g} "
        f"here, {twice[:, column].mean():.3g} standard deviations from its training mean ")
    assert err.endswith("are standardised twice: give the raw rows (from Python, pass standardised ones to "
                        "run.predict(x))")
    run.predict(run.read(tmp_path / "once.npz"))
    assert capsys.readouterr().err.count("warning:") == 1
    run.preprocess(once)
    assert capsys.readouterr().err.startswith("warning: preprocess: these rows look standardised already")
    np.savez(tmp_path / "raw.npz", x=x[:50])
    run.predict_file(tmp_path / "raw.npz")
    run.preprocess(x[:50])
    assert capsys.readouterr().err == ""


def test_one_row_rightly_far_in_one_feature_is_not_taken_for_misread(tmp_path, capsys):
    """A training row with a rare indicator (1 in 3 of 600 rows: 14 deviations out) predicted alone was warned
    of as standardised twice, and run.predict(run.preprocess(row)) as raw: a lower median and a mean against the
    other reading, not one feature's mean, decide now. Every single training row is checked, both ways."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"age": rng.normal(40, 10, 600).round(1), "spend": rng.normal(50, 20, 600).round(2),
                          "is_vip": (np.arange(600) % 200 == 0).astype(int)})
    table["churn"] = np.where(table["spend"] > 50, "stay", "leave")
    table.to_csv(tmp_path / "vip.csv", index=False)
    config = tmp_path / "vip.yaml"
    config.write_text(yaml.safe_dump({
        "name": "vip", "data": {"source": "csv", "path": str(tmp_path / "vip.csv"), "target": "churn"},
        "model": {"name": "mlp", "hidden": [4]}, "metrics": ["accuracy"],
        "strategy": {"loss": "cross_entropy", "optimizer": "adam", "epochs": 1}, "output": {"progress": "off"}}))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    run = trainlab.load_run(tmp_path / "run")
    features = table[["age", "spend", "is_vip"]]
    capsys.readouterr()
    for i in range(600):
        run.predict(run.preprocess(features.iloc[[i]].to_numpy(dtype=float)))
    table.iloc[[0]].to_csv(tmp_path / "one.csv", index=False)  # the first row has is_vip 1
    assert main(["predict", str(tmp_path / "run"), str(tmp_path / "one.csv")]) == 0
    assert "warning" not in capsys.readouterr().err
    # rows of rare whole-number features (flags, counts) are the size of z-scores and far out once standardised,
    # rightly: [1, 1] of two 1% flags lies 10 deviations out; z-scores are not whole numbers
    from trainlab.data.preprocessing import looks_standardised_already

    assert looks_standardised_already(np.array([[1.0, 1.0]]), np.array([[9.95, 9.95]])) is None
    assert looks_standardised_already(np.array([[0.5, -1.2]]), np.array([[9.95, 9.95]])) is not None


def test_preprocess_refuses_what_it_cannot_read(runs):
    run = trainlab.load_run(runs["cancer"])
    x, _ = _cancer_rows()
    with pytest.raises(DataError, match="29 numeric feature columns but the preprocessing was fitted on 30"):
        run.preprocess(x[:, :29])
    bad = x[:3].copy()
    bad[2, 1] = np.nan
    with pytest.raises(DataError, match=r"row 2 \(counting from 0\), feature 'mean texture' holds nan"):
        run.preprocess(bad)
    with pytest.raises(DataError, match=r"preprocess takes raw rows of numbers shaped \(N, 30\)"):
        run.preprocess([["a"] * 30])


def test_a_run_with_categories_sends_raw_rows_to_a_dataframe(tmp_path, capsys):
    """An array cannot hold the categories a CSV run one-hot encodes: preprocess refuses it, and the warning of
    raw-looking rows points to the DataFrame that predict preprocesses itself."""
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"weight": rng.normal(30, 10, 120), "height": rng.normal(500, 100, 120),
                          "colour": rng.choice(["red", "green", "blue"], 120)})
    table["kind"] = np.where(table["weight"] > 30, "big", "small")
    table.to_csv(tmp_path / "pets.csv", index=False)
    out = _train(tmp_path / "pets", {"source": "csv", "path": str(tmp_path / "pets.csv"), "target": "kind"},
                 {"optimizer": {"name": "adam", "lr": 0.01}, "epochs": 2}, {})
    run = trainlab.load_run(out)
    with pytest.raises(DataError, match=r"one-hot encodes its categorical column\(s\) colour.*pandas DataFrame"):
        run.preprocess(table[["weight", "height"]].to_numpy())
    capsys.readouterr()
    raw = np.c_[table[["weight", "height"]].to_numpy(), np.eye(3)[np.zeros(120, dtype=int)]]
    run.predict(raw)
    err = capsys.readouterr().err
    assert err.startswith("warning: predict: feature 'height' (and 1 other feature) averages ")
    assert "pass the raw columns by name as a pandas DataFrame, run.predict(df)" in err
    run.predict(table)  # the DataFrame: preprocessed by the run, no warning
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- eval and predict --checkpoint

def test_eval_of_a_checkpoint_scores_what_the_run_recorded_at_its_step(runs):
    averaged = runs["averaged"]
    evaluate = trainlab.run_evaluation.evaluate_run
    assert evaluate(averaged, "val", checkpoint="step-000000007")["loss"] == pytest.approx(
        _recorded_val_loss(averaged, 7), rel=1e-5)  # the averaged weights, as the validation at step 7 saw them
    stopped = runs["stopped"]
    manifest = json.loads((stopped / "checkpoint" / "best" / "manifest.json").read_text())
    assert evaluate(stopped, "val", checkpoint="best")["loss"] == pytest.approx(manifest["val_loss"], rel=1e-5)
    assert evaluate(stopped, "val")["loss"] > manifest["val_loss"] + 1e-4  # model.safetensors: the last weights


def test_eval_and_predict_take_checkpoint_on_the_command_line(runs, tmp_path, capsys):
    run = runs["stopped"]
    manifest = json.loads((run / "checkpoint" / "best" / "manifest.json").read_text())
    assert main(["eval", str(run), "--split", "val", "--checkpoint", "best"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "val (checkpoint best):"
    assert float(lines[1].split()[1]) == pytest.approx(manifest["val_loss"], rel=1e-5)

    x = np.zeros((3, 64))
    np.savez(tmp_path / "rows.npz", x=x)
    fitted = json.loads((run / "preprocessing.json").read_text())
    tensors = load_file(str(run / "checkpoint" / "best" / "tensors.safetensors"))
    expected = _softmax(_mlp_logits(tensors, MODEL, (x - np.asarray(fitted["mean"])) / np.asarray(fitted["scale"])))
    assert main(["predict", str(run), str(tmp_path / "rows.npz"), "--proba", "--checkpoint", "best"]) == 0
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    np.testing.assert_allclose(table[[str(k) for k in range(10)]].to_numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_bad_checkpoint_name_on_the_command_line_is_one_error_line(runs, tmp_path, capsys, command):
    np.savez(tmp_path / "rows.npz", x=np.zeros((1, 64)))
    words = [command, str(runs["stopped"])] + ([str(tmp_path / "rows.npz")] if command == "predict" else [])
    assert main([*words, "--checkpoint", "bset"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: run ") and "has no checkpoint 'bset'" in err
    assert "its checkpoints: best, step-" in err and "did you mean 'best'?" in err


def test_rows_of_nan_are_refused_without_a_word_on_their_scale(runs, tmp_path, capsys):
    """A user's all-NaN file got 'these rows look standardised already ... averages nan here, nan standard deviations'
    before its error: rows holding NaN are left out of that check, and the error alone is said."""
    run = trainlab.load_run(runs["cancer"])
    x, _ = _cancer_rows()
    np.savez(tmp_path / "nan.npz", x=np.full((2, x.shape[1]), np.nan))
    capsys.readouterr()
    with pytest.raises(DataError, match="holds nan"):
        run.predict_file(tmp_path / "nan.npz")
    assert "warning" not in capsys.readouterr().err
    once = run.preprocess(x[:50]).numpy()
    once[0, :] = np.nan  # one NaN row among rows standardised already: the others are still warned of, by number
    np.savez(tmp_path / "once.npz", x=once)
    with pytest.raises(DataError, match="holds nan"):
        run.predict_file(tmp_path / "once.npz")
    (line,) = capsys.readouterr().err.splitlines()
    assert "these rows look standardised already" in line and " nan" not in line


def test_a_checkpoint_of_a_run_that_ended_before_any_is_not_told_of_finished_runs(tmp_path):
    """A user's diverged run (no checkpoint, no model) asked for checkpoint='best' was told what a finished run keeps
    with output.checkpoint.keep_after_finish, a setting that run never reached."""
    from trainlab.cli import main
    from trainlab.errors import ConfigError

    config = tmp_path / "div.yaml"
    config.write_text(yaml.safe_dump({
        "name": "div", "data": {"source": "breast_cancer"}, "model": {"name": "mlp", "hidden": [8]},
        "runtime": {"num_threads": 1},
        "strategy": {"loss": "bce", "optimizer": {"name": "sgd", "lr": 1e30}, "batch_size": 32, "epochs": 2}}))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 4
    with pytest.raises(ConfigError) as caught:
        trainlab.load_run(tmp_path / "run", checkpoint="best")
    assert str(caught.value) == (f"run {tmp_path / 'run'} keeps no checkpoints, so there is no checkpoint 'best': it "
                                 "ended before writing one and has no model.safetensors either (a diverged or stopped "
                                 "run); leave the checkpoint out for why")
