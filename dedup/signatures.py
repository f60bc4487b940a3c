"""MinHash signatures, vectorized, bit-identical to datasketch's ``MinHash`` (scheme ``affine32``), and the
8-bit sketches of them that travel through the dedup graph's shuffles.

datasketch's own permutation parameters are applied to all shingles of a batch at once; signatures can be handed
to datasketch (``to_lean_minhash``) and compared with any other datasketch sketch. datasketch is imported only
where its objects are needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from qurate.dedup.shingles import ShingleSpec, batch_shingle_hashes

SCHEME = "affine32"  # datasketch >= 2.0 default: fmix32 pre-mix, then a*h+b mod 2^32 (bijective)
EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's value for a MinHash that saw nothing
SKETCH_BITS = 8


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before the permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's permutation parameters (a, b) for ``MinHash(num_perm, seed, scheme="affine32")``, drawn as
    datasketch draws them (odd ``a``, any ``b``, from ``RandomState(seed)``) without importing it: its import
    loads scipy, about a second in every worker (``tests/test_dedup.py`` compares with datasketch's own)."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


class Signer:
    """Computes MinHash signatures (uint32 arrays of ``num_perm`` values) for batches of documents."""

    # Shingles per numpy call: the (permutations x shingles) scratch matrix stays cache-sized (fastest).
    CHUNK = 8_192

    def __init__(self, num_perm: int = 112, seed: int = 1, spec: ShingleSpec = ShingleSpec()):
        self.num_perm, self.seed, self.spec = num_perm, seed, spec
        self.a, self.b = permutations(num_perm, seed)
        self._buffer: np.ndarray | None = None

    def shingles(self, texts: Sequence[str], langs: Sequence[str | None]) -> list[np.ndarray]:
        """Per text, the uint32 hashes of its shingles."""
        return batch_shingle_hashes(texts, langs, self.spec)

    def signatures(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> np.ndarray:
        """``(len(texts), num_perm)`` uint32 signatures; a text without any shingle gets the empty signature."""
        langs = langs if langs is not None else [None] * len(texts)
        per_doc = self.shingles(texts, langs)
        out = np.full((len(texts), self.num_perm), EMPTY, dtype=np.uint32)
        lengths = np.array([len(h) for h in per_doc], dtype=np.int64)
        nonempty = np.flatnonzero(lengths)
        if len(nonempty) == 0:
            return out
        hv = _fmix32(np.concatenate([per_doc[i] for i in nonempty]))
        starts = np.concatenate([[0], np.cumsum(lengths[nonempty])[:-1]])
        # Docs go through in slices whose shingles fit one chunk (a longer doc is its own slice). The matrix is
        # (permutations x shingles) so the min-reduction runs along contiguous memory (10x faster than rows).
        i = 0
        while i < len(nonempty):
            j = i + 1
            while j < len(nonempty) and starts[j] + lengths[nonempty[j]] - starts[i] <= self.CHUNK:
                j += 1
            lo = starts[i]
            hi = starts[j] if j < len(nonempty) else len(hv)
            if j - i == 1:
                out[nonempty[i]] = self._min_over(hv[lo:hi])
            else:
                phv = self._permuted(hv[lo:hi])
                out[nonempty[i:j]] = np.minimum.reduceat(phv, starts[i:j] - lo, axis=1).T
            i = j
        return out

    def _permuted(self, hv: np.ndarray) -> np.ndarray:
        """``a * h + b mod 2^32`` for every permutation (rows) and input hash (columns), in a reused buffer."""
        if self._buffer is None or self._buffer.shape[1] < len(hv):
            self._buffer = np.empty((self.num_perm, max(len(hv), self.CHUNK)), dtype=np.uint32)
        buf = self._buffer[:, : len(hv)]
        np.multiply(self.a[:, None], hv[None, :], out=buf)
        np.add(buf, self.b[:, None], out=buf)
        return buf

    def _min_over(self, hv: np.ndarray) -> np.ndarray:
        result = np.full(self.num_perm, EMPTY, dtype=np.uint32)
        for lo in range(0, len(hv), self.CHUNK):
            np.minimum(result, self._permuted(hv[lo: lo + self.CHUNK]).min(axis=1), out=result)
        return result

    def signature(self, text: str, lang: str | None = None) -> np.ndarray:
        return self.signatures([text], [lang])[0]

    def to_lean_minhash(self, signature: np.ndarray) -> Any:
        """The signature as a datasketch ``LeanMinHash`` (for datasketch's LSH indexes, ``jaccard`` ...)."""
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme=SCHEME)


def jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Estimated Jaccard similarity: the share of equal signature values (datasketch's ``MinHash.jaccard``)."""
    return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)


def sketch(signature: np.ndarray) -> bytes:
    """The lowest byte of every hash value (b-bit MinHash, Li & Koenig 2010): a quarter of the signature's size,
    enough to estimate Jaccard (``sketch_jaccard``); it is what travels through the shuffles."""
    return (signature & np.uint32(0xFF)).astype(np.uint8).tobytes()


def sketch_jaccard(a: bytes, b: bytes) -> float:
    """Jaccard estimate from two sketches: equal bytes minus the 1/256 chance that different minima agree."""
    arr_a, arr_b = np.frombuffer(a, dtype=np.uint8), np.frombuffer(b, dtype=np.uint8)
    match = np.count_nonzero(arr_a == arr_b) / len(arr_a)
    chance = 2.0 ** -SKETCH_BITS
    return max(0.0, (match - chance) / (1.0 - chance))
