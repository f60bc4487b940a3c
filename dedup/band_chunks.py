"""LSH band records packed into chunks, so the band shuffle costs bytes, not Python objects.

Every distinct text puts one (band key, vertex) record per band into the shuffle that finds the buckets: ~20-40
records per doc. A local runner's GroupByKey keeps each record as a Python object (~250 bytes with its key),
which made the band shuffle the largest memory holder of a local run (~5 GB per million docs). Packed instead:
each bundle sends, per partition of the band-key space, one chunk of three byte strings (the 64-bit band keys,
the vertex names' lengths, the names), ~50 bytes a record; the buckets are found per partition by sorting its
keys. Pure functions, no Beam.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import xxhash

PARTITIONS = 1024  # band-key partitions: the shuffle's keys (a partition holds ~records / 1024)
CHUNK_RECORDS = 1_000_000  # a bundle flushes its chunks when it buffers this many records

Chunk = tuple[bytes, bytes, bytes]  # (band keys '<u8', name lengths '<u4', names utf-8)


def band_keys(bands: Sequence[int]) -> bytes:
    """A doc's band keys as one byte string (what ``NearSig.bands`` holds)."""
    return np.asarray(bands, dtype="<u8").tobytes()


def unpack_keys(packed: bytes) -> list[int]:
    return np.frombuffer(packed, dtype="<u8").tolist()


def pair_hash(member: str, anchor: str) -> int:
    """A 128-bit hash of a candidate pair (length-prefixed, so no two pairs share their bytes)."""
    a, b = member.encode("utf-8", "surrogatepass"), anchor.encode("utf-8", "surrogatepass")
    return xxhash.xxh3_128_intdigest(len(a).to_bytes(4, "little") + a + b)


def partition_of(band_key: int, partitions: int = PARTITIONS) -> int:
    return band_key % partitions


def pack(keys: Sequence[int], vertices: Sequence[str]) -> Chunk:
    """(band key, vertex) records -> one chunk."""
    names = [v.encode("utf-8", "surrogatepass") for v in vertices]
    lengths = np.fromiter((len(n) for n in names), dtype="<u4", count=len(names))
    return np.asarray(keys, dtype="<u8").tobytes(), lengths.tobytes(), b"".join(names)


def buckets(chunks: Iterable[Chunk]) -> Iterator[list[str]]:
    """The buckets (vertices sharing a band key) of one partition's chunks that have two members or more."""
    chunks = list(chunks)
    if not chunks:
        return
    keys = np.concatenate([np.frombuffer(c[0], dtype="<u8") for c in chunks])
    lengths = np.concatenate([np.frombuffer(c[1], dtype="<u4") for c in chunks]).astype(np.int64)
    blob = b"".join(c[2] for c in chunks)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    new_run = np.empty(len(ranked), dtype=bool)
    new_run[0] = True
    new_run[1:] = ranked[1:] != ranked[:-1]
    run_starts = np.flatnonzero(new_run)
    run_ends = np.append(run_starts[1:], len(ranked))
    for a, b in zip(run_starts.tolist(), run_ends.tolist()):
        if b - a < 2:
            continue
        yield [blob[starts[i]:ends[i]].decode("utf-8", "surrogatepass") for i in order[a:b].tolist()]


class ChunkBuffer:
    """A bundle's band records, by partition, until ``limit`` records are buffered."""

    def __init__(self, partitions: int = PARTITIONS, limit: int = CHUNK_RECORDS):
        self.partitions, self.limit = partitions, limit
        self.clear()

    def clear(self) -> None:
        self._keys: dict[int, list[int]] = {}
        self._names: dict[int, list[str]] = {}
        self.size = 0

    def add(self, keys: Iterable[int], vertex: str) -> bool:
        """Adds a vertex's band keys; whether the buffer is full."""
        for key in keys:
            part = key % self.partitions
            self._keys.setdefault(part, []).append(key)
            self._names.setdefault(part, []).append(vertex)
            self.size += 1
        return self.size >= self.limit

    def flush(self) -> Iterator[tuple[int, Chunk]]:
        for part in sorted(self._keys):
            yield part, pack(self._keys[part], self._names[part])
        self.clear()
