"""Benchmark decontamination (issue 4): Qwen2.5's 13-gram + LCS rule on real bundled benchmark items."""

from __future__ import annotations

import gzip
import json
import pickle
import random
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamPipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import read_rows, run_cli, write_jsonl
from qurate.decontam.config import BenchmarkFile, DecontamConfig, bundled_names
from qurate.decontam.lcs import lcs_length, lcs_span
from qurate.decontam.normalize import normalize, normalized_words
from qurate.decontam.sources import bundled_items
from qurate.decontam.stage import STAGE, DecontamDecider, checked_key, contaminated_key, hits_key, report
from qurate.spec import StageContext
from qurate.verdicts import Keep, Reject

REPO = Path(__file__).resolve().parents[1]
FILLER = ("The committee met on Tuesday to review the budget for the new library wing, and after a long "
          "discussion about parking, lighting and the reading room, the members agreed to meet again next month.")


def _items(name: str, k: int = 5) -> list:
    return [it for _, it in zip(range(k), bundled_items(name))]


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> DecontamConfig:
    return DecontamConfig(benchmarks=["gsm8k", "mmlu", "humaneval"],
                          cache_dir=str(tmp_path_factory.mktemp("decontam_cache")))


@pytest.fixture(scope="module")
def decider(small_config) -> DecontamDecider:
    d = DecontamDecider(small_config, "qwen2.5")
    d.setup()
    return d


def _decide(decider: DecontamDecider, text: str, doc_id: str = "d1"):
    return decider.decide({"id": doc_id, "text": text, "source": "t"})


# ------------------------------------------------------------------------------------------ building blocks


def test_lcs_agrees_with_dynamic_programming():
    def dp(a, b):
        prev = [0] * (len(b) + 1)
        for x in a:
            cur = [0]
            for j, y in enumerate(b):
                cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
            prev = cur
        return prev[-1]

    rng = random.Random(7)
    for _ in range(400):
        a = [rng.randrange(6) for _ in range(rng.randrange(0, 90))]  # > 64 positions: several machine words
        b = [rng.randrange(6) for _ in range(rng.randrange(0, 120))]
        length = lcs_length(a, b)
        assert length == dp(a, b)
        if length:
            s, e = lcs_span(a, b, length)
            assert dp(a, b[s:e]) == length


def test_normalization_defeats_reformatting_and_keeps_offsets():
    original = "Which is larger?\nA. Seven apples\nB. Five pears\nAnswer: A. Seven apples"
    reformatted = "which   is LARGER ?  (1) seven apples (2) five pears answer: (a) SEVEN APPLES"
    assert normalize(original) == normalize(reformatted) == (
        " which is larger seven apples five pears answer seven apples")
    text = "Ünïcode ﬁne—text, (b) here"
    words = normalized_words(text)
    assert [w for w, _, _ in words] == normalize(text).split()
    assert [text[s:e] for _, s, e in words] == ["Ünïcode", "ﬁne", "text", "here"]


# ------------------------------------------------------------------------------------------ the rule


def test_verbatim_reformatted_and_partial_items_are_caught(decider):
    item = _items("gsm8k", 3)[2]
    verbatim = f"{FILLER}\n{item.text}\n{FILLER}"
    reformatted = f"{FILLER} " + " ".join(item.text.upper().split()) + f" {FILLER}"
    words = item.text.split()
    m = len(decider.detector.tokens([item.text])[0])
    k = next(k for k in range(len(words)) if len(decider.detector.tokens([" ".join(words[-k:])])[0]) >= 0.7 * m)
    partial = f"{FILLER} " + " ".join(words[-k:]) + f" {FILLER}"  # the last 70 % of the item's tokens
    for text in (verbatim, reformatted, partial):
        verdict = _decide(decider, text)
        assert isinstance(verdict, Reject), text[:200]
        assert verdict.reason.startswith(f"contaminated: {item.id} lcs=")
    clean = _decide(decider, FILLER * 3)
    assert isinstance(clean, Keep) and clean.doc["text"] == FILLER * 3


def test_item_shorter_than_13_tokens_cannot_contaminate(tmp_path):
    path = write_jsonl(tmp_path / "tiny.jsonl", [
        {"id": "short", "question": "What is two plus two?", "answer": "Four."},
        {"id": "long", "question": "A farmer has 17 sheep and all but 9 run away through a hole in the fence",
         "answer": "so the farmer is left with exactly 9 sheep standing in the field."},
    ])
    cfg = DecontamConfig(benchmarks=[], files=[{"path": str(path), "benchmark": "tiny",
                                                "text_fields": ["question", "answer"]}], cache_dir="")
    d = DecontamDecider(cfg, "qwen2.5")
    assert d.detector.index.summary()["tiny"] == {"items": 2, "too_short": 1, "ngrams": d.detector.index.summary()[
        "tiny"]["ngrams"]}
    kept = _decide(d, f"{FILLER} What is two plus two? Four. {FILLER}")
    assert isinstance(kept, Keep)
    caught = _decide(d, f"{FILLER} A farmer has 17 sheep and all but 9 run away through a hole in the fence, so "
                        f"the farmer is left with exactly 9 sheep standing in the field. {FILLER}")
    assert isinstance(caught, Reject) and caught.reason.startswith("contaminated: tiny/long lcs=")


def test_document_shorter_than_the_item(decider):
    item = next(it for it in _items("humaneval", 10) if len(it.text) > 600)
    fragment = " ".join(item.text.split()[:25])  # a short doc: a slice of a long item
    verdict = _decide(decider, fragment)
    assert isinstance(verdict, Reject)
    assert "ratio=1.00" in verdict.reason  # min(|doc|, |item|) is the document's length
    lcs = int(verdict.reason.split("lcs=")[1].split()[0])
    assert lcs == len(decider.detector.tokens([fragment])[0]) and lcs >= 13
    # Shorter than 13 tokens: below Qwen's absolute threshold, so never contaminated.
    assert isinstance(_decide(decider, " ".join(item.text.split()[:4])), Keep)


def test_document_contaminated_by_two_benchmarks(decider):
    gsm, mmlu = _items("gsm8k", 1)[0], _items("mmlu", 30)[29]
    verdict = _decide(decider, f"{FILLER}\n{gsm.text}\n{FILLER}\n{mmlu.text}\n{FILLER}")
    assert isinstance(verdict, Reject)
    assert gsm.id in verdict.reason and mmlu.id in verdict.reason
    assert {k for k in verdict.stats if k[0] == "hits"} == {hits_key("gsm8k"), hits_key("mmlu")}
    assert verdict.stats[contaminated_key()] == {"docs": 1}


def test_excise_mode_cuts_the_item_and_keeps_the_rest(small_config):
    d = DecontamDecider(small_config.model_copy(update={"action": "excise"}), "qwen2.5")
    item = _items("gsm8k", 5)[4]
    before, after = "Opening paragraph of a blog post.", "Closing words by the author, thanks for reading."
    verdict = _decide(d, f"{before}\n\n{item.text}\n\n{after}")
    assert isinstance(verdict, Keep)
    text = verdict.doc["text"]
    assert before in text and after in text
    assert isinstance(_decide(d, text), Keep)  # what is left passes the rule
    assert len(text) < len(before) + len(after) + 10
    assert verdict.stats[("excised",)]["spans"] == 1
    only = _decide(d, item.text)  # nothing would be left: the doc is dropped
    assert isinstance(only, Reject) and only.stats[("excise_failed", "nothing left")] == {"docs": 1}


def test_clean_real_documents_are_kept(decider):
    with gzip.open(REPO / "pipelines" / "data" / "sample_corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for _, line in zip(range(300), handle)]
    verdicts = decider.decide_batch(docs)
    assert all(isinstance(v, Keep) for v in verdicts)


def test_user_parquet_with_a_field_mapping(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    gsm, mmlu = _items("gsm8k", 8)[7], _items("mmlu", 8)[7]
    question, answer = gsm.text.split("\n", 1)
    pq.write_table(pa.table({"name": ["q-7", "q-8"], "suite": ["mathx", "triviax"],
                             "prompt": [question, mmlu.text], "solution": [answer, None]}),
                   tmp_path / "evals.parquet")
    cfg = DecontamConfig(benchmarks=[], cache_dir="", files=[{
        "path": str(tmp_path / "*.parquet"), "id_field": "name", "benchmark_field": "suite",
        "text_fields": ["prompt", "solution"]}])
    d = DecontamDecider(cfg, "qwen2.5")
    assert sorted(d.detector.index.benchmarks) == ["mathx", "triviax"]
    first = _decide(d, f"{FILLER}\n{answer}")  # the mapped second field alone is enough
    assert isinstance(first, Reject) and first.reason.startswith("contaminated: mathx/q-7 lcs=")
    second = _decide(d, mmlu.text.lower())
    assert isinstance(second, Reject) and second.reason.startswith("contaminated: triviax/q-8 lcs=")


def test_hf_loader_reads_a_local_dataset(tmp_path, monkeypatch):
    import datasets  # noqa: F401  (a test extra: a missing install must fail here, not skip)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    item = _items("truthfulqa", 3)[2]
    (tmp_path / "ds").mkdir()
    write_jsonl(tmp_path / "ds" / "test.jsonl", [{"q": item.text.split("\n")[0], "a": item.text.split("\n", 1)[1]}])
    cfg = DecontamConfig(benchmarks=[], hf=[{"name": "json", "data_files": str(tmp_path / "ds" / "test.jsonl"),
                                             "split": "train", "benchmark": "tqa", "text_fields": ["q", "a"]}])
    verdict = _decide(DecontamDecider(cfg, "qwen2.5"), f"{FILLER}\n{item.text}")
    assert isinstance(verdict, Reject) and verdict.reason.startswith("contaminated: tqa/0 lcs=")


def test_index_is_cached_on_disk_and_reloaded(tmp_path, monkeypatch):
    import numpy as np
    from qurate.decontam import index as index_module
    from qurate.tokenizer import load_tokenizer

    monkeypatch.setattr(index_module, "_INDEXES", {})
    (tmp_path / "index-0123.npz").write_bytes(b"an index of an older normalization version")
    cfg = DecontamConfig(benchmarks=["humaneval"], cache_dir=str(tmp_path))
    built = index_module.get_index(cfg, load_tokenizer("qwen2.5"))
    files = [p.name for p in tmp_path.glob("index-*.npz")]
    assert len(files) == 1 and files[0].startswith(f"index-v{index_module.NORMALIZATION_VERSION}-")
    monkeypatch.setattr(index_module, "_INDEXES", {})  # a fresh process: loads the file instead of building
    loaded = index_module.get_index(cfg, load_tokenizer("qwen2.5"))
    assert loaded is not built and loaded.item_ids == built.item_ids and loaded.benchmarks == ["humaneval"]
    for name in ("keys", "key_item", "tokens", "offsets", "filter"):
        assert np.array_equal(getattr(loaded, name), getattr(built, name)), name


def test_bundled_benchmarks_match_their_provenance():
    """Every bundled file loads, and its item count is the one PROVENANCE.md states for it."""
    table = (REPO / "decontam" / "data" / "PROVENANCE.md").read_text(encoding="utf-8")
    stated = {cells[1]: int(cells[2]) for line in table.splitlines() if line.startswith("| ")
              for cells in [[c.strip() for c in line.split("|")]] if cells[2].isdigit()}
    counted = {}
    for name in bundled_names():
        ids = [it.id for it in bundled_items(name)]
        assert len(ids) == len(set(ids)) and all(it.text.strip() for it in bundled_items(name)), name
        counted[name] = len(ids)
    assert counted == stated and len(counted) == 11


def test_config_errors_name_the_key():
    from qurate.pipelines.recipe import RecipeError, parse_recipe

    with pytest.raises(RecipeError, match="decontam.benchmarks.*unknown benchmark 'gsm9k'"):
        parse_recipe({"decontam": {"benchmarks": ["gsm9k"]}})
    with pytest.raises(RecipeError, match="decontam.min_ratio"):
        parse_recipe({"decontam": {"min_ratio": 1.5}})
    assert set(bundled_names()) >= {"gsm8k", "math", "mmlu", "humaneval", "mbpp", "arc_challenge", "hellaswag",
                                    "truthfulqa", "winogrande", "ifeval"}


# ------------------------------------------------------------------------------------------ Beam


def test_start_up_check_names_the_key(tmp_path):
    present = write_jsonl(tmp_path / "mine.jsonl", [{"id": 1, "text": "x"}])
    cfg = DecontamConfig(benchmarks=[], files=[BenchmarkFile(path=str(present)),
                                               BenchmarkFile(path=str(tmp_path / "gone-*.jsonl"))])
    with pytest.raises(ValueError, match=r"bad value for 'decontam.files.1.path': no file matches .*gone-"):
        STAGE.check(cfg, StageContext())
    STAGE.check(cfg.model_copy(update={"files": cfg.files[:1]}), StageContext())


def test_decider_pickles_without_its_index_and_the_stage_round_trips_the_runner_api(small_config):
    from qurate.pipelines.decide import build_stage

    decider = STAGE.decider(small_config, StageContext(tokenizer="qwen2.5", seed=3))
    decider.setup()  # even after setup in the launcher, the index is not shipped
    assert len(pickle.dumps(decider)) < 10_000 and decider.seed == 3
    pipeline = beam.Pipeline()
    _ = pipeline | beam.Create([{"id": "a", "text": "x"}]) | build_stage(STAGE, small_config, StageContext())
    proto = pipeline.to_runner_api()
    assert any(t.unique_name.startswith("decontam/") for t in proto.components.transforms.values())


def test_stage_transform_keeps_rejects_and_dead_letters(corpus_slice, small_config):
    """The stage as the pipeline builds it: clean docs kept, planted benchmark items rejected with the item and
    its LCS in the reason, a malformed doc (its text is a number) alone in the dead letter, and stats whose
    examples are picked by the wiring and shown by the report."""
    from qurate.pipelines.decide import DEAD_LETTER, KEPT, REJECTED, STATS, build_stage

    clean = [json.loads(line) for line in corpus_slice.read_text(encoding="utf-8").splitlines()[:12]]
    gsm, mmlu = _items("gsm8k", 4)[3], _items("mmlu", 6)[5]
    planted = [{"id": "plant-gsm", "text": f"{FILLER}\n{gsm.text}", "source": "web/p"},
               {"id": "plant-mmlu", "text": f"{mmlu.text}\n{FILLER}", "source": "web/p"}]
    broken = {"id": "bad", "text": 12345, "source": "web/p"}

    def check_stats(pairs):
        stats: dict = {}
        for key, value in pairs:
            acc = stats.setdefault(key, {})
            for field, number in value.items():
                acc[field] = acc.get(field, 0) + number
        assert stats[checked_key()]["docs"] == len(clean) + 2 and stats[contaminated_key()] == {"docs": 2}
        assert stats[hits_key("gsm8k")]["docs"] == 1 and stats[hits_key("mmlu")]["docs"] == 1
        assert not any(key[0] == "_example" for key in stats)  # candidates never reach the report
        section = report(stats, small_config)
        assert section["summary"]["contaminated docs"] == 2
        assert {row[0]: row[1] for row in section["tables"][0]["rows"]} == {"gsm8k": 1, "mmlu": 1}
        titles = sorted(e["title"] for e in section["examples"])
        assert len(titles) == 2 and titles[0].startswith(f"plant-gsm: contaminated: {gsm.id} lcs=")
        assert titles[1].startswith(f"plant-mmlu: contaminated: {mmlu.id} lcs=")

    with BeamPipeline() as p:
        out = (p | beam.Create([*clean, *planted, broken])
               | build_stage(STAGE, small_config, StageContext(report_examples=3)))
        assert_that(out[KEPT] | "Kept" >> beam.Map(lambda d: d["id"]), equal_to([d["id"] for d in clean]),
                    label="kept")
        assert_that(out[REJECTED] | "Reasons" >> beam.Map(lambda d: (d["id"], d["stage"], d["reason"].split(" lcs=")[0])),
                    equal_to([("plant-gsm", "decontam", f"contaminated: {gsm.id}"),
                              ("plant-mmlu", "decontam", f"contaminated: {mmlu.id}")]), label="rejected")
        assert_that(out[DEAD_LETTER] | "Dead" >> beam.Map(lambda e: (e["id"], e["stage"])),
                    equal_to([("bad", "decontam")]), label="dead")
        assert_that(out[STATS], check_stats, label="stats")


def test_stage_end_to_end_through_the_cli(tmp_path, corpus_slice, small_config):
    clean = [json.loads(line) for line in corpus_slice.read_text(encoding="utf-8").splitlines()[:40]]
    gsm, mmlu, he = _items("gsm8k", 2)[1], _items("mmlu", 12)[11], _items("humaneval", 1)[0]
    planted = [
        {"id": "plant-gsm", "text": f"{clean[0]['text'][:500]}\n{gsm.text}", "source": "web/plants"},
        {"id": "plant-two", "text": f"{mmlu.text}\n\n{FILLER}\n{he.text.upper()}", "source": "web/plants"},
    ]
    inp = write_jsonl(tmp_path / "in.jsonl", clean + planted)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"decontam": {"benchmarks": small_config.benchmarks,
                                               "cache_dir": small_config.cache_dir}}))
    out = tmp_path / "out"
    assert run_cli(["run", str(recipe), "--input", str(inp), "--output", str(out), "--stages", "decontam"]) == 0
    rejected = {r["id"]: r["reason"] for r in read_rows(out, "rejected")}
    assert set(rejected) == {"plant-gsm", "plant-two"}
    assert rejected["plant-gsm"].startswith(f"contaminated: {gsm.id} lcs=")
    assert mmlu.id in rejected["plant-two"] and he.id in rejected["plant-two"]
    assert len(read_rows(out, "docs")) == len(clean)
    report = json.loads((out / "report.json").read_text())
    section = report["stages"]["decontam"]
    assert section["summary"]["contaminated docs"] == 2 and section["summary"]["docs checked"] == len(clean) + 2
    per_bench = {row[0]: row[1] for row in section["tables"][0]["rows"]}
    assert per_bench == {"gsm8k": 1, "mmlu": 1, "humaneval": 1}
    assert len(section["examples"]) == 2 and all("contaminated:" in e["title"] for e in section["examples"])
    html = (out / "report.html").read_text()
    assert 'id="stage-decontam"' in html


def test_stage_excise_mode_end_to_end(tmp_path, corpus_slice, small_config):
    clean = [json.loads(line) for line in corpus_slice.read_text(encoding="utf-8").splitlines()[:10]]
    gsm, he = _items("gsm8k", 3)[2], _items("humaneval", 2)[1]
    host = clean[0]["text"][:400]
    planted = [{"id": "plant-ex", "text": f"{host}\n{gsm.text}\n\n{FILLER}\n{he.text.upper()}", "source": "web/p"},
               {"id": "plant-only", "text": gsm.text, "source": "web/p"}]
    inp = write_jsonl(tmp_path / "in.jsonl", clean + planted)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"decontam": {"benchmarks": small_config.benchmarks, "action": "excise",
                                               "cache_dir": small_config.cache_dir}}))
    out = tmp_path / "out"
    assert run_cli(["run", str(recipe), "--input", str(inp), "--output", str(out), "--stages", "decontam"]) == 0
    assert [r["id"] for r in read_rows(out, "rejected")] == ["plant-only"]  # nothing would be left of it
    kept = {r["id"]: r["text"] for r in read_rows(out, "docs")}
    assert len(kept) == len(clean) + 1
    assert kept["plant-ex"].startswith(host.strip()[:200]) and FILLER in kept["plant-ex"]
    assert gsm.text[:60] not in kept["plant-ex"] and "DEF " not in kept["plant-ex"]
    summary = json.loads((out / "report.json").read_text())["stages"]["decontam"]["summary"]
    assert summary["docs excised (kept)"] == 1 and summary["spans excised"] == 2
    assert summary["dropped: excision nothing left"] == 1
