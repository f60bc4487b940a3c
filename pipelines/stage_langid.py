"""Beam wiring of the ``langid`` stage (the logic is ``qurate.filters.langid``) and its report section."""

from __future__ import annotations

import os
from typing import Any

from qurate.filters.langid import LangIdDecider
from qurate.pipelines.recipe import Recipe, RecipeError
from qurate.pipelines.stage import DecideStage

BUCKETS = [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)]


class LangIdStage(DecideStage):
    name = "langid"

    def __init__(self, recipe: Recipe):
        cfg = recipe.langid
        if cfg.model_path and not os.path.exists(cfg.model_path):  # fail before the run, naming the key
            raise RecipeError(f"bad value for 'langid.model_path': no such file {cfg.model_path}")
        super().__init__(LangIdDecider(cfg), batch_size=cfg.batch_size)

    def report_section(self, stats: dict[tuple[str, ...], dict[str, float]]) -> dict[str, Any] | None:
        langs = {k[1]: v for k, v in stats.items() if len(k) == 2 and k[0] == "lang"}
        if not langs:
            return None
        rows = []
        for lang, v in sorted(langs.items(), key=lambda kv: -kv[1].get("docs", 0)):
            docs = v.get("docs", 0)
            rows.append([lang, docs, v.get("kept", 0), v.get("rejected", 0),
                         round(v.get("score_sum", 0) / docs, 3) if docs else 0.0,
                         v.get("second_opinion", 0), v.get("changed", 0)])
        total = sum(r[1] for r in rows)
        hist = [sum(v.get(f"score_{i}", 0) for v in langs.values()) for i in range(10)]
        kept_hist = [sum(v.get(f"score_{i}", 0) for lang, v in langs.items() if v.get("kept")) for i in range(10)]
        rules = sorted(((k[1], v["docs"]) for k, v in stats.items() if k[0] == "rule"), key=lambda r: -r[1])
        top = rows[:25]
        return {
            "summary": {
                "docs identified": total,
                "languages seen": len(rows),
                "docs kept": sum(r[2] for r in rows),
                "docs rejected": sum(r[3] for r in rows) + stats.get(("lang", "none"), {}).get("rejected", 0),
                "second opinions (lingua)": sum(r[5] for r in rows),
                "labels changed by the second opinion": sum(r[6] for r in rows),
            },
            "charts": [
                {"title": "Documents per detected language (top 25)", "kind": "bar", "x": [r[0] for r in top],
                 "series": {"kept": [r[2] for r in top], "rejected": [r[3] for r in top]}},
                {"title": "lang_score histogram", "kind": "bar", "x": BUCKETS,
                 "series": {"all docs": hist, "languages with kept docs": kept_hist},
                 "xlabel": "lang_score", "ylabel": "docs"},
            ],
            "tables": [
                {"title": "Language ID by language", "columns": ["lang", "docs", "kept", "rejected", "mean score",
                                                               "second opinion", "changed by it"], "rows": rows},
                {"title": "lang_score distribution by language (docs per score bucket, top 25 languages)",
                 "columns": ["lang", *BUCKETS],
                 "rows": [[r[0], *[langs[r[0]].get(f"score_{i}", 0) for i in range(10)]] for r in top]},
                {"title": "Language ID rejections by rule", "columns": ["rule", "docs", "share of docs"],
                 "rows": [[r, n, round(n / total, 4) if total else 0.0] for r, n in rules]},
            ],
            "notes": ["lang_score is the length-weighted mean fastText probability over the document's chunks; "
                      "after a second opinion it is fastText's mass on the whole confusable group."],
        }


def build(recipe: Recipe) -> LangIdStage:
    return LangIdStage(recipe)
