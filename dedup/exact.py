"""Exact duplicates: a 128-bit hash of the text after a configurable normalization."""

from __future__ import annotations

import re
import unicodedata

import xxhash

_SPACE = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")


def normalize(text: str, mode: str = "whitespace") -> str:
    """``none``: as is; ``whitespace``: NFC, runs of whitespace -> one space, stripped; ``lower``: that plus
    lowercase; ``aggressive``: NFKC, lowercase, punctuation and whitespace dropped to single spaces."""
    if mode == "none":
        return text
    if mode == "aggressive":
        return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
    text = _SPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return text.lower() if mode == "lower" else text


def exact_hash(text: str, mode: str = "whitespace") -> str:
    """Hex digest of the normalized text (xxh3-128: collisions are negligible at any corpus size)."""
    return xxhash.xxh3_128_hexdigest(normalize(text, mode).encode("utf-8", "surrogatepass"))
