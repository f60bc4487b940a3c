"""Rebalancing a mixture to target token shares: pure functions, no Beam.

The wiring counts tokens per key (a key is ``(topic, format, lang)``, the parts not balanced on left ``""``) and
builds one small histogram per key; everything else is decided here:

1. ``plan_rates(supply, ...)``: natural token totals per key -> a ``KeyPlan`` per key: the keep rate (tokens out /
   tokens in; above 1 means repeats), capped by the epoch cap. A key that cannot reach its target under the cap
   is a **shortfall**: it keeps every doc ``cap`` times, and the other keys' targets are renormalised to fill the
   budget (water-filling, repeated until no new key hits its cap) -- never silently.
2. ``add_thresholds(plan, histogram)``: the fractional part of a rate is met by the *best* docs of the key: each doc
   has a hash-Gumbel key ``E / w`` (``E = -ln u``, ``u`` a keyed hash of (id, seed), ``w = exp(beta * (quality -
   2.5))``; Efraimidis-Spirakis weighted sampling, so higher quality wins more often but not always). The
   token-weighted histogram of those keys gives the threshold bin whose cumulative tokens reach the target, and
   the share of that one boundary bin to take. Memory is one fixed-size histogram per key, whatever the corpus.
3. ``repeats_for(doc_key, plan)``: a doc's copies: ``floor(rate)`` plus one if its key falls below the threshold
   (in the boundary bin: by a second keyed hash). 0 copies = dropped.

Token shares come out within the token mass of one boundary bin of their target, not within the noise of
per-document coin flips.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from qurate.hashing import stable_unit

Key = tuple[str, str, str]  # (topic, format, lang); parts not balanced on are ""
QUALITY_CENTER = 2.5  # quality_score scale 0-5: a doc without a score weighs as a mid-scale one


@dataclass(frozen=True)
class KeyPlan:
    """The decision rule of one key: ``base`` copies for every doc, one more for docs whose sampling key falls in
    a bin below ``bin`` (or in ``bin`` itself with probability ``p``)."""

    rate: float  # achieved tokens out / tokens in (after the cap and renormalisation)
    target_rate: float  # the rate the target asked for (before the cap)
    base: int
    frac: float  # rate - base: the share of this key's tokens that gets one more copy
    capped: bool  # a shortfall: the target needed more than the epoch cap
    bin: int = -1  # boundary bin (-1: no doc gets an extra copy; bins: every doc does)
    p: float = 0.0  # probability that a doc in the boundary bin gets the extra copy


def doc_weight(quality_score: float | None, beta: float) -> float:
    """Sampling weight from the doc's quality: ``exp(beta * (q - 2.5))``; ``beta = 0`` samples uniformly."""
    if beta == 0 or quality_score is None or not math.isfinite(quality_score):
        return 1.0
    return math.exp(beta * (float(quality_score) - QUALITY_CENTER))


def sample_key(doc_id: str, seed: int, weight: float) -> float:
    """The doc's hash-Gumbel sampling key mapped to [0, 1): smaller is picked first; ``1 - exp(-E / w)``."""
    u = stable_unit(doc_id, seed, "rebalance")
    e = -math.log1p(-u)  # Exp(1); log1p(-u) is finite for u in [0, 1)
    return -math.expm1(-e / weight)


def sample_bin(doc_id: str, seed: int, weight: float, bins: int) -> int:
    return min(bins - 1, int(sample_key(doc_id, seed, weight) * bins))


def desired_shares(supply: Mapping[Key, float], *, mode: str, balance_on: str,
                   topic_targets: Mapping[str, float], format_targets: Mapping[str, float],
                   by_lang: bool) -> tuple[dict[Key, float], list[str]]:
    """The target token share of every key (summing to 1) and the labels asked for but absent from the supply.

    ``multiplier``: a key's share is its natural share times ``m(topic) * m(format)`` (1 where unset),
    renormalised. ``share``: a label's share is given outright (on one axis); keys of a label split it in
    proportion to their natural tokens, labels without a target share what is left in proportion to theirs.
    With ``by_lang`` both hold within each language and every language keeps its natural share.
    """
    total = float(sum(supply.values()))
    if total <= 0:
        return {}, []
    groups: dict[str, list[Key]] = {}
    for key in sorted(supply):
        groups.setdefault(key[2] if by_lang else "", []).append(key)
    out: dict[Key, float] = {}
    missing: set[str] = set()
    for keys in groups.values():
        group_tokens = sum(supply[k] for k in keys)
        group_share = group_tokens / total
        if mode == "multiplier":
            weights = {k: supply[k] * topic_targets.get(k[0], 1.0) * format_targets.get(k[1], 1.0) for k in keys}
            norm = sum(weights.values())
            if norm <= 0:  # every key of the group multiplied by 0: the group keeps nothing
                out.update({k: 0.0 for k in keys})
                continue
            out.update({k: group_share * w / norm for k, w in weights.items()})
            continue
        axis = 0 if balance_on == "topic" else 1
        targets = topic_targets if axis == 0 else format_targets
        by_label: dict[str, float] = {}
        for k in keys:
            by_label[k[axis]] = by_label.get(k[axis], 0.0) + supply[k]
        missing.update(label for label, share in targets.items() if share > 0 and label not in by_label)
        listed = {label for label in by_label if label in targets}
        rest_share = max(0.0, 1.0 - sum(targets.values()))  # a label without supply: renormalised below
        rest_tokens = sum(t for label, t in by_label.items() if label not in listed)
        for k in keys:
            label = k[axis]
            within = supply[k] / by_label[label] if by_label[label] else 0.0
            if label in listed:
                share = targets[label] * within
            else:
                share = rest_share * by_label[label] / rest_tokens * within if rest_tokens else 0.0
            out[k] = group_share * share
        norm = sum(out[k] for k in keys)  # a listed label absent from the supply leaves its share to the rest
        if norm > 0:
            out.update({k: group_share * out[k] / norm for k in keys})
    return out, sorted(missing)


def plan_rates(supply: Mapping[Key, float], desired: Mapping[Key, float], *, budget: float,
               cap: Mapping[Key, float]) -> tuple[dict[Key, KeyPlan], dict[Key, float]]:
    """Per-key plans meeting ``desired`` shares of ``budget x total`` tokens, each rate at most ``cap[key]``.

    Returns the plans and the effective shares (the desired ones after capped keys were fixed at their cap and the
    others renormalised to fill the budget; a budget the capped supply cannot fill comes out smaller).
    """
    total = float(sum(supply.values()))
    out_tokens = budget * total
    capped: set[Key] = set()
    while True:  # water-filling: fix capped keys, give the rest their share of what is left
        fixed = sum(cap[k] * supply[k] for k in capped)
        free = [k for k in supply if k not in capped]
        free_share = sum(desired.get(k, 0.0) for k in free)
        left = max(0.0, out_tokens - fixed)
        new_capped = set()
        for k in free:
            want = left * desired.get(k, 0.0) / free_share if free_share > 0 else 0.0
            if supply[k] > 0 and want > cap[k] * supply[k] * (1 + 1e-12):
                new_capped.add(k)
        if not new_capped:
            break
        capped |= new_capped
    plans: dict[Key, KeyPlan] = {}
    achieved_total = 0.0
    tokens_out: dict[Key, float] = {}
    for k in supply:
        target_rate = desired.get(k, 0.0) * out_tokens / supply[k] if supply[k] > 0 else 0.0
        if k in capped:
            rate = float(cap[k])
        else:
            rate = left * desired.get(k, 0.0) / free_share / supply[k] if free_share > 0 and supply[k] > 0 else 0.0
        base = int(math.floor(rate + 1e-12))
        plans[k] = KeyPlan(rate=rate, target_rate=target_rate, base=base, frac=max(0.0, rate - base),
                           capped=k in capped)
        tokens_out[k] = rate * supply[k]
        achieved_total += tokens_out[k]
    effective = {k: (t / achieved_total if achieved_total > 0 else 0.0) for k, t in tokens_out.items()}
    return plans, effective


def add_thresholds(plan: KeyPlan, histogram: Mapping[int, float], bins: int) -> KeyPlan:
    """The boundary bin and its take probability so that the docs below it hold ``frac`` of the key's tokens.

    ``histogram`` maps sampling-key bin -> tokens of the key's docs in it.
    """
    total = float(sum(histogram.values()))
    need = plan.frac * total
    if need <= 0 or total <= 0:
        return replace(plan, bin=-1, p=0.0)
    cum = 0.0
    for b in sorted(histogram):
        tokens = histogram[b]
        if cum + tokens >= need:
            return replace(plan, bin=b, p=min(1.0, max(0.0, (need - cum) / tokens)) if tokens else 1.0)
        cum += tokens
    return replace(plan, bin=bins, p=0.0)


def repeats_for(doc_id: str, seed: int, sampling_bin: int, plan: KeyPlan) -> int:
    """A doc's copies in the mixture under its key's plan (0 = dropped)."""
    extra = 0
    if sampling_bin < plan.bin:
        extra = 1
    elif sampling_bin == plan.bin and stable_unit(doc_id, seed, "rebalance-boundary") < plan.p:
        extra = 1
    return plan.base + extra


def merge_histograms(histograms: Iterable[Mapping[int, float]]) -> dict[int, float]:
    out: dict[int, float] = {}
    for h in histograms:
        for b, t in h.items():
            out[b] = out.get(b, 0.0) + t
    return out
