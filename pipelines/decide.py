"""The generic stage transforms: a per-document decider, a model behind RunInference, and report examples.

A stage is a ``beam.PTransform`` from a PCollection of docs to a dict of PCollections:

- ``kept``: docs that go on (possibly with new annotations),
- ``rejected``: docs dropped, each with ``stage`` and ``reason`` (rule and measured value),
- ``dead_letter``: docs that broke the stage's code (the error is recorded, the run goes on),
- ``stats``: ``(key, {"docs": n, ...})`` pairs, summed per key, for the stage's report section.

``build_stage`` turns a ``StageSpec`` (declared in the stage's library) into that transform. Verdict stats whose key
starts with ``EXAMPLE_CANDIDATE`` are report-example candidates: ``(EXAMPLE_CANDIDATE, group, *fields)`` with
``{"rank": r}``; the ``n`` smallest ranks per group become ``("example", group, "000", *fields)`` stats.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from qurate.doc import Doc, doc_dead_letter, rejected
from qurate.pipelines.batching import BatchingDoFn, in_global_window
from qurate.pipelines.stats import add_stats, flatten_stats
from qurate.spec import BatchModel, StageContext, StageSpec
from qurate.stats import EXAMPLE
from qurate.verdicts import DocDecider, Keep, Reject, Verdict, error_text, isolate_failures, run_batch

KEPT, REJECTED, DEAD_LETTER, STATS = "kept", "rejected", "dead_letter", "stats"
EXAMPLE_CANDIDATE = "_example"
LOG = logging.getLogger(__name__)


def route_verdict(stage: str, doc: Doc, verdict: Verdict | BaseException, counters: dict[str, Any],
                  sums: dict | None = None):
    """The outputs for one verdict: the kept doc, or a tagged rejected / dead-letter record, plus its stats.

    With ``sums`` (a bundle's running totals), stats other than report-example candidates are added there
    instead of being output one pair per doc; the caller outputs the totals when its bundle ends."""
    if isinstance(verdict, Keep):
        counters["kept"].inc()
        yield verdict.doc
        stats = verdict.stats
    elif isinstance(verdict, Reject):
        counters["rejected"].inc()
        yield beam.pvalue.TaggedOutput(REJECTED, rejected(verdict.doc or doc, stage, verdict.reason))
        stats = verdict.stats
    else:
        counters["dead_letter"].inc()
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTER, doc_dead_letter(stage, error_text(verdict), doc, type(verdict).__name__))
        stats = None
    for key, value in (stats or {}).items():
        if sums is None or key[0] == EXAMPLE_CANDIDATE:
            yield beam.pvalue.TaggedOutput(STATS, (key, value))
        else:
            add_stats(sums, key, value)


def _counters(stage: str) -> dict[str, Any]:
    return {name: Metrics.counter(stage, name) for name in ("kept", "rejected", "dead_letter")}


class DecideDocs(BatchingDoFn):
    """Runs a DocDecider over batches of docs and routes each verdict to its output; the verdicts' stats are
    summed over the bundle and output when it ends (a few pairs per bundle, not several per doc)."""

    def __init__(self, stage: str, decider: DocDecider, batch_size: int):
        super().__init__(batch_size)
        self._stage = stage
        self._decider = decider
        self._sums: dict = {}

    def setup(self) -> None:
        self._counters = _counters(self._stage)
        self._decider.setup()

    def start_bundle(self) -> None:
        super().start_bundle()
        self._sums: dict = {}

    def handle_batch(self, docs: list[Doc]):
        verdicts = run_batch(self._decider.decide_batch, self._decider.decide, docs)
        for doc, verdict in zip(docs, verdicts):
            yield from route_verdict(self._stage, doc, verdict, self._counters, self._sums)

    def finish_bundle(self):
        yield from super().finish_bundle()  # the last batch first: its stats join the sums
        sums, self._sums = self._sums, {}
        for pair in sums.items():
            yield beam.pvalue.TaggedOutput(STATS, in_global_window(pair))


def _split_examples(pcoll, label: str, examples: int):
    """(stats without example candidates, picked example stats)."""
    plain = pcoll | f"{label}Stats" >> beam.Filter(lambda kv: kv[0][0] != EXAMPLE_CANDIDATE)
    picked = (pcoll
              | f"{label}Candidates" >> beam.Filter(lambda kv: kv[0][0] == EXAMPLE_CANDIDATE)
              | f"{label}Ranked" >> beam.Map(lambda kv: (kv[0][1], (kv[1]["rank"], kv[0][2:])))
              | f"{label}Pick" >> PickExamples(max(examples, 1)))
    return flatten_stats((plain, picked), f"{label}AllStats")


class Decide(beam.PTransform):
    """A stage made of one DocDecider applied to every doc."""

    def __init__(self, name: str, decider: DocDecider, batch_size: int = 64, examples: int = 3):
        super().__init__(label=name)
        self.name, self.decider, self.batch_size, self.examples = name, decider, batch_size, examples

    def expand(self, docs):
        out = docs | "Decide" >> beam.ParDo(DecideDocs(self.name, self.decider, self.batch_size)).with_outputs(
            REJECTED, DEAD_LETTER, STATS, main=KEPT)
        return {KEPT: out[KEPT], REJECTED: out[REJECTED], DEAD_LETTER: out[DEAD_LETTER],
                STATS: _split_examples(out[STATS], "", self.examples)}


def _model_handler(model: BatchModel):
    """RunInference's handler around a library's ``BatchModel``: one model per worker process; a failed batch is
    retried doc by doc, so one bad document is reported alone (its error becomes its prediction). Built lazily:
    Beam's inference module is heavy to import and only model stages need it."""
    from apache_beam.ml.inference.base import ModelHandler, PredictionResult

    class BatchModelHandler(ModelHandler):
        def __init__(self, model: BatchModel):
            super().__init__()
            self._model = model

        def load_model(self) -> Any:
            return self._model.load()

        def run_inference(self, batch, model, inference_args=None):
            docs = list(batch)
            predictions = run_batch(lambda items: self._model.predict(model, items),
                                    lambda doc: self._model.predict(model, [doc])[0], docs)
            return [PredictionResult(doc, pred) for doc, pred in zip(docs, predictions)]

        def batch_elements_kwargs(self) -> dict[str, Any]:
            return {"min_batch_size": 1, "max_batch_size": max(1, self._model.batch_size)}

        def share_model_across_processes(self) -> bool:
            return False

    return BatchModelHandler(model)


class _DecidePredictions(beam.DoFn):
    def __init__(self, stage: str, model: BatchModel):
        self._stage, self._model = stage, model

    def setup(self) -> None:
        self._counters = _counters(self._stage)

    def process(self, result):
        doc, prediction = result.example, result.inference
        if isinstance(prediction, BaseException):
            verdict: Verdict | BaseException = prediction
        else:
            verdict = isolate_failures(lambda d: self._model.decide(d, prediction), [doc], retries=0)[0]
        yield from route_verdict(self._stage, doc, verdict, self._counters)


def _failed_batch(stage: str):
    def dead(item):
        batch, err = item
        return [doc_dead_letter(stage, error_text(err), doc, type(err).__name__) for doc in batch]
    return dead


class Predict(beam.PTransform):
    """A model-backed stage: Beam's RunInference (with its exception handling) then a pure per-doc decision."""

    def __init__(self, name: str, model: BatchModel, examples: int = 3):
        super().__init__(label=name)
        self.name, self.model, self.examples = name, model, examples

    def expand(self, docs):
        from apache_beam.ml.inference.base import RunInference

        scored, failures = (docs | "Predict" >> RunInference(_model_handler(self.model))
                            .with_exception_handling())
        out = scored | "Decide" >> beam.ParDo(_DecidePredictions(self.name, self.model)).with_outputs(
            REJECTED, DEAD_LETTER, STATS, main=KEPT)
        failed = failures.failed_inferences | "FailedBatches" >> beam.FlatMap(_failed_batch(self.name))
        dead = (out[DEAD_LETTER], failed) | "AllDead" >> beam.Flatten()
        return {KEPT: out[KEPT], REJECTED: out[REJECTED], DEAD_LETTER: dead,
                STATS: _split_examples(out[STATS], "", self.examples)}


def _example_stats(item):
    group, top = item
    for i, (_, fields) in enumerate(top):
        yield (EXAMPLE, group, f"{i:03d}", *fields), {"docs": 1}


class PickExamples(beam.PTransform):
    """``(group, (rank, fields))`` -> the ``n`` smallest-rank entries per group, as report stats keyed
    ``("example", group, "000", *fields)``. With rank = ``stable_hash(doc id, seed)`` the same examples come out on
    every runner; ``fields`` must be strings (they become part of the stats key)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def expand(self, ranked):
        return (
            ranked
            | "Smallest" >> beam.combiners.Top.SmallestPerKey(self.n)
            | "AsStats" >> beam.FlatMap(_example_stats)
        )


# Built-in global stages name one of these wiring graphs in their spec's ``graph``.
GRAPHS: dict[str, str] = {
    "dedup": "qurate.pipelines.dedup_graph:build",
    "rebalance": "qurate.pipelines.rebalance_graph:build",
    "synth": "qurate.pipelines.synth_graph:build",
}


def build_stage(spec: StageSpec, config: Any, ctx: StageContext) -> beam.PTransform:
    """The PTransform that runs ``spec`` with its recipe section ``config``."""
    if spec.decider is not None:
        decider = spec.decider(config, ctx)
        batch = getattr(config, "batch_size", 64)
        return Decide(spec.name, decider, batch_size=batch, examples=ctx.report_examples)
    if spec.model is not None:
        return Predict(spec.name, spec.model(config, ctx), examples=ctx.report_examples)
    ref = GRAPHS[spec.graph] if spec.graph is not None else spec.build
    assert ref is not None
    module, _, func = ref.partition(":")
    return getattr(importlib.import_module(module), func)(config, ctx)
