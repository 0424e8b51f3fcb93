"""The command line end to end: eval, schedule plot, lr-find, advise, loss auto, version."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from tests.conftest import DIGITS_MLP, LINREG
from trainlab import __version__
from trainlab.cli import main
from trainlab.config import load_config


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and __version__ in capsys.readouterr().out


def test_eval_reprints_the_summary_metrics(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP)
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(out), "--split", "val"]) == 0
    printed = capsys.readouterr().out
    assert f"{summary['val']['accuracy']:.6g}" in printed


def test_per_class_metrics_are_printed_against_the_class_names(write_config, tmp_path, capsys):
    config = write_config({**DIGITS_MLP, "data": {"source": "iris"}, "metrics": ["accuracy", "recall_per_class"]})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    names = json.loads((out / "labels.json").read_text())["class_names"]
    recalls = json.loads((out / "summary.json").read_text())["test"]["recall_per_class"]
    assert len(names) == 3 and len(recalls) == 3
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "recall_per_class" in x)
    shown = json.loads(line.split("recall_per_class", 1)[1])
    assert list(shown) == names  # each value named by its class, in the model's class order
    assert list(shown.values()) == pytest.approx(recalls, rel=1e-5)


def test_train_target_prints_the_time_the_validation_metric_first_reached_it(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP, strategy__epochs=4)
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet", "--target", "val_accuracy=0.5"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in records if r.get("val_accuracy", 0) >= 0.5)  # the reference: read by hand
    assert line == f"time to val_accuracy >= 0.5: {first['elapsed_s']:.2f} s of training (step {first['step']})"
    assert main(["train", str(config), "--out", str(tmp_path / "b"), "--quiet", "--target", "val_loss=1e-9"]) == 0
    best = min(r["val_loss"] for r in records if "val_loss" in r)
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("val_loss <= 1e-09 was not reached (best ")
    assert best > 1e-9


@pytest.mark.slow
def test_a_reader_gone_before_the_output_is_sigpipes_code_and_no_error_line(write_config, tmp_path, capsys):
    """`trainlab eval RUN | head -0`: the pipe breaks on our first print. Exit 141 (128 + SIGPIPE) like
    any Unix filter, not the disk-full message with exit 1."""
    import subprocess
    import sys

    out = tmp_path / "run"
    assert main(["train", str(write_config(DIGITS_MLP, strategy__epochs=1)), "--out", str(out), "--quiet"]) == 0
    process = subprocess.Popen([sys.executable, "-m", "trainlab", "eval", str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait() == 141 and err == ""


def test_the_progress_line_counts_the_epochs_max_steps_leaves(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP, strategy__epochs=43, strategy__max_steps=40,
                          output={"progress": "auto", "log_every_seconds": 1e-9})
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0  # 36 steps per epoch: 2 epochs
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("progress:")]
    assert lines and all(re.match(r"progress: epoch [12]/2  step \d+/40", line) for line in lines), lines


def test_train_target_that_is_not_a_validation_metric_is_one_line(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP)
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--target", "accuracy=0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target expects val_<metric>=<number>") and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
    # a metric the run does not record is refused before training too, with a did-you-mean
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--target", "val_acc=0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target 'val_acc' is not recorded by this run; did you mean 'val_accuracy'?")
    assert err.count("\n") == 1 and not (tmp_path / "r").exists()
    # a built-in metric the config does not list: add it (a did-you-mean offered 'val_recall')
    assert main(["train", str(config), "--out", str(tmp_path / "r"), "--target", "val_roc_auc=0.9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --target 'val_roc_auc' is not recorded by this run; add 'roc_auc' to the "
                          "run's metrics (metrics: [...] in a config, metrics=[...] in fit) to record it (its "
                          "validation metrics: ")
    regression = write_config(DIGITS_MLP, data={"source": "diabetes"}, metrics=None,
                              strategy__loss="mse", model={"name": "linear"})
    assert main(["train", str(regression), "--out", str(tmp_path / "r"), "--target", "val_accuracy=0.9"]) == 2
    assert "(its validation metrics: val_loss, val_mse, val_mae, val_r2)" in capsys.readouterr().err


def test_schedule_plot_draws_the_run_schedule(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP, strategy__schedule={"name": "warmup_cosine", "warmup_fraction": 0.1})
    png = tmp_path / "lr.png"
    assert main(["schedule", str(config), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "108 steps" in capsys.readouterr().out  # 3 epochs x 36 steps
    plateau = write_config(DIGITS_MLP, strategy__schedule={"name": "reduce_on_plateau", "patience": 2})
    assert main(["schedule", str(plateau), "--plot", str(png)]) == 0
    assert "note: reduce_on_plateau lowers the lr when the validation metric stops improving" in \
        capsys.readouterr().err
    # an option a run would refuse is refused here too, in the run's words, before anything is drawn
    png.unlink()
    assert main(["schedule", str(config), "--plot", str(png), "--set", "strategy.optimizer.betaz=[0.9,0.99]"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: optimizer ") and "did you mean 'betas'?" in err and err.count("\n") == 1
    assert not png.exists()


def test_lr_find_prints_a_suggestion_and_plots(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP)
    png = tmp_path / "lrfind.png"
    assert main(["lr-find", str(config), "--plot", str(png)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    suggestion = float(line.split(":")[1])
    assert 1e-5 < suggestion < 1.0 and png.exists()


def test_lr_auto_trains_with_the_suggested_lr(write_config, tmp_path):
    config = write_config(DIGITS_MLP, strategy__optimizer={"name": "adam", "lr": "auto"})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes"]["lr_auto"] > 0 and summary["test"]["accuracy"] > 0.8


@pytest.mark.parametrize("source,expected", [("diabetes", "mse"), ("breast_cancer", "bce"),
                                             ("digits", "cross_entropy")])
def test_advise_names_the_loss_family(write_config, capsys, source, expected):
    config = write_config(DIGITS_MLP, data={"source": source})
    assert main(["advise", str(config)]) == 0
    out = capsys.readouterr().out
    assert expected in out and out.splitlines()[0].endswith("(from the data)")
    task = {"mse": "regression", "bce": "binary", "cross_entropy": "multiclass"}[expected]
    assert main(["advise", str(config), "--set", f"data.task={task}"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"task:    {task} (set by data.task)"


@pytest.mark.parametrize("overrides, message", [
    (["--set", "strategy.optimizr.lr=1"], "error: unknown config key 'strategy.optimizr'; did you mean 'optimizer'?"),
    (["--set", "strategy.optimizer.name=adamm"], "error: unknown optimizer 'adamm'; did you mean 'adam'?"),
    (["--set", "metrcs=[accuracy]"], "error: unknown config key 'metrcs'; did you mean 'metrics'?"),
])
def test_advise_refuses_a_runs_config_as_train_would_before_reading_its_data(write_config, capsys, overrides,
                                                                             message):
    """User trials: advise checked data and seed only, so it advised on a config train then refused; a config of
    a data section alone (and a run's without its length yet) is still advised on."""
    config = write_config(DIGITS_MLP)
    assert main(["advise", str(config), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    data_only = config.parent / "data_only.yaml"
    data_only.write_text("data: {source: iris}\n")
    assert main(["advise", str(data_only)]) == 0
    assert main(["advise", str(data_only), "--set", "metrcs=[accuracy]"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown config key 'metrcs'; did you mean 'metrics'?")
    no_length = {**DIGITS_MLP, "strategy": {k: v for k, v in DIGITS_MLP["strategy"].items()
                                            if k not in ("epochs", "max_steps")}}
    assert main(["advise", str(write_config(no_length))]) == 0


def test_advises_data_only_schema_allows_every_config_section_and_nothing_else():
    from trainlab.config import Config, DataAndSeed

    assert set(DataAndSeed.model_fields) == set(Config.model_fields)
    assert DataAndSeed.model_config["extra"] == "forbid"


def test_loss_auto_records_the_choice_and_why(write_config, tmp_path):
    config = write_config(LINREG, strategy__loss="auto", strategy__epochs=50)
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    advice = summary["notes"]["loss_advice"]
    assert advice["loss"]["name"] in {"mse", "huber"} and advice["reasons"]
    assert summary["loss"] == advice["loss"]["name"]
    stored = yaml.safe_load((out / "config.yaml").read_text())["strategy"]["loss"]  # the resolved config
    assert (stored if isinstance(stored, dict) else {"name": stored}) == advice["loss"]
    requested = json.loads((out / "run.json").read_text())["config_hash"]
    assert requested == load_config(config).hash()  # compare still finds the run by the config asked for
    assert main(["eval", str(out)]) == 0


@pytest.mark.parametrize("optimizer,lr", [("schedule_free_adamw", 0.003), ("prodigy", None), ("muon", 0.01),
                                          ("lion", 1e-3)])
def test_project_optimizers_train_end_to_end_and_eval_reloads_the_reported_weights(
        write_config, tmp_path, capsys, optimizer, lr):
    config = write_config(DIGITS_MLP, strategy__optimizer={"name": optimizer, "lr": lr})
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test"]["accuracy"] > 0.7
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert f"{summary['test']['accuracy']:.6g}" in capsys.readouterr().out


def test_an_optimizer_without_default_lr_asks_for_one(write_config, tmp_path, capsys):
    config = write_config(DIGITS_MLP, strategy__optimizer={"name": "lion"})
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "has no default learning rate" in capsys.readouterr().err



def test_adam_without_lr_takes_torchs_default(write_config, tmp_path):
    config = write_config(DIGITS_MLP, strategy__optimizer={"name": "adam"}, strategy__epochs=1,
                          strategy__schedule="constant")
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["lr"] == 1e-3  # torch.optim.Adam's and Keras's default


def test_focal_trains_a_binary_task_on_one_logit_as_the_advisor_proposes(write_config, tmp_path):
    config = write_config(DIGITS_MLP, data={"source": "breast_cancer"}, strategy__loss={"name": "focal", "alpha": 0.25},
                          strategy__epochs=2, metrics=["accuracy", "f1"])
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert json.loads((tmp_path / "run" / "model.json").read_text())["output_dim"] == 1


@pytest.mark.parametrize("number, said", [(28, "cannot write (/x/run.json): No space left on device; finished"),
                                          (5, "cannot read or write (/x/run.json): Input/output error")])
def test_an_os_error_is_called_a_write_only_when_only_a_write_meets_it(monkeypatch, capsys, number, said):
    import errno
    import os

    import trainlab.cli

    assert number in (errno.ENOSPC, errno.EIO)

    def failing(args):
        raise OSError(number, os.strerror(number), "/x/run.json")

    monkeypatch.setitem(trainlab.cli.COMMANDS, "resume", failing)
    assert main(["resume", "/x"]) == 5
    err = capsys.readouterr().err
    assert err.startswith(f"error: {said}") and err.count("\n") == 1, err


def test_a_name_too_long_for_the_file_system_is_the_paths_fault_exit_2_naming_the_limit(write_config, tmp_path,
                                                                                         capsys):
    """--out of a 300-byte name went out as a disk failure (exit 5) printing the whole name."""
    config = write_config(LINREG)
    assert main(["train", str(config), "--quiet", "--out", str(tmp_path / ("x" * 300))]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: a name in the path is too long: '{'x' * 20}...{'x' * 12}' has 300 bytes, and a file or folder "
        "name holds at most 255; give a shorter path")


def test_name_too_long_names_the_limit_that_was_passed_wherever_the_error_names_the_path(tmp_path):
    import errno

    from trainlab.errors import name_too_long

    long_name = str(tmp_path / ("y" * 260))
    renamed = OSError(errno.ENAMETOOLONG, "File name too long", "short", None, long_name)  # rename's filename2
    assert "'yyyyyyyyyyyyyyyyyyyy...yyyyyyyyyyyy' has 260 bytes" in name_too_long(renamed)
    deep = str(tmp_path / "/".join(["z" * 200] * 25))  # every name fits; the whole path does not
    said = name_too_long(OSError(errno.ENAMETOOLONG, "File name too long", deep))
    assert f"is too long: {len(deep)} bytes, and a path holds at most 4095" in said
    assert name_too_long(OSError(errno.ENAMETOOLONG, "File name too long")).startswith(
        "a path is too long: a file or folder name holds at most 255 bytes and a whole path 4095")


def test_a_file_name_that_fits_is_written_though_its_temporary_would_not(tmp_path):
    """A 249-byte name fits 255, but its temporary '.<name>.XXXXXXXX.tmp' did not: 'File name too long'."""
    from trainlab.atomic import write_bytes

    path = tmp_path / ("p" * 245 + ".csv")
    write_bytes(path, b"x")
    assert path.read_bytes() == b"x" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_reader_that_leaves_after_the_first_line_is_sigpipes_code(write_config, tmp_path):
    """`trainlab predict RUN big.csv | head -1`: the reader leaves mid-output. The rest of the output used to be
    dropped without an error (one short write, exit 0); the next write must fail and exit 141."""
    import subprocess
    import sys

    out = tmp_path / "run"
    assert main(["train", str(write_config(DIGITS_MLP, strategy__epochs=1)), "--out", str(out), "--quiet"]) == 0
    from sklearn.datasets import load_digits

    # ~5 MB of predictions: many pipe buffers; digits' own rows (random ones vary the pixels training never saw
    # vary: a warning on stderr)
    rows = np.tile(load_digits().data, (23, 1))[:40_000]
    features = tmp_path / "big.npz"  # a run on a built-in source predicts from an .npz holding x
    np.savez(features, x=rows.astype(np.float32))
    process = subprocess.Popen([sys.executable, "-m", "trainlab", "predict", str(out), str(features), "--proba"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout.readline()  # the header: then the reader goes away while the rest is still being written
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait() == 141 and err == ""


def test_a_summary_records_the_rows_of_each_split(tmp_path):
    from tests.conftest import DIGITS_MLP
    from trainlab.config import validate
    from trainlab.data import load_dataset
    from trainlab.experiment import train

    config = validate({**DIGITS_MLP, "strategy": {**DIGITS_MLP["strategy"], "epochs": 1}})
    summary, _ = train(config, out=tmp_path / "run", quiet=True)
    data = load_dataset(config.data)
    assert summary["rows"] == {"train": len(data.train), "val": len(data.val), "test": len(data.test)}
    assert sum(summary["rows"].values()) == 1797  # scikit-learn's digits


@pytest.mark.parametrize("change, said", [
    ("strategy.optimizer.name=adamm", "error: unknown optimizer 'adamm'; did you mean 'adam'?"),
    ("model.hiden=[4]", "error: model 'mlp' has no option 'hiden'; did you mean 'hidden'?"),
    ("strategy.schedule.name=cosin", "error: unknown schedule 'cosin'; did you mean 'cosine'?"),
])
def test_train_says_a_config_mistake_before_the_data_read_refuses_the_rows(tmp_path, capsys, change, said):
    """A misspelt optimizer, model option or schedule was said only after the data read passed: a CSV with a
    missing cell said that first (exit 3), and the config's own mistake only once it was fixed."""
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,y\n" + "".join(f"{i},{'' if i == 3 else i % 5},{i % 2}\n" for i in range(40)))
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "c", "data": {"source": "csv", "path": str(rows), "target": "y"},
        "model": {"name": "mlp", "hidden": [4]},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 8,
                     "epochs": 1}}))
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 3  # the data's refusal, config fine
    assert "missing" in capsys.readouterr().err
    assert main(["train", str(config), "--set", change, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith(said)
    assert not (tmp_path / "run").exists()


def test_train_builds_a_users_loss_once_while_checking_it_before_the_data(tmp_path, capsys):
    """The check before the data built a `module:attr` loss, and the run built it again: a constructor with side
    effects (a pretrained network loaded, a file opened) ran twice. A misspelt one is still said before the data."""
    (tmp_path / "counted_loss.py").write_text(
        "import torch\nfrom trainlab.losses.base import Loss\n\nBUILT = []\n\n\nclass Counted(Loss):\n"
        "    target_kind = 'class_index'\n\n    def __init__(self):\n        super().__init__()\n"
        "        BUILT.append(1)\n\n    def forward(self, pred, target, weight=None):\n"
        "        return torch.nn.functional.cross_entropy(pred, target)\n")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "c", "data": {"source": "iris"}, "model": {"name": "linear"}, "output": {"progress": "off"},
        "strategy": {"loss": "counted_loss:Counted", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                     "epochs": 1}}))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    import sys

    built = [module for name, module in sys.modules.items() if name.startswith("counted_loss")]
    assert [len(module.BUILT) for module in built] == [1]
    capsys.readouterr()
    assert main(["train", str(config), "--set", "strategy.loss=counted_loss:Countd", "--set",
                 "data.source=csv", "--set", f"data.path={tmp_path / 'absent.csv'}", "--set", "data.target=y",
                 "--out", str(tmp_path / "run2")]) == 2  # the loss's name before the data file's absence
    assert "Countd" in capsys.readouterr().err


def test_schedule_and_train_refuse_a_finetune_section_no_run_can_start_alike(tmp_path, capsys):
    """`trainlab schedule` drew the plan of unfreeze_after_epochs without freeze (exit 0), which train refuses."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "c", "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
        "output": {"progress": "off"},
        "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                     "epochs": 2, "finetune": {"freeze": False, "unfreeze_after_epochs": 1}}}))
    said = "error: strategy.finetune.unfreeze_after_epochs=1 needs freeze: true\n"
    assert main(["schedule", str(config), "--plot", str(tmp_path / "s.png")]) == 2
    assert capsys.readouterr().err == said and not (tmp_path / "s.png").exists()
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == said


def test_lr_find_says_its_suggestion_is_the_frozen_phase_heads_lr_under_unfreezing():
    """lr-find on freeze -> unfreeze with layer-wise decay printed 'suggested lr: 0.0215' alone: the head's lr
    while frozen, 100-300x a usual backbone fine-tuning lr, which the layers then trained at (x decay^k)."""
    from trainlab.config import validate
    from trainlab.lr_find_run import suggestion_line

    raw = {"name": "f", "data": {"source": "iris"}, "model": {"name": "mlp", "hidden": [4]},
           "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adamw", "lr": 1e-3}, "batch_size": 16,
                        "epochs": 3, "finetune": {"freeze": True, "unfreeze_after_epochs": 1,
                                                  "layerwise_lr_decay": 0.5}}}
    assert suggestion_line(validate(raw), 0.0215) == (
        "suggested lr: 0.0215 (the head's lr while the backbone is frozen, which the sweep measured; after "
        "unfreeze_after_epochs=1, the layer below the head then trains at 0.0107, each lower one x0.5 more "
        "(layerwise_lr_decay): a backbone usually fine-tunes at a smaller lr than a new head)")
    raw["strategy"]["epochs"] = 1  # the backbone never unfreezes: nothing said of an unfrozen phase
    assert suggestion_line(validate(raw), 0.0215) == ("suggested lr: 0.0215 (the head's lr: the backbone stays "
                                                      "frozen through the run's strategy.epochs=1)")
    del raw["strategy"]["finetune"]
    assert suggestion_line(validate(raw), 0.0215) == "suggested lr: 0.0215"
