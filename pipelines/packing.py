"""Packing documents into fixed-length training sequences, with every document boundary kept.

Pure functions (numpy, no Beam): the export wiring (``pipelines/export_packed.py``) calls them once per pack
group. The recipe's ``pack`` section is ``pack_config.PackConfig``; the report section is ``export_report``.

Two policies:

- ``greedy``: Megatron-style concatenation. Documents, in their (shuffled) order, are laid end to end and cut
  every ``seq_len`` tokens, so a document that crosses a cut is split. Padding only in the last sequence.
- ``best_fit``: best-fit decreasing bin packing. A document longer than ``seq_len`` is cut into ``seq_len``
  chunks plus a remainder (the only documents ever split); every other piece goes, largest first, into the open
  sequence with the least room that still holds it, else into a new sequence.

Each packed sequence is a list of spans ``(doc, doc_offset, length)``: ``doc`` indexes the caller's documents,
``doc_offset`` is where the piece starts inside that document. ``spans_array`` turns them into the per-shard index
a trainer reads (sequence, start, length per span), from which segment ids, reset position ids and per-document
attention masks follow (``segment_ids``, ``position_ids``).

Long-context stages (Qwen2.5-Turbo: 40 % of sequences at the maximum length, 60 % shorter): with
``long_context_share = s > 0``, a sequence counts as *long* when one document piece fills more than half of it
(``LONG_FRACTION``); if fewer than ``s`` of the sequences are long, short-only sequences are left out of that
stage (lowest keyed rank kept) until long ones make up ``s``. What is left out is counted, never silently lost:
it stays in the Parquet mixture and in the other stages.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Span = tuple[int, int, int]  # (doc index, offset inside the doc, length)
LONG_FRACTION = 0.5  # a piece longer than this share of seq_len makes its sequence a long-context one
POLICIES = ("greedy", "best_fit")


@dataclass
class PackResult:
    """Sequences (each a list of spans) and what packing cost."""

    seq_len: int
    sequences: list[list[Span]]
    docs: int = 0
    tokens: int = 0  # tokens placed in the kept sequences
    split_docs: int = 0  # documents whose tokens ended in more than one sequence (kept sequences only)
    long_sequences: int = 0
    left_out_sequences: int = 0  # short-only sequences left out for the long-context share
    left_out_tokens: int = 0
    left_out_spans: int = 0
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def padding(self) -> int:
        return len(self.sequences) * self.seq_len - self.tokens

    def summary(self) -> dict[str, float]:
        """Numbers that sum across pack groups (the export emits them as stats)."""
        return {"sequences": len(self.sequences), "tokens": self.tokens, "padding": self.padding,
                "docs": self.docs, "split_docs": self.split_docs, "long_sequences": self.long_sequences,
                "left_out_sequences": self.left_out_sequences, "left_out_tokens": self.left_out_tokens,
                "left_out_spans": self.left_out_spans, "capacity": len(self.sequences) * self.seq_len}


def pack_greedy(lengths: Sequence[int], seq_len: int) -> list[list[Span]]:
    """Documents end to end in the given order, cut every ``seq_len`` tokens."""
    sequences: list[list[Span]] = []
    current: list[Span] = []
    room = seq_len
    for doc, n in enumerate(lengths):
        offset = 0
        while offset < n:
            take = min(room, n - offset)
            current.append((doc, offset, take))
            offset += take
            room -= take
            if room == 0:
                sequences.append(current)
                current, room = [], seq_len
    if current:
        sequences.append(current)
    return sequences


def _pieces(lengths: Sequence[int], seq_len: int) -> tuple[list[list[Span]], list[Span]]:
    """Full ``seq_len`` chunks of long documents (each a sequence of its own) and the pieces left to pack."""
    full: list[list[Span]] = []
    rest: list[Span] = []
    for doc, n in enumerate(lengths):
        offset = 0
        while n - offset > seq_len:
            full.append([(doc, offset, seq_len)])
            offset += seq_len
        if n - offset > 0:
            rest.append((doc, offset, n - offset))
    return full, rest


def pack_best_fit(lengths: Sequence[int], seq_len: int, groups: Sequence[Hashable] | None = None,
                  tries: int = 16) -> list[list[Span]]:
    """Best-fit decreasing; ties (equal lengths) keep the given document order, so the caller's keyed order
    decides them. Capacities live in a sorted list of distinct values (at most ``seq_len + 1``), so each
    placement is a bisection, not a scan over open sequences.

    Among equally full sequences the earliest opened wins. ``groups`` (one key per document, e.g. its id for
    up-sampled copies): pieces with the same key avoid sharing a sequence (the next-best of up to ``tries`` open
    sequences is taken instead), so the copies of a repeated document do not meet in one training row.
    """
    sequences, rest = _pieces(lengths, seq_len)
    rest.sort(key=lambda span: (-span[2], span[0]))
    caps: list[int] = []  # distinct remaining capacities of open sequences, ascending
    by_cap: dict[int, list[int]] = {}  # capacity -> heap of open sequence indices with it (lowest used first)
    members: list[set] = [set() for _ in sequences] if groups is not None else []
    for span in rest:
        n = span[2]
        group = groups[span[0]] if groups is not None else None
        chosen = None
        at = bisect.bisect_left(caps, n)
        checked = 0
        while at < len(caps) and checked < tries and chosen is None:
            bins = by_cap[caps[at]]
            # the common case needs only the heap's top; a clash looks at the next few
            candidates = [bins[0]] if group is None or group not in members[bins[0]] else \
                heapq.nsmallest(tries - checked, bins)
            for index in candidates:
                checked += 1
                if group is None or group not in members[index]:
                    chosen = (at, index)
                    break
            at += 1
        if chosen is not None:
            at, index = chosen
            cap = caps[at]
            bins = by_cap[cap]
            if bins[0] == index:
                heapq.heappop(bins)
            else:
                bins.remove(index)
                heapq.heapify(bins)
            if not bins:
                del by_cap[cap]
                del caps[at]
        else:
            cap, index = seq_len, len(sequences)
            sequences.append([])
            if groups is not None:
                members.append(set())
        sequences[index].append(span)
        if groups is not None:
            members[index].add(group)
        left = cap - n
        if left > 0:
            if left not in by_cap:
                bisect.insort(caps, left)
                by_cap[left] = []
            heapq.heappush(by_cap[left], index)
    return sequences


def pack(lengths: Sequence[int], seq_len: int, policy: str = "best_fit", *, long_context_share: float = 0.0,
         ranks: Sequence[int] | None = None, groups: Sequence[Hashable] | None = None) -> PackResult:
    """Packs documents of ``lengths`` (in the caller's deterministic order) into ``seq_len`` sequences.

    ``ranks`` (one per document, default: its position) orders which short-only sequences a long-context share
    keeps: a sequence's rank is the smallest rank of its documents. ``groups``: see ``pack_best_fit``.
    """
    if policy == "greedy":
        sequences = pack_greedy(lengths, seq_len)
    elif policy == "best_fit":
        sequences = pack_best_fit(lengths, seq_len, groups)
    else:
        raise ValueError(f"unknown packing policy {policy!r}; expected one of {POLICIES}")
    result = PackResult(seq_len, sequences, docs=sum(1 for n in lengths if n > 0))
    long_flags = [any(s[2] > LONG_FRACTION * seq_len for s in seq) for seq in sequences]
    result.long_sequences = sum(long_flags)
    if long_context_share > 0 and sequences:
        n_long = result.long_sequences
        short = [i for i, flag in enumerate(long_flags) if not flag]
        # the most short sequences that keep long / total >= share
        allowed = int(n_long * (1 - long_context_share) / long_context_share + 1e-9)
        if len(short) > allowed:
            rank_of = (lambda d: ranks[d]) if ranks is not None else (lambda d: d)
            short.sort(key=lambda i: (min(rank_of(s[0]) for s in sequences[i]), i))
            drop = set(short[allowed:])
            for i in drop:
                result.left_out_tokens += sum(s[2] for s in sequences[i])
                result.left_out_spans += len(sequences[i])
            result.left_out_sequences = len(drop)
            result.sequences = sequences = [seq for i, seq in enumerate(sequences) if i not in drop]
    pieces: dict[int, int] = {}
    for seq in sequences:
        for doc, _, n in seq:
            pieces[doc] = pieces.get(doc, 0) + 1
            result.tokens += n
    result.split_docs = sum(1 for count in pieces.values() if count > 1)
    return result


def spans_array(sequences: list[list[Span]]) -> np.ndarray:
    """``int64 [n_spans, 5]``: (sequence, start in sequence, length, doc index, offset in doc), by sequence."""
    rows = []
    for s, seq in enumerate(sequences):
        start = 0
        for doc, offset, n in seq:
            rows.append((s, start, n, doc, offset))
            start += n
    return np.asarray(rows, dtype=np.int64).reshape(-1, 5)


def fill_sequences(tokens: Sequence[np.ndarray], spans: np.ndarray, n_sequences: int, seq_len: int,
                   pad_id: int, dtype: Any = np.int32) -> np.ndarray:
    """The ``[n_sequences, seq_len]`` token matrix: each span's tokens copied into place, padding elsewhere."""
    out = np.full((n_sequences, seq_len), pad_id, dtype=dtype)
    flat = out.reshape(-1)
    for seq, start, n, doc, offset in spans.tolist():
        at = seq * seq_len + start
        flat[at:at + n] = tokens[doc][offset:offset + n]
    return out


def segment_ids(spans: np.ndarray, n_sequences: int, seq_len: int) -> np.ndarray:
    """``int32 [n_sequences, seq_len]``: 1, 2, ... for the documents of each sequence in order, 0 for padding
    (equal ids may attend to each other: a per-document attention mask)."""
    out = np.zeros((n_sequences, seq_len), dtype=np.int32)
    if len(spans):
        index = np.arange(len(spans))
        first = np.r_[True, spans[1:, 0] != spans[:-1, 0]]  # the first span of each sequence
        ordinal = index - np.maximum.accumulate(np.where(first, index, 0)) + 1
    else:
        ordinal = np.zeros(0, dtype=np.int64)
    for (seq, start, n), k in zip(spans[:, :3].tolist(), ordinal.tolist()):
        out[seq, start:start + n] = k
    return out


def position_ids(spans: np.ndarray, n_sequences: int, seq_len: int) -> np.ndarray:
    """``int32 [n_sequences, seq_len]``: positions restarting at 0 at every document start (and in padding)."""
    out = np.zeros((n_sequences, seq_len), dtype=np.int32)
    for seq, start, n in spans[:, :3].tolist():
        out[seq, start:start + n] = np.arange(n, dtype=np.int32)
    return out


def stage_share(seq_lens: Sequence[int], seq_len: int, long_context_share: float) -> float:
    """The long-context share that applies to ``seq_len``: none for the first (base) stage."""
    return 0.0 if seq_len == seq_lens[0] else long_context_share

