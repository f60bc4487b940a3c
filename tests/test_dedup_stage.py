"""The dedup stage end to end through the CLI: planted exact and near duplicates of real docs are removed with
reasons naming cluster and survivor, identically on the in-process, multi-process and portable runners."""

from __future__ import annotations

import json
import random
from pathlib import Path

import apache_beam as beam
import pytest
from conftest import RUNNER_KINDS, read_rows, rows_digest, run_cli, write_jsonl
from qurate.pipelines.recipe import parse_recipe
from qurate.pipelines.runners import make_pipeline, pipeline_options
from qurate.pipelines.stage_dedup import _SignFn, build


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


def _run_stage(docs: list[dict], overrides: dict, tmp_path: Path) -> tuple[list[dict], list[dict], dict]:
    pipeline = make_pipeline(pipeline_options([]))
    result = pipeline | beam.Create(docs, reshuffle=False) | build(parse_recipe({"dedup": overrides}))
    for tag in ("kept", "rejected", "stats"):
        _ = (result[tag] | f"J{tag}" >> beam.Map(json.dumps, default=str)
             | f"W{tag}" >> beam.io.WriteToText(str(tmp_path / tag)))
    pipeline.run().wait_until_finish()
    rows = {tag: [json.loads(line) for p in tmp_path.glob(f"{tag}*") for line in p.open()]
            for tag in ("kept", "rejected", "stats")}
    stats: dict = {}
    for key, value in rows["stats"]:
        slot = stats.setdefault(tuple(key), {})
        for name, number in value.items():
            slot[name] = slot.get(name, 0) + number
    return rows["kept"], rows["rejected"], stats


def test_too_few_rounds_are_reported_and_remove_nothing_wrongly(tmp_path):
    # A chain of near duplicates (each a few edits from the previous one, far from the ones before): the graph
    # is a path in random id order, which needs several large-star/small-star rounds to become a star.
    rng = random.Random(2)
    words = [f"t{i}" for i in range(400)]
    chain = []
    for i in range(40):
        for k in range(8):
            words[rng.randrange(len(words))] = f"e{i}.{k}"
        chain.append({"id": f"c{rng.randrange(10**9):09d}", "text": " ".join(words)})
    overrides = {"max_rounds": 1, "threshold": 0.72, "lsh_threshold": 0.6}
    kept, rejected, stats = _run_stage(chain, overrides, tmp_path / "one")
    assert len(kept) + len(rejected) == len(chain)
    assert stats[("cc", "vertices")]["unconverged"] > 0
    kept_full, rejected_full, stats_full = _run_stage(chain, {**overrides, "max_rounds": 8}, tmp_path / "eight")
    assert stats_full[("cc", "vertices")]["unconverged"] == 0
    assert len(kept_full) == 1 and len(rejected_full) == len(chain) - 1
    # With too few rounds some clusters stay split (more kept), never more removed than with convergence.
    assert len(kept) > 1


def test_a_doc_that_breaks_signing_goes_to_dead_letter():
    fn = _SignFn(parse_recipe({}).dedup)
    fn.setup()
    good = {"id": "ok", "text": "plain words here"}
    outputs = list(fn.handle_batch([good, {"id": "bad", "text": None}]))
    dead = [o.value for o in outputs if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == "dead_letter"]
    assert [d["id"] for d in dead] == ["bad"] and dead[0]["stage"] == "dedup"
    assert [o for o in outputs if not isinstance(o, beam.pvalue.TaggedOutput)][0][1] == good


def test_exact_only_and_near_only(tmp_path):
    words = " ".join(f"word{i}" for i in range(300))
    docs = [{"id": "orig", "text": words}, {"id": "copy", "text": words + "\n"},
            {"id": "near", "text": words.replace("word7 ", "other ")}, {"id": "other", "text": "unrelated text"}]
    kept, rejected, _ = _run_stage(docs, {"near": False}, tmp_path / "exact")
    assert {d["id"] for d in rejected} == {"orig"}  # the longer copy survives; the near copy stays
    kept, rejected, _ = _run_stage(docs, {"exact": False}, tmp_path / "near")
    assert {d["id"] for d in kept} == {"copy", "other"}
    assert all(r["reason"].startswith("near_duplicate: jaccard~") for r in rejected)
