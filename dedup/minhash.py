"""MinHash signatures, vectorized, bit-identical to datasketch's ``MinHash`` (scheme ``affine32``).

A shingle is ``n`` consecutive tokens: words (lowercased ``\\w+`` runs) for spaced scripts, characters for
scripts written without spaces (Chinese, Japanese, Thai, Khmer, ...). All texts of a batch are tokenized and
their tokens hashed in one numpy pass (a polynomial hash over code points, finalized by fmix64: a per-token
Python hash call was the bottleneck), the n-gram hashes are combined in numpy, and datasketch's own permutation
parameters are applied to all shingles of the batch at once. ``shingle_hash`` is the same shingle hash as a plain Python function: a datasketch
``MinHash(hashfunc=shingle_hash)`` fed the same shingles holds the same hash values (tests check this), so
signatures can be handed to datasketch (``to_lean_minhash``) and compared with any other datasketch sketch.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import xxhash
from datasketch import LeanMinHash, MinHash
from datasketch.lsh import _optimal_param
from qurate.dedup.config import CHAR_LANGS

SCHEME = "affine32"  # datasketch >= 2.0 default: fmix32 pre-mix, then a*h+b mod 2^32 (bijective)
EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's value for a MinHash that saw nothing
_WORD = re.compile(r"\w+")
_M64 = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier that chains token hashes into an n-gram hash
_MASK64 = (1 << 64) - 1
# Code-point ranges of those scripts, for documents without a language (script detection).
_CHAR_SCRIPT_RANGES = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility
    (0x20000, 0x3FFFF),  # CJK extensions B+
)
_SCRIPT_BOUNDS = np.array([b for lo, hi in _CHAR_SCRIPT_RANGES for b in (lo, hi + 1)], dtype=np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before the permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


_B = 0x100000001B3  # odd base of the polynomial token hash (invertible mod 2^64)
_B_INV = pow(_B, -1, 1 << 64)


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def token_hash(token: str) -> int:
    """64-bit hash of one word token (already lowercased): a polynomial over its code points, finalized.

    Plain-Python twin of the vectorized hashing in ``_word_token_hashes``.
    """
    acc = 0
    power = 1
    for ch in token:
        acc = (acc + ord(ch) * power) & _MASK64
        power = (power * _B) & _MASK64
    acc ^= (len(token) * 0x9E3779B97F4A7C15) & _MASK64
    return int(_fmix64(np.array([acc], dtype=np.uint64))[0])


def char_hash(codepoints: np.ndarray) -> np.ndarray:
    """64-bit hashes of characters (code points), vectorized; a character is a token in character mode."""
    h = codepoints.astype(np.uint64) * np.uint64(0xFF51AFD7ED558CCD) + np.uint64(0x2545F4914F6CDD1D)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def combine_ngrams(hashes: np.ndarray, n: int) -> np.ndarray:
    """uint32 hash of every n-gram of a uint64 token-hash sequence (one n-gram if shorter than ``n``)."""
    if len(hashes) == 0:
        return np.empty(0, dtype=np.uint32)
    n = min(n, len(hashes))
    count = len(hashes) - n + 1
    acc = hashes[:count].copy()
    for k in range(1, n):
        acc *= _M64
        acc += hashes[k: k + count]
    return ((acc ^ (acc >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def shingle_hash(token_hashes: Sequence[int]) -> int:
    """``combine_ngrams`` for one shingle given as its tokens' 64-bit hashes, in plain Python.

    This is the ``hashfunc`` that makes a datasketch ``MinHash`` equal to ``Signer`` (see module doc).
    """
    acc = 0
    for i, h in enumerate(token_hashes):
        acc = h if i == 0 else (acc * 0x9E3779B97F4A7C15 + h) & _MASK64
    return (acc ^ (acc >> 32)) & 0xFFFFFFFF


_WORD_CHAR_TABLE: np.ndarray | None = None


def _word_char_table() -> np.ndarray:
    """Boolean table over the BMP: is this code point part of a word (letters, marks, digits)?"""
    global _WORD_CHAR_TABLE
    if _WORD_CHAR_TABLE is None:
        table = np.zeros(0x10000, dtype=bool)
        for cp in range(0x10000):
            ch = chr(cp)
            table[cp] = ch.isalnum() or unicodedata.category(ch).startswith("M")
        _WORD_CHAR_TABLE = table
    return _WORD_CHAR_TABLE


def codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def is_char_script(text: str, min_share: float = 0.3, sample_chars: int = 2000) -> bool:
    """True when at least ``min_share`` of the (first ``sample_chars``) non-space chars are in a script
    written without spaces."""
    sample = text[:sample_chars]
    if sample.isascii():
        return False
    cps = codepoints(sample)
    cps = cps[cps > 32]
    if len(cps) == 0:
        return False
    # Odd insertion points fall inside one of the [lo, hi] ranges.
    inside = np.searchsorted(_SCRIPT_BOUNDS, cps, side="right") & 1
    return bool(inside.mean() >= min_share)


def _is_word_char(cps: np.ndarray) -> np.ndarray:
    """Word characters (letters, digits, combining marks so Indic words stay whole) among code points."""
    table = _word_char_table()
    out = np.zeros(len(cps), dtype=bool)
    bmp = cps < 0x10000
    out[bmp] = table[cps[bmp]]
    if not bmp.all():  # astral planes (rare): ask Python about each distinct code point
        astral = np.unique(cps[~bmp])
        word = np.array([chr(c).isalnum() for c in astral.tolist()], dtype=bool)
        out[~bmp] = word[np.searchsorted(astral, cps[~bmp])]
    return out


def word_tokens(text: str) -> list[str]:
    """Lowercased runs of word characters (the plain-Python reference of the vectorized tokenizer)."""
    lowered = text.lower()
    mask = _is_word_char(codepoints(lowered))
    tokens, start = [], None
    for i, is_word in enumerate(mask.tolist()):
        if is_word and start is None:
            start = i
        elif not is_word and start is not None:
            tokens.append(lowered[start:i])
            start = None
    if start is not None:
        tokens.append(lowered[start:])
    return tokens


_POWERS: dict[str, np.ndarray] = {}


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """B^i and B^-i mod 2^64 for i < n (cached and grown; numpy's uint64 products wrap mod 2^64)."""
    if len(_POWERS.get("b", ())) < n:
        size = max(n, 1 << 18)
        for name, base in (("b", _B), ("inv", _B_INV)):
            arr = np.full(size, base, dtype=np.uint64)
            arr[0] = 1
            _POWERS[name] = np.cumprod(arr, dtype=np.uint64)
    return _POWERS["b"][:n], _POWERS["inv"][:n]


def word_token_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every word token of every text, hashed in one pass of numpy: ``(hashes, offsets)`` where the tokens of
    text ``i`` are ``hashes[offsets[i]:offsets[i+1]]`` (equal to ``token_hash`` of each ``word_tokens`` item)."""
    lowered = [t.lower() for t in texts]
    joined = " ".join(lowered) + " "
    cps = codepoints(joined)
    mask = _is_word_char(cps)
    edges = np.diff(np.concatenate([[False], mask]).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)  # the trailing space closes the last token
    powers, inverse = _powers(len(cps))
    prefix = np.empty(len(cps) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(cps.astype(np.uint64) * powers, out=prefix[1:])
    acc = (prefix[ends] - prefix[starts]) * inverse[starts]
    acc ^= (ends - starts).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    hashes = _fmix64(acc)
    doc_starts = np.cumsum([0] + [len(t) + 1 for t in lowered])
    offsets = np.searchsorted(starts, doc_starts)
    return hashes, offsets


def char_tokens(text: str) -> np.ndarray:
    """The word characters of ``text`` (lowercased) as code points: spaces and punctuation dropped."""
    cps = codepoints(text.lower())
    table = _word_char_table()
    keep = np.ones(len(cps), dtype=bool)
    bmp = cps < 0x10000
    keep[bmp] = table[cps[bmp]]
    return cps[keep]


@dataclass(frozen=True)
class ShingleSpec:
    word_ngram: int = 5
    char_ngram: int = 5
    char_langs: frozenset[str] = CHAR_LANGS


def uses_chars(text: str, lang: str | None, spec: ShingleSpec) -> bool:
    """Character shingles for languages written without spaces; script detection when ``lang`` is unknown."""
    if lang:
        return lang.split("-")[0].split("_")[0].lower() in spec.char_langs
    return is_char_script(text)


def shingle_hashes(text: str, lang: str | None = None, spec: ShingleSpec = ShingleSpec()) -> np.ndarray:
    """uint32 hash of every shingle of ``text`` (may repeat; MinHash ignores repeats)."""
    if uses_chars(text, lang, spec):
        return combine_ngrams(char_hash(char_tokens(text)), spec.char_ngram)
    hashes, _ = word_token_hashes([text])
    return combine_ngrams(hashes, spec.word_ngram)


def shingle_token_hashes(text: str, lang: str | None = None, spec: ShingleSpec = ShingleSpec()
                         ) -> list[tuple[int, ...]]:
    """The shingles of ``text`` as tuples of token hashes (plain Python; the reference for tests/benchmarks)."""
    if uses_chars(text, lang, spec):
        hashes = [int(h) for h in char_hash(char_tokens(text))]
        n = spec.char_ngram
    else:
        hashes = [token_hash(t) for t in word_tokens(text)]
        n = spec.word_ngram
    if not hashes:
        return []
    n = min(n, len(hashes))
    return [tuple(hashes[i: i + n]) for i in range(len(hashes) - n + 1)]


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own permutation parameters (a, b) for ``MinHash(num_perm, seed)``."""
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


class Signer:
    """Computes MinHash signatures (uint32 arrays of ``num_perm`` values) for batches of documents."""

    # Shingles per numpy call: the (permutations x shingles) scratch matrix stays cache-sized (fastest).
    CHUNK = 8_192

    def __init__(self, num_perm: int = 112, seed: int = 1, spec: ShingleSpec = ShingleSpec()):
        self.num_perm, self.seed, self.spec = num_perm, seed, spec
        self.a, self.b = permutations(num_perm, seed)
        self._buffer: np.ndarray | None = None

    def shingles(self, texts: Sequence[str], langs: Sequence[str | None]) -> list[np.ndarray]:
        """Per text, the uint32 hashes of its shingles; word-shingled texts are tokenized as one batch."""
        out: list[np.ndarray] = [np.empty(0, dtype=np.uint32)] * len(texts)
        words = []
        for i, (text, lang) in enumerate(zip(texts, langs)):
            if uses_chars(text, lang, self.spec):
                out[i] = combine_ngrams(char_hash(char_tokens(text)), self.spec.char_ngram)
            else:
                words.append(i)
        if words:
            hashes, offsets = word_token_hashes([texts[i] for i in words])
            n = self.spec.word_ngram
            combined = combine_ngrams(hashes, n) if len(hashes) >= n else np.empty(0, dtype=np.uint32)
            for k, i in enumerate(words):
                lo, hi = offsets[k], offsets[k + 1]
                if hi - lo >= n:
                    out[i] = combined[lo: hi - n + 1]
                elif hi > lo:  # shorter than one n-gram: the whole text is one shingle
                    out[i] = combine_ngrams(hashes[lo:hi], n)
        return out

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

    def to_lean_minhash(self, signature: np.ndarray) -> LeanMinHash:
        """The signature as a datasketch ``LeanMinHash`` (for datasketch's LSH indexes, ``jaccard`` ...)."""
        return LeanMinHash(seed=self.seed, hashvalues=signature, scheme=SCHEME)


def jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Estimated Jaccard similarity: the share of equal signature values (datasketch's ``MinHash.jaccard``)."""
    return float(np.count_nonzero(sig_a == sig_b)) / len(sig_a)


def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive + false negative areas (datasketch's optimizer)."""
    bands, rows = _optimal_param(threshold, num_perm, fp_weight, fn_weight)
    return int(bands), int(rows)


def s_curve(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """Probability that two sets of Jaccard ``similarity`` share at least one LSH band."""
    return 1.0 - (1.0 - np.power(similarity, rows)) ** bands


def band_hashes(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One 64-bit key per band: xxh3 of the band's index and its ``rows`` hash values (a collision only adds a
    candidate, which verification or the Jaccard in the reason exposes)."""
    raw = signature[: bands * rows].astype("<u4").reshape(bands, rows)
    return [xxhash.xxh3_64_intdigest(raw[i].tobytes(), seed=i) for i in range(bands)]


SKETCH_BITS = 8


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


def share_band(sig_a: np.ndarray, sig_b: np.ndarray, bands: int, rows: int) -> bool:
    """Whether two signatures (or sketches) agree on every row of at least one band (LSH candidates)."""
    eq = (sig_a[: bands * rows] == sig_b[: bands * rows]).reshape(bands, rows)
    return bool(eq.all(axis=1).any())
