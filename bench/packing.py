"""Packing policies on the bundled sample (real Qwen2.5 token counts) and a long-tailed synthetic corpus.

Prints padding waste and split documents per policy and sequence length, and the speed of qurate's best-fit
(bisection over distinct capacities) against a plain best-fit that scans every open sequence, run side by side
on the same lengths.

    .venv/bin/python bench/packing.py
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np
from qurate.hashing import stable_hash
from qurate.pipelines.packing import pack
from qurate.tokenizer import load_tokenizer

SAMPLE = Path(__file__).resolve().parents[1] / "pipelines" / "data" / "sample_corpus.jsonl.gz"


def sample_lengths() -> list[int]:
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()]
    docs.sort(key=lambda d: stable_hash("order", d["id"], 0, 0))  # the export's keyed order
    ids = load_tokenizer("qwen2.5").encode_batch([d["text"] for d in docs])
    return [len(t) + 1 for t in ids]  # + EOS


def plain_best_fit(lengths: list[int], seq_len: int) -> int:
    """Best-fit decreasing that scans all open sequences per piece; returns the sequence count."""
    rest = []
    full = 0
    for n in lengths:
        while n > seq_len:
            full += 1
            n -= seq_len
        if n:
            rest.append(n)
    rest.sort(reverse=True)
    room: list[int] = []
    for n in rest:
        best = -1
        for i, r in enumerate(room):
            if r >= n and (best < 0 or r < room[best]):
                best = i
        if best < 0:
            room.append(seq_len - n)
        else:
            room[best] -= n
    return full + len(room)


def table(name: str, lengths: list[int]) -> None:
    print(f"\n{name}: {len(lengths):,} docs, {sum(lengths):,} tokens, median {int(np.median(lengths))}, "
          f"max {max(lengths):,}")
    print(f"{'seq_len':>8} {'policy':>9} {'sequences':>10} {'padding':>9} {'split docs':>11}")
    for seq_len in (4096, 32768):
        for policy in ("greedy", "best_fit"):
            r = pack(lengths, seq_len, policy)
            print(f"{seq_len:>8} {policy:>9} {len(r.sequences):>10,} {100 * r.padding / (len(r.sequences) * seq_len):>8.2f}%"
                  f" {r.split_docs:>11,}")


def main() -> None:
    table("bundled sample (Qwen2.5 tokens + EOS)", sample_lengths())
    rng = np.random.default_rng(0)
    synthetic = [int(x) for x in np.clip(rng.lognormal(6.5, 1.2, 50_000), 8, 200_000)]
    table("synthetic log-normal lengths", synthetic)
    print("\nbest-fit speed, same lengths, same machine (sequence counts must match):")
    for n in (5_000, 20_000):
        lengths = synthetic[:n]
        t0 = time.perf_counter()
        ours = len(pack(lengths, 4096, "best_fit").sequences)
        t1 = time.perf_counter()
        plain = plain_best_fit(lengths, 4096)
        t2 = time.perf_counter()
        assert ours == plain, (ours, plain)
        print(f"  {n:>6,} docs: qurate {t1 - t0:.3f} s, plain scan {t2 - t1:.3f} s, ratio {(t2 - t1) / (t1 - t0):.1f}x")


if __name__ == "__main__":
    main()
