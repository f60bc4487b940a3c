"""The pure rate computation of the domains stage (classifiers/rebalance.py): targets, caps, shortfalls,
thresholds from histograms, and per-doc copies."""

from __future__ import annotations

import math
import random

import pytest
from qurate.classifiers.rebalance import (
    KeyPlan,
    add_thresholds,
    desired_shares,
    doc_weight,
    plan_rates,
    repeats_for,
    sample_bin,
    sample_key,
)

K = lambda t, f="", lang="": (t, f, lang)  # noqa: E731


def test_multiplier_shares_scale_natural_and_renormalise():
    supply = {K("a"): 600.0, K("b"): 300.0, K("c"): 100.0}
    desired, missing = desired_shares(supply, mode="multiplier", balance_on="topic", topic_targets={"a": 0.5,
                                      "c": 3.0}, format_targets={}, by_lang=False)
    weights = {"a": 300, "b": 300, "c": 300}
    assert missing == []
    for key, share in desired.items():
        assert share == pytest.approx(weights[key[0]] / 900)


def test_topic_format_multipliers_multiply():
    supply = {K("a", "x"): 100.0, K("a", "y"): 100.0, K("b", "x"): 200.0}
    desired, _ = desired_shares(supply, mode="multiplier", balance_on="topic_format", topic_targets={"a": 2.0},
                                format_targets={"y": 0.5}, by_lang=False)
    raw = {K("a", "x"): 200.0, K("a", "y"): 100.0, K("b", "x"): 200.0}
    assert desired == pytest.approx({k: v / 500 for k, v in raw.items()})


def test_absolute_shares_and_unlisted_rest():
    supply = {K("a"): 100.0, K("b"): 300.0, K("c"): 600.0}
    desired, missing = desired_shares(supply, mode="share", balance_on="topic",
                                      topic_targets={"a": 0.5, "zzz": 0.1}, format_targets={}, by_lang=False)
    # "zzz" has no supply: reported missing, its share goes to the others (renormalised)
    assert missing == ["zzz"]
    assert desired[K("a")] == pytest.approx(0.5 / 0.9)
    assert desired[K("b")] / desired[K("c")] == pytest.approx(0.5)
    assert sum(desired.values()) == pytest.approx(1.0)


def test_by_lang_keeps_language_shares():
    supply = {K("a", "", "en"): 100.0, K("b", "", "en"): 100.0, K("a", "", "de"): 800.0}
    desired, _ = desired_shares(supply, mode="multiplier", balance_on="topic", topic_targets={"a": 3.0},
                                format_targets={}, by_lang=True)
    assert desired[K("a", "", "de")] == pytest.approx(0.8)
    assert desired[K("a", "", "en")] == pytest.approx(0.2 * 0.75)


def test_rates_meet_targets_without_caps():
    supply = {K("a"): 1000.0, K("b"): 1000.0}
    plans, eff = plan_rates(supply, {K("a"): 0.8, K("b"): 0.2}, budget=1.0, cap={K("a"): 4, K("b"): 4})
    assert plans[K("a")].rate == pytest.approx(1.6) and plans[K("a")].base == 1
    assert plans[K("a")].frac == pytest.approx(0.6)
    assert plans[K("b")].rate == pytest.approx(0.4) and plans[K("b")].base == 0
    assert not plans[K("a")].capped and eff == pytest.approx({K("a"): 0.8, K("b"): 0.2})


def test_shortfall_is_capped_and_the_rest_renormalised():
    supply = {K("small"): 10.0, K("big"): 990.0, K("mid"): 1000.0}
    desired = {K("small"): 0.5, K("big"): 0.25, K("mid"): 0.25}
    plans, eff = plan_rates(supply, desired, budget=1.0, cap={k: 4 for k in supply})
    assert plans[K("small")].capped and plans[K("small")].rate == 4
    assert plans[K("small")].target_rate == pytest.approx(100.0)
    # the 2000-token budget minus the small key's 40 tokens is split 1:1 between the others
    assert plans[K("big")].rate * 990 == pytest.approx(980.0)
    assert plans[K("mid")].rate * 1000 == pytest.approx(980.0)
    assert eff[K("small")] == pytest.approx(40 / 2000)
    assert sum(eff.values()) == pytest.approx(1.0)


def test_cascading_caps():
    supply = {K("a"): 10.0, K("b"): 100.0, K("c"): 10_000.0}
    desired = {K("a"): 0.4, K("b"): 0.4, K("c"): 0.2}
    plans, _ = plan_rates(supply, desired, budget=1.0, cap={k: 2 for k in supply})
    assert plans[K("a")].capped and plans[K("b")].capped and not plans[K("c")].capped
    assert plans[K("c")].rate * 10_000 == pytest.approx(10_110 - 20 - 200)


def test_threshold_takes_the_smallest_bins_first():
    plan = KeyPlan(rate=0.3, target_rate=0.3, base=0, frac=0.3, capped=False)
    got = add_thresholds(plan, {5: 100, 1: 100, 9: 800}, bins=16)
    assert got.bin == 9 and got.p == pytest.approx(100 / 800)  # bins 1 and 5 hold 200 of the 300 needed
    got = add_thresholds(plan, {1: 100, 5: 400, 9: 500}, bins=16)
    assert got.bin == 5 and got.p == pytest.approx(0.5)
    assert add_thresholds(KeyPlan(2.0, 2.0, 2, 0.0, False), {1: 5}, 16).bin == -1


def test_repeats_follow_the_plan():
    plan = KeyPlan(rate=2.5, target_rate=2.5, base=2, frac=0.5, capped=False, bin=10, p=0.0)
    assert repeats_for("x", 0, 3, plan) == 3
    assert repeats_for("x", 0, 10, plan) == 2
    assert repeats_for("x", 0, 11, plan) == 2
    full = KeyPlan(rate=0.5, target_rate=0.5, base=0, frac=0.5, capped=False, bin=10, p=1.0)
    assert repeats_for("x", 0, 10, full) == 1


def test_sample_key_is_deterministic_uniform_and_quality_weighted():
    keys = [sample_key(f"doc{i}", 7, 1.0) for i in range(20_000)]
    assert keys == [sample_key(f"doc{i}", 7, 1.0) for i in range(20_000)]
    assert keys != [sample_key(f"doc{i}", 8, 1.0) for i in range(20_000)]
    assert all(0 <= k < 1 for k in keys)
    assert sum(keys) / len(keys) == pytest.approx(0.5, abs=0.01)
    # a heavier doc gets a smaller key more often: P(w=4 beats w=1) = 4/5 (Efraimidis-Spirakis)
    wins = sum(sample_key(f"h{i}", 0, 4.0) < sample_key(f"l{i}", 0, 1.0) for i in range(20_000))
    assert wins / 20_000 == pytest.approx(0.8, abs=0.015)
    assert doc_weight(None, 1.0) == 1.0 and doc_weight(3.5, 1.0) == pytest.approx(math.e)
    assert doc_weight(5.0, 0.0) == 1.0


def test_token_share_lands_within_one_bin_of_the_target():
    """End to end on the pure functions: docs of random sizes, histogram, thresholds, per-doc decisions."""
    rng = random.Random(1)
    docs = {key: [(f"{key}-{i}", rng.randint(20, 3000)) for i in range(n)]
            for key, n in (("a", 3000), ("b", 500), ("c", 80))}
    bins = 4096
    supply = {K(k): float(sum(t for _, t in ds)) for k, ds in docs.items()}
    desired = {K("a"): 0.3, K("b"): 0.45, K("c"): 0.25}
    plans, eff = plan_rates(supply, desired, budget=1.0, cap={k: 4 for k in supply})
    out = {}
    for key, ds in docs.items():
        hist: dict[int, int] = {}
        for doc_id, t in ds:
            b = sample_bin(doc_id, 0, 1.0, bins)
            hist[b] = hist.get(b, 0) + t
        plan = add_thresholds(plans[K(key)], hist, bins)
        out[key] = sum(t * repeats_for(doc_id, 0, sample_bin(doc_id, 0, 1.0, bins), plan) for doc_id, t in ds)
    total = sum(out.values())
    for key in docs:
        assert out[key] / total == pytest.approx(eff[K(key)], abs=0.01), key
    assert plans[K("c")].capped  # 25% from a tiny key: a shortfall, reported as such
