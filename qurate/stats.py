"""Run statistics: ``(key tuple, {field: number})`` pairs, summed per key over the whole run.

A stage emits them from its per-document code and reads them back in its pure ``report`` function, both in the
same library module, through the key constructors it defines there (``StatKey``). The wiring sums them
(``pipelines/stats.py``) without knowing what they mean.
"""

from __future__ import annotations

from typing import Any

StatKey = tuple[str, ...]
StatValue = dict[str, float]
Stats = dict[StatKey, StatValue]
StatPairs = dict[StatKey, StatValue]  # what one document contributes

EXAMPLE = "example"  # key prefix of report examples picked deterministically (``PickExamples`` in the wiring)


def select(stats: Stats, *prefix: str) -> dict[StatKey, dict[str, Any]]:
    """The stats whose key starts with ``prefix``, keyed by the rest of the key."""
    n = len(prefix)
    return {key[n:]: value for key, value in stats.items() if key[:n] == prefix}


def add(into: StatPairs, key: StatKey, **fields: float) -> None:
    """Add ``fields`` to ``into[key]`` (a document's stats before they are emitted)."""
    acc = into.setdefault(key, {})
    for name, number in fields.items():
        acc[name] = acc.get(name, 0) + number


def examples(stats: Stats) -> list[tuple[str, ...]]:
    """The example rows a stage picked, ``(group, rank, *fields)``, in a stable order."""
    return sorted(select(stats, EXAMPLE))
