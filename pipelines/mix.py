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

The pieces: ``mix_plan`` (weights and the plan, pure), ``mix_select`` (histograms and copies in Beam),
``mix_write`` (the new Parquet mixture); this module runs them with the exports and writes manifest and report.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from typing import Any

from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.export import Export, WriteExportStats, clear_export, read_export_stats
from qurate.pipelines.export_files import write_atomic
from qurate.pipelines.export_manifest import export_manifest, write_blend_file
from qurate.pipelines.export_report import report_section
from qurate.pipelines.mix_plan import DEFAULT_MAX_REPEATS, MixError, parse_weights, resolve_names
from qurate.pipelines.mix_select import MIX_PLAN, SelectMix
from qurate.pipelines.mix_write import WriteMixMixture
from qurate.pipelines.mixture_rows import ReadMixture
from qurate.pipelines.pack_config import PackConfig
from qurate.pipelines.stats import flatten_stats


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
    _ = flatten_stats(stats, "AllStats") | "Stats" >> WriteExportStats(new_dir)
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
