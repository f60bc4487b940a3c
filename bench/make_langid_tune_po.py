"""Builds ``bench/data/langid_tune_po.jsonl.gz``: a *tune* source of short translated UI messages, the same kind of
text as the held-out fresh set (``bench/make_langid_fresh.py``) but from other projects' gettext catalogues.

The fresh set showed that the tune halves lack two things the second opinion must handle: Latin-script Serbian and
short UI strings. This set supplies both, for tuning only (``bench/langid_tune.py`` reads it whole; it has no
held-out half). Sources (provenance and licences in ``bench/data/README.md``), never Django or Weblate:

- PyPI wheels: ``sphinx-8.1.3`` and ``wagtail-8.0.1`` (their ``locale/*/LC_MESSAGES/*.po``);
- Debian bookworm binary packages of GNOME and Xfce applications (``apt-get download``): their compiled catalogues
  ``usr/share/locale/*/LC_MESSAGES/*.mo`` (msgfmt leaves fuzzy entries out of a ``.mo``). None of the Debian
  text domains of the corpus set (``gtk20``, ``glib20``, ``apt``, ``iso_*``, ...) is among them.

Messages, labels and filters are those of the fresh set (``make_langid_fresh.parse_po``/``keep``/``_balanced``/
``_docs``), with the locale names these projects use (``sr@latin`` is Latin Serbian, ``nb_NO`` -> ``nb``, ...;
regional variants and ``sr@ije`` are left out) and English taken from the msgids. One more filter keeps the
held-out sets unread: a message is dropped when its text (whitespace-collapsed, case-folded) equals any item, or
any line of a document, of the fresh set or of the held-out halves of the UDHR and corpus sets. Per language at
most ``MAX_SENTENCES`` sentences and ``MAX_DOCS`` documents, shared evenly between locales (Latin and Cyrillic
Serbian alike). ``origin`` is ``<package>:<path of the catalogue>#<entry number>``.

    .venv/bin/pip download --no-deps sphinx==8.1.3 wagtail==8.0.1 -d /tmp/potune
    pkgs=$(cat bench/data/langid_tune_po.packages); (cd /tmp/potune && apt-get download $pkgs)
    .venv/bin/python bench/make_langid_tune_po.py /tmp/potune/*.whl /tmp/potune/*.deb
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's when bench/ is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import struct  # noqa: E402
import tarfile  # noqa: E402
import zipfile  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Iterator  # noqa: E402


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fresh = _load("make_langid_fresh")
langid_eval = _load("langid_eval")

OUT = Path(__file__).parent / "data" / "langid_tune_po.jsonl.gz"
MAX_SENTENCES, MAX_DOCS = 300, 15
# locale directory -> Qwen language, for the names these projects use; a locale not here and not itself a Qwen
# code (en_GB, es_AR, sr@ije, zh_TW.Big5, ...) is skipped
LOCALES = {
    "pt_BR": "pt", "pt_PT": "pt", "zh_CN": "zh", "zh_TW": "zh", "zh_HK": "zh", "zh_Hans": "zh", "zh_Hant": "zh",
    "sr@latin": "sr", "sr_RS": "sr", "nb_NO": "nb", "no": "nb", "hr_HR": "hr", "id_ID": "id", "sk_SK": "sk",
    "he_IL": "he", "uk_UA": "uk", "ms_MY": "ms", "my_MM": "my", "tr_TR": "tr", "fa_IR": "fa", "ur_PK": "ur",
    "bn_BD": "bn", "hi_IN": "hi", "ja_JP": "ja", "de_DE": "de", "fr_FR": "fr", "fil": "tl",
}
LATIN_LOCALES = {"sr@latin"}
SKIP_DOMAINS = ("timezones",)  # gnome-control-center's city names: not sentences


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def heldout_texts() -> set[str]:
    """Normalized texts of every item, and every line of every document, that this set must not contain."""
    out: set[str] = set()
    sources = [(path, "all") for path in langid_eval.WHOLE_SETS.values()]
    sources += [(path, "heldout") for path in langid_eval.SETS.values()]
    for path, half in sources:
        for it in langid_eval.load_items(path):
            if half == "all" or langid_eval.split_of(it) == half:
                out.add(norm(it["text"]))
                out.update(norm(line) for line in it["text"].splitlines())
    return out


def parse_mo(data: bytes) -> list[tuple[int, str, str]]:
    """(entry number, msgid, msgstr or msgstr[0]) of a compiled catalogue, header left out."""
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">"
    _, count, ids_at, strs_at = struct.unpack(order + "4I", data[4:20])
    out = []
    for i in range(count):
        id_len, id_off = struct.unpack(order + "2I", data[ids_at + 8 * i: ids_at + 8 * i + 8])
        str_len, str_off = struct.unpack(order + "2I", data[strs_at + 8 * i: strs_at + 8 * i + 8])
        msgid = data[id_off: id_off + id_len].decode("utf-8", "replace").split("\x04")[-1].split("\x00")[0]
        msgstr = data[str_off: str_off + str_len].decode("utf-8", "replace").split("\x00")[0]
        if msgid:
            out.append((i, msgid, msgstr))
    return out


def _deb_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the ``.mo`` files in a Debian package (an ``ar`` archive holding ``data.tar.*``)."""
    data = path.read_bytes()
    pos = 8  # "!<arch>\n"
    while pos < len(data):
        name, size = data[pos: pos + 16].decode().strip().rstrip("/"), int(data[pos + 48: pos + 58])
        body = data[pos + 60: pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for member in sorted(tar.getmembers(), key=lambda m: m.name):
                    if member.isfile() and member.name.endswith(".mo"):
                        yield member.name.removeprefix("./"), tar.extractfile(member).read()


def catalogues(path: Path) -> Iterator[tuple[str, str, str, list[tuple[int, str, str]]]]:
    """(language, locale, origin prefix, entries) of every usable catalogue of a wheel or a Debian package."""
    if path.suffix == ".whl":
        tag = path.name.split("-")[0].lower()
        with zipfile.ZipFile(path) as archive:
            members = [(n, archive.read(n)) for n in sorted(archive.namelist()) if n.endswith(".po")]
    else:
        tag = path.name.removesuffix(".deb").replace("%3a", ":")
        members = list(_deb_members(path))
    for name, raw in members:
        parts = name.split("/")
        if "locale" not in parts or "LC_MESSAGES" not in parts or any(s in name for s in SKIP_DOMAINS):
            continue
        locale = parts[parts.index("LC_MESSAGES") - 1]
        lang = LOCALES.get(locale, locale)
        if lang not in fresh.QWEN_LANGUAGES and lang != "en":
            continue
        entries = fresh.parse_po(raw.decode("utf-8", "replace")) if name.endswith(".po") else parse_mo(raw)
        yield lang, locale, f"{tag}:{name}", entries


def messages(paths: list[Path], banned: set[str]) -> tuple[dict[str, dict[str, list[list[dict]]]], int]:
    """lang -> locale -> catalogues of kept items (file order), and how many messages ``banned`` removed."""
    pools: dict[str, dict[str, list[list[dict]]]] = defaultdict(lambda: defaultdict(list))
    seen: dict[str, set[str]] = defaultdict(set)
    dropped = 0
    for path in paths:
        for lang, locale, prefix, entries in catalogues(path):
            for target, english in ((lang, False), ("en", True)):  # English: every catalogue's msgids
                kept = []
                script_locale = "sr_Latn" if locale in LATIN_LOCALES else locale
                for number, msgid, msgstr in entries:
                    text = " ".join((msgid if english else msgstr).split())
                    if not english and (not msgstr or msgstr == msgid):
                        continue  # untranslated
                    if target == "en" and lang == "en" and not english:
                        continue
                    if text in seen[target] or not fresh.keep(text, target, "en" if english else script_locale):
                        continue
                    seen[target].add(text)
                    if norm(text) in banned:
                        dropped += 1
                        continue
                    kept.append({"kind": "sentence", "lang": target, "text": text, "origin": f"{prefix}#{number}"})
                if kept:
                    # one pool per script for Serbian, so Latin and Cyrillic are balanced whatever the locale names
                    key = "en" if english else "sr_Latn" if script_locale == "sr_Latn" else lang if lang == "sr" else locale
                    pools[target][key].append(kept)
    return pools, dropped


def build(paths: list[Path]) -> tuple[list[dict], int]:
    pools, dropped = messages(sorted(paths, key=lambda p: p.name), heldout_texts())
    items = []
    for _, locales in sorted(pools.items()):
        sentences = fresh._balanced({loc: [it for cat in cats for it in cat] for loc, cats in locales.items()},
                                    MAX_SENTENCES)
        used = {it["text"] for it in sentences}
        docs = fresh._balanced({loc: [d for cat in cats for d in fresh._docs(cat, used)]
                                for loc, cats in locales.items()}, MAX_DOCS)
        items += docs + sentences
    return items, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", type=Path, help="the .whl and .deb files (see the docstring)")
    args = parser.parse_args()
    items, dropped = build(args.packages)
    print(f"dropped {dropped} kept messages whose text is in a held-out set")
    fresh.write_items(items, OUT)


if __name__ == "__main__":
    main()
