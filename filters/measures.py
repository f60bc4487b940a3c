"""The measured value behind each datatrove rejection, so a reason reads ``rule: value vs threshold``.

datatrove's filters return only a reason code. The value is measured again here, for rejected docs only, with
datatrove's own helpers and the filter's own thresholds (the decision itself is always datatrove's).
"""

from __future__ import annotations

import re

import numpy as np
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.gopher_repetition_filter import (
    find_all_duplicate,
    find_duplicates,
    find_top_duplicate,
    get_n_grams,
)
from datatrove.utils.text import PUNCTUATION_SET, split_into_sentences, split_into_words

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile("\n+")


def _f(value: float, bound: float | None = None) -> str:
    """The value with enough digits that it never reads as the threshold it failed (0.01004 > 0.01)."""
    for digits in range(3, 10):
        text = f"{value:.{digits}g}"
        if bound is None or value == bound or float(text) != float(bound):
            return text
    return repr(value)


def gopher_quality(filt, reason: str, text: str) -> tuple[str, float]:
    words = split_into_words(text, filt.language)
    n = max(1, len(words))
    content = [w for w in words if any(ch not in PUNCTUATION_SET for ch in w)]
    lines = text.splitlines() or [""]
    if reason in ("gopher_short_doc", "gopher_long_doc"):
        bound = filt.min_doc_words if reason == "gopher_short_doc" else filt.max_doc_words
        op = "<" if reason == "gopher_short_doc" else ">"
        return f"{len(content)} words {op} {bound}", float(len(content))
    if reason in ("gopher_below_avg_threshold", "gopher_above_avg_threshold"):
        avg = float(np.mean([len(w) for w in content])) if content else 0.0
        below = reason == "gopher_below_avg_threshold"
        bound = filt.min_avg_word_length if below else filt.max_avg_word_length
        return f"{_f(avg, bound)} chars/word {'<' if below else '>'} {bound}", avg
    if reason == "gopher_too_many_hashes":
        v = text.count("#") / n
        return f"{_f(v, filt.max_symbol_word_ratio)} '#'/word > {filt.max_symbol_word_ratio}", v
    if reason == "gopher_too_many_ellipsis":
        v = (text.count("...") + text.count("…")) / n
        return f"{_f(v, filt.max_symbol_word_ratio)} ellipses/word > {filt.max_symbol_word_ratio}", v
    if reason == "gopher_too_many_bullets":
        v = sum(s.lstrip().startswith(("•", "-")) for s in lines) / len(lines)
        return f"{_f(v, filt.max_bullet_lines_ratio)} bullet lines > {filt.max_bullet_lines_ratio}", v
    if reason == "gopher_too_many_end_ellipsis":
        v = sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines)
        return f"{_f(v, filt.max_ellipsis_lines_ratio)} lines ending in ellipsis > {filt.max_ellipsis_lines_ratio}", v
    if reason == "gopher_below_alpha_threshold":
        v = sum(any(c.isalpha() for c in w) for w in words) / n
        return f"{_f(v, filt.max_non_alpha_words_ratio)} words with a letter < {filt.max_non_alpha_words_ratio}", v
    if reason == "gopher_enough_stop_words":
        found = len(filt.stop_words.intersection(words))
        return f"{found} stop words < {filt.min_stop_words}", float(found)
    return reason, float("nan")


def gopher_repetition(filt, reason: str, text: str) -> tuple[str, float]:
    size = max(1, len(text))
    if reason.startswith("dup_para"):
        paras = _PARAGRAPHS.split(text.strip())
        dups, chars = find_duplicates(paras)
        if reason == "dup_para_frac":
            v = dups / len(paras)
            return f"{_f(v, filt.dup_para_frac)} duplicate paragraphs > {filt.dup_para_frac}", v
        v = chars / size
        return f"{_f(v, filt.dup_para_char_frac)} chars in duplicate paragraphs > {filt.dup_para_char_frac}", v
    if reason.startswith("dup_line"):
        lines = _LINES.split(text)
        dups, chars = find_duplicates(lines)
        if reason == "dup_line_frac":
            v = dups / len(lines)
            return f"{_f(v, filt.dup_line_frac)} duplicate lines > {filt.dup_line_frac}", v
        v = chars / size
        return f"{_f(v, filt.dup_line_char_frac)} chars in duplicate lines > {filt.dup_line_char_frac}", v
    words = split_into_words(text, filt.language)
    if reason.startswith("top_"):
        n = int(reason.split("_")[1])
        bound = dict(filt.top_n_grams)[n]
        v = find_top_duplicate(get_n_grams(words, n)) / size
        return f"{_f(v, bound)} chars in the top {n}-gram > {bound}", v
    if reason.startswith("duplicated_"):
        n = int(reason.split("_")[1])
        bound = dict(filt.dup_n_grams)[n]
        v = find_all_duplicate(words, n) / size
        return f"{_f(v, bound)} chars in duplicate {n}-grams > {bound}", v
    return reason, float("nan")


def c4(filt, reason: str, text: str) -> tuple[str, float]:
    if reason == "lorem_ipsum":
        return "1 'lorem ipsum'", 1.0
    if reason == "curly_bracket":
        v = text.count("{")
        return f"{v} '{{'", float(v)
    if reason == "too_few_sentences":
        v = c4_sentences(filt, text)
        return f"{v} sentences < {filt.min_num_sentences}", float(v)
    return reason, float("nan")


def c4_sentences(filt, text: str) -> int:
    """Sentences in the lines C4 keeps (datatrove counts them only inside its filter loop)."""
    count = 0
    lines = text.splitlines() if filt.split_paragraph else split_into_sentences(text, filt.language)
    for line in lines:
        line = line.strip()
        words = line.split()
        if filt.max_word_length != -1 and any(len(w) > filt.max_word_length for w in words):
            continue
        if filt.remove_citations:
            line = CITATION_REGEX.sub("", line)
        if filt.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
            continue
        if len(words) < filt.min_words_per_line:
            continue
        low = line.lower()
        if filt.filter_javascript and "javascript" in low:
            continue
        if filt.filter_policy and any(p in low for p in POLICY_SUBSTRINGS):
            continue
        count += len(split_into_sentences(line, filt.language)) if filt.split_paragraph else 1
    return count


def fineweb(filt, reason: str, text: str) -> tuple[str, float]:
    lines = [line for line in text.split("\n") if line.strip()]
    n = max(1, len(lines))
    if reason == "line_punct_ratio":
        v = sum(line.endswith(filt.stop_chars) for line in lines) / n
        return f"{_f(v, filt.line_punct_thr)} lines ending in punctuation < {filt.line_punct_thr}", v
    if reason == "short_line_ratio":
        v = sum(len(line) <= filt.short_line_length for line in lines) / n
        return f"{_f(v, filt.short_line_threshold)} lines <= {filt.short_line_length} chars > {filt.short_line_threshold}", v
    if reason == "char_dup_ratio":
        v = find_duplicates(lines)[1] / max(1, len(text.replace("\n", "")))
        return f"{_f(v, filt.char_duplicates_ratio)} chars in duplicate lines > {filt.char_duplicates_ratio}", v
    if reason == "list_ratio":
        v = text.count("\n") / max(1, len(split_into_words(text, filt.language)))
        return f"{_f(v, filt.new_line_ratio)} newlines/word > {filt.new_line_ratio}", v
    return reason, float("nan")


MEASURES = {"gopher_quality": gopher_quality, "gopher_repetition": gopher_repetition, "c4": c4,
            "fineweb": fineweb}
