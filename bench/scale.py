"""Scale: the full default pipeline on an N-document corpus, with stage checkpoints on (a chain of one Beam job
per stage) and off (one job), side by side; prints wall time, docs/s, peak memory of the whole process tree and,
with checkpoints on, each stage's wall time (from its checkpoint manifest). CPU seconds (user + system of the
whole process tree) are less disturbed by other load on a shared machine than wall time.

    .venv/bin/python bench/scale.py [--docs 10000 30000] [--repeat 1] [--workers 1] [--keep DIR] [--modes on off]

The corpus: the shared sample (``../shared/data/corpus_sample.jsonl``, the bundled sample when absent), then exact
and near copies of its docs (seeded: one in three exact, the others with one word changed) up to N, as JSON lines
in 4 files. Modes alternate per repeat (the machine is shared). Peak memory is the largest sum of the resident
sets of the run's process tree, polled from /proc every 0.5 s. Medians over repeats; peak memory: the largest.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's when bench/ is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # after the standard library: bench_common only
from bench_common import REPO, TreePeak, iter_corpus_docs  # noqa: E402

QURATE = Path(sys.executable).with_name("qurate")
PARTS = 4


def build_corpus(n: int, folder: Path, seed: int = 0) -> float:
    """``n`` docs (``bench_common.iter_corpus_docs``, streamed) in ``PARTS`` JSONL files; text MB. Built once per
    folder (a marker file holds its size)."""
    done = folder / "_built"
    if done.exists():
        return float(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    outs = [open(folder / f"part{p}.jsonl", "w", encoding="utf-8") for p in range(PARTS)]
    size = 0
    try:
        for i, doc in enumerate(iter_corpus_docs(n, seed)):
            outs[i % PARTS].write(json.dumps(doc, ensure_ascii=False) + "\n")
            size += len(doc["text"].encode("utf-8"))
    finally:
        for out in outs:
            out.close()
    done.write_text(str(size / 1e6))
    return size / 1e6


def run(corpus: Path, out: Path, checkpoints: str, workers: int) -> tuple[float, float, float, list]:
    """(wall s, CPU s of the process tree, peak GB, RSS samples) of one run."""
    cmd = [str(QURATE), "run", "--input", str(corpus), "--output", str(out), "--overwrite",
           "--set", f"output.checkpoints={checkpoints}", "--set", "health.max_dead_letter_share=1"]
    if workers > 1:
        cmd += ["--direct_num_workers", str(workers), "--direct_running_mode", "multi_processing"]
    with tempfile.TemporaryFile("w+") as log:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        peak = TreePeak(proc.pid)
        code = proc.wait()
        seconds, gb = time.perf_counter() - started, peak.stop()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # every waited-for process below this one
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if code:
            log.seek(0)
            sys.exit(f"failed ({code}): {' '.join(cmd)}\n{log.read()[-3000:]}")
    return seconds, cpu, gb, peak.samples


def stage_seconds(out: Path, samples: list[tuple[float, int]]) -> str:
    """Each stage's wall seconds (its checkpoint manifest) and the process tree's peak GB while it ran (the RSS
    samples between its start and its manifest); then the final job's (sinks, exports, report)."""
    parts, end = [], None
    for path in sorted((out / "_stages").glob("*/manifest.json")):
        m = json.loads(path.read_text())
        end = path.stat().st_mtime
        start = end - m.get("seconds", 0)
        peak = max((kib for t, kib in samples if start <= t <= end), default=0) / 1024**2
        parts.append(f"{m['stage']} {m.get('seconds', 0):.0f} s / {peak:.2f} GB")
    if end is not None:
        tail = [(t, kib) for t, kib in samples if t > end]
        if tail:
            parts.append(f"final job + exports {tail[-1][0] - end:.0f} s / "
                         f"{max(kib for _, kib in tail) / 1024**2:.2f} GB")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="folder for corpora and outputs (default: a temporary one)")
    parser.add_argument("--modes", nargs="+", choices=("on", "off"), default=["on", "off"],
                        help="checkpoints on (a chain of jobs), off (one job), or both (1M docs: on only; one job "
                             "holds the corpus in a local runner's memory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        print(f"# scale bench {datetime.now():%Y-%m-%d %H:%M}, workers={args.workers}")
        print("| docs | text MB | checkpoints | wall s | CPU s | docs/s | peak GB (process tree) | on/off wall | "
              "on/off CPU | per-stage wall s (checkpoints on) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for n in args.docs:
            corpus = root / f"corpus{n}"
            mb = build_corpus(n, corpus)
            results: dict[str, list[tuple[float, float, float, list]]] = {m: [] for m in args.modes}
            stages = ""
            for r in range(args.repeat):
                for mode in (args.modes if r % 2 == 0 else args.modes[::-1]):
                    out = root / f"out{n}-{mode}"
                    results[mode].append(run(corpus, out, mode, args.workers))
                    if mode == "on":
                        stages = stage_seconds(out, results[mode][-1][3])
            wall = {m: sorted(r[0] for r in v)[len(v) // 2] for m, v in results.items()}
            cpu = {m: sorted(r[1] for r in v)[len(v) // 2] for m, v in results.items()}
            for mode in args.modes:
                peak = max(r[2] for r in results[mode])
                ratios = (f"{wall['on'] / wall['off']:.2f} | {cpu['on'] / cpu['off']:.2f}"
                          if mode == "on" and "off" in wall else " | ")
                print(f"| {n:,} | {mb:.0f} | {mode} | {wall[mode]:.0f} | {cpu[mode]:.0f} | {n / wall[mode]:.0f} | "
                      f"{peak:.2f} | {ratios} | {stages if mode == 'on' else ''} |", flush=True)


if __name__ == "__main__":
    main()
