"""The mixture report: ``OUT/report.json`` (data) and a self-contained ``OUT/report.html`` (plots embedded as
PNG data URIs, no network). Built from the run's summed stats and manifest, so ``qurate report OUT`` rebuilds it.

Stage sections come from each stage's ``report_section(stats)``, a JSON-able dict with optional ``summary``
(key -> value), ``tables`` (``{"title", "columns", "rows"}``), ``charts`` (``{"title", "kind": "bar"|"line",
"x", "series": {name: [values]}, "xlabel", "ylabel"}``) and ``notes``. All text is HTML-escaped here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from typing import Any

from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.manifest import read_manifest
from qurate.pipelines.stats import Stats, read_stats, select

LOG = logging.getLogger(__name__)


def _rejected_examples(stats: Stats) -> list[dict[str, Any]]:
    """The few rejected docs per (stage, rule) that the run picked (``PickExamples`` in run.py)."""
    return [{"stage": stage, "rule": rule, "id": doc_id, "reason": reason, "text": text}
            for (_, _, stage, rule, doc_id, reason, text) in sorted(select(stats, "example"))]


def _stage_sections(manifest: dict[str, Any], stats: Stats) -> dict[str, Any]:
    from qurate.pipelines import stages as registry
    from qurate.pipelines.recipe import parse_recipe

    sections: dict[str, Any] = {}
    recipe = parse_recipe(manifest["recipe"])
    for row in manifest["stages"]:
        name = row["stage"]
        try:
            stage = registry.build(name, recipe)
            section = stage.report_section(select(stats, "stage", name))
        except Exception as err:  # a report must still come out if one section cannot be built
            LOG.warning("report section for %s failed: %s", name, err)
            section = {"notes": [f"section could not be built: {err}"]}
        if section:
            sections[name] = section
    return sections


def build_report(out_dir: str) -> dict[str, Any]:
    manifest = read_manifest(out_dir)
    stats = read_stats(out_dir)
    read_kept = select(stats, "funnel", "read").get(("kept",), {})
    funnel = [{"stage": "read", "docs_in": manifest["input"]["records"], "kept": read_kept.get("docs", 0),
               "rejected": 0, "dead_letter": manifest["conservation"]["dead_letter"]
               - sum(s["dead_letter"] for s in manifest["stages"]), "chars_kept": read_kept.get("chars", 0)}]
    for row in manifest["stages"]:
        kept = select(stats, "funnel", row["stage"]).get(("kept",), {})
        funnel.append({"stage": row["stage"], "docs_in": row["in"], "kept": row["kept"], "rejected": row["rejected"],
                       "dead_letter": row["dead_letter"], "chars_kept": kept.get("chars", 0)})
    # Tokens kept after each stage: the final tokens plus what every later stage rejected (exact unless a
    # stage rewrites text). Final tokens here exclude EOS and up-sampled repeats.
    eos = 1 if manifest["tokenizer"]["append_eos"] and manifest["tokenizer"]["eos_id"] is not None else 0
    base = sum(v.get("tokens", 0) - v.get("repeat_tokens", 0) for v in select(stats, "written", "mixture").values())
    base -= eos * manifest["totals"]["docs"]
    later = 0
    for row in reversed(funnel):
        row["tokens_kept"] = base + later
        stage_row = next((s for s in manifest["stages"] if s["stage"] == row["stage"]), None)
        later += stage_row["rejected_tokens"] if stage_row else 0
    languages = sorted(
        ({"lang": k[0], "docs": v.get("docs", 0), "tokens": v.get("tokens", 0)}
         for k, v in select(stats, "final", "lang").items()),
        key=lambda r: -r["tokens"])
    rejections = sorted(
        ({"stage": k[0], "rule": k[2], "docs": v["docs"], "chars": v.get("chars", 0)}
         for k, v in select(stats, "rejected").items() if k[1] == "rule"),
        key=lambda r: (r["stage"], -r["docs"]))
    rejected_langs = sorted(
        ({"stage": k[0], "lang": k[2], "docs": v["docs"]} for k, v in select(stats, "rejected").items()
         if k[1] == "lang"), key=lambda r: (r["stage"], -r["docs"]))
    components = [{"component": name, "docs": c["docs"], "rows": c["rows"], "tokens": c["tokens"],
                   "shards": len(c["shards"])} for name, c in sorted(manifest["components"].items())]
    return {
        "title": "qurate mixture report",
        "created": manifest["created"],
        "runner": manifest["runner"],
        "recipe_fingerprint": manifest["recipe_fingerprint"],
        "totals": manifest["totals"],
        "conservation": manifest["conservation"],
        "funnel": funnel,
        "languages": languages,
        "components": components,
        "rejections": rejections,
        "rejected_languages": rejected_langs,
        "stages": _stage_sections(manifest, stats),
        "examples": _rejected_examples(stats),
    }


# ---------------------------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.25rem .5rem}
th{background:#f4f4f4;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#0a7d28;font-weight:600}.bad{color:#b00020;font-weight:600}.muted{color:#666}
pre{white-space:pre-wrap;background:#f8f8f8;padding:.5rem;border:1px solid #eee;max-height:12rem;overflow:auto}
img{max-width:100%}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _e(value)


def _table(columns: list[str], rows: list[Any], title: str | None = None) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = row if isinstance(row, (list, tuple)) else [row.get(c) for c in columns]
        body.append("<tr>" + "".join(
            f"<td class='n'>{_fmt(v)}</td>" if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{_e(v)}</td>" for v in cells) + "</tr>")
    caption = f"<h3>{_e(title)}</h3>" if title else ""
    return f"{caption}<table><tr>{head}</tr>{''.join(body)}</table>"


def _chart(chart: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = chart.get("x", [])
    series = chart.get("series", {})
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=90)
    if chart.get("kind", "bar") == "bar":
        n = max(1, len(series))
        width = 0.8 / n
        for i, (name, values) in enumerate(series.items()):
            ax.bar([j + i * width for j in range(len(values))], values, width=width, label=str(name))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(x))])
        ax.set_xticklabels([str(v) for v in x], rotation=30 if len(x) > 6 else 0, ha="right" if len(x) > 6
                           else "center", fontsize=8)
    else:
        for name, values in series.items():
            style = chart.get("styles", {}).get(name, "-")
            ax.plot(x[: len(values)], values, style, label=str(name))
    if chart.get("log"):
        ax.set_yscale("log")
    ax.set_title(str(chart.get("title", "")), fontsize=10)
    ax.set_xlabel(str(chart.get("xlabel", "")))
    ax.set_ylabel(str(chart.get("ylabel", "")))
    if len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f"<img alt='{_e(chart.get('title', 'chart'))}' src='data:image/png;base64,{data}'>"


def _section(name: str, section: dict[str, Any]) -> str:
    parts = [f"<h2>Stage: {_e(name)}</h2>"]
    if section.get("summary"):
        parts.append(_table(["measure", "value"], list(section["summary"].items())))
    for chart in section.get("charts", []):
        parts.append(_chart(chart))
    for table in section.get("tables", []):
        parts.append(_table(table["columns"], table["rows"], table.get("title")))
    for note in section.get("notes", []):
        parts.append(f"<p class='muted'>{_e(note)}</p>")
    for ex in section.get("examples", []):
        parts.append(f"<p><b>{_e(ex.get('title', ''))}</b></p><pre>{_e(ex.get('text', ''))}</pre>")
    return "\n".join(parts)


def render_html(report: dict[str, Any]) -> str:
    c = report["conservation"]
    ok = "<span class='ok'>holds</span>" if c["ok"] else "<span class='bad'>VIOLATED</span>"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(report['title'])}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(report['title'])}</h1>",
        f"<p class='muted'>{_e(report['created'])} · runner {_e(report['runner'])} · recipe "
        f"{_e(report['recipe_fingerprint'])}</p>",
        _table(["measure", "value"], list(report["totals"].items())),
        f"<p>Conservation: records read {c['records_read']:,} + added {c['added_by_stages']:,} = kept "
        f"{c['kept']:,} + rejected {sum(c['rejected'].values()):,} + dead-letter {c['dead_letter']:,}: {ok}</p>",
        "<h2>Funnel</h2>",
    ]
    funnel = report["funnel"]
    parts.append(_chart({"title": "Documents and tokens kept after each stage", "kind": "bar",
                         "x": [f["stage"] for f in funnel],
                         "series": {"docs kept": [f["kept"] for f in funnel]}}))
    parts.append(_chart({"title": "Tokens kept after each stage", "kind": "bar", "x": [f["stage"] for f in funnel],
                         "series": {"tokens kept": [f["tokens_kept"] for f in funnel]}}))
    parts.append(_table(["stage", "docs_in", "kept", "rejected", "dead_letter", "chars_kept", "tokens_kept"],
                        funnel))
    parts.append("<h2>Languages (final mixture)</h2>")
    langs = report["languages"][:30]
    if langs:
        parts.append(_chart({"title": "Tokens per language", "kind": "bar", "x": [r["lang"] for r in langs],
                             "series": {"tokens": [r["tokens"] for r in langs]}}))
    parts.append(_table(["lang", "docs", "tokens"], report["languages"]))
    parts.append("<h2>Mixture components</h2>")
    comps = report["components"]
    if comps:
        parts.append(_chart({"title": "Tokens per component", "kind": "bar", "x": [r["component"] for r in comps],
                             "series": {"tokens": [r["tokens"] for r in comps]}}))
    parts.append(_table(["component", "docs", "rows", "tokens", "shards"], comps))
    if report["rejections"]:
        parts.append("<h2>Rejections by rule</h2>")
        parts.append(_table(["stage", "rule", "docs", "chars"], report["rejections"]))
    for name, section in report["stages"].items():
        parts.append(_section(name, section))
    if report["examples"]:
        parts.append("<h2>Rejected examples</h2>")
        for ex in report["examples"]:
            parts.append(f"<p><b>{_e(ex['stage'])}</b> · {_e(ex['id'])} · {_e(ex['reason'])}</p>"
                         f"<pre>{_e(ex['text'])}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: str) -> dict[str, Any]:
    report = build_report(out_dir)
    with FileSystems.create(FileSystems.join(out_dir, "report.json")) as handle:
        handle.write(json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"))
    with FileSystems.create(FileSystems.join(out_dir, "report.html")) as handle:
        handle.write(render_html(report).encode("utf-8"))
    return report
