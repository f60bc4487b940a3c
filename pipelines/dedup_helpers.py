"""Beam helpers shared by the dedup stage's graphs (``dedup_graph.py``, ``lsh_graph.py``): the stage-output tags,
stats routing, and a combiner-based Distinct."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam
from qurate.dedup import stage

# The stage-output tags of ``qurate.pipelines.decide`` (not imported here: it loads RunInference, and with it torch,
# into every worker that unpickles this graph: +210 MB per process).
KEPT, REJECTED, DEAD_LETTER, STATS = "kept", "rejected", "dead_letter", "stats"


def _routed(fn: Callable[..., Iterable[Any]]) -> Callable[..., Iterable[Any]]:
    """``fn``'s outputs with its ``Stat`` records sent to the stats output."""
    def run(*args: Any) -> Iterable[Any]:
        for out in fn(*args):
            if isinstance(out, stage.Stat):
                yield beam.pvalue.TaggedOutput(STATS, (out.key, out.value))
            else:
                yield out
    return run


def _per_key(fn: Callable[..., Iterable[Any]], *tags: str) -> Callable[[tuple[str, Any]], Iterable[Any]]:
    """A CoGroupByKey result ``(key, {tag: values})`` as ``fn(key, *values per tag)``, stats routed."""
    routed = _routed(fn)
    return lambda item: routed(item[0], *(item[1][t] for t in tags))


class _Distinct(beam.PTransform):
    """Distinct elements via a combiner (duplicates collapse before the shuffle)."""

    def expand(self, pcoll):
        return (pcoll | "Key" >> beam.Map(lambda x: (x, None))
                | "One" >> beam.CombinePerKey(lambda _values: None) | "Keys" >> beam.Keys())
