"""What the report needs that the summed stats do not hold, read from small columns of a run's output files."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from apache_beam.io.filesystems import FileSystems


def _parquet_columns(out_dir: str, sink: str, columns: list[str]):
    """Yields the given columns (as Python lists) of every ``OUT/<sink>/**.parquet`` shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pattern = FileSystems.join(out_dir, sink, "**.parquet")
    for meta in sorted(FileSystems.match([pattern])[0].metadata_list, key=lambda m: m.path):
        with FileSystems.open(meta.path) as handle:
            table = pq.read_table(pa.BufferReader(handle.read()), columns=columns, use_threads=False)
        yield {name: table.column(name).to_pylist() for name in columns}


def _histogram(values: list[int]) -> dict[str, Any]:
    """Docs per bin of tokens per document, bins doubling in size (1, 2-3, 4-7, ... tokens)."""
    counts: Counter[int] = Counter(max(0, int(math.log2(v))) if v > 0 else -1 for v in values)
    if not counts:
        return {"bins": [], "docs": []}
    top = max(counts)
    bins = [f"{2 ** b:,}-{2 ** (b + 1) - 1:,}" if b >= 1 else "1" for b in range(0, top + 1)]
    docs = [counts.get(b, 0) for b in range(0, top + 1)]
    if counts.get(-1):
        bins, docs = ["0", *bins], [counts[-1], *docs]
    first = next(i for i, n in enumerate(docs) if n)  # drop the empty bins below the shortest document
    return {"bins": bins[first:], "docs": docs[first:]}


def file_columns(out_dir: str) -> dict[str, Any]:
    """What the stats do not hold, from small columns of the output files: tokens per document (first copies in
    the mixture, EOS included), kept/rejected/dead-letter per source, and the dead-letter reasons."""
    lengths: list[int] = []
    sources: dict[str, Counter[str]] = {}
    for cols in _parquet_columns(out_dir, "mixture", ["n_tokens", "source", "repeat"]):
        for n, source, repeat in zip(cols["n_tokens"], cols["source"], cols["repeat"]):
            if not repeat:
                lengths.append(n)
                sources.setdefault(str(source), Counter())["kept"] += 1
    for cols in _parquet_columns(out_dir, "rejected", ["source"]):
        for source in cols["source"]:
            sources.setdefault(str(source), Counter())["rejected"] += 1
    reasons: Counter[str] = Counter()
    for cols in _parquet_columns(out_dir, "dead_letter", ["stage", "error"]):
        for stage, error in zip(cols["stage"], cols["error"]):
            first = (error or "").strip().splitlines()[0] if (error or "").strip() else "(no error text)"
            reasons[f"{stage}: {first[:300]}"] += 1
    return {
        "tokens_per_doc": _histogram(lengths),
        "sources": sorted(({"source": k, "kept": v["kept"], "rejected": v["rejected"]} for k, v in sources.items()),
                          key=lambda r: (-(r["kept"] + r["rejected"]), r["source"])),
        "dead_letter_reasons": [{"reason": r, "records": n} for r, n in reasons.most_common(50)],
    }
