"""The re-weighted Parquet mixture of ``qurate mix``: ``NEW/mixture/<component>/part-*.parquet``, sharded by
tokens, each shard written atomically with its checksum."""

from __future__ import annotations

import io
import math

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from qurate.hashing import stable_hash
from qurate.pipelines.export_files import file_stat, write_atomic


def _shards():
    try:
        from qurate.pipelines import shards as module
    except ImportError:  # older layout
        from qurate.pipelines import sinks as module
    return module


def _mixture_schema():
    try:
        from qurate.pipelines.schema import MIXTURE_SCHEMA
    except ImportError:  # older layout
        from qurate.pipelines.doc import MIXTURE_SCHEMA
    return MIXTURE_SCHEMA


class _WriteMixtureShardFn(beam.DoFn):
    """One Parquet shard of the re-weighted mixture, written atomically with its checksum."""

    def __init__(self, new_dir: str):
        self.new_dir = new_dir

    def process(self, item):
        (component, shard, num_shards), rows = item
        shards, schema = _shards(), _mixture_schema()
        rows = sorted(rows, key=lambda r: (r["id"], r["repeat"]))
        path = shards.shard_path(FileSystems.join(self.new_dir, "mixture"), component, shard, num_shards)
        table = shards.rows_to_table(rows, schema)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd", row_group_size=8192)
        result = write_atomic(path, lambda h: h.write(buffer.getbuffer()))
        yield file_stat(self.new_dir, path, "mixture", result)
        yield ("mixture_shard", component, path[len(self.new_dir):].lstrip("/")), {
            "rows": len(rows), "tokens": sum(r["n_tokens"] for r in rows),
            "docs": sum(1 for r in rows if r["repeat"] == 0)}


class WriteMixMixture(beam.PTransform):
    """Re-weighted rows -> ``NEW/mixture/<component>/part-*.parquet`` (sharded by ``shard_tokens``)."""

    def __init__(self, new_dir: str, shard_tokens: int, seed: int):
        super().__init__()
        self.new_dir, self.shard_tokens, self.seed = new_dir, shard_tokens, seed

    def expand(self, rows):
        size, seed = self.shard_tokens, self.seed
        keyed = rows | "Key" >> beam.Map(lambda r: (r["parquet_component"], r))
        totals = (keyed | "Size" >> beam.Map(lambda kv: (kv[0], kv[1]["n_tokens"]))
                  | "Total" >> beam.CombinePerKey(sum))

        def assign(kv, sizes):
            component, row = kv
            num = max(1, math.ceil(sizes.get(component, 0) / size))
            return (component, stable_hash("mixture", row["id"], row["repeat"], seed) % num, num), row

        return (keyed
                | "Shard" >> beam.Map(assign, sizes=beam.pvalue.AsDict(totals))
                | "Group" >> beam.GroupByKey()
                | "Write" >> beam.ParDo(_WriteMixtureShardFn(self.new_dir)))
