"""Near-duplicate detection quality of the ``dedup`` stage on controlled near-duplicates of real documents.

    .venv/bin/python bench/dedup_quality.py [--bases 400] [--corpus PATH] [--skip-natural]

Base documents come from ../shared/data/corpus_sample.jsonl (the bundled sample when absent). Bases with a
natural near-duplicate among themselves are dropped, then each base gets variants at known edit rates (word
substitutions, word deletions, inserted boilerplate lines, reordered paragraphs, case/whitespace changes). The
true Jaccard of every pair is computed exactly on the stage's own shingles (word 5-grams / char 5-grams). The
real stage runs on Beam's DirectRunner; a pair is detected when both docs end in the same cluster.

Prints: detection rate per true-Jaccard bin next to the theoretical S-curve of the chosen (bands, rows) (and the
rate of pairs that LSH made candidates directly), precision / recall / F1 over pairs at the default threshold,
and the natural duplicates the stage finds in the whole shared corpus.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import apache_beam as beam
import numpy as np
from qurate.dedup.components import components_reference
from qurate.dedup.minhash import Signer, s_curve, share_band
from qurate.pipelines.recipe import SAMPLE_CORPUS, parse_recipe
from qurate.pipelines.runners import make_pipeline, pipeline_options
from qurate.pipelines.stage_dedup import build
from qurate.pipelines.write import stable_hash

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus_sample.jsonl"
BOILERPLATE = [
    "We use cookies to improve your experience. By continuing to browse you agree to our use of cookies.",
    "Subscribe to our newsletter and never miss an update!",
    "Copyright (c) 2024 All rights reserved. Terms of use | Privacy policy | Contact us",
    "Share this article: Facebook Twitter LinkedIn Email Print",
    "Skip to main content. Menu. Search. Login. Register.",
    "Related posts you might also like",
]


def load_corpus(path: Path | None) -> list[dict]:
    path = path or (SHARED if SHARED.exists() else SAMPLE_CORPUS)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()]
    print(f"corpus: {path} ({len(docs):,} docs)")
    return [{"id": d["id"], "text": d["text"], "source": d.get("source", "")} for d in docs]


# ----------------------------------------------------------------------------------------------- variants

def substitute(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    words = text.split(" ")
    return " ".join(rng.choice(vocab) if rng.random() < rate else w for w in words)


def delete(text: str, rate: float, rng: random.Random) -> str:
    return " ".join(w for w in text.split(" ") if rng.random() >= rate)


def boilerplate(text: str, lines: int, rng: random.Random) -> str:
    out = text.split("\n")
    for _ in range(lines):
        out.insert(rng.randrange(len(out) + 1), rng.choice(BOILERPLATE))
    return "\n".join(out)


def reorder(text: str, swaps: int, rng: random.Random) -> str:
    paras = text.split("\n")
    for _ in range(swaps):
        i, j = rng.randrange(len(paras)), rng.randrange(len(paras))
        paras[i], paras[j] = paras[j], paras[i]
    return "\n".join(paras)


def case_space(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    return "  ".join(w.upper() if rng.random() < 0.2 else w for w in words).replace("\n", " \n\n ")


def make_variants(base: dict, rng: random.Random, vocab: list[str]) -> list[tuple[str, str]]:
    """(kind, text) variants of one base at random known edit rates."""
    text = base["text"]
    lines = max(1, text.count("\n"))
    return [
        (f"substitute {r:.2f}", substitute(text, r, rng, vocab)) for r in (rng.uniform(0.0, 0.08),)
    ] + [
        (f"delete {r:.2f}", delete(text, r, rng)) for r in (rng.uniform(0.0, 0.10),)
    ] + [
        (f"boilerplate {k}", boilerplate(text, k, rng)) for k in (rng.randint(1, max(2, lines // 3)),)
    ] + [
        (f"reorder {k}", reorder(text, k, rng)) for k in (rng.randint(1, max(2, lines // 2)),)
    ] + [("case+whitespace", case_space(text, rng))]


# -------------------------------------------------------------------------------------------------- truth

def prf(predicted: set, truth: set) -> tuple[float, float, float]:
    tp = len(predicted & truth)
    p = tp / len(predicted) if predicted else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def shingle_sets(signer: Signer, texts: list[str]) -> list[set[int]]:
    return [set(h.tolist()) for h in signer.shingles(texts, [None] * len(texts))]


def true_jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def pick_bases(docs: list[dict], n: int, signer: Signer, min_words: int = 80) -> list[dict]:
    """``n`` bases (stable order by hash) without a natural near-duplicate (true Jaccard >= 0.3) among them."""
    pool = sorted((d for d in docs if len(d["text"].split()) >= min_words), key=lambda d: stable_hash(d["id"], 7))
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=0.3, num_perm=signer.num_perm)
    chosen, sets = [], []
    for start in range(0, len(pool), 256):
        batch = pool[start: start + 256]
        sigs = signer.signatures([d["text"] for d in batch])
        for doc, sig, sh in zip(batch, sigs, shingle_sets(signer, [d["text"] for d in batch])):
            mh = signer.to_lean_minhash(sig)
            if any(true_jaccard(sh, sets[i]) >= 0.3 for i in lsh.query(mh)):
                continue
            lsh.insert(len(chosen), mh)
            chosen.append(doc)
            sets.append(sh)
            if len(chosen) == n:
                return chosen
    return chosen


# --------------------------------------------------------------------------------------------- run stage

def run_stage(docs: list[dict], overrides: dict | None = None) -> tuple[dict[str, str], list[dict], float]:
    """Runs the dedup stage on DirectRunner; returns (doc id -> cluster id, rejected docs, seconds)."""
    recipe = parse_recipe({"dedup": overrides or {}})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        pipeline = make_pipeline(pipeline_options([]))
        result = pipeline | beam.Create(docs, reshuffle=False) | build(recipe)
        for tag in ("kept", "rejected"):
            _ = (result[tag] | f"Json{tag}" >> beam.Map(
                lambda d: json.dumps({"id": d["id"], "cluster": d.get("dedup_cluster"), "reason": d.get("reason")}))
                | f"Write{tag}" >> beam.io.WriteToText(f"{tmp}/{tag}"))
        pipeline.run().wait_until_finish()
        seconds = time.perf_counter() - start
        rows = {tag: [json.loads(line) for p in Path(tmp).glob(f"{tag}*") for line in p.open()]
                for tag in ("kept", "rejected")}
    clusters = {r["id"]: r["cluster"] for tag in rows for r in rows[tag] if r["cluster"]}
    return clusters, rows["rejected"], seconds


# ------------------------------------------------------------------------------------------------- report

def evaluate(args: argparse.Namespace) -> None:
    corpus = load_corpus(args.corpus)
    overrides = json.loads(args.dedup) if args.dedup else {}
    cfg = parse_recipe({"dedup": overrides}).dedup
    bands, rows = cfg.lsh()
    signer = Signer(cfg.num_perm, cfg.minhash_seed, cfg.shingle_spec())
    rng = random.Random(args.seed)
    bases = pick_bases(corpus, args.bases, signer)
    vocab = sorted({w for d in bases[:50] for w in d["text"].split()})
    docs, family = [], {}
    for b_index, base in enumerate(bases):
        docs.append({"id": f"b{b_index}", "text": base["text"], "source": base["source"]})
        family[f"b{b_index}"] = b_index
        for v_index, (kind, text) in enumerate(make_variants(base, rng, vocab)):
            doc_id = f"b{b_index}.v{v_index}"
            docs.append({"id": doc_id, "text": text, "source": kind})
            family[doc_id] = b_index
    by_id = {d["id"]: d for d in docs}
    ids = [d["id"] for d in docs]
    sets = dict(zip(ids, shingle_sets(signer, [d["text"] for d in docs])))
    sigs = dict(zip(ids, signer.signatures([d["text"] for d in docs])))
    print(f"{len(bases)} bases (no natural near-duplicate among them) + {len(docs) - len(bases)} variants; "
          f"threshold {cfg.threshold}, LSH {bands} bands x {rows} rows of {cfg.num_perm} perms, "
          f"verification {'at ' + str(cfg.edge_threshold()) if cfg.verify else 'off'}")

    clusters, rejected, seconds = run_stage(docs, overrides)
    print(f"stage run: {seconds:.1f} s on DirectRunner for {len(docs):,} docs; {len(rejected)} removed")
    members = defaultdict(list)
    for doc_id, cluster in clusters.items():
        members[cluster].append(doc_id)

    def same(a: str, b: str) -> bool:
        return clusters.get(a) is not None and clusters.get(a) == clusters.get(b)

    # Truth: every within-family pair (exact Jaccard), plus any predicted cross-family pair (also exact).
    pairs: dict[tuple[str, str], float] = {}
    by_family = defaultdict(list)
    for doc_id in ids:
        by_family[family[doc_id]].append(doc_id)
    for group in by_family.values():
        for a, b in itertools.combinations(group, 2):
            pairs[(a, b)] = true_jaccard(sets[a], sets[b])
    predicted = set()
    for group in members.values():
        for a, b in itertools.combinations(sorted(group), 2):
            key = (a, b) if (a, b) in pairs else (b, a) if (b, a) in pairs else (a, b)
            if key not in pairs:
                pairs[key] = true_jaccard(sets[a], sets[b])
            predicted.add(key)
    t = cfg.threshold
    # Gold clusters: connected components of the pairs whose true Jaccard >= t (dedup clusters transitively,
    # so the gold standard is closed the same way); plus the strict per-pair view.
    gold = components_reference([p for p, j in pairs.items() if j >= t])
    gold_pairs = set()
    gold_members = defaultdict(list)
    for doc_id, root in gold.items():
        gold_members[root].append(doc_id)
    for group in gold_members.values():
        for a, b in itertools.combinations(sorted(group), 2):
            gold_pairs.add((a, b) if (a, b) in pairs else (b, a))
    precision, recall, f1 = prf(predicted, gold_pairs)
    strict = prf(predicted, {p for p, j in pairs.items() if j >= t})
    cross = sum(1 for a, b in predicted if family[a] != family[b])
    removed = {r["id"] for r in rejected}
    should = sum(len(g) - 1 for g in gold_members.values())
    right = sum(1 for r in rejected if gold.get(r["id"]) is not None and gold.get(r["id"]) == gold.get(
        clusters[r["id"]]))
    doc_p, doc_r = right / len(removed) if removed else 1.0, right / should if should else 1.0

    print("\nDetection by true shingle Jaccard (pairs within a family: base-variant and variant-variant)")
    print(f"{'jaccard':>11} {'pairs':>6} {'clustered':>10} {'LSH candidate':>14} {'S-curve':>8}")
    edges = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = [p for p, j in pairs.items()
               if family[p[0]] == family[p[1]] and (lo <= j < hi or (hi == 1.0 and j == 1.0))]
        if not sel:
            continue
        clustered = sum(same(a, b) for a, b in sel) / len(sel)
        direct = sum(share_band(sigs[a], sigs[b], bands, rows) for a, b in sel) / len(sel)
        mean_j = float(np.mean([pairs[p] for p in sel]))
        print(f"{lo:.2f}-{hi:.2f} {len(sel):6d} {clustered:10.3f} {direct:14.3f} "
              f"{float(s_curve(mean_j, bands, rows)):8.3f}")
    print(f"\nAt threshold {t} (gold clusters = connected components of true Jaccard >= {t} pairs):")
    print(f"  pairs in the same cluster:  precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}  "
          f"(predicted {len(predicted)}, gold {len(gold_pairs)}; {cross} predicted pairs across families)")
    print(f"  removed docs:               precision {doc_p:.4f}  recall {doc_r:.4f}  "
          f"F1 {2 * doc_p * doc_r / (doc_p + doc_r) if doc_p + doc_r else 0:.4f}  "
          f"(removed {len(removed)}, should remove {should}, right {right})")
    print(f"  strict (every same-cluster pair must itself have Jaccard >= {t}): precision {strict[0]:.4f}  "
          f"recall {strict[1]:.4f}  F1 {strict[2]:.4f}")
    kinds = defaultdict(lambda: [0, 0])
    for doc_id in ids:
        if "." in doc_id and pairs.get((f"b{family[doc_id]}", doc_id), 0) >= t:
            kind = by_id[doc_id]["source"].split()[0]
            kinds[kind][0] += 1
            kinds[kind][1] += same(f"b{family[doc_id]}", doc_id)
    print("recall of base-variant pairs with true Jaccard >= threshold, by edit kind: " + ", ".join(
        f"{k} {v[1]}/{v[0]}" for k, v in sorted(kinds.items())))

    if not args.skip_natural:
        natural(corpus, overrides)


def natural(corpus: list[dict], overrides: dict) -> None:
    """The natural duplicates of the whole corpus, by source."""
    clusters, rejected, seconds = run_stage(corpus, overrides)
    source = {d["id"]: d["source"] for d in corpus}
    print(f"\nNatural duplicates in the corpus ({len(corpus):,} docs, stage run {seconds:.1f} s): "
          f"{sum(r['reason'].startswith('exact') for r in rejected)} exact and "
          f"{sum(r['reason'].startswith('near') for r in rejected)} near duplicates removed, "
          f"{len(set(clusters.values()))} clusters")
    by_source = Counter((source[r["id"]].split("/")[0] + "/" + source[r["id"]].split("/")[-1].split("-")[0],
                         r["reason"].split(":")[0]) for r in rejected)
    for (src, rule), n in sorted(by_source.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {src:32s} {rule:16s} {n:5d}")
    sizes = Counter()
    for cluster in clusters.values():
        sizes[cluster] += 1
    top = sizes.most_common(3)
    print("  largest clusters: " + "; ".join(f"{n} docs around {c}" for c, n in top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bases", type=int, default=400)
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-natural", action="store_true")
    parser.add_argument("--dedup", default="", help='recipe dedup section overrides as JSON, e.g. {"num_perm": 256}')
    evaluate(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
