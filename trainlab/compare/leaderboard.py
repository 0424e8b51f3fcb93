"""From the run folders of a comparison to the leaderboard (``leaderboard.json``'s content): each strategy's
statistics, its standing and its test against the best. Its CSV, files and printed tables:
:mod:`trainlab.compare.leaderboard_output`.

Everything is read back from disk (each run's ``summary.json`` and ``metrics.jsonl``),
so a leaderboard can be rebuilt at any time and agrees with what the folders hold.

Metric keys and their direction: :mod:`trainlab.compare.metric_keys`; one run read back:
:mod:`trainlab.compare.run_record`.
"""

from __future__ import annotations

import math
from typing import Any

import trainlab.compare.stats as stats
from trainlab.compare.metric_keys import direction_of, metric_range, read_metric, unread_metric_reason
from trainlab.compare.run_actions import RunPlan
from trainlab.compare.run_record import (
    RUNNING_TRAIN_LOSS_NOTE,
    RunRecord,
    convergence,
    load_run,
    time_to_target,
)
from trainlab.config_fields import counted
from trainlab.record_paths import absolute_path

ALPHA = 0.05  # family-wise error rate of the Holm-corrected tests against the best strategy


# --------------------------------------------------------------------------- one strategy

def metric_block(values: list[float], seeds: list[int], key: str | None = None) -> dict[str, Any]:
    """Statistics of one metric over seeds. The t interval of a bounded metric (``key``'s
    :func:`~trainlab.compare.metric_keys.metric_range`: accuracy in [0, 1]) is clipped to the values the
    metric can take, and ``ci_method`` says so (``"t, clipped to [0, 1]"``): few seeds near a bound
    would otherwise give an accuracy interval reaching past 1. Fewer than two values have no interval:
    ``ci95`` and ``ci_method`` (``iqm_ci95`` and ``iqm_ci_method``) are None."""
    described = stats.describe(values)
    interval = stats.t_interval(values)
    method = "t"
    bounds = metric_range(key) if key else None
    if interval and bounds and (interval[0] < bounds[0] or interval[1] > bounds[1]):
        interval = (max(interval[0], bounds[0]), min(interval[1], bounds[1]))
        method = f"t, clipped to [{bounds[0]:g}, {bounds[1]:g}]"
    boot, boot_method = stats.bootstrap_interval(values, "iqm")
    return {
        **described,
        "ci95": list(interval) if interval else None,
        "ci_method": method if interval else None,  # no interval (fewer than 2 values): no method either
        "iqm": stats.iqm(values) if values else None,
        "iqm_ci95": list(boot) if boot else None,
        "iqm_ci_method": boot_method if boot else None,
        "values": values,
        "seeds": seeds,
    }


def _metric_keys(runs: list[RunRecord], metric: str) -> list[str]:
    keys = [metric]
    for run in runs:
        for split in ("test", "val"):
            for name in (run.summary or {}).get(split, {}) or {}:
                keys.append(f"{split}_{name}")
    keys += ["train_time_s", "steps"]  # the optimizer updates: batch 1 and full batch differ by the rows per epoch
    return list(dict.fromkeys(keys))


def _val_key(metric: str) -> tuple[str, str | None]:
    split, _, name = metric.partition("_")
    if split in ("test", "val") and name:
        return f"val_{name}", name
    return "val_loss", None


def counted_runs(runs: list[RunRecord], metric: str) -> tuple[list[RunRecord], list[dict[str, Any]]]:
    """The runs behind the statistics of ``metric``, and the failures (``{"seed", "reason"}``, in seed order).

    A run counts where it finished with a finite ``metric``. A run that failed (crashed, diverged) is a
    failure with its reason, and so is a finished run whose ``metric`` is NaN, inf or absent (an overflow at
    evaluation, a model whose outputs are inf): leaving it out uncounted would let a strategy whose broken
    seeds finish rank on its lucky ones (:func:`standing` ranks a strategy with failures below those without).
    """
    counted, failures = [], []
    for run in runs:
        if run.status == "failed":
            failures.append({"seed": run.seed, "reason": run.reason})
        elif run.status == "finished" and read_metric(run.summary, metric) is None:
            why = unread_metric_reason(run.summary, metric)
            failures.append({"seed": run.seed, "reason": f"finished, but {why}: counted as failed"})
        elif run.status == "finished":
            counted.append(run)
    return counted, failures


def _metric_blocks(finished: list[RunRecord], metric: str) -> dict[str, dict[str, Any]]:
    """:func:`metric_block` of each metric the ``finished`` runs record (``metric`` always), each over the runs
    with a finite value of it: ``n`` and ``values`` are the values behind its statistics. The ranking
    ``metric``'s are the :func:`counted_runs`; another metric's may be more (a run whose ``test_mse`` is NaN
    may have a finite ``train_time_s``) or fewer (a NaN ``test_r2`` beside a finite ``test_mse``)."""
    metrics = {}
    for key in _metric_keys(finished, metric):
        pairs = [(r.seed, read_metric(r.summary, key)) for r in finished]
        pairs = [(s, v) for s, v in pairs if v is not None]
        if pairs or key == metric:
            metrics[key] = metric_block([v for _, v in pairs], [s for s, _ in pairs], key)
    return metrics


def _target_blocks(runs: list[RunRecord], target: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """``time_to_target_s`` and ``steps_to_target`` over every run (a failed run may have reached it first)."""
    times, steps = [], []
    for run in runs:
        t, s = time_to_target(run.records, target) if target else (None, None)
        times.append(t)
        steps.append(s)
    return {
        "time_to_target_s": {
            "median": stats.median_time(times) if target else None,
            "reached": sum(t is not None for t in times) if target else None,  # no --target: nothing to reach
            "fraction": (sum(t is not None for t in times) / len(runs)) if runs and target else None,
            "values": times},
        "steps_to_target": {"median": stats.median_time(steps) if target else None, "values": steps},
    }


CONVERGENCE_FIGURES = ("best_val_epoch", "val_curve_mean", "gap_loss", "gap_val_test")


def _figure_range_key(figure: str, val_key: str) -> str | None:
    """The key whose :func:`~trainlab.compare.metric_keys.metric_range` bounds ``figure``'s interval:
    ``best_val_epoch`` is an epoch (at least 0, as ``best_epoch``), ``val_curve_mean`` a mean height of the
    ``val_key`` curve (an accuracy's in [0, 1]); the gaps are differences, unbounded."""
    return {"best_val_epoch": "best_epoch", "val_curve_mean": val_key}.get(figure)


def convergence_figure(values: list[float | None], seeds: list[int], range_key: str | None) -> dict[str, Any]:
    """One convergence figure over the finished runs: :func:`metric_block`'s statistics (n, mean, std, median,
    min, max, ``ci95`` with its ``ci_method``, ``iqm`` with ``iqm_ci95``) of its finite values, as every
    metric of the leaderboard has them; ``values`` and ``seeds`` keep one entry per finished run, ``None``
    where a run has no value (``n`` counts the others)."""
    present = [(seed, value) for seed, value in zip(seeds, values, strict=True) if value is not None]
    block = metric_block([float(v) for _, v in present], [seed for seed, _ in present], range_key)
    return {**block, "values": values, "seeds": seeds}


def convergence_metric_note(metric: str) -> str | None:
    """The note for a ``metric`` that is no ``test_``/``val_`` key (a summary number: ``train_time_s``,
    ``steps``): it has no validation curve and no test value, so ``best_val_epoch`` and ``val_curve_mean``
    follow ``val_loss`` and ``gap_val_test`` is null for every run; None for a split's metric."""
    val_key, name = _val_key(metric)
    if name is not None:
        return None
    return (f"--metric {metric} has no validation curve or test value: best_val_epoch and val_curve_mean "
            f"follow {val_key}, and gap_val_test is null in every run (a test_ --metric has all three)")


def _convergence_block(runs: list[RunRecord], metric: str) -> dict[str, Any]:
    """:func:`~trainlab.compare.run_record.convergence` of the finished ``runs``, each figure with the
    leaderboard's statistics (:func:`convergence_figure`), and a ``note`` where the metric has no validation
    counterpart (:func:`convergence_metric_note`), a validation value was non-finite or a metrics.jsonl had
    damaged lines."""
    finished = [r for r in runs if r.status == "finished"]
    val_key, metric_name = _val_key(metric)
    per_run = [convergence(r, val_key, metric_name) for r in finished]
    block: dict[str, Any] = {"val_metric": val_key}
    for figure in CONVERGENCE_FIGURES:
        block[figure] = convergence_figure([c[figure] for c in per_run], [r.seed for r in finished],
                                           _figure_range_key(figure, val_key))
    recorded = [any("epoch" in r and val_key in r for r in run.records) for run in finished]
    without = sum(c["best_val_epoch"] is None and seen for c, seen in zip(per_run, recorded, strict=True))
    notes = [note for note in [convergence_metric_note(metric)] if note]
    if without:  # recorded, but only as null: said in the board, not left to a reader to guess
        notes.append(f"{val_key} has no finite value in {without} of {len(per_run)} finished runs (NaN and inf "
                     "are recorded as null and left out of best_val_epoch and val_curve_mean)")
    damaged = [r.seed for r in runs if r.damaged_lines]
    if damaged:  # the figures stand on fewer records than the runs wrote (the warning named the lines)
        seeds = f"seed {damaged[0]} has" if len(damaged) == 1 else f"seeds {', '.join(map(str, damaged))} have"
        notes.append(f"metrics.jsonl of {seeds} damaged lines, left out of time_to_target_s, steps_to_target "
                     "and these figures")
    running = sum("note" in c for c in per_run)
    if running:  # run_record.loss_gap: no train block in summary.json (output.evaluate_train: false, older runs)
        notes.append(f"in {running} of {len(per_run)} finished runs, {RUNNING_TRAIN_LOSS_NOTE}")
    if notes:
        block["note"] = "; ".join(notes)
    return block


def strategy_entry(name: str, runs: list[RunRecord], metric: str, target: dict[str, Any] | None) -> dict[str, Any]:
    """One strategy's leaderboard entry (docs/compare.md, leaderboard.json): ``runs`` is the number of runs
    behind the statistics of ``metric`` (:func:`counted_runs`), ``failed`` its failures, a finished run with a
    non-finite ``metric`` among them, so ``runs + failed + missing`` is its number of seeds; ``not_run`` the
    missing seeds with why (the machine stopped them: trainlab.compare.machine_failure), which count neither
    for nor against it."""
    counted, failures = counted_runs(runs, metric)
    finished = [r for r in runs if r.status == "finished"]
    missing = [r for r in runs if r.status == "missing"]
    return {
        "name": name,
        "runs": len(counted),
        "failed": len(failures),
        "missing": len(missing),
        "failures": failures,
        "not_run": [{"seed": r.seed, "reason": r.reason} for r in missing],
        "seeds": [r.seed for r in runs],
        "run_dirs": [absolute_path(r.path) for r in runs],  # readable from any folder, not only the caller's
        "metrics": _metric_blocks(finished, metric),
        **_target_blocks(runs, target),
        "convergence": _convergence_block(runs, metric),
    }


# --------------------------------------------------------------------------- ranking and tests

def standing(entry: dict[str, Any], metric: str) -> int:
    """0: at least two runs of ``metric`` and no failed run; 1: two or more, but some seeds failed
    (crashed, diverged, or finished with a non-finite ``metric``: :func:`counted_runs`; a weakness, not noise
    to leave out); 2: fewer than two, so untestable."""
    finished = len(entry["metrics"].get(metric, {}).get("values") or [])
    return 2 if finished < 2 else 1 if entry.get("failed") else 0


def _score(entry: dict[str, Any], metric: str, direction: str) -> tuple[int, float]:
    mean = entry["metrics"].get(metric, {}).get("mean")
    if mean is None:
        return 3, math.inf
    return standing(entry, metric), -mean if direction == "max" else mean


def _ranked(entries: list[dict[str, Any]], metric: str, direction: str) -> list[dict[str, Any]]:
    """``entries`` by (standing, mean), where means equal within :func:`~trainlab.compare.stats.tied`
    keep the file's order: the same number summed in another order differs in its last bits
    (0.85 vs 0.8500000000000001), which is no reason to rank one first. Ties chain: a run of means
    each within round-off of the next forms one group."""
    by_score = sorted(enumerate(entries), key=lambda item: _score(item[1], metric, direction))
    group, previous, keyed = 0, None, []
    for position, entry in by_score:
        score = _score(entry, metric, direction)
        if previous is not None and not (score[0] == previous[0] and (
                score[1] == previous[1] or stats.tied(score[1], previous[1]))):
            group += 1
        keyed.append((score[0], group, position, entry))
        previous = score
    return [entry for *_, entry in sorted(keyed, key=lambda item: item[:3])]


def rank_and_test(entries: list[dict[str, Any]], metric: str, direction: str) -> None:
    """Rank by mean ``metric`` within each :func:`standing` (so the one surviving seed of a strategy
    that failed the others never ranks first); test each strategy against the best; Holm across them.

    A strategy with no run that counts (no finite ``metric``: every seed failed, or none ran) is listed last
    with ``rank`` None, and a task where no strategy has one has no best (:func:`best_strategy`).

    The verdict follows the test and the side of the difference: ``worse`` or ``better`` when
    ``p_holm < ALPHA`` (``better`` only for a strategy ranked below the best for another reason: its
    failed seeds, or a mean over other seeds than the best's), else ``worse on every seed`` (``better on every
    seed``) where the strategy is below (above) the best by one margin on every seed both ran, larger than any
    strategy's seed-to-seed range (:func:`every_seed_side`; unpaired, :func:`separated_side`), else
    ``indistinguishable``; a strategy no test
    applies to gets :func:`untested_verdict` (``too few seeds``, ``all runs failed``, ``not run``). A difference
    the same on every seed gets the exact sign test's p, not the t test's 0
    (:func:`~trainlab.compare.stats.paired_test`)."""
    entries[:] = _ranked(entries, metric, direction)
    for rank, entry in enumerate(entries, start=1):  # no run that counts (no mean): ranked last, with no rank
        entry["rank"] = rank if entry["metrics"].get(metric, {}).get("mean") is not None else None
    best = entries[0]
    sign = 1.0 if direction == "max" else -1.0  # probability of improvement counts "better", not "larger"
    best_values = dict(zip(best["metrics"][metric]["seeds"], best["metrics"][metric]["values"], strict=True))
    spread = seed_spread(entries, metric)
    results = []
    for entry in entries[1:]:
        values = dict(zip(entry["metrics"][metric]["seeds"], entry["metrics"][metric]["values"], strict=True))
        shared = sorted(set(values) & set(best_values))
        result, side = None, 0
        if len(shared) >= 2:
            result = stats.paired_test([values[s] for s in shared], [best_values[s] for s in shared])
            side = every_seed_side([sign * values[s] for s in shared], [sign * best_values[s] for s in shared], spread)
        elif len(values) >= 2 and len(best_values) >= 2:
            result = stats.welch_test(list(values.values()), list(best_values.values()))
            side = separated_side([sign * v for v in values.values()], [sign * v for v in best_values.values()],
                                  spread)
        improvement = stats.probability_of_improvement([sign * v for v in values.values()],
                                                       [sign * v for v in best_values.values()])
        results.append((entry, result, side, improvement))
    adjusted = stats.holm([r.p if r else None for _, r, _, _ in results])
    best["vs_best"] = {"test": None, "p": None, "p_holm": None,
                       "verdict": "best" if best_values else untested_verdict(best, metric), "prob_improvement": None}
    for (entry, result, side, improvement), p_holm in zip(results, adjusted, strict=True):
        if result is None:
            verdict = untested_verdict(entry, metric)
        elif p_holm < ALPHA and result.sign != 0:
            verdict = "better" if result.sign * sign > 0 else "worse"
        elif side:
            verdict = f"{'better' if side > 0 else 'worse'} on every seed"
        else:
            verdict = "indistinguishable"
        entry["vs_best"] = {"test": result.test if result else None, "p": result.p if result else None,
                            "p_holm": p_holm, "verdict": verdict, "prob_improvement": improvement}


def every_seed_side(scores: list[float], best_scores: list[float], spread: float) -> int:
    """+1 where the paired scores (larger is better: the metric times its direction's sign) are above the best
    strategy's by the same margin on every seed, -1 where below, 0 otherwise: the verdict of a difference that
    does not vary, whose exact sign test cannot go below p = 2^(1-n) however large it is (a teacher's
    constant-initialised MLP at chance, 85 points below the best on both of 2 seeds, was "indistinguishable
    p=1"). The margin, one value within round-off (:func:`~trainlab.compare.stats.tied_value`), must also
    exceed ``spread``, the largest seed-to-seed range of any strategy of the task (:func:`seed_spread`): seeds
    that move a strategy as much as the gap say nothing of it. A gap that varies is the t test's alone: picking
    the best as the largest mean puts noise below it on every one of 2 seeds about half the time, and a metric
    that moves in steps (accuracy: one test row) repeats a gap by chance."""
    if not scores or any(stats.tied(a, b) for a, b in zip(scores, best_scores, strict=True)):
        return 0  # equal on a seed (within round-off): on neither side there
    margin = stats.tied_value([a - b for a, b in zip(scores, best_scores, strict=True)])
    if margin is None or abs(margin) <= spread:
        return 0
    return 1 if margin > 0 else -1


def seed_spread(entries: list[dict[str, Any]], metric: str) -> float:
    """The largest range (max - min over seeds) of ``metric`` of any strategy in ``entries`` with two runs or more:
    how far the seeds alone move a strategy in this task (0.0 where none has two)."""
    ranges = [max(values) - min(values) for entry in entries
              if len(values := entry["metrics"].get(metric, {}).get("values") or []) >= 2]
    return max(ranges, default=0.0)


def separated_side(scores: list[float], best_scores: list[float], spread: float) -> int:
    """The unpaired :func:`every_seed_side` (Welch's test: fewer than 2 seeds both ran): +1 where each sample is
    one value (within round-off) and this one is above the best's by more than ``spread``, -1 where below, 0
    otherwise."""
    mine, best = stats.tied_value(scores), stats.tied_value(best_scores)
    if mine is None or best is None or stats.tied(mine, best) or abs(mine - best) <= spread:
        return 0
    return 1 if mine > best else -1


def untested_verdict(entry: dict[str, Any], metric: str) -> str:
    """The verdict of a strategy no test applies to: ``all runs failed`` where no run of it counts and every one
    failed (crashed, diverged, or finished with a non-finite ``metric``: more seeds would not help);
    ``N failed, M not run`` where some failed and the others did not run (the machine stopped them, or a
    result is missing: the same command trains them); ``not run`` where none counts and none failed; else
    ``too few seeds`` (one run counts)."""
    if entry["metrics"].get(metric, {}).get("values"):
        return "too few seeds"
    failed, missing = entry.get("failed") or 0, entry.get("missing") or 0
    if failed and missing:
        return f"{failed} failed, {missing} not run"
    return "all runs failed" if failed else "not run"


def best_strategy(entries: list[dict[str, Any]]) -> str | None:
    """The name of the ranked ``entries``' rank 1; None where none is ranked (no strategy has a run that counts:
    every seed of every strategy failed), so that a strategy whose runs all diverged is never named best."""
    return next((entry["name"] for entry in entries if entry.get("rank") == 1), None)


def first_place_tie(task: str, entries: list[dict[str, Any]], metric: str, direction: str) -> str | None:
    """A note where strategies share rank 1's score (:func:`_score`: the same standing, means equal within
    round-off, as :func:`_ranked` groups them): the first in the strategies file is ranked first and called
    best, the others "indistinguishable", which reads as a winner where there is a tie. None otherwise."""
    ranked = [entry for entry in entries if entry.get("rank") is not None]
    if len(ranked) < 2:
        return None
    (standing, best), *others = [_score(entry, metric, direction) for entry in ranked]
    tied = [entry["name"] for entry, score in zip(ranked[1:], others, strict=True)
            if score[0] == standing and stats.tied(score[1], best)]
    if not tied:
        return None
    names = ", ".join(f"'{name}'" for name in [ranked[0]["name"], *tied])
    return (f"task '{task}': {names} tie for first on {metric} (mean {ranked[0]['metrics'][metric]['mean']:.6g}); "
            f"'{ranked[0]['name']}' is ranked first by its place in the strategies file, not by its score")


# below this many seeds, a comparison where no strategy is told apart from the best says that this is no
# evidence of equality (with 3 seeds the exact sign test's smallest p is 0.25, and Holm multiplies by the comparisons)
FEW_SEEDS_FOR_POWER = 10


def undetected_note(task: str, entries: list[dict[str, Any]], seeds: int) -> str | None:
    """A note where every strategy compared with the best is "indistinguishable" and the comparison ran fewer
    than :data:`FEW_SEEDS_FOR_POWER` seeds: a user trial read 29 such verdicts, one of them 7 points below the
    best on 3 seeds, as "all equal". None where some difference was shown, or nothing was compared."""
    verdicts = [(entry.get("vs_best") or {}).get("verdict") for entry in entries]
    agreeing = [v for v in verdicts if v in ("worse on every seed", "better on every seed")]
    compared = verdicts.count("indistinguishable") + len(agreeing)
    if not compared or seeds >= FEW_SEEDS_FOR_POWER or {"worse", "better"} & set(verdicts):
        return None
    every_seed = (f", and '{agreeing[0]}' that the seeds agree on a side, which no test supports at this count"
                  if agreeing else "")
    return (f"task '{task}': no strategy is told apart from the best (p_holm < {ALPHA}) in "
            f"{counted(compared, 'comparison')} on {counted(seeds, 'seed')}: 'indistinguishable' means no difference "
            f"was shown, not that the strategies are equal{every_seed}; {counted(seeds, 'seed')}"
            f"{f' and a Holm correction over {compared} comparisons' if compared > 1 else ''} give the tests little "
            f"power: {FEW_SEEDS_FOR_POWER} seeds or more tell such differences apart")


# --------------------------------------------------------------------------- the whole board

def build_leaderboard(plans: list[RunPlan], metric: str, direction: str | None = None,
                      target: dict[str, Any] | None = None,
                      not_run: dict[str, str] | None = None, notes: list[str] | None = None) -> dict[str, Any]:
    """Read every planned run folder and return the leaderboard (see docs/compare.md). ``not_run``: why the
    machine stopped runs (by :attr:`RunPlan.label`) whose folder may hold no record of it (a full disk, a folder
    that could not be created), this comparison's outcomes for them (:func:`~trainlab.compare.run_record.load_run`).
    ``notes``: caveats on the whole ranking, plain sentences (the loss-scale warning:
    :func:`~trainlab.compare.precheck.warn_loss_scales`), kept as the board's ``notes`` (``[]`` when none) and
    printed under the tables (:func:`print_leaderboard`)."""
    not_run = not_run or {}
    direction = direction or direction_of(metric)
    seeds = sorted({p.seed for p in plans})
    tasks: dict[str, dict[str, list[RunPlan]]] = {}
    for plan in plans:
        tasks.setdefault(plan.task, {}).setdefault(plan.strategy, []).append(plan)
    board: dict[str, Any] = {
        "metric": metric,
        "direction": direction,
        "seeds": len(seeds),
        "seed_list": seeds,
        "target": {"metric": target["metric"], "value": target["value"]} if target else None,
        "target_direction": target["direction"] if target else None,
        "alpha": ALPHA,
        "notes": list(notes or []),
        "methods": {
            "ci95": "Student t interval of the mean over seeds (ci_method 't'; clipped to a bounded metric's range, "
                    "ci_method says so)",
            "iqm_ci95": "scipy.stats.bootstrap of the interquartile mean, BCa (percentile where BCa is undefined)",
            "vs_best": f"paired t over shared seeds (n < {stats.WILCOXON_MIN_PAIRS}), exact Wilcoxon signed-rank "
                       f"with tied ranks, zero differences dropped (n >= {stats.WILCOXON_MIN_PAIRS}), Welch t when "
                       "fewer than 2 seeds are shared; a difference the same on every seed (no spread for a t test) "
                       "gets the exact test's p: 2^(1-n) for n non-zero paired differences (sign test), 2/C(n+m,n) "
                       "for two constant samples (Mann-Whitney); Holm across strategies; worse (or better) when "
                       f"p_holm < {ALPHA} and the difference is against (for) the strategy; ties within {stats.TIE:g} "
                       "x the values' scale",
            "prob_improvement": "P(X better than best) + P(tie)/2 over all seed pairs (Mann-Whitney U / nm; "
                                f"ties within {stats.TIE:g} x the values' scale)",
            "time_to_target_s": "elapsed_s of the first validation record at or past the target; "
                                "null = never reached, counted as infinite in the median",
        },
        "tasks": {},
    }
    fingerprints: dict[str, str | None] = {}  # of each data section, taken once for every run reading it
    for task, by_strategy in tasks.items():
        entries = []
        for name, strategy_plans in by_strategy.items():
            runs = [load_run(p, not_run.get(p.label), fingerprints)
                    for p in sorted(strategy_plans, key=lambda p: p.seed)]
            entries.append(strategy_entry(name, runs, metric, target))
        rank_and_test(entries, metric, direction)
        board["tasks"][task] = {"strategies": entries, "best": best_strategy(entries)}
        if (tie := first_place_tie(task, entries, metric, direction)) is not None:
            board["notes"].append(tie)
        if (undetected := undetected_note(task, entries, len(seeds))) is not None:
            board["notes"].append(undetected)
    if len(tasks) > 1:
        board["profile"] = task_profile(board, target)
    return board


def task_profile(board: dict[str, Any], target: dict[str, Any] | None) -> dict[str, Any]:
    """Performance profile over tasks of the median time-to-target (median train time without --target)."""
    times: dict[str, list[float | None]] = {}
    task_names = list(board["tasks"])
    for task in task_names:
        for entry in board["tasks"][task]["strategies"]:
            if target:
                value = entry["time_to_target_s"]["median"]
            else:
                value = entry["metrics"].get("train_time_s", {}).get("median")
            times.setdefault(entry["name"], []).append(value)
    profile = stats.performance_profile(times)
    measure = "median time_to_target_s" if target else \
        "median train_time_s (no --target given: speed alone, whatever the ranking metric)"
    return {"measure": measure, "tasks": task_names, **profile}


def target_example(metric: str) -> str:
    """A ``--target`` for ``metric``'s validation counterpart, for advice: ``val_accuracy=0.9`` for a metric in
    [0, 1] that rises, else ``val_mse=<value>`` (no value fits every scale); ``val_loss`` for a summary number."""
    val_key, _ = _val_key(metric)
    if metric_range(val_key) == (0.0, 1.0) and direction_of(val_key) == "max":
        return f"{val_key}=0.9"
    return f"{val_key}=<value>"
