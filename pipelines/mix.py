"""``qurate mix OUT --weights web=0.6,code=0.3,math=0.1 --output NEW``: re-weight a finished run's mixture.

No stage runs again: the Parquet mixture of ``OUT`` is read, each component is brought to its requested share of
*tokens* (weights are token shares, never document counts), and ``NEW`` gets the re-weighted Parquet mixture, the
Megatron and packed-sequence exports, a manifest and a report.

How a component with ``S`` unique tokens reaches its target ``t``: ``floor(t / S)`` full epochs (every document
repeated; at most ``--max-repeats``), then a partial epoch of about ``t - k S`` tokens made of the documents whose
keyed hash ``stable_unit(id, seed)`` is smallest. That cut is found without sorting anything: each component's
tokens are summed into a fixed histogram of 65,536 hash buckets (a combiner), and the cut is the bucket boundary
closest to the remainder, so the error is at most one bucket (about ``S / 65,536`` tokens, usually one document).

Supply: only first copies (``repeat == 0``) of the input count; earlier up-sampling is undone, then redone here.
When a component cannot reach its share within ``--max-repeats`` epochs, the total shrinks so every share still
holds (default), or, with ``--keep-total``, that component falls short; either way the manifest and the report list
the shortfall.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import io
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from qurate.hashing import stable_hash, stable_unit
from qurate.pipelines.export import (
    Export,
    ReadMixture,
    WriteExportStats,
    _component,
    _file_stat,
    clear_export,
    export_manifest,
    read_export_stats,
    write_atomic,
    write_blend_file,
)
from qurate.pipelines.packing import PackConfig, report_section

BUCKETS = 1 << 16
DEFAULT_MAX_REPEATS = 4.0  # Muennighoff et al. 2023: up to ~4 epochs of repeated data cost little
MIX_PLAN = "_stats/mix_plan.json"


class MixError(ValueError):
    """Weights or a source run that cannot be mixed; the message says which."""


def parse_weights(text: str) -> dict[str, float]:
    """``"web=0.6,code=0.3"`` (or a JSON object) -> ``{"web": 0.6, "code": 0.3}``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise MixError(f"--weights is not valid JSON: {err}") from None
        items = list(raw.items())
    else:
        items = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise MixError(f"--weights entry {part!r} is not NAME=WEIGHT")
            items.append((name.strip(), value.strip()))
    weights: dict[str, float] = {}
    for name, value in items:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise MixError(f"--weights: weight of {name!r} is not a number: {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise MixError(f"--weights: weight of {name!r} must be a finite number >= 0, got {value}")
        if name in weights:
            raise MixError(f"--weights names {name!r} twice")
        weights[name] = number
    if not weights or sum(weights.values()) <= 0:
        raise MixError("--weights needs at least one component with a weight > 0")
    return weights


@dataclass(frozen=True)
class ComponentPlan:
    supply: int  # unique tokens available
    share: float  # requested token share (normalized)
    target: float  # tokens asked for
    epochs: int  # full repeats of every document
    cut: int  # documents in hash buckets below this get one more copy
    tokens: int  # tokens the plan yields (exact: from the histogram)
    capped: bool  # the target needed more than max_repeats epochs


def cut_for(hist: np.ndarray, remainder: float) -> tuple[int, int]:
    """The bucket boundary whose cumulative tokens are closest to ``remainder``: (cut, tokens below it)."""
    cum = np.concatenate([[0], np.cumsum(hist, dtype=np.int64)])
    cut = int(np.argmin(np.abs(cum - remainder)))  # first minimum: deterministic
    return cut, int(cum[cut])


def plan_mix(hists: dict[str, np.ndarray], weights: dict[str, float], *, total: float | None = None,
             max_repeats: float = DEFAULT_MAX_REPEATS, keep_total: bool = False) -> dict[str, Any]:
    """The mix: per component epochs and cut, from each component's token histogram over hash buckets.

    ``total`` defaults to the supply of every component (same size as the source, new shares).
    """
    supply = {name: int(h.sum()) for name, h in hists.items()}
    weights = resolve_names(weights, set(supply))
    unknown = sorted(set(weights) - set(supply))
    if unknown:
        raise MixError(f"--weights names unknown component(s) {', '.join(unknown)}; the mixture has: "
                       f"{', '.join(sorted(supply))}")
    weight_sum = sum(weights.values())
    shares = {name: weights.get(name, 0.0) / weight_sum for name in supply}
    requested_total = float(total) if total else float(sum(supply.values()))
    shortfalls = []
    limits = {name: supply[name] * max_repeats / shares[name] for name in supply
              if shares[name] > 0 and supply[name] > 0}
    total_tokens = requested_total
    if not keep_total and limits and min(limits.values()) < requested_total:
        total_tokens = min(limits.values())
        for name, limit in sorted(limits.items()):
            if limit < requested_total:
                shortfalls.append(f"{name}: {supply[name]:,} unique tokens x {max_repeats:g} epochs cannot give "
                                  f"{shares[name]:.2%} of {requested_total:,.0f} tokens; the total shrinks to "
                                  f"{total_tokens:,.0f} so every share holds")
    components: dict[str, ComponentPlan] = {}
    for name in sorted(supply):
        target = shares[name] * total_tokens
        s = supply[name]
        capped = s == 0 or target > s * max_repeats + 1e-6
        if capped and shares[name] > 0 and keep_total:
            shortfalls.append(f"{name}: asked {target:,.0f} tokens, {s:,} unique x {max_repeats:g} epochs give "
                              f"{s * max_repeats:,.0f}")
        if s == 0:
            components[name] = ComponentPlan(0, shares[name], target, 0, 0, 0, shares[name] > 0)
            continue
        goal = min(target, s * max_repeats)
        epochs = min(int(goal // s), int(max_repeats))
        cut, extra = cut_for(hists[name], goal - epochs * s)
        components[name] = ComponentPlan(s, shares[name], target, epochs, cut, epochs * s + extra, capped)
    planned = sum(c.tokens for c in components.values())
    return {
        "weights_are": "token shares",
        "requested_weights": weights,
        "max_repeats": max_repeats,
        "keep_total": keep_total,
        "requested_total": requested_total,
        "total": planned,
        "shortfalls": shortfalls,
        "components": {
            name: {"supply": c.supply, "requested_share": c.share, "target": c.target, "epochs": c.epochs,
                   "cut": c.cut, "tokens": c.tokens, "share": c.tokens / planned if planned else 0.0,
                   "capped": c.capped}
            for name, c in components.items()
        },
    }


def resolve_names(weights: dict[str, float], known: set[str]) -> dict[str, float]:
    """Weight names as components: a name given as the raw column value (``web/trafilatura-tests``) becomes its
    folder name (``web--trafilatura-tests``)."""
    from qurate.pipelines.export import _component

    out: dict[str, float] = {}
    for name, weight in weights.items():
        key = name if name in known else _component({"x": name}, "x")
        out[key] = out.get(key, 0.0) + weight
    return out


def bucket_of(doc_id: str, seed: int) -> int:
    return int(stable_unit("mix", doc_id, seed) * BUCKETS)


class _Histogram(beam.CombineFn):
    """Tokens per hash bucket: a fixed int64 array, so combining is order-free and exact."""

    def create_accumulator(self):
        return np.zeros(BUCKETS, dtype=np.int64)

    def add_input(self, acc, item):
        bucket, tokens = item
        acc[bucket] += tokens
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = accs[0].copy()
        for acc in accs[1:]:
            out += acc
        return out

    def extract_output(self, acc):
        return acc


def _copies(kv, plan: dict[str, Any], seed: int):
    """Every copy of one unique document that the plan asks for, numbered ``repeat`` 0, 1, ..."""
    component, row = kv
    c = plan["components"][component]
    n = c["epochs"] + (1 if bucket_of(row["id"], seed) < c["cut"] else 0)
    for repeat in range(n):
        out = dict(row)
        out["repeat"] = repeat
        out["parquet_component"] = component
        yield out


class SelectMix(beam.PTransform):
    """Unique mixture rows -> the re-weighted rows (with repeats); writes the plan to ``NEW/_stats``."""

    def __init__(self, new_dir: str, cfg: PackConfig, weights: dict[str, float], seed: int, *,
                 total: float | None, max_repeats: float, keep_total: bool):
        super().__init__()
        self.new_dir, self.cfg, self.weights, self.seed = new_dir, cfg, weights, seed
        self.total, self.max_repeats, self.keep_total = total, max_repeats, keep_total

    def expand(self, rows):
        seed, by = self.seed, self.cfg.component_by
        weights, total, max_repeats, keep_total = self.weights, self.total, self.max_repeats, self.keep_total
        keyed = (rows
                 | "FirstCopies" >> beam.Filter(lambda r: r["repeat"] == 0)
                 | "Component" >> beam.Map(lambda r: (_component(r, by), r)))
        hists = (keyed
                 | "Bucket" >> beam.Map(lambda kv: (kv[0], (bucket_of(kv[1]["id"], seed), int(kv[1]["n_tokens"]))))
                 | "Histogram" >> beam.CombinePerKey(_Histogram()))
        plan = (hists
                | "AllHistograms" >> beam.combiners.ToDict()
                | "Plan" >> beam.Map(lambda h: plan_mix(h, weights, total=total, max_repeats=max_repeats,
                                                        keep_total=keep_total)))
        path = FileSystems.join(self.new_dir, MIX_PLAN)
        _ = plan | "WritePlan" >> beam.Map(
            lambda p: write_atomic(path, lambda h: h.write(json.dumps(p, indent=1).encode("utf-8"))))
        return keyed | "Copies" >> beam.FlatMap(_copies, plan=beam.pvalue.AsSingleton(plan), seed=seed)


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
        yield _file_stat(self.new_dir, path, "mixture", result)
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


def _read_manifest(out_dir: str) -> dict[str, Any]:
    path = FileSystems.join(out_dir, "manifest.json")
    if not FileSystems.exists(path):
        raise MixError(f"{out_dir} holds no finished run (no manifest.json)")
    with FileSystems.open(path) as handle:
        return json.loads(handle.read().decode("utf-8"))


def _source_files(out_dir: str, manifest: dict[str, Any]) -> list[str]:
    files = [FileSystems.join(out_dir, shard["path"])
             for comp in manifest.get("components", {}).values() for shard in comp.get("shards", [])]
    missing = [f for f in files if not FileSystems.exists(f)]
    if missing:
        raise MixError(f"{len(missing)} mixture file(s) the manifest of {out_dir} lists are missing, e.g. "
                       f"{missing[0]}")
    return sorted(files)


def _known_components(source: dict[str, Any], cfg: PackConfig) -> set[str]:
    """Component names of the source, when its export was grouped the same way (else: unknown until read)."""
    export = source.get("export") or {}
    if (export.get("config") or {}).get("component_by") != cfg.component_by:
        return set()
    return {key.split("/", 1)[1] for key in export.get("components", {})}


def _prepare_output(new_dir: str, overwrite: bool) -> None:
    """The run's own rule for output folders: new or empty, or (with ``overwrite``) an earlier qurate output,
    whose qurate-written parts alone are removed; a folder qurate did not write is refused."""
    from qurate.pipelines import run as run_module

    try:
        run_module.check_output_owner(new_dir, overwrite)
        run_module.clear_outputs(new_dir)
    except run_module.OutputDirError as err:
        raise MixError(str(err)) from None
    clear_export(new_dir)


def mix_report(manifest: dict[str, Any]) -> dict[str, Any]:
    """The mix's report section: requested vs achieved token shares, epochs, shortfalls."""
    mix = manifest["mix"]
    rows = [[name, c["supply"], f"{100 * c['requested_share']:.2f} %", f"{100 * c['share']:.2f} %",
             f"{100 * (c['share'] - c['requested_share']):+.3f} pp", c["tokens"],
             round(c["tokens"] / c["supply"], 3) if c["supply"] else 0, "yes" if c["capped"] else ""]
            for name, c in sorted(mix["components"].items())]
    return {"summary": {"weights are": "token shares", "requested total tokens": round(mix["requested_total"]),
                        "total tokens": mix["total"], "max repeats": mix["max_repeats"]},
            "tables": [{"title": "Requested vs achieved token shares", "columns": [
                "component", "unique tokens", "requested", "achieved", "difference", "tokens", "epochs", "capped"],
                "rows": rows}],
            "notes": ["Weights are shares of tokens, not of documents."] + mix["shortfalls"]}


def run_mix(out_dir: str, new_dir: str, weights: dict[str, float], *, beam_args: list[str] | None = None,
            total: float | None = None, max_repeats: float = DEFAULT_MAX_REPEATS, keep_total: bool = False,
            seed: int | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Re-weights ``out_dir``'s mixture into ``new_dir``; returns (and writes) the new manifest."""
    from qurate.pipelines.runners import make_pipeline, pipeline_options

    if max_repeats < 1:
        raise MixError("--max-repeats must be at least 1")
    if FileSystems.join(out_dir, "") == FileSystems.join(new_dir, ""):
        raise MixError("--output must differ from the source run")
    source = _read_manifest(out_dir)
    recipe = source.get("recipe", {})
    cfg = PackConfig.model_validate(recipe.get("pack", {}))
    seed = recipe.get("seed", 0) if seed is None else seed
    shard_tokens = int(recipe.get("output", {}).get("shard_tokens", 50_000_000))
    eos = source.get("tokenizer", {}).get("eos_id")
    files = _source_files(out_dir, source)
    known = _known_components(source, cfg)
    if known:  # else names are resolved and checked inside the pipeline, once the components are counted
        weights = resolve_names(weights, known)
    unknown = sorted(set(weights) - known) if known else []
    if unknown:  # checked again inside the pipeline when the source has no export to name its components
        raise MixError(f"--weights names unknown component(s) {', '.join(unknown)}; the mixture has: "
                       f"{', '.join(sorted(known))}")
    _prepare_output(new_dir, overwrite)
    pipeline = make_pipeline(pipeline_options(beam_args or []))
    rows = (pipeline | "ReadMixture" >> ReadMixture(files)
            | "Mix" >> SelectMix(new_dir, cfg, weights, seed, total=total, max_repeats=max_repeats,
                                 keep_total=keep_total))
    stats = [rows | "WriteMixture" >> WriteMixMixture(new_dir, shard_tokens, seed)]
    if cfg.enabled and (cfg.megatron or cfg.numpy):
        stats.append(rows | "Export" >> Export(new_dir, cfg, seed=seed, shard_tokens=shard_tokens,
                                               pad_id=eos if eos is not None else 0))
    _ = stats | "AllStats" >> beam.Flatten() | "Stats" >> WriteExportStats(new_dir)
    pipeline.run().wait_until_finish()

    stats_read = read_export_stats(new_dir)
    with FileSystems.open(FileSystems.join(new_dir, MIX_PLAN)) as handle:
        plan = json.loads(handle.read().decode("utf-8"))
    components: dict[str, Any] = {}
    for (name, path), v in sorted((k[1:], v) for k, v in stats_read.items() if k[0] == "mixture_shard"):
        comp = components.setdefault(name, {"docs": 0, "rows": 0, "tokens": 0, "shards": []})
        comp["shards"].append({"path": path, "rows": int(v["rows"]), "tokens": int(v["tokens"])})
        for key in ("docs", "rows", "tokens"):
            comp[key] += int(v[key])
    export = export_manifest(new_dir, stats_read, cfg)
    write_blend_file(new_dir, export)
    manifest = {
        "qurate_manifest": 1,
        "kind": "mix",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {"dir": out_dir, "recipe_fingerprint": source.get("recipe_fingerprint"),
                   "created": source.get("created")},
        "recipe": {**recipe, "seed": seed},
        "tokenizer": source.get("tokenizer"),
        "mix": plan,
        "components": components,
        "totals": {"docs": sum(c["docs"] for c in components.values()),
                   "rows": sum(c["rows"] for c in components.values()),
                   "tokens": sum(c["tokens"] for c in components.values())},
        "export": export,
    }
    report = {"mix": mix_report(manifest), "export": report_section(export)}
    write_atomic(FileSystems.join(new_dir, "report.json"),
                 lambda h: h.write(json.dumps(report, indent=1).encode("utf-8")))
    write_atomic(FileSystems.join(new_dir, "manifest.json"),  # last: its presence means the mix is complete
                 lambda h: h.write(json.dumps(manifest, indent=2).encode("utf-8")))
    return manifest


# ---- command line ---------------------------------------------------------------------------------------------

def cmd_mix(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Runs ``qurate mix``; prints requested vs achieved shares. Exit 2 for bad weights or source."""
    try:
        weights = parse_weights(args.weights)
        manifest = run_mix(args.out_dir, args.output, weights, beam_args=beam_args, total=args.tokens,
                           max_repeats=args.max_repeats, keep_total=args.keep_total, seed=args.seed,
                           overwrite=args.overwrite)
    except MixError as err:
        print(f"qurate: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        cause = err
        while cause is not None and not isinstance(cause, MixError):  # raised inside the pipeline's plan step
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, MixError) or "MixError" in str(err):
            text = str(cause) if cause is not None else str(err).split("MixError:", 1)[-1].strip().splitlines()[0]
            print(f"qurate: {text}", file=sys.stderr)
            return 2
        if getattr(args, "debug", False):
            raise
        print(f"qurate: mix failed: {type(err).__name__}: {str(err).strip()[-500:]}", file=sys.stderr)
        return 1
    mix = manifest["mix"]
    print(f"qurate: mixed {args.out_dir} -> {args.output}: {mix['total']:,} tokens (weights are token shares)")
    for name, c in sorted(mix["components"].items()):
        if c["requested_share"] or c["tokens"]:
            print(f"  {name:<32} requested {100 * c['requested_share']:6.2f} %  got {100 * c['share']:6.2f} %  "
                  f"{c['tokens'] / c['supply'] if c['supply'] else 0:.2f} epochs")
    for line in mix["shortfalls"]:
        print(f"  shortfall: {line}")
    for key in ("megatron_train", "megatron_valid"):
        if manifest["export"]["blend"].get(key):
            print(f"  {manifest['export']['blend'][key][:200]}{' ...' if len(manifest['export']['blend'][key]) > 200 else ''}")
    return 0
