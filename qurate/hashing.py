"""Stable hashing: the same value in every process and on every runner (unlike ``hash()``).

Every sampling decision and tie-break in qurate is a keyed hash of (doc id, seed, ...), never arrival order.
"""

from __future__ import annotations

from typing import Any

import xxhash


def stable_hash(*parts: Any) -> int:
    """A 64-bit hash of ``parts`` joined by a separator that text rarely holds."""
    return xxhash.xxh64_intdigest("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass"))


def stable_unit(*parts: Any) -> float:
    """``stable_hash`` mapped to [0, 1): a deterministic uniform draw."""
    return stable_hash(*parts) / 2.0**64
