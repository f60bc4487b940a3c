"""Connected components by large-star / small-star rounds (Kiveris et al., "Connected Components in MapReduce
and Beyond", SoCC 2014), as plain per-vertex functions that a Beam GroupByKey feeds.

Vertices are strings whose order picks the component's label (its smallest vertex); an edge is ``(hi, lo)``
with ``hi > lo``. Each function reads the neighbour iterable at most twice and keeps O(1) state, so a vertex
with millions of neighbours (a hot cluster) needs no more memory than one with two.

Also union-find (``find``/``union``/``merge_forests``): the same labels in one pass over the edges, for runs whose
graph fits one worker's memory (the local runners), where each unrolled round would cost a few runner stages.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

Edge = tuple[str, str]


def star_edges(members: Iterable[str], anchors: int = 1) -> Iterator[Edge]:
    """Candidate edges of one LSH bucket, linear in its size (never all pairs).

    ``members`` (vertices, read twice) are linked to the bucket's ``anchors`` smallest vertices (each anchor
    to the smaller anchors): ``(member, anchor)`` pairs with ``member > anchor``. One anchor gives the plain
    star to the bucket's minimum; a few more let a member that fails verification against the minimum still
    be linked to another near duplicate in the bucket. Memory: O(anchors)."""
    smallest: list[str] = []
    for vertex in members:
        if len(smallest) < anchors or vertex < smallest[-1]:
            if vertex not in smallest:
                bisect.insort(smallest, vertex)
                del smallest[anchors:]
    for vertex in members:
        for anchor in smallest:
            if anchor >= vertex:
                break
            yield vertex, anchor


def large_star(vertex: str, neighbours: Iterable[str]) -> Iterator[Edge]:
    """Connects every larger neighbour of ``vertex`` to the smallest vertex of its closed neighbourhood."""
    smallest = min(vertex, min(neighbours, default=vertex))
    for other in neighbours:
        if other > vertex:
            yield other, smallest


def small_star(vertex: str, smaller: Iterable[str]) -> Iterator[Edge]:
    """``smaller``: the neighbours below ``vertex``; connects them and ``vertex`` to the smallest of them."""
    smallest = min(smaller, default=None)
    if smallest is None:
        return
    yield vertex, smallest
    for other in smaller:
        if other != smallest:
            yield other, smallest


def final_label(vertex: str, neighbours: Iterable[str]) -> tuple[str, bool]:
    """``(label, converged_here)`` for a vertex after the last round (edges distinct).

    Converged means the edges form stars: a vertex has either only larger neighbours (a centre, its own
    label) or exactly one neighbour, smaller (a leaf of that centre). Anything else means more rounds were
    needed; the vertex is then labelled with its smallest neighbour, which is in the same component."""
    smallest, n_smaller, has_larger = vertex, 0, False
    for other in neighbours:
        if other < vertex:
            n_smaller += 1
            smallest = min(smallest, other)
        elif other > vertex:
            has_larger = True
    converged = n_smaller == 0 or (n_smaller == 1 and not has_larger)
    return smallest, converged


def find(parent: dict[str, str], vertex: str) -> str:
    """The root of ``vertex``'s tree in a union-find forest (path halving; a new vertex becomes its own root)."""
    parent.setdefault(vertex, vertex)
    while parent[vertex] != vertex:
        parent[vertex] = parent[parent[vertex]]
        vertex = parent[vertex]
    return vertex


def union(parent: dict[str, str], a: str, b: str) -> None:
    """Joins the trees of ``a`` and ``b`` under the smaller root, so every root is its component's smallest vertex."""
    ra, rb = find(parent, a), find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


def merge_forests(forests: Iterable[dict[str, str]]) -> dict[str, str]:
    """One forest holding every union of ``forests``: the first is updated and returned, the others are only read
    (as Beam's ``merge_accumulators`` allows)."""
    forests = iter(forests)
    merged = next(forests, None)
    if merged is None:
        return {}
    for other in forests:
        for vertex, up in other.items():
            union(merged, vertex, up)
    return merged


def forest_labels(parent: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``(vertex, smallest vertex of its component)`` for every vertex of the forest."""
    for vertex in list(parent):
        yield vertex, find(parent, vertex)


def components_reference(edges: Iterable[Edge]) -> dict[str, str]:
    """Vertex -> smallest vertex of its component, by union-find in memory (the dedup stage's one-worker method,
    and the reference the large-star / small-star rounds are tested against)."""
    parent: dict[str, str] = {}
    for a, b in edges:
        union(parent, a, b)
    return dict(forest_labels(parent))


def iterate_components(edges: Iterable[Edge], rounds: int) -> tuple[dict[str, str], int]:
    """The Beam rounds run in memory: ``(labels, unconverged vertices)``; for tests and small benchmarks."""
    current = {(max(a, b), min(a, b)) for a, b in edges if a != b}
    for _ in range(rounds):
        both: dict[str, list[str]] = {}
        for hi, lo in current:
            both.setdefault(hi, []).append(lo)
            both.setdefault(lo, []).append(hi)
        current = {e for v, nb in both.items() for e in large_star(v, nb)}
        smaller: dict[str, list[str]] = {}
        for hi, lo in current:
            smaller.setdefault(hi, []).append(lo)
        current = {e for v, nb in smaller.items() for e in small_star(v, nb)}
    both = {}
    for hi, lo in current:
        both.setdefault(hi, []).append(lo)
        both.setdefault(lo, []).append(hi)
    labels, unconverged = {}, 0
    for vertex, nb in both.items():
        labels[vertex], ok = final_label(vertex, nb)
        unconverged += not ok
    return labels, unconverged
