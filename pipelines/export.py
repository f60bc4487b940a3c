"""Trainer-ready exports of a finished mixture: Megatron indexed datasets and packed sequences (numpy memmap).

A second, short Beam pipeline after the run (and the whole of ``qurate mix``): it reads the Parquet mixture, so
its tokens are the mixture's tokens by construction, and writes

```
OUT/megatron/<split>/<component>/part-00000-of-000NN.bin|.idx      one document per sequence, int32
OUT/packed/seq<L>/<split>/part-00000-of-000NN.tokens.npy           int32 [sequences, L], padded with EOS
OUT/packed/seq<L>/<split>/part-00000-of-000NN.spans.npy            int64 [spans, 4]: sequence, start, length,
                                                                    offset of the piece inside its document
OUT/packed/seq<L>/<split>/part-00000-of-000NN.docs.parquet         per span (same order): id, repeat,
                                                                    component, doc_offset, doc_tokens
OUT/_stats/export.jsonl                                            summed stats (files, checksums, packing)
```

Nothing gathers the corpus. Split: a document goes to validation when ``stable_unit(id, seed)`` falls under
``pack.validation_share`` (by id alone, so no repeat of a training document leaks into validation). Shuffle: each
row goes to a shard by a keyed hash of (id, repeat, seed), and inside the shard documents and sequences are ordered
by keyed hashes too, so the order is a global pseudo-random permutation that no worker sorts. Memory: one shard
(Megatron, per split and component) or one pack group (per split) is held by one worker while it is written; both
are sized by ``output.shard_tokens`` (50 M tokens: about 200 MB of int32 tokens, plus the packed matrix).

Every file is written under a temporary name and renamed when complete; its sha256 goes into the stats and then
the manifest, which the run writes last. A run killed while writing leaves at most ``*.tmp-*`` files and no
manifest; the next run clears them.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from qurate.hashing import stable_hash, stable_unit
from qurate.pipelines.megatron import HashingWriter, write_indexed_dataset
from qurate.pipelines.packing import PackConfig, fill_sequences, pack, spans_array, stage_share
from qurate.stats import Stats, select

LOG = logging.getLogger(__name__)

EXPORT_DIRS = ("megatron", "packed")
EXPORT_STATS = "_stats/export.jsonl"
TOKEN_DTYPE = np.int32  # Qwen's vocabulary (151,665 ids) needs 32 bits; torch and Megatron read int32
MIXTURE_COLUMNS = ["tokens", "n_tokens", "id", "lang", "domain", "source", "repeat"]
SPLITS = ("train", "validation")

DOCS_SCHEMA = pa.schema([
    pa.field("sequence", pa.int64(), nullable=False), pa.field("start", pa.int32(), nullable=False),
    pa.field("length", pa.int32(), nullable=False), pa.field("id", pa.string(), nullable=False),
    pa.field("repeat", pa.int32(), nullable=False), pa.field("component", pa.string()),
    pa.field("doc_offset", pa.int64(), nullable=False), pa.field("doc_tokens", pa.int64(), nullable=False),
])

Row = dict[str, Any]  # a mixture row: tokens (np.ndarray), n_tokens, id, repeat, lang, domain, source


# ---- files: temp + rename, with checksums ----------------------------------------------------------------------

def _create(path: str):
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _rename(src: str, dst: str) -> None:
    if FileSystems.exists(dst):  # object stores do not overwrite on rename; a rerun replaces the same bytes
        FileSystems.delete([dst])
    FileSystems.rename([src], [dst])


def write_atomic(path: str, write: Callable[[HashingWriter], None]) -> dict[str, Any]:
    """Writes ``path`` through ``write(handle)`` under a temporary name, then renames it; returns sha256 and
    bytes."""
    from qurate.pipelines.megatron import temp_name

    tmp = temp_name(path)
    with _create(tmp) as handle:
        out = HashingWriter(handle)
        write(out)
        result = out.result()
    _rename(tmp, path)
    return result


def _relative(out_dir: str, path: str) -> str:
    return path[len(out_dir):].lstrip("/") if path.startswith(out_dir) else path


def _file_stat(out_dir: str, path: str, kind: str, result: dict[str, Any]):
    return ("file", kind, _relative(out_dir, path), result["sha256"]), {"bytes": result["bytes"], "files": 1}


# ---- reading the mixture ----------------------------------------------------------------------------------------

def table_rows(item: tuple[str, pa.Table]) -> Iterable[Row]:
    """Rows of one Parquet batch, tokens as numpy arrays (one bulk copy per batch, not a list per token)."""
    filename, table = item
    folder = os.path.basename(os.path.dirname(filename))
    tokens = table.column("tokens").combine_chunks()
    offsets = tokens.offsets.to_numpy()
    values = tokens.values.to_numpy(zero_copy_only=False).astype(TOKEN_DTYPE, copy=False)
    meta = table.drop_columns(["tokens"]).to_pylist()
    for i, row in enumerate(meta):
        row["tokens"] = values[offsets[i]:offsets[i + 1]].copy()
        row["parquet_component"] = folder
        yield row


class ReadMixture(beam.PTransform):
    """Parquet mixture files -> rows (``Row``)."""

    def __init__(self, files: list[str]):
        super().__init__()
        self.files = sorted(files)

    def expand(self, pbegin):
        return (
            pbegin
            | "Files" >> beam.Create(self.files)
            | "Read" >> beam.io.ReadAllFromParquetBatched(columns=MIXTURE_COLUMNS, with_filename=True)
            | "Rows" >> beam.FlatMap(table_rows)
        )


def mixture_files(out_dir: str) -> list[str]:
    """Every ``OUT/mixture/<component>/part-*.parquet`` of a run."""
    pattern = FileSystems.join(out_dir, "mixture", "*", "*.parquet")
    return sorted(m.path for r in FileSystems.match([pattern]) for m in r.metadata_list)


# ---- keys ---------------------------------------------------------------------------------------------------------

def split_of(doc_id: str, seed: int, validation_share: float) -> str:
    """Train or validation, by a keyed hash of the id alone (every repeat of a doc lands in the same split)."""
    return "validation" if stable_unit("split", doc_id, seed) < validation_share else "train"


def order_key(row: Row, seed: int, shuffle: bool) -> tuple:
    """Where a row goes in its shard: a keyed hash (the shuffle) or its id; (id, repeat) break ties."""
    head = stable_hash("order", row["id"], row["repeat"], seed) if shuffle else 0
    return head, row["id"], row["repeat"]


def _component(row: Row, by: str) -> str:
    """The component folder name of a row: the mixture writer's own naming."""
    try:
        from qurate.pipelines.shards import safe_component
    except ImportError:  # older layout
        from qurate.pipelines.sinks import safe_component
    return safe_component(row.get(by))


# ---- Megatron ---------------------------------------------------------------------------------------------------

class _WriteMegatronFn(beam.DoFn):
    def __init__(self, out_dir: str, seed: int, shuffle: bool):
        self.out_dir, self.seed, self.shuffle = out_dir, seed, shuffle

    def process(self, item):
        (split, component, shard, num_shards), rows = item
        rows = sorted(rows, key=lambda r: order_key(r, self.seed, self.shuffle))
        prefix = FileSystems.join(self.out_dir, "megatron", split, component,
                                  f"part-{shard:05d}-of-{num_shards:05d}")
        result = write_indexed_dataset(prefix, (r["tokens"] for r in rows), TOKEN_DTYPE, create=_create,
                                       rename=_rename)
        yield _file_stat(self.out_dir, result["bin"]["path"], "megatron_bin", result["bin"])
        yield _file_stat(self.out_dir, result["idx"]["path"], "megatron_idx", result["idx"])
        yield ("megatron", split, component, _relative(self.out_dir, prefix)), {
            "docs": result["docs"], "tokens": result["tokens"]}


def _shard_by_size(size: float, salt: str, seed: int):
    """Adds ``(shard, num_shards)`` to each row's group key: ``ceil(group tokens / size)`` shards, row placed by a
    keyed hash."""
    def assign(kv, totals):
        group, row = kv
        num = max(1, math.ceil(totals.get(group, 0) / size))
        return (*group, stable_hash(salt, row["id"], row["repeat"], seed) % num, num), row
    return assign


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
            | "Shard" >> beam.Map(_shard_by_size(self.shard_tokens, "megatron", self.seed),
                                  totals=beam.pvalue.AsDict(totals))
            | "Group" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteMegatronFn(self.out_dir, self.seed, self.shuffle))
        )


# ---- packed sequences -------------------------------------------------------------------------------------------

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
        yield _file_stat(self.out_dir, f"{stem}.tokens.npy", "packed_tokens", written)
        index = np.ascontiguousarray(spans[:, [0, 1, 2, 4]])
        written = write_atomic(f"{stem}.spans.npy", lambda h: np.lib.format.write_array(h, index))
        yield _file_stat(self.out_dir, f"{stem}.spans.npy", "packed_spans", written)
        docs = [rows[d] for d in spans[:, 3].tolist()]
        table = pa.Table.from_arrays([
            pa.array(spans[:, 0], pa.int64()), pa.array(spans[:, 1], pa.int32()),
            pa.array(spans[:, 2], pa.int32()), pa.array([r["id"] for r in docs], pa.string()),
            pa.array([r["repeat"] for r in docs], pa.int32()),
            pa.array([_component(r, self.component_by) for r in docs], pa.string()),
            pa.array(spans[:, 4], pa.int64()), pa.array([r["n_tokens"] for r in docs], pa.int64()),
        ], schema=DOCS_SCHEMA)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        written = write_atomic(f"{stem}.docs.parquet", lambda h: h.write(buffer.getbuffer()))
        yield _file_stat(self.out_dir, f"{stem}.docs.parquet", "packed_docs", written)
        per_component: dict[str, float] = {}
        for r, n in zip(docs, spans[:, 2].tolist()):
            name = _component(r, self.component_by)
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
            | "Group" >> beam.Map(_shard_by_size(self.shard_tokens, "pack", self.seed),
                                  totals=beam.pvalue.AsDict(totals))
            | "GroupRows" >> beam.GroupByKey()
            | "PackWrite" >> beam.ParDo(_WritePackedFn(self.out_dir, self.cfg, self.seed, self.pad_id,
                                                       self.cfg.component_by))
        )


# ---- the export ---------------------------------------------------------------------------------------------------

def _component_stats(keyed):
    split, component, row = keyed
    first = int(row["repeat"] == 0)
    yield ("component", split, component), {"tokens": row["n_tokens"], "rows": 1, "docs": first,
                                            "unique_tokens": row["n_tokens"] * first}
    yield ("parquet_component", split, row["parquet_component"]), {"tokens": row["n_tokens"], "rows": 1}


class Export(beam.PTransform):
    """Mixture rows -> Megatron shards and packed sequences (as the recipe's ``pack`` section says); yields the
    stats pairs (files with checksums, packing numbers, per-component tokens)."""

    def __init__(self, out_dir: str, cfg: PackConfig, *, seed: int, shard_tokens: int, pad_id: int):
        super().__init__()
        self.out_dir, self.cfg, self.seed, self.shard_tokens, self.pad_id = out_dir, cfg, seed, shard_tokens, pad_id

    def expand(self, rows):
        cfg, seed = self.cfg, self.seed
        keyed = rows | "Split" >> beam.Map(
            lambda r: (split_of(r["id"], seed, cfg.validation_share), _component(r, cfg.component_by), r))
        stats = [keyed | "ComponentStats" >> beam.FlatMap(_component_stats)]
        if cfg.megatron:
            stats.append(keyed | "Megatron" >> WriteMegatron(self.out_dir, seed, cfg.shuffle, self.shard_tokens))
        if cfg.numpy:
            for seq_len in cfg.seq_lens:
                stats.append(keyed | f"Pack{seq_len}" >> WritePacked(self.out_dir, cfg, seed, seq_len,
                                                                      self.shard_tokens, self.pad_id))
        return stats | "AllStats" >> beam.Flatten()


def _write_stat_lines(item, path: str):
    _, lines = item
    write_atomic(path, lambda h: h.write("".join(sorted(lines)).encode("utf-8")))
    yield path


class WriteExportStats(beam.PTransform):
    """Sums the export's stats per key into ``OUT/_stats/export.jsonl`` (small: one key per file and group)."""

    def __init__(self, out_dir: str):
        super().__init__()
        self.path = FileSystems.join(out_dir, EXPORT_STATS)

    def expand(self, pairs):
        from qurate.pipelines.stats import SumFields

        return (
            pairs
            | "Sum" >> beam.CombinePerKey(SumFields())
            | "Line" >> beam.Map(lambda kv: json.dumps([list(kv[0]), kv[1]], sort_keys=True) + "\n")
            | "OneKey" >> beam.Map(lambda line: (None, line))
            | "Gather" >> beam.GroupByKey()
            | "Write" >> beam.FlatMap(_write_stat_lines, self.path)
        )


def read_export_stats(out_dir: str) -> Stats:
    if not FileSystems.exists(FileSystems.join(out_dir, EXPORT_STATS)):  # an empty mixture: nothing was summed
        return {}
    with FileSystems.open(FileSystems.join(out_dir, EXPORT_STATS)) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    return {tuple(k): v for k, v in (json.loads(line) for line in lines if line)}


def clear_export(out_dir: str) -> None:
    """Removes an earlier export (and any temporary file a killed one left)."""
    for name in (*EXPORT_DIRS, EXPORT_STATS):
        path = FileSystems.join(out_dir, name)
        if FileSystems.exists(path):
            FileSystems.delete([path])


# ---- manifest entry ---------------------------------------------------------------------------------------------

def _fmt_weight(value: float) -> str:
    return f"{value:.6g}"


def _display(out_dir: str, rel: str) -> str:
    base = os.path.abspath(out_dir) if "://" not in out_dir else out_dir
    return f"{base.rstrip('/')}/{rel}"


def export_manifest(out_dir: str, stats: Stats, cfg: PackConfig) -> dict[str, Any]:
    """The manifest's ``export`` entry: files (path, sha256, bytes), components (tokens, docs, epochs, weight),
    packing per stage, and the blend lines for Megatron-LM and HF datasets."""
    files = [{"path": path, "kind": kind, "sha256": sha, "bytes": int(v["bytes"])}
             for (kind, path, sha), v in sorted(select(stats, "file").items(), key=lambda kv: kv[0][1])]
    comp_stats = select(stats, "component")
    totals = {split: sum(v["tokens"] for (s, _), v in comp_stats.items() if s == split) for split in SPLITS}
    components = {}
    for (split, name), v in sorted(comp_stats.items()):
        components[f"{split}/{name}"] = {
            "split": split, "tokens": int(v["tokens"]), "docs": int(v["docs"]), "rows": int(v["rows"]),
            "unique_tokens": int(v["unique_tokens"]),
            "epochs": v["tokens"] / v["unique_tokens"] if v["unique_tokens"] else 0.0,
            "weight": v["tokens"] / totals[split] if totals[split] else 0.0,
        }
    blend: dict[str, Any] = {}
    megatron = select(stats, "megatron")
    flags = {"train": "--train-data-path", "validation": "--valid-data-path"}
    for split in SPLITS:
        pairs = [(v["tokens"] / totals[split], rel) for (s, _, rel), v in sorted(megatron.items())
                 if s == split and totals[split]]
        if pairs:
            blend[f"megatron_{'train' if split == 'train' else 'valid'}"] = flags[split] + " " + " ".join(
                f"{_fmt_weight(w)} {_display(out_dir, rel)}" for w, rel in pairs)
            blend[f"megatron_{split}_pairs"] = [[w, rel] for w, rel in pairs]
    parquet: dict[str, float] = {}  # the Parquet mixture holds both splits: rows of each folder
    for (_, name), v in select(stats, "parquet_component").items():
        parquet[name] = parquet.get(name, 0) + v["rows"]
    blend["hf_interleave"] = hf_interleave_line(out_dir, dict(sorted(parquet.items())))
    packed = []
    for (seq_len, split, policy), v in sorted(select(stats, "packed").items(), key=lambda kv: (int(kv[0][0]),
                                                                                              kv[0][1])):
        packed.append({"seq_len": int(seq_len), "split": split, "policy": policy,
                       "long_context_share": stage_share(cfg.seq_lens, int(seq_len), cfg.long_context_share),
                       **{k: int(x) for k, x in v.items()}})
    compare = [{"seq_len": int(seq_len), "split": split, "policy": policy, **{k: int(x) for k, x in v.items()}}
               for (seq_len, split, policy), v in sorted(select(stats, "packed_compare").items(),
                                                         key=lambda kv: (int(kv[0][0]), kv[0][1], kv[0][2]))]
    notes = []
    for p in packed:
        if p["sequences"] == 0 and p["left_out_sequences"]:
            notes.append(f"seq_len {p['seq_len']} ({p['split']}): no document piece longer than "
                         f"{p['seq_len'] // 2:,} tokens, so the long-context share "
                         f"{p['long_context_share']:.0%} left every sequence out; no files were written")
    return {"config": cfg.model_dump(mode="json"), "token_dtype": np.dtype(TOKEN_DTYPE).name,
            "files": files, "components": components, "packed": packed, "policies": compare, "blend": blend,
            "totals": {split: int(t) for split, t in totals.items()}, "notes": notes}


def write_blend_file(out_dir: str, export: dict[str, Any]) -> None:
    """``OUT/megatron/blend.json`` for Megatron-LM's ``--per-split-data-args-path`` (weights and prefixes per split;
    long blends do not fit a command line), written atomically and listed with its checksum."""
    blend = export["blend"]
    if not blend.get("megatron_train_pairs"):
        return
    data = {"train": [], "valid": None, "test": None}
    for split, key in (("train", "megatron_train_pairs"), ("valid", "megatron_validation_pairs")):
        pairs = blend.get(key)
        if pairs:
            data[split] = [x for w, rel in pairs for x in (_fmt_weight(w), _display(out_dir, rel))]
    path = FileSystems.join(out_dir, "megatron", "blend.json")
    result = write_atomic(path, lambda h: h.write(json.dumps(data, indent=1).encode("utf-8")))
    export["files"].append({"path": _relative(out_dir, path), "kind": "megatron_blend", **result})
    export["files"].sort(key=lambda f: f["path"])
    blend["megatron_args_file"] = f"--per-split-data-args-path {_display(out_dir, 'megatron/blend.json')}"


def hf_interleave_line(out_dir: str, rows_by_component: dict[str, float]) -> str:
    """The HF ``datasets`` equivalent of the blend over ``OUT/mixture/<component>``: row probabilities equal to
    each component's share of rows (the mixture's rows already hold the repeats, so this reproduces its token
    shares in expectation; every row is drawn once, none repeated)."""
    total = sum(rows_by_component.values())
    if not total:
        return ""
    names = list(rows_by_component)
    files = ", ".join(f'load_dataset("parquet", data_files="{_display(out_dir, f"mixture/{n}/*.parquet")}", '
                      f'split="train")' for n in names)
    # 12 digits: numpy (which datasets samples with) needs probabilities that sum to 1 within ~1e-8
    probs = ", ".join(f"{rows_by_component[n] / total:.12g}" for n in names)
    return (f"interleave_datasets([{files}], probabilities=[{probs}], seed=0, "
            f"stopping_strategy=\"all_exhausted_without_replacement\")")


def verify_files(out_dir: str, export: dict[str, Any]) -> list[str]:
    """The files the manifest lists whose size or sha256 differs from what is on disk (``[]``: all intact)."""
    import hashlib

    bad = []
    for f in export.get("files", []):
        path = FileSystems.join(out_dir, f["path"])
        digest = hashlib.sha256()
        size = 0
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                while chunk := handle.read(1 << 24):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError:
            bad.append(f["path"])
            continue
        if size != f["bytes"] or digest.hexdigest() != f["sha256"]:
            bad.append(f["path"])
    return bad


def run_export(out_dir: str, cfg: PackConfig, *, seed: int, shard_tokens: int, pad_id: int,
               beam_args: list[str] | None = None, files: list[str] | None = None) -> dict[str, Any] | None:
    """Runs the export pipeline over the run's Parquet mixture (or ``files``) and returns the manifest entry
    (None when the recipe turns the export off). Clears any earlier export first."""
    from qurate.pipelines.runners import make_pipeline, pipeline_options

    clear_export(out_dir)
    if not cfg.enabled or not (cfg.megatron or cfg.numpy):
        return None
    files = mixture_files(out_dir) if files is None else files
    pipeline = make_pipeline(pipeline_options(beam_args or []))
    rows = pipeline | "ReadMixture" >> ReadMixture(files)
    _ = (rows | "Export" >> Export(out_dir, cfg, seed=seed, shard_tokens=shard_tokens, pad_id=pad_id)
         | "Stats" >> WriteExportStats(out_dir))
    pipeline.run().wait_until_finish()
    export = export_manifest(out_dir, read_export_stats(out_dir), cfg)
    write_blend_file(out_dir, export)
    return export


def export_for_run(out_dir: str, recipe: Any, beam_args: list[str] | None = None,
                   manifest: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The export step of ``qurate run``, after the mixture is written: the recipe's ``pack`` section, its seed,
    ``output.shard_tokens`` and the tokenizer's EOS as padding. Returns the manifest's ``export`` entry."""
    from qurate.tokenizer import load_tokenizer

    cfg = getattr(recipe, "pack", None) or PackConfig()
    files = None
    if manifest and manifest.get("components"):
        files = sorted(FileSystems.join(out_dir, shard["path"])
                       for comp in manifest["components"].values() for shard in comp.get("shards", []))
    eos = load_tokenizer(recipe.tokenizer.name).eos_id
    export = run_export(out_dir, cfg, seed=recipe.seed, shard_tokens=recipe.output.shard_tokens,
                        pad_id=eos if eos is not None else 0, beam_args=beam_args, files=files)
    if export is not None and not recipe.tokenizer.append_eos:
        export["notes"].append("tokenizer.append_eos is off: packed documents are not separated by an EOS token; "
                               "the span index still marks every document")
    return export


def summary_lines(export: dict[str, Any] | None) -> list[str]:
    """Lines for the command's closing summary: what the trainer exports hold and how to blend them."""
    if not export:
        return []
    lines = []
    shards = sum(1 for f in export["files"] if f["kind"] == "megatron_idx")
    if shards:
        lines.append(f"  megatron: {shards} shard(s) in megatron/; "
                     + export["blend"].get("megatron_args_file", export["blend"].get("megatron_train", "")))
    for p in export["packed"]:
        if p["split"] != "train":
            continue
        pad = f"{100 * p['padding'] / p['capacity']:.2f} %" if p["capacity"] else "-"
        lines.append(f"  packed seq{p['seq_len']} ({p['policy']}): {p['sequences']:,} train sequences, padding {pad}, "
                     f"{p['split_docs']:,} documents split"
                     + (f", {p['left_out_tokens']:,} tokens left out for the long-context share"
                        if p["left_out_tokens"] else ""))
    return lines
