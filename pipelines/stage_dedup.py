"""The ``dedup`` stage: exact + MinHash-LSH near-duplicate removal with no step that gathers the corpus.

    docs ─Sign─▶ (node key, exact hash, band keys, 8-bit sketch)   one pass, batched numpy MinHash
      exact:  CombinePerKey(exact hash) ─▶ best copy per text ─▶ one graph vertex per distinct text
      near:   vertex ─▶ band keys ─GroupByKey─▶ pairs (member, one of the bucket's k smallest vertices)
              ─▶ two joins bring both sketches ─▶ keep pairs with estimated Jaccard >= threshold as edges
              ─▶ (large-star ─▶ small-star) x max_rounds ─▶ label = smallest vertex of its component
              ─▶ GroupByKey(label) ─▶ survivor (= the label) and Jaccard of every member to it
      chain:  CoGroupByKey(vertex) joins exact copies to their vertex's decision
      apply:  CoGroupByKey(node key) joins each doc with its decision ─▶ kept (dedup_cluster) / rejected

Vertices are node keys (``qurate.dedup.survivor``) whose string order is the survivor order, so a component's
smallest vertex is its survivor. Every grouping is keyed by text hash, band, vertex or cluster and every
DoFn holds O(1) state per key (iterables are read twice rather than copied), so memory per worker does not grow
with the corpus; only the number of keys does, which the runner's shuffle spreads over workers.
"""

from __future__ import annotations

import logging
from typing import Any

import apache_beam as beam
import numpy as np
from qurate.dedup import components
from qurate.dedup.config import DedupConfig
from qurate.dedup.exact import exact_hash
from qurate.dedup.minhash import Signer, band_hashes, s_curve, share_band, sketch, sketch_jaccard
from qurate.dedup.survivor import key_id, node_key
from qurate.pipelines.batching import BatchingDoFn
from qurate.pipelines.doc import dead_letter, rejected
from qurate.pipelines.recipe import Recipe
from qurate.pipelines.stage import DEAD_LETTER, KEPT, REJECTED, STATS, Stage, error_text

STAGE = "dedup"
LOG = logging.getLogger(__name__)
RECS = "recs"
BIN_WIDTH = 0.05


def jaccard_bin(value: float) -> str:
    """The lower edge of the 0.05-wide bin of a Jaccard value, as text ("0.85")."""
    return f"{min(int(value / BIN_WIDTH + 1e-9), int(1 / BIN_WIDTH) - 1) * BIN_WIDTH:.2f}"


def size_bin(size: int) -> str:
    for upper, label in ((2, "2"), (3, "3"), (5, "4-5"), (10, "6-10"), (100, "11-100"), (1000, "101-1000")):
        if size <= upper:
            return label
    return ">1000"


SIZE_BINS = ["2", "3", "4-5", "6-10", "11-100", "101-1000", ">1000"]


# ------------------------------------------------------------------------------------------------ signatures

class _SignFn(BatchingDoFn):
    """doc -> main ``(node key, doc)`` and ``recs`` ``(node key, exact hash, near)`` where ``near`` is
    ``(band keys, sketch)`` (None when near dedup is off): the full signature never leaves this step."""

    def __init__(self, config: DedupConfig):
        super().__init__(config.batch_size)
        self._config = config
        self._signer: Signer | None = None

    def setup(self) -> None:
        self._signer = Signer(self._config.num_perm, self._config.minhash_seed, self._config.shingle_spec())

    def _records(self, docs: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
        cfg = self._config
        keys = [node_key(d, cfg.survivor_key) for d in docs]
        hashes = [exact_hash(d["text"], cfg.exact_normalization) if cfg.exact else k for d, k in zip(docs, keys)]
        if cfg.near:
            bands, rows = cfg.lsh()
            sigs = self._signer.signatures([d["text"] for d in docs], [d.get("lang") for d in docs])
            return [(k, h, (band_hashes(s, bands, rows), sketch(s))) for k, h, s in zip(keys, hashes, sigs)]
        return [(k, h, None) for k, h in zip(keys, hashes)]

    def handle_batch(self, docs: list[dict[str, Any]]):
        try:
            pairs = list(zip(docs, self._records(docs)))
        except Exception:  # isolate the doc that breaks the batch; the others go on
            pairs = []
            for doc in docs:
                try:
                    pairs.append((doc, self._records([doc])[0]))
                except Exception as err:
                    yield beam.pvalue.TaggedOutput(
                        DEAD_LETTER, dead_letter(STAGE, error_text(err), doc_id=doc.get("id"), raw=doc.get("text")))
        for doc, rec in pairs:
            yield rec[0], doc
            yield beam.pvalue.TaggedOutput(RECS, rec)


# ----------------------------------------------------------------------------------------------------- exact

class _BestCopy(beam.CombineFn):
    """Per exact hash: (smallest node key, its band keys and sketch, number of copies)."""

    def create_accumulator(self):
        return None, None, 0

    def add_input(self, acc, value):
        key, sig = value
        best, best_sig, n = acc
        if best is None or key < best:
            best, best_sig = key, sig
        return best, best_sig, n + 1

    def merge_accumulators(self, accs):
        best, best_sig, n = None, None, 0
        for key, sig, count in accs:
            if key is not None and (best is None or key < best):
                best, best_sig = key, sig
            n += count
        return best, best_sig, n

    def extract_output(self, acc):
        return acc


def _exact_members(item):
    """CoGroupByKey(exact hash) -> ``(vertex, member node key)`` for every copy of a text that has copies."""
    _, grouped = item
    for best, _sig, n in grouped["group"]:
        if n > 1:
            for member in grouped["member"]:
                yield best, member
            yield beam.pvalue.TaggedOutput(STATS, (("exact_groups", size_bin(n)), {"groups": 1, "docs": n}))


# ------------------------------------------------------------------------------------------------------ LSH

def _band_records(item):
    vertex, (near, _n) = item
    for key in near[0]:
        yield key, vertex


class _BucketFn(beam.DoFn):
    """One LSH bucket -> candidate pairs ``(member, anchor)``; stats on bucket sizes."""

    def __init__(self, anchors: int):
        self._anchors = anchors

    def process(self, item):
        _key, members = item
        size = 0
        for _ in members:
            size += 1
        if size < 2:
            return
        yield from components.star_edges(members, self._anchors)
        yield beam.pvalue.TaggedOutput(STATS, (("buckets", size_bin(size)), {"buckets": 1, "members": size}))


def _with_member_sketch(item):
    """CoGroupByKey(member) of its sketch and its candidate pairs -> ``(anchor, (member, member sketch))``."""
    member, grouped = item
    sketches = list(grouped["sketch"])
    if not sketches:
        return
    for anchor in grouped["anchor"]:
        yield anchor, (member, sketches[0])


def _verify(item):
    """CoGroupByKey(anchor) of its sketch and its members -> ``(member, anchor, Jaccard estimate)``."""
    anchor, grouped = item
    sketches = list(grouped["sketch"])
    if not sketches:
        return
    for member, member_sketch in grouped["member"]:
        yield member, anchor, sketch_jaccard(member_sketch, sketches[0])


def _candidate_stat(candidate, threshold: float):
    _hi, _lo, score = candidate
    return ("candidates", jaccard_bin(score)), {"pairs": 1, "edges": int(score >= threshold)}


class _Distinct(beam.PTransform):
    """Distinct elements via a combiner (duplicates collapse before the shuffle)."""

    def expand(self, pcoll):
        return (pcoll | "Key" >> beam.Map(lambda x: (x, None))
                | "One" >> beam.CombinePerKey(lambda _values: None) | "Keys" >> beam.Keys())


class _Round(beam.PTransform):
    """One large-star then one small-star round over ``(hi, lo)`` edges."""

    def __init__(self, index: int):
        super().__init__()
        self.index = index

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


def _label(item):
    vertex, neighbours = item
    label, converged = components.final_label(vertex, neighbours)
    yield vertex, label
    yield beam.pvalue.TaggedOutput(STATS, (("cc", "vertices"), {"vertices": 1, "unconverged": int(not converged)}))


def _to_cluster(item):
    """CoGroupByKey(vertex) of vertex records and labels -> ``(label, member)``; a label's own record also
    travels as ``root`` so the cluster knows its survivor's signature."""
    vertex, grouped = item
    labels = list(grouped["label"])
    if not labels:
        return
    label = labels[0]
    for sketch_bytes, n in grouped["node"]:
        yield label, ("member", vertex, sketch_bytes, n)
        if label == vertex:
            yield label, ("root", vertex, sketch_bytes, n)


class _ClusterFn(beam.DoFn):
    """One cluster (all vertices labelled with one label) -> per vertex ``(survivor, Jaccard, cluster docs)``.

    The survivor is the label. If the rounds did not converge, a label may not be in its own cluster
    (it belongs to another one); that cluster is then left alone (nothing removed) and counted."""

    def __init__(self, bands: int, rows: int):
        self._bands, self._rows = bands, rows

    def process(self, item):
        label, values = item
        root_sig, docs, vertices = None, 0, 0
        for kind, _vertex, sig, n in values:
            if kind == "root":
                root_sig = sig
            else:
                docs += n
                vertices += 1
        if root_sig is None:
            yield beam.pvalue.TaggedOutput(STATS, (("cc", "orphan_clusters"), {"clusters": 1, "docs": docs}))
            return
        root = np.frombuffer(root_sig, dtype=np.uint8)
        for kind, vertex, sig, _n in values:
            if kind != "member":
                continue
            if vertex == label:
                yield vertex, (label, 1.0, docs)
                continue
            score = sketch_jaccard(sig, root_sig)
            yield vertex, (label, score, docs)
            # Band equality read off the sketches: a false match needs `rows` chance byte matches at once.
            direct = share_band(np.frombuffer(sig, dtype=np.uint8), root, self._bands, self._rows)
            yield beam.pvalue.TaggedOutput(STATS, (("detect", jaccard_bin(score)), {"pairs": 1, "direct": int(direct)}))
        yield beam.pvalue.TaggedOutput(STATS, (("near_clusters",), {"clusters": 1, "vertices": vertices, "docs": docs}))


# --------------------------------------------------------------------------------------------------- decide

def _decide(item):
    """CoGroupByKey(vertex) of its exact copies and its cluster decision -> ``(member node key, decision)``.

    A decision is ``(kind, survivor id, cluster docs, Jaccard, exact-of id)``, kind keep / near / exact."""
    vertex, grouped = item
    near = list(grouped.get("near", ()))
    members = grouped["member"]
    if near:
        survivor, score, docs = near[0]
    else:
        survivor, score, docs = vertex, 1.0, sum(1 for _ in members)
        if docs == 0:
            return
    has_members = False
    for member in members:
        has_members = True
        yield from _member_decision(member, vertex, survivor, score, docs)
    if not has_members:  # a text with a single copy: the vertex is the only member
        yield from _member_decision(vertex, vertex, survivor, score, docs)


def _member_decision(member: str, vertex: str, survivor: str, score: float, docs: int):
    survivor_id = key_id(survivor)
    if member == survivor:
        yield member, ("keep", survivor_id, docs, 1.0, None)
        yield beam.pvalue.TaggedOutput(STATS, (("clusters", size_bin(docs)), {"clusters": 1, "docs": docs}))
    elif member == vertex:
        yield member, ("near", survivor_id, docs, score, None)
        yield beam.pvalue.TaggedOutput(STATS, (("removed", "near"), {"docs": 1}))
    else:
        yield member, ("exact", survivor_id, docs, score, key_id(vertex))
        yield beam.pvalue.TaggedOutput(STATS, (("removed", "exact"), {"docs": 1}))


def reason_of(kind: str, survivor_id: str, docs: int, score: float, exact_of: str | None) -> str:
    if kind == "near":
        return f"near_duplicate: jaccard~{score:.2f} of {survivor_id} (cluster {survivor_id}, {docs} docs)"
    return f"exact_duplicate: of {exact_of} (cluster {survivor_id}, {docs} docs)"


def _apply(item):
    """CoGroupByKey(node key) of docs and decisions -> kept docs (annotated) and rejected docs."""
    _key, grouped = item
    docs = list(grouped["doc"])
    decisions = list(grouped["decision"])
    if len(docs) != 1 or len(decisions) > 1:
        # Two docs share id and rank (duplicate ids let through by the reader): never guess, keep them all.
        if decisions:
            yield beam.pvalue.TaggedOutput(STATS, (("ambiguous_ids",), {"docs": len(docs)}))
        yield from docs
        return
    doc = docs[0]
    if not decisions:
        yield doc
        return
    kind, survivor_id, size, score, exact_of = decisions[0]
    out = dict(doc)
    out["dedup_cluster"] = survivor_id
    if kind == "keep":
        yield out
    else:
        yield beam.pvalue.TaggedOutput(REJECTED, rejected(out, STAGE, reason_of(kind, survivor_id, size, score,
                                                                                 exact_of)))


# ---------------------------------------------------------------------------------------------------- stage

class DedupStage(Stage):
    name = STAGE

    def __init__(self, config: DedupConfig):
        super().__init__(label=STAGE)
        self.config = config
        self.bands, self.rows = config.lsh()

    def expand(self, docs):
        cfg = self.config
        signed = docs | "Sign" >> beam.ParDo(_SignFn(cfg)).with_outputs(RECS, DEAD_LETTER, main="docs")
        recs = signed[RECS]
        stats = []

        # Exact: one vertex per distinct (normalized) text, its best copy; copies learn their vertex.
        groups = (recs | "ByText" >> beam.Map(lambda r: (r[1], (r[0], r[2])))
                  | "BestCopy" >> beam.CombinePerKey(_BestCopy()))
        vertices = groups | "Vertex" >> beam.Map(lambda kv: (kv[1][0], (kv[1][1], kv[1][2])))
        members = (
            {"member": recs | "MemberByText" >> beam.Map(lambda r: (r[1], r[0])), "group": groups}
            | "JoinCopies" >> beam.CoGroupByKey()
            | "Copies" >> beam.FlatMap(_exact_members).with_outputs(STATS, main="members")
        )
        stats.append(members[STATS])

        decisions_in: dict[str, Any] = {"member": members["members"]}
        if cfg.near:
            decisions_in["near"] = self._near(vertices, stats)
        decisions = (
            decisions_in
            | "JoinVertex" >> beam.CoGroupByKey()
            | "Decide" >> beam.FlatMap(_decide).with_outputs(STATS, main="decisions")
        )
        stats.append(decisions[STATS])
        applied = (
            {"doc": signed["docs"], "decision": decisions["decisions"]}
            | "JoinDocs" >> beam.CoGroupByKey()
            | "Apply" >> beam.FlatMap(_apply).with_outputs(REJECTED, STATS, main=KEPT)
        )
        stats.append(applied[STATS])
        return {KEPT: applied[KEPT], REJECTED: applied[REJECTED], DEAD_LETTER: signed[DEAD_LETTER],
                STATS: stats | "AllStats" >> beam.Flatten()}

    def _near(self, vertices, stats: list):
        cfg = self.config
        threshold = cfg.edge_threshold()
        buckets = (
            vertices
            | "Bands" >> beam.FlatMap(_band_records)
            | "ByBand" >> beam.GroupByKey()
            | "Candidates" >> beam.ParDo(_BucketFn(cfg.verify_anchors if cfg.verify else 1))
            .with_outputs(STATS, main="candidates")
        )
        stats.append(buckets[STATS])
        candidates = buckets["candidates"] | "DistinctCandidates" >> _Distinct()
        # From here on a vertex is its sketch and copy count; band keys are done with.
        nodes = vertices | "NodeSketch" >> beam.Map(lambda kv: (kv[0], (kv[1][0][1], kv[1][1])))
        if cfg.verify:
            # Sketches travel only with candidate pairs (two joins), not with every band record.
            sketches = nodes | "Sketch" >> beam.Map(lambda kv: (kv[0], kv[1][0]))
            scored = (
                {"sketch": sketches, "anchor": candidates}
                | "JoinMember" >> beam.CoGroupByKey()
                | "MemberSketch" >> beam.FlatMap(_with_member_sketch)
            )
            scored = (
                {"sketch": sketches, "member": scored}
                | "JoinAnchor" >> beam.CoGroupByKey()
                | "Verify" >> beam.FlatMap(_verify)
            )
            stats.append(scored | "CandidateStats" >> beam.Map(_candidate_stat, threshold))
            edges = (scored | "Verified" >> beam.Filter(lambda c, t: c[2] >= t, threshold)
                     | "Edge" >> beam.Map(lambda c: (c[0], c[1])))
        else:
            edges = candidates
        for index in range(cfg.max_rounds):
            edges = edges | f"Round{index + 1:02d}" >> _Round(index)
        labels = (
            edges
            | "FinalBothWays" >> beam.FlatMap(lambda e: [(e[0], e[1]), (e[1], e[0])])
            | "FinalByVertex" >> beam.GroupByKey()
            | "Label" >> beam.FlatMap(_label).with_outputs(STATS, main="labels")
        )
        stats.append(labels[STATS])
        clusters = (
            {"node": nodes, "label": labels["labels"]}
            | "JoinLabels" >> beam.CoGroupByKey()
            | "ToCluster" >> beam.FlatMap(_to_cluster)
            | "ByCluster" >> beam.GroupByKey()
            | "Cluster" >> beam.ParDo(_ClusterFn(self.bands, self.rows)).with_outputs(STATS, main="near")
        )
        stats.append(clusters[STATS])
        return clusters["near"]

    # ------------------------------------------------------------------------------------------- report

    def report_section(self, stats: dict[tuple[str, ...], dict[str, float]]) -> dict[str, Any]:
        cfg = self.config
        removed_exact = stats.get(("removed", "exact"), {}).get("docs", 0)
        removed_near = stats.get(("removed", "near"), {}).get("docs", 0)
        cc = stats.get(("cc", "vertices"), {})
        orphans = stats.get(("cc", "orphan_clusters"), {})
        clusters = {k[1]: v for k, v in stats.items() if k[0] == "clusters"}
        summary = {
            "exact duplicates removed": int(removed_exact),
            "near duplicates removed": int(removed_near),
            "duplicate clusters (kept one doc each)": int(sum(v.get("clusters", 0) for v in clusters.values())),
            "threshold (Jaccard)": cfg.threshold,
            "LSH bands x rows (of num_perm)": f"{self.bands} x {self.rows} (of {cfg.num_perm})",
            "shingles": f"word {cfg.word_ngram}-grams; char {cfg.char_ngram}-grams for {', '.join(cfg.char_langs)}",
            "candidate verification": (f"8-bit sketch Jaccard >= {cfg.edge_threshold()} against the bucket's "
                                       f"{cfg.verify_anchors} smallest vertices") if cfg.verify else "off",
            "connected-components rounds": cfg.max_rounds,
            "graph vertices": int(cc.get("vertices", 0)),
            "unconverged vertices": int(cc.get("unconverged", 0)),
            "unconverged clusters left undeduplicated": int(orphans.get("clusters", 0)),
        }
        notes = []
        if cc.get("unconverged"):
            notes.append(f"Connected components did not converge in {cfg.max_rounds} rounds for "
                         f"{int(cc['unconverged'])} vertices: their clusters may be split (fewer removals, never "
                         f"wrong ones); {int(orphans.get('clusters', 0))} clusters without their survivor were "
                         "left as they are. Raise dedup.max_rounds.")
        grid = [round(i * BIN_WIDTH, 2) for i in range(int(1 / BIN_WIDTH))]
        centres = [round(g + BIN_WIDTH / 2, 3) for g in grid]
        theory = [round(float(s_curve(c, self.bands, self.rows)), 4) for c in centres]
        detect = {k[1]: v for k, v in stats.items() if k[0] == "detect"}
        cands = {k[1]: v for k, v in stats.items() if k[0] == "candidates"}
        buckets = {k[1]: v for k, v in stats.items() if k[0] == "buckets"}
        measured = [round(detect[f"{g:.2f}"]["direct"] / detect[f"{g:.2f}"]["pairs"], 4)
                    if f"{g:.2f}" in detect else None for g in grid]
        charts = [{
            "title": f"LSH S-curve, {self.bands} bands x {self.rows} rows: theory vs measured",
            "kind": "line", "x": centres,
            "series": {"theoretical P(candidate)": theory,
                       "measured: cluster pairs sharing a band": measured},  # None: no pairs in the bin
            "styles": {"theoretical P(candidate)": "-", "measured: cluster pairs sharing a band": "o"},
            "xlabel": "Jaccard (estimated from signatures for measured points)", "ylabel": "probability",
        }]
        sizes = [clusters.get(b, {}).get("clusters", 0) for b in SIZE_BINS]
        if any(sizes):
            charts.append({"title": "Duplicate cluster sizes (docs per cluster, exact copies included)",
                           "kind": "bar", "x": SIZE_BINS, "series": {"clusters": sizes},
                           "xlabel": "docs in cluster", "ylabel": "clusters"})
        tables = [
            {"title": "Cluster sizes", "columns": ["docs per cluster", "clusters", "docs"],
             "rows": [[b, int(clusters.get(b, {}).get("clusters", 0)), int(clusters.get(b, {}).get("docs", 0))]
                      for b in SIZE_BINS if b in clusters]},
            {"title": "Detection by estimated Jaccard (pairs of cluster member and survivor)",
             "columns": ["jaccard bin", "pairs", "share a band", "measured rate", "theoretical rate"],
             "rows": [[f"{g:.2f}", int(detect[f"{g:.2f}"]["pairs"]), int(detect[f"{g:.2f}"]["direct"]),
                       measured[i], theory[i]] for i, g in enumerate(grid) if f"{g:.2f}" in detect]},
            {"title": "LSH buckets with two or more vertices", "columns": ["vertices per bucket", "buckets"],
             "rows": [[b, int(buckets[b]["buckets"])] for b in SIZE_BINS if b in buckets]},
            {"title": "LSH candidate pairs (bucket member vs the bucket's smallest vertices) by estimated Jaccard",
             "columns": ["jaccard bin", "pairs", "kept as edges"],
             "rows": [[k, int(v["pairs"]), int(v["edges"])] for k, v in sorted(cands.items())]},
        ]
        notes.append("Measured rate: among pairs (near-duplicate, its survivor) in the final clusters, the share "
                     "that collide in at least one band directly (others joined the cluster through a chain). "
                     "It is conditioned on being clustered and binned by signature Jaccard, so it tracks the "
                     "theoretical curve above the threshold only; bench/dedup_quality.py measures the curve "
                     "against true shingle Jaccard on planted near-duplicates.")
        return {"summary": summary, "charts": charts, "tables": tables, "notes": notes}


def build(recipe: Recipe) -> DedupStage:
    return DedupStage(recipe.dedup)
