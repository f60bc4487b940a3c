"""From model answers to synthetic docs: candidates, length de-biasing, the per-prompt keep rule and dedup.

Per prompt (one seed doc and task, its ``n`` samples), in this order:

1. verifiable math (math tasks): each sample's final answer, majority vote, agreement with the reference;
2. each RM score listed in ``rewards.length_debias`` is replaced by its residual from the task's linear fit of
   score on log(1 + completion tokens), plus the task's mean score (the fit's sums are combined over the whole
   run); the combined reward is the weighted sum of the RM scores;
3. candidates best first (combined reward, ties by a keyed hash): empty ones, copies of the seed (MinHash
   Jaccard of the completion with the seed text) and near copies of a better candidate's completion are dropped;
4. per-RM floors (``keep.min``), the threshold, then best-of-n.

Survivors of all prompts are then deduplicated exactly across prompts (the best copy stays).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from qurate.doc import Doc
from qurate.hashing import stable_hash
from qurate.synth.config import SynthConfig, TaskConfig
from qurate.synth.mathcheck import extract_answer, math_scores
from qurate.synth.tasks import Request, render_doc

Candidate = dict[str, Any]
Fit = tuple[float, float, float]  # (intercept, slope, mean score)
LengthSums = tuple[int, int, int, int, int]  # n, Σx, Σy, Σx², Σxy (fixed point)

EMPTY = "synth_empty"
COPIES_SEED = "synth_copies_seed"
NEAR_DUPLICATE = "synth_near_duplicate"
DUPLICATE = "synth_duplicate"
BELOW_MIN = "synth_rm_below_min"
BELOW_THRESHOLD = "synth_reward_below_threshold"
NOT_BEST = "synth_not_best_of_n"


def candidate(config: SynthConfig, request: Request, completion: dict[str, Any], seed: int) -> Candidate:
    """A synthetic doc in the making from a request and its model answer (private fields start with '_')."""
    task = config.task(request["task"])
    text = render_doc(task, request, completion["text"])
    return {
        "id": request["id"], "text": text, "source": f"synthetic/{task.name}",
        "lang": request.get("seed_lang"), "domain": request.get("seed_domain"),
        "synthetic": {"task": task.name, "seed_id": request["seed_id"], "generator": config.generator.label(),
                      "sample": request["sample"], "rewards": {}},
        "_prompt": request["user"], "_completion": completion["text"], "_seed_text": request.get("seed_text") or "",
        "_answer": request.get("answer"), "_n_tokens": int(completion.get("n_tokens") or 0),
        "_finish": completion.get("finish"), "_cached": bool(completion.get("cached")),
        "_rank": stable_hash(request["id"], seed),
    }


def finalize(cand: Candidate) -> Doc:
    """The doc as written: private fields dropped."""
    return {k: v for k, v in cand.items() if not k.startswith("_")}  # type: ignore[return-value]


def length_x(cand: Candidate) -> float:
    return math.log1p(max(cand.get("_n_tokens") or 0, 0))


_Q = 10**6  # fixed point: integer sums are exact, so the fit does not depend on the order a runner sums in


def length_sums(x: float, y: float) -> LengthSums:
    """One point's contribution to the fit: (1, x, y, x², xy) in integers scaled by 10⁶ per factor."""
    xq, yq = round(x * _Q), round(y * _Q)
    return (1, xq, yq, xq * xq, xq * yq)


def add_sums(parts: Iterable[LengthSums]) -> LengthSums:
    acc = [0, 0, 0, 0, 0]
    for p in parts:
        for i, v in enumerate(p):
            acc[i] += v
    return tuple(acc)  # type: ignore[return-value]


def fit_from_sums(sums: LengthSums) -> Fit:
    """Least squares of score on log length: (intercept, slope, mean score); slope 0 when lengths do not vary."""
    n, sx, sy, sxx, sxy = sums
    if n <= 0:
        return 0.0, 0.0, 0.0
    mean = sy / n / _Q
    denom = n * sxx - sx * sx  # exact integers
    if n < 2 or denom == 0:
        return mean, 0.0, mean
    slope = (n * sxy - sx * sy) / denom
    return (sy - slope * sx) / n / _Q, slope, mean


def debias(score: float, x: float, fit: Fit) -> float:
    """The score minus what length alone predicts, plus the mean: the same scale, length's effect removed."""
    intercept, slope, mean = fit
    return score - (intercept + slope * x) + mean


def fit_lengths(cands: Sequence[Candidate], rm: str) -> Fit:
    """The length fit of one RM over a list of candidates (the wiring combines the sums over the run)."""
    return fit_from_sums(add_sums(length_sums(length_x(c), c["synthetic"]["rewards"][rm]) for c in cands
                                  if rm in c["synthetic"]["rewards"]))


def apply_math(task: TaskConfig, cands: Sequence[Candidate], symbolic: bool) -> None:
    """Verifiable math over one prompt's samples: ``rewards.math`` and ``synthetic.answer`` of each."""
    answers = [extract_answer(c["_completion"]) for c in cands]
    reference = cands[0].get("_answer") if cands else None
    for c, answer, score in zip(cands, answers, math_scores(answers, reference, symbolic)):
        c["synthetic"]["rewards"]["math"] = score
        c["synthetic"]["answer"] = answer


def combine(config: SynthConfig, cand: Candidate, fits: dict[tuple[str, str], Fit]) -> float:
    """Debiases the listed RMs (kept as ``<rm>_debiased``) and returns the weighted sum of the RM scores."""
    rewards = cand["synthetic"]["rewards"]
    task = cand["synthetic"]["task"]
    total = 0.0
    for rm in config.rm_names():
        if rm not in rewards:
            continue
        score = rewards[rm]
        if rm in config.rewards.length_debias and (task, rm) in fits:
            score = debias(score, length_x(cand), fits[(task, rm)])
            rewards[f"{rm}_debiased"] = round(score, 6)
        total += config.rm_weight(rm) * score
    rewards["combined"] = round(total, 6)
    return total


def effective(config: SynthConfig, cand: Candidate, rm: str) -> float:
    rewards = cand["synthetic"]["rewards"]
    return rewards.get(f"{rm}_debiased", rewards[rm])


def scores_text(cand: Candidate) -> str:
    rewards = cand["synthetic"]["rewards"]
    return " ".join(f"{k}={v:.3f}" for k, v in sorted(rewards.items()))


@lru_cache(maxsize=4)
def _signer(num_perm: int) -> Any:
    from qurate.dedup.signatures import Signer

    return Signer(num_perm, seed=1)


def _jaccard(a: Any, b: Any) -> float:
    """Estimated Jaccard similarity: the share of equal MinHash values."""
    return float((a == b).mean())


def decide_prompt(config: SynthConfig, cands: Sequence[Candidate],
                  fits: dict[tuple[str, str], Fit]) -> list[tuple[Candidate, str | None]]:
    """One prompt's candidates with their verdict: None (goes on) or the rejection reason."""
    if not cands:
        return []
    from qurate.dedup.exact import normalize

    task = config.task(cands[0]["synthetic"]["task"])
    if task.uses_math():
        apply_math(task, cands, config.rewards.math.symbolic)
    combined = {c["id"]: combine(config, c, fits) for c in cands}
    order = sorted(cands, key=lambda c: (-combined[c["id"]], c["_rank"], c["id"]))
    signer = _signer(config.dedup.num_perm)
    # Completions are compared, not doc texts: a math doc repeats its problem, which every sample shares.
    texts = [order[0]["_seed_text"]] + [c["_completion"] for c in order]
    sigs = signer.signatures(texts, [order[0].get("lang")] * len(texts))
    seed_sig, comp_sigs = sigs[0], sigs[1:]
    seed_norm = normalize(cands[0]["_seed_text"], "lower")
    threshold = config.dedup.near_threshold
    verdicts: dict[str, str | None] = {}
    survivors: list[int] = []
    for i, c in enumerate(order):
        note = f" [{scores_text(c)}]"
        if not c["_completion"].strip():
            verdicts[c["id"]] = f"{EMPTY}: 0 chars{note}"
            continue
        j_seed = _jaccard(comp_sigs[i], seed_sig)
        if normalize(c["_completion"], "lower") == seed_norm or j_seed >= threshold:
            verdicts[c["id"]] = f"{COPIES_SEED}: jaccard {j_seed:.2f} >= {threshold:.2f} with the seed{note}"
            continue
        dup = next(((order[k]["id"], _jaccard(comp_sigs[i], comp_sigs[k])) for k in survivors
                    if _jaccard(comp_sigs[i], comp_sigs[k]) >= threshold), None)
        if dup is not None:
            verdicts[c["id"]] = f"{NEAR_DUPLICATE}: jaccard {dup[1]:.2f} >= {threshold:.2f} with {dup[0]}{note}"
            continue
        survivors.append(i)
    passing = []
    for i in survivors:
        c = order[i]
        note = f" [{scores_text(c)}]"
        low = next(((rm, effective(config, c, rm), floor) for rm, floor in sorted(config.keep.min.items())
                    if rm in c["synthetic"]["rewards"] and effective(config, c, rm) < floor), None)
        if low is not None:
            verdicts[c["id"]] = f"{BELOW_MIN}: {low[0]} {low[1]:.3f} < {low[2]:.3f}{note}"
        elif config.keep.threshold is not None and combined[c["id"]] < config.keep.threshold:
            verdicts[c["id"]] = (f"{BELOW_THRESHOLD}: {combined[c['id']]:.3f} < {config.keep.threshold:.3f}"
                                 f"{note}")
        else:
            passing.append(c)
    best = combined[passing[0]["id"]] if passing else None
    for rank, c in enumerate(passing, start=1):
        if config.keep.best_of_n and rank > config.keep.best_of_n:
            verdicts[c["id"]] = (f"{NOT_BEST}: rank {rank} > {config.keep.best_of_n} (reward "
                                 f"{combined[c['id']]:.3f}, best {best:.3f}) [{scores_text(c)}]")
        else:
            verdicts[c["id"]] = None
    return [(c, verdicts[c["id"]]) for c in cands]


def pick_exact(cands: Sequence[Candidate]) -> list[tuple[Candidate, str | None]]:
    """Candidates of different prompts with the same text: the best stays (reward, then id)."""
    order = sorted(cands, key=lambda c: (-c["synthetic"]["rewards"].get("combined", 0.0), c["id"]))
    out: list[tuple[Candidate, str | None]] = [(order[0], None)]
    for c in order[1:]:
        out.append((c, f"{DUPLICATE}: same text as {order[0]['id']} [{scores_text(c)}]"))
    return out
