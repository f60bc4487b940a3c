"""The mix plan (pure, no Beam): weights parsed and resolved to components, and per component the full epochs and
the hash-bucket cut that bring it to its token share, from its token histogram over hash buckets."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from qurate.hashing import stable_unit

BUCKETS = 1 << 16
DEFAULT_MAX_REPEATS = 4.0  # Muennighoff et al. 2023: up to ~4 epochs of repeated data cost little


class MixError(ValueError):
    """Weights or a source run that cannot be mixed; the message says which."""


def parse_weights(text: str) -> dict[str, float]:
    """``"web=0.6,code=0.3"`` (or a JSON object) -> ``{"web": 0.6, "code": 0.3}``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as err:
            raise MixError(f"--weights is not valid JSON: {err}") from None
        items = list(raw.items())
    else:
        items = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise MixError(f"--weights entry {part!r} is not NAME=WEIGHT")
            items.append((name.strip(), value.strip()))
    weights: dict[str, float] = {}
    for name, value in items:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise MixError(f"--weights: weight of {name!r} is not a number: {value!r}") from None
        if not math.isfinite(number) or number < 0:
            raise MixError(f"--weights: weight of {name!r} must be a finite number >= 0, got {value}")
        if name in weights:
            raise MixError(f"--weights names {name!r} twice")
        weights[name] = number
    if not weights or sum(weights.values()) <= 0:
        raise MixError("--weights needs at least one component with a weight > 0")
    return weights


@dataclass(frozen=True)
class ComponentPlan:
    supply: int  # unique tokens available
    share: float  # requested token share (normalized)
    target: float  # tokens asked for
    epochs: int  # full repeats of every document
    cut: int  # documents in hash buckets below this get one more copy
    tokens: int  # tokens the plan yields (exact: from the histogram)
    capped: bool  # the target needed more than max_repeats epochs


def cut_for(hist: np.ndarray, remainder: float) -> tuple[int, int]:
    """The bucket boundary whose cumulative tokens are closest to ``remainder``: (cut, tokens below it)."""
    cum = np.concatenate([[0], np.cumsum(hist, dtype=np.int64)])
    cut = int(np.argmin(np.abs(cum - remainder)))  # first minimum: deterministic
    return cut, int(cum[cut])


def plan_mix(hists: dict[str, np.ndarray], weights: dict[str, float], *, total: float | None = None,
             max_repeats: float = DEFAULT_MAX_REPEATS, keep_total: bool = False) -> dict[str, Any]:
    """The mix: per component epochs and cut, from each component's token histogram over hash buckets.

    ``total`` defaults to the supply of every component (same size as the source, new shares).
    """
    supply = {name: int(h.sum()) for name, h in hists.items()}
    weights = resolve_names(weights, set(supply))
    unknown = sorted(set(weights) - set(supply))
    if unknown:
        raise MixError(f"--weights names unknown component(s) {', '.join(unknown)}; the mixture has: "
                       f"{', '.join(sorted(supply))}")
    weight_sum = sum(weights.values())
    shares = {name: weights.get(name, 0.0) / weight_sum for name in supply}
    requested_total = float(total) if total else float(sum(supply.values()))
    shortfalls = []
    limits = {name: supply[name] * max_repeats / shares[name] for name in supply
              if shares[name] > 0 and supply[name] > 0}
    total_tokens = requested_total
    if not keep_total and limits and min(limits.values()) < requested_total:
        total_tokens = min(limits.values())
        for name, limit in sorted(limits.items()):
            if limit < requested_total:
                shortfalls.append(f"{name}: {supply[name]:,} unique tokens x {max_repeats:g} epochs cannot give "
                                  f"{shares[name]:.2%} of {requested_total:,.0f} tokens; the total shrinks to "
                                  f"{total_tokens:,.0f} so every share holds")
    components: dict[str, ComponentPlan] = {}
    for name in sorted(supply):
        target = shares[name] * total_tokens
        s = supply[name]
        capped = s == 0 or target > s * max_repeats + 1e-6
        if capped and shares[name] > 0 and keep_total:
            shortfalls.append(f"{name}: asked {target:,.0f} tokens, {s:,} unique x {max_repeats:g} epochs give "
                              f"{s * max_repeats:,.0f}")
        if s == 0:
            components[name] = ComponentPlan(0, shares[name], target, 0, 0, 0, shares[name] > 0)
            continue
        goal = min(target, s * max_repeats)
        epochs = min(int(goal // s), int(max_repeats))
        cut, extra = cut_for(hists[name], goal - epochs * s)
        components[name] = ComponentPlan(s, shares[name], target, epochs, cut, epochs * s + extra, capped)
    planned = sum(c.tokens for c in components.values())
    return {
        "weights_are": "token shares",
        "requested_weights": weights,
        "max_repeats": max_repeats,
        "keep_total": keep_total,
        "requested_total": requested_total,
        "total": planned,
        "shortfalls": shortfalls,
        "components": {
            name: {"supply": c.supply, "requested_share": c.share, "target": c.target, "epochs": c.epochs,
                   "cut": c.cut, "tokens": c.tokens, "share": c.tokens / planned if planned else 0.0,
                   "capped": c.capped}
            for name, c in components.items()
        },
    }


def resolve_names(weights: dict[str, float], known: set[str]) -> dict[str, float]:
    """Weight names as components: a name given as the raw column value (``web/trafilatura-tests``) becomes its
    folder name (``web--trafilatura-tests``)."""
    from qurate.pipelines.export_keys import component_of

    out: dict[str, float] = {}
    for name, weight in weights.items():
        key = name if name in known else component_of({"x": name}, "x")
        out[key] = out.get(key, 0.0) + weight
    return out


def bucket_of(doc_id: str, seed: int) -> int:
    return int(stable_unit("mix", doc_id, seed) * BUCKETS)

