"""Names from the user's data are drawn as written: in ``trainlab plot``'s matplotlib figures (no mathtext
for ``$``, legend entries starting with ``_`` kept, one ``warning:`` line for characters no font has) and
in the report's Plotly charts (no pseudo-HTML, hovertemplate fields or MathJax in a strategy's name)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text
from report_fixtures import fake_comparison, fake_run

from trainlab.cli import main
from trainlab.plots import curves_figure, plot_curves, schedule_figure
from trainlab.schedules import build_schedule

DOLLAR_NAMES = ["lr_$1_$2", "$\\foo{$ run", "cost $5 to $6"]
MARKUP_NAMES = ["<b>bold<b> &amp; co", "a%{y}b $x$"]
BUNDLED_FONTS = Path(matplotlib.get_data_path(), "fonts", "ttf")


def _history(values: tuple[float, ...] = (0.9, 0.5, 0.4), metric: str = "val_loss") -> list[dict]:
    return [{"epoch": epoch, metric: value} for epoch, value in enumerate(values, start=1)]


def _run_folder(folder: Path) -> Path:
    fake_run(folder, optimizer="sgd", lr=0.1, seed=0, quality=0.9, rng=np.random.default_rng(0), epochs=3,
             predictions=False)
    return folder


def _plain_width(text: Text, figure: Figure) -> float:
    """The width of ``text``'s string drawn as plain text in ``text``'s font and rotation (matplotlib with
    mathtext off)."""
    reference = figure.text(0, 0, text.get_text(), fontproperties=text.get_fontproperties(), parse_math=False,
                            rotation=text.get_rotation())
    renderer = figure.canvas.get_renderer()
    width = reference.get_window_extent(renderer).width
    reference.remove()
    return width


# --------------------------------------------------------------------------- matplotlib: $ in names

def test_dollar_signs_in_run_names_and_the_metric_are_drawn_as_written(tmp_path):
    """``lr_$1_$2`` and ``$\\foo{$ run`` failed mathtext's parse (a ValueError, exit 4), ``cost $5 to $6`` was
    drawn as math ("cost 5*to*6" in italics): each legend text, the title and the y label now have the
    width of their string drawn as plain text, and the figure renders."""
    metric = "val_$a$"
    figure = curves_figure({name: _history(metric=metric) for name in DOLLAR_NAMES}, metric)
    plot_curves({name: _history(metric=metric) for name in DOLLAR_NAMES}, metric, tmp_path / "dollars.png")
    axes = figure.axes[0]
    figure.canvas.draw()
    texts = [*axes.get_legend().get_texts(), axes.title, axes.yaxis.label]
    assert [t.get_text() for t in texts] == [*DOLLAR_NAMES, f"{metric} by epoch", metric]
    renderer = figure.canvas.get_renderer()
    for text in texts:
        assert text.get_window_extent(renderer).width == pytest.approx(_plain_width(text, figure), abs=0.5), text


def test_trainlab_plot_draws_a_run_folder_named_with_dollars(tmp_path, capsys):
    runs = [_run_folder(tmp_path / name) for name in DOLLAR_NAMES]
    assert main(["plot", *map(str, runs), "-o", str(tmp_path / "p3.png")]) == 0
    assert capsys.readouterr().err == ""
    assert (tmp_path / "p3.png").stat().st_size > 1000


# --------------------------------------------------------------------------- matplotlib: names starting with _

def test_a_run_named_with_a_leading_underscore_is_in_the_legend(tmp_path, monkeypatch):
    """matplotlib leaves labels starting with '_' out of a legend: ``_baseline`` was missing from it."""
    from trainlab import plots

    drawn = {}
    real = plots.curves_figure
    monkeypatch.setattr(plots, "curves_figure", lambda h, m: drawn.setdefault("figure", real(h, m)))
    runs = [_run_folder(tmp_path / "_baseline"), _run_folder(tmp_path / "csv1")]
    assert main(["plot", *map(str, runs), "-o", str(tmp_path / "under.png")]) == 0
    axes = drawn["figure"].axes[0]
    legend = axes.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["_baseline", "csv1"]
    lines = {line.get_gid(): line for line in axes.get_lines()}
    # each entry's handle has its run's colour
    assert [h.get_color() for h in legend.legend_handles] == [lines["curve:_baseline"].get_color(),
                                                              lines["curve:csv1"].get_color()]


def test_a_param_group_named_with_a_leading_underscore_is_in_the_schedule_legend():
    schedule = build_schedule({"name": "constant"}, 50, 10)
    figure = schedule_figure(schedule, 50, 0.01, group_lrs={"_head": 0.1, "body": 0.01})
    shown = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert shown == ["_head (lr 0.1)", "body (lr 0.01)", "parameters no group selects (lr 0.01)"]


def test_many_runs_keep_every_name_in_the_legend_beside_the_axes():
    names = ["_a", "_b", "c", "$d$", "e", "_f"]
    figure = curves_figure({name: _history() for name in names}, "val_loss")
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == names


# --------------------------------------------------------------------------- matplotlib: characters no font has

def _charmap(file_name: str) -> set[int]:
    return set(FT2Font(str(BUNDLED_FONTS / file_name)).get_charmap())


@pytest.mark.parametrize("suffix", ["png", "pdf", "svg"])
def test_characters_no_font_has_are_one_trainlab_warning_not_matplotlib_warnings(tmp_path, capsys, suffix):
    assert not {ord("日"), ord("本")} & (_charmap("DejaVuSans.ttf") | _charmap("STIXGeneral.ttf"))
    run = _run_folder(tmp_path / "日本")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["plot", str(run), "-o", str(tmp_path / f"cjk.{suffix}")]) == 0
    assert [str(w.message) for w in caught if "Glyph" in str(w.message)] == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: the plot's fonts (DejaVu Sans, STIXGeneral)"), err
    assert "no glyph for 日 本 in its names or labels: drawn as placeholders" in err


def test_a_character_a_bundled_font_has_is_drawn_in_that_font_without_a_warning(tmp_path, capsys):
    """U+210A SCRIPT SMALL G: not in DejaVu Sans (matplotlib's default), in the bundled STIXGeneral."""
    assert 0x210A not in _charmap("DejaVuSans.ttf") and 0x210A in _charmap("STIXGeneral.ttf")
    run = _run_folder(tmp_path / "ℊ-run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["plot", str(run), "-o", str(tmp_path / "script_g.png")]) == 0
    assert [str(w.message) for w in caught if "Glyph" in str(w.message)] == []
    assert capsys.readouterr().err == ""


def test_other_warnings_while_rendering_still_reach_the_caller(tmp_path, monkeypatch):
    from trainlab import plots

    figure = curves_figure({"日": _history()}, "val_loss")
    real = Figure.savefig

    def savefig_that_warns(self, *args, **kwargs):
        warnings.warn("an unrelated warning", RuntimeWarning, stacklevel=2)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig_that_warns)
    with pytest.warns(RuntimeWarning, match="an unrelated warning"):
        plots.save_figure(figure, tmp_path / "w.png")


# --------------------------------------------------------------------------- Plotly: the report's figures

def _report(tmp_path: Path) -> Path:
    """A comparison of two strategies named with markup, template fields and $...$; the best one's class
    names hold markup too. Returns report.html."""
    from trainlab.report import write_report

    root = fake_comparison(tmp_path / "cmp", {MARKUP_NAMES[0]: ("adam", 0.003, 0.95),
                                              MARKUP_NAMES[1]: ("sgd", 0.1, 0.90)}, seeds=2, epochs=4)
    predictions = root / "runs" / "digits" / MARKUP_NAMES[0] / "seed-0" / "predictions.npz"
    arrays = dict(np.load(predictions))
    np.savez(predictions, **{**arrays, "class_names": np.array(["<i>cat</i>", "d&amp;g", "%{z}"])})
    return write_report([root], tmp_path / "report.html")


def _figures(report: Path) -> list[dict]:
    import re

    html = report.read_text()
    blocks = re.findall(r'<script type="application/json" id="figure-\d+-json">(.*?)</script>', html, re.S)
    return [json.loads(block.replace("<\\/", "</")) for block in blocks]


def test_no_name_reaches_a_plotly_text_as_markup_a_template_field_or_math(tmp_path):
    """The figure JSON, before a browser: no text Plotly draws holds a name's '<b>', '<i>', '%{y}', '%{z}',
    '$x$' or '&amp;' raw (Plotly would read them as tags, fields, MathJax or an entity)."""
    figures = _figures(_report(tmp_path))
    for trace in (trace for figure in figures for trace in figure["data"]):
        trace.pop("legendgroup", None)  # an id that ties a strategy's traces together, never drawn
    text = json.dumps(figures, ensure_ascii=False)
    for raw in ("<b>", "<i>", "%{y}b", "%{z}", "$x$", "&amp; co", "d&amp;g"):
        assert raw not in text, raw
    for escaped in ("&lt;b&gt;bold&lt;b&gt; &amp;amp; co", "a&#37;{y}b &#36;x&#36;", "&lt;i&gt;cat&lt;/i&gt;"):
        assert escaped in text, escaped


def test_every_report_figure_is_on_plotly_white_and_plotlys_default_template_is_left_as_it_was(tmp_path,
                                                                                                   monkeypatch):
    """The report's page puts plotly_white into each figure's JSON as it writes it (not validated and copied per
    figure, and no global default set): each figure's template is plotly_white, the caller's default untouched."""
    import plotly.io as pio
    from plotly.utils import PlotlyJSONEncoder

    monkeypatch.setattr(pio.templates, "default", "ggplot2")
    figures = _figures(_report(tmp_path))
    white = json.loads(json.dumps(pio.templates["plotly_white"].to_plotly_json(), cls=PlotlyJSONEncoder))
    assert len(figures) >= 4 and all(figure["layout"]["template"] == white for figure in figures)
    assert pio.templates.default == "ggplot2"


# In the browser: every text Plotly drew (legends, ticks, titles), and the style of any bold or italic tspan.
RENDERED = r"""
() => {
  const charts = Array.from(document.querySelectorAll("div[data-figure]"));
  return {
    drawn: charts.map((div) => Array.from(div.querySelectorAll("svg text")).map((t) => t.textContent)),
    styled: charts.flatMap((div) => Array.from(div.querySelectorAll("svg tspan[style]"))
      .map((t) => t.getAttribute("style")).filter((s) => /bold|italic/.test(s))),
  };
}
"""

# The lines of the hover label of a trace's first point (plotly throttles hover events: wait between them).
HOVER = r"""
async (args) => {
  const [chart, curve] = args;
  const div = document.querySelectorAll("div[data-figure]")[chart];
  const pause = () => new Promise((resolve) => setTimeout(resolve, 150));
  Plotly.Fx.unhover(div);
  await pause();
  Plotly.Fx.hover(div, [{curveNumber: curve, pointNumber: 0}], "xy");
  await pause();
  const lines = (t) => t.querySelectorAll("tspan.line").length
    ? Array.from(t.querySelectorAll("tspan.line")).map((line) => line.textContent) : [t.textContent];
  return Array.from(div.querySelectorAll("g.hoverlayer text.nums")).flatMap(lines).join(" | ");
}
"""


@pytest.mark.slow  # unpacks and runs plotly.js in chromium
def test_names_with_markup_are_shown_as_written_in_chromium(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"{chromium} is missing: run .ci/setup-chromium.sh")
    report = _report(tmp_path)
    figures = _figures(report)
    leaderboard = next(i for i, f in enumerate(figures) if "dots are seeds" in f["layout"]["title"]["text"])
    curves = next(i for i, f in enumerate(figures) if "learning curves by step" in f["layout"]["title"]["text"])
    # the leaderboard's diamonds (mean and CI) in rank order: MARKUP_NAMES[0] is the better strategy
    diamonds = [k for k, t in enumerate(figures[leaderboard]["data"]) if t["type"] == "scatter"]
    lines = [next(k for k, t in enumerate(figures[curves]["data"]) if t.get("legendgroup") == name
                  and t.get("hovertemplate")) for name in MARKUP_NAMES]
    messages: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.on("console", lambda message: messages.append(message.text))
            page.goto(report.resolve().as_uri())
            page.wait_for_function("document.body.dataset.chartsRendered !== undefined", timeout=60_000)
            assert page.evaluate("document.body.dataset.chartsRendered") == str(len(figures))
            rendered = page.evaluate(RENDERED)
            hovers = [page.evaluate(HOVER, [leaderboard, k]) for k in diamonds]
            hovers += [page.evaluate(HOVER, [curves, k]) for k in lines]
        finally:
            browser.close()
    every_text = " | ".join(text for chart in rendered["drawn"] for text in chart)
    assert rendered["styled"] == []  # no <b> or <i> of a name became bold or italic text
    for name in MARKUP_NAMES:  # in the legends, the ticks and the titles, as written
        assert name in every_text, name
    assert "confusion matrix on the test split: <b>bold<b> &amp; co, seed 0" in every_text
    for class_name in ("<i>cat</i>", "d&amp;g", "%{z}"):
        assert class_name in every_text, class_name
    # the hover labels: the name as written, then the point's own numbers ("a%{y}b" showed as "a0.982089b")
    assert [hover.split(" | ")[0] for hover in hovers] == [*MARKUP_NAMES, *MARKUP_NAMES], hovers
    assert all(" | " in hover and "%{" not in hover.split(" | ", 1)[1] for hover in hovers), hovers
    assert not any("MathJax" in message for message in messages), messages
