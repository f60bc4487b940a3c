"""Peak memory of the domains stage's workers on the bundled sample and on a corpus 10x larger.

The rebalancing graph must not pull the corpus into one worker: its combiners hold one token count and one
fixed-size histogram per key, its side input one plan per key. This runs ``qurate run --stages domains`` on the
DirectRunner in multi-processing mode (2 worker processes) over the sample (N docs) and over the sample copied 10
times with new ids (10 N docs), each run in a fresh subprocess, and reports the peak resident memory of the
largest worker process (``RUSAGE_CHILDREN`` of the process that runs the pipeline: its workers are its children)
and of the launcher itself (where the DirectRunner keeps the data between steps; a cluster runner does not).

    python bench/domains_scaling.py [--stages heuristics] [--checkpoints on --workers 1]

``--checkpoints on --workers 1``: the run as a chain of jobs in-process (the launcher is the only worker), where
the domains stage runs in two passes (``pipelines/two_pass.py``) and no step holds the docs.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))  # after the standard library: bench_common only
from bench_common import TreePeak  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"

CHILD = r"""
import json, resource, sys
from qurate.pipelines.cli import main
workers = int(sys.argv[5])
runner = ["--direct_num_workers", str(workers), "--direct_running_mode", "multi_processing"] if workers > 1 else []
code = main(["run", "--input", sys.argv[1], "--output", sys.argv[2], "--stages", sys.argv[3],
             "--set", f"output.checkpoints={sys.argv[4]}", *runner])
print(json.dumps({"code": code,
                  "workers_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "launcher_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_corpus(path: Path, copies: int) -> int:
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()]
    with open(path, "w", encoding="utf-8") as out:
        for c in range(copies):
            for d in docs:
                out.write(json.dumps({**d, "id": f"{d['id']}#{c}"}, ensure_ascii=False) + "\n")
    return len(docs) * copies


def _stage_peaks(out: Path, samples: list[tuple[float, int]]) -> dict[str, float]:
    """With checkpoints on: the process tree's peak MB while each stage's jobs ran (from its manifest's time)."""
    peaks = {}
    for path in sorted((out / "_stages").glob("*/manifest.json")):
        manifest = json.loads(path.read_text())
        end = path.stat().st_mtime
        start = end - manifest.get("seconds", 0)
        peaks[manifest["stage"]] = max((kib for t, kib in samples if start <= t <= end), default=0) / 1024
    return peaks


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", default="domains", help="stage list to run (e.g. heuristics: a baseline that "
                        "holds nothing per key, to tell the runner's own growth from the stage's)")
    parser.add_argument("--checkpoints", choices=("auto", "on", "off"), default="auto",
                        help="on: a chain of jobs, the domains stage in two passes (plan, then decide over the "
                             "staged docs)")
    parser.add_argument("--workers", type=int, default=2, help="1: in-process (the launcher is the worker)")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for copies in (1, 10):
            corpus = Path(tmp) / f"corpus_x{copies}.jsonl"
            n = make_corpus(corpus, copies)
            started = time.monotonic()
            out_dir = Path(tmp) / f"out{copies}"
            proc = subprocess.Popen([sys.executable, "-c", CHILD, str(corpus), str(out_dir), args.stages,
                                     args.checkpoints, str(args.workers)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            peak = TreePeak(proc.pid)
            stdout, stderr = proc.communicate()
            peak.stop()
            out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
            seconds = time.monotonic() - started
            if out.returncode:
                sys.exit(f"run x{copies} failed: {out.stderr[-2000:]}")
            res = json.loads(out.stdout.strip().splitlines()[-1])
            res.update(docs=n, seconds=seconds, stage_peaks=_stage_peaks(out_dir, peak.samples))
            results.append(res)
            print(f"{args.stages} (checkpoints {args.checkpoints}, workers {args.workers}): x{copies:<3} {n:>7,} docs  {seconds:>6.0f} s  largest worker peak {res['workers_peak_mb']:>6.0f} MB  "
                  f"launcher peak {res['launcher_peak_mb']:>6.0f} MB", flush=True)
    a, b = results
    for stage, mb in a["stage_peaks"].items():  # a chain: each stage's own jobs (the launcher is the worker)
        print(f"{stage} jobs (process tree while they ran): x1 {mb:.0f} MB, x10 {b['stage_peaks'][stage]:.0f} MB "
              f"({100 * (b['stage_peaks'][stage] / mb - 1):+.1f} %)")
    if not a["workers_peak_mb"]:
        return
    print(f"10x corpus: largest worker peak {100 * (b['workers_peak_mb'] / a['workers_peak_mb'] - 1):+.1f} %, "
          f"launcher {100 * (b['launcher_peak_mb'] / a['launcher_peak_mb'] - 1):+.1f} %")


if __name__ == "__main__":
    main()
