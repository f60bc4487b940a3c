"""``qurate train-domains``: label a sample with a teacher (embedding or judge), distil a fast student from it,
measure held-out agreement with the teacher, save the student with its metadata.

    sample by keyed hash (+ further windows of each doc) ─▶ teacher probabilities (or saved labels) ─▶ split by
    keyed hash of the doc id ─▶ student ─▶ held-out top-1 / top-3 agreement on the held-out docs' heads vs the
    teacher and vs always answering the majority label ─▶ OUT.json (metadata) + the student's files (+ the
    teacher's labels as JSONL)

Students (``--student``):
- ``static`` (default): the teacher encoder's static token vectors, mean-pooled, with a softmax head fitted to the
  teacher's soft labels, folded into one per-token logit table (``domain_static.py``); OUT.static.npz +
  OUT.tokenizer.json.gz, a few MB; thousands of docs/s per core, numpy and tokenizers only at run time.
- ``fasttext``: two fastText softmax models trained on the teacher's top-1 labels; OUT.topic.ftz + OUT.format.ftz.

WebOrganizer's recipe (an expensive labeller on a sample, a cheap classifier over the corpus). ``--windows N``
also labels the next N windows of ``max_chars`` characters of every sampled doc (ids ``ID#w1`` ...): more teacher
labels per teacher-read doc budget; held-out agreement is measured on the heads of held-out docs only, and a
held-out doc's windows are never trained on.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from qurate.classifiers.domain_classifiers import FASTTEXT_FORMAT, fasttext_line
from qurate.classifiers.domains import DomainsConfig, load_classifier
from qurate.classifiers.train_quality import read_sample
from qurate.hashing import stable_hash

MAX_CHARS = 1500
FASTTEXT_PARAMS = {"lr": 0.2, "epoch": 25, "wordNgrams": 2, "dim": 32, "minCount": 1, "bucket": 100_000,
                   "loss": "softmax", "thread": 1, "seed": 0}
STATIC_L2 = 3e-4  # L2 on the standardised head's weights: flat from 1e-4 to 1e-3 on a held-out split
WINDOW = "#w"  # ID#wK: the K-th further window of MAX_CHARS characters of doc ID


def base_id(row_id: str) -> str:
    return row_id.split(WINDOW, 1)[0]


def with_windows(docs: list[dict[str, str]], windows: int, min_chars: int = 300) -> list[dict[str, str]]:
    """Each doc's head, then up to ``windows`` further windows (text from K * MAX_CHARS on) of >= min_chars."""
    out = list(docs)
    for k in range(1, windows + 1):
        out += [{"id": f"{d['id']}{WINDOW}{k}", "text": d["text"][k * MAX_CHARS:]} for d in docs
                if len(d["text"][k * MAX_CHARS:].strip()) >= min_chars]
    return out


def window_text(texts: dict[str, str], row_id: str) -> str | None:
    """The text of a labelled row id (a doc id or ID#wK) from the docs' texts."""
    doc, _, k = row_id.partition(WINDOW)
    text = texts.get(doc)
    if text is None or not k:
        return text
    return text[int(k) * MAX_CHARS:]


def split_docs(rows: list[dict[str, Any]], heldout: float, seed: int) -> tuple[list[int], list[int]]:
    """(train rows, held-out heads): by keyed hash of the doc id, so a held-out doc's windows are not trained on;
    agreement is measured on heads, what the stage classifies."""
    held = [stable_hash(base_id(r["id"]) + "#heldout", seed) / 2.0**64 < heldout for r in rows]
    return ([i for i, h in enumerate(held) if not h],
            [i for i, (r, h) in enumerate(zip(rows, held)) if h and WINDOW not in r["id"]])


def teacher_labels(cfg: DomainsConfig, docs: list[dict[str, str]], labels_out: str | None,
                   batch: int = 32) -> list[dict[str, Any]]:
    """Teacher probabilities per doc (``{"topic": [...], "format": [...]}``), appended to ``labels_out`` batch by
    batch; labels already there (same teacher) are reused, so an interrupted run resumes."""
    name = teacher_name(cfg)
    done: dict[str, dict[str, Any]] = {}
    if labels_out and Path(labels_out).exists():
        for line in Path(labels_out).read_text(encoding="utf-8").split("\n"):
            if line:
                row = json.loads(line)
                if row.get("teacher") == name:
                    done[row["id"]] = row
    todo = [d for d in docs if d["id"] not in done]
    if todo:
        started = time.monotonic()
        model = load_classifier(cfg)
        print(f"qurate: teacher {name} loaded in {time.monotonic() - started:.1f} s; labelling {len(todo)} docs "
              f"({len(docs) - len(todo)} labels reused)", file=sys.stderr, flush=True)
        started = time.monotonic()
        for i in range(0, len(todo), batch):
            chunk = todo[i:i + batch]
            tp, fp = model.probabilities([d["text"] for d in chunk])
            rows = [{"id": d["id"], "teacher": name, "topic": [round(float(x), 5) for x in t],
                     "format": [round(float(x), 5) for x in f], "text": d["text"]}
                    for d, t, f in zip(chunk, tp, fp)]
            done.update((r["id"], r) for r in rows)
            if labels_out:
                Path(labels_out).parent.mkdir(parents=True, exist_ok=True)
                with open(labels_out, "a", encoding="utf-8") as handle:
                    handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            rate = (i + len(chunk)) / max(time.monotonic() - started, 1e-9)
            print(f"  labelled {i + len(chunk)}/{len(todo)} ({rate:.1f} docs/s)", file=sys.stderr, flush=True)
    return [done[d["id"]] for d in docs]


def teacher_name(cfg: DomainsConfig) -> str:
    c = cfg.classifier
    if c.kind == "embedding":
        return f"embedding:{c.embedding_model}:T={c.temperature}"
    return f"judge:{c.judge.model}"


def _train_axis(texts: list[str], labels: list[str], out: Path, params: dict[str, Any], quantize: bool) -> Any:
    import fasttext

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as handle:
        for text, label in zip(texts, labels):
            handle.write(f"__label__{label} {fasttext_line(text, MAX_CHARS)}\n")
        train_file = handle.name
    try:
        lr = params["lr"]
        for attempt in range(4):
            try:
                model = fasttext.train_supervised(input=train_file, verbose=0, **{**params, "lr": lr})
                break
            except RuntimeError as err:  # fastText's SGD can diverge on small label sets: retry gentler
                if "NaN" not in str(err) or attempt == 3:
                    raise
                lr /= 2
        if quantize:  # product quantization: a model 10x smaller; costs minutes of k-means at training time
            model.quantize(input=train_file, qnorm=True, retrain=True, cutoff=50_000, verbose=0)
    finally:
        Path(train_file).unlink(missing_ok=True)
    model.save_model(str(out))
    return model


def agreement(teacher: np.ndarray, student: np.ndarray) -> dict[str, float]:
    """Top-1 agreement, the teacher's label in the student's top 3, and the majority-label baseline."""
    t1 = teacher.argmax(1)
    s_top3 = np.argsort(-student, axis=1)[:, :3]
    majority = Counter(t1.tolist()).most_common(1)[0][1] / len(t1) if len(t1) else 0.0
    return {"top1": float((student.argmax(1) == t1).mean()), "top3": float((s_top3 == t1[:, None]).any(1).mean()),
            "majority": float(majority), "docs": int(len(t1))}


def _train_static(texts: list[str], tprob: np.ndarray, fprob: np.ndarray, out_path: Path,
                  encoder: str) -> dict[str, Any]:
    from qurate.classifiers.domain_classifiers import minilm_dir
    from qurate.classifiers.domain_static import (
        MAX_TOKENS,
        STATIC_FORMAT,
        save_static,
        static_vectors,
        train_static,
    )

    enc_dir = minilm_dir() if encoder == "minilm" else Path(encoder)
    tokenizer_json = enc_dir / "tokenizer.json"
    if not tokenizer_json.exists():
        raise ValueError(f"--encoder {encoder}: no tokenizer.json in {enc_dir} (a fast HF tokenizer is needed)")
    vectors = static_vectors(enc_dir)
    table, bias = train_static(vectors, tokenizer_json, texts, tprob, fprob, MAX_CHARS, STATIC_L2)
    files = save_static(out_path, table, bias, tokenizer_json)
    return {"format": STATIC_FORMAT, "files": files, "max_tokens": MAX_TOKENS, "encoder": encoder,
            "static": {"vectors": "encoder output at the token's position for [CLS] t [SEP]", "l2": STATIC_L2,
                       "vocab": int(table.shape[0])}}


def _train_fasttext(texts: list[str], tprob: np.ndarray, fprob: np.ndarray, topics: list[str],
                    formats: list[str], out_path: Path, quantize: bool) -> dict[str, Any]:
    ext = ".ftz" if quantize else ".bin"
    files = {"topic": out_path.with_suffix(".topic" + ext).name, "format": out_path.with_suffix(".format" + ext).name}
    for axis, probs, names in (("topic", tprob, topics), ("format", fprob, formats)):
        _train_axis(texts, [names[int(p.argmax())] for p in probs], out_path.parent / files[axis],
                    FASTTEXT_PARAMS, quantize)
    return {"format": FASTTEXT_FORMAT, "files": files, "fasttext": FASTTEXT_PARAMS}


def run_training(cfg: DomainsConfig, paths: list[str], out: str, *, text_field: str = "text",
                 id_field: str | None = "id", sample: int = 3000, heldout: float = 0.2, seed: int = 0,
                 labels_in: str | list[str] | None = None, labels_out: str | None = None, quantize: bool = True,
                 student: str = "static", windows: int = 0, encoder: str = "minilm") -> dict[str, Any]:
    """The whole command; returns the saved metadata (with the agreement)."""
    from qurate.classifiers.domain_classifiers import load_distilled

    topics, formats = cfg.topic_names(), cfg.format_names()
    if labels_in:
        rows = []
        for labels_path in [labels_in] if isinstance(labels_in, str) else labels_in:
            opener = gzip.open if labels_path.endswith(".gz") else open
            with opener(labels_path, "rt", encoding="utf-8") as handle:
                rows += [json.loads(line) for line in handle if line.strip()]
        names = {r.get("teacher", "?") for r in rows}
        if len(names) > 1:
            raise ValueError(f"the labels come from several teachers: {sorted(names)}")
        name = names.pop() if names else "?"
        if any("text" not in r for r in rows):  # labels shipped without text: look it up in the input by id
            texts = {d["id"]: d["text"] for d in read_sample(paths, text_field, id_field, 10**12, seed)}
            rows = [{**r, "text": r["text"] if "text" in r else window_text(texts, r["id"])} for r in rows]
            missing = [r["id"] for r in rows if r["text"] is None]
            if missing:
                raise ValueError(f"{len(missing)} labelled ids are not in the input (first: {missing[0]})")
    else:
        if cfg.classifier.kind == "distilled":
            raise ValueError("the teacher is domains.classifier: set its kind to embedding or judge "
                             "(e.g. --set domains.classifier.kind=embedding)")
        docs = read_sample(paths, text_field, id_field, sample, seed)
        if len(docs) < 20:
            raise ValueError(f"only {len(docs)} usable docs in the input; need >= 20")
        rows = teacher_labels(cfg, with_windows(docs, windows), labels_out)
        name = teacher_name(cfg)
    if any(len(r["topic"]) != len(topics) or len(r["format"]) != len(formats) for r in rows):
        raise ValueError("the labels were made for another taxonomy (probability vectors of the wrong length)")
    tprob = np.array([r["topic"] for r in rows], dtype=np.float64)
    fprob = np.array([r["format"] for r in rows], dtype=np.float64)
    texts = [r["text"] for r in rows]
    train_idx, test_idx = split_docs(rows, heldout, seed)
    if not test_idx or len(train_idx) < 10:
        raise ValueError(f"{len(rows)} docs give {len(train_idx)} train / {len(test_idx)} held-out; need more")
    out_path = Path(out)
    if out_path.suffix != ".json":
        out_path = out_path.with_suffix(".json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    train_texts = [texts[i] for i in train_idx]
    if student == "static":
        meta = _train_static(train_texts, tprob[train_idx], fprob[train_idx], out_path, encoder)
    elif student == "fasttext":
        meta = _train_fasttext(train_texts, tprob[train_idx], fprob[train_idx], topics, formats, out_path,
                               quantize)
    else:
        raise ValueError(f"--student {student!r}: static or fasttext")
    train_s = time.monotonic() - started
    meta.update({
        "topics": topics, "formats": formats, "max_chars": MAX_CHARS,
        "teacher": name, "train_docs": len(train_idx), "heldout_docs": len(test_idx), "seed": seed,
        "teacher_label_counts": {
            "topic": dict(Counter(topics[int(i)] for i in tprob.argmax(1)).most_common()),
            "format": dict(Counter(formats[int(i)] for i in fprob.argmax(1)).most_common())},
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    files = meta["files"]
    out_path.write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
    sp_t, sp_f = load_distilled(out_path).probabilities([texts[i] for i in test_idx])
    meta["agreement"] = {"topic": agreement(tprob[test_idx], sp_t), "format": agreement(fprob[test_idx], sp_f)}
    out_path.write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
    size = sum((out_path.parent / f).stat().st_size for f in files.values())
    lines = [f"qurate: {student} student trained on {len(train_idx)} texts in {train_s:.1f} s; held-out "
             f"agreement with {name} ({len(test_idx)} docs):"]
    for axis, a in meta["agreement"].items():
        lines.append(f"  {axis:<7} top-1 {100 * a['top1']:.1f}%  teacher label in top 3 {100 * a['top3']:.1f}%  "
                     f"(majority label alone: {100 * a['majority']:.1f}%)")
    lines.append(f"qurate: classifier saved to {out_path} (+ {', '.join(files.values())}; {size / 1024:.0f} KiB)")
    print("\n".join(lines))
    return meta


def _recipe_section(path: str | None, sets: list[str]) -> tuple[DomainsConfig, int]:
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) if path else {}
    data = data or {}
    section = dict(data.get("domains") or {})
    for item in sets:
        dotted, _, raw = item.partition("=")
        parts = dotted.split(".")
        if parts[0] != "domains" or len(parts) < 2:
            raise ValueError(f"--set {item}: only domains.* keys apply here")
        node = section
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return DomainsConfig.model_validate(section), int(data.get("seed", 0))


def main(argv: list[str] | None = None) -> int:
    """``qurate train-domains RECIPE --input FILE --out MODEL.json [...]``; exit 0, or 2 on a usage error."""
    parser = argparse.ArgumentParser(prog="qurate train-domains",
                                     description="label a sample with the recipe's domains.classifier (embedding "
                                                 "or judge) and distil a fast classifier from it")
    parser.add_argument("recipe", nargs="?", help="recipe YAML (its domains section and seed)")
    parser.add_argument("--input", action="append", default=[], help="JSONL(.gz) or Parquet file(s)")
    parser.add_argument("--set", action="append", default=[], help="domains.KEY=VALUE override (YAML value)")
    parser.add_argument("--out", required=True, help="model metadata path (.json; the .ftz files go beside it)")
    parser.add_argument("--sample", type=int, default=3000, help="docs to label (default 3000)")
    parser.add_argument("--heldout", type=float, default=0.2, help="held-out fraction for agreement")
    parser.add_argument("--text-field", default="text")
    parser.add_argument("--id-field", default="id")
    parser.add_argument("--labels-out", help="also save the teacher's labels (JSONL; reused on a rerun)")
    parser.add_argument("--labels-in", action="append", default=[],
                        help="train from saved labels instead of running the teacher (repeatable)")
    parser.add_argument("--student", choices=("static", "fasttext"), default="static",
                        help="static: the encoder's static token vectors + a softmax head (default); fasttext")
    parser.add_argument("--encoder", default="minilm",
                        help="static student: the encoder whose token vectors it uses (minilm or an HF directory)")
    parser.add_argument("--windows", type=int, default=0,
                        help="also label the next N windows of 1,500 characters of each sampled doc")
    parser.add_argument("--no-quantize", action="store_true", help="fasttext: skip quantization (faster, larger)")
    args = parser.parse_args(argv)
    try:
        cfg, seed = _recipe_section(args.recipe, args.set)
        if not args.input and not args.labels_in:
            raise ValueError("give --input (the docs to label) or --labels-in")
        run_training(cfg, args.input, args.out, text_field=args.text_field, id_field=args.id_field,
                     sample=args.sample, heldout=args.heldout, seed=seed, labels_in=args.labels_in or None,
                     labels_out=args.labels_out, quantize=not args.no_quantize, student=args.student,
                     windows=args.windows, encoder=args.encoder)
    except (ValueError, FileNotFoundError) as err:
        print(f"qurate: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
