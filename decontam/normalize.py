"""Text normalization applied to benchmark items and documents alike, before tokenization.

The rule is meant to defeat reformatting that leaves an item's words in place:

1. Unicode NFKC, then ``casefold`` (case, full-width forms, ligatures);
2. list markers are removed: a letter, a 1-3 digit number or a roman numeral i..viii followed by ``.``, ``)`` or
   ``:``, after whitespace or ``(`` and before whitespace or the end (``A.``, ``(b)``, ``3)``, ``iv.``, ``Q:``), so
   relabelled choices and numbered lines normalize alike;
3. every character that is not a letter or digit becomes a space (punctuation, symbols, underscores, markup);
4. whitespace runs (line breaks included) collapse to one space; the result starts with a space, so every word is
   encoded as " word" by a byte-level BPE whatever its original position.

``normalize`` is the fast path used for every document. ``normalized_words`` gives the same words with their
character spans in the *original* text, for excising a contaminated span; it is slower and runs only on
contaminated documents.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

# [\s(] + marker + [.):] followed by whitespace or the end; the text is prefixed with a space so that a
# marker at the very start counts too.
_MARKER = re.compile(r"[\s(](?:[a-z]|\d{1,3}|i{1,3}|iv|vi{0,3})[.):](?=\s|$)")
_RUN = re.compile(r"\S+")


@lru_cache(maxsize=1)
def _punct_table() -> dict[int, int]:
    """Assigned code points that are not letters/digits -> space (``str.translate`` is ~2x faster than ``re``)."""
    space = ord(" ")
    return {c: space for c in range(min(sys.maxunicode, 0x3FFFF) + 1)
            if not chr(c).isalnum() and unicodedata.category(chr(c)) != "Cn"}


def normalize(text: str) -> str:
    """``" w1 w2 w3"``: the normalized words of ``text`` (see the module docstring)."""
    folded = " " + unicodedata.normalize("NFKC", text).casefold()
    words = _MARKER.sub(" ", folded).translate(_punct_table()).split()
    return " " + " ".join(words) if words else ""


def _folded_with_map(text: str) -> tuple[str, list[int], list[int]]:
    """NFKC + casefold applied per base character (with its combining marks), with a map back to ``text``."""
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        piece = unicodedata.normalize("NFKC", text[i:j]).casefold()
        pieces.append(piece)
        starts.extend([i] * len(piece))
        ends.extend([j] * len(piece))
        i = j
    return "".join(pieces), starts, ends


def normalized_words(text: str) -> list[tuple[str, int, int]]:
    """The normalized words of ``text`` as ``(word, start, end)``, spans in the original text.

    Folding is done per base character here (whole-text NFKC can also compose across characters, e.g. Hangul
    jamo); callers compare the resulting tokens with the fast path and give up on excision if they differ.
    """
    folded, starts, ends = _folded_with_map(text)
    folded = " " + folded
    starts = [0, *starts]
    ends = [0, *ends]
    chars = list(folded)
    for match in _MARKER.finditer(folded):  # blank markers in place, keeping positions
        chars[match.start():match.end()] = " " * (match.end() - match.start())
    cleaned = "".join(chars).translate(_punct_table())
    return [(m.group(), starts[m.start()], ends[m.end() - 1]) for m in _RUN.finditer(cleaned)]
