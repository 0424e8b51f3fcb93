"""The ``trainlab`` command line's parser: one function per subcommand, and the global flags.

Usage errors are one ``error:`` line and exit status 2 (:class:`_Parser`); a flag must be spelled whole
(no abbreviations: ``--data`` is not ``--data-dir``). Every argument that names a file or folder has
``type=``:func:`path_word`, so that ``~`` is its home folder wherever the shell left it (``--out=~/runs``,
``"~/my runs"``). What each command does is in :mod:`trainlab.cli`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trainlab import __version__
from trainlab.shell_command import home_expanded


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        # no prefix matching: `eval RUN --data new.csv` would read as --data-dir and score the run's own split
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.register("action", None, _Once)  # every flag's default action: one value, refused when repeated

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's own signature
        self._given = list(sys.argv[1:] if args is None else args)  # for error(): a misspelt required flag
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own contract)
        if message.startswith("the following arguments are required"):
            message += self._misspelt()
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")  # a subcommand's: 'trainlab tune --help'

    def _misspelt(self) -> str:
        """``"; '--plto' is none of its options; did you mean '--plot'?"`` where a flag given (argparse reports a
        missing required flag before any it does not know) is close to one of the parser's; else ``""``."""
        known = {option for action in self._actions for option in action.option_strings}
        unknown = [word for word in getattr(self, "_given", []) if word.startswith("--")
                   and word.split("=", 1)[0] not in known]
        for word in unknown:
            if hint := flag_hint(self, [word]):
                return f"; '{word.split('=', 1)[0]}' is none of its options{hint}"
        return ""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """argparse's "invalid choice: 'traon' (choose from ...)", with "; did you mean 'train'?" where one is close."""
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as exc:
            from trainlab.registry import did_you_mean

            hint = did_you_mean(value, [str(c) for c in action.choices or ()]) if isinstance(value, str) else ""
            raise argparse.ArgumentError(action, f"{exc.message}{hint}") from None


def flag_hint(parser: argparse.ArgumentParser, extra: Sequence[str]) -> str:
    """``"; did you mean '--overwrite'?"`` for the first of ``extra`` (arguments ``parser`` did not take)
    that is a ``--flag`` (``--ovewrite``, ``--sett=x``) close to one of the parser's own; ``""`` for none.
    The names are compared without their ``--``, which would make any two flags look alike (``--gpu``:
    ``--out``)."""
    from trainlab.registry import closest_choice

    names = [option[2:] for action in parser._actions for option in action.option_strings if option.startswith("--")]
    for word in (word for word in extra if word.startswith("--")):
        flag = word[2:].split("=", 1)[0]
        if flag.replace("_", "-") in OTHER_TOOLS_FLAGS:  # Optuna's names (n_trials, sampler)
            ours, said = OTHER_TOOLS_FLAGS[flag.replace("_", "-")]
            if ours in names:
                return f"; {said}"
        if (close := closest_choice(flag, names)) is not None:
            return f"; did you mean '--{close}'?"
    return ""


#: the flags a user of Optuna's CLI or optuna.create_study types, and what trainlab's are: (a flag the
#: command has, so the hint is the command's, the words said)
OTHER_TOOLS_FLAGS = {
    "n-trials": ("trials", "the number of trials is --trials"),
    "n-jobs": ("jobs", "the number of parallel workers is --jobs"),
    "sampler": ("pruner", "trainlab tune always samples with Optuna's TPE sampler (--seed seeds it); --pruner "
                          "chooses the pruner"),
    "study-name": ("study", "the study's name is --study"),
}


class _Once(argparse.Action):
    """A flag that takes one value: given twice, argparse would keep the last one and drop the first without a
    word (``--target val_accuracy=0.5 --target val_loss=0.3`` timed val_loss only; ``--out a --out b`` wrote b):
    an error naming both. The flags given are kept apart from the defaults (``--split`` is ``test`` before).
    :class:`_Parser`'s default action, so every flag that stores one value is one of these."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        given = namespace.__dict__.setdefault("_given_once", {})
        if self.dest in given:
            raise argparse.ArgumentError(self, f"given twice ('{given[self.dest]}', then '{values}'): it takes "
                                               "one value")
        given[self.dest] = values
        setattr(namespace, self.dest, values)


def path_word(text: str) -> str:
    """A path argument as given, with a leading ``~`` or ``~user`` expanded (:func:`home_expanded`): the shell
    expands it only at the start of a word, not in ``--out=~/runs`` nor in quotes, and a run folder made as
    ``./~/runs`` is one that ``rm -rf ~`` would not clean up but take the home folder with it. A ``~user``
    of no such user is a usage error (exit 2) naming it."""
    try:
        return home_expanded(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def whole_number(text: str) -> int:
    """An integer argument (``--seeds 5``): argparse's own ``type=int`` says "invalid int value: '3.5'"; this
    says what it takes, the flag's range being checked where the value is used (one place for Python too)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number such as 5; got {text!r}") from None


def real_number(text: str) -> float:
    """A number argument (``--timeout 600``, ``--start-lr 1e-7``), as :func:`whole_number` says its error."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.5 or 1e-3; got {text!r}") from None


QUIET_HELP = "no progress line and no notes (warnings and the final summary still print)"
SET_HELP = "override a config key (~KEY deletes one)"
PLOT_HELP = "image file to write: .png, .pdf or .svg"  # trainlab.plots.FORMATS
# eval/predict --checkpoint: trainlab.run_weights.checkpoint_folder resolves the name (Lightning's ckpt_path)
CHECKPOINT_HELP = ("{verb} the weights of one of the run's checkpoints instead of model.safetensors: best (the best "
                   "evaluation, kept with output.checkpoint.every_n_epochs), last (the newest step-*), or a "
                   "step-NNNNNNNNN folder's name")


# the file -o names when it is not given; cli._parse fills it in and records ``out_given``: a symlink, FIFO or
# device at a default name is refused, not written through (trainlab.atomic.check_output_path)
DEFAULT_OUTPUTS = {"report": "report.html", "plot": "curves.png"}


def build_parser() -> argparse.ArgumentParser:
    """The ``trainlab`` parser: one subparser per command, the global flags before or after it."""
    parser = _Parser(prog="trainlab", description="Choose, run, compare and tune training strategies.")
    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    _global_flags(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add_command in (_train_command, _eval_command, _resume_command, _compare_command, _demo_command,
                        _advise_command, _schedule_command, _lr_find_command, _predict_command,
                        _report_command, _plot_command, _tune_command):  # one function per subcommand
        add_command(commands)
    for subcommand in commands.choices.values():  # the global flags also after the subcommand
        _global_flags(subcommand, default=argparse.SUPPRESS)
    return parser


# train's usage error for both flags (trainlab.cli refuses it before reading anything)
OVERWRITE_WITH_RESUME = ("--overwrite and --resume contradict each other: --overwrite replaces the run in --out "
                         "with a new one, --resume continues it; pass one of them")


def _train_command(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a config into a run folder")
    train.add_argument("config", type=path_word)
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    train.add_argument("--out", type=path_word,
                       help="run folder (default runs/<name>-<UTC time>, -2, -3, ... appended if another run has it)")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder (not with --resume)")
    train.add_argument("--resume", action="store_true",
                       help="continue --out if it holds a run of this config (a finished one is left as it is, "
                            "exit 0; not with --overwrite)")
    train.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    train.add_argument("--target", metavar="val_METRIC=VALUE",
                       help="also print the training time until the validation metric first reached VALUE")


def _eval_command(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser("eval", help="reload a run's model.safetensors (or a checkpoint's weights) and "
                                                "print its metrics")
    evaluate.add_argument("run_dir", type=path_word)
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"],
                          help="split to evaluate on (default test)")
    evaluate.add_argument("--checkpoint", metavar="NAME", help=CHECKPOINT_HELP.format(verb="evaluate"))


def _resume_command(commands: argparse._SubParsersAction) -> None:
    resume = commands.add_parser("resume", help="continue a run from its last checkpoint (a finished run: nothing "
                                                "to do, exit 0)")
    resume.add_argument("run_dir", type=path_word)
    resume.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _compare_command(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="compare strategies over seeds: runs, statistics, leaderboard")
    compare.add_argument("configs", nargs="+", type=path_word, metavar="BASE.yaml", help="one base config per task")
    compare.add_argument("--strategies", required=True, type=path_word, metavar="STRATEGIES.yaml",
                         help="the strategies to compare: name -> config overrides (docs/compare.md)")
    compare.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a key of every base config (before the strategies' overrides)")
    compare.add_argument("--seeds", type=whole_number, default=5, help="seeds 0..N-1 per strategy (default 5)")
    compare.add_argument("--jobs", type=whole_number, default=2, help="runs at once, each on cores/jobs threads (default 2)")
    compare.add_argument("--target", metavar="val_METRIC=VALUE", help="time-to-target, e.g. val_accuracy=0.9")
    compare.add_argument("--metric", default="test_accuracy", help="ranking metric (default test_accuracy)")
    compare.add_argument("--direction", choices=["min", "max", "minimize", "maximize"],
                         help="override the metric's direction")
    compare.add_argument("--out", type=path_word,
                         help="comparison folder (default runs/compare-<strategies file name>)")
    compare.add_argument("--quiet", action="store_true",
                         help="no line per run and no live panel (warnings, the notes of runs skipped, resumed or "
                              "trained again, and the final leaderboard still print)")


def _demo_command(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="compare seven optimizers x 3 seeds on MNIST-1D (no files needed)")
    demo.add_argument("--epochs", type=whole_number, default=80, help="epochs per run (default 80)")
    demo.add_argument("--seeds", type=whole_number, default=3, help="seeds 0..N-1 per optimizer (default 3)")
    demo.add_argument("--jobs", type=whole_number, default=2, help="runs at once, each on cores/jobs threads (default 2)")
    demo.add_argument("--out", type=path_word, default="runs/demo", help="comparison folder (default runs/demo)")


def _advise_command(commands: argparse._SubParsersAction) -> None:
    advise = commands.add_parser("advise", help="recommend a loss and metrics for a config's data")
    advise.add_argument("config", type=path_word)
    advise.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)


def _schedule_command(commands: argparse._SubParsersAction) -> None:
    schedule = commands.add_parser("schedule", help="plot a config's learning-rate schedule")
    schedule.add_argument("config", type=path_word)
    schedule.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    schedule.add_argument("--plot", required=True, type=path_word, help=PLOT_HELP)


def _lr_find_command(commands: argparse._SubParsersAction) -> None:
    lr_find = commands.add_parser("lr-find", help="LR range test: plot loss vs LR and suggest an LR")
    lr_find.add_argument("config", type=path_word)
    lr_find.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    lr_find.add_argument("--plot", type=path_word, help=PLOT_HELP)
    lr_find.add_argument("--start-lr", type=real_number, default=1e-7, help="first LR of the sweep (default 1e-7)")
    lr_find.add_argument("--end-lr", type=real_number, default=10.0, help="last LR of the sweep (default 10)")
    lr_find.add_argument("--steps", type=whole_number, default=100,
                         help="steps of the sweep (default 100, at least 30: its first tenth is a warm-up of at "
                              "least the 3 steps the noise test compares the descent against)")


def _predict_command(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="predict new rows (CSV, npz, image folder, text) with a finished run")
    predict.add_argument("run_dir", type=path_word, metavar="RUN_DIR")
    predict.add_argument("input", type=path_word, metavar="INPUT", help="new rows in the run's format: CSV, npz (array x), a folder "
                                                         "of images, a text TSV/CSV (docs/predict.md)")
    predict.add_argument("-o", "--out", type=path_word, help="CSV file to write (default: print to stdout)")
    predict.add_argument("--proba", action="store_true", help="add one probability column per class")
    predict.add_argument("--checkpoint", metavar="NAME", help=CHECKPOINT_HELP.format(verb="predict with"))
    predict.add_argument("--threshold", type=real_number, metavar="P",
                         help="binary and multi-label runs: predict class 1 (a label) where its probability is >= P "
                              "(default: > 0.5)")


def _report_command(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="self-contained HTML report of a comparison or of run folders")
    report.add_argument("paths", nargs="+", type=path_word, metavar="DIR_OR_RUN", help="a 'trainlab compare' folder, or run folders")
    report.add_argument("-o", "--out", type=path_word, help=f"HTML file to write (default {DEFAULT_OUTPUTS['report']})")


def _plot_command(commands: argparse._SubParsersAction) -> None:
    plot = commands.add_parser("plot", help="plot learning curves of run folders to an image")
    plot.add_argument("run_dirs", nargs="+", type=path_word, metavar="RUN_DIR")
    plot.add_argument("--metric", default="val_loss", help="record key to plot by epoch (default val_loss)")
    plot.add_argument("-o", "--out", type=path_word, help=f"PNG, PDF or SVG file (default {DEFAULT_OUTPUTS['plot']})")


def _tune_command(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser("tune", help="search config keys with Optuna (docs/tune.md)")
    tune.add_argument("config", type=path_word, help="base config (BASE.yaml)")
    tune.add_argument("--space", required=True, type=path_word, help="SPACE.yaml: config key -> range or choices")
    tune.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="override a key of the base config (every trial, the refit and best.yaml)")
    tune.add_argument("--trials", type=whole_number, required=True, help="the study's total over all workers and restarts")
    tune.add_argument("--metric", default="val_accuracy", help="validation metric to optimise (default val_accuracy)")
    tune.add_argument("--direction", choices=["maximize", "minimize", "max", "min"],
                      help="default: minimize for losses and errors, else maximize")
    tune.add_argument("--jobs", type=whole_number, default=1, help="worker processes on this machine (default 1)")
    tune.add_argument("--storage", help="Optuna RDB URL, e.g. postgresql://user:pw@host/db (default: "
                                        "a file journal in --out)")
    tune.add_argument("--study", help="study name (default trainlab-<config file stem>)")
    tune.add_argument("--pruner", default="median", help="median, hyperband, wilcoxon or none (default median)")
    tune.add_argument("--timeout", type=real_number, help="start no trial after this many seconds")
    tune.add_argument("--seed", type=whole_number, default=0, help="sampler seed (default 0)")
    tune.add_argument("--out", type=path_word, help="study folder (default tunes/<config file stem>)")
    tune.add_argument("--refit-seeds", type=whole_number, default=0, metavar="K",
                      help="rerun best.yaml and the base config with K seeds through 'trainlab compare'")
    tune.add_argument("--quiet", action="store_true", help=QUIET_HELP)


def _global_flags(parser: argparse.ArgumentParser, default: object = None) -> None:
    """--debug, --data-dir, --allow-code. On a subcommand their default is SUPPRESS, so that a flag
    given before the subcommand is not reset by the subcommand's parser."""
    flag_default = False if default is None else default
    parser.add_argument("--debug", action="store_true", default=flag_default, help="show tracebacks")
    parser.add_argument("--data-dir", type=path_word, default=default, help="root for relative data paths (or TRAINLAB_DATA_DIR)")
    parser.add_argument("--allow-code", action="store_true", default=flag_default,
                        help="let module:attr references import any module, e.g. from a run folder you were sent "
                             "(or TRAINLAB_ALLOW_CODE=1)")
