"""Shingles: the n-grams MinHash is taken over, hashed to uint32 in numpy.

A shingle is ``n`` consecutive tokens: words (lowercased runs of letters, digits and combining marks) for spaced
scripts, characters for scripts written without spaces (Chinese, Japanese, Thai, Khmer, ...). All texts of a batch
are tokenized and their tokens hashed in one numpy pass (a polynomial hash over code points, finalized by fmix64:
a per-token Python hash call was the bottleneck), and the n-gram hashes are combined in numpy. ``shingle_hash`` is
the same shingle hash as a plain Python function: a datasketch ``MinHash(hashfunc=shingle_hash)`` fed
``shingle_token_hashes`` holds the same values as ``Signer`` (tests check this).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Languages written without spaces between words: shingles are character n-grams.
CHAR_LANGS = frozenset({"zh", "ja", "th", "km", "lo", "my", "bo", "dz", "yue", "wuu"})

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


def batch_shingle_hashes(texts: Sequence[str], langs: Sequence[str | None], spec: ShingleSpec) -> list[np.ndarray]:
    """Per text, the uint32 hashes of its shingles; word-shingled texts are tokenized as one batch."""
    out: list[np.ndarray] = [np.empty(0, dtype=np.uint32)] * len(texts)
    words = []
    for i, (text, lang) in enumerate(zip(texts, langs)):
        if uses_chars(text, lang, spec):
            out[i] = combine_ngrams(char_hash(char_tokens(text)), spec.char_ngram)
        else:
            words.append(i)
    if words:
        hashes, offsets = word_token_hashes([texts[i] for i in words])
        n = spec.word_ngram
        combined = combine_ngrams(hashes, n) if len(hashes) >= n else np.empty(0, dtype=np.uint32)
        for k, i in enumerate(words):
            lo, hi = offsets[k], offsets[k + 1]
            if hi - lo >= n:
                out[i] = combined[lo: hi - n + 1]
            elif hi > lo:  # shorter than one n-gram: the whole text is one shingle
                out[i] = combine_ngrams(hashes[lo:hi], n)
    return out
