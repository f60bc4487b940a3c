"""Cuts the bundled sample corpus from ../shared/data/corpus_sample.jsonl (see pipelines/data/PROVENANCE.md).

Deterministic: a document is kept when the xxh64 of its id falls under its source's keep fraction, so every
source (web, StackExchange, arXiv, patents, Python docs, man pages in 22 languages, copyright files with their
many duplicate licence texts, gettext catalogues) stays represented.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import xxhash

FRACTIONS = {"web/trafilatura-tests": 0.45, "debian/copyright": 0.45, "debian/python3.11-doc": 0.3,
             "debian/manpages-dev": 0.25, "debian/gettext-mo": 0.4}
DEFAULT_FRACTION = 0.4
SMALL_SOURCES = ("redpajama-sample/", "pile-sample/", "web/dolma", "debian/common-licenses")


def keep(doc: dict) -> bool:
    source = doc["source"]
    if source.startswith(SMALL_SOURCES):
        return True
    fraction = FRACTIONS.get(source, DEFAULT_FRACTION)
    return xxhash.xxh64_intdigest(doc["id"].encode()) / 2**64 < fraction


def main(src: str = "../shared/data/corpus_sample.jsonl",
         dst: str = "pipelines/data/sample_corpus.jsonl.gz") -> None:
    kept = [line for line in Path(src).read_text(encoding="utf-8").split("\n") if line and keep(json.loads(line))]
    with gzip.GzipFile(dst, "wb", compresslevel=9, mtime=0) as handle:
        handle.write(("\n".join(kept) + "\n").encode("utf-8"))
    print(f"{len(kept)} docs -> {dst} ({Path(dst).stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(*sys.argv[1:])
