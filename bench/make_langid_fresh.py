"""Builds ``bench/data/langid_fresh.jsonl.gz``: a third, wholly held-out language-ID set from the translation
catalogues shipped in two PyPI wheels, never read while qurate's LID rules were chosen.

Sources (provenance and licences in ``bench/data/README.md``): the gettext ``.po`` files inside

- ``Django-5.1.4-py3-none-any.whl`` (BSD-3-Clause): ``django/conf/locale`` and every ``django/contrib/*/locale``;
- ``weblate-5.14.3-py3-none-any.whl`` (GPL-3.0-or-later): ``weblate/locale`` (its ``.pot`` templates give English).

A message is the translated ``msgstr`` (``msgstr[0]`` for plurals) of an entry that is neither fuzzy nor obsolete
and differs from its ``msgid``; English items are the ``msgid`` s themselves (the projects' source language).
Labels come from the locale directory: ``pt_BR`` -> ``pt``, ``zh_Hans``/``zh_Hant`` -> ``zh``, ``sr_Latn`` ->
``sr``, ``fil`` -> ``tl``; regional variants (``es_AR``, ``en_GB``, ...) are left out. Kept only if it reads as
natural text, not UI plumbing:

- no placeholder, markup or path (``%``, ``{}``, ``<>``, ``\\``, ``@``, URLs, backticks, ``=``, ``|``, ``_``);
- 25-300 characters and at least 4 words, or 10-300 characters in languages written without spaces
  (zh ja th lo my km);
- at least 60% letters (combining marks count, for the Indic and Southeast Asian scripts), and most letters in the
  language's script (``SCRIPTS``; Serbian by locale: ``sr`` Cyrillic, ``sr_Latn`` Latin), which drops untranslated
  English left in a non-Latin catalogue; the LID models under test play no part in the selection.

Items are ``{"kind", "lang", "text", "origin"}`` like the other two sets:

- ``sentence``: one message; per language at most ``MAX_SENTENCES``, shared evenly between the language's locales
  (so Latin and Cyrillic Serbian, Brazilian and European Portuguese, both Chinese scripts are balanced), each
  locale's messages taken in the order of a keyed hash of their text;
- ``doc``: consecutive kept messages of one catalogue not used as sentences, joined by line breaks until 400-1,000
  characters; at most ``MAX_DOCS`` per language, picked the same way.

``origin`` is ``<wheel>:<path of the .po in the wheel>#<entry number>`` (``#first-last`` for a doc). The whole set
is held out: ``bench/langid_eval.py`` reports all of it.

    .venv/bin/pip download --no-deps django==5.1.4 weblate==5.14.3 -d /tmp/wheels
    .venv/bin/python bench/make_langid_fresh.py /tmp/wheels/Django-5.1.4-py3-none-any.whl \\
        /tmp/wheels/weblate-5.14.3-py3-none-any.whl
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's when bench/ is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import ast  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import unicodedata  # noqa: E402
import zipfile  # noqa: E402
from collections import defaultdict  # noqa: E402

from qurate.filters.langcodes import QWEN_LANGUAGES  # noqa: E402
from qurate.hashing import stable_hash  # noqa: E402

OUT = Path(__file__).parent / "data" / "langid_fresh.jsonl.gz"
MAX_SENTENCES, MAX_DOCS = 150, 10
DOC_CHARS = (400, 1000)
# locale directory -> Qwen language; anything else (regional variants, other languages) is skipped
LOCALE_ALIASES = {"pt_BR": "pt", "zh_Hans": "zh", "zh_Hant": "zh", "sr_Latn": "sr", "fil": "tl"}
NO_SPACES = {"zh", "ja", "th", "lo", "my", "km"}
# the first word of a letter's Unicode name that the language's text is mostly written in
SCRIPTS: dict[str, tuple[str, ...]] = {
    "zh": ("CJK",), "ja": ("CJK", "HIRAGANA", "KATAKANA"), "ko": ("HANGUL",), "th": ("THAI",), "lo": ("LAO",),
    "my": ("MYANMAR",), "km": ("KHMER",), "ar": ("ARABIC",), "fa": ("ARABIC",), "ur": ("ARABIC",),
    "he": ("HEBREW",), "hi": ("DEVANAGARI",), "bn": ("BENGALI",), "el": ("GREEK",), "ru": ("CYRILLIC",),
    "uk": ("CYRILLIC",), "bg": ("CYRILLIC",), "sr": ("CYRILLIC",),
}
LOCALE_SCRIPTS = {"sr_Latn": ("LATIN",)}
_PLUMBING = re.compile(r"[%{}<>\\@`=|_]|https?:|www\.|\.\.\.$")
_FIELD = re.compile(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(".*")\s*$')


def parse_po(text: str) -> list[tuple[int, str, str]]:
    """(entry number, msgid, msgstr or msgstr[0]) of every entry that is not fuzzy, obsolete or the header."""
    out: list[tuple[int, str, str]] = []
    fields: dict[str, str] = {}
    fuzzy, field, number = False, None, 0

    def flush() -> None:
        msgid, msgstr = fields.get("msgid", ""), fields.get("msgstr", fields.get("msgstr[0]", ""))
        if msgid and not fuzzy:
            out.append((number, msgid, msgstr))

    for line in text.splitlines() + [""]:
        if not line.strip():
            if fields:
                flush()
                number += 1
            fields, fuzzy, field = {}, False, None
        elif line.startswith("#~"):  # obsolete entry
            continue
        elif line.startswith("#,"):
            fuzzy = fuzzy or "fuzzy" in line
        elif line.startswith("#"):
            continue
        elif (match := _FIELD.match(line)) is not None:
            field = match.group(1)
            fields[field] = ast.literal_eval(match.group(2))
        elif line.startswith('"') and field is not None:
            fields[field] += ast.literal_eval(line)
    return out


def _script(char: str) -> str:
    try:
        return unicodedata.name(char).split()[0]
    except ValueError:
        return ""


def keep(text: str, lang: str, locale: str) -> bool:
    """Natural text in the locale's language and script (see the module docstring)."""
    if _PLUMBING.search(text):
        return False
    low = 10 if lang in NO_SPACES else 25
    if not low <= len(text) <= 300 or (lang not in NO_SPACES and len(text.split()) < 4):
        return False
    letters = [c for c in text if c.isalpha() or unicodedata.category(c) in ("Mn", "Mc")]
    if len(letters) < 0.6 * len(text):
        return False
    scripts = LOCALE_SCRIPTS.get(locale) or SCRIPTS.get(lang, ("LATIN",))
    return sum(_script(c) in scripts for c in letters if c.isalpha()) > 0.5 * sum(c.isalpha() for c in letters)


def _catalogues(wheel: Path) -> list[tuple[str, str, str]]:
    """(language, locale, member path) of every usable catalogue in a wheel, sorted by path."""
    out = []
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if name.endswith(".pot"):  # the source strings: English
                out.append(("en", "en", name))
            elif name.endswith(".po") and "locale" in parts:
                locale = parts[parts.index("locale") + 1]
                lang = LOCALE_ALIASES.get(locale, locale)
                if lang in QWEN_LANGUAGES:
                    out.append((lang, locale, name))
    return out


def messages(wheels: list[Path]) -> dict[str, dict[str, list[list[dict]]]]:
    """lang -> locale -> catalogues, each the list of its kept messages (in file order) as items."""
    pools: dict[str, dict[str, list[list[dict]]]] = defaultdict(lambda: defaultdict(list))
    seen: dict[str, set[str]] = defaultdict(set)
    for wheel in wheels:
        tag = wheel.name.split("-")[0].lower()
        with zipfile.ZipFile(wheel) as archive:
            for lang, locale, name in _catalogues(wheel):
                english = lang == "en"
                kept = []
                for number, msgid, msgstr in parse_po(archive.read(name).decode("utf-8")):
                    text = " ".join((msgid if english else msgstr).split())
                    if not english and (not msgstr or msgstr == msgid):
                        continue  # untranslated
                    if text in seen[lang] or not keep(text, lang, locale):
                        continue
                    seen[lang].add(text)
                    kept.append({"kind": "sentence", "lang": lang, "text": text,
                                 "origin": f"{tag}:{name}#{number}"})
                if kept:
                    pools[lang][locale].append(kept)
    return pools


def _balanced(per_locale: dict[str, list[dict]], cap: int) -> list[dict]:
    """Up to ``cap`` items, round-robin over the locales, each locale's in keyed-hash order."""
    queues = [sorted(items, key=lambda it: stable_hash("langid-fresh", it["text"]))
              for _, items in sorted(per_locale.items())]
    out: list[dict] = []
    depth = 0
    while len(out) < cap and any(depth < len(q) for q in queues):
        out += [q[depth] for q in queues if depth < len(q)][: cap - len(out)]
        depth += 1
    return out


def _docs(catalogue: list[dict], used: set[str]) -> list[dict]:
    low, high = DOC_CHARS
    docs, current = [], []
    for it in catalogue + [None]:
        if it is None or it["text"] in used or sum(len(c["text"]) + 1 for c in current) + len(it["text"]) > high:
            if sum(len(c["text"]) + 1 for c in current) >= low:
                first, last = current[0]["origin"], current[-1]["origin"].rsplit("#", 1)[1]
                docs.append({"kind": "doc", "lang": current[0]["lang"],
                             "text": "\n".join(c["text"] for c in current), "origin": f"{first}-{last}"})
            current = []
        if it is not None and it["text"] not in used:
            current.append(it)
    return docs


def build(wheels: list[Path]) -> list[dict]:
    items = []
    for _, locales in sorted(messages(wheels).items()):
        sentences = _balanced({loc: [it for cat in cats for it in cat] for loc, cats in locales.items()},
                              MAX_SENTENCES)
        used = {it["text"] for it in sentences}
        docs = _balanced({loc: [d for cat in cats for d in _docs(cat, used)] for loc, cats in locales.items()},
                         MAX_DOCS)
        items += docs + sentences
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheels", nargs="+", type=Path, help="Django-5.1.4-py3-none-any.whl, "
                        "weblate-5.14.3-py3-none-any.whl")
    args = parser.parse_args()
    write_items(build(args.wheels), OUT)


def write_items(items: list[dict], out: Path) -> None:
    """The set as gzipped JSON lines (mtime 0: byte-identical rebuilds), then its counts per language."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as raw:
        for it in items:
            raw.write((json.dumps(it, ensure_ascii=False) + "\n").encode("utf-8"))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for it in items:
        counts[it["lang"]][it["kind"] == "doc"] += 1
    print(f"wrote {len(items)} items ({sum(c[1] for c in counts.values())} docs) in {len(counts)} languages "
          f"to {out}")
    print(" ".join(f"{lang}:{s}+{d}" for lang, (s, d) in sorted(counts.items())))


if __name__ == "__main__":
    main()
