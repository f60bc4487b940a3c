"""The summary ``qurate run`` and ``qurate replay`` print when a run is done, from its manifest."""

from __future__ import annotations

from typing import Any


def run_summary(manifest: dict[str, Any], out_dir: str, seconds: float) -> str:
    t, c = manifest["totals"], manifest["conservation"]
    w = max([10, *(len(s["stage"]) for s in manifest["stages"])])  # name column width
    read_dead = c["dead_letter"] - sum(s["dead_letter"] for s in manifest["stages"])
    written = [f"{name}/, " for name, present in (
        ("mixture", t["rows"]), ("docs", manifest["recipe"]["output"]["write_docs"] and t["docs"]),
        ("rejected", t["rejected"]), ("dead_letter", t["dead_letter"])) if present]
    export = manifest.get("export") or {}  # trainer exports (pipelines/export.py)
    written += [f"{d}/, " for d in ("megatron", "packed")
                if any(f["path"].startswith(d + "/") for f in export.get("files", []))]
    lines = [f"qurate: done in {seconds:.1f} s on {manifest['runner']}",
             f"  {'read':<{w}} {manifest['input']['records']:>10,} records from {manifest['input']['files']} "
             f"file(s)" + (f"  {read_dead:,} dead-letter" if read_dead else "")]
    for s in manifest["stages"]:
        lines.append(f"  {s['stage']:<{w}} {s['in']:>10,} in  {s['kept']:>10,} kept  {s['rejected']:>8,} rejected"
                     + (f"  {s['added']:,} added" if s.get("added") else "")
                     + (f"  {s['dead_letter']:,} dead-letter" if s["dead_letter"] else ""))
    lines += [
        f"  {'mixture':<{w}} {t['docs']:>10,} docs  {t['tokens']:>12,} tokens in "
        f"{sum(len(comp['shards']) for comp in manifest['components'].values())} shard(s), "
        f"{len(manifest['components'])} component(s)",
        *_export_lines(export),
        f"  records read {c['records_read']:,} = kept {c['kept']:,} + rejected {t['rejected']:,} + dead-letter "
        f"{t['dead_letter']:,}" + (f" - added {c['added_by_stages']:,}" if c["added_by_stages"] else "")
        + ": conservation " + ("holds" if c["ok"] else "VIOLATED"),
        f"  outputs in {out_dir}/ ({''.join(written)}manifest.json, report.html)",
    ]
    return "\n".join(lines)


def _export_lines(export: dict[str, Any]) -> list[str]:
    from qurate.pipelines.export_manifest import summary_lines

    return summary_lines(export)
