"""The candidate index: hashes of every token n-gram (n = 13) of every benchmark item, as sorted numpy arrays.

Items and documents are normalized (``normalize.py``) and tokenized with the pipeline's tokenizer; the lone space
token that a byte-level BPE emits before every number is dropped (it carries nothing and would make every number
a two-token pattern). An n-gram's hash is a polynomial over its token ids (uint64, wrapping) with a final mix; collisions only cost an
LCS check, never a wrong verdict.

Only "informative" n-grams are keys: at least 4 of their tokens are not digits (digit runs in tables and dates
share 13-grams with numeric benchmark items by chance). Lookup is a 2^27-bit bitmap over the hashes' top bits (one
memory access rules out almost every document n-gram), then ``np.searchsorted`` over ``keys`` (sorted hashes)
with ``key_item`` (the item of each hash) alongside. Memory: 12 bytes per item n-gram, 4 bytes per item token
(kept for LCS verification) and the 16 MB bitmap.

The index is built once per process (``get_index``) and, when its sources can be pinned, saved to a cache
directory so later processes (Beam workers, test runs) load it in well under a second.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qurate.decontam.config import DecontamConfig
from qurate.decontam.normalize import normalize
from qurate.decontam.sources import BenchItem, iter_items, sources_fingerprint

LOG = logging.getLogger(__name__)
NORMALIZATION_VERSION = "4"  # bump when normalize() or the hashing changes: invalidates cached indexes
FILTER_BITS = 27  # 16 MB
_MULT = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)


MIN_NON_DIGITS = 4  # an n-gram is a key only with at least this many tokens that are not digits


def informative(tokens: np.ndarray, n: int, digit_ids: np.ndarray) -> np.ndarray:
    """Which length-``n`` windows are usable keys: those with at least ``MIN_NON_DIGITS`` non-digit tokens.
    Runs of digits (tables, dates, page numbers, lists of numbers) share 13-grams by chance, so they never make
    a candidate on their own; the LCS check still counts their tokens."""
    count = len(tokens) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=bool)
    digits = np.concatenate([[0], np.cumsum(np.isin(tokens, digit_ids))])
    return (digits[n:] - digits[:-n]) <= n - min(MIN_NON_DIGITS, n)


def ngram_hashes(tokens: np.ndarray, n: int) -> np.ndarray:
    """uint64 hash of each length-``n`` window of ``tokens`` (empty when there are fewer than ``n`` tokens)."""
    count = len(tokens) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    t = tokens.astype(np.uint64) + np.uint64(1)
    h = np.zeros(count, dtype=np.uint64)
    for j in range(n):
        h = h * _MULT + t[j:j + count]
    h ^= h >> np.uint64(31)
    h *= _MIX
    h ^= h >> np.uint64(29)
    return h


class TokenEncoder:
    """normalize + tokenize, dropping the lone-space tokens a byte-level BPE puts before digits."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        space = tokenizer.encode_batch([" "])[0]
        self.space_ids = np.array(space if len(space) == 1 else [], dtype=np.uint32)
        digits = [ids for ids in tokenizer.encode_batch([str(d) for d in range(10)]) if len(ids) == 1]
        self.digit_ids = np.array(sorted(ids[0] for ids in digits), dtype=np.uint32)

    def _strip(self, ids: Sequence[int]) -> np.ndarray:
        arr = np.asarray(ids, dtype=np.uint32)
        if len(self.space_ids):
            arr = arr[arr != self.space_ids[0]]
        return arr

    def encode_many(self, texts: Sequence[str]) -> list[np.ndarray]:
        normalized = [normalize(t) for t in texts]
        return [self._strip(ids) for ids in self.tokenizer.encode_batch(normalized)]

    def encode_words(self, words: Sequence[str]) -> list[np.ndarray]:
        """Tokens of each normalized word on its own (as " word"), for mapping tokens back to characters."""
        return [self._strip(ids) for ids in self.tokenizer.encode_batch([" " + w for w in words])]


class NGramIndex:
    """Benchmark items (tokens) and the sorted hashes of their n-grams."""

    def __init__(self, n: int, benchmarks: list[str], item_bench: np.ndarray, item_ids: list[str],
                 tokens: np.ndarray, offsets: np.ndarray, keys: np.ndarray, key_item: np.ndarray):
        self.n = n
        self.benchmarks = benchmarks
        self.item_bench = item_bench
        self.item_ids = item_ids
        self.tokens = tokens
        self.offsets = offsets
        self.keys = keys
        self.key_item = key_item
        # A bitmap over the top FILTER_BITS bits of the keys: one memory access rules out almost every doc
        # n-gram (~3 % false hits at 4 M keys) before the binary search, which costs ~20 cache misses.
        slots = (keys >> np.uint64(64 - FILTER_BITS)).astype(np.int64)
        self.filter = np.zeros(1 << (FILTER_BITS - 3), dtype=np.uint8)
        np.bitwise_or.at(self.filter, slots >> 3, (1 << (slots & 7)).astype(np.uint8))

    # ---------------------------------------------------------------------------------------------- build
    @classmethod
    def build(cls, items: Sequence[BenchItem], encoder: TokenEncoder, n: int) -> NGramIndex:
        names = sorted({it.benchmark for it in items})
        bench_of = {name: i for i, name in enumerate(names)}
        token_lists: list[np.ndarray] = []
        for start in range(0, len(items), 4096):  # batches keep peak memory of the tokenizer call low
            token_lists.extend(encoder.encode_many([it.text for it in items[start:start + 4096]]))
        lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        tokens = np.concatenate(token_lists) if token_lists else np.zeros(0, dtype=np.uint32)
        hashes = [ngram_hashes(t, n)[informative(t, n, encoder.digit_ids)] for t in token_lists]
        counts = np.array([len(h) for h in hashes], dtype=np.int64)
        keys = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        key_item = np.repeat(np.arange(len(items), dtype=np.int32), counts)
        order = np.argsort(keys, kind="stable")
        return cls(n, names, np.array([bench_of[it.benchmark] for it in items], dtype=np.int16),
                   [it.id for it in items], tokens, offsets, keys[order], key_item[order])

    # ---------------------------------------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def nbytes(self) -> int:
        """Memory of the arrays (ids and names excluded: a few MB of Python strings)."""
        return int(self.keys.nbytes + self.key_item.nbytes + self.tokens.nbytes + self.offsets.nbytes
                   + self.item_bench.nbytes + self.filter.nbytes)

    def item_tokens(self, item: int) -> np.ndarray:
        return self.tokens[self.offsets[item]:self.offsets[item + 1]]

    def item_label(self, item: int) -> tuple[str, str]:
        """(benchmark, "benchmark/id") of an item; ids that already start with the benchmark keep their form."""
        bench = self.benchmarks[self.item_bench[item]]
        item_id = self.item_ids[item]
        return bench, item_id if item_id.startswith(bench + "/") else f"{bench}/{item_id}"

    def summary(self) -> dict[str, dict[str, int]]:
        """Per benchmark: items, items shorter than n tokens (they can never match), n-grams."""
        lengths = np.diff(self.offsets)
        out = {}
        for b, name in enumerate(self.benchmarks):
            mask = self.item_bench == b
            out[name] = {"items": int(mask.sum()), "too_short": int((lengths[mask] < self.n).sum()),
                         "ngrams": int(np.maximum(lengths[mask] - self.n + 1, 0).sum())}
        return out

    def matches(self, hashes: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For doc n-gram ``hashes`` at doc ``positions``: (doc positions, items), one row per (position, item
        sharing the hash)."""
        if len(hashes) and len(self.keys):
            slots = (hashes >> np.uint64(64 - FILTER_BITS)).astype(np.int64)
            maybe = (self.filter[slots >> 3] >> (slots & 7).astype(np.uint8)) & 1 == 1
            hashes, positions = hashes[maybe], positions[maybe]
        if not len(hashes) or not len(self.keys):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        lo = np.searchsorted(self.keys, hashes, side="left")
        found = self.keys[np.minimum(lo, len(self.keys) - 1)] == hashes
        if not found.any():
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
        positions = positions[found]
        lo = lo[found]
        hi = np.searchsorted(self.keys, hashes[found], side="right")
        counts = hi - lo
        run_start = np.repeat(lo - (np.cumsum(counts) - counts), counts)
        rows = run_start + np.arange(int(counts.sum()))
        return np.repeat(positions, counts), self.key_item[rows]

    # ---------------------------------------------------------------------------------------------- disk cache
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"n": self.n, "benchmarks": self.benchmarks, "ids": self.item_ids}).encode()
        tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}.npz")
        with open(tmp, "wb") as handle:
            np.savez(handle, item_bench=self.item_bench, tokens=self.tokens, offsets=self.offsets,
                     keys=self.keys, key_item=self.key_item, meta=np.frombuffer(meta, dtype=np.uint8))
        os.replace(tmp, path)  # atomic: concurrent workers never read a half-written file

    @classmethod
    def load(cls, path: Path) -> NGramIndex:
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes())
            return cls(meta["n"], meta["benchmarks"], data["item_bench"], meta["ids"], data["tokens"],
                       data["offsets"], data["keys"], data["key_item"])


def cache_dir(config: DecontamConfig) -> Path | None:
    if config.cache_dir == "":
        return None
    if config.cache_dir:
        return Path(config.cache_dir)
    return Path(os.environ.get("QURATE_CACHE") or Path.home() / ".cache" / "qurate") / "decontam"


def index_key(config: DecontamConfig, tokenizer: Any) -> tuple[str, bool]:
    """(key naming the index, whether it may be cached on disk)."""
    sources = sources_fingerprint(config)
    pinned = sources is not None
    if sources is None:
        sources = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    blob = json.dumps([NORMALIZATION_VERSION, tokenizer.fingerprint, config.ngram, sources]).encode()
    return hashlib.sha256(blob).hexdigest()[:24], pinned


def _drop_stale(folder: Path) -> None:
    """Removes cached indexes of older normalization versions: they can never be used again."""
    for old in folder.glob("index-*.npz"):
        if not old.name.startswith(f"index-v{NORMALIZATION_VERSION}-"):
            old.unlink(missing_ok=True)


_INDEXES: dict[str, NGramIndex] = {}
_LOCK = threading.Lock()


def get_index(config: DecontamConfig, tokenizer: Any) -> NGramIndex:
    """The index for ``config``: built once per process, loaded from the disk cache when present."""
    key, pinned = index_key(config, tokenizer)
    with _LOCK:  # threads of one worker share one build
        index = _INDEXES.get(key)
        if index is not None:
            return index
        started = time.monotonic()
        folder = cache_dir(config) if pinned else None
        path = folder / f"index-v{NORMALIZATION_VERSION}-{key}.npz" if folder else None
        if path is not None and path.is_file():
            try:
                index = NGramIndex.load(path)
            except Exception as err:  # a corrupt cache file is rebuilt, not fatal
                LOG.warning("decontam: ignoring unreadable index cache %s: %s", path, err)
        if index is None:
            index = NGramIndex.build(list(iter_items(config)), TokenEncoder(tokenizer), config.ngram)
            if path is not None:
                try:
                    index.save(path)
                    _drop_stale(path.parent)
                except OSError as err:  # a read-only home must not stop the run
                    LOG.warning("decontam: cannot cache the index in %s: %s", path.parent, err)
        LOG.info("decontam: index of %d items, %d %d-grams, %.1f MB, ready in %.1f s", len(index),
                 len(index.keys), index.n, index.nbytes / 2**20, time.monotonic() - started)
        _INDEXES[key] = index
        return index
