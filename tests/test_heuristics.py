"""Heuristic filters on real text: datatrove's Gopher/C4/FineWeb rules as qurate runs them, reasons that
name the rule and the measured value, language- and source-aware rule sets, and the langid+heuristics run
from the command line."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamPipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import SAMPLE_CORPUS, read_rows, rows_digest, run_cli, runner_args_for
from qurate.filters.heuristics import (
    FAMILIES,
    STAGE,
    HeuristicsConfig,
    HeuristicsDecider,
    build_filter,
    lang_key,
    lang_rule_key,
    report,
    rule_key,
)
from qurate.filters.langid import LangIdConfig, LanguageIdentifier
from qurate.filters.plugins import CustomFilterSpec
from qurate.filters.words import TOKENIZER
from qurate.spec import StageContext
from qurate.verdicts import Keep, Reject

EVAL = Path(__file__).resolve().parents[1] / "bench" / "data" / "langid_eval.jsonl.gz"
REASON = re.compile(r"^(gopher_quality|gopher_repetition|c4|fineweb|heuristics)\.[a-z0-9_]+: (\S+) (.*)$")


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    """Every 4th doc of the bundled sample, with the language qurate's LID gives it."""
    with gzip.open(SAMPLE_CORPUS, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle if line.strip()][::4]
    lid = LanguageIdentifier(LangIdConfig(second_opinion=False))
    for doc, res in zip(docs, lid.identify_batch([d["text"] for d in docs])):
        doc["lang"] = res.lang
    return docs


@pytest.fixture(scope="module")
def eval_docs() -> list[dict]:
    with gzip.open(EVAL, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_decisions_are_datatroves_and_every_rejection_reads_rule_value_threshold(sample):
    """qurate keeps exactly what datatrove's own filter objects keep (same thresholds, same order), and each
    rejection names the rule and a measured value that is on the failing side of the threshold it quotes."""
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import get_filter_result

    cfg = HeuristicsConfig(source_rules={"*": list(FAMILIES)})  # every rule family on every doc
    decider = HeuristicsDecider(cfg)
    decider.setup()
    rejected = 0
    for doc in sample:
        verdict = decider.decide(doc)
        expected = None
        for family in FAMILIES:
            filt = build_filter(family, cfg.params_for(family, doc["lang"]), doc["lang"])
            keep, reason = get_filter_result(filt.filter(Document(text=doc["text"], id=doc["id"])))
            if not keep:
                expected = (family, reason)
                break
        if expected is None:
            assert isinstance(verdict, Keep)
            continue
        rejected += 1
        assert isinstance(verdict, Reject)
        m = REASON.match(verdict.reason)
        assert m, verdict.reason
        assert verdict.reason.startswith(f"{expected[0]}.{expected[1].removeprefix('gopher_')}: ")
        value, rest = m.group(2), m.group(3)
        bound = re.search(r"([<>]) (\S+)$", rest)
        if bound:  # "0.0357 lines ending in punctuation < 0.12": the value really fails the bound
            v, limit = float(value), float(bound.group(2))
            assert (v < limit) if bound.group(1) == "<" else (v > limit), verdict.reason
    assert 0.2 * len(sample) < rejected < 0.9 * len(sample)


def test_chinese_and_japanese_pages_survive_word_rules(eval_docs):
    """Translated man pages in zh/ja: qurate's script-aware words and per-language thresholds keep most of
    them; datatrove's English settings would reject them all on word length."""
    docs = [{"id": f"{i}", "text": d["text"], "source": f"debian/manpages-{d['lang']}", "lang": d["lang"]}
            for i, d in enumerate(eval_docs) if d["kind"] == "doc" and d["lang"] in ("zh", "ja")]
    assert len(docs) >= 40
    qurate = HeuristicsDecider(HeuristicsConfig())
    english = HeuristicsDecider(HeuristicsConfig(lang_overrides={}))
    kept = [d for d in docs if isinstance(qurate.decide(d), Keep)]
    english_reasons = [v.reason for v in map(english.decide, docs) if isinstance(v, Reject)]
    assert len(kept) >= 0.7 * len(docs)
    assert len(english_reasons) >= 0.9 * len(docs)
    word_rules = [r for r in english_reasons if r.startswith(("gopher_quality.below_avg_threshold",
                                                             "gopher_quality.enough_stop_words"))]
    assert len(word_rules) >= 0.8 * len(english_reasons), english_reasons
    thai = " ".join(d["text"] for d in eval_docs if d["lang"] == "th" and d["kind"] == "sentence")
    assert len(TOKENIZER.word_tokenize(thai)) > 0.5 * len(thai.replace(" ", ""))  # characters, not lines


def test_stop_words_follow_the_language(eval_docs):
    """German pages are not held to English stop words; without a list for a language the rule is skipped."""
    decider = HeuristicsDecider(HeuristicsConfig())
    german = [d for d in eval_docs if d["lang"] == "de" and d["kind"] == "doc"][:20]
    reasons = [decider.decide({"id": "x", "text": d["text"], "source": "debian/manpages-de", "lang": "de"})
               for d in german]
    as_english = [decider.decide({"id": "x", "text": d["text"], "source": "debian/manpages-de", "lang": "en"})
                  for d in german]
    n_german = sum(isinstance(r, Reject) and "stop_words" in r.reason for r in reasons)
    n_english = sum(isinstance(r, Reject) and "stop_words" in r.reason for r in as_english)
    assert n_german <= 2 and n_english >= 10  # (a catalogue of language names has no stop words at all)
    no_list = decider.decide({"id": "x", "text": german[0]["text"], "source": "debian/x", "lang": "xx"})
    assert not (isinstance(no_list, Reject) and "stop_words" in no_list.reason)


def test_code_and_math_sources_get_no_prose_rules(sample):
    """Real Python source (datatrove's own) and real arXiv LaTeX: dropped by prose rules as web pages, kept
    as code/math sources, where only the repetition rules apply."""
    import datatrove.pipeline.filters.gopher_quality_filter as module

    code = Path(module.__file__).read_text(encoding="utf-8")
    latex = [d for d in sample if "arxiv" in d["source"]] or [None]
    decider = HeuristicsDecider(HeuristicsConfig())
    as_web = decider.decide({"id": "c", "text": code, "source": "web/page", "lang": "en"})
    assert isinstance(as_web, Reject) and not as_web.reason.startswith("gopher_repetition")
    assert isinstance(decider.decide({"id": "c", "text": code, "source": "github/code", "lang": "en"}), Keep)
    for doc in latex:
        if doc is None:
            continue
        as_math = decider.decide({**doc, "source": "redpajama-sample/arxiv"})
        assert isinstance(as_math, Keep) or as_math.reason.startswith("gopher_repetition.")
        as_page = decider.decide({**doc, "source": "web/page"})
        assert isinstance(as_page, Reject)  # by a prose rule (line punctuation, curly brackets, ...)


def test_recipe_errors_name_the_key():
    from qurate.pipelines.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match="heuristics.fineweb.short_line_len"):
        parse_recipe({"heuristics": {"fineweb": {"short_line_len": 3}}})
    with pytest.raises(RecipeError, match="lang_overrides.zh.gopher"):
        parse_recipe({"heuristics": {"lang_overrides": {"zh": {"gopher": {}}}}})
    with pytest.raises(RecipeError, match="lang_overrides.zh.c4"):
        parse_recipe({"heuristics": {"lang_overrides": {"zh": {"c4": {"min_num_sentence": 2}}}}})
    with pytest.raises(RecipeError, match="source_rules"):
        parse_recipe({"heuristics": {"source_rules": {"*": ["gopher", "c4"]}}})


def test_start_up_check_names_the_key():
    ok = CustomFilterSpec(name="ok", filter=f"{__name__}:fragile")
    STAGE.check(HeuristicsConfig(custom=[ok]), StageContext())
    missing = CustomFilterSpec(name="x", filter="no_such_filter_anywhere")
    with pytest.raises(ValueError, match=r"bad value for 'heuristics.custom.1.filter': no entry point"):
        STAGE.check(HeuristicsConfig(custom=[ok, missing]), StageContext())
    not_callable = CustomFilterSpec(name="x", filter="qurate.filters.heuristics:FAMILIES")
    with pytest.raises(ValueError, match=r"'heuristics.custom.0.filter': .*FAMILIES is tuple"):
        STAGE.check(HeuristicsConfig(custom=[not_callable]), StageContext())


def fragile(doc: dict) -> bool | tuple[bool, str]:
    """A custom filter (named by dotted path below): raises on one doc, rejects another with a reason."""
    if "POISON" in doc["text"]:
        raise ValueError("cannot handle a document with POISON")
    if "DROP-ME" in doc["text"]:
        return False, "marked: DROP-ME found"
    return True


def test_stage_transform_keeps_rejects_and_dead_letters(sample):
    """The stage as the pipeline builds it: kept docs untouched, rule rejections with the measured value, a
    custom filter's rejection with its reason, and the one doc the custom filter raises on in the dead letter
    alone; the summed stats give the report's tables."""
    from qurate.pipelines.decide import DEAD_LETTER, KEPT, REJECTED, STATS, build_stage

    config = HeuristicsConfig(custom=[CustomFilterSpec(name="fragile", filter=f"{__name__}:fragile")])
    local = HeuristicsDecider(config)
    local.setup()
    verdicts = [local.decide(d) for d in sample[:200]]
    passing = [d for d, v in zip(sample[:200], verdicts) if isinstance(v, Keep)][:8]
    failing = [(d, v.reason) for d, v in zip(sample[:200], verdicts) if isinstance(v, Reject)][:12]
    assert len(passing) >= 4 and len(failing) >= 4
    poisoned = {**passing[0], "id": "poisoned", "text": passing[0]["text"] + "\nPOISON"}
    marked = {**passing[1], "id": "marked", "text": passing[1]["text"] + "\nDROP-ME"}
    docs = [*passing[2:], *(d for d, _ in failing), poisoned, marked]
    expected_rejected = [(d["id"], r) for d, r in failing] + [("marked", "fragile.marked: DROP-ME found")]

    def check_stats(pairs):
        stats: dict = {}
        for key, value in pairs:
            acc = stats.setdefault(key, {})
            for field, number in value.items():
                acc[field] = acc.get(field, 0) + number
        assert stats[rule_key("fragile.marked")] == {"docs": 1}
        lang = str(marked.get("lang"))
        assert stats[lang_rule_key(lang, "fragile.marked")] == {"docs": 1}
        assert sum(v.get("kept", 0) for k, v in stats.items() if k[0] == lang_key(lang)[0]) == len(passing) - 2
        section = report(stats, config)
        assert section["summary"]["docs in"] == len(docs) - 1  # the dead-letter doc has no verdict
        assert section["summary"]["rejected"] == len(expected_rejected)
        rule_rows = {row[0]: row[1] for row in section["tables"][0]["rows"]}
        assert sum(rule_rows.values()) == len(expected_rejected) and rule_rows["fragile.marked"] == 1
        assert "Custom filters: fragile." in section["notes"][1]

    with BeamPipeline() as p:
        out = p | beam.Create(docs) | build_stage(STAGE, config, StageContext())
        assert_that(out[KEPT] | "Kept" >> beam.Map(lambda d: (d["id"], d["text"])),
                    equal_to([(d["id"], d["text"]) for d in passing[2:]]), label="kept")
        assert_that(out[REJECTED] | "Reasons" >> beam.Map(lambda d: (d["id"], d["reason"])),
                    equal_to(expected_rejected), label="rejected")
        assert_that(out[REJECTED] | "Stage" >> beam.Map(lambda d: d["stage"]) | beam.Distinct(),
                    equal_to(["heuristics"]), label="stage")
        assert_that(out[DEAD_LETTER] | "Dead" >> beam.Map(lambda e: (e["id"], e["stage"], e["error"].split(" at ")[0])),
                    equal_to([("poisoned", "heuristics", "ValueError: cannot handle a document with POISON")]),
                    label="dead")
        assert_that(out[STATS], check_stats, label="stats")


@pytest.fixture(scope="module")
def inprocess_run(corpus_slice, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("q3") / "out")
    assert run_cli(["run", "--input", str(corpus_slice), "--output", out, "--stages", "langid,heuristics"]) == 0
    return out


def test_langid_then_heuristics_from_the_command_line(corpus_slice, inprocess_run):
    """Acceptance 1 on a slice of the bundled sample: lang/lang_score on every kept doc, a "rule: value"
    reason on every rejected one, a language-ID section and per-rule rejection tables in the report."""
    tmp_out = inprocess_run
    kept = read_rows(tmp_out, "docs")
    rejected = read_rows(tmp_out, "rejected")
    n_in = sum(1 for line in corpus_slice.read_text().splitlines() if line.strip())
    assert len(kept) + len(rejected) + len(read_rows(tmp_out, "dead_letter")) == n_in
    assert kept and all(r["lang"] and 0 < r["lang_score"] <= 1 for r in kept)
    assert {r["stage"] for r in rejected} == {"langid", "heuristics"}
    assert all(re.match(r"^[\w.]+: \S", r["reason"]) for r in rejected)
    assert len(kept) > 0.4 * n_in
    report = json.loads((Path(tmp_out) / "report.json").read_text())
    langid = report["stages"]["langid"]
    assert langid["summary"]["docs identified"] == n_in
    assert any(t["title"] == "Language ID by language" for t in langid["tables"])
    heuristics = {t["title"]: t for t in report["stages"]["heuristics"]["tables"]}
    rule_rows = next(t for title, t in heuristics.items() if title.startswith("Rejections by rule"))["rows"]
    assert sum(r[1] for r in rule_rows) == sum(1 for r in rejected if r["stage"] == "heuristics")
    assert {r["rule"] for r in report["rejections"] if r["stage"] == "heuristics"} == {r[0] for r in rule_rows}
    assert "Language ID" in (Path(tmp_out) / "report.html").read_text()


def test_same_docs_and_reasons_with_two_worker_processes(corpus_slice, inprocess_run, tmp_out):
    """Models are loaded in each worker's setup() (never pickled): two worker processes give the same kept
    docs and the same rejections, reasons included, as one in-process run."""
    assert run_cli(["run", "--input", str(corpus_slice), "--output", tmp_out, "--stages", "langid,heuristics",
                    *runner_args_for("multiprocess")]) == 0
    for subdir in ("docs", "rejected"):
        assert rows_digest(read_rows(tmp_out, subdir)) == rows_digest(read_rows(inprocess_run, subdir)), subdir
