"""Run the worked examples in examples/ and print the figure each reaches here.

Each example is trained exactly as ``trainlab train examples/<name>.yaml`` would train it
(through :func:`trainlab.experiment.train`), into ``--out/<name>``; the table lists the
test figure the README quotes, the training time and the steps. Quick examples take seconds;
``mnist_mlp_adam`` takes minutes; the CIFAR-10 and SST-2 ones take 10-35 minutes each on a
2-core CPU and need their data (see examples/README.md: CIFAR-10 must be extracted first).

    python benchmarks/examples.py --quick
    python benchmarks/examples.py --data-dir ../shared/datasets mnist_mlp_adam
    python benchmarks/examples.py --data-dir ../shared/datasets --set strategy.epochs=1 cifar10_cnn_sgd
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# name -> the summary metric the README quotes (test split)
QUICK = {
    "linear_regression_gd": "mse",
    "linear_regression_sgd": "mse",
    "breast_cancer_bce": "accuracy",
    "breast_cancer_bce_logits": "accuracy",
    "mnist1d_logreg": "accuracy",
    "mnist1d_mlp": "accuracy",
    "mnist1d_cnn": "accuracy",
    "robust_regression_mse": "mae",
    "robust_regression_huber": "mae",
    "imbalanced_bce": "f1",
    "imbalanced_bce_pos_weight": "f1",
}
SLOW = {
    "mnist_mlp_adam": "accuracy",
    "sst2_minilm_frozen": "accuracy",
    "cifar10_cnn_sgd": "accuracy",
    "sst2_minilm_lora": "accuracy",
    "sst2_minilm_finetune": "accuracy",
    "cifar10_resnet": "accuracy",
}


def run_example(name: str, out: Path, overrides: list[str]) -> dict:
    """Train examples/<name>.yaml into ``out/<name>``; returns the run summary."""
    from trainlab.config import load_config
    from trainlab.experiment import train

    config = load_config(EXAMPLES / f"{name}.yaml", [*overrides, "output.progress=off"])
    summary, _ = train(config, out=out / name, overwrite=True, quiet=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"examples to run (default: --quick or all); "
                                                 f"choices: {', '.join([*QUICK, *SLOW])}")
    parser.add_argument("--quick", action="store_true", help="run the examples that take seconds")
    parser.add_argument("--data-dir", help="root of relative data paths (../shared/datasets here)")
    parser.add_argument("--out", help="folder for the run folders (default: a temporary one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every example run (e.g. strategy.epochs=1)")
    args = parser.parse_args()
    metric_of = {**QUICK, **SLOW}
    unknown = [n for n in args.names if n not in metric_of]
    if unknown:
        parser.error(f"unknown example '{unknown[0]}' (valid: {', '.join(metric_of)})")
    names = args.names or (list(QUICK) if args.quick else list(metric_of))
    if args.data_dir:
        os.environ["TRAINLAB_DATA_DIR"] = str(Path(args.data_dir).resolve())

    from trainlab.runtime import environment

    print(f"environment: {environment()}")
    print(f"{'example':<28} {'test metric':<16} {'value':>8} {'train s':>9} {'steps':>7} {'epochs':>6}")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        for name in names:
            summary = run_example(name, out, args.set)
            metric = metric_of[name]
            print(f"{name:<28} {'test ' + metric:<16} {summary['test'][metric]:>8.4f} "
                  f"{summary['train_time_s']:>9.1f} {summary['steps']:>7} {summary['epochs_run']:>6}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
