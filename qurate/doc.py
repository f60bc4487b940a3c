"""The one record type that flows through every stage, and the records built from it.

A document is a plain ``dict`` (cheap to pickle and to shuffle on every runner), typed as ``Doc``. This module names
its fields and says which stage owns each annotation; stages add fields and none rewrites a field another stage
owns. The Arrow schemas the writers use are derived from ``FIELD_TYPES`` in the wiring (``pipelines/schema.py``),
so a new annotation is one line here.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict


class Doc(TypedDict, total=False):
    id: str  # stable: from the input's id field, else derived from file + position
    text: str
    source: str  # the input's source field, else the input file's stem
    meta: dict[str, Any]  # every other input field, untouched
    # Annotations, each written by one stage:
    lang: str  # langid (ISO 639-1 where one exists)
    lang_score: float  # langid
    dedup_cluster: str  # dedup: id of the cluster's survivor
    quality: dict[str, float]  # quality: score per rubric dimension
    quality_score: float  # quality: weighted aggregate
    domain: str  # domains: topic label
    domain_score: float  # domains: the topic's probability (1.0 when a source rule set it)
    format: str  # domains: format label
    format_score: float  # domains: the format's probability
    domain_probs: dict[str, Any]  # domains: top-k probabilities per axis ({"topic": {...}, "format": {...}})
    synthetic: dict[str, Any]  # synth: {task, seed_id, generator, sample, rewards: {rm: score}} (JSON in files)
    repeats: int  # rebalance: copies in the mixture, 1 = once


ID, TEXT, SOURCE, META = "id", "text", "source", "meta"

# Annotation columns and their types ("json": nested values written as JSON text). Columns a doc lacks are null.
FIELD_TYPES: dict[str, str] = {
    "lang": "string",
    "lang_score": "float32",
    "dedup_cluster": "string",
    "quality_score": "float32",
    "domain": "string",
    "domain_score": "float32",
    "format": "string",
    "format_score": "float32",
    "synthetic": "json",
    "repeats": "int32",
    "quality": "json",
    "domain_probs": "json",
    "meta": "json",
}
JSON_FIELDS = frozenset(name for name, kind in FIELD_TYPES.items() if kind == "json")

RAW_LIMIT_CHARS = 1_000_000  # dead-letter entries keep the raw record up to this size (its full size is recorded)


def to_json(value: Any) -> str | None:
    """A nested annotation as JSON text (deterministic key order)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def dead_letter(stage: str, error: str, *, file: str | None = None, position: int | None = None,
                doc_id: str | None = None, raw: Any = None, source: str | None = None,
                error_class: str | None = None, limit: int = RAW_LIMIT_CHARS) -> dict[str, Any]:
    """A dead-letter entry: what could not be processed, why, where it came from and the record itself (for
    ``qurate replay``)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    elif raw is not None and not isinstance(raw, str):
        try:
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        except (ValueError, RecursionError) as err:  # a record nested too deep for json: keep its repr
            raw = f"<unserializable {type(raw).__name__}: {type(err).__name__}>"
    raw_chars = len(raw) if isinstance(raw, str) else None
    if isinstance(raw, str) and len(raw) > limit:
        raw = raw[:limit]
    if error_class is None:
        error_class = error.split(":", 1)[0] if error else None
    return {"file": file, "position": position, "stage": stage, "error": error, "error_class": error_class,
            "id": doc_id, "source": source if source is None or isinstance(source, str) else str(source),
            "raw": raw, "raw_chars": raw_chars}


def doc_dead_letter(stage: str, error: str, doc: Doc, error_class: str | None = None) -> dict[str, Any]:
    """A dead-letter entry for a doc that broke a stage: the whole doc is kept so it can be replayed."""
    return dead_letter(stage, error, doc_id=doc.get("id"), raw=doc, source=doc.get("source"),
                       error_class=error_class)


def rejected(doc: Doc, stage: str, reason: str) -> dict[str, Any]:
    """The doc as dropped by ``stage``, with the reason (rule and measured value) attached."""
    out = dict(doc)
    out["stage"] = stage
    out["reason"] = reason
    return out


def reason_rule(reason: str) -> str:
    """The rule part of ``rule: measured value``."""
    return reason.split(":", 1)[0].strip()
