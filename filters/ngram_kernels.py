"""Compiled (numba) kernels for the Gopher repetition n-gram measures of ``heuristics_rules.NGrams``.

Each works on one document: its words joined without separators as code points (``chars``) and the word
boundaries in that string (``cum``: ``cum[i]`` is where word ``i`` starts, ``cum[-1]`` the length). An n-gram
gets a 64-bit polynomial hash of its characters from prefix sums, so equal strings hash equal wherever they
start; groups of equal hashes are then checked character by character, so a hash collision can never change a
result: a kernel that meets one returns ``COLLISION`` and the caller counts that n exactly in Python.

Compiled once per machine (``cache=True`` keeps the machine code beside this file, or in numba's user cache
when that is read-only); the first process to need them pays about two seconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

COLLISION = -1  # a hash group held different strings: count this n exactly

_M0 = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_BASE = np.uint64(0x94D049BB133111EB)
_SHIFT = np.uint64(29)


@njit(cache=True, nogil=True)
def prefix_hashes(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(prefix, powers)``: ``prefix[k]`` sums the mixed code points before ``k``, character ``i`` weighted by
    ``BASE**i`` (all mod 2**64); ``powers[k] = BASE**k``."""
    size = len(chars)
    prefix = np.zeros(size + 1, np.uint64)
    powers = np.empty(size + 1, np.uint64)
    power = np.uint64(1)
    total = np.uint64(0)
    powers[0] = power
    for k in range(size):
        h = (np.uint64(chars[k]) + np.uint64(1)) * _M0
        h ^= h >> _SHIFT
        h *= _M1
        total += h * power
        prefix[k + 1] = total
        power *= _BASE
        powers[k + 1] = power
    return prefix, powers


@njit(cache=True, nogil=True)
def _gram_hashes(prefix: np.ndarray, powers: np.ndarray, cum: np.ndarray, n: int) -> np.ndarray:
    """The hash of each n-gram's characters, scaled to one common power so equal strings give equal values."""
    count = len(cum) - n
    top = len(powers) - 1
    out = np.empty(count, np.uint64)
    for p in range(count):
        a = cum[p]
        out[p] = (prefix[cum[p + n]] - prefix[a]) * powers[top - a]
    return out


@njit(cache=True, nogil=True)
def _same_chars(chars: np.ndarray, a: int, b: int, length: int) -> bool:
    for k in range(length):
        if chars[a + k] != chars[b + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _same_words(chars: np.ndarray, cum: np.ndarray, p: int, q: int, n: int) -> bool:
    """Whether the word tuples at ``p`` and ``q`` are equal (same word lengths, same characters)."""
    for k in range(n):
        if cum[p + k + 1] - cum[p + k] != cum[q + k + 1] - cum[q + k]:
            return False
    return _same_chars(chars, cum[p], cum[q], cum[p + n] - cum[p])


@njit(cache=True, nogil=True)
def _first_positions(hashes: np.ndarray) -> np.ndarray:
    """Per position, the first position with the same hash (itself if none before): an open-addressing table,
    linear in the number of n-grams."""
    count = len(hashes)
    size = 2
    while size < 2 * count:
        size <<= 1
    mask = np.uint64(size - 1)
    slots = np.full(size, -1, np.int64)
    first = np.empty(count, np.int64)
    for p in range(count):
        h = hashes[p]
        s = (h ^ (h >> np.uint64(32))) & mask
        while True:
            q = slots[s]
            if q == -1:
                slots[s] = p
                first[p] = p
                break
            if hashes[q] == h:
                first[p] = q
                break
            s = (s + np.uint64(1)) & mask
    return first


@njit(cache=True, nogil=True)
def _top_chars(chars: np.ndarray, cum: np.ndarray, prefix: np.ndarray, powers: np.ndarray, n: int) -> int:
    first = _first_positions(_gram_hashes(prefix, powers, cum, n))
    count = len(first)
    sizes = np.zeros(count, np.int64)
    for p in range(count):
        sizes[first[p]] += 1
    best = sizes.max()
    best_pos = -1
    for p in range(count):
        head = first[p]
        if sizes[head] != best:
            continue
        if head == p:
            if best_pos < 0:
                best_pos = p  # heads come in order of first position: the first seen among the most frequent
        elif not _same_words(chars, cum, head, p, n):
            return COLLISION  # a largest hash group mixes different n-grams: its size is no count
    return (cum[best_pos + n] - cum[best_pos] + n - 1) * best


@njit(cache=True, nogil=True)
def top_chars(chars: np.ndarray, cum: np.ndarray, prefix: np.ndarray, powers: np.ndarray, ns: np.ndarray
              ) -> np.ndarray:
    """datatrove's ``find_top_duplicate(get_n_grams(words, n))`` for each ``n`` (at most the word count):
    characters of the most frequent " ".join n-gram (the first seen among equals) times its count;
    ``COLLISION`` where a largest hash group mixes different n-grams."""
    out = np.empty(len(ns), np.int64)
    for i in range(len(ns)):
        out[i] = _top_chars(chars, cum, prefix, powers, ns[i])
    return out


@njit(cache=True, nogil=True)
def _duplicate_chars(chars: np.ndarray, cum: np.ndarray, prefix: np.ndarray, powers: np.ndarray, n: int) -> int:
    first = _first_positions(_gram_hashes(prefix, powers, cum, n))
    count = len(first)
    for p in range(count):
        head = first[p]
        if head != p:
            length = cum[head + n] - cum[head]
            if cum[p + n] - cum[p] != length or not _same_chars(chars, cum[head], cum[p], length):
                return COLLISION
    seen = np.zeros(count, np.bool_)  # per group head: visited once already
    repeated, skip_to = 0, 0
    for pos in range(count):
        if pos < skip_to:
            continue
        head = first[pos]
        if seen[head]:
            repeated += cum[pos + n] - cum[pos]
            skip_to = pos + n
        else:
            seen[head] = True
            skip_to = pos + 1
    return repeated


@njit(cache=True, nogil=True)
def duplicate_chars(chars: np.ndarray, cum: np.ndarray, prefix: np.ndarray, powers: np.ndarray, ns: np.ndarray
                    ) -> np.ndarray:
    """datatrove's ``find_all_duplicate(words, n)`` for each ``n`` (at most the word count): walking the
    positions, an n-gram ("".join) already seen at a visited position counts its characters and skips the next
    n - 1 positions; ``COLLISION`` where a hash group mixes different strings."""
    out = np.empty(len(ns), np.int64)
    for i in range(len(ns)):
        out[i] = _duplicate_chars(chars, cum, prefix, powers, ns[i])
    return out
