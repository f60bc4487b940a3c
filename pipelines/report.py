"""The mixture report: ``OUT/report.json`` (data) and a self-contained ``OUT/report.html``: a navigable page with
a table of contents, collapsible sections, paged/sortable/filterable tables and interactive charts drawn by an
embedded copy of Plotly.js (from the ``plotly`` wheel; no network). Built from the run's summed stats, manifest and
a few small columns of its output files, so ``qurate report OUT`` rebuilds it.

Stage sections come from each stage's ``report(stats, config)``, a JSON-able dict with optional ``summary``
(key -> value), ``tables`` (``{"title", "columns", "rows"}``), ``charts`` (``{"title", "kind": "bar"|"line",
"x", "series": {name: [values]}, "xlabel", "ylabel"}``), ``notes`` and ``examples`` (``{"title", "text"}``).
The page is rendered by Jinja2 with autoescape: every text from a run is escaped.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.manifest import read_manifest, redact
from qurate.pipelines.stats import read_stats
from qurate.spec import report_section
from qurate.stats import Stats, select

LOG = logging.getLogger(__name__)


def _rejected_examples(stats: Stats) -> list[dict[str, Any]]:
    """The few rejected docs per (stage, rule) that the run picked (``PickExamples`` in run.py)."""
    return [{"stage": stage, "rule": rule, "id": doc_id, "reason": reason, "text": text}
            for (_, _, stage, rule, doc_id, reason, text) in sorted(select(stats, "example"))]


class _SectionsOnly:
    """``recipe.section(name)`` for a recipe that no longer validates as a whole: the stage's own section if it
    validates, else the stage's defaults."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def section(self, name: str) -> Any:
        from qurate.pipelines import registry

        config = registry.get(name).config
        try:
            return config.model_validate(self.data.get(name) or {})
        except Exception:
            return config()


def _stage_sections(manifest: dict[str, Any], stats: Stats) -> dict[str, Any]:
    """Each stage's section from its spec's pure ``report(stats, config)``: no PTransform is built here."""
    from qurate.pipelines import registry
    from qurate.pipelines.recipe import RecipeError, parse_recipe

    sections: dict[str, Any] = {}
    try:
        recipe = parse_recipe(manifest["recipe"])
    except RecipeError as err:  # a run by another qurate version: each section from its stage's own key
        LOG.warning("the run's recipe does not validate here (%s); stage sections use each section alone", err)
        recipe = _SectionsOnly(manifest["recipe"])
    specs = registry.by_name()
    for row in manifest["stages"]:
        name = row["stage"]
        spec = specs.get(name)
        if spec is None:
            sections[name] = {"notes": [f"stage {name!r} is not installed here; its section cannot be built"]}
            continue
        try:
            section = report_section(spec, select(stats, "stage", name), recipe.section(name))
        except Exception as err:  # a report must still come out if one section cannot be built
            LOG.warning("report section for %s failed: %s", name, err)
            section = {"notes": [f"section could not be built: {err}"]}
        if section:
            sections[name] = section
    return sections


def _export_section(manifest: dict[str, Any]) -> dict[str, Any]:
    """The trainer exports' section (packing waste, split docs, weights, blend lines), listed after the stages."""
    from qurate.pipelines.packing import report_section

    section = report_section(manifest.get("export") or {})
    return {"export": section} if section else {}


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
    components = [{"component": name, "value": c.get("value"), "docs": c["docs"], "rows": c["rows"],
                   "tokens": c["tokens"], "shards": len(c["shards"])}
                  for name, c in sorted(manifest["components"].items())]
    files = _file_columns(out_dir)
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
        "stages": {**_stage_sections(manifest, stats), **_export_section(manifest)},
        "examples": _rejected_examples(stats),
        "tokens_per_doc": files["tokens_per_doc"],
        "sources": files["sources"],
        "dead_letter_reasons": files["dead_letter_reasons"],
    })


def _parquet_columns(out_dir: str, sink: str, columns: list[str]):
    """Yields the given columns (as Python lists) of every ``OUT/<sink>/**.parquet`` shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pattern = FileSystems.join(out_dir, sink, "**.parquet")
    for meta in sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(meta.path) as handle:
            table = pq.read_table(pa.BufferReader(handle.read()), columns=columns, use_threads=False)
        yield {name: table.column(name).to_pylist() for name in columns}


def _histogram(values: list[int]) -> dict[str, Any]:
    """Docs per bin of tokens per document, bins doubling in size (1, 2-3, 4-7, ... tokens)."""
    counts: Counter[int] = Counter(max(0, int(math.log2(v))) if v > 0 else -1 for v in values)
    if not counts:
        return {"bins": [], "docs": []}
    top = max(counts)
    bins = [f"{2 ** b:,}-{2 ** (b + 1) - 1:,}" if b >= 1 else "1" for b in range(0, top + 1)]
    docs = [counts.get(b, 0) for b in range(0, top + 1)]
    if counts.get(-1):
        bins, docs = ["0", *bins], [counts[-1], *docs]
    first = next(i for i, n in enumerate(docs) if n)  # drop the empty bins below the shortest document
    return {"bins": bins[first:], "docs": docs[first:]}


def _file_columns(out_dir: str) -> dict[str, Any]:
    """What the stats do not hold, from small columns of the output files: tokens per document (first copies in
    the mixture, EOS included), kept/rejected/dead-letter per source, and the dead-letter reasons."""
    lengths: list[int] = []
    sources: dict[str, Counter[str]] = {}
    for cols in _parquet_columns(out_dir, "mixture", ["n_tokens", "source", "repeat"]):
        for n, source, repeat in zip(cols["n_tokens"], cols["source"], cols["repeat"]):
            if not repeat:
                lengths.append(n)
                sources.setdefault(str(source), Counter())["kept"] += 1
    for cols in _parquet_columns(out_dir, "rejected", ["source"]):
        for source in cols["source"]:
            sources.setdefault(str(source), Counter())["rejected"] += 1
    reasons: Counter[str] = Counter()
    for cols in _parquet_columns(out_dir, "dead_letter", ["stage", "error"]):
        for stage, error in zip(cols["stage"], cols["error"]):
            first = (error or "").strip().splitlines()[0] if (error or "").strip() else "(no error text)"
            reasons[f"{stage}: {first[:300]}"] += 1
    return {
        "tokens_per_doc": _histogram(lengths),
        "sources": sorted(({"source": k, "kept": v["kept"], "rejected": v["rejected"]} for k, v in sources.items()),
                          key=lambda r: (-(r["kept"] + r["rejected"]), r["source"])),
        "dead_letter_reasons": [{"reason": r, "records": n} for r, n in reasons.most_common(50)],
    }


# ---------------------------------------------------------------------------------------------------- HTML

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


class _Ids:
    """Unique, readable HTML ids."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def __call__(self, *parts: Any) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")[:60] or "x"
        self.seen[base] += 1
        return base if self.seen[base] == 1 else f"{base}-{self.seen[base]}"


def _table(ids: _Ids, columns: list[str], rows: list[Any], title: str | None = None) -> dict[str, Any]:
    cells = [list(r) if isinstance(r, (list, tuple)) else [r.get(c) for c in columns] for r in rows]
    cells = [[c if isinstance(c, (int, float, str)) or c is None else json.dumps(c, ensure_ascii=False)
              for c in row] for row in cells]
    numeric = [bool(cells) and all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool)
                                   for row in cells if i < len(row) and row[i] is not None)
               for i in range(len(columns))]
    return {"id": ids("table", title or "-".join(columns[:2])), "title": title, "columns": columns,
            "rows": cells, "numeric": numeric}


def _chart(ids: _Ids, spec: dict[str, Any]) -> dict[str, Any]:
    spec = {"kind": spec.get("kind", "bar"), "x": list(spec.get("x", [])),
            "series": {str(k): list(v) for k, v in (spec.get("series") or {}).items()},
            **{k: spec[k] for k in ("title", "xlabel", "ylabel", "log", "styles", "stacked") if k in spec}}
    return {"id": ids("chart", spec.get("title", "")), "spec": spec}


def _section(ids: _Ids, key: str, title: str, *, open_: bool = False, count: str | None = None,
             **parts: Any) -> dict[str, Any]:
    return {"id": ids(key), "title": title, "open": open_, "count": count, "banners": [], "summary": None,
            "charts": [], "tables": [], "notes": [], "examples": [], "example_groups": [], "empty": None,
            "children": [], "in_toc": True, **parts}


def page_sections(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The page's sections, in order, as plain data (the template only lays them out)."""
    ids = _Ids()
    c, t = report["conservation"], report["totals"]
    sections = []

    ok = c["ok"]
    overview = _section(ids, "overview", "Overview", open_=True, summary=dict(t))
    overview["banners"].append({"kind": "ok" if ok else "bad", "text": (
        f"Conservation {'holds' if ok else 'VIOLATED'}: records read {c['records_read']:,} + added "
        f"{c['added_by_stages']:,} = kept {c['kept']:,} + rejected {sum(c['rejected'].values()):,} + dead-letter "
        f"{c['dead_letter']:,}")})
    if not t.get("docs"):
        overview["banners"].append({"kind": "bad", "text": "The mixture is empty: no document was kept."})
    sections.append(overview)

    funnel = report["funnel"]
    stages_x = [f["stage"] for f in funnel]
    sections.append(_section(
        ids, "funnel", "Funnel: documents and tokens after each stage", open_=True, count=f"{len(funnel)} steps",
        charts=[_chart(ids, {"title": "Documents after each stage", "x": stages_x, "xlabel": "stage",
                             "ylabel": "documents", "stacked": True,
                             "series": {"kept": [f["kept"] for f in funnel],
                                        "rejected": [f["rejected"] for f in funnel],
                                        "dead letter": [f["dead_letter"] for f in funnel]}}),
                _chart(ids, {"title": "Tokens kept after each stage", "x": stages_x, "xlabel": "stage",
                             "ylabel": "tokens", "series": {"tokens kept": [f["tokens_kept"] for f in funnel]}})],
        tables=[_table(ids, ["stage", "docs_in", "kept", "rejected", "dead_letter", "chars_kept", "tokens_kept"],
                       funnel)]))

    hist = report.get("tokens_per_doc") or {"bins": [], "docs": []}
    sections.append(_section(
        ids, "tokens-per-document", "Tokens per document", count=f"{sum(hist['docs']):,} docs",
        charts=[_chart(ids, {"title": "Documents by length in tokens (mixture, EOS included)", "x": hist["bins"],
                             "xlabel": "tokens per document (bins double in width)", "ylabel": "documents",
                             "series": {"documents": hist["docs"]}})] if hist["docs"] else [],
        empty=None if hist["docs"] else "none found (the mixture is empty)"))

    sources = report.get("sources") or []
    top = sources[:30]
    sections.append(_section(
        ids, "sources", "Sources: kept and rejected", count=f"{len(sources)} sources",
        charts=[_chart(ids, {"title": f"Documents per source (top {len(top)})", "x": [r["source"] for r in top],
                             "xlabel": "source", "ylabel": "documents", "stacked": True,
                             "series": {"kept": [r["kept"] for r in top],
                                        "rejected": [r["rejected"] for r in top]}})] if top else [],
        tables=[_table(ids, ["source", "kept", "rejected"], sources, "Kept and rejected documents per source")]))

    def lang_name(value: Any) -> str:
        return "(none)" if value in (None, "", "None") else str(value)

    rejected_by_lang: Counter[str] = Counter()
    for r in report.get("rejected_languages", []):
        rejected_by_lang[lang_name(r["lang"])] += r["docs"]
    kept_by_lang = {lang_name(r["lang"]): r for r in report["languages"]}
    langs = sorted(set(kept_by_lang) | set(rejected_by_lang),
                   key=lambda lang: (-(kept_by_lang.get(lang, {}).get("docs", 0) + rejected_by_lang[lang]), lang))
    lang_rows = [{"lang": lang, "kept docs": kept_by_lang.get(lang, {}).get("docs", 0),
                  "rejected docs": rejected_by_lang[lang], "kept tokens": kept_by_lang.get(lang, {}).get("tokens", 0)}
                 for lang in langs]
    top = lang_rows[:30]
    sections.append(_section(
        ids, "languages", "Languages: kept and rejected", count=f"{len(langs)} languages",
        charts=[_chart(ids, {"title": f"Documents per language (top {len(top)})", "x": [r["lang"] for r in top],
                             "xlabel": "language", "ylabel": "documents", "stacked": True,
                             "series": {"kept": [r["kept docs"] for r in top],
                                        "rejected": [r["rejected docs"] for r in top]}})] if top else [],
        tables=[_table(ids, ["lang", "kept docs", "rejected docs", "kept tokens"], lang_rows,
                       "Documents per language (kept: final mixture; rejected: by any stage)")]))

    comps = report["components"]
    sections.append(_section(
        ids, "components", "Mixture components", count=f"{len(comps)} components",
        charts=[_chart(ids, {"title": "Tokens per component", "x": [r["component"] for r in comps],
                             "xlabel": "component", "ylabel": "tokens",
                             "series": {"tokens": [r["tokens"] for r in comps]}})] if comps else [],
        tables=[_table(ids, ["component", "value", "docs", "rows", "tokens", "shards"], comps,
                       "Components (folder under OUT/mixture/, and the value of output.component_key it holds)")]))

    rejections = report["rejections"]
    sections.append(_section(
        ids, "rejections", "Rejections by rule", count=f"{sum(r['docs'] for r in rejections):,} docs",
        tables=[_table(ids, ["stage", "rule", "docs", "chars"], rejections)]))

    dead = report.get("dead_letter_reasons") or []
    sections.append(_section(
        ids, "dead-letter", "Dead letter", count=f"{c['dead_letter']:,} records",
        notes=["Records that could not be processed (unreadable, malformed, or a stage error); each is in "
               "OUT/dead_letter/ with its raw content for replay."] if dead else [],
        tables=[_table(ids, ["reason", "records"], dead, "Dead-letter reasons")]))

    stage_parent = _section(ids, "stages", "Stages", open_=True, count=f"{len(report['stages'])} sections",
                            notes=["One section per stage follows, in run order; each is what the stage "
                                   "reports about its own work."] if report["stages"] else ["none found"])
    sections.append(stage_parent)
    for name, section in report["stages"].items():
        child = _section(
            ids, f"stage-{name}", f"Stage: {name}",
            summary=section.get("summary") or None,
            charts=[_chart(ids, chart) for chart in section.get("charts", [])],
            tables=[_table(ids, tb["columns"], tb["rows"], tb.get("title")) for tb in section.get("tables", [])],
            notes=[str(n) for n in section.get("notes", [])],
            examples=[{"title": str(ex.get("title", "")), "text": str(ex.get("text", ""))}
                      for ex in section.get("examples", [])])
        child["in_toc"] = False  # listed under "Stages"
        stage_parent["children"].append({"id": child["id"], "title": name})
        sections.append(child)

    groups: dict[str, list[dict[str, Any]]] = {}
    for ex in report["examples"]:
        groups.setdefault(f"{ex['stage']}: {ex['rule']}", []).append(ex)
    example_groups, first_of_stage = [], {}
    for title, exs in groups.items():
        example_groups.append({"id": ids("examples", title), "title": title, "examples": exs})
        first_of_stage.setdefault(exs[0]["stage"], example_groups[-1]["id"])
    examples = _section(ids, "rejected-examples", "Rejected examples", count=f"{len(report['examples'])} examples",
                        example_groups=example_groups,
                        notes=["A few rejected documents per stage and rule, picked by a keyed hash of their id "
                               "(the same on every run). Text is cut at 400 characters."] if example_groups else [],
                        empty=None if example_groups else "none found (no document was rejected)")
    examples["children"] = [{"id": anchor, "title": stage} for stage, anchor in first_of_stage.items()]
    sections.append(examples)
    return sections


def render_html(report: dict[str, Any]) -> str:
    from markupsafe import Markup

    template = _environment().get_template("report.html.j2")
    return template.render(report=report, sections=page_sections(report), page_size=PAGE_SIZE,
                           plotly_js=Markup(plotly_js()),
                           report_js=Markup((_DATA / "report.js").read_text(encoding="utf-8")))


def write_report(out_dir: str, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Writes ``report.json`` and ``report.html``, each whole or not at all (temporary name, then rename).
    ``manifest``: the run's, before it is written (the manifest is the last file a run writes)."""
    from qurate.pipelines.shards import write_atomic

    report = build_report(out_dir, manifest)
    write_atomic(FileSystems.join(out_dir, "report.json"),
                 json.dumps(report, indent=2, ensure_ascii=False).encode("utf-8"))
    write_atomic(FileSystems.join(out_dir, "report.html"), render_html(report).encode("utf-8"))
    return report
