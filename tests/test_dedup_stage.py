"""The dedup transform (``qurate.pipelines.dedup_graph``) under Beam's TestPipeline: exact and near copies removed
with reasons naming cluster and survivor, a doc that breaks signing dead-lettered, unconverged components reported;
and once end to end through the CLI, identically on the in-process, multi-process and portable runners."""

from __future__ import annotations

import json
import random
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from conftest import RUNNER_KINDS, read_rows, rows_digest, run_cli, write_jsonl
from qurate.dedup.config import DedupConfig
from qurate.pipelines.dedup_graph import build
from qurate.spec import StageContext


def _edit(text: str, rng: random.Random, every: int) -> str:
    words = text.split(" ")
    for i in range(0, len(words), every):
        j = min(len(words) - 1, i + rng.randrange(every))
        words[j] = f"w{rng.randrange(10**6)}"
    return " ".join(words)


@pytest.fixture(scope="module")
def planted(corpus_slice: Path, tmp_path_factory) -> tuple[Path, dict]:
    docs = [json.loads(line) for line in corpus_slice.read_text(encoding="utf-8").splitlines()]
    longest = sorted(docs, key=lambda d: -len(d["text"].split(" ")))
    a, b, hot = longest[0], longest[1], longest[2]
    rng = random.Random(1)
    extra = [
        {"id": "a-copy-1", "text": a["text"] + "\n\n", "source": "planted"},  # longest copy: survives
        {"id": "a-copy-2", "text": " " + a["text"], "source": "planted"},
        {"id": "b-near", "text": _edit(b["text"], rng, 150), "source": "planted"},
    ]
    # A hot cluster: 30 near copies of one doc, each with its own edits (one bucket per band would hold them
    # all; star edges keep that linear).
    extra += [{"id": f"hot-{i:02d}", "text": _edit(hot["text"], rng, 200), "source": "planted"} for i in range(30)]
    path = tmp_path_factory.mktemp("dedup") / "planted.jsonl"
    write_jsonl(path, docs + extra)
    return path, {"a": a, "b": b, "hot": hot, "extra": extra}


def test_same_clusters_and_survivors_on_every_runner(planted, tmp_path, runner_args):
    path, info = planted
    digests, outs = set(), {}
    for kind in RUNNER_KINDS:
        out = tmp_path / kind
        assert run_cli(["run", "--input", str(path), "--output", str(out), "--stages", "dedup",
                        *runner_args(kind)]) == 0  # 0 also means: records read = kept + rejected + dead-letter
        kept, rejected = read_rows(out, "docs"), read_rows(out, "rejected")
        digests.add((rows_digest(kept), rows_digest(rejected)))
        outs[kind] = (kept, rejected)
    assert len(digests) == 1, "dedup output differs between runners"

    kept, rejected = outs["inprocess"]
    reasons = {r["id"]: r["reason"] for r in rejected}
    a, b = info["a"]["id"], info["b"]["id"]
    # Exact copies: the longest copy survives; the others name it.
    assert reasons[a].startswith("exact_duplicate: of a-copy-1 (cluster a-copy-1")
    assert reasons["a-copy-2"].startswith("exact_duplicate: of a-copy-1")
    assert {d["id"]: d.get("dedup_cluster") for d in kept}["a-copy-1"] == "a-copy-1"
    # The near copy of b: one of the pair is removed, pointing at the other with its estimated Jaccard.
    pair = {b, "b-near"}
    removed = pair & set(reasons)
    assert len(removed) == 1
    survivor = (pair - removed).pop()
    assert reasons[removed.pop()].startswith("near_duplicate: jaccard~0.")
    # Hot cluster: one survivor (the best by length, then id), 30 removals that all name it.
    family = [info["hot"], *[d for d in info["extra"] if d["id"].startswith("hot-")]]
    best = min(family, key=lambda d: (-len(d["text"]), d["id"]))["id"]
    family_ids = {d["id"] for d in family}
    assert family_ids - set(reasons) == {best}
    for doc_id in family_ids - {best}:
        assert f" of {best} (cluster {best}, 31 docs)" in reasons[doc_id]
    assert all(r["stage"] == "dedup" and r["dedup_cluster"] for r in rejected)
    assert survivor in {d["id"] for d in kept}

    report = json.loads((tmp_path / "inprocess" / "report.json").read_text())
    section = report["stages"]["dedup"]
    assert section["summary"]["exact duplicates removed"] >= 2  # the planted copies (+ natural ones)
    assert section["summary"]["near duplicates removed"] >= 31
    assert section["summary"]["unconverged vertices"] == 0
    curve = section["charts"][0]
    assert "S-curve" in curve["title"] and len(curve["series"]["theoretical P(candidate)"]) == 20


def _dedup(pipeline, docs: list[dict], **overrides):
    return pipeline | beam.Create(docs, reshuffle=False) | build(DedupConfig(**overrides), StageContext())


def _ids(rows) -> list[str]:
    return sorted(r["id"] for r in rows)


def _summed(expected: dict[tuple, dict]):
    """A matcher: the stats summed per key contain ``expected`` (field values compared)."""
    def check(actual):
        summed: dict = {}
        for key, value in actual:
            slot = summed.setdefault(tuple(key), {})
            for name, number in value.items():
                slot[name] = slot.get(name, 0) + number
        for key, fields in expected.items():
            got = {name: summed.get(key, {}).get(name) for name in fields}
            assert got == fields, f"stats {key}: {got} != {fields}"
    return check


WORDS = " ".join(f"word{i}" for i in range(300))


def test_exact_copies_the_best_copy_survives_and_the_others_name_it():
    docs = [{"id": "short", "text": WORDS}, {"id": "long", "text": WORDS + "\n\n"},
            {"id": "ranked", "text": " " + WORDS, "quality_score": 0.9}, {"id": "other", "text": "unrelated text"}]
    with test_pipeline.TestPipeline() as p:
        out = _dedup(p, docs, near=False)
        # quality_score ranks first: the copy that has one survives, then the longest, then the smallest id.
        assert_that(out["kept"] | beam.Map(lambda d: (d["id"], d.get("dedup_cluster"))),
                    equal_to([("ranked", "ranked"), ("other", None)]), label="kept")
        assert_that(out["rejected"] | beam.Map(lambda d: (d["id"], d["stage"], d["reason"])), equal_to([
            ("short", "dedup", "exact_duplicate: of ranked (cluster ranked, 3 docs)"),
            ("long", "dedup", "exact_duplicate: of ranked (cluster ranked, 3 docs)")]), label="rejected")
        assert_that(out["dead_letter"], equal_to([]), label="dead")
        assert_that(out["stats"], _summed({("removed", "exact"): {"docs": 2}, ("exact_groups", "3"): {"groups": 1}}),
                    label="stats")


def test_near_copies_of_real_docs_form_one_cluster(corpus_slice: Path):
    docs = [json.loads(line) for line in corpus_slice.read_text(encoding="utf-8").splitlines()]
    base = max(docs, key=lambda d: len(d["text"].split()))
    rng = random.Random(7)
    copies = [{"id": f"near-{i}", "text": _edit(base["text"], rng, 200)} for i in range(4)]
    family = [base, *copies]
    best = min(family, key=lambda d: (-len(d["text"]), d["id"]))["id"]
    others = sorted(d["id"] for d in family if d["id"] != best)
    ids = {d["id"] for d in family}

    def reasons_name_the_survivor(rows):
        rows = [r for r in rows if r["id"] in ids]  # (the slice has natural duplicates of its own)
        assert _ids(rows) == others, _ids(rows)
        for row in rows:
            rule, rest = row["reason"].split(": ", 1)
            assert rule == "near_duplicate" and float(rest[8:12]) >= 0.8, row["reason"]
            assert rest.endswith(f"of {best} (cluster {best}, 5 docs)") and row["dedup_cluster"] == best

    with test_pipeline.TestPipeline() as p:
        out = _dedup(p, docs + copies)
        assert_that(out["rejected"], reasons_name_the_survivor, label="rejected")
        assert_that(out["kept"] | beam.Map(lambda d: d["id"]) | beam.Filter(lambda i: i in ids), equal_to([best]),
                    label="kept")
        assert_that(out["stats"], _summed({("removed", "near"): {"docs": 4}, ("clusters", "4-5"): {"clusters": 1},
                                          ("cc", "vertices"): {"unconverged": 0}}), label="stats")


def test_a_doc_that_breaks_signing_goes_to_dead_letter_alone():
    docs = [{"id": "ok", "text": WORDS}, {"id": "copy", "text": WORDS + " "}, {"id": "bad", "text": None}]
    with test_pipeline.TestPipeline() as p:
        out = _dedup(p, docs, batch_size=8)
        assert_that(out["dead_letter"] | beam.Map(lambda d: (d["id"], d["stage"], d["error_class"],
                                                              json.loads(d["raw"])["id"])),
                    equal_to([("bad", "dedup", "TypeError", "bad")]), label="dead")
        assert_that(out["kept"] | beam.Map(lambda d: d["id"]), equal_to(["copy"]), label="kept")
        assert_that(out["rejected"] | beam.Map(lambda d: d["id"]), equal_to(["ok"]), label="rejected")


def test_too_few_rounds_are_reported_and_remove_nothing_wrongly():
    # A chain of near duplicates (each a few edits from the previous one, far from the ones before): the graph
    # is a path in random id order, which needs several large-star/small-star rounds to become a star.
    rng = random.Random(2)
    words = [f"t{i}" for i in range(400)]
    chain = []
    for i in range(40):
        for k in range(8):
            words[rng.randrange(len(words))] = f"e{i}.{k}"
        chain.append({"id": f"c{rng.randrange(10**9):09d}", "text": " ".join(words)})
    overrides = {"threshold": 0.72, "lsh_threshold": 0.6, "components": "rounds"}

    def some_unconverged_and_split(summed):
        stats = dict(((tuple(k), v) for k, v in summed))
        assert stats[("cc", "vertices")]["unconverged"] > 0

    with test_pipeline.TestPipeline() as p:
        one = _dedup(p, chain, max_rounds=1, **overrides)
        # With too few rounds some clusters stay split (more kept), never more removed than with convergence.
        assert_that(one["kept"] | "CountOne" >> beam.combiners.Count.Globally() | beam.Map(lambda n: n > 1),
                    equal_to([True]), label="split")
        assert_that(one["stats"] | "SumOne" >> beam.CombinePerKey(_sum_fields), some_unconverged_and_split,
                    label="unconverged")
    with test_pipeline.TestPipeline() as p:
        full = _dedup(p, chain, max_rounds=8, **overrides)
        assert_that(full["kept"] | "CountKept" >> beam.combiners.Count.Globally(), equal_to([1]), label="one kept")
        assert_that(full["rejected"] | "CountRej" >> beam.combiners.Count.Globally(), equal_to([len(chain) - 1]),
                    label="rej")
        assert_that(full["stats"], _summed({("cc", "vertices"): {"unconverged": 0}}), label="converged")


def _sum_fields(values):
    out: dict = {}
    for value in values:
        for name, number in value.items():
            out[name] = out.get(name, 0) + number
    return out


def test_exact_only_and_near_only():
    docs = [{"id": "orig", "text": WORDS}, {"id": "copy", "text": WORDS + "\n"},
            {"id": "near", "text": WORDS.replace("word7 ", "other ")}, {"id": "other", "text": "unrelated text"}]
    with test_pipeline.TestPipeline() as p:
        exact = _dedup(p, docs, near=False)
        assert_that(exact["rejected"] | beam.Map(lambda d: d["id"]), equal_to(["orig"]), label="exact")
    with test_pipeline.TestPipeline() as p:
        near = _dedup(p, docs, exact=False)
        assert_that(near["kept"] | beam.Map(lambda d: d["id"]), equal_to(["copy", "other"]), label="kept")
        assert_that(near["rejected"] | beam.Map(lambda d: d["reason"].split("~")[0]),
                    equal_to(["near_duplicate: jaccard"] * 2), label="near")


def test_output_tags_are_the_stage_contract():
    from qurate.pipelines import decide, dedup_graph

    assert (dedup_graph.KEPT, dedup_graph.REJECTED, dedup_graph.DEAD_LETTER, dedup_graph.STATS) == (
        decide.KEPT, decide.REJECTED, decide.DEAD_LETTER, decide.STATS)


def _chain(seed: int, n: int) -> list[dict]:
    """Near duplicates in a chain (each a few edits from the previous one): a path graph in random id order."""
    rng = random.Random(seed)
    words = [f"t{i}" for i in range(400)]
    chain = []
    for i in range(n):
        for k in range(8):
            words[rng.randrange(len(words))] = f"e{i}.{k}"
        chain.append({"id": f"c{rng.randrange(10**9):09d}", "text": " ".join(words)})
    return chain


def test_union_find_and_converged_rounds_decide_the_same(corpus_slice: Path):
    # Two chains, exact copies and the real slice: every decision (kept with its cluster, rejected with its
    # reason naming the survivor and the cluster size) is the same whichever way the components are found.
    docs = [json.loads(line) for line in corpus_slice.read_text(encoding="utf-8").splitlines()]
    docs += _chain(2, 30) + _chain(7, 12) + [dict(d, id=d["id"] + "-copy") for d in docs[:5]]
    overrides = {"threshold": 0.72, "lsh_threshold": 0.6, "max_rounds": 12}

    def listed(pcoll, tag: str):
        return (pcoll | f"List {tag}" >> beam.combiners.ToList()
                | f"Tag {tag}" >> beam.Map(lambda rows, tag=tag: (tag, sorted(rows))))

    def same_decisions(items):
        got = dict(items)
        assert got["kept rounds"] == got["kept union_find"]
        assert got["rejected rounds"] == got["rejected union_find"]
        reasons = [reason for _, reason in got["rejected rounds"]]
        assert len(reasons) >= 29 + 11 + 5  # each chain but one doc, and the planted copies
        assert any(" 30 docs)" in reason for reason in reasons)
        for method in ("rounds", "union_find"):
            stats = dict(got[f"stats {method}"])
            assert stats[("cc", "vertices")]["unconverged"] == 0
            assert stats[("cc", "vertices")]["vertices"] >= 42
            assert (("cc", "union_find") in stats) == (method == "union_find")

    with test_pipeline.TestPipeline() as p:
        parts = []
        for method in ("rounds", "union_find"):
            out = (p | f"Create {method}" >> beam.Create(docs, reshuffle=False)
                   | f"Dedup {method}" >> build(DedupConfig(components=method, **overrides), StageContext()))
            parts += [
                listed(out["kept"] | f"Kept {method}" >> beam.Map(lambda d: (d["id"], d.get("dedup_cluster"))),
                       f"kept {method}"),
                listed(out["rejected"] | f"Rej {method}" >> beam.Map(lambda d: (d["id"], d["reason"])),
                       f"rejected {method}"),
                listed(out["stats"] | f"Sum {method}" >> beam.CombinePerKey(_sum_fields)
                       | f"Key {method}" >> beam.MapTuple(lambda k, v: (tuple(k), v)), f"stats {method}"),
            ]
        assert_that(parts | beam.Flatten(), same_decisions)
