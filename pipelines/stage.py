"""The stage contract.

A stage is a ``beam.PTransform`` from a PCollection of docs to a dict of PCollections:

- ``kept``: docs that go on (possibly with new annotations),
- ``rejected``: docs dropped, each with ``stage`` and ``reason`` (rule and measured value),
- ``dead_letter``: docs that broke the stage's code (the error is recorded, the run goes on),
- ``stats`` (optional): ``(key, {"docs": n, ...})`` pairs that are summed per key for the stage's report section.

Most stages decide one document at a time: they implement a ``DocDecider`` (plain Python, testable without Beam)
and wrap it in ``DecideStage``. Stages that need a global view (dedup, rebalancing) write their own ``expand``.
"""

from __future__ import annotations

import abc
import logging
import traceback
from typing import Any, ClassVar

import apache_beam as beam
from apache_beam.metrics import Metrics
from qurate.pipelines.batching import BatchingDoFn
from qurate.pipelines.doc import dead_letter, rejected

KEPT, REJECTED, DEAD_LETTER, STATS = "kept", "rejected", "dead_letter", "stats"
LOG = logging.getLogger(__name__)


class Reject:
    """A decider's verdict to drop a doc; ``reason`` reads ``rule: measured value``."""

    __slots__ = ("reason", "stats")

    def __init__(self, reason: str, stats: dict[tuple[str, ...], dict[str, float]] | None = None):
        self.reason = reason
        self.stats = stats


class Keep:
    """A decider's verdict to keep a doc, optionally with stats for the report."""

    __slots__ = ("doc", "stats")

    def __init__(self, doc: dict[str, Any], stats: dict[tuple[str, ...], dict[str, float]] | None = None):
        self.doc = doc
        self.stats = stats


class DocDecider(abc.ABC):
    """Per-document logic of a stage: ``setup`` loads models (after unpickling), ``decide`` returns a verdict.

    ``decide`` returns ``Keep(doc)`` (annotated copy of the doc) or ``Reject(reason)``. An exception sends the doc
    to the dead-letter output. ``decide_batch`` may be overridden to amortize model calls over a bundle.
    """

    stage_name: ClassVar[str] = "stage"

    def setup(self) -> None:  # noqa: B027 - optional hook; most deciders need no loading
        """Load models and build tables; runs once per worker process, never on the launcher."""

    @abc.abstractmethod
    def decide(self, doc: dict[str, Any]) -> Keep | Reject:
        """The verdict on one doc."""

    def decide_batch(self, docs: list[dict[str, Any]]) -> list[Keep | Reject | BaseException]:
        out: list[Keep | Reject | BaseException] = []
        for doc in docs:
            try:
                out.append(self.decide(doc))
            except Exception as err:  # one bad doc must not stop the run
                out.append(err)
        return out


def error_text(err: BaseException) -> str:
    """A one-line error plus where it was raised, for the dead-letter output."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(err).__name__}: {err}{where}"


class _DecideFn(BatchingDoFn):
    """Runs a DocDecider over batches of docs and routes each verdict to its output."""

    def __init__(self, decider: DocDecider, batch_size: int):
        super().__init__(batch_size)
        self._decider = decider
        name = decider.stage_name
        self._kept = Metrics.counter(name, "kept")
        self._rejected = Metrics.counter(name, "rejected")
        self._errors = Metrics.counter(name, "dead_letter")

    def setup(self) -> None:
        self._decider.setup()

    def handle_batch(self, docs: list[dict[str, Any]]):
        name = self._decider.stage_name
        try:
            verdicts = self._decider.decide_batch(docs)
        except Exception as err:  # the batch call itself failed: retry one by one to isolate the culprit
            LOG.warning("%s: batch failed (%s); retrying documents one by one", name, err)
            verdicts = DocDecider.decide_batch(self._decider, docs)
        for doc, verdict in zip(docs, verdicts):
            if isinstance(verdict, Keep):
                self._kept.inc()
                yield verdict.doc
                stats = verdict.stats
            elif isinstance(verdict, Reject):
                self._rejected.inc()
                yield beam.pvalue.TaggedOutput(REJECTED, rejected(doc, name, verdict.reason))
                stats = verdict.stats
            else:
                self._errors.inc()
                yield beam.pvalue.TaggedOutput(
                    DEAD_LETTER, dead_letter(name, error_text(verdict), doc_id=doc.get("id"), raw=doc.get("text"))
                )
                stats = None
            for key, value in (stats or {}).items():
                yield beam.pvalue.TaggedOutput(STATS, (key, value))


class Stage(beam.PTransform):
    """Base of all stages: ``name`` is the stage's name in recipes, the CLI and OUT/rejected/<name>."""

    name: ClassVar[str] = "stage"

    def report_section(self, stats: dict[tuple[str, ...], dict[str, float]]) -> dict[str, Any] | None:
        """Optional: the stage's own report section, built from its summed stats (JSON-able)."""
        return None


class DecideStage(Stage):
    """A stage made of one DocDecider applied to every doc."""

    def __init__(self, decider: DocDecider, batch_size: int = 64):
        super().__init__(label=decider.stage_name)
        self.decider = decider
        self.batch_size = batch_size

    def expand(self, docs):
        outputs = docs | "Decide" >> beam.ParDo(_DecideFn(self.decider, self.batch_size)).with_outputs(
            REJECTED, DEAD_LETTER, STATS, main=KEPT
        )
        return {KEPT: outputs[KEPT], REJECTED: outputs[REJECTED], DEAD_LETTER: outputs[DEAD_LETTER],
                STATS: outputs[STATS]}


def _example_stats(item):
    group, top = item
    for i, (_, fields) in enumerate(top):
        yield ("example", group, f"{i:03d}", *fields), {"docs": 1}


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
