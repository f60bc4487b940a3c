"""The ``heuristics`` stage: datatrove's Gopher quality, Gopher repetition, C4 and FineWeb rules, then the
user's custom filters.

The rules are datatrove's: its filter objects hold the thresholds, and ``filters.heuristics_rules`` computes
their decisions in one pass over shared word and line splits (the same decision and the same first failing rule
as datatrove's ``filter``, checked on the bundled corpus by ``tests/test_heuristics_equal.py``, about 2.5-3x
faster). qurate adds what a multilingual, multi-source pipeline needs around them:

- words are split by script (``filters.words``), so Chinese, Japanese and Thai text has words to count;
- thresholds can be overridden per language (``lang_overrides``; defaults for languages written without spaces)
  and Gopher's stop words come per language (``filters.stopwords``);
- which rule families apply is chosen per source (``source_rules``): code and math sources get only the
  repetition rules, not the prose rules;
- every rejection reads ``family.rule: measured value vs threshold``.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from pydantic import Field, model_validator
from qurate.doc import Doc
from qurate.filters.langcodes import CODE_AND_MATH_SOURCES
from qurate.filters.plugins import CustomFilterSpec, FilterNotFound, LoadedFilter, load_filter, resolve
from qurate.filters.stopwords import STOP_WORDS
from qurate.section import Section
from qurate.spec import ReportSection, StageContext, StageSpec
from qurate.stats import StatKey, StatPairs, Stats, select
from qurate.verdicts import DocDecider, Keep, Reject, Verdict

FAMILIES = ("gopher_repetition", "gopher_quality", "fineweb", "c4")  # run order: C4 last, it edits its copy


class GopherQualityParams(Section):
    enabled: bool = Field(True, description="run this rule family")
    min_doc_words: int | None = Field(50, ge=0, description="fewest words a doc may have (null: no limit)")
    max_doc_words: int | None = Field(100_000, ge=0, description="most words a doc may have (null: no limit)")
    min_avg_word_length: float | None = Field(
        3, ge=0, description="shortest mean word length, characters (null: off)")
    max_avg_word_length: float | None = Field(
        10, ge=0, description="longest mean word length, characters (null: off)")
    max_symbol_word_ratio: float | None = Field(0.1, ge=0, description="most '#' and '...' per word (null: off)")
    max_bullet_lines_ratio: float | None = Field(
        0.9, ge=0, le=1, description="largest share of lines starting with a bullet (null: off)")
    max_ellipsis_lines_ratio: float | None = Field(
        0.3, ge=0, le=1, description="largest share of lines ending with an ellipsis (null: off)")
    max_non_alpha_words_ratio: float | None = Field(
        0.8, ge=0, le=1, description="datatrove's name: the smallest share of words with a letter (null: off)")
    min_stop_words: int | None = Field(2, ge=0, description="fewest stop words a doc must hold (null: off)")
    stop_words: list[str] | None = Field(
        None, description="stop words; null: the list for the doc's language (filters/stopwords.py)")


class GopherRepetitionParams(Section):
    enabled: bool = Field(True, description="run this rule family")
    dup_line_frac: float | None = Field(0.3, ge=0, le=1, description="largest share of duplicated lines (null: off)")
    dup_para_frac: float | None = Field(0.3, ge=0, le=1, description="largest share of duplicated paragraphs (null: off)")
    dup_line_char_frac: float | None = Field(
        0.2, ge=0, le=1, description="largest share of characters in duplicated lines (null: off)")
    dup_para_char_frac: float | None = Field(
        0.2, ge=0, le=1, description="largest share of characters in duplicated paragraphs (null: off)")
    top_n_grams: list[tuple[int, float]] = Field(
        [(2, 0.2), (3, 0.18), (4, 0.16)],
        description="[n, max share of characters in the most frequent n-gram]"
                    " pairs")
    dup_n_grams: list[tuple[int, float]] = Field(
        [(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        description="[n, max share of characters in duplicated n-grams]"
                    " pairs")


class C4Params(Section):
    enabled: bool = Field(True, description="run this rule family")
    split_paragraph: bool = Field(
        True, description="lines are split at line breaks (false: at sentence ends)")
    remove_citations: bool = Field(True, description="strip Wikipedia-style [1] citations from kept lines")
    filter_no_terminal_punct: bool = Field(
        False,
        description="drop lines without terminal punctuation (off as in FineWeb:"
                    " too harsh on today's web)")
    min_num_sentences: int = Field(5, ge=0, description="fewest sentences a doc must keep")
    min_words_per_line: int = Field(3, ge=-1, description="drop lines with fewer words (-1: off)")
    max_word_length: int = Field(1000, ge=1, description="drop lines with a longer word")
    filter_lorem_ipsum: bool = Field(True, description="drop docs containing 'lorem ipsum'")
    filter_javascript: bool = Field(True, description="drop lines mentioning javascript")
    filter_curly_bracket: bool = Field(True, description="drop docs with a curly bracket")
    filter_policy: bool = Field(True, description="drop lines of cookie / privacy / terms boilerplate")


class FineWebParams(Section):
    enabled: bool = Field(True, description="run this rule family")
    line_punct_thr: float = Field(0.12, ge=0, le=1, description="smallest share of lines ending in punctuation")
    line_punct_exclude_zero: bool = Field(
        False, description="a doc with no such line passes the punctuation rule")
    short_line_thr: float = Field(0.67, ge=0, le=1, description="largest share of short lines")
    short_line_length: int = Field(30, ge=0, description="a line shorter than this (characters) is short")
    char_duplicates_ratio: float = Field(0.01, ge=0, le=1, description="largest share of characters in duplicated lines")
    new_line_ratio: float = Field(0.3, ge=0, description="largest ratio of line breaks to words")


PARAMS = {"gopher_quality": GopherQualityParams, "gopher_repetition": GopherRepetitionParams, "c4": C4Params,
          "fineweb": FineWebParams}

# Scripts without spaces are split into characters: a word-length rule means nothing there, n-grams are about
# two characters per word, 10 characters make a full line, and whitespace-split words per line are not words.
_UNSEGMENTED_OVERRIDES: dict[str, dict[str, Any]] = {
    "gopher_quality": {"min_doc_words": 100, "min_avg_word_length": None, "max_avg_word_length": None},
    "gopher_repetition": {"top_n_grams": [(4, 0.2), (6, 0.18), (8, 0.16)],
                          "dup_n_grams": [(10, 0.15), (12, 0.14), (14, 0.13), (16, 0.12), (18, 0.11),
                                          (20, 0.10)]},
    "fineweb": {"short_line_length": 10},
    "c4": {"min_words_per_line": -1},
}
UNSEGMENTED_LANGS = ("zh", "ja", "th", "km", "lo", "my", "bo")

_CODE_AND_MATH = ["gopher_repetition"]
# C4 and FineWeb rules judge a web page by its line structure (a line is a paragraph); man pages, docs and
# licences wrap lines at 80 columns, so those rules would reject nearly all of them. Gopher's rules apply.
_NOT_WEB = ["gopher_repetition", "gopher_quality"]
_NOT_WEB_SOURCES = ("debian/*", "*stackexchange*", "*uspto*", "*patent*", "*wiki*", "*books*")


def _default_lang_overrides() -> dict[str, dict[str, dict[str, Any]]]:
    return {lang: {k: dict(v) for k, v in _UNSEGMENTED_OVERRIDES.items()} for lang in UNSEGMENTED_LANGS}


def _default_source_rules() -> dict[str, list[str]]:
    return {**{glob: _CODE_AND_MATH for glob in CODE_AND_MATH_SOURCES},
            **{glob: _NOT_WEB for glob in _NOT_WEB_SOURCES}, "*": list(FAMILIES)}


class HeuristicsConfig(Section):
    gopher_quality: GopherQualityParams = Field(default_factory=GopherQualityParams,
                                                description="Gopher quality rules (datatrove)")
    gopher_repetition: GopherRepetitionParams = Field(default_factory=GopherRepetitionParams,
                                                      description="Gopher repetition rules (datatrove)")
    fineweb: FineWebParams = Field(default_factory=FineWebParams, description="FineWeb rules (datatrove)")
    c4: C4Params = Field(default_factory=C4Params, description="C4 rules (datatrove)")
    # A recipe that sets lang_overrides replaces the defaults (_UNSEGMENTED_OVERRIDES) for every language.
    lang_overrides: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=_default_lang_overrides,
        description="lang -> family -> {param: value}: thresholds for one language (default: zh, ja, th, km, "
                    "lo, my, bo get no word-length rule and longer n-grams)")
    source_rules: dict[str, list[str]] = Field(
        default_factory=_default_source_rules,
        description="source glob -> rule families that apply; the first matching glob wins (code and math: "
                    "repetition rules only)")
    custom: list[CustomFilterSpec] = Field(default_factory=list,
                                           description="user filters, run after the rules (README)")

    @model_validator(mode="after")
    def _check(self) -> HeuristicsConfig:
        for lang, families in self.lang_overrides.items():
            for family in families:
                if family not in PARAMS:
                    raise ValueError(f"lang_overrides.{lang}.{family}: unknown rule family "
                                     f"(valid: {', '.join(FAMILIES)})")
                try:
                    self.params_for(family, lang)
                except Exception as err:
                    raise ValueError(f"lang_overrides.{lang}.{family}: {err}") from None
        for glob, families in self.source_rules.items():
            for family in families:
                if family not in PARAMS:
                    raise ValueError(f"source_rules.{glob}: unknown rule family '{family}' "
                                     f"(valid: {', '.join(FAMILIES)})")
        names = [c.name for c in self.custom]
        if len(set(names)) != len(names):
            raise ValueError("custom: filter names must be unique")
        return self

    def params_for(self, family: str, lang: str | None) -> Section:
        base: Section = getattr(self, family)
        override = self.lang_overrides.get(lang or "", {}).get(family)
        if not override:
            return base
        return PARAMS[family].model_validate({**base.model_dump(), **override})

    def families_for(self, source: str | None) -> list[str]:
        for glob, families in self.source_rules.items():
            if fnmatch.fnmatchcase(source or "", glob):
                return [f for f in FAMILIES if f in families]
        return []


def build_filter(family: str, params: Section, lang: str | None):
    """datatrove's filter for ``family`` with these thresholds, splitting words with qurate's tokenizer."""
    from qurate.filters.words import TOKENIZER

    kwargs = params.model_dump(exclude={"enabled", "stop_words"})
    if family == "gopher_quality":
        from datatrove.pipeline.filters.gopher_quality_filter import GopherQualityFilter

        stop_words = params.stop_words if params.stop_words is not None else STOP_WORDS.get(lang or "")
        if stop_words is None:  # no list for this language: the rule would reject every page in it
            kwargs["min_stop_words"] = None
        return GopherQualityFilter(**kwargs, stop_words=list(stop_words or ()), language=TOKENIZER)
    if family == "gopher_repetition":
        from datatrove.pipeline.filters.gopher_repetition_filter import GopherRepetitionFilter

        kwargs["top_n_grams"] = tuple(tuple(x) for x in kwargs["top_n_grams"])
        kwargs["dup_n_grams"] = tuple(tuple(x) for x in kwargs["dup_n_grams"])
        return GopherRepetitionFilter(**kwargs, language=TOKENIZER)
    if family == "c4":
        from datatrove.pipeline.filters.c4_filters import C4QualityFilter

        return C4QualityFilter(**kwargs, language=TOKENIZER)
    if family == "fineweb":
        from datatrove.pipeline.filters.fineweb_quality_filter import FineWebQualityFilter

        return FineWebQualityFilter(**kwargs, language=TOKENIZER)
    raise ValueError(f"unknown rule family {family}")


_BOUND = re.compile(r"([<>]) (\S+)$")
MARGINS = ("within 10%", "10-50%", "50-100%", "over 100%")


def _margin(value_text: str, value: float) -> dict[str, int]:
    """How far past its threshold a rejected value lies, as a count in one bucket (for threshold tuning)."""
    m = _BOUND.search(value_text)
    if not m or value != value:
        return {}
    bound = float(m.group(2))
    distance = abs(value - bound) / abs(bound) if bound else float("inf")
    bucket = 0 if distance <= 0.1 else 1 if distance <= 0.5 else 2 if distance <= 1 else 3
    return {f"margin {MARGINS[bucket]}": 1}


LANG, RULE, LANG_RULE = "lang", "rule", "lang_rule"


def lang_key(lang: str) -> StatKey:
    """Per language (as langid annotated it): docs, kept, rejected."""
    return (LANG, lang)


def rule_key(rule: str) -> StatKey:
    """Per rule (``family.rule`` or a custom filter's): docs, value_sum, ``margin <bucket>``."""
    return (RULE, rule)


def lang_rule_key(lang: str, rule: str) -> StatKey:
    """Per (language, rule): docs."""
    return (LANG_RULE, lang, rule)


def _short(reason: str) -> str:
    return reason.removeprefix("gopher_")


class HeuristicsDecider(DocDecider):
    """Applies the source's rule families with the language's thresholds, then the custom filters."""

    stage_name = "heuristics"

    def __init__(self, cfg: HeuristicsConfig):
        self.cfg = cfg
        self._filters: dict[tuple[str, str | None], Any] = {}
        self._plan: dict[tuple[Any, Any], list[str]] = {}
        self._custom: list[LoadedFilter] = []

    def __getstate__(self) -> dict[str, Any]:  # filters and plugins are rebuilt in each worker
        return {"cfg": self.cfg, "_filters": {}, "_plan": {}, "_custom": []}

    def setup(self) -> None:
        self._custom = [load_filter(spec) for spec in self.cfg.custom]
        for custom in self._custom:
            custom.setup()

    def filter_for(self, family: str, lang: str | None):
        key = (family, lang)
        filt = self._filters.get(key)
        if filt is None:
            filt = self._filters[key] = build_filter(family, self.cfg.params_for(family, lang), lang)
        return filt

    def check_rules(self, doc: Doc) -> tuple[str, str, float] | None:
        """(rule, measured value text, value) of the first rule the doc fails, or None if it passes all."""
        from qurate.filters.heuristics_rules import RULES, DocViews
        from qurate.filters.measures import MEASURES
        from qurate.filters.words import TOKENIZER

        text = doc.get("text") or ""
        lang = doc.get("lang")
        families = self._plan.get((doc.get("source"), lang))
        if families is None:  # resolved once per (source, language) seen by this worker
            families = [f for f in self.cfg.families_for(doc.get("source")) if self.cfg.params_for(f, lang).enabled]
            if len(self._plan) > 10_000:  # sources can be per-document (URLs): keep the cache bounded
                self._plan.clear()
            self._plan[(doc.get("source"), lang)] = families
        if not families:
            return None
        if not text.strip():
            return "heuristics.empty", f"{len(text)} chars", float(len(text))
        views = DocViews(text, TOKENIZER)  # words and lines split once, shared by the families
        for family in families:
            filt = self.filter_for(family, lang)
            reason = RULES[family](filt, views)  # datatrove's reason code, computed in one pass
            if reason is not None:
                value_text, value = MEASURES[family](filt, reason, text)
                return f"{family}.{_short(reason)}", value_text, value
        return None

    def decide(self, doc: Doc) -> Verdict:
        lang = str(doc.get("lang"))
        failed = self.check_rules(doc)
        if failed is not None:
            rule, value_text, value = failed
            stats: StatPairs = {rule_key(rule): {"docs": 1, "value_sum": value if value == value else 0.0,
                                                 **_margin(value_text, value)},
                                lang_key(lang): {"docs": 1, "rejected": 1}, lang_rule_key(lang, rule): {"docs": 1}}
            return Reject(f"{rule}: {value_text}", stats)
        out = doc
        for custom in self._custom:
            out, verdict = custom.apply(out)
            if verdict is not None:
                rule, value_text = verdict
                stats = {rule_key(rule): {"docs": 1}, lang_key(lang): {"docs": 1, "rejected": 1},
                         lang_rule_key(lang, rule): {"docs": 1}}
                return Reject(f"{rule}: {value_text}", stats)
        return Keep(out, {lang_key(lang): {"docs": 1, "kept": 1}})


def report(stats: Stats, config: HeuristicsConfig) -> ReportSection | None:
    """The report section: rejections by rule (with how far past the threshold), by language, by both."""
    langs = {key[0]: v for key, v in select(stats, LANG).items()}
    if not langs:
        return None
    total = sum(v.get("docs", 0) for v in langs.values())
    rejected = sum(v.get("rejected", 0) for v in langs.values())
    rules = sorted(((key[0], v) for key, v in select(stats, RULE).items()), key=lambda kv: (-kv[1]["docs"], kv[0]))
    rule_rows = [[rule, v["docs"], round(v["docs"] / total, 4) if total else 0.0,
                  round(v["value_sum"] / v["docs"], 4) if "value_sum" in v else "",
                  *[v.get(f"margin {m}", 0) for m in MARGINS]] for rule, v in rules]
    lang_rows = sorted(([lang, v.get("docs", 0), v.get("rejected", 0),
                         round(v.get("rejected", 0) / v["docs"], 3) if v.get("docs") else 0.0]
                        for lang, v in langs.items()), key=lambda r: (-r[1], r[0]))
    lang_rule = sorted(([key[0], key[1], v["docs"]] for key, v in select(stats, LANG_RULE).items()),
                       key=lambda r: (-r[2], r[0], r[1]))
    return {
        "summary": {"docs in": total, "rejected": rejected,
                    "rejected share": round(rejected / total, 4) if total else 0.0},
        "charts": [{"title": "Heuristic rejections by rule", "kind": "bar", "x": [r[0] for r in rule_rows],
                    "series": {"docs": [r[1] for r in rule_rows]}}],
        "tables": [
            {"title": "Rejections by rule (share of the stage's input; mean measured value; how far past "
                      "the threshold the measured values lie)",
             "columns": ["rule", "docs", "share of input", "mean value", *[f"past by {m}" for m in MARGINS]],
             "rows": rule_rows},
            {"title": "Rejection rate by language", "columns": ["lang", "docs", "rejected", "rate"],
             "rows": lang_rows},
            {"title": "Rejections by language and rule (top 40)", "columns": ["lang", "rule", "docs"],
             "rows": lang_rule[:40]},
        ],
        "notes": ["Rule families by source (first matching glob wins): " + "; ".join(
            f"{glob} -> {', '.join(fams) or 'none'}" for glob, fams in config.source_rules.items()),
            "Languages with their own thresholds: " + (", ".join(sorted(config.lang_overrides)) or "none")
            + ". Custom filters: " + (", ".join(c.name for c in config.custom) or "none") + "."],
    }


def check(config: HeuristicsConfig, ctx: StageContext) -> None:
    """Start-up check: every custom filter resolves to a class or function (fail before the run, naming the
    recipe key)."""
    for i, spec in enumerate(config.custom):
        key = f"heuristics.custom.{i}.filter"
        try:
            obj = resolve(spec.filter)
        except FilterNotFound as err:
            raise ValueError(f"bad value for '{key}': {err}") from None
        if not callable(obj):
            raise ValueError(f"bad value for '{key}': {spec.filter} is {type(obj).__name__}, "
                             "neither a class nor a function")


def make_decider(config: HeuristicsConfig, ctx: StageContext) -> HeuristicsDecider:
    return HeuristicsDecider(config)


STAGE = StageSpec(
    name="heuristics", order=20, config=HeuristicsConfig, decider=make_decider, report=report, check=check,
    description="datatrove's Gopher quality and repetition, C4 and FineWeb rules (thresholds per language, "
                "families per source), then the recipe's custom filters",
)
