"""Example qurate filters: a class with params and setup, and plain functions."""

from __future__ import annotations

from typing import Any


class MinChars:
    """Drops documents shorter than ``min_chars`` characters; annotates the kept ones with their length."""

    def __init__(self, min_chars: int = 200):
        self.min_chars = min_chars
        self.ready = False

    def setup(self) -> None:  # runs once per worker, before the first document
        self.ready = True

    def __call__(self, doc: dict[str, Any]):
        if not self.ready:
            raise RuntimeError("setup() was not called")
        n = len(doc["text"])
        if n < self.min_chars:
            return False, f"too_short: {n} chars < {self.min_chars}"
        doc["meta"]["char_count"] = n
        return True


def drop_marked(doc: dict[str, Any], marker: str = "DROP-ME") -> bool | tuple[bool, str]:
    """Drops documents that contain ``marker`` (named in recipes by dotted path)."""
    if marker in doc["text"]:
        return False, f"marker {marker!r} found"
    return True


def fragile(doc: dict[str, Any], poison: str = "POISON") -> bool:
    """Raises on documents that contain ``poison``: qurate must send them to the dead-letter output."""
    if poison in doc["text"]:
        raise ValueError(f"cannot handle a document with {poison}")
    return True
