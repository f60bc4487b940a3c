"""Beam wiring of the ``decontam`` stage (logic in ``qurate.decontam``).

The benchmark index is a broadcast: every worker builds it once in ``DoFn.setup`` (or loads it from the
index cache) and all its DoFn instances share it (``decontam.index.get_index`` caches per process). This is the
side-input pattern without shipping ~100 MB of arrays through the runner: the index is a pure function of the
bundled benchmark files, the recipe and the tokenizer, which every worker already has. For benchmark sets too
large for a worker's memory the sharded-join path is: emit ``(n-gram hash, (doc id, position))`` from documents
and ``(n-gram hash, item)`` from benchmarks, ``CoGroupByKey`` on the hash, group the candidate pairs by doc id
and run the same LCS verification (``Detector._verify``) on each doc with its candidate items.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from qurate.decontam.config import DecontamConfig
from qurate.decontam.decider import EXAMPLE_KEY, DecontamDecider
from qurate.pipelines.recipe import Recipe
from qurate.pipelines.stage import STATS, DecideStage, PickExamples

RULE_NOTE = ("Qwen2.5 rule: a document is contaminated by a benchmark item when, in a window of the document "
             "around the item's shared {n}-grams (widened by the part of the item not covered, at most about "
             "twice the item's length), |LCS| >= {min_lcs} tokens and |LCS| >= {min_ratio} x min(|window|, "
             "|item|). Tokens are the pipeline tokenizer's, after NFKC, casefolding, removal of list markers "
             "(A., (b), 3)) and punctuation, and whitespace collapsing.")


def _is_example(kv) -> bool:
    return kv[0][0] == EXAMPLE_KEY


def _not_example(kv) -> bool:
    return kv[0][0] != EXAMPLE_KEY


def _ranked(kv):
    key, value = kv
    return "contaminated", (value["rank"], key[1:])


class DecontamStage(DecideStage):
    name = "decontam"

    def __init__(self, config: DecontamConfig, tokenizer_name: str, seed: int = 0, examples: int = 3):
        super().__init__(DecontamDecider(config, tokenizer_name, seed, examples > 0), config.batch_size)
        self.config = config
        self.examples = examples

    def expand(self, docs):
        out = super().expand(docs)
        stats = out[STATS]
        plain = stats | "Stats" >> beam.Filter(_not_example)
        if not self.examples:
            out[STATS] = plain
            return out
        # A few examples, the same on every runner: those whose keyed hash of (doc id, seed) is smallest.
        examples = (
            stats
            | "Examples" >> beam.Filter(_is_example)
            | "Rank" >> beam.Map(_ranked)
            | "PickExamples" >> PickExamples(self.examples)
        )
        out[STATS] = (plain, examples) | "AllStats" >> beam.Flatten()
        return out

    def report_section(self, stats: dict[tuple[str, ...], dict[str, float]]) -> dict[str, Any] | None:
        cfg = self.config
        checked = stats.get(("checked",), {})
        contaminated = stats.get(("contaminated",), {})
        excised = stats.get(("excised",), {})
        hits = sorted(((k[1], v) for k, v in stats.items() if k[0] == "hits"), key=lambda kv: (-kv[1]["docs"], kv[0]))
        summary = {
            "docs checked": int(checked.get("docs", 0)),
            "tokens checked (normalized)": int(checked.get("tokens", 0)),
            "contaminated docs": int(contaminated.get("docs", 0)),
            "action": cfg.action,
            "benchmarks": ", ".join(cfg.bundled() + [f.benchmark or f.path for f in cfg.files]
                                    + [h.benchmark or h.name for h in cfg.hf]),
        }
        if cfg.action == "excise":
            summary["docs excised (kept)"] = int(excised.get("docs", 0))
            summary["spans excised"] = int(excised.get("spans", 0))
            summary["chars excised"] = int(excised.get("chars", 0))
            for key, value in sorted(stats.items()):
                if key[0] == "excise_failed":
                    summary[f"dropped: excision {key[1]}"] = int(value["docs"])
        rows = [[name, int(v["docs"]), round(v["lcs"] / v["docs"], 1), round(v["ratio"] / v["docs"], 3)]
                for name, v in hits]
        section: dict[str, Any] = {
            "summary": summary,
            "tables": [{"title": "Contaminated documents per benchmark (a doc counts once per benchmark)",
                        "columns": ["benchmark", "docs", "mean LCS tokens", "mean LCS ratio"], "rows": rows}],
            "notes": [RULE_NOTE.format(n=cfg.ngram, min_lcs=cfg.min_lcs, min_ratio=cfg.min_ratio)],
        }
        if rows:
            section["charts"] = [{"title": "Contaminated documents per benchmark", "kind": "bar",
                                  "x": [r[0] for r in rows], "series": {"docs": [r[1] for r in rows]}}]
        examples = sorted(k for k in stats if k[0] == "example")
        section["examples"] = [{"title": f"{k[3]}: {k[4]}", "text": f"document (normalized): {k[5]}\n\n"
                                f"benchmark item (normalized): {k[6]}"} for k in examples]
        return section


def build(recipe: Recipe) -> DecontamStage:
    return DecontamStage(recipe.decontam, recipe.tokenizer.name, recipe.seed, recipe.output.report_examples)
