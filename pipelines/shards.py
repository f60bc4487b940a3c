"""Sharded, deterministic Parquet files on any Beam filesystem (the writer under every sink in ``sinks.py``).

Every sink goes through ``WriteShardedParquet``: rows are keyed by a group (mixture component, rejecting stage,
...), the group's total size decides its shard count (``ceil(total / target)``), each row goes to the shard its
id hashes to, and each shard is sorted by its sort key before it is written. So a shard's memory is bounded by the
target size, and the same rows give the same files on every runner.
"""

from __future__ import annotations

import array
import contextlib
import io
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from qurate.hashing import stable_hash

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


def write_atomic(path: str, data: bytes) -> None:
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


_MAX_LIST_VALUES = 2**31 - 1  # int32 list offsets


def _column(field: pa.Field, values: list[Any]) -> pa.Array:
    """One Arrow column; token lists held as ``array.array`` / numpy arrays are copied in bulk, not per item."""
    if (pa.types.is_list(field.type) and values
            and all(isinstance(v, (array.array, np.ndarray)) for v in values)):
        lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
        if lengths.sum() <= _MAX_LIST_VALUES:
            offsets = np.zeros(len(values) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            dtype = field.type.value_type.to_pandas_dtype()
            flat = np.concatenate([np.asarray(v, dtype=dtype) for v in values])
            return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=field.type.value_type),
                                            type=field.type)
        values = [v.tolist() for v in values]
    return pa.array(values, type=field.type)


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """An Arrow table of ``schema`` from row dicts (a missing column value is null)."""
    return pa.Table.from_arrays([_column(f, [r.get(f.name) for r in rows]) for f in schema], schema=schema)


class _WriteShardFn(beam.DoFn):
    def __init__(self, sink: str, prefix: str, schema: pa.Schema, sort_key: Callable[[dict], Any],
                 stats_of: Callable[[dict], dict[str, float]]):
        self._sink = sink
        self._prefix = prefix
        self._schema = schema
        self._sort_key = sort_key
        self._stats_of = stats_of

    def process(self, item):
        (group, shard, num_shards), rows = item
        rows = sorted(rows, key=self._sort_key)
        path = shard_path(self._prefix, group, shard, num_shards)
        table = rows_to_table(rows, self._schema)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd", row_group_size=8192)
        write_atomic(path, buffer.getvalue())  # a retried bundle rewrites the same file: idempotent
        totals: dict[str, float] = {"rows": len(rows), "files": 1, "bytes": buffer.tell()}
        for row in rows:
            for key, value in self._stats_of(row).items():
                totals[key] = totals.get(key, 0) + value
        yield ("written", self._sink, group), totals
        yield ("shard", self._sink, group, path), {"rows": len(rows), **{k: v for k, v in totals.items()
                                                                         if k not in ("files",)}}


class WriteShardedParquet(beam.PTransform):
    """``PCollection[(group, row)] -> PCollection[(stats key, stats)]``; writes ``prefix/group/part-*.parquet``.

    ``size_of(row)`` measures a row against ``target_size`` per shard; ``id_of(row)`` places it in a shard.
    """

    def __init__(self, sink: str, prefix: str, schema: pa.Schema, *, target_size: float,
                 size_of: Callable[[dict], float], id_of: Callable[[dict], Any], sort_key: Callable[[dict], Any],
                 stats_of: Callable[[dict], dict[str, float]] = lambda row: {}):
        super().__init__()
        self.sink, self.prefix, self.schema = sink, prefix, schema
        self.target_size, self.size_of, self.id_of = target_size, size_of, id_of
        self.sort_key, self.stats_of = sort_key, stats_of

    def expand(self, keyed_rows):
        size_of, id_of, target = self.size_of, self.id_of, self.target_size
        sizes = (
            keyed_rows
            | "Size" >> beam.Map(lambda kv: (kv[0], size_of(kv[1])))
            | "GroupSize" >> beam.CombinePerKey(sum)
        )

        def to_shard(kv, group_sizes):
            group, row = kv
            num_shards = max(1, math.ceil(group_sizes.get(group, 0) / target))
            return (group, stable_hash(id_of(row)) % num_shards, num_shards), row

        return (
            keyed_rows
            | "AssignShard" >> beam.Map(to_shard, group_sizes=beam.pvalue.AsDict(sizes))
            | "GroupShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(
                _WriteShardFn(self.sink, self.prefix, self.schema, self.sort_key, self.stats_of))
        )
