"""The ``synth`` stage's stats (emitted by the wiring through these constructors) and its report section.

Keys (the wiring prefixes them with ``("stage", "synth")`` and strips that again for ``report``):

- ``("added",)`` ``{"docs"}``: requests made (each ends as one candidate doc or one dead-letter entry); the
  manifest counts them as docs added by the stage;
- ``("task", task)`` ``{"prompts", "requests", "candidates", "failed", "accepted", "rejected", "model_calls",
  "cache_hits", "gen_tokens", "tokens_added", "rm_calls", "rm_cache_hits", "rm_failed"}``;
- ``("hist", task, rm, bin)`` ``{"candidates", "accepted"}``: reward-score histograms (raw scores);
- ``("reason", task, rule)`` ``{"docs"}``: why candidates were rejected;
- ``("_example", group, id, text)`` ``{"rank"}``: example candidates (the wiring keeps the smallest ranks).
"""

from __future__ import annotations

import math
from typing import Any

from qurate.doc import reason_rule
from qurate.stats import StatPairs, Stats, add, examples, select

EXAMPLE_CANDIDATE = "_example"
EXAMPLE_CHARS = 400
COUNTERS = ("prompts", "requests", "candidates", "failed", "accepted", "rejected", "model_calls", "cache_hits",
            "gen_tokens", "tokens_added", "rm_calls", "rm_cache_hits", "rm_failed")


def rm_bin(rm: str, score: float) -> str:
    """The lower edge of a score's histogram bin: 0.25 wide for the judge (0-5), 0.1 for math (0-1), 0.5 for a
    classifier (unbounded)."""
    width = {"judge": 0.25, "math": 0.1}.get(rm, 0.5)
    if rm == "math":
        score = min(score, 1 - 1e-9)
    return f"{math.floor(score / width + 1e-9) * width:.2f}"


def generation_stats(task: str, result: dict[str, Any], n_tokens: int) -> StatPairs:
    """Stats of one request's answer (``result`` from ``SynthGenerator.complete``)."""
    out: StatPairs = {}
    add(out, ("added",), docs=1)
    failed = "error" in result
    add(out, ("task", task), requests=1, failed=int(failed), candidates=int(not failed),
        cache_hits=int(bool(result.get("cached"))), model_calls=int(not result.get("cached")),
        gen_tokens=0 if failed else n_tokens)
    return out


def prompt_stats(task: str) -> StatPairs:
    return {("task", task): {"prompts": 1}}


def rm_stats(task: str, scored: dict[str, Any]) -> StatPairs:
    """Stats of one candidate's per-candidate RM scoring (``RewardScorer.score``)."""
    out: StatPairs = {}
    add(out, ("task", task), rm_calls=scored.get("_calls", 0), rm_cache_hits=scored.get("_hits", 0),
        rm_failed=int("error" in scored))
    return out


def verdict_stats(cand: dict[str, Any], reason: str | None, rank: int) -> StatPairs:
    """Stats of a candidate's final verdict: counts, reward histograms, rejection rule, example."""
    syn = cand["synthetic"]
    task, accepted = syn["task"], reason is None
    out: StatPairs = {}
    add(out, ("task", task), accepted=int(accepted), rejected=int(not accepted),
        tokens_added=cand.get("_n_tokens", 0) if accepted else 0)
    for rm, score in syn["rewards"].items():
        if rm in ("classifier", "judge", "math"):
            add(out, ("hist", task, rm, rm_bin(rm, score)), candidates=1, accepted=int(accepted))
    if reason is not None:
        add(out, ("reason", task, reason_rule(reason)), docs=1)
    group = f"{task}: accepted" if accepted else f"{task}: rejected"
    rewards = " ".join(f"{k}={v:.3f}" for k, v in sorted(syn["rewards"].items()))
    text = (cand.get("text") or "")[:EXAMPLE_CHARS]
    out[(EXAMPLE_CANDIDATE, group, cand["id"], rewards, reason or "", text)] = {"rank": rank}
    return out


def report(stats: Stats, config: Any) -> dict[str, Any] | None:
    tasks = select(stats, "task")
    if not tasks:
        return None
    rows = []
    totals = dict.fromkeys(COUNTERS, 0.0)
    for (task,), v in sorted(tasks.items()):
        for k in COUNTERS:
            totals[k] += v.get(k, 0)
        cands = v.get("candidates", 0)
        rows.append([task, int(v.get("prompts", 0)), int(v.get("requests", 0)), int(cands),
                     int(v.get("failed", 0)), int(v.get("accepted", 0)),
                     f"{100 * v.get('accepted', 0) / cands:.1f} %" if cands else "-",
                     int(v.get("tokens_added", 0)), int(v.get("model_calls", 0)), int(v.get("cache_hits", 0))])
    summary = {
        "prompts": int(totals["prompts"]), "requests": int(totals["requests"]),
        "candidates": int(totals["candidates"]), "accepted": int(totals["accepted"]),
        "acceptance rate": f"{100 * totals['accepted'] / totals['candidates']:.1f} %" if totals["candidates"]
        else "-",
        "failed requests (dead letter)": int(totals["failed"]),
        "tokens added": int(totals["tokens_added"]), "generated tokens": int(totals["gen_tokens"]),
        "model calls": int(totals["model_calls"]), "cache hits": int(totals["cache_hits"]),
        "reward-model calls": int(totals["rm_calls"]), "reward-model cache hits": int(totals["rm_cache_hits"]),
    }
    tables = [{"title": "Synthetic data per task",
               "columns": ["task", "prompts", "requests", "candidates", "failed", "accepted", "acceptance",
                           "tokens added", "model calls", "cache hits"], "rows": rows}]
    reasons = select(stats, "reason")
    if reasons:
        tables.append({"title": "Rejected candidates by rule", "columns": ["task", "rule", "candidates"],
                       "rows": [[t, r, int(v.get("docs", 0))] for (t, r), v in sorted(reasons.items())]})
    charts = []
    hists = select(stats, "hist")
    for task, rm in sorted({(t, rm) for t, rm, _ in hists}):
        bins = sorted({b for t, r, b in hists if (t, r) == (task, rm)}, key=float)
        charts.append({"title": f"{task}: {rm} reward", "kind": "bar", "x": bins,
                       "series": {"candidates": [hists[(task, rm, b)].get("candidates", 0) for b in bins],
                                  "accepted": [hists[(task, rm, b)].get("accepted", 0) for b in bins]},
                       "xlabel": f"{rm} score (bin lower edge)", "ylabel": "candidates"})
    shown = []
    for group, _rank, doc_id, rewards, reason, text in examples(stats):
        title = f"{group} — {doc_id} [{rewards}]" + (f" — {reason_rule(reason)}" if reason else "")
        shown.append({"title": title, "text": text})  # the HTML report escapes every text it shows
    notes = []
    if getattr(config, "rewards", None) is not None and config.rewards.length_debias:
        notes.append("Length-debiased RMs: " + ", ".join(config.rewards.length_debias)
                     + " (histograms show raw scores; the keep rule used the debiased ones).")
    return {"summary": summary, "tables": tables, "charts": charts, "notes": notes, "examples": shown}
