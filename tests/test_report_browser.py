"""The report in a real browser: headless Chromium (Debian's /usr/bin/chromium, installed by
.ci/setup-chromium.sh) driven by playwright. Every chart is drawn and visible, the console shows
no error, no request leaves the page, and legends stay off the plotting areas, at 1366 px width."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import SEVEN, fake_comparison, fake_run

from trainlab.report import write_report

pytestmark = pytest.mark.slow  # each page unpacks and runs plotly.js (4.8 MB): seconds per page on a busy CPU

CHROMIUM = Path("/usr/bin/chromium")
LAPTOP = {"width": 1366, "height": 900}

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing: run .ci/setup-chromium.sh (apt-get install chromium)", allow_module_level=True)

# Per chart: drawn by plotly, its size, axis titles, and whether the legend overlaps a plotting area.
INSPECT = r"""
() => {
const titles = (div, pattern) => Array.from(div.querySelectorAll("g.infolayer > g"))
  .filter((g) => pattern.test(g.getAttribute("class"))).map((g) => g.textContent);
return Array.from(document.querySelectorAll("div[data-figure]")).map((div) => {
  const box = div.getBoundingClientRect();
  const inter = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const legend = div.querySelector("g.legend");
  const areas = Array.from(div.querySelectorAll("rect.nsewdrag")).map((r) => r.getBoundingClientRect());
  const legendBox = legend ? legend.getBoundingClientRect() : null;
  return {
    id: div.id, drawn: div.classList.contains("js-plotly-plot") && !!div.querySelector("svg.main-svg"),
    width: box.width, height: box.height, right: box.right,
    xtitles: titles(div, /^g-x\d*title$/), ytitles: titles(div, /^g-y\d*title$/),
    legendOverData: !!legendBox && legendBox.width > 0 && areas.some((a) => inter(a, legendBox)),
    areas: areas.length,
  };
});
}
"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def open_report(browser, path: Path, screenshot: Path | None = None,
                viewport: dict[str, int] = LAPTOP) -> tuple[list[dict], list[str], list[str], int]:
    """(charts, console errors, requests other than the page, page scroll width) after every chart is drawn."""
    errors: list[str] = []
    requests: list[str] = []
    url = path.resolve().as_uri()
    page = browser.new_page(viewport=viewport)
    try:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url) if r.url != url else None)
        page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
        page.goto(url)
        page.wait_for_function("document.body.dataset.chartsRendered !== undefined", timeout=60_000)
        charts = page.evaluate(INSPECT)
        for chart in charts:
            assert page.locator(f"#{chart['id']}").is_visible(), chart["id"]
        width = page.evaluate("document.documentElement.scrollWidth")
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        page.close()
    return charts, errors, requests, width


def check(browser, path: Path, expected_charts: int) -> None:
    keep = os.environ.get("TRAINLAB_REPORT_SCREENSHOTS")  # a folder for full-page screenshots, for a person
    shot = Path(keep) / f"{path.stem}.png" if keep else None
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
    charts, errors, requests, width = open_report(browser, path, shot)
    assert errors == [] and requests == []
    assert len(charts) == expected_charts
    for chart in charts:
        assert chart["drawn"] and chart["width"] > 300 and chart["height"] > 200, chart
        assert chart["right"] <= LAPTOP["width"], chart  # no chart wider than the laptop screen
        # every plotting area has both axis titles
        assert chart["areas"] >= 1 and len(chart["xtitles"]) == len(chart["ytitles"]) == chart["areas"], chart
        assert all(chart["xtitles"]) and all(chart["ytitles"]), chart
        assert not chart["legendOverData"], chart
    assert width <= LAPTOP["width"]


# a chart title wider than its chart: the parts of each title outside its chart's box
CLIPPED_TITLES = r"""
() => Array.from(document.querySelectorAll(".gtitle")).filter((title) => {
  const box = title.getBoundingClientRect(), chart = title.closest(".js-plotly-plot").getBoundingClientRect();
  return box.left < chart.left - 1 || box.right > chart.right + 1;
}).map((title) => title.textContent)
"""
PHONE = {"width": 375, "height": 800}


def test_seven_strategies_by_five_seeds_in_chromium(browser, tmp_path):
    root = fake_comparison(tmp_path / "cmp", SEVEN, seeds=5)
    out = write_report([root], tmp_path / "seven.html")
    assert out.stat().st_size < 5_000_000
    check(browser, out, 9)
    # on a phone each chart keeps a desktop width in its own sideways scroll, as the tables do: at 375 px the
    # titles were cut and the three learning-curve panels overlapped their axis titles (a user trial)
    charts, errors, _, width = open_report(browser, out, viewport=PHONE)
    assert errors == [] and width <= PHONE["width"]  # the page itself does not scroll sideways
    assert all(chart["drawn"] and chart["width"] >= 760 for chart in charts), charts
    page = browser.new_page(viewport=PHONE)
    try:
        page.goto(out.resolve().as_uri())
        page.wait_for_function("document.body.dataset.chartsRendered !== undefined", timeout=60_000)
        assert page.evaluate(CLIPPED_TITLES) == []
    finally:
        page.close()


def test_two_tasks_in_chromium(browser, tmp_path):
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam", "hopeless")}, seeds=3,
                           tasks=("digits", "wine"), epochs=6)
    check(browser, write_report([root], tmp_path / "two_tasks.html"), 2 * 9 + 1)


def test_single_run_with_events_in_chromium(browser, tmp_path):
    rng = np.random.default_rng(0)
    fake_run(tmp_path / "run", optimizer="sgd", lr=0.1, seed=0, quality=0.9, rng=rng, epochs=8,
             events=[{"event": "divergence_rollback", "step": 120, "epoch": 3, "lr": 0.05}])
    check(browser, write_report([tmp_path / "run"], tmp_path / "single.html"), 4)


def test_per_label_matrices_and_per_output_residual_panels_in_chromium(browser, tmp_path):
    rng = np.random.default_rng(0)
    for name in ("tags", "prices"):
        fake_run(tmp_path / name, optimizer="adam", lr=0.01, seed=0, quality=0.9, rng=rng, epochs=4, predictions=False)
    y_true = rng.integers(0, 2, (200, 6))
    np.savez(tmp_path / "tags/predictions.npz", y_true=y_true, y_pred=np.where(rng.random((200, 6)) < 0.8, y_true, 0),
             class_names=np.array(["red", "big", "new", "old", "cheap", "rare"]))
    y = np.stack([5e5 + 1e5 * rng.standard_normal(300), 0.01 * rng.standard_normal(300)], axis=1)
    np.savez(tmp_path / "prices/predictions.npz", y_true=y, y_pred=y + [1e4, 1e-3] * rng.standard_normal((300, 2)))
    check(browser, write_report([tmp_path / "tags"], tmp_path / "tags.html"), 4)
    check(browser, write_report([tmp_path / "prices"], tmp_path / "prices.html"), 4)


def test_the_tune_report_in_chromium(browser, tmp_path):
    """tune's report.html is a Page as compare's: plotly.js unpacked once, every optuna chart drawn."""
    from tests.test_tune import settings
    from trainlab.tune import tune

    tune(settings(tmp_path, 4, pruner="median"))
    report = tmp_path / "out" / "report.html"
    charts, errors, requests, width = open_report(browser, report)
    assert errors == [] and requests == [] and width <= LAPTOP["width"]
    assert len(charts) == 4  # history, parallel coordinates, slices, intermediate values
    assert all(chart["drawn"] and chart["height"] > 200 for chart in charts), charts


def test_report_figures_script_saves_every_chart_as_a_png(browser, tmp_path):
    """examples/report_figures.py: one PNG per chart, named after its section, each a chart-sized image."""
    import importlib.util

    from PIL import Image

    script = Path(__file__).resolve().parent.parent / "examples" / "report_figures.py"
    spec = importlib.util.spec_from_file_location("report_figures", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=3)
    report = write_report([root], tmp_path / "two.html")
    saved = module.save_charts(report, tmp_path / "png", width=1000, browser=browser)
    assert len(saved) == 9  # every chart of a one-task comparison (as in the seven-strategy page)
    assert [p.name[:3] for p in saved] == [f"{i:02d}-" for i in range(1, 10)]
    assert any("leaderboard" in p.name for p in saved) and any("learning-curves" in p.name for p in saved)
    for path in saved:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200, (path, image.size)
            assert len(np.unique(np.asarray(image.convert("L")))) > 10, path  # drawn, not a blank rectangle
    only = module.save_charts(report, tmp_path / "only", only=["leaderboard"], browser=browser)
    assert only and all("leaderboard" in p.name for p in only)


# Names of up to 195 characters: the leaderboard table within its column, the plots their size, labels distinct.
LAYOUT = r"""
() => {
const table = document.querySelector("div.table-wrap table");
const wrap = table.parentElement;
return {
  tableFits: table.scrollWidth <= wrap.clientWidth + 1,
  charts: Array.from(document.querySelectorAll("div[data-figure]")).map((div) => {
    const box = div.getBoundingClientRect();
    const legend = div.querySelector("g.legend");
    return {
      id: div.id,
      areaHeights: Array.from(div.querySelectorAll("rect.nsewdrag")).map((r) => r.getBoundingClientRect().height),
      ticks: Array.from(div.querySelectorAll("g.xtick text")).map((t) => t.textContent),
      legendInside: !legend || legend.getBoundingClientRect().right <= box.right + 1,
      legendNames: legend ? Array.from(legend.querySelectorAll("text.legendtext")).map((t) => t.textContent) : [],
    };
  }),
};
}
"""


def test_long_strategy_names_keep_the_layout_and_stay_distinct_in_chromium(browser, tmp_path):
    """Strategy names of ~190 characters (a comparison allows 195): the table's strategy column filled the
    page (its numbers off-screen), the rotated names squeezed the CI chart's plot to ~50 px, and names cut
    to the page's width read alike. Now the table wraps them, and the charts show distinct short labels."""
    stem = "adam_with_a_very_long_descriptive_name_" * 4
    names = {stem + "lr=0.001_" + "x" * 25: ("adam", 0.001, 0.95), stem + "lr=0.003_" + "x" * 25: ("adam", 0.003, 0.96),
             stem + "x" * 34: ("sgd", 0.1, 0.90), stem + "y" * 34: ("sgd", 0.05, 0.92), "sgd": ("sgd", 0.1, 0.9)}
    assert all(len(name) <= 195 for name in names)
    root = fake_comparison(tmp_path / "cmp", names, seeds=3, target=None, epochs=4)
    out = write_report([root], tmp_path / "long.html")
    check(browser, out, 7)
    page = browser.new_page(viewport=LAPTOP)
    try:
        page.goto(out.resolve().as_uri())
        page.wait_for_function("document.body.dataset.chartsRendered !== undefined", timeout=60_000)
        layout = page.evaluate(LAYOUT)
    finally:
        page.close()
    assert layout["tableFits"]
    ci_chart = layout["charts"][0]
    assert min(ci_chart["areaHeights"]) > 200, ci_chart  # the plot keeps its height under the rotated labels
    assert len(set(ci_chart["ticks"])) == len(names), ci_chart  # one distinct label per strategy
    for chart in layout["charts"]:
        assert chart["legendInside"], chart
        assert len(set(chart["legendNames"])) == len(chart["legendNames"]), chart


def test_leaderboard_notes_and_runs_left_out_of_the_gap_in_chromium(browser, tmp_path):
    """leaderboard.json's notes above the table (one of them a long unbroken word) stay within the screen, and a
    strategy whose seeds all diverged leaves the gap chart drawn from the others."""
    import json

    root = fake_comparison(tmp_path / "cmp", {k: SEVEN[k] for k in ("sgd", "adam")}, seeds=3, target=None, epochs=4)
    for run in root.glob("runs/digits/sgd/seed-*"):
        (run / "summary.json").write_text(json.dumps({"name": "digits-mlp", "status": "diverged", "steps": 9,
                                                      "reason": "training diverged at step 5: non-finite loss (nan)"}))
        (run / "run.json").write_text(json.dumps({"format": 1, "status": "diverged"}))
    board = json.loads((root / "leaderboard.json").read_text())
    board["notes"] = ["--metric test_loss compares strategies training different losses: " + "x" * 400]
    (root / "leaderboard.json").write_text(json.dumps(board))
    out = write_report([root], tmp_path / "notes.html")
    assert out.read_text().count('<p class="caveat">') == 1
    check(browser, out, 7)


def test_a_long_folder_path_wraps_on_a_phone_and_short_names_stay_whole_in_chromium(browser, tmp_path):
    """A user trial: the subtitle's folder path, unbroken, widened the page at 375 px (484 px), and the table's
    'overflow-wrap: anywhere' let chromium squeeze a short name's column ('label_smoot|h' at 1280 px)."""
    deep = tmp_path / ("experiments_2026_december_" * 3) / "compare-wine-optimizers-with-a-long-folder-name"
    names = {"label_smooth": ("adam", 0.001, 0.95), "huber_adam": ("adam", 0.003, 0.96), "sgd": ("sgd", 0.1, 0.9),
             "x" * 195: ("sgd", 0.05, 0.92)}  # one unbroken name of the longest a comparison takes
    root = fake_comparison(deep, names, seeds=2, target=None, epochs=3)
    out = write_report([root], tmp_path / "deep.html")
    assert str(root.resolve()) in out.read_text()
    _, errors, _, width = open_report(browser, out, viewport=PHONE)
    assert errors == [] and width <= PHONE["width"]
    page = browser.new_page(viewport=PHONE)  # the long name's column leaves the first number on the screen
    try:
        page.goto(out.resolve().as_uri())
        page.wait_for_function("document.body.dataset.chartsRendered !== undefined", timeout=60_000)
        first_number = page.evaluate("""() => document.querySelector(
            "div.table-wrap table tr:nth-child(2) td:nth-child(3)").getBoundingClientRect().left""")  # the mean
    finally:
        page.close()
    assert first_number < PHONE["width"], first_number
    page = browser.new_page(viewport=LAPTOP)
    try:
        page.goto(out.resolve().as_uri())
        page.wait_for_function("document.body.dataset.chartsRendered !== undefined", timeout=60_000)
        heights = page.evaluate("""() => Array.from(document.querySelectorAll("table .name")).map((el) => [
            el.textContent, el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)])""")
    finally:
        page.close()
    short = {name for name in names if len(name) < 20}
    assert {text for text, _ in heights} >= short and all(lines < 1.5 for text, lines in heights if text in short)
