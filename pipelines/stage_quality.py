"""The ``quality`` stage: every doc scored on the rubric's dimensions (by the LLM judge or the classifier
distilled from it) through Beam's RunInference, then kept or rejected by the recipe's keep rule.

Kept and rejected docs both carry ``quality`` ({dimension: score}) and ``quality_score`` (weighted mean).
"""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from qurate.classifiers.quality import QualityModelHandler, keep_decision
from qurate.classifiers.quality_config import QualityConfig
from qurate.pipelines.doc import dead_letter, rejected
from qurate.pipelines.recipe import Recipe
from qurate.pipelines.stage import DEAD_LETTER, KEPT, REJECTED, STATS, PickExamples, Stage
from qurate.pipelines.write import stable_hash

NAME = "quality"
SCORED = "scored"
BIN = 0.25  # histogram bin width on the 0-5 scale (20 bins)
EXAMPLE_CHARS = 300


def _bin(score: float) -> str:
    i = min(int(score / BIN), int(5 / BIN) - 1)
    return f"{i * BIN:.2f}"


class _DecideFn(beam.DoFn):
    def __init__(self, cfg: QualityConfig, seed: int):
        self.cfg, self.seed = cfg, seed

    def process(self, result):
        doc, scores = result.example, result.inference
        if "error" in scores:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, dead_letter(NAME, scores["error"], doc_id=doc.get("id"),
                                                                    raw=doc.get("text")))
            return
        scores = {d.name: round(float(scores[d.name]), 4) for d in self.cfg.dimensions}
        agg, reason = keep_decision(self.cfg, self.seed, doc["id"], scores)
        out = dict(doc, quality=scores, quality_score=round(agg, 4))
        verdict = "kept" if reason is None else "rejected"
        yield beam.pvalue.TaggedOutput(STATS, (("docs",), {verdict: 1, "docs": 1}))
        for name, value in scores.items():
            yield beam.pvalue.TaggedOutput(STATS, (("hist", name, _bin(value)), {verdict: 1}))
            yield beam.pvalue.TaggedOutput(STATS, (("sum", name), {"sum": value, "docs": 1}))
        yield beam.pvalue.TaggedOutput(STATS, (("hist", "aggregate", _bin(agg)), {verdict: 1}))
        text = out.get("text") or ""
        snippet = text[:EXAMPLE_CHARS] + ("…" if len(text) > EXAMPLE_CHARS else "")
        fields = (doc["id"], f"{out['quality_score']:.3f}", json.dumps(scores), snippet)
        yield beam.pvalue.TaggedOutput(SCORED, (verdict, (stable_hash(doc["id"], self.seed), fields)))
        if reason is None:
            yield out
        else:
            yield beam.pvalue.TaggedOutput(REJECTED, rejected(out, NAME, reason))


def _failed_batch(item) -> list[dict[str, Any]]:
    batch, err = item
    return [dead_letter(NAME, f"{type(err).__name__}: {err}", doc_id=doc.get("id"), raw=doc.get("text"))
            for doc in batch]


class QualityStage(Stage):
    name = NAME

    def __init__(self, cfg: QualityConfig, seed: int, examples: int = 3):
        super().__init__(label=NAME)
        self.cfg, self.seed, self.examples = cfg, seed, examples

    def expand(self, docs):
        scored, failures = docs | "Score" >> RunInference(QualityModelHandler(self.cfg)).with_exception_handling()
        out = scored | "Decide" >> beam.ParDo(_DecideFn(self.cfg, self.seed)).with_outputs(
            REJECTED, DEAD_LETTER, STATS, SCORED, main=KEPT)
        failed = failures.failed_inferences | "FailedBatches" >> beam.FlatMap(_failed_batch)
        dead = (out[DEAD_LETTER], failed) | "AllDead" >> beam.Flatten()
        examples = out[SCORED] | "PickExamples" >> PickExamples(max(self.examples, 1))
        stats = (out[STATS], examples) | "AllStats" >> beam.Flatten()
        return {KEPT: out[KEPT], REJECTED: out[REJECTED], DEAD_LETTER: dead, STATS: stats}

    def report_section(self, stats: dict[tuple[str, ...], dict[str, float]]) -> dict[str, Any] | None:
        cfg = self.cfg
        totals = stats.get(("docs",), {})
        summary: dict[str, Any] = {
            "scorer": "LLM judge " + f"({cfg.judge.engine}: {cfg.judge.model})" if cfg.backend == "judge"
            else f"distilled classifier ({cfg.classifier_file().name})",
            "docs scored": int(totals.get("docs", 0)), "kept": int(totals.get("kept", 0)),
            "rejected": int(totals.get("rejected", 0)),
            "keep rule": f"weighted mean >= {cfg.threshold}"
            + (f", soft band {cfg.soft_band}" if cfg.soft_band else ""),
        }
        bins = [f"{i * BIN:.2f}" for i in range(int(5 / BIN))]
        charts, rows = [], []
        for name in [d.name for d in cfg.dimensions] + ["aggregate"]:
            kept = [stats.get(("hist", name, b), {}).get("kept", 0) for b in bins]
            rej = [stats.get(("hist", name, b), {}).get("rejected", 0) for b in bins]
            charts.append({"title": f"{name} score (bins of {BIN})", "kind": "bar", "x": bins,
                           "series": {"kept": kept, "rejected": rej}, "xlabel": "score", "ylabel": "docs"})
            acc = stats.get(("sum", name))
            if acc:
                weight = next((d.weight for d in cfg.dimensions if d.name == name), None)
                rows.append([name, weight, acc["sum"] / max(acc["docs"], 1)])
        tables = [{"title": "Mean score per dimension", "columns": ["dimension", "weight", "mean"], "rows": rows}]
        notes = []
        if cfg.backend == "classifier":
            tables_agree, note = _agreement_tables(cfg)
            tables += tables_agree
            notes.append(note)
        examples = []
        for key in sorted(k for k in stats if k[0] == "example"):
            _, verdict, rank, doc_id, agg, scores, snippet = key
            examples.append({"title": f"{verdict} · {doc_id} · quality {agg} · {scores}", "text": snippet})
        return {"summary": summary, "charts": charts, "tables": tables, "notes": notes, "examples": examples}


def _agreement_tables(cfg: QualityConfig) -> tuple[list[dict[str, Any]], str]:
    """The classifier's held-out agreement with its judge, from the model's metadata."""
    from qurate.classifiers.distill import QualityModel

    meta = QualityModel.load(cfg.classifier_file()).meta
    agree = meta.get("agreement")
    note = (f"Classifier trained on {meta.get('train_docs', '?')} docs judged by {meta.get('judge', '?')}; "
            f"agreement measured on {meta.get('heldout_docs', '?')} held-out docs.")
    if not agree:
        return [], note
    rows = [[d, rho, agree["mae"].get(d)] for d, rho in agree["spearman"].items()]
    rows.append(["aggregate", agree["spearman_aggregate"], ""])
    keep = agree["keep"]
    return [
        {"title": "Held-out agreement with the judge", "columns": ["dimension", "spearman", "mae"], "rows": rows},
        {"title": f"Keep decision vs the judge (aggregate >= {agree['keep_threshold']})",
         "columns": ["f1", "precision", "recall", "judge kept", "classifier kept", "docs"],
         "rows": [[keep["f1"], keep["precision"], keep["recall"], keep["judge_kept"], keep["classifier_kept"],
                   keep["docs"]]]},
    ], note


def build(recipe: Recipe) -> QualityStage:
    return QualityStage(recipe.quality, recipe.seed, recipe.output.report_examples)
