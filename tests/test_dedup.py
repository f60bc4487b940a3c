"""The dedup building blocks without Beam: signatures, shingling, LSH parameters, survivor order, components."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from qurate.dedup.components import components_reference, iterate_components
from qurate.dedup.config import DedupConfig
from qurate.dedup.exact import exact_hash
from qurate.dedup.minhash import (
    Signer,
    jaccard,
    shingle_hash,
    shingle_token_hashes,
    uses_chars,
    word_token_hashes,
    word_tokens,
)
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


def test_vectorized_tokens_match_the_plain_tokenizer(real_texts):
    from qurate.dedup.minhash import token_hash

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
    from qurate.dedup.minhash import sketch, sketch_jaccard

    signer = Signer(num_perm=256)
    text = max(real_texts, key=len)
    words = text.split(" ")
    for every in (5, 10, 30):
        edited = " ".join("XYZ" if i % every == 0 else w for i, w in enumerate(words))
        a, b = signer.signatures([text, edited])
        assert abs(sketch_jaccard(sketch(a), sketch(b)) - jaccard(a, b)) < 0.03
    assert sketch_jaccard(sketch(a), sketch(a)) == 1.0
