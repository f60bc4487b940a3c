"""Scaling check of the dedup stage: peak memory per worker on N synthesized documents with planted duplicates.

    .venv/bin/python -P bench/dedup_scaling.py --docs 10000
    .venv/bin/python -P bench/dedup_scaling.py --docs 100000

Documents are built from the corpus's lines (five random lines each, so texts are distinct), then 10 % get a
near copy (a few words changed) and 5 % an exact copy. The whole stage (signatures, exact groups, LSH buckets,
connected-components rounds, survivor joins) runs on the DirectRunner with two worker processes
(``--direct_running_mode multi_processing``). Printed: the peak RSS of the biggest worker process (where every
DoFn runs: this must not grow with the corpus) and of the runner process (the local runner keeps every
shuffled PCollection in its own memory, so it grows with the corpus; on Dataflow/Flink/Spark that is the
shuffle service's disk). ``--control`` runs the same data through a pass-through pipeline with one GroupByKey:
the local runner's own footprint, to compare with.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import apache_beam as beam
from qurate.dedup.config import DedupConfig
from qurate.pipelines.dedup_graph import build
from qurate.pipelines.runners import make_pipeline, pipeline_options
from qurate.spec import StageContext

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus_sample.jsonl"


def synthesize(n: int, seed: int = 0) -> list[dict]:
    from qurate.pipelines.recipe import SAMPLE_CORPUS

    path = SHARED if SHARED.exists() else SAMPLE_CORPUS
    import gzip

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = sorted({ln.strip() for rec in handle for ln in json.loads(rec)["text"].split("\n")
                        if len(ln.split()) >= 6})
    rng = random.Random(seed)
    base = int(n / 1.15)
    docs = [{"id": f"d{i:07d}", "text": "\n".join(rng.sample(lines, 5))} for i in range(base)]
    for i in range(n - base):
        src = docs[rng.randrange(base)]
        if i % 3 == 2:
            docs.append({"id": f"x{i:07d}", "text": src["text"]})
        else:
            words = src["text"].split(" ")
            words[rng.randrange(len(words))] = "changed"
            docs.append({"id": f"n{i:07d}", "text": " ".join(words)})
    return docs


class WorkerPeak:
    """Polls /proc for this process's Beam SDK worker processes and keeps the largest peak RSS (VmHWM) seen.

    (``getrusage(RUSAGE_CHILDREN)`` would not do: a child forked from the runner counts the runner's pages
    until it execs.)"""

    def __init__(self, interval: float = 0.2):
        self.interval, self.peak_kib, self.workers = interval, 0, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _ours(self, pid: str) -> bool:
        for _ in range(4):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            pid = stat.rsplit(")", 1)[1].split()[1]
            if int(pid) == os.getpid():
                return True
        return False

    def _sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if b"sdk_worker_main" not in (entry / "cmdline").read_bytes() or not self._ours(entry.name):
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                        self.workers.add(entry.name)
            except OSError:
                continue

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> WorkerPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--control", action="store_true",
                        help="run a pass-through pipeline instead of the stage (the runner's own footprint)")
    parser.add_argument("--dedup", default="", help="dedup section overrides as JSON")
    args = parser.parse_args(argv)
    docs = synthesize(args.docs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.jsonl"
        path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        del docs
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        options = pipeline_options(["--direct_num_workers", str(args.workers),
                                    "--direct_running_mode", "multi_processing"])
        pipeline = make_pipeline(options)
        docs_in = pipeline | beam.io.ReadFromText(str(path)) | beam.Map(json.loads)
        if args.control:  # same data through one shuffle and no dedup logic: what the runner itself costs
            passed = docs_in | beam.Map(lambda d: (d["id"], d)) | beam.GroupByKey() | beam.Values()
            result = {"kept": passed | "Flat" >> beam.FlatMap(lambda ds: ds), "rejected": pipeline | beam.Create([])}
        else:
            result = docs_in | build(DedupConfig(**json.loads(args.dedup or "{}")), StageContext())
        for tag in ("kept", "rejected"):
            _ = (result[tag] | f"Count{tag}" >> beam.combiners.Count.Globally()
                 | f"Write{tag}" >> beam.io.WriteToText(f"{tmp}/{tag}"))
        with WorkerPeak() as peak:
            pipeline.run().wait_until_finish()
        seconds = time.perf_counter() - start
        counts = {tag: int(next(Path(tmp).glob(f"{tag}*")).read_text()) for tag in ("kept", "rejected")}
    workers = peak.peak_kib / 1024
    runner = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'control (pass-through + GroupByKey)' if args.control else 'dedup stage'}, workers {args.workers}, "
          f"docs {args.docs:,}: kept {counts['kept']:,}, removed {counts['rejected']:,}, {seconds:.0f} s; "
          f"peak RSS: biggest of {len(peak.workers)} worker processes {workers:,.0f} MiB, runner process {runner:,.0f} MiB "
          f"(before the run {before / 1024:,.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
