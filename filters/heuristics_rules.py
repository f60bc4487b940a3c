"""datatrove's Gopher quality, Gopher repetition, C4 and FineWeb rules, computed in one pass per document.

Same decisions and the same first failing rule as datatrove's filter classes (``tests/test_heuristics_equal.py``
runs both on the bundled corpus), configured by the datatrove filter objects themselves (thresholds, stop words,
word tokenizer), but without datatrove's per-rule, per-n work:

- the text is split into words once (with the filter's own word tokenizer) and into lines once, and every rule
  family reads those shared views (``DocViews``);
- per-word properties (punctuation-only, has a letter, length) are read from one per-code-point table over the
  joined words and reduced per word (numpy);
- n-grams get a 64-bit hash of their characters and are grouped by it in compiled kernels
  (``ngram_kernels``, numba); each group is compared character by character, so a hash collision sends that n
  to the exact Python count (``NGrams``) instead of changing a result;
- C4 stops splitting lines into sentences once the minimum is reached and no later line can drop the page.

Each rule returns datatrove's reason code or ``None`` (kept); ``filters.measures`` turns a code into the
measured value for the rejection reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.utils.text import PUNCTUATION_SET
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

# Every member is one character and no letter (checked at import): "strip(PUNCTUATION) leaves nothing" is "every
# character is punctuation", so both word tests read per character (``_char_classes``).
assert all(len(c) == 1 and not c.isalpha() for c in PUNCTUATION_SET)


_ALPHA_BIT, _PUNCT_BIT = 1, 2
_CHAR_CLASSES: np.ndarray | None = None


def _char_classes() -> np.ndarray:
    """Per code point: ``_ALPHA_BIT`` if ``str.isalpha``, ``_PUNCT_BIT`` if in datatrove's punctuation set."""
    global _CHAR_CLASSES
    if _CHAR_CLASSES is None:
        table = np.fromiter(map(str.isalpha, map(chr, range(0x110000))), np.uint8, 0x110000) * _ALPHA_BIT
        table[[ord(c) for c in PUNCTUATION_SET]] |= _PUNCT_BIT
        _CHAR_CLASSES = table
    return _CHAR_CLASSES


class DocViews:
    """The splits of one text that several rule families read, each computed at most once."""

    def __init__(self, text: str, tokenizer: WordTokenizer):
        self.text = text
        self.tokenizer = tokenizer

    @cached_property
    def words(self) -> list[str]:
        return self.tokenizer.word_tokenize(self.text)

    @cached_property
    def word_counts(self) -> Counter[str]:
        """Distinct words in first-seen order, with their counts."""
        return Counter(self.words)

    @cached_property
    def joined(self) -> tuple[np.ndarray, np.ndarray]:
        """(code points of the words joined without separators, word boundaries: word i is [cum[i], cum[i+1]))."""
        words = self.words
        chars = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), np.uint32)
        cum = np.concatenate(([0], np.cumsum(np.fromiter(map(len, words), np.int64, len(words)))))
        return chars, cum

    @cached_property
    def word_props(self) -> tuple[int, int, int, int]:
        """(words with a non-punctuation character, their total length, words with a letter, words in all).

        datatrove's per-word tests (``word.strip(PUNCTUATION)`` non-empty, ``any(c.isalpha() for c in word)``)
        read per code point from one table over the joined words (``str.isalpha`` and the punctuation set,
        evaluated once per process), then reduced per word."""
        chars, cum = self.joined
        if len(cum) == 1:
            return 0, 0, 0, 0
        classes = _char_classes()[chars]
        starts = cum[:-1]
        content = np.logical_or.reduceat((classes & _PUNCT_BIT) == 0, starts)
        alpha = np.logical_or.reduceat((classes & _ALPHA_BIT) != 0, starts)
        return int(content.sum()), int(np.diff(cum)[content].sum()), int(alpha.sum()), len(cum) - 1

    @cached_property
    def splitlines(self) -> list[str]:
        return self.text.splitlines()

    @cached_property
    def nonblank_nl_lines(self) -> list[str]:
        return [line for line in self.text.split("\n") if line.strip()]


def _duplicates(items: list[str]) -> tuple[int, int]:
    """datatrove's ``find_duplicates``: repeats after the first occurrence, and their characters."""
    unique = set(items)
    if len(unique) == len(items):
        return 0, 0
    return len(items) - len(unique), sum(map(len, items)) - sum(map(len, unique))


def gopher_repetition(filt: Any, views: DocViews) -> str | None:
    text = views.text
    if not text:
        return "empty"
    size = len(text)
    paragraphs = filt.paragraph_exp.split(text.strip())
    dups, chars = _duplicates(paragraphs)
    if filt.dup_para_frac and dups / len(paragraphs) > filt.dup_para_frac:
        return "dup_para_frac"
    if filt.dup_para_char_frac and chars / size > filt.dup_para_char_frac:
        return "dup_para_char_frac"
    lines = filt._line_splitter.split(text)
    dups, chars = _duplicates(lines)
    if filt.dup_line_frac and dups / len(lines) > filt.dup_line_frac:
        return "dup_line_frac"
    if filt.dup_line_char_frac and chars / size > filt.dup_line_char_frac:
        return "dup_line_char_frac"

    grams = NGrams(_views_for(filt, views))
    tops = grams.top_chars_many([n for n, _ in filt.top_n_grams])
    for (n, n_frac), top in zip(filt.top_n_grams, tops):
        if top is not None and top / size > n_frac:
            return f"top_{n}_gram"
    dups = grams.duplicate_chars_many([n for n, _ in filt.dup_n_grams])
    for (n, n_frac), dup in zip(filt.dup_n_grams, dups):
        if dup / size > n_frac:
            return f"duplicated_{n}_n_grams"
    return None


class NGrams:
    """The word n-grams of one document, compared as datatrove compares them, without building every one.

    datatrove builds each n-gram as a string (" ".join for the top n-grams, "".join for the duplicated ones)
    at every position. Here each n-gram first gets a 64-bit polynomial hash of its characters, computed for all
    positions at once from prefix sums over the document's joined words: equal strings have equal hashes, so an
    n-gram whose hash is unique in the document occurs once and can neither be a top n-gram with a count above
    one nor a repeat. Only n-grams whose hash is shared (repeats, or a rare hash collision) are compared
    exactly, character by character in the compiled kernels (``ngram_kernels``); a group holding different
    strings sends that n to the Python count here (``_top_chars_exact``, ``_duplicate_chars_exact``), so the
    hash decides how much work is done, never the result. Words hold no space, so one hash over "".join serves
    both joins: equal " ".join strings are equal "".join strings.
    """

    def __init__(self, views: DocViews):
        self.views = views
        self.words = words = views.words
        self.n_words = len(words)
        self.cum_len = views.joined[1]
        self._word_ids: np.ndarray | None = None
        self._kernel_args: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _kernel(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The compiled kernels' inputs: code points of the joined words, word boundaries, prefix hashes."""
        if self._kernel_args is None:
            from qurate.filters import ngram_kernels

            chars = self.views.joined[0]
            self._kernel_args = (chars, self.cum_len, *ngram_kernels.prefix_hashes(chars))
        return self._kernel_args

    def _hashes(self, n: int) -> np.ndarray:
        """A polynomial hash (mod 2**64) of each n-gram's characters, the same for equal strings wherever
        they start, from the kernels' prefix sums (character k weighed by B**k; a substring's sum is scaled by
        B**(T-start))."""
        _, cum, prefix, powers = self._kernel()
        starts = cum[:-n]
        with np.errstate(over="ignore"):
            return (prefix[cum[n:]] - prefix[starts]) * powers[len(powers) - 1 - starts]

    def _shared(self, n: int) -> list[int]:
        """Positions (ascending) whose n-gram hash occurs more than once; every repeated n-gram is among them."""
        hashes = self._hashes(n)
        ordered = np.sort(hashes)
        if not (ordered[1:] == ordered[:-1]).any():  # most documents: no n-gram occurs twice
            return []
        order = np.argsort(hashes)
        ordered = hashes[order]
        equal = ordered[1:] == ordered[:-1]
        shared = np.zeros(len(hashes), bool)
        shared[1:] |= equal
        shared[:-1] |= equal
        return np.sort(order[shared]).tolist()

    def top_chars(self, n: int) -> int | None:
        """datatrove's ``find_top_duplicate(get_n_grams(words, n))`` (None when there is no n-gram): the
        characters of the most frequent " ".join n-gram (the first seen among equals) times its count."""
        return self.top_chars_many([n])[0]

    def top_chars_many(self, ns: list[int]) -> list[int | None]:
        """``top_chars`` for each of ``ns``, compiled (``ngram_kernels``) in one call; an n whose hash groups
        collided is counted exactly here."""
        from qurate.filters.ngram_kernels import COLLISION, top_chars

        fits = [n for n in ns if 1 <= n <= self.n_words]
        found = dict(zip(fits, top_chars(*self._kernel(), np.array(fits, np.int64)).tolist())) if fits else {}
        return [None if n not in found else self._top_chars_exact(n) if found[n] == COLLISION else found[n]
                for n in ns]

    def _top_chars_exact(self, n: int) -> int | None:
        """``top_chars`` in Python, counting every repeated n-gram exactly (and the reference in tests)."""
        if n < 1 or self.n_words - n + 1 <= 0:
            return None
        cum = self.cum_len
        shared = self._shared(n)
        if shared and len(self.views.word_counts) ** n < 2**62:
            # " ".join n-grams are equal exactly when their word tuples are: one integer per tuple of word ids
            ids = self._ids()
            positions = np.asarray(shared)
            key = ids[positions]
            for k in range(1, n):
                key = key * len(self.views.word_counts) + ids[positions + k]
            _, first, counts = np.unique(key, return_index=True, return_counts=True)
            best = int(counts.max())
            if best > 1:  # the first seen among the most frequent, as Counter.most_common(1) picks it
                pos = int(positions[first[counts == best].min()])
                return (int(cum[pos + n] - cum[pos]) + n - 1) * best
        elif shared:
            grams = Counter(" ".join(self.words[p:p + n]) for p in shared)  # first seen first, as datatrove's
            gram, count = grams.most_common(1)[0]
            if count > 1:
                return len(gram) * count
        return int(cum[n] - cum[0]) + n - 1  # every n-gram occurs once: the first one wins the tie

    def _ids(self) -> np.ndarray:
        """Each word's index among the document's distinct words."""
        if self._word_ids is None:
            index = {w: i for i, w in enumerate(self.views.word_counts)}
            self._word_ids = np.fromiter(map(index.__getitem__, self.words), np.int64, self.n_words)
        return self._word_ids

    def duplicate_chars(self, n: int) -> int:
        """datatrove's ``find_all_duplicate(words, n)``: walking the positions, an n-gram ("".join) already seen
        at a visited position counts its characters and skips the next n - 1 positions."""
        return self.duplicate_chars_many([n])[0]

    def duplicate_chars_many(self, ns: list[int]) -> list[int]:
        """``duplicate_chars`` for each of ``ns``, compiled (``ngram_kernels``) in one call; an n whose hash
        groups collided is counted exactly here."""
        from qurate.filters.ngram_kernels import COLLISION, duplicate_chars

        fits = [n for n in ns if 1 <= n <= self.n_words]
        found = dict(zip(fits, duplicate_chars(*self._kernel(), np.array(fits, np.int64)).tolist())) if fits else {}
        return [0 if n not in found else self._duplicate_chars_exact(n) if found[n] == COLLISION else found[n]
                for n in ns]

    def _duplicate_chars_exact(self, n: int) -> int:
        """``duplicate_chars`` in Python: an n-gram occurring once is never seen before and never counted, so
        the walk needs only the positions whose hash is shared, and compares their strings."""
        if n < 1 or self.n_words - n + 1 <= 0:
            return 0
        shared = self._shared(n)
        if not shared:
            return 0
        joined, cum = "".join(self.words), self.cum_len.tolist()
        seen: set[str] = set()
        repeated = idx = 0
        for pos in shared:
            if pos < idx:  # skipped after a repeat
                continue
            gram = joined[cum[pos]:cum[pos + n]]
            if gram in seen:
                repeated += len(gram)
                idx = pos + n
            else:
                seen.add(gram)
                idx = pos + 1
        return repeated


def _views_for(filt: Any, views: DocViews) -> DocViews:
    """The shared views when the filter splits words with their tokenizer (always in qurate), else fresh ones."""
    tokenizer = load_word_tokenizer(filt.language)
    return views if tokenizer is views.tokenizer else DocViews(views.text, tokenizer)


def gopher_quality(filt: Any, views: DocViews) -> str | None:
    text = views.text
    views = _views_for(filt, views)
    content, content_chars, alpha, n_words = views.word_props
    if filt.min_doc_words and content < filt.min_doc_words:
        return "gopher_short_doc"
    if filt.max_doc_words and content > filt.max_doc_words:
        return "gopher_long_doc"
    # np.mean of integer lengths: an exact float64 sum divided by the count, as here
    avg = content_chars / content if content else float("nan")
    if filt.min_avg_word_length and avg < filt.min_avg_word_length:
        return "gopher_below_avg_threshold"
    if filt.max_avg_word_length and avg > filt.max_avg_word_length:
        return "gopher_above_avg_threshold"
    if filt.max_symbol_word_ratio and text.count("#") / n_words > filt.max_symbol_word_ratio:
        return "gopher_too_many_hashes"
    if filt.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > filt.max_symbol_word_ratio:
        return "gopher_too_many_ellipsis"
    lines = views.splitlines
    if filt.max_bullet_lines_ratio and (
            sum(s.lstrip().startswith(("•", "-")) for s in lines) / len(lines) > filt.max_bullet_lines_ratio):
        return "gopher_too_many_bullets"
    if filt.max_ellipsis_lines_ratio and (
            sum(s.rstrip().endswith(("...", "…")) for s in lines) / len(lines) > filt.max_ellipsis_lines_ratio):
        return "gopher_too_many_end_ellipsis"
    if filt.max_non_alpha_words_ratio and alpha / n_words < filt.max_non_alpha_words_ratio:
        return "gopher_below_alpha_threshold"
    if filt.min_stop_words and len(filt.stop_words.intersection(views.words)) < filt.min_stop_words:
        return "gopher_enough_stop_words"
    return None


def fineweb(filt: Any, views: DocViews) -> str | None:
    text = views.text
    lines = views.nonblank_nl_lines
    if not lines:
        return "empty"
    n = len(lines)
    ratio = sum(line.endswith(filt.stop_chars) for line in lines) / n
    if ratio < filt.line_punct_thr and not (ratio == 0 and filt.line_punct_exclude_zero):
        return "line_punct_ratio"
    limit = filt.short_line_length
    if sum(len(line) <= limit for line in lines) / n > filt.short_line_threshold:
        return "short_line_ratio"
    if _duplicates(lines)[1] / (len(text) - text.count("\n")) > filt.char_duplicates_ratio:
        return "char_dup_ratio"
    words = _views_for(filt, views).words
    if text.count("\n") / len(words) > filt.new_line_ratio:
        return "list_ratio"
    return None


def c4(filt: Any, views: DocViews) -> str | None:
    text = views.text
    if not filt.split_paragraph:  # sentence mode: rare; datatrove's own loop
        from datatrove.data import Document
        from datatrove.pipeline.filters.base_filter import get_filter_result

        keep, reason = get_filter_result(filt.filter(Document(text=text, id="")))
        return None if keep else (reason or "dropped")
    tokenizer = load_word_tokenizer(filt.language)
    # Past the sentence minimum only a 'lorem ipsum' or '{' on a kept line can still drop the page. Neither
    # spans a line break, citation removal never spans one, and lower() maps these ASCII letters per character,
    # so if the whole text has neither, the rest of the lines cannot change the decision.
    may_drop = ((filt.filter_curly_bracket and "{" in text)
                or (filt.filter_lorem_ipsum and "lorem ipsum" in CITATION_REGEX.sub("", text).lower()))
    wanted = filt.min_num_sentences
    counting = wanted != -1
    sentences = 0
    max_len = filt.max_word_length
    for line in views.splitlines:
        if not may_drop and (not counting or sentences >= wanted):
            break
        line = line.strip()
        words = line.split()
        if max_len != -1 and len(line) > max_len and any(len(word) > max_len for word in words):
            continue
        if filt.remove_citations:
            line = CITATION_REGEX.sub("", line)
        if filt.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
            continue
        if len(words) < filt.min_words_per_line:
            continue
        low = line.lower()
        if filt.filter_lorem_ipsum and "lorem ipsum" in low:
            return "lorem_ipsum"
        if filt.filter_javascript and "javascript" in low:
            continue
        if filt.filter_curly_bracket and "{" in line:
            return "curly_bracket"
        if filt.filter_policy and any(p in low for p in POLICY_SUBSTRINGS):
            continue
        if counting and sentences < wanted:
            # datatrove's split_into_sentences yields one piece per span, and one when there is none
            sentences += max(1, len(tokenizer.span_tokenize(line)))
    if sentences < wanted:
        return "too_few_sentences"
    return None


RULES: dict[str, Callable[[Any, DocViews], str | None]] = {
    "gopher_repetition": gopher_repetition, "gopher_quality": gopher_quality, "fineweb": fineweb, "c4": c4}
