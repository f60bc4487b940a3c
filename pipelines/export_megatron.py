"""The Megatron export: one indexed dataset (``.bin`` / ``.idx``) per split, component and shard."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.export_files import create_file, file_stat, relative_path, replace_file
from qurate.pipelines.export_keys import order_key, shard_by_size
from qurate.pipelines.megatron import write_indexed_dataset
from qurate.pipelines.mixture_rows import TOKEN_DTYPE


class _WriteMegatronFn(beam.DoFn):
    def __init__(self, out_dir: str, seed: int, shuffle: bool):
        self.out_dir, self.seed, self.shuffle = out_dir, seed, shuffle

    def process(self, item):
        (split, component, shard, num_shards), rows = item
        rows = sorted(rows, key=lambda r: order_key(r, self.seed, self.shuffle))
        prefix = FileSystems.join(self.out_dir, "megatron", split, component,
                                  f"part-{shard:05d}-of-{num_shards:05d}")
        result = write_indexed_dataset(prefix, (r["tokens"] for r in rows), TOKEN_DTYPE, create=create_file,
                                       rename=replace_file)
        yield file_stat(self.out_dir, result["bin"]["path"], "megatron_bin", result["bin"])
        yield file_stat(self.out_dir, result["idx"]["path"], "megatron_idx", result["idx"])
        yield ("megatron", split, component, relative_path(self.out_dir, prefix)), {
            "docs": result["docs"], "tokens": result["tokens"]}


class WriteMegatron(beam.PTransform):
    """``(split, component, row)`` -> Megatron shards; yields stats."""

    def __init__(self, out_dir: str, seed: int, shuffle: bool, shard_tokens: int):
        super().__init__()
        self.out_dir, self.seed, self.shuffle, self.shard_tokens = out_dir, seed, shuffle, shard_tokens

    def expand(self, keyed):
        grouped = keyed | "Key" >> beam.Map(lambda t: ((t[0], t[1]), t[2]))
        totals = (grouped | "Size" >> beam.Map(lambda kv: (kv[0], kv[1]["n_tokens"]))
                  | "Total" >> beam.CombinePerKey(sum))
        return (
            grouped
            | "Shard" >> beam.Map(shard_by_size(self.shard_tokens, "megatron", self.seed),
                                  totals=beam.pvalue.AsDict(totals))
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteMegatronFn(self.out_dir, self.seed, self.shuffle))
        )
