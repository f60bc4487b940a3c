"""The static-embedding domain student: the teacher encoder's own tokens as static vectors, mean-pooled, and a
softmax head trained on the teacher's soft labels — folded into one table of per-token label logits.

Model2Vec's idea (distil a sentence encoder into one vector per vocabulary token by running every token through
the encoder alone), done here with the encoder qurate already loads (all-MiniLM-L6-v2 through transformers):
model2vec's own ``distill`` extra pins transformers and tokenizers below the versions qurate runs, and the
run-time part is a mean of table rows, which numpy does.

    training:  token t -> encoder([CLS] t [SEP]) at t's position = E[t] (V x 384, computed once per training)
               doc -> mean of E over its first 256 tokens (the teacher's own tokenizer and cut) = x
               standardised x -> softmax(W x + b) fitted to the teacher's probabilities (cross-entropy, L2)
    folding:   the head is linear and the pooling is a mean, so  W((mean E) - mu)/sd + b  =  mean(E W/sd) + b',
               i.e. one V x (topics + formats) table of per-token logits (float16) and a bias
    run time:  tokenize (Rust tokenizers), average the doc's table rows, softmax per axis — numpy only

The table is a few MB, loads in well under a second and labels thousands of docs per second on one core.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

STATIC_FORMAT = "qurate-domains-static/1"
MAX_TOKENS = 256  # the teacher encoder's cut (HFEncoder max_tokens), so the student reads what the teacher read


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def load_tokenizer(path: Path, max_tokens: int) -> Any:
    """A ``tokenizers`` tokenizer from a (gzipped) tokenizer.json: truncated to ``max_tokens``, unpadded."""
    from tokenizers import Tokenizer

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    tok = Tokenizer.from_str(raw.decode("utf-8"))
    tok.enable_truncation(max_tokens)
    tok.no_padding()
    return tok


def token_ids(tok: Any, heads: Sequence[str]) -> list[np.ndarray]:
    """Token ids per doc, one doc at a time (``encode_batch`` would spread over all cores; Beam already runs a
    worker per core)."""
    return [np.asarray(tok.encode(h or ".").ids, dtype=np.int64) for h in heads]


def mean_rows(table: np.ndarray, ids: Sequence[np.ndarray]) -> np.ndarray:
    """Per doc, the float32 mean of its tokens' table rows (each doc on its own: batches change nothing)."""
    out = np.zeros((len(ids), table.shape[1]), np.float32)
    for i, x in enumerate(ids):
        if len(x):
            out[i] = table[x].astype(np.float32).mean(axis=0)
    return out


class StaticDistilledClassifier:
    """Run time of a static student: ``probabilities`` = softmax(mean of per-token logits + bias) per axis."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.meta = meta
        self.name = f"distilled:{path.name}"
        self.topics: list[str] = list(meta["topics"])
        self.formats: list[str] = list(meta["formats"])
        self.max_chars = int(meta["max_chars"])
        with np.load(path.parent / meta["files"]["table"]) as data:
            self.table = np.ascontiguousarray(data["table"])
            self.bias = data["bias"].astype(np.float32)
        self.tok = load_tokenizer(path.parent / meta["files"]["tokenizer"], int(meta["max_tokens"]))

    def probabilities(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        from qurate.classifiers.domain_classifiers import head

        logits = (mean_rows(self.table, token_ids(self.tok, [head(t, self.max_chars) for t in texts]))
                  + self.bias).astype(np.float64)
        n = len(self.topics)
        return _softmax(logits[:, :n]), _softmax(logits[:, n:])


# ------------------------------------------------------------------------------------------------ training


def static_vectors(encoder_dir: Path, batch: int = 1024) -> np.ndarray:
    """E[t]: the encoder's output at token t's position for the input ``[CLS] t [SEP]``, for every vocabulary
    token (torch + transformers; about a minute on one core for MiniLM's 30,522 tokens)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(encoder_dir))
    model = AutoModel.from_pretrained(str(encoder_dir)).eval()
    vocab = len(tok)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    out = np.zeros((vocab, model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for start in range(0, vocab, batch):
            ids = torch.arange(start, min(vocab, start + batch))
            x = torch.stack([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], 1)
            out[start:start + len(ids)] = model(input_ids=x, attention_mask=torch.ones_like(x)) \
                .last_hidden_state[:, 1].float().numpy()
    return out


def fit_softmax(x: np.ndarray, probs: np.ndarray, l2: float, max_iter: int = 1000) -> np.ndarray:
    """Multinomial logistic regression on soft labels (cross-entropy to the teacher's probabilities, L2 on the
    weights, not the bias), L-BFGS; returns (features + 1) x labels, the last row the bias."""
    from scipy.optimize import minimize

    n, d = x.shape
    k = probs.shape[1]
    xb = np.hstack([x, np.ones((n, 1))]).astype(np.float64)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights = w.reshape(d + 1, k)
        z = xb @ weights
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        grad = xb.T @ (np.exp(logp) - probs) / n
        grad[:-1] += 2 * l2 * weights[:-1]
        return float(-(probs * logp).sum() / n + l2 * (weights[:-1] ** 2).sum()), grad.ravel()

    result = minimize(loss, np.zeros((d + 1) * k), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return result.x.reshape(d + 1, k)


def train_static(vectors: np.ndarray, tokenizer_json: Path, texts: Sequence[str], topic_probs: np.ndarray,
                 format_probs: np.ndarray, max_chars: int, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """The folded (table float16, bias float32) of a static student trained on ``texts``' teacher labels."""
    from qurate.classifiers.domain_classifiers import head

    tok = load_tokenizer(tokenizer_json, MAX_TOKENS)
    x = mean_rows(vectors, token_ids(tok, [head(t, max_chars) for t in texts])).astype(np.float64)
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mu) / sd
    heads = [fit_softmax(z, topic_probs, l2), fit_softmax(z, format_probs, l2)]
    weights = np.hstack([h[:-1] for h in heads])  # d x (topics + formats)
    bias = np.concatenate([h[-1] for h in heads]) - (mu / sd) @ weights
    table = (vectors.astype(np.float64) / sd) @ weights
    return table.astype(np.float16), bias.astype(np.float32)


def save_static(out_json: Path, table: np.ndarray, bias: np.ndarray, tokenizer_json: Path) -> dict[str, str]:
    """Writes OUT.static.npz and OUT.tokenizer.json.gz beside ``out_json``; returns the metadata's ``files``."""
    files = {"table": out_json.with_suffix(".static.npz").name,
             "tokenizer": out_json.with_suffix(".tokenizer.json.gz").name}
    np.savez_compressed(out_json.parent / files["table"], table=table, bias=bias)
    raw = tokenizer_json.read_bytes()
    json.loads(raw)  # a tokenizer.json, not something else
    # mtime=0: the same tokenizer gives the same bytes
    (out_json.parent / files["tokenizer"]).write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    return files
