"""The one record type that flows through every stage.

A document is a plain ``dict`` (cheap to pickle and to shuffle on every Beam runner). This module names its
fields, says which stage owns each annotation, and derives the Arrow schemas that the writers use. Stages add
fields; none rewrites a field another stage owns.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

import pyarrow as pa


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
    domain: str  # domains
    synthetic: str  # synth: generator model that wrote it
    repeats: int  # rebalance: how many copies go into the mixture


# Annotation fields with their Arrow types; columns a doc lacks are written as null.
ANNOTATION_TYPES: dict[str, pa.DataType] = {
    "lang": pa.string(),
    "lang_score": pa.float32(),
    "dedup_cluster": pa.string(),
    "quality_score": pa.float32(),
    "domain": pa.string(),
    "synthetic": pa.string(),
    "repeats": pa.int32(),
}

_BASE_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("source", pa.string()),
]
_ANNOTATION_FIELDS = [pa.field(name, typ) for name, typ in ANNOTATION_TYPES.items()]
_JSON_FIELDS = [pa.field("quality", pa.string()), pa.field("meta", pa.string())]

DOCS_SCHEMA = pa.schema(
    _BASE_FIELDS[:1] + [pa.field("text", pa.string())] + _BASE_FIELDS[1:] + _ANNOTATION_FIELDS + _JSON_FIELDS
)
REJECTED_SCHEMA = pa.schema(
    list(DOCS_SCHEMA)
    + [pa.field("stage", pa.string(), nullable=False), pa.field("reason", pa.string(), nullable=False),
       pa.field("n_tokens", pa.int64())]
)
MIXTURE_SCHEMA = pa.schema(
    [
        pa.field("tokens", pa.list_(pa.uint32()), nullable=False),
        pa.field("n_tokens", pa.int64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("lang", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("source", pa.string()),
        pa.field("quality_score", pa.float32()),
        pa.field("synthetic", pa.string()),
        pa.field("repeat", pa.int32(), nullable=False),  # 0 for the first copy; up-sampling adds 1, 2, ...
    ]
)
DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("id", pa.string()),
        pa.field("raw", pa.string()),  # the record as read (truncated), for replay
    ]
)

RAW_PREVIEW_CHARS = 2000


def to_row(doc: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """One Arrow row for ``schema`` from a doc: missing columns are null, nested fields JSON-encoded."""
    row = {}
    for field in schema:
        value = doc.get(field.name)
        if field.name in ("meta", "quality") and value is not None and not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
        row[field.name] = value
    return row


def dead_letter(stage: str, error: str, *, file: str | None = None, position: int | None = None,
                doc_id: str | None = None, raw: Any = None) -> dict[str, Any]:
    """A dead-letter entry: something that could not be processed, with why and where it came from."""
    if isinstance(raw, bytes):
        raw = raw[: RAW_PREVIEW_CHARS * 4].decode("utf-8", errors="backslashreplace")
    elif raw is not None and not isinstance(raw, str):
        raw = json.dumps(raw, ensure_ascii=False, default=str)
    if isinstance(raw, str) and len(raw) > RAW_PREVIEW_CHARS:
        raw = raw[:RAW_PREVIEW_CHARS] + f"... [{len(raw)} chars]"
    return {"file": file, "position": position, "stage": stage, "error": error, "id": doc_id, "raw": raw}


def rejected(doc: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    """The doc as dropped by ``stage``, with the reason (rule and measured value) attached."""
    out = dict(doc)
    out["stage"] = stage
    out["reason"] = reason
    return out
