"""The mixture report: ``OUT/report.json`` (data) and a self-contained ``OUT/report.html``: a navigable page with
a table of contents, collapsible sections, paged/sortable/filterable tables and interactive charts drawn by an
embedded copy of Plotly.js (from the ``plotly`` wheel; no network). Built from the run's summed stats, manifest and
a few small columns of its output files, so ``qurate report OUT`` rebuilds it.

Stage sections come from each stage's ``report(stats, config)``, a JSON-able dict with optional ``summary``
(key -> value), ``tables`` (``{"title", "columns", "rows"}``), ``charts`` (``{"title", "kind": "bar"|"line",
"x", "series": {name: [values]}, "xlabel", "ylabel"}``), ``notes`` and ``examples`` (``{"title", "text"}``).
The page is rendered by Jinja2 with autoescape: every text from a run is escaped.

The pieces: ``report_stages`` (stage sections), ``report_files`` (columns of the output files), ``report_page``
(the page's sections as data) and ``report_html`` (rendering); this module assembles ``report.json`` and writes both.
"""

from __future__ import annotations

import json
from typing import Any

from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.manifest import read_manifest, redact
from qurate.pipelines.report_files import file_columns
from qurate.pipelines.report_html import render_html
from qurate.pipelines.report_stages import export_section, stage_sections
from qurate.pipelines.stats import read_stats
from qurate.stats import Stats, select


def _rejected_examples(stats: Stats) -> list[dict[str, Any]]:
    """The few rejected docs per (stage, rule) that the run picked (``PickExamples`` in run.py)."""
    return [{"stage": stage, "rule": rule, "id": doc_id, "reason": reason, "text": text}
            for (_, _, stage, rule, doc_id, reason, text) in sorted(select(stats, "example"))]


def build_report(out_dir: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    manifest = manifest if manifest is not None else read_manifest(out_dir)
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
    later: int | None = 0
    for row in reversed(funnel):
        row["tokens_kept"] = None if later is None else base + later
        stage_row = next((s for s in manifest["stages"] if s["stage"] == row["stage"]), None)
        removed = stage_row["rejected_tokens"] if stage_row else 0
        # output.count_rejected_tokens=false: what a stage removed is not known, nor what was kept before it
        later = None if later is None or removed is None else later + removed
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
    components = [{"component": name, "value": c.get("value"), "docs": c["docs"], "rows": c["rows"],
                   "tokens": c["tokens"], "shards": len(c["shards"])}
                  for name, c in sorted(manifest["components"].items())]
    files = file_columns(out_dir)
    return redact({
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
        "stages": {**stage_sections(manifest, stats), **export_section(manifest)},
        "examples": _rejected_examples(stats),
        "tokens_per_doc": files["tokens_per_doc"],
        "sources": files["sources"],
        "dead_letter_reasons": files["dead_letter_reasons"],
    })


def write_report(out_dir: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Writes ``report.json`` and ``report.html``, each whole or not at all (temporary name, then rename).
    ``manifest``: the run's, before it is written (the manifest is the last file a run writes)."""
    from qurate.pipelines.shards import write_atomic

    report = build_report(out_dir, manifest)
    write_atomic(FileSystems.join(out_dir, "report.json"),
                 json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"))
    write_atomic(FileSystems.join(out_dir, "report.html"), render_html(report).encode("utf-8"))
    return report
