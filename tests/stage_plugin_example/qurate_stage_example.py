"""A whole qurate stage in one module: config, per-document decision, report, and its spec."""

from __future__ import annotations

from pydantic import Field
from qurate.doc import Doc
from qurate.section import Section
from qurate.spec import StageSpec
from qurate.stats import Stats, select
from qurate.verdicts import DocDecider, Keep, Reject


class MinWordsConfig(Section):
    min_words: int = Field(50, ge=0, description="documents with fewer whitespace-separated words are dropped")


def word_count(doc: Doc) -> int:
    return len(doc["text"].split())


class MinWords(DocDecider):
    stage_name = "min_words"

    def __init__(self, config: MinWordsConfig):
        self.config = config

    def decide(self, doc: Doc) -> Keep | Reject:
        words = word_count(doc)
        verdict = "kept" if words >= self.config.min_words else "rejected"
        stats = {("docs",): {verdict: 1, "words": words}}
        if verdict == "kept":
            return Keep(doc, stats)
        return Reject(f"too_few_words: {words} < {self.config.min_words}", stats)


def report(stats: Stats, config: MinWordsConfig) -> dict | None:
    totals = select(stats, "docs").get((), {})
    return {"summary": {"minimum words": config.min_words, "kept": totals.get("kept", 0),
                        "rejected": totals.get("rejected", 0)}}


STAGE = StageSpec(name="min_words", order=25, config=MinWordsConfig, description="drops very short documents",
                  decider=lambda config, ctx: MinWords(config), report=report, default_on=False)
