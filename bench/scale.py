"""Scale: the full default pipeline on an N-document corpus, with stage checkpoints on (a chain of one Beam job
per stage) and off (one job), side by side; prints wall time, docs/s, peak memory of the whole process tree and,
with checkpoints on, each stage's wall time (from its checkpoint manifest). CPU seconds (user + system of the
whole process tree) are less disturbed by other load on a shared machine than wall time.

    .venv/bin/python bench/scale.py [--docs 10000 30000] [--repeat 1] [--workers 1] [--keep DIR]

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
from bench_common import REPO, TreePeak, corpus_docs, text_mb  # noqa: E402

QURATE = Path(sys.executable).with_name("qurate")
PARTS = 4


def build_corpus(n: int, folder: Path, seed: int = 0) -> float:
    """``n`` docs (``bench_common.corpus_docs``) in ``PARTS`` JSONL files; text MB."""
    docs = corpus_docs(n, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for p in range(PARTS):
        with open(folder / f"part{p}.jsonl", "w", encoding="utf-8") as out:
            out.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs[p::PARTS])
    return text_mb(docs)


def run(corpus: Path, out: Path, checkpoints: str, workers: int) -> tuple[float, float, float]:
    """(wall s, CPU s of the process tree, peak GB) of one run."""
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
    return seconds, cpu, gb


def stage_seconds(out: Path) -> str:
    manifests = [json.loads(p.read_text()) for p in sorted((out / "_stages").glob("*/manifest.json"))]
    return ", ".join(f"{m['stage']} {m.get('seconds', 0):.0f}" for m in manifests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[10_000, 30_000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="folder for corpora and outputs (default: a temporary one)")
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
            results: dict[str, list[tuple[float, float, float]]] = {"on": [], "off": []}
            stages = ""
            for r in range(args.repeat):
                for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                    out = root / f"out{n}-{mode}"
                    results[mode].append(run(corpus, out, mode, args.workers))
                    if mode == "on":
                        stages = stage_seconds(out)
            wall = {m: sorted(r[0] for r in v)[len(v) // 2] for m, v in results.items()}
            cpu = {m: sorted(r[1] for r in v)[len(v) // 2] for m, v in results.items()}
            for mode in ("on", "off"):
                peak = max(r[2] for r in results[mode])
                ratios = (f"{wall['on'] / wall['off']:.2f} | {cpu['on'] / cpu['off']:.2f}" if mode == "on"
                          else " | ")
                print(f"| {n:,} | {mb:.0f} | {mode} | {wall[mode]:.0f} | {cpu[mode]:.0f} | {n / wall[mode]:.0f} | "
                      f"{peak:.2f} | {ratios} | {stages if mode == 'on' else ''} |", flush=True)


if __name__ == "__main__":
    main()
