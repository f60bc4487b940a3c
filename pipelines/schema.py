"""Arrow schemas of the run's outputs, derived from the core record (``qurate/doc.py``).

The docs, rejected and mixture files get one column per annotation in ``qurate.doc.FIELD_TYPES``, so a stage that
adds an annotation adds one line there and nothing here.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from qurate.doc import FIELD_TYPES, JSON_FIELDS, to_json

_ARROW = {"string": pa.string(), "float32": pa.float32(), "int32": pa.int32(), "json": pa.string()}

ANNOTATION_TYPES: dict[str, pa.DataType] = {
    name: _ARROW[kind] for name, kind in FIELD_TYPES.items() if kind != "json"
}

_ANNOTATION_FIELDS = [pa.field(name, typ) for name, typ in ANNOTATION_TYPES.items()]
_JSON_COLUMNS = [pa.field(name, pa.string()) for name in FIELD_TYPES if name in JSON_FIELDS]

DOCS_SCHEMA = pa.schema(
    [pa.field("id", pa.string(), nullable=False), pa.field("text", pa.string()), pa.field("source", pa.string())]
    + _ANNOTATION_FIELDS + _JSON_COLUMNS
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
        pa.field("file", pa.string()),  # the input file (null for a doc that broke a later stage)
        pa.field("position", pa.int64()),  # line (JSONL) or row (Parquet) in that file
        pa.field("stage", pa.string(), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("error_class", pa.string()),  # the exception's class, or the reader's rule
        pa.field("id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("raw", pa.string()),  # the record as read (read stage) or the whole doc (later stages), for replay
        pa.field("raw_chars", pa.int64()),  # its full size: raw is cut at qurate.doc.RAW_LIMIT_CHARS
    ]
)


def to_row(doc: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """One Arrow row for ``schema`` from a doc: missing columns are null, nested fields JSON-encoded."""
    row = {}
    for field in schema:
        value = doc.get(field.name)
        if field.name in JSON_FIELDS:
            value = to_json(value)
        row[field.name] = value
    return row
