"""Builds ``bench/data/domains/domains_eval.jsonl.gz``: documents whose origin fixes their topic and format.

Sources (nothing written by the qurate team; provenance in ``bench/data/domains/README.md``):
- the team's shared corpus sample (``shared/data/corpus_sample.jsonl``), only documents that are NOT in the bundled
  sample corpus, from sources whose origin fixes the label (the bundled distilled classifier's teacher labels
  cover the bundled sample and the rest of the shared corpus except these docs; a test checks it):
  Debian copyright files -> crime_law / legal_notice; manpages-dev (C library and system-call pages) ->
  software_dev / documentation; the other man pages (commands, files, admin; English and 4 translations) ->
  software / documentation; the Python 3.11 documentation -> software_dev / documentation;
- ``bbc_excerpts.jsonl``: first paragraphs of BBC News articles from the BBC dataset's business, politics and sport
  folders (``finance_business`` / ``politics`` / ``sports_fitness``, format ``news_article``).

Per source the ``PER_SOURCE`` documents with the smallest keyed hash of (id, seed 0) are taken.

    python bench/make_domains_eval.py [--shared ../shared/data/corpus_sample.jsonl]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from qurate.hashing import stable_hash

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "data" / "domains" / "domains_eval.jsonl.gz"
BBC = REPO / "bench" / "data" / "domains" / "bbc_excerpts.jsonl"
SAMPLE = REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz"
PER_SOURCE = 15
MAX_CHARS = 3000  # the classifiers read the head; smaller file
LABELS = {  # source -> (topic, format): the origin decides
    "debian/copyright": ("crime_law", "legal_notice"),
    "debian/manpages-dev": ("software_dev", "documentation"),
    "debian/manpages": ("software", "documentation"),
    "debian/manpages-de": ("software", "documentation"),
    "debian/manpages-fr": ("software", "documentation"),
    "debian/manpages-es": ("software", "documentation"),
    "debian/manpages-ru": ("software", "documentation"),
    "debian/python3.11-doc": ("software_dev", "documentation"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", default=str(REPO.parent / "shared" / "data" / "corpus_sample.jsonl"))
    args = parser.parse_args()
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        in_sample = {json.loads(line)["id"] for line in handle if line.strip()}
    picked: dict[str, list[dict]] = {s: [] for s in LABELS}
    with open(args.shared, encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["source"] in LABELS and doc["id"] not in in_sample and len(doc["text"]) >= 300:
                picked[doc["source"]].append(doc)
    rows = []
    for source, docs in picked.items():
        docs.sort(key=lambda d: stable_hash(d["id"], 0))
        topic, fmt = LABELS[source]
        for doc in docs[:PER_SOURCE]:
            rows.append({"id": doc["id"], "text": doc["text"][:MAX_CHARS], "topic": topic, "format": fmt,
                         "origin": f"shared/data/corpus_sample.jsonl (source {source})",
                         "licence": "see shared/data/README.md for the source"})
    with open(BBC, encoding="utf-8") as handle:
        rows += [json.loads(line) for line in handle if line.strip()]
    with gzip.open(OUT, "wt", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} labelled docs -> {OUT}")


if __name__ == "__main__":
    main()
