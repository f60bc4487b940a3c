"""``report.html``: the Jinja2 template (autoescaped) rendered with the page sections, the value formatter, and the
embedded Plotly.js and report.js (no network)."""

from __future__ import annotations

import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from qurate.pipelines.report_page import page_sections

PAGE_SIZE = 10  # table rows per page (report.js pages longer tables; every row is in the HTML)
_DATA = Path(__file__).parent / "data"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if value != value or value in (math.inf, -math.inf):
            return str(value)
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """Plotly.js as shipped in the ``plotly`` wheel's package data (the Python package is not imported)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the report's charts need the 'plotly' package (a qurate dependency)",
                                  name="plotly")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path.read_text(encoding="utf-8").replace("</script", "<\\/script")


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(_DATA)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=False, lstrip_blocks=False)
    env.filters["fmt"] = _fmt
    return env


def render_html(report: dict[str, Any]) -> str:
    from markupsafe import Markup

    template = _environment().get_template("report.html.j2")
    return template.render(report=report, sections=page_sections(report), page_size=PAGE_SIZE,
                           plotly_js=Markup(plotly_js()),
                           report_js=Markup((_DATA / "report.js").read_text(encoding="utf-8")))
