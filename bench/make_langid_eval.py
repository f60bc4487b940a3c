"""Builds ``bench/data/langid_eval.jsonl.gz``, the labelled language-ID evaluation set, from real text.

Source: ``../shared/data/corpus_sample.jsonl`` (see its README): translated man pages (Debian manpages-l10n,
manpages-ja, manpages-zh, manpages-tr; ``lang`` from the package) and gettext catalogues (``lang`` from the
locale directory). Only languages in qurate's default allow-list (Qwen2.5's languages) are kept.

Two kinds of item, each ``{"kind", "lang", "text", "origin"}``:

- ``doc``: a whole document (first 1,000 characters, cut at a line break);
- ``sentence``: 20-200 characters: man-page paragraphs re-joined from their 80-column lines and split at
  terminal punctuation, or single gettext messages.

Labels are the package's language, not verified: translated man pages keep some English (commands, headings),
so lines without a letter-rich body, URLs, e-mail addresses and all-caps headings are skipped. Items are picked
by a keyed hash of their text (deterministic), at most 30 docs and 120 sentences per language.

    .venv/bin/python bench/make_langid_eval.py [--corpus ../shared/data/corpus_sample.jsonl]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's when bench/ is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
from collections import defaultdict  # noqa: E402

from qurate.filters.langcodes import QWEN_LANGUAGES  # noqa: E402
from qurate.pipelines.write import stable_hash  # noqa: E402

OUT = Path(__file__).parent / "data" / "langid_eval.jsonl.gz"
MAX_DOCS, MAX_SENTENCES = 30, 120
DOC_CHARS = 1000
_SPLIT = re.compile(r"(?<=[.!?。！？])\s+")
_SKIP = re.compile(r"https?://|www\.|@|\\|%[sdu]|[<>{}=_/]{2,}")


def _good_sentence(text: str) -> bool:
    if not 20 <= len(text) <= 200 or _SKIP.search(text):
        return False
    letters = sum(c.isalpha() for c in text)
    if letters < 0.6 * len(text):
        return False
    upper = sum(c.isupper() for c in text)
    return upper < 0.5 * letters  # all-caps headings (NAME, SYNOPSIS) are not translated


def _man_sentences(text: str) -> list[str]:
    paragraphs, current = [], []
    for line in text.splitlines()[1:]:  # first line: "CMD(1)  section title  CMD(1)"
        stripped = line.strip()
        if not stripped:
            if current:
                paragraphs.append(" ".join(current))
            current = []
        elif line.startswith(" ") and not stripped.startswith("-"):  # body text, not an option list
            current.append(stripped)
    if current:
        paragraphs.append(" ".join(current))
    return [s.strip() for p in paragraphs for s in _SPLIT.split(p)]


def _doc_text(text: str) -> str:
    if len(text) <= DOC_CHARS:
        return text
    cut = text.rfind("\n", 0, DOC_CHARS)
    return text[: cut if cut > DOC_CHARS // 2 else DOC_CHARS]


def build(corpus: Path) -> list[dict]:
    docs, sentences = defaultdict(list), defaultdict(list)
    allowed = set(QWEN_LANGUAGES)
    for line in corpus.open(encoding="utf-8"):
        rec = json.loads(line)
        lang, source = rec.get("lang"), rec.get("source", "")
        if lang not in allowed or not (source.startswith("debian/manpages") or source == "debian/gettext-mo"):
            continue
        origin = rec["id"]
        docs[lang].append({"kind": "doc", "lang": lang, "text": _doc_text(rec["text"]), "origin": origin})
        parts = (_man_sentences(rec["text"]) if source.startswith("debian/manpages")
                 else [m.strip() for m in rec["text"].splitlines()])
        for part in parts:
            if _good_sentence(part):
                sentences[lang].append({"kind": "sentence", "lang": lang, "text": part, "origin": origin})
    items = []
    for pool, cap in ((docs, MAX_DOCS), (sentences, MAX_SENTENCES)):
        for lang in sorted(pool):
            unique = {it["text"]: it for it in pool[lang]}.values()  # gettext repeats strings across catalogues
            items += sorted(unique, key=lambda it: stable_hash(it["text"], 0))[:cap]
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/data/corpus_sample.jsonl"))
    args = parser.parse_args()
    items = build(Path(args.corpus))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT, "wt", encoding="utf-8", compresslevel=9) as handle:
        for it in items:
            handle.write(json.dumps(it, ensure_ascii=False) + "\n")
    langs = sorted({it["lang"] for it in items})
    print(f"wrote {len(items)} items ({sum(it['kind'] == 'doc' for it in items)} docs) in {len(langs)} languages "
          f"to {OUT}: {' '.join(langs)}")


if __name__ == "__main__":
    main()
