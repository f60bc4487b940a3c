"""Which copy of a duplicate cluster survives: a sortable node key, smallest = best.

A node key is ``<rank>\\x1f<doc id>`` where ``<rank>`` is fixed-width text that sorts best-first by the recipe's
survivor fields (higher values first; a doc lacking a field sorts after the docs that have it). Plain string
order of the keys is then "best by the survivor key, ties to the smallest id": deterministic on every runner,
and usable directly as the vertex label of the connected-components rounds, whose minimum is the survivor.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

SEP = "\x1f"
_FIELD_CHARS = 17  # "0" + 16 hex digits per field; "1" + zeros when the field is missing


def _descending(value: float) -> str:
    """Hex of a float whose string order is the descending numeric order."""
    bits = struct.unpack(">Q", struct.pack(">d", float(value)))[0]
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits | (1 << 63)  # ascending-order bits
    return f"{bits ^ 0xFFFFFFFFFFFFFFFF:016x}"


def field_value(doc: dict[str, Any], name: str) -> float | None:
    if name == "length":
        return float(len(doc.get("text") or ""))
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN is "missing"
        return None
    return float(value)


def node_key(doc: dict[str, Any], fields: Sequence[str]) -> str:
    """The doc's sortable survivor key (smallest = survives)."""
    parts = []
    for name in fields:
        value = field_value(doc, name)
        parts.append("1" + "0" * 16 if value is None else "0" + _descending(value))
    return "".join(parts) + SEP + str(doc["id"])


def key_id(key: str) -> str:
    """The doc id inside a node key."""
    return key.split(SEP, 1)[1]
