"""Chooses the second opinion's per-group rules (``filters/second_opinion.py: GROUP_RULES``) on the *tune* half.

Only items ``bench/langid_eval.py:split_of`` puts in the tune half of both sets (UDHR and corpus) are read. For
each, fastText's chunk-weighted scores and lingua's in-group confidences are computed once; then, group by group
(two rounds), every (floor, power[, Malay weight]) on the grid is scored with the rest fixed:

    objective  = mean over {udhr, corpus} x {sentences, documents} of the macro accuracy over languages
    constraint = no language on the tune half more than 1 point below raw lid.176 (stricter than the 5-point
                 held-out acceptance, because ~30 items per language are a noisy estimate)

The best rule that meets the constraint wins (if none does, the best overall, flagged). Spelling cues (ms/id)
and the ekavian rule (Latin Serbian) are on throughout, as in qurate; groups whose rule does not use lingua
(ms/id, see ``GROUP_RULES``) are not tuned. Prints the chosen rules and the tune-half macro accuracies; never
reads the held-out half.

    .venv/bin/python bench/langid_tune.py
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's when bench/ is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import importlib.util  # noqa: E402
import itertools  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import replace  # noqa: E402

_spec = importlib.util.spec_from_file_location("langid_eval", Path(__file__).with_name("langid_eval.py"))
langid_eval = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(langid_eval)

FLOORS = (0.0, 0.05, 0.1, 0.2, 0.4)
POWERS = (0.3, 0.5, 1.0, 1.5, 2.0, 4.0)
MALAY_WEIGHTS = (1.0, 0.5, 0.2)
MIN_ITEMS = 10
TOLERANCE = 0.01


def measure(items: list[dict]) -> list[dict]:
    """Per item: fastText's top label and score, its in-group prior, the group, lingua's values, cue results."""
    from qurate.filters.langcodes import GROUP_EXTRA, group_of, script_of
    from qurate.filters.langid import LangIdConfig, LanguageIdentifier, chunk_text
    from qurate.filters.second_opinion import LinguaSecondOpinion, cue_winner, is_ekavian, standard_winner

    cfg = LangIdConfig(second_opinion=False)
    lid = LanguageIdentifier(cfg)
    lid.load()
    second = LinguaSecondOpinion()
    second.load()
    out = []
    for it in items:
        chunks = chunk_text(it["text"], cfg.chunk_chars, cfg.max_chunks)
        res = lid.identify(it["text"])
        row = {"item": it, "raw": res.lang, "score": res.score, "group": None}
        if chunks and res.lang is not None:
            script = script_of(it["text"])
            group = group_of(res.lang, script)
            if group is not None and res.score < cfg.second_opinion_below:
                labels, probs = lid._model.predict(chunks, k=cfg.top_k)
                scores: dict[str, float] = defaultdict(float)
                total = sum(len(c) for c in chunks)
                for chunk, ls, ps in zip(chunks, labels, probs):
                    for label, p in zip(ls, ps):
                        scores[langid_eval_normalize(label)] += len(chunk) * float(p) / total
                prior = {c: scores.get(c, 0.0) for c in group}
                for extra, members in GROUP_EXTRA.items():
                    if extra in scores and set(members) <= set(group):
                        for c in members:
                            prior[c] += scores[extra] / len(members)
                text = " ".join(chunks)
                head = text[:second.max_chars]
                cue = cue_winner(group, head) or (standard_winner(group, head, prior) if script == "latin" else None)
                asked = second.rules[group].use_lingua  # ms/id: cues only, no lingua models loaded
                row.update(group=group, prior=prior, lingua=second.lingua(group, text) if asked else {}, cue=cue,
                           ekavian="sr" in group and script == "latin" and is_ekavian(text[:second.max_chars]))
        out.append(row)
    return out


def langid_eval_normalize(label: str) -> str:
    from qurate.filters.langcodes import normalize

    return normalize(label)


def decide(row: dict, rules: dict) -> str | None:
    from qurate.filters.second_opinion import EKAVIAN_BOOST, combine

    if row["group"] is None:
        return row["raw"]
    if row["cue"] is not None:
        return row["cue"]
    if not rules[row["group"]].use_lingua:
        return row["raw"]
    lingua = dict(row["lingua"])
    if not lingua or max(lingua.values()) <= 0:
        return row["raw"]
    if row["ekavian"]:
        lingua["sr"] = EKAVIAN_BOOST * max(v for c, v in lingua.items() if c != "sr")
    decided = combine(row["group"], lingua, row["prior"], rules[row["group"]])
    return row["raw"] if decided is None else decided[0]


def evaluate(rows_by_set: dict[str, list[dict]], rules: dict | None) -> tuple[float, float]:
    """(objective, worst per-language difference to raw) on the tune half; ``rules=None`` is raw+codes."""
    parts, worst = [], 1.0
    for rows in rows_by_set.values():
        for kinds in (("sentence",), ("doc",)):
            hits: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
            for row in rows:
                it = row["item"]
                if it["kind"] not in kinds:
                    continue
                h = hits[it["lang"]]
                h[0] += (decide(row, rules) if rules is not None else row["raw"]) == it["lang"]
                h[1] += row["raw"] == it["lang"]
                h[2] += 1
            covered = [h for h in hits.values() if h[2] >= MIN_ITEMS]
            parts.append(sum(h[0] / h[2] for h in covered) / len(covered))
            worst = min([worst, *[(h[0] - h[1]) / h[2] for h in covered]])
    return sum(parts) / len(parts), worst


def main() -> None:
    from qurate.filters.second_opinion import GROUP_RULES, GroupRule

    rows_by_set = {}
    for name, path in langid_eval.SETS.items():
        items = [it for it in langid_eval.load_items(path) if langid_eval.split_of(it) == "tune"]
        rows_by_set[name] = measure(items)
        print(f"{name}: {len(items)} tune items, {sum(r['group'] is not None for r in rows_by_set[name])} "
              "get a second opinion")
    print(f"raw lid.176 (codes normalized): objective {evaluate(rows_by_set, None)[0]:.4f}")
    rules = {group: GroupRule(use_lingua=rule.use_lingua) for group, rule in GROUP_RULES.items()}
    print(f"start (every group floor 0.1, power 0.3): objective {evaluate(rows_by_set, rules)[0]:.4f}")
    for round_ in range(2):
        for group in [g for g, rule in rules.items() if rule.use_lingua]:  # ms/id: spelling cues only
            weights = MALAY_WEIGHTS if "ms" in group else (1.0,)
            best = None
            for floor, power, weight in itertools.product(FLOORS, POWERS, weights):
                trial = dict(rules)
                trial[group] = replace(rules[group], floor=floor, power=power,
                                       lingua_weight={"ms": weight} if weight != 1.0 else {})
                objective, worst = evaluate(rows_by_set, trial)
                key = (worst >= -TOLERANCE, objective)
                if best is None or key > best[0]:
                    best = (key, trial[group], worst)
            rules[group] = best[1]
            flag = "" if best[0][0] else "  (no rule met the constraint)"
            print(f"round {round_ + 1} {'/'.join(group):<16} floor {best[1].floor:<5} power {best[1].power:<4} "
                  f"lingua weight {best[1].lingua_weight or '-'}: objective {best[0][1]:.4f}, worst language "
                  f"vs raw {best[2]:+.3f}{flag}")
    print("\nchosen (filters/second_opinion.py GROUP_RULES):")
    for group, rule in rules.items():
        same = "same as the code" if GROUP_RULES.get(group) == rule else f"code has {GROUP_RULES.get(group)}"
        print(f"  {group}: {rule}  [{same}]")


if __name__ == "__main__":
    main()
