"""Run statistics: ``(key tuple, {field: number})`` pairs summed per key, written as one JSON-lines file.

Every stage and sink emits such pairs; the manifest, the conservation check and the report are all built from
the summed file, so ``qurate report OUT`` can rebuild the report without re-reading the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

STATS_FILE = "_stats/stats.jsonl"

StatKey = tuple[str, ...]
Stats = dict[StatKey, dict[str, float]]


class SumFields(beam.CombineFn):
    """Field-wise sum of ``{field: number}`` dicts."""

    def create_accumulator(self) -> dict[str, float]:
        return {}

    def add_input(self, acc: dict[str, float], value: dict[str, float]) -> dict[str, float]:
        for key, number in value.items():
            acc[key] = acc.get(key, 0) + number
        return acc

    def merge_accumulators(self, accs: Iterable[dict[str, float]]) -> dict[str, float]:
        out: dict[str, float] = {}
        for acc in accs:
            self.add_input(out, acc)
        return out

    def extract_output(self, acc: dict[str, float]) -> dict[str, float]:
        return acc


def _write_lines(item, path: str):
    _, lines = item
    with FileSystems.create(path) as handle:
        handle.write("".join(sorted(lines)).encode("utf-8"))
    yield path


class WriteStats(beam.PTransform):
    """Sums all stats pairs per key and writes them, sorted, to ``OUT/_stats/stats.jsonl``."""

    def __init__(self, out_dir: str):
        super().__init__()
        self.path = FileSystems.join(out_dir, STATS_FILE)

    def expand(self, pairs):
        return (
            pairs
            | "Sum" >> beam.CombinePerKey(SumFields())
            | "ToLine" >> beam.Map(lambda kv: json.dumps([list(kv[0]), kv[1]], sort_keys=True) + "\n")
            | "OneKey" >> beam.Map(lambda line: (None, line))
            | "Gather" >> beam.GroupByKey()  # stats are small: a few thousand keys
            | "Write" >> beam.FlatMap(_write_lines, self.path)
        )


def read_stats(out_dir: str) -> Stats:
    """The summed stats of a finished run."""
    path = FileSystems.join(out_dir, STATS_FILE)
    with FileSystems.open(path) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    stats: Stats = {}
    for line in lines:
        if not line:
            continue
        key, value = json.loads(line)
        stats[tuple(key)] = value
    return stats


def select(stats: Stats, *prefix: str) -> dict[StatKey, dict[str, Any]]:
    """The stats whose key starts with ``prefix``, keyed by the rest of the key."""
    n = len(prefix)
    return {key[n:]: value for key, value in stats.items() if key[:n] == prefix}
