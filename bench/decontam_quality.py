# ruff: noqa: E402  (sys.path is fixed before the imports; see below)
"""Decontamination quality and speed: qurate's Qwen2.5 rule vs datatrove's NGramsDecontFilter, side by side.

Benchmark items (all bundled benchmarks) are planted into clean real documents in four ways:

- ``verbatim``: the item inserted at a line boundary of a host document;
- ``reformatted``: the same, with the choices relabelled (``A.`` -> ``(1)``/``a)``/``1.``, the answer line too),
  line breaks replaced (spaces or blank lines), the case changed (upper/lower/title) and spaces jittered
  (doubled, tabs);
- ``partial``: a contiguous slice holding >= 70 % of the item's words and >= 70 % of its (normalized) tokens;
- ``surrounded``: the item in the middle of a paragraph, glued with spaces between text of two other documents.

Recall is the share of plants flagged (per benchmark and per kind); the false-positive rate is the share of the
untouched corpus flagged. Both tools load every bundled benchmark and see the same documents in one process.

datatrove builds its index with ``NGramsDecontIndexer``, which needs ``lighteval`` and the Hugging Face hub to
fetch tasks; offline we feed it the same bundled items instead: its own ``compute_hashes`` (spaCy word tokens
after ``simplify_text``) on each item's whole text, written as ``<benchmark>.index.hashes`` files exactly as
the indexer writes them, then loaded by ``NGramsDecontFilter``. It uses n = 13 here, like qurate (its default
is 12). Needs ``spacy`` (datatrove's English word tokenizer): ``pip install 'spacy>=3.8,<3.9'``.

    python bench/decontam_quality.py [--per-benchmark 30] [--corpus PATH] [--seed 0]
"""

from __future__ import annotations

import os
import sys

# Running this file puts bench/ first on sys.path, where bench/tokenize.py would shadow the standard library's
# tokenize module (imported by linecache, inspect, pydantic); drop that entry before anything imports it.
sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != os.path.dirname(os.path.realpath(__file__))]

import argparse
import gzip
import json
import random
import re
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPUS = Path("/work/shared/data/corpus_sample.jsonl")
BUNDLED_CORPUS = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"
KINDS = ("verbatim", "reformatted", "partial", "surrounded")
_CHOICE = re.compile(r"^([A-H])\. ", re.M)
_ANSWER = re.compile(r"(Answer: )([A-H])\.")


def load_corpus(path: Path | None) -> list[dict]:
    path = path or (SHARED_CORPUS if SHARED_CORPUS.is_file() else BUNDLED_CORPUS)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()]
    print(f"corpus: {path} ({len(docs):,} docs)")
    return docs


# ---------------------------------------------------------------------------------------------------- plants


def reformat(text: str, rng: random.Random) -> str:
    style = rng.choice(["({n})", "{a})", "{n}."])

    def label(letter: str) -> str:
        i = ord(letter) - ord("A")
        return style.format(n=i + 1, a=chr(ord("a") + i))

    text = _CHOICE.sub(lambda m: label(m.group(1)) + " ", text)
    text = _ANSWER.sub(lambda m: m.group(1) + label(m.group(2)), text)
    text = rng.choice([" ", "\n\n", " \n "]).join(text.split("\n"))
    text = rng.choice([str.upper, str.lower, str.title])(text)
    return "".join(w + rng.choice([" ", "  ", "\t", " "]) for w in text.split(" ")).rstrip()


def partial(text: str, rng: random.Random, n_tokens) -> str:
    pieces = re.findall(r"\S+\s*", text)
    total = n_tokens(text)
    k = max(1, int(np.ceil(0.7 * len(pieces))))
    while True:
        start = rng.randrange(0, len(pieces) - k + 1)
        out = "".join(pieces[start:start + k]).strip()
        if n_tokens(out) >= 0.7 * total or k == len(pieces):
            return out
        k += 1


def insert_at_line(host: str, item: str, rng: random.Random) -> str:
    cuts = [m.end() for m in re.finditer("\n", host)] or [len(host)]
    cut = rng.choice(cuts)
    return f"{host[:cut]}\n{item}\n{host[cut:]}"


def make_plants(items_by_bench: dict, corpus: list[dict], per_bench: int, seed: int, n_tokens) -> list[dict]:
    rng = random.Random(seed)
    plants = []
    for bench in sorted(items_by_bench):
        pool = [it for it in items_by_bench[bench] if n_tokens(it.text) >= 13]  # shorter items never match
        chosen = rng.sample(pool, min(per_bench, len(pool)))
        for kind in KINDS:
            for item in chosen:
                host = rng.choice(corpus)["text"]
                if kind == "verbatim":
                    text = insert_at_line(host, item.text, rng)
                elif kind == "reformatted":
                    text = insert_at_line(host, reformat(item.text, rng), rng)
                elif kind == "partial":
                    piece = partial(item.text, rng, n_tokens)
                    text = insert_at_line(host, piece, rng)
                else:
                    before = " ".join(rng.choice(corpus)["text"].split()[:120])
                    after = " ".join(rng.choice(corpus)["text"].split()[:120])
                    text = f"{before} {item.text} {after}"
                plants.append({"id": f"plant/{kind}/{item.benchmark}/{item.id}", "text": text, "kind": kind,
                               "benchmark": item.benchmark,
                               "below_floor": kind == "partial" and n_tokens(piece) < 13})
    return plants


# ---------------------------------------------------------------------------------------------------- tools


def run_qurate(docs: list[dict]):
    from qurate.decontam.config import DecontamConfig
    from qurate.decontam.stage import DecontamDecider
    from qurate.verdicts import Reject

    decider = DecontamDecider(DecontamConfig(cache_dir=""), "qwen2.5")  # no disk cache: time a cold build
    started = time.perf_counter()
    decider.setup()
    build_s = time.perf_counter() - started
    index = decider.detector.index
    flagged = {}
    started = time.perf_counter()
    for i in range(0, len(docs), 64):  # the stage's batch size
        batch = docs[i:i + 64]
        for doc, verdict in zip(batch, decider.decide_batch(batch)):
            if isinstance(verdict, Reject):
                flagged[doc["id"]] = verdict.reason
    seconds = time.perf_counter() - started
    return {"flagged": flagged, "seconds": seconds, "build_s": build_s, "memory": index.nbytes,
            "ngrams": len(index.keys), "items": len(index)}, decider


def _str_hash(func):
    """datatrove 0.10.1 hashes ``str`` n-grams with xxhash, which rejects ``str`` since xxhash 4: encode first
    (what xxhash 3 did inside), so datatrove runs unchanged otherwise."""
    def hash_str(text: str) -> int:
        return func(text.encode("utf-8"))
    return hash_str


def run_datatrove(items: list, docs: list[dict]):
    from datatrove.data import Document
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.utils.hashing import create_hash_func
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    config = NGramsDecontConfig(n_grams=13)
    folder = tempfile.mkdtemp(prefix="dt_decont_")
    # The indexer class needs lighteval to be instantiated; its hashing method does not: run it on a shim.
    hash_func = _str_hash(create_hash_func(config.hash_config))
    shim = SimpleNamespace(tokenizer=load_word_tokenizer("en"), config=config, hash_func=hash_func)
    started = time.perf_counter()
    hashes = defaultdict(set)
    for item in items:
        hashes[item.benchmark].update(NGramsDecontIndexer.compute_hashes(shim, item.text))
    for task, values in hashes.items():
        np.array(sorted(values), dtype=config.hash_config.np_descr).tofile(f"{folder}/{task}.index.hashes")
    filt = NGramsDecontFilter(index_folder=folder, config=config)
    filt.hash_func = hash_func
    tracemalloc.start()
    filt.load_index_hashes()
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    build_s = time.perf_counter() - started
    flagged = {}
    started = time.perf_counter()
    for doc in docs:
        document = Document(text=doc["text"], id=doc["id"])
        if filt.filter(document) is not True:
            flagged[doc["id"]] = f"{document.metadata.get('contaminated_task')}: {document.metadata.get('contaminated_ngram')}"
    seconds = time.perf_counter() - started
    return {"flagged": flagged, "seconds": seconds, "build_s": build_s, "memory": memory,
            "ngrams": len(filt._index_hashes), "items": len(items)}


# ---------------------------------------------------------------------------------------------------- report


def recall_table(plants: list[dict], flagged: dict) -> dict:
    table = defaultdict(lambda: [0, 0])
    for p in plants:
        for key in ((p["benchmark"], p["kind"]), ("ALL", p["kind"]), (p["benchmark"], "all"), ("ALL", "all")):
            table[key][0] += p["id"] in flagged
            table[key][1] += 1
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-benchmark", type=int, default=30, help="items planted per benchmark and kind")
    parser.add_argument("--corpus", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-datatrove", action="store_true")
    args = parser.parse_args(argv)

    from qurate.decontam.config import DecontamConfig
    from qurate.decontam.sources import iter_items

    corpus = load_corpus(args.corpus)
    items = list(iter_items(DecontamConfig()))
    by_bench = defaultdict(list)
    for item in items:
        by_bench[item.benchmark].append(item)

    q, decider = run_qurate([])  # build the index first (timed apart), then reuse it for the plants' slices
    def n_tokens(text: str) -> int:
        return len(decider.detector.tokens([text])[0])

    plants = make_plants(by_bench, corpus, args.per_benchmark, args.seed, n_tokens)
    clean = [{"id": f"clean/{i}", "text": d["text"]} for i, d in enumerate(corpus)]
    docs = clean + plants
    chars = sum(len(d["text"]) for d in docs)
    print(f"benchmarks: {len(by_bench)} ({len(items):,} items); plants: {len(plants):,} "
          f"({args.per_benchmark} items x {len(KINDS)} kinds x {len(by_bench)} benchmarks); "
          f"documents scanned: {len(docs):,} ({chars / 1e6:.1f} M chars)")

    cold_build_s = q["build_s"]
    q, _ = run_qurate(docs)
    q["build_s"] = cold_build_s
    results = {"qurate": q}
    if not args.skip_datatrove:
        results["datatrove"] = run_datatrove(items, docs)

    tables = {name: recall_table(plants, r["flagged"]) for name, r in results.items()}
    names = list(results)
    print("\nrecall per benchmark and kind (" + " | ".join(names) + ")")
    header = f"{'benchmark':<16}" + "".join(f"{k:>24}" for k in (*KINDS, "all"))
    print(header)
    for bench in [*sorted(by_bench), "ALL"]:
        cells = []
        for kind in (*KINDS, "all"):
            vals = []
            for name in names:
                hit, total = tables[name][(bench, kind)]
                vals.append(f"{hit / total:.3f}" if total else "-")
            cells.append(" | ".join(vals))
        print(f"{bench:<16}" + "".join(f"{c:>24}" for c in cells))

    floor = [p for p in plants if p["below_floor"]]
    print(f"\npartial plants under 13 tokens (70 % of a 13-18 token item; Qwen's |LCS| >= 13 cannot fire): "
          f"{len(floor)}; qurate flagged {sum(p['id'] in results['qurate']['flagged'] for p in floor)} of them")
    for name, r in results.items():
        missed = [p["id"] for p in plants if p["id"] not in r["flagged"]]
        print(f"  {name} missed {len(missed)} plant(s): {', '.join(missed[:8])}{' ...' if len(missed) > 8 else ''}")

    print("\nfalse positives on the untouched corpus")
    for name, r in results.items():
        fp = [d for d in clean if d["id"] in r["flagged"]]
        print(f"  {name:<10} {len(fp)} / {len(clean):,} clean docs = {len(fp) / len(clean):.4%}")
        for d in fp[:5]:
            print(f"      {d['id']}: {r['flagged'][d['id']][:160]}")

    print("\nspeed and memory (all bundled benchmarks loaded; one process, same documents)")
    for name, r in results.items():
        rate = len(docs) / r["seconds"]
        print(f"  {name:<10} {rate:8.1f} docs/s ({chars / r['seconds'] / 1e6:.2f} M chars/s, {r['seconds']:.1f} s); "
              f"index: {r['items']:,} items, {r['ngrams']:,} n-grams, {r['memory'] / 2**20:.1f} MB, "
              f"built in {r['build_s']:.1f} s")
    if "datatrove" in results:
        d = results["datatrove"]
        speedup = d["seconds"] / q["seconds"]
        q_rec = tables["qurate"][("ALL", "all")]
        d_rec = tables["datatrove"][("ALL", "all")]
        print(f"\nqurate vs datatrove: {speedup:.2f}x docs/s; recall {q_rec[0] / q_rec[1]:.3f} vs "
              f"{d_rec[0] / d_rec[1]:.3f}; index memory {q['memory'] / 2**20:.1f} MB vs {d['memory'] / 2**20:.1f} MB")
    q_tab = tables["qurate"]
    ok = (q_tab[("ALL", "verbatim")][0] == q_tab[("ALL", "verbatim")][1]
          and all(q_tab[("ALL", k)][0] >= 0.95 * q_tab[("ALL", k)][1] for k in ("reformatted", "partial"))
          and sum(d["id"] in q["flagged"] for d in clean) <= 0.001 * len(clean))
    print(f"acceptance (recall 1.0 verbatim, >= 0.95 reformatted/partial, FP <= 0.1 %): {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
