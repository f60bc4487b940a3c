"""The ``domains`` stage's wiring: label every doc, count tokens per key, compute rates, decide each doc's copies.

    docs ─▶ Classify (RunInference: source rules, then the classifier) ─▶ CountTokens (mixture tokenizer)
             │ dead letter                                                  │
             ▼                                                              ├─▶ (key, tokens, bin) ─▶ CombinePerKey
                                                                            │       (tokens + fixed-size histogram)
                                                                            │    ─▶ ToDict of tokens per key
                                                                            │    ─▶ rates (one pure call)
                                                                            │    ─▶ threshold per key: AsDict side input
                                                                            └─▶ Decide copies (keyed hash of id, seed)
                                                                                  ─▶ kept (repeats) / rejected

Nothing holds the corpus: the combiners hold one token count and one histogram (``bins`` entries at most) per
key, the side input one ``KeyPlan`` per key. Decisions depend only on (id, seed, quality, the key's totals), so
every runner gives the same selections and repeats.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from qurate.classifiers.domains import (
    STAGE_NAME,
    DomainsBatchModel,
    DomainsConfig,
    balance_key,
    compute_plans,
    decide_copies,
    decision_stats,
    epoch_cap,
    full_key,
    plan_stats,
    sampling_bin,
    supply_key,
)
from qurate.classifiers.rebalance import Key, KeyPlan, add_thresholds
from qurate.doc import rejected
from qurate.pipelines.batching import BatchingDoFn
from qurate.pipelines.decide import DEAD_LETTER, KEPT, REJECTED, STATS, Predict
from qurate.pipelines.stats import flatten_stats
from qurate.spec import StageContext
from qurate.tokenizer import load_tokenizer

TOKEN_BATCH = 256


class _CountTokens(BatchingDoFn):
    """doc -> (doc, tokens it will take in the mixture): the mixture tokenizer, EOS counted when appended."""

    def __init__(self, tokenizer: str, append_eos: bool):
        super().__init__(TOKEN_BATCH)
        self._name, self._eos = tokenizer, append_eos

    def setup(self) -> None:
        self._tok = load_tokenizer(self._name)
        self._extra = 1 if self._eos and self._tok.eos_id is not None else 0

    def handle_batch(self, docs):
        for doc, ids in zip(docs, self._tok.encode_batch([d.get("text") or "" for d in docs])):
            yield doc, len(ids) + self._extra


class KeyTotals(beam.CombineFn):
    """Per key: total tokens, docs, and the token-weighted histogram of sampling bins (a sparse dict, at most
    ``bins`` entries whatever the corpus size)."""

    def create_accumulator(self) -> tuple[int, int, dict[int, int]]:
        return 0, 0, {}

    def add_input(self, acc, value):
        tokens, docs, hist = acc
        n, b = value
        hist[b] = hist.get(b, 0) + n
        return tokens + n, docs + 1, hist

    def merge_accumulators(self, accs):
        tokens, docs, hist = 0, 0, {}
        for t, d, h in accs:
            tokens, docs = tokens + t, docs + d
            for b, n in h.items():
                hist[b] = hist.get(b, 0) + n
        return tokens, docs, hist

    def extract_output(self, acc):
        return acc


def _rates(supply: dict[Key, int], config: DomainsConfig) -> dict[str, Any]:
    rb = config.rebalance
    plans, desired, effective, missing = compute_plans(rb, {k: float(v) for k, v in supply.items()})
    caps = {k: epoch_cap(rb, k) for k in plans}
    return {"plans": plans, "stats": plan_stats(plans, desired, effective, caps, missing)}


def _with_threshold(item, rates: dict[str, Any], bins: int):
    key, (_tokens, _docs, hist) = item
    return key, add_thresholds(rates["plans"][key], hist, bins)


class _Decide(beam.DoFn):
    def __init__(self, config: DomainsConfig, seed: int):
        self._cfg, self._seed = config.rebalance, seed

    def setup(self) -> None:
        self._kept = Metrics.counter(STAGE_NAME, "kept")
        self._rejected = Metrics.counter(STAGE_NAME, "rejected")

    def process(self, item, plans: dict[Key, KeyPlan]):
        doc, tokens = item
        key = full_key(doc)
        copies, reason = decide_copies(self._cfg, doc, self._seed, plans[balance_key(self._cfg, key)])
        for k, v in decision_stats(key, tokens, copies).items():
            yield beam.pvalue.TaggedOutput(STATS, (k, v))
        if reason is not None:
            self._rejected.inc()
            yield beam.pvalue.TaggedOutput(REJECTED, rejected(doc, STAGE_NAME, reason))
            return
        self._kept.inc()
        out = dict(doc)
        out["repeats"] = copies
        yield out


TOKENS_FIELD = "_domains_tokens"  # a staged doc's mixture tokens, between the two passes of a checkpoint chain


def _staged(item):
    doc, tokens = item
    return {**doc, TOKENS_FIELD: tokens}


def _unstaged(doc):
    doc = dict(doc)
    return doc, doc.pop(TOKENS_FIELD)


class Rebalance(beam.PTransform):
    """The stage. In one job: label, count, plan, decide. In a checkpoint chain (``two_pass.py``): ``plan`` labels,
    counts and plans (pass 1), staging the labelled docs with their token counts, and ``apply`` decides over the
    staged docs (pass 2): the docs are never held while the rates are computed, and never labelled twice."""

    def __init__(self, config: DomainsConfig, ctx: StageContext):
        super().__init__()
        self.config, self.ctx = config, ctx

    def expand(self, docs):
        labelled, counted, rates, plans = self._plan(docs)
        decided = self._decide(counted, plans)
        stats = flatten_stats((labelled[STATS], self._supply_stats(counted), self._plan_stats(rates),
                               decided[STATS]), "AllStats")
        return {KEPT: decided[KEPT], REJECTED: decided[REJECTED], DEAD_LETTER: labelled[DEAD_LETTER],
                STATS: stats}

    def plan(self, docs):
        labelled, counted, rates, plans = self._plan(docs)
        stats = flatten_stats((labelled[STATS], self._supply_stats(counted), self._plan_stats(rates)), "AllStats")
        return {"plan": plans, "docs": counted | "Stage" >> beam.Map(_staged), STATS: stats,
                DEAD_LETTER: labelled[DEAD_LETTER]}

    def apply(self, staged, plans):
        decided = self._decide(staged | "Unstage" >> beam.Map(_unstaged), plans)
        return {KEPT: decided[KEPT], REJECTED: decided[REJECTED], STATS: decided[STATS]}

    def _plan(self, docs):
        cfg, ctx = self.config, self.ctx
        rb = cfg.rebalance
        labelled = docs | "Classify" >> Predict(STAGE_NAME, DomainsBatchModel(cfg, ctx.seed, ctx.report_examples > 0),
                                                examples=ctx.report_examples)
        counted = labelled[KEPT] | "CountTokens" >> beam.ParDo(_CountTokens(ctx.tokenizer, ctx.append_eos))
        seed, bins = ctx.seed, rb.bins
        totals = (
            counted
            | "KeyTokensBin" >> beam.Map(
                lambda dt: (balance_key(rb, full_key(dt[0])), (dt[1], sampling_bin(rb, dt[0], seed))))
            | "KeyTotals" >> beam.CombinePerKey(KeyTotals())
        )
        rates = (
            totals
            | "Supply" >> beam.Map(lambda kv: (kv[0], kv[1][0]))
            | "AllSupply" >> beam.combiners.ToDict()
            | "Rates" >> beam.Map(_rates, cfg)
        )
        plans = totals | "Thresholds" >> beam.Map(_with_threshold, beam.pvalue.AsSingleton(rates), bins)
        return labelled, counted, rates, plans

    def _decide(self, counted, plans):
        return counted | "Decide" >> beam.ParDo(_Decide(self.config, self.ctx.seed),
                                                beam.pvalue.AsDict(plans)).with_outputs(REJECTED, STATS, main=KEPT)

    @staticmethod
    def _supply_stats(counted):
        return counted | "SupplyStats" >> beam.Map(lambda dt: (supply_key(full_key(dt[0])), {"docs": 1, "tokens": dt[1]}))

    @staticmethod
    def _plan_stats(rates):
        return rates | "PlanStats" >> beam.FlatMap(lambda r: list(r["stats"].items()))


def build(config: DomainsConfig, ctx: StageContext) -> beam.PTransform:
    return Rebalance(config, ctx)
