"""The dedup stage's LSH step: vertices -> packed band chunks -> buckets -> candidate pairs -> verified edges."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from qurate.dedup import band_chunks, stage
from qurate.dedup.config import DedupConfig
from qurate.pipelines.dedup_helpers import STATS, _Distinct, _per_key
from qurate.pipelines.stats import flatten_stats


class _BandChunksFn(beam.DoFn):
    """Vertices -> ``(partition, chunk)``: a bundle's band records packed per band-key partition
    (``band_chunks``): the band shuffle carries bytes, not one Python object per (band, vertex)."""

    def start_bundle(self) -> None:
        self._buffer = band_chunks.ChunkBuffer()

    def process(self, kv):
        vertex, group = kv
        if self._buffer.add(band_chunks.unpack_keys(group.near.bands), vertex):
            yield from self._buffer.flush()

    def finish_bundle(self):
        for pair in self._buffer.flush():
            yield WindowedValue(pair, MIN_TIMESTAMP, [GlobalWindow()])


class _CandidatesFn(beam.DoFn):
    """A partition's chunks -> its buckets' candidate pairs (and bucket stats). Near copies share most of their
    bands, so the same pair comes from many buckets (up to one per band): a bundle sends each pair once,
    remembering the 128-bit hashes of the pairs it sent (~60 bytes a pair; a collision, ~2^-128 a pair, would
    only withhold one candidate edge). Without it a local runner's shuffle held every repeat (~14 GB at 1M docs
    of near-copy clusters); ``_Distinct`` after it still removes repeats across bundles."""

    def __init__(self, anchors: int):
        self._anchors = anchors

    def start_bundle(self) -> None:
        self._seen: set[int] = set()

    def process(self, kv: tuple[int, Iterable[band_chunks.Chunk]]) -> Iterator[Any]:
        for members in band_chunks.buckets(kv[1]):
            for out in stage.bucket_candidates(members, self._anchors):
                if isinstance(out, stage.Stat):
                    yield beam.pvalue.TaggedOutput(STATS, (out.key, out.value))
                    continue
                seen = band_chunks.pair_hash(*out)
                if seen not in self._seen:
                    self._seen.add(seen)
                    yield out


class LSHCandidates(beam.PTransform):
    """Vertices -> ``edges`` (hi, lo): bucket pairs, verified on their sketches when ``verify`` is on.

    ``lookup``: the pairs read both sketches from a side input of every vertex's sketch (256 bytes each) instead
    of two joins that copy a sketch per pair through the shuffle: less memory in a local runner (a plan pass
    of a checkpoint chain), where a shuffle lives in memory too; a cluster runner keeps the joins."""

    def __init__(self, config: DedupConfig, lookup: bool = False):
        super().__init__()
        self.config, self.lookup = config, lookup

    def expand(self, vertices):
        cfg, threshold = self.config, self.config.edge_threshold()
        buckets = (
            vertices
            | "BandChunks" >> beam.ParDo(_BandChunksFn())
            | "ByPartition" >> beam.GroupByKey()
            | "Candidates" >> beam.ParDo(_CandidatesFn(cfg.verify_anchors if cfg.verify else 1)).with_outputs(
                STATS, main="pairs")
        )
        pairs = buckets["pairs"] | "DistinctCandidates" >> _Distinct()
        if not cfg.verify:
            return {"edges": pairs, STATS: buckets[STATS]}
        # Sketches travel only with candidate pairs (two joins), not with every band record.
        sketches = vertices | "Sketch" >> beam.Map(lambda kv: (kv[0], kv[1].near.sketch))
        if self.lookup:
            scored = pairs | "VerifyByLookup" >> beam.FlatMap(stage.verify_pair, beam.pvalue.AsDict(sketches))
        else:
            scored = self._joined(pairs, sketches)
        stats = scored | "CandidateStats" >> beam.Map(lambda c, t: tuple(stage.candidate_stat(c, t)), threshold)
        edges = (scored | "Verified" >> beam.Filter(lambda c, t: c.score >= t, threshold)
                 | "Edge" >> beam.Map(lambda c: (c.member, c.anchor)))
        return {"edges": edges, STATS: flatten_stats((buckets[STATS], stats), "LSHStats")}

    @staticmethod
    def _joined(pairs, sketches):
        scored = (
            {"sketch": sketches, "anchor": pairs}
            | "JoinMember" >> beam.CoGroupByKey()
            | "MemberSketch" >> beam.FlatMap(_per_key(stage.with_member_sketch, "sketch", "anchor"))
        )
        scored = (
            {"sketch": sketches, "member": scored}
            | "JoinAnchor" >> beam.CoGroupByKey()
            | "Verify" >> beam.FlatMap(_per_key(stage.verify, "sketch", "member"))
        )
        return scored
