"""``qurate train-quality``: judge a sample with the LLM, train the distilled classifier, measure agreement.

    judge sample (or read earlier labels) ─▶ split by keyed hash ─▶ ridge per dimension ─▶ held-out
    Spearman per dimension + F1 of the keep decision ─▶ model .npz with its metadata (and the labels, JSONL)

The sample is the ``sample`` docs with the smallest keyed hash of (id, seed): the same on every rerun.
"""

from __future__ import annotations

import datetime
import gzip
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qurate.classifiers.distill import agreement, format_agreement, train, train_embedding, words_for_tokens
from qurate.classifiers.quality_config import QualityConfig
from qurate.hashing import stable_hash
from qurate.textlines import compression_of, decompressed, is_record, iter_lines

MIN_CHARS = 200  # shorter docs tell the judge little; the classifier still scores them in the stage


def _records(path: str) -> Iterator[dict[str, Any]]:
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
        return
    with open(path, "rb") as handle:  # qurate's one line reader: .gz/.zst/.bz2/.xz, a BOM, "\n" only
        for line in iter_lines(decompressed(handle, compression_of(path))):
            if is_record(line):
                yield json.loads(line)


def read_sample(paths: list[str], text_field: str, id_field: str | None, sample: int,
                seed: int) -> list[dict[str, str]]:
    """Up to ``sample`` docs (id, text) chosen by keyed hash, in hash order."""
    docs = []
    for path in paths:
        for position, rec in enumerate(_records(path)):
            text = rec.get(text_field)
            if not isinstance(text, str) or len(text) < MIN_CHARS:
                continue
            doc_id = str(rec.get(id_field)) if id_field and rec.get(id_field) is not None \
                else f"{Path(path).name}:{position}"
            docs.append({"id": doc_id, "text": text})
    docs.sort(key=lambda d: stable_hash(d["id"], seed))
    return docs[:sample]


CHUNK = 32  # docs judged between two appends to the labels file


def judge_docs(cfg: QualityConfig, docs: list[dict[str, str]], labels_out: str | None = None,
               judge_name: str = "") -> list[dict[str, float]]:
    """Judge scores per doc. With ``labels_out``, labels already there are reused (an interrupted run
    resumes) and new ones are appended chunk by chunk."""
    from qurate.classifiers.judge import Progress, make_judge

    done: dict[str, dict[str, float]] = {}
    if labels_out and Path(labels_out).exists():
        # split on "\n" only: str.splitlines also splits on U+2028, U+0085 ... which texts contain
        for line in Path(labels_out).read_text(encoding="utf-8").split("\n"):
            if line:
                row = json.loads(line)
                if row.get("judge") == judge_name:  # another judge's labels are not reused
                    done[row["id"]] = row["scores"]
    todo = [d for d in docs if d["id"] not in done]
    if todo:
        started = time.monotonic()
        judge = make_judge(cfg)
        print(f"qurate: judge {judge_name} loaded in {time.monotonic() - started:.1f} s; judging {len(todo)} "
              f"docs on {len(cfg.dimensions)} dimensions ({len(docs) - len(todo)} labels reused)",
              file=sys.stderr, flush=True)
        progress = Progress("judged", total=len(todo))
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            scores = judge.score_texts([d["text"] for d in chunk], progress)
            done.update((d["id"], s) for d, s in zip(chunk, scores))
            if labels_out:
                Path(labels_out).parent.mkdir(parents=True, exist_ok=True)
                with open(labels_out, "a", encoding="utf-8") as handle:
                    for doc, s in zip(chunk, scores):
                        handle.write(json.dumps({"id": doc["id"], "judge": judge_name, "scores": s,
                                                 "text": doc["text"]}, ensure_ascii=False) + "\n")
    return [done[d["id"]] for d in docs]


def split(docs: list[dict[str, Any]], heldout: float, seed: int) -> tuple[list[int], list[int]]:
    """Train / held-out indices by keyed hash (a salt distinct from the sampling hash)."""
    test = [i for i, d in enumerate(docs) if stable_hash(d["id"] + "#heldout", seed) / 2.0**64 < heldout]
    test_set = set(test)
    return [i for i in range(len(docs)) if i not in test_set], test


def run_training(cfg: QualityConfig, paths: list[str], out: str, *, text_field: str = "text",
                 id_field: str | None = "id", sample: int = 500, heldout: float = 0.2, seed: int = 0,
                 labels_in: str | None = None, labels_out: str | None = None, bits: int = 18,
                 l2: float = 1.0) -> dict[str, Any]:
    """The whole command; returns the saved model's metadata (with the agreement)."""
    names = [d.name for d in cfg.dimensions]
    if labels_in:
        opener = gzip.open if labels_in.endswith(".gz") else open
        with opener(labels_in, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        if rows and any("text" not in r for r in rows):  # labels saved without text: look it up in the input
            texts = {d["id"]: d["text"] for d in read_sample(paths, text_field, id_field, 10**12, seed)}
            missing = [r["id"] for r in rows if "text" not in r and r["id"] not in texts]
            if missing:
                raise ValueError(f"{len(missing)} labelled ids are not in the input (first: {missing[0]})")
            rows = [{**r, "text": r.get("text", texts.get(r["id"]))} for r in rows]
        # "n_words": the doc's full length when the labels file keeps only its head (the length feature)
        docs = [{"id": r["id"], "text": r["text"], **({"n_words": r["n_words"]} if "n_words" in r else {})}
                for r in rows]
        scores = [r["scores"] for r in rows]
        judge_name = rows[0].get("judge", "?") if rows else "?"
    else:
        docs = read_sample(paths, text_field, id_field, sample, seed)
        if len(docs) < 10:
            raise ValueError(f"only {len(docs)} docs of >= {MIN_CHARS} chars found in the input; need >= 10")
        judge_name = f"{cfg.judge.engine}:{cfg.judge.model}"
        started = time.monotonic()
        scores = judge_docs(cfg, docs, labels_out, judge_name)
        judge_s = time.monotonic() - started
        print(f"qurate: judged {len(docs)} docs in {judge_s:.1f} s ({len(docs) / judge_s:.2f} docs/s, model "
              "load included)", file=sys.stderr)
    labels = np.array([[s[n] for n in names] for s in scores], dtype=np.float64)
    train_idx, test_idx = split(docs, heldout, seed)
    if not test_idx or len(train_idx) < 5:
        raise ValueError(f"{len(docs)} docs give {len(train_idx)} train / {len(test_idx)} held-out; need more")
    started = time.monotonic()
    opts = cfg.train
    if opts.features == "minilm":
        def n_words(idx: list[int]) -> list[float] | None:
            given = [docs[i].get("n_words") for i in idx]
            return None if any(g is None for g in given) else [float(g) for g in given]

        model = train_embedding([docs[i]["text"] for i in train_idx], labels[train_idx], names, l2=opts.l2,
                                max_tokens=opts.max_tokens, length_scale=1.0 if opts.length_feature else 0.0,
                                n_words=n_words(train_idx))
        pred = model.predict([docs[i]["text"] for i in test_idx], n_words(test_idx))
        l2 = opts.l2
    else:
        model = train([docs[i]["text"] for i in train_idx], labels[train_idx], names, bits=bits, l2=l2,
                      max_words=words_for_tokens(cfg.judge.max_doc_tokens))
        pred = model.predict([docs[i]["text"] for i in test_idx])
    train_s = time.monotonic() - started
    agree = agreement(labels[test_idx], pred, names, [d.weight for d in cfg.dimensions], cfg.threshold)
    model.meta = {
        "judge": judge_name, "max_doc_tokens": cfg.judge.max_doc_tokens, "train_docs": len(train_idx),
        "heldout_docs": len(test_idx), "agreement": agree, "seed": seed, "l2": l2, "features": opts.features,
        "rubric": {d.name: d.description for d in cfg.dimensions},
        "label_means": {n: float(labels[:, k].mean()) for k, n in enumerate(names)},
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    path = model.save(out)
    print(f"qurate: trained on {len(train_idx)} docs in {train_s:.1f} s; held-out agreement with the judge "
          f"({len(test_idx)} docs):\n{format_agreement(agree)}\nqurate: classifier saved to {path} "
          f"({path.stat().st_size / 1024:.0f} KiB)")
    return model.meta
