"""Sharded, deterministic Parquet files on any Beam filesystem (the writer under every sink in ``sinks.py``).

Every sink goes through ``WriteShardedParquet``: rows are keyed by a group (mixture component, rejecting stage,
...), the group's total size decides its shard count (``ceil(total / target)``), shard ``i`` of ``n`` takes the
rows whose 64-bit id hash ``h`` has ``h * n >> 64 == i``, and each shard is sorted by its sort key before it is
written. Full rows never cross a fusion boundary (a local runner would hold them all in memory): they go to
temporary spill files first (``spill.py``), and only small records about those files are shuffled. So a worker's
memory is bounded by the spill bound and the target shard size, and the same rows give the same files on every
runner, however the rows were bundled.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from qurate.hashing import stable_hash
from qurate.pipelines.spill import KEY, STATS, SpillFn, read_spill, remove_spill_folder, spill_folder
from qurate.pipelines.spill import rows_to_table as rows_to_table  # where it always was, for callers

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# A name used as it is: starts and ends with a letter or digit, no "--" (it stands for "/"), at most 100 chars.
_PLAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
MAX_NAME_CHARS = 100


def _plain(text: str) -> bool:
    return _PLAIN.fullmatch(text) is not None and "--" not in text


def safe_component(name: Any) -> str:
    """A folder name for a group value (mixture component, stage), bounded and collision-free.

    ``web/trafilatura-tests`` -> ``web--trafilatura-tests`` (readable when every ``/``-part is plain); any other
    value is cleaned, cut and given ``~`` and a 64-bit hash of the value (``my source!`` -> ``my_source~3f...``), so
    two values never share a folder: plain names hold no ``--`` or ``~``, joined ones no ``~``. No value (None or
    ``""``) is ``unknown``.
    """
    text = str(name) if name not in (None, "") else "unknown"
    if _plain(text):
        return text
    parts = text.split("/")
    if len(text) <= MAX_NAME_CHARS and all(_plain(part) for part in parts):
        return "--".join(parts)
    cleaned = _UNSAFE.sub("_", text).strip("._-")[:60] or "x"
    return f"{cleaned}~{stable_hash('component', text):016x}"


def write_atomic(path: str, data: bytes | memoryview) -> None:
    """Writes ``path`` whole or not at all: to a temporary name beside it, then renamed over it (a full disk or a
    killed worker leaves no truncated file under the real name)."""
    folder, name = path.rsplit("/", 1) if "/" in path else ("", path)
    tmp = f"{folder}/.{name}.{uuid.uuid4().hex[:12]}.tmp" if folder else f".{name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(data)
        FileSystems.rename([tmp], [path])
    except BaseException:
        with contextlib.suppress(Exception):  # the write failed; the temporary file must not stay behind
            FileSystems.delete([tmp])
        raise


def shard_path(prefix: str, group: str, shard: int, num_shards: int) -> str:
    folder = FileSystems.join(prefix, group) if group else prefix
    return FileSystems.join(folder, f"part-{shard:05d}-of-{num_shards:05d}.parquet")


SHARD_ROW_GROUP = 8192
DEFAULT_SPILL_BYTES = 64 << 20  # Arrow bytes a spilling worker buffers before it writes a spill file
SPILL_ROW_GROUP = 2048  # rows per spill row group: how finely a shard can skip rows of other shards


def hash_bound(shard: int, num_shards: int) -> int:
    """The smallest id hash of ``shard``: ``h`` is in shard ``h * n >> 64``, so shard ``i`` is
    ``[ceil(i * 2**64 / n), ceil((i + 1) * 2**64 / n))``."""
    return -(-(shard << 64) // num_shards)


def _plan(record, totals: dict[Any, float], target: float):
    """A spill record -> ``((group, shard, num_shards), (path, row groups))`` for every shard it holds rows of."""
    group, (path, _, ranges) = record
    num_shards = max(1, math.ceil(totals.get(group, 0) / target))
    by_shard: dict[int, list[int]] = {}
    for index, (low, high) in enumerate(ranges):
        for shard in range((low * num_shards) >> 64, ((high * num_shards) >> 64) + 1):
            by_shard.setdefault(shard, []).append(index)
    for shard, row_groups in sorted(by_shard.items()):
        yield (group, shard, num_shards), (path, row_groups)


def _sorted_order(table: pa.Table, keys: pa.ChunkedArray) -> np.ndarray:
    """Row order by sort key; rows with equal keys (a repeated id) by their content, so the order never depends on
    how the rows were bundled."""
    order = pc.sort_indices(keys).to_numpy().copy()  # a writable copy
    if len(order) < 2:
        return order
    keys = keys.take(order)
    ties = pc.equal(keys.slice(1), keys.slice(0, len(order) - 1)).to_numpy(zero_copy_only=False)
    start = 0
    for pos in range(1, len(order) + 1):
        if pos < len(order) and ties[pos - 1]:
            continue
        if pos - start > 1:  # a run of equal keys: rare, so the rows are compared as Python values
            run = order[start:pos].copy()
            rows = table.take(run).to_pylist()
            order[start:pos] = [run[j] for j in sorted(range(len(rows)), key=lambda j: repr(rows[j]))]
        start = pos
    return order


class _WriteShardFn(beam.DoFn):
    def __init__(self, sink: str, prefix: str, schema: pa.Schema):
        self._sink = sink
        self._prefix = prefix
        self._schema = schema

    def process(self, item):
        (group, shard, num_shards), pieces = item
        low = hash_bound(shard, num_shards)
        high = hash_bound(shard + 1, num_shards) if shard + 1 < num_shards else None
        tables = [read_spill(path, row_groups, low, high) for path, row_groups in sorted(pieces)]
        table = pa.concat_tables(tables)
        del tables
        if table.num_rows == 0:  # its row groups straddled the shard: as before, a shard without rows has no file
            return
        keys, stats = table.column(KEY), table.column(STATS)
        table = table.select(self._schema.names)
        with contextlib.suppress(pa.ArrowInvalid):  # over 2 GiB in a column stays chunked (takes are slower)
            table = table.combine_chunks()  # one copy of the shard, so that the takes below are cheap
        order = _sorted_order(table, keys)
        totals: dict[str, float] = {"rows": len(order), "files": 1, "bytes": 0}
        for text in stats.take(order).to_pylist():
            if text != "{}":
                for key, value in json.loads(text).items():
                    totals[key] = totals.get(key, 0) + value
        path = shard_path(self._prefix, group, shard, num_shards)
        buffer = io.BytesIO()
        # A row group at a time, each one chunk: Parquet pages follow chunk boundaries, which then never depend on
        # which spill files the rows came from; and only one row group is held beside the shard.
        with pq.ParquetWriter(buffer, self._schema, compression="zstd") as writer:
            for i in range(0, len(order), SHARD_ROW_GROUP):
                writer.write_table(table.take(order[i:i + SHARD_ROW_GROUP]).combine_chunks(),
                                   row_group_size=SHARD_ROW_GROUP)
        del table
        write_atomic(path, buffer.getbuffer())  # a retried bundle rewrites the same file: idempotent
        totals["bytes"] = buffer.tell()
        yield ("written", self._sink, group), totals
        yield ("shard", self._sink, group, path), {k: v for k, v in totals.items() if k != "files"}


class WriteShardedParquet(beam.PTransform):
    """``PCollection[(group, row)] -> PCollection[(stats key, stats)]``; writes ``prefix/group/part-*.parquet``.

    ``size_of(row)`` measures a row against ``target_size`` per shard; ``id_of(row)`` places it in a shard;
    ``sort_key(row)`` (None, numbers, strings, bytes, or tuples of them) orders a shard. Spill files live in
    ``prefix/_spill/<run>/`` and are deleted once every shard is written.
    """

    def __init__(self, sink: str, prefix: str, schema: pa.Schema, *, target_size: float,
                 size_of: Callable[[dict], float], id_of: Callable[[dict], Any], sort_key: Callable[[dict], Any],
                 stats_of: Callable[[dict], dict[str, float]] = lambda row: {},
                 spill_bytes: int = DEFAULT_SPILL_BYTES, spill_row_group: int = SPILL_ROW_GROUP):
        super().__init__()
        self.sink, self.prefix, self.schema = sink, prefix, schema
        self.target_size, self.size_of, self.id_of = target_size, size_of, id_of
        self.sort_key, self.stats_of = sort_key, stats_of
        self.spill_bytes, self.spill_row_group = spill_bytes, spill_row_group

    def expand(self, keyed_rows):
        folder = spill_folder(self.prefix, uuid.uuid4().hex[:16])  # this run's: a rerun never reads another's
        spills = keyed_rows | "Spill" >> beam.ParDo(SpillFn(
            folder, self.schema, self.size_of, self.id_of, self.sort_key, self.stats_of, self.spill_bytes,
            self.spill_row_group))
        totals = (spills
                  | "SpillSize" >> beam.Map(lambda record: (record[0], record[1][1]))
                  | "GroupSize" >> beam.CombinePerKey(sum))
        written = (
            spills
            | "Plan" >> beam.FlatMap(_plan, totals=beam.pvalue.AsDict(totals), target=self.target_size)
            | "GroupShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShardFn(self.sink, self.prefix, self.schema))
        )
        _ = (written
             | "AllWritten" >> beam.combiners.Count.Globally()
             | "RemoveSpill" >> beam.Map(lambda _, path: remove_spill_folder(path), folder))
        return written
