"""Run statistics: ``(key tuple, {field: number})`` pairs summed per key, written as one JSON-lines file.

Every stage and sink emits such pairs; the manifest, the conservation check and the report are all built from
the summed file, so ``qurate report OUT`` can rebuild the report without re-reading the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from qurate.stats import Stats, select  # noqa: F401  (select: re-exported for the manifest and report)

STATS_FILE = "_stats/stats.jsonl"
LAUNCH_FILE = "_stats/launch.json"  # what the launcher planned: lets `qurate finalize` finish a detached run



def _add_fields(acc: dict[str, float], value: dict[str, float]) -> dict[str, float]:
    for key, number in value.items():
        acc[key] = acc.get(key, 0) + number
    return acc


class SumFields(beam.CombineFn):
    """Field-wise sum of ``{field: number}`` dicts."""

    def create_accumulator(self) -> dict[str, float]:
        return {}

    def add_input(self, acc: dict[str, float], value: dict[str, float]) -> dict[str, float]:
        return _add_fields(acc, value)

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


def add_stats(sums: dict, key, value: dict[str, float]) -> None:
    """Adds one stats pair to running per-key totals (``sums`` maps key -> {field: number})."""
    _add_fields(sums.setdefault(key, {}), value)


class BundleSums(beam.DoFn):
    """Stats pairs summed per key within each bundle, emitted when the bundle ends.

    Runs fused with the producer of the pairs, so it needs no shuffle of its own: Beam's ``CombinePerKey`` would
    lift the same partial sum, but adds a GroupByKey, which the FnApiRunner runs as a separate stage (a few tens
    of milliseconds each, dozens of them per run). The one ``CombinePerKey`` in ``WriteStats`` sums the partials.
    """

    def start_bundle(self) -> None:
        self._sums: dict = {}

    def process(self, pair):
        add_stats(self._sums, *pair)

    def finish_bundle(self):
        from qurate.pipelines.batching import in_global_window

        sums, self._sums = self._sums, {}
        for pair in sums.items():
            yield in_global_window(pair)


def flatten_stats(pcolls, label: str):
    """Stats pairs of several collections as one, each summed per key and bundle first (``BundleSums``).

    A local runner materializes a Flatten of two or more inputs: every element, in memory. Per-document stats
    pairs (several per doc) summed in the bundle that made them leave one partial sum per key and bundle to cross
    it instead. Consumers sum per key (``WriteStats``)."""
    pcolls = list(pcolls)
    if len(pcolls) == 1:
        return pcolls[0]
    summed = [pc | f"{label}/Sum{i}" >> beam.ParDo(BundleSums()) for i, pc in enumerate(pcolls)]
    return summed | f"{label}/All" >> beam.Flatten()


def flatten_docs(pcolls, label: str, pipeline=None):
    """One collection of several (a local runner materializes a Flatten of two or more: avoided for one)."""
    pcolls = list(pcolls)
    if len(pcolls) == 1:
        return pcolls[0]
    return pcolls | label >> beam.Flatten(pipeline=pipeline)


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


def write_launch(out_dir: str, recipe: dict, stage_names: list[str], files: list[str], runner: str,
                 fingerprint: str | None = None) -> None:
    """Saves what the launcher knows before the pipeline starts, beside the stats the workers will write.

    ``qurate finalize OUT`` rebuilds manifest and report from this file and the stats when the launcher did not
    wait (a detached Dataflow job) or died. Of the Beam options only the runner's name is kept (values may hold
    credentials; the manifest needs no other).
    """
    from qurate.pipelines.manifest import redact

    # The fingerprint is taken before redaction (a redacted secret would change it).
    data = {"qurate_launch": 1, "out_dir": out_dir, "recipe": redact(recipe), "fingerprint": fingerprint,
            "stages": stage_names, "files": files, "runner": runner}
    with FileSystems.create(FileSystems.join(out_dir, LAUNCH_FILE)) as handle:
        handle.write(json.dumps(data, indent=1).encode("utf-8"))


def read_launch(out_dir: str) -> dict:
    with FileSystems.open(FileSystems.join(out_dir, LAUNCH_FILE)) as handle:
        return json.loads(handle.read().decode("utf-8"))
