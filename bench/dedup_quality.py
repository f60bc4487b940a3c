"""Near-duplicate detection quality of the ``dedup`` stage on real near-duplicate families with hard negatives.

    .venv/bin/python -P bench/dedup_quality.py [--dedup '{"threshold": 0.7}'] [--sweep] [--no-peer]

The set is bench/data/dedup_eval.jsonl.gz (built by bench/make_dedup_eval.py; provenance and licences in
bench/data/dedup_eval.md): licence files of installed Python packages (one family per licence template: the same
text with different copyright lines and wording variants; BSD-2 vs BSD-3 are different families), successive
revisions of CPython's pydoc topics (3.8-3.13 and Debian's 3.11.2), and hard negatives: man-page translations and
same-site pages (shared menus and footers), each its own family.

The real stage runs on Beam's DirectRunner. Pairwise metrics: a predicted pair is two docs in the same output
cluster; a gold pair is two docs of the same family. Printed: precision / recall / F1 overall and per family
kind, the false merges by kind, the LSH S-curve (theory) next to the measured candidate rate by true shingle
Jaccard (all pairs with Jaccard >= 0.1), the S-curve the stage's own report draws from the run's stats, and the
same metrics for datasketch (MinHash over word 5-grams, MinHashLSH threshold 0.7, clusters = connected
components of the LSH candidates). ``--sweep`` runs the stage over a grid of thresholds and shingle sizes.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import apache_beam as beam
import numpy as np
from qurate.dedup import stage
from qurate.dedup.components import components_reference
from qurate.dedup.config import DedupConfig
from qurate.dedup.lsh import s_curve, share_band
from qurate.dedup.signatures import Signer
from qurate.pipelines.dedup_graph import build
from qurate.pipelines.runners import make_pipeline, pipeline_options
from qurate.spec import StageContext

DATA = Path(__file__).resolve().parent / "data" / "dedup_eval.jsonl.gz"
KINDS = ("licence", "revision", "translation", "same-site")


def load() -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


# ------------------------------------------------------------------------------------------------ stage

def run_stage(docs: list[dict], cfg: DedupConfig) -> tuple[dict[str, str], dict, float]:
    """Runs the dedup stage on DirectRunner: (doc id -> cluster id, summed stats, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        pipeline = make_pipeline(pipeline_options([]))
        result = (pipeline | beam.Create([{"id": d["id"], "text": d["text"]} for d in docs], reshuffle=False)
                  | build(cfg, StageContext()))
        for tag in ("kept", "rejected"):
            _ = (result[tag] | f"Json{tag}" >> beam.Map(lambda d: json.dumps([d["id"], d.get("dedup_cluster")]))
                 | f"Write{tag}" >> beam.io.WriteToText(f"{tmp}/{tag}"))
        _ = (result["stats"] | "JsonStats" >> beam.Map(json.dumps) | "WriteStats" >> beam.io.WriteToText(f"{tmp}/st"))
        pipeline.run().wait_until_finish()
        seconds = time.perf_counter() - start
        rows = [json.loads(line) for tag in ("kept", "rejected") for p in Path(tmp).glob(f"{tag}*") for line in p.open()]
        stats: dict = {}
        for p in Path(tmp).glob("st*"):
            for line in p.open():
                key, value = json.loads(line)
                slot = stats.setdefault(tuple(key), {})
                for name, number in value.items():
                    slot[name] = slot.get(name, 0) + number
    assert len(rows) == len(docs), "every doc ends kept or rejected"
    return {doc_id: cluster for doc_id, cluster in rows if cluster}, stats, seconds


def datasketch_clusters(docs: list[dict], threshold: float = 0.7, num_perm: int = 128) -> dict[str, str]:
    """The common recipe: datasketch MinHash over lowercased whitespace word 5-grams, MinHashLSH at ``threshold``,
    clusters = connected components of the LSH candidate pairs (no verification)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    edges = []
    for d in docs:
        words = d["text"].lower().split()
        grams = {" ".join(words[i: i + 5]) for i in range(max(1, len(words) - 4))}
        mh = MinHash(num_perm=num_perm)
        mh.update_batch([g.encode("utf-8") for g in grams])
        edges += [(d["id"], other) for other in lsh.query(mh)]
        lsh.insert(d["id"], mh)
    return components_reference(edges)


# --------------------------------------------------------------------------------------------- metrics

def pairs_of(clusters: dict[str, str]) -> set[tuple[str, str]]:
    members = defaultdict(list)
    for doc_id, cluster in clusters.items():
        members[cluster].append(doc_id)
    return {tuple(sorted(p)) for group in members.values() for p in itertools.combinations(group, 2)}


def prf(predicted: set, gold: set) -> tuple[float, float, float]:
    tp = len(predicted & gold)
    p = tp / len(predicted) if predicted else 1.0
    r = tp / len(gold) if gold else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def report_metrics(name: str, clusters: dict[str, str], docs: list[dict], gold: set) -> tuple[float, float, float]:
    by_id = {d["id"]: d for d in docs}
    predicted = pairs_of(clusters)
    p, r, f1 = prf(predicted, gold)
    print(f"\n{name}: precision {p:.4f}  recall {r:.4f}  F1 {f1:.4f}  "
          f"(predicted pairs {len(predicted)}, gold pairs {len(gold)})")
    for kind in KINDS:
        kind_gold = {pair for pair in gold if by_id[pair[0]]["kind"] == kind}
        kind_pred = {pair for pair in predicted if kind in (by_id[pair[0]]["kind"], by_id[pair[1]]["kind"])}
        kp, kr, kf = prf(kind_pred, kind_gold)
        wrong = len(kind_pred - gold)
        fams = len({by_id[pair[0]]["family"] for pair in kind_gold})
        if kind_gold:
            print(f"  {kind:12s} precision {kp:.4f}  recall {kr:.4f}  F1 {kf:.4f}  "
                  f"({len(kind_gold)} gold pairs in {fams} families; {wrong} false pairs touch it)")
        else:
            docs_merged = len({i for pair in kind_pred for i in pair if by_id[i]["kind"] == kind})
            n = sum(1 for d in docs if d["kind"] == kind)
            print(f"  {kind:12s} hard negatives: {wrong} false pairs, {docs_merged} of {n} docs merged with another")
    false = Counter(tuple(sorted((by_id[a]["family"], by_id[b]["family"]))) for a, b in predicted - gold)
    for (fa, fb), n in false.most_common(5):
        print(f"    false merge: {fa} ~ {fb}: {n} pairs")
    return p, r, f1


def true_pairs(docs: list[dict], signer: Signer) -> dict[tuple[str, str], float]:
    """Exact shingle Jaccard of every pair sharing a shingle and reaching 0.1 (plus every gold pair)."""
    sets = [frozenset(h.tolist()) for h in signer.shingles([d["text"] for d in docs], [None] * len(docs))]
    index = defaultdict(list)
    for i, s in enumerate(sets):
        for h in s:
            index[h].append(i)
    candidates = {(a, b) for posting in index.values() if len(posting) <= 200
                  for a, b in itertools.combinations(posting, 2)}
    candidates |= {(a, b) for a, b in itertools.combinations(range(len(docs)), 2)
                   if docs[a]["family"] == docs[b]["family"]}
    out = {}
    for a, b in candidates:
        j = len(sets[a] & sets[b]) / len(sets[a] | sets[b]) if sets[a] | sets[b] else 1.0
        if j >= 0.1 or docs[a]["family"] == docs[b]["family"]:
            out[tuple(sorted((docs[a]["id"], docs[b]["id"])))] = j
    return out


def s_curve_table(cfg: DedupConfig, docs: list[dict], signer: Signer, truth: dict, stats: dict) -> None:
    bands, rows = cfg.lsh()
    sigs = dict(zip([d["id"] for d in docs], signer.signatures([d["text"] for d in docs])))
    section = stage.report(stats, cfg)
    chart = section["charts"][0]
    theory_report = dict(zip(chart["x"], chart["series"]["theoretical P(candidate)"]))
    print(f"\nLSH S-curve, {bands} bands x {rows} rows: measured candidate rate by true shingle Jaccard (all pairs "
          f">= 0.1) vs theory; 'report' = the curve the stage's report draws at the bin centre")
    print(f"{'jaccard':>11} {'pairs':>6} {'measured':>9} {'theory':>7} {'report':>7}")
    edges = np.round(np.arange(0.1, 1.0001, 0.05), 2)
    worst = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = [p for p, j in truth.items() if lo <= j < hi or (hi == 1.0 and j == 1.0)]
        if not sel:
            continue
        measured = sum(share_band(sigs[a], sigs[b], bands, rows) for a, b in sel) / len(sel)
        theory = float(np.mean([s_curve(truth[p], bands, rows) for p in sel]))
        centre = round(lo + 0.025, 3)
        worst = max(worst, abs(measured - theory)) if len(sel) >= 30 else worst
        print(f"{lo:.2f}-{hi:.2f} {len(sel):6d} {measured:9.3f} {theory:7.3f} {theory_report.get(centre, float('nan')):7.3f}")
    print(f"largest |measured - theory| over bins with >= 30 pairs: {worst:.3f}")


def evaluate(cfg: DedupConfig, docs: list[dict], gold: set, peer: bool, curve: bool) -> tuple[float, float, float]:
    bands, rows = cfg.lsh()
    clusters, stats, seconds = run_stage(docs, cfg)
    print(f"\nqurate dedup: threshold {cfg.threshold}, word {cfg.word_ngram}-grams, {cfg.num_perm} perms, LSH {bands} "
          f"bands x {rows} rows, verification {'at ' + str(cfg.edge_threshold()) if cfg.verify else 'off'} "
          f"({seconds:.1f} s on DirectRunner)")
    result = report_metrics("qurate dedup", clusters, docs, gold)
    if curve:
        signer = Signer(cfg.num_perm, cfg.minhash_seed, cfg.shingle_spec())
        s_curve_table(cfg, docs, signer, true_pairs(docs, signer), stats)
    if peer:
        report_metrics("datasketch MinHash, word 5-grams, MinHashLSH threshold 0.7 (128 perms)",
                       datasketch_clusters(docs), docs, gold)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dedup", default="", help='dedup section overrides as JSON, e.g. {"threshold": 0.7}')
    parser.add_argument("--sweep", action="store_true", help="grid of thresholds and shingle sizes")
    parser.add_argument("--no-peer", action="store_true", help="skip datasketch")
    parser.add_argument("--ngrams", default="5,3", help="sweep: word n-gram sizes")
    parser.add_argument("--thresholds", default="0.7,0.74,0.76,0.78,0.8", help="sweep: Jaccard thresholds")
    args = parser.parse_args(argv)
    docs = load()
    kinds = Counter(d["kind"] for d in docs)
    print(f"{DATA.name}: {len(docs)} docs, " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    families = defaultdict(list)
    for d in docs:
        families[d["family"]].append(d["id"])
    gold = {tuple(sorted(p)) for ids in families.values() for p in itertools.combinations(ids, 2)}
    overrides = json.loads(args.dedup) if args.dedup else {}
    if not args.sweep:
        evaluate(DedupConfig(**overrides), docs, gold, peer=not args.no_peer, curve=True)
        return 0
    rows = []
    for ngram in (int(n) for n in args.ngrams.split(",")):
        for threshold in (float(t) for t in args.thresholds.split(",")):
            cfg = DedupConfig(**{"lsh_threshold": round(threshold - 0.1, 2), **overrides, "threshold": threshold,
                                 "word_ngram": ngram})
            rows.append((ngram, threshold, cfg.lsh(), evaluate(cfg, docs, gold, peer=False, curve=False)))
    print("\nngram threshold  bands x rows  precision recall  F1")
    for ngram, threshold, (b, r), (p, rec, f1) in rows:
        print(f"{ngram:5d} {threshold:9.2f} {b:6d} x {r:<4d} {p:9.4f} {rec:6.4f} {f1:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
