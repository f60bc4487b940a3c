"""Run statistics summed where they are made: per-bundle sums (``BundleSums``, ``DecideDocs``, ``CountKept``) add up
to exactly the per-document pairs they replace, on the in-process and the multi-process runner."""

from __future__ import annotations

import sys

import apache_beam as beam
import pytest
from apache_beam.internal.cloudpickle import cloudpickle
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import runner_args_for
from qurate.pipelines.decide import EXAMPLE_CANDIDATE, KEPT, REJECTED, STATS, DecideDocs
from qurate.pipelines.run import count_kept
from qurate.pipelines.runners import make_runner, pipeline_options
from qurate.pipelines.stats import SumFields, add_stats, flatten_stats
from qurate.verdicts import DocDecider, Keep, Reject

# The worker processes of the multi-process runner cannot import this test module: its decider travels by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

DOCS = [{"id": f"d{i:03d}", "text": "x" * (i % 7 + 1), "lang": "en" if i % 3 else "de"} for i in range(120)]


class _ShortIsOut(DocDecider):
    """Rejects texts under 3 chars; stats per language and a report-example candidate per rejection."""

    def decide(self, doc):
        stats = {("lang", doc["lang"]): {"docs": 1, "chars": len(doc["text"])}}
        if len(doc["text"]) < 3:
            stats[(EXAMPLE_CANDIDATE, "short", doc["id"])] = {"rank": int(doc["id"][1:])}
            return Reject(f"short: {len(doc['text'])} chars", stats)
        return Keep(doc, stats)


def _pipeline(kind: str) -> TestPipeline:
    """qurate's own runner choice (FnApiRunner; two worker processes for ``multiprocess``)."""
    options = pipeline_options(runner_args_for(kind))
    return TestPipeline(runner=make_runner(options), options=options)


def _expected_sums(pairs):
    sums: dict = {}
    for key, value in pairs:
        add_stats(sums, key, value)
    return sorted(sums.items())


def test_add_stats_sums_field_by_field_and_copies_the_first_value():
    first = {"docs": 1, "chars": 5}
    sums: dict = {}
    add_stats(sums, ("k",), first)
    add_stats(sums, ("k",), {"docs": 2, "kept": 1})
    add_stats(sums, ("j",), {"docs": 1})
    assert sums == {("k",): {"docs": 3, "chars": 5, "kept": 1}, ("j",): {"docs": 1}}
    assert first == {"docs": 1, "chars": 5}  # the caller's dict is not changed


@pytest.mark.parametrize("kind", ["inprocess", "multiprocess"])
def test_per_bundle_sums_equal_the_per_document_pairs(kind):
    per_doc_a = [(("lang", d["lang"]), {"docs": 1, "chars": len(d["text"])}) for d in DOCS]
    per_doc_b = [(("rule", "r" + str(i % 4)), {"docs": 1}) for i in range(50)]
    with _pipeline(kind) as p:
        a = p | "A" >> beam.Create(per_doc_a, reshuffle=True)
        b = p | "B" >> beam.Create(per_doc_b, reshuffle=True)
        summed = flatten_stats((a, b), "All") | beam.CombinePerKey(SumFields())
        assert_that(summed, equal_to(_expected_sums(per_doc_a + per_doc_b)))


@pytest.mark.parametrize("kind", ["inprocess", "multiprocess"])
def test_decide_docs_sums_stats_per_bundle_and_passes_example_candidates_one_by_one(kind):
    decider = _ShortIsOut()
    verdicts = [decider.decide(d) for d in DOCS]
    plain = [(k, v) for verdict in verdicts for k, v in verdict.stats.items() if k[0] != EXAMPLE_CANDIDATE]
    candidates = [(k, v) for verdict in verdicts for k, v in verdict.stats.items() if k[0] == EXAMPLE_CANDIDATE]
    assert candidates and plain
    with _pipeline(kind) as p:
        out = (p | beam.Create(DOCS, reshuffle=True)
               | beam.ParDo(DecideDocs("short", decider, batch_size=16)).with_outputs(REJECTED, STATS, main=KEPT))
        stats = out[STATS]
        summed = (stats | "Plain" >> beam.Filter(lambda kv: kv[0][0] != EXAMPLE_CANDIDATE)
                  | beam.CombinePerKey(SumFields()))
        assert_that(summed, equal_to(_expected_sums(plain)), label="sums")
        assert_that(stats | "Candidates" >> beam.Filter(lambda kv: kv[0][0] == EXAMPLE_CANDIDATE),
                    equal_to(candidates), label="candidates")
        assert_that(out[KEPT] | "KeptIds" >> beam.Map(lambda d: d["id"]),
                    equal_to([d["id"] for d in DOCS if len(d["text"]) >= 3]), label="kept")


def test_count_kept_gives_docs_chars_and_the_progress_counter():
    p = TestPipeline()
    counted = p | beam.Create(DOCS, reshuffle=True) | count_kept("langid") | beam.CombinePerKey(SumFields())
    assert_that(counted, equal_to([(("funnel", "langid", "kept"),
                                    {"docs": len(DOCS), "chars": sum(len(d["text"]) for d in DOCS)})]))
    result = p.run()
    result.wait_until_finish()
    found = result.metrics().query(beam.metrics.MetricsFilter().with_name("langid"))["counters"]
    assert [c.committed for c in found if c.key.metric.namespace == "qurate.kept"] == [len(DOCS)]
