"""The dedup building blocks without Beam: signatures, shingling, LSH parameters, survivor order, components."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from qurate.dedup import stage
from qurate.dedup.components import components_reference, iterate_components
from qurate.dedup.config import DedupConfig
from qurate.dedup.exact import exact_hash
from qurate.dedup.shingles import (
    shingle_hash,
    shingle_token_hashes,
    token_hash,
    uses_chars,
    word_token_hashes,
    word_tokens,
)
from qurate.dedup.signatures import Signer, jaccard, sketch, sketch_jaccard
from qurate.dedup.survivor import key_id, node_key
from qurate.pipelines.recipe import SAMPLE_CORPUS, RecipeError, parse_recipe


@pytest.fixture(scope="module")
def real_texts() -> list[str]:
    with gzip.open(SAMPLE_CORPUS, "rt", encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle]
    picked = docs[::40][:50]
    picked += [d for d in docs if "manpages-zh" in d.get("source", "")][:2]
    return [d["text"] for d in picked]


def test_signatures_are_datasketch_minhashes(real_texts):
    signer = Signer(num_perm=112, seed=1)
    texts = [*real_texts, "", "one two", "สวัสดีครับ ยินดีต้อนรับสู่ประเทศไทย", "Ünïcödé  ДОБРО пожаловать"]
    sigs = signer.signatures(texts)
    for text, sig in zip(texts, sigs):
        reference = MinHash(num_perm=112, seed=1, hashfunc=shingle_hash)
        reference.update_batch(shingle_token_hashes(text))
        assert np.array_equal(reference.hashvalues, sig), text[:60]
    lean_a, lean_b = signer.to_lean_minhash(sigs[0]), signer.to_lean_minhash(sigs[1])
    assert lean_a.jaccard(lean_b) == pytest.approx(jaccard(sigs[0], sigs[1]))


@pytest.mark.parametrize(("num_perm", "seed"), [(256, 1), (112, 7), (1, 0), (1024, 123)])
def test_permutations_are_datasketchs_without_importing_it(num_perm, seed):
    from qurate.dedup.signatures import SCHEME, permutations

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    ours = permutations(num_perm, seed)
    assert np.array_equal(ours[0], a) and np.array_equal(ours[1], b)
    assert ours[0].dtype == ours[1].dtype == np.uint32


def test_vectorized_tokens_match_the_plain_tokenizer(real_texts):
    hashes, offsets = word_token_hashes(real_texts[:10])
    for i, text in enumerate(real_texts[:10]):
        expected = [token_hash(t) for t in word_tokens(text)]
        assert hashes[offsets[i]: offsets[i + 1]].tolist() == expected


def test_minhash_estimates_jaccard_of_edited_text(real_texts):
    signer = Signer(num_perm=256)
    text = max(real_texts, key=len)
    words = text.split(" ")
    edited = " ".join("XYZ" if i % 25 == 0 else w for i, w in enumerate(words))
    shingles = [set(h.tolist()) for h in signer.shingles([text, edited], [None, None])]
    truth = len(shingles[0] & shingles[1]) / len(shingles[0] | shingles[1])
    a, b = signer.signatures([text, edited])
    assert abs(jaccard(a, b) - truth) < 0.08
    shouted = "".join(c.upper() if c.isascii() else c for c in text)  # (ß.upper() is SS: not a case change)
    assert jaccard(*signer.signatures([shouted, "  ".join(text.split())])) == 1.0  # case/space blind


def test_character_shingles_for_scripts_without_spaces():
    spec = DedupConfig().shingle_spec()
    chinese = "自然语言处理是计算机科学领域与人工智能领域中的一个重要方向。它研究能实现人与计算机之间用自然语言进行有效通信的各种理论和方法。"
    assert uses_chars(chinese, None, spec) and uses_chars("hello", "zh", spec)
    assert not uses_chars(chinese, "en", spec) and not uses_chars("Grüße aus Köln", None, spec)
    signer = Signer(num_perm=256, spec=spec)
    edited = chinese.replace("重要", "主要")
    a, b, c = signer.signatures([chinese, edited, chinese], [None, None, "en"])
    assert 0.6 < jaccard(a, b) < 1.0  # one word changed: most character 5-grams survive
    assert jaccard(a, c) < 0.5  # as "words" the sentence would be two giant tokens


def test_lsh_parameters_come_from_datasketch_and_can_be_overridden():
    cfg = DedupConfig()
    assert cfg.lsh() == _optimal_param(cfg.lsh_threshold, cfg.num_perm, 0.5, 0.5)
    assert DedupConfig(lsh_threshold=None, threshold=0.9, num_perm=128).lsh() == _optimal_param(0.9, 128, 0.5, 0.5)
    assert DedupConfig(bands=20, rows=5).lsh() == (20, 5)
    with pytest.raises(RecipeError, match="dedup"):
        parse_recipe({"dedup": {"bands": 20}})
    with pytest.raises(RecipeError, match="dedup.threshold"):
        parse_recipe({"dedup": {"threshold": 1.5}})


def test_survivor_order_quality_then_length_then_id():
    fields = ["quality_score", "length"]
    docs = [
        {"id": "a", "text": "x" * 10},
        {"id": "b", "text": "x" * 5, "quality_score": 0.2},
        {"id": "c", "text": "x" * 50, "quality_score": 0.2},
        {"id": "d", "text": "x" * 1, "quality_score": 0.9},
        {"id": "e", "text": "x" * 50, "quality_score": 0.2},
        {"id": "f", "text": "x" * 99, "quality_score": -1.5},
    ]
    order = [key_id(k) for k in sorted(node_key(d, fields) for d in docs)]
    assert order == ["d", "c", "e", "b", "f", "a"]
    assert key_id(min(node_key(d, ["length"]) for d in docs)) == "f"


def test_exact_hash_normalization():
    assert exact_hash("Hello  world\n") == exact_hash("Hello world")
    assert exact_hash("Hello world") != exact_hash("hello world")
    assert exact_hash("Hello world", "lower") == exact_hash("hello   WORLD", "lower")
    assert exact_hash("Hello, world!", "aggressive") == exact_hash("hello world", "aggressive")
    assert exact_hash("a  b", "none") != exact_hash("a b", "none")


def test_large_small_star_rounds_find_the_components():
    rng = random.Random(3)
    for trial in range(60):
        nodes = [f"{rng.random():.9f}" for _ in range(rng.randint(2, 120))]
        edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(rng.randint(1, 150))]
        edges = [e for e in edges if e[0] != e[1]]
        labels, unconverged = iterate_components(edges, rounds=10)
        assert unconverged == 0
        assert labels == {v: r for v, r in components_reference(edges).items()}, trial


def test_unconverged_rounds_are_detected():
    rng = random.Random(5)
    nodes = [f"{rng.random():.9f}" for _ in range(3000)]
    path = list(zip(nodes, nodes[1:]))
    labels, unconverged = iterate_components(path, rounds=2)
    assert unconverged > 0
    truth = components_reference(path)
    assert any(labels[v] != truth[v] for v in labels)  # the rounds were not enough, and it says so
    assert iterate_components(path, rounds=12)[1] == 0


def test_bucket_pairs_are_linear_in_bucket_size():
    from qurate.dedup.components import star_edges

    members = [f"v{i:04d}" for i in range(1000)][::-1]
    pairs = list(star_edges(members, anchors=3))
    assert len(pairs) == 3 * 997 + 2 + 1  # every member to the 3 smallest (anchors to the smaller anchors)
    assert all(hi > lo and lo in ("v0000", "v0001", "v0002") for hi, lo in pairs)
    assert list(star_edges(members, anchors=1)) == [(m, "v0000") for m in members if m != "v0000"]


def test_sketch_jaccard_tracks_signature_jaccard(real_texts):
    signer = Signer(num_perm=256)
    text = max(real_texts, key=len)
    words = text.split(" ")
    for every in (5, 10, 30):
        edited = " ".join("XYZ" if i % every == 0 else w for i, w in enumerate(words))
        a, b = signer.signatures([text, edited])
        assert abs(sketch_jaccard(sketch(a), sketch(b)) - jaccard(a, b)) < 0.03
    assert sketch_jaccard(sketch(a), sketch(a)) == 1.0


# ------------------------------------------------------------------------- per-key steps of the dedup graph

def _split(outputs):
    outputs = list(outputs)
    records = [o for o in outputs if not isinstance(o, stage.Stat)]
    stats = [o for o in outputs if isinstance(o, stage.Stat)]
    return records, stats


def test_sign_records_carry_node_key_exact_hash_and_band_keys():
    cfg = DedupConfig()
    params = stage.sign_params(cfg)
    assert (params.bands, params.rows) == cfg.lsh()
    signer = Signer(cfg.num_perm, cfg.minhash_seed, cfg.shingle_spec())
    text = " ".join(f"w{i}" for i in range(50))
    docs = [{"id": "a", "text": text}, {"id": "b", "text": text + "  \n"}, {"id": "c", "text": "other words"}]
    recs = stage.sign(docs, signer, params)
    assert [key_id(r.key) for r in recs] == ["a", "b", "c"]
    assert recs[0].text_hash == recs[1].text_hash != recs[2].text_hash  # whitespace-normalized exact hash
    assert recs[0].near == recs[1].near and len(recs[0].near.bands) == 8 * params.bands
    assert len(recs[0].near.sketch) == cfg.num_perm
    off = stage.sign(docs, None, params._replace(near=False, exact=False))
    assert all(r.near is None and r.text_hash == r.key for r in off)
    with pytest.raises(TypeError):  # a doc without text breaks signing (the wiring dead-letters it)
        stage.sign([{"id": "bad", "text": None}], signer, params)


def test_exact_groups_pick_the_smallest_node_key_and_list_copies():
    a, b, c = (stage.CopyGroup(k, None, 1) for k in ("k2", "k1", "k3"))
    merged = stage.merge_groups(stage.merge_groups(stage.merge_groups(stage.EMPTY_GROUP, a), b), c)
    assert merged == stage.CopyGroup("k1", None, 3)
    assert stage.merge_groups(stage.EMPTY_GROUP, stage.EMPTY_GROUP) == stage.EMPTY_GROUP
    records, stats = _split(stage.exact_members([merged], ["k2", "k1", "k3"]))
    assert records == [("k1", "k2"), ("k1", "k1"), ("k1", "k3")]
    assert stats == [stage.Stat(("exact_groups", "3"), {"groups": 1, "docs": 3})]
    assert list(stage.exact_members([stage.CopyGroup("k9", None, 1)], ["k9"])) == []  # a text with one copy


def test_bucket_candidates_and_verification():
    records, stats = _split(stage.bucket_candidates(["v3", "v1", "v2"], anchors=1))
    assert sorted(records) == [("v2", "v1"), ("v3", "v1")]
    assert stats == [stage.Stat(("buckets", "3"), {"buckets": 1, "members": 3})]
    assert list(stage.bucket_candidates(["alone"], anchors=3)) == []
    same, other = bytes(range(200)), bytes(200)
    routed = list(stage.with_member_sketch("v3", [same], ["v1", "v2"]))
    assert routed == [("v1", stage.MemberSketch("v3", same)), ("v2", stage.MemberSketch("v3", same))]
    assert list(stage.with_member_sketch("gone", [], ["v1"])) == []  # a vertex without its record
    scored = list(stage.verify("v1", [same], [stage.MemberSketch("v3", same), stage.MemberSketch("v4", other)]))
    assert scored[0] == stage.Candidate("v3", "v1", 1.0) and scored[1].score < 0.1
    assert stage.candidate_stat(scored[1], 0.8) == stage.Stat(("candidates", "0.00"), {"pairs": 1, "edges": 0})


def test_cluster_decisions_name_the_label_as_survivor():
    cfg = DedupConfig()
    signer = Signer(cfg.num_perm, cfg.minhash_seed, cfg.shingle_spec())
    base = [f"w{i}" for i in range(300)]
    near = list(base)
    near[100] = "changed"
    sa, sb = (sketch(s) for s in signer.signatures([" ".join(base), " ".join(near)]))
    entries = [stage.ClusterEntry("k0", sa, 2), stage.ClusterEntry("k1", sb, 1)]
    records, stats = _split(stage.cluster_decisions("k0", entries, *cfg.lsh()))
    assert records[0] == ("k0", stage.NearDecision("k0", 1.0, 3))
    assert records[1][0] == "k1" and records[1][1].survivor == "k0" and 0.9 < records[1][1].score < 1.0
    assert stage.Stat(("near_clusters",), {"clusters": 1, "vertices": 2, "docs": 3}) in stats
    # The label is not among the members (rounds did not converge): nothing is decided, it is counted.
    records, stats = _split(stage.cluster_decisions("kX", entries, *cfg.lsh()))
    assert records == [] and stats == [stage.Stat(("cc", "orphan_clusters"), {"clusters": 1, "docs": 3})]


def test_decisions_for_exact_and_near_copies_and_their_reasons():
    sep = "\x1f"
    vertex, survivor = f"r1{sep}v", f"r0{sep}s"
    near = [stage.NearDecision(survivor, 0.86, 4)]
    records, stats = _split(stage.decide(vertex, [vertex, f"r2{sep}copy"], near))
    assert records == [(vertex, stage.Decision("near", "s", 4, 0.86, None)),
                       (f"r2{sep}copy", stage.Decision("exact", "s", 4, 0.86, "v"))]
    assert [s.key for s in stats] == [("removed", "near"), ("removed", "exact")]
    # Exact copies only (no near cluster): the vertex is the survivor of its copies.
    records, _ = _split(stage.decide(vertex, [vertex, f"r2{sep}copy"]))
    assert records == [(vertex, stage.Decision("keep", "v", 2, 1.0, None)),
                       (f"r2{sep}copy", stage.Decision("exact", "v", 2, 1.0, "v"))]
    assert list(stage.decide(vertex, [])) == []  # one copy, no cluster: nothing to decide
    decision = stage.Decision("near", "s", 4, 0.86, None)
    assert stage.reason_of(decision) == "near_duplicate: jaccard~0.86 of s (cluster s, 4 docs)"
    assert stage.reason_of(records[1][1]) == "exact_duplicate: of v (cluster v, 2 docs)"
    kept, record = stage.apply_decision({"id": "v", "text": "t"}, decision)
    assert not kept and record["stage"] == "dedup" and record["dedup_cluster"] == "s"
    assert stage.apply_decision({"id": "s", "text": "t"}, stage.Decision("keep", "s", 4, 1.0, None)) == (
        True, {"id": "s", "text": "t", "dedup_cluster": "s"})
    assert stage.apply_decision({"id": "z", "text": "t"}, None) == (True, {"id": "z", "text": "t"})
    # Two docs under one node key (duplicate id and rank): no decision, counted.
    assert list(stage.unique_decision("k", [decision], [1, 1])) == [stage.Stat(("ambiguous_ids",), {"docs": 2})]
    assert list(stage.unique_decision("k", [decision], [1])) == [("k", decision)]


def test_report_reads_the_stats_the_steps_emit():
    cfg = DedupConfig()
    stats = {("removed", "exact"): {"docs": 2}, ("removed", "near"): {"docs": 5},
             ("clusters", "3"): {"clusters": 2, "docs": 6}, ("cc", "vertices"): {"vertices": 9, "unconverged": 0},
             ("detect", "0.90"): {"pairs": 4, "direct": 3}, ("candidates", "0.90"): {"pairs": 5, "edges": 5}}
    section = stage.report(stats, cfg)
    assert section["summary"]["exact duplicates removed"] == 2
    assert section["summary"]["near duplicates removed"] == 5
    assert section["summary"]["duplicate clusters (kept one doc each)"] == 2
    curve = section["charts"][0]
    assert curve["series"]["measured: cluster pairs sharing a band"][18] == 0.75
    assert curve["series"]["theoretical P(candidate)"][-1] > 0.99
    assert stage.STAGE.name == "dedup" and stage.STAGE.graph == "dedup" and stage.STAGE.report is stage.report


def test_packed_band_chunks_find_the_same_buckets_as_grouping_records():
    """Band records packed per partition in chunks (any split over bundles and flushes) give exactly the buckets
    a plain group-by of (band key, vertex) gives, with non-ASCII and lone-surrogate vertex names intact."""
    import random
    from collections import defaultdict

    from qurate.dedup import band_chunks

    rng = random.Random(7)
    names = [f"v{i}" for i in range(300)] + ["é-ü", "日本語", "odd\udcff"]
    records = [(rng.randrange(40) * 1_000_003 + (1 << 63), rng.choice(names)) for _ in range(2_000)]
    records = list(dict.fromkeys(records))  # a vertex is in a bucket once
    expected = defaultdict(set)
    for key, name in records:
        expected[key].add(name)
    want = sorted(sorted(v) for v in expected.values() if len(v) >= 2)

    buffer = band_chunks.ChunkBuffer(partitions=8, limit=97)  # many flushes
    by_part = defaultdict(list)
    for key, name in records:
        if buffer.add([key], name):
            for part, chunk in buffer.flush():
                by_part[part].append(chunk)
    for part, chunk in buffer.flush():
        by_part[part].append(chunk)
    assert sum(len(c[0]) // 8 for chunks in by_part.values() for c in chunks) == len(records)
    got = sorted(sorted(b) for part in sorted(by_part) for b in band_chunks.buckets(reversed(by_part[part])))
    assert got == want
    assert band_chunks.unpack_keys(band_chunks.band_keys([1, 2**64 - 1])) == [1, 2**64 - 1]


def _components_by_search(edges: list[tuple[str, str]]) -> dict[str, str]:
    """Vertex -> smallest vertex of its component, by breadth-first search (independent of union-find)."""
    nb: dict[str, set[str]] = {}
    for a, b in edges:
        nb.setdefault(a, set()).add(b)
        nb.setdefault(b, set()).add(a)
    labels: dict[str, str] = {}
    for start in nb:
        if start in labels:
            continue
        seen, frontier = {start}, [start]
        while frontier:
            frontier = [o for v in frontier for o in nb[v] if o not in seen and not seen.add(o)]
        for v in seen:
            labels[v] = min(seen)
    return labels


def test_union_find_forests_merged_in_any_split_find_the_components():
    from qurate.dedup.components import forest_labels, merge_forests, union

    rng = random.Random(11)
    for trial in range(60):
        nodes = [f"{rng.random():.9f}" for _ in range(rng.randint(2, 120))]
        edges = [(rng.choice(nodes), rng.choice(nodes)) for _ in range(rng.randint(1, 150))]
        truth = _components_by_search(edges)
        assert components_reference(edges) == truth, trial
        # as the runner combines: partial forests per bundle, merged in any order
        forests: list[dict[str, str]] = [{} for _ in range(rng.randint(1, 5))]
        for a, b in edges:
            union(rng.choice(forests), a, b)
        rng.shuffle(forests)
        others = [dict(f) for f in forests[1:]]
        assert dict(forest_labels(merge_forests(forests))) == truth, trial
        assert forests[1:] == others  # only the first forest is changed (Beam's merge_accumulators contract)
    assert merge_forests([]) == {}
