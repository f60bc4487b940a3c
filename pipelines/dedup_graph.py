"""The dedup stage's Beam graph: exact + MinHash-LSH near-duplicate removal with no step that gathers the corpus.

    docs ─Sign─▶ SignRecord (node key, exact hash, band keys, 8-bit sketch)     batched numpy MinHash
         ─ExactGroups─▶ one vertex per distinct text (its best copy); copies learn their vertex
         ─LSHCandidates─▶ per band bucket, pairs (member, one of the bucket's k smallest vertices), verified
                          against the threshold on their sketches (two joins bring both sketches)
         ─ConnectedComponents─▶ (large-star ▶ small-star) x max_rounds, or union-find in one worker
                                (``dedup.components``) ▶ label = smallest vertex; per cluster the survivor
                                (= the label) and every member's Jaccard to it
         ─Decide─▶ per doc a Decision (keep / near / exact), joined on small records only
         ─ApplyDecisions─▶ kept (``dedup_cluster``) / rejected with the reason

All per-key logic lives in ``qurate.dedup.stage``; here are only the groupings. Texts never enter a shuffle: the
docs meet their decisions through a side input holding only the clustered docs' decisions (a few small fields
each), so the runner does not buffer every text once more for a join.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from qurate.dedup import components, stage
from qurate.dedup.config import DedupConfig
from qurate.dedup.signatures import Signer
from qurate.doc import Doc, doc_dead_letter
from qurate.pipelines.batching import BatchingDoFn
from qurate.pipelines.dedup_helpers import DEAD_LETTER, KEPT, REJECTED, STATS, _Distinct, _per_key, _routed  # noqa: F401
from qurate.pipelines.lsh_graph import LSHCandidates
from qurate.pipelines.stats import flatten_stats
from qurate.spec import StageContext
from qurate.verdicts import error_text, run_batch

RECS = "recs"


class _SignFn(BatchingDoFn):
    """Batches of docs -> main ``(node key, doc)``, ``recs`` SignRecord; a doc that breaks signing is
    dead-lettered alone (the batch is retried doc by doc)."""

    def __init__(self, config: DedupConfig, params: stage.SignParams, keep_docs: bool = True):
        super().__init__(config.batch_size)
        self._config, self._params, self._keep_docs = config, params, keep_docs
        self._signer: Signer | None = None

    def setup(self) -> None:
        if self._params.near:
            self._signer = Signer(self._config.num_perm, self._config.minhash_seed, self._config.shingle_spec())

    def handle_batch(self, docs: list[Doc]):
        records = run_batch(lambda batch: stage.sign(list(batch), self._signer, self._params),
                            lambda doc: stage.sign([doc], self._signer, self._params)[0], docs)
        for doc, rec in zip(docs, records):
            if isinstance(rec, BaseException):
                yield beam.pvalue.TaggedOutput(DEAD_LETTER, doc_dead_letter(stage.NAME, error_text(rec), doc,
                                                                            type(rec).__name__))
            else:
                if self._keep_docs:
                    yield rec.key, doc
                yield beam.pvalue.TaggedOutput(RECS, rec)


class Sign(beam.PTransform):
    """Docs -> ``docs`` (node key, doc), ``recs`` SignRecords, ``dead_letter``; ``keep_docs=False``: no ``docs``
    (a plan pass needs only the records)."""

    def __init__(self, config: DedupConfig, params: stage.SignParams, keep_docs: bool = True):
        super().__init__()
        self.config, self.params, self.keep_docs = config, params, keep_docs

    def expand(self, docs):
        return docs | beam.ParDo(_SignFn(self.config, self.params, self.keep_docs)).with_outputs(
            RECS, DEAD_LETTER, main="docs")


class _BestCopy(beam.CombineFn):
    """Per exact hash: the CopyGroup (best copy, its signature, number of copies)."""

    def create_accumulator(self) -> stage.CopyGroup:
        return stage.EMPTY_GROUP

    def add_input(self, acc: stage.CopyGroup, rec: stage.SignRecord) -> stage.CopyGroup:
        return stage.merge_groups(acc, stage.CopyGroup(rec.key, rec.near, 1))

    def merge_accumulators(self, accs: Iterable[stage.CopyGroup]) -> stage.CopyGroup:
        out = stage.EMPTY_GROUP
        for acc in accs:
            out = stage.merge_groups(out, acc)
        return out

    def extract_output(self, acc: stage.CopyGroup) -> stage.CopyGroup:
        return acc


class ExactGroups(beam.PTransform):
    """SignRecords -> ``vertices`` (vertex, CopyGroup) and ``members`` (vertex, copy's node key)."""

    def expand(self, recs):
        groups = recs | "ByText" >> beam.Map(lambda r: (r.text_hash, r)) | "BestCopy" >> beam.CombinePerKey(_BestCopy())
        members = (
            {"group": groups, "member": recs | "MemberByText" >> beam.Map(lambda r: (r.text_hash, r.key))}
            | "JoinCopies" >> beam.CoGroupByKey()
            | "Copies" >> beam.FlatMap(_per_key(lambda _h, g, m: stage.exact_members(g, m), "group", "member"))
            .with_outputs(STATS, main="members")
        )
        return {"vertices": groups | "Vertex" >> beam.Map(lambda kv: (kv[1].best, kv[1])),
                "members": members["members"], STATS: members[STATS]}


class _Round(beam.PTransform):
    """One large-star then one small-star round over ``(hi, lo)`` edges."""

    def expand(self, edges):
        large = (
            edges
            | "BothWays" >> beam.FlatMap(lambda e: [(e[0], e[1]), (e[1], e[0])])
            | "ByVertexL" >> beam.GroupByKey()
            | "LargeStar" >> beam.FlatMap(lambda kv: components.large_star(kv[0], kv[1]))
            | "DistinctL" >> _Distinct()
        )
        return (
            large
            | "ByLarger" >> beam.GroupByKey()
            | "SmallStar" >> beam.FlatMap(lambda kv: components.small_star(kv[0], kv[1]))
            | "DistinctS" >> _Distinct()
        )


class _UnionFind(beam.CombineFn):
    """Edges -> one union-find forest (vertex -> parent); partial forests per bundle, merged once."""

    def create_accumulator(self) -> dict[str, str]:
        return {}

    def add_input(self, forest: dict[str, str], edge: components.Edge) -> dict[str, str]:
        components.union(forest, *edge)
        return forest

    def merge_accumulators(self, forests: Iterable[dict[str, str]]) -> dict[str, str]:
        return components.merge_forests(forests)

    def extract_output(self, forest: dict[str, str]) -> dict[str, str]:
        return forest


class _RoundLabels(beam.PTransform):
    """Edges -> (vertex, label) by ``max_rounds`` large-star / small-star rounds; stats on ``stats``."""

    def __init__(self, rounds: int):
        super().__init__()
        self.rounds = rounds

    def expand(self, edges):
        for index in range(self.rounds):
            edges = edges | f"Round{index + 1:02d}" >> _Round()
        return (
            edges
            | "FinalBothWays" >> beam.FlatMap(lambda e: [(e[0], e[1]), (e[1], e[0])])
            | "FinalByVertex" >> beam.GroupByKey()
            | "Label" >> beam.FlatMap(_routed(lambda kv: stage.label(*kv))).with_outputs(STATS, main="labels")
        )


class _UnionFindLabels(beam.PTransform):
    """Edges -> (vertex, label) by union-find in one worker's memory; stats on ``stats``."""

    def expand(self, edges):
        return (
            edges
            | "Forest" >> beam.CombineGlobally(_UnionFind())
            | "Label" >> beam.FlatMap(_routed(stage.forest_labels)).with_outputs(STATS, main="labels")
        )


def components_method(config: DedupConfig, options: Any) -> str:
    """``dedup.components`` resolved for the runner in ``options``: ``auto`` is union-find on the local
    DirectRunner, whose workers share one machine's memory anyway, and rounds on every other runner."""
    if config.components != "auto":
        return config.components
    from qurate.pipelines.runners import runner_name

    return "union_find" if runner_name(options) == "DirectRunner" else "rounds"


class ConnectedComponents(beam.PTransform):
    """Edges + vertices -> ``near`` (vertex, NearDecision): cluster survivor and Jaccard to it."""

    def __init__(self, config: DedupConfig, bands: int, rows: int):
        super().__init__()
        self.config, self.bands, self.rows = config, bands, rows

    def expand(self, inputs):
        edges, vertices = inputs
        if components_method(self.config, edges.pipeline.options) == "union_find":
            labels = edges | "UnionFind" >> _UnionFindLabels()
        else:
            labels = edges | "Rounds" >> _RoundLabels(self.config.max_rounds)
        clusters = (
            {"group": vertices, "label": labels["labels"]}
            | "JoinLabels" >> beam.CoGroupByKey()
            | "ToCluster" >> beam.FlatMap(_per_key(stage.to_cluster, "group", "label"))
            | "ByCluster" >> beam.GroupByKey()
            | "Cluster" >> beam.FlatMap(_routed(lambda kv, b, r: stage.cluster_decisions(kv[0], kv[1], b, r)),
                                        self.bands, self.rows).with_outputs(STATS, main="near")
        )
        return {"near": clusters["near"], STATS: flatten_stats((labels[STATS], clusters[STATS]), "CCStats")}


class ApplyDecisions(beam.PTransform):
    """``(node key, doc)`` + decisions -> kept / rejected. Decisions (small records, clustered docs only) reach
    the docs as a side input, so texts are not shuffled."""

    def __init__(self, decisions):
        super().__init__()
        self.decisions = decisions

    def expand(self, keyed_docs):
        def apply(kv, table):
            kept, record = stage.apply_decision(kv[1], table.get(kv[0]))
            yield record if kept else beam.pvalue.TaggedOutput(REJECTED, record)

        return keyed_docs | "Apply" >> beam.FlatMap(apply, beam.pvalue.AsDict(self.decisions)).with_outputs(
            REJECTED, main=KEPT)


class Dedup(beam.PTransform):
    """The stage. In one job: sign, decide, apply. In a checkpoint chain (``two_pass.py``): ``plan`` signs and
    decides (pass 1, no text leaves the signing step), ``apply`` keys the docs again and applies (pass 2)."""

    def __init__(self, config: DedupConfig):
        super().__init__(label=stage.NAME)
        self.config = config
        self.params = stage.sign_params(config)  # (bands, rows) once per run, not per batch

    def expand(self, docs):
        signed = docs | "Sign" >> Sign(self.config, self.params)
        decided = self._decide(signed[RECS])
        applied = signed["docs"] | "ApplyDecisions" >> ApplyDecisions(decided["decisions"])
        return {KEPT: applied[KEPT], REJECTED: applied[REJECTED], DEAD_LETTER: signed[DEAD_LETTER],
                STATS: decided[STATS]}

    def plan(self, docs):
        """Pass 1: the clustered docs' decisions and the ids of docs that broke signing (dead-lettered here)."""
        signed = docs | "Sign" >> Sign(self.config, self.params, keep_docs=False)
        decided = self._decide(signed[RECS], lookup=True)
        records = (decided["decisions"] | "PlanDecisions" >> beam.Map(lambda kv: ("decision", kv)),
                   signed[DEAD_LETTER] | "PlanDead" >> beam.Map(lambda entry: ("dead", entry["id"])))
        return {"plan": records, STATS: decided[STATS], DEAD_LETTER: signed[DEAD_LETTER]}

    def apply(self, docs, plan):
        """Pass 2: every doc pass 1 signed, keyed again (cheap: no MinHash), meets its decision."""
        survivor_key = self.params.survivor_key
        decisions = (plan | "Decisions" >> beam.Filter(lambda r: r[0] == "decision")
                     | "Decision" >> beam.Map(lambda r: r[1]))
        dead = plan | "Dead" >> beam.Filter(lambda r: r[0] == "dead") | "DeadId" >> beam.Map(lambda r: (r[1], None))

        def keyed(doc, dead_ids):
            if doc.get("id") not in dead_ids:  # a dead one is in pass 1's dead letter already
                yield stage.node_key(doc, survivor_key), doc

        applied = (docs | "Key" >> beam.FlatMap(keyed, beam.pvalue.AsDict(dead))
                   | "ApplyDecisions" >> ApplyDecisions(decisions))
        return {KEPT: applied[KEPT], REJECTED: applied[REJECTED]}

    def _decide(self, recs, lookup: bool = False):
        """SignRecords -> ``decisions`` (node key, Decision) for the clustered docs, and stats."""
        cfg, stats = self.config, []
        exact = recs | "ExactGroups" >> ExactGroups()
        stats.append(exact[STATS])
        # Exact only: a vertex with no "near" input decides as a cluster of its copies.
        decide_in: dict[str, Any] = {"member": exact["members"]}
        if cfg.near:
            lsh = exact["vertices"] | "LSHCandidates" >> LSHCandidates(cfg, lookup)
            cc = (lsh["edges"], exact["vertices"]) | "ConnectedComponents" >> ConnectedComponents(
                cfg, self.params.bands, self.params.rows)
            decide_in["near"] = cc["near"]
            stats += [lsh[STATS], cc[STATS]]
        decided = (
            decide_in
            | "JoinVertex" >> beam.CoGroupByKey()
            | "Decide" >> beam.FlatMap(_per_key(stage.decide, *decide_in)).with_outputs(STATS, main="decisions")
        )
        unique = (
            {"decision": decided["decisions"], "doc": recs | "DocKeys" >> beam.Map(lambda r: (r.key, 1))}
            | "JoinKeys" >> beam.CoGroupByKey()
            | "Unique" >> beam.FlatMap(_per_key(stage.unique_decision, "decision", "doc"))
            .with_outputs(STATS, main="decisions")
        )
        stats += [decided[STATS], unique[STATS]]
        return {"decisions": unique["decisions"], STATS: flatten_stats(stats, "AllStats")}


def build(config: DedupConfig, ctx: StageContext) -> beam.PTransform:
    return Dedup(config)
