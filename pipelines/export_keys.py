"""The keys that place a mixture row in the exports: its split, its component folder, its shard and its order
inside the shard (keyed hashes, so no worker sorts the corpus)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from qurate.hashing import stable_hash, stable_unit

Row = dict[str, Any]  # a mixture row: tokens (np.ndarray), n_tokens, id, repeat, lang, domain, source
SPLITS = ("train", "validation")


def split_of(doc_id: str, seed: int, validation_share: float) -> str:
    """Train or validation, by a keyed hash of the id alone (every repeat of a doc lands in the same split)."""
    return "validation" if stable_unit("split", doc_id, seed) < validation_share else "train"


def order_key(row: Row, seed: int, shuffle: bool) -> tuple:
    """Where a row goes in its shard: a keyed hash (the shuffle) or its id; (id, repeat) break ties."""
    head = stable_hash("order", row["id"], row["repeat"], seed) if shuffle else 0
    return head, row["id"], row["repeat"]


def component_of(row: Row, by: str) -> str:
    """The component folder name of a row: the mixture writer's own naming."""
    try:
        from qurate.pipelines.shards import safe_component
    except ImportError:  # older layout
        from qurate.pipelines.sinks import safe_component
    return safe_component(row.get(by))


def shard_by_size(size: float, salt: str, seed: int) -> Callable[[tuple, dict], tuple]:
    """Adds ``(shard, num_shards)`` to each row's group key: ``ceil(group tokens / size)`` shards, row placed by a
    keyed hash."""
    def assign(kv, totals):
        group, row = kv
        num = max(1, math.ceil(totals.get(group, 0) / size))
        return (*group, stable_hash(salt, row["id"], row["repeat"], seed) % num, num), row
    return assign
