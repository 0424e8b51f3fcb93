"""Save each chart of a trainlab HTML report as a PNG, for a README or a slide.

A report (``trainlab report`` or a comparison's ``report.html``) draws its charts in the browser with
plotly.js; this script opens it in headless Chromium (Debian's ``/usr/bin/chromium``, driven by
playwright, never a downloaded browser), waits until every chart is drawn, and screenshots each chart
element with the heading of its section: ``OUT/NN-<section>.png``. Nothing is fetched from the network
(the report is self-contained; any other request is refused).

    python examples/report_figures.py runs/compare-x/report.html OUT_DIR [--width 1100] [--only leaderboard ...]

Needs ``pip install playwright`` (the ``dev`` extra) and ``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

# each chart's id and the text of the nearest heading above it, in page order
CHARTS = """
() => Array.from(document.querySelectorAll("div.chart")).map((chart) => {
  let node = chart;
  while (node && !/^H[1-4]$/.test(node.tagName)) {
    node = node.previousElementSibling || node.parentElement;
  }
  return {id: chart.id, heading: node ? node.textContent.trim() : ""};
})
"""


def slug(text: str) -> str:
    """A file-name-safe form of a heading: lower case, runs of other characters as one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "chart"


def save_charts(report: Path, out: Path, width: int = 1100, only: list[str] | None = None,
                browser=None) -> list[Path]:
    """Screenshot every chart of ``report`` (whose section heading contains one of ``only``, if given).

    ``browser``: a playwright Chromium browser already launched (one process may run only one
    playwright); by default one is launched from ``/usr/bin/chromium`` and closed afterwards.
    """
    if browser is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            try:
                return save_charts(report, out, width, only, launched)
            finally:
                launched.close()
    url = report.resolve().as_uri()
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
        page.goto(url)
        page.wait_for_function("document.body.dataset.chartsRendered !== undefined", timeout=120_000)
        for number, chart in enumerate(page.evaluate(CHARTS), start=1):
            if only and not any(word in chart["heading"] for word in only):
                continue
            path = out / f"{number:02d}-{slug(chart['heading'])}.png"
            page.locator(f"#{chart['id']}").screenshot(path=str(path))
            saved.append(path)
    finally:
        page.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1100, help="browser window width in CSS pixels")
    parser.add_argument("--only", nargs="*", help="keep charts whose section heading contains one of these words")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: no report at {args.report}", file=sys.stderr)
        return 2
    if not CHROMIUM.is_file():
        print(f"error: {CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    for path in save_charts(args.report, args.out, args.width, args.only):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
