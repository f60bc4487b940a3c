"""The third language-ID set (``bench/data/langid_fresh.jsonl.gz``): its builder's .po reading and message
filter on real catalogue text, and the shipped set's shape (a set the tuner never reads)."""

from __future__ import annotations

import gzip
import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest
from qurate.filters.langcodes import QWEN_LANGUAGES

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fresh():
    return _bench_module("make_langid_fresh")


PO = '''# Translators:
msgid ""
msgstr ""
"Language: sr@latin\\n"

#: contrib/admin/options.py:100
msgid "Please correct the errors below."
msgstr "Molimo vas da ispravite "
"greške ispod."

#, fuzzy
msgid "Change history"
msgstr "Istorija"

msgid "one item"
msgid_plural "%(count)s items"
msgstr[0] "jedna stavka"
msgstr[1] "%(count)s stavke"

#~ msgid "Old text"
#~ msgstr "Stari tekst"
'''


def test_po_reader_joins_lines_and_skips_fuzzy_obsolete_and_header(fresh):
    entries = fresh.parse_po(PO)
    assert [(msgid, msgstr) for _, msgid, msgstr in entries] == [
        ("Please correct the errors below.", "Molimo vas da ispravite greške ispod."),
        ("one item", "jedna stavka"),  # msgstr[0] of a plural
    ]
    assert entries[0][0] < entries[1][0]  # entry numbers follow the file


def test_message_filter_keeps_sentences_in_the_locales_script(fresh):
    keep = fresh.keep
    assert keep("Molimo vas da ispravite greške ispod.", "sr", "sr_Latn")
    assert not keep("Molimo vas da ispravite greške ispod.", "sr", "sr")  # the sr locale is Cyrillic
    assert keep("Молимо вас да исправите грешке испод.", "sr", "sr")
    assert not keep("Please correct the errors below.", "ru", "ru")  # untranslated English in a Russian catalogue
    assert not keep("Izbrisano je %(count)d stavki iz liste.", "hr", "hr")  # placeholder
    assert not keep("Spremi promjene", "hr", "hr")  # too short for a sentence
    assert keep("複数選択するときには Control キーを押したまま選択してください。", "ja", "ja")


def test_fresh_set_is_real_labelled_text_in_the_qwen_languages():
    with gzip.open(BENCH / "data" / "langid_fresh.jsonl.gz", "rt", encoding="utf-8") as handle:
        items = [json.loads(line) for line in handle]
    assert {it["kind"] for it in items} == {"doc", "sentence"}
    langs = Counter(it["lang"] for it in items)
    assert set(langs) <= set(QWEN_LANGUAGES) and len(langs) >= 40
    assert all(it["origin"].split(":", 1)[0] in ("django", "weblate") for it in items)
    texts = Counter((it["lang"], it["text"]) for it in items)
    assert max(texts.values()) == 1  # no message twice in one language
    # the tuner reads only SETS (split in halves); the fresh set is reported whole and never tuned on
    langid_eval = _bench_module("langid_eval")
    assert "fresh" in langid_eval.WHOLE_SETS and "fresh" not in langid_eval.SETS


def test_tune_source_of_ui_messages_shares_no_text_with_the_held_out_sets():
    """``bench/data/langid_tune_po.jsonl.gz`` (other projects' catalogues) is tune data: it has Latin and Cyrillic
    Serbian, comes from neither Django nor Weblate, and no line of it is a held-out text or line."""
    builder = _bench_module("make_langid_tune_po")
    with gzip.open(builder.OUT, "rt", encoding="utf-8") as handle:
        items = [json.loads(line) for line in handle]
    assert set(Counter(it["lang"] for it in items)) <= set(QWEN_LANGUAGES)
    assert not any(it["origin"].split(":", 1)[0] in ("django", "weblate") for it in items)
    serbian = [it["text"] for it in items if it["lang"] == "sr" and it["kind"] == "sentence"]
    latin = sum(builder.fresh.keep(t, "sr", "sr_Latn") for t in serbian)
    assert latin >= 100 and len(serbian) - latin >= 100
    banned = builder.heldout_texts()
    assert len(banned) > 10_000
    assert not any(builder.norm(line) in banned for it in items for line in it["text"].splitlines())
    tune = _bench_module("langid_tune")
    assert "po" in tune.TUNE_SETS and "fresh" not in tune.TUNE_SETS


def test_mo_reader_takes_msgstr_zero_and_drops_context_and_header():
    import struct

    builder = _bench_module("make_langid_tune_po")
    pairs = [("", "Content-Type: text/plain; charset=UTF-8\n"), ("menu\x04Open file", "Otvori datoteku"),
             ("one item\x00%d items", "jedna stavka\x00%d stavke")]
    ids = b"".join(k.encode() + b"\0" for k, _ in pairs)
    strs = b"".join(v.encode() + b"\0" for _, v in pairs)
    n, start = len(pairs), 28 + 16 * len(pairs)
    table_ids, table_strs, pos = [], [], start
    for k, _ in pairs:
        table_ids.append((len(k.encode()), pos))
        pos += len(k.encode()) + 1
    for _, v in pairs:
        table_strs.append((len(v.encode()), pos))
        pos += len(v.encode()) + 1
    data = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    data += b"".join(struct.pack("<2I", *t) for t in table_ids + table_strs) + ids + strs
    assert [(m, s) for _, m, s in builder.parse_mo(data)] == [("Open file", "Otvori datoteku"),
                                                             ("one item", "jedna stavka")]
