"""report.html rendered by a real headless Chromium: it shows plots and needs nothing else.

CI installs the Debian package `chromium`; without it this test skips locally and fails in CI.
"""

from __future__ import annotations

import base64
import html as html_module
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from gilbench.report import report_run
from tests.conftest import require  # skip locally, fail in CI (GILBENCH_REQUIRE_ALL=1)

from .helpers import RUN_A

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Tall enough for the decision tables, findings and all five plots down to the heat map.
HEIGHT = 9000


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = shutil.which("chromium")
    require(binary is not None, "chromium is not installed (apt-get install -y chromium)")
    assert binary is not None
    return binary


def _chromium(binary: str, tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", *arguments,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


@pytest.fixture(scope="module")
def report_html(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("html") / RUN_A.name
    return report_run(Path(shutil.copytree(RUN_A, folder))).report_html


def test_screenshot_shows_the_report_and_its_plots(
    chromium: str, report_html: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "shot.png"
    _chromium(
        chromium, tmp_path, f"--screenshot={shot}", f"--window-size=1280,{HEIGHT}",
        report_html.as_uri(),
    )
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (HEIGHT, 1280)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 500  # text, tables, and anti-aliased plot lines and heat-map fills
    # the decision tables and findings lead: the upper part of the page must be busy
    ink = (pixels[:2000].mean(axis=2) < 0.9).mean()
    assert ink > 0.05
    # the sweep's status colours made it to the screen (crashed red, timeout purple)
    for colour in ((0xD3, 0x2F, 0x2F), (0x7B, 0x1F, 0xA2)):
        close = np.abs((pixels * 255).astype(int) - np.array(colour)).max(axis=2) <= 3
        assert close.sum() > 500, colour


def test_dom_holds_the_plots_as_embedded_pngs(
    chromium: str, report_html: Path, tmp_path: Path
) -> None:
    dom = _chromium(chromium, tmp_path, "--dump-dom", report_html.as_uri()).stdout
    parser = _Images()
    parser.feed(dom)
    assert len(parser.sources) == 5
    for source in parser.sources:
        prefix = "data:image/png;base64,"
        assert source.startswith(prefix)
        assert base64.b64decode(source[len(prefix) :], validate=True).startswith(PNG_SIGNATURE)
    assert "Key findings" in dom and "Provenance" in dom


REAL_RUN = Path(__file__).resolve().parents[2] / "results" / "20261207T211359Z-5014"


def test_real_report_screenshot_is_not_blank_and_leads_with_the_decision(
    chromium: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The committed 2-core run, reported afresh and shot by Chromium: the first screen
    holds the decision tables (text and rules, not a blank page), every plot below it."""
    run = Path(shutil.copytree(REAL_RUN, tmp_path / REAL_RUN.name,
                               ignore=shutil.ignore_patterns("report.*", "summary.*", "plots")))
    html = report_run(run).report_html
    assert html.read_text().index("<h2>Decision</h2>") < html.read_text().index("Key findings")
    shot = tmp_path / "report-screenshot.png"
    _chromium(chromium, tmp_path, f"--screenshot={shot}", f"--window-size=1280,{HEIGHT}",
              html.as_uri())
    with capsys.disabled():
        print(f"\nChromium screenshot of {run.name}/report.html: {shot}")
    pixels = mpimg.imread(shot)[..., :3]
    first_screen = pixels[:1000]
    assert (first_screen.mean(axis=2) < 0.9).mean() > 0.03  # text and table rules: not blank
    assert np.unique((first_screen * 255).astype(np.uint8).reshape(-1, 3), axis=0).shape[0] > 50
    # every plot made it to the screen: tab10 blue and orange (series and builds) are there
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):
        close = np.abs((pixels * 255).astype(int) - np.array(colour)).max(axis=2) <= 3
        assert close.sum() > 500, colour


# Runs in the page once it is laid out and writes what it found into the DOM, which
# --dump-dom prints: every cell clipped (content wider than its box), every word of a
# model cell wider than the cell (so the browser broke it mid-letter), and how far the page
# itself overflows sideways (a wide table must scroll in its own box instead).
PROBE = r"""<script>
(() => {
  const found = {cells: 0, models: 0, clipped: [], broken: [], page_overflow: 0,
                 scrolling_tables: 0};
  const ruler = document.createElement("span");
  ruler.style.cssText = "position:absolute;visibility:hidden;white-space:nowrap";
  document.body.appendChild(ruler);
  for (const cell of document.querySelectorAll("td, th")) {
    found.cells += 1;
    if (cell.scrollWidth > cell.clientWidth + 1) {
      found.clipped.push(cell.textContent.slice(0, 80));
    }
  }
  for (const table of document.querySelectorAll("table")) {
    const headers = [...table.querySelectorAll("thead th")].map(th => th.textContent);
    const column = headers.indexOf("model");
    if (column < 0) continue;
    for (const row of table.querySelectorAll("tbody tr")) {
      const cell = row.children[column];
      const style = getComputedStyle(cell);
      ruler.style.font = style.font;
      const room = cell.clientWidth - parseFloat(style.paddingLeft)
                   - parseFloat(style.paddingRight);
      found.models += 1;
      for (const word of cell.textContent.split(/[\s\u200b]+/).filter(Boolean)) {
        ruler.textContent = word;
        if (ruler.getBoundingClientRect().width > room + 1) found.broken.push(word);
      }
    }
  }
  for (const box of document.querySelectorAll("div.table")) {
    if (box.scrollWidth > box.clientWidth + 1) found.scrolling_tables += 1;
  }
  const root = document.documentElement;
  found.page_overflow = root.scrollWidth - root.clientWidth;
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
})();
</script>"""


@pytest.fixture(scope="module")
def real_report_html(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The committed reference run reported afresh: long model labels (processes with a
    start method), a wide results table, a model its builds lack."""
    folder = tmp_path_factory.mktemp("real") / REAL_RUN.name
    run = Path(shutil.copytree(REAL_RUN, folder,
                               ignore=shutil.ignore_patterns("report.*", "summary.*", "plots")))
    return report_run(run).report_html


def _probe(binary: str, html: Path, tmp_path: Path, width: int) -> dict[str, object]:
    probed = tmp_path / f"probed-{width}.html"
    probed.write_text(html.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(binary, tmp_path, f"--window-size={width},900", "--dump-dom",
                    probed.as_uri()).stdout
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    return dict(json.loads(html_module.unescape(dom[start:dom.index("</pre>", start)])))


@pytest.mark.parametrize("width", [1280, 800])
def test_no_table_cell_is_clipped_and_no_model_name_broken(
    chromium: str, real_report_html: Path, tmp_path: Path, width: int
) -> None:
    """Issue 18: model names squeezed to five letters a line, the note column cut off. In
    a desktop and a narrow window alike: no cell clips its text, every word of a model
    cell fits on one line, and the page never scrolls sideways (wide tables do, in their
    own box)."""
    found = _probe(chromium, real_report_html, tmp_path, width)
    assert found["cells"] > 1000 and found["models"] > 100
    assert found["clipped"] == []
    assert found["broken"] == []
    assert found["page_overflow"] == 0
    if width == 800:
        assert found["scrolling_tables"] > 0  # the results tables are wider than that


def test_results_screenshot_for_a_person(
    chromium: str, real_report_html: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Results section alone, shot for a person to look at (path printed); the test
    checks only that the long model names and the note column are on screen."""
    text = real_report_html.read_text()
    head, body = text.split("<body>", 1)
    section = tmp_path / "results.html"
    section.write_text(head + "<body>" + body[body.index("<h2>Results</h2>"):])
    shot = tmp_path / "results-screenshot.png"
    _chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,1400",
              section.as_uri())
    with capsys.disabled():
        print(f"\nChromium screenshot of the reference run's Results: {shot}")
    pixels = mpimg.imread(shot)[..., :3]
    assert (pixels[:1400].mean(axis=2) < 0.9).mean() > 0.03
