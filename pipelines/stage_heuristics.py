"""Beam wiring of the ``heuristics`` stage (rules and custom filters: ``qurate.filters.heuristics``)."""

from __future__ import annotations

from typing import Any

from qurate.filters.heuristics import MARGINS, HeuristicsDecider
from qurate.filters.plugins import FilterNotFound, resolve
from qurate.pipelines.recipe import Recipe, RecipeError
from qurate.pipelines.stage import DecideStage


class HeuristicsStage(DecideStage):
    name = "heuristics"

    def __init__(self, recipe: Recipe):
        cfg = recipe.heuristics
        for i, spec in enumerate(cfg.custom):  # fail before the run starts, naming the recipe key
            try:
                resolve(spec.filter)
            except FilterNotFound as err:
                raise RecipeError(f"bad value for 'heuristics.custom.{i}.filter': {err}") from None
        super().__init__(HeuristicsDecider(cfg), batch_size=64)
        self.cfg = cfg

    def report_section(self, stats: dict[tuple[str, ...], dict[str, float]]) -> dict[str, Any] | None:
        langs = {k[1]: v for k, v in stats.items() if k[0] == "lang"}
        if not langs:
            return None
        total = sum(v.get("docs", 0) for v in langs.values())
        rejected = sum(v.get("rejected", 0) for v in langs.values())
        rules = sorted(((k[1], v) for k, v in stats.items() if k[0] == "rule"), key=lambda kv: -kv[1]["docs"])
        rule_rows = [[rule, v["docs"], round(v["docs"] / total, 4) if total else 0.0,
                      round(v["value_sum"] / v["docs"], 4) if "value_sum" in v else "",
                      *[v.get(f"margin {m}", 0) for m in MARGINS]] for rule, v in rules]
        lang_rows = sorted(([lang, v.get("docs", 0), v.get("rejected", 0),
                             round(v.get("rejected", 0) / v["docs"], 3) if v.get("docs") else 0.0]
                            for lang, v in langs.items()), key=lambda r: -r[1])
        lang_rule = sorted(([k[1], k[2], v["docs"]] for k, v in stats.items() if k[0] == "lang_rule"),
                           key=lambda r: (-r[2], r[0], r[1]))
        return {
            "summary": {"docs in": total, "rejected": rejected,
                        "rejected share": round(rejected / total, 4) if total else 0.0},
            "charts": [{"title": "Heuristic rejections by rule", "kind": "bar", "x": [r[0] for r in rule_rows],
                        "series": {"docs": [r[1] for r in rule_rows]}}],
            "tables": [
                {"title": "Rejections by rule (share of the stage's input; mean measured value; how far past "
                          "the threshold the measured values lie)",
                 "columns": ["rule", "docs", "share of input", "mean value", *[f"past by {m}" for m in MARGINS]],
                 "rows": rule_rows},
                {"title": "Rejection rate by language", "columns": ["lang", "docs", "rejected", "rate"],
                 "rows": lang_rows},
                {"title": "Rejections by language and rule (top 40)", "columns": ["lang", "rule", "docs"],
                 "rows": lang_rule[:40]},
            ],
            "notes": ["Rule families by source (first matching glob wins): " + "; ".join(
                f"{glob} -> {', '.join(fams) or 'none'}" for glob, fams in self.cfg.source_rules.items()),
                "Languages with their own thresholds: " + (", ".join(sorted(self.cfg.lang_overrides)) or "none")
                + ". Custom filters: " + (", ".join(c.name for c in self.cfg.custom) or "none") + "."],
        }


def build(recipe: Recipe) -> HeuristicsStage:
    return HeuristicsStage(recipe)
