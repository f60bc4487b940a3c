"""``OUT/manifest.json``: what a run wrote (components, shards, rows, tokens), per-stage counts, and the proof
that every record read ended in exactly one place."""

from __future__ import annotations

import datetime as _dt
import json
import re
from typing import Any

from apache_beam.io.filesystems import FileSystems
from qurate.pipelines.stats import Stats, read_stats, select

MANIFEST_FILE = "manifest.json"


# Secrets never belong in a recipe (credentials come from the environment variable named by ``*_env`` keys);
# whatever looks like one is masked before anything is written: by key name, or by the shape of the value.
_SECRET_KEY = re.compile(r"(^|_)(api_?key|secret|password|passwd|token|credentials?|auth)$", re.IGNORECASE)
_SECRET_VALUE = re.compile(
    r"\b(sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})")
_URL_PASSWORD = re.compile(r"(?<=://)([^/:@\s]+):[^/@\s]+@")
REDACTED = "***redacted***"


def redact(value: Any, key: str = "") -> Any:
    """``value`` with every secret-looking string masked (keys named like ``api_key``; ``sk-...`` values)."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and value:
        if _SECRET_KEY.search(key) and not key.endswith("_env"):
            return REDACTED
        return _URL_PASSWORD.sub(r"\1:" + REDACTED + "@", _SECRET_VALUE.sub(REDACTED, value))
    return value


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


def _add_component_values(out: str, components: dict[str, dict[str, Any]], key: str) -> None:
    """Each component's ``value``: the ``output.component_key`` value its folder stands for (folder names are
    cleaned and made unique, so ``web/a`` and ``web_a`` differ), read from the first row of its first shard."""
    import pyarrow.parquet as pq

    for comp in components.values():
        if not comp["shards"]:
            continue
        path = comp["shards"][0]["path"]
        full = path if path.startswith("/") or "://" in path else FileSystems.join(out, path)
        with FileSystems.open(full) as handle:
            shard = pq.ParquetFile(handle)
            if key in shard.schema_arrow.names and shard.metadata.num_rows:
                comp["value"] = shard.read_row_group(0, columns=[key]).column(key)[0].as_py()


def build_manifest(plan, options) -> dict[str, Any]:
    from qurate.pipelines.runners import runner_name
    from qurate.tokenizer import load_tokenizer

    out = plan.out_dir
    stats = read_stats(out)
    components: dict[str, dict[str, Any]] = {}
    for (group, path), value in sorted(select(stats, "shard", "mixture").items()):
        comp = components.setdefault(group, {"docs": 0, "rows": 0, "tokens": 0, "shards": []})
        comp["shards"].append({"path": _relative(out, path), "rows": value["rows"], "tokens": value["tokens"]})
        for key in ("docs", "rows", "tokens"):
            comp[key] += value[key]
    _add_component_values(out, components, plan.recipe.output.component_key)
    read = select(stats, "read")
    dead = select(stats, "written", "dead_letter").get(("",), {})
    rejected = select(stats, "written", "rejected")
    mixture = select(stats, "written", "mixture")
    kept_docs = sum(v.get("docs", 0) for v in mixture.values())
    counts = stage_counts(stats, plan.stage_names)
    if not plan.recipe.output.count_rejected_tokens:  # not counted is not zero
        for row in counts:
            row["rejected_tokens"] = None
    added = sum(c["added"] for c in counts)
    records = read.get(("records",), {}).get("docs", 0)  # counted per file apart from the reader's output
    mismatched = read.get(("count_mismatch_files",), {}).get("docs", 0)
    accounted = kept_docs + sum(v["rows"] for v in rejected.values()) + dead.get("rows", 0)
    docs_written = select(stats, "written", "docs").get(("",), {}).get("rows", 0)
    docs_ok = docs_written == kept_docs or not plan.recipe.output.write_docs
    tokenizer = load_tokenizer(plan.recipe.tokenizer.name)
    return {
        "qurate_manifest": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runner": runner_name(options),
        "recipe_fingerprint": plan.recipe.fingerprint(),
        "recipe": redact(plan.recipe.model_dump(mode="json")),
        "versions": _versions(),
        "tokenizer": {"name": tokenizer.name, "fingerprint": tokenizer.fingerprint, "eos_id": tokenizer.eos_id,
                      "append_eos": plan.recipe.tokenizer.append_eos},
        "input": {"files": len(plan.files), "files_read": read.get(("files",), {}).get("docs", 0),
                  "records": records, "unreadable_files": read.get(("unreadable_files",), {}).get("docs", 0),
                  "records_emitted": read.get(("emitted",), {}).get("docs", 0), "count_mismatch_files": mismatched},
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
            "ok": records + added == accounted and docs_ok and not mismatched,
        },
    }


def write_manifest(out_dir: str, manifest: dict[str, Any]) -> None:
    """Writes ``manifest.json`` whole or not at all (temporary name, then rename)."""
    from qurate.pipelines.shards import write_atomic

    write_atomic(FileSystems.join(out_dir, MANIFEST_FILE),
                 json.dumps(manifest, indent=2, sort_keys=False).encode("utf-8"))


def read_manifest(out_dir: str) -> dict[str, Any]:
    with FileSystems.open(FileSystems.join(out_dir, MANIFEST_FILE)) as handle:
        return json.loads(handle.read().decode("utf-8"))


def check_conservation(manifest: dict[str, Any]) -> None:
    c = manifest["conservation"]
    if c["ok"]:
        return
    mismatched = manifest["input"].get("count_mismatch_files", 0)
    if mismatched:
        raise ConservationError(f"the reader's output differs from the records counted in {mismatched} input "
                                f"file(s) ({manifest['input'].get('records_emitted')} emitted, {c['records_read']} "
                                f"counted)")
    if c.get("docs_written") not in (None, c["kept"]):
        raise ConservationError(f"{c['kept']} docs went into the mixture but {c['docs_written']} into OUT/docs")
    raise ConservationError(
        f"records read ({c['records_read']}) + added by stages ({c['added_by_stages']}) != kept "
        f"({c['kept']}) + rejected ({sum(c['rejected'].values())}) + dead-letter ({c['dead_letter']})"
    )
