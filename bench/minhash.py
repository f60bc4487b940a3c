"""MinHash signature throughput (docs/s on one core, shingling included), qurate vs its peers, same docs.

    .venv/bin/python -P bench/minhash.py [--docs 3000] [--num-perm 112]

Contenders, run one after another in this process on the same documents (the first ``--docs`` of
../shared/data/corpus_sample.jsonl, the bundled sample when absent):

- qurate ``Signer.signatures`` (batches of 128): numpy tokenizer + token hashes, n-grams combined in numpy,
  datasketch's permutations applied to all shingles of the batch at once;
- datatrove ``MinhashDedupSignature``: ``get_signature(get_shingles(text))`` (its stage minus file writes);
- datasketch, naive: ``MinHash().update`` per word 5-gram (SHA-1);
- datasketch ``update_batch`` with an xxh32 ``hashfunc``;
- plain Python word 5-gram shingling alone (split + join), the wall any per-shingle Python loop hits.

The slow contenders run once on a prefix of the docs (``--slow-docs``) so the benchmark stays short; the others
report the best of 3 passes. docs/s is per doc either way; the process is pinned to one core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import xxhash  # noqa: E402
from datasketch import MinHash  # noqa: E402
from qurate.dedup.signatures import Signer  # noqa: E402
from qurate.pipelines.recipe import SAMPLE_CORPUS  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus_sample.jsonl"


def load_texts(n: int) -> list[str]:
    import gzip

    path = SHARED if SHARED.exists() else SAMPLE_CORPUS
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line, _ in zip(handle, range(n))]
    print(f"{len(texts):,} docs from {path}, {sum(map(len, texts)) / len(texts):,.0f} chars on average")
    return texts


def word_shingles(text: str, n: int = 5) -> list[str]:
    words = text.lower().split()
    return [" ".join(words[i: i + n]) for i in range(max(1, len(words) - n + 1))]


def timed(fn: Callable[[list[str]], object], texts: list[str], repeat: int = 1) -> float:
    """docs/s of ``fn`` over ``texts`` (best of ``repeat``)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--slow-docs", type=int, default=400)
    parser.add_argument("--num-perm", type=int, default=112)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):  # numpy's elementwise ops are single-threaded anyway
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    texts = load_texts(args.docs)
    slow = texts[: args.slow_docs]
    perms = args.num_perm

    def qurate(num_perm: int):
        def run(batch: list[str]) -> None:
            signer = Signer(num_perm=num_perm, seed=1)
            for i in range(0, len(batch), 128):
                signer.signatures(batch[i: i + 128])
        return run

    def naive(batch: list[str]) -> None:
        for text in batch:
            m = MinHash(num_perm=perms)
            for shingle in word_shingles(text):
                m.update(shingle.encode("utf-8"))

    def update_batch_xxh(batch: list[str]) -> None:
        for text in batch:
            m = MinHash(num_perm=perms, hashfunc=xxhash.xxh32_intdigest)
            m.update_batch([s.encode("utf-8") for s in word_shingles(text)])

    def shingling_only(batch: list[str]) -> None:
        for text in batch:
            word_shingles(text)

    with tempfile.TemporaryDirectory() as tmp:
        from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

        rows, bands = 8, perms // 8
        datatrove = MinhashDedupSignature(output_folder=tmp, config=MinhashConfig(num_buckets=bands,
                                                                                 hashes_per_bucket=rows))
        # datatrove 0.10.1 passes str to xxhash, which the installed xxhash rejects: encode first (same hash).
        hash_str = datatrove._hash_func
        datatrove._hash_func = lambda text: hash_str(text.encode("utf-8"))

        def datatrove_sig(batch: list[str]) -> None:
            for text in batch:
                datatrove.get_signature(datatrove.get_shingles(text))

        qurate(perms)(texts[:200])  # warm-up: word-character table, permutation parameters
        results = [
            (f"qurate Signer ({perms} perms)", timed(qurate(perms), texts, repeat=3), len(texts)),
            ("qurate Signer (256 perms, the stage default)", timed(qurate(256), texts, repeat=3), len(texts)),
            (f"datatrove MinhashDedupSignature ({bands}x{rows})", timed(datatrove_sig, slow), len(slow)),
            ("datasketch naive (MinHash.update per shingle, SHA-1)", timed(naive, slow), len(slow)),
            ("datasketch update_batch + xxh32 hashfunc", timed(update_batch_xxh, texts[:1000], repeat=3), 1000),
            ("Python word-5 shingling alone (no hashing)", timed(shingling_only, texts, repeat=3), len(texts)),
        ]
    base = results[0][1]
    print(f"\n{'contender':56s} {'docs':>6s} {'docs/s/core':>12s} {'qurate is':>10s}")
    for name, rate, n in results:
        print(f"{name:56s} {n:6d} {rate:12,.0f} {base / rate:9.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
