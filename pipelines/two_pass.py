"""Stages that decide from a global view, run in two passes when the run is a chain of checkpointed jobs.

Read (duplicate ids) and dedup (clusters) decide each doc from the whole collection: a small plan computed from
every doc (the ids read twice; the clustered docs' decisions), then applied to each doc. In one Beam job that is
``apply(docs, plan(docs))``: the runner holds the docs until the plan is ready — a cluster runner in its shuffle
service, a local runner in memory (every text, for the whole corpus). In a checkpoint chain the stage runs as
two jobs over the same checkpoint instead: pass 1 reads it and writes only the plan (pickled small records)
beside it, pass 2 reads it again and applies the plan as a side input while the docs stream through. Both passes
use the same functions as the one-job graph, so the outputs are the same.

A two-pass transform has ``plan(docs) -> {PLAN: records (or a tuple of them), "docs"?, STATS?, DEAD_LETTER?,
REJECTED?}`` (``"docs"``: the docs annotated by the plan, which pass 2 then reads instead of the input) and
``apply(docs, plan records) -> {KEPT, REJECTED?, DEAD_LETTER?, STATS?}``; for read, ``docs`` is the pipeline.
"""

from __future__ import annotations

import hashlib
import pickle
import uuid
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from qurate.pipelines.shards import write_atomic

PLAN = "plan"
PLAN_KEY = "_plan"  # stats key of a written plan file: (key, file name, sha256)
PLAN_RECORDS = 200_000  # records per plan file


def is_two_pass(transform: Any) -> bool:
    return callable(getattr(transform, "plan", None)) and callable(getattr(transform, "apply", None))


class WritePlan(beam.DoFn):
    """Plan records -> ``folder/plan-<random>.pickle`` files; one stats pair per file, so only committed bundles'
    files are read by pass 2."""

    def __init__(self, folder: str, max_records: int = PLAN_RECORDS):
        self._folder, self._max = folder, max_records

    def start_bundle(self) -> None:
        self._records: list[Any] = []

    def process(self, record):
        self._records.append(record)
        if len(self._records) >= self._max:
            yield from self._flush()

    def finish_bundle(self):
        for pair in self._flush():
            yield WindowedValue(pair, MIN_TIMESTAMP, [GlobalWindow()])

    def _flush(self):
        if not self._records:
            return
        data = pickle.dumps(self._records, protocol=4)
        name = f"plan-{uuid.uuid4().hex}.pickle"
        write_atomic(FileSystems.join(self._folder, name), data)
        yield (PLAN_KEY, name, hashlib.sha256(data).hexdigest()), {"records": len(self._records)}
        self._records = []


def _read_plan(path: str):
    with FileSystems.open(path) as handle:
        yield from pickle.loads(handle.read())  # noqa: S301  (written by pass 1 of this run)


class ReadPlan(beam.PTransform):
    """``PBegin -> plan records`` of the given plan files."""

    def __init__(self, paths: list[str]):
        super().__init__()
        self.paths = sorted(paths)

    def expand(self, pbegin):
        return pbegin | "Files" >> beam.Create(self.paths) | "Read" >> beam.FlatMap(_read_plan)


def plan_files(folder: str, stats: dict[tuple, Any]) -> list[str]:
    """The plan files pass 1 reported (its stats), as paths."""
    return sorted(FileSystems.join(folder, key[1]) for key in stats if key and key[0] == PLAN_KEY)
