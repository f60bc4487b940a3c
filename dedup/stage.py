"""The ``dedup`` stage: its spec, the per-key steps of its graph as plain functions over typed records, and its
report.

The wiring (the dedup graph in the pipelines package) only groups by key and calls these functions:

    Sign            doc -> SignRecord(node key, exact hash, NearSig(band keys, 8-bit sketch))
    ExactGroups     per exact hash: the best copy (CopyGroup) is the graph vertex; its copies learn it
    LSHCandidates   per band key: candidate pairs (member, one of the bucket's k smallest vertices);
                    per pair: the Jaccard estimate of the two sketches (Candidate), kept as an edge if high enough
    Components      large-star / small-star rounds (``qurate.dedup.components``), then per vertex its label
    Clusters        per label: the survivor (= the label) and every member's Jaccard to it (NearDecision)
    Decide          per vertex: a Decision for each of its exact copies
    ApplyDecisions  per doc: kept (with ``dedup_cluster``) or rejected with its reason

Vertices are node keys (``qurate.dedup.survivor``) whose string order is the survivor order, so a component's
smallest vertex is its survivor. Each function reads its grouped iterables at most twice and keeps O(1) state, so
memory per key does not grow with a cluster's size. A step yields its records and, mixed in, ``Stat`` records
that the wiring routes to the stage's stats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np
from qurate.dedup import components
from qurate.dedup.band_chunks import band_keys
from qurate.dedup.config import DedupConfig
from qurate.dedup.exact import exact_hash
from qurate.dedup.lsh import band_hashes, s_curve, share_band
from qurate.dedup.signatures import Signer, sketch, sketch_jaccard
from qurate.dedup.survivor import key_id, node_key
from qurate.doc import Doc, rejected
from qurate.spec import StageSpec
from qurate.stats import StatKey, Stats

NAME = "dedup"
BIN_WIDTH = 0.05
SIZE_BINS = ["2", "3", "4-5", "6-10", "11-100", "101-1000", ">1000"]


# ------------------------------------------------------------------------------------------------- records

class Stat(NamedTuple):
    """A stats record a step yields among its outputs: ``(key, {field: number})``, summed per key."""

    key: StatKey
    value: dict[str, float]


class NearSig(NamedTuple):
    bands: bytes  # one 64-bit LSH key per band, packed (``band_chunks.band_keys``)
    sketch: bytes  # 8-bit MinHash sketch: all that travels for the Jaccard estimates


class SignRecord(NamedTuple):
    key: str  # node key: survivor rank + doc id
    text_hash: str  # exact hash of the normalized text (the node key when exact dedup is off)
    near: NearSig | None  # None when near dedup is off


class CopyGroup(NamedTuple):
    """The copies of one text: the best copy's node key (the graph vertex), its signature, how many copies."""

    best: str | None
    near: NearSig | None
    copies: int


class MemberSketch(NamedTuple):
    member: str
    sketch: bytes


class Candidate(NamedTuple):
    member: str  # hi vertex
    anchor: str  # lo vertex
    score: float  # Jaccard estimate from the sketches


class ClusterEntry(NamedTuple):
    vertex: str
    sketch: bytes
    copies: int


class NearDecision(NamedTuple):
    survivor: str  # node key of the cluster's survivor
    score: float  # Jaccard estimate to the survivor
    docs: int  # docs in the cluster, exact copies included


class Decision(NamedTuple):
    kind: str  # keep | near | exact
    survivor_id: str
    docs: int
    score: float
    exact_of: str | None  # exact copies: the id of the copy that stood for them in the near graph


# -------------------------------------------------------------------------------------------- stat keys

def jaccard_bin(value: float) -> str:
    """The lower edge of the 0.05-wide bin of a Jaccard value, as text ("0.85")."""
    return f"{min(int(value / BIN_WIDTH + 1e-9), int(1 / BIN_WIDTH) - 1) * BIN_WIDTH:.2f}"


def size_bin(size: int) -> str:
    for upper, label in ((2, "2"), (3, "3"), (5, "4-5"), (10, "6-10"), (100, "11-100"), (1000, "101-1000")):
        if size <= upper:
            return label
    return ">1000"


EXACT_GROUPS, BUCKETS, CANDIDATES, CC, DETECT = "exact_groups", "buckets", "candidates", "cc", "detect"
NEAR_CLUSTERS, CLUSTERS, REMOVED, AMBIGUOUS = "near_clusters", "clusters", "removed", "ambiguous_ids"


# ------------------------------------------------------------------------------------------------- steps

class SignParams(NamedTuple):
    """What signing needs besides the signer, computed once per run (the (bands, rows) optimizer is slow)."""

    survivor_key: list[str]
    exact: bool
    normalization: str
    near: bool
    bands: int
    rows: int


def sign_params(config: DedupConfig) -> SignParams:
    bands, rows = config.lsh()
    return SignParams(list(config.survivor_key), config.exact, config.exact_normalization, config.near,
                      bands, rows)


def sign(docs: list[Doc], signer: Signer | None, params: SignParams) -> list[SignRecord]:
    """One record per doc: node key, exact hash and (near dedup on) band keys + sketch of its MinHash."""
    keys = [node_key(d, params.survivor_key) for d in docs]
    hashes = [exact_hash(d["text"], params.normalization) if params.exact else k for d, k in zip(docs, keys)]
    if not params.near or signer is None:
        return [SignRecord(k, h, None) for k, h in zip(keys, hashes)]
    sigs = signer.signatures([d["text"] for d in docs], [d.get("lang") for d in docs])
    return [SignRecord(k, h, NearSig(band_keys(band_hashes(s, params.bands, params.rows)), sketch(s)))
            for k, h, s in zip(keys, hashes, sigs)]


EMPTY_GROUP = CopyGroup(None, None, 0)


def merge_groups(a: CopyGroup, b: CopyGroup) -> CopyGroup:
    """Two partial groups of one text as one: the smaller node key is the better copy."""
    if b.best is not None and (a.best is None or b.best < a.best):
        return CopyGroup(b.best, b.near, a.copies + b.copies)
    return CopyGroup(a.best, a.near, a.copies + b.copies)


def exact_members(groups: Iterable[CopyGroup], members: Iterable[str]) -> Iterator[tuple[str, str] | Stat]:
    """Per exact hash: ``(vertex, member node key)`` for every copy of a text that has copies."""
    for group in groups:
        if group.copies > 1:
            for member in members:
                yield group.best, member
            yield Stat((EXACT_GROUPS, size_bin(group.copies)), {"groups": 1, "docs": group.copies})


def bucket_candidates(members: Iterable[str], anchors: int) -> Iterator[tuple[str, str] | Stat]:
    """One LSH bucket -> candidate pairs ``(member, anchor)`` (linear in its size); stats on bucket sizes."""
    size = sum(1 for _ in members)
    if size < 2:
        return
    yield from components.star_edges(members, anchors)
    yield Stat((BUCKETS, size_bin(size)), {"buckets": 1, "members": size})


def with_member_sketch(member: str, sketches: Iterable[bytes], anchors: Iterable[str]
                       ) -> Iterator[tuple[str, MemberSketch]]:
    """Per member: its sketch, sent on to each of its anchors."""
    own = next(iter(sketches), None)
    if own is None:
        return
    for anchor in anchors:
        yield anchor, MemberSketch(member, own)


def verify(anchor: str, sketches: Iterable[bytes], members: Iterable[MemberSketch]) -> Iterator[Candidate]:
    """Per anchor: the Jaccard estimate of each of its candidate members."""
    own = next(iter(sketches), None)
    if own is None:
        return
    for m in members:
        yield Candidate(m.member, anchor, sketch_jaccard(m.sketch, own))


def verify_pair(pair: tuple[str, str], sketches: dict[str, bytes]) -> Iterator[Candidate]:
    """A candidate pair ``(member, anchor)`` with the Jaccard estimate of their sketches (what ``verify`` gives
    through the joins)."""
    member, anchor = pair
    own, other = sketches.get(anchor), sketches.get(member)
    if own is not None and other is not None:
        yield Candidate(member, anchor, sketch_jaccard(other, own))


def candidate_stat(candidate: Candidate, threshold: float) -> Stat:
    return Stat((CANDIDATES, jaccard_bin(candidate.score)), {"pairs": 1, "edges": int(candidate.score >= threshold)})


def label(vertex: str, neighbours: Iterable[str]) -> Iterator[tuple[str, str] | Stat]:
    """After the last round: ``(vertex, component label)``, and whether the rounds converged here."""
    name, converged = components.final_label(vertex, neighbours)
    yield vertex, name
    yield Stat((CC, "vertices"), {"vertices": 1, "unconverged": int(not converged)})


def forest_labels(parent: dict[str, str]) -> Iterator[tuple[str, str] | Stat]:
    """The union-find method's ``label``: ``(vertex, component label)`` for every vertex of the merged forest
    (always converged), and the method used, for the report."""
    n = 0
    for vertex, name in components.forest_labels(parent):
        n += 1
        yield vertex, name
    yield Stat((CC, "vertices"), {"vertices": n, "unconverged": 0})
    yield Stat((CC, "union_find"), {"runs": 1})


def to_cluster(vertex: str, groups: Iterable[CopyGroup], labels: Iterable[str]) -> Iterator[tuple[str, ClusterEntry]]:
    """A labelled vertex -> ``(label, its entry)``."""
    name = next(iter(labels), None)
    if name is None:
        return
    for group in groups:
        yield name, ClusterEntry(vertex, group.near.sketch, group.copies)


def cluster_decisions(name: str, entries: Iterable[ClusterEntry], bands: int, rows: int
                      ) -> Iterator[tuple[str, NearDecision] | Stat]:
    """One cluster -> per vertex ``NearDecision`` (survivor = the label, Jaccard to it, cluster docs).

    If the rounds did not converge, a label may not be in its own cluster (it belongs to another one); that
    cluster is then left alone (nothing removed) and counted."""
    root_sketch, docs, vertices = None, 0, 0
    for entry in entries:
        docs += entry.copies
        vertices += 1
        if entry.vertex == name:
            root_sketch = entry.sketch
    if root_sketch is None:
        yield Stat((CC, "orphan_clusters"), {"clusters": 1, "docs": docs})
        return
    root = np.frombuffer(root_sketch, dtype=np.uint8)
    for entry in entries:
        if entry.vertex == name:
            yield entry.vertex, NearDecision(name, 1.0, docs)
            continue
        score = sketch_jaccard(entry.sketch, root_sketch)
        yield entry.vertex, NearDecision(name, score, docs)
        # Band equality read off the sketches: a false match needs `rows` chance byte matches at once.
        direct = share_band(np.frombuffer(entry.sketch, dtype=np.uint8), root, bands, rows)
        yield Stat((DETECT, jaccard_bin(score)), {"pairs": 1, "direct": int(direct)})
    yield Stat((NEAR_CLUSTERS,), {"clusters": 1, "vertices": vertices, "docs": docs})


def decide(vertex: str, members: Iterable[str], near: Iterable[NearDecision] = ()
           ) -> Iterator[tuple[str, Decision] | Stat]:
    """Per vertex: a Decision for each of its exact copies (the vertex alone when its text has one copy)."""
    found = next(iter(near), None)
    if found is not None:
        survivor, score, docs = found
    else:
        survivor, score, docs = vertex, 1.0, sum(1 for _ in members)
        if docs == 0:
            return
    has_members = False
    for member in members:
        has_members = True
        yield from _member_decision(member, vertex, survivor, score, docs)
    if not has_members:
        yield from _member_decision(vertex, vertex, survivor, score, docs)


def _member_decision(member: str, vertex: str, survivor: str, score: float, docs: int
                     ) -> Iterator[tuple[str, Decision] | Stat]:
    survivor_id = key_id(survivor)
    if member == survivor:
        yield member, Decision("keep", survivor_id, docs, 1.0, None)
        yield Stat((CLUSTERS, size_bin(docs)), {"clusters": 1, "docs": docs})
    elif member == vertex:
        yield member, Decision("near", survivor_id, docs, score, None)
        yield Stat((REMOVED, "near"), {"docs": 1})
    else:
        yield member, Decision("exact", survivor_id, docs, score, key_id(vertex))
        yield Stat((REMOVED, "exact"), {"docs": 1})


def unique_decision(key: str, decisions: Iterable[Decision], docs: Iterable[int]
                    ) -> Iterator[tuple[str, Decision] | Stat]:
    """Per node key: its decision, unless two docs share the key (same id and rank: duplicate ids let through
    by the reader) or it got two decisions; then nothing is guessed and every such doc is kept as it is."""
    found = list(decisions)
    if not found:
        return
    count = sum(docs)
    if count != 1 or len(found) > 1:
        yield Stat((AMBIGUOUS,), {"docs": count})
        return
    yield key, found[0]


def reason_of(decision: Decision) -> str:
    if decision.kind == "near":
        return (f"near_duplicate: jaccard~{decision.score:.2f} of {decision.survivor_id} "
                f"(cluster {decision.survivor_id}, {decision.docs} docs)")
    return f"exact_duplicate: of {decision.exact_of} (cluster {decision.survivor_id}, {decision.docs} docs)"


def apply_decision(doc: Doc, decision: Decision | None) -> tuple[bool, dict[str, Any]]:
    """``(kept, record)``: the doc annotated with its cluster, or its rejected record with the reason."""
    if decision is None:
        return True, doc
    out = dict(doc)
    out["dedup_cluster"] = decision.survivor_id
    if decision.kind == "keep":
        return True, out
    return False, rejected(out, NAME, reason_of(decision))


# ------------------------------------------------------------------------------------------------ report

def report(stats: Stats, config: DedupConfig) -> dict[str, Any]:
    """The report section from the stage's summed stats (pure)."""
    cfg = config
    bands, rows = cfg.lsh()
    removed_exact = stats.get((REMOVED, "exact"), {}).get("docs", 0)
    removed_near = stats.get((REMOVED, "near"), {}).get("docs", 0)
    cc = stats.get((CC, "vertices"), {})
    orphans = stats.get((CC, "orphan_clusters"), {})
    clusters = {k[1]: v for k, v in stats.items() if k[0] == CLUSTERS}
    summary = {
        "exact duplicates removed": int(removed_exact),
        "near duplicates removed": int(removed_near),
        "duplicate clusters (kept one doc each)": int(sum(v.get("clusters", 0) for v in clusters.values())),
        "threshold (Jaccard)": cfg.threshold,
        "LSH bands x rows (of num_perm)": f"{bands} x {rows} (of {cfg.num_perm})",
        "shingles": f"word {cfg.word_ngram}-grams; char {cfg.char_ngram}-grams for {', '.join(cfg.char_langs)}",
        "candidate verification": (f"8-bit sketch Jaccard >= {cfg.edge_threshold()} against the bucket's "
                                   f"{cfg.verify_anchors} smallest vertices") if cfg.verify else "off",
        "connected components": ("union-find on one worker" if (CC, "union_find") in stats
                                 else f"large-star / small-star, {cfg.max_rounds} rounds"),
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
    theory = [round(float(s_curve(c, bands, rows)), 4) for c in centres]
    detect = {k[1]: v for k, v in stats.items() if k[0] == DETECT}
    cands = {k[1]: v for k, v in stats.items() if k[0] == CANDIDATES}
    buckets = {k[1]: v for k, v in stats.items() if k[0] == BUCKETS}
    measured = [round(detect[f"{g:.2f}"]["direct"] / detect[f"{g:.2f}"]["pairs"], 4)
                if f"{g:.2f}" in detect else None for g in grid]
    charts = [{
        "title": f"LSH S-curve, {bands} bands x {rows} rows: theory vs measured",
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
                 "against true shingle Jaccard on real near-duplicate families.")
    if stats.get((AMBIGUOUS,)):
        notes.append(f"{int(stats[(AMBIGUOUS,)].get('docs', 0))} docs share an id and survivor rank with "
                     "another doc: they were kept as they are (dedup cannot tell them apart).")
    return {"summary": summary, "charts": charts, "tables": tables, "notes": notes}


STAGE = StageSpec(
    name=NAME,
    order=30,
    config=DedupConfig,
    graph="dedup",
    report=report,
    description="exact and near-duplicate removal: MinHash-LSH over word/character n-grams, verified "
                "candidates, connected components; the best copy of each cluster survives",
)
