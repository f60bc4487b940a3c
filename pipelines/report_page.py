"""The report page's sections as plain data (ids, banners, charts, tables, examples), in page order; the
template only lays them out."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any


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
    tokens_known = all(f["tokens_kept"] is not None for f in funnel)
    charts = [_chart(ids, {"title": "Documents after each stage", "x": stages_x, "xlabel": "stage",
                           "ylabel": "documents", "stacked": True,
                           "series": {"kept": [f["kept"] for f in funnel],
                                      "rejected": [f["rejected"] for f in funnel],
                                      "dead letter": [f["dead_letter"] for f in funnel]}})]
    if tokens_known:
        charts.append(_chart(ids, {"title": "Tokens kept after each stage", "x": stages_x, "xlabel": "stage",
                                   "ylabel": "tokens", "series": {"tokens kept": [f["tokens_kept"] for f in funnel]}}))
    sections.append(_section(
        ids, "funnel", "Funnel: documents and tokens after each stage", open_=True, count=f"{len(funnel)} steps",
        charts=charts,
        tables=[_table(ids, ["stage", "docs_in", "kept", "rejected", "dead_letter", "chars_kept", "tokens_kept"],
                       funnel)],
        notes=[] if tokens_known else ["Tokens kept before the last stage are not known: this run did not count "
                                       "the tokens of rejected docs (output.count_rejected_tokens: false)."]))

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
