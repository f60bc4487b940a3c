"""The manifest's ``export`` entry from the export's summed stats: files, components, packing, the blend lines
for Megatron-LM and HF datasets (and Megatron's blend file), and the lines of the closing summary."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.export_files import relative_path, write_atomic
from qurate.pipelines.export_keys import SPLITS
from qurate.pipelines.mixture_rows import TOKEN_DTYPE
from qurate.pipelines.pack_config import PackConfig
from qurate.pipelines.packing import stage_share
from qurate.stats import Stats, select


def _fmt_weight(value: float) -> str:
    return f"{value:.6g}"


def display_path(out_dir: str, rel: str) -> str:
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
                f"{_fmt_weight(w)} {display_path(out_dir, rel)}" for w, rel in pairs)
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
            data[split] = [x for w, rel in pairs for x in (_fmt_weight(w), display_path(out_dir, rel))]
    path = FileSystems.join(out_dir, "megatron", "blend.json")
    result = write_atomic(path, lambda h: h.write(json.dumps(data, indent=1).encode("utf-8")))
    export["files"].append({"path": relative_path(out_dir, path), "kind": "megatron_blend", **result})
    export["files"].sort(key=lambda f: f["path"])
    blend["megatron_args_file"] = f"--per-split-data-args-path {display_path(out_dir, 'megatron/blend.json')}"


def hf_interleave_line(out_dir: str, rows_by_component: dict[str, float]) -> str:
    """The HF ``datasets`` equivalent of the blend over ``OUT/mixture/<component>``: row probabilities equal to
    each component's share of rows (the mixture's rows already hold the repeats, so this reproduces its token
    shares in expectation; every row is drawn once, none repeated)."""
    total = sum(rows_by_component.values())
    if not total:
        return ""
    names = list(rows_by_component)
    files = ", ".join(f'load_dataset("parquet", data_files="{display_path(out_dir, f"mixture/{n}/*.parquet")}", '
                      f'split="train")' for n in names)
    # 12 digits: numpy (which datasets samples with) needs probabilities that sum to 1 within ~1e-8
    probs = ", ".join(f"{rows_by_component[n] / total:.12g}" for n in names)
    return (f"interleave_datasets([{files}], probabilities=[{probs}], seed=0, "
            f"stopping_strategy=\"all_exhausted_without_replacement\")")


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
