"""The ``trainlab`` command line: thin shims over importable functions.

Exit codes: 0 success, 2 usage or config error, 3 data error, 4 training failed,
5 the machine's: a file could not be read or written, or memory ran out, 130/143 interrupted (SIGINT/SIGTERM,
after a checkpoint).
Errors print one line starting ``error:``; ``--debug`` shows the traceback instead, with the same
exit code. A SIGINT/SIGTERM that arrives once the command's result is written (a run's run.json says
finished, or the command returned) changes nothing: one ``warning: ... received while finishing``
line, exit 0 (:func:`trainlab.sigterm.command_signals`). The parser is in :mod:`trainlab.cli_parser`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from trainlab.cli_parser import DEFAULT_OUTPUTS, OVERWRITE_WITH_RESUME, build_parser, flag_hint
from trainlab.errors import (
    DISK_FULL_OR_READ_ONLY,
    EXIT_BROKEN_PIPE,
    EXIT_SYSTEM,
    ConfigError,
    TrainingError,
    TrainlabError,
    cannot,
    name_too_long,
)
from trainlab.exception_origin import raised_at
from trainlab.out_of_memory import out_of_memory_line
from trainlab.run_result_lines import evaluated_as, print_metrics, print_run_result, recorded_evaluation
from trainlab.shell_command import command_line
from trainlab.sigterm import command_signals

# = trainlab.data.paths.DATA_DIR_ENV, not imported from there: trainlab.data loads torch (trainlab --version does not)
DATA_DIR_ENV = "TRAINLAB_DATA_DIR"


def _cmd_train(args) -> int:
    from trainlab.config import load_config
    from trainlab.experiment import train

    config = load_config(args.config, args.set)
    target = None
    if args.target is not None:  # --target '' is refused by parse_target, not taken for no target
        from trainlab.compare.metric_keys import parse_target
        from trainlab.records import check_validation_key

        # a bad --target fails before training: its form, its range (a loss that is never negative included) ...
        target = parse_target(args.target, loss=config.strategy.loss.name)
        check_validation_key(config, target["metric"], "--target", "this run")  # ... and its metric
    summary, path = train(config, out=args.out, overwrite=args.overwrite, quiet=args.quiet,
                          resume_if_exists=args.resume)
    print_run_result(summary, path)
    if target is not None:
        from trainlab.compare.run_record import time_to_target_line

        print(time_to_target_line(path, target))
    return 0


def _cmd_resume(args) -> int:
    from trainlab.run_resume import resume

    summary, path = resume(args.run_dir, quiet=args.quiet)
    print_run_result(summary, path)
    return 0


def _check_data_dir(args) -> None:
    """Refuse a ``--data-dir`` that is not a folder, for eval and predict, which read a run's data from the
    absolute paths of its config.yaml (eval) or one input file (predict): there it would change nothing, or
    send the input to the working directory, and the user meant something else (``--data-dir new.csv`` to
    score new rows). Train and the others say so where a data path is not found in it (data/paths.py)."""
    from trainlab.code_policy import run_command_words

    folder = getattr(args, "data_dir", None)
    if folder is None or Path(folder).expanduser().is_dir():
        return
    what = "is not a folder" if Path(folder).expanduser().exists() else "does not exist"
    use = (f"; eval scores the run's own splits (the data paths in its config.yaml); to score other rows, "
           f"run {command_line(*run_command_words('predict', args.run_dir, 'FILE'))}" if args.command == "eval" else "")
    raise ConfigError(f"--data-dir {folder} {what}: it names the folder relative data paths are looked for in; "
                      f"give an existing folder or leave it out{use}")


def _cmd_eval(args) -> int:
    """Print the run's metrics on ``--split``; those not finite as null, as train prints them (summary.json
    holds null), then one warning saying which and why (:func:`~trainlab.run_summary.eval_non_finite_warning`)."""
    from trainlab.records import json_safe, read_record_object
    from trainlab.run_evaluation import evaluate_run
    from trainlab.run_records import recorded_class_names
    from trainlab.run_summary import eval_non_finite_warning

    _check_data_dir(args)
    found: list[str] = []
    metrics = json_safe(evaluate_run(args.run_dir, args.split, args.checkpoint), "", found)
    summary = read_record_object(Path(args.run_dir) / "summary.json")
    weights = f" (checkpoint {args.checkpoint})" if args.checkpoint is not None else ""
    chosen = f", checkpoint={args.checkpoint!r}" if args.checkpoint is not None else ""
    print_metrics(f"{args.split}{weights}{evaluated_as(recorded_evaluation(summary))}:", metrics,
                   recorded_class_names(Path(args.run_dir)), held_in="not printed: in Python, "
                   f"trainlab.run_evaluation.evaluate_run({str(args.run_dir)!r}, {args.split!r}{chosen}) returns it")
    warning = eval_non_finite_warning(args.split, found, summary)
    if warning:  # after the numbers it qualifies; exit 0, as train's run that went non-finite
        from trainlab.notices import warn

        warn(warning)
    return 0


def _cmd_compare(args) -> int:
    from trainlab.compare import compare_files

    compare_files(args.configs, args.strategies, out=args.out, overrides=args.set, seeds=args.seeds, jobs=args.jobs,
                  target=args.target, metric=args.metric,
                  direction=args.direction, quiet=args.quiet, show_leaderboard=True)
    return 0


def _cmd_demo(args) -> int:
    from trainlab.demo import run_demo

    run_demo(epochs=args.epochs, seeds=args.seeds, jobs=args.jobs, out=args.out)
    return 0


def _cmd_advise(args) -> int:
    from trainlab.advisor import advise, format_advice
    from trainlab.config import load_config, read_yaml, validate_data_and_seed
    from trainlab.config_overrides import apply_overrides
    from trainlab.data import load_dataset
    from trainlab.preflight import check_components

    raw = apply_overrides(read_yaml(args.config), args.set)
    if "data" not in raw:
        raise ConfigError(f"{args.config} has no 'data' section")
    if "model" in raw and "strategy" in raw:  # a run's config: refused as train refuses it before its data
        strategy = raw["strategy"]
        # the run's length, which advise does not use, may be left for later: a placeholder where none is given
        unset = isinstance(strategy, dict) and not {"epochs", "max_steps"} & set(strategy)
        section = load_config(args.config, [*args.set, *(["strategy.epochs=1"] if unset else [])])
        check_components(section, before_data=True)
    else:  # a data section alone: seed and data as a run validates them (the error names the key)
        section = validate_data_and_seed(raw, args.set)
    data_config = section.data
    data = load_dataset(data_config, section.seed)
    advice = advise(data.train.y.numpy(), data.task, data.extras, x=data.train.x.numpy(), class_names=data.class_names,
                    num_classes=data.num_classes)
    print(format_advice(advice, "set by data.task" if data_config.task else "from the data"))
    return 0


def _cmd_schedule(args) -> int:
    from trainlab.builders import run_scope
    from trainlab.config import load_config
    from trainlab.data.counting import count_splits
    from trainlab.notices import note
    from trainlab.plots import check_plot_path, plot_schedule
    from trainlab.preflight import check_components
    from trainlab.schedule_plan import plan_schedule

    check_plot_path(args.plot)
    config = load_config(args.config, args.set)
    check_components(config)  # the loss, optimizer and schedule a run would build, refused as a run refuses them
    with run_scope(config):  # counting data rows only: no model, no decoding (trainlab.data.counting)
        plan = plan_schedule(config, count_splits(config.data).train)
    title = f"{config.name}: {config.strategy.schedule.name}"
    if config.strategy.schedule.name == "reduce_on_plateau":
        note("note: reduce_on_plateau lowers the lr when the validation metric stops improving, which only "
             "training shows; the plot is the lr before any reduction")
    if config.strategy.time_budget_s is not None:
        note(f"note: strategy.time_budget_s={config.strategy.time_budget_s:g}: the run times its step and squeezes "
             "this schedule onto the steps that fit; the plot is its longest form (epochs/max_steps)")
    if plan.base_lr is None:
        note("note: lr: auto is found by the LR range test at train time; the plot shows the schedule's "
             f"multiplier of that lr (run {command_line('trainlab', 'lr-find', args.config)} for the value)")
        title += " (lr: auto, lr = 1 x the lr found)"
    path = plot_schedule(plan.schedule, plan.total_steps, plan.base_lr or 1.0, args.plot,
                         steps_per_epoch=plan.steps_per_epoch, title=title, group_lrs=plan.group_lrs,
                         horizons=plan.horizons)
    horizons = plan.horizons or {}
    groups = ", ".join(f"{name} lr {lr:g}" + (f" for its first {horizons[name][0]} steps" if name in horizons else "")
                       for name, lr in (plan.group_lrs or {}).items())
    print(f"wrote {path} ({plan.total_steps} steps" + (f"; groups: {groups})" if groups else ")"))
    return 0


def _cmd_lr_find(args) -> int:
    import math

    from trainlab.config import load_config
    from trainlab.lr_find_run import lr_find_config, suggestion_line
    from trainlab.lr_finder import MAX_LR_FIND_STEPS, MIN_SWEEP_STEPS

    if not (0 < args.start_lr < args.end_lr and math.isfinite(args.end_lr)):
        raise ConfigError(f"lr-find needs 0 < --start-lr < --end-lr (finite); got --start-lr {args.start_lr:g} "
                          f"and --end-lr {args.end_lr:g}")
    if not MIN_SWEEP_STEPS <= args.steps <= MAX_LR_FIND_STEPS:
        why = (" (a shorter sweep skips fewer than the 3 warm-up steps its noise test needs)"
               if args.steps < MIN_SWEEP_STEPS else "")
        raise ConfigError(f"--steps must be in [{MIN_SWEEP_STEPS}, {MAX_LR_FIND_STEPS}]; got {args.steps}{why}")
    if args.plot:
        from trainlab.plots import check_plot_path

        check_plot_path(args.plot)
    config = load_config(args.config, args.set)
    suggestion, _, _ = lr_find_config(config, plot=args.plot, start_lr=args.start_lr, end_lr=args.end_lr,
                                      num_steps=args.steps)
    print(suggestion_line(config, suggestion))  # with optimizer groups, each group's lr at it too
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def _cmd_predict(args) -> int:
    from trainlab.predict_command import predict_command

    _check_data_dir(args)
    text = predict_command(args.run_dir, args.input, out=args.out, proba=args.proba, checkpoint=args.checkpoint,
                           threshold=args.threshold)
    if text is None:
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        write_all_to_stdout(text)
    return 0


def write_all_to_stdout(text: str) -> None:
    """Write ``text`` to standard output whole, or raise BrokenPipeError when its reader leaves.

    ``sys.stdout.write`` of megabytes hands the pipe one write; when the reader goes away mid-way (`| head`) the
    kernel returns a short count and Python drops the rest without an error, so the command exited 0 with part
    of its output unwritten. ``os.write`` in a loop sees the short count, writes on, and the next write fails
    with EPIPE: exit 141, as any Unix filter. Standard output without a file descriptor (captured) is written
    as it is."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both an OSError and a ValueError
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    view = memoryview(text.encode(sys.stdout.encoding or "utf-8", errors="replace"))
    while view:
        view = view[os.write(fd, view):]


def _cmd_report(args) -> int:
    from trainlab.report import write_report

    path = write_report(args.paths, args.out, follow_link=args.out_given)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _cmd_plot(args) -> int:
    from trainlab.run_plots import plot_run_folders

    print(f"wrote {plot_run_folders(args.run_dirs, args.metric, args.out, follow_link=args.out_given)}")
    return 0


def _cmd_tune(args) -> int:
    from trainlab.tune import TuneSettings, tune
    from trainlab.tune.results import results_line

    settings = TuneSettings(  # TuneSettings resolves out and direction (both spellings) as Python callers get them
        base=Path(args.config), space=Path(args.space), trials=args.trials, out=args.out,
        metric=args.metric, direction=args.direction, jobs=args.jobs,
        storage=args.storage, study_name=args.study, pruner=args.pruner, timeout_s=args.timeout, seed=args.seed,
        refit_seeds=args.refit_seeds, quiet=args.quiet, overrides=tuple(args.set))
    tune(settings)
    print(results_line(settings.out))
    return 0


COMMANDS = {"train": _cmd_train, "resume": _cmd_resume, "eval": _cmd_eval, "compare": _cmd_compare,
            "demo": _cmd_demo, "advise": _cmd_advise, "schedule": _cmd_schedule, "lr-find": _cmd_lr_find,
            "predict": _cmd_predict, "report": _cmd_report, "plot": _cmd_plot, "tune": _cmd_tune}


def import_holding_signals(module: str, received: list[int]) -> bool:
    """Import ``module`` with Ctrl-C (and SIGTERM, when it is handled as Ctrl-C) held back; True when one
    came meanwhile, its number appended to ``received`` (the caller then exits 128 + it).

    A KeyboardInterrupt raised inside torch's C-extension import is swallowed (the command then ran
    on, ignoring the Ctrl-C) or leaves numpy half-imported (an AttributeError later), so during
    the import these signals are only recorded. An ignored SIGINT (nohup, `cmd &`) stays ignored.
    """
    import importlib

    # Python's Ctrl-C or command_signals' handlers, not the default (die) or ignored
    held = [sig for sig in (signal.SIGINT, signal.SIGTERM) if callable(signal.getsignal(sig))]
    before = len(received)
    previous: dict[int, object] = {}
    try:
        for sig in held:
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        pass
    try:
        importlib.import_module(module)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return len(received) > before


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line (with ``out_given``, whether ``-o`` was given, for the commands of
    :data:`trainlab.cli_parser.DEFAULT_OUTPUTS`); a usage error is one ``error:`` line and exit 2 (argparse's SystemExit),
    also for no command at all (argparse would print the whole help, with no error line) and for arguments
    the command does not take, which point to that command's help (``trainlab train --help``), not the top's."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args, extra = parser.parse_known_args(argv)
    if args.command in DEFAULT_OUTPUTS:  # -o left out: its default name, which is not followed if a link
        args.out_given = args.out is not None
        args.out = args.out if args.out_given else DEFAULT_OUTPUTS[args.command]
    if args.command is None and not extra:
        parser.error(f"a command is needed: trainlab {{{','.join(commands.choices)}}} ...")
    if extra:
        owner = parser if args.command is None else commands.choices[args.command]
        owner.error(f"unrecognized arguments: {' '.join(extra)}{flag_hint(owner, extra)}")
    if args.command == "train" and args.overwrite and args.resume:  # before the config is read
        commands.choices["train"].error(OVERWRITE_WITH_RESUME)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trainlab <argv>``; returns the exit code. Without ``argv`` (the ``trainlab`` command, ``python -m
    trainlab.cli``: the process ends with it) SIGINT/SIGTERM stay deferred after the return, through the
    interpreter's teardown; with ``argv`` (called from Python) the previous handlers come back, and so do
    ``TRAINLAB_DATA_DIR`` and the warnings filters the command set (``--data-dir`` of one call read the
    next call's data from that folder)."""
    args = _parse(argv)
    if argv is None:
        return _command(args, argv)
    previous = os.environ.get(DATA_DIR_ENV)
    try:
        with warnings.catch_warnings():
            return _command(args, argv)
    finally:
        if previous is None:
            os.environ.pop(DATA_DIR_ENV, None)
        else:
            os.environ[DATA_DIR_ENV] = previous


def _os_error_line(exc: OSError, args: argparse.Namespace) -> tuple[str, int]:
    """The error line (without ``error:``) and exit code of an OSError that ended a command: out of memory and
    the disk's failures exit 5, with the advice of the command (resume, rerun); a path too long exits 2."""
    memory = out_of_memory_line(exc)  # ENOMEM: a fork or mmap with no memory left (a loader worker)
    if memory is not None:
        return memory, EXIT_SYSTEM
    if exc.errno == errno.ENAMETOOLONG:  # the path given, not the disk: a usage error
        return name_too_long(exc), 2
    written = exc.errno in DISK_FULL_OR_READ_ONLY  # else it may as well be a read: say neither
    what = cannot(exc, "write" if written else "read or write")
    if written and args.command == "predict" and args.out is None and not exc.filename:
        what = f"cannot write the predictions to standard output: {exc.strerror or exc}"  # its one unnamed write
    after = ""  # the advice per command: a run resumes from its checkpoints; compare and tune are rerun
    if written and args.command in ("train", "resume"):
        from trainlab.code_policy import resume_command_words

        # train's folder where --out names it; not --overwrite's: the old run stays until the new one saves
        run = args.run_dir if args.command == "resume" else None if args.overwrite else args.out
        after = ("; finished checkpoints are intact: once the disk is writable, "
                 f"{command_line(*resume_command_words(run))}" if run
                 else "; finished checkpoints are intact, resume once the disk is writable")
    elif written and args.command in ("compare", "tune"):  # each continues its runs or its study
        after = "; rerun the same command once the disk is writable"
    return f"{what}{after}", EXIT_SYSTEM


def _command(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """:func:`main` once ``args`` are parsed: the command's process settings, signals, code policy and the
    one line (and exit code) for every way it can fail."""
    if args.data_dir:  # a folder that is not there is said where a data path is looked for in it (data/paths.py)
        os.environ[DATA_DIR_ENV] = args.data_dir  # in the environment: compare's and tune's workers read it too
    if not args.debug:
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    from trainlab.code_policy import command_code_policy, resume_command_words
    from trainlab.config_overrides import replaced_overrides
    from trainlab.notices import warn

    for earlier, later in replaced_overrides(getattr(args, "set", None) or []):
        warn(f"--set {later} replaces --set {earlier}, given before it: the later one is used")

    received: list[int] = []  # SIGINT, and SIGTERM handled as Ctrl-C (tune's --jobs workers handle their own)
    try:
        with command_signals(received, outlive=argv is None, run_is_result=args.command in ("train", "resume"),
                             command=args.command) as signals:
            if args.command not in ("plot", "report") and import_holding_signals("torch", received):
                raise KeyboardInterrupt
            configs = getattr(args, "configs", None) or getattr(args, "config", None)  # compare's bases, or one
            with command_code_policy(args.allow_code, configs, getattr(args, "run_dir", None)):
                code = COMMANDS[args.command](args)
                # its output is written: a signal from now on no longer interrupts it
                signals.result_written("the run" if args.command in ("train", "resume") else "the command")
            return code
    except TrainlabError as exc:
        _say(f"error: {exc}", args.debug)
        return exc.exit_code
    except BrokenPipeError:  # the reader of our output went away (`trainlab predict ... | head`): as SIGPIPE would
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # the disk, not the config: full, read-only, gone
        line, code = _os_error_line(exc, args)
        _say(f"error: {line}", args.debug)
        return code
    except KeyboardInterrupt:  # in train, before the run folder exists (a run stopped in it says so itself)
        after = (f"; its checkpoints are intact: {command_line(*resume_command_words(args.run_dir))}"
                 if args.command == "resume" else "")
        by = " by SIGTERM" if received and received[-1] == signal.SIGTERM else ""
        print(f"error: interrupted{by}{after}", file=sys.stderr)
        return 128 + (received[-1] if received else signal.SIGINT)
    except Exception as exc:  # a bug or a torch failure: still one line
        memory = out_of_memory_line(exc)
        if memory is not None:  # the machine's, as a full disk is (trainlab.out_of_memory): exit 5
            _say(f"error: {memory}", args.debug)
            return EXIT_SYSTEM
        first = (str(exc).strip().splitlines() or [""])[0][:400]
        where = raised_at(exc)  # the user's own code (a loss's or a model's forward) that raised, if it did
        _say(f"error: {type(exc).__name__}: {first} ({f'at {where}; ' if where else ''}rerun with --debug for the "
             "traceback)", args.debug)
        return TrainingError.exit_code


def _say(line: str, debug: bool) -> None:
    """The one ``error:`` line on stderr; with ``--debug`` the traceback of the exception being handled
    instead. Either way the caller returns the same exit code: scripts run with --debug keep 2/3/4/5."""
    if debug:
        import traceback

        traceback.print_exc()
    else:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
