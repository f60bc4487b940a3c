"""qurate's one-pass heuristic rules (filters/heuristics_rules.py) against datatrove's own filter classes: the same
keep/drop decision and the same first failing rule on every document of the bundled corpus, with the default
thresholds and with loosened ones that let documents reach the later rules."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest
from conftest import SAMPLE_CORPUS
from qurate.filters.heuristics import FAMILIES, HeuristicsConfig, build_filter
from qurate.filters.heuristics_rules import RULES, DocViews, NGrams
from qurate.filters.words import TOKENIZER

# Thresholds loosened so that the documents the defaults reject early reach the n-gram, alpha, stop-word and
# line rules; plus the non-default switches (terminal punctuation, exclude-zero).
LOOSE = {
    "gopher_repetition": {"dup_line_frac": None, "dup_para_frac": None, "dup_line_char_frac": None,
                          "dup_para_char_frac": 0.9},
    "gopher_quality": {"min_doc_words": None, "max_avg_word_length": 40},
    "fineweb": {"line_punct_thr": 0.01, "line_punct_exclude_zero": True, "short_line_thr": 0.95},
    "c4": {"filter_no_terminal_punct": True, "min_num_sentences": 3},
}


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    with gzip.open(SAMPLE_CORPUS, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def first_failures(cfg: HeuristicsConfig, docs: list[tuple[str, str]]) -> tuple[list, list]:
    """(datatrove's, qurate's) first failing (family, reason) per (text, lang), None when kept."""
    from datatrove.data import Document
    from datatrove.pipeline.filters.base_filter import get_filter_result

    filters: dict = {}
    theirs, ours = [], []
    for text, lang in docs:
        chain = []
        for family in FAMILIES:
            if (family, lang) not in filters:
                filters[family, lang] = build_filter(family, cfg.params_for(family, lang), lang)
            chain.append((family, filters[family, lang]))
        doc = Document(text=text, id="")
        expected = None
        for family, filt in chain:
            keep, reason = get_filter_result(filt.filter(doc))
            if not keep:
                expected = (family, reason)
                break
        theirs.append(expected)
        views = DocViews(text, TOKENIZER)
        ours.append(next(((family, reason) for family, filt in chain
                          if (reason := RULES[family](filt, views)) is not None), None))
    return theirs, ours


def test_same_decisions_and_first_rule_as_datatrove_on_the_bundled_corpus(corpus):
    docs = [(d["text"], d.get("lang") or "en") for d in corpus if d["text"].strip()]
    theirs, ours = first_failures(HeuristicsConfig(), docs)
    mismatches = [(i, t, o) for i, (t, o) in enumerate(zip(theirs, ours)) if t != o]
    assert not mismatches, mismatches[:5]
    rules = Counter(t for t in theirs if t)
    # the corpus exercises many rules, so equality is not the trivial "everything kept"
    assert len(rules) >= 12 and sum(t is None for t in theirs) > 500, rules


def test_same_first_rule_with_loosened_thresholds_and_unsegmented_overrides(corpus):
    cfg = HeuristicsConfig.model_validate(LOOSE)
    # every third doc as Chinese (character words, longer n-grams, no word-length rule), the others as labelled
    docs = [(d["text"], "zh" if i % 3 == 0 else d.get("lang") or "en")
            for i, d in enumerate(corpus[::3]) if d["text"].strip()]
    theirs, ours = first_failures(cfg, docs)
    mismatches = [(i, t, o) for i, (t, o) in enumerate(zip(theirs, ours)) if t != o]
    assert not mismatches, mismatches[:5]
    reasons = {t[1] for t in theirs if t}
    assert {"duplicated_5_n_grams", "gopher_enough_stop_words"} <= reasons, reasons
    assert any(r.startswith("top_") for r in reasons), reasons


@pytest.mark.parametrize("text", [
    # different word tuples whose "".join is equal: datatrove's duplicated-n-gram rule counts them as repeats
    " ".join(["ab c d e f", "a bc d e f"] * 6),
    "x " * 40 + "y " * 3,
    "one two three four five six seven eight nine ten " * 3 + "eleven twelve",
    "短文本重复短文本重复短文本重复短文本重复 mixed words 短文本",
    "a",
])
def test_edge_texts_match_datatrove(text):
    cfg = HeuristicsConfig.model_validate(LOOSE)
    for lang in ("en", "zh"):
        theirs, ours = first_failures(cfg, [(text, lang)])
        assert theirs == ours


def test_ngram_counts_match_datatrove_helpers(corpus):
    """The n-gram measures themselves (not only the decisions) equal datatrove's functions."""
    from datatrove.pipeline.filters.gopher_repetition_filter import (
        find_all_duplicate,
        find_top_duplicate,
        get_n_grams,
    )

    texts = [d["text"] for d in corpus[::10]] + [" ".join(["ab c d e f", "a bc d e f"] * 6)]
    for text in texts:
        views = DocViews(text, TOKENIZER)
        words = views.words
        grams = NGrams(views)
        for n in (2, 3, 4):
            expected = find_top_duplicate(get_n_grams(words, n)) if len(words) >= n else None
            assert grams.top_chars(n) == expected  # compiled kernel
            assert grams._top_chars_exact(n) == expected  # the Python count taken after a hash collision
        for n in (5, 6, 7, 8, 9, 10, 14):
            expected = find_all_duplicate(words, n)
            assert grams.duplicate_chars(n) == expected
            assert grams._duplicate_chars_exact(n) == expected


def test_ngram_kernels_detect_hash_collisions_instead_of_miscounting():
    """With prefix hashes that make every n-gram collide, the kernels must not count the collided groups as
    repeats: they answer COLLISION (NGrams then counts exactly); a group of truly equal n-grams still counts."""
    import numpy as np
    from qurate.filters import ngram_kernels as k

    def inputs(words: list[str]):
        chars = np.frombuffer("".join(words).encode("utf-32-le"), np.uint32)
        cum = np.concatenate(([0], np.cumsum([len(w) for w in words]))).astype(np.int64)
        return chars, cum

    ns = np.array([2, 3], np.int64)
    chars, cum = inputs("one two three four five six".split())
    collided = (np.zeros(len(chars) + 1, np.uint64), np.ones(len(chars) + 1, np.uint64))  # every hash 0
    assert k.top_chars(chars, cum, *collided, ns).tolist() == [k.COLLISION] * 2
    assert k.duplicate_chars(chars, cum, *collided, ns).tolist() == [k.COLLISION] * 2
    real = k.prefix_hashes(chars)
    assert k.top_chars(chars, cum, *real, ns).tolist() == [len("one two"), len("one two three")]
    assert k.duplicate_chars(chars, cum, *real, ns).tolist() == [0, 0]
    chars, cum = inputs("la la la la".split())  # equal n-grams under the collided hashes: a true repeat
    collided = (np.zeros(len(chars) + 1, np.uint64), np.ones(len(chars) + 1, np.uint64))
    assert k.top_chars(chars, cum, *collided, ns).tolist() == [len("la la") * 3, len("la la la") * 2]
    # "".join: "lala" at 0 seen, at 1 repeated (4 chars, skip to 3), 2 skipped, so 4; n=3 "lalala" at 1: 6
    assert k.duplicate_chars(chars, cum, *collided, ns).tolist() == [4, 6]


def test_unsegmented_script_check_equals_the_regex(corpus):
    import random

    from qurate.filters.words import _HAS_UNSEGMENTED, has_unsegmented

    rng = random.Random(4)
    texts = [d["text"] for d in corpus] + ["a\ud800b", "日本", "x\u0e01", "ー", "é", ""]
    texts += ["".join(chr(rng.choice([rng.randrange(0x0E00, 0xD800), rng.randrange(0xE000, 0x110000)]))
                      for _ in range(3)) for _ in range(20000)]
    texts += [chr(i) + "a" for i in range(0x80, 0x0E00)]  # the table skips these: no such script below Thai
    assert [has_unsegmented(t) for t in texts] == [_HAS_UNSEGMENTED.search(t) is not None for t in texts]

