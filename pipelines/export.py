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

The pieces: ``mixture_rows`` (reading), ``export_keys`` (split, component, shard, order), ``export_megatron``,
``export_packed``, ``export_files`` (atomic writes, checksums) and ``export_manifest``; this module runs them.
"""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.export_files import write_atomic
from qurate.pipelines.export_keys import component_of, split_of
from qurate.pipelines.export_manifest import export_manifest, write_blend_file
from qurate.pipelines.export_megatron import WriteMegatron
from qurate.pipelines.export_packed import WritePacked
from qurate.pipelines.mixture_rows import ReadMixture, mixture_files
from qurate.pipelines.pack_config import PackConfig
from qurate.pipelines.stats import flatten_stats
from qurate.stats import Stats

EXPORT_DIRS = ("megatron", "packed")
EXPORT_STATS = "_stats/export.jsonl"


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
            lambda r: (split_of(r["id"], seed, cfg.validation_share), component_of(r, cfg.component_by), r))
        stats = [keyed | "ComponentStats" >> beam.FlatMap(_component_stats)]
        if cfg.megatron:
            stats.append(keyed | "Megatron" >> WriteMegatron(self.out_dir, seed, cfg.shuffle, self.shard_tokens))
        if cfg.numpy:
            for seq_len in cfg.seq_lens:
                stats.append(keyed | f"Pack{seq_len}" >> WritePacked(self.out_dir, cfg, seed, seq_len,
                                                                      self.shard_tokens, self.pad_id))
        return flatten_stats(stats, "AllStats")


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
