"""Tokenizer throughput: qurate's Qwen2.5 tokenizer (tiktoken) against HF ``tokenizers`` on the same documents.

    .venv/bin/python bench/tokenize.py [--input JSONL[.gz]] [--threads N] [--repeats R]

Both run in this process on the same raw texts (each does its own NFC), and both return Python lists of ids.
Input: ``../shared/data/corpus_sample.jsonl`` when present, else the bundled sample (all documents).
Rows:
  batch      qurate ``encode_batch`` (tiktoken ``encode_ordinary_batch``, N threads) vs HF ``encode_batch``
             (rayon pool of N threads, set by RAYON_NUM_THREADS before ``tokenizers`` is imported)
  batch/1t   the same with qurate held to one thread (HF keeps its N)
  per-doc    one thread each: qurate ``encode`` vs HF ``encode``, document by document
Timings are the median of R timed passes (after one warm-up pass), the two tokenizers alternating.
"""

from __future__ import annotations

import sys

if __name__ == "tokenize":
    # This file is named like the stdlib's ``tokenize``: a script run from bench/ has bench/ first on sys.path,
    # so ``import tokenize`` (by inspect, linecache, pydantic) finds this file. Hand the importer the real module
    # (the import system returns whatever sys.modules holds once this file has run); nothing below has effects.
    import importlib.util
    import sysconfig

    _spec = importlib.util.spec_from_file_location("tokenize", f"{sysconfig.get_paths()['stdlib']}/tokenize.py")
    _stdlib_tokenize = importlib.util.module_from_spec(_spec)
    sys.modules["tokenize"] = _stdlib_tokenize
    _spec.loader.exec_module(_stdlib_tokenize)

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

_HERE = Path(__file__).resolve().parent

REPO = _HERE.parent
CANDIDATE_INPUTS = (REPO.parent / "shared" / "data" / "corpus_sample.jsonl",
                    REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz")


def read_texts(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [t for line in handle if line.strip() and isinstance(t := json.loads(line).get("text"), str)]


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=next((p for p in CANDIDATE_INPUTS if p.exists()), None))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    # rayon sizes HF's pool once, on first use: set it before tokenizers is imported.
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    import tiktoken
    import tokenizers
    from qurate.tokenizer import QwenTiktoken, qwen_tokenizer_json

    texts = read_texts(args.input)
    megabytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
    ours_n, ours_1 = QwenTiktoken(num_threads=args.threads), QwenTiktoken(num_threads=1)
    hf = tokenizers.Tokenizer.from_file(str(qwen_tokenizer_json()))

    def hf_batch():
        return [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]

    def hf_each():
        return [hf.encode(t, add_special_tokens=False).ids for t in texts]

    def ours_each():
        return [ours_1.encode(t) for t in texts]

    reference = hf_batch()
    ours = ours_n.encode_batch(texts)
    same = sum(a == b for a, b in zip(ours, reference))
    n_tokens = sum(map(len, reference))

    rows = (("batch", lambda: ours_n.encode_batch(texts), hf_batch, args.threads, args.threads),
            ("batch/1t", lambda: ours_1.encode_batch(texts), hf_batch, 1, args.threads),
            ("per-doc", ours_each, hf_each, 1, 1))
    print(f"input: {args.input} ({len(texts):,} docs, {megabytes:.2f} MB UTF-8, {n_tokens:,} tokens)")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}")
    print(f"ids identical to HF encode_batch: {same:,}/{len(texts):,} docs")
    print(f"median of {args.repeats} passes after a warm-up; threads = (qurate, HF)")
    print(f"{'mode':<9} {'threads':>8} {'qurate docs/s':>14} {'MB/s':>7} {'HF docs/s':>10} {'MB/s':>7} {'ratio':>7}")
    for name, ours_fn, hf_fn, ours_threads, hf_threads in rows:
        ours_fn(), hf_fn()  # warm-up
        t_ours, t_hf = [], []
        for _ in range(args.repeats):  # alternate, so load from other processes hits both alike
            t_ours.append(seconds(ours_fn))
            t_hf.append(seconds(hf_fn))
        ours_s, hf_s = statistics.median(t_ours), statistics.median(t_hf)
        print(f"{name:<9} {f'{ours_threads},{hf_threads}':>8} {len(texts) / ours_s:>14,.0f} {megabytes / ours_s:>7.2f} "
              f"{len(texts) / hf_s:>10,.0f} {megabytes / hf_s:>7.2f} {hf_s / ours_s:>6.2f}x")
    return 0 if same == len(texts) else 1


if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # see the top of the file
    sys.exit(main())
