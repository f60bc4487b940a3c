"""The packed-sequence export: per split and pack group, the token matrix, the span index and the per-span
document table, plus the packing numbers (and the other policy's, for the report)."""

from __future__ import annotations

import io

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from qurate.hashing import stable_hash
from qurate.pipelines.export_files import file_stat, write_atomic
from qurate.pipelines.export_keys import Row, component_of, order_key, shard_by_size
from qurate.pipelines.mixture_rows import TOKEN_DTYPE
from qurate.pipelines.pack_config import PackConfig
from qurate.pipelines.packing import fill_sequences, pack, spans_array, stage_share

PACKED_DOCS_SCHEMA = pa.schema([
    pa.field("sequence", pa.int64(), nullable=False), pa.field("start", pa.int32(), nullable=False),
    pa.field("length", pa.int32(), nullable=False), pa.field("id", pa.string(), nullable=False),
    pa.field("repeat", pa.int32(), nullable=False), pa.field("component", pa.string()),
    pa.field("doc_offset", pa.int64(), nullable=False), pa.field("doc_tokens", pa.int64(), nullable=False),
])


def pack_group(rows: list[Row], cfg: PackConfig, seq_len: int, seed: int):
    """Packs one group's rows (any arrival order): the rows in keyed order, the packing, and the sequence order."""
    rows = sorted(rows, key=lambda r: order_key(r, seed, cfg.shuffle))
    lengths = [int(r["n_tokens"]) for r in rows]
    result = pack(lengths, seq_len, cfg.policy,
                  long_context_share=stage_share(cfg.seq_lens, seq_len, cfg.long_context_share),
                  groups=[r["id"] for r in rows])
    if cfg.shuffle:  # sequence order: keyed hash of its first piece, so long and short sequences interleave
        def seq_key(seq):
            doc, offset, _ = seq[0]
            return stable_hash("sequence", rows[doc]["id"], rows[doc]["repeat"], offset, seed), rows[doc]["id"]
        result.sequences.sort(key=seq_key)
    return rows, result


class _WritePackedFn(beam.DoFn):
    def __init__(self, out_dir: str, cfg: PackConfig, seed: int, pad_id: int, component_by: str):
        self.out_dir, self.cfg, self.seed, self.pad_id = out_dir, cfg, seed, pad_id
        self.component_by = component_by

    def process(self, item):
        (seq_len, split, group, num_groups), rows = item
        rows, result = pack_group(list(rows), self.cfg, seq_len, self.seed)
        spans = spans_array(result.sequences)
        stem = FileSystems.join(self.out_dir, "packed", f"seq{seq_len}", split,
                                f"part-{group:05d}-of-{num_groups:05d}")
        n_seq = len(result.sequences)
        summary = result.summary()
        yield ("packed", str(seq_len), split, self.cfg.policy), summary
        # what the other policy would have cost on the same rows (lengths only: cheap), for the report
        other = "greedy" if self.cfg.policy == "best_fit" else "best_fit"
        alt = pack([int(r["n_tokens"]) for r in rows], seq_len, other, long_context_share=stage_share(
            self.cfg.seq_lens, seq_len, self.cfg.long_context_share), groups=[r["id"] for r in rows])
        yield ("packed_compare", str(seq_len), split, other), alt.summary()
        yield ("packed_compare", str(seq_len), split, self.cfg.policy), summary
        if n_seq == 0:  # everything left out (long-context share with no long documents): no empty files
            return
        matrix = fill_sequences([r["tokens"] for r in rows], spans, n_seq, seq_len, self.pad_id, TOKEN_DTYPE)
        written = write_atomic(f"{stem}.tokens.npy", lambda h: np.lib.format.write_array(h, matrix))
        yield file_stat(self.out_dir, f"{stem}.tokens.npy", "packed_tokens", written)
        index = np.ascontiguousarray(spans[:, [0, 1, 2, 4]])
        written = write_atomic(f"{stem}.spans.npy", lambda h: np.lib.format.write_array(h, index))
        yield file_stat(self.out_dir, f"{stem}.spans.npy", "packed_spans", written)
        docs = [rows[d] for d in spans[:, 3].tolist()]
        table = pa.Table.from_arrays([
            pa.array(spans[:, 0], pa.int64()), pa.array(spans[:, 1], pa.int32()),
            pa.array(spans[:, 2], pa.int32()), pa.array([r["id"] for r in docs], pa.string()),
            pa.array([r["repeat"] for r in docs], pa.int32()),
            pa.array([component_of(r, self.component_by) for r in docs], pa.string()),
            pa.array(spans[:, 4], pa.int64()), pa.array([r["n_tokens"] for r in docs], pa.int64()),
        ], schema=PACKED_DOCS_SCHEMA)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        written = write_atomic(f"{stem}.docs.parquet", lambda h: h.write(buffer.getbuffer()))
        yield file_stat(self.out_dir, f"{stem}.docs.parquet", "packed_docs", written)
        per_component: dict[str, float] = {}
        for r, n in zip(docs, spans[:, 2].tolist()):
            name = component_of(r, self.component_by)
            per_component[name] = per_component.get(name, 0) + n
        for name, tokens in per_component.items():
            yield ("packed_component", str(seq_len), split, name), {"tokens": tokens}


class WritePacked(beam.PTransform):
    """``(split, component, row)`` -> packed sequences at one ``seq_len``; yields stats."""

    def __init__(self, out_dir: str, cfg: PackConfig, seed: int, seq_len: int, shard_tokens: int, pad_id: int):
        super().__init__()
        self.out_dir, self.cfg, self.seed, self.seq_len = out_dir, cfg, seed, seq_len
        self.shard_tokens, self.pad_id = shard_tokens, pad_id

    def expand(self, keyed):
        seq_len = self.seq_len
        by_split = keyed | "Key" >> beam.Map(lambda t: ((seq_len, t[0]), t[2]))
        totals = (by_split | "Size" >> beam.Map(lambda kv: (kv[0], kv[1]["n_tokens"]))
                  | "Total" >> beam.CombinePerKey(sum))
        return (
            by_split
            | "Group" >> beam.Map(shard_by_size(self.shard_tokens, "pack", self.seed),
                                  totals=beam.pvalue.AsDict(totals))
            | "GroupRows" >> beam.GroupByKey()
            | "PackWrite" >> beam.ParDo(_WritePackedFn(self.out_dir, self.cfg, self.seed, self.pad_id,
                                                       self.cfg.component_by))
        )
