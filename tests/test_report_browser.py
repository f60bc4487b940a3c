"""The report in a real browser: Debian's chromium, headless, loads OUT/report.html from disk (no network) and the
test reads back the DOM the page's scripts built: every section is there with content, every chart was drawn by
the embedded Plotly (an SVG with marks), every table was paged, and no script error was logged.

`.ci/run` installs chromium; a machine without it skips these tests and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# In CI (.ci/run sets up chromium) a missing browser is a failure, not a skip.
pytestmark = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason=(
    "chromium is not installed (`apt-get install -y chromium`; .ci/run installs it, so CI runs these tests)"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=15000", "--enable-logging=stderr", "--v=0"]


def chromium(*args: str, url: str) -> subprocess.CompletedProcess:
    assert CHROMIUM, "CI must have chromium: .ci/run installs it (apt-get install -y chromium)"
    with tempfile.TemporaryDirectory(prefix="qurate-chromium-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url],
                              capture_output=True, text=True, timeout=180)


class _Dom(HTMLParser):
    """The parts of the rendered DOM the test checks, by element id and class."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.sections: dict[str, list[str]] = {}  # section id -> tags seen inside it
        self.toc: list[str] = []
        self.charts: dict[str, dict[str, int]] = {}  # chart id -> counts of svg marks inside it
        self.tables: list[dict[str, int]] = []
        self._section: str | None = None
        self._chart: str | None = None
        self._chart_depth = 0
        self._in_tbody = False
        self._in_nav = False
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "body":
            self.body = a
        if tag == "nav":
            self._in_nav = True
        if self._in_nav and tag == "a" and (a.get("href") or "").startswith("#"):
            self.toc.append(a["href"][1:])
        if tag == "details" and "section" in classes:
            self._section = a["id"]
            self.sections[self._section] = []
        elif self._section:
            self.sections[self._section].append(tag + ("." + ".".join(classes) if classes else ""))
        if tag == "div" and "chart" in classes:
            self._chart, self._chart_depth = a["id"], 0
            self.charts[self._chart] = {"svg": 0, "marks": 0, "drawn": int(a.get("data-drawn") == "1")}
        elif self._chart:
            self._chart_depth += tag == "div"
            if tag == "svg" and "main-svg" in classes:
                self.charts[self._chart]["svg"] += 1
            # Plotly draws a bar as <g class="point"><path d="M...">, a line trace as <path class="js-line">.
            if (tag == "g" and "point" in classes) or (tag == "path" and "js-line" in classes):
                self.charts[self._chart]["marks"] += 1
        if tag == "tbody":
            self._in_tbody = True
            self.tables.append({"rows": 0, "hidden": 0})
        if tag == "tr" and self._in_tbody:
            self.tables[-1]["rows"] += 1
            self.tables[-1]["hidden"] += "hidden" in a

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_nav = False
        if tag == "tbody":
            self._in_tbody = False
        if self._chart and tag == "div":
            if self._chart_depth == 0:
                self._chart = None
            else:
                self._chart_depth -= 1


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory, corpus_slice):
    out = tmp_path_factory.mktemp("browser") / "out"
    assert run_cli(["run", "--input", str(corpus_slice), "--output", str(out),
                    "--stages", "langid,heuristics,dedup"]) == 0
    return out


@pytest.fixture(scope="module")
def rendered(report_dir):
    proc = chromium("--dump-dom", url=(report_dir / "report.html").as_uri())
    assert proc.returncode == 0, proc.stderr[-3000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    return dom, proc.stderr


def test_the_page_ran_its_scripts_without_error(rendered):
    dom, log = rendered
    assert dom.body.get("data-ready") == "1"  # report.js reached its end
    assert dom.body.get("data-errors") in (None, "")
    console_errors = [line for line in log.splitlines() if "CONSOLE" in line and (
        "Uncaught" in line or "Error" in line)]
    assert console_errors == []


def test_every_section_renders_with_content(rendered, report_dir):
    import json

    dom, _ = rendered
    report = json.loads((report_dir / "report.json").read_text())
    expected = {"overview", "funnel", "tokens-per-document", "sources", "languages", "components", "rejections",
                "dead-letter", "stages", "rejected-examples"} | {f"stage-{name}" for name in report["stages"]}
    assert set(report["stages"]) >= {"langid", "heuristics", "dedup"}  # and the run's other sections (export)
    assert set(dom.sections) == expected
    for name, tags in dom.sections.items():
        assert any(t.startswith(("div.chart", "table", "dl.summary", "p", "details.group", "pre")) for t in tags), \
            (name, tags[:20])
    # Every section is in the contents (plus links to the example groups of each stage).
    assert {t for t in dom.toc if not t.startswith("examples-")} == expected


def test_every_chart_is_drawn_with_marks(rendered, report_dir):
    import json

    dom, _ = rendered
    report = json.loads((report_dir / "report.json").read_text())
    stage_charts = sum(len(s.get("charts", [])) for s in report["stages"].values())
    assert len(dom.charts) >= stage_charts + 6  # funnel x2, tokens/doc, sources, languages, components
    assert int(dom.body["data-charts-drawn"]) == len(dom.charts)
    for chart_id, counts in dom.charts.items():
        assert counts["drawn"] == 1 and counts["svg"] >= 1, (chart_id, counts)
        assert counts["marks"] > 0, (chart_id, counts)


def test_long_tables_are_paged(rendered):
    dom, _ = rendered
    long_tables = [t for t in dom.tables if t["rows"] > 10]
    assert long_tables  # the slice has more than 10 sources and languages
    for t in long_tables:
        assert t["rows"] - t["hidden"] == 10  # first page shown, every row still in the page


def test_a_broken_chart_is_reported_not_hidden(report_dir, tmp_path):
    """The check above can fail: a chart whose data is not valid JSON shows as a script error in the DOM."""
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    broken, n = re.subn(r'(<script type="application/json" id="chart-[^"]*-data">)\{', r"\1{oops", page, count=1)
    assert n == 1
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    proc = chromium("--dump-dom", url=path.as_uri())
    dom = _Dom()
    dom.feed(proc.stdout)
    assert "chart" in (dom.body.get("data-errors") or "")
    assert int(dom.body["data-charts-drawn"]) == len(dom.charts) - 1


def test_the_page_needs_no_network(report_dir):
    page = Path(report_dir / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?https?:""", page)
