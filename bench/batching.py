"""qurate's ``BatchingDoFn`` (batches inside a bundle) vs Beam's ``BatchElements`` + a per-batch ``ParDo``, side by
side on the same job: tokenizing every doc of the bundled sample with the mixture tokenizer (what ``WriteMixture``
does), in-process DirectRunner (FnApiRunner). Prints seconds per pass and the ratio; ids are checked identical.

    .venv/bin/python bench/batching.py [--repeats 3] [--copies 4] [--batch 256]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from qurate.pipelines.batching import BatchingDoFn
from qurate.pipelines.recipe import SAMPLE_CORPUS
from qurate.pipelines.runners import make_pipeline
from qurate.tokenizer import load_tokenizer


class _Ours(BatchingDoFn):
    def handle_batch(self, docs):
        tok = load_tokenizer("qwen2.5")
        for doc, ids in zip(docs, tok.encode_batch([d["text"] for d in docs])):
            yield doc["id"], len(ids), sum(ids) % 1_000_003


def _theirs(docs):
    tok = load_tokenizer("qwen2.5")
    for doc, ids in zip(docs, tok.encode_batch([d["text"] for d in docs])):
        yield doc["id"], len(ids), sum(ids) % 1_000_003


def _run(docs, kind: str, batch: int) -> tuple[float, list]:
    out_file = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    pipeline = make_pipeline(PipelineOptions([]))
    coll = pipeline | beam.Create(docs, reshuffle=False)
    if kind == "BatchingDoFn":
        out = coll | beam.ParDo(_Ours(batch))
    else:
        out = coll | beam.BatchElements(min_batch_size=batch, max_batch_size=batch) | beam.FlatMap(_theirs)
    _ = out | beam.combiners.ToList() | beam.Map(_save, out_file)  # the runner pickles closures: via a file
    started = time.perf_counter()
    pipeline.run().wait_until_finish()
    seconds = time.perf_counter() - started
    results = sorted(tuple(r) for r in json.loads(Path(out_file).read_text()))
    Path(out_file).unlink()
    return seconds, results


def _save(rows, path: str) -> None:
    Path(path).write_text(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--copies", type=int, default=4, help="the sample repeated (ids made unique)")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    with gzip.open(SAMPLE_CORPUS, "rt", encoding="utf-8") as handle:
        base = [json.loads(line) for line in handle]
    docs = [{"id": f"{c}:{d['id']}", "text": d["text"]} for c in range(args.copies) for d in base]
    load_tokenizer("qwen2.5")  # warm
    times: dict[str, list[float]] = {"BatchingDoFn": [], "BatchElements": []}
    outputs = {}
    for _ in range(args.repeats):  # alternate, so load on a shared box hits both alike
        for kind in times:
            seconds, outputs[kind] = _run(docs, kind, args.batch)
            times[kind].append(seconds)
    assert outputs["BatchingDoFn"] == outputs["BatchElements"], "different token ids"
    chars = sum(len(d["text"]) for d in docs)
    print(f"docs: {len(docs):,} ({chars / 1e6:.1f} M chars), batch {args.batch}, median of {args.repeats}; "
          f"outputs identical: {len(outputs['BatchingDoFn']):,} docs")
    ours, theirs = statistics.median(times["BatchingDoFn"]), statistics.median(times["BatchElements"])
    for kind, t in (("BatchingDoFn", ours), ("BatchElements", theirs)):
        print(f"{kind:<14} {t:7.2f} s  {len(docs) / t:8.0f} docs/s")
    print(f"BatchElements / BatchingDoFn time ratio: {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
