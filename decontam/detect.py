"""Qwen2.5's contamination rule on one document: 13-gram candidates, then LCS verification in a window.

A document is contaminated by a benchmark item of ``m`` tokens when, in some window ``W`` of the document,
``|LCS(W, item)| >= 13`` and ``|LCS(W, item)| >= 0.6 * min(|W|, m)`` (tokens after normalization).

Window rule. The item's n-gram hits in the document are grouped into clusters (a gap of more than
``max(m, n)`` tokens starts a new cluster: two far-apart hits cannot be one copy of the item). A cluster covers
``[a, b)`` (first hit to last hit's end); the window is that span widened on each side by the part of the item
it does not cover, ``pad = max(0, m - (b - a))``, and clipped to the document. So the window can hold the whole
item (a copy whose ends were reformatted past recognition still counts) but is never longer than about ``2m``
tokens: comparing a long document with a short item as whole sequences would make any LCS ratio meaningless.
A document shorter than the item is its own window, so ``min(|W|, m)`` is the document's length.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from qurate.decontam.config import DecontamConfig
from qurate.decontam.index import NGramIndex, TokenEncoder, informative, ngram_hashes
from qurate.decontam.lcs import lcs_length, lcs_span, match_masks
from qurate.decontam.normalize import normalized_words

MAX_CLUSTERS = 16  # per (doc, item): the clusters with most hits are verified


class Hit(NamedTuple):
    benchmark: str
    item: str  # "benchmark/id"
    item_index: int
    lcs: int
    ratio: float
    start: int  # the verified window in document tokens
    end: int

    def describe(self) -> str:
        return f"{self.item} lcs={self.lcs} ratio={self.ratio:.2f}"


class Detector:
    """Finds the benchmark items that contaminate a document (token level)."""

    def __init__(self, index: NGramIndex, encoder: TokenEncoder, config: DecontamConfig):
        self.index = index
        self.encoder = encoder
        self.config = config

    def tokens(self, texts: list[str]) -> list[np.ndarray]:
        return self.encoder.encode_many(texts)

    def find(self, tokens: np.ndarray) -> list[Hit]:
        """Verified hits, best first (highest ratio, then longest LCS); at most one per item."""
        index, cfg = self.index, self.config
        keep = informative(tokens, index.n, self.encoder.digit_ids)
        positions, items = index.matches(ngram_hashes(tokens, index.n)[keep], np.nonzero(keep)[0])
        if not len(items):
            return []
        order = np.lexsort((positions, items))
        positions, items = positions[order], items[order]
        uniq, first, counts = np.unique(items, return_index=True, return_counts=True)
        ranked = np.lexsort((uniq, -counts))[: cfg.max_candidates]  # most shared n-grams first
        hits = []
        for r in ranked:
            item = int(uniq[r])
            hit = self._verify(tokens, item, np.unique(positions[first[r]:first[r] + counts[r]]))
            if hit is not None:
                hits.append(hit)
        hits.sort(key=lambda h: (-h.ratio, -h.lcs, h.item))
        return hits

    def _verify(self, tokens: np.ndarray, item: int, positions: np.ndarray) -> Hit | None:
        cfg, n = self.config, self.index.n
        pattern = self.index.item_tokens(item).tolist()
        m = len(pattern)
        breaks = np.nonzero(np.diff(positions) > max(m, n))[0] + 1
        clusters = np.split(positions, breaks)
        if len(clusters) > MAX_CLUSTERS:
            clusters = sorted(clusters, key=lambda c: (-len(c), int(c[0])))[:MAX_CLUSTERS]
        masks = match_masks(pattern)
        best: Hit | None = None
        for cluster in clusters:
            a, b = int(cluster[0]), int(cluster[-1]) + n
            pad = max(0, m - (b - a))
            start, end = max(0, a - pad), min(len(tokens), b + pad)
            window = tokens[start:end].tolist()
            length = lcs_length(pattern, window, masks)
            ratio = length / min(len(window), m)
            if length >= cfg.min_lcs and ratio >= cfg.min_ratio and (
                    best is None or (ratio, length) > (best.ratio, best.lcs)):
                bench, label = self.index.item_label(item)
                best = Hit(bench, label, item, length, round(ratio, 4), start, end)
        return best

    # ------------------------------------------------------------------------------------------------ excise
    def excise(self, text: str, tokens: np.ndarray, hits: list[Hit]) -> tuple[str, int] | None:
        """``text`` with the contaminated spans cut out and the number of spans, or None when the spans cannot
        be mapped back to characters (then the caller drops the document)."""
        words = normalized_words(text)
        per_word = self.encoder.encode_words([w for w, _, _ in words])
        if not per_word or not np.array_equal(np.concatenate(per_word), tokens):
            return None
        word_of = np.repeat(np.arange(len(words)), [len(t) for t in per_word])
        spans = []
        for hit in hits:
            window = tokens[hit.start:hit.end].tolist()
            s, e = lcs_span(self.index.item_tokens(hit.item_index).tolist(), window, hit.lcs)
            first, last = int(word_of[hit.start + s]), int(word_of[hit.start + e - 1])
            spans.append((words[first][1], words[last][2]))
        spans.sort()
        merged: list[list[int]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        pieces, cursor = [], 0
        for s, e in merged:
            pieces.append(text[cursor:s])
            cursor = e
        pieces.append(text[cursor:])
        return "".join(pieces), len(merged)


def reason(hits: list[Hit], limit: int = 3) -> str:
    """``contaminated: gsm8k/test/12 lcs=87 ratio=0.93; mmlu/... (+2 more)``."""
    text = "; ".join(h.describe() for h in hits[:limit])
    if len(hits) > limit:
        text += f" (+{len(hits) - limit} more)"
    return f"contaminated: {text}"

