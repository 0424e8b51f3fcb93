"""A self-contained HTML page: sections of prose, tables and plotly figures, with plotly.js inline once.

Nothing in the page refers to another file or host: styles and scripts are inline, figures are
JSON inside ``<script type="application/json">`` blocks, and plotly.js itself (about 4.8 MB as
shipped with plotly.py) is embedded once, gzip-compressed and base64-encoded (about 2 MB), and
unpacked in the browser with the standard ``DecompressionStream`` (Chrome 80+, Firefox 113+,
Safari 16.4+). After every chart is drawn, ``<body data-charts-rendered="N">`` is set; a chart
that fails to draw is replaced by a visible message and logged with ``console.error``.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.utils import PlotlyJSONEncoder

PLOTLY_CONFIG = {"responsive": True, "displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}

STYLE = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#d9dde5; --band:#f4f6f9; --accent:#2a62c9; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink);
       background:#fff; }
main { max-width: 1280px; margin: 0 auto; padding: 20px 24px 60px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-top: 8px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
/* a long folder path in the subtitle wraps: unbroken, it widened the whole page on a phone (484 px at 375) */
p.lead, p.note { color: var(--muted); margin: 4px 0 10px; overflow-wrap: anywhere; }
/* a caveat about the whole page (leaderboard.json's notes): where it cannot be missed */
p.caveat { margin: 12px 0; padding: 8px 12px; border-left: 4px solid #c98a00; background: #fff7e0; overflow-wrap: anywhere; }
nav { margin: 8px 0 0; } nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
/* a chart keeps a desktop width on a phone and scrolls sideways, as the tables do: at 375 px its title (up to
   ~700 px) was cut and the three learning-curve panels overlapped their axis titles */
.chart-wrap { overflow-x: auto; }
.chart { width: 100%; min-width: 760px; min-height: 120px; margin: 6px 0 18px; }
.chart-error { color: #b00020; border: 1px solid #b00020; padding: 8px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #eef6ee; }
/* a name of up to 195 characters wraps within its column; the numbers beside it stay on the screen. break-word,
   not anywhere: a name's word still counts whole in the column's width, so the table does not squeeze a short
   name that fits ('label_smooth' broke as 'label_smoot|h' at 1280 px); at most 40% of a phone's width */
.name { display: block; min-width: 6em; max-width: min(22em, 40vw); overflow-wrap: break-word; }
.reason { display: block; max-width: 60em; overflow-wrap: anywhere; }
code, pre { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--band); padding: 10px 12px; overflow-x: auto; border-radius: 4px; max-height: 640px; }
details { margin: 6px 0 12px; } summary { cursor: pointer; color: var(--accent); }
.verdict-best { color: #1b7a1b; font-weight: 600; } .verdict-worse { color: #b00020; }
.verdict-indistinguishable { color: #8a6d00; } .verdict-worse-on-every-seed { color: #a0446b; }
.verdict-better-on-every-seed { color: #1b5e9e; } .verdict-better { color: #1b5e9e; font-weight: 600; }
.verdict-all-runs-failed { color: #b00020; } .verdict-not-run { color: #666; }
"""

# Unpacks plotly.js once, then draws each figure from its JSON block, in page order.
LOADER = """
(async function () {
  const charts = Array.from(document.querySelectorAll("div.chart[data-figure]"));
  try {
    const packed = document.getElementById("plotly-js-gzip-base64").textContent.trim();
    const bytes = Uint8Array.from(atob(packed), (c) => c.charCodeAt(0));
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const code = await new Response(stream).text();
    const script = document.createElement("script");
    script.textContent = code;
    document.head.appendChild(script);
  } catch (error) {
    console.error("report: cannot unpack plotly.js: " + error);
    for (const div of charts) {
      div.className = "chart-error";
      div.textContent = "This browser cannot unpack the embedded charting library (needs DecompressionStream).";
    }
    return;
  }
  const config = CONFIG;
  let drawn = 0;
  for (const div of charts) {
    try {
      const figure = JSON.parse(document.getElementById(div.dataset.figure).textContent);
      await Plotly.newPlot(div, figure.data, figure.layout, config);
      drawn += 1;
    } catch (error) {
      console.error("report: chart " + div.id + " failed: " + error);
      div.className = "chart-error";
      div.textContent = "This chart could not be drawn: " + error;
    }
  }
  document.body.dataset.chartsRendered = String(drawn);
})();
"""


@cache
def packed_plotly_js() -> str:
    """plotly.js gzip-compressed (level 9) then base64-encoded, computed once per process."""
    return base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode("ascii")


def _script_safe(text: str) -> str:
    """JSON that cannot end its <script> block early (``</`` -> ``<\\/``, valid in JSON strings)."""
    return text.replace("</", "<\\/")


@cache
def _template_json(name: str) -> dict[str, Any]:
    """Plotly's registered template ``name`` as JSON data, made once a process (read-only: shared by figures)."""
    return json.loads(json.dumps(pio.templates[name].to_plotly_json(), cls=PlotlyJSONEncoder))


@dataclass
class Page:
    """An HTML document under construction; blocks are appended in reading order."""

    title: str
    subtitle: str = ""
    blocks: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (id, figure JSON)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (anchor, heading) for the contents line
    # a registered Plotly template every figure is drawn on, put in each figure's JSON as it is written (a
    # figure's template="plotly_white" deep-copies and validates the whole template: 17-40 ms a figure);
    # None: each figure's own
    template: str | None = None

    def heading(self, text: str, level: int = 2) -> None:
        if level == 2:
            anchor = f"s{len(self.sections) + 1}"
            self.sections.append((anchor, text))
            self.blocks.append(f'<h2 id="{anchor}">{html.escape(text)}</h2>')
        else:
            self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str = "note") -> None:
        self.blocks.append(f'<p class="{css}">{html.escape(text)}</p>')

    def raw(self, markup: str) -> None:
        self.blocks.append(markup)

    def figure(self, figure: go.Figure) -> None:
        number = len(self.figures) + 1
        data_id = f"figure-{number}-json"
        drawn: go.Figure | dict[str, Any] = figure
        if self.template is not None:
            drawn = figure.to_dict()
            drawn["layout"]["template"] = _template_json(self.template)
        self.figures.append((data_id, _script_safe(pio.to_json(drawn, validate=False, remove_uids=True))))
        self.blocks.append(f'<div class="chart-wrap"><div class="chart" id="chart-{number}" data-figure="{data_id}">'
                           '</div></div>')

    def table(self, header: list[str], rows: list[list[Any]], row_classes: list[str] | None = None,
              numeric: set[int] | None = None) -> None:
        numeric = numeric or set()
        head = "".join(f"<th>{h if isinstance(h, Markup) else html.escape(str(h))}</th>" for h in header)
        body = []
        for index, row in enumerate(rows):
            css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
            cells = "".join(_cell(cell, i in numeric) for i, cell in enumerate(row))
            body.append(f"<tr{css}>{cells}</tr>")
        self.blocks.append(f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
                           f'<tbody>{"".join(body)}</tbody></table></div>')

    def preformatted(self, text: str, summary: str | None = None) -> None:
        block = f"<pre>{html.escape(text)}</pre>"
        self.blocks.append(f"<details><summary>{html.escape(summary)}</summary>{block}</details>" if summary else block)

    def render(self) -> str:
        subtitle = self.subtitle
        contents = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in self.sections)
        data = "\n".join(f'<script type="application/json" id="{i}">{j}</script>' for i, j in self.figures)
        loader = LOADER.replace("CONFIG", json.dumps(PLOTLY_CONFIG)) if self.figures else ""
        packed = (f'<script type="application/octet-stream" id="plotly-js-gzip-base64">{packed_plotly_js()}'
                  "</script>") if self.figures else ""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>\n<body><main>"
            f"<h1>{html.escape(self.title)}</h1>"
            + (f'<p class="lead">{html.escape(subtitle)}</p>' if subtitle else "")
            + f"<nav>{contents}</nav>\n" + "\n".join(self.blocks)
            + f"</main>\n{data}\n{packed}\n<script>{loader}</script></body></html>\n"
        )


class Markup(str):
    """A table cell (or header) already written as HTML (not escaped again)."""


def wrapped(text: str, css: str = "name") -> Markup:
    """``text`` as a cell that wraps anywhere within the width of ``css`` (``name``: a strategy or run name,
    up to 195 characters without a space; ``reason``: a failure's reason), so it never widens the table
    past the screen."""
    return Markup(f'<span class="{css}">{html.escape(str(text))}</span>')


def _cell(value: Any, numeric: bool) -> str:
    text = value if isinstance(value, Markup) else html.escape(str(value))
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"
