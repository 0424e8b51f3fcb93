"""What a finished study leaves in DIR: ``best.yaml``, ``best.json``, ``trials.csv``, ``importances.json``.

``best.yaml`` is the best trial's full resolved config (its run folder's
``config.yaml``, renamed ``<base>-tuned``), ready for ``trainlab train``.
``best.json`` holds its number, value, parameters and the run's val/test metrics.
``trials.csv`` has one row per trial: number, state, value, duration_s,
pruned_at_epoch, fail_reason, run_dir, then one column per searched key.
``importances.json`` is Optuna's fANOVA importance of each key (the share of
the metric's variance it explains), or the reason there is none; the conditional
keys it cannot assess (not set in every complete trial) are listed with the reason.
``run_dir`` (trials.csv, best.json) is the trial's run folder inside the study
folder as it is when the results are written (:mod:`trainlab.tune.run_dirs`), an
absolute path without ``..``; empty in trials.csv for a trial without a run folder.

``best.yaml`` carries no trust of its own: ``trainlab train DIR/best.yaml`` finds a module of the user's
(``model: {name: "mymodels:net"}``) in DIR and the working directory only, as for any config, never in a
folder a file names (a best.yaml from someone else must not import code from a folder it names, as a run
folder's config does not without the opt-in). Where its modules lie elsewhere (beside the base config), the
command's last line (:func:`results_line`) gives the command that trains it as pasted
(:func:`tuned_train_command`: ``cd`` to their folder first).
"""

from __future__ import annotations

import csv
import importlib.machinery
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from trainlab.atomic import write_json, write_text
from trainlab.code_policy import outside_code_references, recorded_code_folders
from trainlab.config import dump_yaml, load_config, validate
from trainlab.errors import TrainlabError
from trainlab.records import read_record_object, record_json_text
from trainlab.shell_command import command_line
from trainlab.tune.claims import ATTR_ENDED_LATER
from trainlab.tune.objective import ATTR_FAIL_REASON, ATTR_PRUNED_AT
from trainlab.tune.recovery import ATTR_RECOVERED
from trainlab.tune.run_dirs import ATTR_RUN_DIR, TRIALS, absolute_path, run_folder, shown_run_folder
from trainlab.yaml_files import flow_yaml, load_yaml_file

MIN_TRIALS_FOR_IMPORTANCE = 4  # fANOVA fits a random forest on the finished trials; fewer say nothing
TRIAL_COLUMNS = ("number", "state", "value", "duration_s", "pruned_at_epoch", "fail_reason", "run_dir")
# every results file a study can leave in DIR, in the order docs/tune.md's table lists them (report.html is
# trainlab.tune.report's; best.yaml is missing where no trial completed)
RESULT_FILES = ("best.yaml", "best.json", "trials.csv", "importances.json", "report.html")


def duration_s(trial: FrozenTrial) -> float | None:
    """Seconds from the trial's start to its end as its own worker recorded them (3 decimals); None for a trial
    that another worker ended after its worker died (failed, :data:`~trainlab.tune.claims.ATTR_ENDED_LATER`, or
    read back from its run folder): Optuna's end time is then when that worker looked, which may be hours after
    the trial stopped running."""
    if trial.duration is None or ATTR_RECOVERED in trial.user_attrs or trial.user_attrs.get(ATTR_ENDED_LATER):
        return None
    return round(trial.duration.total_seconds(), 3)


def trial_rows(study: optuna.Study, keys: list[str], out: Path | None = None) -> list[dict[str, Any]]:
    """One row per trial (:data:`TRIAL_COLUMNS`, then ``keys``); ``run_dir`` is the trial's run folder in
    the study folder ``out`` (absolute, None without one: :func:`~trainlab.tune.run_dirs.shown_run_folder`),
    as recorded when ``out`` is None."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        run_dir = trial.user_attrs.get(ATTR_RUN_DIR) if out is None else shown_run_folder(trial.user_attrs,
                                                                                          trial.number, out)
        row = dict(zip(TRIAL_COLUMNS, (
            trial.number, trial.state.name, trial.value, duration_s(trial),
            # the pruner's decision is stored when made: a trial whose worker died after it is no pruned trial
            trial.user_attrs.get(ATTR_PRUNED_AT) if trial.state.name == "PRUNED" else None,
            trial.user_attrs.get(ATTR_FAIL_REASON), run_dir), strict=True))
        row.update({key: trial.params.get(key) for key in keys})
        rows.append(row)
    return rows


def trials_csv(rows: list[dict[str, Any]], keys: list[str]) -> str:
    """The rows under a header of TRIAL_COLUMNS and the searched ``keys`` (a study without trials: the header)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*TRIAL_COLUMNS, *keys], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return study.best_trial if complete else None


def importances(study: optuna.Study, seed: int, keys: list[str] = ()) -> dict[str, Any]:
    """``{"importances": {key: share}}``, or ``{"note": why not}`` with too few or uniform trials.

    fANOVA assesses the keys that every complete trial sets, so a conditional key (``when:``), set in some
    trials only, has no importance: such keys are listed under ``"left_out"`` with the reason, and so are the
    space's ``keys`` that no complete trial set (a ``when:`` never met, or met by pruned trials only)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return {"note": f"{len(complete)} complete trials; importances need at least {MIN_TRIALS_FOR_IMPORTANCE}"}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return {"note": f"Optuna could not compute importances: {exc}"}
    result: dict[str, Any] = {"importances": {key: float(share) for key, share in found.items()}}
    left_out = conditional_keys(complete, keys)
    if left_out:
        result["left_out"] = left_out
    return result


def conditional_keys(complete: list[FrozenTrial], keys: list[str] = ()) -> dict[str, str]:
    """The keys that some but not all ``complete`` trials set (a ``when:`` switched them off in the others), and
    the space's ``keys`` that none set, each with why fANOVA leaves it out of the importances."""
    counts: dict[str, int] = dict.fromkeys(keys, 0)
    for trial in complete:
        for key in trial.params:
            counts[key] = counts.get(key, 0) + 1
    return {key: f"conditional: set in {n} of {len(complete)} complete trials, and fANOVA assesses only the "
                 "keys every complete trial sets" for key, n in counts.items() if n < len(complete)}


def best_config_yaml(trial: FrozenTrial, run_dir: Path, study_name: str, metric: str, params: dict[str, Any]) -> str:
    """The best trial's resolved config (its run folder ``run_dir``'s), renamed ``<base>-tuned``, with a header
    saying where it came from (``params``: its parameters as config values, a list choice as the list)."""
    # as its run read it: a trial folder written while weight_decay 0.0 meant unset reads it so (load_config)
    raw = load_config(run_dir / "config.yaml", follow_links=False).to_dict()
    raw["name"] = str(raw.get("name", "run")).rsplit(f"-trial{trial.number}", 1)[0] + "-tuned"
    header = (f"# best trial {trial.number} of study '{study_name}': {metric} = {trial.value:.6g}\n"
              f"# params: {json.dumps(params, ensure_ascii=False)}\n")
    return header + dump_yaml(validate(raw))


def snapshot(study: optuna.Study) -> optuna.Study:
    """``study`` as it is now, in memory: its trials read once (numbers, states, values, attributes kept),
    so that what is derived from it agrees however the stored study goes on meanwhile (other workers,
    other machines on the same storage)."""
    frozen = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name=study.study_name,
                                 direction=study.direction)
    for trial in study.get_trials(deepcopy=False):  # as stored: add_trials would refuse a value Optuna let in
        frozen._storage.create_new_trial(frozen._study_id, template_trial=trial)  # (an enqueued one out of range)
    return frozen


def write_results(study: optuna.Study, out: Path, keys: list[str], metric: str, seed: int,
                  decode: Callable[[dict[str, Any]], dict[str, Any]] = dict) -> dict[str, Any]:
    """Write best.yaml, best.json, trials.csv and importances.json into ``out``; returns best.json's content.
    ``decode`` turns Optuna's stored parameters into config values (a list choice from its JSON text).
    Everything is read first, so a results file that cannot be made (the best trial's config.yaml
    missing) leaves all four as they were, and from one reading of the study (:func:`snapshot`): a trial
    that another command on the same study finishes meanwhile is in none of them or in all four."""
    study = snapshot(study)
    rows = trial_rows(study, keys, out)
    found = importances(study, seed, keys)
    counts = {state.name: sum(r["state"] == state.name for r in rows) for state in TrialState}
    best: dict[str, Any] = {"study": study.study_name, "metric": metric,
                            "direction": study.direction.name.lower(), "counts": counts, **found}
    trial = best_trial(study)
    best_yaml = None
    if trial is not None:
        # inside out as it is now (a moved or copied study folder reads its own runs), shown absolute; a
        # missing folder is said by best_config_yaml, which cannot read its config.yaml
        folder = run_folder(trial.user_attrs, trial.number, out) or out / TRIALS / str(trial.number)
        run_dir = Path(absolute_path(folder))
        summary = read_record_object(run_dir / "summary.json") or {}  # damaged: best.json without its figures
        best.update(trial=trial.number, value=trial.value, params=decode(trial.params), run_dir=str(run_dir),
                    val=summary.get("val"), test=summary.get("test"))
        best_yaml = best_config_yaml(trial, run_dir, study.study_name, metric, best["params"])
    write_text(out / "trials.csv", trials_csv(rows, keys))
    write_json(out / "importances.json", found)
    if best_yaml is not None:
        write_text(out / "best.yaml", best_yaml)
    write_best(out, best)
    return best


def write_best(out: Path, best: dict[str, Any]) -> Path:
    """``out``/best.json: ``best`` (:func:`write_results`' content, or it with the refit's figures) as the run's
    summary.json is written (:func:`~trainlab.records.record_json_text`): indented, each list of numbers on
    one line. The best trial's val/test metrics are its summary's, a confusion matrix among them: one line a
    row, so a 1000-class matrix is 1000 lines of best.json, not 1,000,000 (indent=2's)."""
    return write_text(out / "best.json", record_json_text(best))


def numbers_line(metrics: dict[str, Any]) -> str:
    """``accuracy 0.9444, f1 0.9412``: the metrics that are one number (a confusion matrix or a
    per-class list is left out; a non-finite value, null in summary.json, is shown as nan)."""
    def shown(value: Any) -> str:
        return "nan" if value is None else f"{value:.4g}"

    return ", ".join(f"{k} {shown(v)}" for k, v in metrics.items()
                     if v is None or (isinstance(v, int | float) and not isinstance(v, bool)))


def format_best(best: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    counts = ", ".join(f"{n} {state.lower()}" for state, n in best["counts"].items() if n)
    lines = [f"study {best['study']}: {counts}"]
    if "trial" in best:
        lines.append(f"best trial {best['trial']}: {best['metric']} = {best['value']:.6g}")
        lines.append("  " + flow_yaml(best["params"]))
        if best.get("test"):
            lines.append("  test: " + numbers_line(best["test"]))
    else:
        lines.append("no trial completed")
    if "importances" in best:
        line = "importances: " + ", ".join(f"{k} {v:.2f}" for k, v in best["importances"].items())
        if best.get("left_out"):
            line += f" (left out, not set in every complete trial: {', '.join(best['left_out'])})"
        lines.append(line)
    elif best.get("note"):  # why there are none (too few complete trials, no variance): said, not left silent
        lines.append(f"importances: none ({best['note']})")
    return "\n".join(lines)


def results_line(out: Path) -> str:
    """``results in DIR: best.yaml, best.json, trials.csv, importances.json, report.html``: the command's last
    line, naming the :data:`RESULT_FILES` that DIR holds once the study's results and report are written
    (those this command wrote: each is rewritten at every end, and the line is said only after all are).
    Where best.yaml names modules of the user's that ``trainlab train DIR/best.yaml`` would not find, the line
    ends with the command that trains it (:func:`tuned_train_command`)."""
    line = f"results in {out}: {', '.join(name for name in RESULT_FILES if (Path(out) / name).is_file())}"
    train = tuned_train_command(Path(out))
    return line if train is None else f"{line}; {train}"


def module_folders(references: set[str], folders: list[str]) -> list[str]:
    """The folders among ``folders`` (in the order a module name is looked for in them) that the top-level
    modules of ``references`` (``module:attr``) are found in: each in the first folder holding it, as
    :mod:`trainlab.user_code` looks; a module in none of them (installed, gone) is left out. Nothing is imported."""
    found: list[str] = []
    for top in sorted({reference.partition(":")[0].split(".")[0] for reference in references}):
        for folder in folders:
            try:
                spec = importlib.machinery.PathFinder.find_spec(top, [folder])
            except (ImportError, ValueError, OSError):
                continue
            if spec is not None and spec.origin and spec.has_location:
                found.append(folder)
                break
    return [folder for folder in folders if folder in found]


def tuned_train_command(out: Path) -> str | None:
    """How to train DIR's best.yaml (``out``) as pasted, from any directory, when it names modules of the user's
    (:func:`~trainlab.code_policy.outside_code_references`) that lie outside DIR, in the folders the best
    trial's run was trained from (run.json's ``code_folders``: the tune's working directory, the base
    config's folder): ``trainlab train DIR/best.yaml`` trusts only DIR and the working directory, so
    ``cd FOLDER && trainlab train /abs/DIR/best.yaml``; modules in two such folders (the working directory's
    and the base config's), no one folder serves: ``cd FIRST && PYTHONPATH=SECOND trainlab --allow-code
    train ...``. None where the plain command works (no such modules, or no best.yaml)."""
    best = read_record_object(out / "best.json") or {}
    try:
        tree = load_yaml_file(out / "best.yaml", follow_links=False)
    except (TrainlabError, OSError, ValueError, RecursionError):
        return None
    references = outside_code_references(tree)
    run_dir = best.get("run_dir")
    if not references or not isinstance(run_dir, str):
        return None
    here = Path(absolute_path(out))
    folders = [folder for folder in module_folders(references, recorded_code_folders(run_dir))
               if Path(folder).resolve() != here.resolve()]  # DIR is best.yaml's own folder: trusted anyway
    if not folders:
        return None
    cd = command_line("cd", folders[0])
    if len(folders) == 1:
        train = command_line("trainlab", "train", here / "best.yaml")
    else:  # no one working directory holds them all: the others on PYTHONPATH, which only the opt-in trusts
        path = "PYTHONPATH=" + command_line(":".join(folders[1:]))  # the name unquoted: an assignment
        train = f"{path} {command_line('trainlab', '--allow-code', 'train', here / 'best.yaml')}"
    return f"best.yaml names your modules in {' and '.join(folders)}: train it with {cd} && {train}"
