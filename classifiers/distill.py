"""The distilled quality classifier: a hashed word n-gram ridge regressor per rubric dimension.

The FineWeb-Edu recipe: an LLM judges a sample, a cheap model learns its scores and runs over everything.
Features are word 1- and 2-grams hashed (xxhash, signed) into ``2**bits`` buckets with sublinear term
frequency and L2 normalization; each dimension gets its own ridge regression (scipy ``lsqr``, exact and
deterministic), predictions clipped to 0-5. Hundreds of docs/s on one CPU core, no torch.

Saved as one ``.npz``: the used buckets, their weights per dimension, intercepts, and JSON metadata (rubric,
judge, training set, held-out agreement with the judge).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

FORMAT = "qurate-quality-ridge/1"
_WORD = re.compile(r"\w+", re.UNICODE)
WORDS_PER_TOKEN = 0.75  # features come from about as much of the doc's head as the judge saw


def words_for_tokens(max_doc_tokens: int) -> int:
    """How many leading words the classifier reads for a judge that saw ``max_doc_tokens`` tokens."""
    return max(32, int(max_doc_tokens * WORDS_PER_TOKEN))


def _features(text: str, bits: int, max_words: int) -> dict[int, float]:
    words = _WORD.findall(text[: max_words * 16].lower())[:max_words]
    grams = words + [a + " " + b for a, b in zip(words, words[1:])]
    counts: dict[int, float] = {}
    mask = (1 << bits) - 1
    for gram in grams:
        h = xxhash.xxh64_intdigest(gram.encode("utf-8"))
        bucket = h & mask
        sign = 1.0 if (h >> 63) & 1 else -1.0
        counts[bucket] = counts.get(bucket, 0.0) + sign
    return counts


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def featurize(texts: Sequence[str], bits: int, max_words: int):
    """A CSR matrix (docs x 2**bits) of signed, sublinear, L2-normalized hashed n-gram counts."""
    from scipy import sparse

    indptr, indices, values = [0], [], []
    for text in texts:
        counts = _features(text, bits, max_words)
        cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        raw = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        vals = np.sign(raw) * np.log1p(np.abs(raw))
        norm = np.linalg.norm(vals)
        order = np.argsort(cols)
        indices.append(cols[order])
        values.append(vals[order] / norm if norm > 0 else vals[order])
        indptr.append(indptr[-1] + len(counts))
    return sparse.csr_matrix((_cat(values, np.float64), _cat(indices, np.int64), np.array(indptr)),
                             shape=(len(texts), 1 << bits))


@dataclass
class QualityModel:
    dimensions: list[str]
    bits: int
    max_words: int  # leading words of a doc that are read
    buckets: np.ndarray  # int64 (n_used,), sorted
    weights: np.ndarray  # float32 (n_used, K)
    intercepts: np.ndarray  # float32 (K,)
    meta: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Scores (docs x K), each in 0-5."""
        x = featurize(texts, self.bits, self.max_words)[:, self.buckets]
        return np.clip(x @ self.weights.astype(np.float64) + self.intercepts, 0.0, 5.0)

    def score_texts(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [dict(zip(self.dimensions, (float(v) for v in row))) for row in self.predict(texts)]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "format": FORMAT, "dimensions": self.dimensions, "bits": self.bits,
                "max_words": self.max_words}
        with open(path, "wb") as handle:  # a file handle: np.savez would append ".npz" to other names
            np.savez_compressed(handle, buckets=self.buckets.astype(np.int32 if self.bits < 31 else np.int64),
                                weights=self.weights.astype(np.float16), intercepts=self.intercepts,
                                meta=np.array(json.dumps(meta, sort_keys=True)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> QualityModel:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path} is not a qurate quality classifier (format {meta.get('format')!r})")
            return cls(list(meta["dimensions"]), int(meta["bits"]), int(meta["max_words"]),
                       data["buckets"].astype(np.int64),
                       data["weights"].astype(np.float32), data["intercepts"].astype(np.float32), meta)


def train(texts: Sequence[str], labels: np.ndarray, dimensions: list[str], bits: int = 18,
          l2: float = 1.0, max_words: int = 768) -> QualityModel:
    """Ridge regression per dimension on hashed n-grams; ``labels`` is (docs x K) judge scores."""
    from scipy.sparse.linalg import lsqr

    labels = np.asarray(labels, dtype=np.float64)
    if labels.shape != (len(texts), len(dimensions)):
        raise ValueError(f"labels shape {labels.shape} != ({len(texts)}, {len(dimensions)})")
    x = featurize(texts, bits, max_words)
    used = np.unique(x.indices)
    x = x[:, used]
    means = labels.mean(axis=0)
    weights = np.zeros((len(used), len(dimensions)))
    for k in range(len(dimensions)):
        weights[:, k] = lsqr(x, labels[:, k] - means[k], damp=float(np.sqrt(l2)), atol=1e-10, btol=1e-10,
                             iter_lim=5000)[0]
    return QualityModel(list(dimensions), bits, max_words, used.astype(np.int64), weights.astype(np.float32),
                        means.astype(np.float32))


# ------------------------------------------------------------------------------------------ agreement


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as Spearman's rho needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN when either side is constant."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def f1_at(truth: Sequence[float], pred: Sequence[float], threshold: float) -> dict[str, float]:
    """Precision/recall/F1 of 'kept' (score >= threshold) by the classifier against the judge."""
    t = np.asarray(truth) >= threshold
    p = np.asarray(pred) >= threshold
    tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "judge_kept": int(t.sum()),
            "classifier_kept": int(p.sum()), "docs": len(t)}


def agreement(truth: np.ndarray, pred: np.ndarray, dimensions: list[str], weights: list[float],
              threshold: float) -> dict[str, Any]:
    """Held-out agreement: Spearman per dimension and on the aggregate, F1 of the keep decision."""
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    agg_t, agg_p = truth @ w, pred @ w
    return {
        "spearman": {d: spearman(truth[:, k], pred[:, k]) for k, d in enumerate(dimensions)},
        "spearman_aggregate": spearman(agg_t, agg_p),
        "mae": {d: float(np.abs(truth[:, k] - pred[:, k]).mean()) for k, d in enumerate(dimensions)},
        "keep_threshold": threshold,
        "keep": f1_at(agg_t, agg_p, threshold),
    }


def format_agreement(agree: dict[str, Any]) -> str:
    """The agreement table as printed by ``qurate train-quality``."""
    lines = [f"  {'dimension':<20} {'spearman':>9} {'mae':>7}"]
    for dim, rho in agree["spearman"].items():
        lines.append(f"  {dim:<20} {rho:>9.3f} {agree['mae'][dim]:>7.3f}")
    lines.append(f"  {'aggregate':<20} {agree['spearman_aggregate']:>9.3f}")
    keep = agree["keep"]
    lines.append(f"  keep (aggregate >= {agree['keep_threshold']:.2f}): F1 {keep['f1']:.3f} (precision "
                 f"{keep['precision']:.3f}, recall {keep['recall']:.3f}; judge keeps {keep['judge_kept']}/"
                 f"{keep['docs']}, classifier {keep['classifier_kept']}/{keep['docs']})")
    return "\n".join(lines)
