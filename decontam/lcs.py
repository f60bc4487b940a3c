"""Longest common subsequence of two token sequences, bit-parallel (Allison-Dix / Hyyro).

The item's positions are bits of one Python integer (any length); each text token updates all of them with a
few word-parallel integer operations, so the cost is O(len(text) * len(item) / 64) machine words and text tokens
that do not occur in the item cost a dict lookup only.
"""

from __future__ import annotations

from collections.abc import Sequence


def match_masks(pattern: Sequence[int]) -> dict[int, int]:
    """Token -> bitmask of its positions in ``pattern``."""
    masks: dict[int, int] = {}
    for i, token in enumerate(pattern):
        masks[token] = masks.get(token, 0) | (1 << i)
    return masks


def lcs_length(pattern: Sequence[int], text: Sequence[int], masks: dict[int, int] | None = None) -> int:
    """|LCS(pattern, text)|."""
    m = len(pattern)
    if m == 0 or not len(text):
        return 0
    masks = masks if masks is not None else match_masks(pattern)
    full = (1 << m) - 1
    v = full  # a 0 bit at i: the LCS grew at pattern position i
    get = masks.get
    for token in text:
        mask = get(token)
        if mask:
            u = v & mask
            v = ((v + u) | (v - u)) & full
    return m - v.bit_count()


def _reach(pattern: Sequence[int], text: Sequence[int], target: int) -> int:
    """The shortest prefix of ``text`` whose LCS with ``pattern`` is ``target`` (its length)."""
    masks = match_masks(pattern)
    m = len(pattern)
    full = (1 << m) - 1
    v = full
    for k, token in enumerate(text):
        mask = masks.get(token)
        if mask:
            u = v & mask
            v = ((v + u) | (v - u)) & full
            if m - v.bit_count() >= target:
                return k + 1
    return len(text)


def lcs_span(pattern: Sequence[int], text: Sequence[int], length: int) -> tuple[int, int]:
    """A span ``[start, end)`` of ``text`` whose LCS with ``pattern`` is ``length``: the shortest prefix reaching
    it, then the shortest suffix of that prefix still reaching it."""
    if length <= 0:
        return 0, 0
    end = _reach(pattern, text, length)
    head = list(text[:end])
    start = end - _reach(list(pattern)[::-1], head[::-1], length)
    return start, end
