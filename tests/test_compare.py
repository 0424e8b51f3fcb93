"""trainlab compare: statistics against scipy/statsmodels, strategies files, runner and leaderboard."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats as sps

from tests.child_env import iris_on_file, with_repo_first
from trainlab.cli import main
from trainlab.compare import compare, stats
from trainlab.compare.metric_keys import direction_of, parse_target, read_metric
from trainlab.compare.strategies import load_strategies, parse_strategies, validate_strategies
from trainlab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- statistics


def test_describe_matches_the_statistics_module():
    values = [0.81, 0.79, 0.85, 0.80, 0.77]
    out = stats.describe(values)
    assert out["mean"] == pytest.approx(statistics.fmean(values))
    assert out["std"] == pytest.approx(statistics.stdev(values))  # ddof = 1
    assert out["median"] == pytest.approx(statistics.median(values))
    assert (out["min"], out["max"], out["n"]) == (0.77, 0.85, 5)
    assert stats.describe([0.5])["std"] is None


def test_t_interval_matches_scipy():
    values = [0.81, 0.79, 0.85, 0.80, 0.77]
    sem = statistics.stdev(values) / math.sqrt(len(values))
    low, high = sps.t.interval(0.95, df=4, loc=statistics.fmean(values), scale=sem)
    assert stats.t_interval(values) == pytest.approx((low, high))
    assert stats.t_interval([0.5]) is None
    assert stats.t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_iqm_is_the_mean_of_the_middle_half():
    values = [10.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -7.0]  # sorted: -7 1 2 3 | 4 5 6 10 -> middle 2 3 4 5
    assert stats.iqm(values) == pytest.approx(3.5)


def test_bootstrap_interval_matches_scipy_and_never_nans():
    values = [0.81, 0.79, 0.85, 0.80, 0.77, 0.83]
    interval, method = stats.bootstrap_interval(values, "mean", n_resamples=1000, seed=3)
    reference = sps.bootstrap((np.array(values),), np.mean, method="BCa", n_resamples=1000,
                              rng=np.random.default_rng(3)).confidence_interval
    assert method == "bootstrap-bca"
    assert interval == pytest.approx((reference.low, reference.high))
    assert min(values) <= interval[0] < statistics.fmean(values) < interval[1] <= max(values)
    assert stats.bootstrap_interval([0.7, 0.7, 0.7]) == ((0.7, 0.7), "bootstrap-percentile")
    degenerate, _ = stats.bootstrap_interval([0.5, 0.5, 0.5, 0.9])  # BCa jackknife is undefined-ish here
    assert degenerate is not None and all(math.isfinite(v) for v in degenerate)


def test_paired_t_below_ten_pairs_matches_the_formula():
    x, y = [0.80, 0.82, 0.78, 0.85, 0.81], [0.75, 0.80, 0.74, 0.79, 0.80]
    d = np.subtract(x, y)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    result = stats.paired_test(x, y)
    assert result.test == "paired-t"
    assert result.p == pytest.approx(2 * sps.t.sf(abs(t), df=d.size - 1))


def test_wilcoxon_from_ten_pairs_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.normal(0.8, 0.02, 12)
    y = x - rng.normal(0.01, 0.02, 12)
    result = stats.paired_test(x, y)
    assert result.test == "wilcoxon"
    assert result.p == pytest.approx(sps.wilcoxon(x, y).pvalue)


def test_identical_and_constant_differences_give_defined_p_values():
    assert stats.paired_test([0.8, 0.9, 0.7], [0.8, 0.9, 0.7]).p == 1.0
    constant = stats.paired_test([0.8, 0.9, 0.7, 0.6, 0.5], [0.7, 0.8, 0.6, 0.5, 0.4])
    assert constant.p == sps.binomtest(5, 5).pvalue and constant.sign == 1  # the exact sign test's p, not t's 0
    assert stats.paired_test([0.8], [0.7]) is None


def _t_p(d: np.ndarray) -> float:
    """Two-sided one-sample t test of mean(d) = 0, written out."""
    t = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    return float(2 * sps.t.sf(abs(t), df=d.size - 1))


@pytest.mark.parametrize("n", [2, 3, 5, 9])
@pytest.mark.filterwarnings("ignore:Precision loss occurred")  # scipy, on the constant sample of the Welch case
def test_a_constant_difference_gets_the_exact_tests_p_and_a_varying_one_the_t_tests(n):
    """Accuracy on a fixed split moves in steps of 1/N, so an exactly constant difference is common: it has
    no spread for a t test (t infinite, p 0) and gets the exact sign test's p; a difference with a 1e-5
    wobble keeps the t test's own p (its normality assumption; ~1e-13 at n = 3)."""
    y = np.linspace(0.6, 0.9, n)
    x = y + 0.1
    wobbly = x.copy()
    wobbly[-1] += 1e-5
    near = stats.paired_test(wobbly, y)
    assert near.p == pytest.approx(_t_p(wobbly - y), rel=1e-6) and near.p < 1e-3
    exact = stats.paired_test(x, y)  # differences 0.1 up to round-off (0.9 - 0.8 != 0.7 - 0.6)
    assert exact.p == sps.binomtest(n, n).pvalue and exact.sign == 1
    assert stats.paired_test(y, x).sign == -1
    # two constant samples (Welch): the exact Mann-Whitney p of two separated samples, 2 / C(2n, n)
    a, b = np.full(n, 0.5), np.full(n, 0.4)
    wobbly_a = a.copy()
    wobbly_a[-1] += 1e-5
    welch_near = stats.welch_test(wobbly_a, b)
    assert welch_near.p == pytest.approx(sps.ttest_ind(wobbly_a, b, equal_var=False).pvalue, rel=1e-6)
    assert stats.welch_test(a, b).p == pytest.approx(sps.mannwhitneyu(a, b, method="exact").pvalue)
    assert stats.welch_test(b, a).sign == -1


def test_a_difference_that_wobbles_by_float32_round_off_gets_the_exact_tests_p():
    """A user's seed-independent strategy (zero init, full batch): its test_loss over 3 seeds was one float32 ulp
    apart (the same run summed in another order), and against it another strategy was 'worse p=1.4e-15' (paired
    t on a round-off spread) while by test_accuracy the same runs were 'indistinguishable' (the sign test)."""
    best = np.array([0.32209351658821106, 0.32209354639053345, 0.32209351658821106])
    other = np.array([0.6131500601768494, 0.6131500005722046, 0.6131500601768494])
    assert np.ptp(best) == float(np.spacing(np.float32(0.3220935)))  # one float32 ulp
    worse = stats.paired_test(best, other)
    assert worse.test == "sign" and worse.p == sps.binomtest(3, 3).pvalue == 0.25
    assert stats.describe(best)["std"] == 0.0 and stats.t_interval(best) == (best[0], best[0])


def test_one_seeds_outlier_makes_no_other_seeds_difference_round_off():
    """A review: with the tolerance scaled by the largest value of both samples, one seed's loss of 2e5 made every
    other seed's 0.05 difference 'round-off' (Wilcoxon p 1.0, P(improvement) 0.55 instead of 0.002 and 1)."""
    rng = np.random.default_rng(3)
    a = 0.30 + 0.01 * rng.normal(size=10)
    b = a + 0.05 + 0.002 * rng.normal(size=10)
    b[9] = 2e5
    test = stats.paired_test(a, b)
    assert test.test == "wilcoxon" and test.p == pytest.approx(sps.wilcoxon(a, b, method="exact").pvalue) == 2 / 2**10
    assert test.sign == -1
    # lower is better: the share of all (a, b) pairs a wins, none of them a tie (0.98 here; 0.55 before)
    improvement = stats.probability_of_improvement(-a, -b)
    assert improvement == pytest.approx(float(np.mean(a[:, None] < b[None, :]))) and improvement > 0.95
    # the outlier pair's own round-off is no tolerance for the others: +-0.04 on them is no constant difference
    alternating = stats.paired_test([1.0] * 8 + [2e5], [0.96, 1.04] * 4 + [2e5 - 0.05])
    assert alternating.test == "paired-t" and alternating.p > 0.5
    # a large offset (a poisson_nll near -5900): 0.004 is some twenty float32 ulps there, a real difference
    offset = -5900 + 0.5 * rng.normal(size=6)
    assert stats.paired_test(offset, offset + 0.004).p == sps.binomtest(6, 6).pvalue


def test_from_ten_pairs_a_constant_difference_gets_wilcoxons_exact_one_signed_p():
    rng = np.random.default_rng(1)
    y = rng.uniform(0.6, 0.8, 12)
    one_signed = y + rng.uniform(0.01, 0.02, 12)  # every difference positive, all distinct
    exact = sps.wilcoxon(one_signed, y, method="exact").pvalue
    assert exact == pytest.approx(2 * 0.5**12)
    constant = stats.paired_test(y + 0.05, y)
    assert constant.test == "wilcoxon" and constant.p == pytest.approx(exact) and constant.sign == 1
    assert stats.paired_test(one_signed, y).p == pytest.approx(exact)


@pytest.mark.parametrize("scale", [1e-13, 1e-6, 1.0, 1e6])
def test_the_tie_tolerance_is_relative_to_the_values_scale(scale):
    """An MSE of 1e-13 is as testable as one of 1e6: the tests agree with scipy at every scale."""
    a = np.array([1.0, 1.1, 1.2, 1.05, 1.15]) * scale
    b = np.array([5.0, 6.0, 8.0, 5.5, 7.0]) * scale
    paired = stats.paired_test(a, b)
    assert paired.p == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-9) and paired.sign == -1
    assert paired.p == pytest.approx(_t_p(a - b), rel=1e-9)
    welch = stats.welch_test(a[:3], b[:3])
    assert welch.p == pytest.approx(sps.ttest_ind(a[:3], b[:3], equal_var=False).pvalue, rel=1e-9)
    # round-off at that scale is still a tie: the same numbers summed in another order
    x = np.array([0.1 + 0.2, 0.3, 0.7, 0.4]) * scale
    y = np.array([0.3, 0.1 + 0.2, 0.7, 0.4]) * scale
    assert stats.paired_test(x, y).p == 1.0 and stats.welch_test(x[:2], y[:2]).p == 1.0
    assert stats.tied(sum([0.8, 0.9, 0.85]) * scale, sum([0.85, 0.8, 0.9]) * scale)
    assert not stats.tied(1.0 * scale, (1.0 + 1e-5) * scale)
    # a float32 ulp apart is round-off too: the metrics are float32 computations
    assert stats.tied(float(np.float32(0.3220935)) * scale, float(np.nextafter(np.float32(0.3220935), 1)) * scale)


def test_welch_matches_the_welch_satterthwaite_formula():
    x, y = [0.80, 0.82, 0.78, 0.85], [0.70, 0.74, 0.69, 0.79, 0.71]
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    t = (np.mean(x) - np.mean(y)) / math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    assert stats.welch_test(x, y).p == pytest.approx(2 * sps.t.sf(abs(t), df))
    assert stats.welch_test([0.5, 0.5], [0.5, 0.5]).p == 1.0
    assert stats.welch_test([0.5, 0.5], [0.4, 0.4]).p == pytest.approx(1 / 3)  # exact Mann-Whitney: 2 / C(4, 2)


def test_holm_hand_example_and_statsmodels():
    # hand: sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, max(0.04, 0.04) = 0.04
    adjusted = stats.holm([0.04, 0.01, None, 0.02])
    assert adjusted[2] is None
    assert adjusted[0] == pytest.approx(0.04) and adjusted[1] == pytest.approx(0.03)
    assert adjusted[3] == pytest.approx(0.04)
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    pvalues = [0.001, 0.2, 0.03, 0.049, 0.6, 0.012]
    assert stats.holm(pvalues) == pytest.approx(list(multipletests(pvalues, method="holm")[1]))


def test_probability_of_improvement_is_mann_whitney_u_over_nm():
    x, y = [0.8, 0.7, 0.9, 0.7], [0.7, 0.6, 0.75]
    u = sps.mannwhitneyu(x, y).statistic
    assert stats.probability_of_improvement(x, y) == pytest.approx(u / (len(x) * len(y)))
    assert stats.probability_of_improvement([1.0, 2.0], [1.0, 2.0]) == 0.5


def test_median_time_counts_misses_as_infinite():
    assert stats.median_time([3.0, None, 1.0]) == 3.0
    assert stats.median_time([3.0, None, None]) is None
    assert stats.median_time([1.0, 2.0, 4.0, None]) == 3.0


def test_curve_mean_of_a_line_is_its_midpoint():
    epochs = [0, 1, 2, 3, 4]
    assert stats.curve_mean(epochs, [2 * e + 1 for e in epochs]) == pytest.approx(5.0)


def test_performance_profile_by_hand():
    # task 1: a=10, b=20 (ratio 2); task 2: a=None (miss), b=5 (ratio 1)
    profile = stats.performance_profile({"a": [10.0, None], "b": [20.0, 5.0]}, tau_max=4.0, points=3)
    assert profile["taus"] == pytest.approx([1.0, 2.0, 4.0])
    assert profile["rho"]["a"] == [0.5, 0.5, 0.5]
    assert profile["rho"]["b"] == [0.5, 1.0, 1.0]
    assert profile["geomean_ratio"]["a"] is None
    assert profile["geomean_ratio"]["b"] == pytest.approx(math.sqrt(2.0))


def test_direction_and_metric_keys():
    assert [direction_of(k) for k in ("test_loss", "val_mse", "train_time_s", "test_accuracy", "val_f1",
                                      "samples_per_s")] == ["min", "min", "min", "max", "max", "max"]
    summary = {"train_time_s": 1.5, "test": {"accuracy": 0.9}, "val": {"loss": 0.3}}
    assert read_metric(summary, "test_accuracy") == 0.9
    assert read_metric(summary, "val_loss") == 0.3
    assert read_metric(summary, "train_time_s") == 1.5
    assert read_metric(summary, "test_f1") is None
    assert parse_target("val_loss=0.3") == {"metric": "val_loss", "value": 0.3, "direction": "min"}
    with pytest.raises(ConfigError, match="--target"):
        parse_target("accuracy>0.9")
    for text, message in [("val_accuracy=1.5", "--target val_accuracy=1.5 can never be reached: val_accuracy is in "
                                               "[0, 1]"),
                          ("val_top_3_accuracy=-0.1", "--target val_top_3_accuracy=-0.1 is met by any value (a "
                                                      "target says when training is good enough): "
                                                      "val_top_3_accuracy is in [0, 1]"),
                          ("val_f1_macro=1.5", "val_f1_macro is in [0, 1]"),
                          ("val_matthews_corrcoef=-2", "=-2 is met by any value"),
                          ("val_r2=1.2", "=1.2 can never be reached: val_r2 is <= 1"),
                          ("val_rmse=-1", "=-1 can never be reached: val_rmse is >= 0")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_target(text)
    for unbounded in ("val_error2=1.5", "val_layer2=3", "val_neg_mse=-0.1"):  # names that only end like one
        assert parse_target(unbounded)["metric"] == unbounded.split("=")[0]
    assert parse_target("val_accuracy=1")["value"] == 1.0 and parse_target("val_r2=-3")["value"] == -3.0


# --------------------------------------------------------------------------- strategies files

BASE = {
    "name": "iris",
    "seed": 0,
    "data": {"source": "iris"},
    "model": {"name": "mlp", "hidden": [16]},
    "strategy": {"loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 16,
                 "epochs": 4},
    "metrics": ["accuracy"],
    "output": {"progress": "off"},
    "runtime": {"num_threads": 1},
}


def test_grid_is_a_named_cross_product():
    parsed = parse_strategies({"strategies": {"base": None},
                               "grid": {"strategy.optimizer.name": ["sgd", "adam"], "strategy.batch_size": [8, 32]}})
    assert [s.name for s in parsed] == ["base", "optimizer.name=sgd,batch_size=8", "optimizer.name=sgd,batch_size=32",
                                        "optimizer.name=adam,batch_size=8", "optimizer.name=adam,batch_size=32"]
    assert parsed[4].overrides == {"strategy.optimizer.name": "adam", "strategy.batch_size": 32}


@pytest.mark.parametrize("strategies, message", [
    ({"strategies": {"a": {"strategy.optimzer": {"name": "sgd"}}}}, "unknown config key 'strategy.optimzer'"),
    ({"strategies": {"a": {"strategy.batch_size": -3}}}, "strategy.batch_size"),
    ({"strategies": {"a": {"strategy.optimizer": {"name": "adamm", "lr": 0.1}}}}, "did you mean 'adam'"),
    ({"strategies": {"a": {"strategy.optimizer.lr": -1.0}}}, "strategy.optimizer.lr"),
    ({"strategies": {"a": {"strategy.optimizer.momentun": 0.9}}}, "momentun"),
    ({"strategies": {"a": {"model.hiden": [8]}}}, "hiden"),
    ({"strategies": {"a": {"data.standardise": False}}}, "standardise"),
    ({"strategies": {"sgd": None}, "grid": {"strategy.epochs": [2]}, "grids": {}}, "unknown section 'grids'"),
])
def test_bad_strategies_fail_before_any_run(strategies, message):
    with pytest.raises(ConfigError, match=message):
        validate_strategies({"iris": BASE}, parse_strategies(strategies))


def test_duplicate_names_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="duplicate strategy name 'epochs=2'"):
        parse_strategies({"strategies": {"epochs=2": None}, "grid": {"strategy.epochs": [2, 3]}})
    twice = tmp_path / "twice.yaml"  # YAML itself would keep only the last of two equal keys
    twice.write_text("strategies:\n  a: {strategy.epochs: 2}\n  a: {strategy.epochs: 3}\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'a' \(first at line 2\)"):
        load_strategies(twice)


def test_cli_reports_a_bad_strategy_in_one_line_before_any_run(tmp_path: Path, capsys):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE))
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategies:\n  a: {strategy.epochs: 2}\n  b: {strategy.optimizer.name: sgdd}\n")
    code = main(["compare", str(base), "--strategies", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: strategy 'b': unknown optimizer 'sgdd'; did you mean 'sgd'?")
    assert not (tmp_path / "out").exists()


def test_cli_set_changes_every_base_before_the_strategies(tmp_path: Path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE))
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**BASE, "name": "iris-b"}))
    strategies = tmp_path / "s.yaml"  # the strategy's own value wins over --set for its key
    strategies.write_text("strategies:\n  plain:\n  wide: {model.hidden: [24]}\n")
    out = tmp_path / "out"
    code = main(["compare", str(base), str(other), "--strategies", str(strategies), "--seeds", "1", "--jobs", "1",
                 "--out", str(out), "--set", "strategy.epochs=1", "--set", "model.hidden=[8]"])
    assert code == 0
    for task in ("base", "other"):
        plain = yaml.safe_load((out / "runs" / task / "plain" / "seed-0" / "config.yaml").read_text())
        wide = yaml.safe_load((out / "runs" / task / "wide" / "seed-0" / "config.yaml").read_text())
        assert plain["strategy"]["epochs"] == wide["strategy"]["epochs"] == 1
        assert (plain["model"]["hidden"], wide["model"]["hidden"]) == ([8], [24])
    bad = main(["compare", str(base), "--strategies", str(strategies), "--out", str(out), "--set", "nokey"])
    assert bad == 2


def _plain_comparison(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The base config, a one-strategy strategies file, and an empty --out folder."""
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE))
    strategies = tmp_path / "s.yaml"
    strategies.write_text("strategies:\n  plain:\n")
    out = tmp_path / "out"
    out.mkdir()
    return base, strategies, out


@pytest.mark.parametrize("marker, what", [("study.journal", "a tuning study (trainlab tune)"),
                                          (".tune.study", "a tuning study (trainlab tune)"),
                                          ("run.json", "a trainlab run folder (trainlab train)")])
def test_compare_refuses_an_out_holding_another_commands_results(tmp_path: Path, capsys, marker, what):
    """compare and tune each write report.html: pointed at a tune folder, compare replaced the study's report."""
    base, strategies, out = _plain_comparison(tmp_path)
    (out / marker).write_text("x")
    code = main(["compare", str(base), "--strategies", str(strategies), "--seeds", "1", "--out", str(out)])
    assert code == 2 and capsys.readouterr().err.strip() == (
        f"error: --out {out} holds {what}; trainlab compare writes its own results (and report.html) there: "
        "give another --out")
    assert [p.name for p in out.iterdir()] == [marker]


def test_a_second_compare_into_a_folder_in_use_is_refused_in_one_line_and_touches_nothing(tmp_path: Path, capsys):
    from trainlab.run_lock import RunLock

    base, strategies, out = _plain_comparison(tmp_path)
    held = RunLock(out)  # what the first comparison holds while it runs (flock: a second open file conflicts)
    held.acquire()
    try:
        code = main(["compare", str(base), "--strategies", str(strategies), "--seeds", "1", "--jobs", "1",
                     "--out", str(out), "--set", "strategy.epochs=1"])
    finally:
        held.release()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: comparison folder {out} is in use by process {os.getpid()}"), err
    assert list(out.iterdir()) == []  # no run started, no error record written into the other's runs
    assert main(["compare", str(base), "--strategies", str(strategies), "--seeds", "1", "--jobs", "1",
                 "--out", str(out), "--set", "strategy.epochs=1"]) == 0  # free again: it runs
    assert sorted(p.name for p in out.iterdir()) == [".comparison.json", "leaderboard.csv", "leaderboard.json",
                                                     "report.html", "runs"]


# --------------------------------------------------------------------------- running and the leaderboard

STRATEGIES = {"strategies": {
    "adam": {"strategy.optimizer": {"name": "adam", "lr": 0.01}},
    "adam-twin": {"strategy.optimizer": {"name": "adam", "lr": 0.01}},
    "hopeless": {"strategy.optimizer": {"name": "sgd", "lr": 1e-6}},
    "exploding": {"strategy.optimizer": {"name": "sgd", "lr": 1e6}},
    # passes the checks before the runs (its options are resnet's), fails when the model meets iris' rows
    "broken": {"model": {"name": "resnet"}},
}}


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def five_seeds(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    board = compare({"iris": BASE}, parse_strategies(STRATEGIES), out, seeds=5, jobs=2,
                    target="val_accuracy=0.7", metric="test_accuracy", live=False, quiet=True)
    return out, board


def test_leaderboard_has_the_issue_keys(five_seeds):
    out, board = five_seeds
    on_disk = json.loads((out / "leaderboard.json").read_text())
    assert on_disk == json.loads(json.dumps(board))
    assert {"metric", "direction", "seeds", "target", "tasks"} <= set(on_disk)
    assert (on_disk["metric"], on_disk["direction"], on_disk["seeds"]) == ("test_accuracy", "max", 5)
    assert on_disk["target"] == {"metric": "val_accuracy", "value": 0.7}
    vs_best_method = on_disk["methods"]["vs_best"]  # a constant difference: the exact test's p, not t's 0
    assert "2^(1-n) for n non-zero paired differences" in vs_best_method and "p = 0" not in vs_best_method
    # the tie tolerance the methods state is the one the comparison uses (it said 1e-12 against 5e-7)
    assert "ties within 5e-07 x" in vs_best_method and "ties within 5e-07 x" in on_disk["methods"]["prob_improvement"]
    entries = on_disk["tasks"]["iris"]["strategies"]
    assert sorted(e["name"] for e in entries) == ["adam", "adam-twin", "broken", "exploding", "hopeless"]
    for entry in entries:
        assert {"name", "runs", "failed", "rank", "metrics", "time_to_target_s", "steps_to_target", "vs_best"} <= set(entry)
        assert {"test_accuracy", "test_loss", "train_time_s"} <= set(entry["metrics"]) or entry["runs"] == 0
        for block in entry["metrics"].values():
            assert {"mean", "std", "median", "ci95", "ci_method", "values"} <= set(block)
        assert {"median", "reached", "values"} <= set(entry["time_to_target_s"])
        assert {"median", "values"} <= set(entry["steps_to_target"])
        assert {"test", "p", "p_holm", "verdict", "prob_improvement"} <= set(entry["vs_best"])
    # exploding and broken have no run that counts: listed last with no rank (docs/compare.md, ranking)
    assert [e["rank"] for e in entries] == [1, 2, 3, None, None]
    assert [e["runs"] == 0 for e in entries] == [False, False, False, True, True]
    csv_lines = (out / "leaderboard.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 5 and csv_lines[0].startswith("task,rank,strategy")


def test_statistics_agree_with_scipy_from_the_run_folders(five_seeds):
    out, board = five_seeds
    entries = {e["name"]: e for e in board["tasks"]["iris"]["strategies"]}

    def from_disk(name: str) -> list[float]:
        values = []
        for seed in range(5):
            summary = json.loads((out / "runs" / "iris" / name / f"seed-{seed}" / "summary.json").read_text())
            values.append(summary["test"]["accuracy"])
        return values

    best = entries[board["tasks"]["iris"]["best"]]
    best_values = from_disk(best["name"])
    for name in ("adam", "adam-twin", "hopeless"):
        values = from_disk(name)
        block = entries[name]["metrics"]["test_accuracy"]
        assert block["values"] == pytest.approx(values)
        assert block["mean"] == pytest.approx(np.mean(values))
        assert block["std"] == pytest.approx(np.std(values, ddof=1))
        if np.std(values) > 0:
            low, high = sps.t.interval(0.95, 4, loc=np.mean(values), scale=sps.sem(values))
            assert block["ci95"] == pytest.approx([low, high])
    hopeless = entries["hopeless"]["vs_best"]
    assert hopeless["test"] == "paired-t"
    assert hopeless["p"] == pytest.approx(sps.ttest_rel(from_disk("hopeless"), best_values).pvalue)
    assert hopeless["verdict"] == "worse" and hopeless["p_holm"] < 0.05
    assert hopeless["prob_improvement"] < 0.5
    twin = entries["adam-twin"] if best["name"] == "adam" else entries["adam"]
    assert twin["vs_best"]["verdict"] in ("indistinguishable", "best")
    assert twin["vs_best"]["p"] == 1.0 and twin["vs_best"]["prob_improvement"] == 0.5


def test_a_diverging_strategy_is_failed_with_its_reason_and_stops_nothing(five_seeds):
    _, board = five_seeds
    entries = {e["name"]: e for e in board["tasks"]["iris"]["strategies"]}
    exploding = entries["exploding"]
    assert exploding["failed"] == 5 and exploding["runs"] == 0
    assert exploding["vs_best"]["verdict"] == "all runs failed"  # no seed counts: more seeds would not help
    assert all(f["reason"].startswith("diverged: training diverged at step") for f in exploding["failures"])
    broken = entries["broken"]
    assert broken["failed"] == 5 and all("expects images" in f["reason"] for f in broken["failures"])
    assert all(entries[n]["runs"] == 5 for n in ("adam", "adam-twin", "hopeless"))


def test_time_to_target_agrees_with_metrics_jsonl(five_seeds):
    out, board = five_seeds
    for entry in board["tasks"]["iris"]["strategies"]:
        for seed, time_s, step in zip(entry["seeds"], entry["time_to_target_s"]["values"],
                                      entry["steps_to_target"]["values"], strict=True):
            jsonl = out / "runs" / "iris" / entry["name"] / f"seed-{seed}" / "metrics.jsonl"
            records = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
            hits = [r for r in records  # a diverged run records its non-finite val_accuracy as null
                    if "event" not in r and isinstance(r.get("val_accuracy"), (int, float)) and r["val_accuracy"] >= 0.7]
            assert (time_s, step) == ((hits[0]["elapsed_s"], hits[0]["step"]) if hits else (None, None))
        reached = [t for t in entry["time_to_target_s"]["values"] if t is not None]
        assert entry["time_to_target_s"]["reached"] == len(reached)
    hopeless = next(e for e in board["tasks"]["iris"]["strategies"] if e["name"] == "hopeless")
    assert hopeless["time_to_target_s"]["median"] is None  # never reached: infinite time


def test_rerun_skips_finished_runs_and_redoes_changed_ones(five_seeds, tmp_path: Path, capsys):
    out, board = five_seeds
    before = _mtimes(out / "runs")
    again = compare({"iris": BASE}, parse_strategies(STRATEGIES), out, seeds=5, jobs=1,
                    target="val_accuracy=0.7", live=False, quiet=True)
    assert _mtimes(out / "runs") == before
    assert json.dumps(again["tasks"]) == json.dumps(board["tasks"])
    # an interrupted run (status running, no summary) is resumed from its checkpoint
    partial = out / "runs" / "iris" / "hopeless" / "seed-4"
    info = json.loads((partial / "run.json").read_text())
    (partial / "run.json").write_text(json.dumps({**info, "status": "running"}))
    (partial / "summary.json").unlink()
    capsys.readouterr()
    compare({"iris": BASE}, parse_strategies(STRATEGIES), out, seeds=5, jobs=1, live=False, quiet=True)
    assert "resuming iris/hopeless/seed-4" in capsys.readouterr().out
    assert json.loads((partial / "summary.json").read_text())["status"] == "finished"
    before = _mtimes(out / "runs")
    # a changed base config: only the strategy whose resolved config changed runs again
    changed = {"strategies": {**STRATEGIES["strategies"], "adam": {"strategy.optimizer": {"name": "adam", "lr": 0.02}}}}
    capsys.readouterr()
    compare({"iris": BASE}, parse_strategies(changed), out, seeds=1, jobs=1, live=False, quiet=True)
    printed = capsys.readouterr().out
    assert "config changed (strategy.optimizer.lr: was 0.01, now 0.02): running iris/adam/seed-0 again" in printed
    after = _mtimes(out / "runs")
    assert after["iris/adam/seed-0/summary.json"] != before["iris/adam/seed-0/summary.json"]
    assert after["iris/adam-twin/seed-0/summary.json"] == before["iris/adam-twin/seed-0/summary.json"]
    # what decides no run's outcome (the output section, the thread count) changes the hash but retrains no
    # finished run (a failed one is tried again: its failure may have come of the output section, a full disk)
    recorded = {**BASE, "output": {**BASE["output"], "checkpoint": {"keep_last": 3}}, "runtime": {"num_threads": 1}}
    compare({"iris": recorded}, parse_strategies(changed), out, seeds=1, jobs=1, live=False, quiet=True)
    assert "config changed" not in capsys.readouterr().out
    finished = {key: value for key, value in after.items() if not key.startswith("iris/broken/")}
    assert {key: value for key, value in _mtimes(out / "runs").items() if key in finished} == finished
    # a step-record cadence changes what the runs' curves hold: trained again
    stepped = {**BASE, "output": {**BASE["output"], "log_every_n_steps": 2}}
    compare({"iris": stepped}, parse_strategies({"strategies": {"adam-twin": STRATEGIES["strategies"]["adam-twin"]}}),
            out, seeds=1, jobs=1, live=False, quiet=True)
    assert ("config changed (output.log_every_n_steps: was null, now 2): running iris/adam-twin/seed-0 again"
            in capsys.readouterr().out)
    # no --target: nothing was to be reached, so the count is empty, not 0
    rows = list(csv.DictReader((out / "leaderboard.csv").read_text().splitlines()))
    assert rows and all(row["target_reached"] == row["time_to_target_median_s"] == "" for row in rows)


def test_two_tasks_give_two_leaderboards_and_a_profile(tmp_path: Path):
    other = {**BASE, "data": {"source": "wine"}}
    strategies = parse_strategies({"strategies": {"adam": None, "sgd": {"strategy.optimizer": {"name": "sgd", "lr": 0.1}}}})
    board = compare({"iris": BASE, "wine": other}, strategies, tmp_path / "two", seeds=2, jobs=1,
                    target="val_loss=0.8", live=False, quiet=True)
    assert set(board["tasks"]) == {"iris", "wine"}
    profile = board["profile"]
    assert profile["tasks"] == ["iris", "wine"] and set(profile["rho"]) == {"adam", "sgd"}
    assert all(0.0 <= r <= 1.0 for rho in profile["rho"].values() for r in rho)
    assert board["target_direction"] == "min"


def test_the_printed_table_shows_no_float_noise_as_spread():
    from io import StringIO

    from rich.console import Console

    from trainlab.compare.leaderboard import metric_block
    from trainlab.compare.leaderboard_output import print_leaderboard

    def entry(name: str, values: list[float]) -> dict:
        return {"name": name, "rank": 1, "runs": len(values), "failed": 0, "failures": [],
                "metrics": {"test_accuracy": metric_block(values, list(range(len(values))))},
                "vs_best": {"test": None, "p": None, "p_holm": None, "verdict": "best", "prob_improvement": None},
                "time_to_target_s": {"median": None, "reached": 0, "values": []}}

    equal = entry("equal", [17 / 18] * 3)
    assert 0 < np.std([17 / 18] * 3, ddof=1) < 1e-15  # what numpy gives for three equal values
    assert equal["metrics"]["test_accuracy"]["std"] == 0.0  # the statistics' (stats.tied_value); the table's "0"
    spread = entry("spread", [0.5, 0.5 + 1e-5, 0.5 + 2e-5])  # tiny but real: still shown
    board = {"metric": "test_accuracy", "direction": "max", "seeds": 3, "target": None, "profile": None,
             "tasks": {"iris": {"strategies": [equal, spread]}}}
    buffer = StringIO()
    print_leaderboard(board, Console(file=buffer, width=200))
    printed = buffer.getvalue()
    assert "0.9444 ± 0 n=3" in printed and "e-16" not in printed
    assert "0.5 ± 0.000010 n=3" in printed


def _says_finished(info: Path) -> bool:
    try:
        return json.loads(info.read_text()).get("status") == "finished"
    except (OSError, ValueError):  # being replaced as it is read
        return False


@pytest.mark.slow
def test_sigkill_half_way_then_the_same_command_completes(tmp_path: Path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(iris_on_file({**BASE, "strategy": {**BASE["strategy"], "epochs": 30}})))
    strategies = tmp_path / "strategies.yaml"
    strategies.write_text(yaml.safe_dump({"strategies": {"adam": None, "sgd": {"strategy.optimizer": {"name": "sgd", "lr": 0.1}}}}))
    out = tmp_path / "cmp"
    command = [sys.executable, "-m", "trainlab.cli", "compare", str(base), "--strategies", str(strategies),
               "--seeds", "4", "--jobs", "2", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": with_repo_first(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finished_runs() -> list[Path]:
        # finished = run.json says so: it is written last, so a kill between summary.json and run.json
        # leaves a run that is (rightly) resumed, not one to keep untouched
        return [p.parent for p in out.glob("runs/*/*/*/run.json") if _says_finished(p)]

    # two runs finished (three summary.json could be one finished run and two between their summary and run.json)
    deadline = time.time() + 120
    while time.time() < deadline and len(finished_runs()) < 2 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = finished_runs()
    assert 2 <= len(finished) < 8, "the kill should land half-way"
    before = {str(p): _mtimes(p) for p in finished}
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    for folder, mtimes in before.items():
        assert _mtimes(Path(folder)) == mtimes
    board = json.loads((out / "leaderboard.json").read_text())
    assert all(e["runs"] == 4 and e["failed"] == 0 for e in board["tasks"]["base"]["strategies"])


def test_the_t_interval_of_a_bounded_metric_is_clipped_to_its_range_and_says_so():
    from trainlab.compare.leaderboard import metric_block

    values = [0.99, 1.0, 1.0]
    low, high = sps.t.interval(0.95, df=2, loc=np.mean(values), scale=sps.sem(values))
    assert high > 1.0  # the plain interval reaches past a perfect accuracy
    block = metric_block(values, [0, 1, 2], "test_accuracy")
    assert block["ci95"] == pytest.approx([low, 1.0]) and block["ci_method"] == "t, clipped to [0, 1]"
    assert metric_block(values, [0, 1, 2], "test_loss")["ci95"] == pytest.approx([low, high])  # unbounded above
    inside = metric_block([0.7, 0.8, 0.75], [0, 1, 2], "val_f1_macro")
    assert inside["ci_method"] == "t" and inside["ci95"] == pytest.approx(
        sps.t.interval(0.95, df=2, loc=0.75, scale=sps.sem([0.7, 0.8, 0.75])))


def test_a_comparison_told_to_wait_takes_the_folder_once_the_other_lets_it_go(tmp_path: Path):
    """tune workers of one study refit into one folder: the later waits instead of failing."""
    import threading

    from trainlab.compare.command import comparison_lock
    from trainlab.errors import RunDirError
    from trainlab.run_lock import RunLock

    held = RunLock(tmp_path)
    held.acquire()
    with pytest.raises(RunDirError, match="comparison folder .* is in use"), comparison_lock(tmp_path):
        pass
    threading.Timer(0.5, held.release).start()
    started = time.perf_counter()
    with comparison_lock(tmp_path, wait=True):
        waited = time.perf_counter() - started
        assert (tmp_path / ".lock").read_text() == str(os.getpid())
    assert waited >= 0.4
