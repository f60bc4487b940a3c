"""A real token mixture for the export and mix tests, without running every stage.

The bundled sample corpus's documents are tokenized with qurate's Qwen2.5 tokenizer (EOS appended, as the run
does) and written with the project's own mixture writer pieces (``MIXTURE_SCHEMA``, ``rows_to_table``,
``shard_path``) to ``OUT/mixture/<source>/part-00000-of-00001.parquet``, with a manifest in the run's format.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"


def _writer():
    try:
        from qurate.pipelines import shards as module
    except ImportError:
        from qurate.pipelines import sinks as module
    return module


def sample_docs(limit: int | None = None, step: int = 1) -> list[dict[str, Any]]:
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()]
    docs = docs[::step]
    return docs[:limit] if limit else docs


def make_mixture(out: Path, docs: list[dict[str, Any]], repeats: dict[str, int] | None = None,
                 pack: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """Writes ``out/mixture`` and ``out/manifest.json``; returns the manifest. ``repeats``: id -> copies."""
    from qurate.pipelines.schema import MIXTURE_SCHEMA
    from qurate.tokenizer import load_tokenizer

    shards = _writer()
    tokenizer = load_tokenizer("qwen2.5")
    ids = tokenizer.encode_batch([d["text"] for d in docs])
    by_component: dict[str, list[dict[str, Any]]] = {}
    for doc, tokens in zip(docs, ids):
        tokens = [*tokens, tokenizer.eos_id]
        component = shards.safe_component(doc.get("source"))
        for repeat in range((repeats or {}).get(str(doc["id"]), 1)):
            by_component.setdefault(component, []).append({
                "tokens": tokens, "n_tokens": len(tokens), "id": str(doc["id"]), "lang": None, "domain": None,
                "source": doc.get("source"), "quality_score": None, "synthetic": None, "repeat": repeat})
    components = {}
    for component, rows in sorted(by_component.items()):
        rows.sort(key=lambda r: (r["id"], r["repeat"]))
        path = Path(shards.shard_path(str(out / "mixture"), component, 0, 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(shards.rows_to_table(rows, MIXTURE_SCHEMA), path)
        tokens = sum(r["n_tokens"] for r in rows)
        components[component] = {
            "docs": sum(1 for r in rows if r["repeat"] == 0), "rows": len(rows), "tokens": tokens,
            "shards": [{"path": str(path.relative_to(out)), "rows": len(rows), "tokens": tokens}]}
    manifest = {
        "qurate_manifest": 1, "recipe_fingerprint": "test",
        "recipe": {"seed": seed, "output": {"shard_tokens": 50_000_000}, "pack": pack or {}},
        "tokenizer": {"name": tokenizer.name, "eos_id": tokenizer.eos_id, "append_eos": True},
        "components": components,
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def mixture_rows(out: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted((out / "mixture").rglob("*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows
