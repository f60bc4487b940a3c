"""The ``quality`` stage on the generic RunInference wiring (with an n-gram classifier trained here: no torch), its
keep rule, the verdicts and stats of one doc, and the pure report built from those stats."""

from __future__ import annotations

import gzip
import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamPipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import SAMPLE_CORPUS
from qurate.classifiers.distill import QualityModel, train
from qurate.classifiers.quality import (
    BELOW,
    QualityBatchModel,
    doc_stats,
    docs_key,
    hist_key,
    keep_decision,
    report,
    sum_key,
)
from qurate.classifiers.quality_config import QualityConfig
from qurate.classifiers.quality_stage import STAGE, check
from qurate.pipelines.decide import build_stage
from qurate.spec import StageContext
from qurate.verdicts import Keep, Reject

THRESHOLD = 1.6
DIMS = [{"name": "educational_value", "description": "eee"}, {"name": "coherence", "description": "ccc"}]


@pytest.fixture(scope="module")
def records():
    with gzip.open(SAMPLE_CORPUS, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for _, line in zip(range(60), handle)]


@pytest.fixture(scope="module")
def ngram_classifier(tmp_path_factory, records):
    """A real n-gram classifier on two dimensions, trained on labels a bag of words can learn (scores in 0-3)."""
    texts = [r["text"] for r in records]
    labels = np.array([[min(3.0, t.lower().count(" the ") / 10), min(3.0, len(t) / 3000)] for t in texts])
    model = train(texts, labels, [d["name"] for d in DIMS])
    return str(model.save(tmp_path_factory.mktemp("clf") / "ngrams.npz"))


def test_quality_stage_keeps_rejects_with_reason_and_dead_letters_a_broken_doc(records, ngram_classifier):
    cfg = QualityConfig(threshold=THRESHOLD, classifier_path=ngram_classifier, dimensions=DIMS)
    model = QualityModel.load(ngram_classifier)
    aggregate = model.predict([r["text"] for r in records]).mean(axis=1)
    want_kept = sorted(r["id"] for r, a in zip(records, aggregate) if a >= THRESHOLD)
    want_rejected = sorted(r["id"] for r, a in zip(records, aggregate) if a < THRESHOLD)
    assert want_kept and want_rejected  # the threshold splits this slice: both paths are exercised
    broken = {"id": "broken", "text": None, "source": "test"}

    def check_rejected(rows):
        assert sorted(r["id"] for r in rows) == want_rejected
        for row in rows:
            assert row["stage"] == "quality" and row["reason"].startswith(f"{BELOW}: ")
            # the measured value is in the reason, and the rejected doc keeps its annotations
            measured = float(row["reason"].split(": ")[1].split(" <")[0])
            assert measured == pytest.approx(row["quality_score"], abs=1e-3)
            assert len(row["quality"]) == 2 and row["quality_score"] < THRESHOLD

    def check_stats(pairs):
        totals: dict = {}
        for key, value in pairs:
            acc = totals.setdefault(key, {})
            for field, number in value.items():
                acc[field] = acc.get(field, 0) + number
        assert totals[docs_key()] == {"docs": len(records), "kept": len(want_kept),
                                      "rejected": len(want_rejected)}
        picked = [k for k in totals if k[0] == "example"]
        assert {k[1] for k in picked} == {"kept", "rejected"}

    with BeamPipeline() as p:
        out = p | beam.Create(records + [broken]) | build_stage(STAGE, cfg, StageContext(report_examples=2))
        assert_that(out["kept"] | "KeptIds" >> beam.Map(lambda d: d["id"]), equal_to(want_kept), label="Kept")
        assert_that(out["kept"] | beam.Filter(lambda d: not d["quality_score"] >= THRESHOLD), equal_to([]),
                    label="KeptAboveThreshold")
        assert_that(out["rejected"] | "RejectedList" >> beam.combiners.ToList(),
                    lambda got: check_rejected(got[0]),
                    label="Rejected")
        assert_that(out["dead_letter"] | beam.Map(lambda e: (e["id"], e["stage"], e["error"].split(":")[0])),
                    equal_to([("broken", "quality", "TypeError")]), label="DeadLetter")
        assert_that(out["stats"] | "StatsList" >> beam.combiners.ToList(), lambda got: check_stats(got[0]),
                    label="Stats")


def test_keep_rule_threshold_and_soft_band_are_deterministic():
    cfg = QualityConfig(threshold=2.0, soft_band=1.0, dimensions=[
        {"name": "a", "description": "aaa", "weight": 3}, {"name": "b", "description": "bbb", "weight": 1}])
    assert keep_decision(cfg, 0, "x", {"a": 2.0, "b": 2.0}) == (2.0, None)
    agg, reason = keep_decision(cfg, 0, "x", {"a": 0.5, "b": 1.0})
    assert agg == pytest.approx(0.625) and reason.startswith("quality_below_threshold: 0.625")
    decisions = [keep_decision(cfg, 0, f"doc{i}", {"a": 1.5, "b": 1.5})[1] is None for i in range(400)]
    assert 140 < sum(decisions) < 260  # keep probability 0.5 inside the band
    assert decisions == [keep_decision(cfg, 0, f"doc{i}", {"a": 1.5, "b": 1.5})[1] is None for i in range(400)]
    other_seed = [keep_decision(cfg, 1, f"doc{i}", {"a": 1.5, "b": 1.5})[1] is None for i in range(400)]
    assert other_seed != decisions  # the draw is keyed by the seed too
    _, sampled = keep_decision(cfg, 0, next(f"doc{i}" for i, d in enumerate(decisions) if not d),
                               {"a": 1.5, "b": 1.5})
    assert sampled.startswith("quality_sampled_out: 1.500 (keep probability 0.50)")


def test_decide_annotates_kept_and_rejected_docs_and_counts_them():
    cfg = QualityConfig(threshold=2.0, dimensions=DIMS + [{"name": "d3", "description": "ddd"},
                                                          {"name": "d4", "description": "ddd"},
                                                          {"name": "d5", "description": "ddd"}])
    model = QualityBatchModel(cfg, seed=3)
    doc = {"id": "d1", "text": "some text", "source": "s"}
    high = {d.name: 3.0 for d in cfg.dimensions}
    kept = model.decide(doc, high)
    assert isinstance(kept, Keep) and kept.doc["quality_score"] == 3.0 and kept.doc["quality"] == high
    assert "quality" not in doc  # the input doc is not modified
    low = {**high, "coherence": 0.0, "d5": 0.0}  # mean 1.8
    rejected = model.decide(doc, low)
    assert isinstance(rejected, Reject) and rejected.reason == f"{BELOW}: 1.800 < 2.00"
    assert rejected.doc["quality_score"] == 1.8 and rejected.doc["quality"]["coherence"] == 0.0
    assert rejected.stats[docs_key()] == {"docs": 1, "rejected": 1}
    assert rejected.stats[hist_key("coherence", 0.0)] == {"rejected": 1}
    assert rejected.stats[hist_key("aggregate", 1.8)] == {"rejected": 1}
    assert rejected.stats[sum_key("educational_value")] == {"sum": 3.0, "docs": 1}
    (example,) = [k for k in rejected.stats if k[0] == "_example"]
    assert example[1:4] == ("rejected", "d1", "1.800")
    with pytest.raises(KeyError):  # a scorer that misses a dimension is an error, not a silent 0
        model.decide(doc, {"coherence": 1.0})


def test_predict_scores_a_batch_and_refuses_a_doc_without_text(ngram_classifier):
    cfg = QualityConfig(classifier_path=ngram_classifier, dimensions=DIMS)
    model = QualityBatchModel(cfg)
    scorer = model.load()
    docs = [{"id": "a", "text": "The mitochondria is the powerhouse of the cell. " * 5}, {"id": "b", "text": "x"}]
    scores = model.predict(scorer, docs)
    assert [sorted(s) for s in scores] == [sorted(d.name for d in cfg.dimensions)] * 2
    assert scores[0] != scores[1]
    with pytest.raises(TypeError):
        model.predict(scorer, [{"id": "c", "text": None}])


def test_report_is_built_from_the_stats_alone(ngram_classifier):
    cfg = QualityConfig(threshold=1.0, classifier_path=ngram_classifier, dimensions=DIMS)
    stats: dict = {}
    for i, score in enumerate([0.5, 2.0, 4.9]):
        scores = {d.name: score for d in cfg.dimensions}
        for key, value in doc_stats(f"d{i}", "text", scores, score, score >= 1.0, 0).items():
            acc = stats.setdefault(key, {})
            for field, number in value.items():
                acc[field] = acc.get(field, 0) + number
    stats[("example", "kept", "000", "d1", "2.000", "{}", "text")] = {"docs": 1}
    section = report(stats, cfg)
    assert section["summary"]["docs scored"] == 3 and section["summary"]["kept"] == 2
    assert section["summary"]["scorer"] == "distilled classifier (ngrams.npz)"
    agg_chart = section["charts"][-1]
    assert agg_chart["title"].startswith("aggregate") and len(agg_chart["x"]) == 20
    assert sum(agg_chart["series"]["kept"]) == 2 and sum(agg_chart["series"]["rejected"]) == 1
    assert agg_chart["series"]["kept"][-1] == 1  # 4.9 is in the last bin
    means = {row[0]: row[2] for row in section["tables"][0]["rows"]}
    assert means["coherence"] == pytest.approx((0.5 + 2.0 + 4.9) / 3)
    assert [t["title"] for t in section["tables"]] == ["Mean score per dimension"]  # no agreement recorded
    assert section["notes"][0].startswith("Classifier trained on ? docs")
    assert section["examples"] == [{"title": "kept · d1 · quality 2.000 · {}", "text": "text"}]
    assert report({}, cfg)["summary"]["docs scored"] == 0


def test_check_refuses_a_classifier_with_other_dimensions(tmp_path, ngram_classifier):
    model = train(["a b c"] * 6, np.ones((6, 1)), ["only_one"])
    path = model.save(tmp_path / "one.npz")
    with pytest.raises(ValueError, match="retrain"):
        check(QualityConfig(classifier_path=str(path)), StageContext())
    check(QualityConfig(classifier_path=ngram_classifier, dimensions=DIMS), StageContext())
    with pytest.raises(ValueError, match="does not exist"):
        check(QualityConfig.model_construct(backend="classifier", classifier_path=str(tmp_path / "none.npz")),
              StageContext())
