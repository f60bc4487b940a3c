"""LSH over MinHash signatures: choosing (bands, rows), the band keys, and the S-curve they give."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import xxhash


@lru_cache(maxsize=64)  # the launcher asks for the same (bands, rows) when it builds the graph and the report
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimizing the weighted false positive + false negative areas (datasketch's optimizer:
    numerical integration, ~75 ms a call, so callers compute it once per run)."""
    from datasketch.lsh import _optimal_param  # datasketch (and scipy) load only when dedup runs

    bands, rows = _optimal_param(threshold, num_perm, fp_weight, fn_weight)
    return int(bands), int(rows)


def s_curve(similarity: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """Probability that two sets of Jaccard ``similarity`` share at least one LSH band."""
    return 1.0 - (1.0 - np.power(similarity, rows)) ** bands


def band_hashes(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One 64-bit key per band: xxh3 of the band's index and its ``rows`` hash values (a collision only adds a
    candidate, which verification or the Jaccard in the reason exposes)."""
    raw = signature[: bands * rows].astype("<u4").reshape(bands, rows)
    return [xxhash.xxh3_64_intdigest(raw[i].tobytes(), seed=i) for i in range(bands)]


def share_band(sig_a: np.ndarray, sig_b: np.ndarray, bands: int, rows: int) -> bool:
    """Whether two signatures (or sketches) agree on every row of at least one band (LSH candidates)."""
    eq = (sig_a[: bands * rows] == sig_b[: bands * rows]).reshape(bands, rows)
    return bool(eq.all(axis=1).any())
