"""``OUT/manifest.json``: what a run wrote (components, shards, rows, tokens), per-stage counts, and the proof
that every record read ended in exactly one place."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.stats import Stats, read_stats, select

MANIFEST_FILE = "manifest.json"


class ConservationError(RuntimeError):
    """Records read != kept + rejected + dead-letter: something was lost or duplicated."""


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("qurate", "apache-beam", "pyarrow", "tiktoken", "tokenizers", "datatrove", "datasketch"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def _relative(out_dir: str, path: str) -> str:
    return path[len(out_dir):].lstrip("/") if path.startswith(out_dir) else path


def stage_counts(stats: Stats, stage_names: list[str]) -> list[dict[str, Any]]:
    """Per stage: docs in, kept, rejected, dead-letter (and tokens rejected), in run order."""
    rejected = select(stats, "written", "rejected")
    dead = select(stats, "written", "dead_letter").get(("",), {})
    rows = []
    previous = select(stats, "funnel", "read").get(("kept",), {}).get("docs", 0)
    for name in stage_names:
        kept = select(stats, "funnel", name).get(("kept",), {}).get("docs", 0)
        rej = rejected.get((name,), {})
        added = select(stats, "stage", name).get(("added",), {}).get("docs", 0)
        rows.append({
            "stage": name, "in": previous + added, "kept": kept, "rejected": rej.get("rows", 0),
            "rejected_tokens": rej.get("tokens", 0), "dead_letter": dead.get(f"stage={name}", 0),
            "added": added,
        })
        previous = kept
    return rows


def build_manifest(plan, options) -> dict[str, Any]:
    from qurate.pipelines.runners import runner_name
    from qurate.pipelines.tokenizer import load_tokenizer

    out = plan.out_dir
    stats = read_stats(out)
    components: dict[str, dict[str, Any]] = {}
    for (group, path), value in sorted(select(stats, "shard", "mixture").items()):
        comp = components.setdefault(group, {"docs": 0, "rows": 0, "tokens": 0, "shards": []})
        comp["shards"].append({"path": _relative(out, path), "rows": value["rows"], "tokens": value["tokens"]})
        for key in ("docs", "rows", "tokens"):
            comp[key] += value[key]
    read = select(stats, "read")
    dead = select(stats, "written", "dead_letter").get(("",), {})
    rejected = select(stats, "written", "rejected")
    mixture = select(stats, "written", "mixture")
    kept_docs = sum(v.get("docs", 0) for v in mixture.values())
    counts = stage_counts(stats, plan.stage_names)
    added = sum(c["added"] for c in counts)
    records = read.get(("records",), {}).get("docs", 0)
    accounted = kept_docs + sum(v["rows"] for v in rejected.values()) + dead.get("rows", 0)
    docs_written = select(stats, "written", "docs").get(("",), {}).get("rows", 0)
    docs_ok = docs_written == kept_docs or not plan.recipe.output.write_docs
    tokenizer = load_tokenizer(plan.recipe.tokenizer.name)
    return {
        "qurate_manifest": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runner": runner_name(options),
        "recipe_fingerprint": plan.recipe.fingerprint(),
        "recipe": plan.recipe.model_dump(mode="json"),
        "versions": _versions(),
        "tokenizer": {"name": tokenizer.name, "fingerprint": tokenizer.fingerprint, "eos_id": tokenizer.eos_id,
                      "append_eos": plan.recipe.tokenizer.append_eos},
        "input": {"files": len(plan.files), "files_read": read.get(("files",), {}).get("docs", 0),
                  "records": records, "unreadable_files": read.get(("unreadable_files",), {}).get("docs", 0)},
        "stages": counts,
        "components": components,
        "totals": {
            "docs": kept_docs,
            "rows": sum(c["rows"] for c in components.values()),
            "tokens": sum(c["tokens"] for c in components.values()),
            "repeat_rows": sum(v.get("repeat_rows", 0) for v in mixture.values()),
            "rejected": sum(v["rows"] for v in rejected.values()),
            "dead_letter": dead.get("rows", 0),
        },
        "conservation": {
            "records_read": records, "added_by_stages": added, "kept": kept_docs,
            "rejected": {k[0]: v["rows"] for k, v in sorted(rejected.items())},
            "dead_letter": dead.get("rows", 0), "accounted": accounted,
            "docs_written": docs_written if plan.recipe.output.write_docs else None,
            "ok": records + added == accounted and docs_ok,
        },
    }


def write_manifest(out_dir: str, manifest: dict[str, Any]) -> None:
    with FileSystems.create(FileSystems.join(out_dir, MANIFEST_FILE)) as handle:
        handle.write(json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8"))


def read_manifest(out_dir: str) -> dict[str, Any]:
    with FileSystems.open(FileSystems.join(out_dir, MANIFEST_FILE)) as handle:
        return json.loads(handle.read().decode("utf-8"))


def check_conservation(manifest: dict[str, Any]) -> None:
    c = manifest["conservation"]
    if c["ok"]:
        return
    if c.get("docs_written") not in (None, c["kept"]):
        raise ConservationError(f"{c['kept']} docs went into the mixture but {c['docs_written']} into OUT/docs")
    raise ConservationError(
        f"records read ({c['records_read']}) + added by stages ({c['added_by_stages']}) != kept "
        f"({c['kept']}) + rejected ({sum(c['rejected'].values())}) + dead-letter ({c['dead_letter']})"
    )
