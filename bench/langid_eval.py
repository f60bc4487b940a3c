"""Language-ID accuracy: raw lid.176.ftz against qurate's LID on the same labelled real text.

The set is ``bench/data/langid_eval.jsonl.gz`` (built by ``bench/make_langid_eval.py`` from translated man pages
and gettext catalogues; see ``bench/data/README.md``): whole documents and sentences of 20-200 characters in the
Qwen2.5 languages the corpus covers.

- ``raw``: ``model.predict(text with line breaks as spaces, k=1)``, its label taken verbatim (``no`` stays ``no``);
- ``raw+codes``: the same prediction with qurate's ISO 639-1 normalization (``no`` -> ``nb``), so the gain of
  qurate's chunking and second opinion is shown apart from the code mapping;
- ``qurate``: ``LanguageIdentifier`` with the default recipe settings (the label, before any threshold).

Prints per-language accuracy, macro accuracy (mean over languages with at least ``--min-items`` items) for
sentences, documents and both, and the time each takes (speed cost of the second opinion).

    .venv/bin/python bench/langid_eval.py [--min-items 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a tokenize.py that would shadow the standard library's when bench/ is sys.path[0]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

DATA = Path(__file__).parent / "data" / "langid_eval.jsonl.gz"
SYSTEMS = ("raw", "raw+codes", "qurate")


def load_items(path: Path = DATA) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def predict_all(items: list[dict]) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Labels per system, in item order, and seconds per system (model loading excluded)."""
    import fasttext
    from qurate.filters.langcodes import normalize
    from qurate.filters.langid import _LINE_BREAKS, LangIdConfig, LanguageIdentifier, default_model_path

    texts = [it["text"] for it in items]
    model = fasttext.load_model(default_model_path())
    started = time.perf_counter()
    raw = [model.predict(_LINE_BREAKS.sub(" ", t), k=1)[0][0].removeprefix("__label__") for t in texts]
    raw_s = time.perf_counter() - started
    lid = LanguageIdentifier(LangIdConfig())
    lid.load()
    if lid.second_opinion is not None:
        lid.second_opinion.warm_up()  # one-time model loading is not part of the per-text cost
    started = time.perf_counter()
    ours = []
    for i in range(0, len(texts), 256):
        ours += [r.lang or "" for r in lid.identify_batch(texts[i:i + 256])]
    ours_s = time.perf_counter() - started
    return ({"raw": raw, "raw+codes": [normalize(x) for x in raw], "qurate": ours},
            {"raw": raw_s, "raw+codes": raw_s, "qurate": ours_s})


def accuracy(items: list[dict], labels: dict[str, list[str]], kinds: tuple[str, ...],
             min_items: int) -> tuple[dict[str, dict[str, float]], dict[str, int], dict[str, float]]:
    """Per-language accuracy per system, item counts, and macro accuracy over languages with enough items."""
    hits: dict[str, dict[str, int]] = {s: defaultdict(int) for s in SYSTEMS}
    counts: dict[str, int] = defaultdict(int)
    for i, it in enumerate(items):
        if it["kind"] not in kinds:
            continue
        counts[it["lang"]] += 1
        for system in SYSTEMS:
            hits[system][it["lang"]] += labels[system][i] == it["lang"]
    per_lang = {s: {lang: hits[s][lang] / n for lang, n in counts.items()} for s in SYSTEMS}
    covered = [lang for lang, n in counts.items() if n >= min_items]
    macro = {s: sum(per_lang[s][lang] for lang in covered) / max(1, len(covered)) for s in SYSTEMS}
    return per_lang, dict(counts), macro


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-items", type=int, default=10, help="languages with fewer items are listed, "
                        "not averaged")
    args = parser.parse_args()
    items = load_items()
    labels, seconds = predict_all(items)
    mb = sum(len(it["text"].encode("utf-8")) for it in items) / 1e6
    print(f"LID evaluation: {len(items)} items ({sum(it['kind'] == 'doc' for it in items)} docs), "
          f"{len({it['lang'] for it in items})} languages, {mb:.2f} MB")
    per_lang, counts, _ = accuracy(items, labels, ("sentence",), args.min_items)
    doc_lang, doc_counts, _ = accuracy(items, labels, ("doc",), 1)
    print(f"\n{'lang':<5} {'sent':>5} {'raw':>6} {'raw+c':>6} {'qurate':>6}   {'docs':>4} {'raw':>6} "
          f"{'raw+c':>6} {'qurate':>6}")
    for lang in sorted(counts, key=lambda x: (-counts[x], x)):
        d = doc_counts.get(lang, 0)
        docs = (f"{d:>4} " + " ".join(f"{doc_lang[s][lang]:>6.3f}" for s in SYSTEMS)) if d else ""
        print(f"{lang:<5} {counts[lang]:>5} " + " ".join(f"{per_lang[s][lang]:>6.3f}" for s in SYSTEMS)
              + "   " + docs)
    print(f"\nmacro accuracy over languages with >= {args.min_items} items:")
    for name, kinds in (("sentences", ("sentence",)), ("documents", ("doc",)), ("all items", ("sentence", "doc"))):
        _, n, macro = accuracy(items, labels, kinds, args.min_items)
        n_langs = sum(1 for v in n.values() if v >= args.min_items)
        print(f"  {name:<10} ({n_langs} langs): " + "  ".join(f"{s} {macro[s]:.4f}" for s in SYSTEMS)
              + f"  gain vs raw+codes {macro['qurate'] - macro['raw+codes']:+.4f}")
    groups = {"nb/nn/da/sv": ("nb", "nn", "da", "sv"), "bs/hr/sr": ("bs", "hr", "sr"), "ms/id": ("ms", "id"),
              "ru/uk": ("ru", "uk")}
    print("\nconfusable groups, sentence accuracy (mean over members):")
    for name, members in groups.items():
        present = [m for m in members if m in counts]
        if present:
            print(f"  {name:<12} " + "  ".join(
                f"{s} {sum(per_lang[s][m] for m in present) / len(present):.3f}" for s in SYSTEMS))
    print(f"\nspeed: raw predict {mb / seconds['raw']:.2f} MB/s, qurate {mb / seconds['qurate']:.2f} MB/s "
          f"({seconds['qurate'] / seconds['raw']:.2f}x the time of raw; one core)")


if __name__ == "__main__":
    main()
